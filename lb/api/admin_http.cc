#include "admin_http.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace ikelb {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using boost::system::error_code;
using json = nlohmann::json;
using unix_proto = asio::local::stream_protocol;
using tcp = asio::ip::tcp;

namespace {

constexpr std::uint32_t kHeaderLimit = 8 * 1024;
constexpr size_t kMaxSessions = 128;
// After the response, the rest of the request (e.g. an oversized body) is read and dropped for
// at most this long so that the client sees the response rather than a connection reset.
constexpr std::chrono::milliseconds kLingerTime{1000};
constexpr std::chrono::milliseconds kAcceptRetry{100};
constexpr std::uint64_t kMaxReplyBytes = 256ull * 1024 * 1024;

std::string json_text(const json& body) {
  return body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

json error_body(std::string message) {
  return json{{"error", std::move(message)}};
}

std::system_error sys_error(int err, const std::string& what) {
  return std::system_error(err, std::generic_category(), what);
}

// Compares in time that depends only on the lengths.
bool token_equal(std::string_view given, std::string_view expected) {
  volatile unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff = diff | (g ^ static_cast<unsigned char>(expected[i]));
  }
  return diff == 0;
}

bool bearer_matches(std::string_view header, std::string_view token) {
  constexpr std::string_view kScheme = "bearer";
  if (header.size() <= kScheme.size()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) return false;
  }
  header.remove_prefix(kScheme.size());
  if (header.front() != ' ' && header.front() != '\t') return false;
  while (!header.empty() && (header.front() == ' ' || header.front() == '\t')) {
    header.remove_prefix(1);
  }
  while (!header.empty() && (header.back() == ' ' || header.back() == '\t')) {
    header.remove_suffix(1);
  }
  return token_equal(header, token);
}

bool is_blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
}

bool is_http_error(const error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_method).category();
}

// "1.2.3.4:80" or "[::1]:80"; numeric addresses only.
tcp::endpoint parse_listen(const std::string& text) {
  auto invalid = [&](const std::string& why) {
    return sys_error(EINVAL, "invalid admin TCP listen address \"" + text + "\" (" + why + ")");
  };
  std::string host;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      throw invalid("expected [IPv6]:port");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos) throw invalid("expected host:port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string::npos) throw invalid("write IPv6 addresses as [addr]:port");
  }
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      std::stoul(port) > 65535) {
    throw invalid("bad port");
  }
  error_code ec;
  asio::ip::address addr = asio::ip::make_address(host, ec);
  if (ec) throw invalid("not an IP address: \"" + host + "\"");
  if (text.front() == '[' && !addr.is_v6()) throw invalid("brackets are for IPv6 addresses");
  return tcp::endpoint(addr, static_cast<unsigned short>(std::stoul(port)));
}

// mkdir -p with mode 0755 for the directories it creates.
void make_parent_dirs(const std::string& socket_path) {
  size_t slash = socket_path.rfind('/');
  if (slash == std::string::npos || slash == 0) return;
  std::string dir = socket_path.substr(0, slash);
  std::vector<std::string> missing;
  for (std::string d = dir; !d.empty();) {
    struct stat st;
    if (::stat(d.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) {
        throw sys_error(ENOTDIR, "cannot create admin socket " + socket_path + ": " + d);
      }
      break;
    }
    if (errno != ENOENT) {
      throw sys_error(errno, "cannot create admin socket " + socket_path + ": " + d);
    }
    missing.push_back(d);
    size_t s = d.rfind('/');
    d = (s == std::string::npos || s == 0) ? std::string() : d.substr(0, s);
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), 0755) != 0 && errno != EEXIST) {
      throw sys_error(errno, "cannot create directory " + *it + " for admin socket " + socket_path);
    }
    ::chmod(it->c_str(), 0755);  // independent of the umask
  }
}

