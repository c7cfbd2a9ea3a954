/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Incremental Internet checksum updates (RFC 1624). The tests verify the results with an
 * independent full recomputation. All values are raw network-order words: one's complement sums
 * do not care about byte order as long as every operand is read the same way. */
#ifndef IKELB_CSUM_H
#define IKELB_CSUM_H

#include <bpf/bpf_helpers.h>
#include <linux/types.h>

static __always_inline __u16 csum_fold64(__u64 sum) {
  sum = (sum & 0xffffffff) + (sum >> 32);
  sum = (sum & 0xffffffff) + (sum >> 32);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (__u16)sum;
}

/* HC' = ~(~HC + ~m + m') over `words` 32-bit words replaced from `from` to `to`. */
static __always_inline __u16 csum_replace(__u16 check, const __u32* from, const __u32* to,
                                          int words) {
  __u64 sum = (__u16)~check;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    if (i < words) {
      sum += (__u32)~from[i];
      sum += to[i];
    }
  }
  return (__u16)~csum_fold64(sum);
}

/* UDP: a transmitted checksum of 0 means "none" (IPv4), so it stays 0, and a computed 0 is sent
 * as 0xffff (RFC 768). */
static __always_inline void udp_csum_replace(__u16* check, const __u32* from, const __u32* to,
                                             int words) {
  if (*check == 0) return;
  __u16 c = csum_replace(*check, from, to, words);
  *check = c ? c : 0xffff;
}

#endif /* IKELB_CSUM_H */
