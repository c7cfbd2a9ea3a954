// The probe session state machine with a fake clock: no sockets, no sleeps.
#include "session.h"

#include <gtest/gtest.h>

namespace ikelb::ike {
namespace {

using namespace std::chrono_literals;

// Deterministic "randomness": a byte counter.
ProbeSession::RandomFill counter_random() {
  auto state = std::make_shared<uint8_t>(1);
  return [state](std::span<uint8_t> out) {
    for (auto& b : out) b = (*state)++;
  };
}

void put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
void put32(Bytes& b, uint32_t v) {
  put16(b, static_cast<uint16_t>(v >> 16));
  put16(b, static_cast<uint16_t>(v));
}

// A responder's answer to `request` (the probe bytes) carrying `payloads` (already chained: the
// caller gives the first payload type).
Bytes answer(const Bytes& request, uint8_t first_payload, const Bytes& payloads,
             bool with_spi_r = false) {
  Bytes b(request.begin(), request.begin() + 8);  // SPIi
  for (int i = 0; i < 8; i++) b.push_back(with_spi_r ? static_cast<uint8_t>(0xa0 + i) : 0);
  b.push_back(first_payload);
  b.push_back(0x20);
  b.push_back(34);
  b.push_back(0x20);  // R
  put32(b, 0);
  put32(b, static_cast<uint32_t>(28 + payloads.size()));
  b.insert(b.end(), payloads.begin(), payloads.end());
  return b;
}

Bytes notify(uint16_t type, const Bytes& data = {}) {
  Bytes p{0, 0};
  put16(p, static_cast<uint16_t>(8 + data.size()));
  p.push_back(0);  // protocol
  p.push_back(0);  // SPI size
  put16(p, type);
  p.insert(p.end(), data.begin(), data.end());
  return p;
}

Bytes invalid_ke(const Bytes& request, uint16_t group) {
  Bytes data;
  put16(data, group);
  return answer(request, 41, notify(kInvalidKePayload, data));
}

// SA (one proposal, X25519) + KE + Nonce, as a gateway accepting the probe sends.
Bytes full_response(const Bytes& request) {
  Bytes sa{34, 0, 0, 40, 0, 0, 0, 36, 1, 1, 0, 3};
  Bytes t1{3, 0, 0, 12, 1, 0, 0, 12, 0x80, 0x0e, 1, 0};
  Bytes t2{3, 0, 0, 8, 2, 0, 0, 5};
  Bytes t3{0, 0, 0, 8, 4, 0, 0, 31};
  sa.insert(sa.end(), t1.begin(), t1.end());
  sa.insert(sa.end(), t2.begin(), t2.end());
  sa.insert(sa.end(), t3.begin(), t3.end());
  Bytes ke{40, 0, 0, 40, 0, 31, 0, 0};
  ke.resize(40, 0x55);
  Bytes nonce{0, 0, 0, 36};
  nonce.resize(36, 0x66);
  Bytes all = sa;
  all.insert(all.end(), ke.begin(), ke.end());
  all.insert(all.end(), nonce.begin(), nonce.end());
  return answer(request, 33, all, true);
}

// The KE group a probe datagram carries: the KE payload follows the SA payload.
uint16_t ke_group_of(const Bytes& probe) {
  size_t sa_len = (probe[28 + 2] << 8) | probe[28 + 3];
  size_t ke = 28 + sa_len;
  return static_cast<uint16_t>((probe[ke + 4] << 8) | probe[ke + 5]);
}

struct SessionTest : ::testing::Test {
  Clock::time_point t0 = Clock::time_point(100s);
  SessionSettings settings;
  std::vector<std::pair<bool, std::string>> changes;

