/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ikelb XDP data path. Client -> VIP packets (UDP service ports, ESP, and their fragments) get
 * their destination rewritten to a backend chosen by affinity or Maglev on the client's source
 * address; backend -> client replies get their source rewritten to the VIP, once the reverse-path
 * check says they came from the backend's side. ICMP errors about that traffic are translated
 * the same way (icmp.h). Nothing else is touched. See DESIGN.md "Packet walk".
 *
 * select.h: affinity, Maglev and the checks in front of a new client (spoofed sources, the
 * IKE_SA_INIT limiter); forward.h: rewrite, TTL, next hop, reverse-path check; icmp.h: ICMP.
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
#include "forward.h"
#include "icmp.h"
#include "ikelb_abi.h"
#include "maps.h"
#include "parse.h"
#include "select.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

_Static_assert(IKELB_OUTCOME_MAX <= IKELB_COUNTER_SLOTS, "outcome counter slots");
_Static_assert(IKELB_EVENT_MAX <= IKELB_COUNTER_SLOTS, "event counter slots");

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
  if (!vip_service(p, port, &vs_id)) return -1;
  if (!l4_sane(p, data_end) || (p->proto == IPPROTO_UDP && p->frag != FRAG_LATER && port == 0))
    return IKELB_OUT_DROP_MALFORMED_L4;
  if (ttl_of(p, data_end) <= 1) return IKELB_OUT_PASS_TTL_EXPIRED;

  struct ikelb_backend* be = 0;
  __u32 backend_id = IKELB_NO_BACKEND;
  __u64 now = bpf_ktime_get_coarse_ns(); /* for decisions only: see select.h, "Two clocks" */
  int drop = select_backend(p, data_end, vs_id, port, now, &backend_id, &be);
  if (drop >= 0) return drop;
  if (!be) return IKELB_OUT_DROP_NO_BACKEND;
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
  struct ikelb_reply* r = backend_reply(p);
  if (!r) return -1;

  struct ikelb_frag_value fv = {.vs_id = r->rev.vs_id, .backend_id = r->rev.backend_id};
  __builtin_memcpy(&fv.vip, &r->rev.vip, sizeof(fv.vip));
  struct ikelb_frag_key fkey = {.family = p->family, .proto = p->proto, .id = p->frag_id};
  __builtin_memcpy(&fkey.src, &p->src, sizeof(fkey.src));
  __builtin_memcpy(&fkey.dst, &p->dst, sizeof(fkey.dst));
  __u16 port = 0;
  __u64 now = bpf_ktime_get_coarse_ns();

  if (p->proto == IPPROTO_UDP && p->frag == FRAG_LATER) {
    /* No ports here: only the first fragment tells whether this datagram is IKE. */
    struct ikelb_frag_value* known = bpf_map_lookup_elem(&reply_frags, &fkey);
    if (!known) return IKELB_OUT_PASS_FRAG_UNKNOWN;
    __builtin_memcpy(&fv, known, sizeof(fv));
    if (!from_gateway_side(ctx, p, fv.backend_id, now)) return IKELB_OUT_DROP_REVERSE_PATH;
  } else {
    port = udp_port(p, data_end, 1);
    if (p->proto == IPPROTO_UDP && port == 0) return -1;
    if (!reply_service(r, p->family, p->proto, port)) return -1;
    if (!from_gateway_side(ctx, p, fv.backend_id, now)) return IKELB_OUT_DROP_REVERSE_PATH;
    if (!l4_sane(p, data_end)) return IKELB_OUT_DROP_MALFORMED_L4;
    if (p->proto == IPPROTO_UDP && p->frag == FRAG_FIRST) {
      bpf_map_update_elem(&reply_frags, &fkey, &fv, BPF_ANY);
      count_event(IKELB_EV_REPLY_FRAGMENT_LEARNED);
    }
    confirm_client(p, data_end, fv.vs_id, port);
  }
  if (ttl_of(p, data_end) <= 1) return IKELB_OUT_PASS_TTL_EXPIRED;

  rewrite_addr(p, data_end, &fv.vip, 1);
  count_traffic(fv.vs_id, fv.backend_id, IKELB_DIR_TO_CLIENT, p->frame_len);
  struct ikelb_nexthop_key nkey = {.family = p->family};
  __builtin_memcpy(&nkey.addr, &p->dst, sizeof(nkey.addr));
  return forward(ctx, p, bpf_map_lookup_elem(&client_nexthops, &nkey), &nkey, now, action);
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
    case IKELB_OUT_DROP_REVERSE_PATH:
    case IKELB_OUT_DROP_SPOOFED_CLIENT:
    case IKELB_OUT_DROP_INIT_LIMIT_SOURCE:
    case IKELB_OUT_DROP_INIT_LIMIT_TOTAL:
    case IKELB_OUT_DROP_ICMP_MALFORMED:
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
      p.dst_slot = filter_slot(&p.dst, p.family);
      p.dst_kinds = slot_kinds(p.dst_slot);
      if (is_icmp(&p)) {
        outcome = handle_icmp_to_vip(ctx, &p, &action);
        if (outcome < 0) outcome = handle_icmp_from_backend(ctx, &p, &action);
      } else {
        outcome = handle_to_vip(ctx, &p, &action);
        if (outcome < 0) outcome = handle_from_backend(ctx, &p, &action);
      }
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
