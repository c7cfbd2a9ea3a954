#include "capabilities.h"

#include <sys/capability.h>

#include <algorithm>
#include <cctype>

namespace ikelb {
namespace {

struct Needed {
  cap_value_t cap;
  const char* name;  // libcap's name
  const char* why;
};

constexpr Needed kNeeded[] = {
    {CAP_BPF, "cap_bpf", "BPF maps, programs and pins"},
    {CAP_NET_ADMIN, "cap_net_admin", "loading and attaching XDP programs"},
    // Without it the verifier treats the loader as unprivileged and refuses the program's
    // variable-offset packet pointer arithmetic ("pointer arithmetic ... prohibited for !root").
    {CAP_PERFMON, "cap_perfmon", "the verifier's privileged checks of the XDP program"},
};

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  return s;
}

}  // namespace

std::vector<std::string> missing_capabilities(const std::vector<std::string>& effective) {
  std::vector<std::string> out;
  for (const Needed& n : kNeeded)
    if (std::find(effective.begin(), effective.end(), n.name) == effective.end())
      out.push_back(n.name);
  return out;
}

std::vector<std::string> effective_capabilities() {
  std::vector<std::string> out;
  cap_t caps = cap_get_proc();
  if (!caps) return out;
  for (cap_value_t c = 0; c <= CAP_LAST_CAP; c++) {
    cap_flag_value_t v = CAP_CLEAR;
    if (cap_get_flag(caps, c, CAP_EFFECTIVE, &v) == 0 && v == CAP_SET) {
      char* name = cap_to_name(c);
      if (name) {
        out.emplace_back(name);
        cap_free(name);
      }
    }
  }
  cap_free(caps);
  return out;
}

std::string capability_diagnosis() {
  auto missing = missing_capabilities(effective_capabilities());
  if (missing.empty()) return "";
  std::string out = "missing ";
  for (size_t i = 0; i < missing.size(); i++) {
    for (const Needed& n : kNeeded)
      if (missing[i] == n.name) out += (i ? ", " : "") + upper(n.name) + " (" + n.why + ")";
  }
  return out + "; ikelbd needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON";
}

}  // namespace ikelb