  ProbeSession make(bool healthy = true) {
    settings.jitter = 0ms;
    ProbeSession s(settings, counter_random(), healthy, t0);
    s.set_on_change([this](bool h, const std::string& c) { changes.push_back({h, c}); });
    return s;
  }
};

TEST_F(SessionTest, StatelessLearnsThePreferredGroupAndKeepsGettingInvalidKe) {
  ProbeSession s = make();
  auto p1 = s.poll(t0);
  ASSERT_TRUE(p1);
  EXPECT_EQ(ke_group_of(*p1), kGroupX25519);
  s.on_datagram(t0 + 7ms, invalid_ke(*p1, kGroupEcp256));
  EXPECT_EQ(s.status().last_result, "invalid_ke");
  EXPECT_EQ(s.status().preferred_group, kGroupEcp256);
  EXPECT_EQ(s.status().rtt, 7ms);
  EXPECT_FALSE(s.in_flight());
  EXPECT_EQ(s.next_wakeup(), t0 + 1000ms);
  EXPECT_FALSE(s.poll(t0 + 999ms));
  auto p2 = s.poll(t0 + 1000ms);
  ASSERT_TRUE(p2);
  EXPECT_EQ(ke_group_of(*p2), kGroupX25519);  // not the preferred 19: INVALID_KE again
  EXPECT_NE(Bytes(p1->begin(), p1->begin() + 8), Bytes(p2->begin(), p2->begin() + 8));
  EXPECT_TRUE(changes.empty());
}

TEST_F(SessionTest, AGatewayPreferringX25519GetsModp2048Next) {
  ProbeSession s = make();
  auto p1 = s.poll(t0);
  s.on_datagram(t0 + 2ms, full_response(*p1));
  EXPECT_EQ(s.status().last_result, "ike_response");
  EXPECT_EQ(s.status().preferred_group, kGroupX25519);
  auto p2 = s.poll(t0 + 1s);
  ASSERT_TRUE(p2);
  EXPECT_EQ(ke_group_of(*p2), kGroupModp2048);
  EXPECT_EQ(p2->size(), 28u + 64 + (8 + 256) + (4 + 32));  // header, SA, KE, nonce
}

TEST_F(SessionTest, FullModeSendsThePreferredGroup) {
  settings.mode = ProbeMode::kFull;
  ProbeSession s = make();
  auto p1 = s.poll(t0);
  s.on_datagram(t0 + 1ms, invalid_ke(*p1, kGroupModp2048));
  auto p2 = s.poll(t0 + 1s);
  EXPECT_EQ(ke_group_of(*p2), kGroupModp2048);
}

TEST_F(SessionTest, FullModeAnswersAnEcp256GatewayWithAValidPoint) {
  settings.mode = ProbeMode::kFull;
  ProbeSession s = make();
  auto p1 = s.poll(t0);
  s.on_datagram(t0 + 1ms, invalid_ke(*p1, kGroupEcp256));
  auto p2 = s.poll(t0 + 1s);
  ASSERT_TRUE(p2);
  EXPECT_EQ(ke_group_of(*p2), kGroupEcp256);
  size_t sa_len = ((*p2)[30] << 8) | (*p2)[31];
  Bytes point(p2->begin() + 28 + sa_len + 8, p2->begin() + 28 + sa_len + 8 + 64);
  EXPECT_EQ(point[0], 0x6b);   // x of the P-256 base point
  EXPECT_EQ(point[63], 0xf5);  // ... and the last byte of y
}

TEST_F(SessionTest, RetransmitsAreByteIdenticalThenTimeoutsTakeItDownAndAnswersBringItBack) {
  ProbeSession s = make();
  for (int probe = 0; probe < 3; probe++) {
    auto start = t0 + std::chrono::seconds(probe);
    auto p = s.poll(start);
    ASSERT_TRUE(p);
    EXPECT_EQ(s.next_wakeup(), start + 250ms);
    auto again = s.poll(start + 250ms);
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, *p);
    EXPECT_FALSE(s.poll(start + 499ms));
    EXPECT_FALSE(s.poll(start + 500ms));  // the deadline: a failure, nothing sent
    EXPECT_EQ(s.status().last_result, "timeout");
  }
  EXPECT_FALSE(s.status().healthy);
  EXPECT_EQ(s.status().retransmits, 3u);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0], (std::pair<bool, std::string>{false, "3 probes failed: timeout"}));
  EXPECT_EQ(s.status().last_change, t0 + 2s + 500ms);

  auto p = s.poll(t0 + 3s);
  s.on_datagram(t0 + 3s + 1ms, invalid_ke(*p, kGroupEcp256));
  EXPECT_FALSE(s.status().healthy);  // rise = 2
  p = s.poll(t0 + 4s);
  s.on_datagram(t0 + 4s + 1ms, invalid_ke(*p, kGroupEcp256));
  EXPECT_TRUE(s.status().healthy);
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[1], (std::pair<bool, std::string>{true, "2 probes answered: invalid_ke"}));
}

