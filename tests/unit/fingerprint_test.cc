#include "fingerprint.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

#include "maglev.h"

namespace ikelb {
namespace {

constexpr uint32_t kM = 1009;

struct Node {
  std::vector<FingerprintMember> members;
  std::vector<uint32_t> table;
};

// A node's table for gateways (name, address, weight), with ids given in `ids` order: two nodes
// with different reload histories hold the same gateways under different ids.
Node node(const std::vector<FingerprintMember>& gateways, const std::vector<uint32_t>& ids) {
  Node n;
  std::vector<MaglevBackend> backends;
  for (size_t i = 0; i < gateways.size(); i++) {
    FingerprintMember m = gateways[i];
    m.id = ids[i];
    n.members.push_back(m);
    backends.push_back({m.name, m.id, m.weight});
  }
  n.table = build_maglev_table(backends, kM);
  return n;
}

uint64_t fp(const Node& n) {
  return table_fingerprint(kM, n.members, n.table);
}

const std::vector<FingerprintMember> kGateways = {
    {"gw1", "10.0.1.2", 100, 0}, {"gw2", "10.0.2.2", 100, 0}, {"gw3", "10.0.3.2", 50, 0}};

TEST(Fingerprint, SameInputsOnTwoNodesAgreeWhateverTheIdsAndOrder) {
  Node a = node(kGateways, {0, 1, 2});
  std::vector<FingerprintMember> reversed(kGateways.rbegin(), kGateways.rend());
  Node b = node(reversed, {7, 3, 9});  // gw3=7, gw2=3, gw1=9
  EXPECT_NE(a.table, b.table);         // the slots hold node-local ids ...
  EXPECT_EQ(fp(a), fp(b));             // ... but send every client to the same gateway
}

TEST(Fingerprint, EveryInputThatMovesClientsChangesIt) {
  const uint64_t base = fp(node(kGateways, {0, 1, 2}));
  auto changed = [&](auto edit) {
    auto g = kGateways;
    edit(g);
    std::vector<uint32_t> ids;
    for (uint32_t i = 0; i < g.size(); i++) ids.push_back(i);
    return fp(node(g, ids));
  };
  EXPECT_NE(base, changed([](auto& g) { g[2].weight = 100; }));
  EXPECT_NE(base, changed([](auto& g) { g[1].address = "10.0.2.3"; }));
  EXPECT_NE(base, changed([](auto& g) { g[0].name = "gw0"; }));
  EXPECT_NE(base, changed([](auto& g) { g.pop_back(); }));  // gw3 down on this node only
  EXPECT_EQ(base, changed([](auto&) {}));
}

TEST(Fingerprint, CoversTheTableItself) {
  Node a = node(kGateways, {0, 1, 2});
  const uint64_t base = fp(a);
  std::swap(a.table[0], a.table[kM - 1]);
  ASSERT_NE(a.table[0], a.table[kM - 1]);
  EXPECT_NE(base, fp(a));
  // And the table size.
  Node b = node(kGateways, {0, 1, 2});
  EXPECT_NE(base, table_fingerprint(kM + 2, b.members, b.table));
}

TEST(Fingerprint, EmptyTableHasAFingerprintAndForeignIdsAreRejected) {
  std::vector<uint32_t> empty(kM, kMaglevNoBackend);
  EXPECT_NE(table_fingerprint(kM, {}, empty), fp(node(kGateways, {0, 1, 2})));
  Node a = node(kGateways, {0, 1, 2});
  a.table[5] = 42;
  EXPECT_THROW(fp(a), std::invalid_argument);
}

// Pinned value: fingerprint v1 is a cross-version contract (a fleet mid-upgrade must agree), so
// its definition cannot drift silently.
TEST(Fingerprint, GoldenValueAndPresentation) {
  const uint64_t v = fp(node(kGateways, {0, 1, 2}));
  EXPECT_EQ(fingerprint_hex(v).size(), 16u);
  EXPECT_EQ(fingerprint_hex(0xabcdefULL), "0000000000abcdef");
  EXPECT_EQ(fingerprint_metric_value(0x0123456789abcdefULL), double(0x0123456789abULL));
  EXPECT_EQ(fingerprint_hex(v), "6eda203bffb69084");
}

}  // namespace
}  // namespace ikelb
