#include "config.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "ikelb_abi.h"

namespace ikelb {

std::string_view to_string(ConfiguredState s) {
  switch (s) {
    case ConfiguredState::kActive:
      return "active";
    case ConfiguredState::kDraining:
      return "draining";
    case ConfiguredState::kDisabled:
      return "disabled";
  }
  return "?";
}

std::string_view to_string(ProbeMode m) {
  switch (m) {
    case ProbeMode::kStateless:
      return "stateless";
    case ProbeMode::kFull:
      return "full";
    case ProbeMode::kNone:
      return "none";
  }
  return "?";
}

std::string_view to_string(ReversePathCheck c) {
  switch (c) {
    case ReversePathCheck::kStrict:
      return "strict";
    case ReversePathCheck::kStrictMac:
      return "strict_mac";
    case ReversePathCheck::kOff:
      return "off";
  }
  return "?";
}

std::string_view to_string(XdpMode m) {
  switch (m) {
    case XdpMode::kNative:
      return "native";
    case XdpMode::kGeneric:
      return "generic";
  }
  return "?";
}

namespace {

// Document order matters (errors are reported in it), so objects keep their members' order.
using Json = nlohmann::ordered_json;

constexpr size_t kMaxNesting = 64;      // deeper JSON is rejected as a whole
constexpr size_t kMaxPathDepth = 8;     // the schema is 5 levels deep; deeper paths aren't indexed
constexpr size_t kMaxQuoted = 80;       // longer strings are shortened in messages
constexpr size_t kMaxIfName = 15;       // IFNAMSIZ - 1
constexpr size_t kMaxSocketPath = 107;  // sizeof(sockaddr_un::sun_path) - 1
constexpr uint64_t kMaxWeight = 65535;
constexpr uint64_t kMinTableSlotsPerBackend = 100;
constexpr uint32_t kMinFullProbeIntervalMs = 12000;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kProtoEsp = 50;

std::string escape_pointer_token(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  for (char c : token) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

std::string child(const std::string& path, std::string_view key) {
  return path + "/" + escape_pointer_token(key);
}
std::string child(const std::string& path, size_t index) {
  return path + "/" + std::to_string(index);
}

// A string as JSON text (quotes and escapes), shortened if long.
std::string quote(std::string_view s) {
  std::string text(s);
  bool shortened = false;
  if (text.size() > kMaxQuoted) {
    text.resize(kMaxQuoted - 3);
    shortened = true;
  }
  std::string out = Json(text).dump(-1, ' ', false, Json::error_handler_t::replace);
  if (shortened) out.insert(out.size() - 1, "...");
  return out;
}

std::string plural(size_t n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

// ---------------------------------------------------------------------------------------------
// Parsing: a SAX handler that builds the document and, on the way, numbers every value in
// document order (so errors can be sorted into it) and reports duplicate keys.

struct PendingError {
  size_t ordinal;
  ConfigError error;
};

class DocumentBuilder : public nlohmann::json_sax<Json> {
 public:
  Json root;
  std::unordered_map<std::string, size_t> ordinals;  // JSON pointer -> position in the document
  std::vector<PendingError> errors;                  // duplicate keys
  std::optional<std::string> fatal;                  // syntax error: nothing else is checked

  bool null() override { return add(Json(nullptr)); }
  bool boolean(bool v) override { return add(Json(v)); }
  bool number_integer(number_integer_t v) override { return add(Json(v)); }
  bool number_unsigned(number_unsigned_t v) override { return add(Json(v)); }
  bool number_float(number_float_t v, const string_t&) override { return add(Json(v)); }
  bool string(string_t& v) override { return add(Json(std::move(v))); }
  bool binary(binary_t&) override { return add(Json(nullptr)); }  // not produced by JSON text

  bool start_object(std::size_t) override { return open(Json::object()); }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(Json::array()); }
  bool end_array() override { return close(); }

  bool key(string_t& k) override {
    Frame& f = stack_.back();
    f.key = k;
    f.duplicate = !f.keys.insert(k).second;
    if (f.duplicate && !f.discarding) {
      std::string path = f.path_known ? child(f.path, k) : std::string();
      errors.push_back({next_ordinal_, {path, "duplicate key " + quote(k)}});
    }
    return true;
  }

  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    std::string what = ex.what();
    // "[json.exception.parse_error.101] parse error at line 1, column 2: ..." -> drop the tag.
    if (!what.empty() && what[0] == '[') {
      size_t end = what.find("] ");
      if (end != std::string::npos) what.erase(0, end + 2);
    }
    fatal = what;
    return false;
  }

 private:
  struct Frame {
    Json* value;
    std::string path;
    bool path_known;
    bool discarding;  // inside the value of a duplicate key: built, never looked at
    size_t next_index = 0;
    std::string key;
    bool duplicate = false;
    std::unordered_set<std::string> keys;
  };

  // Where the next value goes; sets its path. Only the innermost container is ever modified,
  // so pointers held by outer frames stay valid.
  Json* place(std::string& path, bool& path_known, bool& discarding) {
    if (stack_.empty()) {
      path.clear();
      path_known = true;
      discarding = false;
      return &root;
    }
    Frame& f = stack_.back();
    path_known = f.path_known && stack_.size() < kMaxPathDepth;
    discarding = f.discarding;
    if (f.value->is_array()) {
      if (path_known) path = child(f.path, f.next_index);
      f.next_index++;
      f.value->push_back(nullptr);
      return &f.value->back();
    }
    if (path_known) path = child(f.path, f.key);
    if (f.duplicate) {
      discarding = true;
      discarded_.emplace_back();
      return &discarded_.back();
    }
    return &(*f.value)[f.key];
  }

  void number(const std::string& path, bool path_known, bool discarding) {
    if (path_known && !discarding) ordinals.try_emplace(path, next_ordinal_);
    next_ordinal_++;
  }

  bool add(Json v) {
    std::string path;
    bool known, discarding;
    Json* slot = place(path, known, discarding);
    number(path, known, discarding);
    *slot = std::move(v);
    return true;
  }

  bool open(Json v) {
    if (stack_.size() >= kMaxNesting) {
      fatal = "JSON is nested more than " + std::to_string(kMaxNesting) + " levels deep";
      return false;
    }
    std::string path;
    bool known, discarding;
    Json* slot = place(path, known, discarding);
    number(path, known, discarding);
    *slot = std::move(v);
    stack_.push_back(Frame{slot, std::move(path), known, discarding, 0, {}, false, {}});
    return true;
  }

  bool close() {
    stack_.pop_back();
    return true;
  }

  std::vector<Frame> stack_;
  std::deque<Json> discarded_;  // values of duplicate keys (a deque never moves its elements)
  size_t next_ordinal_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Small parsers.

bool is_prime(uint64_t n) {
  if (n < 2) return false;
  for (uint64_t d = 2; d * d <= n; d++)
    if (n % d == 0) return false;
  return true;
}

uint64_t next_prime(uint64_t n) {
  while (!is_prime(n)) n++;
  return n;
}

bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

// The kernel's dev_valid_name(), length aside.
bool valid_ifname_chars(std::string_view s) {
  if (s == "." || s == "..") return false;
  return std::none_of(s.begin(), s.end(), [](char c) {
    return c == '/' || c == ':' || c == '\0' || c == ' ' || (c >= '\t' && c <= '\r');
  });
}

bool is_absolute_path(std::string_view s) {
  return !s.empty() && s[0] == '/' && s.find('\0') == std::string_view::npos;
}

std::string family_name(const IpAddress& a) {
  return a.family == IKELB_AF_INET ? "IPv4" : "IPv6";
}

// Empty string when `text` is a valid listen address (and then *out is set), else the message.
std::string check_listen(std::string_view text, ListenAddress* out) {
  std::string bad =
      quote(text) + " is not \"address:port\" (IPv4 \"127.0.0.1:9712\" or IPv6 \"[::1]:9712\")";
  std::string_view host, port;
  std::optional<IpAddress> addr;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find("]:");
    if (close == std::string_view::npos) return bad;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    addr = IpAddress::parse(host);
    if (!addr || addr->family != IKELB_AF_INET6) return bad;
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    addr = IpAddress::parse(host);
    if (!addr || addr->family != IKELB_AF_INET) return bad;
  }
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return bad;
  unsigned long value = std::stoul(std::string(port));
  if (value < 1 || value > 65535) return "port in " + quote(text) + " must be between 1 and 65535";
  if (out) *out = {*addr, static_cast<uint16_t>(value)};
  return {};
}

// ---------------------------------------------------------------------------------------------
// Validation.

struct Member {
  const char* key;
  bool required;
};

// A VIP entry as the data path keys it: (address, protocol, port); port 0 is protocol-wide.
struct VipOwner {
  size_t vs;
};

class Validator {
 public:
  explicit Validator(const DocumentBuilder& doc) : doc_(doc) {}

