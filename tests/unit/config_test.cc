#include "config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace ikelb {

// Printed by gtest when an expectation fails, so a mismatch shows the full error text.
void PrintTo(const ConfigError& e, std::ostream* os) {
  *os << "{\"" << e.path << "\", \"" << e.message << "\"}";
}

namespace {

std::string errors_text(const std::vector<ConfigError>& errors) {
  std::string out;
  for (const auto& e : errors) out += "  " + e.str() + "\n";
  return out;
}

Config must_parse(const std::string& text) {
  ConfigResult r = parse_config(text);
  EXPECT_TRUE(r.errors.empty()) << errors_text(r.errors);
  EXPECT_TRUE(r.config.has_value());
  return r.config.value_or(Config{});
}

// ---------------------------------------------------------------------------------------------
// Invalid documents, each with the exact list of errors it must produce, in order.

struct InvalidCase {
  std::string name;
  std::string json;
  std::vector<ConfigError> errors;
};

// A virtual server with `backends` backends at 10.x.y.z addresses numbered from `first_backend`.
std::string vs_json(const std::string& name, const std::string& address, size_t backends,
                    size_t first_backend, const std::string& extra = "") {
  std::string s = "{\"name\": \"" + name + "\", \"address\": \"" + address + "\"" + extra +
                  ", \"maglev_table_size\": 1048573, \"backends\": [";
  for (size_t i = 0; i < backends; i++) {
    size_t n = first_backend + i;
    if (i) s += ", ";
    s += "{\"name\": \"gw" + std::to_string(i) + "\", \"address\": \"10." +
         std::to_string(n / 65536) + "." + std::to_string(n / 256 % 256) + "." +
         std::to_string(n % 256) + "\"}";
  }
  return s + "]}";
}

std::string ports_json(size_t first, size_t count) {
  std::string s = ", \"ports\": [";
  for (size_t p = 0; p < count; p++) s += (p ? ", " : "") + std::to_string(first + p);
  return s + "]";
}

// `count` virtual servers at 203.0.113.1.. with `backends` backends each and `extra` keys.
std::string document(size_t count, size_t backends, const std::string& extra = "") {
  std::string s = R"({"interfaces": ["eth0"], "virtual_servers": [)";
  for (size_t v = 0; v < count; v++) {
    if (v) s += ", ";
    s += vs_json("vs" + std::to_string(v), "203.0.113." + std::to_string(v + 1), backends,
                 v * backends, extra);
  }
  return s + "]}";
}

const InvalidCase kInvalid[] = {
    // --- syntax and document shape
    {"empty_document",
     "",
     {{"",
       "parse error at line 1, column 1: syntax error while parsing value - unexpected end of "
       "input; expected '[', '{', or a literal"}}},
    {"trailing_comma",
     R"({"interfaces": ["eth0"],})",
     {{"",
       "parse error at line 1, column 25: syntax error while parsing object key - unexpected '}'; "
       "expected string literal"}}},
    {"trailing_garbage",
     R"({} x)",
     {{"",
       "parse error at line 1, column 4: syntax error while parsing value - invalid literal; last "
       "read: '{} x'; expected end of input"}}},
    {"root_not_object", R"(["eth0"])", {{"", "expected an object, got array"}}},
    {"empty_object",
     R"({})",
     {{"", "missing required key \"interfaces\""},
      {"", "missing required key \"virtual_servers\""}}},
    {"too_deep", std::string(100, '['), {{"", "JSON is nested more than 64 levels deep"}}},

    // --- typos in keys at every level
    {"typo_top_level",
     R"({"intrfaces": ["eth0"], "interfaces": ["eth0"],
         "virtual_servers": [{"name": "v", "address": "203.0.113.10", "backends": [{"name": "a", "address": "10.0.0.1"}]}]})",
     {{"/intrfaces", "unknown key \"intrfaces\""}}},
    {"typo_admin_metrics_affinity",
     R"({"interfaces": ["eth0"], "admin": {"sockt": "/run/x.sock"}, "metrics": {"listn": "127.0.0.1:1"},
         "affinity": {"idle_timeout": 5},
         "virtual_servers": [{"name": "v", "address": "203.0.113.10", "backends": [{"name": "a", "address": "10.0.0.1"}]}]})",
     {{"/admin/sockt", "unknown key \"sockt\""},
      {"/metrics/listn", "unknown key \"listn\""},
      {"/affinity/idle_timeout", "unknown key \"idle_timeout\""}}},
    {"typo_virtual_server_and_missing_backends",
     R"({"interfaces": ["eth0"],
         "virtual_servers": [{"name": "v", "address": "203.0.113.10", "port": [500], "backend": []}]})",
     {{"/virtual_servers/0", "missing required key \"backends\""},
      {"/virtual_servers/0/port", "unknown key \"port\""},
      {"/virtual_servers/0/backend", "unknown key \"backend\""}}},
    {"typo_health_check_and_backend",
     R"({"interfaces": ["eth0"],
         "virtual_servers": [{"name": "v", "address": "203.0.113.10", "health_check": {"intervall_ms": 1000},
           "backends": [{"name": "a", "address": "10.0.0.1", "wieght": 5}]}]})",
     {{"/virtual_servers/0/health_check/intervall_ms", "unknown key \"intervall_ms\""},
      {"/virtual_servers/0/backends/0/wieght", "unknown key \"wieght\""}}},
    {"key_with_slash_and_tilde_escaped",
     R"({"interfaces": ["eth0"], "a/b~c": 1,
         "virtual_servers": [{"name": "v", "address": "203.0.113.10", "backends": [{"name": "a", "address": "10.0.0.1"}]}]})",
     {{"/a~1b~0c", "unknown key \"a/b~c\""}}},
    {"duplicate_key",
     R"({"interfaces": ["eth0"], "log_level": "info", "log_level": "debug",
         "virtual_servers": [{"name": "v", "address": "203.0.113.10", "backends": [{"name": "a", "address": "10.0.0.1"}]}]})",
     {{"/log_level", "duplicate key \"log_level\""}}},

    // --- interfaces
    {"interfaces_and_virtual_servers_wrong_types",
     R"({"interfaces": "eth0", "virtual_servers": {}})",
     {{"/interfaces", "expected an array, got string"},
      {"/virtual_servers", "expected an array, got object"}}},
    {"interfaces_bad_entries",
     R"({"interfaces": ["eth0", "", "averyveryverylongname", 7, "eth0", "eth/1", "eth:1", "."],
         "virtual_servers": [{"name": "v", "address": "203.0.113.10", "backends": [{"name": "a", "address": "10.0.0.1"}]}]})",
     {{"/interfaces/1", "interface name must not be empty"},
      {"/interfaces/2", "interface name \"averyveryverylongname\" is longer than 15 characters"},
      {"/interfaces/3", "expected a string, got number"},
      {"/interfaces/4", "duplicate interface \"eth0\""},
      {"/interfaces/5", "\"eth/1\" is not a valid interface name"},
      {"/interfaces/6", "\"eth:1\" is not a valid interface name"},
      {"/interfaces/7", "\".\" is not a valid interface name"}}},
    {"interfaces_empty_and_no_virtual_servers",
     R"({"interfaces": [], "virtual_servers": []})",
     {{"/interfaces", "must list at least one interface"},
      {"/virtual_servers", "must list at least one virtual server"}}},

    // --- top-level scalars
    {"xdp_mode_log_level_bpffs",
     R"({"interfaces": ["eth0"], "xdp_mode": "skb", "bpffs": "sys/fs/bpf", "log_level": "warn",
         "virtual_servers": [{"name": "v", "address": "203.0.113.10", "backends": [{"name": "a", "address": "10.0.0.1"}]}]})",
     {{"/xdp_mode", "must be \"native\" or \"generic\", got \"skb\""},
      {"/bpffs", "must be an absolute path, got \"sys/fs/bpf\""},
      {"/log_level", "must be one of \"debug\", \"info\", \"warning\", \"error\", got \"warn\""}}},
    {"wrong_types_top_level",
     R"({"interfaces": ["eth0"], "xdp_mode": 1, "bpffs": null, "admin": [], "metrics": true, "affinity": "x", "log_level": false,
         "virtual_servers": [{"name": "v", "address": "203.0.113.10", "backends": [{"name": "a", "address": "10.0.0.1"}]}]})",
     {{"/xdp_mode", "expected a string, got number"},
      {"/bpffs", "expected a string, got null"},
      {"/admin", "expected an object, got array"},
      {"/metrics", "expected an object, got boolean"},
      {"/affinity", "expected an object, got string"},
      {"/log_level", "expected a string, got boolean"}}},

    // --- admin and metrics
    {"admin_tcp_without_token",
     R"({"interfaces": ["eth0"], "admin": {"socket": "run/ikelb.sock", "tcp_listen": "127.0.0.1:9713"},
         "virtual_servers": [{"name": "v", "address": "203.0.113.10", "backends": [{"name": "a", "address": "10.0.0.1"}]}]})",
     {{"/admin/socket", "must be an absolute path, got \"run/ikelb.sock\""},
      {"/admin/tcp_listen",
       "requires \"token_file\": the TCP listener accepts only requests with a bearer token"}}},
    {"admin_listen_addresses",
     R"({"interfaces": ["eth0"], "admin": {"tcp_listen": "localhost:9713", "token_file": "token"},
         "metrics": {"listen": "127.0.0.1:0"},
         "virtual_servers": [{"name": "v", "address": "203.0.113.10", "backends": [{"name": "a", "address": "10.0.0.1"}]}]})",
     {{"/admin/tcp_listen",
       "\"localhost:9713\" is not \"address:port\" (IPv4 \"127.0.0.1:9712\" or IPv6 "
       "\"[::1]:9712\")"},
      {"/admin/token_file", "must be an absolute path, got \"token\""},
      {"/metrics/listen", "port in \"127.0.0.1:0\" must be between 1 and 65535"}}},
    {"health_listener",
     R"({"interfaces": ["eth0"], "health": {"listen": "127.0.0.1", "port": 1},
         "virtual_servers": [{"name": "v", "address": "203.0.113.10", "backends": [{"name": "a", "address": "10.0.0.1"}]}]})",
     {{"/health/listen",
       "\"127.0.0.1\" is not \"address:port\" (IPv4 \"127.0.0.1:9712\" or IPv6 \"[::1]:9712\")"},
      {"/health/port", "unknown key \"port\""}}},
    {"listen_forms",
     R"({"interfaces": ["eth0"], "admin": {"tcp_listen": "::1:9713", "token_file": "/t"},
         "metrics": {"listen": "[10.0.0.1]:80"},
         "virtual_servers": [{"name": "v", "address": "203.0.113.10", "backends": [{"name": "a", "address": "10.0.0.1"}]}]})",
     {{"/admin/tcp_listen",
       "\"::1:9713\" is not \"address:port\" (IPv4 \"127.0.0.1:9712\" or IPv6 \"[::1]:9712\")"},
      {"/metrics/listen",
       "\"[10.0.0.1]:80\" is not \"address:port\" (IPv4 \"127.0.0.1:9712\" or IPv6 "
       "\"[::1]:9712\")"}}},
    {"listen_port_too_big_and_socket_too_long",
     R"({"interfaces": ["eth0"], "admin": {"socket": "/run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock"},
         "metrics": {"listen": "[::1]:65536"},
         "virtual_servers": [{"name": "v", "address": "203.0.113.10", "backends": [{"name": "a", "address": "10.0.0.1"}]}]})",
     {{"/admin/socket", "a unix socket path can be at most 107 bytes long, got 117"},
      {"/metrics/listen", "port in \"[::1]:65536\" must be between 1 and 65535"}}},

    // --- affinity
    {"affinity_ranges",
     R"({"interfaces": ["eth0"], "affinity": {"idle_timeout_s": -1, "max_entries": 1000},
         "virtual_servers": [{"name": "v", "address": "203.0.113.10", "backends": [{"name": "a", "address": "10.0.0.1"}]}]})",
     {{"/affinity/idle_timeout_s", "must be between 0 and 31536000, got -1"},
      {"/affinity/max_entries", "must be between 1024 and 16777216, got 1000"}}},
    {"affinity_non_integers",
     R"({"interfaces": ["eth0"], "affinity": {"idle_timeout_s": 1.5, "max_entries": "1048576"},
         "virtual_servers": [{"name": "v", "address": "203.0.113.10", "backends": [{"name": "a", "address": "10.0.0.1"}]}]})",
     {{"/affinity/idle_timeout_s", "expected an integer, got 1.5"},
      {"/affinity/max_entries", "expected an integer, got string"}}},

    // --- virtual server fields
    {"virtual_server_missing_everything",
     R"({"interfaces": ["eth0"], "virtual_servers": [{}, 5]})",
     {{"/virtual_servers/0", "missing required key \"name\""},
      {"/virtual_servers/0", "missing required key \"address\""},
      {"/virtual_servers/0", "missing required key \"backends\""},
      {"/virtual_servers/1", "expected an object, got number"}}},
    {"virtual_server_bad_name_and_address",
     R"({"interfaces": ["eth0"],
         "virtual_servers": [{"name": "my vpn", "address": "203.0.113.300", "backends": [{"name": "a", "address": "10.0.0.1"}]}]})",
     {{"/virtual_servers/0/name",
       "\"my vpn\" is not a valid name (1 to 63 characters: letters, digits, \"_\", \".\", \"-\")"},
      {"/virtual_servers/0/address", "\"203.0.113.300\" is not an IP address"}}},
    {"virtual_server_duplicate_name",
     R"({"interfaces": ["eth0"], "virtual_servers": [
         {"name": "vpn", "address": "203.0.113.10", "backends": [{"name": "a", "address": "10.0.0.1"}]},
         {"name": "vpn", "address": "203.0.113.11", "backends": [{"name": "a", "address": "10.0.0.2"}]}]})",
     {{"/virtual_servers/1/name", "duplicate virtual server name \"vpn\""}}},
    {"ports_bad",
     R"({"interfaces": ["eth0"], "virtual_servers": [
         {"name": "v", "address": "203.0.113.10", "ports": [500, 0, 500, 65536, "4500", 4500.0], "esp": "yes",
          "backends": [{"name": "a", "address": "10.0.0.1"}]}]})",
     {{"/virtual_servers/0/ports/1", "must be between 1 and 65535, got 0"},
      {"/virtual_servers/0/ports/2", "duplicate port 500"},
      {"/virtual_servers/0/ports/3", "must be between 1 and 65535, got 65536"},
      {"/virtual_servers/0/ports/4", "expected an integer, got string"},
      {"/virtual_servers/0/ports/5", "expected an integer, got 4500.0"},
      {"/virtual_servers/0/esp", "expected a boolean, got string"}}},
    {"ports_empty_without_esp",
     R"({"interfaces": ["eth0"], "virtual_servers": [
         {"name": "v", "address": "203.0.113.10", "ports": [], "esp": false,
          "backends": [{"name": "a", "address": "10.0.0.1"}]}]})",
     {{"/virtual_servers/0/ports", "must not be empty unless \"esp\" is true"}}},
    {"maglev_not_prime_and_too_big",
     R"({"interfaces": ["eth0"], "virtual_servers": [
         {"name": "v", "address": "203.0.113.10", "maglev_table_size": 65536,
          "backends": [{"name": "a", "address": "10.0.0.1"}]},
         {"name": "w", "address": "203.0.113.11", "maglev_table_size": 2000003,
          "backends": [{"name": "a", "address": "10.0.0.2"}]}]})",
     {{"/virtual_servers/0/maglev_table_size", "65536 is not prime (the next prime is 65537)"},
      {"/virtual_servers/1/maglev_table_size", "must be between 2 and 1048573, got 2000003"}}},
    {"maglev_too_small_for_backends",
     R"({"interfaces": ["eth0"], "virtual_servers": [
         {"name": "v", "address": "203.0.113.10", "maglev_table_size": 211,
          "backends": [{"name": "a", "address": "10.0.0.1"}, {"name": "b", "address": "10.0.0.2"},
                       {"name": "c", "address": "10.0.0.3"}]}]})",
     {{"/virtual_servers/0/maglev_table_size",
       "must be at least 100 times the number of backends (3 backends: at least 300), got 211"}}},

    // --- health checks
    {"health_check_ranges",
     R"({"interfaces": ["eth0"], "virtual_servers": [
         {"name": "v", "address": "203.0.113.10",
          "health_check": {"mode": "icmp", "interval_ms": 50, "timeout_ms": 70000, "rise": 0, "fall": 101,
                           "jitter_ms": -5, "port": 501, "no_proposal_chosen_healthy": "true", "source": "10.0.0.300"},
          "backends": [{"name": "a", "address": "10.0.0.1"}]}]})",
     {{"/virtual_servers/0/health_check/mode",
       "must be one of \"stateless\", \"full\", \"none\", got \"icmp\""},
      {"/virtual_servers/0/health_check/interval_ms", "must be between 100 and 3600000, got 50"},
      {"/virtual_servers/0/health_check/timeout_ms", "must be between 10 and 60000, got 70000"},
      {"/virtual_servers/0/health_check/rise", "must be between 1 and 100, got 0"},
      {"/virtual_servers/0/health_check/fall", "must be between 1 and 100, got 101"},
      {"/virtual_servers/0/health_check/jitter_ms", "must be between 0 and 1800000, got -5"},
      {"/virtual_servers/0/health_check/port", "must be 500 or 4500, got 501"},
      {"/virtual_servers/0/health_check/no_proposal_chosen_healthy",
       "expected a boolean, got string"},
      {"/virtual_servers/0/health_check/source", "\"10.0.0.300\" is not an IP address"}}},
    {"health_check_relations",
     R"({"interfaces": ["eth0"], "virtual_servers": [
         {"name": "v", "address": "203.0.113.10",
          "health_check": {"interval_ms": 1000, "timeout_ms": 1000, "jitter_ms": 501},
          "backends": [{"name": "a", "address": "10.0.0.1"}]},
         {"name": "w", "address": "203.0.113.11",
          "health_check": {"interval_ms": 150},
          "backends": [{"name": "a", "address": "10.0.0.2"}]}]})",
     {{"/virtual_servers/0/health_check/timeout_ms",
       "must be less than interval_ms (1000), got 1000"},
      {"/virtual_servers/0/health_check/jitter_ms",
       "must be between 0 and 500 (half of interval_ms), got 501"},
      {"/virtual_servers/1/health_check/interval_ms",
       "must be greater than timeout_ms (150 by default), got 150"}}},
    {"health_check_full_mode_interval",
     R"({"interfaces": ["eth0"], "virtual_servers": [
         {"name": "v", "address": "203.0.113.10",
          "health_check": {"mode": "full", "interval_ms": 5000},
          "backends": [{"name": "a", "address": "10.0.0.1"}]},
         {"name": "w", "address": "203.0.113.11",
          "health_check": {"mode": "full"},
          "backends": [{"name": "a", "address": "10.0.0.2"}]}]})",
     {{"/virtual_servers/0/health_check/interval_ms",
       "mode \"full\" needs interval_ms of at least 12000, got 5000: every full IKE_SA_INIT leaves "
       "a half-open IKE SA on the gateway for about 30 s, and strongSwan's per-source "
       "cookie/blocking thresholds (cookie_threshold_ip, block_threshold) would soon answer the "
       "prober with COOKIE or drop it; use mode \"stateless\" for fast probes"},
      {"/virtual_servers/1/health_check/mode",
       "mode \"full\" needs interval_ms of at least 12000, got 200 (the default): every full "
       "IKE_SA_INIT leaves a half-open IKE SA on the gateway for about 30 s, and strongSwan's "
       "per-source cookie/blocking thresholds (cookie_threshold_ip, block_threshold) would soon "
       "answer the prober with COOKIE or drop it; use mode \"stateless\" for fast probes"}}},
    {"health_check_source_family",
     R"({"interfaces": ["eth0"], "virtual_servers": [
         {"name": "v", "address": "2001:db8::10", "health_check": {"source": "10.0.0.2"},
          "backends": [{"name": "a", "address": "2001:db8::11"}]}]})",
     {{"/virtual_servers/0/health_check/source",
       "\"10.0.0.2\" is an IPv4 address, but the virtual server's address is IPv6"}}},
    {"health_check_not_object_and_port_type",
     R"({"interfaces": ["eth0"], "virtual_servers": [
         {"name": "v", "address": "203.0.113.10", "health_check": "stateless",
          "backends": [{"name": "a", "address": "10.0.0.1"}]},
         {"name": "w", "address": "203.0.113.11", "health_check": {"port": "500"},
          "backends": [{"name": "a", "address": "10.0.0.2"}]}]})",
     {{"/virtual_servers/0/health_check", "expected an object, got string"},
      {"/virtual_servers/1/health_check/port", "expected an integer, got string"}}},

    // --- backends
    {"backends_empty_and_wrong_type",
     R"({"interfaces": ["eth0"], "virtual_servers": [
         {"name": "v", "address": "203.0.113.10", "backends": []},
         {"name": "w", "address": "203.0.113.11", "backends": {"name": "a"}}]})",
     {{"/virtual_servers/0/backends", "must list at least one backend"},
      {"/virtual_servers/1/backends", "expected an array, got object"}}},
    {"backend_fields",
     R"({"interfaces": ["eth0"], "virtual_servers": [
         {"name": "v", "address": "203.0.113.10", "backends": [
           {"address": "10.0.0.1"},
           {"name": "b", "address": "10.0.0.300", "weight": 65536, "state": "down"},
           {"name": "c", "address": "10.0.0.3", "weight": 1.5, "state": "drained"},
           {"name": "", "address": 10, "weight": true, "state": 1},
           "gw5"]}]})",
     {{"/virtual_servers/0/backends/0", "missing required key \"name\""},
      {"/virtual_servers/0/backends/1/address", "\"10.0.0.300\" is not an IP address"},
      {"/virtual_servers/0/backends/1/weight", "must be between 0 and 65535, got 65536"},
      {"/virtual_servers/0/backends/1/state",
       "\"down\" cannot be configured (health probes decide it); use \"disabled\""},
      {"/virtual_servers/0/backends/2/weight", "expected an integer, got 1.5"},
      {"/virtual_servers/0/backends/2/state",
       "must be one of \"active\", \"draining\", \"disabled\", got \"drained\""},
      {"/virtual_servers/0/backends/3/name",
       "\"\" is not a valid name (1 to 63 characters: letters, digits, \"_\", \".\", \"-\")"},
      {"/virtual_servers/0/backends/3/address", "expected a string, got number"},
      {"/virtual_servers/0/backends/3/weight", "expected an integer, got boolean"},
      {"/virtual_servers/0/backends/3/state", "expected a string, got number"},
      {"/virtual_servers/0/backends/4", "expected an object, got string"}}},
    {"backend_duplicate_name_and_address_in_one_server",
     R"({"interfaces": ["eth0"], "virtual_servers": [
         {"name": "v", "address": "203.0.113.10", "backends": [
           {"name": "gw1", "address": "10.0.0.1"}, {"name": "gw1", "address": "10.0.0.2"},
           {"name": "gw3", "address": "10.0.0.1"}]}]})",
     {{"/virtual_servers/0/backends/1/name",
       "duplicate backend name \"gw1\" in this virtual server"},
      {"/virtual_servers/0/backends/2/address",
       "\"10.0.0.1\" is listed twice in this virtual server"}}},
    {"backend_family_mismatch",
     R"({"interfaces": ["eth0"], "virtual_servers": [
         {"name": "v", "address": "203.0.113.10", "backends": [{"name": "a", "address": "2001:db8::1"}]}]})",
     {{"/virtual_servers/0/backends/0/address",
       "\"2001:db8::1\" is an IPv6 address, but the virtual server's address is IPv4"}}},
    {"backend_in_two_virtual_servers",
     R"({"interfaces": ["eth0"], "virtual_servers": [
         {"name": "v", "address": "203.0.113.10", "backends": [{"name": "a", "address": "10.0.0.1"}]},
         {"name": "w", "address": "203.0.113.11", "backends": [{"name": "a", "address": "10.0.0.1"}]}]})",
     {{"/virtual_servers/1/backends/0/address",
       "\"10.0.0.1\" is already a backend of virtual server \"v\": a gateway address can belong to "
       "one virtual server only, because replies are translated by their source address"}}},
    {"backend_is_a_vip",
     R"({"interfaces": ["eth0"], "virtual_servers": [
         {"name": "v", "address": "203.0.113.10", "backends": [{"name": "a", "address": "203.0.113.11"},
                                                              {"name": "b", "address": "203.0.113.10"}]},
         {"name": "w", "address": "203.0.113.11", "backends": [{"name": "a", "address": "10.0.0.2"}]}]})",
     {{"/virtual_servers/0/backends/0/address",
       "\"203.0.113.11\" is the address of virtual server \"w\""},
      {"/virtual_servers/0/backends/1/address",
       "\"203.0.113.10\" is the address of virtual server \"v\""}}},

    // --- VIP sharing
    {"vip_same_ports",
     R"({"interfaces": ["eth0"], "virtual_servers": [
         {"name": "v", "address": "203.0.113.10", "backends": [{"name": "a", "address": "10.0.0.1"}]},
         {"name": "w", "address": "203.0.113.10", "ports": [4500, 500], "esp": false,
          "backends": [{"name": "a", "address": "10.0.0.2"}]}]})",
     {{"/virtual_servers/1/ports/0",
       "UDP 203.0.113.10:4500 is already served by virtual server \"v\""},
      {"/virtual_servers/1/ports/1",
       "UDP 203.0.113.10:500 is already served by virtual server \"v\""}}},
    {"vip_default_ports_and_esp",
     R"({"interfaces": ["eth0"], "virtual_servers": [
         {"name": "v", "address": "2001:db8::10", "backends": [{"name": "a", "address": "2001:db8::1"}]},
         {"name": "w", "address": "2001:db8::10", "backends": [{"name": "a", "address": "2001:db8::2"}]}]})",
     {{"/virtual_servers/1",
       "UDP [2001:db8::10]:500 is already served by virtual server \"v\" (default ports 500, "
       "4500)"},
      {"/virtual_servers/1",
       "UDP [2001:db8::10]:4500 is already served by virtual server \"v\" (default ports 500, "
       "4500)"},
      {"/virtual_servers/1",
       "ESP to 2001:db8::10 is already served by virtual server \"v\" (\"esp\" defaults to "
       "true)"}}},
    {"vip_esp_twice",
     R"({"interfaces": ["eth0"], "virtual_servers": [
         {"name": "v", "address": "203.0.113.10", "backends": [{"name": "a", "address": "10.0.0.1"}]},
         {"name": "w", "address": "203.0.113.10", "ports": [], "esp": true,
          "backends": [{"name": "a", "address": "10.0.0.2"}]}]})",
     {{"/virtual_servers/1/esp", "ESP to 203.0.113.10 is already served by virtual server \"v\""}}},
    {"vip_udp_on_shared_address",
     R"({"interfaces": ["eth0"], "virtual_servers": [
         {"name": "v", "address": "203.0.113.10", "ports": [500], "esp": false, "backends": [{"name": "a", "address": "10.0.0.1"}]},
         {"name": "w", "address": "203.0.113.10", "ports": [4500], "esp": true,
          "backends": [{"name": "a", "address": "10.0.0.2"}]}]})",
     {{"/virtual_servers/1/ports/0",
       "203.0.113.10 already has UDP ports in virtual server \"v\": two virtual servers cannot "
       "both serve UDP on one address, because non-first IP fragments carry no port"}}},

    // --- capacity
    {"too_many_virtual_servers",
     document(65, 63),  // 4095 backends: only the count is over
     {{"/virtual_servers", "at most 64 virtual servers are supported, got 65"}}},
    {"too_many_backends_in_one_server",
     document(1, 4097),
     {{"/virtual_servers/0/backends", "at most 4096 backends per virtual server, got 4097"}}},
    {"too_many_vip_entries",
     document(3, 1, ports_json(1000, 400)),  // 3 * (400 + 1 + 1) = 1206
     {{"/virtual_servers/2/ports",
       "too many VIP entries: this virtual server brings the (address, protocol, port) entries to "
       "1206, at most 1024 (one per port, one per address for fragments, one for ESP)"}}},

    // --- several rules at once, reported in document order whatever order the checks run in
    // --- the edge: reverse-path check and IKE_SA_INIT limits
    {"edge_bad_reverse_path_check",
     R"({"interfaces": ["eth0"], "edge": {"reverse_path_check": "loose", "rp": 1},
         "virtual_servers": [{"name": "v", "address": "203.0.113.10", "backends": [{"name": "a", "address": "10.0.0.1"}]}]})",
     {{"/edge/reverse_path_check",
       "must be one of \"strict\", \"strict_mac\", \"off\", got \"loose\""},
      {"/edge/rp", "unknown key \"rp\""}}},
    {"init_limit_empty_and_bad_rates",
     R"({"interfaces": ["eth0"], "virtual_servers": [
         {"name": "v", "address": "203.0.113.10", "ike_sa_init_limit": {},
          "backends": [{"name": "a", "address": "10.0.0.1"}]},
         {"name": "w", "address": "203.0.113.11",
          "ike_sa_init_limit": {"per_source": {"rate": 0, "burst": 0}, "total": {"burst": 5}, "ipv6_prefix_len": 64},
          "backends": [{"name": "b", "address": "10.0.0.2"}]}]})",
     {{"/virtual_servers/0/ike_sa_init_limit", "needs \"per_source\", \"total\" or both"},
      {"/virtual_servers/1/ike_sa_init_limit/per_source/rate",
       "must be between 1 and 10000000, got 0"},
      {"/virtual_servers/1/ike_sa_init_limit/per_source/burst",
       "must be between 1 and 10000000, got 0"},
      {"/virtual_servers/1/ike_sa_init_limit/total", "missing required key \"rate\""},
      {"/virtual_servers/1/ike_sa_init_limit/ipv6_prefix_len",
       "applies to IPv6 sources, but the virtual server's address is IPv4"}}},
    {"init_limit_ipv6_prefix_without_per_source",
     R"({"interfaces": ["eth0"], "virtual_servers": [
         {"name": "v", "address": "2001:db8::10", "ike_sa_init_limit": {"total": {"rate": 100}, "ipv6_prefix_len": 129},
          "backends": [{"name": "a", "address": "2001:db8::11"}]},
         {"name": "w", "address": "2001:db8::20", "ike_sa_init_limit": {"total": {"rate": 100}, "ipv6_prefix_len": 56},
          "backends": [{"name": "b", "address": "2001:db8::21"}]}]})",
     {{"/virtual_servers/0/ike_sa_init_limit/ipv6_prefix_len",
       "must be between 1 and 128, got 129"},
      {"/virtual_servers/1/ike_sa_init_limit/ipv6_prefix_len",
       "applies to \"per_source\" buckets, and there is no \"per_source\""}}},
    {"many_errors_in_document_order",
     R"({"virtual_servers": [
           {"backends": [{"name": "gw1", "address": "10.0.0.1", "weight": -1}], "address": "203.0.113.10",
            "name": "v", "ports": [500, 500], "esp": 1},
           {"name": "w", "address": "203.0.113.10", "backends": [{"name": "gw1", "address": "10.0.0.1"}]}],
         "interfaces": [1], "xdp_mode": "native", "extra": {}})",
     {{"/virtual_servers/0/backends/0/weight", "must be between 0 and 65535, got -1"},
      {"/virtual_servers/0/ports/1", "duplicate port 500"},
      {"/virtual_servers/0/esp", "expected a boolean, got number"},
      {"/virtual_servers/1",
       "UDP 203.0.113.10:500 is already served by virtual server \"v\" (default ports 500, 4500)"},
      {"/virtual_servers/1/backends/0/address",
       "\"10.0.0.1\" is already a backend of virtual server \"v\": a gateway address can belong to "
       "one virtual server only, because replies are translated by their source address"},
      {"/interfaces/0", "expected a string, got number"},
      {"/extra", "unknown key \"extra\""}}},
};

