// ikelbd as the systemd unit runs it, without systemd (PID 1 here is not systemd): the exact
// capability set of deploy/systemd/ikelbd.service applied with setpriv (bounding, inheritable,
// ambient; no new privileges), in network namespaces with a private bpffs, and a unix datagram
// socket standing in for systemd's $NOTIFY_SOCKET.
//
//   PREFIX-cli  c1, clients 100.64.0.N  --  PREFIX-lb  ikelbd (VIP 203.0.113.10)  --  PREFIX-gw<i>
//
// Proves: with CAP_BPF + CAP_NET_ADMIN + CAP_PERFMON only, ikelbd attaches, forwards both ways,
// probes, reloads on SIGHUP and notifies READY=1 / RELOADING=1 / READY=1; with any one
// capability less it exits with a message naming the missing one; it never mounts the bpffs
// itself, and `ikelbd --mount-bpffs` (the unit's privileged ExecStartPre) does when it is missing.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "netns_fixture.h"
#include "process.h"

namespace ikelb::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kVip = "203.0.113.10";

// The value of `key=` in the unit file (the last one wins, as in systemd).
std::string unit_setting(const std::string& key) {
  std::istringstream in(read_file(IKELBD_UNIT_PATH));
  std::string line, value;
  while (std::getline(in, line))
    if (line.starts_with(key + "=")) value = line.substr(key.size() + 1);
  return value;
}

std::vector<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// "CAP_NET_ADMIN" -> "net_admin"; the set as setpriv's "-all,+a,+b".
std::string setpriv_caps(const std::vector<std::string>& caps) {
  std::string out = "-all";
  for (const auto& c : caps) {
    std::string n = c.substr(4);
    for (char& ch : n) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    out += ",+" + n;
  }
  return out;
}

// setpriv applying `caps` as bounding, inheritable and ambient set with no_new_privs, as
// systemd does for CapabilityBoundingSet= + AmbientCapabilities= + NoNewPrivileges=yes.
Argv with_caps(const std::vector<std::string>& caps) {
  std::string set = setpriv_caps(caps);
  return {"setpriv",           "--bounding-set=" + set,
          "--inh-caps=" + set, "--ambient-caps=" + set,
          "--no-new-privs",    "--"};
}

class ServiceTest : public NetnsFixture {
 protected:
  ServiceTest()
      : NetnsFixture({.ikelbd = IKELBD_PATH,
                      .ikelbctl = IKELBCTL_PATH,
                      .netns_tool = IKELB_NETNS_TOOL_PATH,
                      .work_dir_template = "/tmp/ikelb-deploy-XXXXXX",
                      .prefix = "is"}) {}

