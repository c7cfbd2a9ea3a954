#include "f5.h"

#include <algorithm>
#include <map>
#include <memory>

namespace ikelb::appliance {
namespace {

constexpr size_t kMaxDepth = 32;  // tmsh nests ~5 deep; deeper input is rejected, not recursed

// One tmsh statement: words up to the end of the line, and the block that follows "{".
struct Node {
  std::vector<std::string> words;
  size_t line = 0;
  bool block = false;
  std::vector<Node> children;

  // The value of "key value" among the children, or nullptr.
  const Node* find(std::string_view key) const {
    for (const Node& c : children)
      if (!c.words.empty() && c.words[0] == key) return &c;
    return nullptr;
  }
};

// Objects whose body is a script (iRules, iCall, templates): braces are counted, quotes and
// "#" are Tcl's, not tmsh's.
bool is_script_object(const std::vector<std::string>& words) {
  for (const auto& w : words)
    if (w == "rule" || w == "script" || w == "template" || w == "icall") return true;
  return false;
}

class Lexer {
 public:
  Lexer(std::string_view text, const std::string& file, std::vector<Finding>& findings)
      : text_(text), file_(file), findings_(findings) {}

  // The top-level statements, or nullopt after a fatal syntax error (reported).
  std::optional<std::vector<Node>> parse() {
    std::vector<Node> top;
    if (!block(top, 0)) return std::nullopt;
    return top;
  }

 private:
  bool fail(size_t line, std::string message) {
    findings_.push_back(
        {Severity::kFatal, ProblemKind::kUnsupported, {file_, line, ""}, std::move(message)});
    return false;
  }

  // Reads statements until the "}" that closes this block (depth > 0) or the end of the text.
  bool block(std::vector<Node>& out, size_t depth) {
    const size_t open_line = line_;
    Node cur;
    auto flush = [&] {
      if (!cur.words.empty()) out.push_back(std::move(cur));
      cur = Node{};
    };
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c == '\n') {
        flush();
        line_++;
        pos_++;
      } else if (c == ' ' || c == '\t' || c == '\r') {
        pos_++;
      } else if (c == '#' && cur.words.empty()) {
        while (pos_ < text_.size() && text_[pos_] != '\n') pos_++;
      } else if (c == '{') {
        pos_++;
        if (cur.words.empty()) cur.line = line_;
        cur.block = true;
        if (depth + 1 > kMaxDepth) return fail(line_, "blocks nested too deeply");
        if (depth == 0 && is_script_object(cur.words)) {
          if (!skip_script()) return false;
        } else if (!block(cur.children, depth + 1)) {
          return false;
        }
        flush();
      } else if (c == '}') {
        pos_++;
        flush();
        if (depth == 0) return fail(line_, "\"}\" without a matching \"{\"");
        return true;
      } else {
        std::string word;
        if (cur.words.empty()) cur.line = line_;
        if (!read_word(word)) return false;
        cur.words.push_back(std::move(word));
      }
    }
    flush();
    if (depth > 0) return fail(open_line, "\"{\" is never closed");
    return true;
  }

  bool read_word(std::string& word) {
    if (text_[pos_] == '"') {
      const size_t start_line = line_;
      pos_++;
      while (pos_ < text_.size() && text_[pos_] != '"') {
        if (text_[pos_] == '\\' && pos_ + 1 < text_.size()) pos_++;
        if (text_[pos_] == '\n') line_++;
        word += text_[pos_++];
      }
      if (pos_ >= text_.size()) return fail(start_line, "quoted string is never closed");
      pos_++;
      return true;
    }
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '{' || c == '}') break;
      word += c;
      pos_++;
    }
    return true;
  }

  bool skip_script() {
    const size_t open_line = line_;
    size_t depth = 1;
    while (pos_ < text_.size()) {
      char c = text_[pos_++];
      if (c == '\\' && pos_ < text_.size()) {
        if (text_[pos_] == '\n') line_++;
        pos_++;
      } else if (c == '\n') {
        line_++;
      } else if (c == '{') {
        depth++;
      } else if (c == '}' && --depth == 0) {
        return true;
      }
    }
    return fail(open_line, "\"{\" is never closed");
  }

  std::string_view text_;
  const std::string& file_;
  std::vector<Finding>& findings_;
  size_t pos_ = 0;
  size_t line_ = 1;
};

