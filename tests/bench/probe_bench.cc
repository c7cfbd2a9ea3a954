// ikelb_probe_bench: health-probe cost and failover time of the real ikelbd, in network namespaces
// (root). Not a test: it measures and prints figures, human-readable and as `RESULT key=value ...`
// lines. One command, about a minute:
//
//   ikelb_probe_bench [--runs N] [--window S]     (default 7 failover runs per variant, 20 s)
//
//   PREFIX-cli  c1 198.51.100.2/24  (only the peer of the client-facing interface)
//        |
//   PREFIX-lb   c0 198.51.100.1/24, r0 10.9.0.1/24, 10.3.0.0/16 via 10.9.0.2    ikelbd
//        |
//   PREFIX-resp r1 10.9.0.2/24 + 10.3.0.1-10.3.3.232/32 (1,000 addresses)   responder (a thread)
//
// The responder answers every IKE_SA_INIT on UDP 500 with INVALID_KE_PAYLOAD (group 19) for the
// request's SPIi, from the address the request was sent to (IP_PKTINFO), like a stateless IKE
// daemon; it can drop the requests to one address (a dead host: silence) or close that address's
// socket (a host without its IKE daemon: ICMP port unreachable, as the kernel rate-limits it).
//
// 1. Probe load: ikelbd probes 1,000 backends every 1 s (stateless; timeout 500, jitter 100).
//    Once all are active with last_result "invalid_ke", ikelbd's CPU (utime+stime of
//    /proc/PID/stat) and RSS are sampled over the window; probes/s from `ikelbctl --json
//    backends`, answers/s from the responder.
// 2. Failover with the default health-check settings (3 backends): a client is pinned to gw1
//    through the XDP program itself (BPF_PROG_TEST_RUN, in the lb namespace, as received on c0);
//    at T0 gw1 stops answering; the program is re-run every 2 ms until the client's packet goes
//    to another backend (T1). The agent's "vpn/gw1 active -> down" log line, timestamped by the
//    kernel when ikelbd writes it to stderr, splits T1 - T0 into detection and reprogramming.
//    Both variants run --runs times; gw1 is restored and active again between runs.
//
// ikelbd is started with a soft RLIMIT_NOFILE of 1024 (systemd's default for services), whatever
// the invoking shell's: it needs one probe socket per backend.
//
// Everything it creates (namespaces, a bpffs mount, a temp dir, processes, pins) is removed at the
// end, also after a failure or Ctrl-C (SIGINT, SIGTERM, SIGHUP).
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "packet.h"
#include "process.h"

extern char** environ;

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using ikelb::test::Argv;
using ikelb::test::Bytes;
using ikelb::test::join;
using ikelb::test::read_file;
using ikelb::test::RunResult;
using ikelb::test::stop_process;
using ikelb::test::wait_exit;

constexpr const char* kVip = "203.0.113.10";
constexpr int kLoadBackends = 1000;
constexpr uint16_t kAnswerGroup = 19;  // the group the responder says it prefers
constexpr double kGoalMs = 1000, kF5DefaultTimeoutMs = 16000;

// ---- interruption ----

std::atomic<bool> g_interrupted{false};
void on_signal(int) {
  g_interrupted = true;
}

struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

void check_interrupt() {
  if (g_interrupted) throw Interrupted();
}

// Sleeps in slices so that Ctrl-C is noticed within 10 ms.
void sleep_for(Clock::duration d) {
  const auto until = Clock::now() + d;
  while (Clock::now() < until) {
    check_interrupt();
    std::this_thread::sleep_for(std::min<Clock::duration>(until - Clock::now(), 10ms));
  }
}

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

std::string fmt(double v, int decimals = 1) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

