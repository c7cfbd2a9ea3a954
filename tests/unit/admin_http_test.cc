#include "admin_http.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace ikelb {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using json = nlohmann::json;
using unix_proto = asio::local::stream_protocol;

// Echoes the request back.
AdminResponse echo(const AdminRequest& req) {
  return {200, {{"method", req.method}, {"target", req.target}, {"body", req.body}}};
}

struct RawReply {
  unsigned status = 0;
  json body;
  std::string content_type;
};

RawReply read_reply(unix_proto::socket& s) {
  boost::beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(s, buf, res);
  return {res.result_int(), json::parse(res.body()), std::string(res[http::field::content_type])};
}

class AdminHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ikelb-admin-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    sock_ = dir_ + "/run/ikelb.sock";  // parent "run" does not exist yet
  }

  void TearDown() override {
    stop_server();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  AdminServerOptions options() {
    AdminServerOptions o;
    o.unix_path = sock_;
    return o;
  }

  void start_server(AdminServerOptions o, AdminHandler handler = echo) {
    server_ = std::make_unique<AdminServer>(ioc_, std::move(o), std::move(handler));
    server_->start();
    thread_ = std::thread([this] { ioc_.run(); });
  }

  void stop_server() {
    if (thread_.joinable()) {
      asio::post(ioc_, [this] { server_->stop(); });
      thread_.join();
    }
    server_.reset();
  }

  // Sends raw bytes on a fresh unix connection and reads the HTTP reply.
  RawReply raw_exchange(const std::string& bytes) {
    asio::io_context io;
    unix_proto::socket s(io);
    s.connect(unix_proto::endpoint(sock_));
    asio::write(s, asio::buffer(bytes));
    return read_reply(s);
  }

  // POST /v1/status {"x": 1} to the TCP listener, with an Authorization header if given.
  std::pair<unsigned, json> tcp_post(const std::string* authorization) {
    asio::io_context io;
    asio::ip::tcp::socket s(io);
    s.connect({asio::ip::make_address("127.0.0.1"), server_->tcp_port()});
    http::request<http::string_body> req{http::verb::post, "/v1/status", 11};
    req.set(http::field::host, "127.0.0.1");
    if (authorization) req.set(http::field::authorization, *authorization);
    req.body() = R"({"x": 1})";
    req.prepare_payload();
    http::write(s, req);
    boost::beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(s, buf, res);
    return std::make_pair(res.result_int(), json::parse(res.body()));
  }

  std::string dir_;
  std::string sock_;
  asio::io_context ioc_;
  std::unique_ptr<AdminServer> server_;
  std::thread thread_;
};

TEST_F(AdminHttpTest, EchoRoundTrip) {
  start_server(options());
  json body = {{"name", "gw1"}, {"weight", 3}, {"tags", {"a", "b"}}};
  AdminReply r = admin_call(sock_, "POST", "/v1/backends?pool=x", body);
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.body["method"], "POST");
  EXPECT_EQ(r.body["target"], "/v1/backends?pool=x");
  EXPECT_EQ(r.body["body"], body);

  r = admin_call(sock_, "GET", "/v1/status");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.body["method"], "GET");
  EXPECT_TRUE(r.body["body"].is_null());

  // The transport doesn't route: any method token reaches the handler.
  r = admin_call(sock_, "DRAIN", "/v1/backends/gw1");
  EXPECT_EQ(r.body["method"], "DRAIN");
}

