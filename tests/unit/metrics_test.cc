// Metric families rendered by prometheus-cpp's own text serializer: names, labels, values.
#include "metrics.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <set>
#include <sstream>

namespace ikelb {
namespace {

std::string render(const MetricsSnapshot& s) {
  return prometheus::TextSerializer().Serialize(metric_families(s));
}

void expect_line(const std::string& text, const std::string& line) {
  EXPECT_NE(text.find("\n" + line + "\n"), std::string::npos) << "missing: " << line;
}

MetricsSnapshot sample() {
  MetricsSnapshot s;
  VirtualServerMetrics v;
  v.name = "vpn";
  v.traffic.packets[IKELB_DIR_TO_BACKEND] = 10;
  v.traffic.bytes[IKELB_DIR_TO_BACKEND] = 1500;
  v.traffic.packets[IKELB_DIR_TO_CLIENT] = 7;
  v.healthy_backends = 1;
  v.edge.init_admitted = 20;
  v.edge.init_limited_source = 300;
  v.edge.init_limited_total = 5;
  s.virtual_servers.push_back(v);
  BackendMetrics b;
  b.vs = "vpn";
  b.name = "gw1";
  b.state = "draining";
  b.stats.traffic.packets[IKELB_DIR_TO_BACKEND] = 10;
  b.stats.failovers_from = 3;
  b.stats.new_clients = 4;
  b.pinned_clients = 12;
  b.state_changes = {{"operator", 1}};
  ike::SessionStatus p;
  p.results = {{"invalid_ke", 5}, {"timeout", 1}};
  p.rtt_buckets = {0, 2, 4, 5, 5, 5, 5, 5, 5, 5};
  p.rtt_count = 5;
  p.rtt_sum_seconds = 0.006;
  p.consecutive_fail = 0;
  b.probe = p;
  s.backends.push_back(b);
  s.outcomes[IKELB_OUT_DROP_MALFORMED_L4] = 2;
  s.events[IKELB_EV_AFFINITY_HIT] = 9;
  s.events[IKELB_EV_ICMP_TO_BACKEND] = 4;
  s.outcomes[IKELB_OUT_DROP_REVERSE_PATH] = 6;
  s.affinity_entries = 12;
  s.affinity_capacity = 1048576;
  s.reloads_ok = 2;
  s.reloads_rejected = 1;
  s.last_reload_success_seconds = 1700000000;
  s.version = "0.1.0";
  s.bpf_prog_id = 77;
  return s;
}

TEST(Metrics, TrafficAffinityFailoverHealthAndAgent) {
  std::string t = render(sample());
  expect_line(
      t, "ikelb_virtual_server_packets_total{virtual_server=\"vpn\",direction=\"to_backend\"} 10");
  expect_line(
      t, "ikelb_virtual_server_bytes_total{virtual_server=\"vpn\",direction=\"to_backend\"} 1500");
  expect_line(
      t, "ikelb_virtual_server_packets_total{virtual_server=\"vpn\",direction=\"to_client\"} 7");
  expect_line(t,
              "ikelb_backend_packets_total{virtual_server=\"vpn\",backend=\"gw1\",direction=\"to_"
              "backend\"} 10");
  expect_line(t, "ikelb_backend_pinned_clients{virtual_server=\"vpn\",backend=\"gw1\"} 12");
  expect_line(t, "ikelb_failovers_total{virtual_server=\"vpn\",backend=\"gw1\"} 3");
  expect_line(t, "ikelb_backend_state_draining{virtual_server=\"vpn\",backend=\"gw1\"} 1");
  expect_line(t, "ikelb_backend_state_active{virtual_server=\"vpn\",backend=\"gw1\"} 0");
  expect_line(t,
              "ikelb_backend_state_changes_total{virtual_server=\"vpn\",backend=\"gw1\",reason="
              "\"operator\"} 1");
  expect_line(
      t,
      "ikelb_probe_results_total{virtual_server=\"vpn\",backend=\"gw1\",result=\"invalid_ke\"} 5");
  expect_line(
      t, "ikelb_probe_rtt_seconds_bucket{virtual_server=\"vpn\",backend=\"gw1\",le=\"0.001\"} 2");
  expect_line(
      t, "ikelb_probe_rtt_seconds_bucket{virtual_server=\"vpn\",backend=\"gw1\",le=\"+Inf\"} 5");
  expect_line(t, "ikelb_probe_rtt_seconds_count{virtual_server=\"vpn\",backend=\"gw1\"} 5");
  expect_line(t, "ikelb_datapath_packets_total{reason=\"drop_malformed_l4\"} 2");
  expect_line(t, "ikelb_affinity_lookups_total{result=\"hit\"} 9");
  expect_line(t, "ikelb_datapath_packets_total{reason=\"drop_reply_reverse_path\"} 6");
  expect_line(t, "ikelb_icmp_errors_translated_total{direction=\"to_backend\"} 4");
  expect_line(t,
              "ikelb_ike_sa_init_limited_requests_total{virtual_server=\"vpn\",result=\"limited_"
              "source\"} 300");
  expect_line(
      t, "ikelb_ike_sa_init_limited_requests_total{virtual_server=\"vpn\",result=\"admitted\"} 20");
  expect_line(t, "ikelb_affinity_entries 12");
  expect_line(t, "ikelb_config_reloads_total{result=\"rejected\"} 1");
  expect_line(t, "ikelb_build_info{version=\"0.1.0\",bpf_prog_id=\"77\"} 1");
  EXPECT_NE(t.find("# TYPE ikelb_failovers_total counter"), std::string::npos);
  EXPECT_NE(t.find("# TYPE ikelb_probe_rtt_seconds histogram"), std::string::npos);
  // Each family is announced once, however many series it has.
  size_t first = t.find("# TYPE ikelb_backend_packets_total");
  EXPECT_EQ(t.find("# TYPE ikelb_backend_packets_total", first + 1), std::string::npos);
}

// Only the agreed dimensions (plus the histogram's le and build_info's version labels) appear,
// so a client address can never become a label.
TEST(Metrics, OnlyTheAgreedLabels) {
  const std::set<std::string> allowed{"virtual_server", "backend", "direction", "reason",
                                      "result",         "le",      "version",   "bpf_prog_id",
                                      "decision",       "event"};
  std::istringstream in(render(sample()));
  std::string line;
  size_t series = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    series++;
    size_t open = line.find('{');
    if (open == std::string::npos) continue;
    std::string labels = line.substr(open + 1, line.find('}') - open - 1);
    for (size_t pos = 0; pos < labels.size();) {
      size_t eq = labels.find('=', pos);
      EXPECT_TRUE(allowed.count(labels.substr(pos, eq - pos))) << line;
      size_t end = labels.find('"', labels.find('"', eq) + 1);
      pos = end + 2;
    }
  }
  EXPECT_GT(series, 40u);
}

// SPI routing (issue 15): decisions are exclusive per packet; maglev counts the backends' new
// clients, not AFFINITY_MISS (which also counts misses that a label or learned owner routed).
TEST(Metrics, SpiRoutingDecisionsEventsAndOwnerTable) {
  MetricsSnapshot s = sample();
  BackendMetrics other = s.backends[0];
  other.name = "gw2";
  other.stats.new_clients = 6;
  s.backends.push_back(other);  // maglev: 4 + 6
  s.events[IKELB_EV_AFFINITY_MISS] = 25;
  s.events[IKELB_EV_SPI_LABEL] = 13;
  s.events[IKELB_EV_SPI_LEARNED] = 2;
  s.events[IKELB_EV_SPI_LABEL_DOWN] = 3;
  s.events[IKELB_EV_SPI_UNKNOWN] = 5;
  s.events[IKELB_EV_SPI_OWNER_LEARNED] = 8;
  s.events[IKELB_EV_SPI_AFFINITY_KEPT] = 1;
  s.spi_owner_entries = 42;
  std::string t = render(s);
  expect_line(t, "ikelb_routing_decisions_total{decision=\"spi_label\"} 13");
  expect_line(t, "ikelb_routing_decisions_total{decision=\"spi_learned\"} 2");
  expect_line(t, "ikelb_routing_decisions_total{decision=\"affinity\"} 9");
  expect_line(t, "ikelb_routing_decisions_total{decision=\"maglev\"} 10");
  expect_line(t, "ikelb_spi_routing_events_total{event=\"spi_label_down\"} 3");
  expect_line(t, "ikelb_spi_routing_events_total{event=\"spi_unknown\"} 5");
  expect_line(t, "ikelb_spi_routing_events_total{event=\"spi_owner_learned\"} 8");
  expect_line(t, "ikelb_spi_routing_events_total{event=\"spi_affinity_kept\"} 1");
  expect_line(t, "ikelb_spi_owner_entries 42");
  EXPECT_NE(t.find("# TYPE ikelb_routing_decisions_total counter"), std::string::npos);
  EXPECT_NE(t.find("# TYPE ikelb_spi_owner_entries gauge"), std::string::npos);
  // No walk yet: no owner gauge (rather than a false 0).
  EXPECT_EQ(render(sample()).find("ikelb_spi_owner_entries"), std::string::npos);
}

TEST(Metrics, PeerSyncOnlyWithASyncSection) {
  MetricsSnapshot s = sample();
  EXPECT_EQ(render(s).find("ikelb_sync_"), std::string::npos);
  SyncStats st;
  st.records_sent = 120;
  st.records_received = 60;
  st.merged = 58;
  st.kept_local = 2;
  st.dropped["queue_full"] = 3;
  st.refused["bad_mac"] = 1;
  st.datagrams_sent = 4;
  st.queue_depth = 7;
  st.snapshot = SyncSnapshot::kReceived;
  s.sync = st;
  const std::string t = render(s);
  expect_line(t, "ikelb_sync_records_sent_total 120");
  expect_line(t, "ikelb_sync_records_received_total 60");
  expect_line(t, "ikelb_sync_records_merged_total 58");
  expect_line(t, "ikelb_sync_records_kept_local_total 2");
  expect_line(t, "ikelb_sync_spi_owners_merged_total 0");
  expect_line(t, "ikelb_sync_records_dropped_total{reason=\"queue_full\"} 3");
  expect_line(t, "ikelb_sync_records_dropped_total{reason=\"not_serving\"} 0");
  expect_line(t, "ikelb_sync_datagrams_refused_total{reason=\"bad_mac\"} 1");
  expect_line(t, "ikelb_sync_datagrams_refused_total{reason=\"replay\"} 0");
  expect_line(t, "ikelb_sync_datagrams_total{direction=\"sent\"} 4");
  expect_line(t, "ikelb_sync_queue_records 7");
  expect_line(t, "ikelb_sync_snapshot_state{result=\"received\"} 1");
  expect_line(t, "ikelb_sync_snapshot_state{result=\"waiting\"} 0");
}

TEST(Metrics, AFailedSnapshotIsAScrapeError) {
  SnapshotCollectable c([] { return std::optional<MetricsSnapshot>(); });
  std::string t = prometheus::TextSerializer().Serialize(c.Collect());
  expect_line(t, "ikelb_scrape_error 1");
}

}  // namespace
}  // namespace ikelb
