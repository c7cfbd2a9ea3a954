#include "model.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>

namespace ikelb::appliance {
namespace {

using Json = nlohmann::ordered_json;

constexpr uint32_t kMinTableSlotsPerBackend = 100;  // config/README.md: table >= 100 x backends
constexpr uint32_t kDefaultTableSize = 65537;
constexpr size_t kMaxNamesInNote = 5;

struct Kind {
  ProblemKind kind;
  std::string_view name;
};
constexpr Kind kKinds[] = {{ProblemKind::kServices, "services"},
                           {ProblemKind::kShared, "shared"},
                           {ProblemKind::kMismatch, "mismatch"},
                           {ProblemKind::kUnsupported, "unsupported"},
                           {ProblemKind::kInvalid, "invalid"}};

bool is_prime(uint32_t n) {
  if (n < 2) return false;
  for (uint32_t d = 2; d * d <= n; d++)
    if (n % d == 0) return false;
  return true;
}

// An ikelb name (config.cc valid_name: letters, digits, "_", ".", "-"; 1 to 63 characters).
std::string sanitize_name(std::string_view s) {
  if (auto slash = s.rfind('/'); slash != std::string_view::npos) s.remove_prefix(slash + 1);
  std::string out;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    out += ok ? c : '-';
  }
  if (out.size() > 63) out.resize(63);
  return out.empty() ? std::string("gw") : out;
}

std::string unique_name(std::string base, std::set<std::string>& used) {
  std::string name = base;
  for (int i = 2; !used.insert(name).second; i++) {
    std::string suffix = "-" + std::to_string(i);
    name = base.substr(0, 63 - suffix.size()) + suffix;
  }
  return name;
}

// "aovpn_500" and "aovpn_4500" -> "aovpn"; one service keeps its own name.
std::string virtual_server_name(const std::vector<const Service*>& services) {
  std::string prefix = sanitize_name(services.front()->name);
  for (const Service* s : services) {
    std::string n = sanitize_name(s->name);
    size_t i = 0;
    while (i < prefix.size() && i < n.size() && prefix[i] == n[i]) i++;
    prefix.resize(i);
  }
  while (!prefix.empty() && (prefix.back() == '_' || prefix.back() == '-' || prefix.back() == '.'))
    prefix.pop_back();
  return prefix.size() >= 3 ? prefix : sanitize_name(services.front()->name);
}

std::string service_label(const Service& s) {
  std::string port = s.port ? std::to_string(*s.port) : std::string("any port");
  std::string proto = s.protocol_text.empty() ? std::string("?") : s.protocol_text;
  return "\"" + s.name + "\" (" + proto + " " + s.address + " " + port + ")";
}

bool is_ike_service(const Service& s) {
  switch (s.protocol) {
    case Protocol::kUdp:
      return !s.port || *s.port == 500 || *s.port == 4500;
    case Protocol::kEsp:
    case Protocol::kAny:
      return true;
    default:
      return false;
  }
}

int state_rank(const std::optional<ConfiguredState>& s) {
  if (!s || *s == ConfiguredState::kActive) return 0;
  return *s == ConfiguredState::kDraining ? 1 : 2;
}

std::string state_text(const std::optional<ConfiguredState>& s) {
  return s ? std::string(to_string(*s)) : std::string("enabled");
}

struct Gateway {
  IpAddress address;
  std::string name;
  uint32_t weight;
  std::optional<ConfiguredState> state;
};

// The services of one VIP address, in file order.
struct Vip {
  IpAddress address;
  std::vector<const Service*> services;
};

class Converter {
 public:
  Converter(const ApplianceConfig& a, const ImportOptions& o) : appliance_(a), options_(o) {
    result_.findings = a.findings;
  }

