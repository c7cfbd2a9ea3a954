// The control logic driven through a fake map writer and a fake clock: ids, table halves,
// operator state against config state, health, drain progress, restarts (adopt) and refusals.
#include "controller.h"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "config.h"
#include "fake_maps.h"

namespace ikelb {
namespace {

using namespace std::chrono_literals;
using test::FakeClock;
using test::FakeMaps;

BackendConfig backend(const std::string& name, const std::string& addr,
                      std::optional<ConfiguredState> state = std::nullopt) {
  BackendConfig b;
  b.name = name;
  b.address = IpAddress::must_parse(addr);
  b.state = state;
  return b;
}

Config config(int backends = 3, uint32_t table = 65537) {
  Config c;
  c.interfaces = {"eth0"};
  VirtualServerConfig v;
  v.name = "vpn";
  v.address = IpAddress::must_parse("203.0.113.10");
  v.maglev_table_size = table;
  for (int i = 1; i <= backends; i++)
    v.backends.push_back(backend("gw" + std::to_string(i), "10.0.0.1" + std::to_string(i)));
  c.virtual_servers.push_back(v);
  return c;
}

Config dual() {
  Config c = config();
  VirtualServerConfig v6;
  v6.name = "vpn6";
  v6.address = IpAddress::must_parse("2001:db8:f::10");
  v6.backends = {backend("gw1", "fd00::11"), backend("gw2", "fd00::12")};
  c.virtual_servers.push_back(v6);
  return c;
}

size_t count(const std::vector<uint32_t>& t, uint32_t id) {
  return static_cast<size_t>(std::count(t.begin(), t.end(), id));
}

const BackendView& view(const std::vector<BackendView>& all, const std::string& name) {
  for (const auto& v : all)
    if (v.name == name) return v;
  throw std::runtime_error("no view for " + name);
}

struct ControllerTest : ::testing::Test {
  FakeMaps maps;
  FakeClock clock;
  Controller ctl{maps, clock};
  uint32_t id(const std::string& ref) { return ctl.backend_id(ref).value(); }
};

TEST(EffectiveState, OperatorConfigAndHealth) {
  struct Row {
    uint8_t op, cfg;
    bool healthy;
    uint8_t want;
  };
  for (const Row& r : std::vector<Row>{
           {IKELB_OPERATOR_NONE, IKELB_CONFIG_UNSET, true, IKELB_BACKEND_ACTIVE},
           {IKELB_OPERATOR_NONE, IKELB_CONFIG_UNSET, false, IKELB_BACKEND_DOWN},
           {IKELB_OPERATOR_NONE, IKELB_CONFIG_DRAINING, true, IKELB_BACKEND_DRAINING},
           {IKELB_OPERATOR_NONE, IKELB_CONFIG_DRAINING, false, IKELB_BACKEND_DOWN},
           {IKELB_OPERATOR_NONE, IKELB_CONFIG_DISABLED, false, IKELB_BACKEND_DISABLED},
           {IKELB_OPERATOR_DRAIN, IKELB_CONFIG_ACTIVE, true, IKELB_BACKEND_DRAINING},
           {IKELB_OPERATOR_DISABLE, IKELB_CONFIG_UNSET, true, IKELB_BACKEND_DISABLED},
           {IKELB_OPERATOR_ENABLE, IKELB_CONFIG_DISABLED, true, IKELB_BACKEND_ACTIVE},
           {IKELB_OPERATOR_ENABLE, IKELB_CONFIG_DISABLED, false, IKELB_BACKEND_DOWN},
       })
    EXPECT_EQ(effective_state(r.op, r.cfg, r.healthy), r.want)
        << int(r.op) << " " << int(r.cfg) << " " << r.healthy;
}

TEST(AffinityLive, IdleTimeoutAndEntriesRefreshedAfterTheClockWasRead) {
  constexpr uint64_t kSecond = 1'000'000'000, now = 100 * kSecond, idle = 4 * kSecond;
  EXPECT_TRUE(affinity_live(now - idle, now, idle));
  EXPECT_FALSE(affinity_live(now - idle - 1, now, idle));
  EXPECT_TRUE(affinity_live(0, now, 0)) << "idle 0: entries never expire";
  // The data path refreshed it between the scan reading the clock and reading the entry: an
  // unsigned `now - last_seen` would wrap and count a live client as gone (a drain would end
  // while it still sends).
  EXPECT_TRUE(affinity_live(now + 1, now, idle));
  EXPECT_TRUE(affinity_live(now + kSecond, now, idle));
}

TEST_F(ControllerTest, FirstApplyWritesEverything) {
  ASSERT_EQ(ctl.apply(config()), std::vector<std::string>{});
  ASSERT_EQ(maps.vs.size(), 1u);
  auto table = maps.table(0);
  for (uint32_t b = 0; b < 3; b++) {
    EXPECT_EQ(maps.state(b), IKELB_BACKEND_ACTIVE);
    EXPECT_NEAR(count(table, b), 65537 / 3, 1);
  }
  IpAddress vip = IpAddress::must_parse("203.0.113.10");
  std::set<ServiceKey> want = {{vip, IPPROTO_UDP, 500},
                               {vip, IPPROTO_UDP, 4500},
                               {vip, IPPROTO_UDP, 0},
                               {vip, IPPROTO_ESP, 0}};
  std::set<ServiceKey> got;
  for (const auto& [k, v] : maps.services) got.insert(k);
  EXPECT_EQ(got, want);
  ASSERT_EQ(maps.reverse.size(), 3u);
  EXPECT_EQ(maps.reverse[1].first, IpAddress::must_parse("10.0.0.12"));
  EXPECT_EQ(maps.reverse[1].second.backend_id, 1u);
  EXPECT_EQ(maps.reverse[1].second.vip.u32[0], vip.addr.u32[0]);
  EXPECT_EQ(maps.settings.affinity_idle_ns, 3600ull * 1'000'000'000ull);
  EXPECT_STREQ(maps.backend_meta[2].name, "gw3");
  EXPECT_STREQ(maps.vs_meta[0].name, "vpn");
}

TEST(InitLimitEntry, RatesBecomeGcraIntervalsAndTolerances) {
  IkeInitLimit lim;
  lim.per_source = RateLimit{5, 10};  // 200 ms apart, 10 at once
  lim.total = RateLimit{2000, 1};     // 500 us apart, no burst
  lim.ipv6_prefix_len = 56;
  ikelb_init_limit e = init_limit_entry(lim);
  EXPECT_EQ(e.source_interval_ns, 200'000'000u);
  EXPECT_EQ(e.source_tolerance_ns, 9 * 200'000'000ull);
  EXPECT_EQ(e.total_interval_ns, 500'000u);
  EXPECT_EQ(e.total_tolerance_ns, 0u);
  EXPECT_EQ(e.ipv6_prefix_len, 56);
  lim.total.reset();
  EXPECT_EQ(init_limit_entry(lim).total_interval_ns, 0u) << "no total limit";
  ikelb_init_limit none = init_limit_entry(std::nullopt);
  EXPECT_EQ(none.source_interval_ns | none.total_interval_ns, 0u);
}

TEST_F(ControllerTest, EdgeSettingsAndLimitsFollowTheConfigAndLeaveWithTheirServer) {
  Config c = dual();
  c.reverse_path_check = ReversePathCheck::kOff;
  IkeInitLimit lim;
  lim.per_source = RateLimit{10, 20};
  c.virtual_servers[1].ike_sa_init_limit = lim;
  ASSERT_EQ(ctl.apply(c), std::vector<std::string>{});
  EXPECT_EQ(maps.edge.reverse_path, uint32_t{IKELB_RP_OFF});
  EXPECT_EQ(maps.init_limits[1].source_interval_ns, 100'000'000u);
  EXPECT_EQ(maps.init_limits[0].source_interval_ns | maps.init_limits[0].total_interval_ns, 0u);
  // The IPv6 server leaves: its limit is cleared, so a later server with its id starts unlimited.
  ASSERT_EQ(ctl.apply(config()), std::vector<std::string>{});
  EXPECT_EQ(maps.edge.reverse_path, uint32_t{IKELB_RP_STRICT});
  EXPECT_EQ(maps.init_limits[1].source_interval_ns, 0u);
}

TEST_F(ControllerTest, ReloadWritesTheInactiveHalfThenSwitches) {
  ctl.apply(config());
  auto before = maps.table(0);
  maps.ops.clear();
  ctl.apply(config());
  // The other half is written first, then one update switches the virtual server to it.
  EXPECT_EQ(maps.ops, (std::vector<std::string>{"table@65537", "vs0@65537"}));
  EXPECT_EQ(maps.table(0), before);
  maps.ops.clear();
  ctl.apply(config());
  EXPECT_EQ(maps.ops, (std::vector<std::string>{"table@0", "vs0@0"}));
}

TEST_F(ControllerTest, AddingABackendKeepsIdsAndTakesAboutAQuarter) {
  ctl.apply(config(3));
  auto before = maps.table(0);
  ctl.apply(config(4));
  EXPECT_EQ(id("gw1"), 0u);
  EXPECT_EQ(id("gw3"), 2u);
  EXPECT_EQ(id("gw4"), 3u);
  auto after = maps.table(0);
  EXPECT_NEAR(count(after, 3), 65537 / 4, 1);
  size_t moved = 0;
  for (size_t i = 0; i < after.size(); i++) moved += before[i] != after[i];
  EXPECT_LT(moved, 65537 / 4 + 65537 / 100);
}

TEST_F(ControllerTest, ChangedAddressIsANewBackend) {
  ctl.apply(config());
  Config c = config();
  c.virtual_servers[0].backends[1].address = IpAddress::must_parse("10.0.0.99");
  ctl.apply(c);
  EXPECT_EQ(id("gw2"), 3u);  // a new id: affinity entries for the old address fail over
  EXPECT_EQ(maps.backends[1].state, IKELB_BACKEND_UNUSED);
  EXPECT_EQ(maps.backend_meta[1].name[0], 0);
  EXPECT_EQ(count(maps.table(0), 1), 0u);
  for (const auto& [a, v] : maps.reverse) EXPECT_NE(a, IpAddress::must_parse("10.0.0.12"));
}

TEST_F(ControllerTest, DrainLeavesTheTableKeepsTheStateAndReportsProgress) {
  ctl.apply(config());
  EXPECT_EQ(ctl.act("gw2", OperatorAction::kDrain), "vpn/gw2: draining");
  EXPECT_EQ(maps.state(1), IKELB_BACKEND_DRAINING);
  EXPECT_EQ(count(maps.table(0), 1), 0u);
  EXPECT_EQ(view(ctl.backends(), "gw2").detail, "draining (counting clients)");
  ctl.set_pinned_counts({{1, 12}, {0, 40}});
  EXPECT_EQ(view(ctl.backends(), "gw2").detail, "draining (12 clients)");
  EXPECT_EQ(view(ctl.backends(), "gw2").state, "draining");
  ctl.set_pinned_counts({{0, 40}});
  EXPECT_EQ(view(ctl.backends(), "gw2").state, "drained");
  EXPECT_EQ(view(ctl.backends(), "gw2").operator_state, "drain");
  EXPECT_EQ(view(ctl.backends(), "gw1").pinned_clients, 40u);

  EXPECT_EQ(ctl.act("vpn/gw2", OperatorAction::kUndrain), "vpn/gw2: active");
  EXPECT_NEAR(count(maps.table(0), 1), 65537 / 3, 1);
  EXPECT_EQ(view(ctl.backends(), "gw2").operator_state, "none");
}

TEST_F(ControllerTest, DisableAndEnable) {
  ctl.apply(config());
  clock.t += 5s;
  ctl.act("gw3", OperatorAction::kDisable);
  EXPECT_EQ(maps.state(2), IKELB_BACKEND_DISABLED);
  EXPECT_EQ(count(maps.table(0), 2), 0u);
  auto v = view(ctl.backends(), "gw3");
  EXPECT_EQ(v.last_change, clock.t);
  EXPECT_EQ(v.last_cause, "operator: disable");
  EXPECT_THROW(ctl.act("gw3", OperatorAction::kDrain), ControlError);
  ctl.act("gw3", OperatorAction::kEnable);
  EXPECT_EQ(maps.state(2), IKELB_BACKEND_ACTIVE);
}

TEST_F(ControllerTest, RefusalsSayWhy) {
  ctl.apply(dual());
  auto expect_error = [&](const std::string& ref, OperatorAction a, unsigned status,
                          const std::string& text) {
    try {
      ctl.act(ref, a);
      ADD_FAILURE() << ref << " accepted";
    } catch (const ControlError& e) {
      EXPECT_EQ(e.status, status);
      EXPECT_EQ(std::string(e.what()), text);
    }
  };
  expect_error("gw9", OperatorAction::kDrain, 404, "no backend \"gw9\"");
  expect_error("gw1", OperatorAction::kDrain, 409,
               "\"gw1\" is ambiguous: say one of vpn/gw1, vpn6/gw1");
  expect_error("vpn/gw1", OperatorAction::kUndrain, 409, "vpn/gw1 is not draining (active)");
  expect_error("vpn6/gw2", OperatorAction::kEnable, 409, "vpn6/gw2 is not disabled (active)");
  EXPECT_EQ(ctl.act("vpn6/gw1", OperatorAction::kDrain), "vpn6/gw1: draining");
}

TEST_F(ControllerTest, OperatorStateSurvivesReloadButAConfigEditWins) {
  ctl.apply(config());
  ctl.act("gw2", OperatorAction::kDrain);
  ctl.apply(config());
  EXPECT_EQ(maps.state(1), IKELB_BACKEND_DRAINING);
  EXPECT_EQ(count(maps.table(0), 1), 0u);

  Config edited = config();
  edited.virtual_servers[0].backends[1].state = ConfiguredState::kActive;
  ctl.apply(edited);
  EXPECT_EQ(maps.state(1), IKELB_BACKEND_ACTIVE);
  EXPECT_EQ(view(ctl.backends(), "gw2").operator_state, "none");
  EXPECT_EQ(view(ctl.backends(), "gw2").last_cause,
            "config state changed, operator override dropped");
}

TEST_F(ControllerTest, ConfigDrainingCanBeUndrainedByTheOperator) {
  Config c = config();
  c.virtual_servers[0].backends[0].state = ConfiguredState::kDraining;
  ctl.apply(c);
  EXPECT_EQ(maps.state(0), IKELB_BACKEND_DRAINING);
  ctl.act("gw1", OperatorAction::kUndrain);
  EXPECT_EQ(maps.state(0), IKELB_BACKEND_ACTIVE);
  EXPECT_EQ(view(ctl.backends(), "gw1").operator_state, "enable");
  ctl.apply(c);  // the same config again: the operator's word stands
  EXPECT_EQ(maps.state(0), IKELB_BACKEND_ACTIVE);
}

TEST_F(ControllerTest, RestartAdoptsIdsOperatorStateHealthAndTheActiveHalf) {
  ctl.apply(config());
  ctl.act("gw2", OperatorAction::kDrain);
  ctl.set_health(id("gw3"), false, "probe: timeout");
  ctl.apply(config());  // active half is now the second one
  auto table = maps.table(0);

  Controller restarted(maps, clock);
  EXPECT_EQ(restarted.adopt(),
            "adopted pinned state: 1 virtual servers, 3 backends, 1 operator overrides");
  maps.ops.clear();
  ASSERT_EQ(restarted.apply(config()), std::vector<std::string>{});
  EXPECT_EQ(maps.ops, (std::vector<std::string>{"table@0", "vs0@0"}));
  EXPECT_EQ(maps.table(0), table);
  EXPECT_EQ(restarted.backend_id("gw2"), 1u);
  EXPECT_EQ(maps.state(1), IKELB_BACKEND_DRAINING);
  EXPECT_EQ(maps.state(2), IKELB_BACKEND_DOWN);
  EXPECT_EQ(view(restarted.backends(), "gw3").detail, "down (down before the agent restarted)");
}

// A backend leaving the table is written after the new table, one joining before it: at no point
// does an active table name a backend that cannot take new clients (the data path would probe
// past its slots and pin a client elsewhere than the table, and another ikelb node, picks).
TEST_F(ControllerTest, NoTableEverNamesABackendThatTakesNoNewClients) {
  maps.check_tables = true;
  ctl.apply(config());
  ctl.set_health(id("gw1"), false, "probe: 3 timeouts");
  ctl.set_health(id("gw1"), true, "probe: 2 answers");
  ctl.act("gw2", OperatorAction::kDrain);
  ctl.act("gw2", OperatorAction::kUndrain);
  ctl.act("gw3", OperatorAction::kDisable);
  ctl.act("gw3", OperatorAction::kEnable);
  Config c = config();
  c.virtual_servers[0].backends[0].state = ConfiguredState::kDisabled;
  ctl.apply(c);
  c.virtual_servers[0].backends[0].state = ConfiguredState::kActive;
  ctl.apply(c);
  EXPECT_EQ(maps.violations, std::vector<std::string>{});
  for (uint32_t b = 0; b < 3; b++) EXPECT_EQ(maps.state(b), IKELB_BACKEND_ACTIVE);
  EXPECT_NEAR(count(maps.table(0), 0), 65537 / 3, 1);
}

TEST_F(ControllerTest, HealthMovesBackendsInAndOutOfTheTable) {
  ctl.apply(config());
  EXPECT_TRUE(ctl.set_health(id("gw1"), false, "probe: 3 timeouts"));
  EXPECT_EQ(maps.state(0), IKELB_BACKEND_DOWN);
  EXPECT_EQ(count(maps.table(0), 0), 0u);
  EXPECT_EQ(view(ctl.backends(), "gw1").detail, "down (probe: 3 timeouts)");
  EXPECT_FALSE(ctl.set_health(id("gw1"), false, "probe: timeout"));
  ctl.act("gw1", OperatorAction::kDisable);
  EXPECT_FALSE(ctl.set_health(id("gw1"), true, "probe: ok"));  // disabled wins over health
  EXPECT_EQ(maps.state(0), IKELB_BACKEND_DISABLED);
  ctl.act("gw1", OperatorAction::kEnable);
  EXPECT_EQ(maps.state(0), IKELB_BACKEND_ACTIVE);
  EXPECT_NEAR(count(maps.table(0), 0), 65537 / 3, 1);
}

TEST_F(ControllerTest, RemovingAVirtualServerRemovesItsServicesAndTable) {
  ctl.apply(dual());
  ASSERT_EQ(maps.vs.size(), 2u);
  ctl.apply(config());
  EXPECT_EQ(maps.vs.size(), 1u);
  for (const auto& [k, v] : maps.services) EXPECT_EQ(k.vip.family, IKELB_AF_INET);
  EXPECT_EQ(maps.reverse.size(), 3u);
  EXPECT_EQ(maps.vs_meta[1].name[0], 0);
  EXPECT_FALSE(ctl.backend_id("vpn6/gw1"));
}

TEST_F(ControllerTest, NoTableSpaceMeansNothingIsWritten) {
  FakeMaps small(2 * 65537 + 10);
  Controller c(small, clock);
  ASSERT_EQ(c.apply(config()), std::vector<std::string>{});
  small.ops.clear();
  auto before = small.backends;
  Config bigger = dual();
  auto errors = c.apply(bigger);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0],
            "the Maglev map has 131084 slots and cannot also hold 131074 for \"vpn6\"; table "
            "sizes are fixed when the maps are created: teardown and restart to grow them");
  EXPECT_TRUE(small.ops.empty());
  EXPECT_EQ(small.backends.size(), before.size());
}

TEST_F(ControllerTest, TableSizeChangeMovesToAFreshRegion) {
  ctl.apply(config(3, 65537));
  maps.ops.clear();
  ctl.apply(config(3, 65521));
  EXPECT_EQ(maps.ops, (std::vector<std::string>{"table@131074", "vs0@131074"}));
  EXPECT_EQ(maps.table(0).size(), 65521u);
  EXPECT_EQ(maps.vs_meta[0].table_size, 65521u);
}

TEST_F(ControllerTest, WeightZeroStaysOutOfTheTableButKeepsItsClients) {
  Config c = config();
  c.virtual_servers[0].backends[2].weight = 0;
  ctl.apply(c);
  EXPECT_EQ(maps.state(2), IKELB_BACKEND_ACTIVE);
  EXPECT_EQ(count(maps.table(0), 2), 0u);
}

}  // namespace
}  // namespace ikelb

