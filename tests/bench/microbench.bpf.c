/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Entry points for the micro-benchmark. BPF_PROG_TEST_RUN with `repeat` runs a program again and
 * again on the same buffer without restoring it, so after one run of ikelb the frame would no
 * longer be addressed to the VIP. Each bench_* entry therefore snapshots the first
 * BENCH_SNAPSHOT bytes, runs the real data path (ikelb_process, the very code of ikelb_xdp), and
 * writes the snapshot back. bench_copy_only does the snapshot and restore alone, so its cost can
 * be told apart; baseline_tx is the minimal program (returns XDP_TX).
 */
#include "../../ebpf/ikelb.bpf.c"
#include "microbench_clients.h"

#define BENCH_SNAPSHOT 96 /* Ethernet + IPv6 + UDP headers fit */

struct bench_scratch {
  __u8 bytes[BENCH_SNAPSHOT];
  __u32 counter;
  __u32 pad;
};

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct bench_scratch);
} bench_scratch SEC(".maps");

SEC("xdp")
int baseline_tx(struct xdp_md* ctx __attribute__((unused))) {
  return XDP_TX;
}

/* new_client: 0 the template's client, 1 a new client every run, 2 cycle over 10,000 clients,
 * 3 the template's client stamped like 1 and 2 (the same harness cost, for their ratios). */
static __always_inline int bench_run(struct xdp_md* ctx, int run_ikelb, int new_client) {
  __u32 zero = 0;
  struct bench_scratch* s = bpf_map_lookup_elem(&bench_scratch, &zero);
  if (!s) return XDP_ABORTED;
  if (bpf_xdp_load_bytes(ctx, 0, s->bytes, BENCH_SNAPSHOT)) return XDP_ABORTED;
  if (new_client) {
    /* A different IPv4 client source address every run (offset 26 in an untagged frame). The
     * header checksum is left stale: the data path never verifies it. */
    __u32 n = new_client == 3 ? 1 : s->counter++;
    __u32 src =
        bpf_htonl(BENCH_CLIENT_BASE + (new_client == 2 ? n % BENCH_10K_CLIENTS : n & 0x3fffffu));
    if (bpf_xdp_store_bytes(ctx, 26, &src, sizeof(src))) return XDP_ABORTED;
  }
  int verdict = run_ikelb ? ikelb_process(ctx) : XDP_TX;
  if (bpf_xdp_store_bytes(ctx, 0, s->bytes, BENCH_SNAPSHOT)) return XDP_ABORTED;
  return verdict;
}

SEC("xdp")
int bench_copy_only(struct xdp_md* ctx) {
  return bench_run(ctx, 0, 0);
}

SEC("xdp")
int bench_ikelb(struct xdp_md* ctx) {
  return bench_run(ctx, 1, 0);
}

SEC("xdp")
int bench_ikelb_new_client(struct xdp_md* ctx) {
  return bench_run(ctx, 1, 1);
}

SEC("xdp")
int bench_ikelb_10k_clients(struct xdp_md* ctx) {
  return bench_run(ctx, 1, 2);
}

SEC("xdp")
int bench_ikelb_stamped(struct xdp_md* ctx) {
  return bench_run(ctx, 1, 3);
}
