// Micro-benchmark of the XDP data path under BPF_PROG_TEST_RUN (root). Not a test: it prints
// ns/packet per path and ratios against a baseline measured in the same run, since absolute
// figures on a shared VM are noisy.
//
//   ikelb_microbench [--repeat N] [--rounds R] [--only TEXT] [--affinity ENTRIES]
//     (default 1,000,000 runs per measurement, 5 rounds, median; --only: the paths whose name
//     contains TEXT, for profiling one path with perf)
//
// The bench entries (microbench.bpf.c) share every map with a normally loaded ikelb object, so
// the set-up is the one the bpf tests use (tests/support/testbed.h).
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "cpu_pin.h"
#include "datapath.h"
#include "ikelb_microbench.skel.h"
#include "microbench_clients.h"
#include "packet.h"
#include "sandbox.h"
#include "testbed.h"

namespace ikelb::test {
namespace {

// The affinity table a path is measured in (one phase each, in this order). Where a client's entry
// sits in memory, and how long the bucket chains are, depend on the table's history:
//  - fresh: a new table; entries come off the free list in address order, so 10,000 clients share
//    few pages, and the table is nearly empty;
//  - full: new clients have cycled the whole table (the miss paths insert one per run), so the
//    entries are scattered over all of it and every one is a live client, as on a busy node;
//  - room: the full table, then every entry but the 10,000 clients' deleted before each run, as an
//    agent that removed expired entries would leave it: scattered, but mostly free.
enum class Table { fresh, full, room };

struct Path {
  std::string name;
  int prog_fd;
  Bytes frame;
  uint32_t ingress;
  uint32_t want_verdict;
  std::vector<double> ns;
  std::function<void()> before = nullptr;  // map state this path needs, set before each run
  Table table = Table::fresh;
};

double run_once(const Path& p, uint32_t repeat) {
  if (p.before) p.before();
  std::vector<uint8_t> out(p.frame.size() + 256);
  xdp_md ctx{};
  ctx.data_end = static_cast<uint32_t>(p.frame.size());
  ctx.ingress_ifindex = p.ingress;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = p.frame.data(), .data_out = out.data(),
              .data_size_in = static_cast<uint32_t>(p.frame.size()),
              .data_size_out = static_cast<uint32_t>(out.size()), .ctx_in = &ctx,
              .ctx_size_in = sizeof(ctx), .repeat = static_cast<int>(repeat));
  if (bpf_prog_test_run_opts(p.prog_fd, &opts) != 0)
    throw std::system_error(errno, std::generic_category(), "BPF_PROG_TEST_RUN " + p.name);
  if (opts.retval != p.want_verdict)
    throw std::runtime_error(p.name + ": verdict " + std::to_string(opts.retval) + ", expected " +
                             std::to_string(p.want_verdict));
  return opts.duration;  // average ns per run, as the kernel measured it
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct SkelDeleter {
  void operator()(ikelb_microbench_bpf* s) const { ikelb_microbench_bpf__destroy(s); }
};

int run(uint32_t repeat, int rounds, const std::string& only, uint32_t affinity) {
  bench::PinnedToFirstCpu on_one_cpu;  // every path measured on the same vCPU
  Sandbox sandbox = Sandbox::create();
  Datapath dp(Datapath::Options{
      .table_slots = 2 * kTableSize, .affinity_entries = affinity, .pin_dir = ""});
  Testbed bed(dp, sandbox);

  std::unique_ptr<ikelb_microbench_bpf, SkelDeleter> skel(ikelb_microbench_bpf__open());
  if (!skel) throw std::system_error(errno, std::generic_category(), "opening the bench object");
  // Share every map of the data path: the bench programs see exactly the state the testbed
  // wrote. Only the bench's own scratch map (and any .rodata/.bss) stays the bench object's.
  bpf_map* m;
  bpf_object__for_each_map(m, skel->obj) {
    const std::string name = bpf_map__name(m);
    if (name.find('.') != std::string::npos || name.starts_with("bench_")) continue;
    if (bpf_map__reuse_fd(m, dp.map_fd(name)) != 0) throw std::runtime_error("sharing map " + name);
  }
  if (ikelb_microbench_bpf__load(skel.get()) != 0)
    throw std::system_error(errno, std::generic_category(), "loading the bench object");

  const Mac router = mac("02:00:00:00:c0:02"), port = mac("02:00:00:00:c0:01");
  const IpAddr client = ip("100.64.0.1"), vip = ip("203.0.113.10");
  const Bytes ike = Bytes(200, 0x2a);
  Bytes to_vip = Frame().eth(router, port).ipv4(client, vip).udp(4500, 4500).payload(ike).build();
  Bytes reply = Frame()
                    .eth(mac("02:00:00:00:b0:01"), mac("02:00:00:00:a0:01"))
                    .ipv4(ip("10.0.0.11"), client)
                    .udp(4500, 4500)
                    .payload(ike)
                    .build();
  Bytes other =
      Frame().eth(router, port).ipv4(client, ip("192.0.2.1")).udp(4500, 4500).payload(ike).build();
  // IKE_SA_INIT requests (responder SPI 0) under an ike_sa_init_limit of 1/s per source and a
  // total limit no run reaches: one flooding source (dropped after its first request), and a new
  // source every run (admitted: the limiter's cost on a new client).
  Bytes init_header(28, 0);
  init_header[0] = 0x11;  // initiator SPI
  init_header[16] = 33;
  init_header[17] = 0x20;
  init_header[18] = 34;  // IKE_SA_INIT
  init_header[19] = 0x08;
  init_header.insert(init_header.end(), 200, 0x2a);
  Bytes flood = Frame()
                    .eth(router, port)
                    .ipv4(ip("100.65.0.1"), vip)
                    .udp(500, 500)
                    .payload(init_header)
                    .build();
  Bytes init =
      Frame().eth(router, port).ipv4(client, vip).udp(500, 500).payload(init_header).build();
  ikelb_init_limit limit{};
  limit.source_interval_ns = 1'000'000'000ull;
  limit.total_interval_ns = 100;
  limit.total_tolerance_ns = 1'000'000'000'000ull;
  dp.set_init_limit(kVs4, limit);

  // SPI routing: ESP-in-UDP from the pinned client, with routing off, with labels on (the label
  // names the client's own gateway, as for every packet after a move), with learning on (the
  // owner is refreshed). The layout is the one tests/bpf/spi_test.cc uses.
  const uint32_t pinned = bed.predict(kVs4, IpAddress::must_parse(client.to_string()));
  const uint32_t esp_spi = 0xc0000000u | ((pinned + 1) << 20) | 0x5a5a5u;
  Bytes esp = Frame()
                  .eth(router, port)
                  .ipv4(client, vip)
                  .udp(4500, 4500)
                  .esp(esp_spi, 1)
                  .payload(Bytes(192, 0x2a))
                  .build();
  const int routing_fd = dp.map_fd(IKELB_MAP_SPI_ROUTING);
  for (uint32_t k = 1; k <= 3; k++) {
    ikelb_spi_label_key key{.vs_id = kVs4, .id = k};
    uint32_t backend = k - 1;
    bpf_map_update_elem(dp.map_fd(IKELB_MAP_SPI_LABELS), &key, &backend, BPF_ANY);
  }
  auto spi_routing = [routing_fd](uint8_t flags) {
    return [routing_fd, flags] {
      ikelb_spi_routing r{};
      r.ike_mask = 0xff00000000000000ull;
      r.ike_shift = 56;
      r.esp_mask = 0x0ff00000u;
      r.esp_shift = 20;
      r.flags = flags;
      uint32_t vs = kVs4;
      if (bpf_map_update_elem(routing_fd, &vs, &r, BPF_ANY) != 0)
        throw std::system_error(errno, std::generic_category(), "writing spi_routing");
    };
  };

  // Table::room: deletes every affinity entry but those of the 10,000 clients that
  // bench_ikelb_10k_clients sends, in one batch.
  auto keep_only_10k_clients = [fd = dp.map_fd(IKELB_MAP_AFFINITY)] {
    std::vector<ikelb_affinity_key> doomed;
    ikelb_affinity_key key{}, next{};
    for (bool first = true; bpf_map_get_next_key(fd, first ? nullptr : &key, &next) == 0;
         first = false, key = next)
      if (ntohl(next.client.u32[0]) - BENCH_CLIENT_BASE >= BENCH_10K_CLIENTS)
        doomed.push_back(next);
    uint32_t n = static_cast<uint32_t>(doomed.size());
    if (n && bpf_map_delete_batch(fd, doomed.data(), &n, nullptr) != 0)
      throw std::system_error(errno, std::generic_category(), "deleting affinity entries");
  };
  const int copy = bpf_program__fd(skel->progs.bench_copy_only);
  const int ikelb = bpf_program__fd(skel->progs.bench_ikelb);
  const uint32_t cli = sandbox.client_ifindex, gw = sandbox.gateway_ifindex;
  std::vector<Path> paths = {
      {"baseline: XDP_TX only", bpf_program__fd(skel->progs.baseline_tx), to_vip, cli, XDP_TX, {}},
      {"snapshot+restore only", copy, to_vip, cli, XDP_TX, {}},
      {"affinity hit (client->VIP)", ikelb, to_vip, cli, XDP_REDIRECT, {}, spi_routing(0)},
      {"affinity hit, 1 client, stamped",
       bpf_program__fd(skel->progs.bench_ikelb_stamped),
       to_vip,
       cli,
       XDP_REDIRECT,
       {}},
      {"affinity hit, 10,000 clients, new table",
       bpf_program__fd(skel->progs.bench_ikelb_10k_clients),
       to_vip,
       cli,
       XDP_REDIRECT,
       {}},
      {"affinity hit, 10,000 clients, churned",
       bpf_program__fd(skel->progs.bench_ikelb_10k_clients),
       to_vip,
       cli,
       XDP_REDIRECT,
       {},
       nullptr,
       Table::full},
      {"affinity hit, 10,000 clients, with room",
       bpf_program__fd(skel->progs.bench_ikelb_10k_clients),
       to_vip,
       cli,
       XDP_REDIRECT,
       {},
       keep_only_10k_clients,
       Table::room},
      {"Maglev miss (new client each run)",
       bpf_program__fd(skel->progs.bench_ikelb_new_client),
       to_vip,
       cli,
       XDP_REDIRECT,
       {},
       nullptr,
       Table::full},
      {"Maglev miss, table with room",
       bpf_program__fd(skel->progs.bench_ikelb_new_client),
       to_vip,
       cli,
       XDP_REDIRECT,
       {},
       keep_only_10k_clients,
       Table::room},
      {"IKE_SA_INIT, new source (limit admits)",
       bpf_program__fd(skel->progs.bench_ikelb_new_client),
       init,
       cli,
       XDP_REDIRECT,
       {},
       nullptr,
       Table::full},
      {"IKE_SA_INIT flood, one source (dropped)", ikelb, flood, cli, XDP_DROP, {}},
      {"reverse (backend->client)", ikelb, reply, gw, XDP_REDIRECT, {}},
      {"non-VIP pass", ikelb, other, cli, XDP_PASS, {}},
      {"ESP-in-UDP hit, SPI routing off", ikelb, esp, cli, XDP_REDIRECT, {}, spi_routing(0)},
      {"ESP-in-UDP hit, SPI labels on",
       ikelb,
       esp,
       cli,
       XDP_REDIRECT,
       {},
       spi_routing(IKELB_SPI_LABELS)},
      {"ESP-in-UDP hit, SPI learning on",
       ikelb,
       esp,
       cli,
       XDP_REDIRECT,
       {},
       spi_routing(IKELB_SPI_LEARN)},
  };
  // Warm up: pins the client for the affinity-hit path and faults everything in. The flooding
  // source's first request is admitted (a different verdict), so it is sent once beforehand.
  auto find = [&paths](const std::string& name) -> Path& {
    for (Path& p : paths)
      if (p.name.rfind(name, 0) == 0) return p;
    throw std::logic_error("no bench path " + name);
  };
  Path first = find("IKE_SA_INIT flood");
  first.want_verdict = XDP_REDIRECT;
  run_once(first, 1);
  // The first two paths are the references (baseline, snapshot): measured in every phase, never
  // filtered out, never net of the snapshot.
  auto reference = [&paths](const Path& p) { return &p - paths.data() < 2; };
  auto selected = [&](const Path& p) {
    return reference(p) || only.empty() || p.name.find(only) != std::string::npos;
  };
  // One phase per kind of table (enum Table): the paths that leave the table as it is first, then
  // the ones that fill it with new clients, then the ones that need room made before every run.
  for (Table table : {Table::fresh, Table::full, Table::room}) {
    if (table == Table::full)  // every entry replaced at least once
      run_once(find("Maglev miss (new client each run)"), affinity);
    for (Path& p : paths)
      if (p.table == table) run_once(p, 20000);  // pins the 10,000 clients, faults pages in
    for (int round = 0; round < rounds; round++)
      for (Path& p : paths)
        if (selected(p) && (p.table == table || reference(p))) p.ns.push_back(run_once(p, repeat));
  }

  const double base = median(paths[0].ns), copy_ns = median(paths[1].ns);
  std::printf(
      "ikelb XDP micro-benchmark: BPF_PROG_TEST_RUN, repeat %u, %d rounds (median, "
      "min-max), pinned to CPU %d\n",
      repeat, rounds, on_one_cpu.cpu());
  std::printf("%-40s %8s %15s %10s %16s\n", "path", "ns/pkt", "min-max", "x baseline",
              "minus snapshot");
  for (const Path& p : paths) {
    if (p.ns.empty()) continue;
    double m = median(p.ns);
    auto [lo, hi] = std::minmax_element(p.ns.begin(), p.ns.end());
    std::string net =
        !reference(p) ? std::to_string(static_cast<int>(m - copy_ns + 0.5)) + " ns" : "-";
    std::printf("%-40s %8.0f %7.0f-%-7.0f %10.2f %16s\n", p.name.c_str(), m, *lo, *hi, m / base,
                net.c_str());
  }
  std::printf(
      "(\"minus snapshot\": the bench entries copy %d header bytes out and back per run; "
      "that cost, measured alone above, is subtracted)\n",
      96);
  if (!only.empty()) return 0;
  // The ratios, between paths with the same harness cost (each stamps a client address).
  const double stamped = median(find("affinity hit, 1 client, stamped").ns) - copy_ns;
  auto ratio = [&](const char* name, const char* label, double goal) {
    double r = (median(find(name).ns) - copy_ns) / stamped;
    std::printf("%-44s x%.2f (goal <= %.1f: %s)\n", label, r, goal, r <= goal ? "met" : "not met");
  };
  ratio("affinity hit, 10,000 clients, new", "hit, 10,000 clients, new table vs 1 client:", 1.5);
  ratio("affinity hit, 10,000 clients, churned", "hit, 10,000 clients, churned vs 1 client:", 1.5);
  ratio("Maglev miss (", "Maglev miss (new client) vs hit:", 2.5);
  {
    double r =
        (median(find("reverse").ns) - copy_ns) / (median(find("affinity hit (").ns) - copy_ns);
    std::printf("%-44s x%.2f (goal <= 1.1: %s)\n", "reverse vs hit:", r,
                r <= 1.1 ? "met" : "not met");
  }
  std::printf(
      "with room (the full table, then every entry but the 10,000 clients' deleted before each "
      "run): 10,000-client hit x%.2f, Maglev miss x%.2f against the 1-client hit\n",
      (median(find("affinity hit, 10,000 clients, with room").ns) - copy_ns) / stamped,
      (median(find("Maglev miss, table with room").ns) - copy_ns) / stamped);
  const double drop_ns = median(find("IKE_SA_INIT flood").ns) - copy_ns;
  std::printf(
      "IKE_SA_INIT limiter: a new source costs %.0f ns more than a Maglev miss; a flood from one "
      "source is dropped at %.0f ns a packet, %.1f Mpps on one core\n",
      median(find("IKE_SA_INIT, new source").ns) - median(find("Maglev miss (").ns), drop_ns,
      1e3 / drop_ns);
  const double spi_off = median(find("ESP-in-UDP hit, SPI routing off").ns);
  const double labels = median(find("ESP-in-UDP hit, SPI labels on").ns);
  const double learn = median(find("ESP-in-UDP hit, SPI learning on").ns);
  std::printf(
      "SPI routing on an ESP-in-UDP affinity hit: labels add %.0f ns (x%.2f), learning adds %.0f "
      "ns (x%.2f)\n",
      labels - spi_off, labels / spi_off, learn - spi_off, learn / spi_off);
  auto events = dp.events();
  std::printf("affinity hits %llu, misses %llu over the run\n",
              static_cast<unsigned long long>(events[IKELB_EV_AFFINITY_HIT]),
              static_cast<unsigned long long>(events[IKELB_EV_AFFINITY_MISS]));
  return 0;
}

}  // namespace
}  // namespace ikelb::test

