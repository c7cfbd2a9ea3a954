#include "spi_config.h"

#include <vector>

namespace ikelb {

std::string GatewaySpiConfig::text() const {
  // No brackets in comments: strongswan.conf's parser does not like them.
  return "# ikelb SPI labels: gateway \"" + backend + "\" of virtual server \"" + virtual_server +
         "\", spi_id " + std::to_string(spi_id) + "\n" + strongswan_conf(settings);
}

nlohmann::json GatewaySpiConfig::to_json() const {
  return {{"virtual_server", virtual_server},
          {"backend", backend},
          {"spi_id", spi_id},
          {"charon",
           {{"spi_mask", hex64(settings.spi_mask)},
            {"spi_label", hex64(settings.spi_label)},
            {"spi_min", hex32(settings.spi_min)},
            {"spi_max", hex32(settings.spi_max)}}}};
}

GatewaySpiResult gateway_spi_config(const Config& config, const std::string& name,
                                    const std::string& virtual_server) {
  std::string vs_name = virtual_server, backend = name;
  if (auto slash = name.find('/'); slash != std::string::npos) {
    if (!vs_name.empty() && vs_name != name.substr(0, slash))
      return {std::nullopt, "\"" + name + "\" and --virtual-server " + virtual_server +
                                " name different virtual servers"};
    vs_name = name.substr(0, slash);
    backend = name.substr(slash + 1);
  }
  if (!vs_name.empty()) {
    bool known = false;
    for (const auto& vs : config.virtual_servers) known = known || vs.name == vs_name;
    if (!known) return {std::nullopt, "no virtual server \"" + vs_name + "\" in the config"};
  }
  std::vector<std::pair<const VirtualServerConfig*, const BackendConfig*>> found;
  for (const auto& vs : config.virtual_servers) {
    if (!vs_name.empty() && vs.name != vs_name) continue;
    for (const auto& b : vs.backends)
      if (b.name == backend) found.push_back({&vs, &b});
  }
  if (found.empty())
    return {std::nullopt, "no backend \"" + backend + "\"" +
                              (vs_name.empty() ? std::string(" in the config")
                                               : " in virtual server \"" + vs_name + "\"")};
  if (found.size() > 1) {
    std::string list;
    for (const auto& [vs, b] : found) list += (list.empty() ? "" : ", ") + vs->name;
    return {std::nullopt, "backend \"" + backend + "\" is in several virtual servers (" + list +
                              "): name one with --virtual-server or VS/NAME"};
  }
  const auto& [vs, b] = found.front();
  if (!vs->spi_routing || !vs->spi_routing->labels)
    return {std::nullopt, "virtual server \"" + vs->name +
                              "\" has no spi_routing.labels: its gateways' SPIs carry no id, so "
                              "there is nothing to set in strongswan.conf"};
  GatewaySpiConfig g;
  g.virtual_server = vs->name;
  g.backend = b->name;
  g.spi_id = b->spi_id.value_or(0);  // present: the validator requires it with labels
  g.settings = strongswan_spi(*vs->spi_routing->labels, g.spi_id);
  return {g, ""};
}

}  // namespace ikelb
