/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Which backend a client's packet goes to: its affinity entry while that pins it, else the
 * virtual server's Maglev table. The edge checks for new clients (a source that is a backend or
 * a VIP; the IKE_SA_INIT limiter) sit in front of Maglev, so an affinity hit pays for neither. */
#ifndef IKELB_SELECT_H
#define IKELB_SELECT_H

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/udp.h>

#include "ikelb_abi.h"
#include "maps.h"
#include "parse.h"
#include "spi.h"

/* Two clocks. Decisions (has an entry been idle too long, is a cached next hop stale) read
 * bpf_ktime_get_coarse_ns(): CLOCK_MONOTONIC as of the last tick, at most one tick (1-10 ms)
 * behind, for a few ns. bpf_ktime_get_ns() reads the clock source itself, which in a VM with
 * kvm-clock took about 27 ns, a third of an affinity hit (docs/BENCHMARKS.md). The exact clock
 * still writes every time stamp the agent reads (affinity and SPI owner last-seen times) and
 * runs the IKE_SA_INIT limiter: the agent's sync sends the entries seen since a CLOCK_MONOTONIC
 * mark, which a stamp a tick in the past could miss. A coarse `now` earlier than a stamp is age 0
 * (affinity_age), as for a stamp another CPU wrote after this one read the clock. */

static __always_inline void count_event(__u32 ev) {
  __u64* v = bpf_map_lookup_elem(&events, &ev);
  if (v) *v += 1;
}

static __always_inline void count_backend(__u32 backend_id, int failover) {
  struct ikelb_backend_stats* b = bpf_map_lookup_elem(&backend_stats, &backend_id);
  if (!b) return;
  if (failover)
    b->failovers_from += 1;
  else
    b->new_clients += 1;
}

static __always_inline __u32 filter_slot(const struct ikelb_addr* addr, __u8 family) {
  return ikelb_addr_slot(addr, family) & (IKELB_ADDR_FILTER_SLOTS - 1);
}

/* The kinds (enum ikelb_addr_kind) the addresses in a filter slot may be: a bit that is clear
 * means the address is certainly not of that kind, so its map lookup can be skipped (struct
 * ikelb_addr_filter). */
static __always_inline __u32 slot_kinds(__u32 slot) {
  __u32 zero = 0;
  struct ikelb_addr_filter* f = bpf_map_lookup_elem(&addr_filter, &zero);
  if (!f) return IKELB_ADDR_VIP | IKELB_ADDR_BACKEND | IKELB_ADDR_LOCAL; /* look everything up */
  return f->kinds[slot & (IKELB_ADDR_FILTER_SLOTS - 1)];
}

