// Forwarding benchmark (root): generator namespace -> forwarder namespace -> sink namespace over
// veth pairs, every forwarder measured in the same run, alternating, several rounds.
//
//   ikelb_netbench [--packets N] [--rounds R] [--out DIR] [--affinity ENTRIES] [--single-queue]
//
// The generator is BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES on the generator's veth:
// its XDP program gives every frame a client address from a counter and sends it with XDP_TX.
// The sink counts with an XDP program that drops. Forwarders:
//   generator alone   the forwarder's port drops and counts: what the generator can offer
//   null              XDP that only redirects to the sink port (the machine's limit)
//   ikelb hit         ikelb, 10,000 clients cycling, all pinned (affinity hits)
//   ikelb hit, 1      ikelb, one pinned client: the generator stamps the same address every time
//   ikelb maglev      ikelb, a new client every packet (Maglev path, affinity table churning)
//   ikelb reverse     ikelb, gateway -> client replies (source rewritten to the VIP), with the
//                     reverse-path check off: the replies arrive on the client-side port
//   nftables          kernel stack with nftables DNAT, jhash ip saddr mod 3 to the same backends
// From the same rounds: ikelb's own cost per packet (1/rate minus the null forwarder's 1/rate of
// the same round) and the hit path's rate over nftables', each per round, median and min–max.
//
// Then a second topology whose veths have 2 RX/TX queues: the generator split into 2 threads,
// pinned to CPU 0 and CPU 1, each its own live-frames loop with its own clients (the generator
// program offsets the address by CPU number x 10,000). A veth processes a frame it receives
// on the CPU that sent it, so each thread's forwarder and sink work lands on its own CPU:
// each thread alone and both together ("2 CPUs") for the null forwarder and the ikelb hit; the
// scaling is 2 CPUs against the slower CPU alone (the 2-CPU run lasts until the slower one is
// done), and each CPU's time for its frames with the other busy over alone; with the per-CPU split
// of the packets read back from per-CPU counters and each thread's CPU time over its run time
// (under 80%: something else ran on that CPU). A 2-CPU run where either CPU handled under 30% (or a
// 1-thread run where its CPU handled under 90%) is reported invalid: no 2-vs-1 ratio is
// printed and the program exits 1.
//
// With --out, writes DIR/forwarding.dat (for gnuplot) and DIR/forwarding.md (the tables).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "controller.h"
#include "cpu_pin.h"
#include "datapath.h"
#include "ikelb_netbench.skel.h"
#include "maglev.h"
#include "packet.h"
#include "sandbox.h"

namespace ikelb::bench {
namespace {

using test::Bytes;
using test::Frame;
using test::ip;
using test::mac;
using test::sh;
using Clock = std::chrono::steady_clock;

const std::string kVip = "203.0.113.10";
const char* kGenMac = "02:00:00:0b:00:01";
const char* kLbMac = "02:00:00:0b:00:02";
const char* kS0Mac = "02:00:00:0b:00:03";
const char* kSinkMac = "02:00:00:0b:00:04";

// Runs the calling thread in a named network namespace until destroyed.
class InNetns {
 public:
  explicit InNetns(const std::string& name) {
    self_ = open("/proc/self/ns/net", O_RDONLY);
    int fd = open(("/var/run/netns/" + name).c_str(), O_RDONLY);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0)
      throw std::system_error(errno, std::generic_category(), "entering netns " + name);
    close(fd);
  }
  ~InNetns() {
    setns(self_, CLONE_NEWNET);
    close(self_);
  }

 private:
  int self_ = -1;
};

struct Topology {
  std::string gen, lb, sink;
  // `queues`: RX and TX queues on every veth (a veth receives on queue "sending CPU mod queues").
  Topology(const std::string& suffix, int queues)
      : gen("ikb-gen" + suffix), lb("ikb-lb" + suffix), sink("ikb-sink" + suffix) {
    try {
      create(queues);
    } catch (...) {
      remove();  // the destructor does not run for a constructor that throws
      throw;
    }
  }
  ~Topology() { remove(); }
  uint32_t ifindex(const std::string& ns, const char* dev) const {
    InNetns in(ns);
    return if_nametoindex(dev);
  }