void PrintTo(const InvalidCase& c, std::ostream* os) {
  *os << c.name;
}

class InvalidConfigTest : public testing::TestWithParam<InvalidCase> {};

TEST_P(InvalidConfigTest, ReportsExactlyTheseErrors) {
  const InvalidCase& c = GetParam();
  ConfigResult r = parse_config(c.json);
  EXPECT_FALSE(r.config.has_value());
  EXPECT_EQ(r.errors, c.errors) << "got:\n" << errors_text(r.errors);
}

INSTANTIATE_TEST_SUITE_P(Corpus, InvalidConfigTest, testing::ValuesIn(kInvalid),
                         [](const testing::TestParamInfo<InvalidCase>& info) {
                           return info.param.name;
                         });

TEST(InvalidConfigCorpus, IsLargeAndNamesAreUnique) {
  std::set<std::string> names;
  for (const auto& c : kInvalid) EXPECT_TRUE(names.insert(c.name).second) << c.name;
  EXPECT_GE(names.size(), 35u);
}

// ---------------------------------------------------------------------------------------------
// Valid documents.

TEST(ParseConfig, FillsDefaults) {
  Config c = must_parse(R"({"interfaces": ["eth0"], "virtual_servers": [
      {"name": "vpn", "address": "203.0.113.10", "backends": [{"name": "gw1", "address": "10.0.0.11"}]}]})");
  EXPECT_EQ(c.interfaces, std::vector<std::string>{"eth0"});
  EXPECT_EQ(c.xdp_mode, XdpMode::kNative);
  EXPECT_EQ(c.bpffs, "/sys/fs/bpf/ikelb");
  EXPECT_EQ(c.admin_socket, "/run/ikelb/ikelb.sock");
  EXPECT_FALSE(c.admin_tcp_listen);
  EXPECT_FALSE(c.admin_token_file);
  EXPECT_EQ(c.metrics_listen, "127.0.0.1:9712");
  EXPECT_EQ(c.health_listen, "127.0.0.1:9714");
  EXPECT_EQ(c.affinity_idle_timeout_s, 3600u);
  EXPECT_EQ(c.affinity_max_entries, 1048576u);
  EXPECT_EQ(c.log_level, "warning");
  ASSERT_EQ(c.virtual_servers.size(), 1u);
  const VirtualServerConfig& vs = c.virtual_servers[0];
  EXPECT_EQ(vs.name, "vpn");
  EXPECT_EQ(vs.address, IpAddress::must_parse("203.0.113.10"));
  EXPECT_EQ(vs.ports, (std::vector<uint16_t>{500, 4500}));
  EXPECT_TRUE(vs.esp);
  EXPECT_EQ(vs.maglev_table_size, 65537u);
  EXPECT_EQ(vs.health_check.mode, ProbeMode::kStateless);
  EXPECT_EQ(vs.health_check.interval_ms, 200u);
  EXPECT_EQ(vs.health_check.timeout_ms, 150u);
  EXPECT_EQ(vs.health_check.rise, 2u);
  EXPECT_EQ(vs.health_check.fall, 3u);
  EXPECT_EQ(vs.health_check.jitter_ms, 20u);
  EXPECT_EQ(vs.health_check.port, 500);
  EXPECT_TRUE(vs.health_check.no_proposal_chosen_healthy);
  EXPECT_FALSE(vs.health_check.source);
  ASSERT_EQ(vs.backends.size(), 1u);
  EXPECT_EQ(vs.backends[0].name, "gw1");
  EXPECT_EQ(vs.backends[0].address, IpAddress::must_parse("10.0.0.11"));
  EXPECT_EQ(vs.backends[0].weight, 100u);
  EXPECT_FALSE(vs.backends[0].state.has_value());
}

