// Several ikelb nodes for one VIP (docs/high-availability.md), with the real routing daemons:
// bird2 on every ikelb node, driven by ikelbd over its control socket, and FRR (zebra, bgpd,
// bfdd) as the upstream router spreading clients over the nodes by ECMP, BFD between them.
//
//   PREFIX-cli   c1 198.51.100.2/24, clients 100.64.0.N/32 (ikelb_netns_tool send)
//        |
//   PREFIX-rtr   c0 198.51.100.1/24; r<k> 10.255.<k>.1/24   FRR AS 65000, ECMP, BFD 100 ms x 3
//     /      |
//   PREFIX-lb<k> u0 10.255.<k>.2/24; g 10.0.0.<k>/24   bird2 AS 65001 + ikelbd, VIP 203.0.113.10
//     |      /
//   PREFIX-gws   bridge br0 (the shared gateway-side segment)
//        |
//   PREFIX-gw<i> e0 10.0.0.1<i>/24, default route ECMP via every node  (ikelb_netns_tool serve)
//
// Every daemon runs in the foreground as a child of the test with its sockets, pid files and
// state in the test's work directory, and is stopped in TearDown, also after a failure.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "datapath.h"
#include "frr_fixture.h"
#include "maglev.h"
#include "process.h"

namespace ikelb::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kVip = "203.0.113.10";
constexpr uint32_t kTableSize = 65537;
constexpr int kClients = 60;

std::string upstream(int k, int host) {
  return "10.255." + std::to_string(k) + "." + std::to_string(host);
}

class HaTest : public FrrFixture {
 protected:
  HaTest()
      : FrrFixture({.ikelbd = IKELBD_PATH,
                    .ikelbctl = IKELBCTL_PATH,
                    .netns_tool = IKELB_NETNS_TOOL_PATH,
                    .work_dir_template = "/tmp/ikelb-ha-XXXXXX",
                    .prefix = "ha",
                    .mac_tag = 0x1d,
                    .keep_env = "IKELB_HA_KEEP"}) {}

  struct Node {
    int k = 0;
    std::string dir, config, socket, log, pins, bird_ctl, bird_log, drain_file;
    pid_t agent = -1, bird = -1;
  };

  void SetUp() override {
    NetnsFixture::SetUp();
    if (HasFatalFailure()) return;
    // The work directory must be reachable for FRR's unprivileged user.
    chmod(dir_.c_str(), 0755);
    add_namespace("cli");
    add_namespace("rtr", {"net.ipv4.ip_forward=1", "net.ipv4.fib_multipath_hash_policy=0"});
    add_namespace("gws");
    must({"ip", "-n", ns("gws"), "link", "add", "br0", "type", "bridge"});
    must({"ip", "-n", ns("gws"), "link", "set", "br0", "up"});
    add_link("rtr", "c0", "cli", "c1", 0);
    must({"ip", "-n", ns("rtr"), "addr", "add", "198.51.100.1/24", "dev", "c0"});
    must({"ip", "-n", ns("cli"), "addr", "add", "198.51.100.2/24", "dev", "c1"});
    must({"ip", "-n", ns("cli"), "route", "add", "default", "via", "198.51.100.1"});
    must({"ip", "-n", ns("rtr"), "route", "add", "100.64.0.0/16", "via", "198.51.100.2"});
    std::string batch = dir_ + "/clients.batch";
    {
      std::ofstream out(batch);
      for (int n = 1; n <= kClients; n++) out << "address add " << client(n) << "/32 dev c1\n";
    }
    must({"ip", "-n", ns("cli"), "-batch", batch});
    for (int k = 1; k <= 2; k++) add_node(k);
    for (int i = 1; i <= 2; i++) add_gw(i);
    start_frr();
    for (auto& [k, n] : nodes_) start_bird(n);
  }

  void add_node(int k) {
    Node n;
    n.k = k;
    const std::string name = "lb" + std::to_string(k);
    n.dir = dir_ + "/" + name;
    std::filesystem::create_directories(n.dir);
    n.config = n.dir + "/ikelb.json";
    n.socket = n.dir + "/ikelb.sock";
    n.log = n.dir + "/ikelbd.log";
    n.pins = bpffs_ + "/" + name;
    n.bird_ctl = n.dir + "/bird.ctl";
    n.bird_log = n.dir + "/bird.log";
    n.drain_file = n.dir + "/state/node-drained";
    add_namespace(name, {"net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
                         "net.ipv4.conf.default.rp_filter=0"});
    add_link("rtr", "r" + std::to_string(k), name, "u0", 10 + k);
    must({"ip", "-n", ns("rtr"), "addr", "add", upstream(k, 1) + "/24", "dev",
          "r" + std::to_string(k)});
    must({"ip", "-n", ns(name), "addr", "add", upstream(k, 2) + "/24", "dev", "u0"});
    must({"ip", "-n", ns(name), "route", "add", "default", "via", upstream(k, 1)});
    add_link(name, "g", "gws", "p" + std::to_string(k), 20 + k);
    must({"ip", "-n", ns("gws"), "link", "set", "p" + std::to_string(k), "master", "br0"});
    must({"ip", "-n", ns(name), "addr", "add", "10.0.0." + std::to_string(k) + "/24", "dev", "g"});
    // The peers of XDP redirect targets need an XDP program of their own.
    must(in_ns("rtr", {opt_.netns_tool, "xdp-pass", "r" + std::to_string(k)}));
    must(in_ns("gws", {opt_.netns_tool, "xdp-pass", "p" + std::to_string(k)}));
    nodes_[k] = n;
  }

