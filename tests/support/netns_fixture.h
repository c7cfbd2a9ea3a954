// The common base of the netns test fixtures (tests/netns/*_test.cc): a work directory, a unique
// namespace prefix and a private bpffs per test; the processes, namespaces, charons and mounts a
// test creates, all removed in TearDown, also when the test failed; and the helpers every fixture
// uses to build its topology and drive ikelbd and ikelbctl.
//
// A fixture derives from NetnsFixture, passes its NetnsOptions (binaries, names, timeouts) to the
// constructor, calls NetnsFixture::SetUp() first in its SetUp and returns if it failed, then
// builds its topology. Per-fixture steps of TearDown are the virtual hooks below.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "process.h"

namespace ikelb::test {

// "<transmitted> <received>" of a ping summary, or nullopt.
std::optional<std::pair<int, int>> ping_counts(const std::string& output);
// Field `name` of the line pair `section` ("Ip:", "Icmp:", ...) of /proc/net/snmp, or nullopt.
std::optional<long> snmp_field(const std::string& snmp, const std::string& section,
                               const std::string& name);

struct NetnsOptions {
  // Binaries (each test target's compile definitions). strongswan_sh may stay empty when the
  // fixture starts no charon.
  std::string ikelbd{}, ikelbctl{}, netns_tool{}, strongswan_sh{};
  std::string work_dir_template = "/tmp/ikelb-netns-XXXXXX";  // for mkdtemp
  std::string prefix = "ik";  // namespace names: prefix + 4 base-36 digits + "-" + name
  int mac_tag = 0x1b;         // second byte of mac(): 02:<tag>:00:00:<link>:<side>
  std::chrono::milliseconds run_timeout = std::chrono::seconds(10);       // run()'s default
  std::chrono::milliseconds stop_grace = std::chrono::milliseconds(500);  // children, TearDown
  size_t log_tail = 4000;          // characters of the ikelbd log shown on failure
  const char* keep_env = nullptr;  // if set in the environment, a failed test keeps its dir_
};

class NetnsFixture : public ::testing::Test {
 protected:
  explicit NetnsFixture(NetnsOptions options) : opt_(std::move(options)) {}

  // Root check, work directory, unique prefix, bpffs mounted on dir_/bpf, the agent's paths.
  // Fatal failures only: a derived SetUp returns if HasFatalFailure() afterwards.
  void SetUp() override;

  // Removes everything SetUp and the test created, whatever state they were left in; every step
  // runs even when an earlier one failed: logs (on failure), before_agent_teardown(), the agent
  // (ikelbctl teardown), the other children, `ikelbd --teardown` for pins left behind, the
  // charons, the namespaces, the bpffs, the work directory.
  void TearDown() override;

  // ---- hooks ----

  // Prints what helps to understand a failure; by default the ikelbd log.
  virtual void dump_logs();
  // The data path's non-zero counters and its affinity entries, read from the pins.
  std::string datapath_report();
  // Runs in TearDown before the agent is stopped (e.g. stop a client of the agent first).
  virtual void before_agent_teardown() {}
  // Stops every child but the agent (pings, floods, clients of the agent).
  void stop_children_except_agent();
  // Checks after `ikelbctl teardown` (its result `ctl`) stopped the agent with wait `status`.
  virtual void check_agent_teardown(const RunResult& ctl, int status) {
    (void)ctl;
    (void)status;
  }

  // ---- processes ----