  std::vector<ConfigError> run(Config& config) {
    validate_root(doc_.root, config);
    std::vector<PendingError> all = doc_.errors;
    for (auto& e : errors_) all.push_back({ordinal_of(e.path), std::move(e)});
    std::stable_sort(all.begin(), all.end(), [](const PendingError& a, const PendingError& b) {
      return a.ordinal < b.ordinal;
    });
    std::vector<ConfigError> out;
    out.reserve(all.size());
    for (auto& e : all) out.push_back(std::move(e.error));
    return out;
  }

 private:
  // Per virtual server facts the cross-document rules need; set only for valid values.
  struct VsFacts {
    std::string path;
    std::optional<std::string> name;  // any string, for messages
    std::optional<IpAddress> address;
  };

  size_t ordinal_of(std::string path) const {
    for (;;) {
      auto it = doc_.ordinals.find(path);
      if (it != doc_.ordinals.end()) return it->second;
      if (path.empty()) return 0;
      path.erase(path.rfind('/'));
    }
  }

  void error(std::string path, std::string message) {
    errors_.push_back({std::move(path), std::move(message)});
  }

  std::string vs_label(size_t i) const {
    if (vs_facts_[i].name) return "virtual server " + quote(*vs_facts_[i].name);
    return "virtual server " + vs_facts_[i].path;
  }

  // --- typed accessors; each reports its own error and returns nullopt/false on a bad value.

  bool expect_object(const std::string& path, const Json& j,
                     std::initializer_list<Member> members) {
    if (!j.is_object()) {
      error(path, std::string("expected an object, got ") + j.type_name());
      return false;
    }
    for (const Member& m : members)
      if (m.required && !j.contains(m.key))
        error(path, std::string("missing required key \"") + m.key + "\"");
    for (auto it = j.begin(); it != j.end(); ++it) {
      bool known = std::any_of(members.begin(), members.end(),
                               [&](const Member& m) { return it.key() == m.key; });
      if (!known) error(child(path, it.key()), "unknown key " + quote(it.key()));
    }
    return true;
  }

  bool expect_array(const std::string& path, const Json& j) {
    if (j.is_array()) return true;
    error(path, std::string("expected an array, got ") + j.type_name());
    return false;
  }

  const std::string* expect_string(const std::string& path, const Json& j) {
    if (j.is_string()) return j.get_ptr<const std::string*>();
    error(path, std::string("expected a string, got ") + j.type_name());
    return nullptr;
  }

  std::optional<bool> expect_bool(const std::string& path, const Json& j) {
    if (j.is_boolean()) return j.get<bool>();
    error(path, std::string("expected a boolean, got ") + j.type_name());
    return std::nullopt;
  }

  std::optional<uint64_t> expect_uint(const std::string& path, const Json& j, uint64_t lo,
                                      uint64_t hi) {
    if (j.is_number_float()) {
      error(path, "expected an integer, got " + j.dump());
      return std::nullopt;
    }
    if (!j.is_number_integer()) {
      error(path, std::string("expected an integer, got ") + j.type_name());
      return std::nullopt;
    }
    bool negative = j.is_number_integer() && !j.is_number_unsigned() && j.get<int64_t>() < 0;
    uint64_t v = negative ? 0 : j.get<uint64_t>();
    if (negative || v < lo || v > hi) {
      error(path, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                      ", got " + j.dump());
      return std::nullopt;
    }
    return v;
  }

  // One of `choices`; returns its index.
  std::optional<size_t> expect_enum(const std::string& path, const Json& j,
                                    std::initializer_list<const char*> choices) {
    const std::string* s = expect_string(path, j);
    if (!s) return std::nullopt;
    size_t i = 0;
    for (const char* c : choices) {
      if (*s == c) return i;
      i++;
    }
    std::string list;
    i = 0;
    for (const char* c : choices) {
      if (i > 0) list += choices.size() == 2 ? " or " : ", ";
      // Appended piecewise: `"\"" + std::string(c)` trips GCC 12's false -Wrestrict at -O3.
      list += '"';
      list += c;
      list += '"';
      i++;
    }
    error(path,
          (choices.size() == 2 ? "must be " : "must be one of ") + list + ", got " + quote(*s));
    return std::nullopt;
  }

  std::optional<std::string> expect_abs_path(const std::string& path, const Json& j) {
    const std::string* s = expect_string(path, j);
    if (!s) return std::nullopt;
    if (!is_absolute_path(*s)) {
      error(path, "must be an absolute path, got " + quote(*s));
      return std::nullopt;
    }
    return *s;
  }