  ImportResult run() {
    std::vector<const Service*> selected = select();
    std::vector<Vip> vips = group(selected);
    Json servers = Json::array();
    std::set<std::string> vs_names;
    std::map<std::string, std::string> gateway_owner;  // gateway address -> VIP address
    std::optional<uint32_t> idle_timeout;
    const Service* idle_source = nullptr;
    for (Vip& vip : vips) {
      std::vector<Gateway> gateways = merge_members(vip);
      if (gateways.empty()) {
        problem(ProblemKind::kUnsupported, vip.services.front()->where,
                "VIP " + vip.address.str() + " has no usable member: not imported");
        continue;
      }
      if (!claim_gateways(vip, gateways, gateway_owner)) continue;
      persistence_notes(vip, idle_timeout, idle_source);
      servers.push_back(virtual_server(vip, gateways, vs_names));
      result_.backends += gateways.size();
    }
    result_.virtual_servers = servers.size();
    const bool unreadable = std::any_of(result_.findings.begin(), result_.findings.end(),
                                        [](auto& f) { return f.severity == Severity::kFatal; });
    if (servers.empty() && !unreadable)
      fatal({}, "no IKE virtual server (UDP 500/4500, ESP or any-protocol) to import");

    Json doc = Json::object();
    std::vector<std::string> interfaces = options_.interfaces;
    if (interfaces.empty()) {
      interfaces = {"eth0"};
      note({},
           "\"interfaces\" is set to [\"eth0\"], a placeholder (--interface NAME sets it): "
           "XDP attaches to the client-side and gateway-side interfaces of the ikelb host");
    }
    doc["interfaces"] = interfaces;
    uint32_t idle = idle_timeout.value_or(3600);
    doc["affinity"] = {{"idle_timeout_s", idle}};
    if (idle_timeout) {
      note(idle_source->persistence_where,
           "persistence timeout -> \"affinity.idle_timeout_s\": " + std::to_string(idle) +
               (idle == 0 ? " (never expires)" : " s") +
               "; ikelb has one idle timeout for all virtual servers (the longest is taken), and "
               "an expired client is re-hashed onto the same gateway unless the gateway set "
               "changed");
    } else if (!servers.empty()) {
      note({},
           "no persistence timeout found: \"affinity.idle_timeout_s\" keeps its default, "
           "3600 s");
    }
    doc["virtual_servers"] = servers;
    result_.config_json = doc.dump(2) + "\n";

    if (!servers.empty()) {
      ConfigResult check = parse_config(result_.config_json);
      for (const ConfigError& e : check.errors)
        fatal({}, "the generated ikelb config is invalid: " + e.str());
    }
    std::stable_sort(
        result_.findings.begin(), result_.findings.end(),
        [](const Finding& a, const Finding& b) { return a.where.line < b.where.line; });
    // A pool behind two services is described twice by the parsers: say it once.
    std::set<std::tuple<size_t, Severity, std::string>> seen;
    std::erase_if(result_.findings, [&](const Finding& f) {
      return !seen.emplace(f.where.line, f.severity, f.message).second;
    });
    result_.ok = std::none_of(result_.findings.begin(), result_.findings.end(), [&](auto& f) {
      return f.severity == Severity::kFatal ||
             (f.severity == Severity::kProblem && !options_.force.contains(f.kind));
    });
    if (!result_.ok) result_.config_json.clear();
    return std::move(result_);
  }

 private:
  void note(const Location& where, std::string message) {
    result_.findings.push_back({Severity::kNote, ProblemKind::kUnsupported, where, message});
  }
  void problem(ProblemKind kind, const Location& where, std::string message) {
    result_.findings.push_back({Severity::kProblem, kind, where, std::move(message)});
  }
  void fatal(const Location& where, std::string message) {
    result_.findings.push_back({Severity::kFatal, ProblemKind::kUnsupported, where, message});
  }

  // --name: the named services and every other service on their VIP addresses.
  std::vector<const Service*> select() {
    std::vector<const Service*> all;
    for (const Service& s : appliance_.services) all.push_back(&s);
    if (options_.names.empty()) return all;
    std::set<std::string> addresses;
    for (const std::string& name : options_.names) {
      bool found = false;
      for (const Service& s : appliance_.services)
        if (s.name == name || sanitize_name(s.name) == name) {
          addresses.insert(s.address);
          found = true;
        }
      if (!found) fatal({}, "--name " + name + ": no virtual server of that name in the file");
    }
    std::vector<const Service*> out;
    for (const Service* s : all)
      if (addresses.contains(s->address)) out.push_back(s);
    return out;
  }

