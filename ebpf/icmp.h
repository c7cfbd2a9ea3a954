/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ICMP errors about VIP traffic, so that path-MTU discovery works through ikelb (DNAT-only):
 * - an error addressed to a VIP that quotes a VIP -> client packet goes to the backend serving
 *   that client: outer destination and quoted source become the backend's address;
 * - an error a backend sends about a client's packet (quoted client -> backend) leaves from the
 *   VIP: outer source and quoted destination become the VIP.
 * The outer IPv4 header checksum, the quoted IPv4 header checksum and the ICMP checksum (ICMPv6:
 * with its pseudo-header) are updated incrementally. The quoted UDP checksum is left as it is: the
 * quote is usually truncated, and no stack checks a quoted checksum (IPVS does the same). */
#ifndef IKELB_ICMP_H
#define IKELB_ICMP_H

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>

#include "csum.h"
#include "forward.h"
#include "ikelb_abi.h"
#include "parse.h"
#include "select.h"

#define IKELB_IPPROTO_ICMP 1
#define IKELB_IPPROTO_ICMPV6 58
#define IKELB_ICMP_HEADER_LEN 8

/* The packet an ICMP error quotes. Ports are in network order; 0 where the quote has none (ESP,
 * a non-first fragment). */
struct icmp_quote {
  __u8* icmp; /* ICMP header */
  void* ip;   /* quoted IP header */
  struct ikelb_addr src;
  struct ikelb_addr dst;
  __u16 sport;
  __u16 dport;
  __u8 proto;
};

static __always_inline int is_icmp(struct pkt* p) {
  return p->family == IKELB_AF_INET ? p->proto == IKELB_IPPROTO_ICMP
                                    : p->proto == IKELB_IPPROTO_ICMPV6;
}

/* Reads the quote of an ICMP error. Returns 0, IKELB_OUT_PASS_ICMP_OTHER for ICMP that is not an
 * error (echo, neighbour discovery, ...) or quotes neither UDP nor ESP, or
 * IKELB_OUT_DROP_ICMP_MALFORMED for an error whose quote is cut short or not IP. */
static __always_inline int parse_quote(struct pkt* p, void* data_end, struct icmp_quote* q) {
  if (p->frag != FRAG_NONE) return IKELB_OUT_PASS_ICMP_OTHER;
  __u8* icmp = p->l4;
  if ((void*)(icmp + IKELB_ICMP_HEADER_LEN) > data_end || p->l4_len < IKELB_ICMP_HEADER_LEN)
    return IKELB_OUT_DROP_ICMP_MALFORMED;
  __u8 type = icmp[0];
  __u32 avail = p->l4_len - IKELB_ICMP_HEADER_LEN; /* quoted bytes inside the IP packet */
  void* l4;
  int later = 0;
  if (p->family == IKELB_AF_INET) {
    if (type != 3 && type != 11) return IKELB_OUT_PASS_ICMP_OTHER; /* unreachable, time exceeded */
    struct iphdr* ip = (void*)(icmp + IKELB_ICMP_HEADER_LEN);
    if ((void*)(ip + 1) > data_end || avail < sizeof(*ip)) return IKELB_OUT_DROP_ICMP_MALFORMED;
    if (ip->version != 4 || ip->ihl < 5) return IKELB_OUT_DROP_ICMP_MALFORMED;
    __u32 hlen = ip->ihl * 4;
    if (avail < hlen) return IKELB_OUT_DROP_ICMP_MALFORMED;
    avail -= hlen;
    q->ip = ip;
    q->proto = ip->protocol;
    q->src.u32[0] = ip->saddr;
    q->dst.u32[0] = ip->daddr;
    later = (bpf_ntohs(ip->frag_off) & 0x1fff) != 0;
    l4 = (void*)ip + hlen;
  } else {
    if (type < 1 || type > 3) return IKELB_OUT_PASS_ICMP_OTHER; /* unreach, too big, exceeded */
    struct ipv6hdr* ip6 = (void*)(icmp + IKELB_ICMP_HEADER_LEN);
    if ((void*)(ip6 + 1) > data_end || avail < sizeof(*ip6)) return IKELB_OUT_DROP_ICMP_MALFORMED;
    if (ip6->version != 6) return IKELB_OUT_DROP_ICMP_MALFORMED;
    avail -= sizeof(*ip6);
    q->ip = ip6;
    q->proto = ip6->nexthdr; /* a quote with extension headers is not VIP traffic we sent */
    __builtin_memcpy(&q->src, &ip6->saddr, 16);
    __builtin_memcpy(&q->dst, &ip6->daddr, 16);
    l4 = ip6 + 1;
  }
  if (q->proto == IPPROTO_UDP && !later) {
    struct udphdr* udp = l4;
    /* RFC 792 guarantees 8 bytes of the quoted datagram; the ports are what we need. */
    if ((void*)udp + 4 > data_end || avail < 4) return IKELB_OUT_DROP_ICMP_MALFORMED;
    q->sport = udp->source;
    q->dport = udp->dest;
    if (!q->sport || !q->dport) return IKELB_OUT_PASS_ICMP_OTHER;
  } else if (q->proto != IPPROTO_UDP && q->proto != IKELB_IPPROTO_ESP) {
    return IKELB_OUT_PASS_ICMP_OTHER;
  }
  q->icmp = icmp;
  return 0;
}