  std::optional<std::string> expect_listen(const std::string& path, const Json& j) {
    const std::string* s = expect_string(path, j);
    if (!s) return std::nullopt;
    std::string msg = check_listen(*s, nullptr);
    if (!msg.empty()) {
      error(path, msg);
      return std::nullopt;
    }
    return *s;
  }

  std::optional<IpAddress> expect_ip(const std::string& path, const Json& j) {
    const std::string* s = expect_string(path, j);
    if (!s) return std::nullopt;
    auto a = IpAddress::parse(*s);
    if (!a) error(path, quote(*s) + " is not an IP address");
    return a;
  }

  std::optional<std::string> expect_name(const std::string& path, const Json& j) {
    const std::string* s = expect_string(path, j);
    if (!s) return std::nullopt;
    if (!valid_name(*s)) {
      error(path, quote(*s) +
                      " is not a valid name (1 to 63 characters: letters, digits, \"_\", \".\", "
                      "\"-\")");
      return std::nullopt;
    }
    return *s;
  }

  // --- the document

  void validate_root(const Json& root, Config& c) {
    if (!expect_object("", root,
                       {{"interfaces", true},
                        {"xdp_mode", false},
                        {"bpffs", false},
                        {"admin", false},
                        {"metrics", false},
                        {"health", false},
                        {"affinity", false},
                        {"log_level", false},
                        {"edge", false},
                        {"virtual_servers", true},
                        {"announce", false},
                        {"sync", false}}))
      return;

    // Pre-pass: every virtual server address and name, so a backend can be checked against
    // VIPs that come later in the document. (Errors in them are reported by the main pass.)
    if (auto it = root.find("virtual_servers"); it != root.end() && it->is_array()) {
      for (size_t i = 0; i < it->size(); i++) {
        const Json& vs = (*it)[i];
        VsFacts facts{child("/virtual_servers", i), std::nullopt, std::nullopt};
        if (vs.is_object()) {
          if (auto n = vs.find("name"); n != vs.end() && n->is_string())
            facts.name = n->get<std::string>();
          if (auto a = vs.find("address"); a != vs.end() && a->is_string())
            facts.address = IpAddress::parse(a->get<std::string>());
        }
        vs_facts_.push_back(std::move(facts));
      }
    }

    for (auto it = root.begin(); it != root.end(); ++it) {
      const std::string& key = it.key();
      const Json& v = it.value();
      std::string path = child("", key);
      if (key == "interfaces") {
        validate_interfaces(path, v, c);
      } else if (key == "xdp_mode") {
        if (auto m = expect_enum(path, v, {"native", "generic"}))
          c.xdp_mode = *m == 0 ? XdpMode::kNative : XdpMode::kGeneric;
      } else if (key == "bpffs") {
        if (auto p = expect_abs_path(path, v)) c.bpffs = *p;
      } else if (key == "admin") {
        validate_admin(path, v, c);
      } else if (key == "metrics") {
        c.metrics_listen = validate_listener(path, v, c.metrics_listen);
      } else if (key == "health") {
        c.health_listen = validate_listener(path, v, c.health_listen);
      } else if (key == "affinity") {
        validate_affinity(path, v, c);
      } else if (key == "log_level") {
        if (auto l = expect_enum(path, v, {"debug", "info", "warning", "error"}))
          c.log_level = v.get<std::string>();
      } else if (key == "edge") {
        validate_edge(path, v, c);
      } else if (key == "virtual_servers") {
        validate_virtual_servers(path, v, c);
      } else if (key == "announce") {
        validate_announce(path, v, c);
      } else if (key == "sync") {
        validate_sync(path, v, c);
      }
    }
  }

  void validate_interfaces(const std::string& path, const Json& v, Config& c) {
    if (!expect_array(path, v)) return;
    if (v.empty()) error(path, "must list at least one interface");
    std::unordered_set<std::string> seen;
    for (size_t i = 0; i < v.size(); i++) {
      std::string p = child(path, i);
      const std::string* s = expect_string(p, v[i]);
      if (!s) continue;
      if (s->empty()) {
        error(p, "interface name must not be empty");
      } else if (s->size() > kMaxIfName) {
        error(p, "interface name " + quote(*s) + " is longer than 15 characters");
      } else if (!valid_ifname_chars(*s)) {
        error(p, quote(*s) + " is not a valid interface name");
      } else if (!seen.insert(*s).second) {
        error(p, "duplicate interface " + quote(*s));
      } else {
        c.interfaces.push_back(*s);
      }
    }
  }

  void validate_admin(const std::string& path, const Json& v, Config& c) {
    if (!expect_object(path, v, {{"socket", false}, {"tcp_listen", false}, {"token_file", false}}))
      return;
    if (auto it = v.find("socket"); it != v.end()) {
      std::string p = child(path, "socket");
      if (auto s = expect_abs_path(p, *it)) {
        if (s->size() > kMaxSocketPath)
          error(p, "a unix socket path can be at most 107 bytes long, got " +
                       std::to_string(s->size()));
        else
          c.admin_socket = *s;
      }
    }
    if (auto it = v.find("tcp_listen"); it != v.end()) {
      std::string p = child(path, "tcp_listen");
      c.admin_tcp_listen = expect_listen(p, *it);
      if (!v.contains("token_file"))
        error(
            p,
            "requires \"token_file\": the TCP listener accepts only requests with a bearer token");
    }
    if (auto it = v.find("token_file"); it != v.end())
      c.admin_token_file = expect_abs_path(child(path, "token_file"), *it);
  }

  // {"listen": "host:port" | null}: the listener's address, or none.
  std::optional<std::string> validate_listener(const std::string& path, const Json& v,
                                               std::optional<std::string> current) {
    if (!expect_object(path, v, {{"listen", false}})) return current;
    auto it = v.find("listen");
    if (it == v.end()) return current;
    if (it->is_null()) return std::nullopt;
    return expect_listen(child(path, "listen"), *it);
  }

  void validate_affinity(const std::string& path, const Json& v, Config& c) {
    if (!expect_object(path, v, {{"idle_timeout_s", false}, {"max_entries", false}})) return;
    if (auto it = v.find("idle_timeout_s"); it != v.end())
      if (auto n = expect_uint(child(path, "idle_timeout_s"), *it, 0, 31536000))
        c.affinity_idle_timeout_s = static_cast<uint32_t>(*n);
    if (auto it = v.find("max_entries"); it != v.end())
      if (auto n = expect_uint(child(path, "max_entries"), *it, 1024, 16777216))
        c.affinity_max_entries = static_cast<uint32_t>(*n);
  }

  void validate_edge(const std::string& path, const Json& v, Config& c) {
    if (!expect_object(path, v, {{"reverse_path_check", false}})) return;
    if (auto it = v.find("reverse_path_check"); it != v.end())
      if (auto m =
              expect_enum(child(path, "reverse_path_check"), *it, {"strict", "strict_mac", "off"}))
        c.reverse_path_check = *m == 0   ? ReversePathCheck::kStrict
                               : *m == 1 ? ReversePathCheck::kStrictMac
                                         : ReversePathCheck::kOff;
  }

