#include "service_notify.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace ikelb {

std::optional<NotifyAddress> notify_address(std::string_view value) {
  if (value.size() < 2 || (value[0] != '/' && value[0] != '@')) return std::nullopt;
  NotifyAddress a;
  a.addr.sun_family = AF_UNIX;
  if (value.size() > sizeof(a.addr.sun_path) - (value[0] == '/' ? 1 : 0)) return std::nullopt;
  std::memcpy(a.addr.sun_path, value.data(), value.size());
  if (value[0] == '@') a.addr.sun_path[0] = '\0';  // abstract: no terminating NUL counted
  a.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + value.size() +
                                 (value[0] == '/' ? 1 : 0));
  return a;
}

std::string notify_service(std::string_view state) {
  const char* env = std::getenv("NOTIFY_SOCKET");
  if (!env || !*env) return "";
  auto address = notify_address(env);
  if (!address) return std::string("NOTIFY_SOCKET=\"") + env + "\" is not a unix socket address";
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("notify socket: ") + std::strerror(errno);
  ssize_t n = sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                     reinterpret_cast<const sockaddr*>(&address->addr), address->len);
  int err = errno;
  close(fd);
  if (n < 0) return std::string("notifying ") + env + ": " + std::strerror(err);
  return "";
}

std::string monotonic_usec_field() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return "MONOTONIC_USEC=" +
         std::to_string(static_cast<unsigned long long>(ts.tv_sec) * 1000000ull +
                        static_cast<unsigned long long>(ts.tv_nsec) / 1000ull);
}

}  // namespace ikelb
