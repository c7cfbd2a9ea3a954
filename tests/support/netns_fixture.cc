#include "netns_fixture.h"

#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "datapath.h"

namespace ikelb::test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::optional<std::pair<int, int>> ping_counts(const std::string& output) {
  static const std::regex summary(R"((\d+) packets transmitted, (\d+) received)");
  std::smatch m;
  if (!std::regex_search(output, m, summary)) return std::nullopt;
  return std::make_pair(std::stoi(m[1]), std::stoi(m[2]));
}

std::optional<long> snmp_field(const std::string& snmp, const std::string& section,
                               const std::string& name) {
  std::istringstream in(snmp);
  std::string header, values;
  while (std::getline(in, header)) {
    if (!header.starts_with(section + " ")) continue;
    std::getline(in, values);
    std::istringstream h(header), v(values);
    std::string key, value;
    while (h >> key && v >> value)
      if (key == name) return std::stol(value);
  }
  return std::nullopt;
}

void NetnsFixture::SetUp() {
  ASSERT_EQ(geteuid(), 0u) << "the netns tests need root";
  std::vector<char> tmpl(opt_.work_dir_template.begin(), opt_.work_dir_template.end());
  tmpl.push_back('\0');
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr)
      << opt_.work_dir_template << ": " << std::strerror(errno);
  dir_ = tmpl.data();
  // A unique prefix: opt_.prefix + 4 base-36 digits from the pid and a counter, skipping names in
  // use.
  static int counter = 0;
  for (int attempt = 0; prefix_.empty() && attempt < 100; attempt++) {
    uint32_t v = (static_cast<uint32_t>(getpid()) * 37u + static_cast<uint32_t>(counter++)) %
                 (36u * 36u * 36u * 36u);
    std::string p = opt_.prefix;
    for (int i = 0; i < 4; i++, v /= 36) p += "0123456789abcdefghijklmnopqrstuvwxyz"[v % 36];
    if (!std::filesystem::exists("/run/netns/" + p + "-lb")) prefix_ = p;
  }
  ASSERT_FALSE(prefix_.empty());

  bpffs_ = dir_ + "/bpf";
  std::filesystem::create_directory(bpffs_);
  ASSERT_EQ(mount("bpf", bpffs_.c_str(), "bpf", 0, nullptr), 0)
      << "mount -t bpf: " << std::strerror(errno);
  bpffs_mounted_ = true;
  config_path_ = dir_ + "/ikelb.json";
  socket_ = dir_ + "/ikelb.sock";
  agent_log_ = dir_ + "/ikelbd.log";
}

