#include "vendors.h"

#include "citrix.h"
#include "f5.h"
#include "kemp.h"

namespace ikelb::appliance {

Parser parser_for(std::string_view vendor) {
  if (vendor == "f5") return parse_f5;
  if (vendor == "citrix") return parse_citrix;
  if (vendor == "kemp") return parse_kemp;
  return nullptr;
}

}  // namespace ikelb::appliance