  std::optional<RateLimit> expect_rate(const std::string& path, const Json& v) {
    if (!expect_object(path, v, {{"rate", true}, {"burst", false}})) return std::nullopt;
    RateLimit r;
    bool ok = v.contains("rate");
    if (auto it = v.find("rate"); it != v.end()) {
      auto n = expect_uint(child(path, "rate"), *it, 1, 10000000);
      ok = ok && n;
      if (n) r.rate = static_cast<uint32_t>(*n);
    }
    if (auto it = v.find("burst"); it != v.end()) {
      auto n = expect_uint(child(path, "burst"), *it, 1, 10000000);
      ok = ok && n;
      if (n) r.burst = static_cast<uint32_t>(*n);
    }
    return ok ? std::optional(r) : std::nullopt;
  }

  void validate_init_limit(const std::string& path, const Json& v,
                           const std::optional<IpAddress>& vs_address,
                           std::optional<IkeInitLimit>& out) {
    if (!expect_object(path, v,
                       {{"per_source", false}, {"total", false}, {"ipv6_prefix_len", false}}))
      return;
    IkeInitLimit lim;
    bool ok = true;
    if (auto it = v.find("per_source"); it != v.end())
      ok = (lim.per_source = expect_rate(child(path, "per_source"), *it)).has_value() && ok;
    if (auto it = v.find("total"); it != v.end())
      ok = (lim.total = expect_rate(child(path, "total"), *it)).has_value() && ok;
    if (!v.contains("per_source") && !v.contains("total")) {
      error(path, "needs \"per_source\", \"total\" or both");
      ok = false;
    }
    if (auto it = v.find("ipv6_prefix_len"); it != v.end()) {
      std::string p = child(path, "ipv6_prefix_len");
      auto n = expect_uint(p, *it, 1, 128);
      if (n && vs_address && vs_address->family != IKELB_AF_INET6) {
        error(p, "applies to IPv6 sources, but the virtual server's address is IPv4");
        n.reset();
      }
      if (n && !v.contains("per_source")) {
        error(p, "applies to \"per_source\" buckets, and there is no \"per_source\"");
        n.reset();
      }
      ok = ok && n;
      if (n) lim.ipv6_prefix_len = static_cast<uint32_t>(*n);
    }
    if (ok) out = lim;
  }

  void validate_virtual_servers(const std::string& path, const Json& v, Config& c) {
    if (!expect_array(path, v)) return;
    if (v.empty()) error(path, "must list at least one virtual server");
    if (v.size() > IKELB_MAX_VS)
      error(path, "at most " + std::to_string(IKELB_MAX_VS) +
                      " virtual servers are supported, got " + std::to_string(v.size()));
    for (size_t i = 0; i < v.size(); i++) {
      VirtualServerConfig vs;
      validate_virtual_server(i, v[i], vs);
      c.virtual_servers.push_back(std::move(vs));
    }
  }

  void validate_virtual_server(size_t index, const Json& v, VirtualServerConfig& vs) {
    const std::string& path = vs_facts_[index].path;
    if (!expect_object(path, v,
                       {{"name", true},
                        {"address", true},
                        {"ports", false},
                        {"esp", false},
                        {"maglev_table_size", false},
                        {"health_check", false},
                        {"ike_sa_init_limit", false},
                        {"spi_routing", false},
                        {"backends", true}}))
      return;

    if (auto it = v.find("name"); it != v.end()) {
      std::string p = child(path, "name");
      if (auto n = expect_name(p, *it)) {
        if (!vs_names_.insert(*n).second) error(p, "duplicate virtual server name " + quote(*n));
        vs.name = *n;
      }
    }

    std::optional<IpAddress> address;
    if (auto it = v.find("address"); it != v.end()) {
      address = expect_ip(child(path, "address"), *it);
      if (address) vs.address = *address;
    }

    // Ports that are valid and unique within this server, with their index in "ports".
    std::vector<std::pair<size_t, uint16_t>> ports;
    bool ports_ok = true;
    const bool ports_explicit = v.contains("ports");
    if (ports_explicit) {
      std::string p = child(path, "ports");
      const Json& pv = v["ports"];
      vs.ports.clear();
      if (!expect_array(p, pv)) {
        ports_ok = false;
      } else {
        for (size_t i = 0; i < pv.size(); i++) {
          auto n = expect_uint(child(p, i), pv[i], 1, 65535);
          if (!n) {
            ports_ok = false;
            continue;
          }
          auto port = static_cast<uint16_t>(*n);
          if (std::any_of(ports.begin(), ports.end(), [&](auto& q) { return q.second == port; })) {
            error(child(p, i), "duplicate port " + std::to_string(port));
            continue;
          }
          ports.emplace_back(i, port);
          vs.ports.push_back(port);
        }
      }
    } else {
      for (size_t i = 0; i < vs.ports.size(); i++) ports.emplace_back(i, vs.ports[i]);
    }

    bool esp_ok = true;
    const bool esp_explicit = v.contains("esp");
    if (esp_explicit) {
      auto b = expect_bool(child(path, "esp"), v["esp"]);
      if (b)
        vs.esp = *b;
      else
        esp_ok = false;
    }
    if (ports_explicit && ports_ok && esp_ok && ports.empty() && !vs.esp)
      error(child(path, "ports"), "must not be empty unless \"esp\" is true");

    uint64_t table_size = 0;  // 0: absent or invalid
    if (auto it = v.find("maglev_table_size"); it != v.end()) {
      std::string p = child(path, "maglev_table_size");
      table_size = expect_uint(p, *it, 2, IKELB_MAX_TABLE_SIZE).value_or(0);
      if (table_size != 0 && !is_prime(table_size)) {
        error(p, std::to_string(table_size) + " is not prime (the next prime is " +
                     std::to_string(next_prime(table_size)) + ")");
        table_size = 0;
      }
      if (table_size != 0) vs.maglev_table_size = static_cast<uint32_t>(table_size);
    }

    if (auto it = v.find("health_check"); it != v.end())
      validate_health_check(child(path, "health_check"), *it, address, vs.health_check);

    if (auto it = v.find("ike_sa_init_limit"); it != v.end())
      validate_init_limit(child(path, "ike_sa_init_limit"), *it, address, vs.ike_sa_init_limit);

    bool spi_ok = true;
    if (auto it = v.find("spi_routing"); it != v.end())
      spi_ok = validate_spi_routing(child(path, "spi_routing"), *it, vs.spi_routing);

    if (auto it = v.find("backends"); it != v.end()) {
      validate_backends(index, child(path, "backends"), *it, address, vs);
      if (spi_ok) check_spi_ids(child(path, "backends"), *it, vs);
    }

    // Rules that need the whole server.
    if (address) {
      claim_vips(index, *address, ports, ports_explicit, vs.esp && esp_ok, esp_explicit);
      size_t keys = ports.size() + (ports.empty() ? 0 : 1) + (vs.esp && esp_ok ? 1 : 0);
      size_t before = vip_keys_;
      vip_keys_ += keys;
      if (before <= IKELB_MAX_VIP_KEYS && vip_keys_ > IKELB_MAX_VIP_KEYS)
        error(ports_explicit ? child(path, "ports") : path,
              "too many VIP entries: this virtual server brings the (address, protocol, port) "
              "entries to " +
                  std::to_string(vip_keys_) + ", at most " + std::to_string(IKELB_MAX_VIP_KEYS) +
                  " (one per port, one per address for fragments, one for ESP)");
    }
    if (auto it = v.find("backends"); it != v.end() && it->is_array() && !it->empty()) {
      uint64_t need = kMinTableSlotsPerBackend * it->size();
      if (table_size != 0 && table_size < need) {
        error(child(path, "maglev_table_size"),
              "must be at least 100 times the number of backends (" +
                  plural(it->size(), "backend", "backends") + ": at least " + std::to_string(need) +
                  "), got " + std::to_string(table_size));
      } else if (!v.contains("maglev_table_size") && vs.maglev_table_size < need) {
        error(child(path, "backends"),
              plural(it->size(), "backend", "backends") +
                  " need a \"maglev_table_size\" of at least " + std::to_string(need) +
                  " (100 per backend); the default is " + std::to_string(vs.maglev_table_size));
      }
    }
  }