  void SetUp() override {
    unit_caps_ = words(unit_setting("CapabilityBoundingSet"));
    ASSERT_EQ(unit_caps_, words(unit_setting("AmbientCapabilities")))
        << "the unit's ambient and bounding sets differ";
    NetnsFixture::SetUp();
    if (HasFatalFailure()) return;
    notify_path_ = dir_ + "/notify";
    notify_fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(notify_fd_, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    ASSERT_LT(notify_path_.size(), sizeof(a.sun_path));
    std::memcpy(a.sun_path, notify_path_.c_str(), notify_path_.size() + 1);
    ASSERT_EQ(bind(notify_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    add_lb_and_clients(kClients + 60);  // 1..40 before the reload, 41..100 after
    for (int i = 1; i <= 2; i++) {
      add_namespace("gw" + std::to_string(i));
      link_gateway(i, i);
      gateways_.push_back(i);
      // Answers health probes like a stateless IKE daemon (INVALID_KE_PAYLOAD).
      start_serve(i, dir_ + "/gw" + std::to_string(i) + ".log", {"--ike-group", "19"});
    }
  }

  void TearDown() override {
    NetnsFixture::TearDown();
    if (notify_fd_ >= 0) close(notify_fd_);
  }

  void write_config(int backends) {
    nlohmann::json ifs = {"c0"}, list = nlohmann::json::array();
    for (int i = 1; i <= backends; i++) {
      ifs.push_back("g" + std::to_string(i));
      list.push_back(
          {{"name", "gw" + std::to_string(i)}, {"address", "10.0." + std::to_string(i) + ".2"}});
    }
    write_config_json({{"interfaces", ifs},
                       {"bpffs", bpffs_ + "/ikelb"},
                       {"admin", {{"socket", socket_}}},
                       {"metrics", {{"listen", "127.0.0.1:9712"}}},
                       {"log_level", "info"},
                       {"virtual_servers",
                        {{{"name", "vpn"},
                          {"address", kVip},
                          {"health_check", {{"mode", "stateless"}}},
                          {"backends", list}}}}});
  }

  // ikelbd's command line as the unit runs it, with `caps`.
  Argv agent_argv(const std::vector<std::string>& caps) {
    Argv argv = {"env", "NOTIFY_SOCKET=" + notify_path_};
    for (const auto& w : with_caps(caps)) argv.push_back(w);
    argv.insert(argv.end(), {IKELBD_PATH, "--config", config_path_});
    return in_ns("lb", argv);
  }

  // The next notification, waiting up to `timeout`; "" if none came.
  std::string next_notification(std::chrono::milliseconds timeout = 20s) {
    const auto deadline = Clock::now() + timeout;
    char buf[1024];
    while (Clock::now() < deadline) {
      ssize_t n = recv(notify_fd_, buf, sizeof(buf), MSG_DONTWAIT);
      if (n >= 0) return std::string(buf, static_cast<size_t>(n));
      std::this_thread::sleep_for(10ms);
    }
    return "";
  }

  // Every client sends one datagram to VIP:500; returns how many were answered from the VIP.
  int clients_answered_by_vip(const std::string& prefix) {
    RunResult r =
        run(in_ns("cli", {IKELB_NETNS_TOOL_PATH, "send", "--vip", kVip, "--port", "500", "--first",
                          "1", "--count", std::to_string(kClients), "--payload-prefix", prefix,
                          "--rounds", "1", "--timeout-ms", "3000"}),
            30s);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    int answered = 0;
    std::istringstream in(r.output);
    for (std::string line; std::getline(in, line);)
      answered += line.find(" sent=1 replied=1 from_vip=1") != std::string::npos;
    return answered;
  }

  // Gateways that logged a datagram of `prefix` with the client's own source address.
  int gateways_reached(const std::string& prefix) {
    int reached = 0;
    for (int i : gateways_)
      reached += read_file(dir_ + "/gw" + std::to_string(i) + ".log").find(prefix + ":") !=
                 std::string::npos;
    return reached;
  }

  static constexpr int kClients = 40;
  std::vector<std::string> unit_caps_;
  std::string notify_path_;
  int notify_fd_ = -1;
};

TEST_F(ServiceTest, UnitCapabilitiesAreExactlyBpfNetAdminAndPerfmon) {
  EXPECT_EQ(unit_caps_, (std::vector<std::string>{"CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"}));
  EXPECT_EQ(unit_setting("Type"), "notify");
  EXPECT_EQ(unit_setting("ExecReload"), "/bin/kill -HUP $MAINPID");
}

TEST_F(ServiceTest, AttachesForwardsReloadsAndNotifiesWithTheUnitsCapabilities) {
  write_config(1);
  agent_pid_ = start(agent_argv(unit_caps_), agent_log_);
  std::string ready = next_notification();
  ASSERT_TRUE(ready.starts_with("READY=1\n")) << "first notification: \"" << ready << "\"\n"
                                              << tail(read_file(agent_log_));
  // READY=1 came after the tables were written and XDP attached: no retry needed.
  EXPECT_NE(run({"ip", "-n", ns("lb"), "link", "show", "c0"}).output.find("xdp"),
            std::string::npos);
  ASSERT_EQ(ctl({"status"}).exit_code, 0);
  std::string status = read_file("/proc/" + std::to_string(agent_pid_) + "/status");
  EXPECT_NE(status.find("CapEff:\t000000c000001000"), std::string::npos)
      << "effective set is not CAP_BPF+CAP_NET_ADMIN+CAP_PERFMON:\n"
      << status;

  // Health probes (plain UDP sockets: no CAP_NET_RAW) reach the gateway and come back.
  nlohmann::json gw1;
  for (auto deadline = Clock::now() + 10s; Clock::now() < deadline;
       std::this_thread::sleep_for(50ms)) {
    gw1 = backend("gw1");
    if (gw1["probe"].is_object() && gw1["probe"]["consecutive_ok"].get<int>() >= 2) break;
  }
  EXPECT_EQ(gw1["probe"]["last_result"], "invalid_ke") << gw1.dump();
  EXPECT_EQ(gw1["state"], "active") << gw1.dump();
  // The metrics listener works too.
  RunResult metrics = run(in_ns("lb", {"bash", "-c",
                                       "exec 3<>/dev/tcp/127.0.0.1/9712 && printf 'GET /metrics "
                                       "HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3"}));
  EXPECT_NE(metrics.output.find("ikelb_"), std::string::npos) << metrics.output;

  EXPECT_EQ(clients_answered_by_vip("one"), kClients);
  EXPECT_EQ(gateways_reached("one"), 1);

  // SIGHUP (the unit's ExecReload) with a second gateway: RELOADING=1, then READY=1, and the
  // new gateway takes new clients.
  write_config(2);
  ASSERT_EQ(kill(agent_pid_, SIGHUP), 0);
  std::string reloading = next_notification();
  EXPECT_TRUE(reloading.starts_with("RELOADING=1\nMONOTONIC_USEC=")) << reloading;
  std::string ready_again = next_notification();
  EXPECT_TRUE(ready_again.starts_with("READY=1\nSTATUS=1 virtual server, 2 backends"))
      << ready_again << "\n"
      << tail(read_file(agent_log_));
  EXPECT_TRUE(backend("gw2").is_object());
  // Clients 41..: not pinned yet, so spread over both gateways.
  RunResult r = run(in_ns("cli", {IKELB_NETNS_TOOL_PATH, "send", "--vip", kVip, "--port", "500",
                                  "--first", "41", "--count", "60", "--payload-prefix", "two",
                                  "--rounds", "1", "--timeout-ms", "3000"}),
                    30s);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(gateways_reached("two"), 2) << r.output;
  EXPECT_EQ(next_notification(200ms), "");  // nothing else was announced
}

// Each capability of the unit is necessary: the kernel refuses the start without it, and ikelbd
// says which one is missing.
TEST_F(ServiceTest, EachCapabilityLessFailsWithAClearMessage) {
  write_config(1);
  for (const std::string& dropped : unit_caps_) {
    std::vector<std::string> caps;
    for (const auto& c : unit_caps_)
      if (c != dropped) caps.push_back(c);
    RunResult r = run(agent_argv(caps), 20s);
    EXPECT_EQ(r.exit_code, 1) << "without " << dropped << ":\n" << r.output;
    EXPECT_NE(r.output.find("missing " + dropped + " ("), std::string::npos)
        << "without " << dropped << ":\n"
        << r.output;
    // EPERM (bpf(), XDP attach) or EACCES (the verifier): the kernel's own refusal.
    EXPECT_TRUE(r.output.find("Operation not permitted") != std::string::npos ||
                r.output.find("Permission denied") != std::string::npos)
        << "the kernel did not refuse without " << dropped << ":\n"
        << r.output;
    EXPECT_EQ(next_notification(100ms), "") << "READY sent without " << dropped;
    EXPECT_EQ(run({"ip", "-n", ns("lb"), "link", "show", "c0"}).output.find("xdp"),
              std::string::npos)
        << "XDP attached without " << dropped;
  }
}

// The agent never mounts the bpffs (that would take CAP_SYS_ADMIN); the unit's privileged
// ExecStartPre `ikelbd --mount-bpffs` does, once, and the agent then starts on it.
TEST_F(ServiceTest, MountBpffsMountsOnlyWhenMissingAndTheAgentNeverMounts) {
  const std::string parent = dir_ + "/unmounted-bpf";
  write_config(1);
  nlohmann::json config = nlohmann::json::parse(read_file(config_path_));
  config["bpffs"] = parent + "/ikelb";
  write_config_json(config);

  // The agent with the unit's capabilities: a clear error, nothing mounted.
  RunResult agent = run(agent_argv(unit_caps_), 20s);
  EXPECT_EQ(agent.exit_code, 1) << agent.output;
  EXPECT_NE(agent.output.find("is not on a bpf filesystem"), std::string::npos) << agent.output;
  // --mount-bpffs with the unit's capabilities is refused (needs CAP_SYS_ADMIN).
  // A private mount namespace (made with full privileges), then the unit's capabilities.
  Argv mount_unprivileged = {"unshare", "-m", "--propagation", "private"};
  for (const auto& w : with_caps(unit_caps_)) mount_unprivileged.push_back(w);
  mount_unprivileged.insert(mount_unprivileged.end(),
                            {IKELBD_PATH, "--config", config_path_, "--mount-bpffs"});
  RunResult refused = run(mount_unprivileged);
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_NE(refused.output.find("mounting a bpf filesystem on " + parent +
                                " (needs CAP_SYS_ADMIN): Operation not permitted"),
            std::string::npos)
      << refused.output;

  // Privileged, in a private mount namespace (gone with the process): mounts once, then finds it.
  const std::string script = "set -e; '" + std::string(IKELBD_PATH) + "' --config '" +
                             config_path_ + "' --mount-bpffs; stat -f -c %T '" + parent + "'; '" +
                             IKELBD_PATH + "' --config '" + config_path_ +
                             "' --mount-bpffs; grep -c ' " + parent + " ' /proc/self/mountinfo";
  RunResult r = run({"unshare", "-m", "--propagation", "private", "sh", "-c", script});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "mounted a bpf filesystem on " + parent + "\nbpf_fs\n" + parent +
                          " is a bpf filesystem already\n1\n");
  // And nothing leaked into this mount namespace.
  EXPECT_NE(run({"stat", "-f", "-c", "%T", parent}).output, "bpf_fs\n");
}

}  // namespace
}  // namespace ikelb::test
