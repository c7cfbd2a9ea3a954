// ikelbd and ikelbctl end to end, in network namespaces with real veth links and native XDP.
//
//   PREFIX-cli  c1 198.51.100.2/24, clients 100.64.0.N/32  (ikelb_netns_tool send)
//        |
//   PREFIX-lb   c0 198.51.100.1/24 ... g<i> 10.0.<i>.1/24   ikelbd, VIP 203.0.113.10 (routed only)
//        |
//   PREFIX-gw<i> e0 10.0.<i>.2/24, default via 10.0.<i>.1  (ikelb_netns_tool serve)
//
// Neighbours are permanent entries (what health probes keep resolved in production), so the
// first packets of a burst never wait in the kernel's unresolved-neighbour queue. Every process,
// namespace and mount a test creates is removed in TearDown, also when the test failed.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "configmap.h"
#include "netns_fixture.h"
#include "process.h"

// In ikelb::test for the process helpers of support/process.h.
namespace ikelb::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kVip = "203.0.113.10";

class NetnsAgentTest : public NetnsFixture {
 protected:
  NetnsAgentTest()
      : NetnsFixture({.ikelbd = IKELBD_PATH,
                      .ikelbctl = IKELBCTL_PATH,
                      .netns_tool = IKELB_NETNS_TOOL_PATH,
                      .work_dir_template = "/tmp/ikelb-netns-XXXXXX",
                      .prefix = "ik"}) {}

  // ---- topology ----

  void SetUp() override {
    NetnsFixture::SetUp();
    if (HasFatalFailure()) return;
    add_lb_and_clients(kClientAddresses);
    for (int i = 1; i <= 3; i++) add_gateway(i);
  }

  // The teardown contract: ikelbctl teardown stops the agent with exit 0 and leaves nothing
  // pinned and no XDP program on lb's interfaces.
  void check_agent_teardown(const RunResult& r, int status) override {
    if (r.exit_code != 0) {
      // An agent the test killed may have been dying already: the fallback handles it.
      if (!WIFSIGNALED(status)) ADD_FAILURE() << "ikelbctl teardown: " << r.output;
      return;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      ADD_FAILURE() << "ikelbd exited with status " << status << " after teardown";
    if (std::filesystem::exists(bpffs_ + "/ikelb"))
      ADD_FAILURE() << "pins left under " << bpffs_ << "/ikelb after ikelbctl teardown";
    RunResult links = run({"ip", "-n", ns("lb"), "link", "show"});
    if (links.output.find("xdp") != std::string::npos)
      ADD_FAILURE() << "XDP still attached after ikelbctl teardown:\n" << links.output;
  }

  void dump_logs() override {
    NetnsFixture::dump_logs();
    for (int i : gateways_)
      std::fprintf(stderr, "---- gw%d serve output ----\n%s\n", i,
                   tail(read_file(serve_out(i)), 1000).c_str());
  }

  // Namespace gw<i> behind g<i>, with a fake gateway serving UDP 500/4500 and logging to
  // gw<i>.log. Returns once it listens.
  void add_gateway(int i) {
    add_namespace("gw" + std::to_string(i));
    link_gateway(i, i);
    gateways_.push_back(i);
    start_serve(i, gateway_log(i));
  }

  std::string gateway_log(int i) const { return dir_ + "/gw" + std::to_string(i) + ".log"; }

  static constexpr int kClientAddresses = 300;

  // ---- the agent ----

  void write_config(int backends, uint32_t idle_timeout_s, const std::string& vip = kVip) {
    nlohmann::json ifs = {"c0"}, list = nlohmann::json::array();
    for (int i = 1; i <= backends; i++) {
      ifs.push_back("g" + std::to_string(i));
      list.push_back(
          {{"name", "gw" + std::to_string(i)}, {"address", "10.0." + std::to_string(i) + ".2"}});
    }
    nlohmann::json config = {
        {"interfaces", ifs},
        {"bpffs", bpffs_ + "/ikelb"},
        {"admin", {{"socket", socket_}}},
        {"metrics", {{"listen", nullptr}}},
        {"affinity", {{"idle_timeout_s", idle_timeout_s}, {"max_entries", 65536}}},
        {"log_level", "info"},
        {"virtual_servers",
         {{{"name", "vpn"},
           {"address", vip},
           {"health_check", {{"mode", "none"}}},
           {"backends", list}}}}};
    write_config_json(config);
  }

  // ---- traffic ----

  struct Counts {
    int sent = 0, replied = 0, from_vip = 0;
  };
  using SendResult = std::map<std::string, Counts>;  // by client address

  Argv send_argv(int port, const std::string& clients_option, const std::string& clients,
                 const std::string& prefix, int rounds, int interval_ms) {
    Argv argv = {IKELB_NETNS_TOOL_PATH, "send", "--vip", kVip, "--port", std::to_string(port)};
    if (clients_option == "--first") {
      auto colon = clients.find(':');
      argv.insert(argv.end(),
                  {"--first", clients.substr(0, colon), "--count", clients.substr(colon + 1)});
    } else {
      argv.insert(argv.end(), {"--clients", clients});
    }
    argv.insert(argv.end(), {"--payload-prefix", prefix, "--rounds", std::to_string(rounds),
                             "--interval-ms", std::to_string(interval_ms), "--timeout-ms", "2000"});
    return in_ns("cli", argv);
  }

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

  // Clients first..first+count-1 send `rounds` datagrams each and wait for the replies.
  SendResult send(int port, int first, int count, const std::string& prefix, int rounds = 1,
                  int interval_ms = 0) {
    Argv argv = send_argv(port, "--first", std::to_string(first) + ":" + std::to_string(count),
                          prefix, rounds, interval_ms);
    RunResult r = run(argv, 30s);
    if (r.exit_code != 0) throw std::runtime_error("send failed: " + r.output);
    return parse_send(r.output);
  }

  SendResult send_list(int port, const std::vector<std::string>& addresses,
                       const std::string& prefix) {
    std::string list;
    for (const auto& a : addresses) {
      in_addr in{};
      if (inet_pton(AF_INET, a.c_str(), &in) != 1) throw std::runtime_error("bad address " + a);
      uint32_t n = ntohl(in.s_addr) - (100u << 24 | 64u << 16);  // inverse of client()
      list += (list.empty() ? "" : ",") + std::to_string(n);
    }
    RunResult r = run(send_argv(port, "--clients", list, prefix, 1, 0), 30s);
    if (r.exit_code != 0) throw std::runtime_error("send failed: " + r.output);
    return parse_send(r.output);
  }

  // "" if each of `expected_clients` sent `rounds` datagrams and got every answer from the VIP;
  // else the first problems.
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
    if (shown > 10) problems += "and " + std::to_string(shown - 10) + " more";
    return problems;
  }