  // The data path looks up (address, UDP, port) for IKE, (address, UDP, 0) for non-first
  // fragments and (address, ESP, 0) for ESP: each may belong to one virtual server only.
  void claim_vips(size_t index, const IpAddress& address,
                  const std::vector<std::pair<size_t, uint16_t>>& ports, bool ports_explicit,
                  bool esp, bool esp_explicit) {
    const std::string& path = vs_facts_[index].path;
    std::string host = address.family == IKELB_AF_INET ? address.str() : "[" + address.str() + "]";
    auto key = [&](uint8_t proto, uint16_t port) {
      return address.str() + "/" + std::to_string(proto) + "/" + std::to_string(port);
    };
    bool overlap = false;
    for (auto& [i, port] : ports) {
      auto [it, fresh] = vips_.try_emplace(key(kProtoUdp, port), VipOwner{index});
      if (fresh) continue;
      overlap = true;
      error(ports_explicit ? child(child(path, "ports"), i) : path,
            "UDP " + host + ":" + std::to_string(port) + " is already served by " +
                vs_label(it->second.vs) + (ports_explicit ? "" : " (default ports 500, 4500)"));
    }
    if (!ports.empty()) {
      auto [it, fresh] = vips_.try_emplace(key(kProtoUdp, 0), VipOwner{index});
      if (!fresh && !overlap)
        error(ports_explicit ? child(child(path, "ports"), ports.front().first) : path,
              address.str() + " already has UDP ports in " + vs_label(it->second.vs) +
                  ": two virtual servers cannot both serve UDP on one address, because non-first "
                  "IP fragments carry no port");
    }
    if (esp) {
      auto [it, fresh] = vips_.try_emplace(key(kProtoEsp, 0), VipOwner{index});
      if (!fresh)
        error(esp_explicit ? child(path, "esp") : path,
              "ESP to " + address.str() + " is already served by " + vs_label(it->second.vs) +
                  (esp_explicit ? "" : " (\"esp\" defaults to true)"));
    }
  }

  void validate_health_check(const std::string& path, const Json& v,
                             const std::optional<IpAddress>& vs_address, HealthCheck& hc) {
    if (!expect_object(path, v,
                       {{"mode", false},
                        {"interval_ms", false},
                        {"timeout_ms", false},
                        {"rise", false},
                        {"fall", false},
                        {"jitter_ms", false},
                        {"port", false},
                        {"no_proposal_chosen_healthy", false},
                        {"source", false}}))
      return;
    bool mode_ok = true, interval_ok = true, timeout_ok = true, jitter_ok = true;
    for (auto it = v.begin(); it != v.end(); ++it) {
      const std::string& key = it.key();
      const Json& j = it.value();
      std::string p = child(path, key);
      if (key == "mode") {
        auto m = expect_enum(p, j, {"stateless", "full", "none"});
        mode_ok = m.has_value();
        if (m)
          hc.mode = *m == 0 ? ProbeMode::kStateless : *m == 1 ? ProbeMode::kFull : ProbeMode::kNone;
      } else if (key == "interval_ms") {
        auto n = expect_uint(p, j, 100, 3600000);
        interval_ok = n.has_value();
        if (n) hc.interval_ms = static_cast<uint32_t>(*n);
      } else if (key == "timeout_ms") {
        auto n = expect_uint(p, j, 10, 60000);
        timeout_ok = n.has_value();
        if (n) hc.timeout_ms = static_cast<uint32_t>(*n);
      } else if (key == "rise") {
        if (auto n = expect_uint(p, j, 1, 100)) hc.rise = static_cast<uint32_t>(*n);
      } else if (key == "fall") {
        if (auto n = expect_uint(p, j, 1, 100)) hc.fall = static_cast<uint32_t>(*n);
      } else if (key == "jitter_ms") {
        auto n = expect_uint(p, j, 0, 1800000);
        jitter_ok = n.has_value();
        if (n) hc.jitter_ms = static_cast<uint32_t>(*n);
      } else if (key == "port") {
        if (!j.is_number_integer()) {
          expect_uint(p, j, 0, 65535);  // reports the type error
        } else if (j != 500 && j != 4500) {
          error(p, "must be 500 or 4500, got " + j.dump());
        } else {
          hc.port = j.get<uint16_t>();
        }
      } else if (key == "no_proposal_chosen_healthy") {
        if (auto b = expect_bool(p, j)) hc.no_proposal_chosen_healthy = *b;
      } else if (key == "source") {
        auto a = expect_ip(p, j);
        if (a && vs_address && a->family != vs_address->family) {
          error(p, quote(j.get<std::string>()) + " is an " + family_name(*a) +
                       " address, but the virtual server's address is " + family_name(*vs_address));
        } else if (a) {
          hc.source = *a;
        }
      }
    }
    if (!interval_ok) return;
    const std::string interval_path = child(path, "interval_ms");
    const bool interval_explicit = v.contains("interval_ms");
    if (timeout_ok && hc.timeout_ms >= hc.interval_ms) {
      if (v.contains("timeout_ms"))
        error(child(path, "timeout_ms"), "must be less than interval_ms (" +
                                             std::to_string(hc.interval_ms) + "), got " +
                                             std::to_string(hc.timeout_ms));
      else
        error(interval_path, "must be greater than timeout_ms (" + std::to_string(hc.timeout_ms) +
                                 " by default), got " + std::to_string(hc.interval_ms));
    }
    if (jitter_ok && hc.jitter_ms > hc.interval_ms / 2) {
      if (v.contains("jitter_ms"))
        error(child(path, "jitter_ms"),
              "must be between 0 and " + std::to_string(hc.interval_ms / 2) +
                  " (half of interval_ms), got " + std::to_string(hc.jitter_ms));
      else
        error(interval_path, "must be at least twice jitter_ms (" + std::to_string(hc.jitter_ms) +
                                 " by default), got " + std::to_string(hc.interval_ms));
    }
    if (mode_ok && hc.mode == ProbeMode::kFull && hc.interval_ms < kMinFullProbeIntervalMs) {
      error(interval_explicit ? interval_path : child(path, "mode"),
            "mode \"full\" needs interval_ms of at least 12000, got " +
                std::to_string(hc.interval_ms) + (interval_explicit ? "" : " (the default)") +
                ": every full IKE_SA_INIT leaves a half-open IKE SA on the gateway for about 30 s, "
                "and strongSwan's per-source cookie/blocking thresholds (cookie_threshold_ip, "
                "block_threshold) would soon answer the prober with COOKIE or drop it; use mode "
                "\"stateless\" for fast probes");
    }
  }