TEST(ParseConfig, ReadsEveryField) {
  Config c = must_parse(R"({
    "interfaces": ["eth0", "eth1"], "xdp_mode": "generic", "bpffs": "/sys/fs/bpf/x",
    "admin": {"socket": "/run/x.sock", "tcp_listen": "[::1]:9713", "token_file": "/etc/t"},
    "metrics": {"listen": null}, "health": {"listen": "[::1]:8080"},
    "affinity": {"idle_timeout_s": 0, "max_entries": 16777216},
    "log_level": "debug",
    "virtual_servers": [{
      "name": "v6", "address": "2001:db8::10", "ports": [4500], "esp": false, "maglev_table_size": 1048573,
      "health_check": {"mode": "full", "interval_ms": 12000, "timeout_ms": 11999, "rise": 100, "fall": 1,
                       "jitter_ms": 6000, "port": 4500, "no_proposal_chosen_healthy": false,
                       "source": "2001:db8::2"},
      "backends": [{"name": "a.b_c-D", "address": "2001:db8::11", "weight": 0, "state": "disabled"},
                   {"name": "b", "address": "2001:db8::12", "weight": 65535, "state": "draining"},
                   {"name": "c", "address": "2001:db8::13", "state": "active"}]}]})");
  EXPECT_EQ(c.interfaces, (std::vector<std::string>{"eth0", "eth1"}));
  EXPECT_EQ(c.xdp_mode, XdpMode::kGeneric);
  EXPECT_EQ(c.bpffs, "/sys/fs/bpf/x");
  EXPECT_EQ(c.admin_socket, "/run/x.sock");
  EXPECT_EQ(c.admin_tcp_listen, "[::1]:9713");
  EXPECT_EQ(c.admin_token_file, "/etc/t");
  EXPECT_FALSE(c.metrics_listen.has_value());
  EXPECT_EQ(c.health_listen, "[::1]:8080");
  EXPECT_EQ(c.affinity_idle_timeout_s, 0u);
  EXPECT_EQ(c.affinity_max_entries, 16777216u);
  EXPECT_EQ(c.log_level, "debug");
  const VirtualServerConfig& vs = c.virtual_servers.at(0);
  EXPECT_EQ(vs.address, IpAddress::must_parse("2001:db8::10"));
  EXPECT_EQ(vs.ports, std::vector<uint16_t>{4500});
  EXPECT_FALSE(vs.esp);
  EXPECT_EQ(vs.maglev_table_size, 1048573u);
  EXPECT_EQ(vs.health_check.mode, ProbeMode::kFull);
  EXPECT_EQ(vs.health_check.interval_ms, 12000u);
  EXPECT_EQ(vs.health_check.timeout_ms, 11999u);
  EXPECT_EQ(vs.health_check.rise, 100u);
  EXPECT_EQ(vs.health_check.fall, 1u);
  EXPECT_EQ(vs.health_check.jitter_ms, 6000u);
  EXPECT_EQ(vs.health_check.port, 4500);
  EXPECT_FALSE(vs.health_check.no_proposal_chosen_healthy);
  EXPECT_EQ(vs.health_check.source, IpAddress::must_parse("2001:db8::2"));
  ASSERT_EQ(vs.backends.size(), 3u);
  EXPECT_EQ(vs.backends[0].name, "a.b_c-D");
  EXPECT_EQ(vs.backends[0].weight, 0u);
  EXPECT_EQ(vs.backends[0].state, ConfiguredState::kDisabled);
  EXPECT_EQ(vs.backends[1].weight, 65535u);
  EXPECT_EQ(vs.backends[1].state, ConfiguredState::kDraining);
  EXPECT_EQ(vs.backends[2].state, ConfiguredState::kActive);
  EXPECT_EQ(summary(c), "1 virtual server, 3 backends, 2 interfaces");
}

