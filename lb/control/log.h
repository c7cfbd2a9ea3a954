// One line per event on stderr: "ikelbd[info]: gw1 (vpn) active -> down: probe timeout".
#pragma once

#include <string>
#include <string_view>

namespace ikelb {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

// Parses "debug", "info", "warning", "error"; false if unknown.
bool parse_log_level(std::string_view text, LogLevel& out);
void set_log_level(LogLevel level);
void log(LogLevel level, const std::string& message);

inline void log_debug(const std::string& m) {
  log(LogLevel::kDebug, m);
}
inline void log_info(const std::string& m) {
  log(LogLevel::kInfo, m);
}
inline void log_warning(const std::string& m) {
  log(LogLevel::kWarning, m);
}
inline void log_error(const std::string& m) {
  log(LogLevel::kError, m);
}

}  // namespace ikelb