  void validate_backends(size_t vs_index, const std::string& path, const Json& v,
                         const std::optional<IpAddress>& vs_address, VirtualServerConfig& vs) {
    if (!expect_array(path, v)) return;
    if (v.empty()) error(path, "must list at least one backend");
    if (v.size() > IKELB_MAX_BACKENDS) {
      error(path, "at most " + std::to_string(IKELB_MAX_BACKENDS) +
                      " backends per virtual server, got " + std::to_string(v.size()));
      total_backends_reported_ = true;
    }
    total_backends_ += v.size();
    if (total_backends_ > IKELB_MAX_BACKENDS && !total_backends_reported_) {
      error(path, "too many backends: " + std::to_string(total_backends_) +
                      " across all virtual servers, at most " + std::to_string(IKELB_MAX_BACKENDS));
      total_backends_reported_ = true;
    }
    std::unordered_set<std::string> names;
    for (size_t i = 0; i < v.size(); i++) {
      std::string p = child(path, i);
      const Json& b = v[i];
      BackendConfig be;
      if (!expect_object(p, b,
                         {{"name", true},
                          {"address", true},
                          {"weight", false},
                          {"state", false},
                          {"spi_id", false}})) {
        vs.backends.push_back(std::move(be));
        continue;
      }
      for (auto it = b.begin(); it != b.end(); ++it) {
        const std::string& key = it.key();
        const Json& j = it.value();
        std::string kp = child(p, key);
        if (key == "name") {
          if (auto n = expect_name(kp, j)) {
            if (!names.insert(*n).second)
              error(kp, "duplicate backend name " + quote(*n) + " in this virtual server");
            be.name = *n;
          }
        } else if (key == "address") {
          if (auto a = expect_ip(kp, j)) {
            be.address = *a;
            check_backend_address(vs_index, kp, j.get<std::string>(), *a, vs_address);
          }
        } else if (key == "weight") {
          if (auto n = expect_uint(kp, j, 0, kMaxWeight)) be.weight = static_cast<uint32_t>(*n);
        } else if (key == "state") {
          if (j.is_string() && j == "down") {
            error(kp, "\"down\" cannot be configured (health probes decide it); use \"disabled\"");
          } else if (auto s = expect_enum(kp, j, {"active", "draining", "disabled"})) {
            be.state = *s == 0   ? ConfiguredState::kActive
                       : *s == 1 ? ConfiguredState::kDraining
                                 : ConfiguredState::kDisabled;
          }
        } else if (key == "spi_id") {
          // The range depends on the layout: check_spi_ids.
          if (auto n = expect_uint(kp, j, 0, UINT32_MAX)) be.spi_id = static_cast<uint32_t>(*n);
        }
      }
      vs.backends.push_back(std::move(be));
    }
  }

  // --- SPI routing (spi_layout.h)