TEST(ParseConfig, ReadsTheEdgeKeys) {
  Config c = must_parse(R"({"interfaces": ["eth0"], "edge": {"reverse_path_check": "strict_mac"},
    "virtual_servers": [
      {"name": "v6", "address": "2001:db8::10",
       "ike_sa_init_limit": {"per_source": {"rate": 5, "burst": 10}, "total": {"rate": 2000},
                             "ipv6_prefix_len": 56},
       "backends": [{"name": "a", "address": "2001:db8::11"}]},
      {"name": "v4", "address": "203.0.113.10",
       "backends": [{"name": "b", "address": "10.0.0.1"}]}]})");
  EXPECT_EQ(c.reverse_path_check, ReversePathCheck::kStrictMac);
  const auto& lim = c.virtual_servers.at(0).ike_sa_init_limit;
  ASSERT_TRUE(lim);
  EXPECT_EQ(lim->per_source, (RateLimit{5, 10}));
  EXPECT_EQ(lim->total, (RateLimit{2000, 1}));
  EXPECT_EQ(lim->ipv6_prefix_len, 56u);
  EXPECT_FALSE(c.virtual_servers.at(1).ike_sa_init_limit);
  EXPECT_EQ(must_parse(document(1, 1)).reverse_path_check, ReversePathCheck::kStrict);
}