// If `path` exists: fails if it is not a socket or if something accepts connections on it;
// removes it if it is a stale socket.
void remove_stale_socket(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    throw sys_error(errno, "cannot inspect admin socket " + path);
  }
  if (!S_ISSOCK(st.st_mode)) {
    throw sys_error(EEXIST, "admin socket path " + path + " exists and is not a socket");
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw sys_error(errno, "cannot check admin socket " + path);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.data(), path.size());  // length checked by the caller
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  int err = rc == 0 ? 0 : errno;
  ::close(fd);
  if (rc == 0 || err == EAGAIN || err == EINPROGRESS) {
    throw sys_error(EADDRINUSE, "admin socket " + path + " is already in use by a running ikelbd");
  }
  if (err != ECONNREFUSED && err != ENOENT) {
    throw sys_error(err, "cannot check whether admin socket " + path + " is in use");
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    throw sys_error(errno, "cannot remove stale admin socket " + path);
  }
}

class SessionBase {
 public:
  virtual ~SessionBase() = default;
  virtual void close() = 0;
};

}  // namespace

struct AdminServer::Impl : std::enable_shared_from_this<AdminServer::Impl> {
  Impl(asio::io_context& io, AdminServerOptions o, AdminHandler h)
      : ioc(io),
        options(std::move(o)),
        handler(std::move(h)),
        unix_acceptor(io),
        tcp_acceptor(io),
        retry_timer(io) {}

  void start();
  void bind_unix_socket();
  void stop();
  template <class Acceptor>
  void accept(Acceptor& acceptor, bool need_auth);
  void forget_closed_sessions();

  asio::io_context& ioc;
  AdminServerOptions options;
  AdminHandler handler;
  unix_proto::acceptor unix_acceptor;
  tcp::acceptor tcp_acceptor;
  asio::steady_timer retry_timer;
  std::vector<std::weak_ptr<SessionBase>> sessions;
  bool started = false;
  bool stopped = false;
  bool socket_bound = false;  // our file is at options.unix_path
  dev_t socket_dev = 0;
  ino_t socket_ino = 0;
  unsigned short bound_tcp_port = 0;
};

