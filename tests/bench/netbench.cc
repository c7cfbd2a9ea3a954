// Forwarding benchmark (root): generator namespace -> forwarder namespace -> sink namespace over
// veth pairs, every forwarder measured in the same run, alternating, several rounds.
//
//   ikelb_netbench [--packets N] [--rounds R] [--out DIR] [--affinity ENTRIES]
//
// The generator is BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES on the generator's veth:
// its XDP program gives every frame a client address from a counter and sends it with XDP_TX.
// The sink counts with an XDP program that drops. Forwarders:
//   generator alone   the forwarder's port drops and counts: what the generator can offer
//   null              XDP that only redirects to the sink port (the machine's limit)
//   ikelb hit         ikelb, 10,000 clients cycling, all pinned (affinity hits)
//   ikelb maglev      ikelb, a new client every packet (Maglev path, affinity table churning)
//   ikelb reverse     ikelb, gateway -> client replies (source rewritten to the VIP), with the
//                     reverse-path check off: the replies arrive on the client-side port
//   nftables          kernel stack with nftables DNAT, jhash ip saddr mod 3 to the same backends
// With --out, writes DIR/forwarding.dat (for gnuplot) and DIR/forwarding.md (a table).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "controller.h"
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
  explicit Topology(const std::string& suffix)
      : gen("ikb-gen" + suffix), lb("ikb-lb" + suffix), sink("ikb-sink" + suffix) {
    for (const auto& ns : {gen, lb, sink})
      sh("ip netns add " + ns + " && ip -n " + ns + " link set lo up");
    sh("ip link add gen0 netns " + gen + " address " + kGenMac + " type veth peer name lb0 netns " +
       lb + " address " + kLbMac);
    sh("ip link add s0 netns " + lb + " address " + kS0Mac + " type veth peer name s1 netns " +
       sink + " address " + kSinkMac);
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
  ~Topology() {
    for (const auto& ns : {gen, lb, sink}) {
      try {
        sh("ip netns del " + ns);
      } catch (...) {
      }
    }
  }
  uint32_t ifindex(const std::string& ns, const char* dev) const {
    InNetns in(ns);
    return if_nametoindex(dev);
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

uint64_t sum_counter(int fd) {
  int ncpu = libbpf_num_possible_cpus();
  std::vector<uint64_t> v(static_cast<size_t>(ncpu));
  uint32_t zero = 0;
  if (bpf_map_lookup_elem(fd, &zero, v.data()) != 0) return 0;
  uint64_t s = 0;
  for (uint64_t x : v) s += x;
  return s;
}

void zero_counter(int fd) {
  std::vector<uint64_t> v(static_cast<size_t>(libbpf_num_possible_cpus()), 0);
  uint32_t zero = 0;
  bpf_map_update_elem(fd, &zero, v.data(), BPF_ANY);
}

struct Sample {
  double offered_pps = 0, delivered_pps = 0, loss = 0;
};

struct Bench {
  Topology& topo;
  Skel& skel;
  uint32_t gen_ifindex;
  uint64_t packets;

  // One generator run of `packets` frames; the sink's count over the generator's wall time.
  Sample run(const Bytes& frame, uint32_t base, uint32_t count, bool rewrite) {
    struct {
      uint32_t base, count, rewrite, pad;
      uint8_t header[64];
    } cfg{base, count, rewrite ? 1u : 0u, 0, {}};
    std::copy(frame.begin(), frame.begin() + sizeof(cfg.header), cfg.header);
    uint32_t zero = 0;
    bpf_map_update_elem(bpf_map__fd(skel.s->maps.gen_cfg), &zero, &cfg, BPF_ANY);
    zero_counter(bpf_map__fd(skel.s->maps.sink_count));
    InNetns in(topo.gen);
    xdp_md ctx{};
    ctx.data_end = static_cast<uint32_t>(frame.size());
    ctx.ingress_ifindex = gen_ifindex;
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
                .data_size_in = static_cast<uint32_t>(frame.size()), .ctx_in = &ctx,
                .ctx_size_in = sizeof(ctx), .repeat = static_cast<int>(packets),
                .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .batch_size = 0);
    auto t0 = Clock::now();
    if (bpf_prog_test_run_opts(bpf_program__fd(skel.s->progs.gen), &opts) != 0)
      throw std::system_error(errno, std::generic_category(), "live-frames generator");
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let NAPI drain
    uint64_t got = sum_counter(bpf_map__fd(skel.s->maps.sink_count));
    return {packets / secs, got / secs, 1.0 - double(got) / double(packets)};
  }
};

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
  double median(double Sample::*f) const {
    std::vector<double> v;
    for (const auto& s : samples) v.push_back(s.*f);
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
  }
  std::pair<double, double> range(double Sample::*f) const {
    double lo = 1e18, hi = 0;
    for (const auto& s : samples) lo = std::min(lo, s.*f), hi = std::max(hi, s.*f);
    return {lo, hi};
  }
};

