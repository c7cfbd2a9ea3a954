#include "citrix.h"

#include <map>

namespace ikelb::appliance {
namespace {

struct Command {
  size_t line = 0;
  std::vector<std::string> positional;         // after the verb and object words
  std::map<std::string, std::string> options;  // lowercased "-name" -> value
  std::map<std::string, size_t> option_order;  // for stable messages
};

// ns.conf words: blanks separate, "double quotes" group (\" and \\ escape inside).
bool split_words(std::string_view line, std::vector<std::string>& words, std::string& error) {
  size_t i = 0;
  while (i < line.size()) {
    char c = line[i];
    if (c == ' ' || c == '\t' || c == '\r') {
      i++;
      continue;
    }
    std::string w;
    if (c == '"') {
      i++;
      while (i < line.size() && line[i] != '"') {
        if (line[i] == '\\' && i + 1 < line.size()) i++;
        w += line[i++];
      }
      if (i >= line.size()) {
        error = "quoted string is never closed";
        return false;
      }
      i++;
    } else {
      while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
        w += line[i++];
    }
    words.push_back(std::move(w));
  }
  return true;
}

struct Group {  // serviceGroup or service
  std::vector<Finding> findings;
  std::string name;
  size_t line = 0;
  std::string type;
  std::optional<bool> usip;
  bool disabled = false;
  std::vector<Member> members;
  std::vector<std::string> monitors;
};

struct Server {
  std::string address;
  std::optional<ConfiguredState> state;
};

struct VServer {
  Service service;
  std::vector<std::pair<std::string, std::optional<uint32_t>>> bound;  // group/service, weight
  std::string persistence = "NONE";
  std::optional<uint32_t> timeout_min;
  std::string group;  // persistency group
};

struct PersistencyGroup {
  size_t line = 0;
  std::string persistence = "NONE";
  std::optional<uint32_t> timeout_min;
  size_t members = 0;
};

const std::set<std::string> kIgnoredGroupOptions = {"-maxclient",
                                                    "-maxreq",
                                                    "-cip",
                                                    "-cipheader",
                                                    "-useproxyport",
                                                    "-clttimeout",
                                                    "-svrtimeout",
                                                    "-cka",
                                                    "-tcpb",
                                                    "-cmp",
                                                    "-comment",
                                                    "-appflowlog",
                                                    "-healthmonitor",
                                                    "-autoscale",
                                                    "-monthreshold",
                                                    "-downstateflush",
                                                    "-tcpprofilename",
                                                    "-httpprofilename",
                                                    "-netprofile",
                                                    "-pathmonitor",
                                                    "-pathmonitorindv",
                                                    "-cacheable",
                                                    "-sp",
                                                    "-rtspsessionidremap",
                                                    "-maxbandwidth",
                                                    "-monconnectionclose",
                                                    "-accessdown",
                                                    "-hashid",
                                                    "-serverid",
                                                    "-customserverid",
                                                    "-cachetype",
                                                    "-memberport",
                                                    "-td",
                                                    "-gslb"};
const std::set<std::string> kIgnoredVServerOptions = {"-clttimeout",
                                                      "-comment",
                                                      "-appflowlog",
                                                      "-icmpvsrresponse",
                                                      "-rhistate",
                                                      "-downstateflush",
                                                      "-netprofile",
                                                      "-tcpprofilename",
                                                      "-listenpriority",
                                                      "-healththreshold",
                                                      "-newservicerequest",
                                                      "-newservicerequestunit",
                                                      "-newservicerequestincrementinterval",
                                                      "-sessionless",
                                                      "-persistmask",
                                                      "-v6persistmasklen",
                                                      "-skippersistency",
                                                      "-td",
                                                      "-insertvserveripport",
                                                      "-redirectportrewrite",
                                                      "-sobackupaction",
                                                      "-somethod",
                                                      "-sopersistence",
                                                      "-sopersistencetimeout",
                                                      "-sothreshold",
                                                      "-minautoscalemembers",
                                                      "-maxautoscalemembers",
                                                      "-timeout",
                                                      "-persistencetype",
                                                      "-lbmethod",
                                                      "-state",
                                                      "-backuppersistencetimeout",
                                                      "-persistencebackup",
                                                      "-dataoffset",
                                                      "-datalength",
                                                      "-m",
                                                      "-range",
                                                      "-backupvserver",
                                                      "-hashlength",
                                                      "-netmask",
                                                      "-v6netmasklen",
                                                      "-cookiename"};
const std::set<std::string> kIgnoredServerOptions = {
    "-comment",         "-td",    "-domainresolveretry", "-translationip",
    "-translationmask", "-state", "-ipv6address",        "-querytype"};

class CitrixReader {
 public:
  explicit CitrixReader(const std::string& file) : file_(file) { out_.vendor = "Citrix ADC"; }

