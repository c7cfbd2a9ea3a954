/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ikelb XDP data path. Client -> VIP packets (UDP service ports, ESP, and their fragments) get
 * their destination rewritten to a backend chosen by affinity or Maglev on the client's source
 * address; backend -> client replies get their source rewritten to the VIP. Nothing else is
 * touched. See DESIGN.md "Packet walk".
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>

/* libbpf's helpers need the kernel's types above. */
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "csum.h"
#include "ikelb_abi.h"
#include "maps.h"
#include "parse.h"

#define IKELB_AF_INET_SYS 2
#define IKELB_AF_INET6_SYS 10
#define IKELB_IPPROTO_ESP 50

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline void count_event(__u32 ev) {
  __u64* v = bpf_map_lookup_elem(&events, &ev);
  if (v) *v += 1;
}

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

static __always_inline void count_backend(__u32 backend_id, int failover) {
  struct ikelb_backend_stats* b = bpf_map_lookup_elem(&backend_stats, &backend_id);
  if (!b) return;
  if (failover)
    b->failovers_from += 1;
  else
    b->new_clients += 1;
}

static __always_inline int lookup_service(const struct ikelb_addr* addr, __u8 family, __u8 proto,
                                          __u16 port, __u32* vs_id) {
  struct ikelb_vip_key key = {.family = family, .proto = proto, .port = port};
  __builtin_memcpy(&key.addr, addr, sizeof(key.addr));
  struct ikelb_vip_value* v = bpf_map_lookup_elem(&vips, &key);
  if (!v) return 0;
  *vs_id = v->vs_id;
  return 1;
}

/* The L4 check for packets we own (to a VIP service or a reply from a backend). A lying length
 * must not be forwarded: the gateway would see a datagram the client never sent. */
static __always_inline int l4_sane(struct pkt* p, void* data_end) {
  if (p->frag == FRAG_LATER) return 1;
  if (p->proto == IPPROTO_UDP) {
    struct udphdr* udp = p->l4;
    if ((void*)(udp + 1) > data_end) return 0;
    __u32 ulen = bpf_ntohs(udp->len);
    if (ulen < sizeof(*udp)) return 0;
    if (p->frag == FRAG_NONE) return ulen == p->l4_len;
    return ulen > p->l4_len; /* first fragment: the datagram continues */
  }
  if (p->proto == IKELB_IPPROTO_ESP) {
    __u32* esp = p->l4;
    if ((void*)(esp + 2) > data_end || p->l4_len < 8) return 0;
    return esp[0] != 0; /* SPI 0 is reserved (RFC 4303) */
  }
  return 0;
}

/* The destination (forward) or source (reverse) port, 0 if the packet carries none. */
static __always_inline __u16 udp_port(struct pkt* p, void* data_end, int source) {
  if (p->proto != IPPROTO_UDP || p->frag == FRAG_LATER) return 0;
  struct udphdr* udp = p->l4;
  if ((void*)(udp + 1) > data_end) return 0;
  return source ? udp->source : udp->dest;
}

static __always_inline int backend_takes_new(struct ikelb_backend* be, __u32 vs_id) {
  return be && be->vs_id == vs_id && be->state == IKELB_BACKEND_ACTIVE;
}

static __always_inline int backend_takes_pinned(struct ikelb_backend* be, __u32 vs_id) {
  return be && be->vs_id == vs_id &&
         (be->state == IKELB_BACKEND_ACTIVE || be->state == IKELB_BACKEND_DRAINING);
}