TEST_F(SessionTest, StrayAndLateAnswersAreIgnored) {
  ProbeSession s = make();
  auto p1 = s.poll(t0);
  Bytes other = *p1;
  other[0] ^= 0xff;  // another probe's SPI
  s.on_datagram(t0 + 1ms, invalid_ke(other, kGroupEcp256));
  EXPECT_TRUE(s.in_flight());
  s.poll(t0 + 500ms);                                        // timeout
  s.on_datagram(t0 + 600ms, invalid_ke(*p1, kGroupEcp256));  // too late: nothing in flight
  EXPECT_EQ(s.status().last_result, "timeout");
  EXPECT_EQ(s.status().consecutive_fail, 1u);
}

TEST_F(SessionTest, GarbageAndWrongVersionAreFailures) {
  ProbeSession s = make();
  auto p = s.poll(t0);
  Bytes garbage(p->begin(), p->begin() + 8);
  garbage.resize(40, 0xee);
  s.on_datagram(t0 + 1ms, garbage);
  EXPECT_EQ(s.status().consecutive_fail, 1u);
  EXPECT_TRUE(s.status().last_result.starts_with("malformed: ")) << s.status().last_result;
  p = s.poll(t0 + 1s);
  s.on_datagram(t0 + 1s + 1ms, answer(*p, 41, notify(kInvalidMajorVersion)));
  EXPECT_EQ(s.status().last_result, "invalid_major_version");
  EXPECT_EQ(s.status().consecutive_fail, 2u);
}

TEST_F(SessionTest, IcmpErrorsFailAtOnce) {
  settings.fall = 1;
  ProbeSession s = make();
  s.poll(t0);
  s.on_error(t0 + 1ms, "Connection refused");
  EXPECT_FALSE(s.in_flight());
  EXPECT_FALSE(s.status().healthy);
  EXPECT_EQ(changes.at(0).second, "1 probes failed: icmp: Connection refused");
}

TEST_F(SessionTest, CookieBacksOffAndCountsAsAlive) {
  ProbeSession s = make(false);
  auto p = s.poll(t0);
  s.on_datagram(t0 + 1ms, answer(*p, 41, notify(kCookie, Bytes(16, 7))));
  EXPECT_EQ(s.status().last_result, "cookie");
  EXPECT_EQ(s.status().consecutive_ok, 1u);
  EXPECT_EQ(s.next_wakeup(), t0 + 1000ms);  // this probe's interval was already scheduled
  p = s.poll(t0 + 1s);
  s.on_datagram(t0 + 1s + 1ms, answer(*p, 41, notify(kCookie, Bytes(16, 7))));
  EXPECT_EQ(s.next_wakeup(), t0 + 1s + 2000ms);  // 2x after the first cookie
  EXPECT_EQ(s.status().warning, "gateway asks for cookies: probing every 4000 ms");
  EXPECT_TRUE(s.status().healthy);
}

TEST_F(SessionTest, NoProposalChosenIsConfigurable) {
  for (bool healthy : {true, false}) {
    settings.no_proposal_chosen_healthy = healthy;
    settings.fall = 1;
    changes.clear();
    ProbeSession s = make();
    auto p = s.poll(t0);
    s.on_datagram(t0 + 1ms, answer(*p, 41, notify(kNoProposalChosen)));
    EXPECT_EQ(s.status().last_result, "no_proposal_chosen");
    EXPECT_EQ(s.status().healthy, healthy);
    EXPECT_EQ(s.status().warning, "gateway refuses the probe's proposals (no_proposal_chosen)");
  }
}

TEST_F(SessionTest, JitterStaysWithinItsBound) {
  settings.jitter = 100ms;
  ProbeSession s(settings, counter_random(), true, t0);
  auto start = t0;
  for (int i = 0; i < 20; i++) {
    auto p = s.poll(start);
    ASSERT_TRUE(p);
    s.on_datagram(start + 1ms, invalid_ke(*p, kGroupEcp256));
    auto next = s.next_wakeup();
    EXPECT_GE(next - start, 1000ms);
    EXPECT_LE(next - start, 1100ms);
    start = next;
  }
}

TEST_F(SessionTest, Port4500ProbesCarryTheMarker) {
  settings.port_4500 = true;
  ProbeSession s = make();
  auto p = s.poll(t0);
  ASSERT_TRUE(p);
  EXPECT_EQ(Bytes(p->begin(), p->begin() + 4), Bytes(4, 0));
  Bytes body(p->begin() + 4, p->end());
  Bytes reply = invalid_ke(body, kGroupEcp256);
  reply.insert(reply.begin(), 4, 0);
  s.on_datagram(t0 + 1ms, reply);
  EXPECT_EQ(s.status().last_result, "invalid_ke");
}

}  // namespace
}  // namespace ikelb::ike