TEST_F(AdminHttpTest, HandlerStatusAndContentType) {
  start_server(options(), [](const AdminRequest&) {
    return AdminResponse{404, {{"error", "no such backend"}}};
  });
  RawReply r = raw_exchange("GET /v1/x HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.body["error"], "no such backend");
}

TEST_F(AdminHttpTest, SocketFileModeAndParentDirectory) {
  start_server(options());
  struct stat st;
  ASSERT_EQ(::stat(sock_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  ASSERT_EQ(::stat((dir_ + "/run").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
}

TEST_F(AdminHttpTest, StopRemovesSocketFile) {
  start_server(options());
  ASSERT_TRUE(std::filesystem::exists(sock_));
  stop_server();
  EXPECT_FALSE(std::filesystem::exists(sock_));
}

TEST_F(AdminHttpTest, MalformedJsonBodyIs400) {
  std::atomic<int> calls{0};
  start_server(options(), [&](const AdminRequest& r) {
    ++calls;
    return echo(r);
  });
  std::string bad = R"({"a": 1,)";
  RawReply r = raw_exchange("POST /v1/backends HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                            std::to_string(bad.size()) + "\r\n\r\n" + bad);
  EXPECT_EQ(r.status, 400u);
  ASSERT_TRUE(r.body["error"].is_string());
  EXPECT_EQ(r.body["error"].get<std::string>().rfind("request body is not valid JSON: ", 0), 0u)
      << r.body.dump();
  EXPECT_EQ(calls, 0);
}

TEST_F(AdminHttpTest, OversizedBodyIs413) {
  std::atomic<int> calls{0};
  AdminServerOptions o = options();
  o.max_body_bytes = 1024;
  start_server(o, [&](const AdminRequest& r) {
    ++calls;
    return echo(r);
  });
  std::string payload = "\"" + std::string(200000, 'x') + "\"";
  RawReply r = raw_exchange("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                            std::to_string(payload.size()) + "\r\n\r\n" + payload);
  EXPECT_EQ(r.status, 413u);
  EXPECT_TRUE(r.body["error"].is_string());

  // Chunked: the limit is only hit while reading the body.
  std::string chunked = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 10; ++i) chunked += "100\r\n" + std::string(256, ' ') + "\r\n";
  chunked += "0\r\n\r\n";
  r = raw_exchange(chunked);
  EXPECT_EQ(r.status, 413u);

  // A body just within the limit is fine.
  EXPECT_EQ(admin_call(sock_, "POST", "/", std::string(1000, 'y')).status, 200u);
  EXPECT_EQ(calls, 1);
}

TEST_F(AdminHttpTest, GarbageDoesNotHurtTheServer) {
  start_server(options());
  RawReply r =
      raw_exchange(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc garbage\r\n\r\n", 22));
  EXPECT_EQ(r.status, 400u);
  EXPECT_TRUE(r.body["error"].is_string());

  r = raw_exchange("GET / HTTP/1.1\r\nX-Big: " + std::string(20000, 'h') + "\r\n\r\n");
  EXPECT_EQ(r.status, 400u);

  {
    // Half a request, then hang up.
    asio::io_context io;
    unix_proto::socket s(io);
    s.connect(unix_proto::endpoint(sock_));
    asio::write(s, asio::buffer(std::string("POST / HTTP/1.1\r\nContent-Le")));
  }
  {
    // Connect and hang up without a byte.
    asio::io_context io;
    unix_proto::socket s(io);
    s.connect(unix_proto::endpoint(sock_));
  }

  AdminReply ok = admin_call(sock_, "GET", "/still/alive");
  EXPECT_EQ(ok.status, 200u);
  EXPECT_EQ(ok.body["target"], "/still/alive");
}

TEST_F(AdminHttpTest, SlowClientIsCut) {
  AdminServerOptions o = options();
  o.request_timeout = std::chrono::milliseconds(200);
  start_server(o);
  asio::io_context io;
  unix_proto::socket s(io);
  s.connect(unix_proto::endpoint(sock_));
  asio::write(s, asio::buffer(std::string("GET / HTTP/1.1\r\n")));
  auto t0 = std::chrono::steady_clock::now();
  char c;
  boost::system::error_code ec;
  asio::read(s, asio::buffer(&c, 1), ec);
  EXPECT_EQ(ec, asio::error::eof);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  EXPECT_EQ(admin_call(sock_, "GET", "/").status, 200u);
}

TEST_F(AdminHttpTest, HandlerExceptionIs500) {
  start_server(options(), [](const AdminRequest&) -> AdminResponse {
    throw std::runtime_error("backend table is locked");
  });
  AdminReply r = admin_call(sock_, "POST", "/v1/apply", json::object());
  EXPECT_EQ(r.status, 500u);
  EXPECT_EQ(r.body["error"], "backend table is locked");
  // Still serving.
  EXPECT_EQ(admin_call(sock_, "GET", "/").status, 500u);
}

TEST_F(AdminHttpTest, TcpListenerRequiresBearerToken) {
  AdminServerOptions o = options();
  o.tcp_listen = "127.0.0.1:0";
  o.bearer_token = "s3cret-token";
  start_server(o);
  ASSERT_NE(server_->tcp_port(), 0);

  auto tcp_call = [&](const std::string* authorization) { return tcp_post(authorization); };

  auto [status, body] = tcp_call(nullptr);
  EXPECT_EQ(status, 401u);
  EXPECT_EQ(body["error"], "missing or wrong bearer token");

  std::string wrong = "Bearer s3cret-tokeN";
  std::tie(status, body) = tcp_call(&wrong);
  EXPECT_EQ(status, 401u);
  std::string prefix = "Bearer s3cret-toke";
  std::tie(status, body) = tcp_call(&prefix);
  EXPECT_EQ(status, 401u);
  std::string basic = "Basic czNjcmV0LXRva2Vu";
  std::tie(status, body) = tcp_call(&basic);
  EXPECT_EQ(status, 401u);

  std::string right = "Bearer s3cret-token";
  std::tie(status, body) = tcp_call(&right);
  EXPECT_EQ(status, 200u);
  EXPECT_EQ(body["target"], "/v1/status");
  EXPECT_EQ(body["body"], json({{"x", 1}}));

  // The unix socket needs no token.
  EXPECT_EQ(admin_call(sock_, "GET", "/").status, 200u);
}

// The health listener: TCP only, no token, no unix socket file.
TEST_F(AdminHttpTest, OpenTcpListenerNeedsNoTokenAndNoSocket) {
  AdminServerOptions o;
  o.tcp_listen = "127.0.0.1:0";
  o.tcp_open = true;
  start_server(o);
  ASSERT_NE(server_->tcp_port(), 0);
  auto [status, body] = tcp_post(nullptr);
  EXPECT_EQ(status, 200u);
  EXPECT_EQ(body["target"], "/v1/status");
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/run")) << "no unix socket for an open listener";
}

TEST_F(AdminHttpTest, OpenListenerOptionsAreChecked) {
  AdminServerOptions o;
  o.tcp_listen = "127.0.0.1:0";
  o.tcp_open = true;
  o.bearer_token = "t";  // a token nobody would check
  AdminServer a(ioc_, o, echo);
  EXPECT_THROW(a.start(), std::system_error);
  AdminServerOptions no_socket;  // neither a unix socket nor an open listener
  no_socket.tcp_listen = "127.0.0.1:0";
  no_socket.bearer_token = "t";
  AdminServer b(ioc_, no_socket, echo);
  EXPECT_THROW(b.start(), std::system_error);
}

TEST_F(AdminHttpTest, BadOptionsAreRejected) {
  AdminServerOptions o = options();
  o.tcp_listen = "127.0.0.1:0";  // but no token
  AdminServer a(ioc_, o, echo);
  EXPECT_THROW(a.start(), std::system_error);

  for (const char* bad :
       {"127.0.0.1", "::1:80", "[127.0.0.1]:80", "host.example:80", "127.0.0.1:99999", "[::1]80"}) {
    o.tcp_listen = bad;
    o.bearer_token = "t";
    AdminServer b(ioc_, o, echo);
    EXPECT_THROW(b.start(), std::system_error) << bad;
  }
  EXPECT_FALSE(std::filesystem::exists(sock_));  // nothing left behind
}

TEST_F(AdminHttpTest, MissingSocketHint) {
  std::string missing = dir_ + "/nope.sock";
  try {
    admin_call(missing, "GET", "/");
    FAIL() << "admin_call succeeded";
  } catch (const std::runtime_error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("is ikelbd running?"), std::string::npos) << what;
    EXPECT_NE(what.find(missing), std::string::npos) << what;
  }
}

TEST_F(AdminHttpTest, ClientTimesOut) {
  std::filesystem::create_directories(dir_ + "/run");
  asio::io_context io;
  unix_proto::acceptor listener(io, unix_proto::endpoint(sock_));  // never accepts
  auto t0 = std::chrono::steady_clock::now();
  try {
    admin_call(sock_, "GET", "/", nullptr, std::chrono::milliseconds(200));
    FAIL() << "admin_call succeeded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("timed out"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
}

TEST_F(AdminHttpTest, ClientRejectsNonJsonReply) {
  std::filesystem::create_directories(dir_ + "/run");
  asio::io_context io;
  unix_proto::acceptor listener(io, unix_proto::endpoint(sock_));
  std::thread fake([&] {
    unix_proto::socket s = listener.accept();
    boost::beast::flat_buffer buf;
    http::request<http::string_body> req;
    http::read(s, buf, req);
    asio::write(s,
                asio::buffer(std::string(
                    "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n")));
  });
  try {
    admin_call(sock_, "GET", "/");
    ADD_FAILURE() << "admin_call succeeded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos) << e.what();
  }
  fake.join();
}

TEST_F(AdminHttpTest, SecondServerOnSamePathFails) {
  start_server(options());
  asio::io_context other;
  AdminServer second(other, options(), echo);
  try {
    second.start();
    FAIL() << "second server started";
  } catch (const std::system_error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("already in use"), std::string::npos) << what;
    EXPECT_NE(what.find(sock_), std::string::npos) << what;
  }
  // The failed attempt left the first server's socket alone.
  EXPECT_EQ(admin_call(sock_, "GET", "/").status, 200u);
}

TEST_F(AdminHttpTest, StaleSocketIsReplaced) {
  std::filesystem::create_directories(dir_ + "/run");
  {
    asio::io_context io;
    unix_proto::acceptor dead(io, unix_proto::endpoint(sock_));
  }  // closed; the file stays
  ASSERT_TRUE(std::filesystem::is_socket(sock_));
  start_server(options());
  EXPECT_EQ(admin_call(sock_, "GET", "/fresh").body["target"], "/fresh");
}

TEST_F(AdminHttpTest, NonSocketFileIsNotReplaced) {
  std::filesystem::create_directories(dir_ + "/run");
  { std::ofstream(sock_) << "precious"; }
  AdminServer s(ioc_, options(), echo);
  EXPECT_THROW(s.start(), std::system_error);
  EXPECT_TRUE(std::filesystem::is_regular_file(sock_));
}

}  // namespace
}  // namespace ikelb