 private:
  void create(int queues) {
    const std::string q =
        " numtxqueues " + std::to_string(queues) + " numrxqueues " + std::to_string(queues);
    // No IPv6 on the benchmark's links: its neighbour discovery, router solicitations and MLD
    // reports are skbs, and a veth queues an skb by its TX queue, not by the sending CPU. One sent
    // from CPU 0 onto queue 1 schedules queue 1's NAPI on CPU 0, where it can stay for a whole run
    // while CPU 1's generator keeps that queue busy, moving CPU 1's work to CPU 0.
    for (const auto& ns : {gen, lb, sink})
      sh("ip netns add " + ns + " && ip netns exec " + ns +
         " sh -c '[ -d /proc/sys/net/ipv6 ] || exit 0; echo 1 > "
         "/proc/sys/net/ipv6/conf/all/disable_ipv6 && echo 1 > "
         "/proc/sys/net/ipv6/conf/default/disable_ipv6' && ip -n " +
         ns + " link set lo up");
    sh("ip link add gen0 netns " + gen + " address " + kGenMac + q + " type veth peer name lb0 " +
       "netns " + lb + " address " + kLbMac + q);
    sh("ip link add s0 netns " + lb + " address " + kS0Mac + q + " type veth peer name s1 netns " +
       sink + " address " + kSinkMac + q);
    sh("ip -n " + gen + " link set gen0 up && ip -n " + lb + " link set lb0 up && ip -n " + lb +
       " link set s0 up && ip -n " + sink + " link set s1 up");
    sh("ip -n " + lb + " addr add 198.51.100.1/24 dev lb0 && ip -n " + lb +
       " addr add 10.1.0.1/24 dev s0");
    for (const char* a : {"10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.9"})
      sh("ip -n " + lb + " neigh replace " + a + " lladdr " + kSinkMac + " nud permanent dev s0");
    sh("ip -n " + lb + " route add 100.64.0.0/10 via 10.1.0.9 dev s0");
    sh("ip netns exec " + lb +
       " sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward; for f in all default lb0 s0; do echo 0 > "
       "/proc/sys/net/ipv4/conf/$f/rp_filter; done'");
  }
  // Deleting a namespace deletes the veth ends in it, and with them their peers.
  void remove() {
    for (const auto& ns : {gen, lb, sink}) {
      try {
        sh("if [ -e /var/run/netns/" + ns + " ]; then ip netns del " + ns + "; fi");
      } catch (const std::exception& e) {
        std::fprintf(stderr, "ikelb_netbench: removing namespace %s: %s\n", ns.c_str(), e.what());
      }
    }
  }
};

struct Skel {
  ikelb_netbench_bpf* s = ikelb_netbench_bpf__open_and_load();
  Skel() {
    if (!s) throw std::system_error(errno, std::generic_category(), "loading netbench.bpf.o");
  }
  ~Skel() { ikelb_netbench_bpf__destroy(s); }
};

void xdp_attach(const std::string& ns, const char* dev, int fd) {
  InNetns in(ns);
  int ifindex = static_cast<int>(if_nametoindex(dev));
  bpf_xdp_detach(ifindex, XDP_FLAGS_DRV_MODE, nullptr);
  if (fd >= 0 && bpf_xdp_attach(ifindex, fd, XDP_FLAGS_DRV_MODE, nullptr) != 0)
    throw std::system_error(errno, std::generic_category(), std::string("attaching XDP to ") + dev);
}

// Set by SIGINT/SIGTERM: a live-frames run returns EINTR, and the benchmark unwinds (removing its
// namespaces) instead of dying with them in place.
volatile sig_atomic_t g_signal = 0;

void check_signal() {
  if (g_signal) throw std::runtime_error("interrupted by signal " + std::to_string(g_signal));
}

// A per-CPU map's value for `key`: one 8-byte value per possible CPU.
std::vector<uint64_t> percpu_values(int fd, uint32_t key) {
  std::vector<uint64_t> v(static_cast<size_t>(libbpf_num_possible_cpus()), 0);
  if (bpf_map_lookup_elem(fd, &key, v.data()) != 0)
    throw std::system_error(errno, std::generic_category(), "reading a per-CPU counter");
  return v;
}

uint64_t sum_counter(int fd) {
  uint64_t s = 0;
  for (uint64_t x : percpu_values(fd, 0)) s += x;
  return s;
}

void zero_counter(int fd) {
  std::vector<uint64_t> v(static_cast<size_t>(libbpf_num_possible_cpus()), 0);
  uint32_t zero = 0;
  bpf_map_update_elem(fd, &zero, v.data(), BPF_ANY);
}

// Median (the mean of the middle two for an even count) and range.
struct Stat {
  double median = 0, lo = 0, hi = 0;
};

Stat stat_of(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return {n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v.front(), v.back()};
}

// The calling thread's CPU time. The softirq work a live-frames run causes on its CPU (the veth
// receive paths, the forwarder, the sink) is charged to it (no IRQ time accounting on this
// kernel), so CPU time well under the run's wall time means something else had the CPU.
double thread_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct Sample {
  double offered_pps = 0, delivered_pps = 0, loss = 0;
  double busy = 0;  // the generator thread's CPU time over the run's wall time
};

// The generator's template and client numbering (struct gen_config in netbench.bpf.c).
void set_generator(Skel& skel, const Bytes& frame, uint32_t base, uint32_t count, bool rewrite,
                   uint32_t cpu_stride) {
  struct {
    uint32_t base, count, rewrite, cpu_stride;
    uint8_t header[64];
  } cfg{base, count, rewrite ? 1u : 0u, cpu_stride, {}};
  std::copy(frame.begin(), frame.begin() + sizeof(cfg.header), cfg.header);
  uint32_t zero = 0;
  if (bpf_map_update_elem(bpf_map__fd(skel.s->maps.gen_cfg), &zero, &cfg, BPF_ANY) != 0)
    throw std::system_error(errno, std::generic_category(), "generator configuration");
}

// One live-frames run of `packets` frames on the generator's veth, in the calling thread (which
// must be in the generator's namespace: the kernel resolves ingress_ifindex there).
void generate(Skel& skel, uint32_t gen_ifindex, const Bytes& frame, uint64_t packets) {
  xdp_md ctx{};
  ctx.data_end = static_cast<uint32_t>(frame.size());
  ctx.ingress_ifindex = gen_ifindex;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
              .data_size_in = static_cast<uint32_t>(frame.size()), .ctx_in = &ctx,
              .ctx_size_in = sizeof(ctx), .repeat = static_cast<int>(packets),
              .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .batch_size = 0);
  if (bpf_prog_test_run_opts(bpf_program__fd(skel.s->progs.gen), &opts) != 0)
    throw std::system_error(errno, std::generic_category(), "live-frames generator");
}

struct Bench {
  Topology& topo;
  Skel& skel;
  uint32_t gen_ifindex;
  uint64_t packets;

  // One generator run of `packets` frames; the sink's count over the generator's wall time.
  Sample run(const Bytes& frame, uint32_t base, uint32_t count, bool rewrite) {
    set_generator(skel, frame, base, count, rewrite, 0);
    zero_counter(bpf_map__fd(skel.s->maps.sink_count));
    InNetns in(topo.gen);
    const double cpu0 = thread_cpu_ms();
    auto t0 = Clock::now();
    generate(skel, gen_ifindex, frame, packets);
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    const double busy = (thread_cpu_ms() - cpu0) / (secs * 1e3);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let NAPI drain
    uint64_t got = sum_counter(bpf_map__fd(skel.s->maps.sink_count));
    check_signal();
    return {packets / secs, got / secs, 1.0 - double(got) / double(packets), busy};
  }
};

// A run with one generator thread per CPU in `cpus`.
struct CpuSample {
  double pps = 0;                 // packets at the sink / wall time (first start to last finish)
  double loss = 0;                // 1 - sink packets / packets sent by all threads
  std::vector<uint64_t> share;    // packets per CPU: ikelb's forward_redirect, or the sink's count
  std::vector<double> thread_ms;  // each generator thread's own run time
  // Each thread's CPU time over its run time. The softirq work the run triggers is charged to the
  // thread (no IRQ time accounting here), so well under 100% means something else had the CPU.
  std::vector<double> thread_busy;
};