std::string errno_text(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

// ---- processes ----

// Starts argv[0] (PATH lookup) in its own process group (a terminal's Ctrl-C reaches only the
// bench, which then stops everything in order), stdin from /dev/null, stdout and stderr to out_fd
// (a file, or the socket ikelbd's log is read from), SIGPIPE back to the default. Not
// ikelb::test::spawn, which keeps the caller's process group and signal dispositions.
pid_t spawn(const Argv& argv, int out_fd) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
  posix_spawn_file_actions_adddup2(&fa, out_fd, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t def;
  sigemptyset(&def);
  sigaddset(&def, SIGPIPE);  // ignored here; children get the default
  posix_spawnattr_setsigdefault(&attr, &def);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw std::runtime_error("cannot start " + join(argv) + ": " + std::strerror(rc));
  return pid;
}

// ---- the responder ----

// "Stateless IKE daemon": an IKE_SA_INIT request gets INVALID_KE_PAYLOAD naming `group`, with
// the request's SPIi, a zero SPIr, message ID 0 (RFC 7296 1.2, 3.1, 3.10). Empty if `d` is not an
// IKE_SA_INIT request.
Bytes invalid_ke_answer(const uint8_t* d, size_t len, uint16_t group) {
  if (len < 28 || d[17] >> 4 != 2 || d[18] != 34 || !(d[19] & 0x08) || (d[19] & 0x20)) return {};
  Bytes out(38, 0);
  std::memcpy(out.data(), d, 8);  // SPIi
  out[16] = 41;                   // next payload: Notify
  out[17] = 0x20;                 // version 2.0
  out[18] = 34;                   // IKE_SA_INIT
  out[19] = 0x20;                 // response
  out[27] = 38;                   // total length
  out[28 + 3] = 10;               // Notify payload length (no SPI, 2 bytes of data)
  out[28 + 7] = 17;               // INVALID_KE_PAYLOAD
  out[28 + 8] = static_cast<uint8_t>(group >> 8);
  out[28 + 9] = static_cast<uint8_t>(group & 0xff);
  return out;
}

// One thread in the resp namespace serving UDP 500. Commands are applied by that thread; each
// returns the time it took effect (T0 of a failover run).
class Responder {
 public:
  enum class Op { kListenAny, kListen, kClose, kCloseAll, kDrop, kUndrop, kStop };

  ~Responder() { stop(); }

  void start(const std::string& netns_path) {
    efd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd_ < 0) throw std::runtime_error(errno_text("eventfd"));
    std::promise<void> ready;
    auto started = ready.get_future();
    thread_ = std::thread([this, netns_path, &ready] {
      int fd = open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
        ready.set_exception(std::make_exception_ptr(
            std::runtime_error(errno_text("responder: setns " + netns_path))));
        if (fd >= 0) close(fd);
        return;
      }
      close(fd);
      ready.set_value();
      loop();
    });
    try {
      started.get();
    } catch (...) {
      thread_.join();
      throw;
    }
  }

  // Address in network order (0 = every address, for kListenAny).
  Clock::time_point command(Op op, uint32_t addr = 0) {
    if (!thread_.joinable()) throw std::runtime_error("responder not running");
    std::promise<Clock::time_point> done;
    auto f = done.get_future();
    {
      std::lock_guard lock(mutex_);
      queue_.push_back({op, addr, std::move(done)});
    }
    uint64_t one = 1;
    if (write(efd_, &one, sizeof(one)) != sizeof(one))
      throw std::runtime_error(errno_text("eventfd write"));
    if (f.wait_for(5s) != std::future_status::ready)
      throw std::runtime_error("responder did not apply a command within 5 s");
    return f.get();
  }

  void stop() {
    if (thread_.joinable()) {
      try {
        command(Op::kStop);
      } catch (const std::exception&) {
      }
      thread_.join();
    }
    if (efd_ >= 0) close(efd_);
    efd_ = -1;
  }

  uint64_t answered() const { return answered_; }
  uint64_t dropped() const { return dropped_; }
  uint64_t not_ike() const { return not_ike_; }

 private:
  struct Command {
    Op op;
    uint32_t addr;
    std::promise<Clock::time_point> done;
  };

  static int open_socket(uint32_t addr) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) throw std::runtime_error(errno_text("responder: socket"));
    int one = 1, big = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) != 0) {
      close(fd);
      throw std::runtime_error(errno_text("responder: IP_PKTINFO"));
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(500);
    a.sin_addr.s_addr = addr;
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      char text[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, &addr, text, sizeof(text));
      int e = errno;
      close(fd);
      errno = e;
      throw std::runtime_error(errno_text(std::string("responder: bind ") + text + ":500"));
    }
    return fd;
  }

  void apply(Command& c) {
    try {
      switch (c.op) {
        case Op::kListenAny:
        case Op::kListen: {
          uint32_t addr = c.op == Op::kListenAny ? htonl(INADDR_ANY) : c.addr;
          if (!sockets_.count(addr)) sockets_[addr] = open_socket(addr);
          break;
        }
        case Op::kClose:
          if (auto it = sockets_.find(c.addr); it != sockets_.end()) {
            close(it->second);
            sockets_.erase(it);
          }
          break;
        case Op::kCloseAll:
        case Op::kStop:
          for (auto& [a, fd] : sockets_) close(fd);
          sockets_.clear();
          dropped_addrs_.clear();
          if (c.op == Op::kStop) running_ = false;
          break;
        case Op::kDrop:
          dropped_addrs_.insert(c.addr);
          break;
        case Op::kUndrop:
          dropped_addrs_.erase(c.addr);
          break;
      }
      c.done.set_value(Clock::now());
    } catch (...) {
      c.done.set_exception(std::current_exception());
    }
  }

  void serve(int fd) {
    uint8_t buf[2048];
    alignas(cmsghdr) char control[256];
    for (int n = 0; n < 256; n++) {
      sockaddr_in from{};
      iovec iov{buf, sizeof(buf)};
      msghdr msg{};
      msg.msg_name = &from;
      msg.msg_namelen = sizeof(from);
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      ssize_t len = recvmsg(fd, &msg, MSG_DONTWAIT);
      if (len < 0) return;
      in_addr to{};
      bool have_to = false;
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
          in_pktinfo info{};
          std::memcpy(&info, CMSG_DATA(c), sizeof(info));
          to = info.ipi_addr;  // the request's destination address
          have_to = true;
        }
      if (!have_to) continue;
      if (dropped_addrs_.count(to.s_addr)) {
        dropped_++;
        continue;
      }
      Bytes answer = invalid_ke_answer(buf, static_cast<size_t>(len), kAnswerGroup);
      if (answer.empty()) {
        not_ike_++;
        continue;
      }
      // Reply from the address the request was sent to: ikelbd's probe sockets are connected.
      alignas(cmsghdr) char out_control[CMSG_SPACE(sizeof(in_pktinfo))] = {};
      iovec out_iov{answer.data(), answer.size()};
      msghdr out{};
      out.msg_name = &from;
      out.msg_namelen = sizeof(from);
      out.msg_iov = &out_iov;
      out.msg_iovlen = 1;
      out.msg_control = out_control;
      out.msg_controllen = sizeof(out_control);
      cmsghdr* c = CMSG_FIRSTHDR(&out);
      c->cmsg_level = IPPROTO_IP;
      c->cmsg_type = IP_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
      in_pktinfo info{};
      info.ipi_spec_dst = to;
      std::memcpy(CMSG_DATA(c), &info, sizeof(info));
      if (sendmsg(fd, &out, MSG_DONTWAIT) == static_cast<ssize_t>(answer.size())) answered_++;
    }
  }

  void loop() {
    while (running_) {
      std::vector<pollfd> fds{{efd_, POLLIN, 0}};
      for (auto& [a, fd] : sockets_) fds.push_back({fd, POLLIN, 0});
      if (poll(fds.data(), fds.size(), 200) < 0 && errno != EINTR) break;
      for (size_t i = 1; i < fds.size(); i++)
        if (fds[i].revents & POLLIN) serve(fds[i].fd);
      if (fds[0].revents & POLLIN) {
        uint64_t v;
        if (read(efd_, &v, sizeof(v)) < 0) {
        }
        std::deque<Command> todo;
        {
          std::lock_guard lock(mutex_);
          todo.swap(queue_);
        }
        for (auto& c : todo) apply(c);
      }
    }
    for (auto& [a, fd] : sockets_) close(fd);
    sockets_.clear();
  }

  int efd_ = -1;
  std::thread thread_;
  std::mutex mutex_;
  std::deque<Command> queue_;
  // Owned by the responder thread.
  std::map<uint32_t, int> sockets_;
  std::set<uint32_t> dropped_addrs_;
  bool running_ = true;
  std::atomic<uint64_t> answered_{0}, dropped_{0}, not_ike_{0};
};

// Runs f in a new thread that joined the network namespace at `netns_path` (BPF_PROG_TEST_RUN
// resolves ingress_ifindex and does its FIB lookups in the caller's namespace).
template <class F>
auto in_netns(const std::string& netns_path, F f) -> decltype(f()) {
  std::exception_ptr error;
  std::optional<decltype(f())> result;
  std::thread t([&] {
    try {
      int fd = open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) throw std::runtime_error(errno_text("open " + netns_path));
      int rc = setns(fd, CLONE_NEWNET);
      int e = errno;
      close(fd);
      errno = e;
      if (rc != 0) throw std::runtime_error(errno_text("setns " + netns_path));
      result.emplace(f());
    } catch (...) {
      error = std::current_exception();
    }
  });
  t.join();
  if (error) std::rethrow_exception(error);
  return std::move(*result);
}

