// End to end with real IKEv2 peers: strongSwan clients and gateways (charon, PSK and certificate
// auth, kernel-libipsec CHILD_SAs) in network namespaces, balanced by ikelbd.
//
//   PREFIX-c<N>  e0 100.64.1.N/16 ─┐  one charon initiator per client namespace
//   PREFIX-nat   e0 100.64.2.1/16 ─┤  br0 100.64.0.1/16
//     lan 192.168.1.1/24 ── e0 192.168.1.2/24 PREFIX-n1   (nftables masquerade: NAT-T)
//                                  PREFIX-inet  l0 192.0.2.1/24 ── up0 192.0.2.2/24 PREFIX-lb
//                                  (routes the VIP 203.0.113.10 to ikelb)   ikelbd, XDP on up0,
//                                  g<i>
//   PREFIX-gw<i>  e0 10.0.<i>.2/24 ── g<i> 10.0.<i>.1/24 of PREFIX-lb; default route via ikelb.
//                 charon responder, inner pool 10.201.<i>.0/24, 10.200.0.1 behind the tunnel
//
// Each client is its own namespace with its own charon (~10 MB RSS, ~2.3 MB PSS each; 30 of
// them start and connect in parallel in 3-5 s on 2 CPUs), so every client has its own address and
// the gateways see that address. The charons come from tests/netns/strongswan.sh. Every
// namespace, process and mount a test creates is removed in TearDown, also when the test failed
// (IKELB_E2E_KEEP=1 keeps the work directory of a failed test: logs, configs, certificates).
// The eight tests take 10-16 s each; ctest runs them one at a time (RESOURCE_LOCK ikelb_e2e),
// since the failover and ping-loss checks are timing checks.
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

#include "ikelb_abi.h"
#include "maglev.h"
#include "netns_fixture.h"
#include "process.h"
#include "swanctl_sas.h"

// In ikelb::test for the process helpers of support/process.h.
namespace ikelb::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kVip = "203.0.113.10";
constexpr const char* kPsk = "ikelb-e2e-psk-0123456789";
constexpr const char* kInside = "10.200.0.1";  // behind every gateway, inside the tunnels
constexpr const char* kNatPublic = "100.64.2.1";
constexpr const char* kNatClient = "192.168.1.2";
constexpr uint32_t kTableSize = 65537;
constexpr std::chrono::milliseconds kStopGrace = 1s;  // SIGTERM to SIGKILL, for stop_process
constexpr size_t kTailChars = 3000;                   // of a log or an output shown on failure

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// The value of one sample ("name{labels}" exactly as exposed), or nullopt.
std::optional<double> metric(const std::string& metrics, const std::string& sample) {
  std::istringstream in(metrics);
  std::string line;
  while (std::getline(in, line))
    if (line.size() > sample.size() + 1 && line.starts_with(sample) && line[sample.size()] == ' ')
      return std::stod(line.substr(sample.size() + 1));
  return std::nullopt;
}

struct Client {
  std::string name, ns, dir;
  std::string address;  // its own address
  std::string seen_as;  // the address gateways see (the NAT's for the NATed client)
};

class E2eTest : public NetnsFixture {
 protected:
  E2eTest()
      : NetnsFixture({.ikelbd = IKELBD_PATH,
                      .ikelbctl = IKELBCTL_PATH,
                      .netns_tool = IKELB_NETNS_TOOL_PATH,
                      .strongswan_sh = IKELB_STRONGSWAN_SH,
                      .work_dir_template = "/tmp/ikelb-e2e-XXXXXX",
                      .prefix = "ie",
                      .mac_tag = 0x1e,
                      .run_timeout = 20s,
                      .stop_grace = kStopGrace,
                      .log_tail = kTailChars,
                      .keep_env = "IKELB_E2E_KEEP"}) {}

  // ---- topology ----

  void SetUp() override {
    NetnsFixture::SetUp();
    if (HasFatalFailure()) return;
    add_lb_behind_router(kVip);
    // A fixed MAC: a bridge takes its lowest port's MAC by default, and adding a client host
    // changed it, cutting off every host whose ARP entry still had the old one for ~10 s.
    must({"ip", "-n", ns("inet"), "link", "add", "br0", "address", mac(2, 1), "type", "bridge"});
    must({"ip", "-n", ns("inet"), "addr", "add", "100.64.0.1/16", "dev", "br0"});
    must({"ip", "-n", ns("inet"), "link", "set", "br0", "up"});
  }

  // The pings and other helpers first, then the agent (TearDown).
  void before_agent_teardown() override { stop_children_except_agent(); }

  void dump_logs() override {
    NetnsFixture::dump_logs();
    // Neighbours and the veths' non-zero XDP counters (redirect and transmit errors) on the path.
    const std::string links =
        "ip -br link; ip neigh; for i in $(ls /sys/class/net); do ethtool -S $i 2>/dev/null | "
        "grep -E 'xdp|drop|err' | grep -v ': 0$' | sed \"s/^/$i/\"; done";
    for (const char* where : {"lb", "inet"})
      std::fprintf(stderr, "---- %s ----\n%s\n", where,
                   run(in_ns(where, {"bash", "-c", links})).output.c_str());
    for (int i : gateways_)
      std::fprintf(stderr, "---- gw%d charon.log ----\n%s\n", i,
                   tail(read_file(gateway_dir(i) + "/charon.log"), 2500).c_str());
  }

  // A partial UDP checksum does not survive an XDP redirect: traffic that originates in a
  // namespace leaves with a full one.
  void tx_csum_off(const std::string& name, const std::string& ifname) {
    must(in_ns(name, {"ethtool", "-K", ifname, "tx", "off"}));
  }

  static std::string client_address(int n) { return "100.64.1." + std::to_string(n); }
  static std::string client_name(int n) { return "c" + std::to_string(n); }

