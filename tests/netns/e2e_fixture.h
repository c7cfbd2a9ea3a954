// The fixture of the tests with real IKEv2 peers (e2e_test.cc, mobike_test.cc): strongSwan
// clients and gateways (charon, PSK and certificate auth, kernel-libipsec CHILD_SAs) in network
// namespaces, balanced by ikelbd.
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
// The e2e tests take 10-16 s each; ctest runs them one at a time (RESOURCE_LOCK ikelb_e2e),
// since the failover and ping-loss checks are timing checks.
#pragma once

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

inline double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// The value of one sample ("name{labels}" exactly as exposed), or nullopt.
inline std::optional<double> metric(const std::string& metrics, const std::string& sample) {
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
  // `prefix`: of the namespaces (2 letters), so that another test binary's leftovers never clash.
  explicit E2eTest(const char* prefix = "ie")
      : NetnsFixture({.ikelbd = IKELBD_PATH,
                      .ikelbctl = IKELBCTL_PATH,
                      .netns_tool = IKELB_NETNS_TOOL_PATH,
                      .strongswan_sh = IKELB_STRONGSWAN_SH,
                      .work_dir_template = "/tmp/ikelb-e2e-XXXXXX",
                      .prefix = prefix,
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

  // The virtual server's health check: fast, so that failover tests see a gateway go down soon.
  nlohmann::json health_check_ = {
      {"mode", "stateless"}, {"interval_ms", 200}, {"timeout_ms", 150}, {"rise", 2}, {"fall", 3}};

  void write_config(const std::vector<int>& backends, uint32_t idle_timeout_s = 600) {
    nlohmann::json ifs = {"up0"}, list = nlohmann::json::array();
    std::set<int> links(gateways_.begin(), gateways_.end());
    links.insert(backends.begin(), backends.end());  // the gateways about to be added
    for (int i : links) ifs.push_back("g" + std::to_string(i));
    for (int i : backends) {
      list.push_back({{"name", "gw" + std::to_string(i)}, {"address", gateway_address(i)}});
      if (spi_ids_.count(i)) list.back()["spi_id"] = spi_ids_.at(i);
    }
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
           {"health_check", health_check_},
           {"backends", list}}}}};
    if (!spi_routing_.is_null()) config["virtual_servers"][0]["spi_routing"] = spi_routing_;
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

  // The virtual server's spi_routing section and the backends' spi_id, when set (mobike_test.cc).
  nlohmann::json spi_routing_;
  std::map<int, int> spi_ids_;
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

inline std::string placement_text(const std::map<std::string, int>& where) {
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
}  // namespace ikelb::test