  // SIGTERM to ikelbd, then its exit status (<= 10 s); nullopt if it did not stop, and then the
  // fixture's teardown still owns it.
  std::optional<int> stop_agent_with_sigterm() {
    if (kill(agent_pid_, SIGTERM) != 0) return std::nullopt;
    std::optional<int> status = wait_exit(agent_pid_, 10s);
    if (status) {
      forget(agent_pid_);
      agent_pid_ = -1;
    }
    return status;
  }

  // Clients first..first+count-1 send one datagram each to VIP:port, and every one must be
  // answered from the VIP. Returns each client's one gateway (as the gateways logged it).
  std::map<std::string, int> place(int port, int first, int count, const std::string& prefix) {
    SendResult r = send(port, first, count, prefix);
    EXPECT_EQ(answered_by_vip(r, count, 1), "") << prefix;
    return single_gateway(gateways_of(prefix, port, count));
  }

  // What the gateways logged for datagrams whose payload starts with "<prefix>:".
  struct Delivery {
    int gateway = 0;
    std::string source, payload_client;
    int port = 0, round = 0;
  };
  std::vector<Delivery> deliveries(const std::string& prefix) {
    std::vector<Delivery> out;
    for (int gw : gateways_) {
      std::istringstream in(read_file(gateway_log(gw)));
      std::string line;
      while (std::getline(in, line)) {
        std::istringstream fields(line);
        Delivery d;
        std::string payload;
        fields >> d.source >> d.port >> payload;
        if (!payload.starts_with(prefix + ":")) continue;
        d.gateway = gw;
        std::string rest = payload.substr(prefix.size() + 1);
        auto colon = rest.rfind(':');
        d.payload_client = rest.substr(0, colon);
        d.round = std::stoi(rest.substr(colon + 1));
        out.push_back(d);
      }
    }
    return out;
  }