  void add_gw(int i) {
    const std::string gw = "gw" + std::to_string(i);
    add_namespace(gw);
    add_link("gws", "q" + std::to_string(i), gw, "e0", 30 + i);
    must({"ip", "-n", ns("gws"), "link", "set", "q" + std::to_string(i), "master", "br0"});
    must({"ip", "-n", ns(gw), "addr", "add", gw_address(i) + "/24", "dev", "e0"});
    // Replies may leave through any node: the reverse translation is stateless.
    Argv route = {"ip", "-n", ns(gw), "route", "add", "default"};
    for (auto& [k, n] : nodes_)
      route.insert(route.end(), {"nexthop", "via", "10.0.0." + std::to_string(k)});
    must(route);
    must(in_ns(gw, {opt_.netns_tool, "xdp-pass", "e0"}));
    gateways_.push_back(i);
    start_serve(i, gw_log(i));
  }

  static std::string gw_address(int i) { return "10.0.0.1" + std::to_string(i); }
  std::string gw_log(int i) const { return dir_ + "/gw" + std::to_string(i) + ".log"; }

  // ---- daemons ----

  void start_frr() {
    make_frr_dir();
    std::ofstream(frr_dir_ + "/zebra.conf") << "hostname rtr\n";
    std::ofstream(frr_dir_ + "/bfdd.conf") << "bfd\n"
                                              " profile fast\n"
                                              "  detect-multiplier 3\n"
                                              "  receive-interval 100\n"
                                              "  transmit-interval 100\n"
                                              " !\n"
                                              "!\n";
    std::ostringstream bgp;
    bgp << "router bgp 65000\n"
           " bgp router-id 198.51.100.1\n"
           " no bgp ebgp-requires-policy\n"
           " bgp bestpath as-path multipath-relax\n"
           " neighbor LB peer-group\n"
           " neighbor LB remote-as external\n"
           " neighbor LB timers 3 9\n"
           " neighbor LB timers connect 1\n"
           " neighbor LB bfd\n"
           " neighbor LB bfd profile fast\n";
    for (auto& [k, n] : nodes_) bgp << " neighbor " << upstream(k, 2) << " peer-group LB\n";
    bgp << " address-family ipv4 unicast\n  maximum-paths 8\n exit-address-family\n!\n";
    std::ofstream(frr_dir_ + "/bgpd.conf") << bgp.str();
    start_frr_daemons("rtr");
  }

  void write_bird_config(const Node& n) {
    std::ofstream(n.dir + "/bird.conf")
        << "log stderr { info, remote, warning, error, auth, fatal, bug };\n"
        << "router id " << upstream(n.k, 2) << ";\n"
        << "protocol device {}\n"
        << "protocol bfd { interface \"u0\" { min rx interval 100 ms; min tx interval 100 ms;"
           " multiplier 3; }; }\n"
        << "protocol static vip_vpn { ipv4; disabled yes; route " << kVip << "/32 blackhole; }\n"
        << "protocol bgp upstream {\n"
        << "  local " << upstream(n.k, 2) << " as 65001;\n"
        << "  neighbor " << upstream(n.k, 1) << " as 65000;\n"
        << "  hold time 9; connect retry time 1; error wait time 1, 10;\n"
        << "  bfd on;\n"
        << "  ipv4 { import none; export where proto = \"vip_vpn\"; };\n"
        << "}\n";
  }

  void start_bird(Node& n) {
    write_bird_config(n);
    n.bird = start(in_ns("lb" + std::to_string(n.k), {"bird", "-f", "-c", n.dir + "/bird.conf",
                                                      "-s", n.bird_ctl, "-P", n.dir + "/bird.pid"}),
                   n.bird_log);
    wait_for("bird's socket", 10s, [&] { return std::filesystem::exists(n.bird_ctl); });
  }

  void stop_bird(Node& n) {
    stop_process(n.bird, 2000ms);
    forget(n.bird);
    n.bird = -1;
  }

  std::string birdc(const Node& n, const std::string& command) {
    return must({"birdc", "-s", n.bird_ctl, command});
  }