// "/Common/x" for "x"; folder paths are kept.
std::string full_name(std::string_view name) {
  if (name.starts_with("/")) return std::string(name);
  return "/Common/" + std::string(name);
}

std::optional<uint16_t> port_number(std::string_view p) {
  static const std::map<std::string, uint16_t, std::less<>> kNames = {
      {"any", 0},     {"isakmp", 500}, {"ipsec-nat-t", 4500}, {"http", 80},   {"https", 443},
      {"domain", 53}, {"ntp", 123},    {"l2tp", 1701},        {"pptp", 1723}, {"ssh", 22}};
  if (auto it = kNames.find(p); it != kNames.end()) return it->second;
  if (auto n = parse_uint(p, 65535)) return static_cast<uint16_t>(*n);
  return std::nullopt;
}

struct Endpoint {
  std::string address;
  std::optional<uint16_t> port;  // nullopt: "any"
  std::string route_domain;
};

// "/Common/203.0.113.10:500", "2001:db8::10.4500", "10.0.0.1%2:any".
std::optional<Endpoint> parse_endpoint(std::string_view text) {
  if (auto slash = text.rfind('/'); slash != std::string_view::npos) text.remove_prefix(slash + 1);
  const bool v6 = std::count(text.begin(), text.end(), ':') > 1;
  size_t sep = v6 ? text.rfind('.') : text.rfind(':');
  if (sep == std::string_view::npos || sep == 0) return std::nullopt;
  Endpoint e;
  e.address = std::string(text.substr(0, sep));
  auto port = port_number(text.substr(sep + 1));
  if (!port) return std::nullopt;
  if (*port != 0) e.port = *port;
  if (auto pct = e.address.find('%'); pct != std::string::npos) {
    e.route_domain = e.address.substr(pct + 1);
    e.address.resize(pct);
  }
  return e;
}

struct Persistence {
  std::string type;  // "source-addr", "universal", ...
  std::optional<uint32_t> timeout_s;
  std::optional<bool> across_services;
  std::string defaults_from;
  size_t line = 0;
};

struct NodeObject {
  std::string address;
  std::optional<ConfiguredState> state;
};

class F5Reader {
 public:
  F5Reader(const std::string& file) : file_(file) {
    out_.vendor = "F5 BIG-IP";
    // The built-in parents of custom profiles (tmsh defaults).
    persistence_["/Common/source_addr"] = {"source-addr", 180, false, "", 0};
    persistence_["/Common/dest_addr"] = {"dest-addr", 180, false, "", 0};
    persistence_["/Common/universal"] = {"universal", 180, false, "", 0};
    persistence_["/Common/hash"] = {"hash", 180, false, "", 0};
    persistence_["/Common/cookie"] = {"cookie", 0, false, "", 0};
  }

  ApplianceConfig read(std::string_view text) {
    auto top = Lexer(text, file_, out_.findings).parse();
    if (!top) return std::move(out_);
    std::vector<const Node*> virtuals;
    for (const Node& n : *top) {
      if (n.words.size() < 3 || n.words[0] != "ltm" || !n.block) continue;
      const std::string& type = n.words[1];
      const std::string name = full_name(n.words.back());
      if (type == "virtual" && n.words.size() == 3)
        virtuals.push_back(&n);
      else if (type == "pool" && n.words.size() == 3)
        pools_[name] = &n;
      else if (type == "node" && n.words.size() == 3)
        read_node(name, n);
      else if (type == "persistence" && n.words.size() == 4)
        read_persistence(name, n.words[2], n);
      else if (type == "monitor" && n.words.size() == 4)
        monitors_[name] = n.words[2];
    }
    for (const Node* v : virtuals) read_virtual(*v);
    return std::move(out_);
  }

