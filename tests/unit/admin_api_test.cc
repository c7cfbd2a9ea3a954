// Admin API routes and ikelbctl's tables, against a Controller over in-memory maps.
#include "admin_api.h"

#include <gtest/gtest.h>

#include "ctl_format.h"
#include "fake_maps.h"
#include "health_api.h"

namespace ikelb {
namespace {

struct AdminApiTest : ::testing::Test {
  AdminApiTest() {
    VirtualServerConfig v;
    v.name = "vpn";
    v.address = IpAddress::must_parse("203.0.113.10");
    for (int i = 1; i <= 2; i++) {
      BackendConfig b;
      b.name = "gw" + std::to_string(i);
      b.address = IpAddress::must_parse("10.0.0.1" + std::to_string(i));
      if (i == 1) b.spi_id = 7;  // gw2 has none
      v.backends.push_back(b);
    }
    config.interfaces = {"eth0"};
    config.virtual_servers = {v};
    EXPECT_TRUE(ctl.apply(config).empty());
    hooks.status = [] { return nlohmann::json{{"version", "9.9"}}; };
    hooks.reload = [this] { return reload_errors; };
    hooks.teardown = [] { return std::string("gone"); };
  }
  AdminResponse call(const std::string& method, const std::string& target) {
    return route_admin({method, target, nullptr}, ctl, hooks);
  }

  test::FakeMaps maps;
  test::FakeClock clock;
  Controller ctl{maps, clock};
  Config config;
  ApiHooks hooks;
  std::vector<std::string> reload_errors;
};

TEST_F(AdminApiTest, BackendsAndStatus) {
  auto r = call("GET", "/v1/backends");
  ASSERT_EQ(r.status, 200u);
  ASSERT_EQ(r.body["backends"].size(), 2u);
  EXPECT_EQ(r.body["backends"][1]["name"], "gw2");
  EXPECT_EQ(r.body["backends"][1]["address"], "10.0.0.12");
  EXPECT_EQ(r.body["backends"][1]["state"], "active");
  EXPECT_TRUE(r.body["backends"][1]["pinned_clients"].is_null());
  EXPECT_EQ(r.body["backends"][0]["spi_id"], 7);
  EXPECT_TRUE(r.body["backends"][1]["spi_id"].is_null());
  EXPECT_EQ(r.body["backends"][1]["last_change"], "2023-11-14T22:13:20Z");

  auto s = call("GET", "/v1/status");
  ASSERT_EQ(s.status, 200u);
  EXPECT_EQ(s.body["version"], "9.9");
  EXPECT_EQ(s.body["virtual_servers"][0]["name"], "vpn");
  EXPECT_EQ(s.body["virtual_servers"][0]["in_table"], 2);
}

TEST_F(AdminApiTest, ActionsAndTheirErrors) {
  auto r = call("POST", "/v1/backends/gw2/drain");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.body["result"], "vpn/gw2: draining");
  EXPECT_EQ(call("POST", "/v1/backends/vpn/gw2/undrain").body["result"], "vpn/gw2: active");
  auto missing = call("POST", "/v1/backends/gw7/drain");
  EXPECT_EQ(missing.status, 404u);
  EXPECT_EQ(missing.body["error"], "no backend \"gw7\"");
  auto conflict = call("POST", "/v1/backends/gw1/enable");
  EXPECT_EQ(conflict.status, 409u);
  EXPECT_EQ(conflict.body["error"], "vpn/gw1 is not disabled (active)");
  auto verb = call("POST", "/v1/backends/gw1/explode");
  EXPECT_EQ(verb.status, 404u);
  EXPECT_EQ(verb.body["error"], "unknown action \"explode\" (drain, undrain, disable, enable)");
  EXPECT_EQ(call("GET", "/v1/backends/gw1/drain").status, 405u);
}

TEST_F(AdminApiTest, RoutingErrors) {
  EXPECT_EQ(call("GET", "/").status, 404u);
  EXPECT_EQ(call("GET", "/v2/status").status, 404u);
  EXPECT_EQ(call("POST", "/v1/status").status, 405u);
  EXPECT_EQ(call("GET", "/v1/reload").status, 405u);
  EXPECT_EQ(call("GET", "/v1/status?verbose=1").status, 200u);
  EXPECT_EQ(call("GET", "/v1/nothing").body["error"], "no such endpoint: /v1/nothing");
}

TEST_F(AdminApiTest, ReloadAndTeardown) {
  EXPECT_EQ(call("POST", "/v1/reload").status, 200u);
  reload_errors = {"/virtual_servers: bad"};
  auto r = call("POST", "/v1/reload");
  EXPECT_EQ(r.status, 422u);
  EXPECT_EQ(r.body["error"], "config rejected, nothing changed");
  EXPECT_EQ(r.body["errors"][0], "/virtual_servers: bad");
  EXPECT_EQ(call("POST", "/v1/teardown").body["result"], "gone");
}

TEST(HealthApi, LivenessReadinessAndRouting) {
  std::vector<std::string> problems;
  int asked = 0;
  auto get = [&](const std::string& method, const std::string& target) {
    return route_health({method, target, nullptr}, [&] {
      asked++;
      return problems;
    });
  };
  AdminResponse r = get("GET", "/healthz");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.body, nlohmann::json({{"status", "ok"}}));
  EXPECT_EQ(asked, 0) << "liveness must not depend on readiness";