  // ---- the agents ----

  void write_node_config(const Node& n, int min_healthy = 1) {
    nlohmann::json backends = nlohmann::json::array();
    for (int i : gateways_)
      backends.push_back({{"name", "gw" + std::to_string(i)}, {"address", gw_address(i)}});
    nlohmann::json config = {
        {"interfaces", {"u0", "g"}},
        {"bpffs", n.pins},
        {"admin", {{"socket", n.socket}}},
        {"metrics", {{"listen", nullptr}}},
        {"affinity", {{"idle_timeout_s", 3600}, {"max_entries", 65536}}},
        {"log_level", "info"},
        {"announce",
         {{"bird_socket", n.bird_ctl},
          {"interval_ms", 200},
          {"drain_file", n.drain_file},
          {"virtual_servers",
           {{{"name", "vpn"}, {"protocol", "vip_vpn"}, {"min_healthy_backends", min_healthy}}}}}},
        {"virtual_servers",
         {{{"name", "vpn"},
           {"address", kVip},
           {"maglev_table_size", kTableSize},
           {"health_check", {{"mode", "none"}}},
           {"backends", backends}}}}};
    if (sync_) {
      nlohmann::json peers = nlohmann::json::array();
      for (auto& [k, other] : nodes_)
        if (k != n.k) peers.push_back("10.0.0." + std::to_string(k) + ":7946");
      config["sync"] = {{"node_id", n.k},     {"listen", "10.0.0." + std::to_string(n.k) + ":7946"},
                        {"peers", peers},     {"key_file", dir_ + "/sync.key"},
                        {"interval_ms", 250}, {"snapshot_on_join", snapshot_on_join_}};
    }
    std::string tmp = n.config + ".tmp";
    std::ofstream(tmp) << config.dump(2) << "\n";
    std::filesystem::rename(tmp, n.config);
  }

  void start_node_agent(Node& n) {
    n.agent = start(in_ns("lb" + std::to_string(n.k), {opt_.ikelbd, "--config", n.config}), n.log);
    wait_for("ikelbd on lb" + std::to_string(n.k), 10s, [&] {
      if (wait_exit(n.agent, 0ms))
        throw std::runtime_error("ikelbd exited: " + tail(read_file(n.log), 3000));
      return run({opt_.ikelbctl, "--socket", n.socket, "status"}, 2s).exit_code == 0;
    });
  }

  RunResult nctl(const Node& n, const Argv& command) {
    Argv argv = {opt_.ikelbctl, "--socket", n.socket};
    argv.insert(argv.end(), command.begin(), command.end());
    return run(argv, 5s);
  }

  nlohmann::json nctl_json(const Node& n, const Argv& command) {
    Argv argv = {"--json"};
    argv.insert(argv.end(), command.begin(), command.end());
    RunResult r = nctl(n, argv);
    if (r.exit_code != 0 && !(command.size() == 2 && command[1] == "ready"))
      throw std::runtime_error("ikelbctl " + join(command) + ": " + r.output);
    return nlohmann::json::parse(r.output);
  }

  // The node's announcement of vpn as ikelbd reports it.
  nlohmann::json announcement(const Node& n) {
    const nlohmann::json node = nctl_json(n, {"node"});
    for (const auto& a : node["announce"])
      if (a["virtual_server"] == "vpn") return a;
    throw std::runtime_error("no announcement of vpn on lb" + std::to_string(n.k));
  }

  void before_agent_teardown() override {
    for (auto& [k, n] : nodes_) {
      if (n.agent > 0 && !wait_exit(n.agent, 0ms)) {
        RunResult r = nctl(n, {"teardown"});
        if (r.exit_code != 0) ADD_FAILURE() << "lb" << k << " ikelbctl teardown: " << r.output;
        if (!wait_exit(n.agent, 5000ms)) ADD_FAILURE() << "lb" << k << ": ikelbd did not stop";
      }
      forget(n.agent);
      n.agent = -1;
      if (std::filesystem::exists(n.pins)) {
        RunResult r =
            run(in_ns("lb" + std::to_string(k), {opt_.ikelbd, "--config", n.config, "--teardown"}),
                10s);
        if (r.exit_code != 0) ADD_FAILURE() << "lb" << k << " ikelbd --teardown: " << r.output;
      }
    }
  }

  void dump_logs() override {
    for (auto& [k, n] : nodes_) {
      RunResult b = run({"birdc", "-s", n.bird_ctl, "show", "protocols", "all", "upstream"}, 5s);
      std::fprintf(stderr, "---- lb%d birdc show protocols all upstream ----\n%s\n", k,
                   tail(b.output, 1500).c_str());
      std::fprintf(stderr, "---- lb%d ikelbd ----\n%s\n", k, tail(read_file(n.log), 3000).c_str());
      std::fprintf(stderr, "---- lb%d bird ----\n%s\n", k,
                   tail(read_file(n.bird_log), 1500).c_str());
    }
    dump_frr_logs();
  }

