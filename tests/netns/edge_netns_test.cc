// The edge protections of the data path (issue 12) on real veth links with native XDP, and where
// it matters real strongSwan (tests/netns/strongswan.sh):
//
//   PREFIX-gw<i>  e0 10.0.<i>.2/24 ── g<i> 10.0.<i>.1/24 PREFIX-lb (ikelbd, XDP on g<i> and on
//                                                         the client-side port)
//   reverse path: PREFIX-lb c0 198.51.100.1/24 ── c1 198.51.100.2/24 PREFIX-cli (clients
//                 100.64.0.N/32) ── v0 100.64.200.1/24 ── e0 100.64.200.2/24 PREFIX-vic
//   PMTU, flood:  PREFIX-lb up0 192.0.2.2/24 ── l0 192.0.2.1/24 PREFIX-inet (a router; the VIP
//                 203.0.113.10 routed to lb) ── p<n> 100.64.<n>.1/24 ── e0 100.64.<n>.2/24
//                 PREFIX-c<n>
//
// 1. Reverse path: a neighbour on the client side sends frames with a gateway's address as source
//    (UDP 500, UDP 4500, ESP) to a victim behind the client side. With the check (the default)
//    ikelb drops every one and counts it, and nothing from the VIP reaches the victim, while the
//    clients' real exchanges keep their replies from the VIP; with "off" (the negative control) the
//    victim receives every spoofed packet from the VIP.
// 2. PMTU: the router's link to the client has MTU 1300. Its "fragmentation needed" errors about
//    the gateway's DF datagrams (sent from the VIP) reach the gateway through ikelb, which learns
//    the path MTU; a strongSwan tunnel carries large pings across the small link. With the
//    router's errors dropped (control), the same pings are black-holed. IPv6: the router's Packet
//    Too Big reaches the gateway's socket, which learns the path MTU (no strongSwan).
// 3. Flood: one source floods IKE_SA_INIT while 20 strongSwan clients connect: the per-source
//    limit admits the flood at its rate, every client connects, the gateways' half-open IKE_SAs
//    stay within what the limit allows, and the drops are counted. Without a limit (control) the
//    same gateways pile up half-open SAs.
//
// Everything a test creates is removed in TearDown (IKELB_EDGE_KEEP=1 keeps the work directory of
// a failed test). ctest runs these one at a time and not beside the e2e tests (RESOURCE_LOCK
// ikelb_e2e): they run many charons and count packets.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "datapath.h"
#include "ikelb_abi.h"
#include "netns_fixture.h"
#include "process.h"

namespace ikelb::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kVip = "203.0.113.10";
constexpr const char* kPsk = "ikelb-edge-psk-0123456789";
constexpr const char* kInside = "10.200.0.1";  // behind every gateway, inside the tunnels
constexpr const char* kVictim = "100.64.200.2";
constexpr uint32_t kVsId = 0;  // the only virtual server
constexpr std::chrono::milliseconds kStopGrace = 1s;

// "key=value" of a tool's output line.
long field(const std::string& output, const std::string& key) {
  const std::regex re("(^|\\s)" + key + "=(-?\\d+)");
  std::smatch m;
  if (!std::regex_search(output, m, re)) throw std::runtime_error("no " + key + "= in: " + output);
  return std::stol(m[2]);
}

class EdgeTest : public NetnsFixture {
 protected:
  EdgeTest()
      : NetnsFixture({.ikelbd = IKELBD_PATH,
                      .ikelbctl = IKELBCTL_PATH,
                      .netns_tool = IKELB_NETNS_TOOL_PATH,
                      .strongswan_sh = IKELB_STRONGSWAN_SH,
                      .work_dir_template = "/tmp/ikelb-edge-XXXXXX",
                      .prefix = "ig",
                      .mac_tag = 0x1f,
                      .run_timeout = 20s,
                      .stop_grace = kStopGrace,
                      .log_tail = 3000,
                      .keep_env = "IKELB_EDGE_KEEP"}) {}

  // The pings, floods and clients first, then the agent (TearDown).
  void before_agent_teardown() override { stop_children_except_agent(); }

  void dump_logs() override {
    NetnsFixture::dump_logs();
    for (const auto& [dir, name] : charons_)
      if (name.starts_with("gw"))
        std::fprintf(stderr, "---- %s charon.log ----\n%s\n", name.c_str(),
                     tail(read_file(dir + "/charon.log"), 2000).c_str());
  }

  static std::string client_address(int n) { return "100.64." + std::to_string(n) + ".2"; }
  static std::string client_name(int n) { return "c" + std::to_string(n); }