 private:
  Location at(size_t line, std::string element = "") const {
    return {file_, line, std::move(element)};
  }
  // Findings go to the service being read, if any (model.h: Service::findings).
  std::vector<Finding>& sink() { return sink_ ? *sink_ : out_.findings; }
  void note(size_t line, std::string message) {
    sink().push_back({Severity::kNote, ProblemKind::kUnsupported, at(line), message});
  }
  void problem(ProblemKind kind, size_t line, std::string message) {
    sink().push_back({Severity::kProblem, kind, at(line), std::move(message)});
  }

  static std::optional<ConfiguredState> member_state(const Node& n) {
    const Node* session = n.find("session");
    const Node* state = n.find("state");
    const bool user_disabled =
        session && session->words.size() == 2 && session->words[1] == "user-disabled";
    const bool user_down = state && state->words.size() == 2 && state->words[1] == "user-down";
    if (user_down) return ConfiguredState::kDisabled;  // "forced offline"
    if (user_disabled) return ConfiguredState::kDraining;
    return std::nullopt;
  }

  void read_node(const std::string& name, const Node& n) {
    NodeObject node;
    if (const Node* a = n.find("address"); a && a->words.size() == 2) node.address = a->words[1];
    node.state = member_state(n);
    nodes_[name] = node;
  }

  void read_persistence(const std::string& name, const std::string& type, const Node& n) {
    Persistence p{type, std::nullopt, std::nullopt, "", n.line};
    for (const Node& c : n.children) {
      if (c.words.size() != 2) continue;
      if (c.words[0] == "timeout") {
        if (c.words[1] == "indefinite")
          p.timeout_s = 0;
        else if (auto t = parse_uint(c.words[1], 31536000))
          p.timeout_s = *t;
        else
          problem(ProblemKind::kInvalid, c.line,
                  "persistence timeout \"" + c.words[1] + "\" is not a number of seconds");
      } else if (c.words[0] == "match-across-services" || c.words[0] == "match-across-virtuals") {
        p.across_services = p.across_services.value_or(false) || c.words[1] == "enabled";
      } else if (c.words[0] == "defaults-from") {
        p.defaults_from = full_name(c.words[1]);
      } else if (c.words[0] == "mask" && c.words[1] != "255.255.255.255" && c.words[1] != "none") {
        note(c.line,
             "persistence mask " + c.words[1] + ": ikelb keys affinity by the full client address");
      }
    }
    persistence_[name] = p;
  }

  // A profile with the inherited values of its parents filled in.
  Persistence resolve(const std::string& name) const {
    Persistence p;
    std::string cur = name;
    for (int i = 0; i < 8; i++) {
      auto it = persistence_.find(cur);
      if (it == persistence_.end()) break;
      const Persistence& x = it->second;
      if (p.type.empty()) p.type = x.type;
      if (!p.timeout_s) p.timeout_s = x.timeout_s;
      if (!p.across_services) p.across_services = x.across_services;
      if (!p.line) p.line = x.line;
      if (x.defaults_from.empty() || x.defaults_from == cur) break;
      cur = x.defaults_from;
    }
    return p;
  }

  // Properties of "ltm virtual" that do not change how IKE is forwarded.
  static bool ignored_virtual_property(const std::string& k) {
    static const std::set<std::string> kIgnored = {"mask",
                                                   "source",
                                                   "vs-index",
                                                   "description",
                                                   "creation-time",
                                                   "last-modified-time",
                                                   "profiles",
                                                   "vlans",
                                                   "vlans-enabled",
                                                   "vlans-disabled",
                                                   "translate-port",
                                                   "connection-limit",
                                                   "rate-limit",
                                                   "rate-limit-mode",
                                                   "metadata",
                                                   "app-service",
                                                   "partition",
                                                   "serverssl-use-sni",
                                                   "source-port",
                                                   "gtm-score",
                                                   "cmp-enabled",
                                                   "mirror",
                                                   "auto-lasthop",
                                                   "enabled",
                                                   "fallback-persistence",
                                                   "security-log-profiles",
                                                   "syn-cookie-status",
                                                   "service-down-immediate-action",
                                                   "nat64",
                                                   "rate-class",
                                                   "flow-eviction-policy",
                                                   "ip-intelligence-policy",
                                                   "throughput-capacity",
                                                   "policies"};
    return kIgnored.contains(k);
  }