void NetnsFixture::TearDown() {
  auto step = [this](const char* what, const auto& f) {
    try {
      f();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "TearDown: " << what << ": " << e.what();
    }
  };
  if (HasFailure()) step("logs", [this] { dump_logs(); });
  step("before the agent", [this] { before_agent_teardown(); });
  // The agent first: ikelbctl teardown while it runs, so it detaches and unpins itself.
  step("ikelbctl teardown", [this] { stop_agent_with_teardown(); });
  for (pid_t pid : children_)
    step("stopping a process", [&] { stop_process(pid, opt_.stop_grace); });
  children_.clear();
  // An agent that is gone (kill -9, a failed test) left its pins: ikelbd --teardown.
  step("ikelbd --teardown", [this] {
    if (!bpffs_mounted_ || !std::filesystem::exists(bpffs_ + "/ikelb")) return;
    if (std::find(namespaces_.begin(), namespaces_.end(), "lb") == namespaces_.end()) return;
    RunResult r = run(in_ns("lb", {opt_.ikelbd, "--config", config_path_, "--teardown"}), 10s);
    if (r.exit_code != 0) ADD_FAILURE() << "ikelbd --teardown: " << r.output;
  });
  step("stopping the charons", [this] { stop_charons(); });
  step("ip netns del", [this] {
    std::vector<Argv> dels;
    for (const auto& name : namespaces_) dels.push_back({"ip", "netns", "del", ns(name)});
    auto results = run_all(dels, 30s);
    for (size_t k = 0; k < results.size(); k++)
      if (results[k].exit_code != 0) ADD_FAILURE() << join(dels[k]) << ": " << results[k].output;
  });
  namespaces_.clear();
  if (bpffs_mounted_ && umount2(bpffs_.c_str(), MNT_DETACH) != 0)
    ADD_FAILURE() << "umount " << bpffs_ << ": " << std::strerror(errno);
  bpffs_mounted_ = false;
  if (!dir_.empty()) {
    if (HasFailure() && opt_.keep_env && std::getenv(opt_.keep_env)) {
      std::fprintf(stderr, "work directory kept: %s\n", dir_.c_str());
    } else {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }
}

void NetnsFixture::dump_logs() {
  std::fprintf(stderr, "---- ikelbd log (%s) ----\n%s\n", agent_log_.c_str(),
               tail(read_file(agent_log_), opt_.log_tail).c_str());
  if (std::filesystem::exists(bpffs_ + "/ikelb"))
    std::fprintf(stderr, "---- data path ----\n%s\n", datapath_report().c_str());
}

std::string NetnsFixture::datapath_report() {
  std::string out;
  try {
    // Adopts the agent's pinned maps (all present: the pin directory exists) and only reads.
    Datapath dp({.pin_dir = bpffs_ + "/ikelb"});
    auto counters = [&](const char* what, const auto& values, std::string_view (*name)(uint32_t)) {
      out += what;
      out += ":";
      for (uint32_t k = 0; k < values.size(); k++)
        if (values[k]) out += " " + std::string(name(k)) + "=" + std::to_string(values[k]);
      out += "\n";
    };
    counters("outcomes", dp.outcomes(), outcome_name);
    counters("events", dp.events(), event_name);
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const int64_t now = int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
    Datapath::AffinityCursor cursor;
    while (dp.scan_affinity(
        cursor, 256, [&](const ikelb_affinity_key& k, const ikelb_affinity_value& v) {
          out += "affinity: " + IpAddress{k.family, k.client}.str() + " -> backend " +
                 std::to_string(v.backend_id) + ", seen " +
                 std::to_string((now - static_cast<int64_t>(v.last_seen_ns)) / 1000000) +
                 " ms ago\n";
        })) {
    }
  } catch (const std::exception& e) {
    out += std::string("reading the pinned maps: ") + e.what() + "\n";
  }
  return out;
}

RunResult NetnsFixture::run(const Argv& argv, std::optional<std::chrono::milliseconds> timeout) {
  return run_command(argv, dir_ + "/run." + std::to_string(run_counter_++) + ".out",
                     timeout.value_or(opt_.run_timeout));
}

std::vector<RunResult> NetnsFixture::run_all(const std::vector<Argv>& commands,
                                             std::chrono::milliseconds timeout) {
  return run_commands(commands, dir_ + "/run." + std::to_string(run_counter_++) + ".", timeout);
}

std::string NetnsFixture::must(const Argv& argv, std::optional<std::chrono::milliseconds> timeout) {
  return output_or_throw(argv, run(argv, timeout));
}

pid_t NetnsFixture::start(const Argv& argv, const std::string& out_path) {
  pid_t pid = spawn(argv, out_path);
  children_.push_back(pid);
  return pid;
}

void NetnsFixture::forget(pid_t pid) {
  std::erase(children_, pid);
}

Argv NetnsFixture::in_ns(const std::string& name, Argv argv) const {
  argv.insert(argv.begin(), {"ip", "netns", "exec", ns(name)});
  return argv;
}

void NetnsFixture::write_proc(const std::string& netns, const std::string& path,
                              const std::string& value) {
  must(in_ns(netns, {"sh", "-c", "echo " + value + " > " + path}));
}

void NetnsFixture::add_namespace(const std::string& name, const Argv& sysctls) {
  must({"ip", "netns", "add", ns(name)});
  namespaces_.push_back(name);
  must({"ip", "-n", ns(name), "link", "set", "lo", "up"});
  if (sysctls.empty()) return;
  Argv argv = {"sysctl", "-qw"};
  argv.insert(argv.end(), sysctls.begin(), sysctls.end());
  must(in_ns(name, argv));
}

void NetnsFixture::add_host(const std::string& name, bool router) {
  Argv sysctls = {"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"};
  if (router) sysctls.push_back("net.ipv4.ip_forward=1");
  add_namespace(name, sysctls);
}

void NetnsFixture::stop_children_except_agent() {
  for (pid_t pid : std::vector<pid_t>(children_))
    if (pid != agent_pid_) {
      stop_process(pid, opt_.stop_grace);
      forget(pid);
    }
}

std::string NetnsFixture::mac(int link, int side) const {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "02:%02x:00:00:%02x:%02x", opt_.mac_tag, link, side);
  return buf;
}