  // Namespace c<n>: e0 100.64.<n>.2/24 -- p<n> 100.64.<n>.1/24 of inet, both with `mtu`.
  void add_client_host(int n, int mtu = 1500) {
    const std::string c = client_name(n), p = "p" + std::to_string(n);
    add_host(c);
    add_link("inet", p, c, "e0");
    must({"ip", "-n", ns("inet"), "link", "set", p, "mtu", std::to_string(mtu)});
    must({"ip", "-n", ns(c), "link", "set", "e0", "mtu", std::to_string(mtu)});
    must(
        {"ip", "-n", ns("inet"), "addr", "add", "100.64." + std::to_string(n) + ".1/24", "dev", p});
    must({"ip", "-n", ns(c), "addr", "add", client_address(n) + "/24", "dev", "e0"});
    must({"ip", "-n", ns(c), "route", "add", "default", "via",
          "100.64." + std::to_string(n) + ".1"});
    // A partial UDP checksum does not survive an XDP redirect.
    must(in_ns(c, {"ethtool", "-K", "e0", "tx", "off"}));
  }

  std::string client_dir(int n) const { return dir_ + "/" + client_name(n); }

  // Starts the charon of client n (connection to the VIP, not initiated yet).
  Argv client_start_argv(int n) {
    charons_[client_dir(n)] = client_name(n);
    return sw({"sw_client_start", ns(client_name(n)), client_dir(n), client_address(n), kVip,
               "--psk", kPsk});
  }
  // Client n initiates and waits (<= 30 s) for its IKE and CHILD SAs.
  Argv client_up_argv(int n) {
    return sw({"sw_client_up", ns(client_name(n)), client_dir(n), "30"});
  }

  // ---- the agent ----

  nlohmann::json base_config(const Argv& interfaces) {
    nlohmann::json list = nlohmann::json::array();
    for (int i : gateways_)
      list.push_back({{"name", "gw" + std::to_string(i)}, {"address", gateway_address(i)}});
    return {{"interfaces", interfaces},
            {"bpffs", bpffs_ + "/ikelb"},
            {"admin", {{"socket", socket_}}},
            {"metrics", {{"listen", nullptr}}},
            {"affinity", {{"idle_timeout_s", 600}, {"max_entries", 65536}}},
            {"log_level", "info"},
            {"virtual_servers",
             {{{"name", "vpn"},
               {"address", kVip},
               {"health_check", {{"mode", "none"}}},
               {"backends", list}}}}};
  }

  // The data path's counters, read from the agent's pins.
  struct Counters {
    std::array<uint64_t, IKELB_OUTCOME_MAX> outcomes{};
    std::array<uint64_t, IKELB_EVENT_MAX> events{};
    ikelb_vs_edge_stats edge{};
  };
  Counters counters() {
    Datapath dp({.pin_dir = bpffs_ + "/ikelb"});
    return {dp.outcomes(), dp.events(), dp.vs_edge_stats(kVsId)};
  }

  // Field `name` of `section` in /proc/net/snmp of namespace `where`.
  long snmp(const std::string& where, const std::string& section, const std::string& name) {
    const std::string text = must(in_ns(where, {"cat", "/proc/net/snmp"}));
    if (auto v = snmp_field(text, section, name)) return *v;
    throw std::runtime_error("no " + section + " " + name + " in /proc/net/snmp: " + text);
  }
};

// ---- 1. reverse path ----

class ReversePathTest : public EdgeTest {
 protected:
  static constexpr int kClients = 4, kSpoofed = 50, kSpoofedToVip = 20, kRounds = 20;

  // lb and cli (add_lb_and_clients), the victim vic behind cli, gateways gw1 and gw2 with the
  // UDP echo of ikelb_netns_tool, and ikelbd with edge.reverse_path_check = `mode`.
  void build(const std::string& mode) {
    add_lb_and_clients(kClients);
    for (const char* key : {"ip_forward", "conf/all/rp_filter", "conf/default/rp_filter"})
      write_proc("cli", std::string("/proc/sys/net/ipv4/") + key,
                 std::string(key) == "ip_forward" ? "1" : "0");
    add_host("vic");
    add_link("cli", "v0", "vic", "e0");
    must({"ip", "-n", ns("cli"), "addr", "add", "100.64.200.1/24", "dev", "v0"});
    must({"ip", "-n", ns("vic"), "addr", "add", std::string(kVictim) + "/24", "dev", "e0"});
    must({"ip", "-n", ns("vic"), "route", "add", "default", "via", "100.64.200.1"});
    // What reaches the victim, counted before anything else looks at it.
    const std::string rules = dir_ + "/vic.nft";
    std::ofstream(rules) << "table ip edge {\n"
                            "  chain pre {\n"
                            "    type filter hook prerouting priority -300; policy accept;\n"
                            "    ip saddr "
                         << kVip
                         << " udp sport 500 counter comment \"vip500\"\n"
                            "    ip saddr "
                         << kVip
                         << " udp sport 4500 counter comment \"vip4500\"\n"
                            "    ip saddr "
                         << kVip
                         << " ip protocol esp counter comment \"vipesp\"\n"
                            "    ip saddr 10.0.0.0/16 counter comment \"gateway\"\n"
                            "  }\n"
                            "}\n";
    must(in_ns("vic", {"nft", "-f", rules}));
    for (int i : {1, 2}) {
      add_host("gw" + std::to_string(i));
      link_gateway(i, i);
      gateways_.push_back(i);
      start_serve(i, gateway_log(i));
    }
    nlohmann::json config = base_config({"c0", "g1", "g2"});
    config["edge"] = {{"reverse_path_check", mode}};
    write_config_json(config);
    start_agent();
  }