  // ---- observations ----

  // The nodes the router's FIB sends the VIP to.
  std::set<int> router_nexthops() {
    RunResult r = run({"ip", "-n", ns("rtr"), "route", "show", std::string(kVip) + "/32"}, 5s);
    std::set<int> out;
    for (auto& [k, n] : nodes_)
      if (r.output.find("via " + upstream(k, 2) + " ") != std::string::npos) out.insert(k);
    return out;
  }

  // The nodes the router has an up BFD session with.
  std::set<int> router_bfd_up() {
    const nlohmann::json peers = nlohmann::json::parse(vtysh("show bfd peers json"));
    std::set<int> out;
    for (const auto& p : peers)
      for (auto& [k, n] : nodes_)
        if (p.value("peer", "") == upstream(k, 2) && p.value("status", "") == "up") out.insert(k);
    return out;
  }

  // Milliseconds until the router's next hops for the VIP are `want` (throws after `limit`).
  double wait_nexthops(const std::set<int>& want, std::chrono::milliseconds limit = 30s) {
    const auto t0 = Clock::now();
    wait_for("router next hops", limit, [&] { return router_nexthops() == want; });
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  }

  // Live affinity entries per node, by client address.
  std::map<std::string, uint32_t> affinity(const Node& n) {
    std::map<std::string, uint32_t> out;
    Datapath dp({.pin_dir = n.pins});
    Datapath::AffinityCursor cursor;
    while (dp.scan_affinity(cursor, 256,
                            [&](const ikelb_affinity_key& key, const ikelb_affinity_value& v) {
                              out[IpAddress{key.family, key.client}.str()] = v.backend_id;
                            })) {
    }
    return out;
  }

  // The gateway (1 or 2) Maglev picks for `address`, computed here from the config.
  static int predicted(const std::string& address) {
    std::vector<MaglevBackend> list = {{"gw1", 1, 100}, {"gw2", 2, 100}};
    const auto table = build_maglev_table(list, kTableSize);
    return static_cast<int>(table[client_hash(IpAddress::must_parse(address)) % kTableSize]);
  }

  struct Stream {
    int sent = 0, replied = 0;
  };

  // Every client sends `rounds` datagrams to the VIP, one round every `interval_ms`; returns
  // what each client saw. Started in the background when `background` (collect with finish()).
  Argv send_argv(const std::string& prefix, int rounds, int interval_ms) {
    return in_ns("cli", {opt_.netns_tool, "send", "--vip", kVip, "--port", "500", "--first", "1",
                         "--count", std::to_string(kClients), "--payload-prefix", prefix,
                         "--rounds", std::to_string(rounds), "--interval-ms",
                         std::to_string(interval_ms), "--timeout-ms", "3000"});
  }

  std::map<std::string, Stream> parse_send(const std::string& output) {
    std::map<std::string, Stream> out;
    std::istringstream in(output);
    std::string line;
    while (std::getline(in, line)) {
      char addr[64];
      Stream s;
      int from_vip = 0;
      if (std::sscanf(line.c_str(), "%63s sent=%d replied=%d from_vip=%d", addr, &s.sent,
                      &s.replied, &from_vip) != 4 ||
          from_vip != s.replied)
        throw std::runtime_error("send: " + line);
      out[addr] = s;
    }
    return out;
  }

  // Gateways that saw datagrams of `prefix`, by client address.
  std::map<std::string, std::set<int>> gateways_seen(const std::string& prefix) {
    std::map<std::string, std::set<int>> out;
    for (int i : gateways_) {
      std::istringstream in(read_file(gw_log(i)));
      std::string src, port, payload;
      while (in >> src >> port >> payload)
        if (payload.starts_with(prefix + ":")) out[src].insert(i);
    }
    return out;
  }

  // Losses (datagrams without an answer) and clients that reached another gateway than Maglev
  // predicts, over a whole stream; both reported in the messages.
  void expect_no_loss_no_move(const std::map<std::string, Stream>& result, int rounds,
                              const std::string& prefix, const std::string& what) {
    int lost = 0, moved = 0;
    EXPECT_EQ(result.size(), static_cast<size_t>(kClients)) << what;
    for (const auto& [addr, s] : result) {
      EXPECT_EQ(s.sent, rounds) << what << " " << addr;
      lost += s.sent - s.replied;
    }
    for (const auto& [addr, gws] : gateways_seen(prefix))
      if (gws != std::set<int>{predicted(addr)}) moved++;
    std::printf("[ha] %s: %d clients x %d datagrams, %d lost, %d clients on another gateway\n",
                what.c_str(), kClients, rounds, lost, moved);
    EXPECT_EQ(lost, 0) << what;
    EXPECT_EQ(moved, 0) << what;
  }

