/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Packet parsing: Ethernet, up to two VLAN tags, IPv4 (options, fragments), IPv6 (extension
 * headers, fragment header), and the first bytes of UDP or ESP. Every read is bounds-checked
 * against data_end right before it. Only structure is checked here; whether a packet is ours and
 * whether its L4 header is sane for us is decided by the caller. */
#ifndef IKELB_PARSE_H
#define IKELB_PARSE_H

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include "ikelb_abi.h"

#ifndef IPPROTO_FRAGMENT
#define IPPROTO_FRAGMENT 44
#endif
#define IKELB_IPPROTO_HOPOPTS 0
#define IKELB_IPPROTO_ROUTING 43
#define IKELB_IPPROTO_DSTOPTS 60
#define IKELB_IPV6_MAX_EXT 4 /* extension headers walked before giving up (pass) */
#define IKELB_ETH_P_8021AD 0x88A8
/* IKE and ESP on the wire (IKE_NOTES.md). */
#define IKELB_IPPROTO_ESP 50
#define IKELB_IKE_PORT 500
#define IKELB_NATT_PORT 4500
#define IKELB_IKE_HEADER_LEN 28
#define IKELB_IKE_SA_INIT 34

enum frag_kind {
  FRAG_NONE = 0,
  FRAG_FIRST = 1, /* offset 0, more fragments: carries the L4 header */
  FRAG_LATER = 2, /* offset > 0: no L4 header */
};

enum parse_result {
  PARSE_OK = 0,
  PARSE_NOT_IP,
  PARSE_NOT_OURS, /* IP, but an extension header chain we do not walk */
  PARSE_MALFORMED_L2,
  PARSE_MALFORMED_IP,
};

struct vlan_hdr {
  __be16 tci;
  __be16 encap_proto;
};

struct frag6_hdr {
  __u8 nexthdr;
  __u8 reserved;
  __be16 frag_off; /* offset in 8-byte units << 3 | M flag */
  __be32 identification;
};

struct ip6_ext_hdr {
  __u8 nexthdr;
  __u8 hdrlen; /* in 8-byte units, not counting the first 8 bytes */
};

struct pkt {
  void* l3;        /* struct iphdr or struct ipv6hdr */
  void* l4;        /* first byte after IP (and extension) headers */
  __u32 l4_len;    /* IP payload bytes from l4 on, per the IP length fields */
  __u32 ip_len;    /* IPv4 total length or IPv6 40 + payload length */
  __u32 frame_len; /* Ethernet frame bytes */
  __u32 frag_id;   /* IPv4 id (network order) or IPv6 identification */
  struct ikelb_addr src;
  struct ikelb_addr dst;
  __u8 family;
  __u8 proto;
  __u8 frag; /* enum frag_kind */
  __u8 vlan_tags;
  __u8 tos;        /* IPv4 TOS, for the FIB lookup */
  __u8 dst_kinds;  /* what dst may be (enum ikelb_addr_kind), read once from the address filter */
  __u16 dst_slot;  /* dst's address filter slot */
  __be32 flowinfo; /* IPv6 traffic class + flow label, for the FIB lookup */
};

static __always_inline int parse_ipv4(struct pkt* p, void* data_end) {
  struct iphdr* ip = p->l3;
  if ((void*)(ip + 1) > data_end) return PARSE_MALFORMED_IP;
  if (ip->version != 4 || ip->ihl < 5) return PARSE_MALFORMED_IP;
  __u32 hlen = ip->ihl * 4;
  __u32 tot = bpf_ntohs(ip->tot_len);
  /* Frames may carry Ethernet padding beyond tot_len, never fewer bytes than it. */
  if (tot < hlen || (void*)p->l3 + tot > data_end) return PARSE_MALFORMED_IP;
  __u16 frag_off = bpf_ntohs(ip->frag_off);
  if (frag_off & 0x1fff)
    p->frag = FRAG_LATER;
  else if (frag_off & 0x2000)
    p->frag = FRAG_FIRST;
  p->family = IKELB_AF_INET;
  p->proto = ip->protocol;
  p->tos = ip->tos;
  p->ip_len = tot;
  p->frag_id = ip->id;
  p->src.u32[0] = ip->saddr;
  p->dst.u32[0] = ip->daddr;
  p->l4 = (void*)ip + hlen;
  p->l4_len = tot - hlen;
  return PARSE_OK;
}

