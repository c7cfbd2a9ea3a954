/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Programs for the forwarding benchmark (tests/bench/netbench.cc):
 *   gen       traffic source under BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES: gives each
 *             frame an IPv4 source address from a counter (fixing the header checksum) and
 *             sends it with XDP_TX, so one template becomes any number of distinct clients;
 *             with cpu_stride set, generators running on different CPUs (one test run per
 *             CPU) send disjoint sets of clients
 *   null_fwd  the fastest possible forwarder: redirect everything to the sink port
 *   sink      counts and drops (the sink must never be the bottleneck)
 *   pass      XDP_PASS, for the kernel-stack (nftables) forwarder: a veth that receives
 *             XDP_TX frames needs an XDP program
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by user space before each generator run. */
#define GEN_HEADER 64 /* Ethernet + IPv4 + UDP + the start of the payload */

/* Live-frames mode recycles pages without re-initialising them, and the forwarders rewrite
 * frames in place, so every frame gets its header back from this template first. */
struct gen_config {
  __u32 base;       /* first client address, host order */
  __u32 count;      /* 0: every frame a new address (counter keeps growing); else cycle */
  __u32 rewrite;    /* 1: rewrite the source address; 0: send the template unchanged */
  __u32 cpu_stride; /* client += CPU number * cpu_stride: each generator CPU its own clients */
  __u8 header[GEN_HEADER];
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct gen_config);
} gen_cfg SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} gen_counter SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} sink_count SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_DEVMAP);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} null_port SEC(".maps");

static __always_inline __u16 csum_fold(__u32 sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (__u16)~sum;
}

SEC("xdp")
int gen(struct xdp_md* ctx) {
  __u32 zero = 0;
  struct gen_config* cfg = bpf_map_lookup_elem(&gen_cfg, &zero);
  __u64* counter = bpf_map_lookup_elem(&gen_counter, &zero);
  if (!cfg || !counter) return XDP_ABORTED;
  if (bpf_xdp_store_bytes(ctx, 0, cfg->header, GEN_HEADER)) return XDP_ABORTED;
  if (!cfg->rewrite) return XDP_TX;
  void* data = (void*)(long)ctx->data;
  void* data_end = (void*)(long)ctx->data_end;
  struct ethhdr* eth = data;
  struct iphdr* ip = (void*)(eth + 1);
  if ((void*)(ip + 1) > data_end) return XDP_ABORTED;
  __u64 n = (*counter)++;
  __u32 client = cfg->base + (cfg->count ? (__u32)(n % cfg->count) : (__u32)(n & 0x3fffff));
  if (cfg->cpu_stride) client += bpf_get_smp_processor_id() * cfg->cpu_stride;
  __u32 old = ip->saddr;
  __u32 new = bpf_htonl(client);
  ip->saddr = new;
  /* RFC 1624: HC' = ~(~HC + ~m + m'), over the two 16-bit halves of the address. */
  __u32 sum = (__u16)~ip->check;
  sum += (__u16) ~(old & 0xffff) + (__u16) ~(old >> 16);
  sum += (new & 0xffff) + (new >> 16);
  ip->check = csum_fold(sum);
  return XDP_TX;
}

SEC("xdp")
int null_fwd(struct xdp_md* ctx __attribute__((unused))) {
  return bpf_redirect_map(&null_port, 0, 0);
}

SEC("xdp")
int sink(struct xdp_md* ctx __attribute__((unused))) {
  __u32 zero = 0;
  __u64* c = bpf_map_lookup_elem(&sink_count, &zero);
  if (c) *c += 1;
  return XDP_DROP;
}

SEC("xdp")
int pass(struct xdp_md* ctx __attribute__((unused))) {
  return XDP_PASS;
}