  std::string gateway_log(int i) const { return dir_ + "/gw" + std::to_string(i) + ".log"; }

  // The victim's nft counters by comment.
  std::map<std::string, long> victim_counts() {
    auto doc =
        nlohmann::json::parse(must(in_ns("vic", {"nft", "-j", "list", "table", "ip", "edge"})));
    std::map<std::string, long> out;
    for (const auto& item : doc["nftables"]) {
      if (!item.contains("rule") || !item["rule"].contains("comment")) continue;
      for (const auto& e : item["rule"]["expr"])
        if (e.contains("counter"))
          out[item["rule"]["comment"].get<std::string>()] = e["counter"]["packets"].get<long>();
    }
    return out;
  }

  // From cli's port to lb's: frames with `src` as source (never cli's) to `dst`.
  Argv spoof(const std::string& src, const std::string& dst, const Argv& l4, int count) {
    Argv argv = {IKELB_EDGE_TOOL_PATH,
                 "frames",
                 "--ifname",
                 "c1",
                 "--src-mac",
                 mac(0, 2),
                 "--dst-mac",
                 mac(0, 1),
                 "--src",
                 src,
                 "--dst",
                 dst,
                 "--count",
                 std::to_string(count),
                 "--interval-us",
                 "10000"};
    argv.insert(argv.end(), l4.begin(), l4.end());
    return in_ns("cli", argv);
  }

  Argv real_traffic(int port) {
    return in_ns("cli", {IKELB_NETNS_TOOL_PATH, "send", "--vip", kVip, "--port",
                         std::to_string(port), "--first", "1", "--count", std::to_string(kClients),
                         "--payload-prefix", "real" + std::to_string(port), "--rounds",
                         std::to_string(kRounds), "--interval-ms", "50", "--timeout-ms", "3000"});
  }

  // Spoofed replies (UDP 500 and 4500 from gw1, ESP from gw2) to the victim and spoofed client
  // packets to the VIP, while the clients exchange datagrams with the gateways through the VIP.
  // Returns the victim's counters; checks what must hold in every mode.
  std::map<std::string, long> attack() {
    const std::vector<Argv> commands = {
        real_traffic(500),
        real_traffic(4500),
        spoof(gateway_address(1), kVictim, {"--udp", "500:500"}, kSpoofed),
        spoof(gateway_address(1), kVictim, {"--udp", "4500:4500"}, kSpoofed),
        spoof(gateway_address(2), kVictim, {"--esp", "0x1e2b3c4d"}, kSpoofed),
        spoof(gateway_address(1), kVip, {"--udp", "500:500"}, kSpoofedToVip),
    };
    auto results = run_all(commands, 60s);
    for (size_t k = 0; k < results.size(); k++)
      if (results[k].exit_code != 0)
        throw std::runtime_error(join(commands[k]) + ": " + results[k].output);
    for (size_t k = 2; k < results.size(); k++)
      EXPECT_EQ(field(results[k].output, "sent"), k == 5 ? kSpoofedToVip : kSpoofed)
          << join(commands[k]);
    // The real exchanges: every datagram answered, from the VIP.
    for (size_t k = 0; k < 2; k++) {
      std::istringstream in(results[k].output);
      std::string line;
      int clients = 0;
      while (std::getline(in, line)) {
        clients++;
        EXPECT_EQ(field(line, "sent"), kRounds) << line;
        EXPECT_EQ(field(line, "replied"), kRounds) << line;
        EXPECT_EQ(field(line, "from_vip"), kRounds) << line;
      }
      EXPECT_EQ(clients, kClients) << results[k].output;
    }
    // The spoofed client packets never reached a gateway (the echo logs the source).
    for (int i : {1, 2}) {
      const std::string log = read_file(gateway_log(i));
      EXPECT_FALSE(log.starts_with("10.0.") || log.find("\n10.0.") != std::string::npos)
          << "gw" << i << " got a datagram from a gateway address:\n"
          << tail(log, 500);
    }
    std::this_thread::sleep_for(200ms);  // the last frames through cli's forwarding
    return victim_counts();
  }

  void check(const std::string& mode, long from_vip, uint64_t reverse_path_drops);
};

