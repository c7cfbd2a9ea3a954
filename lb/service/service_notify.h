// systemd's service notification protocol (sd_notify(3)) without libsystemd: one datagram with
// "KEY=VALUE" lines to the unix socket named by $NOTIFY_SOCKET (a path, or "@name" for the
// abstract namespace). ikelbd runs unchanged without systemd: no variable, nothing sent.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <optional>
#include <string>
#include <string_view>

namespace ikelb {

struct NotifyAddress {
  sockaddr_un addr{};
  socklen_t len = 0;
};

// The socket address $NOTIFY_SOCKET names; nullopt if it is neither an absolute path nor
// "@name", or too long for sun_path.
std::optional<NotifyAddress> notify_address(std::string_view value);

// Sends `state` to $NOTIFY_SOCKET. Returns "" when sent or when the variable is unset, else why
// it could not be sent (for the log: systemd then times the start out, with that reason logged).
std::string notify_service(std::string_view state);

// "MONOTONIC_USEC=<CLOCK_MONOTONIC in µs>", which systemd wants next to RELOADING=1.
std::string monotonic_usec_field();

}  // namespace ikelb