  ApplianceConfig read(std::string_view text) {
    size_t line_no = 0;
    size_t start = 0;
    while (start <= text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string_view::npos) end = text.size();
      line_no++;
      line(text.substr(start, end - start), line_no);
      start = end + 1;
    }
    finish();
    return std::move(out_);
  }

 private:
  Location at(size_t line, std::string element = "") const { return {file_, line, element}; }
  // Findings about a vserver or a group go with it (model.h: Service::findings); a group's
  // reach every vserver it is bound to.
  std::vector<Finding>& sink() { return sink_ ? *sink_ : out_.findings; }
  void note(size_t line, std::string m) {
    sink().push_back({Severity::kNote, ProblemKind::kUnsupported, at(line), m});
  }
  void problem(ProblemKind k, size_t line, std::string m) {
    sink().push_back({Severity::kProblem, k, at(line), std::move(m)});
  }
  struct Sink {
    CitrixReader& r;
    Sink(CitrixReader& reader, std::vector<Finding>* to) : r(reader) { r.sink_ = to; }
    ~Sink() { r.sink_ = nullptr; }
  };

  void line(std::string_view text, size_t n) {
    std::vector<std::string> words;
    std::string error;
    if (!split_words(text, words, error)) {
      problem(ProblemKind::kUnsupported, n, error + "; the line is skipped");
      return;
    }
    if (words.empty() || words[0].starts_with("#")) return;
    static const std::set<std::string> kVerbs = {"add",     "set",    "bind",   "unset",  "enable",
                                                 "disable", "link",   "rm",     "update", "apply",
                                                 "save",    "create", "import", "unbind", "show"};
    const std::string verb = lowercase(words[0]);
    if (!kVerbs.contains(verb)) {
      problem(ProblemKind::kUnsupported, n,
              "unknown syntax \"" + words[0] + "\" (not an ns.conf command); the line is skipped");
      return;
    }
    // Object: "lb vserver", "lb group", "lb monitor", "ns mode", or one word.
    size_t obj_words = 1;
    std::string object = words.size() > 1 ? lowercase(words[1]) : "";
    if ((object == "lb" || object == "ns") && words.size() > 2) {
      object += " " + lowercase(words[2]);
      obj_words = 2;
    }
    Command c;
    c.line = n;
    size_t i = 1 + obj_words;
    for (; i < words.size() && !words[i].starts_with("-"); i++) c.positional.push_back(words[i]);
    for (; i < words.size(); i++) {
      if (!words[i].starts_with("-")) {
        problem(ProblemKind::kUnsupported, n,
                "unexpected \"" + words[i] + "\" among the options; the line is skipped");
        return;
      }
      std::string key = lowercase(words[i]);
      std::string value;
      if (i + 1 < words.size() && !words[i + 1].starts_with("-")) value = words[++i];
      c.options[key] = value;
    }
    dispatch(verb, object, c);
  }