// Prints and checks what reached the victim and what ikelb counted: `from_vip` of each kind
// spoofed at the victim, from the VIP, and `reverse_path_drops`.
void ReversePathTest::check(const std::string& mode, long from_vip, uint64_t reverse_path_drops) {
  auto victim = attack();
  const Counters c = counters();
  std::printf(
      "[ edge     ] %s: %d spoofed replies per kind sent; at the victim from the VIP: udp500=%ld "
      "udp4500=%ld esp=%ld, from a gateway address: %ld; drop_reply_reverse_path=%lu "
      "drop_client_spoofed=%lu\n",
      mode.c_str(), kSpoofed, victim["vip500"], victim["vip4500"], victim["vipesp"],
      victim["gateway"], static_cast<unsigned long>(c.outcomes[IKELB_OUT_DROP_REVERSE_PATH]),
      static_cast<unsigned long>(c.outcomes[IKELB_OUT_DROP_SPOOFED_CLIENT]));
  EXPECT_EQ(victim["vip500"], from_vip);
  EXPECT_EQ(victim["vip4500"], from_vip);
  EXPECT_EQ(victim["vipesp"], from_vip);
  EXPECT_EQ(victim["gateway"], 0);
  EXPECT_EQ(c.outcomes[IKELB_OUT_DROP_REVERSE_PATH], reverse_path_drops);
  // Client packets from a gateway address are dropped whatever the mode.
  EXPECT_EQ(c.outcomes[IKELB_OUT_DROP_SPOOFED_CLIENT], static_cast<uint64_t>(kSpoofedToVip));
}

TEST_F(ReversePathTest, StrictCheckDropsSpoofedRepliesAndRealRepliesFlow) {
  build("strict");
  check("strict", 0, 3u * kSpoofed);
}

// Negative control: the same attack with the check off reaches the victim from the VIP.
TEST_F(ReversePathTest, CheckOffLetsSpoofedRepliesLeaveFromTheVip) {
  build("off");
  check("off", kSpoofed, 0);
}

// ---- 2. path MTU ----

class PmtuTest : public EdgeTest {
 protected:
  static constexpr int kSmallMtu = 1300;

  // lb, inet, client c1 behind a link of MTU 1300, gateway gw1 (charon), ikelbd; c1's tunnel up.
  void build() {
    add_lb_behind_router(kVip);
    add_client_host(1, kSmallMtu);
    add_charon_gateways({1}, kPsk);
    write_config_json(base_config({"up0", "g1"}));
    start_agent();
    must(client_start_argv(1), 30s);
    RunResult up = run(client_up_argv(1), 60s);
    ASSERT_EQ(up.exit_code, 0) << up.output;
  }

  std::string route_to_client() {
    return must(in_ns("gw1", {"ip", "route", "get", client_address(1)}));
  }

  // `count` pings of `size` bytes from c1 through its tunnel (the inner packets may fragment).
  std::pair<int, int> tunnel_ping(int count, int size) {
    RunResult r = run(in_ns("c1", {"ping", "-c", std::to_string(count), "-i", "0.3", "-W", "2",
                                   "-s", std::to_string(size), "-M", "dont", "-q", kInside}),
                      60s);
    auto counts = ping_counts(r.output);
    if (!counts) throw std::runtime_error("ping: " + r.output);
    return *counts;
  }

  // Drops the router's ICMP errors toward lb (they never reach ikelb); counts them.
  void block_router_errors() {
    const std::string rules = dir_ + "/inet.nft";
    std::ofstream(rules) << "table ip block {\n"
                            "  chain out {\n"
                            "    type filter hook output priority 0; policy accept;\n"
                            "    icmp type destination-unreachable counter drop\n"
                            "  }\n"
                            "}\n";
    must(in_ns("inet", {"nft", "-f", rules}));
  }
  long blocked_errors() {
    const std::string out = must(in_ns("inet", {"nft", "list", "table", "ip", "block"}));
    static const std::regex packets(R"(counter packets (\d+))");
    std::smatch m;
    if (!std::regex_search(out, m, packets)) throw std::runtime_error("nft: " + out);
    return std::stol(m[1]);
  }
};