  // Client namespaces c<first>..c<first+count-1> on the internet bridge (no charon yet).
  std::vector<std::string> add_client_hosts(int first, int count) {
    std::vector<std::string> names;
    for (int n = first; n < first + count; n++) {
      Client c;
      c.name = client_name(n);
      c.ns = ns(c.name);
      c.dir = dir_ + "/" + c.name;
      c.address = c.seen_as = client_address(n);
      add_host(c.name);
      add_link("inet", "p" + std::to_string(n), c.name, "e0");
      must({"ip", "-n", ns("inet"), "link", "set", "p" + std::to_string(n), "master", "br0"});
      must({"ip", "-n", c.ns, "addr", "add", c.address + "/16", "dev", "e0"});
      must({"ip", "-n", c.ns, "route", "add", "default", "via", "100.64.0.1"});
      tx_csum_off(c.name, "e0");
      clients_[c.name] = c;
      names.push_back(c.name);
    }
    return names;
  }

  // n1 (192.168.1.2) behind the NAT router `nat` (100.64.2.1 on the bridge, masquerade with
  // random ports).
  std::string add_nat_client_host() {
    add_host("nat", true);
    add_link("inet", "pnat", "nat", "e0");
    must({"ip", "-n", ns("inet"), "link", "set", "pnat", "master", "br0"});
    must({"ip", "-n", ns("nat"), "addr", "add", std::string(kNatPublic) + "/16", "dev", "e0"});
    must({"ip", "-n", ns("nat"), "route", "add", "default", "via", "100.64.0.1"});
    Client c;
    c.name = "n1";
    c.ns = ns(c.name);
    c.dir = dir_ + "/n1";
    c.address = kNatClient;
    c.seen_as = kNatPublic;
    add_host(c.name);
    add_link("nat", "lan", c.name, "e0");
    must({"ip", "-n", ns("nat"), "addr", "add", "192.168.1.1/24", "dev", "lan"});
    must({"ip", "-n", c.ns, "addr", "add", c.address + "/24", "dev", "e0"});
    must({"ip", "-n", c.ns, "route", "add", "default", "via", "192.168.1.1"});
    tx_csum_off("n1", "e0");
    tx_csum_off("nat", "lan");
    tx_csum_off("nat", "e0");
    const std::string rules = dir_ + "/nat.nft";
    std::ofstream(rules) << "table ip nat {\n"
                            "  chain postrouting {\n"
                            "    type nat hook postrouting priority srcnat; policy accept;\n"
                            "    oifname \"e0\" masquerade random\n"
                            "  }\n"
                            "}\n";
    must(in_ns("nat", {"nft", "-f", rules}));
    clients_[c.name] = c;
    return c.name;
  }

  // Starts the clients' charons and brings their tunnels up, all in parallel. Returns the time
  // it took.
  double connect(const std::vector<std::string>& names, const Argv& options = {}) {
    std::vector<Argv> commands;
    for (const auto& name : names) {
      const Client& c = clients_.at(name);
      Argv start = {"sw_client_start", c.ns, c.dir, c.address, kVip, "--psk", kPsk};
      start.insert(start.end(), options.begin(), options.end());
      // bash -c 'source LIB && "$@"' runs one function: chain the two through a tiny wrapper.
      Argv argv = {"bash", "-c",
                   "source \"$0\" || exit 1; ns=$1 wd=$2; sw_client_start \"$@\" && "
                   "sw_client_up \"$ns\" \"$wd\" 20",
                   IKELB_STRONGSWAN_SH};
      argv.insert(argv.end(), start.begin() + 1, start.end());
      commands.push_back(argv);
      charons_[c.dir] = name;
    }
    const auto t0 = Clock::now();
    auto results = run_all(commands, 60s);
    const double took = ms_since(t0);
    std::string failures;
    for (size_t k = 0; k < results.size(); k++)
      if (results[k].exit_code != 0)
        failures += names[k] + ": " + tail(results[k].output, kTailChars) + "\n";
    if (!failures.empty()) throw std::runtime_error("clients did not connect:\n" + failures);
    return took;
  }

  // ---- the agent ----

  void write_config(const std::vector<int>& backends, uint32_t idle_timeout_s = 600) {
    nlohmann::json ifs = {"up0"}, list = nlohmann::json::array();
    for (int i : gateways_) ifs.push_back("g" + std::to_string(i));
    for (int i : backends)
      list.push_back({{"name", "gw" + std::to_string(i)}, {"address", gateway_address(i)}});
    nlohmann::json config = {
        {"interfaces", ifs},
        {"bpffs", bpffs_ + "/ikelb"},
        {"admin", {{"socket", socket_}}},
        {"metrics", {{"listen", "127.0.0.1:9712"}}},
        {"affinity", {{"idle_timeout_s", idle_timeout_s}, {"max_entries", 65536}}},
        {"log_level", "info"},
        {"virtual_servers",
         {{{"name", "vpn"},
           {"address", kVip},
           {"maglev_table_size", kTableSize},
           {"health_check",
            {{"mode", "stateless"},
             {"interval_ms", 200},
             {"timeout_ms", 150},
             {"rise", 2},
             {"fall", 3}}},
           {"backends", list}}}}};
    write_config_json(config);
  }