double median_ms(const std::function<void()>& f, int runs) {
  std::vector<double> v;
  for (int i = 0; i < runs; i++) {
    auto t0 = Clock::now();
    f();
    v.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
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

int run(uint64_t packets, int rounds, const std::string& out, uint32_t affinity) {
  Topology topo("-" + std::to_string(getpid()));
  Skel skel;
  Bench bench{topo, skel, topo.ifindex(topo.gen, "gen0"), packets};
  const uint32_t s0 = topo.ifindex(topo.lb, "s0");
  {
    InNetns in(topo.lb);  // a devmap resolves ifindexes in the writer's namespace
    uint32_t zero = 0;
    if (bpf_map_update_elem(bpf_map__fd(skel.s->maps.null_port), &zero, &s0, BPF_ANY) != 0)
      throw std::system_error(errno, std::generic_category(), "null forwarder port");
  }
  xdp_attach(topo.sink, "s1", bpf_program__fd(skel.s->progs.sink));

  const Bytes payload(100, 0x5a);  // ESP-in-UDP sized like a small data packet
  Bytes to_vip = Frame()
                     .eth(mac(kGenMac), mac(kLbMac))
                     .ipv4(ip("100.64.0.1"), ip(kVip))
                     .udp(4500, 4500)
                     .payload(payload)
                     .udp_checksum(0)
                     .build();
  Bytes reply = Frame()
                    .eth(mac(kGenMac), mac(kLbMac))
                    .ipv4(ip("10.1.0.2"), ip("100.64.0.1"))
                    .udp(4500, 4500)
                    .payload(payload)
                    .udp_checksum(0)
                    .build();
  const uint32_t clients = 0x64400001;  // 100.64.0.1

  std::vector<Series> series = {
      {"generator alone", "frames counted and dropped at the forwarder's port", {}},
      {"null forwarder", "XDP redirect to the sink port, nothing else", {}},
      {"ikelb affinity hit", "10,000 clients, all pinned", {}},
      {"ikelb Maglev path", "a new client every packet, affinity table churning", {}},
      {"ikelb reverse",
       "gateway -> client, source rewritten to the VIP; reverse-path check off",
       {}},
      {"nftables DNAT", "kernel stack, dnat to jhash ip saddr mod 3", {}},
  };
  const std::string nft_rules =
      "table ip ikb { chain pre { type nat hook prerouting priority dstnat; ip daddr " + kVip +
      " udp dport { 500, 4500 } dnat to jhash ip saddr mod 3 map { 0 : 10.1.0.2, 1 : 10.1.0.3, "
      "2 : 10.1.0.4 }; }; }";

  for (int round = 0; round < rounds; round++) {
    xdp_attach(topo.lb, "lb0", bpf_program__fd(skel.s->progs.sink));
    series[0].samples.push_back(bench.run(to_vip, clients, 10000, true));
    xdp_attach(topo.lb, "lb0", bpf_program__fd(skel.s->progs.null_fwd));
    series[1].samples.push_back(bench.run(to_vip, clients, 10000, true));
    xdp_attach(topo.lb, "lb0", -1);
    {
      InNetns in(topo.lb);
      SystemClock clock;
      Datapath dp(Datapath::Options{
          .table_slots = IKELB_DEFAULT_TABLE_SLOTS, .affinity_entries = affinity, .pin_dir = ""});
      Controller ctl(dp, clock);
      if (auto errors = ctl.apply(ikelb_config()); !errors.empty())
        throw std::runtime_error("ikelb config: " + errors[0]);
      dp.attach("lb0", false);
      dp.add_tx_port(s0);
      bench.run(to_vip, clients, 10000, true);  // warm-up: pins the 10,000 clients
      series[2].samples.push_back(bench.run(to_vip, clients, 10000, true));
      series[3].samples.push_back(bench.run(to_vip, clients + 10000, 0, true));
      // The replies come in on the client-side port (lb0) while the route to their gateway
      // leaves through s0: the strict reverse-path check would drop every one of them.
      Config no_rp = ikelb_config();
      no_rp.reverse_path_check = ReversePathCheck::kOff;
      if (auto errors = ctl.apply(no_rp); !errors.empty())
        throw std::runtime_error("ikelb config: " + errors[0]);
      series[4].samples.push_back(bench.run(reply, 0, 0, false));
      auto outcomes = dp.outcomes();
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
    series[5].samples.push_back(bench.run(to_vip, clients, 10000, true));
    sh("ip netns exec " + topo.lb + " nft delete table ip ikb");
    xdp_attach(topo.lb, "lb0", -1);
    std::fprintf(stderr, "round %d/%d done\n", round + 1, rounds);
  }

  const double null_pps = series[1].median(&Sample::delivered_pps);
  const double nft_pps = series[5].median(&Sample::delivered_pps);
  std::ostringstream md;
  md << "| forwarder | delivered Mpps (median) | min–max | loss | x null | x nftables |\n"
     << "|---|---|---|---|---|---|\n";
  std::printf("%-22s %10s %17s %7s %7s %10s\n", "forwarder", "Mpps", "min-max", "loss", "x null",
              "x nftables");
  std::ofstream dat;
  if (!out.empty()) dat.open(out + "/forwarding.dat");
  int idx = 0;
  for (const Series& s : series) {
    double m = s.median(&Sample::delivered_pps) / 1e6;
    auto [lo, hi] = s.range(&Sample::delivered_pps);
    double loss = s.median(&Sample::loss);
    char line[256];
    std::snprintf(line, sizeof line, "%-22s %10.3f %8.3f-%-8.3f %6.2f%% %7.2f %10.2f",
                  s.name.c_str(), m, lo / 1e6, hi / 1e6, 100 * loss, m * 1e6 / null_pps,
                  m * 1e6 / nft_pps);
    std::printf("%s\n", line);
    char row[256];
    std::snprintf(row, sizeof row, "| %s (%s) | %.3f | %.3f–%.3f | %.2f%% | %.2f | %.2f |\n",
                  s.name.c_str(), s.note.c_str(), m, lo / 1e6, hi / 1e6, 100 * loss,
                  m * 1e6 / null_pps, m * 1e6 / nft_pps);
    md << row;
    if (dat)
      dat << idx++ << " \"" << s.name << "\" " << m << " " << lo / 1e6 << " " << hi / 1e6 << "\n";
  }
  const double gen_pps = series[0].median(&Sample::offered_pps);
  std::printf("offered by the generator (median): %.3f Mpps with XDP_DROP at the forwarder port\n",
              gen_pps / 1e6);
  bool gen_fastest = true;
  for (size_t i = 1; i < series.size(); i++)
    gen_fastest = gen_fastest && gen_pps > series[i].median(&Sample::offered_pps);
  const double hit = series[2].median(&Sample::delivered_pps);
  char goals[512];
  std::snprintf(goals, sizeof goals,
                "\nThe generator alone offers %.3f Mpps, %s every forwarder's rate.\n\n"
                "Goals: ikelb affinity-hit path %.0f%% of the null forwarder (goal >= 90%%: %s); "
                "%.2fx nftables DNAT (goal >= 4x: %s).\n",
                gen_pps / 1e6, gen_fastest ? "above" : "NOT above", 100 * hit / null_pps,
                hit / null_pps >= 0.9 ? "met" : "not met", hit / nft_pps,
                hit / nft_pps >= 4 ? "met" : "not met");
  std::printf("%s", goals);
  md << goals;

  // Maglev table build time and affinity memory.
  md << "\n| Maglev build, M = 65537 | median ms |\n|---|---|\n";
  for (size_t n : {10, 100, 1000}) {
    std::vector<MaglevBackend> b;
    for (size_t i = 0; i < n; i++) b.push_back({"gw" + std::to_string(i), uint32_t(i), 100});
    double ms = median_ms([&] { build_maglev_table(b, 65537); }, 7);
    std::printf("Maglev build N=%zu: %.2f ms\n", n, ms);
    char row[96];
    std::snprintf(row, sizeof row, "| N = %zu | %.2f |\n", n, ms);
    md << row;
  }
  {
    Datapath dp(Datapath::Options{
        .table_slots = IKELB_DEFAULT_TABLE_SLOTS, .affinity_entries = 1048576, .pin_dir = ""});
    uint64_t bytes = fdinfo_memlock(dp.map_fd(IKELB_MAP_AFFINITY));
    std::printf("affinity map, 1,048,576 entries: %.1f MiB (%.0f bytes/entry)\n", bytes / 1048576.0,
                bytes / 1048576.0);
    char row[160];
    std::snprintf(row, sizeof row,
                  "\nAffinity table memory (LRU hash, preallocated, kernel's memlock figure): "
                  "%.1f MiB per 1,048,576 entries (%.0f bytes per entry).\n",
                  bytes / 1048576.0, bytes / 1048576.0);
    md << row;
  }
  if (!out.empty()) std::ofstream(out + "/forwarding.md") << md.str();
  return 0;
}

}  // namespace
}  // namespace ikelb::bench

int main(int argc, char** argv) {
  uint64_t packets = 2'000'000;
  int rounds = 5;
  std::string out;
  uint32_t affinity = IKELB_DEFAULT_AFFINITY_ENTRIES;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--packets")
      packets = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--rounds")
      rounds = std::atoi(argv[i + 1]);
    else if (a == "--out")
      out = argv[i + 1];
    else if (a == "--affinity")
      affinity = static_cast<uint32_t>(std::strtoul(argv[i + 1], nullptr, 10));
  }
  try {
    return ikelb::bench::run(packets, rounds, out, affinity);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ikelb_netbench: %s\n", e.what());
    return 1;
  }
}