  void read_virtual(const Node& v) {
    Service s;
    sink_ = &s.findings;
    const bool keep = fill_virtual(v, s);
    sink_ = nullptr;
    if (keep)
      out_.services.push_back(std::move(s));
    else  // not a service: what is wrong with it concerns the file
      out_.findings.insert(out_.findings.end(), s.findings.begin(), s.findings.end());
  }

  bool fill_virtual(const Node& v, Service& s) {
    s.name = v.words[2];
    s.where = at(v.line, "ltm virtual " + s.name);
    s.protocol_text = "udp";  // tmsh's default ip-protocol is tcp, but list shows it explicitly
    bool protocol_seen = false;
    const Node* pool = nullptr;
    for (const Node& c : v.children) {
      const std::string& key = c.words[0];
      const std::string value = c.words.size() >= 2 ? c.words[1] : std::string();
      if (key == "destination" && c.words.size() == 2) {
        auto e = parse_endpoint(value);
        if (!e) {
          problem(ProblemKind::kInvalid, c.line,
                  "ltm virtual " + s.name + ": destination \"" + value +
                      "\" is not ADDRESS:PORT; the virtual server is not imported");
          return false;
        }
        if (!e->route_domain.empty() && e->route_domain != "0")
          problem(ProblemKind::kUnsupported, c.line,
                  "ltm virtual " + s.name + ": route domain %" + e->route_domain +
                      " (ikelb has none; the VIP is imported without it)");
        s.address = e->address;
        s.port = e->port;
      } else if (key == "ip-protocol" && c.words.size() == 2) {
        protocol_seen = true;
        s.protocol_text = value;
        if (value == "udp" || value == "17")
          s.protocol = Protocol::kUdp;
        else if (value == "tcp" || value == "6")
          s.protocol = Protocol::kTcp;
        else if (value == "esp" || value == "50")
          s.protocol = Protocol::kEsp;
        else if (value == "any")
          s.protocol = Protocol::kAny;
        else
          s.protocol = Protocol::kOther;
      } else if (key == "pool" && c.words.size() == 2) {
        s.pool = full_name(value);
        auto it = pools_.find(s.pool);
        if (it == pools_.end()) {
          problem(ProblemKind::kInvalid, c.line,
                  "ltm virtual " + s.name + ": pool " + value + " is not in the file");
        } else {
          pool = it->second;
        }
      } else if (key == "persist" && c.block) {
        for (const Node& p : c.children) read_persist(s, p);
      } else if (key == "source-address-translation" && c.block) {
        const Node* type = c.find("type");
        std::string t = type && type->words.size() == 2 ? type->words[1] : "none";
        if (t != "none") snat_note(c.line, s.name, t);
      } else if (key == "snat" && value == "automap") {
        snat_note(c.line, s.name, "automap");
      } else if (key == "snatpool") {
        snat_note(c.line, s.name, "snat pool " + value);
      } else if (key == "translate-address" && value == "enabled") {
        // DNAT, as ikelb does.
      } else if (key == "translate-address" && value == "disabled") {
        problem(ProblemKind::kUnsupported, c.line,
                "ltm virtual " + s.name +
                    ": translate-address disabled (routed, not load balanced); ikelb always "
                    "rewrites the destination to the gateway");
      } else if (key == "rules" && c.block && !c.children.empty()) {
        problem(ProblemKind::kUnsupported, c.line,
                "ltm virtual " + s.name +
                    ": iRules can choose pools and persistence per packet; ikelb does not run "
                    "them (the virtual server is imported without them)");
      } else if (key == "rate-limit" && value != "disabled" && value != "0" && !value.empty()) {
        note(c.line, "ltm virtual " + s.name + ": rate-limit " + value +
                         " (connections per second) is not imported; ikelb can limit new "
                         "IKE_SA_INIT requests per source and per virtual server "
                         "(\"ike_sa_init_limit\", config/README.md)");
      } else if (key == "disabled" && c.words.size() == 1) {
        s.enabled = false;
      } else if (key == "ip-forward" || key == "l2-forward" || key == "reject" ||
                 key == "internal" || key == "dhcp-relay" || key == "stateless") {
        problem(ProblemKind::kUnsupported, c.line,
                "ltm virtual " + s.name + ": \"" + key +
                    "\" virtual servers are not load "
                    "balancing; not imported");
        return false;
      } else if (!ignored_virtual_property(key)) {
        problem(ProblemKind::kUnsupported, c.line,
                "ltm virtual " + s.name + ": unknown property \"" + key + "\" (skipped)");
      }
    }
    if (s.address.empty()) {
      problem(ProblemKind::kInvalid, v.line,
              "ltm virtual " + s.name + ": no destination; not imported");
      return false;
    }
    if (!protocol_seen) {
      s.protocol = Protocol::kTcp;  // the tmsh default
      s.protocol_text = "tcp";
    }
    if (pool) read_pool(s, *pool);
    return true;
  }