TEST_F(PmtuTest, RouterErrorsReachTheGatewayWhichLearnsThePathMtu) {
  build();
  ASSERT_FALSE(HasFatalFailure());
  const std::string large = std::to_string(kSmallMtu + 100);
  // The tunnel works with small packets; nothing is known about the path yet.
  auto small = tunnel_ping(3, 100);
  EXPECT_EQ(small.second, 3) << "small pings through the tunnel";
  EXPECT_EQ(route_to_client().find(" mtu "), std::string::npos) << route_to_client();

  // Control: with the router's errors dropped, the gateway's large ESP-in-UDP datagrams (DF) are
  // black-holed at the small link and the gateway learns nothing.
  block_router_errors();
  auto blackholed = tunnel_ping(3, 1400);
  const std::string route_blocked = route_to_client();
  const long blocked = blocked_errors();
  const Counters c0 = counters();
  std::printf(
      "[ edge     ] router errors dropped: large pings %d/%d answered, %ld errors dropped, "
      "icmp_to_backend=%lu, gateway route: %s",
      blackholed.second, blackholed.first, blocked,
      static_cast<unsigned long>(c0.events[IKELB_EV_ICMP_TO_BACKEND]), route_blocked.c_str());
  EXPECT_EQ(blackholed.second, 0) << "large pings passed without path MTU discovery";
  EXPECT_GT(blocked, 0) << "the router sent no error";
  EXPECT_EQ(c0.events[IKELB_EV_ICMP_TO_BACKEND], 0u);
  EXPECT_EQ(route_blocked.find(" mtu "), std::string::npos) << route_blocked;

  // The router's errors flow: the first large reply is lost, the gateway learns the MTU, the rest
  // pass (fragmented by the gateway to fit).
  must(in_ns("inet", {"nft", "delete", "table", "ip", "block"}));
  const long gw_unreach0 = snmp("gw1", "Icmp:", "InDestUnreachs");
  auto learning = tunnel_ping(6, 1400);
  auto learned = tunnel_ping(5, 1400);
  const std::string route = route_to_client();
  const Counters c1 = counters();
  const long gw_unreach = snmp("gw1", "Icmp:", "InDestUnreachs") - gw_unreach0;
  std::printf(
      "[ edge     ] router errors flow: large pings %d/%d then %d/%d answered, "
      "icmp_to_backend=%lu, "
      "gateway received %ld unreachables, route: %s",
      learning.second, learning.first, learned.second, learned.first,
      static_cast<unsigned long>(c1.events[IKELB_EV_ICMP_TO_BACKEND]), gw_unreach, route.c_str());
  EXPECT_GE(learning.second, learning.first - 2);
  EXPECT_EQ(learned.second, learned.first);
  EXPECT_GT(c1.events[IKELB_EV_ICMP_TO_BACKEND], 0u);
  EXPECT_EQ(static_cast<long>(c1.events[IKELB_EV_ICMP_TO_BACKEND]), gw_unreach);
  EXPECT_NE(route.find(" mtu " + std::to_string(kSmallMtu)), std::string::npos) << route;

  // Explicitly: forget the path, then a DF datagram from the gateway's IKE port to the client
  // (ikelb sends it from the VIP). The error comes back, the gateway's kernel knows the MTU again,
  // and a socket that forbids fragmentation is told EMSGSIZE.
  must(in_ns("gw1", {"ip", "route", "flush", "cache"}));
  EXPECT_EQ(route_to_client().find(" mtu "), std::string::npos) << route_to_client();
  must(in_ns("gw1", {IKELB_EDGE_TOOL_PATH, "frames", "--ifname", "e0", "--src-mac", mac(11, 2),
                     "--dst-mac", mac(11, 1), "--src", gateway_address(1), "--dst",
                     client_address(1), "--udp", "4500:4500", "--size", large, "--df", "1"}));
  std::string after;
  for (auto deadline = Clock::now() + 5s; Clock::now() < deadline;
       std::this_thread::sleep_for(50ms))
    if ((after = route_to_client()).find(" mtu ") != std::string::npos) break;
  const Counters c2 = counters();
  const std::string too_big =
      must(in_ns("gw1", {IKELB_EDGE_TOOL_PATH, "df-send", "--dst", client_address(1), "--port",
                         "4500", "--size", large}));
  const std::string fits =
      must(in_ns("gw1", {IKELB_EDGE_TOOL_PATH, "df-send", "--dst", client_address(1), "--port",
                         "4501", "--size", std::to_string(kSmallMtu)}));
  std::printf(
      "[ edge     ] one DF datagram of %s bytes: icmp_to_backend +%lu, route: %s"
      "           DF send of %s bytes: %s           DF send of %d bytes: %s",
      large.c_str(),
      static_cast<unsigned long>(c2.events[IKELB_EV_ICMP_TO_BACKEND] -
                                 c1.events[IKELB_EV_ICMP_TO_BACKEND]),
      after.c_str(), large.c_str(), too_big.c_str(), kSmallMtu, fits.c_str());
  EXPECT_EQ(c2.events[IKELB_EV_ICMP_TO_BACKEND], c1.events[IKELB_EV_ICMP_TO_BACKEND] + 1);
  EXPECT_NE(after.find(" mtu " + std::to_string(kSmallMtu)), std::string::npos) << after;
  EXPECT_EQ(too_big, "error=EMSGSIZE mtu=" + std::to_string(kSmallMtu) + "\n");
  EXPECT_EQ(fits, "ok\n");
}