namespace {

using Impl = AdminServer::Impl;

template <class Socket>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Socket>> {
 public:
  Session(std::shared_ptr<Impl> impl, Socket socket, bool need_auth)
      : impl_(std::move(impl)),
        socket_(std::move(socket)),
        deadline_(impl_->ioc),
        need_auth_(need_auth) {}

  void start() {
    arm_deadline(impl_->options.request_timeout);
    parser_.header_limit(kHeaderLimit);
    parser_.body_limit(impl_->options.max_body_bytes);
    http::async_read_header(
        socket_, buffer_, parser_,
        [self = this->shared_from_this()](error_code ec, size_t) { self->on_header(ec); });
  }

  void close() override {
    if (closed_) return;
    closed_ = true;
    deadline_.cancel();
    error_code ignored;
    socket_.close(ignored);
  }

 private:
  void arm_deadline(std::chrono::milliseconds after) {
    deadline_.expires_after(after);
    deadline_.async_wait([self = this->shared_from_this()](error_code ec) {
      // A re-armed timer's earlier wait may complete without error: check the expiry.
      if (ec || self->deadline_.expiry() > asio::steady_timer::clock_type::now()) return;
      self->close();
    });
  }

  void on_header(error_code ec) {
    if (closed_) return;
    if (ec) return on_read_error(ec);
    if (need_auth_) {
      const auto& req = parser_.get();
      auto it = req.find(http::field::authorization);
      if (it == req.end() ||
          !bearer_matches(std::string_view(it->value().data(), it->value().size()),
                          *impl_->options.bearer_token)) {
        return respond(401, error_body("missing or wrong bearer token"), true);
      }
    }
    http::async_read(
        socket_, buffer_, parser_,
        [self = this->shared_from_this()](error_code ec, size_t) { self->on_body(ec); });
  }

  void on_read_error(error_code ec) {
    if (ec == http::error::body_limit) {
      respond(413, error_body("request body exceeds the limit of " +
                              std::to_string(impl_->options.max_body_bytes) + " bytes"));
    } else if (ec == http::error::header_limit) {
      respond(400, error_body("request header exceeds the limit of " +
                              std::to_string(kHeaderLimit) + " bytes"));
    } else if (is_http_error(ec) && ec != http::error::end_of_stream &&
               ec != http::error::partial_message) {
      respond(400, error_body("malformed HTTP request: " + ec.message()));
    } else {
      close();  // peer went away, timeout, stop(), socket error
    }
  }

  void on_body(error_code ec) {
    if (closed_) return;
    if (ec) return on_read_error(ec);
    if (impl_->stopped) return close();

    const auto& msg = parser_.get();
    AdminRequest req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    if (!is_blank(msg.body())) {
      try {
        req.body = json::parse(msg.body());
      } catch (const json::exception& e) {
        return respond(400, error_body(std::string("request body is not valid JSON: ") + e.what()));
      }
    }

    AdminResponse res;
    try {
      res = impl_->handler(req);
    } catch (const std::exception& e) {
      res = {500, error_body(e.what())};
    } catch (...) {
      res = {500, error_body("unknown error in request handler")};
    }
    if (res.status < 200 || res.status > 599) {
      res = {500, error_body("request handler returned invalid HTTP status " +
                             std::to_string(res.status))};
    }
    respond(res.status, res.body);
  }

  void respond(unsigned status, const json& body, bool ask_for_token = false) {
    if (closed_) return;  // e.g. the handler called stop()
    try {
      response_.version(11);
      response_.result(status);
      response_.set(http::field::server, "ikelbd");
      response_.set(http::field::content_type, "application/json");
      if (ask_for_token) response_.set(http::field::www_authenticate, "Bearer");
      if (status != 204 && status != 304) response_.body() = json_text(body);
      response_.keep_alive(false);
      response_.prepare_payload();
    } catch (const std::exception&) {
      return close();
    }
    http::async_write(socket_, response_, [self = this->shared_from_this()](error_code ec, size_t) {
      self->on_written(ec);
    });
  }

  void on_written(error_code ec) {
    if (closed_) return;
    if (ec) return close();
    // Half-close, then drop whatever the client still sends until it closes too.
    error_code ignored;
    socket_.shutdown(Socket::shutdown_send, ignored);
    arm_deadline(std::min(kLingerTime, impl_->options.request_timeout));
    drain();
  }

  void drain() {
    socket_.async_read_some(asio::buffer(drain_buffer_),
                            [self = this->shared_from_this()](error_code ec, size_t) {
                              if (self->closed_) return;
                              if (ec) return self->close();
                              self->drain();
                            });
  }

  std::shared_ptr<Impl> impl_;
  Socket socket_;
  asio::steady_timer deadline_;
  bool need_auth_;
  bool closed_ = false;
  beast::flat_buffer buffer_;
  http::request_parser<http::string_body> parser_;
  http::response<http::string_body> response_;
  char drain_buffer_[4096];
};

}  // namespace

void AdminServer::Impl::forget_closed_sessions() {
  sessions.erase(std::remove_if(sessions.begin(), sessions.end(),
                                [](const std::weak_ptr<SessionBase>& s) { return s.expired(); }),
                 sessions.end());
}

template <class Acceptor>
void AdminServer::Impl::accept(Acceptor& acceptor, bool need_auth) {
  using Socket = typename Acceptor::protocol_type::socket;
  acceptor.async_accept(
      [self = shared_from_this(), &acceptor, need_auth](error_code ec, Socket socket) {
        if (self->stopped) return;
        if (ec) {
          if (ec == asio::error::operation_aborted) return;
          // E.g. EMFILE: try again a little later rather than spinning.
          self->retry_timer.expires_after(kAcceptRetry);
          self->retry_timer.async_wait([self, &acceptor, need_auth](error_code ec) {
            if (!ec && !self->stopped) self->accept(acceptor, need_auth);
          });
          return;
        }
        self->forget_closed_sessions();
        if (self->sessions.size() < kMaxSessions) {
          auto session = std::make_shared<Session<Socket>>(self, std::move(socket), need_auth);
          self->sessions.push_back(session);
          session->start();
        }  // else: the socket is closed as it goes out of scope
        self->accept(acceptor, need_auth);
      });
}

