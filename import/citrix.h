// Citrix ADC (NetScaler): reads an ns.conf (add/bind lb vserver, serviceGroup, service, server,
// lb group, lb monitor, ns mode) into the appliance model. Pure; never throws on bad input.
#pragma once

#include <string>
#include <string_view>

#include "model.h"

namespace ikelb::appliance {

ApplianceConfig parse_citrix(std::string_view text, const std::string& file);

}  // namespace ikelb::appliance
