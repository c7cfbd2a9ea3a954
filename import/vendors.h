// The parser for a vendor name on the command line: "f5", "citrix" or "kemp".
#pragma once

#include <string>
#include <string_view>

#include "model.h"

namespace ikelb::appliance {

using Parser = ApplianceConfig (*)(std::string_view text, const std::string& file);

// nullptr for an unknown name.
Parser parser_for(std::string_view vendor);

}  // namespace ikelb::appliance