  // "0xc0000000": at most 8 hex digits after "0x".
  std::optional<uint32_t> expect_hex32(const std::string& path, const Json& j) {
    const std::string* s = expect_string(path, j);
    if (!s) return std::nullopt;
    bool ok = s->size() > 2 && s->size() <= 10 && (*s)[0] == '0' &&
              ((*s)[1] == 'x' || (*s)[1] == 'X') &&
              std::all_of(s->begin() + 2, s->end(),
                          [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
    if (!ok) {
      error(path, "must be a 32-bit hexadecimal number like \"0xc0000000\", got " + quote(*s));
      return std::nullopt;
    }
    return static_cast<uint32_t>(std::stoul(s->substr(2), nullptr, 16));
  }

  // Returns false when the section is invalid (then the backends' spi_id are not checked
  // against it).
  bool validate_spi_routing(const std::string& path, const Json& v,
                            std::optional<SpiRoutingConfig>& out) {
    if (!expect_object(path, v, {{"labels", false}, {"learn", false}})) return false;
    SpiRoutingConfig c;
    bool ok = true;
    if (auto it = v.find("labels"); it != v.end()) {
      auto layout = validate_spi_labels(child(path, "labels"), *it, ok);
      if (layout) c.labels = *layout;
    }
    if (auto it = v.find("learn"); it != v.end()) {
      const std::string p = child(path, "learn");
      if (it->is_boolean()) {
        if (it->get<bool>()) c.learn = SpiLearn{};
      } else if (expect_object(p, *it, {{"ike_idle_s", false}, {"esp_idle_s", false}})) {
        SpiLearn learn;
        if (auto n = it->find("ike_idle_s"); n != it->end()) {
          auto s = expect_uint(child(p, "ike_idle_s"), *n, 60, 604800);
          ok = ok && s;
          if (s) learn.ike_idle_s = static_cast<uint32_t>(*s);
        }
        if (auto n = it->find("esp_idle_s"); n != it->end()) {
          auto s = expect_uint(child(p, "esp_idle_s"), *n, 60, 604800);
          ok = ok && s;
          if (s) learn.esp_idle_s = static_cast<uint32_t>(*s);
        }
        c.learn = learn;
      } else {
        ok = false;
      }
    }
    if (ok && !c.labels && !c.learn) {
      error(path, "enables nothing: set \"labels\", \"learn\" or both (or remove the section)");
      ok = false;
    }
    if (ok) out = c;
    return ok;
  }

  // true, false or a layout object; a layout only when labels are on and valid.
  std::optional<SpiLabelLayout> validate_spi_labels(const std::string& path, const Json& v,
                                                    bool& ok) {
    if (v.is_boolean()) {
      if (!v.get<bool>()) return std::nullopt;
      return SpiLabelLayout{};
    }
    if (!expect_object(path, v,
                       {{"id_bits", false},
                        {"ike_id_shift", false},
                        {"esp_id_shift", false},
                        {"esp_prefix", false}})) {
      ok = false;
      return std::nullopt;
    }
    SpiLabelLayout l;
    bool fields_ok = true;
    if (auto it = v.find("id_bits"); it != v.end()) {
      auto n = expect_uint(child(path, "id_bits"), *it, 1, 16);
      fields_ok = fields_ok && n;
      if (n) l.id_bits = static_cast<uint32_t>(*n);
    }
    l.ike_id_shift = 64 - l.id_bits;
    l.esp_id_shift = 28 - l.id_bits;
    if (auto it = v.find("ike_id_shift"); it != v.end()) {
      auto n = expect_uint(child(path, "ike_id_shift"), *it, 0, 63);
      fields_ok = fields_ok && n;
      if (n) l.ike_id_shift = static_cast<uint32_t>(*n);
    }
    if (auto it = v.find("esp_id_shift"); it != v.end()) {
      auto n = expect_uint(child(path, "esp_id_shift"), *it, 0, 31);
      fields_ok = fields_ok && n;
      if (n) l.esp_id_shift = static_cast<uint32_t>(*n);
    }
    if (auto it = v.find("esp_prefix"); it != v.end()) {
      auto n = expect_hex32(child(path, "esp_prefix"), *it);
      fields_ok = fields_ok && n;
      if (n) l.esp_prefix = *n;
    }
    if (!fields_ok) {
      ok = false;
      return std::nullopt;
    }
    if (std::string why = check_layout(l); !why.empty()) {
      error(path, why);
      ok = false;
      return std::nullopt;
    }
    return l;
  }

  // Every backend of a server with labels needs an id that fits the layout, and ids are unique.
  // Without labels an spi_id is optional (kept for when labels are turned on) but still checked.
  // 0 is never an id: it is strongSwan's default spi_label, so a gateway whose label setting is
  // missing would claim it.
  void check_spi_ids(const std::string& path, const Json& list, const VirtualServerConfig& vs) {
    if (!list.is_array()) return;
    const bool labels = vs.spi_routing && vs.spi_routing->labels;
    const uint32_t max_id = labels ? vs.spi_routing->labels->max_id() : 65535;
    std::map<uint32_t, std::string> seen;  // id -> backend name
    for (size_t i = 0; i < list.size() && i < vs.backends.size(); i++) {
      const Json& b = list[i];
      if (!b.is_object()) continue;
      const std::string p = child(path, i);
      const BackendConfig& be = vs.backends[i];
      if (!b.contains("spi_id")) {
        if (labels)
          error(p,
                "missing \"spi_id\": spi_routing.labels is on, so every backend needs its "
                "gateway id (1 to " +
                    std::to_string(max_id) + ")");
        continue;
      }
      if (!be.spi_id) continue;  // reported by validate_backends
      const std::string ip = child(p, "spi_id");
      if (*be.spi_id < 1 || *be.spi_id > max_id) {
        error(ip, "must be between 1 and " + std::to_string(max_id) +
                      (labels ? " (id_bits " + std::to_string(vs.spi_routing->labels->id_bits) + ")"
                              : std::string()) +
                      ", got " + std::to_string(*be.spi_id) +
                      (*be.spi_id == 0 ? " (0 is strongSwan's default spi_label)" : ""));
        continue;
      }
      auto [it, fresh] = seen.try_emplace(*be.spi_id, be.name);
      if (!fresh)
        error(ip, "spi_id " + std::to_string(*be.spi_id) + " is already the id of backend " +
                      quote(it->second) + " in this virtual server");
    }
  }

  void check_backend_address(size_t vs_index, const std::string& path, const std::string& text,
                             const IpAddress& a, const std::optional<IpAddress>& vs_address) {
    if (vs_address && a.family != vs_address->family) {
      error(path, quote(text) + " is an " + family_name(a) +
                      " address, but the virtual server's "
                      "address is " +
                      family_name(*vs_address));
      return;
    }
    for (size_t k = 0; k < vs_facts_.size(); k++) {
      if (vs_facts_[k].address && *vs_facts_[k].address == a) {
        error(path, quote(text) + " is the address of " + vs_label(k));
        return;
      }
    }
    auto [it, fresh] = backend_addresses_.try_emplace(a.str(), vs_index);
    if (fresh) return;
    if (it->second == vs_index)
      error(path, quote(text) + " is listed twice in this virtual server");
    else
      error(path, quote(text) + " is already a backend of " + vs_label(it->second) +
                      ": a gateway address can belong to one virtual server only, because replies "
                      "are translated by their source address");
  }

  // --- high availability (ha_config.h)

  void validate_announce(const std::string& path, const Json& v, Config& c) {
    if (!expect_object(path, v,
                       {{"bird_socket", false},
                        {"interval_ms", false},
                        {"drain_file", false},
                        {"virtual_servers", true}}))
      return;
    AnnounceConfig a;
    if (auto it = v.find("bird_socket"); it != v.end())
      if (auto s = expect_abs_path(child(path, "bird_socket"), *it)) a.bird_socket = *s;
    if (auto it = v.find("interval_ms"); it != v.end())
      if (auto n = expect_uint(child(path, "interval_ms"), *it, 100, 60000))
        a.interval_ms = static_cast<uint32_t>(*n);
    if (auto it = v.find("drain_file"); it != v.end())
      if (auto s = expect_abs_path(child(path, "drain_file"), *it)) a.drain_file = *s;
    const std::string list = child(path, "virtual_servers");
    if (auto it = v.find("virtual_servers"); it != v.end() && expect_array(list, *it)) {
      std::unordered_set<std::string> names, protocols;
      for (size_t i = 0; i < it->size(); i++) {
        const std::string p = child(list, i);
        const Json& e = (*it)[i];
        if (!expect_object(p, e,
                           {{"name", true}, {"protocol", true}, {"min_healthy_backends", false}}))
          continue;
        AnnounceVirtualServer avs;
        if (auto n = e.find("name"); n != e.end()) {
          if (const std::string* s = expect_string(child(p, "name"), *n)) {
            avs.name = *s;
            bool known = std::any_of(vs_facts_.begin(), vs_facts_.end(),
                                     [&](const VsFacts& f) { return f.name == *s; });
            if (!known)
              error(child(p, "name"), quote(*s) + " is not a virtual server of this config");
            else if (!names.insert(*s).second)
              error(child(p, "name"), quote(*s) + " is listed twice");
          }
        }
        if (auto n = e.find("protocol"); n != e.end()) {
          if (const std::string* s = expect_string(child(p, "protocol"), *n)) {
            avs.protocol = *s;
            if (!valid_bird_symbol(*s))
              error(child(p, "protocol"),
                    quote(*s) +
                        " is not a bird protocol name (a letter or \"_\", then letters, "
                        "digits or \"_\", at most 64)");
            else if (!protocols.insert(*s).second)
              error(child(p, "protocol"), quote(*s) + " already carries another virtual server");
          }
        }
        if (auto n = e.find("min_healthy_backends"); n != e.end())
          if (auto m = expect_uint(child(p, "min_healthy_backends"), *n, 1, IKELB_MAX_BACKENDS))
            avs.min_healthy_backends = static_cast<uint32_t>(*m);
        a.virtual_servers.push_back(std::move(avs));
      }
    }
    c.announce = std::move(a);
  }

  void validate_sync(const std::string& path, const Json& v, Config& c) {
    if (!expect_object(path, v,
                       {{"node_id", true},
                        {"listen", true},
                        {"peers", true},
                        {"key_file", true},
                        {"interval_ms", false},
                        {"max_records_per_second", false},
                        {"queue_records", false},
                        {"snapshot_on_join", false},
                        {"snapshot_timeout_ms", false}}))
      return;
    SyncConfig sc;
    auto uint_field = [&](const char* key, uint64_t lo, uint64_t hi, uint32_t& out) {
      if (auto it = v.find(key); it != v.end())
        if (auto n = expect_uint(child(path, key), *it, lo, hi)) out = static_cast<uint32_t>(*n);
    };
    uint_field("node_id", 1, UINT32_MAX, sc.node_id);
    uint_field("interval_ms", 10, 60000, sc.interval_ms);
    uint_field("max_records_per_second", 1, 10000000, sc.max_records_per_second);
    uint_field("queue_records", 1, 10000000, sc.queue_records);
    uint_field("snapshot_timeout_ms", 0, 600000, sc.snapshot_timeout_ms);
    if (auto it = v.find("snapshot_on_join"); it != v.end())
      if (auto b = expect_bool(child(path, "snapshot_on_join"), *it)) sc.snapshot_on_join = *b;
    if (auto it = v.find("key_file"); it != v.end())
      if (auto s = expect_abs_path(child(path, "key_file"), *it)) sc.key_file = *s;
    std::optional<ListenAddress> self;
    if (auto it = v.find("listen"); it != v.end())
      if (auto s = expect_listen(child(path, "listen"), *it)) {
        self = parse_listen_address(*s);
        sc.listen = *s;
      }
    const std::string list = child(path, "peers");
    if (auto it = v.find("peers"); it != v.end() && expect_array(list, *it)) {
      if (it->empty()) error(list, "must list at least one peer");
      if (it->size() > kSyncMaxPeers)
        error(list, "at most " + std::to_string(kSyncMaxPeers) + " peers, got " +
                        std::to_string(it->size()));
      std::unordered_set<std::string> seen;
      for (size_t i = 0; i < it->size() && i < kSyncMaxPeers; i++) {
        const std::string p = child(list, i);
        auto s = expect_listen(p, (*it)[i]);
        if (!s) continue;
        auto peer = parse_listen_address(*s);
        const std::string canonical = peer->address.str() + "/" + std::to_string(peer->port);
        if (self && peer->address == self->address && peer->port == self->port)
          error(p, quote(*s) + " is this node's own sync.listen");
        else if (!seen.insert(canonical).second)
          error(p, quote(*s) + " is listed twice");
        else
          sc.peers.push_back(*s);
      }
    }
    c.sync = std::move(sc);
  }

  static bool valid_bird_symbol(std::string_view s) {
    if (s.empty() || s.size() > 64 || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
    return std::all_of(s.begin(), s.end(), [](char ch) {
      return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_';
    });
  }

  const DocumentBuilder& doc_;
  std::vector<ConfigError> errors_;
  std::vector<VsFacts> vs_facts_;
  std::unordered_set<std::string> vs_names_;
  std::map<std::string, VipOwner> vips_;
  size_t vip_keys_ = 0;
  size_t total_backends_ = 0;
  bool total_backends_reported_ = false;
  std::unordered_map<std::string, size_t> backend_addresses_;  // address -> virtual server
};

}  // namespace

ConfigResult parse_config(std::string_view json_text) {
  ConfigResult result;
  DocumentBuilder doc;
  try {
    bool ok = Json::sax_parse(json_text.begin(), json_text.end(), &doc);
    if (!ok && !doc.fatal) doc.fatal = "invalid JSON";
  } catch (const std::exception& e) {
    doc.fatal = e.what();
  }
  if (doc.fatal) {
    result.errors.push_back({"", *doc.fatal});
    return result;
  }
  Config config;
  try {
    result.errors = Validator(doc).run(config);
  } catch (const std::exception& e) {  // a bug, but never an exception out of here
    result.errors.push_back({"", std::string("internal error: ") + e.what()});
  }
  if (result.errors.empty()) result.config = std::move(config);
  return result;
}

ConfigResult parse_config_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ConfigResult result;
    result.errors.push_back({"", "cannot read " + path + ": " + std::strerror(errno)});
    return result;
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    ConfigResult result;
    result.errors.push_back({"", "cannot read " + path});
    return result;
  }
  return parse_config(text.str());
}

std::optional<ListenAddress> parse_listen_address(std::string_view text) {
  ListenAddress out;
  if (!check_listen(text, &out).empty()) return std::nullopt;
  return out;
}

std::variant<std::vector<uint8_t>, ConfigError> read_sync_key(const SyncConfig& sync) {
  const std::string path = "/sync/key_file";
  std::ifstream in(sync.key_file, std::ios::binary);
  if (!in) return ConfigError{path, "cannot read " + sync.key_file + ": " + std::strerror(errno)};
  std::vector<uint8_t> key((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return ConfigError{path, "cannot read " + sync.key_file};
  if (key.size() < kSyncMinKeyBytes)
    return ConfigError{path, sync.key_file + " holds " + std::to_string(key.size()) +
                                 " bytes; the shared key must be at least " +
                                 std::to_string(kSyncMinKeyBytes) +
                                 " bytes (e.g. head -c 32 /dev/urandom > FILE, the same file on "
                                 "every node)"};
  return key;
}

std::string summary(const Config& config) {
  size_t backends = 0;
  for (const auto& vs : config.virtual_servers) backends += vs.backends.size();
  return plural(config.virtual_servers.size(), "virtual server", "virtual servers") + ", " +
         plural(backends, "backend", "backends") + ", " +
         plural(config.interfaces.size(), "interface", "interfaces");
}

}  // namespace ikelb
