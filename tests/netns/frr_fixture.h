// The upstream router of the HA tests (ha_test.cc, ha_tunnel_test.cc): FRR's zebra, bfdd and
// bgpd in one namespace, as the unprivileged frr user, with their configuration, sockets and
// logs in frr_dir_.
#pragma once

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "netns_fixture.h"
#include "process.h"

namespace ikelb::test {

class FrrFixture : public NetnsFixture {
 protected:
  using NetnsFixture::NetnsFixture;

  // Makes frr_dir_ (under the work directory, which FRR's user must be able to reach).
  void make_frr_dir() {
    frr_dir_ = dir_ + "/frr";
    std::filesystem::create_directories(frr_dir_);
  }

  // Starts zebra, bfdd and bgpd in namespace `router` with the <daemon>.conf files already in
  // frr_dir_; returns once bgpd's and bfdd's vty sockets exist.
  void start_frr_daemons(const std::string& router) {
    using namespace std::chrono_literals;
    must({"chown", "-R", "frr:frr", frr_dir_});
    for (const std::string d : {"zebra", "bfdd", "bgpd"}) {
      Argv argv = {"/usr/lib/frr/" + d,
                   "-f",
                   frr_dir_ + "/" + d + ".conf",
                   "-i",
                   frr_dir_ + "/" + d + ".pid",
                   "-z",
                   frr_dir_ + "/zserv.api",
                   "--vty_socket",
                   frr_dir_,
                   "-u",
                   "frr",
                   "-g",
                   "frr",
                   "--log",
                   "stdout",
                   "--log-level",
                   "info"};
      if (d == "bfdd") argv.insert(argv.end(), {"--bfdctl", frr_dir_ + "/bfdd.sock"});
      if (d == "bgpd") argv.insert(argv.end(), {"-p", "179"});
      start(in_ns(router, argv), frr_dir_ + "/" + d + ".log");
      if (d == "zebra")
        wait_for("zebra's socket", 10s,
                 [&] { return std::filesystem::exists(frr_dir_ + "/zserv.api"); });
    }
    wait_for("FRR's vty sockets", 10s, [&] {
      return std::filesystem::exists(frr_dir_ + "/bgpd.vty") &&
             std::filesystem::exists(frr_dir_ + "/bfdd.vty");
    });
  }

  std::string vtysh(const std::string& command) {
    return must({"vtysh", "--vty_socket", frr_dir_, "-c", command});
  }

  // The daemons' log tails, for dump_logs.
  void dump_frr_logs() const {
    if (frr_dir_.empty()) return;
    for (const char* d : {"zebra", "bgpd", "bfdd"})
      std::fprintf(stderr, "---- %s ----\n%s\n", d,
                   tail(read_file(frr_dir_ + "/" + d + ".log"), 1500).c_str());
  }

  std::string frr_dir_;
};

}  // namespace ikelb::test