void AdminServer::Impl::start() {
  if (started) throw std::logic_error("AdminServer::start() called twice");
  started = true;

  const std::string& path = options.unix_path;
  const bool open_tcp_only = options.tcp_listen && options.tcp_open;
  if (path.empty() && !open_tcp_only) throw sys_error(EINVAL, "admin socket path is empty");
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    throw sys_error(ENAMETOOLONG, "admin socket path " + path + " is too long");
  }
  if (options.tcp_listen && !options.tcp_open &&
      (!options.bearer_token || options.bearer_token->empty())) {
    throw sys_error(EINVAL, "admin TCP listener " + *options.tcp_listen + " needs a bearer token");
  }
  if ((!options.tcp_listen || options.tcp_open) && options.bearer_token) {
    throw sys_error(EINVAL, "admin bearer token given without a TCP listener that checks it");
  }
  std::optional<tcp::endpoint> tcp_endpoint;
  if (options.tcp_listen) tcp_endpoint = parse_listen(*options.tcp_listen);

  try {
    error_code ec;
    if (!path.empty()) bind_unix_socket();
    if (tcp_endpoint) {
      const std::string& where = *options.tcp_listen;
      tcp_acceptor.open(tcp_endpoint->protocol(), ec);
      if (!ec) tcp_acceptor.set_option(asio::socket_base::reuse_address(true), ec);
      if (!ec) tcp_acceptor.bind(*tcp_endpoint, ec);
      if (!ec) tcp_acceptor.listen(asio::socket_base::max_listen_connections, ec);
      if (ec) throw std::system_error(ec, "cannot listen on admin TCP endpoint " + where);
      bound_tcp_port = tcp_acceptor.local_endpoint(ec).port();
      if (ec) throw std::system_error(ec, "cannot listen on admin TCP endpoint " + where);
    }
  } catch (...) {
    stop();
    throw;
  }

  if (unix_acceptor.is_open()) accept(unix_acceptor, false);
  if (tcp_acceptor.is_open()) accept(tcp_acceptor, !options.tcp_open);
}

void AdminServer::Impl::bind_unix_socket() {
  const std::string& path = options.unix_path;
  make_parent_dirs(path);
  remove_stale_socket(path);

  error_code ec;
  unix_acceptor.open(unix_proto(), ec);
  if (!ec) unix_acceptor.bind(unix_proto::endpoint(path), ec);
  if (ec) throw std::system_error(ec, "cannot bind admin socket " + path);
  socket_bound = true;
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    socket_dev = st.st_dev;
    socket_ino = st.st_ino;
  }
  // Before listen(), so that nobody connects while the mode is still the umask's.
  if (::chmod(path.c_str(), options.unix_mode) != 0) {
    throw sys_error(errno, "cannot chmod admin socket " + path);
  }
  unix_acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::system_error(ec, "cannot listen on admin socket " + path);
}

void AdminServer::Impl::stop() {
  if (stopped) return;
  stopped = true;
  error_code ignored;
  unix_acceptor.close(ignored);
  tcp_acceptor.close(ignored);
  retry_timer.cancel();
  auto open_sessions = std::move(sessions);
  sessions.clear();
  for (auto& weak : open_sessions) {
    if (auto s = weak.lock()) s->close();
  }
  if (socket_bound) {
    socket_bound = false;
    // Only remove the file if it is still ours (not replaced by another instance).
    struct stat st;
    if (::lstat(options.unix_path.c_str(), &st) == 0 && st.st_dev == socket_dev &&
        st.st_ino == socket_ino) {
      ::unlink(options.unix_path.c_str());
    }
  }
}

AdminServer::AdminServer(asio::io_context& ioc, AdminServerOptions options, AdminHandler handler)
    : impl_(std::make_shared<Impl>(ioc, std::move(options), std::move(handler))) {}

AdminServer::~AdminServer() {
  impl_->stop();
}

void AdminServer::start() {
  impl_->start();
}

void AdminServer::stop() {
  impl_->stop();
}

unsigned short AdminServer::tcp_port() const {
  return impl_->bound_tcp_port;
}

// ---- client ----

namespace {

bool is_token(std::string_view s) {
  static constexpr std::string_view kExtra = "!#$%&'*+-.^_`|~";
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || kExtra.find(c) != std::string_view::npos;
  });
}

bool is_valid_target(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u != 0x7f;
  });
}