  // Gateways each client's datagrams (of `prefix`) reached; checks that every datagram arrived
  // with the client's own address as source and on `port`.
  std::map<std::string, std::set<int>> gateways_of(const std::string& prefix, int port,
                                                   size_t expected_datagrams) {
    std::map<std::string, std::set<int>> out;
    auto list = deliveries(prefix);
    EXPECT_EQ(list.size(), expected_datagrams) << "datagrams logged for " << prefix;
    int wrong = 0;
    for (const auto& d : list) {
      if (d.source != d.payload_client || d.port != port) {
        if (wrong++ < 5)
          ADD_FAILURE() << "gw" << d.gateway << " got " << d.payload_client << "'s datagram from "
                        << d.source << " on port " << d.port << " (expected port " << port << ")";
        continue;
      }
      out[d.source].insert(d.gateway);
    }
    EXPECT_EQ(wrong, 0) << "datagrams without the client's real source address or on another port";
    return out;
  }

  // client -> its one gateway; a failure for every client seen on more than one.
  static std::map<std::string, int> single_gateway(
      const std::map<std::string, std::set<int>>& seen) {
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

  // 50 clients stream `rounds` datagrams each, 50 ms apart, on UDP 4500; `after` into it `stop`
  // stops the agent and `start_again` starts a new one while the stream still flows. Every
  // datagram must then have been answered from the VIP, none twice, and every client must have
  // stayed on one gateway.
  void expect_hitless_restart(int rounds, std::chrono::milliseconds after,
                              const std::function<void()>& stop,
                              const std::function<void()>& start_again) {
    constexpr int kClients = 50, kIntervalMs = 50;
    const std::string out = dir_ + "/stream.out";
    pid_t sender = start(
        send_argv(4500, "--first", "1:" + std::to_string(kClients), "stream", rounds, kIntervalMs),
        out);
    std::this_thread::sleep_for(after);
    stop();
    ASSERT_FALSE(wait_exit(sender, 0ms).has_value()) << "the stream ended before the restart";
    start_again();
    std::optional<int> status = wait_exit(sender, 0ms);
    EXPECT_FALSE(status.has_value()) << "the stream ended before the restarted agent answered";
    if (!status) status = wait_exit(sender, 30s);
    forget(sender);
    ASSERT_TRUE(status.has_value()) << "the stream did not finish";
    ASSERT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << read_file(out);

    SendResult result = parse_send(read_file(out));
    EXPECT_EQ(answered_by_vip(result, kClients, rounds), "") << "lost, or not from the VIP";
    auto placement = single_gateway(gateways_of("stream", 4500, kClients * rounds));
    EXPECT_EQ(placement.size(), static_cast<size_t>(kClients)) << "a client changed gateway";
    std::set<std::pair<std::string, int>> unique;
    for (const auto& d : deliveries("stream")) unique.insert({d.payload_client, d.round});
    EXPECT_EQ(unique.size(), static_cast<size_t>(kClients * rounds)) << "duplicates or losses";
  }
};

TEST_F(NetnsAgentTest, TwoHundredClientsKeepTheirGatewayAcrossPorts) {
  write_config(3, 60);
  start_agent();
  SendResult ike = send(500, 1, 200, "ike");
  SendResult natt = send(4500, 1, 200, "natt");
  EXPECT_EQ(answered_by_vip(ike, 200, 1), "");
  EXPECT_EQ(answered_by_vip(natt, 200, 1), "");

  auto on500 = single_gateway(gateways_of("ike", 500, 200));
  auto on4500 = single_gateway(gateways_of("natt", 4500, 200));
  ASSERT_EQ(on500.size(), 200u);
  ASSERT_EQ(on4500.size(), 200u);
  int moved = 0;
  for (const auto& [c, gw] : on500)
    if (on4500.count(c) == 0 || on4500.at(c) != gw) moved++;
  EXPECT_EQ(moved, 0) << "clients whose UDP 4500 datagrams reached another gateway than UDP 500";
  auto per_gw = clients_per_gateway(on500);
  for (int gw = 1; gw <= 3; gw++) EXPECT_GT(per_gw[gw], 0) << "gw" << gw << " got no client";
  EXPECT_EQ(per_gw[1] + per_gw[2] + per_gw[3], 200);
}

TEST_F(NetnsAgentTest, KillDashNineLosesNothing) {
  write_config(3, 60);
  start_agent();
  EXPECT_EQ(ctl_json({"status"})["adopted"], false);
  // An 8 s stream: the restarted agent must answer while it still flows, and a loaded machine
  // has taken more than 2 s to kill and restart it.
  expect_hitless_restart(
      160, 500ms,
      [&] {
        ASSERT_EQ(kill(agent_pid_, SIGKILL), 0);
        ASSERT_TRUE(wait_exit(agent_pid_, 5s).has_value());
        forget(agent_pid_);
        agent_pid_ = -1;
        std::this_thread::sleep_for(500ms);
      },
      [&] { start_agent(); });
  nlohmann::json st = ctl_json({"status"});
  EXPECT_EQ(st["adopted"], true) << st.dump();
}

// A restarted ikelbd (the same build, so the same program) must serve what it is configured with
// after the restart: the program in the pinned link reads lookup maps that each agent derives for
// itself (address filter, replies, records), so the restarted agent's program has to take the
// link. Otherwise the client port keeps its predecessor's program, whose address filter has never
// heard of a VIP configured after the restart, and passes that VIP's clients to the kernel.
TEST_F(NetnsAgentTest, ARestartedAgentServesAVipConfiguredAfterTheRestart) {
  write_config(3, 60, "203.0.113.99");
  start_agent();
  std::optional<int> status = stop_agent_with_sigterm();
  ASSERT_TRUE(status.has_value()) << "ikelbd did not stop on SIGTERM";
  start_agent();
  EXPECT_EQ(ctl_json({"status"})["adopted"], true);

  write_config(3, 60);  // the virtual server moves to kVip
  RunResult reload = run({IKELBCTL_PATH, "--socket", socket_, "reload"});
  ASSERT_EQ(reload.exit_code, 0) << reload.output;
  // place() also checks that every client's answer came from the VIP.
  auto per_gw = clients_per_gateway(place(500, 1, 100, "after"));
  for (int gw = 1; gw <= 3; gw++) EXPECT_GT(per_gw[gw], 0) << "gw" << gw << " got no client";
  EXPECT_EQ(per_gw[1] + per_gw[2] + per_gw[3], 100);
}

TEST_F(NetnsAgentTest, ReloadAddingAFourthGatewayKeepsPinnedClients) {
  add_gateway(4);  // namespace and link ready; not in the config yet
  write_config(3, 60);
  start_agent();
  auto placed = place(500, 1, 100, "before");
  ASSERT_EQ(placed.size(), 100u);
  EXPECT_EQ(clients_per_gateway(placed)[4], 0);

  write_config(4, 60);
  RunResult reload = run({IKELBCTL_PATH, "--socket", socket_, "reload"});
  ASSERT_EQ(reload.exit_code, 0) << reload.output;
  EXPECT_EQ(backend("gw4")["state"], "active");

  auto replaced = place(500, 1, 100, "again");
  int moved = 0;
  for (const auto& [c, gw] : placed)
    if (replaced.count(c) == 0 || replaced.at(c) != gw) moved++;
  EXPECT_EQ(moved, 0) << "pinned clients that changed gateway after the reload";

  auto per_gw = clients_per_gateway(place(500, 101, 200, "fresh"));
  for (int gw = 1; gw <= 4; gw++) EXPECT_GT(per_gw[gw], 0) << "gw" << gw << " got no new client";
  EXPECT_EQ(per_gw[1] + per_gw[2] + per_gw[3] + per_gw[4], 200);
}

// A reload of a broken config, by ikelbctl and by SIGHUP, is refused with every error and
// changes nothing: the same backends, pinned clients where they were, new clients placed by the
// old table (gw3, which the broken file drops, included).
TEST_F(NetnsAgentTest, InvalidReloadIsRejectedAndForwardingIsUnchanged) {
  write_config(3, 60);
  start_agent();
  auto placed = place(500, 1, 100, "before");
  ASSERT_EQ(placed.size(), 100u);
  const nlohmann::json backends_before = ctl_json({"backends"})["backends"];

  nlohmann::json bad = nlohmann::json::parse(read_file(config_path_));
  auto& list = bad["virtual_servers"][0]["backends"];
  list[0]["wieght"] = 5;              // a typo: unknown keys are errors
  list[1]["address"] = "10.0.2.300";  // not an address
  list.erase(2);                      // gw3 gone: must not take effect
  std::ofstream(config_path_) << bad.dump(2) << "\n";

  RunResult reload = run({IKELBCTL_PATH, "--socket", socket_, "reload"});
  EXPECT_NE(reload.exit_code, 0) << reload.output;
  EXPECT_NE(reload.output.find("/virtual_servers/0/backends/0/wieght"), std::string::npos)
      << reload.output;
  EXPECT_NE(reload.output.find("/virtual_servers/0/backends/1/address: \"10.0.2.300\""),
            std::string::npos)
      << reload.output;
  ASSERT_EQ(kill(agent_pid_, SIGHUP), 0);
  auto deadline = Clock::now() + 5s;
  while (read_file(agent_log_).find("reload (SIGHUP) rejected") == std::string::npos &&
         Clock::now() < deadline)
    std::this_thread::sleep_for(50ms);
  EXPECT_NE(read_file(agent_log_).find("reload (SIGHUP) rejected, nothing changed"),
            std::string::npos)
      << tail(read_file(agent_log_));

  const nlohmann::json backends_after = ctl_json({"backends"})["backends"];
  ASSERT_EQ(backends_after.size(), backends_before.size());
  for (size_t i = 0; i < backends_after.size(); i++) {
    EXPECT_EQ(backends_after[i]["name"], backends_before[i]["name"]);
    EXPECT_EQ(backends_after[i]["address"], backends_before[i]["address"]);
    EXPECT_EQ(backends_after[i]["state"], "active") << backends_after[i].dump();
  }

  auto replaced = place(500, 1, 200, "again");  // 100 pinned clients and 100 new ones
  ASSERT_EQ(replaced.size(), 200u);
  int moved = 0;
  for (const auto& [c, gw] : placed) moved += replaced.at(c) != gw;
  EXPECT_EQ(moved, 0) << "pinned clients that changed gateway after a rejected reload";
  EXPECT_GT(clients_per_gateway(replaced)[3], clients_per_gateway(placed)[3])
      << "gw3, dropped only by the rejected config, must still take new clients";
  const nlohmann::json last = ctl_json({"status"})["last_reload"];
  EXPECT_EQ(last["ok"], false) << last.dump();
  EXPECT_EQ(last["errors"].size(), 2u) << last.dump();
}

// --watch-config with the config in a ConfigMap-style directory (what the Helm chart mounts):
// a valid update is applied without a signal, pinned clients stay; a broken update is rejected
// and changes nothing, visibly (log, ikelbctl status); the next valid update applies again.
TEST_F(NetnsAgentTest, ConfigMapUpdatesReloadByThemselves) {
  add_gateway(4);
  ConfigMapDir configmap(dir_ + "/configmap");
  const std::string staging = config_path_, mounted = configmap.path("ikelb.json").string();
  auto publish = [&](int backends) {  // write_config's file, published through the ConfigMap
    config_path_ = staging;
    write_config(backends, 60);
    config_path_ = mounted;
    configmap.update("ikelb.json", read_file(staging));
  };
  publish(3);
  agent_args_ = {"--watch-config"};
  start_agent();
  auto placed = place(500, 1, 100, "before");
  ASSERT_EQ(placed.size(), 100u);
  EXPECT_EQ(backends().count("gw4"), 0u);

  auto wait_log = [&](const std::string& text, int count) {
    auto deadline = Clock::now() + 10s;
    auto seen = [&] {
      std::string log = read_file(agent_log_);
      int n = 0;
      for (size_t at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) n++;
      return n;
    };
    while (seen() < count && Clock::now() < deadline) std::this_thread::sleep_for(50ms);
    return seen();
  };

  // A broken update: gw3 removed and a typo.
  nlohmann::json bad = nlohmann::json::parse(read_file(staging));
  bad["virtual_servers"][0]["backends"].erase(2);
  bad["virtual_servers"][0]["backends"][0]["adress"] = "10.0.1.2";
  configmap.update("ikelb.json", bad.dump(2));
  EXPECT_EQ(wait_log("reload (config file changed) rejected, nothing changed", 1), 1)
      << tail(read_file(agent_log_));
  nlohmann::json last = ctl_json({"status"})["last_reload"];
  EXPECT_EQ(last["ok"], false) << last.dump();
  ASSERT_EQ(last["errors"].size(), 1u) << last.dump();
  EXPECT_NE(last["errors"][0].get<std::string>().find("/virtual_servers/0/backends/0/adress"),
            std::string::npos)
      << last.dump();
  EXPECT_EQ(backend("gw3")["state"], "active") << "the rejected file dropped gw3: no effect";

  // A valid update adding gw4: applied with no signal and no ikelbctl.
  publish(4);
  EXPECT_EQ(wait_log("reloaded (config file changed)", 1), 1) << tail(read_file(agent_log_));
  EXPECT_EQ(backend("gw4")["state"], "active");
  EXPECT_EQ(ctl_json({"status"})["last_reload"]["ok"], true);

  auto again = place(500, 1, 100, "again");
  int moved = 0;
  for (const auto& [c, gw] : placed) moved += again.count(c) == 0 || again.at(c) != gw;
  EXPECT_EQ(moved, 0) << "pinned clients that changed gateway after the ConfigMap update";
  EXPECT_EQ(wait_log("(config file changed)", 2), 2) << "exactly two reloads were due";
}

// --teardown-on-stop (the chart's last run before an uninstall): SIGTERM detaches XDP and
// removes the pins; without the flag (every other test, KillDashNine) they stay.
TEST_F(NetnsAgentTest, TeardownOnStopDetachesOnSigterm) {
  write_config(3, 60);
  agent_args_ = {"--teardown-on-stop"};
  start_agent();
  ASSERT_NE(run({"ip", "-n", ns("lb"), "link", "show", "c0"}).output.find("xdp"),
            std::string::npos);
  ASSERT_TRUE(std::filesystem::exists(bpffs_ + "/ikelb"));
  std::optional<int> status = stop_agent_with_sigterm();
  ASSERT_TRUE(status.has_value()) << "ikelbd did not stop on SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
  EXPECT_FALSE(std::filesystem::exists(bpffs_ + "/ikelb")) << "pins left after the teardown";
  RunResult links = run({"ip", "-n", ns("lb"), "link", "show"});
  EXPECT_EQ(links.output.find("xdp"), std::string::npos) << links.output;
  EXPECT_NE(read_file(agent_log_).find("with --teardown-on-stop: detaching XDP"),
            std::string::npos);
}

TEST_F(NetnsAgentTest, DrainKeepsPinnedClientsAndReportsDrained) {
  write_config(3, 3);
  start_agent();
  auto placed = place(500, 1, 100, "first");
  ASSERT_EQ(placed.size(), 100u);
  std::vector<std::string> on_gw2;
  for (const auto& [c, gw] : placed)
    if (gw == 2) on_gw2.push_back(c);
  ASSERT_FALSE(on_gw2.empty());

  RunResult drain = run({IKELBCTL_PATH, "--socket", socket_, "drain", "gw2"});
  ASSERT_EQ(drain.exit_code, 0) << drain.output;

  SendResult pinned = send_list(500, on_gw2, "pinned");
  EXPECT_EQ(answered_by_vip(pinned, on_gw2.size(), 1), "");
  auto pinned_placed = single_gateway(gateways_of("pinned", 500, on_gw2.size()));
  EXPECT_EQ(clients_per_gateway(pinned_placed)[2], static_cast<int>(on_gw2.size()))
      << "gw2's pinned clients must stay on gw2 while it drains";

  auto fresh_per_gw = clients_per_gateway(place(500, 101, 100, "fresh"));
  EXPECT_EQ(fresh_per_gw[2], 0) << "new clients reached the draining gw2";
  EXPECT_EQ(fresh_per_gw[1] + fresh_per_gw[3], 100);

  // Draining, with its pinned clients counted by the next affinity scans.
  nlohmann::json b;
  auto deadline = Clock::now() + 3s;
  for (;;) {
    b = backend("gw2");
    if (b["state"] == "draining" && b["pinned_clients"] == on_gw2.size()) break;
    if (Clock::now() > deadline) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(b["state"], "draining") << b.dump();
  EXPECT_EQ(b["pinned_clients"], on_gw2.size()) << b.dump();

  // No traffic from them for longer than the idle timeout: drained, nobody pinned.
  deadline = Clock::now() + 8s;
  for (;;) {
    b = backend("gw2");
    if (b["state"] == "drained" && b["pinned_clients"] == 0) break;
    if (Clock::now() > deadline) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(b["state"], "drained") << b.dump();
  EXPECT_EQ(b["pinned_clients"], 0) << b.dump();
}

#ifdef IKELB_IMAGE_ARCHIVE
// The OCI image run by podman exactly as the chart's DaemonSet runs it (label deploy): the
// arguments come from the rendered DaemonSet (tests/deploy/podman_args.mjs): host network, the
// capabilities, seccomp setting, read-only root, the host's bpffs and /run/ikelb, the config
// from a ConfigMap-style directory. podman runs inside the lb namespace (nsenter --net, so the
// host's /sys/fs/cgroup stays visible to runc), with its configuration and storage under the
// test's directory (deploy/container/podman.sh). The test's bpffs stands in for the host's.
class NetnsContainerTest : public NetnsAgentTest {
 protected:
  void SetUp() override {
    NetnsAgentTest::SetUp();
    if (HasFatalFailure()) return;
    podman_dir_ = dir_ + "/podman";
    configmap_.emplace(dir_ + "/configmap");
    name_ = "ikelb-test-" + std::to_string(getpid()) + "-" + prefix_;
  }

  Argv podman(const Argv& args) const {
    Argv argv = {"nsenter", "--net=/run/netns/" + ns("lb"), IKELB_PODMAN_SH, podman_dir_};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  // The chart rendered for this test (paths under dir_), as podman arguments and a config.
  void render(const nlohmann::json& config) {
    nlohmann::json values = {{"config", config},
                             {"bpffs", {{"hostPath", bpffs_}, {"pinDir", "ikelb"}}},
                             {"adminSocket", {{"hostPath", dir_ + "/run"}}},
                             {"health", {{"port", 19714}}},
                             {"metrics", {{"enabled", false}}}};
    std::ofstream(dir_ + "/values.json") << values.dump(2);
    must({IKELB_CHART_TEST, "podman-args", dir_ + "/values.json", dir_ + "/configmap",
          dir_ + "/podman.json"},
         120s);
    spec_ = nlohmann::json::parse(read_file(dir_ + "/podman.json"));
    for (const auto& d : spec_["create_dirs"])
      std::filesystem::create_directories(d.get<std::string>());
    configmap_->update("ikelb.json", spec_["config"].get<std::string>());
    config_path_ = configmap_->path("ikelb.json").string();  // ikelbd --teardown in TearDown
    socket_ = dir_ + "/run/ikelb.sock";                      // ikelbctl from the host
  }

  // podman run -d with the DaemonSet's arguments (less the option whose value is `drop`); returns
  // once ikelbctl (from the host, over the mounted socket) answers and the readiness probe passes.
  void start_container(const std::string& drop = "") {
    Argv run_args = {"run", "-d", "--name", name_,
                     // This sandbox lacks CAP_SYS_RESOURCE for podman's default limits.
                     "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096"};
    const nlohmann::json& args = spec_["run_args"];
    for (size_t i = 0; i < args.size(); i++) {
      if (i + 1 < args.size() && args[i + 1] == drop) {
        i++;  // the option and its value
        continue;
      }
      run_args.push_back(args[i].get<std::string>());
    }
    run_args.push_back(spec_["image"].get<std::string>());
    for (const auto& a : spec_["args"]) run_args.push_back(a.get<std::string>());
    must(podman(run_args), 60s);
    started_ = true;
    const auto deadline = Clock::now() + 30s;
    while (Clock::now() < deadline) {
      if (ctl({"status"}).exit_code == 0 && probe("readiness").first == 200) return;
      RunResult st = run(podman({"inspect", "--format", "{{.State.Status}}", name_}), 20s);
      if (st.output.find("exited") != std::string::npos)
        throw std::runtime_error("the container exited: " + container_log());
      std::this_thread::sleep_for(200ms);
    }
    throw std::runtime_error("the container did not become ready in 30 s: " + container_log());
  }

  // GET of the DaemonSet's probe `which` ("liveness", "readiness") inside lb, as the kubelet
  // would send it: the status and the body.
  std::pair<int, std::string> probe(const std::string& which) {
    const nlohmann::json& p = spec_["probes"][which];
    std::string script = "exec 3<>/dev/tcp/" + p["host"].get<std::string>() + "/" +
                         std::to_string(p["port"].get<int>()) + " || exit 1; printf 'GET " +
                         p["path"].get<std::string>() + " HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3";
    RunResult r = run(in_ns("lb", {"bash", "-c", script}), 5s);
    int status = 0;
    std::sscanf(r.output.c_str(), "HTTP/1.%*d %d", &status);
    return {status, r.output};
  }

  std::string container_log() { return tail(run(podman({"logs", name_}), 20s).output, 3000); }

  void remove_container() {
    if (!started_) return;
    RunResult r = run(podman({"rm", "-f", "-t", "0", name_}), 60s);
    if (r.exit_code != 0) ADD_FAILURE() << "podman rm: " << r.output;
    started_ = false;
  }

  void dump_logs() override {
    NetnsAgentTest::dump_logs();
    if (started_) std::fprintf(stderr, "---- container log ----\n%s\n", container_log().c_str());
  }

  // The agent in the container tears down through the mounted socket; the container is removed
  // whatever happened.
  void before_agent_teardown() override {
    if (started_ && ctl({"teardown"}).exit_code == 0) {
      run(podman({"wait", name_}), 20s);
      if (std::filesystem::exists(bpffs_ + "/ikelb"))
        ADD_FAILURE() << "pins left after ikelbctl teardown of the container's agent";
    }
    remove_container();
  }

  std::string podman_dir_, name_;
  nlohmann::json spec_;
  std::optional<ConfigMapDir> configmap_;
  bool started_ = false;

  // Three gateways, the default affinity table (its memory counts against the pod's limit).
  void render_three_gateways() {
    nlohmann::json backends = nlohmann::json::array();
    for (int i = 1; i <= 3; i++)
      backends.push_back(
          {{"name", "gw" + std::to_string(i)}, {"address", "10.0." + std::to_string(i) + ".2"}});
    render({{"interfaces", {"c0", "g1", "g2", "g3"}},
            {"affinity", {{"idle_timeout_s", 60}}},
            {"virtual_servers",
             {{{"name", "vpn"},
               {"address", kVip},
               {"health_check", {{"mode", "none"}}},
               {"backends", backends}}}}});
    must(podman({"load", "-q", "-i", IKELB_IMAGE_ARCHIVE}), 120s);
  }
};

TEST_F(NetnsContainerTest, KilledAndRestartedContainerLosesNothing) {
  render_three_gateways();
  start_container();
  EXPECT_EQ(ctl_json({"status"})["adopted"], false);
  auto live = probe("liveness");
  EXPECT_EQ(live.first, 200) << live.second;

  // A 10 s stream; the container is killed (SIGKILL, as a crashed pod) after 1 s, removed and
  // started again with the same arguments while it flows.
  expect_hitless_restart(
      200, 1s,
      [&] {
        must(podman({"kill", "--signal", "KILL", name_}), 30s);
        remove_container();
      },
      [&] { start_container(); });
  nlohmann::json st = ctl_json({"status"});
  EXPECT_EQ(st["adopted"], true) << "the new container must adopt the pinned state: " << st.dump();
  EXPECT_EQ(st["pin_dir"], bpffs_ + "/ikelb");
}

// Why the chart sets the seccomp profile explicitly: with the runtime's default profile (the
// same spec otherwise) bpf() is refused and the agent cannot load its program.
TEST_F(NetnsContainerTest, DefaultSeccompProfileRefusesBpf) {
  render_three_gateways();
  EXPECT_THROW(start_container("seccomp=unconfined"), std::runtime_error);
  const std::string log = container_log();
  EXPECT_NE(log.find("a seccomp profile that allows bpf()"), std::string::npos) << log;
  EXPECT_NE(log.find("Operation not permitted"), std::string::npos) << log;
  EXPECT_FALSE(std::filesystem::exists(bpffs_ + "/ikelb/link_c0")) << "nothing attached";
}
#endif  // IKELB_IMAGE_ARCHIVE

}  // namespace
}  // namespace ikelb::test
