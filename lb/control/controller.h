// The control logic between a validated Config and the data path's maps: stable ids, Maglev
// tables written into the inactive half and switched with one update, backend states (config,
// operator, health), drain progress. No OS calls: everything goes through a MapWriter, and time
// through a Clock, so it is unit-tested with fakes.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"
#include "fingerprint.h"
#include "map_writer.h"

namespace ikelb {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::system_clock::time_point now() const = 0;
};

class SystemClock : public Clock {
 public:
  std::chrono::system_clock::time_point now() const override {
    return std::chrono::system_clock::now();
  }
};

// Whether an affinity entry last seen at `last_seen_ns` (bpf_ktime_get_ns) still pins its client
// at `now_ns`, as the data path judges it: idle 0 never expires, and an entry refreshed after
// `now_ns` was read is live.
constexpr bool affinity_live(uint64_t last_seen_ns, uint64_t now_ns, uint64_t idle_ns) {
  return idle_ns == 0 || last_seen_ns >= now_ns || now_ns - last_seen_ns <= idle_ns;
}

// The data path's form of a virtual server's IKE_SA_INIT limit (all zero: none).
ikelb_init_limit init_limit_entry(const std::optional<IkeInitLimit>& limit);
ikelb_edge_settings edge_entry(const Config& config);

enum class OperatorAction { kDrain, kUndrain, kDisable, kEnable };
std::optional<OperatorAction> parse_action(std::string_view word);

// An operator request that cannot be done as asked; `status` is the HTTP status to answer.
struct ControlError : std::runtime_error {
  ControlError(unsigned status, const std::string& what)
      : std::runtime_error(what), status(status) {}
  unsigned status;
};

// The reason label of a state change's cause: "operator", "probe" or "config".
std::string_view change_reason(std::string_view cause);

// The data-path state a backend gets from its administrative state and health.
// admin: the operator override if any, else the config's explicit state, else active.
uint8_t effective_state(uint8_t operator_state, uint8_t config_state, bool healthy);
std::string_view state_name(uint8_t datapath_state);  // "active", "draining", "down", ...

struct BackendView {
  std::string vs, name;
  IpAddress address;
  uint32_t id = 0, weight = 0;
  std::string state;           // active, draining, drained, down, disabled
  std::string detail;          // e.g. "draining (12 clients)"
  std::string admin_state;     // active, draining, disabled (what the config and operator want)
  std::string operator_state;  // none, drain, disable, enable
  bool healthy = true;
  std::string health_cause;
  std::optional<uint64_t> pinned_clients;  // from the last complete affinity scan
  std::optional<uint32_t> spi_id;          // the gateway id in its SPIs (spi_routing.labels)
  std::chrono::system_clock::time_point last_change{};
  std::string last_cause;
  std::map<std::string, uint64_t> changes;  // state changes by reason: config, operator, probe
};

struct VirtualServerView {
  std::string name;
  IpAddress address;
  uint32_t id = 0, table_size = 0, table_base = 0;
  size_t backends = 0, in_table = 0;
  uint64_t fingerprint = 0;  // of the table written last (fingerprint.h)
};

class Controller {
 public:
  Controller(MapWriter& maps, const Clock& clock);

  // Takes over what a previous agent left in the pinned maps: ids, operator states, health,
  // table regions. Returns a one-line description for the log ("" if nothing was there).
  std::string adopt();

  // Applies a validated config. The whole plan (ids, table space) is computed first; if it does
  // not fit, nothing is written and the errors say why. Returns the errors (empty = applied).
  std::vector<std::string> apply(const Config& config);

  // Operator actions on "NAME" or "VS/NAME". Throws ControlError (404 unknown, 409 ambiguous or
  // not applicable). Returns what was done.
  std::string act(std::string_view backend, OperatorAction action);

  // Probe verdicts (issue: health checks). Returns true if the data path changed.
  bool set_health(uint32_t id, bool healthy, const std::string& cause);

  // A complete affinity scan: live pinned clients per backend id.
  void set_pinned_counts(const std::map<uint32_t, uint64_t>& counts);

  std::vector<BackendView> backends() const;
  std::vector<VirtualServerView> virtual_servers() const;
  uint64_t affinity_idle_ns() const { return settings_.affinity_idle_ns; }
  std::optional<uint32_t> backend_id(std::string_view ref) const;  // NAME or VS/NAME

 private:
  struct Vs {
    uint32_t id = 0;
    VirtualServerConfig cfg;
    uint32_t region_base = 0, table_size = 0;
    uint32_t table_base = 0;   // active half
    bool written = false;      // has a table in the data path
    uint64_t fingerprint = 0;  // of the table written last
  };
  struct Backend {
    uint32_t id = 0;
    std::string vs;
    uint32_t vs_id = 0;
    BackendConfig cfg;
    uint8_t operator_state = IKELB_OPERATOR_NONE;
    uint8_t config_state = IKELB_CONFIG_UNSET;
    bool healthy = true;
    std::string health_cause;
    uint8_t written_state = IKELB_BACKEND_UNUSED;
    std::optional<uint64_t> pinned;
    std::chrono::system_clock::time_point changed{};
    std::string cause;
    std::map<std::string, uint64_t> changes;
  };

  uint32_t find_backend(std::string_view ref) const;  // throws ControlError
  void write_backend(Backend& b, const std::string& cause);
  void write_state_change(Backend& b, const std::string& cause);
  void write_table(Vs& vs);
  std::vector<uint32_t> build_table(const Vs& vs,
                                    std::vector<FingerprintMember>* members = nullptr) const;
  ikelb_backend_meta meta_of(const Backend& b) const;
  // SPI routing (issue 15): what spi_routing and spi_labels hold for one virtual server.
  struct SpiState {
    ikelb_spi_routing routing{};
    std::map<uint32_t, uint32_t> labels;  // gateway id -> backend id
  };
  void write_spi(uint32_t vs_id, const ikelb_spi_routing& want,
                 const std::map<uint32_t, uint32_t>& labels);

  MapWriter& maps_;
  const Clock& clock_;
  std::map<std::string, Vs> vs_;          // by name
  std::map<uint32_t, Backend> backends_;  // by id
  std::set<ServiceKey> services_;
  std::vector<IpAddress> reverse_;
  ikelb_settings settings_{};
  std::map<uint32_t, SpiState> spi_;  // by vs_id, as written
};

}  // namespace ikelb