  void dispatch(const std::string& verb, const std::string& object, const Command& c) {
    const bool one = !c.positional.empty();
    if (verb == "add" && object == "server" && c.positional.size() == 2) {
      add_server(c);
    } else if (verb == "add" && object == "servicegroup" && c.positional.size() == 2) {
      add_group(c.positional[0], c.positional[1], c, true);
    } else if (verb == "add" && object == "service" && c.positional.size() == 4) {
      add_service(c);
    } else if (verb == "add" && object == "lb vserver" && c.positional.size() == 4) {
      add_vserver(c);
    } else if (verb == "add" && object == "lb group" && c.positional.size() == 1) {
      PersistencyGroup& g = groups_persist_[c.positional[0]];
      g.line = c.line;
      if (auto it = c.options.find("-persistencetype"); it != c.options.end())
        g.persistence = it->second;
      if (auto it = c.options.find("-timeout"); it != c.options.end())
        g.timeout_min = minutes(it->second, c.line);
    } else if (verb == "add" && object == "lb monitor" && c.positional.size() >= 2) {
      monitor_types_[c.positional[0]] = c.positional[1];
    } else if (verb == "bind" && object == "servicegroup" && one) {
      bind_group(c);
    } else if (verb == "bind" && object == "service" && one) {
      if (auto it = c.options.find("-monitorname"); it != c.options.end())
        if (auto g = groups_.find(c.positional[0]); g != groups_.end())
          g->second.monitors.push_back(it->second);
    } else if (verb == "bind" && object == "lb vserver" && one) {
      bind_vserver(c);
    } else if (verb == "bind" && object == "lb group" && c.positional.size() == 2) {
      auto v = vservers_.find(c.positional[1]);
      auto g = groups_persist_.find(c.positional[0]);
      if (v == vservers_.end() || g == groups_persist_.end()) {
        problem(ProblemKind::kInvalid, c.line,
                "bind lb group: " + c.positional[0] + " or " + c.positional[1] +
                    " is not defined before this line");
      } else {
        v->second.group = c.positional[0];
        g->second.members++;
      }
    } else if ((verb == "enable" || verb == "disable") && object == "ns mode") {
      for (const auto& m : c.positional)
        if (lowercase(m) == "usip") global_usip_ = verb == "enable";
    } else if (verb == "disable" && one &&
               (object == "server" || object == "servicegroup" || object == "service" ||
                object == "lb vserver")) {
      disable(object, c);
    } else if ((verb == "set" || verb == "unset" || verb == "unbind") &&
               (object == "lb vserver" || object == "servicegroup" || object == "service" ||
                object == "server" || object == "lb group")) {
      problem(ProblemKind::kUnsupported, c.line,
              verb + " " + object +
                  ": changes after \"add\" are not read; save the running "
                  "config (\"save ns config\") and import the saved ns.conf, where they are folded "
                  "into \"add\"");
    } else if (object == "lb vserver" || object == "servicegroup" || object == "service" ||
               object == "server" || object == "lb group") {
      problem(ProblemKind::kUnsupported, c.line,
              "unknown syntax for " + verb + " " + object + " (" +
                  std::to_string(c.positional.size()) + " arguments); the line is skipped");
    }
    // Every other object (ns ip, route, ssl, ...) is not part of load balancing: ignored.
  }

  std::optional<uint32_t> minutes(const std::string& text, size_t line) {
    auto v = parse_uint(text, 1440);
    if (!v)
      problem(ProblemKind::kInvalid, line, "timeout \"" + text + "\" is not 0 to 1440 minutes");
    return v;
  }

  void unknown_options(const Command& c, const std::set<std::string>& known,
                       const std::string& what) {
    for (const auto& [k, v] : c.options)
      if (!known.contains(k) && k != "-usip" && k != "-useclientip" && k != "-weight")
        problem(ProblemKind::kUnsupported, c.line, what + ": unknown option " + k + " (skipped)");
  }

  void add_server(const Command& c) {
    Server s;
    s.address = c.positional[1];
    if (auto it = c.options.find("-state");
        it != c.options.end() && lowercase(it->second) == "disabled")
      s.state = ConfiguredState::kDisabled;
    unknown_options(c, kIgnoredServerOptions, "add server " + c.positional[0]);
    servers_[c.positional[0]] = s;
  }