  void snat_note(size_t line, const std::string& vs, const std::string& type) {
    note(line, "ltm virtual " + vs + ": source-address-translation " + type +
                   ": ikelb never translates the source address (SNAT in front of RRAS causes "
                   "error 809), so the gateways must route replies to clients through ikelb "
                   "(their default route)");
  }

  void read_persist(Service& s, const Node& p) {
    const std::string name = full_name(p.words[0]);
    Persistence r = resolve(name);
    s.persistence_where = at(p.line, "persist " + p.words[0]);
    if (r.type.empty()) {
      problem(
          ProblemKind::kInvalid, p.line,
          "ltm virtual " + s.name + ": persistence profile " + p.words[0] + " is not in the file");
      return;
    }
    if (r.type != "source-addr") {
      note(p.line, "ltm virtual " + s.name + ": " + r.type +
                       " persistence; ikelb keeps clients by their source address");
      return;
    }
    s.source_persistence = true;
    s.persistence_timeout_s = r.timeout_s;
    s.persistence_shared = r.across_services.value_or(false);
    if (r.line) s.persistence_where = at(r.line, "ltm persistence " + name);
  }

  void read_pool(Service& s, const Node& pool) {
    s.pool_where = at(pool.line, "ltm pool " + s.pool);
    std::string mode = "round-robin";
    bool priority_groups = false;
    const Node* members = nullptr;
    for (const Node& c : pool.children) {
      const std::string& key = c.words[0];
      if (key == "load-balancing-mode" && c.words.size() == 2) {
        mode = c.words[1];
      } else if (key == "members" && c.block) {
        members = &c;
      } else if (key == "min-active-members" && c.words.size() == 2 && c.words[1] != "0") {
        priority_groups = true;
      } else if (key == "monitor") {
        monitor_note(c, s.pool);
      }
    }
    if (!members) return;
    const bool ratio = (mode.find("ratio") != std::string::npos &&
                        mode.find("dynamic-ratio") == std::string::npos) ||
                       mode.starts_with("weighted");
    if (mode != "round-robin")
      note(pool.line, "ltm pool " + s.pool + ": load-balancing-mode " + mode +
                          " -> Maglev consistent hashing of the client address" +
                          (ratio ? " with the ratios as weights" : ""));
    uint32_t max_ratio = 1;
    std::vector<std::pair<Member, uint32_t>> read;
    for (const Node& m : members->children) {
      Member member;
      uint32_t r = 1;
      if (!read_member(s, m, member, r, priority_groups)) continue;
      max_ratio = std::max(max_ratio, r);
      read.emplace_back(std::move(member), r);
    }
    // Ratios 1..655 scale to ikelb weights of 100..65500 (ikelb's default is 100); larger ones
    // are taken as they are. Only the proportions matter.
    const uint32_t scale = ratio && max_ratio <= 655 ? 100 : 1;
    if (!ratio && max_ratio > 1)
      note(pool.line, "ltm pool " + s.pool +
                          ": the member ratios are not used by "
                          "load-balancing-mode " +
                          mode + ", so every gateway gets weight 100");
    for (auto& [member, r] : read) {
      member.weight = ratio ? r * scale : 100;
      s.members.push_back(std::move(member));
    }
  }

