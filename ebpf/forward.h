/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Sending a rewritten packet on: address rewrite with checksum updates, TTL, the FIB lookup and
 * its per-CPU next-hop cache, redirect or XDP_TX. And the reverse-path check that makes sure a
 * "reply" from a backend address really arrived from the backend's side. */
#ifndef IKELB_FORWARD_H
#define IKELB_FORWARD_H

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>

#include "csum.h"
#include "ikelb_abi.h"
#include "maps.h"
#include "parse.h"

#define IKELB_AF_INET_SYS 2
#define IKELB_AF_INET6_SYS 10

static __always_inline void count_traffic(__u32 vs_id, __u32 backend_id, __u32 dir, __u32 len) {
  struct ikelb_traffic* t = bpf_map_lookup_elem(&vs_stats, &vs_id);
  if (t && dir < IKELB_DIR_MAX) {
    t->packets[dir] += 1;
    t->bytes[dir] += len;
  }
  struct ikelb_backend_stats* b = bpf_map_lookup_elem(&backend_stats, &backend_id);
  if (b && dir < IKELB_DIR_MAX) {
    b->traffic.packets[dir] += 1;
    b->traffic.bytes[dir] += len;
  }
}

/* Replace the destination (forward) or source (reverse) address, fixing the IPv4 header checksum
 * and the UDP checksum (its pseudo-header covers both addresses). Non-first fragments carry no
 * UDP header; a first fragment's UDP checksum covers the whole datagram, and the same delta
 * applies. */
static __always_inline void rewrite_addr(struct pkt* p, void* data_end, const struct ikelb_addr* to,
                                         int source) {
  __u16* l4_check = 0;
  if (p->proto == IPPROTO_UDP && p->frag != FRAG_LATER) {
    struct udphdr* udp = p->l4;
    if ((void*)(udp + 1) <= data_end) l4_check = &udp->check;
  }
  if (p->family == IKELB_AF_INET) {
    struct iphdr* ip = p->l3;
    if ((void*)(ip + 1) > data_end) return;
    __u32* field = source ? &ip->saddr : &ip->daddr;
    __u32 old = *field;
    *field = to->u32[0];
    ip->check = csum_replace(ip->check, &old, &to->u32[0], 1);
    if (l4_check) udp_csum_replace(l4_check, &old, &to->u32[0], 1);
  } else {
    struct ipv6hdr* ip6 = p->l3;
    if ((void*)(ip6 + 1) > data_end) return;
    struct ikelb_addr old;
    void* field = source ? (void*)&ip6->saddr : (void*)&ip6->daddr;
    __builtin_memcpy(&old, field, 16);
    __builtin_memcpy(field, to, 16);
    if (l4_check) udp_csum_replace(l4_check, old.u32, to->u32, 4);
  }
}

static __always_inline void decrement_ttl(struct pkt* p, void* data_end) {
  if (p->family == IKELB_AF_INET) {
    struct iphdr* ip = p->l3;
    if ((void*)(ip + 1) > data_end) return;
    /* As the kernel's ip_decrease_ttl(): TTL is the high byte of its checksummed word. */
    __u32 check = ip->check;
    check += bpf_htons(0x0100);
    ip->check = (__u16)(check + (check >= 0xffff));
    ip->ttl--;
  } else {
    struct ipv6hdr* ip6 = p->l3;
    if ((void*)(ip6 + 1) > data_end) return;
    ip6->hop_limit--;
  }
}

static __always_inline __u8 ttl_of(struct pkt* p, void* data_end) {
  if (p->family == IKELB_AF_INET) {
    struct iphdr* ip = p->l3;
    if ((void*)(ip + 1) > data_end) return 0;
    return ip->ttl;
  }
  struct ipv6hdr* ip6 = p->l3;
  if ((void*)(ip6 + 1) > data_end) return 0;
  return ip6->hop_limit;
}

/* Per-CPU scratch for FIB lookups: the parameters and the next hop they gave. Kept off the
 * stack, which the inlined main program nearly fills on its own. */
struct fib_scratch {
  struct bpf_fib_lookup fib;
  struct ikelb_nexthop learned;
};

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct fib_scratch);
} fib_scratch SEC(".maps");

/* Asks the FIB for the next hop of the (rewritten) IP packet at `l3_off`, as a router would, and
 * leaves the answer in this CPU's fib_scratch (`learned`: egress, MACs, expiry). Returns
 * BPF_FIB_LKUP_RET_*, or -1 for a packet too short to read.
 *
 * A global function (and the ones below): the verifier checks it once, on its own, instead of
 * once for every path that reaches one of its call sites; inlined, the FIB lookups and the edge
 * checks made the program five times as costly to verify. */