// IPv6: the router's Packet Too Big about a datagram from a gateway's IKE port (sent from the VIP)
// reaches the gateway, which learns the path MTU. No strongSwan here: a socket on the gateway's
// port 4500 receives the error, as charon's would.
TEST_F(PmtuTest, Ipv6PacketTooBigReachesTheGateway) {
  const std::string vip6 = "2001:db8:10::10", gw6 = "fd00:10:1::2", client6 = "fd00:64:1::2";
  add_lb_behind_router(kVip);
  add_client_host(1, kSmallMtu);
  add_host("gw1");
  link_gateway(1, 11);
  gateways_.push_back(1);
  for (const char* where : {"lb", "inet"})
    must(in_ns(where, {"sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"}));
  auto addr6 = [&](const std::string& where, const std::string& a, const std::string& dev) {
    must({"ip", "-n", ns(where), "-6", "addr", "add", a, "dev", dev, "nodad"});
  };
  auto neigh6 = [&](const std::string& where, const std::string& a, const std::string& lladdr,
                    const std::string& dev) {
    must({"ip", "-n", ns(where), "-6", "neigh", "replace", a, "lladdr", lladdr, "nud", "permanent",
          "dev", dev});
  };
  addr6("inet", "fd00:2::1/64", "l0");
  addr6("lb", "fd00:2::2/64", "up0");
  addr6("inet", "fd00:64:1::1/64", "p1");
  addr6("c1", client6 + "/64", "e0");
  addr6("lb", "fd00:10:1::1/64", "g1");
  addr6("gw1", gw6 + "/64", "e0");
  neigh6("inet", "fd00:2::2", mac(1, 2), "l0");
  neigh6("lb", "fd00:2::1", mac(1, 1), "up0");
  neigh6("lb", gw6, mac(11, 2), "g1");
  neigh6("gw1", "fd00:10:1::1", mac(11, 1), "e0");
  must({"ip", "-n", ns("inet"), "-6", "route", "add", vip6 + "/128", "via", "fd00:2::2"});
  must({"ip", "-n", ns("lb"), "-6", "route", "add", "fd00:64::/32", "via", "fd00:2::1"});
  must({"ip", "-n", ns("gw1"), "-6", "route", "add", "default", "via", "fd00:10:1::1"});
  nlohmann::json config = base_config({"up0", "g1"});
  config["virtual_servers"][0]["address"] = vip6;
  config["virtual_servers"][0]["backends"][0]["address"] = gw6;
  write_config_json(config);
  start_agent();
  const std::string bound = dir_ + "/bind.out";
  start(in_ns("gw1", {IKELB_EDGE_TOOL_PATH, "bind", "--port", "4500"}), bound);
  for (auto deadline = Clock::now() + 5s; read_file(bound).find("bound") == std::string::npos;
       std::this_thread::sleep_for(20ms))
    ASSERT_LT(Clock::now(), deadline) << "bind: " << read_file(bound);

  auto route = [&] { return must(in_ns("gw1", {"ip", "-6", "route", "get", client6})); };
  const std::string before = route();
  EXPECT_EQ(before.find(" mtu "), std::string::npos) << before;
  const std::string large = std::to_string(kSmallMtu + 100);
  must(in_ns("gw1", {IKELB_EDGE_TOOL_PATH, "frames", "--ifname", "e0", "--src-mac", mac(11, 2),
                     "--dst-mac", mac(11, 1), "--src", gw6, "--dst", client6, "--udp", "4500:4500",
                     "--size", large}));
  std::string after;
  for (auto deadline = Clock::now() + 5s; Clock::now() < deadline;
       std::this_thread::sleep_for(50ms))
    if ((after = route()).find(" mtu ") != std::string::npos) break;
  const Counters c = counters();
  // "Icmp6OutPktTooBigs 1" lines of /proc/net/snmp6.
  auto snmp6 = [&](const std::string& where, const std::string& key) {
    std::istringstream in(must(in_ns(where, {"cat", "/proc/net/snmp6"})));
    std::string k;
    long v;
    while (in >> k >> v)
      if (k == key) return v;
    throw std::runtime_error("no " + key + " in /proc/net/snmp6 of " + where);
  };
  const long router_sent = snmp6("inet", "Icmp6OutPktTooBigs");
  const long gateway_got = snmp6("gw1", "Icmp6InPktTooBigs");
  const std::string too_big = must(in_ns("gw1", {IKELB_EDGE_TOOL_PATH, "df-send", "--dst", client6,
                                                 "--port", "4500", "--size", large}));
  std::printf(
      "[ edge     ] IPv6: one datagram of %s bytes: the router sent %ld Packet Too Big, "
      "icmp_to_backend=%lu, the gateway got %ld, route: %s"
      "           DF send of %s bytes: %s",
      large.c_str(), router_sent, static_cast<unsigned long>(c.events[IKELB_EV_ICMP_TO_BACKEND]),
      gateway_got, after.c_str(), large.c_str(), too_big.c_str());
  EXPECT_EQ(router_sent, 1);
  EXPECT_EQ(c.events[IKELB_EV_ICMP_TO_BACKEND], 1u);
  EXPECT_EQ(gateway_got, 1);
  EXPECT_NE(after.find(" mtu " + std::to_string(kSmallMtu)), std::string::npos) << after;
  EXPECT_EQ(too_big, "error=EMSGSIZE mtu=" + std::to_string(kSmallMtu) + "\n");
}

