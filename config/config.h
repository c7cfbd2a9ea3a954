// The ikelbd configuration: JSON in, a validated Config out. Validation is a pure function of
// the document; it reports every error at once, each with the JSON pointer of the offending value
// (RFC 6901) and what is wrong, e.g.
//   /virtual_servers/0/backends/2/address: "10.0.0.300" is not an IP address
// Nothing is applied unless the whole document is valid.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "address.h"
#include "ha_config.h"
#include "spi_layout.h"

namespace ikelb {

enum class XdpMode { kNative, kGeneric };
enum class ProbeMode { kStateless, kFull, kNone };
// A backend's configured (administrative) state. `down` is never configured: probes decide it.
enum class ConfiguredState { kActive, kDraining, kDisabled };

std::string_view to_string(ConfiguredState s);  // "active", "draining", "disabled"
std::string_view to_string(ProbeMode m);        // "stateless", "full", "none"
std::string_view to_string(XdpMode m);          // "native", "generic"

// Defaults detect a dead gateway in under a second: after its last answer, the third failed
// probe ends at most 3 x (interval + jitter) + timeout = 810 ms later. Stateless probes leave no
// state on the gateway, so 5 probes a second per gateway cost it nothing but a reply.
struct HealthCheck {
  ProbeMode mode = ProbeMode::kStateless;
  uint32_t interval_ms = 200;
  uint32_t timeout_ms = 150;
  uint32_t rise = 2;
  uint32_t fall = 3;
  uint32_t jitter_ms = 20;
  uint16_t port = 500;                     // 500, or 4500 (non-ESP marker added)
  bool no_proposal_chosen_healthy = true;  // alive but refuses us: healthy (with a warning)
  std::optional<IpAddress> source;         // probe source address; default: kernel's choice
};

// A token bucket: `rate` requests per second on average, `burst` at once.
struct RateLimit {
  uint32_t rate = 0;
  uint32_t burst = 1;
  friend bool operator==(const RateLimit&, const RateLimit&) = default;
};

// Limits of new IKE_SA_INIT requests (responder SPI 0) to a virtual server, applied in XDP to
// sources without an established affinity entry. At least one of the two is set.
struct IkeInitLimit {
  std::optional<RateLimit> per_source;  // per IPv4 address or IPv6 prefix
  std::optional<RateLimit> total;       // all sources of the virtual server together
  uint32_t ipv6_prefix_len = 64;        // IPv6 sources sharing one per-source bucket
  friend bool operator==(const IkeInitLimit&, const IkeInitLimit&) = default;
};

// How a reply from a backend address is checked before it is translated to come from the VIP.
enum class ReversePathCheck { kStrict, kStrictMac, kOff };
std::string_view to_string(ReversePathCheck c);  // "strict", "strict_mac", "off"

struct BackendConfig {
  std::string name;
  IpAddress address;
  uint32_t weight = 100;
  // Present only when the config says so explicitly; then it wins over the operator state.
  std::optional<ConfiguredState> state;
  // The gateway id in its SPIs (spi_routing.labels): 1..2^id_bits - 1, unique in the server.
  std::optional<uint32_t> spi_id;
};

struct VirtualServerConfig {
  std::string name;
  IpAddress address;
  std::vector<uint16_t> ports{500, 4500};
  bool esp = true;
  uint32_t maglev_table_size = 65537;
  HealthCheck health_check;
  std::optional<IkeInitLimit> ike_sa_init_limit;
  std::optional<SpiRoutingConfig> spi_routing;  // spi_layout.h; absent: SPI routing off
  std::vector<BackendConfig> backends;
};

struct Config {
  std::vector<std::string> interfaces;
  XdpMode xdp_mode = XdpMode::kNative;
  std::string bpffs = "/sys/fs/bpf/ikelb";  // pin directory
  std::string admin_socket = "/run/ikelb/ikelb.sock";
  std::optional<std::string> admin_tcp_listen;  // "host:port"; needs admin_token_file
  std::optional<std::string> admin_token_file;  // bearer token for the TCP listener
  std::optional<std::string> metrics_listen = "127.0.0.1:9712";  // null disables
  std::optional<std::string> health_listen = "127.0.0.1:9714";   // /healthz, /readyz; null disables
  uint32_t affinity_idle_timeout_s = 3600;                       // 0: never expire by age
  uint32_t affinity_max_entries = 1048576;
  std::string log_level = "warning";  // "debug", "info", "warning", "error"
  ReversePathCheck reverse_path_check = ReversePathCheck::kStrict;  // "edge.reverse_path_check"
  std::vector<VirtualServerConfig> virtual_servers;
  std::optional<AnnounceConfig> announce;  // ha_config.h
  std::optional<SyncConfig> sync;          // ha_config.h
};

struct ConfigError {
  std::string path;     // JSON pointer, "" for the document itself
  std::string message;  // what is wrong
  std::string str() const { return (path.empty() ? "/" : path) + ": " + message; }
  friend bool operator==(const ConfigError&, const ConfigError&) = default;
};

struct ConfigResult {
  std::optional<Config> config;     // set only when errors is empty
  std::vector<ConfigError> errors;  // every error found, in document order
};

// Parses JSON text and validates it. Never throws on bad input.
ConfigResult parse_config(std::string_view json_text);

// Reads `path` and calls parse_config. An unreadable file is one error with path "".
ConfigResult parse_config_file(const std::string& path);

// A listener address as written in "admin.tcp_listen", "metrics.listen" and "health.listen":
// "127.0.0.1:9712" or "[::1]:9712". parse_listen_address accepts exactly what the validator
// accepts.
struct ListenAddress {
  IpAddress address;
  uint16_t port = 0;
};
std::optional<ListenAddress> parse_listen_address(std::string_view text);

// Checks that every configured interface exists (done at apply time, not in parse_config, so
// that configs can be validated on another machine). `exists` answers for one name.
template <typename Exists>
std::vector<ConfigError> check_interfaces(const Config& config, Exists&& exists) {
  std::vector<ConfigError> errors;
  for (size_t i = 0; i < config.interfaces.size(); i++)
    if (!exists(config.interfaces[i]))
      errors.push_back({"/interfaces/" + std::to_string(i),
                        "interface \"" + config.interfaces[i] + "\" does not exist"});
  return errors;
}

// Reads the sync key file named by the config (sync.key_file): the key, or the error (path
// "/sync/key_file"). Done at start and reload, not in parse_config, like check_interfaces.
std::variant<std::vector<uint8_t>, ConfigError> read_sync_key(const SyncConfig& sync);

// One line for `ikelbd --check`: "2 virtual servers, 7 backends, 1 interface".
std::string summary(const Config& config);

}  // namespace ikelb