static __always_inline __u32 addr_kinds(const struct ikelb_addr* addr, __u8 family) {
  return slot_kinds(filter_slot(addr, family));
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

static __always_inline int same_addr(const struct ikelb_addr* a, const struct ikelb_addr* b) {
  return a->u32[0] == b->u32[0] && a->u32[1] == b->u32[1] && a->u32[2] == b->u32[2] &&
         a->u32[3] == b->u32[3];
}

/* The virtual server of the packet's (destination, protocol, port): what lookup_service answers,
 * from the destination slot's vip_records entry while it is published (struct ikelb_vip_record).
 * `port` in network order, 0 for ESP and non-first fragments. */
static __always_inline int vip_service(const struct pkt* p, __u16 port, __u32* vs_id) {
  if (!(p->dst_kinds & IKELB_ADDR_VIP)) return 0;
  if (p->dst_kinds & IKELB_ADDR_RECORD) {
    __u32 slot = p->dst_slot;
    const struct ikelb_vip_record* r = bpf_map_lookup_elem(&vip_records, &slot);
    if (r && r->family == p->family && same_addr(&r->addr, &p->dst)) {
#pragma unroll
      for (int i = 0; i < IKELB_VIP_RECORD_SERVICES; i++) {
        if (i >= r->count) break;
        if (r->services[i].proto == p->proto && r->services[i].port == port) {
          *vs_id = r->services[i].vs_id;
          return 1;
        }
      }
      return 0;
    }
  }
  return lookup_service(&p->dst, p->family, p->proto, port, vs_id);
}

/* Whether `addr`, which may be `kinds` (addr_kinds), is a VIP: every virtual server has a
 * protocol-wide UDP or ESP entry. */
static __always_inline int is_vip(const struct ikelb_addr* addr, __u8 family, __u32 kinds,
                                  __u32* vs_id) {
  if (!(kinds & IKELB_ADDR_VIP)) return 0;
  return lookup_service(addr, family, IPPROTO_UDP, 0, vs_id) ||
         lookup_service(addr, family, IKELB_IPPROTO_ESP, 0, vs_id);
}

static __always_inline int backend_takes_new(struct ikelb_backend* be, __u32 vs_id) {
  return be && be->vs_id == vs_id && be->state == IKELB_BACKEND_ACTIVE;
}

static __always_inline int backend_takes_pinned(struct ikelb_backend* be, __u32 vs_id) {
  return be && be->vs_id == vs_id &&
         (be->state == IKELB_BACKEND_ACTIVE || be->state == IKELB_BACKEND_DRAINING);
}

static __always_inline __u64 affinity_idle_ns(void) {
  __u32 zero = 0;
  struct ikelb_settings* cfg = bpf_map_lookup_elem(&settings, &zero);
  return cfg ? cfg->affinity_idle_ns : 0;
}

/* Another CPU may have refreshed an entry since this one read the clock: a last-seen time after
 * `now` is age 0, not an unsigned wrap that would move the client. */
static __always_inline __u64 affinity_age(const struct ikelb_affinity_value* aff, __u64 now) {
  __u64 seen = aff->last_seen_ns;
  return now > seen ? now - seen : 0;
}

/* The Maglev choice for a client: its slot, or one of the next IKELB_MAGLEV_PROBES - 1 slots if
 * the slot's backend cannot take new clients. Returns the backend id or IKELB_NO_BACKEND. */
static __always_inline __u32 maglev_pick(const struct ikelb_addr* client, __u8 family, __u32 vs_id,
                                         struct ikelb_backend** out) {
  struct ikelb_vs* v = bpf_map_lookup_elem(&vs, &vs_id);
  if (!v || v->table_size == 0) return IKELB_NO_BACKEND;
  __u32 slot = ikelb_client_hash(client, family) % v->table_size;
#pragma unroll
  for (int i = 0; i < IKELB_MAGLEV_PROBES; i++) {
    __u32 idx = v->table_base + slot;
    __u32* bid = bpf_map_lookup_elem(&maglev, &idx);
    if (!bid) return IKELB_NO_BACKEND;
    __u32 id = *bid;
    struct ikelb_backend* be = bpf_map_lookup_elem(&backends, &id);
    if (backend_takes_new(be, vs_id)) {
      if (i) count_event(IKELB_EV_MAGLEV_PROBED);
      *out = be;
      return id;
    }
    slot = slot + 1 == v->table_size ? 0 : slot + 1;
  }
  return IKELB_NO_BACKEND;
}

/* Where a client's packets go now, read-only (no entry created, nothing counted): for ICMP errors
 * about a client's traffic. Returns the backend id or IKELB_NO_BACKEND. */
static __always_inline __u32 place_client(const struct ikelb_addr* client, __u8 family, __u32 vs_id,
                                          __u64 now, struct ikelb_backend** out) {
  struct ikelb_affinity_key akey = {.vs_id = vs_id, .family = family};
  __builtin_memcpy(&akey.client, client, sizeof(akey.client));
  struct ikelb_affinity_value* aff = bpf_map_lookup_elem(&affinity, &akey);
  if (aff) {
    __u64 idle = affinity_idle_ns();
    __u32 pinned = aff->backend_id;
    struct ikelb_backend* be = bpf_map_lookup_elem(&backends, &pinned);
    if (!(idle && affinity_age(aff, now) > idle) && backend_takes_pinned(be, vs_id)) {
      *out = be;
      return pinned;
    }
  }
  return maglev_pick(client, family, vs_id, out);
}

/* The IKE header of a UDP datagram on port 500, or on 4500 after the non-ESP marker; 0 if there is
 * none (ESP-in-UDP, a NAT keepalive, a non-first fragment, too short). `port` in network order. */
static __always_inline __u8* ike_header(struct pkt* p, void* data_end, __u16 port) {
  if (p->proto != IPPROTO_UDP || p->frag == FRAG_LATER) return 0;
  __u8* h = (__u8*)p->l4 + sizeof(struct udphdr);
  if (port == bpf_htons(IKELB_NATT_PORT)) {
    if ((void*)(h + 4) > data_end) return 0;
    if (h[0] | h[1] | h[2] | h[3]) return 0;
    h += 4;
  } else if (port != bpf_htons(IKELB_IKE_PORT)) {
    return 0;
  }
  if ((void*)(h + IKELB_IKE_HEADER_LEN) > data_end) return 0;
  return h;
}

/* An IKE_SA_INIT request, or its retry with a cookie: an IKE message whose responder SPI is 0. */
static __always_inline int ike_init_request(struct pkt* p, void* data_end, __u16 port) {
  __u8* h = ike_header(p, data_end, port);
  if (!h) return 0;
  __u32 r0, r1;
  __builtin_memcpy(&r0, h + 8, 4);
  __builtin_memcpy(&r1, h + 12, 4);
  return (r0 | r1) == 0;
}

/* The virtual server's IKE_SA_INIT limit, 0 if it has none. */
static __always_inline struct ikelb_init_limit* init_limit_of(__u32 vs_id) {
  struct ikelb_init_limit* lim = bpf_map_lookup_elem(&init_limits, &vs_id);
  if (!lim || !(lim->source_interval_ns | lim->total_interval_ns)) return 0;
  return lim;
}

/* Generic cell rate algorithm: admit while the bucket's theoretical arrival time is at most
 * `tolerance` ahead of now. CPUs update a shared bucket without a lock: when several admit at the
 * same instant, each may see the old time, so up to one extra request per CPU can pass. */
static __always_inline int gcra_admit(__u64* tat, __u64 now, __u64 interval, __u64 tolerance) {
  __u64 t = *tat;
  if (t < now) t = now;
  if (t - now > tolerance) return 0;
  *tat = t + interval;
  return 1;
}

/* Clears the host bits of an IPv6 address beyond `len` (network order words). */
static __always_inline void mask_prefix(struct ikelb_addr* a, __u32 len) {
#pragma unroll
  for (__u32 i = 0; i < 4; i++) {
    __u32 lo = i * 32;
    if (len <= lo)
      a->u32[i] = 0;
    else if (len < lo + 32)
      a->u32[i] &= bpf_htonl(~0u << (32 - (len - lo)));
  }
}

enum init_verdict {
  INIT_UNLIMITED = -1, /* the virtual server has no IKE_SA_INIT limit */
  INIT_ADMITTED = -2,
};

/* Runs an IKE_SA_INIT request from client `key` (virtual server, source) through its virtual
 * server's limits: the source's bucket first, so that one flooding source does not use up the
 * virtual server's. Returns enum init_verdict or the outcome that drops the request.
 * (Inlined into ikelb_select, which the verifier checks once.) */
static __always_inline int limit_init(const struct ikelb_affinity_key* key) {
  __u32 vs_id = key->vs_id;
  struct ikelb_init_limit* lim = init_limit_of(vs_id);
  if (!lim) return INIT_UNLIMITED;
  __u64 now = bpf_ktime_get_ns();
  struct ikelb_vs_edge_stats* st = bpf_map_lookup_elem(&vs_edge_stats, &vs_id);
  if (lim->source_interval_ns) {
    struct ikelb_affinity_key source = *key;
    if (source.family == IKELB_AF_INET6) mask_prefix(&source.client, lim->ipv6_prefix_len);
    __u64* tat = bpf_map_lookup_elem(&init_sources, &source);
    if (!tat) {
      __u64 first = now + lim->source_interval_ns;
      bpf_map_update_elem(&init_sources, &source, &first, BPF_NOEXIST);
    } else if (!gcra_admit(tat, now, lim->source_interval_ns, lim->source_tolerance_ns)) {
      if (st) st->init_limited_source += 1;
      return IKELB_OUT_DROP_INIT_LIMIT_SOURCE;
    }
  }
  if (lim->total_interval_ns) {
    __u64* tat = bpf_map_lookup_elem(&init_totals, &vs_id);
    if (tat && !gcra_admit(tat, now, lim->total_interval_ns, lim->total_tolerance_ns)) {
      if (st) st->init_limited_total += 1;
      return IKELB_OUT_DROP_INIT_LIMIT_TOTAL;
    }
  }
  if (st) st->init_admitted += 1;
  return INIT_ADMITTED;
}

/* The replies entry of a packet from a backend to someone other than the ikelb host (a backend
 * answering the agent's health probe is delivered to the prober), 0 otherwise. */
static __always_inline struct ikelb_reply* backend_reply(struct pkt* p) {
  __u32 slot = filter_slot(&p->src, p->family);
  const __u32 kinds = slot_kinds(slot);
  if (!(kinds & IKELB_ADDR_BACKEND)) return 0;
  struct ikelb_reply* r = 0;
  if (kinds & IKELB_ADDR_REPLY_RECORD) { /* the slot's published record (ikelb_reply_record) */
    struct ikelb_reply_record* rec = bpf_map_lookup_elem(&reply_records, &slot);
    if (rec && rec->family == p->family && same_addr(&rec->addr, &p->src)) r = &rec->reply;
  }
  if (!r) {
    struct ikelb_reverse_key rkey = {.family = p->family};
    __builtin_memcpy(&rkey.addr, &p->src, sizeof(rkey.addr));
    r = bpf_map_lookup_elem(&replies, &rkey);
  }
  if (!r || !(p->dst_kinds & IKELB_ADDR_LOCAL)) return r;
  struct ikelb_local_key lkey = {.family = p->family};
  __builtin_memcpy(&lkey.addr, &p->dst, sizeof(lkey.addr));
  return bpf_map_lookup_elem(&local_addrs, &lkey) ? 0 : r;
}

/* Whether (proto, port) is a service of the reply's VIP: the same answer as lookup_service on
 * vips, mostly without the lookup. `port` in network order, not 0 for UDP. */
static __always_inline int reply_service(const struct ikelb_reply* r, __u8 family, __u8 proto,
                                         __u16 port) {
  if (proto != IPPROTO_UDP) return proto == IKELB_IPPROTO_ESP && r->esp;
#pragma unroll
  for (int i = 0; i < IKELB_REPLY_PORTS; i++)
    if (r->udp_ports[i] == port) return 1;
  __u32 vs_id;
  return r->more && lookup_service(&r->rev.vip, family, proto, port, &vs_id);
}

/* A packet to a VIP from a backend's or a VIP's address is forged: no client has one. */
static __always_inline int spoofed_client(const struct ikelb_addr* src, __u8 family) {
  const __u32 kinds = addr_kinds(src, family);
  if (!(kinds & (IKELB_ADDR_BACKEND | IKELB_ADDR_VIP))) return 0;
  struct ikelb_reverse_key rkey = {.family = family};
  __builtin_memcpy(&rkey.addr, src, sizeof(rkey.addr));
  __u32 vs_id;
  return bpf_map_lookup_elem(&replies, &rkey) || is_vip(src, family, kinds, &vs_id);
}

/* A new affinity entry: `client` is now pinned to `backend_id`. */
static __always_inline void pin_client(const struct ikelb_affinity_key* client, __u32 backend_id,
                                       __u32 flags) {
  struct ikelb_affinity_value val = {
      .backend_id = backend_id, .flags = flags, .last_seen_ns = bpf_ktime_get_ns()};
  bpf_map_update_elem(&affinity, client, &val, BPF_ANY);
}

/* What the packet says, for ikelb_select. In a per-CPU scratch map, not on the caller's stack:
 * the caller's frame plus ikelb_select's must stay within the verifier's 512 bytes. */
struct select_args {
  struct ikelb_affinity_key client; /* virtual server, family, source address */
  struct spi_query q;               /* the gateway's SPI, if has_spi */
  __u8 has_spi;
  __u8 init_request; /* an IKE_SA_INIT request (responder SPI 0) */
  __u8 pad[2];
  __u32 backend_id; /* out */
};

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct select_args);
} select_scratch SEC(".maps");