// ---- 3. IKE_SA_INIT flood ----

class FloodTest : public EdgeTest {
 protected:
  static constexpr int kClients = 20, kFlooder = 21;
  static constexpr int kSourceRate = 5, kSourceBurst = 10, kTotalRate = 100, kTotalBurst = 50;
  static constexpr int kFloodRate = 2000, kFloodMs = 6000;

  // lb, inet, clients c1..c20 and the flooder c21, gateways gw1 and gw2 whose charons keep any
  // number of half-open SAs (no cookies, no per-peer block: ikelb's limit is all there is).
  void build(bool limit, int clients) {
    add_lb_behind_router(kVip);
    for (int n = 1; n <= clients; n++) add_client_host(n);
    add_client_host(kFlooder);
    // Half-open SAs live 5 minutes, not 30 s: the count at the end is every one ever made.
    add_charon_gateways(
        {1, 2}, kPsk,
        {"--charon", "block_threshold=1000000", "--charon", "cookie_threshold=1000000", "--charon",
         "cookie_threshold_ip=1000000", "--charon", "half_open_timeout=300"});
    nlohmann::json config = base_config({"up0", "g1", "g2"});
    if (limit)
      config["virtual_servers"][0]["ike_sa_init_limit"] = {
          {"per_source", {{"rate", kSourceRate}, {"burst", kSourceBurst}}},
          {"total", {{"rate", kTotalRate}, {"burst", kTotalBurst}}}};
    write_config_json(config);
    start_agent();
  }

  // What the per-source limit admits of the flood: the burst, then the rate over the flood's time
  // (and a second for its packets to arrive); on several CPUs at once each may admit up to that,
  // since the buckets are updated without a lock (select.h, gcra_admit).
  static long one_cpu_flood() { return kSourceBurst + kSourceRate * (kFloodMs / 1000 + 1); }
  static long allowed_flood() { return one_cpu_flood() * sysconf(_SC_NPROCESSORS_ONLN); }

  pid_t start_flood(int rate, int ms) {
    return start(in_ns(client_name(kFlooder), {IKELB_EDGE_TOOL_PATH, "ike-flood", "--vip", kVip,
                                               "--rate", std::to_string(rate), "--duration-ms",
                                               std::to_string(ms), "--linger-ms", "1500"}),
                 flood_out());
  }
  std::string flood_out() const { return dir_ + "/flood.out"; }

  // Half-open IKE_SAs of gw1 + gw2 now, or nullopt if a charon did not answer within `timeout`
  // (busy starting clients on a loaded machine).
  std::optional<int> half_open(std::chrono::milliseconds timeout) {
    auto results = run_all({sw({"sw_half_open", ns("gw1"), gateway_dir(1)}),
                            sw({"sw_half_open", ns("gw2"), gateway_dir(2)})},
                           timeout);
    int sum = 0;
    for (const auto& r : results) {
      if (r.exit_code != 0) return std::nullopt;
      sum += std::stoi(r.output);
    }
    return sum;
  }

  // Waits for `pids` (<= `timeout`), sampling the gateways' half-open count meanwhile and once
  // more at the end (that one must answer).
  struct HalfOpen {
    int peak = 0, last = 0, samples = 0;
  };
  HalfOpen wait_sampling(const std::vector<pid_t>& pids, std::chrono::milliseconds timeout,
                         std::map<pid_t, int>& status) {
    HalfOpen h;
    const auto deadline = Clock::now() + timeout;
    while (status.size() < pids.size() && Clock::now() < deadline) {
      if (auto n = half_open(5s)) {
        h.peak = std::max(h.peak, *n);
        h.samples++;
      }
      for (pid_t pid : pids)
        if (!status.count(pid))
          if (auto st = wait_exit(pid, 0ms)) {
            status[pid] = *st;
            forget(pid);
          }
      std::this_thread::sleep_for(300ms);
    }
    auto last = half_open(30s);
    if (!last) throw std::runtime_error("swanctl --stats of the gateways did not answer in 30 s");
    h.last = *last;
    h.peak = std::max(h.peak, h.last);
    h.samples++;
    return h;
  }
};

