#include "metrics.h"

#include "datapath.h"

namespace ikelb {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

constexpr const char* kDirections[IKELB_DIR_MAX] = {"to_backend", "to_client"};
constexpr const char* kStates[] = {"active", "draining", "drained", "down", "disabled"};

struct Builder {
  std::vector<MetricFamily> out;

  MetricFamily& family(const std::string& name, const std::string& help, MetricType type) {
    for (auto& f : out)
      if (f.name == name) return f;
    out.push_back({name, help, type, {}});
    return out.back();
  }
  void counter(const std::string& name, const std::string& help, Labels labels, double v) {
    ClientMetric m;
    m.label = std::move(labels);
    m.counter.value = v;
    family(name, help, MetricType::Counter).metric.push_back(m);
  }
  void gauge(const std::string& name, const std::string& help, Labels labels, double v) {
    ClientMetric m;
    m.label = std::move(labels);
    m.gauge.value = v;
    family(name, help, MetricType::Gauge).metric.push_back(m);
  }
};

Labels backend_labels(const BackendMetrics& b) {
  return {{"virtual_server", b.vs}, {"backend", b.name}};
}

Labels with(Labels l, const std::string& name, const std::string& value) {
  l.push_back({name, value});
  return l;
}

// SPI routing (issue 15): how client packets were routed, and what SPI routing saw. The
// decisions are exclusive and per packet: spi_label (the gateway id in its SPI, also when the
// source's affinity entry agreed), spi_learned, affinity (entry hit without a label), maglev
// (new affinity entries made by Maglev: the backends' new_clients; AFFINITY_MISS would also
// count the misses a label or learned owner then routed).
void spi_metrics(Builder& m, const MetricsSnapshot& s) {
  uint64_t maglev = 0;
  for (const auto& b : s.backends) maglev += b.stats.new_clients;
  const std::pair<const char*, uint64_t> decisions[] = {
      {"spi_label", s.events[IKELB_EV_SPI_LABEL]},
      {"spi_learned", s.events[IKELB_EV_SPI_LEARNED]},
      {"affinity", s.events[IKELB_EV_AFFINITY_HIT]},
      {"maglev", maglev}};
  for (const auto& [decision, n] : decisions)
    m.counter("ikelb_routing_decisions_total",
              "Client packets by how their backend was chosen: spi_label (gateway id in the "
              "SPI), spi_learned (learned SPI owner), affinity (source address entry), maglev "
              "(new client placed by the Maglev table).",
              {{"decision", decision}}, double(n));
  for (uint32_t ev : {IKELB_EV_SPI_LABEL_DOWN, IKELB_EV_SPI_UNKNOWN, IKELB_EV_SPI_OWNER_LEARNED,
                      IKELB_EV_SPI_AFFINITY_KEPT})
    m.counter("ikelb_spi_routing_events_total",
              "SPI routing: spi_label_down (the SPI names a gateway that cannot take the client), "
              "spi_unknown (neither a known id nor a learned owner), spi_owner_learned (a new "
              "SPI owner remembered), spi_affinity_kept (the SPI and the source's affinity entry "
              "disagree: the entry is kept).",
              {{"event", std::string(event_name(ev))}}, double(s.events[ev]));
  if (s.spi_owner_entries)
    m.gauge("ikelb_spi_owner_entries", "Entries in the learned SPI owner table (last walk).", {},
            double(*s.spi_owner_entries));
}

// The peer sync (sync.h). Every reason is exported, 0 until it happens, so alerts can use rate().
void sync_families(Builder& m, const SyncStats& st) {
  m.counter("ikelb_sync_records_sent_total",
            "Affinity records sent to the peers (each record once, whatever the peer count).", {},
            double(st.records_sent));
  m.counter("ikelb_sync_records_received_total",
            "Affinity records received in datagrams that passed every check.", {},
            double(st.records_received));
  m.counter("ikelb_sync_records_merged_total",
            "Received affinity records written into this node's affinity table.", {},
            double(st.merged));
  m.counter("ikelb_sync_records_kept_local_total",
            "Received affinity records ignored because this node's entry was as fresh or fresher.",
            {}, double(st.kept_local));
  m.counter("ikelb_sync_spi_owners_merged_total",
            "Received learned SPI owners written into this node's spi_owners map (only where the "
            "SPI had no owner; included in ikelb_sync_records_merged_total).",
            {}, double(st.spi_merged));
  for (const char* reason :
       {"queue_full", "unknown_target", "not_serving", "unnamed", "store_error"}) {
    auto it = st.dropped.find(reason);
    m.counter("ikelb_sync_records_dropped_total",
              "Affinity records not sent or not merged: queue_full (oldest dropped from the send "
              "queue), unknown_target (no such virtual server or backend here), not_serving (the "
              "backend takes no traffic here), unnamed, store_error.",
              {{"reason", reason}}, double(it == st.dropped.end() ? 0 : it->second));
  }
  for (const char* reason : {"unknown_peer", "bad_mac", "malformed", "own_node", "replay"}) {
    auto it = st.refused.find(reason);
    m.counter("ikelb_sync_datagrams_refused_total",
              "Sync datagrams refused: unknown_peer (source not a configured peer), bad_mac "
              "(wrong key or altered), malformed, own_node (this node's id), replay.",
              {{"reason", reason}}, double(it == st.refused.end() ? 0 : it->second));
  }
  m.counter("ikelb_sync_datagrams_total", "Sync datagrams sent and received.",
            {{"direction", "sent"}}, double(st.datagrams_sent));
  m.counter("ikelb_sync_datagrams_total", "Sync datagrams sent and received.",
            {{"direction", "received"}}, double(st.datagrams_received));
  m.counter("ikelb_sync_send_errors_total",
            "Sync datagrams that could not be sent (socket buffer full, no route).", {},
            double(st.send_errors));
  m.gauge("ikelb_sync_queue_records", "Affinity records waiting to be sent (rate cap).", {},
          double(st.queue_depth));
  m.counter("ikelb_sync_snapshots_served_total", "Full-table snapshots sent to joining peers.", {},
            double(st.snapshots_served));
  for (SyncSnapshot state : {SyncSnapshot::kNotNeeded, SyncSnapshot::kWaiting,
                             SyncSnapshot::kReceived, SyncSnapshot::kTimedOut})
    m.gauge("ikelb_sync_snapshot_state",
            "1 for this node's snapshot state at start: not_needed (table not empty or "
            "snapshot_on_join off), waiting (not announcing yet), received, timed_out.",
            {{"result", std::string(to_string(state))}}, st.snapshot == state ? 1 : 0);
}

}  // namespace