static __always_inline int addr_eq(const struct ikelb_addr* a, const struct ikelb_addr* b) {
  return ((a->u32[0] ^ b->u32[0]) | (a->u32[1] ^ b->u32[1]) | (a->u32[2] ^ b->u32[2]) |
          (a->u32[3] ^ b->u32[3])) == 0;
}

/* Replaces the quoted source (`source`) or destination address with `to`, and the outer address
 * on the same side of the error as rewrite_addr() does (`outer_source`), keeping the checksums. */
static __always_inline void rewrite_icmp(struct pkt* p, void* data_end, struct icmp_quote* q,
                                         const struct ikelb_addr* to, int source,
                                         int outer_source) {
  struct ikelb_addr outer_old = outer_source ? p->src : p->dst;
  rewrite_addr(p, data_end, to, outer_source);
  __u8* icmp = q->icmp;
  if ((void*)(icmp + IKELB_ICMP_HEADER_LEN) > data_end) return;
  __u16* icmp_check = (__u16*)(icmp + 2);
  if (p->family == IKELB_AF_INET) {
    /* The ICMP checksum covers the quoted header: its address and its checksum both change. */
    struct iphdr* ip = q->ip;
    if ((void*)(ip + 1) > data_end) return;
    __u32 before[2], after[2];
    __u32* field = source ? &ip->saddr : &ip->daddr;
    __builtin_memcpy(&before[0], (__u8*)ip + 8, 4); /* ttl, protocol, check */
    before[1] = *field;
    *field = to->u32[0];
    ip->check = csum_replace(ip->check, &before[1], &to->u32[0], 1);
    __builtin_memcpy(&after[0], (__u8*)ip + 8, 4);
    after[1] = to->u32[0];
    *icmp_check = csum_replace(*icmp_check, before, after, 2);
  } else {
    /* The ICMPv6 checksum covers the quoted address and, in its pseudo-header, the outer one. */
    struct ipv6hdr* ip6 = q->ip;
    if ((void*)(ip6 + 1) > data_end) return;
    void* field = source ? (void*)&ip6->saddr : (void*)&ip6->daddr;
    struct ikelb_addr old;
    __builtin_memcpy(&old, field, 16);
    __builtin_memcpy(field, to, 16);
    __u16 c = csum_replace(*icmp_check, old.u32, to->u32, 4);
    *icmp_check = csum_replace(c, outer_old.u32, to->u32, 4);
  }
}