TEST(ParseConfig, AllowsAddressSharingBetweenUdpAndEspOnlyServers) {
  Config c = must_parse(R"({"interfaces": ["eth0"], "virtual_servers": [
      {"name": "ike", "address": "203.0.113.10", "esp": false, "backends": [{"name": "a", "address": "10.0.0.1"}]},
      {"name": "esp", "address": "203.0.113.10", "ports": [], "backends": [{"name": "a", "address": "10.0.0.2"}]},
      {"name": "v6", "address": "2001:db8::10", "backends": [{"name": "a", "address": "2001:db8::1"}]}]})");
  EXPECT_EQ(c.virtual_servers.size(), 3u);
  EXPECT_TRUE(c.virtual_servers[1].ports.empty());
  EXPECT_EQ(summary(c), "3 virtual servers, 3 backends, 1 interface");
}

TEST(ParseConfig, AcceptsCapacityLimitsExactly) {
  // 64 servers, 64 * 64 = 4096 backends, 64 * (14 ports + 1 fragment entry + 1 ESP) = 1024 VIP
  // entries.
  std::string s = document(64, 64, ports_json(1000, 14));
  Config c = must_parse(s);
  EXPECT_EQ(summary(c), "64 virtual servers, 4096 backends, 1 interface");

  // One more port anywhere crosses the VIP entry limit, reported where the total crosses it.
  std::string over = s;
  over.replace(over.find("1000, "), 6, "999, 1000, ");
  ConfigResult r = parse_config(over);
  ASSERT_EQ(r.errors.size(), 1u) << errors_text(r.errors);
  EXPECT_EQ(r.errors[0].path, "/virtual_servers/63/ports");
}