TEST_F(FloodTest, OneSourceFloodsWhileTwentyClientsConnect) {
  build(true, kClients);
  std::vector<Argv> starts;
  for (int n = 1; n <= kClients; n++) starts.push_back(client_start_argv(n));
  for (auto& r : run_all(starts, 120s)) ASSERT_EQ(r.exit_code, 0) << r.output;
  const pid_t flood = start_flood(kFloodRate, kFloodMs);
  std::this_thread::sleep_for(1s);  // the flood is under way before the clients initiate
  std::vector<pid_t> pids = {flood};
  std::map<pid_t, int> client_pid;
  for (int n = 1; n <= kClients; n++) {
    pid_t pid = start(client_up_argv(n), client_dir(n) + ".connect.out");
    pids.push_back(pid);
    client_pid[pid] = n;
  }
  std::map<pid_t, int> status;
  const auto t0 = Clock::now();
  const HalfOpen h = wait_sampling(pids, 120s, status);
  const double took = std::chrono::duration<double>(Clock::now() - t0).count();
  for (pid_t pid : pids) ASSERT_TRUE(status.count(pid)) << "process " << pid << " still running";
  for (const auto& [pid, n] : client_pid)
    EXPECT_EQ(status[pid], 0) << client_name(n) << " did not connect: "
                              << tail(read_file(client_dir(n) + ".connect.out"), 2000);
  ASSERT_EQ(status[flood], 0) << read_file(flood_out());
  const std::string flood_result = read_file(flood_out());
  const long sent = field(flood_result, "sent"), answered = field(flood_result, "ike_response");
  const Counters c = counters();
  const long limited = static_cast<long>(c.edge.init_limited_source);
  const long flood_admitted = sent - limited - static_cast<long>(c.edge.init_limited_total);
  const long allowed = allowed_flood();
  std::printf(
      "[ edge     ] flood: %ld IKE_SA_INIT sent at %d/s, %ld admitted (the limit: %ld on one CPU, "
      "<= %ld on any number), %ld "
      "answered with a half-open SA; %d clients connected in %.1f s; gateways' half-open SAs: "
      "peak %d in %d samples (bound %ld), %d at the end (bound %ld); "
      "drop_ike_init_limit_source=%lu drop_ike_init_limit_total=%lu, "
      "vs_edge_stats "
      "admitted=%llu limited_source=%llu limited_total=%llu\n",
      sent, kFloodRate, flood_admitted, one_cpu_flood(), allowed, answered, kClients, took, h.peak,
      h.samples, allowed + kClients, h.last, allowed,
      static_cast<unsigned long>(c.outcomes[IKELB_OUT_DROP_INIT_LIMIT_SOURCE]),
      static_cast<unsigned long>(c.outcomes[IKELB_OUT_DROP_INIT_LIMIT_TOTAL]),
      static_cast<unsigned long long>(c.edge.init_admitted),
      static_cast<unsigned long long>(c.edge.init_limited_source),
      static_cast<unsigned long long>(c.edge.init_limited_total));
  EXPECT_GT(sent, kFloodRate * kFloodMs / 1000 * 9 / 10) << flood_result;
  EXPECT_GT(limited, 0);
  EXPECT_EQ(c.outcomes[IKELB_OUT_DROP_INIT_LIMIT_SOURCE], c.edge.init_limited_source);
  EXPECT_EQ(c.outcomes[IKELB_OUT_DROP_INIT_LIMIT_TOTAL], c.edge.init_limited_total);
  EXPECT_EQ(c.edge.init_limited_total, 0u) << "the clients stayed within the total limit";
  EXPECT_LE(flood_admitted, allowed);
  EXPECT_GE(flood_admitted, kSourceBurst);
  EXPECT_LE(answered, flood_admitted) << "answers to requests ikelb dropped";
  EXPECT_GE(answered, kSourceBurst) << "the gateway answered the admitted requests";
  // Every answered flood request and every client's request was admitted (a flood packet lost
  // before ikelb would make flood_admitted too high, not this).
  EXPECT_GE(static_cast<long>(c.edge.init_admitted), answered + kClients);
  EXPECT_LE(h.peak, allowed + kClients);
  // Every client is established; the flood's half-open SAs are all still there.
  EXPECT_LE(h.last, allowed);
  EXPECT_GE(h.last, answered);
}

// Control: the same gateways without ikelb's limit keep a half-open SA per flooded request.
TEST_F(FloodTest, WithoutALimitTheFloodPilesUpHalfOpenSas) {
  build(false, 0);
  constexpr int kRate = 500, kMs = 3000;
  const pid_t flood = start_flood(kRate, kMs);
  std::map<pid_t, int> status;
  const HalfOpen h = wait_sampling({flood}, 60s, status);
  ASSERT_EQ(status[flood], 0) << read_file(flood_out());
  const std::string flood_result = read_file(flood_out());
  const long sent = field(flood_result, "sent"), answered = field(flood_result, "ike_response");
  const long allowed = allowed_flood();
  std::printf(
      "[ edge     ] no limit: %ld IKE_SA_INIT sent at %d/s, %ld answered with a half-open SA; "
      "gateways' half-open peak %d in %d samples (the limited test's bound: %ld)\n",
      sent, kRate, answered, h.peak, h.samples, allowed + kClients);
  EXPECT_GT(h.peak, 4 * (allowed + kClients));
  EXPECT_EQ(counters().outcomes[IKELB_OUT_DROP_INIT_LIMIT_SOURCE], 0u);
}

}  // namespace
}  // namespace ikelb::test
