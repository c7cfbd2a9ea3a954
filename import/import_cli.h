// `ikelbctl import f5|citrix|kemp FILE ...`: reads the file, converts it (model.h), writes the
// config to stdout or --out and the report to stderr. Offline: no agent is contacted.
#pragma once

#include <string>
#include <vector>

namespace ikelb::appliance {

// The usage text for ikelbctl --help.
extern const char* const kImportUsage;

// args: everything after "import". Exit status: 0 written, 1 refused (every problem listed),
// 2 usage or unreadable file.
int import_main(const std::vector<std::string>& args);

}  // namespace ikelb::appliance