void NetnsFixture::add_link(const std::string& a, const std::string& ifa, const std::string& b,
                            const std::string& ifb, std::optional<int> link) {
  Argv cmd = {"ip", "-n", ns(a), "link", "add", ifa};
  if (link) cmd.insert(cmd.end(), {"address", mac(*link, 1)});
  cmd.insert(cmd.end(), {"type", "veth", "peer", "name", ifb});
  if (link) cmd.insert(cmd.end(), {"address", mac(*link, 2)});
  cmd.insert(cmd.end(), {"netns", ns(b)});
  must(cmd);
  must({"ip", "-n", ns(a), "link", "set", ifa, "up"});
  must({"ip", "-n", ns(b), "link", "set", ifb, "up"});
}

void NetnsFixture::link_gateway(int i, int link, bool routed) {
  const std::string gw = "gw" + std::to_string(i), g = "g" + std::to_string(i);
  const std::string net = "10.0." + std::to_string(i) + ".";
  add_link("lb", g, gw, "e0", link);
  must({"ip", "-n", ns("lb"), "addr", "add", net + "1/24", "dev", g});
  must({"ip", "-n", ns(gw), "addr", "add", net + "2/24", "dev", "e0"});
  if (routed) must({"ip", "-n", ns(gw), "route", "add", "default", "via", net + "1"});
  must({"ip", "-n", ns("lb"), "neigh", "replace", net + "2", "lladdr", mac(link, 2), "nud",
        "permanent", "dev", g});
  must({"ip", "-n", ns(gw), "neigh", "replace", net + "1", "lladdr", mac(link, 1), "nud",
        "permanent", "dev", "e0"});
  if (routed) must(in_ns(gw, {opt_.netns_tool, "xdp-pass", "e0"}));
}

void NetnsFixture::add_lb_and_clients(int clients) {
  add_namespace("lb");
  write_proc("lb", "/proc/sys/net/ipv4/ip_forward", "1");
  write_proc("lb", "/proc/sys/net/ipv4/conf/all/rp_filter", "0");
  write_proc("lb", "/proc/sys/net/ipv4/conf/default/rp_filter", "0");

  add_namespace("cli");
  add_link("lb", "c0", "cli", "c1", 0);
  must({"ip", "-n", ns("lb"), "addr", "add", "198.51.100.1/24", "dev", "c0"});
  must({"ip", "-n", ns("cli"), "addr", "add", "198.51.100.2/24", "dev", "c1"});
  must({"ip", "-n", ns("cli"), "route", "add", "default", "via", "198.51.100.1"});
  must({"ip", "-n", ns("lb"), "route", "add", "100.64.0.0/16", "via", "198.51.100.2"});
  must({"ip", "-n", ns("lb"), "neigh", "replace", "198.51.100.2", "lladdr", mac(0, 2), "nud",
        "permanent", "dev", "c0"});
  must({"ip", "-n", ns("cli"), "neigh", "replace", "198.51.100.1", "lladdr", mac(0, 1), "nud",
        "permanent", "dev", "c1"});
  std::string batch = dir_ + "/clients.batch";
  {
    std::ofstream out(batch);
    for (int n = 1; n <= clients; n++) out << "address add " << client(n) << "/32 dev c1\n";
  }
  must({"ip", "-n", ns("cli"), "-batch", batch});
  must(in_ns("cli", {opt_.netns_tool, "xdp-pass", "c1"}));
}

