// The Grafana dashboard (deploy/grafana/ikelb-dashboard.json) and the Prometheus rules
// (deploy/prometheus/ikelb-rules.yml) against what the agent really exports: every ikelb_* name
// they use must be one that metric_families() renders (or ikelb_scrape_error, rendered by a
// failed scrape), and every dashboard expression must parse as PromQL (promtool). The rules'
// syntax and semantics are tested by promtool itself (ctest prometheus_rules); the netns test
// metrics_netns_test runs all of it against a live ikelbd and a real Prometheus.
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "dashboard.h"
#include "metrics.h"

namespace ikelb {
namespace {

using test::expand_variables;
using test::kDashboard;
using test::kRules;
using test::panel_exprs;
using test::referenced_names;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A snapshot with every optional part present: the exposition then has every family.
MetricsSnapshot full_snapshot() {
  MetricsSnapshot s;
  s.virtual_servers.push_back({"vpn", {}, 1});
  s.announce_configured = true;
  s.announce.push_back({"vpn", true, true, 1, 0});
  BackendMetrics b;
  b.vs = "vpn";
  b.name = "gw1";
  b.state = "active";
  b.pinned_clients = 3;
  b.probe = ike::SessionStatus{};
  b.probe->results = {{"invalid_ke", 1}};
  s.backends.push_back(b);
  s.affinity_entries = 3;
  s.spi_owner_entries = 2;
  s.affinity_capacity = 1024;
  s.version = "test";
  return s;
}

// Sample names of a text exposition (histograms as _bucket, _sum and _count).
std::set<std::string> sample_names(const std::string& text) {
  std::set<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    out.insert(line.substr(0, line.find_first_of("{ ")));
  }
  return out;
}

std::set<std::string> exported_names() {
  prometheus::TextSerializer text;
  std::set<std::string> names = sample_names(text.Serialize(metric_families(full_snapshot())));
  SnapshotCollectable failed([] { return std::optional<MetricsSnapshot>(); });
  names.merge(sample_names(text.Serialize(failed.Collect())));
  return names;
}

struct Expr {
  std::string where, expr;
};

// Every PromQL string of the dashboard: panel targets and query variables.
std::vector<Expr> dashboard_exprs(const nlohmann::json& d) {
  std::vector<Expr> out;
  for (const auto& e : panel_exprs(d)) out.push_back({"panel \"" + e.panel + "\"", e.expr});
  for (const auto& v : d["templating"]["list"])
    if (v["type"] == "query")
      out.push_back({"variable " + v["name"].get<std::string>(), v["definition"]});
  return out;
}

TEST(Monitoring, NameExtraction) {
  EXPECT_EQ(referenced_names("sum(rate(ikelb_failovers_total{a=\"b\"}[5m])) / "
                             "instance:ikelb_x:rate5m + my_ikelb_y + ikelb_z"),
            (std::set<std::string>{"ikelb_failovers_total", "ikelb_z"}));
  std::set<std::string> names = exported_names();
  for (const char* n :
       {"ikelb_virtual_server_packets_total", "ikelb_backend_pinned_clients",
        "ikelb_probe_rtt_seconds_bucket", "ikelb_backend_state_disabled", "ikelb_scrape_error",
        "ikelb_affinity_entries", "ikelb_probe_consecutive_failures"})
    EXPECT_TRUE(names.count(n)) << n;
  EXPECT_FALSE(names.count("ikelb_probe_rtt_seconds")) << "a histogram has no plain sample";
}

TEST(Monitoring, DashboardIsAGrafanaDashboardWithTheAgreedPanels) {
  nlohmann::json d = nlohmann::json::parse(read_file(kDashboard));
  EXPECT_GE(d["schemaVersion"].get<int>(), 36);
  EXPECT_LE(d["schemaVersion"].get<int>(), 39);
  EXPECT_FALSE(d["uid"].get<std::string>().empty());

  std::map<std::string, nlohmann::json> vars;
  for (const auto& v : d["templating"]["list"]) vars[v["name"]] = v;
  ASSERT_TRUE(vars.count("DS_PROMETHEUS"));
  EXPECT_EQ(vars["DS_PROMETHEUS"]["type"], "datasource");
  EXPECT_EQ(vars["DS_PROMETHEUS"]["query"], "prometheus");
  for (const char* v : {"virtual_server", "backend"}) {
    ASSERT_TRUE(vars.count(v)) << v;
    EXPECT_EQ(vars[v]["type"], "query");
    EXPECT_EQ(vars[v]["datasource"]["uid"], "${DS_PROMETHEUS}");
  }

  std::set<int> ids;
  std::map<std::string, std::vector<std::string>> exprs_by_type;
  for (const auto& p : d["panels"]) {
    const std::string title = p["title"];
    EXPECT_TRUE(ids.insert(p["id"].get<int>()).second) << "duplicate id in " << title;
    const auto& g = p["gridPos"];
    EXPECT_LE(g["x"].get<int>() + g["w"].get<int>(), 24) << title;
    if (p["type"] == "row") continue;
    EXPECT_EQ(p["datasource"]["uid"], "${DS_PROMETHEUS}") << title;
    ASSERT_FALSE(p["targets"].empty()) << title;
    std::set<std::string> refs;
    for (const auto& t : p["targets"]) {
      EXPECT_EQ(t["datasource"]["uid"], "${DS_PROMETHEUS}") << title;
      EXPECT_TRUE(refs.insert(t["refId"]).second) << "duplicate refId in " << title;
      exprs_by_type[p["type"]].push_back(t["expr"]);
      exprs_by_type["all"].push_back(t["expr"]);
    }
  }
  auto any = [&](const std::string& type, const std::vector<std::string>& needles) {
    for (const auto& e : exprs_by_type[type]) {
      bool all = true;
      for (const auto& n : needles) all = all && e.find(n) != std::string::npos;
      if (all) return true;
    }
    return false;
  };
  EXPECT_TRUE(any("state-timeline", {"ikelb_backend_state_active", "ikelb_backend_state_draining",
                                     "ikelb_backend_state_drained", "ikelb_backend_state_down",
                                     "ikelb_backend_state_disabled"}));
  EXPECT_TRUE(any("timeseries", {"ikelb_backend_pinned_clients", "backend"}));
  EXPECT_TRUE(any("timeseries", {"rate(ikelb_failovers_total"}));
  EXPECT_TRUE(any("timeseries", {"histogram_quantile(0.5,", "ikelb_probe_rtt_seconds_bucket"}));
  EXPECT_TRUE(any("timeseries", {"histogram_quantile(0.99,", "ikelb_probe_rtt_seconds_bucket"}));
  EXPECT_TRUE(any("timeseries", {"rate(ikelb_datapath_packets_total", "drop_", "reason"}));
  EXPECT_TRUE(any("timeseries", {"rate(ikelb_datapath_packets_total", "pass_", "reason"}));
  EXPECT_TRUE(
      any("timeseries", {"rate(ikelb_virtual_server_packets_total", "virtual_server, direction"}));
  EXPECT_TRUE(any("timeseries",
                  {"8 * ", "rate(ikelb_virtual_server_bytes_total", "virtual_server, direction"}));
  EXPECT_TRUE(any("timeseries", {"rate(ikelb_routing_decisions_total", "decision"}));
  EXPECT_TRUE(any("timeseries", {"rate(ikelb_spi_routing_events_total", "event"}));
  EXPECT_TRUE(any("timeseries", {"ikelb_spi_owner_entries"}));
}

TEST(Monitoring, DashboardUsesOnlyExportedMetrics) {
  const std::set<std::string> exported = exported_names();
  nlohmann::json d = nlohmann::json::parse(read_file(kDashboard));
  std::vector<Expr> exprs = dashboard_exprs(d);
  EXPECT_GE(exprs.size(), 15u);
  size_t names = 0;
  for (const auto& e : exprs) {
    std::set<std::string> used = referenced_names(e.expr);
    EXPECT_FALSE(used.empty()) << e.where << ": no ikelb_ metric in " << e.expr;
    for (const auto& n : used) {
      names++;
      EXPECT_TRUE(exported.count(n)) << e.where << ": " << n << " is not exported by ikelbd";
    }
  }
  EXPECT_GE(names, 20u);
}

TEST(Monitoring, RulesUseOnlyExportedMetrics) {
  const std::set<std::string> exported = exported_names();
  const std::string rules = read_file(kRules);
  std::set<std::string> used = referenced_names(rules);
  EXPECT_GE(used.size(), 8u);
  for (const auto& n : used) EXPECT_TRUE(exported.count(n)) << n << " is not exported by ikelbd";
  for (const char* alert :
       {"IkelbGatewayDown", "IkelbPoolBelowHealthy", "IkelbFailoverBurst", "IkelbDropRateSpike",
        "IkelbReloadFailed", "IkelbScrapeError", "IkelbAffinityTableNearlyFull"})
    EXPECT_NE(rules.find(std::string("- alert: ") + alert + "\n"), std::string::npos) << alert;
}

// Each dashboard expression, with its variables expanded, as a recording rule that promtool
// must accept: a PromQL syntax check without a server.
TEST(Monitoring, DashboardExpressionsParse) {
  nlohmann::json d = nlohmann::json::parse(read_file(kDashboard));
  char dir[] = "/tmp/ikelb-monitoring-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string file = std::string(dir) + "/dashboard-rules.yml";
  {
    std::ofstream out(file);
    out << "groups:\n  - name: dashboard\n    rules:\n";
    int n = 0;
    for (const auto& e : dashboard_exprs(d)) {
      if (e.where.starts_with("variable ")) continue;  // label_values() is Grafana's, not PromQL
      out << "      - record: dashboard:expr_" << n++
          << "\n        expr: " << nlohmann::json(expand_variables(e.expr)).dump() << "\n";
    }
  }
  const std::string out = std::string(dir) + "/promtool.out";
  int status = std::system(
      (std::string(IKELB_PROMTOOL) + " check rules " + file + " > " + out + " 2>&1").c_str());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "promtool check rules on the dashboard's expressions:\n"
      << read_file(out) << "\n"
      << read_file(file);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ikelb