std::vector<MetricFamily> metric_families(const MetricsSnapshot& s) {
  Builder m;
  for (const auto& v : s.virtual_servers) {
    Labels vs{{"virtual_server", v.name}};
    for (uint32_t d = 0; d < IKELB_DIR_MAX; d++) {
      m.counter("ikelb_virtual_server_packets_total", "Packets forwarded by the data path.",
                with(vs, "direction", kDirections[d]), double(v.traffic.packets[d]));
      m.counter("ikelb_virtual_server_bytes_total",
                "Bytes (Ethernet frames as received) forwarded by the data path.",
                with(vs, "direction", kDirections[d]), double(v.traffic.bytes[d]));
    }
    m.gauge("ikelb_virtual_server_healthy_backends",
            "Backends that take traffic: active, draining or drained (not down or disabled).", vs,
            double(v.healthy_backends));
    const std::pair<const char*, uint64_t> limiter[] = {
        {"admitted", v.edge.init_admitted},
        {"limited_source", v.edge.init_limited_source},
        {"limited_total", v.edge.init_limited_total}};
    for (const auto& [result, n] : limiter)
      m.counter("ikelb_ike_sa_init_limited_requests_total",
                "IKE_SA_INIT requests from sources without an established client that met the "
                "virtual server's ike_sa_init_limit, by result (limited_*: dropped).",
                with(vs, "result", result), double(n));
    m.gauge("ikelb_virtual_server_table_fingerprint",
            "Top 48 bits of the fingerprint of the virtual server's Maglev table and its inputs: "
            "equal on every node that sends each client to the same gateway.",
            vs, v.table_fingerprint);
  }
  for (const auto& b : s.backends) {
    Labels l = backend_labels(b);
    for (uint32_t d = 0; d < IKELB_DIR_MAX; d++) {
      m.counter("ikelb_backend_packets_total", "Packets forwarded to or from a backend.",
                with(l, "direction", kDirections[d]), double(b.stats.traffic.packets[d]));
      m.counter("ikelb_backend_bytes_total", "Bytes forwarded to or from a backend.",
                with(l, "direction", kDirections[d]), double(b.stats.traffic.bytes[d]));
    }
    if (b.pinned_clients)
      m.gauge("ikelb_backend_pinned_clients",
              "Clients pinned to the backend and seen within the affinity idle timeout (from "
              "the agent's last walk of the affinity table).",
              l, double(*b.pinned_clients));
    m.counter("ikelb_backend_new_clients_total",
              "Affinity entries created towards the backend (new or re-hashed clients).", l,
              double(b.stats.new_clients));
    m.counter("ikelb_failovers_total",
              "Pinned clients moved off the backend because it was down, disabled or removed.", l,
              double(b.stats.failovers_from));
    for (const char* st : kStates)
      m.gauge(std::string("ikelb_backend_state_") + st,
              std::string("1 if the backend is ") + st + ", else 0.", l, b.state == st ? 1 : 0);
    for (const char* reason : {"config", "operator", "probe"}) {
      auto it = b.state_changes.find(reason);
      m.counter("ikelb_backend_state_changes_total", "Backend state changes by cause.",
                with(l, "reason", reason), it == b.state_changes.end() ? 0 : double(it->second));
    }
    if (b.probe) {
      const auto& p = *b.probe;
      for (const auto& [result, n] : p.results)
        m.counter("ikelb_probe_results_total", "Finished health probes by result.",
                  with(l, "result", result), double(n));
      m.gauge("ikelb_probe_consecutive_failures", "Health probes failed in a row.", l,
              p.consecutive_fail);
      m.counter("ikelb_probe_retransmits_total", "Byte-identical probe retransmissions.", l,
                double(p.retransmits));
      ClientMetric h;
      h.label = l;
      h.histogram.sample_count = p.rtt_count;
      h.histogram.sample_sum = p.rtt_sum_seconds;
      for (size_t i = 0; i < ike::kRttBuckets.size(); i++)
        h.histogram.bucket.push_back({p.rtt_buckets[i], ike::kRttBuckets[i]});
      h.histogram.bucket.push_back({p.rtt_count, std::numeric_limits<double>::infinity()});
      m.family("ikelb_probe_rtt_seconds", "Round-trip time of answered health probes.",
               MetricType::Histogram)
          .metric.push_back(h);
    }
  }
  m.gauge("ikelb_node_drained", "1 while the operator has drained this node (ikelbctl node drain).",
          {}, s.node_drained ? 1 : 0);
  m.gauge("ikelb_node_ready",
          "1 if this node can serve every virtual server (attached, tables written, enough "
          "backends, not drained): what ikelbctl node ready answers.",
          {}, s.node_ready ? 1 : 0);
  {  // every virtual server and the error counter, also without an announce section (0)
    for (const auto& a : s.announce) {
      Labels vs{{"virtual_server", a.vs}};
      m.gauge("ikelb_virtual_server_announced",
              "1 if bird reports the virtual server's protocol up (the VIP announced by this "
              "node), 0 if down or unknown.",
              vs, a.announced.value_or(false) ? 1 : 0);
      m.gauge("ikelb_virtual_server_announce_wanted",
              "1 if this node should announce the virtual server, 0 if it should withdraw it.", vs,
              a.wanted ? 1 : 0);
      m.counter("ikelb_announce_changes_total",
                "Announcements and withdrawals this agent made in bird.",
                with(vs, "direction", "announce"), double(a.announces));
      m.counter("ikelb_announce_changes_total",
                "Announcements and withdrawals this agent made in bird.",
                with(vs, "direction", "withdraw"), double(a.withdraws));
    }
    m.counter("ikelb_announce_errors_total",
              "Failed exchanges with bird (unreachable, refused, unknown protocol, timeout).", {},
              double(s.announce_errors));
  }
  for (uint32_t o = 0; o < IKELB_OUTCOME_MAX; o++)
    m.counter("ikelb_datapath_packets_total",
              "Every packet the XDP program saw, by what it did (forward_*, pass_*, drop_*).",
              {{"reason", std::string(outcome_name(o))}}, double(s.outcomes[o]));
  const std::pair<uint32_t, const char*> lookups[] = {{IKELB_EV_AFFINITY_HIT, "hit"},
                                                      {IKELB_EV_AFFINITY_MISS, "miss"},
                                                      {IKELB_EV_AFFINITY_EXPIRED, "expired"},
                                                      {IKELB_EV_FAILOVER, "failover"}};
  for (const auto& [ev, result] : lookups)
    m.counter("ikelb_affinity_lookups_total",
              "Affinity table lookups for client packets by result (failover: the pinned "
              "backend could not take the client).",
              {{"result", result}}, double(s.events[ev]));
  m.counter("ikelb_maglev_probed_total",
            "New clients whose Maglev slot held a backend not taking new clients, served by a "
            "following slot.",
            {}, double(s.events[IKELB_EV_MAGLEV_PROBED]));
  for (const auto& [ev, direction] : {std::pair{IKELB_EV_ICMP_TO_BACKEND, "to_backend"},
                                      std::pair{IKELB_EV_ICMP_TO_CLIENT, "to_client"}})
    m.counter("ikelb_icmp_errors_translated_total",
              "ICMP errors about VIP traffic sent on translated: to_backend (addressed to a VIP, "
              "e.g. path MTU), to_client (a gateway's error about a client's packet).",
              {{"direction", direction}}, double(s.events[ev]));
  m.counter("ikelb_reply_fragments_learned_total",
            "First fragments of backend replies remembered to translate the later fragments.", {},
            double(s.events[IKELB_EV_REPLY_FRAGMENT_LEARNED]));
  spi_metrics(m, s);
  if (s.affinity_entries)
    m.gauge("ikelb_affinity_entries", "Entries in the affinity table (last walk).", {},
            double(*s.affinity_entries));
  m.gauge("ikelb_affinity_capacity", "Size of the affinity table.", {},
          double(s.affinity_capacity));
  m.counter("ikelb_config_reloads_total", "Configuration reloads by result.", {{"result", "ok"}},
            double(s.reloads_ok));
  m.counter("ikelb_config_reloads_total", "Configuration reloads by result.",
            {{"result", "rejected"}}, double(s.reloads_rejected));
  m.gauge("ikelb_config_last_reload_success_timestamp_seconds",
          "Unix time of the last configuration applied.", {}, s.last_reload_success_seconds);
  if (s.sync) sync_families(m, *s.sync);
  m.gauge("ikelb_build_info", "Version of ikelbd and id of the loaded XDP program.",
          {{"version", s.version}, {"bpf_prog_id", std::to_string(s.bpf_prog_id)}}, 1);
  return m.out;
}

std::vector<MetricFamily> SnapshotCollectable::Collect() const {
  std::optional<MetricsSnapshot> snap;
  try {
    snap = take_();
  } catch (...) {
  }
  if (!snap) {
    Builder m;
    m.gauge("ikelb_scrape_error", "1 if the agent could not produce metrics for this scrape.", {},
            1);
    return m.out;
  }
  return metric_families(*snap);
}

}  // namespace ikelb