  bool read_member(const Service& s, const Node& m, Member& member, uint32_t& ratio,
                   bool priority_groups) {
    const std::string& spec = m.words[0];
    member.where = at(m.line, "member " + spec);
    auto e = parse_endpoint(spec);
    if (!e) {
      problem(ProblemKind::kInvalid, m.line,
              "ltm pool " + s.pool + ": member \"" + spec + "\" is not NAME:PORT");
      return false;
    }
    member.port = e->port.value_or(0);
    // "/Common/rras01:500" -> node "/Common/rras01", shown as "rras01".
    std::string head = spec;
    const std::string base = head.substr(head.rfind('/') + 1);
    head.resize(std::count(base.begin(), base.end(), ':') > 1 ? head.rfind('.') : head.rfind(':'));
    if (auto pct = head.find('%'); pct != std::string::npos) head.resize(pct);
    const std::string node_name = full_name(head);
    member.name = head.substr(head.rfind('/') + 1);
    member.address = e->address;
    std::optional<ConfiguredState> node_state;
    if (auto it = nodes_.find(node_name); it != nodes_.end()) {
      if (!it->second.address.empty()) member.address = it->second.address;
      node_state = it->second.state;
    }
    for (const Node& c : m.children) {
      const std::string& key = c.words[0];
      if (key == "address" && c.words.size() == 2) {
        member.address = c.words[1];
        if (auto pct = member.address.find('%'); pct != std::string::npos)
          member.address.resize(pct);
      } else if (key == "ratio" && c.words.size() == 2) {
        auto r = parse_uint(c.words[1], 65535);
        if (!r || *r == 0) {
          problem(ProblemKind::kInvalid, c.line,
                  "member " + spec + ": ratio \"" + c.words[1] + "\" is not 1 to 65535");
          return false;
        }
        ratio = *r;
      } else if (key == "priority-group" && priority_groups && c.words.size() == 2 &&
                 c.words[1] != "0") {
        problem(ProblemKind::kUnsupported, c.line,
                "member " + spec +
                    ": priority groups (standby gateways) have no ikelb "
                    "equivalent; the member is imported as an ordinary one");
      }
    }
    member.state = member_state(m);
    if (node_state && (!member.state || *node_state == ConfiguredState::kDisabled))
      member.state = node_state;
    if (member.state == ConfiguredState::kDisabled)
      note(m.line, "member " + spec +
                       " is forced offline -> \"state\": \"disabled\": ikelb "
                       "moves its pinned clients to other gateways at once (F5 lets established "
                       "connections finish; \"draining\" keeps them)");
    else if (member.state == ConfiguredState::kDraining)
      note(m.line, "member " + spec +
                       " is disabled (session user-disabled) -> \"state\": "
                       "\"draining\": pinned clients stay, no new ones");
    return true;
  }

  void monitor_note(const Node& c, const std::string& pool) {
    std::string names;
    for (size_t i = 1; i < c.words.size(); i++) names += (i > 1 ? " " : "") + c.words[i];
    for (const Node& x : c.children)
      for (const auto& w : x.words) names += " " + w;
    std::string types;
    for (const auto& [name, type] : monitors_)
      if (names.find(name) != std::string::npos ||
          names.find(name.substr(name.rfind('/') + 1)) != std::string::npos)
        types += (types.empty() ? "" : ", ") + type;
    note(c.line, "ltm pool " + pool + ": monitor " + names +
                     (types.empty() ? "" : " (" + types + ")") +
                     " -> replaced by ikelb's IKE_SA_INIT probes (health_check, stateless, "
                     "every 200 ms: a dead gateway is out within ~0.8 s)");
  }

  const std::string& file_;
  ApplianceConfig out_;
  std::map<std::string, const Node*> pools_;
  std::map<std::string, NodeObject> nodes_;
  std::map<std::string, Persistence> persistence_;
  std::map<std::string, std::string> monitors_;  // name -> type
  std::vector<Finding>* sink_ = nullptr;
};

}  // namespace

ApplianceConfig parse_f5(std::string_view text, const std::string& file) {
  return F5Reader(file).read(text);
}

}  // namespace ikelb::appliance
