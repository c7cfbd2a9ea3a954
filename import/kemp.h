// Kemp LoadMaster: reads the XML that the RESTful API's `listvs` returns (virtual services with
// their real servers) into the appliance model. Pure; never throws on bad input.
#pragma once

#include <string>
#include <string_view>

#include "model.h"

namespace ikelb::appliance {

ApplianceConfig parse_kemp(std::string_view text, const std::string& file);

}  // namespace ikelb::appliance
