// Prometheus metrics. At scrape time the exposer's thread asks the agent's loop for a
// MetricsSnapshot (BPF per-CPU counters summed right then, controller and prober state read on
// the loop thread, so nothing races and nothing is stale), and metric_families() turns it into
// the text format's families. Names follow the Prometheus guide: ikelb_ prefix, base units,
// _total on counters; labels are virtual_server, backend, direction, reason, result, decision and
// event, never a client address (build_info carries the usual version labels).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "ikelb_abi.h"
#include "session.h"
#include "sync.h"

namespace ikelb {

struct BackendMetrics {
  std::string vs, name;
  std::string state;  // active, draining, drained, down, disabled
  ikelb_backend_stats stats{};
  std::optional<uint64_t> pinned_clients;
  std::map<std::string, uint64_t> state_changes;  // by reason
  std::optional<ike::SessionStatus> probe;
};

struct VirtualServerMetrics {
  std::string name;
  ikelb_traffic traffic{};
  size_t healthy_backends = 0;   // active or draining
  ikelb_vs_edge_stats edge{};    // the IKE_SA_INIT limiter
  double table_fingerprint = 0;  // fingerprint_metric_value() of its table
};

// One virtual server announced through bird (announcer.h).
struct AnnounceMetrics {
  std::string vs;
  bool wanted = false;
  std::optional<bool> announced;  // as bird reported it; unknown after an error
  uint64_t announces = 0, withdraws = 0;
};

struct MetricsSnapshot {
  std::vector<VirtualServerMetrics> virtual_servers;
  std::vector<BackendMetrics> backends;
  std::array<uint64_t, IKELB_OUTCOME_MAX> outcomes{};
  std::array<uint64_t, IKELB_EVENT_MAX> events{};
  std::optional<uint64_t> affinity_entries;
  std::optional<uint64_t> spi_owner_entries;  // learned SPI owners (issue 15), last walk
  uint64_t affinity_capacity = 0;
  uint64_t reloads_ok = 0, reloads_rejected = 0;
  double last_reload_success_seconds = 0;  // Unix time
  std::string version;
  uint32_t bpf_prog_id = 0;
  bool node_drained = false, node_ready = false;
  bool announce_configured = false;
  std::vector<AnnounceMetrics> announce;
  uint64_t announce_errors = 0;
  std::optional<SyncStats> sync;  // with a sync section only
};

std::vector<prometheus::MetricFamily> metric_families(const MetricsSnapshot& snapshot);

// A Collectable that obtains a snapshot through `take` (which the agent implements by posting
// to its loop and waiting). If `take` fails, the scrape gets only ikelb_scrape_error 1.
class SnapshotCollectable : public prometheus::Collectable {
 public:
  explicit SnapshotCollectable(std::function<std::optional<MetricsSnapshot>()> take)
      : take_(std::move(take)) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::function<std::optional<MetricsSnapshot>()> take_;
};

}  // namespace ikelb