  // Waits until `pred(backends())` holds; returns whether it did.
  template <typename Pred>
  bool wait_backends(Pred pred, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (pred(backends())) return true;
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(100ms);
    }
  }

  void wait_active(size_t n) {
    bool ok = wait_backends(
        [n](const auto& all) {
          size_t active = 0;
          for (const auto& [name, b] : all) active += b["state"] == "active";
          return active == n;
        },
        5s);
    if (!ok) throw std::runtime_error("backends not active: " + ctl_json({"backends"}).dump());
  }

  // Pinned-client counts by backend name, once they add up to `total` (the agent walks the
  // affinity table every second), or the last counts after 5 s.
  std::map<std::string, int> pinned_counts(int total) {
    std::map<std::string, int> out;
    wait_backends(
        [&](const auto& all) {
          out.clear();
          int sum = 0;
          for (const auto& [name, b] : all) {
            if (b["pinned_clients"].is_null()) return false;
            sum += out[name] = b["pinned_clients"].template get<int>();
          }
          return sum == total;
        },
        5s);
    return out;
  }

  std::string metrics() {
    RunResult r = run(in_ns("lb", {"bash", "-c",
                                   "exec 3<>/dev/tcp/127.0.0.1/9712 && printf 'GET /metrics "
                                   "HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' >&3 && cat <&3"}),
                      5s);
    if (r.exit_code != 0) throw std::runtime_error("metrics: " + r.output);
    return r.output;
  }

  // ---- strongSwan state ----

  std::vector<IkeSa> gateway_sas(int i) {
    RunResult r =
        run(sw({"sw_swanctl", ns("gw" + std::to_string(i)), gateway_dir(i), "--list-sas", "--raw"}),
            10s);
    if (r.exit_code != 0) throw std::runtime_error("gw" + std::to_string(i) + ": " + r.output);
    return parse_list_sas(r.output);
  }

  std::optional<IkeSa> client_sa(const std::string& name) {
    const Client& c = clients_.at(name);
    RunResult r =
        run(sw({"sw_swanctl", c.ns, c.dir, "--list-sas", "--raw", "--ike", "ikelb"}), 10s);
    if (r.exit_code != 0) throw std::runtime_error(name + ": " + r.output);
    for (const auto& sa : parse_list_sas(r.output))
      if (sa.name == "ikelb") return sa;
    return std::nullopt;
  }

  std::map<std::string, IkeSa> client_sas(const std::vector<std::string>& names) {
    std::vector<Argv> commands;
    for (const auto& name : names) {
      const Client& c = clients_.at(name);
      commands.push_back(sw({"sw_swanctl", c.ns, c.dir, "--list-sas", "--raw", "--ike", "ikelb"}));
    }
    auto results = run_all(commands, 20s);
    std::map<std::string, IkeSa> out;
    for (size_t k = 0; k < names.size(); k++)
      for (const auto& sa : parse_list_sas(results[k].output))
        if (sa.name == "ikelb") out[names[k]] = sa;
    return out;
  }

  // Where the gateways have an established IKE_SA: client name -> gateways (as seen by them),
  // and the SA on the first one.
  struct Placement {
    std::map<std::string, std::vector<int>> gateways;
    std::map<std::string, IkeSa> sa;
  };
  Placement placement(const std::vector<std::string>& names) {
    Placement p;
    std::map<std::string, std::string> by_address;
    for (const auto& name : names) by_address[clients_.at(name).seen_as] = name;
    for (int i : gateways_) {
      if (!alive_.count(i) || !alive_[i]) continue;
      for (const auto& sa : gateway_sas(i)) {
        if (sa.state != "ESTABLISHED") continue;
        auto it = by_address.find(sa.remote_host);
        if (it == by_address.end()) continue;
        p.gateways[it->second].push_back(i);
        p.sa.emplace(it->second, sa);
      }
    }
    return p;
  }

  // Each client's one gateway; a failure for a client seen on none or several.
  // The gateway of 1..3 with the most of `where`'s clients (the lowest on a tie), its clients and
  // the others.
  struct Split {
    int gw = 1;
    std::vector<std::string> on_it, others;
  };
  static Split busiest_gateway(const std::map<std::string, int>& where) {
    std::map<int, int> per_gw;
    for (const auto& [c, gw] : where) per_gw[gw]++;
    Split s;
    for (int gw : {2, 3})
      if (per_gw[gw] > per_gw[s.gw]) s.gw = gw;
    for (const auto& [c, gw] : where) (gw == s.gw ? s.on_it : s.others).push_back(c);
    return s;
  }

  std::map<std::string, int> single_gateway(const Placement& p,
                                            const std::vector<std::string>& names) {
    std::map<std::string, int> out;
    for (const auto& name : names) {
      auto it = p.gateways.find(name);
      if (it == p.gateways.end()) {
        ADD_FAILURE() << name << " (" << clients_.at(name).seen_as
                      << ") has an IKE_SA on no gateway";
        continue;
      }
      EXPECT_EQ(it->second.size(), 1u)
          << name << " has IKE_SAs on " << it->second.size() << " gateways";
      out[name] = it->second.front();
    }
    return out;
  }

  // The gateway Maglev picks for `address` among `backends` (gw<i>), as the XDP program does.
  static int predicted(const std::string& address, const std::vector<int>& backends) {
    std::vector<ikelb::MaglevBackend> list;
    for (int i : backends)
      list.push_back({"gw" + std::to_string(i), static_cast<uint32_t>(i), 100});
    const auto table = ikelb::build_maglev_table(list, kTableSize);
    ikelb_addr a{};
    inet_pton(AF_INET, address.c_str(), &a.u32[0]);
    return static_cast<int>(table[ikelb_client_hash(&a, IKELB_AF_INET) % kTableSize]);
  }

  // Pings 10.200.0.1 through each client's tunnel (in parallel); "" or the problems.
  std::string ping_all(const std::vector<std::string>& names, int count = 2) {
    std::vector<Argv> commands;
    for (const auto& name : names)
      commands.push_back(in_ns(
          name, {"ping", "-c", std::to_string(count), "-i", "0.2", "-W", "2", "-q", kInside}));
    auto results = run_all(commands, 30s);
    std::string problems;
    for (size_t k = 0; k < names.size(); k++) {
      auto counts = ping_counts(results[k].output);
      if (!counts || counts->second != count)
        problems += names[k] + ": " + results[k].output + "; ";
    }
    return problems;
  }

  // Background pings through the tunnels; collected by finish_pings().
  struct Pings {
    std::map<std::string, std::pair<pid_t, std::string>> running;  // name -> pid, output file
  };
  Pings start_pings(const std::vector<std::string>& names, int count, const std::string& interval) {
    Pings p;
    for (const auto& name : names) {
      std::string out = dir_ + "/ping-" + name + "." + std::to_string(run_counter_++);
      pid_t pid = start(in_ns(name, {"ping", "-c", std::to_string(count), "-i", interval, "-W", "2",
                                     "-q", kInside}),
                        out);
      p.running[name] = {pid, out};
    }
    return p;
  }
  // Waits for the pings; lost replies by client.
  std::map<std::string, int> finish_pings(Pings& p, std::chrono::milliseconds timeout) {
    std::map<std::string, int> lost;
    const auto deadline = Clock::now() + timeout;
    for (auto& [name, run] : p.running) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      auto status = wait_exit(run.first, std::max(left, 0ms));
      if (!status) stop_process(run.first, kStopGrace);
      forget(run.first);
      auto counts = ping_counts(read_file(run.second));
      lost[name] = counts ? counts->first - counts->second : 1000000;
    }
    p.running.clear();
    return lost;
  }

  std::string gateway_log(int i) { return read_file(gateway_dir(i) + "/charon.log"); }

  // Sizes of the datagrams charon logged as received from `from` ("ADDR[PORT]" prefix match).
  // The packets a charon log shows sent and received, and its IKE events.
  static std::string net_lines(const std::string& log) {
    std::istringstream in(log);
    std::string out, line;
    while (std::getline(in, line))
      if (line.find("[NET]") != std::string::npos || line.find("[IKE]") != std::string::npos)
        out += line + "\n";
    return tail(out, 6000);
  }

  static std::vector<int> received_sizes(const std::string& log, const std::string& from) {
    std::vector<int> out;
    const std::string key = "received packet: from " + from;
    std::istringstream in(log);
    std::string line;
    static const std::regex size(R"(\((\d+) bytes\))");
    while (std::getline(in, line)) {
      size_t at = line.find(key);
      if (at == std::string::npos) continue;
      std::smatch m;
      std::string rest = line.substr(at);
      if (std::regex_search(rest, m, size)) out.push_back(std::stoi(m[1]));
    }
    return out;
  }

  // Memory of this test's charons, in kB: {RSS, PSS} summed over them.
  std::pair<long, long> charons_memory_kb() {
    long rss = 0, pss = 0;
    for (const auto& [dir, name] : charons_) {
      std::string pid = read_file(dir + "/run/charon.pid");
      while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
      if (pid.empty()) continue;
      std::istringstream in(read_file("/proc/" + pid + "/smaps_rollup"));
      std::string line;
      while (std::getline(in, line)) {
        if (line.starts_with("Rss:")) rss += std::stol(line.substr(4));
        if (line.starts_with("Pss:")) pss += std::stol(line.substr(4));
      }
    }
    return {rss, pss};
  }

  std::vector<std::string> all_clients(const std::string& except = "") const {
    std::vector<std::string> out;
    for (const auto& [name, c] : clients_)
      if (name != except) out.push_back(name);
    return out;
  }

  std::map<int, bool> alive_;  // gateways whose charon runs (for placement())
  std::map<std::string, Client> clients_;

  // Three gateways, ikelbd with them all active.
  void standard_setup(uint32_t idle_timeout_s = 600, const Argv& gateway_options = {}) {
    add_charon_gateways({1, 2, 3}, kPsk, gateway_options);
    for (int i : {1, 2, 3}) alive_[i] = true;
    write_config({1, 2, 3}, idle_timeout_s);
    start_agent();
    wait_active(3);
  }
};