/* SPI label, then affinity, then a learned SPI owner, then Maglev. Returns -1 with
 * a->backend_id set, or the outcome that drops the packet.
 *
 * A label (or learned owner) routes only the packet that carries it. It pins the packet's source
 * only when that source has no live entry: an entry that disagrees is kept (spi_affinity_kept),
 * so a forged SPI cannot move the client who owns the source.
 *
 * A global function over the packet's facts (no packet access): the verifier checks it once,
 * not once per parse path of the caller. */
__attribute__((noinline)) int ikelb_select(struct select_args* a) {
  if (!a) return IKELB_OUT_DROP_INTERNAL;
  struct ikelb_affinity_key* akey = &a->client;
  __u32 vs_id = akey->vs_id;
  __u64 now = a->q.now;
  __u32 by_label = a->has_spi ? spi_label_owner(&a->q) : IKELB_NO_BACKEND;

  struct ikelb_affinity_value* aff = bpf_map_lookup_elem(&affinity, akey);
  if (aff) {
    __u32 pinned = aff->backend_id;
    struct ikelb_backend* be = bpf_map_lookup_elem(&backends, &pinned);
    __u64 idle = affinity_idle_ns();
    __u64 age = affinity_age(aff, now);
    if (idle && age > idle) {
      count_event(IKELB_EV_AFFINITY_EXPIRED);
    } else if (backend_takes_pinned(be, vs_id)) {
      if (by_label != IKELB_NO_BACKEND) {
        count_event(IKELB_EV_SPI_LABEL);
        if (by_label != pinned) {
          count_event(IKELB_EV_SPI_AFFINITY_KEPT);
          a->backend_id = by_label;
          return -1;
        }
      } else {
        count_event(IKELB_EV_AFFINITY_HIT);
      }
      if ((aff->flags & IKELB_AFFINITY_PROVISIONAL) && a->init_request) {
        int verdict = limit_init(akey);
        if (verdict >= 0) return verdict;
      }
      if (age > IKELB_AFFINITY_REFRESH_NS) aff->last_seen_ns = bpf_ktime_get_ns();
      if (a->has_spi && by_label == IKELB_NO_BACKEND) spi_learn(&a->q, pinned);
      a->backend_id = pinned;
      return -1;
    } else {
      count_event(IKELB_EV_FAILOVER);
      count_backend(pinned, 1);
    }
  } else {
    count_event(IKELB_EV_AFFINITY_MISS);
  }

  if (spoofed_client(&akey->client, akey->family)) return IKELB_OUT_DROP_SPOOFED_CLIENT;
  __u32 by_spi = by_label;
  if (by_label != IKELB_NO_BACKEND)
    count_event(IKELB_EV_SPI_LABEL);
  else if (a->has_spi)
    by_spi = spi_learned_owner(&a->q);
  if (by_spi != IKELB_NO_BACKEND) {
    pin_client(akey, by_spi, 0);
    a->backend_id = by_spi;
    return -1;
  }
  __u32 flags = 0;
  if (a->init_request) {
    int verdict = limit_init(akey);
    if (verdict >= 0) return verdict;
    if (verdict == INIT_ADMITTED) flags = IKELB_AFFINITY_PROVISIONAL;
  }
  struct ikelb_backend* be = 0;
  __u32 chosen = maglev_pick(&akey->client, akey->family, vs_id, &be);
  if (chosen == IKELB_NO_BACKEND) return IKELB_OUT_DROP_NO_BACKEND;
  pin_client(akey, chosen, flags);
  count_backend(chosen, 0);
  if (a->has_spi) spi_learn(&a->q, chosen);
  a->backend_id = chosen;
  return -1;
}

