// The IKE_SAs and CHILD_SAs `swanctl --list-sas --raw` prints, parsed: shared by the netns tests
// that run real strongSwan (tests/netns/e2e_fixture.h, tests/netns/ha_tunnel_test.cc).
#pragma once

#include <string>
#include <vector>

namespace ikelb::test {

// One CHILD_SA of an IKE_SA.
struct ChildSa {
  std::string state, spi_in, spi_out;
  bool encap = false;
};

// One IKE_SA as `swanctl --list-sas --raw` prints it.
struct IkeSa {
  std::string name, uniqueid, state, local_host, local_port, remote_host, remote_port, remote_id,
      spi_i, spi_r, vip;
  bool nat_remote = false;
  std::vector<ChildSa> children;

  // The first INSTALLED CHILD_SA, or nullptr.
  const ChildSa* installed() const;
  bool up() const { return state == "ESTABLISHED" && installed(); }
  // IKE SPIs and the installed CHILD_SA's SPIs: changes with any rekey or re-establishment.
  std::string spis() const;
};

// Every "list-sa event" line of `swanctl --list-sas --raw` output; other lines are skipped.
std::vector<IkeSa> parse_list_sas(const std::string& output);

}  // namespace ikelb::test