TEST(ParseConfig, TotalBackendLimitAcrossServers) {
  std::string s = R"({"interfaces": ["eth0"], "virtual_servers": [)" +
                  vs_json("a", "203.0.113.1", 4000, 0) + ", " +
                  vs_json("b", "203.0.113.2", 97, 4000) + "]}";
  ConfigResult r = parse_config(s);
  EXPECT_EQ(r.errors, (std::vector<ConfigError>{
                          {"/virtual_servers/1/backends",
                           "too many backends: 4097 across all virtual servers, at most 4096"}}))
      << errors_text(r.errors);
}

TEST(ParseConfig, DefaultTableTooSmallForManyBackends) {
  std::string s = document(1, 700);
  s.replace(s.find(", \"maglev_table_size\": 1048573"), 30, "");
  ConfigResult r = parse_config(s);
  EXPECT_EQ(r.errors,
            (std::vector<ConfigError>{
                {"/virtual_servers/0/backends",
                 "700 backends need a \"maglev_table_size\" of at least 70000 (100 per backend); "
                 "the default is 65537"}}))
      << errors_text(r.errors);
}

TEST(ParseConfig, ErrorStringsAndPointers) {
  EXPECT_EQ((ConfigError{"", "x"}).str(), "/: x");
  EXPECT_EQ((ConfigError{"/a/0", "bad"}).str(), "/a/0: bad");
  ConfigResult r = parse_config("{\"interfaces\": [\"eth0\"], \"\\u00e9\\\"\": 1}");
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[0].str(), "/: missing required key \"virtual_servers\"");
  EXPECT_EQ(r.errors[1].str(), "/\xc3\xa9\": unknown key \"\xc3\xa9\\\"\"");
}

