// What ikelbd needs from the kernel, and a clear message when it lacks it. The data path needs
// exactly CAP_BPF (maps, programs, pins) and CAP_NET_ADMIN (XDP programs and their attachment);
// tests/deploy proves both are necessary and together sufficient.
#pragma once

#include <string>
#include <vector>

namespace ikelb {

// The names of the capabilities ikelbd needs that are missing from `effective` (names of the
// capabilities in the effective set, e.g. {"cap_bpf"}); pure, for tests.
std::vector<std::string> missing_capabilities(const std::vector<std::string>& effective);

// The effective capability set of this process, lower-case names (libcap).
std::vector<std::string> effective_capabilities();

// "" if nothing is missing, else "missing CAP_X (...); ikelbd needs CAP_BPF and CAP_NET_ADMIN".
std::string capability_diagnosis();

}  // namespace ikelb