  std::vector<Vip> group(const std::vector<const Service*>& services) {
    std::vector<Vip> vips;
    std::vector<std::string> ignored;
    std::set<std::string> ike_addresses;
    for (const Service* s : services)  // disabled ones too: they are reported, not ignored
      if (is_ike_service(*s)) ike_addresses.insert(s->address);
    for (const Service* s : services) {
      if (!ike_addresses.contains(s->address)) {
        ignored.push_back(s->name);
        continue;
      }
      if (!s->enabled) {
        note(s->where, service_label(*s) + " is disabled on the appliance: not imported");
        continue;
      }
      if (!is_ike_service(*s)) {
        problem(ProblemKind::kServices, s->where,
                service_label(*s) +
                    ": ikelb forwards only UDP 500, UDP 4500 and ESP; this service is not "
                    "imported and must stay elsewhere (a TCP fallback such as SSTP needs its own "
                    "load balancer)");
        continue;
      }
      // What the parser found about the service, its pool and members (not about the
      // services above, which are not imported whatever they say).
      result_.findings.insert(result_.findings.end(), s->findings.begin(), s->findings.end());
      auto address = IpAddress::parse(s->address);
      if (!address) {
        problem(ProblemKind::kInvalid, s->where,
                service_label(*s) + ": \"" + s->address + "\" is not an IP address");
        continue;
      }
      auto it = std::find_if(vips.begin(), vips.end(),
                             [&](const Vip& v) { return v.address == *address; });
      if (it == vips.end()) {
        vips.push_back({*address, {}});
        it = vips.end() - 1;
      }
      it->services.push_back(s);
      if (s->protocol == Protocol::kUdp && !s->port)
        note(s->where, service_label(*s) +
                           ": UDP on any port; ikelb forwards UDP 500 and 4500 only, other UDP "
                           "ports to this address reach the ikelb host itself");
      if (s->protocol == Protocol::kAny)
        note(s->where, service_label(*s) +
                           ": all protocols; ikelb forwards UDP 500, UDP 4500 and ESP (IP "
                           "protocol 50) only, anything else to this address reaches the ikelb "
                           "host itself");
    }
    if (!ignored.empty()) {
      std::string list;
      for (size_t i = 0; i < ignored.size() && i < kMaxNamesInNote; i++)
        list += (i ? ", " : "") + ignored[i];
      if (ignored.size() > kMaxNamesInNote) list += ", ...";
      note({}, std::to_string(ignored.size()) +
                   " virtual server(s) on addresses without UDP 500/4500 or ESP were not "
                   "imported: " +
                   list);
    }
    return vips;
  }

  // One gateway set for the whole VIP: ikelb hashes the source address only, so UDP 500, 4500
  // and ESP of a client always reach the same gateway; the appliance's services must agree.
  std::vector<Gateway> merge_members(const Vip& vip) {
    struct PerService {
      const Service* service;
      std::map<std::string, Gateway> gateways;  // by address text (normalized)
      std::map<std::string, const Member*> members;
    };
    std::vector<PerService> sets;
    for (const Service* s : vip.services) {
      PerService ps{s, {}, {}};
      for (const Member& m : s->members) {
        auto address = IpAddress::parse(m.address);
        if (!address) {
          problem(ProblemKind::kInvalid, m.where,
                  "member \"" + m.name + "\": \"" + m.address + "\" is not an IP address");
          continue;
        }
        if (address->family != vip.address.family) {
          problem(ProblemKind::kUnsupported, m.where,
                  "member \"" + m.name + "\" (" + address->str() +
                      ") is not of the VIP's address family; ikelb does not translate between "
                      "IPv4 and IPv6");
          continue;
        }
        if (m.port != 0 && (!s->port || m.port != *s->port)) {
          problem(ProblemKind::kUnsupported, m.where,
                  "member \"" + m.name + "\" listens on port " + std::to_string(m.port) + " for " +
                      service_label(*s) +
                      ": ikelb never translates ports (IKE and NAT-T need 500 and 4500)");
          continue;
        }
        std::string key = address->str();
        if (ps.gateways.contains(key)) continue;  // the same gateway twice (e.g. two ports)
        ps.gateways[key] = {*address, m.name, m.weight, m.state};
        ps.members[key] = &m;
      }
      sets.push_back(std::move(ps));
    }
    // Compare every service with the first one.
    const PerService& first = sets.front();
    std::map<std::string, Gateway> merged = first.gateways;
    for (size_t i = 1; i < sets.size(); i++) {
      const PerService& other = sets[i];
      std::vector<std::string> diffs;
      for (auto& [key, g] : merged) {
        auto it = other.gateways.find(key);
        if (it == other.gateways.end()) {
          diffs.push_back(key + " only in \"" + first.service->name + "\"");
        } else {
          if (it->second.weight != g.weight)
            diffs.push_back(key + " weight " + std::to_string(g.weight) + " vs " +
                            std::to_string(it->second.weight));
          if (state_rank(it->second.state) != state_rank(g.state))
            diffs.push_back(key + " " + state_text(g.state) + " vs " +
                            state_text(it->second.state));
        }
      }
      for (auto& [key, g] : other.gateways)
        if (!merged.contains(key))
          diffs.push_back(key + " only in \"" + other.service->name + "\"");
      if (!diffs.empty()) {
        std::string list;
        for (const auto& d : diffs) list += (list.empty() ? "" : "; ") + d;
        problem(ProblemKind::kMismatch,
                other.service->pool_where.line ? other.service->pool_where : other.service->where,
                "the services of VIP " + vip.address.str() + " have different members (" + list +
                    "); ikelb sends UDP 500, UDP 4500 and ESP of a client to one gateway, so "
                    "they need one gateway set. --force=mismatch keeps the gateways common to "
                    "all of them, with the weight of \"" +
                    first.service->name + "\" and the most restrictive state");
      }
      for (auto it = merged.begin(); it != merged.end();) {
        auto o = other.gateways.find(it->first);
        if (o == other.gateways.end()) {
          it = merged.erase(it);
          continue;
        }
        if (state_rank(o->second.state) > state_rank(it->second.state))
          it->second.state = o->second.state;
        ++it;
      }
    }
    // Keep the order of the first service's members.
    std::vector<Gateway> out;
    for (const Member& m : first.service->members) {
      auto address = IpAddress::parse(m.address);
      if (!address) continue;
      auto it = merged.find(address->str());
      if (it == merged.end()) continue;
      out.push_back(it->second);
      merged.erase(it);
    }
    return out;
  }