  // Both agents started and announcing, the router using both nodes.
  void start_all() {
    for (auto& [k, n] : nodes_) {
      write_node_config(n);
      start_node_agent(n);
    }
    const double ms = wait_nexthops({1, 2});
    std::printf("[ha] both nodes announced and in the router's ECMP route after %.0f ms\n", ms);
    // BGP installs the route before BFD has come up (FRR starts BFD at slow 1 s timers), and
    // until it is up a hung node is only noticed by the 9 s hold timer: wait for both sessions.
    const auto t0 = Clock::now();
    wait_for("the router's BFD sessions to both nodes", 10s, [&] {
      return router_bfd_up() == std::set<int>{1, 2};
    });
    std::printf("[ha] both BFD sessions up %.0f ms later\n",
                std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }

  // ---- peer sync (sync section, docs/high-availability.md) ----

  double rejoin_lb2_empty();
  void enable_sync(bool snapshot_on_join = true) {
    sync_ = true;
    snapshot_on_join_ = snapshot_on_join;
    std::ofstream key(dir_ + "/sync.key", std::ios::binary);
    std::ifstream random("/dev/urandom", std::ios::binary);
    char bytes[32];
    random.read(bytes, sizeof bytes);
    key.write(bytes, sizeof bytes);
  }

  // One gateway per client address, from the gateways' logs for `prefix`; a client seen on two
  // gateways is reported as 0.
  std::map<std::string, int> gateway_of(const std::string& prefix) {
    std::map<std::string, int> out;
    for (const auto& [addr, gws] : gateways_seen(prefix))
      out[addr] = gws.size() == 1 ? *gws.begin() : 0;
    return out;
  }

  bool bird_up(const Node& n) {
    RunResult r = run({"birdc", "-s", n.bird_ctl, "show", "protocols", "vip_vpn"}, 2s);
    return r.output.find(" up ") != std::string::npos;
  }

  // Clients pinned on both nodes, then a gateway added on every node (the table changes for about
  // a third of the clients), then lb2 fails (both links down; the gateways return through lb1).
  // Returns how many clients reached another gateway after the failure than before it.
  int clients_moved_by_a_node_failure_after_a_gateway_was_added() {
    start_all();
    auto first = parse_send(must(send_argv("pin", 1, 0), 60s));
    if (first.size() != size_t(kClients)) throw std::runtime_error("not every client sent");
    if (sync_) {
      const auto t0 = Clock::now();
      wait_for("every client in both nodes' affinity tables", 10s, [&] {
        return affinity(nodes_[1]).size() == size_t(kClients) &&
               affinity(nodes_[2]).size() == size_t(kClients);
      });
      std::printf("[ha] sync: every client in both tables %.0f ms after the first datagrams\n",
                  std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    } else {
      std::this_thread::sleep_for(1s);
    }
    add_gw(3);
    for (auto& [k, n] : nodes_) {
      write_node_config(n);
      RunResult r = nctl(n, {"reload"});
      if (r.exit_code != 0)
        throw std::runtime_error("reload lb" + std::to_string(k) + ": " + r.output);
    }
    parse_send(must(send_argv("before", 2, 50), 60s));
    const auto before = gateway_of("before");

    for (const char* link : {"u0", "g"}) must({"ip", "-n", ns("lb2"), "link", "set", link, "down"});
    for (int i : gateways_)
      must({"ip", "-n", ns("gw" + std::to_string(i)), "route", "replace", "default", "via",
            "10.0.0.1"});
    const double ms = wait_nexthops({1}, 10s);
    std::printf("[ha] lb2 failed: out of the router's route after %.0f ms\n", ms);
    auto after_result = parse_send(must(send_argv("after", 2, 50), 60s));
    const auto after = gateway_of("after");
    int moved = 0, lost = 0, to_gw3 = 0;
    for (const auto& [addr, s] : after_result) lost += s.sent - s.replied;
    for (const auto& [addr, gw] : before) {
      auto it = after.find(addr);
      if (gw == 0 || it == after.end() || it->second != gw) {
        moved++;
        if (it != after.end() && it->second == 3) to_gw3++;
      }
    }
    std::printf(
        "[ha] sync %s: gateway gw3 added, then lb2 failed: %d of %zu clients changed "
        "gateway (%d to gw3), %d datagrams unanswered\n",
        sync_ ? "on" : "off", moved, before.size(), to_gw3, lost);
    EXPECT_EQ(before.size(), size_t(kClients));
    EXPECT_EQ(after.size(), size_t(kClients));
    EXPECT_EQ(lost, 0);
    return moved;
  }

  std::map<int, Node> nodes_;
  bool sync_ = false, snapshot_on_join_ = true;
};

// Both nodes announce once ready; the router spreads clients over both by ECMP; every client
// reaches the gateway the Maglev table predicts, whichever node it crossed, and both nodes show
// the same table fingerprint.
TEST_F(HaTest, EcmpSpreadsClientsAndEveryNodePicksThePredictedGateway) {
  start_all();
  for (auto& [k, n] : nodes_) {
    nlohmann::json a = announcement(n);
    EXPECT_EQ(a["announced"], true) << k;
    EXPECT_EQ(a["bird_state"], "up") << k;
    EXPECT_EQ(a["announces"], 1) << k;
    EXPECT_NE(birdc(n, "show protocols vip_vpn").find(" up "), std::string::npos);
    EXPECT_EQ(nctl(n, {"node", "ready"}).exit_code, 0);
  }
  EXPECT_EQ(router_bfd_up(), (std::set<int>{1, 2}));

  auto result = parse_send(must(send_argv("spread", 3, 20), 60s));
  expect_no_loss_no_move(result, 3, "spread", "ECMP over 2 nodes");
  std::map<int, int> per_node;
  std::set<std::string> seen;
  for (auto& [k, n] : nodes_) {
    auto entries = affinity(n);
    per_node[k] = static_cast<int>(entries.size());
    for (const auto& [addr, id] : entries) {
      EXPECT_TRUE(seen.insert(addr).second) << addr << " crossed both nodes";
      (void)id;
    }
  }
  std::printf("[ha] clients per node: lb1 %d, lb2 %d\n", per_node[1], per_node[2]);
  EXPECT_EQ(per_node[1] + per_node[2], kClients);
  EXPECT_GE(per_node[1], kClients / 5);
  EXPECT_GE(per_node[2], kClients / 5);

  std::set<std::string> fingerprints;
  for (auto& [k, n] : nodes_) {
    const nlohmann::json status = nctl_json(n, {"status"});
    for (const auto& v : status["virtual_servers"])
      fingerprints.insert(v["table_fingerprint"].get<std::string>());
  }
  EXPECT_EQ(fingerprints.size(), 1u);
}

// `ikelbctl node drain` withdraws the node from the router while it keeps forwarding what still
// arrives: a stream across the drain loses nothing and moves nobody; undrain brings it back.
// The drain survives an agent restart (persisted), and the node is "not ready" while drained.
TEST_F(HaTest, NodeDrainWithdrawsWithoutLossAndSurvivesARestart) {
  start_all();
  Node& n1 = nodes_[1];
  pid_t stream = start(send_argv("drain", 40, 50), dir_ + "/drain.out");
  std::this_thread::sleep_for(500ms);
  RunResult drain = nctl(n1, {"node", "drain"});
  ASSERT_EQ(drain.exit_code, 0) << drain.output;
  const double ms = wait_nexthops({2}, 10s);
  std::printf("[ha] drain: lb1 out of the router's route after %.0f ms\n", ms);
  RunResult out = finish_command(stream, dir_ + "/drain.out", 60s);
  forget(stream);
  expect_no_loss_no_move(parse_send(out.output), 40, "drain", "stream across node drain");

  nlohmann::json a = announcement(n1);
  EXPECT_EQ(a["announced"], false);
  EXPECT_EQ(a["cause"], "node drained by the operator");
  EXPECT_EQ(a["withdraws"], 1);
  EXPECT_TRUE(std::filesystem::exists(n1.drain_file));
  RunResult ready = nctl(n1, {"node", "ready"});
  EXPECT_EQ(ready.exit_code, 1);
  EXPECT_NE(ready.output.find("not ready: vpn: node drained by the operator"), std::string::npos)
      << ready.output;
  EXPECT_NE(read_file(n1.log).find("withdraw vpn (bird protocol vip_vpn): node drained by the "
                                   "operator"),
            std::string::npos);

  // A restart (an upgrade during maintenance) keeps the node drained.
  stop_process(n1.agent, 2000ms);
  forget(n1.agent);
  start_node_agent(n1);
  std::this_thread::sleep_for(1s);  // several announce rounds
  EXPECT_EQ(router_nexthops(), std::set<int>{2});
  EXPECT_EQ(announcement(n1)["announced"], false);

  ASSERT_EQ(nctl(n1, {"node", "undrain"}).exit_code, 0);
  wait_nexthops({1, 2}, 10s);
  EXPECT_FALSE(std::filesystem::exists(n1.drain_file));
  EXPECT_EQ(nctl(n1, {"node", "ready"}).exit_code, 0);
}

// kill -9 of ikelbd leaves bird's announcement (forwarding continues), loses nothing; the next
// agent adopts the pins and finds the protocol up: no withdraw, no re-announce.
TEST_F(HaTest, KillNineOfTheAgentNeitherWithdrawsNorLoses) {
  start_all();
  Node& n2 = nodes_[2];
  pid_t stream = start(send_argv("kill", 40, 50), dir_ + "/kill.out");
  std::this_thread::sleep_for(500ms);
  ASSERT_EQ(kill(n2.agent, SIGKILL), 0);
  ASSERT_TRUE(wait_exit(n2.agent, 2000ms));
  forget(n2.agent);
  n2.agent = -1;
  // Watch the router for the whole stream: lb2 must stay in the route.
  bool always_both = true;
  for (;;) {
    if (auto done = wait_exit(stream, 0ms)) break;
    if (router_nexthops() != std::set<int>{1, 2}) always_both = false;
    std::this_thread::sleep_for(20ms);
  }
  forget(stream);
  EXPECT_TRUE(always_both) << "the router lost lb2 after kill -9 of its agent";
  std::string out = read_file(dir_ + "/kill.out");
  expect_no_loss_no_move(parse_send(out), 40, "kill", "stream across kill -9 of lb2's ikelbd");
  EXPECT_NE(birdc(n2, "show protocols vip_vpn").find(" up "), std::string::npos);

  start_node_agent(n2);
  std::this_thread::sleep_for(1s);
  nlohmann::json a = announcement(n2);
  EXPECT_EQ(a["announced"], true);
  EXPECT_EQ(a["announces"], 0);
  EXPECT_EQ(a["withdraws"], 0);
  // The counters above say the new agent never withdrew. The router is given a few seconds:
  // while ikelbd starts (the verifier takes a core for a while) BFD at 100 ms x 3 has been seen
  // to drop lb2 for a moment on a loaded 2-CPU machine, which is not the agent's doing.
  EXPECT_NO_THROW(wait_nexthops({1, 2}, 5s));
  EXPECT_NE(birdc(n2, "show protocols vip_vpn").find(" up "), std::string::npos);
}

// Too few backends withdraws with the cause; bird down is a counted error and ikelbd keeps
// running; a restarted bird (protocol disabled by its config) is announced again; teardown
// withdraws before detaching.
TEST_F(HaTest, BackendsBirdOutageAndTeardown) {
  start_all();
  Node& n1 = nodes_[1];
  write_node_config(n1, 2);
  ASSERT_EQ(nctl(n1, {"reload"}).exit_code, 0);
  ASSERT_EQ(nctl(n1, {"disable", "gw2"}).exit_code, 0);
  wait_nexthops({2}, 10s);
  EXPECT_EQ(announcement(n1)["cause"], "1 backends in the table (at least 2 needed)");
  ASSERT_EQ(nctl(n1, {"enable", "gw2"}).exit_code, 0);
  wait_nexthops({1, 2}, 10s);

  stop_bird(n1);
  wait_for("an error from bird", 5s, [&] { return announcement(n1)["last_error"] != ""; });
  nlohmann::json a = announcement(n1);
  EXPECT_GE(a["errors"].get<int>(), 1);
  EXPECT_EQ(a["announced"], nullptr);
  EXPECT_NE(a["last_error"].get<std::string>().find("bird control socket"), std::string::npos)
      << a.dump();
  std::printf("[ha] bird stopped: %s\n", a["last_error"].get<std::string>().c_str());
  EXPECT_FALSE(wait_exit(n1.agent, 0ms)) << "ikelbd stopped when bird went away";
  wait_nexthops({2}, 15s);  // bird gone: BFD/BGP down on the router

  start_bird(n1);
  wait_nexthops({1, 2}, 20s);
  EXPECT_EQ(announcement(n1)["announced"], true);
  EXPECT_EQ(announcement(n1)["last_error"], "");

  Node& n2 = nodes_[2];
  ASSERT_EQ(nctl(n2, {"teardown"}).exit_code, 0);
  ASSERT_TRUE(wait_exit(n2.agent, 5000ms));
  forget(n2.agent);
  n2.agent = -1;
  EXPECT_NE(birdc(n2, "show protocols vip_vpn").find(" down "), std::string::npos);
  wait_nexthops({1}, 10s);
  EXPECT_NE(read_file(n2.log).find("withdraw vpn (bird protocol vip_vpn): teardown"),
            std::string::npos);
}

// A node that hangs with its link up (it sends nothing any more): only BFD can notice. The time
// until the router stops using it, with bird's and FRR's BFD at 100 ms x 3.
TEST_F(HaTest, BfdDetectsAHungNodeInWellUnderASecond) {
  start_all();
  const std::string rules = dir_ + "/hang.nft";
  std::ofstream(rules) << "table inet hang {\n"
                          "  chain out { type filter hook output priority 0; policy drop; }\n"
                          "  chain in { type filter hook input priority 0; policy drop; }\n"
                          "}\n";
  must(in_ns("lb2", {"nft", "-f", rules}));
  const double ms = wait_nexthops({1}, 10s);
  std::printf("[ha] hung node (link up, nothing sent): out of the router's route after %.0f ms\n",
              ms);
  EXPECT_LT(ms, 1000);
  // And a link that goes down: the router's own link state.
  must({"ip", "-n", ns("lb1"), "link", "set", "u0", "down"});
  const double down_ms = wait_nexthops({}, 10s);
  std::printf("[ha] link down: out of the router's route after %.0f ms\n", down_ms);
  EXPECT_LT(down_ms, 1000);
}

// Issue 14, 4.5: a gateway added on all nodes, then an ikelb node fails. With the peer sync, the
// surviving node knows every client the failed one had pinned: nobody changes gateway.
TEST_F(HaTest, SyncKeepsEveryClientOnItsGatewayWhenANodeFailsAfterAGatewayWasAdded) {
  enable_sync();
  const int moved = clients_moved_by_a_node_failure_after_a_gateway_was_added();
  EXPECT_EQ(moved, 0);
  const nlohmann::json st = nctl_json(nodes_[1], {"status"})["sync"];
  std::printf("[ha] lb1 sync: %s\n", st.dump().c_str());
  EXPECT_GT(st["merged"].get<int>(), 0);
  EXPECT_EQ(st["refused"].size(), 0u) << st.dump();
}

// The negative control: without the sync, the surviving node places the failed node's clients by
// the new table, and those the new gateway takes change gateway (the reason sync exists).
TEST_F(HaTest, WithoutSyncSomeClientsChangeGatewayWhenANodeFailsAfterAGatewayWasAdded) {
  const int moved = clients_moved_by_a_node_failure_after_a_gateway_was_added();
  EXPECT_GT(moved, 0);
}

// Issue 14, 4.6: every client pinned on both nodes, then lb2 torn down (withdrawn, its pins
// gone) and started again with an empty affinity table; returns once bird reports lb2's VIP up.
// Time from the agent's start to the announcement, in ms.
double HaTest::rejoin_lb2_empty() {
  parse_send(must(send_argv("pin", 1, 0), 60s));
  Node& n2 = nodes_[2];
  wait_for("every client in lb2's table", 10s,
           [&] { return affinity(n2).size() == size_t(kClients); });
  if (nctl(n2, {"teardown"}).exit_code != 0) throw std::runtime_error("lb2: teardown failed");
  if (!wait_exit(n2.agent, 5000ms)) throw std::runtime_error("lb2: the agent did not exit");
  forget(n2.agent);
  n2.agent = -1;
  wait_nexthops({1}, 10s);
  if (bird_up(n2)) throw std::runtime_error("lb2: still announced after its teardown");
  const auto t0 = Clock::now();
  start_node_agent(n2);
  wait_for("lb2's announcement", 10s, [&] { return bird_up(n2); });
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Issue 14, 4.6: a node that rejoins with an empty affinity table (teardown, then a fresh agent)
// asks its peer for a snapshot and announces only once the snapshot has ended: every client is in
// its table when bird first reports the VIP's protocol up.
TEST_F(HaTest, ARejoiningNodeReceivesTheSnapshotBeforeItAnnounces) {
  enable_sync();
  start_all();
  const double up_ms = rejoin_lb2_empty();
  Node& n2 = nodes_[2];
  const size_t entries = affinity(n2).size();
  const nlohmann::json st = nctl_json(n2, {"status"})["sync"];
  std::printf(
      "[ha] rejoin: bird up %.0f ms after the agent started; %zu of %d clients in lb2's "
      "table then; snapshot %s after %s ms with %s records\n",
      up_ms, entries, kClients, st["snapshot"].get<std::string>().c_str(),
      st["snapshot_ms"].dump().c_str(), st["snapshot_records"].dump().c_str());
  EXPECT_EQ(entries, size_t(kClients));
  EXPECT_EQ(st["snapshot"], "received");
  const std::string log = read_file(n2.log);
  const size_t snap = log.find("sync: snapshot received"), ann = log.find("announce vpn (bird");
  ASSERT_NE(snap, std::string::npos) << tail(log, 2000);
  ASSERT_NE(ann, std::string::npos) << tail(log, 2000);
  EXPECT_LT(snap, ann) << "announced before the snapshot ended";
  wait_nexthops({1, 2}, 10s);
}

// The negative control: without snapshot_on_join the rejoining node announces with an empty
// table (nothing refreshes the idle clients' entries).
TEST_F(HaTest, WithoutSnapshotOnJoinARejoiningNodeAnnouncesWithAnEmptyTable) {
  enable_sync(false);
  start_all();
  rejoin_lb2_empty();
  Node& n2 = nodes_[2];
  const size_t entries = affinity(n2).size();
  std::printf("[ha] rejoin without snapshot: %zu of %d clients in lb2's table when it announced\n",
              entries, kClients);
  EXPECT_EQ(entries, 0u);
}

}  // namespace
}  // namespace ikelb::test