  // Runs a command to the end (killed after `timeout`, default opt_.run_timeout), its output in
  // the work directory.
  RunResult run(const Argv& argv, std::optional<std::chrono::milliseconds> timeout = {});
  // Runs every command at once and waits for all of them (one deadline for the set).
  std::vector<RunResult> run_all(const std::vector<Argv>& commands,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // Runs a set-up command; throws with its output if it fails.
  std::string must(const Argv& argv, std::optional<std::chrono::milliseconds> timeout = {});
  // A background process, output appended to `out_path`, stopped in TearDown.
  pid_t start(const Argv& argv, const std::string& out_path);
  // Takes `pid` off the list TearDown stops (it was stopped or reaped by the test).
  void forget(pid_t pid);
  // Polls `done` every 10 ms; throws, naming `what`, if it is still false after `limit`.
  template <typename F>
  void wait_for(const std::string& what, std::chrono::milliseconds limit, F&& done) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error(what + ": not within " + std::to_string(limit.count()) + " ms");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  // ---- namespaces ----

  // The full name of this test's namespace `name`.
  std::string ns(const std::string& name) const { return prefix_ + "-" + name; }
  // `argv` run inside namespace `name`.
  Argv in_ns(const std::string& name, Argv argv) const;
  // Writes `value` to `path` (a /proc file) inside namespace `netns`.
  void write_proc(const std::string& netns, const std::string& path, const std::string& value);
  // Adds namespace `name` (deleted in TearDown) with lo up, and runs `sysctl -qw SETTINGS` in it
  // when `sysctls` is not empty.
  void add_namespace(const std::string& name, const Argv& sysctls = {});
  // add_namespace() with rp_filter off (replies come from a VIP no namespace routes back to where
  // they arrive); a `router` also forwards.
  void add_host(const std::string& name, bool router = false);
  // 02:<mac_tag>:00:00:<link>:<side>: side 1 on the first namespace of a link, 2 on the peer.
  std::string mac(int link, int side) const;
  // A veth ifa (in a) -- ifb (in b), both up; with `link`, fixed MACs mac(link, 1) and
  // mac(link, 2) (for permanent neighbours).
  void add_link(const std::string& a, const std::string& ifa, const std::string& b,
                const std::string& ifb, std::optional<int> link = std::nullopt);
  // Joins namespace gw<i> (already added) to lb: g<i> 10.0.<i>.1/24 -- e0 10.0.<i>.2/24, MACs
  // of `link`, permanent neighbours both ways. With `routed`, also a default route via lb and
  // XDP_PASS on e0 (the peer of an XDP redirect target).
  void link_gateway(int i, int link, bool routed = true);

  // The lb and cli namespaces of the forwarding tests: lb forwards, with rp_filter off (replies
  // leave XDP with the VIP as source, which lb has no route to); c0 198.51.100.1/24 (lb) -- c1
  // 198.51.100.2/24 (cli), MACs of link 0, permanent neighbours; client(1..clients) on c1, routed
  // from lb via cli; XDP_PASS on c1.
  void add_lb_and_clients(int clients);
  // The lb and inet namespaces of the strongSwan tests, both routers (add_host): up0 192.0.2.2/24
  // (lb) -- l0 192.0.2.1/24 (inet), MACs of link 1, permanent neighbours; inet routes `vip` to lb,
  // lb routes 100.64.0.0/16 to inet; XDP_PASS on l0.
  void add_lb_behind_router(const std::string& vip);
  // Client n's address: 100.64.0.0 + n.
  static std::string client(int n) {
    return "100.64." + std::to_string(n / 256) + "." + std::to_string(n % 256);
  }

  // ---- ikelb_netns_tool serve ----

  // Output file of the responder of gw<i>.
  std::string serve_out(int i) const { return dir_ + "/serve" + std::to_string(i) + ".out"; }
  // Starts `ikelb_netns_tool serve --log LOG OPTIONS...` in gw<i> and waits (<= 5 s) until it
  // listens (its log exists).
  void start_serve(int i, const std::string& log, const Argv& options = {});

  // ---- the agent ----

  // Writes `config` to config_path_ (atomically: a temporary file, then rename).
  void write_config_json(const nlohmann::json& config);
  // Starts ikelbd (with agent_args_ after --config) in the lb namespace and waits (<= 10 s)
  // until `ikelbctl status` answers.
  void start_agent();
  // `ikelbctl --socket SOCKET COMMAND...` (5 s).
  RunResult ctl(const Argv& command);
  // The parsed output of `ikelbctl --json COMMAND...`; throws if it fails.
  nlohmann::json ctl_json(const Argv& command);
  // The entry `name` of `ikelbctl --json backends`; throws if there is none.
  nlohmann::json backend(const std::string& name);
  // Every entry of `ikelbctl --json backends`, by name.
  std::map<std::string, nlohmann::json> backends();
  // `ikelbctl teardown` for a running agent, then check_agent_teardown().
  void stop_agent_with_teardown();

  // ---- strongSwan (tests/netns/strongswan.sh) ----

  // `fn_and_args` (a function of strongswan.sh and its arguments) as a command.
  Argv sw(Argv fn_and_args) const;
  // gw<i>'s charon directory, and its address 10.0.<i>.2.
  std::string gateway_dir(int i) const { return dir_ + "/gw" + std::to_string(i); }
  static std::string gateway_address(int i) { return "10.0." + std::to_string(i) + ".2"; }
  // Namespaces gw<i> of `ids` (add_host, link_gateway on link 10 + i), then their charons, started
  // in parallel: responders with pre-shared key `psk`, inner pool 10.201.<i>.0/24, `options`.
  void add_charon_gateways(const std::vector<int>& ids, const std::string& psk,
                           const Argv& options = {});
  // sw_gateway_stop for every charon of charons_ (in parallel), then SIGKILL for any process still
  // running with a strongswan.conf of this test's directory (a failure).
  void stop_charons();

  // ---- state ----

  NetnsOptions opt_;
  std::string dir_, prefix_, bpffs_, config_path_, socket_, agent_log_;
  bool bpffs_mounted_ = false;
  std::vector<std::string> namespaces_;         // short names, deleted in TearDown
  std::vector<int> gateways_;                   // gw<i> added, in order
  std::map<std::string, std::string> charons_;  // strongswan.sh WORKDIR -> short namespace name
  std::vector<pid_t> children_;                 // stopped in TearDown
  pid_t agent_pid_ = -1;
  Argv agent_args_;  // more ikelbd arguments, e.g. --watch-config
  int run_counter_ = 0;
};

}  // namespace ikelb::test
