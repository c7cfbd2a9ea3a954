// ikelbd's Prometheus endpoint end to end: what the counters and gauges say against what the
// clients sent and the gateways logged, failovers, probe-driven health, a real Prometheus server
// scraping the agent and evaluating deploy/prometheus/ikelb-rules.yml and the Grafana dashboard's
// queries, and the cost of a scrape with 1,000 backends.
//
// Topology as in agent_test.cc (NetnsFixture::add_lb_and_clients, support/netns_fixture.h):
//
//   PREFIX-cli  c1 198.51.100.2/24, clients 100.64.0.N/32  (ikelb_netns_tool send)
//        |
//   PREFIX-lb   c0 198.51.100.1/24 ... g<i> 10.0.<i>.1/24   ikelbd (metrics on 127.0.0.1:9712),
//        |                                                  prometheus (127.0.0.1:<free port>)
//   PREFIX-gw<i> e0 10.0.<i>.2/24, default via 10.0.<i>.1  (ikelb_netns_tool serve, or nothing)
//
// The endpoints listen on the lb namespace's loopback only. The test reaches them with its own
// minimal HTTP/1.1 client through a socket created in that namespace (a short-lived thread
// setns()es into it; the socket stays there). Every process, namespace and mount a test creates
// is removed in TearDown, also when the test failed.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "dashboard.h"
#include "netns_fixture.h"
#include "process.h"

// In ikelb::test for the process helpers of support/process.h.
namespace ikelb::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Labels = std::map<std::string, std::string>;

constexpr const char* kVip = "203.0.113.10";
constexpr uint16_t kMetricsPort = 9712;  // on the lb namespace's own loopback
constexpr uint32_t kAffinityEntries = 65536;

// Polls `done` every `step` until it returns true or `timeout` passed; its last answer.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                std::chrono::milliseconds step = 100ms) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (done()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(step);
  }
}

// ---- HTTP in another network namespace ----

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

// A TCP socket of the network namespace /run/netns/NAME: created by a thread that joined the
// namespace (setns affects the calling thread only) and ended; the socket stays in it.
int tcp_socket_in(const std::string& netns) {
  int result = -1;
  std::string error;
  std::thread t([&] {
    int nsfd = open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
    if (nsfd < 0) {
      error = "open /run/netns/" + netns + ": " + std::strerror(errno);
      return;
    }
    if (setns(nsfd, CLONE_NEWNET) != 0) {
      error = "setns " + netns + ": " + std::strerror(errno);
      close(nsfd);
      return;
    }
    close(nsfd);
    result = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (result < 0) error = std::string("socket: ") + std::strerror(errno);
  });
  t.join();
  if (result < 0) throw std::runtime_error(error);
  return result;
}