  void add_group(const std::string& name, const std::string& type, const Command& c, bool group) {
    Group g;
    Sink to(*this, &g.findings);
    g.name = name;
    g.line = c.line;
    g.type = lowercase(type);
    for (const char* key : {"-usip", "-useclientip"})
      if (auto it = c.options.find(key); it != c.options.end())
        g.usip = lowercase(it->second) == "yes";
    if (auto it = c.options.find("-state");
        it != c.options.end() && lowercase(it->second) == "disabled")
      g.disabled = true;
    std::set<std::string> known = kIgnoredGroupOptions;
    known.insert("-state");
    unknown_options(c, known, (group ? "add serviceGroup " : "add service ") + name);
    groups_[name] = std::move(g);
  }

  void add_service(const Command& c) {
    // add service NAME SERVER TYPE PORT: a group of one.
    add_group(c.positional[0], c.positional[2], c, false);
    Group& g = groups_[c.positional[0]];
    Sink to(*this, &g.findings);
    Member m;
    if (!member(c.positional[1], c.positional[3], c.line, m)) return;
    g.members.push_back(m);
  }

  bool member(const std::string& server, const std::string& port, size_t line, Member& m) {
    m.where = at(line, server);
    m.name = server;
    m.address = server;  // "bind serviceGroup SG 10.0.0.1 500" names the address directly
    if (auto it = servers_.find(server); it != servers_.end()) {
      m.address = it->second.address;
      m.state = it->second.state;
    }
    if (port == "*") {
      m.port = 0;
    } else if (auto p = parse_uint(port, 65535)) {
      m.port = static_cast<uint16_t>(*p);
    } else {
      problem(ProblemKind::kInvalid, line, "port \"" + port + "\" of " + server + " is not a port");
      return false;
    }
    m.weight = 100;
    return true;
  }

  void bind_group(const Command& c) {
    auto g = groups_.find(c.positional[0]);
    if (g == groups_.end()) {
      problem(ProblemKind::kInvalid, c.line,
              "bind serviceGroup: " + c.positional[0] + " is not added before this line");
      return;
    }
    Sink to(*this, &g->second.findings);
    if (c.positional.size() == 1) {
      if (auto it = c.options.find("-monitorname"); it != c.options.end())
        g->second.monitors.push_back(it->second);
      else
        problem(ProblemKind::kUnsupported, c.line, "bind serviceGroup without a member or monitor");
      return;
    }
    if (c.positional.size() != 3) {
      problem(ProblemKind::kUnsupported, c.line, "bind serviceGroup: expected SERVER PORT");
      return;
    }
    Member m;
    if (!member(c.positional[1], c.positional[2], c.line, m)) return;
    if (auto it = c.options.find("-weight"); it != c.options.end()) {
      auto w = parse_uint(it->second, 100);
      if (!w || *w == 0) {
        problem(ProblemKind::kInvalid, c.line, "weight \"" + it->second + "\" is not 1 to 100");
        return;
      }
      m.weight = *w * 100;
    }
    if (auto it = c.options.find("-state");
        it != c.options.end() && lowercase(it->second) == "disabled")
      m.state = ConfiguredState::kDisabled;
    for (const auto& [k, v] : c.options)
      if (k != "-weight" && k != "-state" && !kIgnoredGroupOptions.contains(k))
        problem(ProblemKind::kUnsupported, c.line,
                "bind serviceGroup: unknown option " + k + " (skipped)");
    g->second.members.push_back(m);
  }