  r = get("GET", "/readyz");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.body["status"], "ready");

  problems = {"XDP is not attached to eth1"};
  r = get("GET", "/readyz?verbose");
  EXPECT_EQ(r.status, 503u);
  EXPECT_EQ(r.body["status"], "not ready");
  EXPECT_EQ(r.body["problems"], nlohmann::json({"XDP is not attached to eth1"}));
  EXPECT_EQ(get("GET", "/healthz").status, 200u) << "a node that is not ready is still alive";

  EXPECT_EQ(get("POST", "/readyz").status, 405u);
  EXPECT_EQ(get("GET", "/v1/status").status, 404u) << "the admin API is not on this listener";
  EXPECT_EQ(get("GET", "/metrics").status, 404u);
  EXPECT_EQ(get("GET", "/").status, 404u);
}

TEST(CtlFormat, TablesAreAligned) {
  EXPECT_EQ(format_table({{"A", "BB"}, {"ccc", "d"}}), "A    BB\nccc  d\n");
  nlohmann::json b = {{"backends",
                       {{{"virtual_server", "vpn"},
                         {"name", "gw1"},
                         {"address", "10.0.0.11"},
                         {"weight", 100},
                         {"spi_id", 7},
                         {"detail", "draining (3 clients)"},
                         {"pinned_clients", 3},
                         {"last_change", "2026-01-01T00:00:00Z"},
                         {"last_cause", "operator: drain"}}}}};
  EXPECT_EQ(
      format_backends(b),
      "VIRTUAL SERVER  BACKEND  ADDRESS    WEIGHT  SPI ID  STATE                 CLIENTS  PROBE  "
      "RTT  OK/FAIL  GROUP  LAST CHANGE\n"
      "vpn             gw1      10.0.0.11  100     7       draining (3 clients)  3        -      "
      "-    -        -      2026-01-01T00:00:00Z (operator: drain)\n");
  b["backends"][0].erase("spi_id");  // an agent without SPI routing, or no id: "-"
  EXPECT_NE(format_backends(b).find("100     -       draining"), std::string::npos)
      << format_backends(b);
  b["backends"][0]["probe"] = {
      {"last_result", "invalid_ke"}, {"rtt_ms", 2},
      {"consecutive_ok", 5},         {"consecutive_fail", 0},
      {"preferred_group", 19},       {"warning", "gateway redirects new clients elsewhere"}};
  std::string out = format_backends(b);
  EXPECT_NE(out.find("invalid_ke  2 ms  5/0      19     2026"), std::string::npos) << out;
  EXPECT_NE(out.find("\nwarning: vpn/gw1: gateway redirects new clients elsewhere\n"),
            std::string::npos)
      << out;
}

TEST(CtlFormat, SyncLines) {
  nlohmann::json y = {{"node_id", 1},
                      {"listen", "10.255.1.2:7946"},
                      {"peers", {"10.255.2.2:7946"}},
                      {"snapshot", "received"},
                      {"snapshot_ms", 412},
                      {"snapshot_records", 60},
                      {"records_sent", 5},
                      {"records_received", 60},
                      {"merged", 58},
                      {"kept_local", 2},
                      {"dropped", {{"queue_full", 3}}},
                      {"refused", nlohmann::json::object()},
                      {"datagrams_sent", 2},
                      {"datagrams_received", 3},
                      {"send_errors", 0},
                      {"queue", 0}};
  EXPECT_EQ(format_sync(y),
            "sync: node 1 on 10.255.1.2:7946, 1 peers, snapshot received after 412 ms, 60 records\n"
            "sync: records sent 5, received 60, merged 58, kept local 2, dropped 3 (queue_full 3), "
            "queue 0\n"
            "sync: datagrams sent 2, received 3, refused 0, send errors 0\n");
}

}  // namespace
}  // namespace ikelb