static __always_inline int parse_ipv6(struct pkt* p, void* data_end) {
  struct ipv6hdr* ip6 = p->l3;
  if ((void*)(ip6 + 1) > data_end) return PARSE_MALFORMED_IP;
  if (ip6->version != 6) return PARSE_MALFORMED_IP;
  __u32 plen = bpf_ntohs(ip6->payload_len);
  /* payload_len 0 would be a jumbogram (RFC 2675): not an IKE packet, refuse it. */
  if (plen == 0 || (void*)(ip6 + 1) + plen > data_end) return PARSE_MALFORMED_IP;
  p->family = IKELB_AF_INET6;
  p->ip_len = sizeof(*ip6) + plen;
  p->flowinfo = *(__be32*)ip6 & bpf_htonl(0x0fffffff);
  __builtin_memcpy(&p->src, &ip6->saddr, 16);
  __builtin_memcpy(&p->dst, &ip6->daddr, 16);

  void* cur = ip6 + 1;
  __u8 next = ip6->nexthdr;
#pragma unroll
  for (int i = 0; i < IKELB_IPV6_MAX_EXT; i++) {
    if (next == IPPROTO_FRAGMENT) {
      struct frag6_hdr* fh = cur;
      if ((void*)(fh + 1) > data_end) return PARSE_MALFORMED_IP;
      __u16 off = bpf_ntohs(fh->frag_off);
      if (off & 0xfff8)
        p->frag = FRAG_LATER;
      else if (off & 1)
        p->frag = FRAG_FIRST;
      p->frag_id = fh->identification;
      next = fh->nexthdr;
      cur = fh + 1;
      if (p->frag == FRAG_LATER) break;
    } else if (next == IKELB_IPPROTO_HOPOPTS || next == IKELB_IPPROTO_ROUTING ||
               next == IKELB_IPPROTO_DSTOPTS) {
      struct ip6_ext_hdr* eh = cur;
      if ((void*)(eh + 1) > data_end) return PARSE_MALFORMED_IP;
      cur += (eh->hdrlen + 1) * 8;
      next = eh->nexthdr;
    } else {
      break;
    }
  }
  if (next == IPPROTO_FRAGMENT || next == IKELB_IPPROTO_HOPOPTS || next == IKELB_IPPROTO_ROUTING ||
      next == IKELB_IPPROTO_DSTOPTS) {
    if (p->frag != FRAG_LATER) return PARSE_NOT_OURS; /* chain longer than we walk */
  }
  __u32 ext = cur - (void*)(ip6 + 1);
  if (ext > plen) return PARSE_MALFORMED_IP;
  p->proto = next;
  p->l4 = cur;
  p->l4_len = plen - ext;
  return PARSE_OK;
}

static __always_inline int parse_packet(struct xdp_md* ctx, struct pkt* p) {
  void* data = (void*)(long)ctx->data;
  void* data_end = (void*)(long)ctx->data_end;
  struct ethhdr* eth = data;
  p->frame_len = data_end - data;
  if ((void*)(eth + 1) > data_end) return PARSE_MALFORMED_L2;
  __be16 proto = eth->h_proto;
  void* cur = eth + 1;
#pragma unroll
  for (int i = 0; i < 2; i++) {
    if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(IKELB_ETH_P_8021AD)) break;
    struct vlan_hdr* vh = cur;
    if ((void*)(vh + 1) > data_end) return PARSE_MALFORMED_L2;
    proto = vh->encap_proto;
    cur = vh + 1;
    p->vlan_tags++;
  }
  p->l3 = cur;
  if (proto == bpf_htons(ETH_P_IP)) return parse_ipv4(p, data_end);
  if (proto == bpf_htons(ETH_P_IPV6)) return parse_ipv6(p, data_end);
  return PARSE_NOT_IP;
}

#endif /* IKELB_PARSE_H */