  void add_vserver(const Command& c) {
    VServer v;
    Service& s = v.service;
    Sink to(*this, &s.findings);
    s.name = c.positional[0];
    s.where = at(c.line, "lb vserver " + s.name);
    s.protocol_text = lowercase(c.positional[1]);
    const std::string& t = s.protocol_text;
    if (t == "udp")
      s.protocol = Protocol::kUdp;
    else if (t == "any")
      s.protocol = Protocol::kAny;
    else if (t == "tcp" || t == "ssl" || t == "http" || t == "ssl_bridge" || t == "ssl_tcp" ||
             t == "ftp" || t == "rdp")
      s.protocol = Protocol::kTcp;
    else
      s.protocol = Protocol::kOther;
    s.address = c.positional[2];
    if (c.positional[3] != "*") {
      auto p = parse_uint(c.positional[3], 65535);
      if (!p) {
        out_.findings.push_back({Severity::kProblem, ProblemKind::kInvalid, at(c.line),
                                 "lb vserver " + s.name + ": port \"" + c.positional[3] +
                                     "\" is not a port; not imported"});
        return;
      }
      s.port = static_cast<uint16_t>(*p);
    }
    if (auto it = c.options.find("-persistencetype"); it != c.options.end())
      v.persistence = it->second;
    if (auto it = c.options.find("-timeout"); it != c.options.end())
      v.timeout_min = minutes(it->second, c.line);
    if (auto it = c.options.find("-state");
        it != c.options.end() && lowercase(it->second) == "disabled")
      s.enabled = false;
    if (auto it = c.options.find("-lbmethod"); it != c.options.end())
      note(c.line, "lb vserver " + s.name + ": -lbMethod " + it->second +
                       " -> Maglev consistent hashing of the client address, weights kept");
    if (auto it = c.options.find("-backupvserver"); it != c.options.end())
      problem(ProblemKind::kUnsupported, c.line,
              "lb vserver " + s.name + ": -backupVServer " + it->second +
                  " has no ikelb equivalent (every gateway of a virtual server is active)");
    if (auto it = c.options.find("-m"); it != c.options.end() && lowercase(it->second) != "ip")
      problem(ProblemKind::kUnsupported, c.line,
              "lb vserver " + s.name + ": -m " + it->second +
                  " (direct server return); ikelb rewrites the destination address");
    if (auto it = c.options.find("-range"); it != c.options.end() && it->second != "1")
      problem(ProblemKind::kUnsupported, c.line,
              "lb vserver " + s.name + ": -range " + it->second + " (one VIP per vserver only)");
    unknown_options(c, kIgnoredVServerOptions, "add lb vserver " + s.name);
    order_.push_back(s.name);
    vservers_[s.name] = std::move(v);
  }

  void bind_vserver(const Command& c) {
    auto v = vservers_.find(c.positional[0]);
    if (v == vservers_.end()) {
      problem(ProblemKind::kInvalid, c.line,
              "bind lb vserver: " + c.positional[0] + " is not added before this line");
      return;
    }
    Sink to(*this, &v->second.service.findings);
    if (c.positional.size() != 2) {
      problem(ProblemKind::kUnsupported, c.line,
              "bind lb vserver " + c.positional[0] +
                  ": policies and other bindings are not imported (skipped)");
      return;
    }
    std::optional<uint32_t> weight;
    if (auto it = c.options.find("-weight"); it != c.options.end()) {
      weight = parse_uint(it->second, 100);
      if (!weight || *weight == 0) {
        problem(ProblemKind::kInvalid, c.line, "weight \"" + it->second + "\" is not 1 to 100");
        return;
      }
    }
    v->second.bound.emplace_back(c.positional[1], weight);
    if (v->second.service.pool.empty()) {
      v->second.service.pool = c.positional[1];
      v->second.service.pool_where = at(c.line, "bind lb vserver " + c.positional[0]);
    }
  }

  void disable(const std::string& object, const Command& c) {
    auto graceful = c.options.find("-graceful");
    const bool drain = (graceful != c.options.end() && lowercase(graceful->second) == "yes") ||
                       c.options.contains("-delay") ||
                       (object != "servicegroup" && c.positional.size() == 2) ||
                       (object == "servicegroup" && c.positional.size() == 4);
    const ConfiguredState state = drain ? ConfiguredState::kDraining : ConfiguredState::kDisabled;
    const std::string& name = c.positional[0];
    if (object == "lb vserver") {
      if (auto v = vservers_.find(name); v != vservers_.end()) v->second.service.enabled = false;
    } else if (object == "server") {
      if (auto s = servers_.find(name); s != servers_.end()) s->second.state = state;
      for (auto& [gname, g] : groups_)
        for (Member& m : g.members)
          if (m.name == name) m.state = state;
    } else if (auto g = groups_.find(name); g != groups_.end()) {
      for (Member& m : g->second.members)
        if (object == "service" || c.positional.size() == 1 ||
            (c.positional.size() >= 3 && m.name == c.positional[1] &&
             std::to_string(m.port) == c.positional[2]))
          m.state = state;
    } else {
      problem(ProblemKind::kInvalid, c.line, "disable " + object + ": " + name + " is not added");
    }
  }