std::string placement_text(const std::map<std::string, int>& where) {
  std::map<int, std::vector<std::string>> by_gw;
  std::vector<std::pair<std::string, int>> sorted(where.begin(), where.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.first.size() != b.first.size() ? a.first.size() < b.first.size() : a.first < b.first;
  });
  for (const auto& [c, gw] : sorted) by_gw[gw].push_back(c);
  std::string out;
  for (const auto& [gw, list] : by_gw)
    out += "gw" + std::to_string(gw) + ": " + std::to_string(list.size()) + " (" + join(list, ",") +
           ")  ";
  return out;
}

// 1. Thirty clients establish IKE and CHILD SAs through the VIP and ping through their tunnels;
// every gateway sees each client's real address; the spread is the one Maglev predicts.
TEST_F(E2eTest, ThirtyClientsSpreadAsMaglevPredicts) {
  standard_setup();
  auto names = add_client_hosts(1, 30);
  const double took = connect(names);
  auto [rss, pss] = charons_memory_kb();
  std::printf(
      "[ e2e      ] 30 clients (own namespace, own charon) connected in %.0f ms; the %zu "
      "charons use %ld MB RSS, %ld MB PSS\n",
      took, charons_.size(), rss / 1024, pss / 1024);
  EXPECT_EQ(ping_all(names), "");

  auto sas = client_sas(names);
  for (const auto& name : names) {
    ASSERT_TRUE(sas.count(name)) << name << " has no IKE_SA";
    EXPECT_TRUE(sas[name].up()) << name << ": " << sas[name].state;
    EXPECT_EQ(sas[name].remote_host, kVip) << name << " talks to another address than the VIP";
  }
  Placement p = placement(names);
  auto where = single_gateway(p, names);
  ASSERT_EQ(where.size(), names.size());
  std::map<int, int> per_gw;
  for (const auto& name : names) {
    const Client& c = clients_.at(name);
    const IkeSa& gs = p.sa.at(name);
    EXPECT_EQ(gs.remote_host, c.address) << "the gateway does not see " << name << "'s address";
    EXPECT_EQ(gs.remote_id, c.address);
    EXPECT_TRUE(gs.up()) << name << " on gw" << where[name];
    // The gateway's and the client's SAs are the same SA.
    EXPECT_EQ(gs.spis(),
              std::string(sas[name].spi_i + "/" + sas[name].spi_r + " " +
                          sas[name].installed()->spi_out + "/" + sas[name].installed()->spi_in));
    EXPECT_EQ(where[name], predicted(c.address, {1, 2, 3})) << name << " " << c.address;
    per_gw[where[name]]++;
  }
  std::printf("[ e2e      ] placement: %s\n", placement_text(where).c_str());
  for (int gw : {1, 2, 3}) EXPECT_GT(per_gw[gw], 0) << "gw" << gw << " got no client";
  auto pinned = pinned_counts(30);
  for (int gw : {1, 2, 3})
    EXPECT_EQ(pinned["gw" + std::to_string(gw)], per_gw[gw]) << "ikelbctl backends, gw" << gw;
}