__attribute__((noinline)) int ikelb_fib_next_hop(struct xdp_md* ctx, __u32 l3_off, __u32 family,
                                                 __u32 ip_len, __u64 now) {
  __u32 zero = 0;
  struct fib_scratch* sc = bpf_map_lookup_elem(&fib_scratch, &zero);
  if (!ctx || !sc) return -1;
  void* data = (void*)(long)ctx->data;
  void* data_end = (void*)(long)ctx->data_end;
  /* The IP header starts within the first 22 bytes (Ethernet, two VLAN tags); the mask bounds
   * the offset for the verifier. */
  void* l3 = data + (l3_off & 0x3f);
  struct bpf_fib_lookup* fib = &sc->fib;
  __builtin_memset(fib, 0, sizeof(*fib));
  fib->ifindex = ctx->ingress_ifindex;
  fib->tot_len = ip_len;
  if (family == IKELB_AF_INET) {
    struct iphdr* ip = l3;
    if ((void*)(ip + 1) > data_end) return -1;
    fib->family = IKELB_AF_INET_SYS;
    fib->l4_protocol = ip->protocol;
    fib->tos = ip->tos;
    fib->ipv4_src = ip->saddr;
    fib->ipv4_dst = ip->daddr;
  } else {
    struct ipv6hdr* ip6 = l3;
    if ((void*)(ip6 + 1) > data_end) return -1;
    fib->family = IKELB_AF_INET6_SYS;
    fib->l4_protocol = ip6->nexthdr;
    fib->flowinfo = *(__be32*)ip6 & bpf_htonl(0x0fffffff);
    __builtin_memcpy(fib->ipv6_src, &ip6->saddr, 16);
    __builtin_memcpy(fib->ipv6_dst, &ip6->daddr, 16);
  }
  long rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
  if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
    /* fib->ifindex is now the egress interface. */
    sc->learned.expires_ns = now + IKELB_NEXTHOP_TTL_NS;
    sc->learned.ingress_ifindex = ctx->ingress_ifindex;
    sc->learned.egress_ifindex = fib->ifindex;
    sc->learned.ok_len = ip_len;
    __builtin_memcpy(sc->learned.dmac, fib->dmac, ETH_ALEN);
    __builtin_memcpy(sc->learned.smac, fib->smac, ETH_ALEN);
  }
  return rc;
}

/* Route the rewritten packet like a router would. The TTL is decremented only when XDP sends the
 * packet itself; when the kernel takes over (XDP_PASS) it forwards and decrements on its own.
 * The next hop comes from the cache entry `nh` while it is fresh (struct ikelb_nexthop); a new
 * FIB answer refreshes `nh`, or, without one, is added to client_nexthops under `new_key`. */
static __always_inline int forward(struct xdp_md* ctx, struct pkt* p, struct ikelb_nexthop* nh,
                                   const struct ikelb_nexthop_key* new_key, __u64 now,
                                   int* action) {
  void* data = (void*)(long)ctx->data;
  void* data_end = (void*)(long)ctx->data_end;
  *action = XDP_PASS;
  /* XDP cannot send on a VLAN sub-interface; the kernel strips, routes and re-tags. */
  if (p->vlan_tags) return IKELB_OUT_FWD_KERNEL_VLAN;

  int fresh = nh && now < nh->expires_ns && nh->ingress_ifindex == ctx->ingress_ifindex;
  struct ikelb_nexthop* hop = nh;
  if (!(fresh && p->ip_len <= nh->ok_len)) {
    long rc = ikelb_fib_next_hop(ctx, (__u32)((long)p->l3 - (long)data), p->family, p->ip_len, now);
    if (rc < 0) return IKELB_OUT_DROP_INTERNAL;
    if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) return IKELB_OUT_FWD_KERNEL_NEIGH;
    if (rc != BPF_FIB_LKUP_RET_SUCCESS) return IKELB_OUT_FWD_KERNEL_FIB;
    __u32 zero = 0;
    struct fib_scratch* sc = bpf_map_lookup_elem(&fib_scratch, &zero);
    if (!sc) return IKELB_OUT_DROP_INTERNAL;
    /* A fresh entry only learns a longer ok_len. */
    if (fresh && nh->ok_len > p->ip_len) sc->learned.ok_len = nh->ok_len;
    if (nh)
      __builtin_memcpy(nh, &sc->learned, sizeof(sc->learned));
    else if (new_key)
      bpf_map_update_elem(&client_nexthops, new_key, &sc->learned, BPF_ANY);
    hop = &sc->learned;
  }
  if (!hop) return IKELB_OUT_DROP_INTERNAL;

  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > data_end) return IKELB_OUT_DROP_INTERNAL;
  __u32 egress = hop->egress_ifindex;
  int verdict = XDP_TX;
  if (egress != ctx->ingress_ifindex) {
    /* One devmap lookup: the redirect itself answers XDP_PASS for a port not in tx_ports. */
    verdict = bpf_redirect_map(&tx_ports, egress, XDP_PASS);
    if (verdict != XDP_REDIRECT) return IKELB_OUT_FWD_KERNEL_NO_TX_PORT;
  }
  decrement_ttl(p, data_end);
  __builtin_memcpy(eth->h_dest, hop->dmac, ETH_ALEN);
  __builtin_memcpy(eth->h_source, hop->smac, ETH_ALEN);
  *action = verdict;
  return verdict == XDP_TX ? IKELB_OUT_FWD_TX : IKELB_OUT_FWD_REDIRECT;
}