  void finish() {
    for (const std::string& name : order_) {
      VServer& v = vservers_[name];
      Service s = v.service;
      Sink to(*this, &s.findings);
      std::string persistence = v.persistence;
      std::optional<uint32_t> timeout = v.timeout_min;
      size_t persistence_line = s.where.line;
      if (!v.group.empty()) {
        const PersistencyGroup& g = groups_persist_[v.group];
        persistence = g.persistence;
        timeout = g.timeout_min;
        persistence_line = g.line;
        s.persistence_shared = g.members > 1;
      }
      s.persistence_where =
          at(persistence_line, v.group.empty() ? "lb vserver " + name : "lb group " + v.group);
      const std::string p = lowercase(persistence);
      if (p == "sourceip") {
        s.source_persistence = true;
        s.persistence_timeout_s = timeout.value_or(2) * 60;  // ADC default: 2 minutes
      } else if (p != "none") {
        note(persistence_line, "lb vserver " + name + ": -persistenceType " + persistence +
                                   "; ikelb keeps clients by their source address");
      }
      bool snat = false;
      for (const auto& [target, weight] : v.bound) {
        auto g = groups_.find(target);
        if (g == groups_.end()) {
          problem(ProblemKind::kInvalid, s.pool_where.line,
                  "bind lb vserver " + name + ": " + target + " is not a service or serviceGroup");
          continue;
        }
        if (!g->second.usip.value_or(global_usip_)) snat = true;
        s.findings.insert(s.findings.end(), g->second.findings.begin(), g->second.findings.end());
        for (Member m : g->second.members) {
          if (weight) m.weight = *weight * 100;
          if (g->second.disabled) m.state = ConfiguredState::kDisabled;
          s.members.push_back(m);
        }
        monitor_note(g->second);
      }
      if (snat)
        note(s.where.line, "lb vserver " + name +
                               ": services without -usip YES (Use Source IP) reach the gateways "
                               "from the ADC's SNIP; ikelb never translates the source address, so "
                               "the gateways must route replies to clients through ikelb (their "
                               "default route)");
      for (const Member& m : s.members)
        if (m.state == ConfiguredState::kDisabled)
          note(m.where.line, "member " + m.name +
                                 " is disabled -> \"state\": \"disabled\" (no "
                                 "traffic; its pinned clients move to other gateways)");
        else if (m.state == ConfiguredState::kDraining)
          note(m.where.line, "member " + m.name +
                                 " is disabled gracefully -> \"state\": "
                                 "\"draining\" (pinned clients stay, no new ones)");
      out_.services.push_back(std::move(s));
    }
  }

  void monitor_note(Group& g) {
    if (!noted_groups_.insert(g.name).second) return;
    std::string list;
    for (const auto& m : g.monitors) {
      auto t = monitor_types_.find(m);
      list += (list.empty() ? "" : ", ") + m +
              (t == monitor_types_.end() ? "" : " (" + t->second + ")");
    }
    note(g.line, (g.members.size() == 1 && g.type != "" ? "service " : "serviceGroup ") + g.name +
                     ": monitor " + (list.empty() ? std::string("ping-default") : list) +
                     " -> replaced by ikelb's IKE_SA_INIT probes (UDP-ECV passes on silence, "
                     "ping does not see IKE; ikelb's stateless probes notice a dead gateway "
                     "within ~0.8 s)");
  }

  const std::string& file_;
  ApplianceConfig out_;
  std::vector<Finding>* sink_ = nullptr;
  bool global_usip_ = false;
  std::map<std::string, Server> servers_;
  std::map<std::string, Group> groups_;
  std::map<std::string, VServer> vservers_;
  std::vector<std::string> order_;
  std::map<std::string, PersistencyGroup> groups_persist_;
  std::map<std::string, std::string> monitor_types_;
  std::set<std::string> noted_groups_;
};

}  // namespace

ApplianceConfig parse_citrix(std::string_view text, const std::string& file) {
  return CitrixReader(file).read(text);
}

}  // namespace ikelb::appliance
