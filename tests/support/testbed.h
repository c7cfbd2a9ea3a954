// The standard data-path configuration used by the bpf tests and the micro-benchmark, written
// straight into the maps of a loaded Datapath inside a Sandbox (see sandbox.h for addresses).
//
//   vs 0: VIP 203.0.113.10, UDP 500 + 4500 + ESP, backends 0..2 = gw1..gw3 (10.0.0.11-13)
//   vs 1: VIP 2001:db8:f::10, same services, backends 3..5 = gw1..gw3 (fd00::11-13)
//   spare backends, outside the Maglev tables, for tests that pin clients to them:
//     6 = 10.0.0.14 (vs 0, no neighbour entry), 7 = 198.51.100.50 (vs 0, behind the client port)
//
// The Maglev tables come from the C++ builder (lb/core/maglev.h), so `predict` is an independent
// account of where a new client must land.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "address.h"
#include "datapath.h"
#include "sandbox.h"

namespace ikelb::test {

inline constexpr uint32_t kVs4 = 0, kVs6 = 1;
inline constexpr uint32_t kNoNeighBackend = 6, kOneArmBackend = 7;
inline constexpr uint32_t kTableSize = 65537;

struct TestbedBackend {
  std::string name;
  IpAddress addr;
  uint32_t vs_id;
  std::string mac;  // the next hop's MAC as the FIB reports it
};

class Testbed {
 public:
  Testbed(Datapath& dp, const Sandbox& sandbox);

  const TestbedBackend& backend(uint32_t id) const { return backends_.at(id); }
  IpAddress vip(uint32_t vs_id) const { return vs_id == kVs4 ? vip4_ : vip6_; }

  // Rewrites a backend's state in the data path.
  void set_state(uint32_t id, uint8_t state);
  // Pins `client` of `vs_id` to backend `id`, last seen `age_ns` ago (negative: later than now,
  // as another CPU may have written it since this one read the clock).
  void pin(uint32_t vs_id, const IpAddress& client, uint32_t id, int64_t age_ns = 0);

  // The backend a client without affinity reaches: its Maglev slot, then up to
  // IKELB_MAGLEV_PROBES - 1 following slots, skipping backends that are not active.
  // IKELB_NO_BACKEND if none.
  uint32_t predict(uint32_t vs_id, const IpAddress& client) const;

 private:
  Datapath& dp_;
  IpAddress vip4_, vip6_;
  std::vector<TestbedBackend> backends_;
  std::vector<uint8_t> states_;
  std::vector<uint32_t> table4_, table6_;
};

uint64_t monotonic_ns();  // the clock bpf_ktime_get_ns() reads

}  // namespace ikelb::test