/* Strict reverse-path check of a packet from backend `backend_id` at address `gw` (the packet's
 * source): the FIB route to that address must leave through the port the packet arrived on, and
 * in IKELB_RP_STRICT_MAC mode the frame must come from that route's next-hop MAC. Otherwise anyone
 * could send "replies" with a backend's address from the internet and have them leave from the
 * VIP. The answer is cached per CPU like the next hops (gateway_routes). Returns 1 if it passes.
 * A global function, like ikelb_fib_next_hop. */
__attribute__((noinline)) int ikelb_from_gateway_side(struct xdp_md* ctx,
                                                      const struct ikelb_addr* gw, __u32 family,
                                                      __u32 backend_id, __u64 now) {
  __u32 zero = 0;
  struct ikelb_edge_settings* es = bpf_map_lookup_elem(&edge, &zero);
  __u32 mode = es ? es->reverse_path : IKELB_RP_STRICT;
  if (mode == IKELB_RP_OFF) return 1;
  struct ikelb_nexthop* route = bpf_map_lookup_elem(&gateway_routes, &backend_id);
  struct fib_scratch* sc = bpf_map_lookup_elem(&fib_scratch, &zero);
  if (!ctx || !gw || !route || !sc) return 0;
  __u32 ingress = ctx->ingress_ifindex;
  if (now >= route->expires_ns || route->ingress_ifindex != ingress) {
    struct bpf_fib_lookup* fib = &sc->fib;
    __builtin_memset(fib, 0, sizeof(*fib));
    fib->ifindex = ingress;
    if (family == IKELB_AF_INET) {
      fib->family = IKELB_AF_INET_SYS;
      fib->ipv4_dst = gw->u32[0];
    } else {
      fib->family = IKELB_AF_INET6_SYS;
      __builtin_memcpy(fib->ipv6_dst, gw, 16);
    }
    long rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
    route->expires_ns = now + IKELB_NEXTHOP_TTL_NS;
    route->ingress_ifindex = ingress;
    /* The egress is known without a neighbour entry too; with none there is no MAC to match. */
    route->egress_ifindex =
        rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH ? fib->ifindex : 0;
    if (rc == BPF_FIB_LKUP_RET_SUCCESS)
      __builtin_memcpy(route->dmac, fib->dmac, ETH_ALEN);
    else
      __builtin_memset(route->dmac, 0, ETH_ALEN);
  }
  if (route->egress_ifindex != ingress) return 0;
  if (mode == IKELB_RP_STRICT_MAC) {
    void* data = (void*)(long)ctx->data;
    void* data_end = (void*)(long)ctx->data_end;
    struct ethhdr* eth = data;
    if ((void*)(eth + 1) > data_end) return 0;
    __u8 diff = 0;
#pragma unroll
    for (int i = 0; i < ETH_ALEN; i++) diff |= eth->h_source[i] ^ route->dmac[i];
    if (diff) return 0;
  }
  return 1;
}

static __always_inline int from_gateway_side(struct xdp_md* ctx, struct pkt* p, __u32 backend_id,
                                             __u64 now) {
  return ikelb_from_gateway_side(ctx, &p->src, p->family, backend_id, now);
}

#endif /* IKELB_FORWARD_H */