/* Affinity first, then Maglev. Returns the backend id or IKELB_NO_BACKEND. */
static __always_inline __u32 select_backend(struct pkt* p, __u32 vs_id, __u64 now,
                                            struct ikelb_backend** out) {
  __u32 zero = 0;
  struct ikelb_settings* cfg = bpf_map_lookup_elem(&settings, &zero);
  __u64 idle = cfg ? cfg->affinity_idle_ns : 0;

  struct ikelb_affinity_key akey = {.vs_id = vs_id, .family = p->family};
  __builtin_memcpy(&akey.client, &p->src, sizeof(akey.client));
  struct ikelb_affinity_value* aff = bpf_map_lookup_elem(&affinity, &akey);
  if (aff) {
    __u32 pinned = aff->backend_id;
    struct ikelb_backend* be = bpf_map_lookup_elem(&backends, &pinned);
    /* Another CPU may have refreshed the entry since this one read the clock: a last-seen time
     * after `now` is age 0, not an unsigned wrap that would move the client. */
    __u64 seen = aff->last_seen_ns;
    __u64 age = now > seen ? now - seen : 0;
    if (idle && age > idle) {
      count_event(IKELB_EV_AFFINITY_EXPIRED);
    } else if (backend_takes_pinned(be, vs_id)) {
      count_event(IKELB_EV_AFFINITY_HIT);
      if (age > IKELB_AFFINITY_REFRESH_NS) aff->last_seen_ns = now;
      *out = be;
      return pinned;
    } else {
      count_event(IKELB_EV_FAILOVER);
      count_backend(pinned, 1);
    }
  } else {
    count_event(IKELB_EV_AFFINITY_MISS);
  }

  struct ikelb_vs* v = bpf_map_lookup_elem(&vs, &vs_id);
  if (!v || v->table_size == 0) return IKELB_NO_BACKEND;
  __u32 slot = ikelb_client_hash(&p->src, p->family) % v->table_size;
#pragma unroll
  for (int i = 0; i < IKELB_MAGLEV_PROBES; i++) {
    __u32 idx = v->table_base + slot;
    __u32* bid = bpf_map_lookup_elem(&maglev, &idx);
    if (!bid) return IKELB_NO_BACKEND;
    __u32 id = *bid;
    struct ikelb_backend* be = bpf_map_lookup_elem(&backends, &id);
    if (backend_takes_new(be, vs_id)) {
      if (i) count_event(IKELB_EV_MAGLEV_PROBED);
      struct ikelb_affinity_value val = {.backend_id = id, .last_seen_ns = now};
      bpf_map_update_elem(&affinity, &akey, &val, BPF_ANY);
      count_backend(id, 0);
      *out = be;
      return id;
    }
    slot = slot + 1 == v->table_size ? 0 : slot + 1;
  }
  return IKELB_NO_BACKEND;
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

/* Client -> VIP. Returns an outcome, or -1 if the packet is not for a VIP service. */
static __always_inline int handle_to_vip(struct xdp_md* ctx, struct pkt* p, int* action) {
  void* data_end = (void*)(long)ctx->data_end;
  __u32 vs_id;
  __u16 port = 0;
  if (p->proto == IPPROTO_UDP && p->frag != FRAG_LATER) {
    port = udp_port(p, data_end, 0);
    /* Port 0 does not exist; a header too short to hold a port is judged below as malformed if
     * the address has UDP services at all (the protocol-wide entry). */
  } else if (p->proto != IPPROTO_UDP && p->proto != IKELB_IPPROTO_ESP) {
    return -1;
  }
  if (!lookup_service(&p->dst, p->family, p->proto, port, &vs_id)) return -1;
  if (!l4_sane(p, data_end) || (p->proto == IPPROTO_UDP && p->frag != FRAG_LATER && port == 0))
    return IKELB_OUT_DROP_MALFORMED_L4;
  if (ttl_of(p, data_end) <= 1) return IKELB_OUT_PASS_TTL_EXPIRED;

  struct ikelb_backend* be = 0;
  __u64 now = bpf_ktime_get_ns();
  __u32 backend_id = select_backend(p, vs_id, now, &be);
  if (backend_id == IKELB_NO_BACKEND || !be) return IKELB_OUT_DROP_NO_BACKEND;
  if (be->family != p->family) return IKELB_OUT_DROP_INTERNAL;

  struct ikelb_addr to;
  __builtin_memcpy(&to, &be->addr, sizeof(to));
  rewrite_addr(p, data_end, &to, 0);
  count_traffic(vs_id, backend_id, IKELB_DIR_TO_BACKEND, p->frame_len);
  return forward(ctx, p, bpf_map_lookup_elem(&nexthops, &backend_id), 0, now, action);
}

/* Backend -> client. Returns an outcome, or -1 if the packet is not a reply we translate. */
static __always_inline int handle_from_backend(struct xdp_md* ctx, struct pkt* p, int* action) {
  void* data_end = (void*)(long)ctx->data_end;
  if (p->proto != IPPROTO_UDP && p->proto != IKELB_IPPROTO_ESP) return -1;
  struct ikelb_reverse_key rkey = {.family = p->family};
  __builtin_memcpy(&rkey.addr, &p->src, sizeof(rkey.addr));
  struct ikelb_reverse_value* rev = bpf_map_lookup_elem(&reverse, &rkey);
  if (!rev) return -1;
  /* A backend answering the agent's health probe: the kernel delivers it to the prober. */
  struct ikelb_local_key lkey = {.family = p->family};
  __builtin_memcpy(&lkey.addr, &p->dst, sizeof(lkey.addr));
  if (bpf_map_lookup_elem(&local_addrs, &lkey)) return -1;

  struct ikelb_frag_value fv = {.vs_id = rev->vs_id, .backend_id = rev->backend_id};
  __builtin_memcpy(&fv.vip, &rev->vip, sizeof(fv.vip));
  struct ikelb_frag_key fkey = {.family = p->family, .proto = p->proto, .id = p->frag_id};
  __builtin_memcpy(&fkey.src, &p->src, sizeof(fkey.src));
  __builtin_memcpy(&fkey.dst, &p->dst, sizeof(fkey.dst));
  __u32 vs_id;

  if (p->proto == IPPROTO_UDP && p->frag == FRAG_LATER) {
    /* No ports here: only the first fragment tells whether this datagram is IKE. */
    struct ikelb_frag_value* known = bpf_map_lookup_elem(&reply_frags, &fkey);
    if (!known) return IKELB_OUT_PASS_FRAG_UNKNOWN;
    __builtin_memcpy(&fv, known, sizeof(fv));
  } else {
    __u16 port = udp_port(p, data_end, 1);
    if (p->proto == IPPROTO_UDP && port == 0) return -1;
    if (!lookup_service(&fv.vip, p->family, p->proto, port, &vs_id)) return -1;
    if (!l4_sane(p, data_end)) return IKELB_OUT_DROP_MALFORMED_L4;
    if (p->proto == IPPROTO_UDP && p->frag == FRAG_FIRST) {
      bpf_map_update_elem(&reply_frags, &fkey, &fv, BPF_ANY);
      count_event(IKELB_EV_REPLY_FRAGMENT_LEARNED);
    }
  }
  if (ttl_of(p, data_end) <= 1) return IKELB_OUT_PASS_TTL_EXPIRED;

  rewrite_addr(p, data_end, &fv.vip, 1);
  count_traffic(fv.vs_id, fv.backend_id, IKELB_DIR_TO_CLIENT, p->frame_len);
  struct ikelb_nexthop_key nkey = {.family = p->family};
  __builtin_memcpy(&nkey.addr, &p->dst, sizeof(nkey.addr));
  return forward(ctx, p, bpf_map_lookup_elem(&client_nexthops, &nkey), &nkey, bpf_ktime_get_ns(),
                 action);
}

static __always_inline int outcome_action(int outcome) {
  switch (outcome) {
    case IKELB_OUT_FWD_TX:
      return XDP_TX;
    case IKELB_OUT_DROP_MALFORMED_L2:
    case IKELB_OUT_DROP_MALFORMED_IP:
    case IKELB_OUT_DROP_MALFORMED_L4:
    case IKELB_OUT_DROP_NO_BACKEND:
    case IKELB_OUT_DROP_INTERNAL:
      return XDP_DROP;
    default:
      return XDP_PASS;
  }
}

static __always_inline int ikelb_process(struct xdp_md* ctx) {
  struct pkt p = {};
  int action = -1;
  int outcome;

  switch (parse_packet(ctx, &p)) {
    case PARSE_OK:
      outcome = handle_to_vip(ctx, &p, &action);
      if (outcome < 0) outcome = handle_from_backend(ctx, &p, &action);
      if (outcome < 0) outcome = IKELB_OUT_PASS_NOT_OURS;
      break;
    case PARSE_NOT_IP:
      outcome = IKELB_OUT_PASS_NOT_IP;
      break;
    case PARSE_NOT_OURS:
      outcome = IKELB_OUT_PASS_NOT_OURS;
      break;
    case PARSE_MALFORMED_L2:
      outcome = IKELB_OUT_DROP_MALFORMED_L2;
      break;
    default:
      outcome = IKELB_OUT_DROP_MALFORMED_IP;
      break;
  }

  /* The single exit: every packet is counted under exactly one outcome. */
  __u32 key = outcome;
  __u64* cnt = bpf_map_lookup_elem(&outcomes, &key);
  if (cnt) *cnt += 1;
  if (outcome == IKELB_OUT_FWD_REDIRECT) return action;
  return outcome_action(outcome);
}

SEC("xdp")
int ikelb_xdp(struct xdp_md* ctx) {
  return ikelb_process(ctx);
}
