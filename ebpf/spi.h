/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* SPI routing: clients that change address (MOBIKE, NAT rebinding) stay on their gateway because
 * their IKE and ESP packets carry SPIs the gateway chose. Labels: the gateway wrote its id into
 * them (strongSwan charon.spi_label, spi_min/spi_max). Learned: the program remembers which
 * backend owns each gateway SPI it saw on a packet routed by affinity or Maglev.
 *
 * Security: nothing here moves a client. A label or learned owner selects a backend only for
 * the packet that carries the SPI and pins only that packet's (new) source address, never one
 * that already has a live entry; learned owners are inserted only while absent (or idle), never
 * overwritten by traffic. A forged packet that reaches the owner is dropped by its IKE/ESP
 * authentication. See docs/spi-routing.md. */
#ifndef IKELB_SPI_H
#define IKELB_SPI_H

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/udp.h>

#include "ikelb_abi.h"
#include "maps.h"
#include "parse.h"

#define IKELB_IKE_FLAG_INITIATOR 0x08
/* A learned owner's last-seen time is rewritten at most this often (like affinity entries). */
#define IKELB_SPI_REFRESH_NS 1000000000ull

/* The query a global function below answers; on the caller's stack. */
struct spi_query {
  struct ikelb_spi_owner_key key; /* the gateway's SPI, its kind, the virtual server */
  __u64 now;                      /* the coarse clock; stamps are written from the exact one */
};

/* The gateway-side SPI of a client's packet into q->key (spi, kind): the responder SPI of an IKE
 * message when its Initiator flag is set, else the initiator SPI (whoever started the last IKE
 * rekey holds the I flag); the SPI of ESP and of ESP-in-UDP on 4500. Returns 0 if the packet has
 * none: an IKE_SA_INIT request (responder SPI 0), a NAT keepalive, a non-first fragment. `port`:
 * UDP destination port in network order. */
static __always_inline int gateway_spi(struct pkt* p, void* data_end, __u16 port,
                                       struct spi_query* q) {
  if (p->frag == FRAG_LATER) return 0;
  __u8* h = p->l4;
  if (p->proto == IPPROTO_UDP) {
    h += sizeof(struct udphdr);
    if (port == bpf_htons(IKELB_NATT_PORT)) {
      if ((void*)(h + 8) > data_end) return 0; /* keepalive (one 0xff byte) or too short */
      if (h[0] | h[1] | h[2] | h[3]) goto esp; /* ESP-in-UDP: the marker is a non-zero SPI */
      h += 4;
    } else if (port != bpf_htons(IKELB_IKE_PORT)) {
      return 0;
    }
    if ((void*)(h + IKELB_IKE_HEADER_LEN) > data_end) return 0;
    /* Both SPIs read, then one chosen: clang folds a chosen pointer into h + (flags & 8), a
     * variable offset the verifier cannot bound. */
    __u64 spi_i, spi_r;
    __builtin_memcpy(&spi_i, h, 8);
    __builtin_memcpy(&spi_r, h + 8, 8);
    q->key.spi = (h[19] & IKELB_IKE_FLAG_INITIATOR) ? spi_r : spi_i;
    if (!q->key.spi) return 0; /* an IKE_SA_INIT request: no gateway SPI yet */
    q->key.kind = IKELB_SPI_IKE;
    return 1;
  }
  if (p->proto != IKELB_IPPROTO_ESP) return 0;
esp:
  if ((void*)(h + 4) > data_end) return 0;
  q->key.spi = 0;
  __builtin_memcpy(&q->key.spi, h, 4);
  q->key.kind = IKELB_SPI_ESP;
  return q->key.spi != 0;
}

static __always_inline int spi_backend_serves(__u32 id, __u32 vs_id) {
  struct ikelb_backend* be = bpf_map_lookup_elem(&backends, &id);
  return be && be->vs_id == vs_id &&
         (be->state == IKELB_BACKEND_ACTIVE || be->state == IKELB_BACKEND_DRAINING);
}

static __always_inline void spi_count(__u32 ev) {
  __u64* v = bpf_map_lookup_elem(&events, &ev);
  if (v) *v += 1;
}

/* The backend the gateway id in q's SPI names, if it can take the client (active or draining:
 * the SA lives there); IKELB_NO_BACKEND to fall back to affinity and Maglev, counting
 * spi_label_down or spi_unknown. (The caller counts spi_label once it routes the packet.) */