void NetnsFixture::add_lb_behind_router(const std::string& vip) {
  add_host("lb", true);
  add_host("inet", true);
  add_link("inet", "l0", "lb", "up0", 1);
  must({"ip", "-n", ns("inet"), "addr", "add", "192.0.2.1/24", "dev", "l0"});
  must({"ip", "-n", ns("lb"), "addr", "add", "192.0.2.2/24", "dev", "up0"});
  must({"ip", "-n", ns("inet"), "route", "add", vip + "/32", "via", "192.0.2.2"});
  must({"ip", "-n", ns("lb"), "route", "add", "100.64.0.0/16", "via", "192.0.2.1"});
  must({"ip", "-n", ns("inet"), "neigh", "replace", "192.0.2.2", "lladdr", mac(1, 2), "nud",
        "permanent", "dev", "l0"});
  must({"ip", "-n", ns("lb"), "neigh", "replace", "192.0.2.1", "lladdr", mac(1, 1), "nud",
        "permanent", "dev", "up0"});
  // l0 is the peer of an XDP redirect target.
  must(in_ns("inet", {opt_.netns_tool, "xdp-pass", "l0"}));
}

void NetnsFixture::start_serve(int i, const std::string& log, const Argv& options) {
  const std::string gw = "gw" + std::to_string(i);
  Argv argv = {opt_.netns_tool, "serve", "--log", log};
  argv.insert(argv.end(), options.begin(), options.end());
  start(in_ns(gw, argv), serve_out(i));
  const auto deadline = Clock::now() + 5s;
  while (!std::filesystem::exists(log)) {
    if (Clock::now() > deadline)
      throw std::runtime_error(gw + ": serve did not start: " + read_file(serve_out(i)));
    std::this_thread::sleep_for(5ms);
  }
}

void NetnsFixture::write_config_json(const nlohmann::json& config) {
  std::string tmp = config_path_ + ".tmp";
  std::ofstream(tmp) << config.dump(2) << "\n";
  std::filesystem::rename(tmp, config_path_);
}

void NetnsFixture::start_agent() {
  Argv argv = {opt_.ikelbd, "--config", config_path_};
  argv.insert(argv.end(), agent_args_.begin(), agent_args_.end());
  agent_pid_ = start(in_ns("lb", argv), agent_log_);
  const auto deadline = Clock::now() + 30s;
  for (;;) {
    if (auto status = wait_exit(agent_pid_, 0ms)) {
      forget(agent_pid_);
      agent_pid_ = -1;
      throw std::runtime_error("ikelbd exited (status " + std::to_string(*status) +
                               ") before answering: " + tail(read_file(agent_log_), opt_.log_tail));
    }
    if (run({opt_.ikelbctl, "--socket", socket_, "status"}, 2s).exit_code == 0) return;
    if (Clock::now() > deadline)
      throw std::runtime_error("ikelbd did not answer within 30 s: " +
                               tail(read_file(agent_log_), opt_.log_tail));
    std::this_thread::sleep_for(20ms);
  }
}

RunResult NetnsFixture::ctl(const Argv& command) {
  Argv argv = {opt_.ikelbctl, "--socket", socket_};
  argv.insert(argv.end(), command.begin(), command.end());
  return run(argv, 5s);
}

