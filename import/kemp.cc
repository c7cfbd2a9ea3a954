#include "kemp.h"

#include <algorithm>
#include <map>
#include <pugixml.hpp>

namespace ikelb::appliance {
namespace {

class KempReader {
 public:
  KempReader(std::string_view text, const std::string& file) : text_(text), file_(file) {
    out_.vendor = "Kemp LoadMaster";
  }

  ApplianceConfig read() {
    pugi::xml_document doc;
    const pugi::xml_parse_result r =
        doc.load_buffer(text_.data(), text_.size(), pugi::parse_default, pugi::encoding_utf8);
    if (!r) {
      fatal(line_of(static_cast<size_t>(std::max<ptrdiff_t>(r.offset, 0))),
            std::string("not well-formed XML: ") + r.description());
      return std::move(out_);
    }
    pugi::xml_node data;
    if (pugi::xml_node response = doc.child("Response")) {
      std::string stat = response.attribute("stat").value();
      if (stat != "200") {
        std::string why = response.child("Error").child_value();
        fatal(line(response), "the LoadMaster answered stat=\"" + stat + "\"" +
                                  (why.empty() ? std::string() : ": " + why) +
                                  "; save the output of a successful listvs");
        return std::move(out_);
      }
      data = response.child("Success").child("Data");
    } else {
      data = doc.child("Data");
    }
    if (!data) {
      fatal(1,
            "expected <Response stat=\"200\"><Success><Data> with <VS> elements (the output "
            "of the RESTful API command listvs)");
      return std::move(out_);
    }
    std::vector<pugi::xml_node> nodes;
    for (pugi::xml_node vs : data.children("VS")) nodes.push_back(vs);
    for (pugi::xml_node vs : nodes) read_vs(vs);
    link_port_following();
    return std::move(out_);
  }

 private:
  // Line numbers by binary search over the newline offsets, found once: a listvs of thousands
  // of services has tens of thousands of findings.
  size_t line_of(size_t offset) const {
    if (newlines_.empty() && !text_.empty())
      for (size_t i = 0; i < text_.size(); i++)
        if (text_[i] == '\n') newlines_.push_back(i);
    return 1 + static_cast<size_t>(std::lower_bound(newlines_.begin(), newlines_.end(), offset) -
                                   newlines_.begin());
  }
  size_t line(pugi::xml_node n) const {
    return line_of(static_cast<size_t>(std::max<ptrdiff_t>(n.offset_debug(), 0)));
  }
  Location at(pugi::xml_node n, std::string element) const {
    return {file_, line(n), std::move(element)};
  }
  void fatal(size_t line, std::string m) {
    out_.findings.push_back(
        {Severity::kFatal, ProblemKind::kUnsupported, {file_, line, ""}, std::move(m)});
  }
  // Findings go to the service being read, if any (model.h: Service::findings).
  std::vector<Finding>& sink() { return sink_ ? *sink_ : out_.findings; }
  void note(const Location& where, std::string m) {
    sink().push_back({Severity::kNote, ProblemKind::kUnsupported, where, m});
  }
  void problem(ProblemKind k, const Location& where, std::string m) {
    sink().push_back({Severity::kProblem, k, where, std::move(m)});
  }

  static std::string text(pugi::xml_node parent, const char* name) {
    return parent.child(name).child_value();
  }
  static bool yes(pugi::xml_node parent, const char* name) {
    return lowercase(text(parent, name)) == "y";
  }

  void read_vs(pugi::xml_node vs) {
    Service s;
    sink_ = &s.findings;
    const bool keep = fill_vs(vs, s);
    sink_ = nullptr;
    if (keep) {
      index_[text(vs, "Index")] = out_.services.size();
      out_.services.push_back(std::move(s));
    } else {  // not a service: what is wrong with it concerns the file
      out_.findings.insert(out_.findings.end(), s.findings.begin(), s.findings.end());
    }
  }