TEST(ParseConfig, NeverThrowsOnBadInput) {
  const std::string inputs[] = {
      "\xff\xfe",           "{\"a\": \"\xc3\"}",       "nul",
      "1e999999",           "{\"interfaces\": 1e400}", std::string(1 << 20, '['),
      std::string(200, '{')};
  for (const auto& in : inputs) {
    ConfigResult r;
    EXPECT_NO_THROW(r = parse_config(in));
    EXPECT_FALSE(r.config.has_value());
    EXPECT_FALSE(r.errors.empty());
  }
}

TEST(ParseConfig, ListenAddresses) {
  auto a = parse_listen_address("127.0.0.1:9712");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->address, IpAddress::must_parse("127.0.0.1"));
  EXPECT_EQ(a->port, 9712);
  auto b = parse_listen_address("[2001:db8::1]:1");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->address, IpAddress::must_parse("2001:db8::1"));
  EXPECT_EQ(b->port, 1);
  for (const char* bad : {"", ":80", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:+80",
                          "::1:80", "[::1]80", "[127.0.0.1]:80", "host:80", "[::1]:-1"})
    EXPECT_FALSE(parse_listen_address(bad)) << bad;
}

TEST(ParseConfig, EnumNames) {
  EXPECT_EQ(to_string(ConfiguredState::kActive), "active");
  EXPECT_EQ(to_string(ConfiguredState::kDraining), "draining");
  EXPECT_EQ(to_string(ConfiguredState::kDisabled), "disabled");
  EXPECT_EQ(to_string(ProbeMode::kStateless), "stateless");
  EXPECT_EQ(to_string(ProbeMode::kFull), "full");
  EXPECT_EQ(to_string(ProbeMode::kNone), "none");
  EXPECT_EQ(to_string(XdpMode::kNative), "native");
  EXPECT_EQ(to_string(XdpMode::kGeneric), "generic");
}