struct TestRun {
  uint32_t verdict = 0;
  uint32_t dst = 0;  // the output frame's IPv4 destination (network order)
};

TestRun test_run(int prog_fd, const Bytes& frame, uint32_t ingress_ifindex) {
  Bytes out(frame.size() + 256);
  xdp_md ctx{};
  ctx.data_end = static_cast<uint32_t>(frame.size());
  ctx.ingress_ifindex = ingress_ifindex;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
              .data_size_in = static_cast<uint32_t>(frame.size()),
              .data_size_out = static_cast<uint32_t>(out.size()), .ctx_in = &ctx,
              .ctx_size_in = sizeof(ctx), .repeat = 1);
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0)
    throw std::runtime_error(errno_text("BPF_PROG_TEST_RUN"));
  TestRun r;
  r.verdict = opts.retval;
  if (opts.data_size_out >= 34 && out[12] == 0x08 && out[13] == 0x00)
    std::memcpy(&r.dst, out.data() + 30, 4);
  return r;
}

uint32_t ipv4(const std::string& text) {
  in_addr a{};
  if (inet_pton(AF_INET, text.c_str(), &a) != 1) throw std::runtime_error("bad address " + text);
  return a.s_addr;
}

std::string ipv4_text(uint32_t addr) {
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &addr, text, sizeof(text));
  return text;
}

// The n-th address of the 1,000: 10.3.0.1 .. 10.3.3.232.
std::string backend_address(int n) {
  return "10.3." + std::to_string(n / 256) + "." + std::to_string(n % 256);
}

// Client n: 100.64.0.0 + n.
std::string client_address(int n) {
  return "100.64." + std::to_string(n / 256) + "." + std::to_string(n % 256);
}

struct ProcSample {
  Clock::time_point at;
  uint64_t cpu_ticks = 0;  // utime + stime
  uint64_t rss_kib = 0;
};

ProcSample sample_process(pid_t pid) {
  ProcSample s;
  s.at = Clock::now();
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close_paren = stat.rfind(')');
  if (stat.empty() || close_paren == std::string::npos)
    throw std::runtime_error("cannot read /proc/" + std::to_string(pid) + "/stat");
  std::istringstream in(stat.substr(close_paren + 2));
  std::vector<std::string> f;
  for (std::string w; in >> w;) f.push_back(w);
  // f[0] is field 3 (state): utime is field 14, stime 15, rss (pages) 24.
  if (f.size() < 22) throw std::runtime_error("short /proc/PID/stat: " + stat);
  s.cpu_ticks = std::stoull(f[11]) + std::stoull(f[12]);
  s.rss_kib = std::stoull(f[21]) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) / 1024;
  return s;
}

std::string proc_status_field(pid_t pid, const std::string& key) {
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);)
    if (line.starts_with(key + ":")) {
      std::string v = line.substr(key.size() + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  return "?";
}

std::string nofile_limits(pid_t pid) {
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/limits"));
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("Max open files")) {
      std::istringstream f(line.substr(14));
      std::string soft, hard;
      f >> soft >> hard;
      return soft + "/" + hard;
    }
  return "?";
}

size_t open_fds(pid_t pid) {
  std::error_code ec;
  size_t n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    n++;
  return n;
}

struct Stats {
  double median = 0, min = 0, max = 0;
};

Stats stats_of(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.min = v.front();
  s.max = v.back();
  size_t n = v.size();
  s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return s;
}

// ---- the bench ----

struct LogLine {
  Clock::time_point at;
  std::string text;
};

struct FailoverRun {
  double detection_ms = 0, reprogramming_ms = 0, total_ms = 0, recovery_ms = 0;
  double gap_ms = 0;  // T1 minus the last run still on gw1: T1's uncertainty
  int polls = 0;
  std::string cause, new_backend;
};

