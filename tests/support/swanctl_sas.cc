#include "swanctl_sas.h"

#include <map>
#include <regex>
#include <sstream>

namespace ikelb::test {

const ChildSa* IkeSa::installed() const {
  for (const auto& c : children)
    if (c.state == "INSTALLED") return &c;
  return nullptr;
}

std::string IkeSa::spis() const {
  const ChildSa* c = installed();
  return spi_i + "/" + spi_r + (c ? " " + c->spi_in + "/" + c->spi_out : " no-child");
}

namespace {

std::map<std::string, std::string> raw_fields(const std::string& text) {
  static const std::regex kv(R"(([a-z-]+)=(\[[^\]]*\]|[^ {}]+))");
  std::map<std::string, std::string> out;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), kv); it != std::sregex_iterator();
       ++it) {
    std::string v = (*it)[2];
    if (v.starts_with("[")) v = v.substr(1, v.size() - 2);
    out.emplace((*it)[1], v);  // the first occurrence wins
  }
  return out;
}

}  // namespace

std::vector<IkeSa> parse_list_sas(const std::string& output) {
  std::vector<IkeSa> out;
  std::istringstream in(output);
  std::string line;
  static const std::regex head(R"(^list-sa event \{([^ {]+) \{)");
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_search(line, m, head)) continue;
    IkeSa sa;
    sa.name = m[1];
    size_t children = line.find("child-sas {");
    auto f = raw_fields(line.substr(0, children));
    sa.state = f["state"];
    sa.uniqueid = f["uniqueid"];
    sa.local_host = f["local-host"];
    sa.local_port = f["local-port"];
    sa.remote_host = f["remote-host"];
    sa.remote_port = f["remote-port"];
    sa.remote_id = f["remote-id"];
    sa.spi_i = f["initiator-spi"];
    sa.spi_r = f["responder-spi"];
    sa.vip = f.count("remote-vips") ? f["remote-vips"] : f["local-vips"];
    sa.nat_remote = f["nat-remote"] == "yes";
    if (children != std::string::npos) {
      // child-sas {NAME {k=v ...} NAME {k=v ...}}
      std::string rest = line.substr(children + 11);
      static const std::regex child(R"(([^ {}]+) \{([^{}]*)\})");
      for (auto it = std::sregex_iterator(rest.begin(), rest.end(), child);
           it != std::sregex_iterator(); ++it) {
        auto c = raw_fields((*it)[2]);
        sa.children.push_back({c["state"], c["spi-in"], c["spi-out"], c["encap"] == "yes"});
      }
    }
    out.push_back(sa);
  }
  return out;
}

}  // namespace ikelb::test
