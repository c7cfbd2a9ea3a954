// `ikelbctl spi-config`: the strongswan.conf settings of one gateway of a validated config, as
// text to paste or as JSON. Pure: the caller reads the file and prints.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "config.h"

namespace ikelb {

struct GatewaySpiConfig {
  std::string virtual_server, backend;
  uint32_t spi_id = 0;
  StrongswanSpi settings;
  std::string text() const;        // comment lines and the charon section
  nlohmann::json to_json() const;  // hex values as strings
};

struct GatewaySpiResult {
  std::optional<GatewaySpiConfig> gateway;
  std::string error;  // set when gateway is not
};

// `name` is "NAME" or "VS/NAME"; `virtual_server` ("" for any) narrows the search. Errors: no
// such virtual server or backend, a name in several virtual servers, labels off.
GatewaySpiResult gateway_spi_config(const Config& config, const std::string& name,
                                    const std::string& virtual_server);

}  // namespace ikelb