class Bench {
 public:
  Bench(int runs, int window_s) : runs_(runs), window_s_(window_s) {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) started_nofile_ = std::to_string(rl.rlim_cur);
  }

  void run() {
    set_up();
    probe_load();
    check_interrupt();
    failover();
    print_summary();
  }

  // Removes everything, whatever state it was left in; every step runs.
  void clean_up() noexcept {
    auto step = [](const char* what, const auto& f) {
      try {
        f();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "clean-up: %s: %s\n", what, e.what());
      }
    };
    step("stopping ikelbd", [this] { stop_agent(); });
    step("stopping the responder", [this] { responder_.stop(); });
    step("ikelbd --teardown", [this] {
      if (!bpffs_mounted_ || !std::filesystem::exists(bpffs_ + "/ikelb")) return;
      if (std::find(namespaces_.begin(), namespaces_.end(), "lb") == namespaces_.end()) return;
      RunResult r = run(
          {"ip", "netns", "exec", ns("lb"), IKELBD_PATH, "--config", config_path_, "--teardown"},
          10s);
      if (r.exit_code != 0) std::fprintf(stderr, "ikelbd --teardown: %s\n", r.output.c_str());
    });
    for (const auto& name : namespaces_)
      step("ip netns del", [&] {
        RunResult r = run({"ip", "netns", "del", ns(name)});
        if (r.exit_code != 0)
          std::fprintf(stderr, "ip netns del %s: %s\n", ns(name).c_str(), r.output.c_str());
      });
    namespaces_.clear();
    if (bpffs_mounted_ && umount2(bpffs_.c_str(), MNT_DETACH) != 0)
      std::fprintf(stderr, "umount %s: %s\n", bpffs_.c_str(), std::strerror(errno));
    bpffs_mounted_ = false;
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      dir_.clear();
    }
  }

  // What to show when something failed.
  void dump_agent_log() {
    std::lock_guard lock(log_mutex_);
    if (log_.empty()) return;
    std::fprintf(stderr, "---- last ikelbd log lines ----\n");
    size_t from = log_.size() > 30 ? log_.size() - 30 : 0;
    for (size_t i = from; i < log_.size(); i++) std::fprintf(stderr, "%s\n", log_[i].text.c_str());
  }

 private:
  // ---- processes ----

  // Runs a command to the end (killed after `timeout`), its output in the work directory. Started
  // by this file's spawn(), in its own process group.
  RunResult run(const Argv& argv, std::chrono::milliseconds timeout = 10s) {
    std::string out = dir_ + "/run." + std::to_string(run_counter_++) + ".out";
    int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return {-1, errno_text("open " + out)};
    pid_t pid = 0;
    try {
      pid = spawn(argv, fd);
    } catch (const std::exception& e) {
      close(fd);
      return {-1, e.what()};
    }
    close(fd);
    return ikelb::test::finish_command(pid, out, timeout);
  }

  std::string must(const Argv& argv) { return ikelb::test::output_or_throw(argv, run(argv)); }

  std::string ns(const std::string& name) const { return prefix_ + "-" + name; }
  std::string ns_path(const std::string& name) const { return "/run/netns/" + ns(name); }

  void sysctl(const std::string& netns, const std::string& path, const std::string& value) {
    must({"ip", "netns", "exec", ns(netns), "sh", "-c", "echo " + value + " > " + path});
  }

  // ---- topology ----

  void set_up() {
    if (geteuid() != 0) throw std::runtime_error("ikelb_probe_bench needs root");
    char tmpl[] = "/tmp/ikelb-probe-bench-XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error(errno_text("mkdtemp"));
    dir_ = tmpl;
    for (int attempt = 0; prefix_.empty() && attempt < 100; attempt++) {
      uint32_t v = (static_cast<uint32_t>(getpid()) * 31u + static_cast<uint32_t>(attempt)) %
                   (36u * 36u * 36u * 36u);
      std::string p = "ikpb";
      for (int i = 0; i < 4; i++, v /= 36) p += "0123456789abcdefghijklmnopqrstuvwxyz"[v % 36];
      if (!std::filesystem::exists("/run/netns/" + p + "-lb") &&
          !std::filesystem::exists("/run/netns/" + p + "-resp") &&
          !std::filesystem::exists("/run/netns/" + p + "-cli"))
        prefix_ = p;
    }
    if (prefix_.empty()) throw std::runtime_error("no free namespace prefix");

    bpffs_ = dir_ + "/bpf";
    std::filesystem::create_directory(bpffs_);
    if (mount("bpf", bpffs_.c_str(), "bpf", 0, nullptr) != 0)
      throw std::runtime_error(errno_text("mount -t bpf " + bpffs_));
    bpffs_mounted_ = true;
    config_path_ = dir_ + "/ikelb.json";
    socket_ = dir_ + "/ikelb.sock";

    const auto t = Clock::now();
    for (const char* n : {"lb", "resp", "cli"}) {
      must({"ip", "netns", "add", ns(n)});
      namespaces_.push_back(n);
      must({"ip", "-n", ns(n), "link", "set", "lo", "up"});
    }
    sysctl("lb", "/proc/sys/net/ipv4/ip_forward", "1");
    sysctl("lb", "/proc/sys/net/ipv4/conf/all/rp_filter", "0");
    sysctl("lb", "/proc/sys/net/ipv4/conf/default/rp_filter", "0");
    // Client side: c0 (lb) <-> c1 (cli).
    must({"ip", "-n", ns("lb"), "link", "add", "c0", "address", "02:1c:00:00:00:01", "type", "veth",
          "peer", "name", "c1", "address", "02:1c:00:00:00:02", "netns", ns("cli")});
    must({"ip", "-n", ns("lb"), "addr", "add", "198.51.100.1/24", "dev", "c0"});
    must({"ip", "-n", ns("cli"), "addr", "add", "198.51.100.2/24", "dev", "c1"});
    must({"ip", "-n", ns("lb"), "link", "set", "c0", "up"});
    must({"ip", "-n", ns("cli"), "link", "set", "c1", "up"});
    must({"ip", "-n", ns("lb"), "route", "add", "100.64.0.0/16", "via", "198.51.100.2"});
    must({"ip", "-n", ns("lb"), "neigh", "replace", "198.51.100.2", "lladdr", "02:1c:00:00:00:02",
          "nud", "permanent", "dev", "c0"});
    // Gateway side: r0 (lb) <-> r1 (resp); the 1,000 gateway addresses are routed via 10.9.0.2,
    // so the lb namespace needs one neighbour entry, not 1,000 (gc_thresh3 is 1024).
    must({"ip", "-n", ns("lb"), "link", "add", "r0", "address", "02:1c:00:00:01:01", "type", "veth",
          "peer", "name", "r1", "address", "02:1c:00:00:01:02", "netns", ns("resp")});
    must({"ip", "-n", ns("lb"), "addr", "add", "10.9.0.1/24", "dev", "r0"});
    must({"ip", "-n", ns("resp"), "addr", "add", "10.9.0.2/24", "dev", "r1"});
    must({"ip", "-n", ns("lb"), "link", "set", "r0", "up"});
    must({"ip", "-n", ns("resp"), "link", "set", "r1", "up"});
    must({"ip", "-n", ns("lb"), "route", "add", "10.3.0.0/16", "via", "10.9.0.2"});
    must({"ip", "-n", ns("lb"), "neigh", "replace", "10.9.0.2", "lladdr", "02:1c:00:00:01:02",
          "nud", "permanent", "dev", "r0"});
    must({"ip", "-n", ns("resp"), "neigh", "replace", "10.9.0.1", "lladdr", "02:1c:00:00:01:01",
          "nud", "permanent", "dev", "r1"});
    const std::string batch = dir_ + "/resp.batch";
    {
      std::ofstream out(batch);
      for (int n = 1; n <= kLoadBackends; n++)
        out << "address add " << backend_address(n) << "/32 dev r1\n";
    }
    must({"ip", "-n", ns("resp"), "-batch", batch});
    responder_.start(ns_path("resp"));
    responder_.command(Responder::Op::kListenAny);
    std::printf("set-up: namespaces %s-{lb,resp,cli}, %d responder addresses (%s-%s), %.0f ms\n",
                prefix_.c_str(), kLoadBackends, backend_address(1).c_str(),
                backend_address(kLoadBackends).c_str(), ms_between(t, Clock::now()));
  }

  // ---- the agent ----

  void write_config(const nlohmann::json& interfaces, const nlohmann::json& vs) {
    nlohmann::json config = {{"interfaces", interfaces},
                             {"bpffs", bpffs_ + "/ikelb"},
                             {"admin", {{"socket", socket_}}},
                             {"metrics", {{"listen", nullptr}}},
                             {"affinity", {{"max_entries", 65536}}},
                             {"log_level", "info"},
                             {"virtual_servers", {vs}}};
    std::ofstream(config_path_) << config.dump(2) << "\n";
  }

  // Starts ikelbd in the lb namespace with stdout and stderr read, line by line, by a thread;
  // returns once `ikelbctl status` answers.
  void start_agent() {
    {
      std::lock_guard lock(log_mutex_);
      log_.clear();
    }
    // stderr is a SOCK_SEQPACKET socket with SO_TIMESTAMPNS: each line carries the kernel's time
    // of ikelbd's write(), unaffected by when the reader thread gets to run.
    int p[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p) != 0)
      throw std::runtime_error(errno_text("socketpair"));
    int one = 1;
    if (setsockopt(p[0], SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) != 0 ||
        shutdown(p[0], SHUT_WR) != 0) {
      close(p[0]);
      close(p[1]);
      throw std::runtime_error(errno_text("SO_TIMESTAMPNS"));
    }
    try {
      agent_pid_ =
          spawn({"ip", "netns", "exec", ns("lb"), IKELBD_PATH, "--config", config_path_}, p[1]);
    } catch (...) {
      close(p[0]);
      close(p[1]);
      throw;
    }
    close(p[1]);
    reader_ = std::thread([this, fd = p[0]] {
      std::ofstream file(dir_ + "/ikelbd.log", std::ios::app);
      std::string pending;
      char buf[65536];
      alignas(cmsghdr) char control[256];
      for (;;) {
        iovec iov{buf, sizeof(buf)};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
        ssize_t n = recvmsg(fd, &msg, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        // The write's CLOCK_REALTIME stamp, moved to the steady clock.
        auto at = Clock::now();
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
          if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            timespec ts{}, real{};
            std::memcpy(&ts, CMSG_DATA(c), sizeof(ts));
            clock_gettime(CLOCK_REALTIME, &real);
            const auto now = Clock::now();
            auto age = std::chrono::seconds(real.tv_sec - ts.tv_sec) +
                       std::chrono::nanoseconds(real.tv_nsec - ts.tv_nsec);
            if (age >= 0s && age < 10s) at = now - age;
          }
        pending.append(buf, static_cast<size_t>(n));
        for (size_t nl; (nl = pending.find('\n')) != std::string::npos;) {
          std::string line = pending.substr(0, nl);
          pending.erase(0, nl + 1);
          file << line << "\n";
          std::lock_guard lock(log_mutex_);
          log_.push_back({at, std::move(line)});
        }
      }
      close(fd);
    });
    const auto deadline = Clock::now() + 10s;
    for (;;) {
      check_agent_alive();
      if (run({IKELBCTL_PATH, "--socket", socket_, "status"}, 2s).exit_code == 0) return;
      if (Clock::now() > deadline) throw std::runtime_error("ikelbd did not answer within 10 s");
      sleep_for(20ms);
    }
  }

  void check_agent_alive() {
    if (agent_pid_ <= 0) throw std::runtime_error("ikelbd is not running");
    if (auto status = wait_exit(agent_pid_, 0ms)) {
      agent_pid_ = -1;
      if (reader_.joinable()) reader_.join();
      throw std::runtime_error("ikelbd exited (wait status " + std::to_string(*status) + ")");
    }
  }

  // ikelbctl teardown (detach, unpin, exit); SIGTERM/SIGKILL if that fails.
  void stop_agent() {
    if (agent_pid_ > 0) {
      if (!wait_exit(agent_pid_, 0ms)) {
        RunResult r = run({IKELBCTL_PATH, "--socket", socket_, "teardown"}, 5s);
        // Not answering yet (interrupted at start-up): SIGTERM; clean_up's --teardown unpins.
        if (!wait_exit(agent_pid_, r.exit_code == 0 ? 5s : 200ms)) {
          if (r.exit_code == 0)
            std::fprintf(stderr, "ikelbd did not stop after `ikelbctl teardown`\n");
          stop_process(agent_pid_, 1s);
        }
      }
      agent_pid_ = -1;
    }
    if (reader_.joinable()) reader_.join();
  }

  nlohmann::json backends() {
    Argv argv = {IKELBCTL_PATH, "--socket", socket_, "--json", "backends"};
    RunResult r = run(argv, 10s);
    if (r.exit_code != 0)
      throw std::runtime_error("`" + join(argv) + "` exit " + std::to_string(r.exit_code) + ": " +
                               r.output);
    return nlohmann::json::parse(r.output)["backends"];
  }

  // Polls until every backend is active with last_result invalid_ke; returns the elapsed time.
  double wait_all_answering(size_t expected, Clock::duration timeout) {
    const auto start = Clock::now(), deadline = start + timeout;
    std::string last;
    for (;;) {
      check_agent_alive();
      nlohmann::json list = backends();
      std::map<std::string, int> states, results;
      size_t good = 0;
      for (const auto& b : list) {
        std::string result =
            b["probe"].is_object() ? b["probe"]["last_result"].get<std::string>() : "(no probe)";
        states[b["state"].get<std::string>()]++;
        results[result.empty() ? "(none yet)" : result]++;
        good += b["state"] == "active" && result == "invalid_ke";
      }
      if (good == expected && list.size() == expected) return ms_between(start, Clock::now());
      last = std::to_string(list.size()) + " backends; states:";
      for (auto& [k, v] : states) last += " " + k + "=" + std::to_string(v);
      last += "; last_result:";
      for (auto& [k, v] : results) last += " \"" + k + "\"=" + std::to_string(v);
      if (Clock::now() > deadline)
        throw std::runtime_error(
            "not every backend became active with last_result invalid_ke "
            "within " +
            fmt(std::chrono::duration<double>(timeout).count(), 0) + " s: " + last);
      sleep_for(250ms);
    }
  }

  std::optional<LogLine> find_line(size_t from, const std::string& needle) {
    std::lock_guard lock(log_mutex_);
    for (size_t i = from; i < log_.size(); i++)
      if (log_[i].text.find(needle) != std::string::npos) return log_[i];
    return std::nullopt;
  }

  size_t log_size() {
    std::lock_guard lock(log_mutex_);
    return log_.size();
  }

  LogLine wait_line(size_t from, const std::string& needle, Clock::duration timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (auto l = find_line(from, needle)) return *l;
      check_agent_alive();
      if (Clock::now() > deadline)
        throw std::runtime_error("ikelbd did not log \"" + needle + "\" within " +
                                 fmt(std::chrono::duration<double>(timeout).count(), 1) + " s");
      sleep_for(1ms);
    }
  }

  // ---- 1. probe load ----

  void probe_load() {
    std::printf("\n== 1. probe load: %d backends, stateless, interval 1000 ms ==\n", kLoadBackends);
    nlohmann::json list = nlohmann::json::array();
    for (int n = 1; n <= kLoadBackends; n++) {
      char name[16];
      std::snprintf(name, sizeof(name), "b%04d", n);
      list.push_back({{"name", name}, {"address", backend_address(n)}});
    }
    write_config(
        {"r0"},
        {{"name", "vpn"},
         {"address", kVip},
         {"maglev_table_size", 100003},
         {"health_check",
          {{"mode", "stateless"}, {"interval_ms", 1000}, {"timeout_ms", 500}, {"jitter_ms", 100}}},
         {"backends", list}});
    const auto t = Clock::now();
    start_agent();
    const double start_ms = ms_between(t, Clock::now());
    const pid_t pid = agent_pid_;
    const std::string limits = nofile_limits(pid);
    double up_ms = 0;
    try {
      up_ms = wait_all_answering(kLoadBackends, 15s);
    } catch (const std::exception&) {
      std::fprintf(stderr, "ikelbd: RLIMIT_NOFILE soft/hard %s, %zu open fds\n", limits.c_str(),
                   open_fds(pid));
      dump_agent_log();
      throw;
    }
    const size_t fds = open_fds(pid);
    std::printf(
        "ikelbd pid %d answering after %.0f ms; all %d backends active with last_result "
        "invalid_ke %.0f ms later\n",
        pid, start_ms, kLoadBackends, up_ms);
    std::printf("ikelbd: %zu open fds, RLIMIT_NOFILE soft/hard %s (started with soft %s)\n", fds,
                limits.c_str(), started_nofile_.c_str());
    {
      auto emfile = find_line(0, "Too many open files");
      if (emfile) std::printf("ikelbd logged EMFILE: %s\n", emfile->text.c_str());
    }
    sleep_for(2s);  // past the start-up burst

    auto probe_totals = [&](const nlohmann::json& l) {
      std::pair<uint64_t, uint64_t> t{0, 0};
      for (const auto& b : l)
        if (b["probe"].is_object()) {
          t.first += b["probe"]["probes"].get<uint64_t>();
          t.second += b["probe"]["retransmits"].get<uint64_t>();
        }
      return t;
    };
    // ikelbctl snapshots just outside the CPU window: each costs ikelbd a 1,000-backend JSON.
    const auto snap0_at = Clock::now();
    const auto [probes0, retx0] = probe_totals(backends());
    const uint64_t answered0 = responder_.answered();
    const ProcSample s0 = sample_process(pid);
    std::vector<ProcSample> samples{s0};
    const long hz = sysconf(_SC_CLK_TCK);
    for (int i = 0; i < window_s_; i++) {
      sleep_for(s0.at + std::chrono::seconds(i + 1) - Clock::now());
      check_agent_alive();
      samples.push_back(sample_process(pid));
    }
    const ProcSample s1 = samples.back();
    const uint64_t answered1 = responder_.answered();
    nlohmann::json end_list = backends();
    const auto snap1_at = Clock::now();
    const auto [probes1, retx1] = probe_totals(end_list);
    size_t still_good = 0;
    for (const auto& b : end_list)
      still_good += b["state"] == "active" && b["probe"]["last_result"] == "invalid_ke";

    const double window = std::chrono::duration<double>(s1.at - s0.at).count();
    const double cpu_s = static_cast<double>(s1.cpu_ticks - s0.cpu_ticks) / static_cast<double>(hz);
    const double cpu_pct = 100.0 * cpu_s / window;
    double max_1s = 0;
    for (size_t i = 1; i < samples.size(); i++) {
      double w = std::chrono::duration<double>(samples[i].at - samples[i - 1].at).count();
      max_1s = std::max(
          max_1s, 100.0 * static_cast<double>(samples[i].cpu_ticks - samples[i - 1].cpu_ticks) /
                      static_cast<double>(hz) / w);
    }
    const double probes_per_s = static_cast<double>(probes1 - probes0) /
                                std::chrono::duration<double>(snap1_at - snap0_at).count();
    const double answered_per_s = static_cast<double>(answered1 - answered0) / window;
    uint64_t rss_max = 0;
    for (const auto& s : samples) rss_max = std::max(rss_max, s.rss_kib);
    const std::string hwm = proc_status_field(pid, "VmHWM");

    std::printf(
        "window %.1f s: ikelbd CPU %.2f s = %.2f %% of one core (busiest 1 s: %.1f %%, "
        "tick %ld Hz)\n",
        window, cpu_s, cpu_pct, max_1s, hz);
    std::printf(
        "probes sent %.1f/s (ikelbctl), answers sent by the responder %.1f/s, "
        "retransmits in the window %llu; %zu/%d still active+invalid_ke\n",
        probes_per_s, answered_per_s, static_cast<unsigned long long>(retx1 - retx0), still_good,
        kLoadBackends);
    std::printf("RSS %llu KiB at the end (max sampled %llu KiB, VmHWM %s)\n",
                static_cast<unsigned long long>(s1.rss_kib),
                static_cast<unsigned long long>(rss_max), hwm.c_str());
    std::printf(
        "RESULT test=probe_load backends=%d mode=stateless interval_ms=1000 window_s=%.1f "
        "cpu_pct=%.3f cpu_pct_max_1s=%.2f probes_per_s=%.1f answered_per_s=%.1f "
        "retransmits=%llu rss_kib=%llu rss_max_kib=%llu open_fds=%zu nofile=%s "
        "start_ms=%.0f all_up_ms=%.0f\n",
        kLoadBackends, window, cpu_pct, max_1s, probes_per_s, answered_per_s,
        static_cast<unsigned long long>(retx1 - retx0), static_cast<unsigned long long>(s1.rss_kib),
        static_cast<unsigned long long>(rss_max), fds, limits.c_str(), start_ms, up_ms);
    std::fflush(stdout);
    load_ = {cpu_pct, probes_per_s, answered_per_s, static_cast<double>(s1.rss_kib), window};

    stop_agent();
    if (std::filesystem::exists(bpffs_ + "/ikelb"))
      throw std::runtime_error("pins left under " + bpffs_ + "/ikelb after ikelbctl teardown");
  }

  // ---- 2. failover ----

  // The program attached to c0, through the pinned link (link -> prog id -> prog fd).
  int attached_prog_fd() {
    const std::string path = bpffs_ + "/ikelb/link_c0";
    int link = bpf_obj_get(path.c_str());
    if (link < 0) throw std::runtime_error(errno_text("bpf_obj_get " + path));
    bpf_link_info info{};
    uint32_t len = sizeof(info);
    int rc = bpf_obj_get_info_by_fd(link, &info, &len);
    close(link);
    if (rc != 0) throw std::runtime_error(errno_text("bpf_obj_get_info_by_fd(link)"));
    int prog = bpf_prog_get_fd_by_id(info.prog_id);
    if (prog < 0)
      throw std::runtime_error(errno_text("bpf_prog_get_fd_by_id " + std::to_string(info.prog_id)));
    return prog;
  }

  Bytes client_frame(int n) const {
    using namespace ikelb::test;
    Bytes payload(64, 0);
    payload[17] = 0x20;
    payload[18] = 34;
    payload[19] = 0x08;
    return Frame()
        .eth(mac("02:1c:00:00:00:02"), mac("02:1c:00:00:00:01"))
        .ipv4(ip(client_address(n)), ip(kVip))
        .udp(500, 500)
        .payload(payload)
        .build();
  }

  // The next client (from next_client_) whose packets the program sends to `backend`; the run
  // that found it pinned it there. Runs in the lb namespace.
  int pin_client_to(int prog_fd, uint32_t backend) {
    return in_netns(ns_path("lb"), [&] {
      uint32_t ifindex = if_nametoindex("c0");
      if (!ifindex) throw std::runtime_error(errno_text("if_nametoindex c0"));
      for (int tries = 0; tries < 1000; tries++) {
        int n = next_client_++;
        Bytes frame = client_frame(n);
        if (test_run(prog_fd, frame, ifindex).dst != backend) continue;
        TestRun again = test_run(prog_fd, frame, ifindex);
        if (again.dst != backend)
          throw std::runtime_error("client " + client_address(n) + " did not stay on " +
                                   ipv4_text(backend));
        return n;
      }
      throw std::runtime_error("no client maps to " + ipv4_text(backend) + " in 1000 tries");
    });
  }

  struct PollResult {
    Clock::time_point t1, before;  // the first run on another backend, the last one still on gw1
    uint32_t dst = 0;
    int polls = 0;
  };

  // Re-runs the program every 2 ms from t0 until client n's packet leaves for another backend.
  PollResult poll_until_moved(int prog_fd, int n, uint32_t from, Clock::time_point t0) {
    return in_netns(ns_path("lb"), [&] {
      uint32_t ifindex = if_nametoindex("c0");
      if (!ifindex) throw std::runtime_error(errno_text("if_nametoindex c0"));
      const Bytes frame = client_frame(n);
      const uint32_t vip = ipv4(kVip);
      // A real-time thread keeps the 2 ms period on a busy machine (best effort).
      sched_param sp{};
      sp.sched_priority = 1;
      pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
      PollResult r;
      for (auto next = t0;; next += 2ms) {
        if (g_interrupted) throw Interrupted();
        std::this_thread::sleep_until(next);
        TestRun tr = test_run(prog_fd, frame, ifindex);
        const auto now = Clock::now();
        r.polls++;
        if (tr.dst != from && tr.dst != vip && tr.dst != 0) {
          r.t1 = now;
          r.dst = tr.dst;
          return r;
        }
        r.before = now;
        if (now - t0 > 5s)
          throw std::runtime_error("the client still goes to " + ipv4_text(from) + " 5 s after T0");
      }
    });
  }

  std::string backend_state(const std::string& name) {
    for (const auto& b : backends())
      if (b["name"] == name) return b["state"];
    throw std::runtime_error("no backend " + name);
  }

  void wait_backend_state(const std::string& name, const std::string& state,
                          Clock::duration timeout) {
    const auto deadline = Clock::now() + timeout;
    while (backend_state(name) != state) {
      check_agent_alive();
      if (Clock::now() > deadline)
        throw std::runtime_error(name + " did not become " + state + " in time");
      sleep_for(20ms);
    }
  }

  std::vector<FailoverRun> failover_variant(const std::string& variant, int prog_fd) {
    const uint32_t gw1 = ipv4("10.3.0.1");
    const bool drop = variant == "drop";
    std::vector<FailoverRun> out;
    std::mt19937 rng(std::random_device{}());
    for (int i = 1; i <= runs_; i++) {
      wait_backend_state("gw1", "active", 5s);
      const int client = pin_client_to(prog_fd, gw1);
      // T0 at a random phase of the probe cycle.
      sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 250)(rng)));
      const size_t mark = log_size();
      const Clock::time_point t0 =
          responder_.command(drop ? Responder::Op::kDrop : Responder::Op::kClose, gw1);
      PollResult moved;
      try {
        moved = poll_until_moved(prog_fd, client, gw1, t0);
      } catch (const Interrupted&) {
        throw;
      } catch (const std::exception&) {
        check_agent_alive();  // the likelier story: ikelbd died
        throw;
      }
      LogLine down = wait_line(mark, "vpn/gw1 active -> down", 5s);
      FailoverRun r;
      r.detection_ms = ms_between(t0, down.at);
      r.reprogramming_ms = ms_between(down.at, moved.t1);
      r.total_ms = ms_between(t0, moved.t1);
      r.polls = moved.polls;
      r.gap_ms = ms_between(moved.before, moved.t1);
      r.new_backend = ipv4_text(moved.dst);
      auto colon = down.text.find("down: ");
      r.cause = colon == std::string::npos ? down.text : down.text.substr(colon + 6);
      // Restore and wait for the agent to take gw1 back.
      const size_t mark2 = log_size();
      const Clock::time_point tr =
          responder_.command(drop ? Responder::Op::kUndrop : Responder::Op::kListen, gw1);
      LogLine up = wait_line(mark2, "vpn/gw1 down -> active", 5s);
      r.recovery_ms = ms_between(tr, up.at);
      std::printf(
          "  %-4s run %d: client %-13s detection %5.1f ms, reprogramming %5.2f ms (poll gap "
          "%.1f), total %5.1f ms -> %s; cause \"%s\"; up again %.0f ms after restore\n",
          variant.c_str(), i, client_address(client).c_str(), r.detection_ms, r.reprogramming_ms,
          r.gap_ms, r.total_ms, r.new_backend.c_str(), r.cause.c_str(), r.recovery_ms);
      std::string cause = r.cause;
      std::replace(cause.begin(), cause.end(), ' ', '_');
      std::printf(
          "RESULT test=failover variant=%s run=%d detection_ms=%.1f reprogramming_ms=%.2f "
          "total_ms=%.1f poll_gap_ms=%.2f polls=%d recovery_ms=%.1f new_backend=%s cause=%s\n",
          variant.c_str(), i, r.detection_ms, r.reprogramming_ms, r.total_ms, r.gap_ms, r.polls,
          r.recovery_ms, r.new_backend.c_str(), cause.c_str());
      std::fflush(stdout);
      out.push_back(r);
      sleep_for(300ms);
    }
    return out;
  }

  std::string icmp_sysctl(const std::string& name) {
    std::string v = must({"ip", "netns", "exec", ns("resp"), "cat", "/proc/sys/net/ipv4/" + name});
    while (!v.empty() && (v.back() == '\n' || v.back() == ' ')) v.pop_back();
    return v;
  }

  void failover() {
    std::printf(
        "\n== 2. failover: 3 backends, default health check (stateless, interval 200 ms, "
        "timeout 150, jitter 20, rise 2, fall 3) ==\n");
    responder_.command(Responder::Op::kCloseAll);
    for (int n = 1; n <= 3; n++)
      responder_.command(Responder::Op::kListen, ipv4(backend_address(n)));
    nlohmann::json list = nlohmann::json::array();
    for (int n = 1; n <= 3; n++)
      list.push_back({{"name", "gw" + std::to_string(n)}, {"address", backend_address(n)}});
    write_config({"c0", "r0"}, {{"name", "vpn"}, {"address", kVip}, {"backends", list}});
    start_agent();
    wait_all_answering(3, 10s);
    int prog_fd = attached_prog_fd();
    try {
      for (const char* variant : {"drop", "icmp"}) {
        std::printf("variant %s: %s\n", variant,
                    std::string(variant) == "drop"
                        ? "gw1's requests are dropped from T0 (a dead host: probes time out)"
                        : "gw1's socket is closed at T0 (no IKE daemon: the kernel answers ICMP "
                          "port unreachable, rate-limited)");
        if (std::string(variant) == "icmp")
          std::printf("  (resp namespace: net.ipv4.icmp_ratelimit %s ms, icmp_ratemask %s)\n",
                      icmp_sysctl("icmp_ratelimit").c_str(), icmp_sysctl("icmp_ratemask").c_str());
        results_[variant] = failover_variant(variant, prog_fd);
      }
    } catch (...) {
      close(prog_fd);
      throw;
    }
    close(prog_fd);
    stop_agent();
  }

  void print_summary() {
    std::printf("\n== summary ==\n");
    std::printf(
        "(reprogramming = the first BPF_PROG_TEST_RUN that sends the client elsewhere minus the "
        "kernel's timestamp of ikelbd's \"active -> down\" line, written just before it updates "
        "the backend map. The program is run every 2 ms, so values up to the poll gap are below "
        "the resolution: the data path follows the agent's decision within ~2 ms.)\n");
    std::printf(
        "probe load: 1,000 backends at 1 s, stateless: ikelbd %.2f %% of one core, %.0f "
        "probes/s sent, %.0f answered/s, RSS %.0f MiB (%.0f s window)\n",
        load_.cpu_pct, load_.probes_per_s, load_.answered_per_s, load_.rss_kib / 1024,
        load_.window_s);
    for (const auto& [variant, runs] : results_) {
      std::vector<double> det, rep, tot;
      std::map<std::string, int> causes;
      for (const auto& r : runs) {
        det.push_back(r.detection_ms);
        rep.push_back(r.reprogramming_ms);
        tot.push_back(r.total_ms);
        causes[r.cause]++;
      }
      Stats d = stats_of(det), p = stats_of(rep), t = stats_of(tot);
      const bool goal = t.max <= kGoalMs;
      std::printf(
          "failover (%s, %zu runs, default health check): detection median %.0f ms "
          "(%.0f-%.0f), reprogramming median %.2f ms (%.2f-%.2f), total median %.0f ms "
          "(%.0f-%.0f)\n",
          variant.c_str(), runs.size(), d.median, d.min, d.max, p.median, p.min, p.max, t.median,
          t.min, t.max);
      std::printf(
          "  goal <= 1 s: %s (worst %.0f ms); F5's default monitor timeout 16 s is %.0fx "
          "the median\n",
          goal ? "met" : "MISSED", t.max, kF5DefaultTimeoutMs / t.median);
      std::string tally;
      for (const auto& [c, n] : causes)
        tally += (tally.empty() ? "" : ", ") + std::to_string(n) + "x \"" + c + "\"";
      std::printf("  causes logged: %s\n", tally.c_str());
      std::printf(
          "RESULT test=failover_summary variant=%s runs=%zu detection_median_ms=%.1f "
          "detection_min_ms=%.1f detection_max_ms=%.1f reprogramming_median_ms=%.2f "
          "reprogramming_min_ms=%.2f reprogramming_max_ms=%.2f total_median_ms=%.1f "
          "total_min_ms=%.1f total_max_ms=%.1f goal_ms=%.0f goal_met=%s "
          "f5_default_timeout_ms=%.0f f5_ratio=%.1f\n",
          variant.c_str(), runs.size(), d.median, d.min, d.max, p.median, p.min, p.max, t.median,
          t.min, t.max, kGoalMs, goal ? "yes" : "no", kF5DefaultTimeoutMs,
          kF5DefaultTimeoutMs / t.median);
    }
  }

  struct Load {
    double cpu_pct = 0, probes_per_s = 0, answered_per_s = 0, rss_kib = 0, window_s = 0;
  };

  int runs_, window_s_;
  std::string started_nofile_ = "?";
  std::string dir_, prefix_, bpffs_, config_path_, socket_;
  bool bpffs_mounted_ = false;
  std::vector<std::string> namespaces_;
  Responder responder_;
  pid_t agent_pid_ = -1;
  std::thread reader_;
  std::mutex log_mutex_;
  std::vector<LogLine> log_;
  int run_counter_ = 0;
  int next_client_ = 1;
  Load load_;
  std::map<std::string, std::vector<FailoverRun>> results_;
};

int usage() {
  std::fprintf(stderr,
               "usage: ikelb_probe_bench [--runs N (>= 5, default 7)] [--window S (>= 20, "
               "default 20)]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 7, window = 20;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc)
      runs = std::atoi(argv[++i]);
    else if (a == "--window" && i + 1 < argc)
      window = std::atoi(argv[++i]);
    else
      return usage();
  }
  if (runs < 5 || window < 20) return usage();

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, nullptr, _IOLBF, 0);

  // ikelbd inherits the soft open-file limit of a systemd service (1024), whatever the shell's.
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur > 1024) {
    nofile.rlim_cur = 1024;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }

  Bench bench(runs, window);
  int rc = 0;
  try {
    bench.run();
  } catch (const Interrupted&) {
    std::fprintf(stderr, "ikelb_probe_bench: interrupted; cleaning up\n");
    rc = 130;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ikelb_probe_bench: FAILED: %s\n", e.what());
    bench.dump_agent_log();
    rc = 1;
  }
  bench.clean_up();
  return rc;
}