std::string connect_hint(const error_code& ec) {
  namespace errc = boost::system::errc;
  if (ec == errc::no_such_file_or_directory || ec == errc::connection_refused) {
    return " (is ikelbd running?)";
  }
  if (ec == errc::permission_denied || ec == errc::operation_not_permitted) {
    return " (run as root or as a member of the socket's group)";
  }
  return "";
}

}  // namespace

AdminReply admin_call(const std::string& unix_path, const std::string& method,
                      const std::string& target, const json& body,
                      std::chrono::milliseconds timeout) {
  if (!is_token(method)) throw std::runtime_error("invalid HTTP method \"" + method + "\"");
  if (!is_valid_target(target))
    throw std::runtime_error("invalid request target \"" + target + "\"");

  http::request<http::string_body> req;
  req.version(11);
  req.method_string(method);
  req.target(target);
  req.set(http::field::host, "localhost");
  req.set(http::field::user_agent, "ikelbctl");
  req.set(http::field::accept, "application/json");
  if (!body.is_null()) {
    try {
      req.body() = body.dump() + "\n";
    } catch (const json::exception& e) {
      throw std::runtime_error(std::string("cannot encode the request body as JSON: ") + e.what());
    }
    req.set(http::field::content_type, "application/json");
  }
  req.keep_alive(false);
  req.prepare_payload();

  unix_proto::endpoint endpoint;
  try {
    endpoint = unix_proto::endpoint(unix_path);
  } catch (const boost::system::system_error& e) {
    throw std::runtime_error("cannot connect to " + unix_path + ": " + e.code().message());
  }

  asio::io_context ioc;
  unix_proto::socket socket(ioc);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxReplyBytes);

  enum class Phase { connecting, sending, receiving, done } phase = Phase::connecting;
  error_code connect_ec, write_ec, read_ec;

  auto read_reply = [&] {
    phase = Phase::receiving;
    http::async_read(socket, buffer, parser, [&](error_code ec, size_t) {
      read_ec = ec;
      phase = Phase::done;
    });
  };
  socket.async_connect(endpoint, [&](error_code ec) {
    if (ec) {
      connect_ec = ec;
      phase = Phase::done;
      return;
    }
    phase = Phase::sending;
    http::async_write(socket, req, [&](error_code ec, size_t) {
      // The server may reply (e.g. 413) and stop reading before it has the whole request:
      // read the reply anyway and only report the write error if there is none.
      write_ec = ec;
      read_reply();
    });
  });

  ioc.run_for(timeout);
  if (phase != Phase::done) {
    static constexpr const char* kWhat[] = {"connecting", "sending the request",
                                            "waiting for the reply"};
    std::string what = kWhat[static_cast<int>(phase)];
    error_code ignored;
    socket.close(ignored);
    ioc.restart();
    ioc.run();  // let the cancelled operations finish
    throw std::runtime_error("timed out after " + std::to_string(timeout.count()) + " ms " + what +
                             " (ikelbd on " + unix_path + ")");
  }
  if (connect_ec) {
    throw std::runtime_error("cannot connect to " + unix_path + ": " + connect_ec.message() +
                             connect_hint(connect_ec));
  }
  if (read_ec) {
    if (write_ec) {
      throw std::runtime_error("error sending the request to ikelbd on " + unix_path + ": " +
                               write_ec.message());
    }
    if (read_ec == http::error::end_of_stream) {
      throw std::runtime_error("ikelbd on " + unix_path + " closed the connection without a reply");
    }
    if (is_http_error(read_ec)) {
      throw std::runtime_error("invalid HTTP reply from ikelbd on " + unix_path + ": " +
                               read_ec.message());
    }
    throw std::runtime_error("error reading the reply from ikelbd on " + unix_path + ": " +
                             read_ec.message());
  }

  const auto& res = parser.get();
  AdminReply reply{res.result_int(), nullptr};
  if (!is_blank(res.body())) {
    try {
      reply.body = json::parse(res.body());
    } catch (const json::exception& e) {
      std::string excerpt = res.body().substr(0, 200);
      throw std::runtime_error("ikelbd on " + unix_path + " sent a reply that is not valid JSON" +
                               " (HTTP " + std::to_string(reply.status) + "): " + e.what() +
                               "; reply begins: " + excerpt);
    }
  }
  return reply;
}

}  // namespace ikelb
