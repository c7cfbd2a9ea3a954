#include "testbed.h"

#include <netinet/in.h>

#include <ctime>

#include "maglev.h"

namespace ikelb::test {

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

Testbed::Testbed(Datapath& dp, const Sandbox& sandbox)
    : dp_(dp),
      vip4_(IpAddress::must_parse("203.0.113.10")),
      vip6_(IpAddress::must_parse("2001:db8:f::10")) {
  for (int i = 1; i <= 3; i++) {
    std::string n = std::to_string(i);
    backends_.push_back(
        {"gw" + n, IpAddress::must_parse("10.0.0.1" + n), kVs4, "02:00:00:00:b0:0" + n});
  }
  for (int i = 1; i <= 3; i++) {
    std::string n = std::to_string(i);
    backends_.push_back(
        {"gw" + n, IpAddress::must_parse("fd00::1" + n), kVs6, "02:00:00:00:b0:0" + n});
  }
  backends_.push_back({"gw-noneigh", IpAddress::must_parse("10.0.0.14"), kVs4, ""});
  backends_.push_back(
      {"gw-onearm", IpAddress::must_parse("198.51.100.50"), kVs4, "02:00:00:00:c0:50"});
  states_.assign(backends_.size(), IKELB_BACKEND_ACTIVE);

  for (uint32_t vs_id : {kVs4, kVs6}) {
    std::vector<MaglevBackend> members;
    for (uint32_t id = 0; id < 6; id++)
      if (backends_[id].vs_id == vs_id) members.push_back({backends_[id].name, id, 1});
    auto& table = vs_id == kVs4 ? table4_ : table6_;
    table = build_maglev_table(members, kTableSize);
    uint32_t base = vs_id * kTableSize;
    dp.write_table(base, table);
    IpAddress vip = this->vip(vs_id);
    ikelb_vs v{};
    v.vip = vip.addr;
    v.family = vip.family;
    v.table_base = base;
    v.table_size = kTableSize;
    dp.set_virtual_server(vs_id, v);
    for (uint16_t port : {500, 4500, 0}) dp.set_service(vip, IPPROTO_UDP, port, vs_id);
    dp.set_service(vip, IPPROTO_ESP, 0, vs_id);
  }
  for (uint32_t id = 0; id < backends_.size(); id++) {
    const TestbedBackend& b = backends_[id];
    set_state(id, IKELB_BACKEND_ACTIVE);
    dp.set_reverse(b.addr, {.vip = vip(b.vs_id).addr, .vs_id = b.vs_id, .backend_id = id});
  }
  dp.set_local_addresses({IpAddress::must_parse("10.0.0.1"), IpAddress::must_parse("fd00::1"),
                          IpAddress::must_parse("198.51.100.1")});
  dp.add_tx_port(sandbox.client_ifindex);
  dp.add_tx_port(sandbox.gateway_ifindex);
  // The VIP records, as the agent publishes them after a config. (tests/bench/variants.sh builds
  // this against revisions of lb/ from before there was anything to flush.)
  [](auto& d) {
    if constexpr (requires { d.flush(); }) d.flush();
  }(dp);
}

void Testbed::set_state(uint32_t id, uint8_t state) {
  const TestbedBackend& b = backends_.at(id);
  ikelb_backend be{};
  be.addr = b.addr.addr;
  be.family = b.addr.family;
  be.vs_id = b.vs_id;
  be.state = state;
  dp_.set_backend(id, be);
  states_[id] = state;
}

void Testbed::pin(uint32_t vs_id, const IpAddress& client, uint32_t id, int64_t age_ns) {
  const uint64_t seen = monotonic_ns() - static_cast<uint64_t>(age_ns);  // modulo 2^64
  dp_.set_affinity(vs_id, client, {.backend_id = id, .flags = 0, .last_seen_ns = seen});
}

uint32_t Testbed::predict(uint32_t vs_id, const IpAddress& client) const {
  const auto& table = vs_id == kVs4 ? table4_ : table6_;
  uint32_t slot = client_hash(client) % kTableSize;
  for (int i = 0; i < IKELB_MAGLEV_PROBES; i++) {
    uint32_t id = table[(slot + i) % kTableSize];
    if (id < states_.size() && states_[id] == IKELB_BACKEND_ACTIVE) return id;
  }
  return IKELB_NO_BACKEND;
}

}  // namespace ikelb::test