static __always_inline __u32 spi_label_owner(const struct spi_query* q) {
  __u32 vs_id = q->key.vs_id;
  struct ikelb_spi_routing* sr = bpf_map_lookup_elem(&spi_routing, &vs_id);
  if (!sr || !(sr->flags & IKELB_SPI_LABELS)) return IKELB_NO_BACKEND;
  struct ikelb_spi_label_key lk = {.vs_id = vs_id};
  if (q->key.kind == IKELB_SPI_IKE)
    lk.id = (bpf_be64_to_cpu(q->key.spi) & sr->ike_mask) >> (sr->ike_shift & 63);
  else
    lk.id = (bpf_ntohl((__u32)q->key.spi) & sr->esp_mask) >> (sr->esp_shift & 31);
  __u32* id = bpf_map_lookup_elem(&spi_labels, &lk);
  if (!id) {
    spi_count(IKELB_EV_SPI_UNKNOWN);
    return IKELB_NO_BACKEND;
  }
  __u32 backend_id = *id;
  if (!spi_backend_serves(backend_id, vs_id)) {
    spi_count(IKELB_EV_SPI_LABEL_DOWN);
    return IKELB_NO_BACKEND;
  }
  return backend_id;
}

static __always_inline __u64 spi_idle_ns(const struct ikelb_spi_routing* sr, __u8 kind) {
  return kind == IKELB_SPI_IKE ? sr->ike_idle_ns : sr->esp_idle_ns;
}

static __always_inline int spi_owner_live(const struct ikelb_spi_owner* o, __u64 idle, __u64 now) {
  __u64 seen = o->last_seen_ns;
  return !idle || now <= seen || now - seen <= idle;
}

/* The learned owner of q's SPI, if live and able to take the client; IKELB_NO_BACKEND otherwise.
 * Counts spi_learned, or spi_unknown when the virtual server has no labels (which counted it). */
static __always_inline __u32 spi_learned_owner(const struct spi_query* q) {
  __u32 vs_id = q->key.vs_id;
  struct ikelb_spi_routing* sr = bpf_map_lookup_elem(&spi_routing, &vs_id);
  if (!sr || !(sr->flags & IKELB_SPI_LEARN)) return IKELB_NO_BACKEND;
  struct ikelb_spi_owner* o = bpf_map_lookup_elem(&spi_owners, &q->key);
  if (o && spi_owner_live(o, spi_idle_ns(sr, q->key.kind), q->now) &&
      spi_backend_serves(o->backend_id, vs_id)) {
    spi_count(IKELB_EV_SPI_LEARNED);
    return o->backend_id;
  }
  if (!(sr->flags & IKELB_SPI_LABELS)) spi_count(IKELB_EV_SPI_UNKNOWN);
  return IKELB_NO_BACKEND;
}

/* Remembers that `backend_id` owns q's SPI: the packet was routed by affinity or Maglev. Inserts
 * only where no live owner is known (a packet never overwrites one); refreshes the owner's
 * last-seen time when it is this backend. */
static __always_inline void spi_learn(const struct spi_query* q, __u32 backend_id) {
  __u32 vs_id = q->key.vs_id;
  struct ikelb_spi_routing* sr = bpf_map_lookup_elem(&spi_routing, &vs_id);
  if (!sr || !(sr->flags & IKELB_SPI_LEARN)) return;
  __u64 now = q->now;
  struct ikelb_spi_owner* o = bpf_map_lookup_elem(&spi_owners, &q->key);
  if (o) {
    if (o->backend_id == backend_id) {
      if (now > o->last_seen_ns + IKELB_SPI_REFRESH_NS) o->last_seen_ns = bpf_ktime_get_ns();
      return;
    }
    if (spi_owner_live(o, spi_idle_ns(sr, q->key.kind), now)) return;
    bpf_map_delete_elem(&spi_owners, &q->key); /* idle: the SPI may have been reused */
  }
  struct ikelb_spi_owner v = {.backend_id = backend_id, .last_seen_ns = bpf_ktime_get_ns()};
  if (bpf_map_update_elem(&spi_owners, &q->key, &v, BPF_NOEXIST) == 0)
    spi_count(IKELB_EV_SPI_OWNER_LEARNED);
  return;
}

#endif /* IKELB_SPI_H */