namespace ikelb {
namespace {

uint64_t fingerprint_of(const Controller& c, const std::string& vs) {
  for (const auto& v : c.virtual_servers())
    if (v.name == vs) return v.fingerprint;
  throw std::runtime_error("no virtual server " + vs);
}

// Two nodes with different histories (one saw gw3 before gw1 and gw2, so its ids differ) agree
// on the fingerprint once their inputs agree, and disagree while one of them sees a backend down.
TEST(ControllerFingerprint, NodesAgreeExactlyWhenTheirTablesSendClientsAlike) {
  FakeMaps maps_a, maps_b;
  FakeClock clock;
  Controller a{maps_a, clock}, b{maps_b, clock};
  ASSERT_TRUE(a.apply(config(3)).empty());
  Config only_gw3 = config(3);
  only_gw3.virtual_servers[0].backends.erase(only_gw3.virtual_servers[0].backends.begin(),
                                             only_gw3.virtual_servers[0].backends.begin() + 2);
  ASSERT_TRUE(b.apply(only_gw3).empty());
  ASSERT_TRUE(b.apply(config(3)).empty());
  ASSERT_NE(a.backend_id("gw3"), b.backend_id("gw3"));
  EXPECT_NE(fingerprint_of(a, "vpn"), 0u);
  EXPECT_EQ(fingerprint_of(a, "vpn"), fingerprint_of(b, "vpn"));

  b.set_health(*b.backend_id("gw2"), false, "probe: timeout");
  EXPECT_NE(fingerprint_of(a, "vpn"), fingerprint_of(b, "vpn"));
  b.set_health(*b.backend_id("gw2"), true, "probe: ok");
  EXPECT_EQ(fingerprint_of(a, "vpn"), fingerprint_of(b, "vpn"));
  // A drain takes a backend out of the table as a failure does.
  a.act("gw1", OperatorAction::kDrain);
  EXPECT_NE(fingerprint_of(a, "vpn"), fingerprint_of(b, "vpn"));
}

// --- SPI routing (issue 15) ---

// config() with labels (default layout) on "vpn" and spi_ids 1..n, plus learning.
Config spi_config(int backends = 3) {
  Config c = config(backends);
  c.virtual_servers[0].spi_routing = SpiRoutingConfig{SpiLabelLayout{}, SpiLearn{600, 120}};
  for (int i = 0; i < backends; i++) c.virtual_servers[0].backends[i].spi_id = i + 1;
  return c;
}

std::vector<std::string> spi_ops(const std::vector<std::string>& ops) {
  std::vector<std::string> out;
  for (const auto& o : ops)
    if (o.starts_with("spi") || o.starts_with("label") || o.starts_with("-label")) out.push_back(o);
  return out;
}

TEST_F(ControllerTest, SpiLabelsAreWrittenBeforeTheyAreTurnedOn) {
  ASSERT_TRUE(ctl.apply(spi_config()).empty());
  const uint32_t vs = maps.vs.begin()->first;
  const ikelb_spi_routing& r = maps.spi_routing.at(vs);
  EXPECT_EQ(r.flags, IKELB_SPI_LABELS | IKELB_SPI_LEARN);
  EXPECT_EQ(r.ike_mask, 0xff00000000000000ull);
  EXPECT_EQ(r.ike_shift, 56);
  EXPECT_EQ(r.esp_mask, 0x0ff00000u);
  EXPECT_EQ(r.esp_shift, 20);
  EXPECT_EQ(r.ike_idle_ns, 600'000'000'000ull);
  EXPECT_EQ(r.esp_idle_ns, 120'000'000'000ull);
  std::map<std::pair<uint32_t, uint32_t>, uint32_t> want = {
      {{vs, 1}, id("gw1")}, {{vs, 2}, id("gw2")}, {{vs, 3}, id("gw3")}};
  EXPECT_EQ(maps.spi_labels, want);
  std::string v = std::to_string(vs);
  EXPECT_EQ(spi_ops(maps.ops),
            (std::vector<std::string>{"label" + v + "/1=" + std::to_string(id("gw1")),
                                      "label" + v + "/2=" + std::to_string(id("gw2")),
                                      "label" + v + "/3=" + std::to_string(id("gw3")),
                                      "spi" + v + ":flags=3"}));
  EXPECT_TRUE(maps.spi_writes_while_on.empty());
  EXPECT_EQ(view(ctl.backends(), "gw2").spi_id, 2u);

  // The same config again writes nothing.
  maps.ops.clear();
  ASSERT_TRUE(ctl.apply(spi_config()).empty());
  EXPECT_TRUE(spi_ops(maps.ops).empty());
}

TEST_F(ControllerTest, SpiLabelChangesAreWrittenWithLabelsOff) {
  ASSERT_TRUE(ctl.apply(spi_config()).empty());
  const uint32_t vs = maps.vs.begin()->first;
  const std::string v = std::to_string(vs);
  const uint32_t gw1 = id("gw1"), gw3 = id("gw3");
  // gw2 removed, gw3 takes id 2, gw1 keeps 1, a new layout (id_bits 4).
  Config c = spi_config();
  c.virtual_servers[0].backends.erase(c.virtual_servers[0].backends.begin() + 1);
  c.virtual_servers[0].backends[1].spi_id = 2;
  c.virtual_servers[0].spi_routing->labels->id_bits = 4;
  c.virtual_servers[0].spi_routing->labels->ike_id_shift = 60;
  maps.ops.clear();
  ASSERT_TRUE(ctl.apply(c).empty());
  EXPECT_EQ(spi_ops(maps.ops),
            (std::vector<std::string>{"spi" + v + ":flags=2", "-label" + v + "/3",
                                      "label" + v + "/2=" + std::to_string(gw3),
                                      "spi" + v + ":flags=3"}));
  EXPECT_TRUE(maps.spi_writes_while_on.empty()) << maps.spi_writes_while_on.front();
  EXPECT_EQ(maps.spi_routing.at(vs).ike_mask, 0xf000000000000000ull);
  std::map<std::pair<uint32_t, uint32_t>, uint32_t> want = {{{vs, 1}, gw1}, {{vs, 2}, gw3}};
  EXPECT_EQ(maps.spi_labels, want);

  // Only the learn times change: one write, labels stay on.
  c.virtual_servers[0].spi_routing->learn->esp_idle_s = 300;
  maps.ops.clear();
  ASSERT_TRUE(ctl.apply(c).empty());
  EXPECT_EQ(spi_ops(maps.ops), (std::vector<std::string>{"spi" + v + ":flags=3"}));
  EXPECT_EQ(maps.spi_routing.at(vs).esp_idle_ns, 300'000'000'000ull);

  // Labels off: turned off first, then the labels go; learning stays.
  c.virtual_servers[0].spi_routing->labels.reset();
  maps.ops.clear();
  ASSERT_TRUE(ctl.apply(c).empty());
  EXPECT_EQ(spi_ops(maps.ops),
            (std::vector<std::string>{"spi" + v + ":flags=2", "-label" + v + "/1",
                                      "-label" + v + "/2", "spi" + v + ":flags=2"}));
  EXPECT_TRUE(maps.spi_labels.empty());
  EXPECT_EQ(maps.spi_routing.at(vs).ike_mask, 0u);
  EXPECT_TRUE(maps.spi_writes_while_on.empty());
}

TEST_F(ControllerTest, SpiRoutingLeavesWithItsServerAndSurvivesARestart) {
  Config c = spi_config();
  c.virtual_servers.push_back(dual().virtual_servers[1]);
  ASSERT_TRUE(ctl.apply(c).empty());
  const uint32_t vs = maps.vs.begin()->first;

  // A new agent adopts the maps: the same config writes nothing SPI-related.
  Controller again(maps, clock);
  again.adopt();
  maps.ops.clear();
  ASSERT_TRUE(again.apply(c).empty());
  EXPECT_TRUE(spi_ops(maps.ops).empty());

  // A restart with a config without SPI routing removes what the old agent left.
  Controller third(maps, clock);
  third.adopt();
  ASSERT_TRUE(third.apply(dual()).empty());
  EXPECT_TRUE(maps.spi_labels.empty());
  EXPECT_EQ(maps.spi_routing.at(vs).flags, 0);

  ASSERT_TRUE(third.apply(c).empty());
  EXPECT_EQ(maps.spi_labels.size(), 3u);
  c.virtual_servers.erase(c.virtual_servers.begin());  // "vpn" goes
  ASSERT_TRUE(third.apply(c).empty());
  EXPECT_TRUE(maps.spi_labels.empty());
  EXPECT_EQ(maps.spi_routing.at(vs).flags, 0);
  EXPECT_TRUE(maps.spi_writes_while_on.empty());
}

}  // namespace
}  // namespace ikelb