// A TCP port nobody listens on in `netns` right now (bound to 0, read back, released).
uint16_t free_port(const std::string& netns) {
  Fd s(tcp_socket_in(netns));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (bind(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      getsockname(s.fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error(std::string("free port: ") + std::strerror(errno));
  return ntohs(a.sin_port);
}

struct HttpResponse {
  int status = 0;
  std::string body;
};

std::string decode_chunked(const std::string& in) {
  std::string out;
  size_t at = 0;
  for (;;) {
    size_t eol = in.find("\r\n", at);
    if (eol == std::string::npos) throw std::runtime_error("truncated chunked body");
    size_t n = std::stoul(in.substr(at, eol - at), nullptr, 16);
    if (n == 0) return out;
    if (eol + 2 + n > in.size()) throw std::runtime_error("truncated chunk");
    out += in.substr(eol + 2, n);
    at = eol + 2 + n + 2;
  }
}

// GET http://127.0.0.1:PORT/TARGET inside `netns`; HTTP/1.1 with Connection: close, the body
// read to EOF (or de-chunked). Throws on connection errors and a 10 s silence.
HttpResponse http_get(const std::string& netns, uint16_t port, const std::string& target) {
  Fd s(tcp_socket_in(netns));
  timeval tv{10, 0};
  setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(s.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
    throw std::runtime_error("connect 127.0.0.1:" + std::to_string(port) + " in " + netns + ": " +
                             std::strerror(errno));
  const std::string request = "GET " + target +
                              " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                              "\r\nAccept: */*\r\nConnection: close\r\n\r\n";
  for (size_t sent = 0; sent < request.size();) {
    ssize_t n = send(s.fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) throw std::runtime_error(std::string("send: ") + std::strerror(errno));
    sent += static_cast<size_t>(n);
  }
  std::string raw;
  char buf[65536];
  for (;;) {
    ssize_t n = recv(s.fd, buf, sizeof(buf), 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("recv: ") + std::strerror(errno));
    }
    raw.append(buf, static_cast<size_t>(n));
  }
  size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos || !raw.starts_with("HTTP/1."))
    throw std::runtime_error("not an HTTP response: " + tail(raw, 200));
  HttpResponse r;
  r.status = std::atoi(raw.c_str() + raw.find(' ') + 1);
  std::string head = raw.substr(0, end);
  std::transform(head.begin(), head.end(), head.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  r.body = raw.substr(end + 4);
  if (head.find("\r\ntransfer-encoding: chunked") != std::string::npos)
    r.body = decode_chunked(r.body);
  return r;
}

std::string url_encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof(hex), "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

// ---- the Prometheus text format ----

struct Sample {
  std::string name;
  Labels labels;
  double value = 0;
};

// A parsed exposition. Lookups take the labels a sample must have (others may be present).
struct Exposition {
  std::vector<Sample> samples;
  std::set<std::string> names;
  std::string text;

  static Exposition parse(const std::string& text) {
    Exposition e;
    e.text = text;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      Sample s;
      size_t at = line.find_first_of("{ ");
      if (at == std::string::npos) throw std::runtime_error("bad sample line: " + line);
      s.name = line.substr(0, at);
      if (line[at] == '{') {
        at++;
        while (line.at(at) != '}') {
          size_t eq = line.find("=\"", at);
          if (eq == std::string::npos) throw std::runtime_error("bad labels: " + line);
          std::string key = line.substr(at, eq - at), value;
          at = eq + 2;
          for (; line.at(at) != '"'; at++) {
            if (line[at] == '\\') {
              char c = line.at(++at);
              value += c == 'n' ? '\n' : c;
            } else {
              value += line[at];
            }
          }
          s.labels[key] = value;
          at++;
          if (line.at(at) == ',') at++;
        }
        at++;
      }
      std::istringstream rest(line.substr(at));
      std::string value;
      rest >> value;
      if (value == "+Inf") {
        s.value = INFINITY;
      } else if (value == "-Inf") {
        s.value = -INFINITY;
      } else if (value == "NaN") {
        s.value = NAN;
      } else {
        size_t used = 0;
        s.value = std::stod(value, &used);
        if (used != value.size()) throw std::runtime_error("bad value: " + line);
      }
      e.names.insert(s.name);
      e.samples.push_back(std::move(s));
    }
    return e;
  }

  std::vector<const Sample*> find(const std::string& name, const Labels& match = {}) const {
    std::vector<const Sample*> out;
    for (const auto& s : samples) {
      if (s.name != name) continue;
      bool ok = true;
      for (const auto& [k, v] : match) {
        auto it = s.labels.find(k);
        ok = ok && it != s.labels.end() && it->second == v;
      }
      if (ok) out.push_back(&s);
    }
    return out;
  }
  double sum(const std::string& name, const Labels& match = {}) const {
    double total = 0;
    for (const Sample* s : find(name, match)) total += s->value;
    return total;
  }
  // The one sample with these labels; throws if there are none or several.
  double value(const std::string& name, const Labels& match = {}) const {
    auto list = find(name, match);
    if (list.size() != 1) {
      std::string labels;
      for (const auto& [k, v] : match) labels += k + "=" + v + " ";
      throw std::runtime_error(std::to_string(list.size()) + " samples of " + name + " {" + labels +
                               "}");
    }
    return list[0]->value;
  }
  bool has(const std::string& name) const { return names.count(name) > 0; }
};

// ---- the dashboard and the rules ----

std::vector<PanelExpr> dashboard_exprs() {
  return panel_exprs(nlohmann::json::parse(read_file(kDashboard)));
}

enum class Gateway {
  kEcho,    // serve: logs and echoes every datagram
  kIke,     // serve --ike-group 19: also answers health probes (INVALID_KE_PAYLOAD)
  kSilent,  // no process: UDP 500 answers with ICMP port unreachable
};

class NetnsMetricsTest : public NetnsFixture {
 protected:
  NetnsMetricsTest()
      : NetnsFixture({.ikelbd = IKELBD_PATH,
                      .ikelbctl = IKELBCTL_PATH,
                      .netns_tool = IKELB_NETNS_TOOL_PATH,
                      .work_dir_template = "/tmp/ikelb-metrics-XXXXXX",
                      .prefix = "im"}) {}

  // ---- topology ----

  void SetUp() override {
    NetnsFixture::SetUp();
    if (HasFatalFailure()) return;
    add_lb_and_clients(kClientAddresses);
  }

  void before_agent_teardown() override { stop_prometheus(); }

  void check_agent_teardown(const RunResult& r, int status) override {
    if (r.exit_code != 0) ADD_FAILURE() << "ikelbctl teardown: " << r.output;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      ADD_FAILURE() << "ikelbd exited with status " << status << " after teardown";
  }

  void dump_logs() override {
    NetnsFixture::dump_logs();
    for (int i : gateways_)
      std::fprintf(stderr, "---- gw%d serve output ----\n%s\n", i,
                   tail(read_file(serve_out(i)), 1000).c_str());
    if (!prometheus_log_.empty())
      std::fprintf(stderr, "---- prometheus log ----\n%s\n",
                   tail(read_file(prometheus_log_)).c_str());
  }

  // Namespace gw<i> behind g<i>; with a fake gateway unless `kind` is kSilent.
  void add_gateway(int i, Gateway kind) {
    add_namespace("gw" + std::to_string(i));
    link_gateway(i, i);
    gateways_.push_back(i);
    if (kind == Gateway::kSilent) return;
    start_serve(i, gateway_log(i), kind == Gateway::kIke ? Argv{"--ike-group", "19"} : Argv{});
  }

  std::string gateway_log(int i) const { return dir_ + "/gw" + std::to_string(i) + ".log"; }

  static constexpr int kClientAddresses = 200;

  // ---- the agent ----

  static nlohmann::json gateway_backends(int n) {
    nlohmann::json list = nlohmann::json::array();
    for (int i = 1; i <= n; i++)
      list.push_back(
          {{"name", "gw" + std::to_string(i)}, {"address", "10.0." + std::to_string(i) + ".2"}});
    return list;
  }

  // One virtual server "vpn" with these backends; XDP on c0 and g1..g<gateways>.
  nlohmann::json config(const nlohmann::json& backends, const nlohmann::json& health,
                        int gateways) {
    nlohmann::json ifs = {"c0"};
    for (int i = 1; i <= gateways; i++) ifs.push_back("g" + std::to_string(i));
    nlohmann::json vs = {
        {"name", "vpn"}, {"address", kVip}, {"health_check", health}, {"backends", backends}};
    return {{"interfaces", ifs},
            {"bpffs", bpffs_ + "/ikelb"},
            {"admin", {{"socket", socket_}}},
            {"metrics", {{"listen", "127.0.0.1:" + std::to_string(kMetricsPort)}}},
            {"affinity", {{"idle_timeout_s", 60}, {"max_entries", kAffinityEntries}}},
            {"log_level", "info"},
            {"virtual_servers", {vs}}};
  }

  void write_config(const nlohmann::json& config) { write_config_json(config); }

  Exposition scrape() {
    HttpResponse r = http_get(ns("lb"), kMetricsPort, "/metrics");
    if (r.status != 200)
      throw std::runtime_error("GET /metrics: HTTP " + std::to_string(r.status) + ": " +
                               tail(r.body, 500));
    return Exposition::parse(r.body);
  }

  // ---- Prometheus ----

  void start_prometheus(const std::string& config_yaml) {
    prometheus_port_ = free_port(ns("lb"));
    const std::string config = dir_ + "/prometheus.yml";
    std::ofstream(config) << config_yaml;
    prometheus_log_ = dir_ + "/prometheus.log";
    prometheus_pid_ =
        start(in_ns("lb", {IKELB_PROMETHEUS, "--config.file=" + config,
                           "--storage.tsdb.path=" + dir_ + "/prometheus-data",
                           "--web.listen-address=127.0.0.1:" + std::to_string(prometheus_port_),
                           "--log.level=warn"}),
              prometheus_log_);
  }

  void stop_prometheus() {
    if (prometheus_pid_ <= 0) return;
    stop_process(prometheus_pid_, 10s);
    forget(prometheus_pid_);
    prometheus_pid_ = -1;
  }

  // GET /api/v1/<path> of the test's Prometheus; the parsed JSON answer.
  nlohmann::json prometheus_api(const std::string& path) {
    HttpResponse r = http_get(ns("lb"), prometheus_port_, "/api/v1/" + path);
    nlohmann::json j = nlohmann::json::parse(r.body);
    if (r.status != 200 || j["status"] != "success")
      throw std::runtime_error("/api/v1/" + path + ": HTTP " + std::to_string(r.status) + ": " +
                               r.body);
    return j["data"];
  }

  nlohmann::json prometheus_query(const std::string& promql) {
    return prometheus_api("query?query=" + url_encode(promql));
  }

  // ---- traffic ----

  struct Counts {
    int sent = 0, replied = 0, from_vip = 0;
  };
  using SendResult = std::map<std::string, Counts>;

  static SendResult parse_send(const std::string& output) {
    SendResult result;
    std::istringstream in(output);
    std::string line;
    while (std::getline(in, line)) {
      char addr[64];
      Counts c;
      if (std::sscanf(line.c_str(), "%63s sent=%d replied=%d from_vip=%d", addr, &c.sent,
                      &c.replied, &c.from_vip) == 4)
        result[addr] = c;
      else
        throw std::runtime_error("unexpected send output: " + line);
    }
    return result;
  }

  SendResult send_clients(int port, const std::string& clients_args, const std::string& prefix,
                          int rounds) {
    Argv argv = {IKELB_NETNS_TOOL_PATH, "send", "--vip", kVip, "--port", std::to_string(port)};
    std::istringstream words(clients_args);
    for (std::string w; words >> w;) argv.push_back(w);
    argv.insert(argv.end(), {"--payload-prefix", prefix, "--rounds", std::to_string(rounds),
                             "--interval-ms", "0", "--timeout-ms", "2000"});
    RunResult r = run(in_ns("cli", argv), 30s);
    if (r.exit_code != 0) throw std::runtime_error("send failed: " + r.output);
    return parse_send(r.output);
  }

  SendResult send(int port, int first, int count, const std::string& prefix, int rounds = 1) {
    return send_clients(port,
                        "--first " + std::to_string(first) + " --count " + std::to_string(count),
                        prefix, rounds);
  }

  SendResult send_list(int port, const std::vector<std::string>& addresses,
                       const std::string& prefix) {
    std::string list;
    for (const auto& a : addresses) {
      in_addr in{};
      if (inet_pton(AF_INET, a.c_str(), &in) != 1) throw std::runtime_error("bad address " + a);
      uint32_t n = ntohl(in.s_addr) - (100u << 24 | 64u << 16);
      list += (list.empty() ? "" : ",") + std::to_string(n);
    }
    return send_clients(port, "--clients " + list, prefix, 1);
  }

  static std::string answered_by_vip(const SendResult& result, size_t expected_clients,
                                     int rounds) {
    std::string problems;
    int shown = 0;
    if (result.size() != expected_clients)
      problems += std::to_string(result.size()) + " clients reported, expected " +
                  std::to_string(expected_clients) + "; ";
    for (const auto& [addr, c] : result) {
      if (c.sent == rounds && c.replied == rounds && c.from_vip == rounds) continue;
      if (shown++ < 10)
        problems += addr + " sent=" + std::to_string(c.sent) +
                    " replied=" + std::to_string(c.replied) +
                    " from_vip=" + std::to_string(c.from_vip) + "; ";
    }
    return problems;
  }

  static Counts totals(const SendResult& result) {
    Counts t;
    for (const auto& [addr, c] : result) {
      t.sent += c.sent;
      t.replied += c.replied;
      t.from_vip += c.from_vip;
    }
    return t;
  }

  // What the gateways logged for datagrams whose payload starts with "<prefix>:".
  struct Delivery {
    int gateway = 0;
    std::string source, payload;
    int port = 0;
  };
  std::vector<Delivery> deliveries(const std::string& prefix) {
    std::vector<Delivery> out;
    for (int gw : gateways_) {
      std::istringstream in(read_file(gateway_log(gw)));
      std::string line;
      while (std::getline(in, line)) {
        std::istringstream fields(line);
        Delivery d;
        fields >> d.source >> d.port >> d.payload;
        if (!d.payload.starts_with(prefix + ":")) continue;
        d.gateway = gw;
        out.push_back(d);
      }
    }
    return out;
  }

  // client -> the one gateway its datagrams of `prefix` reached (a failure if several).
  std::map<std::string, int> placement(const std::string& prefix) {
    std::map<std::string, std::set<int>> seen;
    for (const auto& d : deliveries(prefix)) seen[d.source].insert(d.gateway);
    std::map<std::string, int> out;
    for (const auto& [c, gws] : seen) {
      EXPECT_EQ(gws.size(), 1u) << c << " reached " << gws.size() << " gateways";
      out[c] = *gws.begin();
    }
    return out;
  }

  static std::map<int, int> clients_per_gateway(const std::map<std::string, int>& placement) {
    std::map<int, int> out;
    for (const auto& [c, gw] : placement) out[gw]++;
    return out;
  }

  static Labels backend(int i) {
    return {{"virtual_server", "vpn"}, {"backend", "gw" + std::to_string(i)}};
  }
  static Labels with(Labels l, const std::string& k, const std::string& v) {
    l[k] = v;
    return l;
  }

  std::string prometheus_log_;
  pid_t prometheus_pid_ = -1;
  uint16_t prometheus_port_ = 0;
};

// The reasons under which the data path counts a packet it rewrote (outcome names, ikelb_abi.h).
const std::set<std::string> kRewritten{"forward_redirect", "forward_tx", "pass_no_neigh",
                                       "pass_vlan",        "pass_fib",   "pass_no_tx_port"};

double sum_reasons(const Exposition& m, const std::function<bool(const std::string&)>& pick) {
  double total = 0;
  for (const Sample* s : m.find("ikelb_datapath_packets_total"))
    if (pick(s->labels.at("reason"))) total += s->value;
  return total;
}

// (a) packet and byte counters equal what the clients sent and the gateways logged and answered;
// (b) pinned clients add up to the clients after the affinity walk; reload counters.
TEST_F(NetnsMetricsTest, CountersMatchWhatWasSentAndDelivered) {
  for (int i = 1; i <= 3; i++) add_gateway(i, Gateway::kEcho);
  write_config(config(gateway_backends(3), {{"mode", "none"}}, 3));
  start_agent();
  const Exposition before = scrape();
  EXPECT_EQ(before.sum("ikelb_virtual_server_packets_total"), 0) << "fresh maps";
  EXPECT_EQ(before.sum("ikelb_backend_packets_total"), 0);

  constexpr int kClients = 150;
  SendResult ike = send(500, 1, kClients, "ike", 2);
  SendResult natt = send(4500, 1, kClients, "natt", 1);
  EXPECT_EQ(answered_by_vip(ike, kClients, 2), "");
  EXPECT_EQ(answered_by_vip(natt, kClients, 1), "");
  const int sent = totals(ike).sent + totals(natt).sent;
  const int replied = totals(ike).replied + totals(natt).replied;
  ASSERT_EQ(sent, 3 * kClients);

  // Datagrams and frame bytes per gateway from its log: Ethernet 14 + IPv4 20 + UDP 8 + payload
  // towards the gateway; its answer is "R" + payload.
  std::map<int, double> datagrams, bytes_in, bytes_out;
  auto logged = deliveries("ike");
  auto natt_logged = deliveries("natt");
  logged.insert(logged.end(), natt_logged.begin(), natt_logged.end());
  EXPECT_EQ(logged.size(), static_cast<size_t>(sent));
  double all_in = 0, all_out = 0;
  for (const auto& d : logged) {
    datagrams[d.gateway]++;
    bytes_in[d.gateway] += 42 + d.payload.size();
    bytes_out[d.gateway] += 43 + d.payload.size();
    all_in += 42 + d.payload.size();
    all_out += 43 + d.payload.size();
  }
  auto placed = placement("ike");
  auto per_gw = clients_per_gateway(placed);
  ASSERT_EQ(placed.size(), static_cast<size_t>(kClients));

  const Exposition m = scrape();
  const Labels vpn{{"virtual_server", "vpn"}};
  EXPECT_EQ(m.value("ikelb_virtual_server_packets_total", with(vpn, "direction", "to_backend")),
            sent);
  EXPECT_EQ(m.value("ikelb_virtual_server_packets_total", with(vpn, "direction", "to_client")),
            replied);
  EXPECT_EQ(m.value("ikelb_virtual_server_bytes_total", with(vpn, "direction", "to_backend")),
            all_in);
  EXPECT_EQ(m.value("ikelb_virtual_server_bytes_total", with(vpn, "direction", "to_client")),
            all_out);
  for (int i = 1; i <= 3; i++) {
    SCOPED_TRACE("gw" + std::to_string(i));
    EXPECT_GT(datagrams[i], 0);
    EXPECT_EQ(m.value("ikelb_backend_packets_total", with(backend(i), "direction", "to_backend")),
              datagrams[i]);
    EXPECT_EQ(m.value("ikelb_backend_packets_total", with(backend(i), "direction", "to_client")),
              datagrams[i]);
    EXPECT_EQ(m.value("ikelb_backend_bytes_total", with(backend(i), "direction", "to_backend")),
              bytes_in[i]);
    EXPECT_EQ(m.value("ikelb_backend_bytes_total", with(backend(i), "direction", "to_client")),
              bytes_out[i]);
    EXPECT_EQ(m.value("ikelb_backend_new_clients_total", backend(i)), per_gw[i]);
    EXPECT_EQ(m.value("ikelb_failovers_total", backend(i)), 0);
    EXPECT_EQ(m.value("ikelb_backend_state_active", backend(i)), 1);
    for (const char* st : {"draining", "drained", "down", "disabled"})
      EXPECT_EQ(m.value(std::string("ikelb_backend_state_") + st, backend(i)), 0) << st;
  }
  EXPECT_EQ(m.value("ikelb_virtual_server_healthy_backends", vpn), 3);
  // Every client datagram looked its client up: the first one missed, the others hit.
  EXPECT_EQ(m.value("ikelb_affinity_lookups_total", {{"result", "miss"}}), kClients);
  EXPECT_EQ(m.value("ikelb_affinity_lookups_total", {{"result", "hit"}}), sent - kClients);
  EXPECT_EQ(m.value("ikelb_affinity_lookups_total", {{"result", "failover"}}), 0);
  EXPECT_EQ(m.value("ikelb_affinity_lookups_total", {{"result", "expired"}}), 0);
  // Outcomes: every rewritten packet is one of the forwarding outcomes; nothing dropped.
  EXPECT_EQ(sum_reasons(m, [](const std::string& r) { return kRewritten.count(r) > 0; }),
            sent + replied);
  EXPECT_EQ(sum_reasons(m, [](const std::string& r) { return r.starts_with("drop_"); }), 0);
  // The agent's own series.
  EXPECT_EQ(m.value("ikelb_affinity_capacity"), kAffinityEntries);
  EXPECT_EQ(m.value("ikelb_config_reloads_total", {{"result", "ok"}}), 1);
  EXPECT_EQ(m.value("ikelb_config_reloads_total", {{"result", "rejected"}}), 0);
  const double loaded_at = m.value("ikelb_config_last_reload_success_timestamp_seconds");
  EXPECT_NEAR(loaded_at, static_cast<double>(std::time(nullptr)), 60);
  auto build = m.find("ikelb_build_info");
  ASSERT_EQ(build.size(), 1u);
  EXPECT_FALSE(build[0]->labels.at("version").empty());
  EXPECT_NE(build[0]->labels.at("bpf_prog_id"), "0");
  EXPECT_FALSE(m.has("ikelb_scrape_error"));

  // (b) After the next walk of the affinity table (every second): one pinned client each.
  Exposition pinned;
  bool ok = eventually(
      [&] {
        pinned = scrape();
        return pinned.has("ikelb_affinity_entries") &&
               pinned.value("ikelb_affinity_entries") == kClients &&
               pinned.sum("ikelb_backend_pinned_clients") == kClients;
      },
      3s);
  EXPECT_TRUE(ok) << "pinned clients: " << pinned.sum("ikelb_backend_pinned_clients")
                  << ", affinity entries: "
                  << (pinned.has("ikelb_affinity_entries") ? pinned.value("ikelb_affinity_entries")
                                                           : -1);
  for (int i = 1; i <= 3; i++)
    EXPECT_EQ(pinned.value("ikelb_backend_pinned_clients", backend(i)), per_gw[i]) << "gw" << i;

  // A rejected reload is counted and changes nothing.
  nlohmann::json broken = config(gateway_backends(3), {{"mode", "none"}}, 3);
  broken["virtual_servers"][0]["backends"][0]["address"] = "10.0.0.300";
  write_config(broken);
  RunResult reload = ctl({"reload"});
  EXPECT_NE(reload.exit_code, 0) << reload.output;
  const Exposition after = scrape();
  EXPECT_EQ(after.value("ikelb_config_reloads_total", {{"result", "rejected"}}), 1);
  EXPECT_EQ(after.value("ikelb_config_reloads_total", {{"result", "ok"}}), 1);
  EXPECT_EQ(after.value("ikelb_config_last_reload_success_timestamp_seconds"), loaded_at);
}

// (c) Disabling a gateway: its state gauges, and one failover per client pinned to it, counted
// when each of them comes back (and only once).
TEST_F(NetnsMetricsTest, DisableCountsOneFailoverPerPinnedClient) {
  for (int i = 1; i <= 3; i++) add_gateway(i, Gateway::kEcho);
  write_config(config(gateway_backends(3), {{"mode", "none"}}, 3));
  start_agent();
  constexpr int kClients = 150;
  SendResult first = send(500, 1, kClients, "first");
  EXPECT_EQ(answered_by_vip(first, kClients, 1), "");
  auto placed = placement("first");
  ASSERT_EQ(placed.size(), static_cast<size_t>(kClients));
  std::vector<std::string> on_gw2;
  for (const auto& [c, gw] : placed)
    if (gw == 2) on_gw2.push_back(c);
  ASSERT_FALSE(on_gw2.empty());
  const double moved = static_cast<double>(on_gw2.size());

  const Exposition m0 = scrape();
  EXPECT_EQ(m0.sum("ikelb_failovers_total"), 0);
  EXPECT_EQ(m0.value("ikelb_backend_state_active", backend(2)), 1);
  const double new_clients_before = m0.sum("ikelb_backend_new_clients_total");
  EXPECT_EQ(new_clients_before, kClients);

  RunResult disable = ctl({"disable", "gw2"});
  ASSERT_EQ(disable.exit_code, 0) << disable.output;
  const Exposition m1 = scrape();
  EXPECT_EQ(m1.value("ikelb_backend_state_disabled", backend(2)), 1);
  for (const char* st : {"active", "draining", "drained", "down"})
    EXPECT_EQ(m1.value(std::string("ikelb_backend_state_") + st, backend(2)), 0) << st;
  EXPECT_EQ(m1.value("ikelb_backend_state_changes_total", with(backend(2), "reason", "operator")),
            1);
  EXPECT_EQ(m1.value("ikelb_virtual_server_healthy_backends", {{"virtual_server", "vpn"}}), 2);
  EXPECT_EQ(m1.sum("ikelb_failovers_total"), 0) << "no failover before the clients send again";

  SendResult back = send_list(500, on_gw2, "back");
  EXPECT_EQ(answered_by_vip(back, on_gw2.size(), 1), "");
  auto replaced = clients_per_gateway(placement("back"));
  EXPECT_EQ(replaced[2], 0) << "clients still reached the disabled gw2";
  EXPECT_EQ(replaced[1] + replaced[3], static_cast<int>(on_gw2.size()));

  const Exposition m2 = scrape();
  EXPECT_EQ(m2.value("ikelb_failovers_total", backend(2)), moved);
  EXPECT_EQ(m2.value("ikelb_failovers_total", backend(1)), 0);
  EXPECT_EQ(m2.value("ikelb_failovers_total", backend(3)), 0);
  EXPECT_EQ(m2.value("ikelb_affinity_lookups_total", {{"result", "failover"}}), moved);
  EXPECT_EQ(m2.sum("ikelb_backend_new_clients_total") - new_clients_before, moved)
      << "each moved client pinned anew";
  EXPECT_EQ(m2.value("ikelb_backend_packets_total", with(backend(2), "direction", "to_backend")),
            m1.value("ikelb_backend_packets_total", with(backend(2), "direction", "to_backend")));

  // Re-pinned: their next datagrams are no failovers.
  SendResult again = send_list(500, on_gw2, "again");
  EXPECT_EQ(answered_by_vip(again, on_gw2.size(), 1), "");
  const Exposition m3 = scrape();
  EXPECT_EQ(m3.value("ikelb_failovers_total", backend(2)), moved);
  EXPECT_EQ(m3.value("ikelb_affinity_lookups_total", {{"result", "failover"}}), moved);

  Exposition pinned;
  EXPECT_TRUE(eventually(
      [&] {
        pinned = scrape();
        return pinned.find("ikelb_backend_pinned_clients", backend(2)).size() == 1 &&
               pinned.value("ikelb_backend_pinned_clients", backend(2)) == 0 &&
               pinned.sum("ikelb_backend_pinned_clients") == kClients;
      },
      3s))
      << "pinned: " << pinned.sum("ikelb_backend_pinned_clients");
}

// (d) Health gauges follow the probes: gw3 has no IKE responder (ICMP port unreachable), gw1 and
// gw2 answer like a stateless IKE daemon.
TEST_F(NetnsMetricsTest, HealthGaugesFollowTheProbes) {
  add_gateway(1, Gateway::kIke);
  add_gateway(2, Gateway::kIke);
  add_gateway(3, Gateway::kSilent);
  constexpr int kFall = 3;
  write_config(config(gateway_backends(3),
                      {{"mode", "stateless"},
                       {"interval_ms", 100},
                       {"timeout_ms", 80},
                       {"jitter_ms", 0},
                       {"rise", 2},
                       {"fall", kFall}},
                      3));
  start_agent();
  Exposition m;
  ASSERT_TRUE(eventually(
      [&] {
        m = scrape();
        return m.value("ikelb_backend_state_down", backend(3)) == 1 &&
               m.value("ikelb_probe_results_total", with(backend(1), "result", "invalid_ke")) > 0 &&
               m.value("ikelb_probe_results_total", with(backend(2), "result", "invalid_ke")) > 0;
      },
      5s))
      << tail(m.text, 3000);
  EXPECT_GT(m.value("ikelb_probe_results_total", with(backend(3), "result", "icmp")), 0);
  EXPECT_GE(m.value("ikelb_probe_consecutive_failures", backend(3)), kFall);
  EXPECT_EQ(m.value("ikelb_backend_state_active", backend(3)), 0);
  EXPECT_EQ(m.value("ikelb_backend_state_changes_total", with(backend(3), "reason", "probe")), 1);
  EXPECT_EQ(m.value("ikelb_probe_rtt_seconds_count", backend(3)), 0) << "no answer, no RTT";
  for (int i = 1; i <= 2; i++) {
    SCOPED_TRACE("gw" + std::to_string(i));
    EXPECT_EQ(m.value("ikelb_backend_state_active", backend(i)), 1);
    EXPECT_EQ(m.value("ikelb_backend_state_down", backend(i)), 0);
    EXPECT_LT(m.value("ikelb_probe_consecutive_failures", backend(i)), kFall);
    const double answered = m.value("ikelb_probe_rtt_seconds_count", backend(i));
    EXPECT_GT(answered, 0);
    EXPECT_EQ(m.value("ikelb_probe_rtt_seconds_bucket", with(backend(i), "le", "+Inf")), answered);
    EXPECT_GT(m.value("ikelb_probe_rtt_seconds_sum", backend(i)), 0);
    EXPECT_EQ(m.value("ikelb_backend_state_changes_total", with(backend(i), "reason", "probe")), 0);
  }
  EXPECT_EQ(m.value("ikelb_virtual_server_healthy_backends", {{"virtual_server", "vpn"}}), 2);
}

// The health listener of the agent (what the DaemonSet's probes ask): /healthz while the loop
// answers, /readyz while XDP is attached to every configured interface. Deleting one of them
// makes the agent not ready, naming the interface, and leaves it alive.
TEST_F(NetnsMetricsTest, HealthAndReadinessEndpoints) {
  add_gateway(1, Gateway::kEcho);
  add_link("lb", "x0", "gw1", "x1");
  nlohmann::json c = config(gateway_backends(1), {{"mode", "none"}}, 1);
  c["interfaces"].push_back("x0");
  const uint16_t port = free_port(ns("lb"));
  c["health"] = {{"listen", "127.0.0.1:" + std::to_string(port)}};
  write_config(c);
  start_agent();

  HttpResponse live = http_get(ns("lb"), port, "/healthz");
  EXPECT_EQ(live.status, 200) << live.body;
  EXPECT_EQ(nlohmann::json::parse(live.body), nlohmann::json({{"status", "ok"}}));
  HttpResponse ready = http_get(ns("lb"), port, "/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body;
  EXPECT_EQ(nlohmann::json::parse(ready.body)["status"], "ready");
  EXPECT_EQ(http_get(ns("lb"), port, "/v1/status").status, 404) << "no admin API without a token";
  const std::string listening =
      run({"ip", "netns", "exec", ns("lb"), "ss", "-Htln", "sport", "=", std::to_string(port)})
          .output;
  EXPECT_NE(listening.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << listening;

  must({"ip", "-n", ns("lb"), "link", "del", "x0"});
  ASSERT_TRUE(eventually([&] { return http_get(ns("lb"), port, "/readyz").status == 503; }, 5s));
  ready = http_get(ns("lb"), port, "/readyz");
  nlohmann::json body = nlohmann::json::parse(ready.body);
  EXPECT_EQ(body["status"], "not ready");
  ASSERT_EQ(body["problems"].size(), 1u) << ready.body;
  EXPECT_NE(body["problems"][0].get<std::string>().find("x0"), std::string::npos) << ready.body;
  EXPECT_EQ(http_get(ns("lb"), port, "/healthz").status, 200) << "not ready, but alive";
}

// (e) A real Prometheus scrapes the agent every second and loads the alert rules; the
// dashboard's queries run against it.
TEST_F(NetnsMetricsTest, PrometheusScrapesTheAgentAndRunsTheDashboardAndRules) {
  add_gateway(1, Gateway::kIke);
  add_gateway(2, Gateway::kIke);
  write_config(config(gateway_backends(2),
                      {{"mode", "stateless"}, {"interval_ms", 200}, {"timeout_ms", 150}}, 2));
  start_agent();
  constexpr int kClients = 40;
  EXPECT_EQ(answered_by_vip(send(500, 1, kClients, "prom"), kClients, 1), "");

  start_prometheus(
      "global:\n"
      "  scrape_interval: 1s\n"
      "  scrape_timeout: 1s\n"
      "  evaluation_interval: 1s\n"
      "rule_files:\n"
      "  - " +
      kRules +
      "\n"
      "scrape_configs:\n"
      "  - job_name: ikelb\n"
      "    static_configs:\n"
      "      - targets: ['127.0.0.1:" +
      std::to_string(kMetricsPort) + "']\n");
  std::string last;
  const auto started = Clock::now();
  ASSERT_TRUE(eventually(
      [&] {
        if (auto status = wait_exit(prometheus_pid_, 0ms)) {
          forget(prometheus_pid_);
          prometheus_pid_ = -1;
          throw std::runtime_error("prometheus exited (status " + std::to_string(*status) +
                                   "): " + tail(read_file(prometheus_log_)));
        }
        try {
          nlohmann::json r = prometheus_query("ikelb_affinity_capacity");
          last = r.dump();
          return r["result"].size() == 1 &&
                 r["result"][0]["value"][1] == std::to_string(kAffinityEntries);
        } catch (const std::exception& e) {
          last = e.what();
          return false;
        }
      },
      20s, 200ms))
      << last;
  std::printf(
      "prometheus answered ikelb_affinity_capacity %lld ms after start\n",
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count()));

  // Every ikelb_* name of the dashboard and the rules is in a live scrape (ikelb_scrape_error
  // only exists in a failed one).
  const Exposition live = scrape();
  std::set<std::string> used = referenced_names(read_file(kRules));
  for (const auto& e : dashboard_exprs()) used.merge(referenced_names(e.expr));
  for (const auto& name : used)
    if (name != "ikelb_scrape_error") {
      EXPECT_TRUE(live.has(name)) << name << " is used by the dashboard or rules, not exported";
    }

  // Enough samples for rate() over 1m, then every dashboard query: valid, and with data unless it
  // is about scrape errors.
  ASSERT_TRUE(eventually(
      [&] {
        auto r = prometheus_query("count_over_time(ikelb_affinity_capacity[1m])");
        return r["result"].size() == 1 &&
               std::stoi(r["result"][0]["value"][1].get<std::string>()) >= 3;
      },
      10s, 200ms));
  for (const auto& e : dashboard_exprs()) {
    const std::string promql = expand_variables(e.expr);
    try {
      nlohmann::json r = prometheus_query(promql);
      if (e.expr.find("ikelb_scrape_error") == std::string::npos) {
        EXPECT_FALSE(r["result"].empty()) << e.panel << ": no data for " << promql;
      }
    } catch (const std::exception& ex) {
      ADD_FAILURE() << e.panel << ": " << ex.what();
    }
  }
  // The state timeline's query: state code 1 (active) for both gateways.
  for (const auto& e : dashboard_exprs()) {
    if (e.panel != "Backend state") continue;
    nlohmann::json r = prometheus_query(expand_variables(e.expr));
    ASSERT_EQ(r["result"].size(), 2u) << r.dump();
    for (const auto& s : r["result"]) EXPECT_EQ(s["value"][1], "1") << s.dump();
  }

  // The rules loaded (every one in the file) and evaluate without errors; the pinned-clients
  // recording rule has data.
  const std::string rules_file = read_file(kRules);
  size_t in_file = 0;
  for (const char* kind : {"- alert: ", "- record: "})
    for (size_t at = 0; (at = rules_file.find(kind, at)) != std::string::npos; at++) in_file++;
  ASSERT_GE(in_file, 14u);
  nlohmann::json rules;
  EXPECT_TRUE(eventually(
      [&] {
        rules = prometheus_api("rules");
        size_t n = 0;
        for (const auto& g : rules["groups"])
          for (const auto& r : g["rules"]) {
            n++;
            if (r["health"] != "ok") return false;
          }
        return n == in_file;
      },
      10s, 200ms))
      << rules.dump(1);
  EXPECT_TRUE(eventually(
      [&] {
        auto r = prometheus_query("sum(virtual_server_backend:ikelb_backend_pinned_clients:sum)");
        return r["result"].size() == 1 && r["result"][0]["value"][1] == std::to_string(kClients);
      },
      10s, 200ms));
  nlohmann::json alerts = prometheus_api("alerts");
  EXPECT_TRUE(alerts["alerts"].empty()) << "a healthy pool fires no alert: " << alerts.dump(1);

  stop_prometheus();
}

// 4. The cost of a scrape with 1,000 backends (a measurement, not a timed assertion: only a
// generous sanity bound).
TEST_F(NetnsMetricsTest, ScrapeOfAThousandBackends) {
  constexpr int kBackends = 1000;
  nlohmann::json list = nlohmann::json::array();
  for (int i = 0; i < kBackends; i++)
    list.push_back(
        {{"name", "gw" + std::to_string(i + 1)},
         {"address", "10.64." + std::to_string(i / 200) + "." + std::to_string(i % 200 + 1)}});
  nlohmann::json c = config(list, {{"mode", "none"}}, 0);
  c["virtual_servers"][0]["maglev_table_size"] = 100003;  // prime, >= 100 per backend
  write_config(c);
  const auto t0 = Clock::now();
  start_agent();
  const auto started_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();

  constexpr int kScrapes = 9;
  std::vector<double> ms;
  Exposition m;
  size_t bytes = 0;
  std::string body;
  for (int i = 0; i < kScrapes; i++) {
    const auto s = Clock::now();
    HttpResponse r = http_get(ns("lb"), kMetricsPort, "/metrics");  // connect to last byte
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - s).count());
    ASSERT_EQ(r.status, 200) << tail(r.body, 500);
    body = std::move(r.body);
  }
  m = Exposition::parse(body);
  bytes = body.size();
  EXPECT_EQ(m.find("ikelb_backend_state_active").size(), static_cast<size_t>(kBackends));
  EXPECT_EQ(m.sum("ikelb_backend_state_active"), kBackends);
  EXPECT_EQ(m.value("ikelb_virtual_server_healthy_backends", {{"virtual_server", "vpn"}}),
            kBackends);
  std::vector<double> sorted = ms;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[kScrapes / 2], max = sorted.back();
  std::printf(
      "1000-backend scrape: median %.1f ms, max %.1f ms over %d scrapes; %zu samples, %zu bytes "
      "(ikelbd ready after %lld ms)\n",
      median, max, kScrapes, m.samples.size(), bytes, static_cast<long long>(started_ms));
  RecordProperty("scrape_median_ms", std::to_string(median));
  RecordProperty("scrape_max_ms", std::to_string(max));
  RecordProperty("scrape_samples", std::to_string(m.samples.size()));
  RecordProperty("scrape_bytes", std::to_string(bytes));
  EXPECT_LT(max, 5000) << "sanity bound only";
}

}  // namespace
}  // namespace ikelb::test