// 2. Every client's IKE_SA_INIT (UDP 500) and IKE_AUTH (UDP 4500) reach the same gateway: the one
// holding its SA. Checked in the gateways' logs (every datagram charon received, with its source).
TEST_F(E2eTest, IkeSaInitAndIkeAuthOfEveryClientReachOneGateway) {
  standard_setup();
  auto names = add_client_hosts(1, 30);
  connect(names);
  std::map<int, std::string> logs;
  for (int i : gateways_) logs[i] = gateway_log(i);
  auto where = single_gateway(placement(names), names);
  for (const auto& name : names) {
    const std::string& a = clients_.at(name).address;
    std::set<int> on500, on4500;
    for (const auto& [gw, log] : logs) {
      if (!received_sizes(log, a + "[500] to " + gateway_address(gw) + "[500]").empty())
        on500.insert(gw);
      if (!received_sizes(log, a + "[4500] to " + gateway_address(gw) + "[4500]").empty())
        on4500.insert(gw);
    }
    EXPECT_EQ(on500, std::set<int>{where[name]}) << name << "'s UDP 500 (IKE_SA_INIT)";
    EXPECT_EQ(on4500, std::set<int>{where[name]}) << name << "'s UDP 4500 (IKE_AUTH and later)";
    // The exchange itself, on that gateway: initiated from the client's address, authenticated.
    const std::string& log = logs[where[name]];
    EXPECT_NE(log.find(a + " is initiating an IKE_SA"), std::string::npos) << name;
    EXPECT_NE(log.find("authentication of '" + a + "' with pre-shared key successful"),
              std::string::npos)
        << name;
  }
}

// 3. A client behind a NAT (masquerade, random ports): NAT-T, ESP in UDP 4500 through ikelb.
TEST_F(E2eTest, NatedClientUsesNatTraversalThroughIkelb) {
  standard_setup();
  auto names = add_client_hosts(1, 2);
  names.push_back(add_nat_client_host());
  connect(names);
  EXPECT_EQ(ping_all(names, 3), "");
  Placement p = placement(names);
  auto where = single_gateway(p, names);
  ASSERT_TRUE(where.count("n1"));
  const IkeSa& gs = p.sa.at("n1");
  EXPECT_EQ(gs.remote_host, kNatPublic) << "the gateway sees the NAT's public address";
  EXPECT_EQ(gs.remote_id, kNatClient);
  EXPECT_TRUE(gs.nat_remote) << "the gateway did not detect the NAT";
  EXPECT_EQ(gs.local_port, "4500");
  ASSERT_NE(gs.installed(), nullptr);
  EXPECT_TRUE(gs.installed()->encap) << "ESP not in UDP";
  EXPECT_EQ(where["n1"], predicted(kNatPublic, {1, 2, 3}));
  auto sa = client_sa("n1");
  ASSERT_TRUE(sa && sa->up());
  EXPECT_EQ(sa->local_port, "4500");
  EXPECT_EQ(sa->remote_host, kVip);
  EXPECT_EQ(sa->remote_port, "4500");
  EXPECT_TRUE(sa->installed()->encap);
  // The NATed client's ESP-in-UDP reached its gateway on 4500, from the NAT's translated port.
  auto sizes = received_sizes(gateway_log(where["n1"]),
                              std::string(kNatPublic) + "[" + gs.remote_port + "] to " +
                                  gateway_address(where["n1"]) + "[4500]");
  EXPECT_FALSE(sizes.empty());
  std::printf("[ e2e      ] NATed client %s seen by gw%d as %s[%s]\n", kNatClient, where["n1"],
              gs.remote_host.c_str(), gs.remote_port.c_str());
}