  // Replies are translated by gateway address alone, so a gateway serves one VIP.
  bool claim_gateways(const Vip& vip, const std::vector<Gateway>& gateways,
                      std::map<std::string, std::string>& owner) {
    std::vector<std::string> taken;
    for (const Gateway& g : gateways)
      if (auto it = owner.find(g.address.str()); it != owner.end())
        taken.push_back(g.address.str() + " (already behind VIP " + it->second + ")");
    if (!taken.empty()) {
      std::string list;
      for (const auto& t : taken) list += (list.empty() ? "" : ", ") + t;
      const Service& s = *vip.services.front();
      problem(ProblemKind::kShared, s.where,
              "VIP " + vip.address.str() + " (pool \"" + s.pool + "\") shares gateways with " +
                  "another VIP: " + list +
                  ". ikelb translates replies by the gateway's address alone, so a gateway "
                  "belongs to one VIP; --force=shared drops this VIP");
      return false;
    }
    for (const Gateway& g : gateways) owner[g.address.str()] = vip.address.str();
    return true;
  }

  void persistence_notes(const Vip& vip, std::optional<uint32_t>& idle, const Service*& source) {
    bool all_source = true, all_shared = true;
    for (const Service* s : vip.services) {
      all_source = all_source && s->source_persistence;
      all_shared = all_shared && s->persistence_shared;
      if (s->persistence_timeout_s) {
        uint32_t t = *s->persistence_timeout_s;
        if (!idle || (*idle != 0 && (t == 0 || t > *idle))) {
          idle = t;
          source = s;
        }
      }
    }
    const Service& s = *vip.services.front();
    if (!all_source)
      note(s.where, "VIP " + vip.address.str() +
                        ": not every service had source-address persistence on the appliance; "
                        "ikelb always keeps a client on one gateway (source-address affinity "
                        "and Maglev hashing of the source address)");
    if (vip.services.size() > 1 && !all_shared)
      note(s.where, "VIP " + vip.address.str() +
                        ": the appliance's services kept separate persistence tables, so a "
                        "client's UDP 500 and 4500 could reach different gateways; ikelb sends "
                        "them (and ESP, and IP fragments) to the same gateway by construction");
  }