  bool fill_vs(pugi::xml_node vs, Service& s) {
    const std::string index = text(vs, "Index");
    const std::string element = "VS " + (index.empty() ? std::string("?") : index);
    s.where = at(vs, element);
    s.name = text(vs, "NickName");
    if (s.name.empty()) s.name = "vs" + index;
    s.address = text(vs, "VSAddress");
    if (s.address.empty()) {
      problem(ProblemKind::kInvalid, s.where, element + ": no <VSAddress>; not imported");
      return false;
    }
    const std::string port = text(vs, "VSPort");
    if (port != "*") {
      auto p = parse_uint(port, 65535);
      if (!p) {
        problem(ProblemKind::kInvalid, at(vs.child("VSPort"), element),
                element + ": <VSPort> \"" + port + "\" is not a port; not imported");
        return false;
      }
      s.port = static_cast<uint16_t>(*p);
    }
    s.protocol_text = lowercase(text(vs, "Protocol"));
    s.protocol = s.protocol_text == "udp"   ? Protocol::kUdp
                 : s.protocol_text == "tcp" ? Protocol::kTcp
                                            : Protocol::kOther;
    s.enabled = !vs.child("Enable") || yes(vs, "Enable");
    s.pool = element;
    s.pool_where = s.where;

    if (auto master = text(vs, "MasterVSID"); !master.empty() && master != "0")
      problem(ProblemKind::kUnsupported, s.where,
              element + " is a SubVS of VS " + master + "; SubVSs are not imported");
    if (!yes(vs, "Transparent"))
      note(at(vs.child("Transparent"), element),
           element +
               ": Transparent N (the LoadMaster's address is the source the gateways "
               "see); ikelb never translates the source address, so the gateways must "
               "route replies to clients through ikelb (their default route)");
    if (yes(vs, "SubnetOriginating"))
      note(at(vs.child("SubnetOriginating"), element),
           element + ": SubnetOriginating Y; ikelb keeps the client's address as the source");

    const std::string persist = lowercase(text(vs, "Persist"));
    s.persistence_where = at(vs.child("Persist") ? vs.child("Persist") : vs, element);
    if (persist == "src") {
      s.source_persistence = true;
      const std::string t = text(vs, "PersistTimeout");
      if (auto v = parse_uint(t, 31536000)) {
        if (*v != 0) s.persistence_timeout_s = *v;  // 0: not set (the LoadMaster's default)
      } else if (!t.empty())
        problem(ProblemKind::kInvalid, at(vs.child("PersistTimeout"), element),
                element + ": <PersistTimeout> \"" + t + "\" is not a number of seconds");
    } else if (!persist.empty() && persist != "none") {
      note(s.persistence_where,
           element + ": persistence " + persist + "; ikelb keeps clients by their source address");
    }
    if (const std::string cps = text(vs, "ConnsPerSecLimit"); !cps.empty() && cps != "0")
      note(at(vs.child("ConnsPerSecLimit"), element),
           element + ": ConnsPerSecLimit " + cps +
               " is not imported; ikelb can limit new IKE_SA_INIT requests per source and per "
               "virtual server (\"ike_sa_init_limit\", config/README.md)");
    const std::string follow = text(vs, "FollowVSID");
    if (!follow.empty() && follow != "0") follow_[index] = {follow, s.where};

    const std::string schedule = lowercase(text(vs, "Schedule"));
    const bool weighted = !schedule.empty() && schedule[0] == 'w';
    if (!schedule.empty())
      note(at(vs.child("Schedule"), element),
           element + ": scheduling " + schedule +
               " -> Maglev consistent hashing of the client address" +
               (weighted ? " with the real servers' weights" : ""));
    if (const std::string check = text(vs, "CheckType"); !check.empty())
      note(at(vs.child("CheckType"), element),
           element + ": real server check " + check +
               " -> replaced by ikelb's IKE_SA_INIT probes (a ping does not see the IKE "
               "daemon; ikelb notices a dead gateway within ~0.8 s)");

    for (pugi::xml_node rs : vs.children("Rs")) read_rs(s, rs, element, weighted);
    return true;
  }

  void read_rs(Service& s, pugi::xml_node rs, const std::string& vs_element, bool weighted) {
    const std::string element = vs_element + " / Rs " + text(rs, "RsIndex");
    Member m;
    m.where = at(rs, element);
    m.address = text(rs, "Addr");
    m.name = text(rs, "DnsName");
    if (m.name.empty()) m.name = m.address;
    const std::string port = text(rs, "Port");
    if (port != "*" && !port.empty()) {
      auto p = parse_uint(port, 65535);
      if (!p) {
        problem(ProblemKind::kInvalid, m.where,
                element + ": <Port> \"" + port + "\" is not a port");
        return;
      }
      m.port = static_cast<uint16_t>(*p);
    }
    if (!s.port) m.port = 0;  // a wildcard VS keeps the client's port
    if (lowercase(text(rs, "Forward")) == "route") {
      problem(ProblemKind::kUnsupported, m.where,
              element +
                  ": forwarding \"route\" (direct server return); ikelb rewrites the "
                  "destination address (NAT)");
      return;
    }
    m.weight = 100;
    if (weighted) {
      const std::string w = text(rs, "Weight");
      auto v = parse_uint(w, 65535);
      if (!v) {
        problem(ProblemKind::kInvalid, m.where,
                element + ": <Weight> \"" + w + "\" is not 0 to 65535");
        return;
      }
      m.weight = *v;
    }
    if (rs.child("Enable") && !yes(rs, "Enable")) {
      m.state = ConfiguredState::kDisabled;
      note(m.where, element +
                        " is disabled -> \"state\": \"disabled\" (no traffic; its pinned "
                        "clients move to other gateways)");
    }
    s.members.push_back(std::move(m));
  }

  // Port following: a VS that follows another shares its persistence table.
  void link_port_following() {
    for (const auto& [from, target] : follow_) {
      auto a = index_.find(from);
      auto b = index_.find(target.first);
      if (b == index_.end()) {
        sink_ = &out_.services[a->second].findings;
        problem(ProblemKind::kInvalid, target.second,
                "VS " + from + ": <FollowVSID> " + target.first + " is not in the file");
        sink_ = nullptr;
        continue;
      }
      out_.services[a->second].persistence_shared = true;
      out_.services[b->second].persistence_shared = true;
    }
  }

  std::string_view text_;
  mutable std::vector<size_t> newlines_;
  const std::string& file_;
  ApplianceConfig out_;
  std::vector<Finding>* sink_ = nullptr;
  std::map<std::string, size_t> index_;  // VS Index -> services position
  std::map<std::string, std::pair<std::string, Location>> follow_;
};

}  // namespace

ApplianceConfig parse_kemp(std::string_view text, const std::string& file) {
  return KempReader(text, file).read();
}

}  // namespace ikelb::appliance