nlohmann::json NetnsFixture::ctl_json(const Argv& command) {
  Argv argv = {opt_.ikelbctl, "--socket", socket_, "--json"};
  argv.insert(argv.end(), command.begin(), command.end());
  RunResult r = run(argv, 5s);
  if (r.exit_code != 0)
    throw std::runtime_error("`" + join(argv) + "` exit " + std::to_string(r.exit_code) + ": " +
                             r.output);
  return nlohmann::json::parse(r.output);
}

nlohmann::json NetnsFixture::backend(const std::string& name) {
  const nlohmann::json all = ctl_json({"backends"});
  for (const auto& b : all["backends"])
    if (b["name"] == name) return b;
  throw std::runtime_error("no backend " + name + " in `ikelbctl backends`");
}

std::map<std::string, nlohmann::json> NetnsFixture::backends() {
  std::map<std::string, nlohmann::json> out;
  const nlohmann::json all = ctl_json({"backends"});
  for (const auto& b : all["backends"]) out[b["name"].get<std::string>()] = b;
  return out;
}

void NetnsFixture::stop_agent_with_teardown() {
  if (agent_pid_ <= 0 || wait_exit(agent_pid_, 0ms)) {
    // Gone already (and reaped by wait_exit): nothing to stop.
    if (agent_pid_ > 0) forget(agent_pid_);
    agent_pid_ = -1;
    return;
  }
  RunResult r = run({opt_.ikelbctl, "--socket", socket_, "teardown"}, 5s);
  std::optional<int> status = wait_exit(agent_pid_, r.exit_code == 0 ? 5000ms : 200ms);
  if (!status) {
    ADD_FAILURE() << "ikelbd did not stop after teardown: " << r.output;
    return;  // stopped with the other children
  }
  forget(agent_pid_);
  agent_pid_ = -1;
  check_agent_teardown(r, *status);
}

Argv NetnsFixture::sw(Argv fn_and_args) const {
  Argv argv = {"bash", "-c", "source \"$0\" && \"$@\"", opt_.strongswan_sh};
  argv.insert(argv.end(), fn_and_args.begin(), fn_and_args.end());
  return argv;
}

void NetnsFixture::add_charon_gateways(const std::vector<int>& ids, const std::string& psk,
                                       const Argv& options) {
  std::vector<Argv> starts;
  for (int i : ids) {
    const std::string gw = "gw" + std::to_string(i);
    add_host(gw);
    link_gateway(i, 10 + i);
    Argv start = {"sw_gateway_start",
                  ns(gw),
                  gateway_dir(i),
                  gateway_address(i),
                  "--psk",
                  psk,
                  "--pool",
                  "10.201." + std::to_string(i) + ".0/24"};
    start.insert(start.end(), options.begin(), options.end());
    starts.push_back(sw(start));
    charons_[gateway_dir(i)] = gw;
    gateways_.push_back(i);
  }
  auto results = run_all(starts, 60s);
  for (size_t k = 0; k < results.size(); k++)
    if (results[k].exit_code != 0)
      throw std::runtime_error("gw" + std::to_string(ids[k]) + ": " + results[k].output);
}

void NetnsFixture::stop_charons() {
  std::vector<Argv> stops;
  for (const auto& [dir, name] : charons_) stops.push_back(sw({"sw_gateway_stop", ns(name), dir}));
  for (size_t i = 0; auto& r : run_all(stops, 30s)) {
    if (r.exit_code != 0) ADD_FAILURE() << "sw_gateway_stop: " << join(stops[i]) << r.output;
    i++;
  }
  charons_.clear();
  const std::string needle = "STRONGSWAN_CONF=" + dir_ + "/";
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string pid = e.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string env = read_file("/proc/" + pid + "/environ");
    for (size_t at = 0; (at = env.find(needle, at)) != std::string::npos; at++)
      if (at == 0 || env[at - 1] == '\0') {
        ADD_FAILURE() << "charon " << pid << " still running, killing it";
        kill(std::stoi(pid), SIGKILL);
        break;
      }
  }
}

}  // namespace ikelb::test
