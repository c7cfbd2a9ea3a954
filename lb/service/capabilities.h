// What ikelbd needs from the kernel, and a clear message when it lacks it. The data path needs
// exactly CAP_BPF (maps, programs, pins), CAP_NET_ADMIN (XDP programs and their attachment) and
// CAP_PERFMON (without it the verifier rejects the program as if loaded by an unprivileged user);
// tests/deploy proves each is necessary and the three together sufficient.
#pragma once

#include <string>
#include <vector>

namespace ikelb {

// The names of the capabilities ikelbd needs that are missing from `effective` (names of the
// capabilities in the effective set, e.g. {"cap_bpf"}); pure, for tests.
std::vector<std::string> missing_capabilities(const std::vector<std::string>& effective);

// The effective capability set of this process, lower-case names (libcap).
std::vector<std::string> effective_capabilities();

// "" if nothing is missing, else "missing CAP_X (why); ikelbd needs CAP_BPF, CAP_NET_ADMIN and
// CAP_PERFMON".
std::string capability_diagnosis();

}  // namespace ikelb