TEST(ParseConfig, FileErrors) {
  ConfigResult r = parse_config_file("/nonexistent/ikelb.json");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].str(), "/: cannot read /nonexistent/ikelb.json: No such file or directory");
}

TEST(CheckInterfaces, ReportsMissingOnes) {
  Config c = must_parse(R"({"interfaces": ["eth0", "eth1", "eth2"], "virtual_servers": [
      {"name": "vpn", "address": "203.0.113.10", "backends": [{"name": "gw1", "address": "10.0.0.11"}]}]})");
  std::vector<std::string> asked;
  auto errors = check_interfaces(c, [&](const std::string& name) {
    asked.push_back(name);
    return name == "eth1";
  });
  EXPECT_EQ(asked, (std::vector<std::string>{"eth0", "eth1", "eth2"}));
  EXPECT_EQ(errors,
            (std::vector<ConfigError>{{"/interfaces/0", "interface \"eth0\" does not exist"},
                                      {"/interfaces/2", "interface \"eth2\" does not exist"}}));
  EXPECT_TRUE(check_interfaces(c, [](const std::string&) { return true; }).empty());
}

// ---------------------------------------------------------------------------------------------
// The shipped examples.

std::vector<std::filesystem::path> examples() {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(IKELB_CONFIG_EXAMPLES))
    if (e.path().extension() == ".json") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Examples, AreAllAccepted) {
  auto files = examples();
  std::set<std::string> names;
  for (const auto& f : files) {
    names.insert(f.filename().string());
    ConfigResult r = parse_config_file(f.string());
    EXPECT_TRUE(r.errors.empty()) << f << ":\n" << errors_text(r.errors);
    EXPECT_TRUE(r.config.has_value()) << f;
  }
  for (const char* required :
       {"minimal.json", "dual-stack.json", "rras-always-on.json", "lab.json"})
    EXPECT_TRUE(names.count(required)) << required;
}

TEST(Examples, SayWhatTheirNamesSay) {
  std::string dir = IKELB_CONFIG_EXAMPLES;
  ConfigResult minimal = parse_config_file(dir + "/minimal.json");
  ASSERT_TRUE(minimal.config);
  EXPECT_EQ(summary(*minimal.config), "1 virtual server, 3 backends, 1 interface");
  EXPECT_EQ(minimal.config->virtual_servers[0].address.family, IKELB_AF_INET);

  ConfigResult dual = parse_config_file(dir + "/dual-stack.json");
  ASSERT_TRUE(dual.config);
  std::set<int> families;
  for (const auto& vs : dual.config->virtual_servers) families.insert(vs.address.family);
  EXPECT_EQ(families, (std::set<int>{IKELB_AF_INET, IKELB_AF_INET6}));

  ConfigResult rras = parse_config_file(dir + "/rras-always-on.json");
  ASSERT_TRUE(rras.config);
  const auto& hc = rras.config->virtual_servers.at(0).health_check;
  EXPECT_EQ(hc.mode, ProbeMode::kFull);
  EXPECT_EQ(hc.interval_ms, 15000u);
  EXPECT_TRUE(rras.config->virtual_servers.at(0).ike_sa_init_limit);
  std::set<uint32_t> weights;
  for (const auto& b : rras.config->virtual_servers[0].backends) weights.insert(b.weight);
  EXPECT_GT(weights.size(), 1u);
}

}  // namespace
}  // namespace ikelb
