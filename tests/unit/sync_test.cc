// The peer sync's sender, receiver and snapshot (lb/ha/sync.h) with a fake clock, fake datagram
// transport and fake affinity store: two or three nodes wired together in memory.
#include "sync.h"

#include <gtest/gtest.h>

#include "ikelb_abi.h"

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace ikelb {
namespace {

const std::vector<uint8_t> kKey(32, 0x5a);
constexpr uint64_t kMs = 1'000'000;

struct FakeClock : SyncClock {
  uint64_t unix = 1'700'000'000'000, mono = 1'000'000 * kMs;
  uint64_t unix_ms() const override { return unix; }
  uint64_t mono_ns() const override { return mono; }
  void advance(uint64_t ms) {
    unix += ms;
    mono += ms * kMs;
  }
};

struct Sent {
  SyncEndpoint to;
  std::vector<uint8_t> bytes;
};

struct FakeNet : SyncSender {
  std::vector<Sent> sent;
  bool up = true;
  bool send(const SyncEndpoint& to, std::span<const uint8_t> d) override {
    if (!up) return false;
    sent.push_back({to, {d.begin(), d.end()}});
    return true;
  }
};

// Virtual server 1 "vpn" with gw1 (id 1) and gw2 (id 2) serving, gw3 (id 3) down.
struct FakeStore : SyncStore {
  std::map<std::pair<uint32_t, std::string>, SyncEntry> entries;
  int writes = 0;
  bool walk(Cursor& c, uint32_t max, const std::function<void(const SyncEntry&)>& visit) override {
    size_t at = 0;
    if (c.started) std::memcpy(&at, c.token.data(), sizeof at);
    auto it = entries.begin();
    std::advance(it, std::min(at, entries.size()));
    for (uint32_t n = 0; n < max && it != entries.end(); n++, at++, ++it) visit(it->second);
    c.token.resize(sizeof at);
    std::memcpy(c.token.data(), &at, sizeof at);
    c.started = true;
    return it != entries.end();
  }
  std::optional<SyncEntry> find(uint32_t vs, const IpAddress& client) override {
    auto it = entries.find({vs, client.str()});
    if (it == entries.end()) return std::nullopt;
    return it->second;
  }
  bool write(const SyncEntry& e, bool only_if_absent) override {
    writes++;
    auto key = std::make_pair(e.vs_id, e.client.str());
    if (only_if_absent && entries.count(key)) return false;
    entries[key] = e;
    return true;
  }
  std::optional<std::pair<std::string, std::string>> names(uint32_t vs, uint32_t b) override {
    if (vs != 1 || b < 1 || b > 3) return std::nullopt;
    return std::make_pair(std::string("vpn"), "gw" + std::to_string(b));
  }
  std::optional<SyncTarget> target(const std::string& vs, const std::string& b) override {
    if (vs != "vpn") return std::nullopt;
    for (uint32_t id = 1; id <= 3; id++)
      if (b == "gw" + std::to_string(id)) return SyncTarget{1, id, id != 3};
    return std::nullopt;
  }
  void put(const std::string& client, uint32_t backend, uint64_t last_seen_ns) {
    SyncEntry e;
    e.vs_id = 1;
    e.backend_id = backend;
    e.client = IpAddress::must_parse(client);
    e.last_seen_ns = last_seen_ns;
    entries[{1, client}] = e;
  }
  // Learned SPI owners by (kind, SPI).
  std::map<std::pair<uint8_t, uint64_t>, SyncSpiEntry> spis;
  bool walk_spi(Cursor& c, uint32_t max,
                const std::function<void(const SyncSpiEntry&)>& visit) override {
    size_t at = 0;
    if (c.started) std::memcpy(&at, c.token.data(), sizeof at);
    auto it = spis.begin();
    std::advance(it, std::min(at, spis.size()));
    for (uint32_t n = 0; n < max && it != spis.end(); n++, at++, ++it) visit(it->second);
    c.token.resize(sizeof at);
    std::memcpy(c.token.data(), &at, sizeof at);
    c.started = true;
    return it != spis.end();
  }
  bool add_spi(const SyncSpiEntry& e) override {
    return spis.emplace(std::make_pair(e.kind, e.spi), e).second;
  }
  void put_spi(uint8_t kind, uint64_t spi, uint32_t backend, uint64_t last_seen_ns) {
    spis[{kind, spi}] = SyncSpiEntry{1, backend, kind, spi, last_seen_ns};
  }
  uint32_t owner_of(uint8_t kind, uint64_t spi) {
    auto it = spis.find({kind, spi});
    return it == spis.end() ? 0 : it->second.backend_id;
  }

  uint32_t backend_of(const std::string& client) {
    auto it = entries.find({1, client});
    return it == entries.end() ? 0 : it->second.backend_id;
  }
};

SyncEndpoint ep(int k, uint16_t port = 7946) {
  return {IpAddress::must_parse("10.255." + std::to_string(k) + ".2"), port};
}

struct Node {
  int k;
  FakeNet net;
  FakeStore store;
  std::unique_ptr<SyncNode> sync;
};

class SyncTest : public ::testing::Test {
 protected:
  SyncSettings settings(int k, int nodes) {
    SyncSettings s;
    s.node_id = static_cast<uint32_t>(k);
    for (int p = 1; p <= nodes; p++)
      if (p != k) s.peers.push_back(ep(p));
    s.key = kKey;
    s.interval_ms = 1000;
    s.snapshot_on_join = false;
    return s;
  }

  Node& add(int k, int nodes = 2, std::function<void(SyncSettings&)> edit = {}) {
    auto n = std::make_unique<Node>();
    n->k = k;
    SyncSettings s = settings(k, nodes);
    if (edit) edit(s);
    n->sync = std::make_unique<SyncNode>(s, clock_, n->net, n->store);
    Node& ref = *n;
    nodes_[k] = std::move(n);
    return ref;
  }

  static void round(Node& n) {
    n.sync->begin_round();
    for (int i = 0; i < 1000 && n.sync->step(); i++) {
    }
  }

  // Delivers everything `from` sent to the addressed nodes, as coming from `from`'s endpoint.
  size_t deliver(Node& from, std::optional<SyncEndpoint> source = {}) {
    size_t n = 0;
    for (const Sent& s : from.net.sent)
      for (auto& [k, node] : nodes_)
        if (s.to == ep(k)) {
          node->sync->receive(source ? *source : ep(from.k), s.bytes);
          n++;
        }
    from.net.sent.clear();
    return n;
  }

  FakeClock clock_;
  std::map<int, std::unique_ptr<Node>> nodes_;
};

TEST_F(SyncTest, NewEntriesReachEveryPeerOnceAndAreNotEchoed) {
  Node& a = add(1, 3);
  Node& b = add(2, 3);
  Node& c = add(3, 3);
  for (Node* n : {&a, &b, &c}) n->sync->start();
  clock_.advance(10);
  a.store.put("100.64.0.1", 1, clock_.mono);
  a.store.put("2001:db8::1", 2, clock_.mono);
  clock_.advance(90);
  round(a);
  ASSERT_EQ(a.net.sent.size(), 2u);  // one datagram to each peer
  EXPECT_EQ(a.sync->stats().records_sent, 2u);
  EXPECT_EQ(deliver(a), 2u);
  for (Node* n : {&b, &c}) {
    EXPECT_EQ(n->sync->stats().records_received, 2u);
    EXPECT_EQ(n->sync->stats().merged, 2u);
    EXPECT_EQ(n->store.backend_of("100.64.0.1"), 1u);
    EXPECT_EQ(n->store.backend_of("2001:db8::1"), 2u);
    // The peer's age (90 ms) is kept: last seen no later than 90 ms ago.
    EXPECT_LE(n->store.entries.at({1, "100.64.0.1"}).last_seen_ns, clock_.mono - 90 * kMs);
  }
  // Nothing new: A sends nothing; B and C do not send back what they received.
  clock_.advance(1000);
  for (Node* n : {&a, &b, &c}) round(*n);
  clock_.advance(1000);
  for (Node* n : {&a, &b, &c}) round(*n);
  for (Node* n : {&a, &b, &c}) EXPECT_TRUE(n->net.sent.empty()) << n->k;
  // A refresh by the data path is sent again.
  clock_.advance(1);
  a.store.put("100.64.0.1", 1, clock_.mono);
  clock_.advance(1000);
  round(a);
  EXPECT_EQ(a.sync->stats().records_sent, 3u);
  EXPECT_EQ(a.net.sent.size(), 2u);
}

TEST_F(SyncTest, RefusesWrongPeerForgedMacOwnIdAndReplays) {
  Node& a = add(1);
  Node& b = add(2);
  a.store.put("100.64.0.1", 1, clock_.mono + kMs);
  clock_.advance(5);
  round(a);
  ASSERT_EQ(a.net.sent.size(), 1u);
  const std::vector<uint8_t> good = a.net.sent[0].bytes;

  // Right bytes, wrong source port, then an unknown address.
  deliver(a, ep(1, 7947));
  b.sync->receive(ep(9), good);
  EXPECT_EQ(b.sync->stats().refused.at("unknown_peer"), 2u);
  EXPECT_TRUE(b.store.entries.empty());

  // Forged: signed with another key; altered: one bit of the record flipped.
  Node& forger = add(5, 2, [](SyncSettings& s) { s.key.assign(32, 0x11); });
  forger.store.put("100.64.0.1", 2, clock_.mono + kMs);
  clock_.advance(5);
  round(forger);
  ASSERT_FALSE(forger.net.sent.empty());
  b.sync->receive(ep(1), forger.net.sent[0].bytes);
  auto altered = good;
  altered[kSyncHeaderBytes + 5] ^= 1;
  b.sync->receive(ep(1), altered);
  EXPECT_EQ(b.sync->stats().refused.at("bad_mac"), 2u);
  b.sync->receive(ep(1), std::vector<uint8_t>(10, 0));
  EXPECT_EQ(b.sync->stats().refused.at("malformed"), 1u);
  EXPECT_TRUE(b.store.entries.empty());

  // A datagram with B's own node id (a misconfigured twin holding the key).
  Node& twin = add(2 + 100, 2, [](SyncSettings& s) { s.node_id = 2; });
  twin.store.put("100.64.0.9", 1, clock_.mono + kMs);
  clock_.advance(5);
  round(twin);
  ASSERT_FALSE(twin.net.sent.empty());
  b.sync->receive(ep(1), twin.net.sent[0].bytes);
  EXPECT_EQ(b.sync->stats().refused.at("own_node"), 1u);
  EXPECT_TRUE(b.store.entries.empty());

  // The genuine datagram once, then its replay.
  b.sync->receive(ep(1), good);
  EXPECT_EQ(b.sync->stats().merged, 1u);
  b.store.entries.clear();
  b.sync->receive(ep(1), good);
  EXPECT_EQ(b.sync->stats().refused.at("replay"), 1u);
  EXPECT_TRUE(b.store.entries.empty());
  EXPECT_EQ(b.sync->stats().datagrams_received, 8u);
}

TEST_F(SyncTest, NeverOverwritesAFresherLocalEntry) {
  Node& a = add(1);
  Node& b = add(2);
  clock_.advance(1);
  a.store.put("100.64.0.1", 1, clock_.mono);  // will be 500 ms old when sent
  clock_.advance(400);
  b.store.put("100.64.0.1", 2, clock_.mono);  // 100 ms old then: fresher
  clock_.advance(100);
  round(a);
  deliver(a);
  EXPECT_EQ(b.sync->stats().kept_local, 1u);
  EXPECT_EQ(b.store.backend_of("100.64.0.1"), 2u);

  // Now A has seen the client more recently than B: B takes A's gateway.
  clock_.advance(1);
  a.store.put("100.64.0.1", 1, clock_.mono);
  clock_.advance(1000);
  round(a);
  deliver(a);
  EXPECT_EQ(b.sync->stats().merged, 1u);
  EXPECT_EQ(b.store.backend_of("100.64.0.1"), 1u);
}

TEST_F(SyncTest, UnknownTargetsAndNonServingBackendsAreIgnoredAndCounted) {
  Node& a = add(1);
  Node& b = add(2);
  a.store.put("100.64.0.1", 3, clock_.mono + kMs);  // gw3: down on B
  SyncEntry other;
  other.vs_id = 1;
  other.backend_id = 7;  // no name on A: not sent, counted
  other.client = IpAddress::must_parse("100.64.0.2");
  other.last_seen_ns = clock_.mono + kMs;
  a.store.entries[{1, "100.64.0.2"}] = other;
  clock_.advance(10);
  round(a);
  EXPECT_EQ(a.sync->stats().dropped.at("unnamed"), 1u);
  deliver(a);
  EXPECT_EQ(b.sync->stats().dropped.at("not_serving"), 1u);
  EXPECT_TRUE(b.store.entries.empty());

  // A record naming a virtual server B does not have (a peer with a newer config).
  SyncAffinity r;
  r.vs = "vpn-new";
  r.backend = "gw1";
  r.client = IpAddress::must_parse("100.64.0.3");
  auto d = encode_sync({.sender = 1, .seq = 1ull << 60, .sent_ms = clock_.unix}, {r}, kKey);
  b.sync->receive(ep(1), d[0]);
  r.vs = "vpn";
  r.backend = "gw9";
  d = encode_sync({.sender = 1, .seq = (1ull << 60) + 1, .sent_ms = clock_.unix}, {r}, kKey);
  b.sync->receive(ep(1), d[0]);
  EXPECT_EQ(b.sync->stats().dropped.at("unknown_target"), 2u);
  EXPECT_TRUE(b.store.entries.empty());
}

TEST_F(SyncTest, QueueDropsTheOldestWhenFullAndTheRateCapDefers) {
  Node& a = add(1, 2, [](SyncSettings& s) {
    s.max_records_per_second = 2;
    s.queue_records = 3;
  });
  add(2);
  for (int i = 1; i <= 5; i++) a.store.put("100.64.0." + std::to_string(i), 1, clock_.mono + kMs);
  clock_.advance(1000);  // a budget of 2 records
  round(a);
  EXPECT_EQ(a.sync->stats().dropped.at("queue_full"), 2u);  // .1 and .2, the oldest queued
  EXPECT_EQ(a.sync->stats().records_sent, 2u);
  EXPECT_EQ(a.sync->stats().queue_depth, 1u);
  deliver(a);
  Node& b = *nodes_[2];
  EXPECT_EQ(b.store.backend_of("100.64.0.1"), 0u);
  EXPECT_EQ(b.store.backend_of("100.64.0.3"), 1u);
  EXPECT_EQ(b.store.backend_of("100.64.0.4"), 1u);
  clock_.advance(500);  // 1 more record
  round(a);
  EXPECT_EQ(a.sync->stats().records_sent, 3u);
  EXPECT_EQ(a.sync->stats().queue_depth, 0u);
  deliver(a);
  EXPECT_EQ(b.store.backend_of("100.64.0.5"), 1u);
}

TEST_F(SyncTest, RateCapOverSeveralRounds) {
  Node& a = add(1, 2, [](SyncSettings& s) { s.max_records_per_second = 40; });
  for (int i = 1; i <= 100; i++) a.store.put("100.64.1." + std::to_string(i), 1, clock_.mono + kMs);
  std::vector<uint64_t> sent;
  for (int r = 0; r < 4; r++) {
    clock_.advance(1000);
    round(a);
    sent.push_back(a.sync->stats().records_sent);
  }
  EXPECT_EQ(sent, (std::vector<uint64_t>{40, 80, 100, 100}));
  EXPECT_FALSE(a.sync->stats().dropped.count("queue_full"));
}

TEST_F(SyncTest, ADeadPeerCostsNothing) {
  Node& a = add(1);
  a.net.up = false;
  for (int r = 0; r < 5; r++) {
    for (int i = 1; i <= 10; i++)
      a.store.put("100.64.2." + std::to_string(i), 1, clock_.mono + kMs);
    clock_.advance(1000);
    round(a);
  }
  EXPECT_EQ(a.sync->stats().records_sent, 50u);
  EXPECT_EQ(a.sync->stats().send_errors, 5u);
  EXPECT_EQ(a.sync->stats().queue_depth, 0u);  // nothing kept for the dead peer
}

// A provisional entry (only IKE_SA_INIT seen, under an IKE_SA_INIT limit) stays on its node, in
// rounds and in snapshots, until the data path confirmed it and traffic refreshed it.
TEST_F(SyncTest, ProvisionalEntriesAreSentOnlyOnceConfirmed) {
  Node& a = add(1, 2);
  Node& b = add(2, 2);
  for (Node* n : {&a, &b}) n->sync->start();
  clock_.advance(10);
  a.store.put("100.64.0.9", 1, clock_.mono);
  SyncEntry& e = a.store.entries.at({1, "100.64.0.9"});
  e.flags = IKELB_AFFINITY_PROVISIONAL;
  clock_.advance(90);
  round(a);
  EXPECT_EQ(a.sync->stats().records_sent, 0u);
  EXPECT_TRUE(a.net.sent.empty());
  clock_.advance(10);
  e.flags = 0;  // the gateway answered IKE_SA_INIT; then the client's next packet
  e.last_seen_ns = clock_.mono;
  clock_.advance(1000);
  round(a);
  EXPECT_EQ(a.sync->stats().records_sent, 1u);
  deliver(a);
  EXPECT_EQ(b.store.backend_of("100.64.0.9"), 1u);
  EXPECT_EQ(b.store.entries.at({1, "100.64.0.9"}).flags, 0u);
}

TEST_F(SyncTest, IdleEntriesAreNotSent) {
  Node& a = add(1, 2, [](SyncSettings& s) { s.idle_ns = 2000 * kMs; });
  a.store.put("100.64.0.1", 1, clock_.mono + kMs);
  clock_.advance(3000);  // idle by the time the walk sees it
  round(a);
  EXPECT_EQ(a.sync->stats().records_sent, 0u);
}

TEST_F(SyncTest, AJoiningNodeWithAnEmptyTableHoldsUntilTheSnapshotEnds) {
  Node& a = add(1);
  for (int i = 1; i <= 30; i++) a.store.put("100.64.3." + std::to_string(i), 2, clock_.mono);
  a.sync->start();
  EXPECT_FALSE(a.sync->holding());
  EXPECT_EQ(a.sync->stats().snapshot, SyncSnapshot::kNotNeeded);

  clock_.advance(5000);
  Node& b = add(2, 2, [](SyncSettings& s) {
    s.snapshot_on_join = true;
    s.max_records_per_second = 20;  // the snapshot takes two rounds
    s.walk_batch = 8;
  });
  a.sync->configure([&] {
    SyncSettings s = a.sync->settings();
    s.max_records_per_second = 20;
    s.walk_batch = 8;
    return s;
  }());
  int done = 0;
  b.sync->on_snapshot_done = [&] { done++; };
  b.sync->start();
  EXPECT_TRUE(b.sync->holding());
  EXPECT_EQ(b.sync->stats().snapshot, SyncSnapshot::kWaiting);
  ASSERT_EQ(b.net.sent.size(), 1u);  // the request
  deliver(b);

  clock_.advance(1000);
  round(a);
  deliver(a);
  EXPECT_EQ(b.store.entries.size(), 20u);
  EXPECT_TRUE(b.sync->holding());  // not ended yet
  clock_.advance(1000);
  round(a);
  deliver(a);
  EXPECT_EQ(b.store.entries.size(), 30u);
  EXPECT_FALSE(b.sync->holding());
  EXPECT_EQ(done, 1);
  EXPECT_EQ(b.sync->stats().snapshot, SyncSnapshot::kReceived);
  EXPECT_EQ(b.sync->stats().snapshot_records, 30u);
  EXPECT_EQ(b.sync->stats().snapshot_ms, 2000u);
  EXPECT_EQ(a.sync->stats().snapshots_served, 1u);
  EXPECT_EQ(b.store.backend_of("100.64.3.7"), 2u);
  // Records that came with the snapshot are not sent back.
  clock_.advance(1000);
  round(b);
  clock_.advance(1000);
  round(b);
  EXPECT_TRUE(b.net.sent.empty());
}

TEST_F(SyncTest, NoAnswerEndsTheWaitAtTheTimeoutAndTheRequestIsRepeated) {
  Node& b = add(2, 2, [](SyncSettings& s) {
    s.snapshot_on_join = true;
    s.snapshot_timeout_ms = 2500;
  });
  int done = 0;
  b.sync->on_snapshot_done = [&] { done++; };
  b.sync->start();
  EXPECT_TRUE(b.sync->holding());
  for (int r = 0; r < 2; r++) {
    clock_.advance(1000);
    round(b);
  }
  EXPECT_EQ(b.net.sent.size(), 3u);  // the request, repeated each round
  EXPECT_TRUE(b.sync->holding());
  clock_.advance(500);
  EXPECT_FALSE(b.sync->holding());
  EXPECT_EQ(b.sync->stats().snapshot, SyncSnapshot::kTimedOut);
  EXPECT_EQ(done, 1);
}

TEST_F(SyncTest, ANodeWaitingForItsOwnSnapshotAnswersNobody) {
  Node& a = add(1, 2, [](SyncSettings& s) { s.snapshot_on_join = true; });
  Node& b = add(2, 2, [](SyncSettings& s) { s.snapshot_on_join = true; });
  a.sync->start();
  b.sync->start();
  deliver(a);
  deliver(b);
  clock_.advance(1000);
  round(a);
  round(b);
  deliver(a);
  deliver(b);
  EXPECT_TRUE(a.sync->holding());
  EXPECT_TRUE(b.sync->holding());
  EXPECT_EQ(a.sync->stats().snapshots_served, 0u);
}

TEST_F(SyncTest, ANonEmptyTableNeedsNoSnapshot) {
  Node& b = add(2, 2, [](SyncSettings& s) { s.snapshot_on_join = true; });
  b.store.put("100.64.0.1", 1, clock_.mono);
  b.sync->start();
  EXPECT_FALSE(b.sync->holding());
  EXPECT_TRUE(b.net.sent.empty());
}

TEST_F(SyncTest, LearnedSpiOwnersAreSyncedAndNeverOverwriteAKnownOwner) {
  Node& a = add(1, 2, [](SyncSettings& s) { s.walk_batch = 2; });
  Node& b = add(2);
  clock_.advance(1);
  a.store.put_spi(IKELB_SPI_IKE, 0x1111222233334444ull, 1, clock_.mono);
  a.store.put_spi(IKELB_SPI_ESP, 0xc0000001u, 2, clock_.mono);
  a.store.put_spi(IKELB_SPI_ESP, 0xc0000002u, 3, clock_.mono);  // gw3: down on B
  a.store.put_spi(IKELB_SPI_ESP, 0xc0000003u, 1, clock_.mono);  // B knows another owner
  a.store.put("100.64.0.1", 1, clock_.mono);
  b.store.put_spi(IKELB_SPI_ESP, 0xc0000003u, 2, clock_.mono - kMs);  // older, still never replaced
  clock_.advance(100);
  round(a);
  ASSERT_EQ(a.net.sent.size(), 1u);  // affinity and SPI records in one datagram
  EXPECT_EQ(a.sync->stats().records_sent, 5u);
  deliver(a);
  const SyncStats& st = b.sync->stats();
  EXPECT_EQ(st.records_received, 5u);
  EXPECT_EQ(st.spi_merged, 2u);
  EXPECT_EQ(st.merged, 3u);  // two SPI owners and the affinity entry
  EXPECT_EQ(st.kept_local, 1u);
  EXPECT_EQ(st.dropped.at("not_serving"), 1u);
  EXPECT_EQ(b.store.owner_of(IKELB_SPI_IKE, 0x1111222233334444ull), 1u);
  EXPECT_EQ(b.store.owner_of(IKELB_SPI_ESP, 0xc0000001u), 2u);
  EXPECT_EQ(b.store.owner_of(IKELB_SPI_ESP, 0xc0000002u), 0u);
  EXPECT_EQ(b.store.owner_of(IKELB_SPI_ESP, 0xc0000003u), 2u);
  // Stored as seen 100 ms ago, and not sent back.
  EXPECT_LE(b.store.spis.at({IKELB_SPI_IKE, 0x1111222233334444ull}).last_seen_ns,
            clock_.mono - 100 * kMs);
  clock_.advance(1000);
  round(b);
  clock_.advance(1000);
  round(b);
  EXPECT_TRUE(b.net.sent.empty());
}

TEST_F(SyncTest, TheSnapshotCarriesLearnedSpiOwnersBeforeItsEnd) {
  Node& a = add(1);
  a.store.put("100.64.0.1", 1, clock_.mono);
  for (uint32_t i = 0; i < 5; i++) a.store.put_spi(IKELB_SPI_ESP, 0xc0000000u + i, 1, clock_.mono);
  a.sync->start();
  Node& b = add(2, 2, [](SyncSettings& s) { s.snapshot_on_join = true; });
  b.sync->start();
  deliver(b);
  clock_.advance(1000);
  round(a);
  deliver(a);
  EXPECT_FALSE(b.sync->holding());
  EXPECT_EQ(b.sync->stats().snapshot, SyncSnapshot::kReceived);
  EXPECT_EQ(b.store.entries.size(), 1u);
  EXPECT_EQ(b.store.spis.size(), 5u);
  EXPECT_EQ(b.sync->stats().snapshot_records, 6u);
}

}  // namespace
}  // namespace ikelb