// Each thread pins itself to its CPU, enters the generator's namespace and, once all are ready,
// runs its own live-frames loop of `packets` frames. Per-CPU shares come from `share_fd`'s entry
// `share_key` (a per-CPU counter array), counted over the run.
CpuSample run_on_cpus(Topology& topo, Skel& skel, uint32_t gen_ifindex, const Bytes& frame,
                      const std::vector<int>& cpus, uint64_t packets, int share_fd,
                      uint32_t share_key) {
  const int sink_fd = bpf_map__fd(skel.s->maps.sink_count);
  zero_counter(sink_fd);
  const std::vector<uint64_t> before = percpu_values(share_fd, share_key);
  std::atomic<size_t> ready{0};
  std::atomic<bool> go{false}, abandon{false};
  std::vector<Clock::time_point> starts(cpus.size()), ends(cpus.size());
  std::vector<double> cpu_ms(cpus.size());
  std::vector<std::exception_ptr> errors(cpus.size());
  std::vector<std::thread> threads;
  auto start_thread = [&](size_t i) {
    threads.emplace_back([&, i] {
      std::optional<InNetns> in;
      try {
        pin_to_cpu(cpus[i]);
        in.emplace(topo.gen);
      } catch (...) {
        errors[i] = std::current_exception();
      }
      ready++;
      while (!go.load()) std::this_thread::yield();
      if (errors[i] || abandon) return;
      try {
        if (sched_getcpu() != cpus[i])
          throw std::runtime_error("generator thread not on CPU " + std::to_string(cpus[i]));
        const double cpu0 = thread_cpu_ms();
        starts[i] = Clock::now();
        generate(skel, gen_ifindex, frame, packets);
        ends[i] = Clock::now();
        cpu_ms[i] = thread_cpu_ms() - cpu0;
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
  };
  try {
    for (size_t i = 0; i < cpus.size(); i++) start_thread(i);
  } catch (...) {  // could not create a thread: release and join the ones that exist
    abandon = true;
    go = true;
    for (auto& t : threads) t.join();
    throw;
  }
  while (ready.load() < cpus.size()) std::this_thread::yield();
  const auto t0 = Clock::now();
  go = true;
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  const double secs =
      std::chrono::duration<double>(*std::max_element(ends.begin(), ends.end()) - t0).count();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let NAPI drain
  check_signal();
  const uint64_t got = sum_counter(sink_fd);
  CpuSample out{got / secs,
                1.0 - double(got) / double(packets * cpus.size()),
                percpu_values(share_fd, share_key),
                {},
                {}};
  for (size_t c = 0; c < out.share.size(); c++) out.share[c] -= before[c];
  for (size_t i = 0; i < cpus.size(); i++) {
    out.thread_ms.push_back(std::chrono::duration<double, std::milli>(ends[i] - starts[i]).count());
    out.thread_busy.push_back(cpu_ms[i] / out.thread_ms.back());
  }
  return out;
}

// Fraction of `share`'s packets handled by `cpu`.
double cpu_share(const std::vector<uint64_t>& share, size_t cpu) {
  uint64_t total = 0;
  for (uint64_t x : share) total += x;
  return total && cpu < share.size() ? double(share[cpu]) / double(total) : 0;
}

Config ikelb_config() {
  Config c;
  c.interfaces = {"lb0"};
  VirtualServerConfig v;
  v.name = "vpn";
  v.address = IpAddress::must_parse(kVip);
  v.health_check.mode = ProbeMode::kNone;
  for (int i = 0; i < 3; i++) {
    BackendConfig b;
    b.name = "gw" + std::to_string(i + 1);
    b.address = IpAddress::must_parse("10.1.0." + std::to_string(i + 2));
    v.backends.push_back(b);
  }
  c.virtual_servers.push_back(v);
  return c;
}

struct Series {
  std::string name, note;
  std::vector<Sample> samples;
  Stat stat(double Sample::*f) const {
    std::vector<double> v;
    for (const auto& s : samples) v.push_back(s.*f);
    return stat_of(v);
  }
  double median(double Sample::*f) const { return stat(f).median; }
};

// Round r's time per packet of series k beyond that of series base, in ns: 1/rate(k) - 1/rate(base)
// of the same round, so whatever both do in that round (the generator's work, the sink's) cancels.
double beyond(const std::vector<Series>& series, int k, int base, size_t r) {
  return 1e9 / series[k].samples[r].delivered_pps - 1e9 / series[base].samples[r].delivered_pps;
}

// The same over every round: median and range.
Stat beyond_per_round(const std::vector<Series>& series, int k, int base) {
  std::vector<double> v;
  for (size_t r = 0; r < series[base].samples.size(); r++) v.push_back(beyond(series, k, base, r));
  return stat_of(v);
}

double median_ms(const std::function<void()>& f, int runs) {
  std::vector<double> v;
  for (int i = 0; i < runs; i++) {
    auto t0 = Clock::now();
    f();
    v.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return stat_of(v).median;
}

uint64_t fdinfo_memlock(int fd) {
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
  std::string key;
  uint64_t value = 0;
  while (in >> key) {
    if (key == "memlock:") {
      in >> value;
      return value;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

std::string fmt(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* format, ...) {
  va_list ap, again;
  va_start(ap, format);
  va_copy(again, ap);
  int n = std::vsnprintf(nullptr, 0, format, ap);
  va_end(ap);
  std::string out(n > 0 ? static_cast<size_t>(n) : 0, '\0');
  std::vsnprintf(out.data(), out.size() + 1, format, again);
  va_end(again);
  return out;
}

// A paragraph of the report: on stdout (after a blank line with `gap`) and in the markdown.
void paragraph(std::ostringstream& md, const std::string& text, bool gap = false) {
  std::printf(gap ? "\n%s\n" : "%s\n", text.c_str());
  md << "\n" << text << "\n";
}

const char* met(bool ok) {
  return ok ? "met" : "not met";
}

const Bytes kPayload(100, 0x5a);       // ESP-in-UDP sized like a small data packet
const uint32_t kClients = 0x64400001;  // 100.64.0.1

Bytes to_vip_frame() {
  return Frame()
      .eth(mac(kGenMac), mac(kLbMac))
      .ipv4(ip("100.64.0.1"), ip(kVip))
      .udp(4500, 4500)
      .payload(kPayload)
      .udp_checksum(0)
      .build();
}

// Sets the null forwarder's devmap to the forwarder namespace's s0 and attaches the sink.
void prepare(Topology& topo, Skel& skel) {
  const uint32_t s0 = topo.ifindex(topo.lb, "s0");
  {
    InNetns in(topo.lb);  // a devmap resolves ifindexes in the writer's namespace
    uint32_t zero = 0;
    if (bpf_map_update_elem(bpf_map__fd(skel.s->maps.null_port), &zero, &s0, BPF_ANY) != 0)
      throw std::system_error(errno, std::generic_category(), "null forwarder port");
  }
  xdp_attach(topo.sink, "s1", bpf_program__fd(skel.s->progs.sink));
}

// ikelb configured with the benchmark's virtual server and attached to lb0 (the caller must be
// in the forwarder's namespace).
struct Ikelb {
  SystemClock clock;
  Datapath dp;
  Controller ctl;
  Ikelb(uint32_t affinity, uint32_t s0)
      : dp(Datapath::Options{
            .table_slots = IKELB_DEFAULT_TABLE_SLOTS, .affinity_entries = affinity, .pin_dir = ""}),
        ctl(dp, clock) {
    apply(ikelb_config());
    dp.attach("lb0", false);
    dp.add_tx_port(s0);
  }
  void apply(const Config& c) {
    if (auto errors = ctl.apply(c); !errors.empty())
      throw std::runtime_error("ikelb config: " + errors[0]);
  }
  uint64_t forwarded() const { return dp.outcomes()[IKELB_OUT_FWD_REDIRECT]; }
};

// The 2-queue run: returns false if a run's work did not land on the CPUs it should have.
bool run_two_queues(uint64_t packets, int rounds, uint32_t affinity, std::ostringstream& md) {
  Topology topo("-" + std::to_string(getpid()) + "-q2", 2);
  Skel skel;
  prepare(topo, skel);
  const uint32_t gen_ifindex = topo.ifindex(topo.gen, "gen0");
  const uint32_t s0 = topo.ifindex(topo.lb, "s0");
  const Bytes frame = to_vip_frame();
  const uint32_t per_cpu = 10000;
  // CPU c sends clients 100.64.0.1 + c * 10,000 onwards, 10,000 of them, cycling.
  set_generator(skel, frame, kClients, per_cpu, true, per_cpu);
  const int sink_fd = bpf_map__fd(skel.s->maps.sink_count);
  // Runs of one round: the CPU 0 thread alone ("1 CPU"), the CPU 1 thread alone (to show whether
  // the two CPUs are equally fast), both ("2 CPUs").
  enum { kCpu0, kCpu1, kBoth, kKinds };
  const std::vector<int> cpu_sets[kKinds] = {{0}, {1}, {0, 1}};
  const char* kind_names[kKinds] = {"CPU 0 alone", "CPU 1 alone", "2 CPUs"};

  struct Row {
    std::string name, counted;
    std::vector<CpuSample> runs[kKinds];
  };
  Row null_row{"null forwarder", "sink count per CPU", {}};
  Row hit_row{"ikelb hit, 10,000 clients per CPU", "ikelb forward_redirect per CPU", {}};
  auto measure = [&](Row& row, int fd, uint32_t key, int round) {
    // Rotate the order every round, so that no kind always runs first or last.
    for (int k = 0; k < kKinds; k++) {
      int kind = (k + round) % kKinds;
      row.runs[kind].push_back(
          run_on_cpus(topo, skel, gen_ifindex, frame, cpu_sets[kind], packets, fd, key));
    }
  };
  for (int round = 0; round < rounds; round++) {
    xdp_attach(topo.lb, "lb0", bpf_program__fd(skel.s->progs.null_fwd));
    measure(null_row, sink_fd, 0, round);
    xdp_attach(topo.lb, "lb0", -1);
    {
      InNetns in(topo.lb);
      Ikelb lb(affinity, s0);
      const int outcomes_fd = lb.dp.map_fd(IKELB_MAP_OUTCOMES);
      // Warm-up on both CPUs: pins all 20,000 clients.
      run_on_cpus(topo, skel, gen_ifindex, frame, cpu_sets[kBoth], packets, outcomes_fd,
                  IKELB_OUT_FWD_REDIRECT);
      if (lb.forwarded() == 0)
        throw std::runtime_error("ikelb forwarded nothing: the 2-queue set-up is wrong");
      measure(hit_row, outcomes_fd, IKELB_OUT_FWD_REDIRECT, round);
    }
    std::fprintf(stderr, "2-queue round %d/%d done\n", round + 1, rounds);
  }

  const std::string how = fmt(
      "Both veth pairs with 2 RX and 2 TX queues. The generator is split into 2 threads, each "
      "pinned with pthread_setaffinity_np to one CPU (thread 0 to CPU 0, thread 1 to CPU 1; "
      "checked with sched_getcpu) and each running its own BPF_PROG_TEST_RUN live-frames loop "
      "of %llu frames. The generator program adds CPU number x 10,000 to the client address "
      "(bpf_get_smp_processor_id), so CPU 0 sends 100.64.0.1 + 0..9,999 and CPU 1 the next "
      "10,000: the two never send the same client (all 20,000 pinned by a warm-up run). "
      "Each round runs the CPU 0 thread alone, the CPU 1 thread alone and both threads (\"2 "
      "CPUs\"), in a rotating order; the scaling is 2 CPUs against the slower of the two alone "
      "(the 2-CPU run lasts until the slower CPU is done). Rate: packets at the sink / wall time "
      "from the start to the last thread's end. The per-CPU split is read from per-CPU counters "
      "(ikelb: its outcomes map, "
      "forward_redirect; null: the sink's count); a 2-CPU run where either CPU handled under "
      "30%% of the packets, or a 1-thread run where its CPU handled under 90%%, makes the whole "
      "2-queue run invalid.",
      static_cast<unsigned long long>(packets));
  std::printf("\nTwo queues, 1 CPU vs 2 CPUs (%d rounds).\n%s\n", rounds, how.c_str());
  md << "\n### Two queues: 1 CPU vs 2 CPUs\n\n" << how << "\n\n";
  md << "| forwarder | CPU 0 alone, Mpps median (min–max) | CPU 1 alone | 2 CPUs | "
        "2 CPUs vs the slower CPU alone (median) | min–max | vs CPU 0 alone | vs CPU 1 alone | "
        "a thread's time with both CPUs busy / alone (CPU 0, CPU 1) | CPU 0 / CPU 1 share in "
        "the 2-CPU runs |\n|---|---|---|---|---|---|---|---|---|---|\n";
  bool valid = true;
  int disturbed = 0, total_runs = 0;
  std::string goal_line =
      "Goal: 2 CPUs >= 1.8x 1 CPU. With both threads a run lasts until the slower CPU has sent "
      "its half, so 2 CPUs deliver at most twice the slower CPU's rate: the scaling is 2 CPUs "
      "against the slower CPU alone, whichever it is in that round:";
  std::string vs_cpu1_line;
  for (Row* row : {&null_row, &hit_row}) {
    std::vector<double> rate[kKinds], ratio, ratio1, ratio_slow, stretch[2];
    std::string split;
    for (size_t r = 0; r < row->runs[kBoth].size(); r++) {
      for (int kind = 0; kind < kKinds; kind++) {
        const CpuSample& x = row->runs[kind][r];
        rate[kind].push_back(x.pps);
        std::string threads, handled;
        bool ok = true;
        for (size_t t = 0; t < cpu_sets[kind].size(); t++) {
          int cpu = cpu_sets[kind][t];
          double part = cpu_share(x.share, static_cast<size_t>(cpu));
          threads += fmt("%sCPU %d %.1f ms (on the CPU %.0f%% of it)", t ? ", " : "", cpu,
                         x.thread_ms[t], 100 * x.thread_busy[t]);
          handled += fmt("%sCPU %d %.1f%%", t ? ", " : "", cpu, 100 * part);
          ok = ok && part >= (kind == kBoth ? 0.3 : 0.9);
          total_runs++;
          if (x.thread_busy[t] < 0.8) disturbed++;
        }
        std::printf(
            "  round %zu, %s, %s: %.3f Mpps, loss %.2f%%; threads: %s; handled: %s (%s)%s\n", r + 1,
            row->name.c_str(), kind_names[kind], x.pps / 1e6, 100 * x.loss, threads.c_str(),
            handled.c_str(), row->counted.c_str(),
            ok              ? ""
            : kind == kBoth ? "  INVALID: a CPU handled under 30%"
                            : "  INVALID: its CPU handled under 90%");
        valid = valid && ok;
        if (kind == kBoth)
          split += fmt("%s%.0f%% / %.0f%%", r ? ", " : "", 100 * cpu_share(x.share, 0),
                       100 * cpu_share(x.share, 1));
      }
      ratio.push_back(row->runs[kBoth][r].pps / row->runs[kCpu0][r].pps);
      ratio1.push_back(row->runs[kBoth][r].pps / row->runs[kCpu1][r].pps);
      ratio_slow.push_back(row->runs[kBoth][r].pps /
                           std::min(row->runs[kCpu0][r].pps, row->runs[kCpu1][r].pps));
      // How much each CPU slowed down with the other one busy: the same frames, the same CPU.
      stretch[0].push_back(row->runs[kBoth][r].thread_ms[0] / row->runs[kCpu0][r].thread_ms[0]);
      stretch[1].push_back(row->runs[kBoth][r].thread_ms[1] / row->runs[kCpu1][r].thread_ms[0]);
    }
    const Stat s0st = stat_of(rate[kCpu0]), s1st = stat_of(rate[kCpu1]),
               s2st = stat_of(rate[kBoth]), sr = stat_of(ratio), sr1 = stat_of(ratio1),
               srs = stat_of(ratio_slow), st0 = stat_of(stretch[0]), st1 = stat_of(stretch[1]);
    auto mpps = [](const Stat& st) {
      return fmt("%.3f (%.3f–%.3f)", st.median / 1e6, st.lo / 1e6, st.hi / 1e6);
    };
    std::printf("%-34s CPU 0 alone %s Mpps, CPU 1 alone %s, 2 CPUs %s: %s\n", row->name.c_str(),
                mpps(s0st).c_str(), mpps(s1st).c_str(), mpps(s2st).c_str(),
                valid
                    ? fmt("2 CPUs vs the slower alone %.2fx (%.2f-%.2f), vs CPU 0 alone %.2fx, "
                          "vs CPU 1 alone %.2fx; a thread's time, both busy / alone: CPU 0 "
                          "x%.2f, CPU 1 x%.2f",
                          srs.median, srs.lo, srs.hi, sr.median, sr1.median, st0.median, st1.median)
                          .c_str()
                    : "2 vs 1 not reported (invalid run)");
    md << "| " << row->name << " | " << mpps(s0st) << " | " << mpps(s1st) << " | " << mpps(s2st)
       << " | "
       << (valid ? fmt("%.2f× | %.2f–%.2f× | %.2f× | %.2f× | ×%.2f, ×%.2f", srs.median, srs.lo,
                       srs.hi, sr.median, sr1.median, st0.median, st1.median)
                 : "invalid | invalid | invalid | invalid | invalid")
       << " | " << split << " |\n";
    if (valid) {
      goal_line += fmt(" %s %.3fx (%s);", row->name.c_str(), srs.median, met(srs.median >= 1.8));
      if (std::abs(s0st.median - s1st.median) > 0.1 * std::max(s0st.median, s1st.median))
        vs_cpu1_line += fmt(" %s: CPU 0 alone %.3f Mpps, CPU 1 alone %.3f Mpps;", row->name.c_str(),
                            s0st.median / 1e6, s1st.median / 1e6);
    }
  }
  if (valid) {
    goal_line.back() = '.';
    std::string notes = goal_line;
    if (!vs_cpu1_line.empty()) {
      vs_cpu1_line.back() = '.';
      notes +=
          "\nThe medians of the CPU 0 and the CPU 1 thread alone differ by more than 10% (the "
          "CPUs are not equally fast, or something else ran on one: see the per-run CPU "
          "time), so a ratio against one fixed CPU would measure the CPUs, not the forwarder:" +
          vs_cpu1_line;
    }
    notes +=
        fmt("\nIn %d of %d thread runs a generator thread had its CPU for under 80%% of its "
            "run (something else was running there; those rounds' rates are low).",
            disturbed, total_runs);
    std::printf("%s\n", notes.c_str());
    for (size_t at = 0; (at = notes.find('\n', at)) != std::string::npos; at += 2)
      notes.insert(at, "\n");  // a paragraph each in markdown
    md << "\n" << notes << "\n";
  } else {
    const char* msg =
        "The 2-queue run is INVALID: the work did not split across the CPUs as intended (see the "
        "per-CPU shares above), so no 2-vs-1 ratio is reported.";
    paragraph(md, msg);
  }
  return valid;
}

// nftables against ikelb without the generator's share: each forwarder's time per packet beyond
// the generator alone's, paired by round. The rate ratio carries the generator's time in both
// rates, so it understates the difference; this is the same comparison with that time taken out
// (the sink's work stays in both). Printed next to the goal's rate ratio, not instead of it.
void compare_beyond_generator(const std::vector<Series>& series, int gen, int nft,
                              std::initializer_list<int> ikelb, std::ostringstream& md) {
  const size_t n = series[gen].samples.size();
  const std::string intro =
      "Per packet beyond the generator alone: for each round, 1/rate(forwarder) - "
      "1/rate(generator alone) of that round, in ns (the generator's time, which is in both "
      "rates of the ratio above, taken out; the sink's stays in both). Not the goal's figure.";
  paragraph(md, intro, true);
  md << "\n| forwarder | ns per packet beyond the generator (median) | min–max "
     << "| nftables / this, per round (median) | min–max |\n|---|---|---|---|---|\n";
  const Stat n_cost = beyond_per_round(series, nft, gen);
  std::printf("  %-26s %8.1f ns (%.1f-%.1f)\n", series[nft].name.c_str(), n_cost.median, n_cost.lo,
              n_cost.hi);
  md << fmt("| %s | %.1f | %.1f–%.1f | — | — |\n", series[nft].name.c_str(), n_cost.median,
            n_cost.lo, n_cost.hi);
  for (int k : ikelb) {
    const Stat c = beyond_per_round(series, k, gen);
    std::vector<double> ratio;
    int unusable = 0;  // a round in which this forwarder was not slower than the generator alone
    for (size_t r = 0; r < n; r++) {
      const double own = beyond(series, k, gen, r);
      if (own > 0)
        ratio.push_back(beyond(series, nft, gen, r) / own);
      else
        unusable++;
    }
    const Stat q = stat_of(ratio);
    const std::string skipped =
        unusable
            ? fmt(" (%d of %zu rounds without a ratio: not slower than the generator)", unusable, n)
            : "";
    std::printf("  %-26s %8.1f ns (%.1f-%.1f); nftables / this %.2fx (%.2f-%.2f)%s\n",
                series[k].name.c_str(), c.median, c.lo, c.hi, q.median, q.lo, q.hi,
                skipped.c_str());
    md << fmt("| %s | %.1f | %.1f–%.1f | %.2f× | %.2f–%.2f×%s |\n", series[k].name.c_str(),
              c.median, c.lo, c.hi, q.median, q.lo, q.hi, skipped.c_str());
  }
}

int run(uint64_t packets, int rounds, const std::string& out, uint32_t affinity, bool two_queues) {
  std::ostringstream md;
  std::vector<Series> series = {
      {"generator alone", "frames counted and dropped at the forwarder's port", {}},
      {"null forwarder", "XDP redirect to the sink port, nothing else", {}},
      {"ikelb hit, 10,000 clients", "10,000 clients cycling, all pinned", {}},
      {"ikelb hit, 1 client", "one pinned client, the same address every packet", {}},
      {"ikelb Maglev path", "a new client every packet, affinity table churning", {}},
      {"ikelb reverse",
       "gateway -> client, source rewritten to the VIP; reverse-path check off",
       {}},
      {"nftables DNAT", "kernel stack, dnat to jhash ip saddr mod 3", {}},
  };
  enum { kGen, kNull, kHit, kHit1, kMaglev, kReverse, kNft };
  {
    PinnedToFirstCpu pinned;
    std::printf("single-queue runs: pinned to CPU %d\n", pinned.cpu());
    Topology topo("-" + std::to_string(getpid()), 1);
    Skel skel;
    prepare(topo, skel);
    Bench bench{topo, skel, topo.ifindex(topo.gen, "gen0"), packets};
    const uint32_t s0 = topo.ifindex(topo.lb, "s0");
    const Bytes to_vip = to_vip_frame();
    const Bytes reply = Frame()
                            .eth(mac(kGenMac), mac(kLbMac))
                            .ipv4(ip("10.1.0.2"), ip("100.64.0.1"))
                            .udp(4500, 4500)
                            .payload(kPayload)
                            .udp_checksum(0)
                            .build();
    const std::string nft_rules =
        "table ip ikb { chain pre { type nat hook prerouting priority dstnat; ip daddr " + kVip +
        " udp dport { 500, 4500 } dnat to jhash ip saddr mod 3 map { 0 : 10.1.0.2, 1 : "
        "10.1.0.3, 2 : 10.1.0.4 }; }; }";

    for (int round = 0; round < rounds; round++) {
      xdp_attach(topo.lb, "lb0", bpf_program__fd(skel.s->progs.sink));
      series[kGen].samples.push_back(bench.run(to_vip, kClients, 10000, true));
      xdp_attach(topo.lb, "lb0", bpf_program__fd(skel.s->progs.null_fwd));
      series[kNull].samples.push_back(bench.run(to_vip, kClients, 10000, true));
      xdp_attach(topo.lb, "lb0", -1);
      {
        InNetns in(topo.lb);
        Ikelb lb(affinity, s0);
        bench.run(to_vip, kClients, 10000, true);  // warm-up: pins the 10,000 clients
        series[kHit].samples.push_back(bench.run(to_vip, kClients, 10000, true));
        series[kHit1].samples.push_back(bench.run(to_vip, kClients, 1, true));
        series[kMaglev].samples.push_back(bench.run(to_vip, kClients + 10000, 0, true));
        // The replies come in on the client-side port (lb0) while the route to their gateway
        // leaves through s0: the strict reverse-path check would drop every one of them.
        Config no_rp = ikelb_config();
        no_rp.reverse_path_check = ReversePathCheck::kOff;
        lb.apply(no_rp);
        series[kReverse].samples.push_back(bench.run(reply, 0, 0, false));
        auto outcomes = lb.dp.outcomes();
        if (getenv("IKB_DEBUG"))
          for (uint32_t o = 0; o < IKELB_OUTCOME_MAX; o++)
            if (outcomes[o])
              std::fprintf(stderr, "ikelb %s: %llu\n", outcome_name(o).data(),
                           (unsigned long long)outcomes[o]);
        if (outcomes[IKELB_OUT_FWD_REDIRECT] == 0)
          throw std::runtime_error("ikelb forwarded nothing: the benchmark set-up is wrong");
      }
      xdp_attach(topo.lb, "lb0", bpf_program__fd(skel.s->progs.pass));
      sh("ip netns exec " + topo.lb + " nft '" + nft_rules + "'");
      try {
        series[kNft].samples.push_back(bench.run(to_vip, kClients, 10000, true));
      } catch (...) {
        sh("ip netns exec " + topo.lb + " nft delete table ip ikb");
        throw;
      }
      sh("ip netns exec " + topo.lb + " nft delete table ip ikb");
      xdp_attach(topo.lb, "lb0", -1);
      std::fprintf(stderr, "round %d/%d done\n", round + 1, rounds);
    }
  }

  const double null_pps = series[kNull].median(&Sample::delivered_pps);
  const double nft_pps = series[kNft].median(&Sample::delivered_pps);
  md << "| forwarder | delivered Mpps (median) | min–max | loss | x null | x nftables |\n"
     << "|---|---|---|---|---|---|\n";
  std::printf("%-26s %9s %17s %7s %7s %10s\n", "forwarder", "Mpps", "min-max", "loss", "x null",
              "x nftables");
  std::ofstream dat;
  if (!out.empty()) {
    dat.open(out + "/forwarding.dat");
    if (!dat) throw std::runtime_error("cannot write " + out + "/forwarding.dat");
  }
  int idx = 0;
  for (const Series& s : series) {
    const Stat rate = s.stat(&Sample::delivered_pps);
    const double m = rate.median / 1e6, lo = rate.lo, hi = rate.hi;
    double loss = s.median(&Sample::loss);
    std::printf("%-26s %9.3f %8.3f-%-8.3f %6.2f%% %7.2f %10.2f\n", s.name.c_str(), m, lo / 1e6,
                hi / 1e6, 100 * loss, m * 1e6 / null_pps, m * 1e6 / nft_pps);
    md << fmt("| %s (%s) | %.3f | %.3f–%.3f | %.2f%% | %.2f | %.2f |\n", s.name.c_str(),
              s.note.c_str(), m, lo / 1e6, hi / 1e6, 100 * loss, m * 1e6 / null_pps,
              m * 1e6 / nft_pps);
    if (dat)
      dat << idx++ << " \"" << s.name << "\" " << m << " " << lo / 1e6 << " " << hi / 1e6 << "\n";
  }
  const double gen_pps = series[kGen].median(&Sample::offered_pps);
  std::printf("offered by the generator (median): %.3f Mpps with XDP_DROP at the forwarder port\n",
              gen_pps / 1e6);
  bool gen_fastest = true;
  for (size_t i = 1; i < series.size(); i++)
    gen_fastest = gen_fastest && gen_pps > series[i].median(&Sample::offered_pps);
  const double hit = series[kHit].median(&Sample::delivered_pps);
  const std::string summary = fmt(
      "\nThe generator alone offers %.3f Mpps, %s every forwarder's rate. The ikelb 10,000-client "
      "hit path delivers %.0f%% of the null forwarder's rate (goal >= 90%%: %s).\n",
      gen_pps / 1e6, gen_fastest ? "above" : "NOT above", 100 * hit / null_pps,
      met(hit / null_pps >= 0.9));
  std::printf("%s", summary.c_str());
  md << summary;
  {
    std::vector<double> busy;
    int low = 0;
    for (const Series& s : series)
      for (const Sample& x : s.samples) {
        busy.push_back(x.busy);
        low += x.busy < 0.8;
      }
    const Stat b = stat_of(busy);
    const std::string line = fmt(
        "The generator thread had its CPU for %.0f%% of a run's wall time (median; lowest %.0f%%): "
        "%d of %zu runs under 80%% (something else was running on that CPU; those figures are "
        "low). This does not see load that slows a CPU without taking it (a busy sibling "
        "hyperthread, the host).\n",
        100 * b.median, 100 * b.lo, low, busy.size());
    std::printf("%s", line.c_str());
    md << "\n" << line;
  }

  // ikelb's own cost per packet, paired by round: what ikelb adds to a packet's time over the
  // null forwarder (which only redirects) measured in the same round.
  const size_t n = series[kNull].samples.size();
  auto own_cost = [&](int k) { return beyond_per_round(series, k, kNull); };
  const std::string own_intro =
      "ikelb's own cost per packet: for each round, 1/rate(ikelb) - 1/rate(null forwarder) of "
      "that round, in ns (each rate is of the generator, forwarder and sink on one CPU together, "
      "so the difference is what ikelb costs beyond a bare redirect).";
  paragraph(md, own_intro, true);
  md << "\n| ikelb | ns per packet over null (median) | min–max |\n"
     << "|---|---|---|\n";
  for (int k : {kHit1, kHit, kMaglev, kReverse}) {
    Stat st = own_cost(k);
    std::printf("  %-26s %8.1f ns (%.1f-%.1f)\n", series[k].name.c_str(), st.median, st.lo, st.hi);
    md << fmt("| %s | %.1f | %.1f–%.1f |\n", series[k].name.c_str(), st.median, st.lo, st.hi);
  }
  const Stat own1 = own_cost(kHit1), own10k = own_cost(kHit);
  const std::string own_goal =
      fmt("Goal: an affinity hit costs <= 100 ns: 10,000 clients %.1f ns (%s); 1 client %.1f ns "
          "(%s).",
          own10k.median, met(own10k.median <= 100), own1.median, met(own1.median <= 100));
  paragraph(md, own_goal);
  // A round that lost frames between generator and sink has a low delivered rate, and the paired
  // figures above carry it: say which.
  std::string lossy;
  for (int k : {kNull, kHit1, kHit, kMaglev, kReverse, kNft})
    for (size_t r = 0; r < n; r++)
      if (series[k].samples[r].loss > 0.01)
        lossy += fmt("%s%s round %zu lost %.1f%%", lossy.empty() ? "" : "; ",
                     series[k].name.c_str(), r + 1, 100 * series[k].samples[r].loss);
  if (!lossy.empty()) {
    const std::string line =
        "Rounds that lost over 1% of their frames between generator and sink "
        "(their delivered rate, and the per-round figures built on it, are "
        "low): " +
        lossy + ".";
    paragraph(md, line);
  }

  // ikelb hit vs nftables, paired by round.
  std::vector<double> vs_nft;
  std::string per_round;
  for (size_t r = 0; r < n; r++) {
    vs_nft.push_back(series[kHit].samples[r].delivered_pps / series[kNft].samples[r].delivered_pps);
    per_round += fmt("%s%.2f", r ? ", " : "", vs_nft.back());
  }
  const Stat nft = stat_of(vs_nft);
  const std::string nft_line =
      fmt("ikelb hit (10,000 clients) / nftables DNAT, per round: %.2fx median (%.2f-%.2f; rounds: "
          "%s). Goal >= 5x: %s.",
          nft.median, nft.lo, nft.hi, per_round.c_str(), met(nft.median >= 5));
  std::printf("\n%s\n", nft_line.c_str());
  md << "\n| rate(ikelb hit, 10,000 clients) / rate(nftables DNAT), per round | median | min–max "
        "| goal |\n|---|---|---|---|\n"
     << fmt("| %s | %.2f× | %.2f–%.2f× | ≥ 5×: %s |\n", per_round.c_str(), nft.median, nft.lo,
            nft.hi, met(nft.median >= 5));
  compare_beyond_generator(series, kGen, kNft, {kHit, kHit1}, md);

  const bool two_queues_valid = !two_queues || run_two_queues(packets, rounds, affinity, md);

  // Maglev table build time and affinity memory.
  md << "\n| Maglev build, M = 65537 | median ms |\n|---|---|\n";
  std::printf("\n");
  for (size_t nb : {10, 100, 1000}) {
    std::vector<MaglevBackend> b;
    for (size_t i = 0; i < nb; i++) b.push_back({"gw" + std::to_string(i), uint32_t(i), 100});
    double ms = median_ms([&] { build_maglev_table(b, 65537); }, 7);
    std::printf("Maglev build N=%zu: %.2f ms\n", nb, ms);
    md << fmt("| N = %zu | %.2f |\n", nb, ms);
  }
  {
    Datapath dp(Datapath::Options{
        .table_slots = IKELB_DEFAULT_TABLE_SLOTS, .affinity_entries = 1048576, .pin_dir = ""});
    uint64_t bytes = fdinfo_memlock(dp.map_fd(IKELB_MAP_AFFINITY));
    std::printf("affinity map, 1,048,576 entries: %.1f MiB (%.0f bytes/entry)\n", bytes / 1048576.0,
                bytes / 1048576.0);
    md << fmt(
        "\nAffinity table memory (LRU hash, preallocated, kernel's memlock figure): "
        "%.1f MiB per 1,048,576 entries (%.0f bytes per entry).\n",
        bytes / 1048576.0, bytes / 1048576.0);
  }
  if (!out.empty()) {
    std::ofstream f(out + "/forwarding.md");
    f << md.str();
    if (!f) throw std::runtime_error("cannot write " + out + "/forwarding.md");
  }
  if (!two_queues_valid) {
    std::fprintf(stderr, "ikelb_netbench: the 2-queue run is invalid (see above)\n");
    return 1;
  }
  return 0;
}

void on_signal(int sig) {
  g_signal = sig;
}

}  // namespace
}  // namespace ikelb::bench

namespace {

const char* kUsage =
    "usage: ikelb_netbench [--packets N] [--rounds R] [--out DIR] [--affinity ENTRIES]\n"
    "  --packets N         frames per generator run (per thread in the 2-queue run), 1..2^31-1\n"
    "                      (default 2000000)\n"
    "  --rounds R          rounds, 1..1000 (default 5)\n"
    "  --out DIR           write DIR/forwarding.dat and DIR/forwarding.md (DIR must exist)\n"
    "  --affinity ENTRIES  ikelb's affinity table size, 1..2^32-1 (default the data path's)\n"
    "  --single-queue      skip the 2-queue run (tests/bench/variants.sh compares data paths)\n";

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "ikelb_netbench: %s\n%s", message.c_str(), kUsage);
  std::exit(2);
}

uint64_t parse_number(const std::string& option, const char* text, uint64_t lo, uint64_t hi) {
  errno = 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(text, &end, 10);
  if (!*text || *end || errno || text[0] == '-' || v < lo || v > hi)
    usage_error(option + " wants a whole number from " + std::to_string(lo) + " to " +
                std::to_string(hi) + ", not \"" + text + "\"");
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t packets = 2'000'000;
  int rounds = 5;
  std::string out;
  uint32_t affinity = IKELB_DEFAULT_AFFINITY_ENTRIES;
  bool two_queues = true;
  for (int i = 1; i < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::printf("%s", kUsage);
      return 0;
    }
    if (a == "--single-queue") {
      two_queues = false;
      i--;  // a flag: no value follows
      continue;
    }
    if (a != "--packets" && a != "--rounds" && a != "--out" && a != "--affinity")
      usage_error("unknown argument \"" + a + "\"");
    if (i + 1 >= argc) usage_error(a + " needs a value");
    const char* v = argv[i + 1];
    if (a == "--packets")
      packets = parse_number(a, v, 1, INT_MAX);
    else if (a == "--rounds")
      rounds = static_cast<int>(parse_number(a, v, 1, 1000));
    else if (a == "--out")
      out = v;
    else
      affinity = static_cast<uint32_t>(parse_number(a, v, 1, UINT32_MAX));
  }
  if (!out.empty()) {
    struct stat st {};
    if (stat(out.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      usage_error("--out " + out + ": not a directory");
  }
  // The 2-queue run needs CPUs 0 and 1.
  cpu_set_t cpus;
  if (two_queues && (sched_getaffinity(0, sizeof cpus, &cpus) != 0 || !CPU_ISSET(0, &cpus) ||
                     !CPU_ISSET(1, &cpus))) {
    std::fprintf(stderr,
                 "ikelb_netbench: the 2-queue run needs CPUs 0 and 1, and this process "
                 "may not run on both\n");
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = ikelb::bench::on_signal;  // no SA_RESTART: a live-frames run returns EINTR
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  try {
    return ikelb::bench::run(packets, rounds, out, affinity, two_queues);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ikelb_netbench: %s\n", e.what());
    return 1;
  }
}