/* Where a client's packet goes: -1 with *id and *out set, or the outcome that drops it. `port`
 * is the UDP destination port (network order), 0 for ESP and fragments. */
static __always_inline int select_backend(struct pkt* p, void* data_end, __u32 vs_id, __u16 port,
                                          __u64 now, __u32* id, struct ikelb_backend** out) {
  __u32 zero = 0;
  struct select_args* a = bpf_map_lookup_elem(&select_scratch, &zero);
  if (!a) return IKELB_OUT_DROP_INTERNAL;
  a->client.vs_id = vs_id;
  a->client.family = p->family;
  __builtin_memcpy(&a->client.client, &p->src, sizeof(a->client.client));
  a->q.key.vs_id = vs_id;
  a->q.now = now;
  struct ikelb_spi_routing* sr = bpf_map_lookup_elem(&spi_routing, &vs_id);
  a->has_spi = sr && sr->flags && gateway_spi(p, data_end, port, &a->q);
  a->init_request = !a->has_spi && ike_init_request(p, data_end, port);
  int drop = ikelb_select(a);
  if (drop >= 0) return drop;
  __u32 chosen = a->backend_id;
  *out = bpf_map_lookup_elem(&backends, &chosen);
  if (!*out) return IKELB_OUT_DROP_INTERNAL;
  *id = chosen;
  return -1;
}

/* The backend has sent its client an IKE message of an exchange after IKE_SA_INIT: the client's
 * affinity entry is no longer provisional (only looked up where a limit makes it matter). */
static __always_inline void confirm_client(struct pkt* p, void* data_end, __u32 vs_id, __u16 port) {
  __u8* h = ike_header(p, data_end, port);
  if (!h || h[18] == IKELB_IKE_SA_INIT || !init_limit_of(vs_id)) return;
  struct ikelb_affinity_key akey = {.vs_id = vs_id, .family = p->family};
  __builtin_memcpy(&akey.client, &p->dst, sizeof(akey.client));
  struct ikelb_affinity_value* aff = bpf_map_lookup_elem(&affinity, &akey);
  if (aff && (aff->flags & IKELB_AFFINITY_PROVISIONAL)) aff->flags &= ~IKELB_AFFINITY_PROVISIONAL;
}

#endif /* IKELB_SELECT_H */