  Json virtual_server(const Vip& vip, const std::vector<Gateway>& gateways,
                      std::set<std::string>& vs_names) {
    std::set<uint16_t> ports;
    bool esp = false;
    for (const Service* s : vip.services) {
      if (s->protocol == Protocol::kEsp || s->protocol == Protocol::kAny) esp = true;
      if (s->protocol == Protocol::kEsp) continue;
      if (s->port) {
        ports.insert(*s->port);
      } else {
        ports.insert(500);
        ports.insert(4500);
      }
    }
    if (!esp)
      note(vip.services.front()->where,
           "VIP " + vip.address.str() +
               ": no ESP service on the appliance, so \"esp\" is false as before (clients "
               "without NAT in the path send ESP, IP protocol 50; set \"esp\": true to forward "
               "it)");
    Json vs = Json::object();
    vs["name"] = unique_name(virtual_server_name(vip.services), vs_names);
    vs["address"] = vip.address.str();
    vs["ports"] = std::vector<uint16_t>(ports.begin(), ports.end());
    vs["esp"] = esp;
    const uint32_t need = static_cast<uint32_t>(gateways.size()) * kMinTableSlotsPerBackend;
    if (need > kDefaultTableSize) {
      uint32_t size = need;
      while (!is_prime(size)) size++;
      vs["maglev_table_size"] = size;
    }
    if (!ports.empty() && !ports.contains(500)) vs["health_check"] = {{"port", 4500}};
    Json backends = Json::array();
    std::set<std::string> names;
    for (const Gateway& g : gateways) {
      Json b = Json::object();
      b["name"] = unique_name(sanitize_name(g.name), names);
      b["address"] = g.address.str();
      b["weight"] = g.weight;
      if (g.state && *g.state != ConfiguredState::kActive) b["state"] = to_string(*g.state);
      backends.push_back(b);
    }
    vs["backends"] = backends;
    return vs;
  }

  const ApplianceConfig& appliance_;
  const ImportOptions& options_;
  ImportResult result_;
};

}  // namespace

std::string Location::str() const {
  std::string out = file;
  if (line) out += ":" + std::to_string(line);
  if (!element.empty()) out += " (" + element + ")";
  return out;
}

std::string_view to_string(ProblemKind k) {
  for (const Kind& x : kKinds)
    if (x.kind == k) return x.name;
  return "?";
}

std::optional<ProblemKind> problem_kind_from_string(std::string_view s) {
  for (const Kind& x : kKinds)
    if (x.name == s) return x.kind;
  return std::nullopt;
}

bool parse_force(std::string_view text, std::set<ProblemKind>& out, std::string& error) {
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view word = text.substr(start, end - start);
    if (word == "all") {
      for (const Kind& x : kKinds) out.insert(x.kind);
    } else if (auto k = problem_kind_from_string(word)) {
      out.insert(*k);
    } else {
      error = "unknown --force kind \"" + std::string(word) +
              "\" (services, shared, mismatch, unsupported, invalid, all)";
      return false;
    }
    start = end + 1;
  }
  return true;
}

ImportResult convert(const ApplianceConfig& appliance, const ImportOptions& options) {
  return Converter(appliance, options).run();
}

std::string format_report(const ImportResult& result, const std::string& vendor,
                          const std::set<ProblemKind>& force) {
  std::string out;
  std::set<std::string> unforced;
  size_t errors = 0;
  for (const Finding& f : result.findings) {
    std::string head;
    std::string tail;
    if (f.severity == Severity::kNote) {
      head = "note";
    } else if (f.severity == Severity::kFatal) {
      head = "error";
      errors++;
    } else if (force.contains(f.kind)) {
      head = "dropped";
      tail = " [" + std::string(to_string(f.kind)) + "]";
    } else {
      head = "error";
      tail = " [--force=" + std::string(to_string(f.kind)) + " drops it]";
      unforced.insert(std::string(to_string(f.kind)));
      errors++;
    }
    std::string where = f.where.str();
    out += head + ": " + (where.empty() ? "" : where + ": ") + f.message + tail + "\n";
  }
  if (result.ok) {
    out += vendor + " import: " + std::to_string(result.virtual_servers) + " virtual server(s), " +
           std::to_string(result.backends) + " backend(s)\n";
  } else {
    std::string kinds;
    for (const auto& k : unforced) kinds += (kinds.empty() ? "" : ",") + k;
    out +=
        vendor + " import refused: " + std::to_string(errors) + " error(s)" +
        (kinds.empty() ? std::string() : "; --force=" + kinds + " drops the elements named above") +
        "\n";
  }
  return out;
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::optional<uint32_t> parse_uint(std::string_view s, uint32_t max) {
  if (s.empty() || s.size() > 10) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > max) return std::nullopt;
  return static_cast<uint32_t>(v);
}

}  // namespace ikelb::appliance
