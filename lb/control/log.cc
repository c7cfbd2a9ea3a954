#include "log.h"

#include <atomic>
#include <cstdio>

namespace ikelb {
namespace {
std::atomic<LogLevel> g_level{LogLevel::kWarning};
constexpr const char* kNames[] = {"debug", "info", "warning", "error"};
}  // namespace

bool parse_log_level(std::string_view text, LogLevel& out) {
  for (int i = 0; i < 4; i++)
    if (text == kNames[i]) {
      out = static_cast<LogLevel>(i);
      return true;
    }
  return false;
}

void set_log_level(LogLevel level) {
  g_level = level;
}

void log(LogLevel level, const std::string& message) {
  if (level < g_level.load()) return;
  std::fprintf(stderr, "ikelbd[%s]: %s\n", kNames[static_cast<int>(level)], message.c_str());
  std::fflush(stderr);
}

}  // namespace ikelb
