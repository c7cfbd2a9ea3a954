// The table-driven XDP fixtures' vocabulary and runner, shared by the test programs in tests/bpf/:
// a case is a description, a map set-up and steps of {input frame, ingress port, expected
// verdict, expected output frame, expected outcome}. Outputs are compared byte-for-byte with
// frames the test builder computed from scratch (so the data path's incremental checksum updates
// must agree with full recomputations), re-verified by verify_checksums, and the counters of
// every case must equal what its steps sent.
#pragma once

#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <netinet/in.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sched.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <thread>

#include "datapath.h"
#include "packet.h"
#include "sandbox.h"
#include "testbed.h"

namespace ikelb::test {

enum class Port { kClient, kGateway };

struct Step {
  Bytes in;
  Port ingress = Port::kClient;
  uint32_t verdict = XDP_PASS;
  Bytes out;  // expected output frame; ignored for XDP_DROP
  uint32_t outcome = IKELB_OUT_PASS_NOT_OURS;
  // Traffic that must be counted: backend id (its vs is implied) and direction.
  std::optional<std::pair<uint32_t, uint32_t>> counted;
  std::chrono::milliseconds pause{0};  // slept before this step (token bucket refills)
};

struct Env {
  Datapath& dp;
  Testbed& bed;
};

struct Case {
  std::string name;  // gtest name
  std::string description;
  std::function<void(Env&)> setup;
  std::function<std::vector<Step>(Env&)> steps;
  std::map<uint32_t, uint64_t> events;  // expected event counters (others must stay 0)
  std::function<void(Env&)> check;      // extra assertions on map state afterwards
};

inline void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

// --- Frame vocabulary -----------------------------------------------------------------------

inline const Mac kClientRouterMac = mac("02:00:00:00:c0:02");
inline const Mac kClientPortMac = mac("02:00:00:00:c0:01");
inline const Mac kGatewayPortMac = mac("02:00:00:00:a0:01");
inline const IpAddr kVip4 = ip("203.0.113.10");
inline const IpAddr kVip6 = ip("2001:db8:f::10");

inline IpAddr to_test(const IpAddress& a) {
  return ip(a.str());
}
inline IpAddress to_lb(const IpAddr& a) {
  return IpAddress::must_parse(a.to_string());
}

inline Bytes ike_payload(size_t n, uint8_t seed = 0x11) {
  Bytes b(n);
  for (size_t i = 0; i < n; i++) b[i] = static_cast<uint8_t>(seed + i * 7);
  return b;
}

inline constexpr uint8_t kIkeSaInit = 34, kIkeAuth = 35, kInformational = 37;
inline constexpr uint8_t kFlagI = 0x08, kFlagR = 0x20;

// An IKE message (RFC 7296 header and `extra` payload bytes); with `natt` after the 4-byte
// non-ESP marker of port 4500.
inline Bytes ike(uint64_t spi_i, uint64_t spi_r, uint8_t exchange, uint8_t flags, bool natt,
                 size_t extra = 40) {
  Bytes b;
  if (natt) b.insert(b.end(), 4, 0);
  for (int i = 7; i >= 0; i--) b.push_back(static_cast<uint8_t>(spi_i >> (8 * i)));
  for (int i = 7; i >= 0; i--) b.push_back(static_cast<uint8_t>(spi_r >> (8 * i)));
  const uint32_t len = static_cast<uint32_t>(28 + extra);
  Bytes rest = {33,
                0x20,
                exchange,
                flags,
                0,
                0,
                0,
                0,
                static_cast<uint8_t>(len >> 24),
                static_cast<uint8_t>(len >> 16),
                static_cast<uint8_t>(len >> 8),
                static_cast<uint8_t>(len)};
  b.insert(b.end(), rest.begin(), rest.end());
  Bytes payload = ike_payload(extra);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

// A client's packet as it arrives on the client port.
inline Frame from_client(const IpAddr& client, const IpAddr& dst) {
  Frame f;
  f.eth(kClientRouterMac, kClientPortMac);
  if (client.is_v4())
    f.ipv4(client, dst);
  else
    f.ipv6(client, dst);
  return f.ttl(64).ip_id(0x1234);
}

// The same packet as XDP must send it to backend `b`: new destination and MACs, TTL - 1.
inline Frame to_backend(const Frame& sent, const TestbedBackend& b, const IpAddr& client,
                        bool forwarded = true) {
  Frame f = sent;
  if (forwarded) f.eth(kGatewayPortMac, mac(b.mac)).ttl(63);
  IpAddr dst = to_test(b.addr);
  if (client.is_v4())
    f.ipv4(client, dst);
  else
    f.ipv6(client, dst);
  return f;
}

inline Frame from_backend(const TestbedBackend& b, const IpAddr& client) {
  Frame f;
  f.eth(mac(b.mac), kGatewayPortMac);
  IpAddr src = to_test(b.addr);
  if (client.is_v4())
    f.ipv4(src, client);
  else
    f.ipv6(src, client);
  return f.ttl(64).ip_id(0x4321);
}

inline Frame to_client(const Frame& sent, const IpAddr& vip, const IpAddr& client) {
  Frame f = sent;
  f.eth(kClientPortMac, kClientRouterMac).ttl(63);
  if (client.is_v4())
    f.ipv4(vip, client);
  else
    f.ipv6(vip, client);
  return f;
}

inline Step forwarded(const Frame& in, const Frame& out, uint32_t backend,
                      uint32_t outcome = IKELB_OUT_FWD_REDIRECT) {
  uint32_t verdict = outcome == IKELB_OUT_FWD_REDIRECT ? XDP_REDIRECT
                     : outcome == IKELB_OUT_FWD_TX     ? XDP_TX
                                                       : XDP_PASS;
  return {in.build(),  Port::kClient, verdict,
          out.build(), outcome,       std::pair{backend, uint32_t{IKELB_DIR_TO_BACKEND}}};
}

inline Step replied(const Frame& in, const Frame& out, uint32_t backend) {
  return {in.build(),  Port::kGateway,         XDP_REDIRECT,
          out.build(), IKELB_OUT_FWD_REDIRECT, std::pair{backend, uint32_t{IKELB_DIR_TO_CLIENT}}};
}

inline Step untouched(const Bytes& in, uint32_t outcome, Port port = Port::kClient) {
  return {in, port, XDP_PASS, in, outcome, std::nullopt};
}

inline Step dropped(const Bytes& in, uint32_t outcome, Port port = Port::kClient) {
  return {in, port, XDP_DROP, {}, outcome, std::nullopt};
}

// Appends one redirected step per fragment of `in`, each expected to come out as the same
// fragment of `out`; returns the number of fragments.
inline size_t add_fragments(std::vector<Step>& steps, const Frame& in, const Frame& out,
                            size_t size, Port port, uint32_t backend, uint32_t dir) {
  auto ins = in.build_fragments(size);
  auto outs = out.build_fragments(size);
  EXPECT_TRUE(verify_fragmented_udp(outs).ok());
  for (size_t i = 0; i < ins.size(); i++)
    steps.push_back(
        {ins[i], port, XDP_REDIRECT, outs[i], IKELB_OUT_FWD_REDIRECT, std::pair{backend, dir}});
  return ins.size();
}

inline IpAddr client4(int n) {
  return ip("100.64." + std::to_string(n / 250) + "." + std::to_string(n % 250 + 1));
}
inline IpAddr client6(int n) {
  return ip("2001:db8:100::" + std::to_string(n + 1));
}

// The first client (from `start`) whose Maglev choice in `vs` satisfies `want`.
inline IpAddr find_client(Env& env, uint32_t vs, const std::function<bool(uint32_t)>& want,
                          int start = 0) {
  for (int n = start; n < start + 10000; n++) {
    IpAddr c = vs == kVs4 ? client4(n) : client6(n);
    if (want(env.bed.predict(vs, to_lb(c)))) return c;
  }
  throw std::runtime_error("no client found for the condition");
}

inline const TestbedBackend& be(Env& env, uint32_t id) {
  return env.bed.backend(id);
}

// The address filter (ikelb_abi.h, struct ikelb_addr_filter): an address's slot, the kinds
// (IKELB_ADDR_* bits) the data path reads there, and those bits overwritten by hand.
inline uint32_t slot_of(const IpAddress& a) {
  return ikelb_addr_slot(&a.addr, a.family);
}

inline uint8_t kinds_of(Env& env, const IpAddr& a) {
  const uint32_t zero = 0;
  ikelb_addr_filter f{};
  EXPECT_EQ(bpf_map_lookup_elem(env.dp.map_fd(IKELB_MAP_ADDR_FILTER), &zero, &f), 0);
  return f.kinds[slot_of(to_lb(a))];
}

inline void set_kind(Env& env, const IpAddr& a, uint8_t kinds) {
  const int fd = env.dp.map_fd(IKELB_MAP_ADDR_FILTER);
  const uint32_t zero = 0;
  ikelb_addr_filter f{};
  ASSERT_EQ(bpf_map_lookup_elem(fd, &zero, &f), 0);
  f.kinds[slot_of(to_lb(a))] = kinds;
  ASSERT_EQ(bpf_map_update_elem(fd, &zero, &f, BPF_ANY), 0);
}

// --- The runner -------------------------------------------------------------------------------

// Keeps the calling thread on the CPU it runs on, so that every BPF_PROG_TEST_RUN of a test sees
// the same per-CPU maps (the next-hop cache).
inline void stay_on_this_cpu() {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(sched_getcpu(), &set);
  ASSERT_EQ(sched_setaffinity(0, sizeof(set), &set), 0) << std::strerror(errno);
}

inline void run_case(const Case& c) {
  SCOPED_TRACE(c.description);
  stay_on_this_cpu();
  Sandbox sandbox = Sandbox::create();
  Datapath dp(
      Datapath::Options{.table_slots = 2 * kTableSize, .affinity_entries = 65536, .pin_dir = ""});
  Testbed bed(dp, sandbox);
  Env env{dp, bed};
  if (c.setup) c.setup(env);
  std::vector<Step> steps = c.steps(env);
  ASSERT_FALSE(steps.empty());

  std::array<uint64_t, IKELB_OUTCOME_MAX> want_outcomes{};
  std::map<std::pair<uint32_t, uint32_t>, std::pair<uint64_t, uint64_t>>
      want_backend;  // pkts, bytes
  std::map<std::pair<uint32_t, uint32_t>, std::pair<uint64_t, uint64_t>> want_vs;
  for (size_t i = 0; i < steps.size(); i++) {
    const Step& s = steps[i];
    SCOPED_TRACE("step " + std::to_string(i));
    std::this_thread::sleep_for(s.pause);
    uint32_t ifindex =
        s.ingress == Port::kClient ? sandbox.client_ifindex : sandbox.gateway_ifindex;
    XdpResult r = run_xdp(dp.prog_fd(), s.in, ifindex);
    EXPECT_EQ(r.verdict, s.verdict);
    if (s.verdict != XDP_DROP) {
      EXPECT_EQ(describe_diff(s.out, r.frame), "");
      ChecksumReport report = verify_checksums(r.frame);
      EXPECT_TRUE(report.ok()) << report;
    }
    want_outcomes[s.outcome]++;
    if (s.counted) {
      auto [backend, dir] = *s.counted;
      auto& b = want_backend[{backend, dir}];
      b.first++;
      b.second += s.in.size();
      auto& v = want_vs[{bed.backend(backend).vs_id, dir}];
      v.first++;
      v.second += s.in.size();
    }
  }

  auto outcomes = dp.outcomes();
  for (uint32_t o = 0; o < IKELB_OUTCOME_MAX; o++)
    EXPECT_EQ(outcomes[o], want_outcomes[o]) << "outcome " << outcome_name(o);
  auto events = dp.events();
  for (uint32_t e = 0; e < IKELB_EVENT_MAX; e++) {
    auto it = c.events.find(e);
    uint64_t want = it == c.events.end() ? 0 : it->second;
    if (e == IKELB_EV_MAGLEV_PROBED && it == c.events.end()) continue;  // table-dependent
    EXPECT_EQ(events[e], want) << "event " << event_name(e);
  }
  for (uint32_t id = 0; id < 8; id++) {
    auto st = dp.backend_stats(id);
    for (uint32_t dir = 0; dir < IKELB_DIR_MAX; dir++) {
      auto it = want_backend.find({id, dir});
      auto want = it == want_backend.end() ? std::pair<uint64_t, uint64_t>{} : it->second;
      EXPECT_EQ(st.traffic.packets[dir], want.first) << "backend " << id << " dir " << dir;
      EXPECT_EQ(st.traffic.bytes[dir], want.second) << "backend " << id << " dir " << dir;
    }
  }
  for (uint32_t vs : {kVs4, kVs6}) {
    auto t = dp.vs_traffic(vs);
    for (uint32_t dir = 0; dir < IKELB_DIR_MAX; dir++) {
      auto it = want_vs.find({vs, dir});
      auto want = it == want_vs.end() ? std::pair<uint64_t, uint64_t>{} : it->second;
      EXPECT_EQ(t.packets[dir], want.first) << "vs " << vs << " dir " << dir;
      EXPECT_EQ(t.bytes[dir], want.second) << "vs " << vs << " dir " << dir;
    }
  }
  if (c.check) c.check(env);
}

}  // namespace ikelb::test
