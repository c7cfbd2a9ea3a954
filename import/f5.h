// F5 BIG-IP: reads a bigip.conf or `tmsh list ltm` text (ltm virtual, pool, node, persistence
// and monitor objects) into the appliance model. Pure; never throws on bad input.
#pragma once

#include <string>
#include <string_view>

#include "model.h"

namespace ikelb::appliance {

ApplianceConfig parse_f5(std::string_view text, const std::string& file);

}  // namespace ikelb::appliance