int main(int argc, char** argv) {
  uint32_t repeat = 1000000;
  int rounds = 5;
  std::string only;
  uint32_t affinity = IKELB_DEFAULT_AFFINITY_ENTRIES;
  const char* usage =
      "usage: ikelb_microbench [--repeat N] [--rounds R] [--only TEXT] [--affinity ENTRIES]\n";
  if (argc % 2 == 0) {  // an option without its value
    std::fputs(usage, stderr);
    return 2;
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--repeat")
      repeat = static_cast<uint32_t>(std::strtoul(argv[i + 1], nullptr, 10));
    else if (a == "--rounds")
      rounds = std::atoi(argv[i + 1]);
    else if (a == "--only")
      only = argv[i + 1];
    else if (a == "--affinity")
      affinity = static_cast<uint32_t>(std::strtoul(argv[i + 1], nullptr, 10));
    else {
      std::fputs(usage, stderr);
      return 2;
    }
  }
  if (repeat == 0 || rounds <= 0 || affinity == 0) {
    std::fprintf(stderr, "ikelb_microbench: --repeat, --rounds and --affinity must be positive\n");
    return 2;
  }
  try {
    return ikelb::test::run(repeat, rounds, only, affinity);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ikelb_microbench: %s\n", e.what());
    return 1;
  }
}
