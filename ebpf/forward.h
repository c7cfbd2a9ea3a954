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

/* Asks the FIB for the rewritten packet's next hop, as a router would. Returns
 * BPF_FIB_LKUP_RET_*, or -1 for a packet too short to read. */
static __always_inline long fib_lookup(struct xdp_md* ctx, struct pkt* p,
                                       struct bpf_fib_lookup* fib) {
  void* data_end = (void*)(long)ctx->data_end;
  fib->ifindex = ctx->ingress_ifindex;
  fib->l4_protocol = p->proto;
  fib->tot_len = p->ip_len;
  if (p->family == IKELB_AF_INET) {
    struct iphdr* ip = p->l3;
    if ((void*)(ip + 1) > data_end) return -1;
    fib->family = IKELB_AF_INET_SYS;
    fib->tos = ip->tos;
    fib->ipv4_src = ip->saddr;
    fib->ipv4_dst = ip->daddr;
  } else {
    struct ipv6hdr* ip6 = p->l3;
    if ((void*)(ip6 + 1) > data_end) return -1;
    fib->family = IKELB_AF_INET6_SYS;
    fib->flowinfo = p->flowinfo;
    __builtin_memcpy(fib->ipv6_src, &ip6->saddr, 16);
    __builtin_memcpy(fib->ipv6_dst, &ip6->daddr, 16);
  }
  return bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
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
  struct bpf_fib_lookup fib = {};
  if (fresh && p->ip_len <= nh->ok_len) {
    fib.ifindex = nh->egress_ifindex;
    __builtin_memcpy(fib.dmac, nh->dmac, ETH_ALEN);
    __builtin_memcpy(fib.smac, nh->smac, ETH_ALEN);
  } else {
    long rc = fib_lookup(ctx, p, &fib);
    if (rc < 0) return IKELB_OUT_DROP_INTERNAL;
    if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) return IKELB_OUT_FWD_KERNEL_NEIGH;
    if (rc != BPF_FIB_LKUP_RET_SUCCESS) return IKELB_OUT_FWD_KERNEL_FIB;
    /* fib.ifindex is now the egress interface. A fresh entry only learns a longer ok_len. */
    struct ikelb_nexthop learned = {
        .expires_ns = now + IKELB_NEXTHOP_TTL_NS,
        .ingress_ifindex = ctx->ingress_ifindex,
        .egress_ifindex = fib.ifindex,
        .ok_len = fresh && nh->ok_len > p->ip_len ? nh->ok_len : p->ip_len,
    };
    __builtin_memcpy(learned.dmac, fib.dmac, ETH_ALEN);
    __builtin_memcpy(learned.smac, fib.smac, ETH_ALEN);
    if (nh)
      __builtin_memcpy(nh, &learned, sizeof(learned));
    else if (new_key)
      bpf_map_update_elem(&client_nexthops, new_key, &learned, BPF_ANY);
  }

  __u32 egress = fib.ifindex;
  int same_port = egress == ctx->ingress_ifindex;
  if (!same_port && !bpf_map_lookup_elem(&tx_ports, &egress))
    return IKELB_OUT_FWD_KERNEL_NO_TX_PORT;

  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > data_end) return IKELB_OUT_DROP_INTERNAL;
  decrement_ttl(p, data_end);
  __builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
  __builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
  if (same_port) {
    *action = XDP_TX;
    return IKELB_OUT_FWD_TX;
  }
  *action = bpf_redirect_map(&tx_ports, egress, 0);
  return IKELB_OUT_FWD_REDIRECT;
}

/* Strict reverse-path check of a packet from backend `backend_id` (its address is p->src): the
 * FIB route to that address must leave through the port the packet arrived on, and in
 * IKELB_RP_STRICT_MAC mode the frame must come from that route's next-hop MAC. Otherwise anyone
 * could send "replies" with a backend's address from the internet and have them leave from the
 * VIP. The answer is cached per CPU like the next hops (gateway_routes). */
static __always_inline int from_gateway_side(struct xdp_md* ctx, struct pkt* p, __u32 backend_id,
                                             __u64 now) {
  void* data = (void*)(long)ctx->data;
  void* data_end = (void*)(long)ctx->data_end;
  __u32 zero = 0;
  struct ikelb_edge_settings* es = bpf_map_lookup_elem(&edge, &zero);
  __u32 mode = es ? es->reverse_path : IKELB_RP_STRICT;
  if (mode == IKELB_RP_OFF) return 1;
  struct ikelb_nexthop* route = bpf_map_lookup_elem(&gateway_routes, &backend_id);
  if (!route) return 0;
  if (now >= route->expires_ns || route->ingress_ifindex != ctx->ingress_ifindex) {
    struct bpf_fib_lookup fib = {};
    fib.ifindex = ctx->ingress_ifindex;
    fib.l4_protocol = p->proto;
    if (p->family == IKELB_AF_INET) {
      fib.family = IKELB_AF_INET_SYS;
      fib.ipv4_dst = p->src.u32[0];
    } else {
      fib.family = IKELB_AF_INET6_SYS;
      __builtin_memcpy(fib.ipv6_dst, &p->src, 16);
    }
    long rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
    struct ikelb_nexthop learned = {.expires_ns = now + IKELB_NEXTHOP_TTL_NS,
                                    .ingress_ifindex = ctx->ingress_ifindex};
    /* The egress is known without a neighbour entry too; with none there is no MAC to match. */
    if (rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH)
      learned.egress_ifindex = fib.ifindex;
    if (rc == BPF_FIB_LKUP_RET_SUCCESS) __builtin_memcpy(learned.dmac, fib.dmac, ETH_ALEN);
    __builtin_memcpy(route, &learned, sizeof(learned));
  }
  if (route->egress_ifindex != ctx->ingress_ifindex) return 0;
  if (mode == IKELB_RP_STRICT_MAC) {
    struct ethhdr* eth = data;
    if ((void*)(eth + 1) > data_end) return 0;
    __u32 a, b;
    __u16 c, d;
    __builtin_memcpy(&a, eth->h_source, 4);
    __builtin_memcpy(&b, route->dmac, 4);
    __builtin_memcpy(&c, eth->h_source + 4, 2);
    __builtin_memcpy(&d, route->dmac + 4, 2);
    if (a != b || c != d) return 0;
  }
  return 1;
}

#endif /* IKELB_FORWARD_H */