/* An ICMP error to a VIP about a VIP -> client packet: to the client's backend. Returns an
 * outcome, or -1 if the destination is not a VIP. */
static __always_inline int handle_icmp_to_vip(struct xdp_md* ctx, struct pkt* p, int* action) {
  void* data_end = (void*)(long)ctx->data_end;
  __u32 vs_id;
  if (!is_vip(&p->dst, p->family, p->dst_kinds, &vs_id)) return -1;
  struct icmp_quote q = {};
  int rc = parse_quote(p, data_end, &q);
  if (rc) return rc;
  if (!addr_eq(&q.src, &p->dst) || !lookup_service(&q.src, p->family, q.proto, q.sport, &vs_id))
    return IKELB_OUT_PASS_ICMP_OTHER;
  if (ttl_of(p, data_end) <= 1) return IKELB_OUT_PASS_TTL_EXPIRED;

  __u64 now = bpf_ktime_get_coarse_ns(); /* decisions only: select.h, "Two clocks" */
  struct ikelb_backend* be = 0;
  __u32 backend_id = place_client(&q.dst, p->family, vs_id, now, &be);
  if (backend_id == IKELB_NO_BACKEND || !be) return IKELB_OUT_DROP_NO_BACKEND;
  if (be->family != p->family) return IKELB_OUT_DROP_INTERNAL;
  struct ikelb_addr to;
  __builtin_memcpy(&to, &be->addr, sizeof(to));
  rewrite_icmp(p, data_end, &q, &to, 1, 0);
  count_event(IKELB_EV_ICMP_TO_BACKEND);
  count_traffic(vs_id, backend_id, IKELB_DIR_TO_BACKEND, p->frame_len);
  return forward(ctx, p, bpf_map_lookup_elem(&nexthops, &backend_id), 0, now, action);
}

/* A backend's ICMP error about a client's packet: leaves from the VIP. Returns an outcome, or -1
 * if the source is not a backend (or the error is for the ikelb host itself). */
static __always_inline int handle_icmp_from_backend(struct xdp_md* ctx, struct pkt* p,
                                                    int* action) {
  void* data_end = (void*)(long)ctx->data_end;
  struct ikelb_reply* r = backend_reply(p);
  if (!r) return -1;
  struct ikelb_reverse_value* rev = &r->rev;

  struct icmp_quote q = {};
  int rc = parse_quote(p, data_end, &q);
  if (rc) return rc;
  __u32 vs_id;
  if (!addr_eq(&q.dst, &p->src) || !addr_eq(&q.src, &p->dst) ||
      !lookup_service(&rev->vip, p->family, q.proto, q.dport, &vs_id))
    return IKELB_OUT_PASS_ICMP_OTHER;
  __u64 now = bpf_ktime_get_coarse_ns(); /* decisions only: select.h, "Two clocks" */
  if (!from_gateway_side(ctx, p, rev->backend_id, now)) return IKELB_OUT_DROP_REVERSE_PATH;
  if (ttl_of(p, data_end) <= 1) return IKELB_OUT_PASS_TTL_EXPIRED;

  struct ikelb_addr vip;
  __builtin_memcpy(&vip, &rev->vip, sizeof(vip));
  __u32 backend_id = rev->backend_id;
  rewrite_icmp(p, data_end, &q, &vip, 0, 1);
  count_event(IKELB_EV_ICMP_TO_CLIENT);
  count_traffic(vs_id, backend_id, IKELB_DIR_TO_CLIENT, p->frame_len);
  struct ikelb_nexthop_key nkey = {.family = p->family};
  __builtin_memcpy(&nkey.addr, &p->dst, sizeof(nkey.addr));
  return forward(ctx, p, bpf_map_lookup_elem(&client_nexthops, &nkey), &nkey, now, action);
}

#endif /* IKELB_ICMP_H */
