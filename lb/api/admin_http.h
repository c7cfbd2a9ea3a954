// HTTP/JSON admin transport between the agent (ikelbd) and its CLI (ikelbctl).
//
// The server listens on a unix socket (protected by its file mode) and optionally on a TCP
// endpoint (every request must carry `Authorization: Bearer <token>`). It only moves JSON in and
// out: routing is up to the handler. One request per connection; the connection is closed after
// the response.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

namespace ikelb {

struct AdminRequest {
  std::string method;   // as sent, e.g. "GET", "POST" or any other token
  std::string target;   // path and query, e.g. "/v1/backends?pool=a"
  nlohmann::json body;  // null if the request had no body
};

struct AdminResponse {
  unsigned status = 200;  // 200..599; anything else is replaced by a 500
  nlohmann::json body;
};

// Called on the io_context's thread. Exceptions become 500 {"error": what()}.
using AdminHandler = std::function<AdminResponse(const AdminRequest&)>;

struct AdminServerOptions {
  std::string unix_path;  // required, unless tcp_listen is set with tcp_open (no unix socket)
  unsigned unix_mode = 0660;
  std::optional<std::string> tcp_listen;  // "host:port": IPv4 literal or [IPv6 literal]; port 0 ok
  std::optional<std::string> bearer_token;  // required (non-empty) iff tcp_listen is set...
  // ...unless the TCP listener is open to anyone: only for a handler that reveals nothing
  // sensitive and changes nothing (the agent's /healthz and /readyz).
  bool tcp_open = false;
  size_t max_body_bytes = 64 * 1024;
  std::chrono::milliseconds request_timeout{5000};  // whole exchange, per connection
};

// Runs on the caller's io_context; start(), stop() and the destructor must be called on the
// thread running it (e.g. from a posted handler) or while nothing runs it.
class AdminServer {
 public:
  AdminServer(boost::asio::io_context& ioc, AdminServerOptions options, AdminHandler handler);
  ~AdminServer();  // stop()s
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds the listeners and starts accepting. Throws std::system_error whose message names the
  // socket path or endpoint and the cause (e.g. "... already in use by a running ikelbd").
  // Creates the socket's parent directory (0755) if missing and replaces a stale socket file.
  void start();
  // Closes the listeners and all open connections and removes the socket file (if it is still
  // the one this server bound). Idempotent; the handler is not called afterwards.
  void stop();

  // The bound TCP port (useful with port 0), or 0 without a TCP listener.
  unsigned short tcp_port() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

struct AdminReply {
  unsigned status;
  nlohmann::json body;  // null if the reply had no body
};

// Synchronous client for ikelbctl: connects to the unix socket, sends one request (with `body`
// as JSON unless it is null) and returns the reply. Throws std::runtime_error with a message fit
// for the user: connection failures (with a hint such as "(is ikelbd running?)"), timeouts,
// malformed or non-JSON replies.
AdminReply admin_call(const std::string& unix_path, const std::string& method,
                      const std::string& target, const nlohmann::json& body = nullptr,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace ikelb