// 4. Certificate authentication both ways with RSA-4096 certificates and long SAN lists, IKEv2
// fragmentation off on the clients: IKE_AUTH requests and responses are IP-fragmented and
// establish through ikelb.
TEST_F(E2eTest, CertificateAuthWithIpFragmentedIkeAuth) {
  const std::string pki = dir_ + "/pki";
  std::filesystem::create_directories(pki);
  auto openssl = [&](Argv args) {
    args.insert(args.begin(), "openssl");
    must(args);
  };
  // An ECDSA CA; one RSA-4096 key for the gateways and one for the clients (key generation is
  // the slow part), a certificate per gateway and per client with 60 DNS names each.
  openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", pki + "/ca.key", "-out", pki + "/ca.pem", "-days", "2", "-subj",
           "/CN=ikelb e2e CA"});
  {
    std::vector<Argv> keys;
    for (const char* who : {"gw", "client"})
      keys.push_back({"openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096",
                      "-out", pki + "/" + who + ".key"});
    for (auto& r : run_all(keys, 60s)) ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  int serial = 1;
  auto issue = [&](const std::string& key, const std::string& cn, const std::string& dir) {
    std::filesystem::create_directories(dir + "/x509");
    std::filesystem::create_directories(dir + "/private");
    std::filesystem::create_directories(dir + "/x509ca");
    std::string ext = dir + "/ext.cnf", csr = dir + "/req.csr", san;
    for (int i = 1; i <= 60; i++)
      san += (i > 1 ? "," : "") + std::string("DNS:alt-") + std::to_string(i) + "." + cn;
    std::ofstream(ext) << "subjectAltName=DNS:" << cn << "," << san << "\n"
                       << "extendedKeyUsage=serverAuth,clientAuth\n";
    openssl({"req", "-new", "-key", pki + "/" + key + ".key", "-subj", "/CN=" + cn, "-out", csr});
    openssl({"x509", "-req", "-in", csr, "-CA", pki + "/ca.pem", "-CAkey", pki + "/ca.key",
             "-set_serial", std::to_string(++serial), "-days", "2", "-extfile", ext, "-out",
             dir + "/x509/cert.pem"});
    std::filesystem::remove(ext);
    std::filesystem::remove(csr);
    std::filesystem::copy_file(pki + "/" + key + ".key", dir + "/private/key.pem");
    std::filesystem::copy_file(pki + "/ca.pem", dir + "/x509ca/ca.pem");
  };
  issue("gw", "vpn.example.net", pki + "/gw");
  const int kClients = 6;
  for (int n = 1; n <= kClients; n++)
    issue("client", "client" + std::to_string(n) + ".example.net", pki + "/c" + std::to_string(n));
  ASSERT_GT(std::filesystem::file_size(pki + "/gw/x509/cert.pem"), 3000u);

  standard_setup(600, {"--cert-dir", pki + "/gw", "--remote-auth", "pubkey"});
  auto names = add_client_hosts(1, kClients);
  for (const auto& name : names) {
    // Each client its own certificate (one identity per IKE_SA: INITIAL_CONTACT would replace a
    // same-identity SA on the gateway).
    connect({name}, {"--cert-dir", pki + "/" + name, "--local-cert", "--conn", "fragmentation=no"});
  }
  EXPECT_EQ(ping_all(names), "");
  auto where = single_gateway(placement(names), names);
  ASSERT_EQ(where.size(), names.size());

  for (const auto& name : names) {
    const Client& c = clients_.at(name);
    int gw = where[name];
    EXPECT_EQ(gw, predicted(c.address, {1, 2, 3})) << name;
    // The client's IKE_AUTH request, reassembled by the gateway, and the gateway's response,
    // reassembled by the client, are both larger than the 1500-byte MTU (the largest datagram
    // each logged from the other: nothing else they exchange comes near that size).
    auto requests =
        received_sizes(gateway_log(gw), c.address + "[4500] to " + gateway_address(gw) + "[4500]");
    ASSERT_FALSE(requests.empty()) << name;
    const int request = std::ranges::max(requests);
    EXPECT_GT(request, 1500) << name << "'s IKE_AUTH request was not fragmented";
    const std::string client_log = read_file(c.dir + "/charon.log");
    auto responses =
        received_sizes(client_log, std::string(kVip) + "[4500] to " + c.address + "[4500]");
    ASSERT_FALSE(responses.empty()) << name << "'s log:\n" << net_lines(client_log);
    const int response = std::ranges::max(responses);
    EXPECT_GT(response, 1500) << name
                              << " got no fragmented IKE_AUTH response from the VIP; its log:\n"
                              << net_lines(client_log);
    auto reasm = snmp_field(run(in_ns(name, {"cat", "/proc/net/snmp"})).output, "Ip:", "ReasmOKs");
    EXPECT_GE(reasm.value_or(0), 1) << name << " reassembled no datagram";
    std::printf("[ e2e      ] %s on gw%d: IKE_AUTH request %d bytes, response %d bytes\n",
                name.c_str(), gw, request, response);
  }
  long gw_reasm = 0;
  for (int i : gateways_)
    gw_reasm += snmp_field(run(in_ns("gw" + std::to_string(i), {"cat", "/proc/net/snmp"})).output,
                           "Ip:", "ReasmOKs")
                    .value_or(0);
  EXPECT_GE(gw_reasm, kClients);
  const std::string m = metrics();
  auto learned = metric(m, "ikelb_reply_fragments_learned_total");
  ASSERT_TRUE(learned.has_value()) << m;
  EXPECT_GE(*learned, kClients) << "first fragments of the gateways' IKE_AUTH responses";
  auto unknown = metric(m, "ikelb_datapath_packets_total{reason=\"pass_reply_fragment_unknown\"}");
  EXPECT_EQ(unknown.value_or(-1), 0) << "reply fragments ikelb could not translate";
}

// Client options for the failover test: DPD every second, restart on DPD timeout, retransmits
// given up after ~4 s (0.5 s, then x1.4, 3 retransmits), retrying forever.
const Argv kDpdClient = {"--conn",   "dpd_delay=1s",        "--conn",   "keyingtries=0",
                         "--child",  "dpd_action=restart",  "--charon", "retransmit_timeout=0.5",
                         "--charon", "retransmit_base=1.4", "--charon", "retransmit_tries=3"};

// 5. A gateway fails (link cut, charon killed): its clients re-establish on the survivors (DPD,
// restart), the others keep their SAs with unchanged SPIs.
TEST_F(E2eTest, GatewayFailureMovesItsClientsOnly) {
  standard_setup();
  auto names = add_client_hosts(1, 12);
  connect(names, kDpdClient);
  auto where = single_gateway(placement(names), names);
  ASSERT_EQ(where.size(), names.size());
  const Split split = busiest_gateway(where);
  const int victim = split.gw;
  const std::vector<std::string>&moved = split.on_it, &stayed = split.others;
  ASSERT_FALSE(moved.empty());
  auto before = client_sas(names);

  const std::string gwns = "gw" + std::to_string(victim);
  std::string pid = read_file(gateway_dir(victim) + "/run/charon.pid");
  ASSERT_FALSE(pid.empty());
  const auto t0 = Clock::now();
  must({"ip", "-n", ns(gwns), "link", "set", "e0", "down"});
  ASSERT_EQ(kill(std::stoi(pid), SIGKILL), 0);
  alive_[victim] = false;

  // ikelbd marks it down (probes).
  double down_ms = -1;
  if (wait_backends([&](const auto& all) { return all.at(gwns)["state"] == "down"; }, 10s))
    down_ms = ms_since(t0);
  EXPECT_GE(down_ms, 0) << gwns << " not marked down";

  // Its clients re-establish (new SPIs) on a survivor.
  std::set<std::string> pending(moved.begin(), moved.end());
  std::map<std::string, double> reconnected_ms;
  const auto deadline = t0 + 60s;
  while (!pending.empty() && Clock::now() < deadline) {
    auto now = client_sas(std::vector<std::string>(pending.begin(), pending.end()));
    for (const auto& [name, sa] : now)
      if (sa.up() && sa.spi_i != before[name].spi_i) {
        reconnected_ms[name] = ms_since(t0);
        pending.erase(name);
      }
    if (!pending.empty()) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(pending.empty()) << pending.size() << " clients of " << gwns
                               << " did not re-establish within 60 s";
  double max_ms = 0;
  for (const auto& [n, t] : reconnected_ms) max_ms = std::max(max_ms, t);
  std::printf(
      "[ e2e      ] %s failed: marked down after %.0f ms; its %zu clients all "
      "re-established after %.0f ms (first %.0f ms); %zu other clients untouched\n",
      gwns.c_str(), down_ms, moved.size(), max_ms,
      std::min_element(reconnected_ms.begin(), reconnected_ms.end(),
                       [](auto& a, auto& b) { return a.second < b.second; })
          ->second,
      stayed.size());
  RecordProperty("failover_all_reconnected_ms", static_cast<int>(max_ms));

  EXPECT_EQ(ping_all(names), "");
  auto after_where = single_gateway(placement(names), names);
  auto after = client_sas(names);
  std::vector<int> survivors;
  for (int gw : {1, 2, 3})
    if (gw != victim) survivors.push_back(gw);
  for (const auto& name : moved) {
    EXPECT_NE(after_where[name], victim) << name;
    EXPECT_EQ(after_where[name], predicted(clients_.at(name).address, survivors)) << name;
  }
  for (const auto& name : stayed) {
    EXPECT_EQ(after_where[name], where[name]) << name << " moved";
    EXPECT_EQ(after[name].spis(), before[name].spis()) << name << "'s SAs changed";
  }
  auto fo =
      metric(metrics(), "ikelb_failovers_total{virtual_server=\"vpn\",backend=\"" + gwns + "\"}");
  EXPECT_EQ(fo.value_or(-1), static_cast<double>(moved.size())) << "one failover per moved client";
}

// 6. Drain: the drained gateway's clients keep their SAs and can rekey; new clients never reach
// it; once its clients are gone it reports drained.
TEST_F(E2eTest, DrainKeepsSasRekeysAndEndsDrained) {
  constexpr uint32_t kIdle = 4;
  standard_setup(kIdle);
  auto names = add_client_hosts(1, 9);
  connect(names);
  auto where = single_gateway(placement(names), names);
  ASSERT_EQ(where.size(), names.size());
  const Split split = busiest_gateway(where);
  const int drained = split.gw;
  const std::string gwname = "gw" + std::to_string(drained);
  const std::vector<std::string>& on_it = split.on_it;
  ASSERT_FALSE(on_it.empty());
  // Traffic keeps every client seen (the affinity idle timeout is short here; clients that are
  // silent for longer count as gone).
  Pings keep = start_pings(names, 100, "0.5");
  EXPECT_EQ(pinned_counts(9)[gwname], static_cast<int>(on_it.size()));

  must({IKELBCTL_PATH, "--socket", socket_, "drain", gwname});
  EXPECT_EQ(backends()[gwname]["state"], "draining");

  // Rekey the IKE_SA and the CHILD_SA of every client of the drained gateway.
  auto before = client_sas(on_it);
  for (const auto& name : on_it) {
    const Client& c = clients_.at(name);
    must(sw({"sw_swanctl", c.ns, c.dir, "--rekey", "--ike", "ikelb"}));
    must(sw({"sw_swanctl", c.ns, c.dir, "--rekey", "--child", "ikelb"}));
  }
  // The old SAs are deleted in separate exchanges: wait until each client has rekeyed SAs and
  // the drained gateway holds exactly that IKE_SA for it.
  std::map<std::string, IkeSa> after;
  Placement p;
  auto rekeyed = [&] {
    after = client_sas(on_it);
    p = placement(on_it);
    for (const auto& name : on_it) {
      if (!after.count(name) || !after[name].up() || !p.gateways.count(name)) return false;
      if (after[name].spi_i == before[name].spi_i ||
          after[name].installed()->spi_in == before[name].installed()->spi_in)
        return false;
      if (p.gateways[name].size() != 1 || p.sa.at(name).spi_i != after[name].spi_i) return false;
    }
    return true;
  };
  const auto rekey_deadline = Clock::now() + 10s;
  while (!rekeyed() && Clock::now() < rekey_deadline) std::this_thread::sleep_for(200ms);
  for (const auto& name : on_it) {
    ASSERT_TRUE(after.count(name) && after[name].up()) << name;
    EXPECT_NE(after[name].spi_i, before[name].spi_i) << name << ": IKE_SA not rekeyed";
    EXPECT_NE(after[name].installed()->spi_in, before[name].installed()->spi_in)
        << name << ": CHILD_SA not rekeyed";
    ASSERT_TRUE(p.gateways.count(name)) << name;
    EXPECT_EQ(p.gateways[name], std::vector<int>{drained}) << name << " left " << gwname;
    EXPECT_EQ(p.sa.at(name).spi_i, after[name].spi_i) << name;
  }
  EXPECT_EQ(ping_all(on_it), "");

  // New clients: never on the drained gateway, exactly where Maglev without it puts them.
  const size_t drained_log_size = gateway_log(drained).size();
  auto fresh = add_client_hosts(10, 9);
  connect(fresh);
  auto fresh_where = single_gateway(placement(fresh), fresh);
  std::vector<int> rest;
  for (int gw : {1, 2, 3})
    if (gw != drained) rest.push_back(gw);
  const std::string new_log = gateway_log(drained).substr(drained_log_size);
  for (const auto& name : fresh) {
    EXPECT_NE(fresh_where[name], drained) << name << " reached the draining " << gwname;
    EXPECT_EQ(fresh_where[name], predicted(clients_.at(name).address, rest)) << name;
    EXPECT_EQ(new_log.find("from " + clients_.at(name).address + "["), std::string::npos)
        << name << "'s packets reached " << gwname;
  }
  EXPECT_TRUE(wait_backends(
      [&](const auto& all) {
        return all.at(gwname)["state"] == "draining" &&
               all.at(gwname)["pinned_clients"] == on_it.size();
      },
      5s))
      << backends()[gwname].dump();

  // Its clients leave: drained after the idle timeout.
  finish_pings(keep, 1ms);  // stops them
  for (const auto& name : on_it) {
    const Client& c = clients_.at(name);
    must(sw({"sw_client_down", c.ns, c.dir}));
  }
  const auto t0 = Clock::now();
  EXPECT_TRUE(wait_backends(
      [&](const auto& all) {
        return all.at(gwname)["state"] == "drained" && all.at(gwname)["pinned_clients"] == 0;
      },
      std::chrono::seconds(kIdle + 5)))
      << backends()[gwname].dump();
  std::printf(
      "[ e2e      ] %s drained %.0f ms after its %zu clients disconnected (idle timeout "
      "%u s)\n",
      gwname.c_str(), ms_since(t0), on_it.size(), kIdle);
}

// 7. kill -9 of ikelbd while the tunnels carry pings: no SA breaks, at most one ping lost per
// client, and the restarted agent reports the same pinned clients.
TEST_F(E2eTest, KillDashNineOfIkelbdUnderPingsBreaksNothing) {
  standard_setup();
  auto names = add_client_hosts(1, 12);
  connect(names);
  auto where = single_gateway(placement(names), names);
  auto before = client_sas(names);
  auto pinned_before = pinned_counts(12);
  int total = 0;
  for (const auto& [n, c] : pinned_before) total += c;
  ASSERT_EQ(total, 12) << "pinned clients before the kill";
  std::map<std::string, int> expected;
  for (const auto& [c, gw] : where) expected["gw" + std::to_string(gw)]++;
  for (const auto& [name, n] : pinned_before) EXPECT_EQ(n, expected[name]) << name;

  Pings pings = start_pings(names, 50, "0.1");  // 5 s
  std::this_thread::sleep_for(1500ms);
  ASSERT_EQ(kill(agent_pid_, SIGKILL), 0);
  ASSERT_TRUE(wait_exit(agent_pid_, 5s).has_value());
  forget(agent_pid_);
  agent_pid_ = -1;
  std::this_thread::sleep_for(500ms);
  const auto t_restart = Clock::now();
  start_agent();
  std::printf("[ e2e      ] ikelbd killed, restarted after 500 ms, answering after %.0f ms\n",
              ms_since(t_restart));
  auto lost = finish_pings(pings, 20s);
  for (const auto& [name, n] : lost) EXPECT_LE(n, 1) << name << " lost " << n << " pings";

  EXPECT_EQ(ctl_json({"status"})["adopted"], true);
  auto after = client_sas(names);
  for (const auto& name : names) {
    ASSERT_TRUE(after.count(name)) << name;
    EXPECT_TRUE(after[name].up()) << name;
    EXPECT_EQ(after[name].spis(), before[name].spis()) << name << "'s SAs changed";
  }
  auto after_where = single_gateway(placement(names), names);
  EXPECT_EQ(after_where, where);
  EXPECT_EQ(pinned_counts(12), pinned_before) << "pinned clients reported by the new ikelbd";
  for (const auto& [name, b] : backends()) EXPECT_EQ(b["state"], "active") << name;
}

// 8. A reload that adds a gateway while the tunnels carry traffic moves no established client;
// new clients spread over four gateways as Maglev predicts.
TEST_F(E2eTest, ReloadAddingAGatewayUnderTrafficMovesNoClient) {
  add_charon_gateways({1, 2, 3, 4}, kPsk);
  for (int i : {1, 2, 3, 4}) alive_[i] = true;
  write_config({1, 2, 3});
  start_agent();
  wait_active(3);
  auto names = add_client_hosts(1, 12);
  connect(names);
  auto where = single_gateway(placement(names), names);
  auto before = client_sas(names);
  for (const auto& [c, gw] : where) EXPECT_NE(gw, 4);

  Pings pings = start_pings(names, 40, "0.1");  // 4 s
  std::this_thread::sleep_for(1s);
  write_config({1, 2, 3, 4});
  must({IKELBCTL_PATH, "--socket", socket_, "reload"});
  wait_active(4);
  auto lost = finish_pings(pings, 20s);
  for (const auto& [name, n] : lost) EXPECT_LE(n, 1) << name << " lost " << n << " pings";

  auto after = client_sas(names);
  auto after_where = single_gateway(placement(names), names);
  for (const auto& name : names) {
    EXPECT_EQ(after_where[name], where[name]) << name << " moved";
    EXPECT_EQ(after[name].spis(), before[name].spis()) << name << "'s SAs changed";
  }
  const std::string gw4_log = gateway_log(4);
  for (const auto& name : names)
    EXPECT_EQ(gw4_log.find("from " + clients_.at(name).address + "["), std::string::npos)
        << name << "'s packets reached gw4";

  auto fresh = add_client_hosts(13, 12);
  connect(fresh);
  auto fresh_where = single_gateway(placement(fresh), fresh);
  int on4 = 0;
  for (const auto& name : fresh) {
    EXPECT_EQ(fresh_where[name], predicted(clients_.at(name).address, {1, 2, 3, 4})) << name;
    on4 += fresh_where[name] == 4;
  }
  EXPECT_GT(on4, 0) << "no new client on gw4";
  std::printf("[ e2e      ] after the reload: new clients %s\n",
              placement_text(fresh_where).c_str());
}

}  // namespace
}  // namespace ikelb::test
