/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one contract between the XDP program (ikelb.bpf.c) and user space (C++). Both include this
 * file; there are no hand-kept copies. Every struct has fixed-width fields and explicit padding,
 * and C++ static_asserts the sizes below (see the end of this file).
 *
 * Byte order: addresses and ports are stored exactly as they appear on the wire (network order).
 * An IPv4 address occupies addr.u32[0]; the other three words are zero. The family byte
 * disambiguates IPv4 from IPv6 addresses that would otherwise look alike.
 */
#ifndef IKELB_ABI_H
#define IKELB_ABI_H

#include <linux/types.h>

/* Capacity limits. Map sizes in the object default to these; the agent may shrink or grow the
 * Maglev table map before load. */
#define IKELB_MAX_VS 64              /* virtual servers */
#define IKELB_MAX_BACKENDS 4096      /* backend ids are global across virtual servers */
#define IKELB_MAX_VIP_KEYS 1024      /* (address, protocol, port) service entries */
#define IKELB_MAX_TABLE_SIZE 1048573 /* largest Maglev table per virtual server (prime) */
/* Default Maglev table map: two halves (active + being written) of 65537 slots for 4 virtual
 * servers. The agent resizes it (bpf_map__set_max_entries) to fit its configuration. */
#define IKELB_DEFAULT_TABLE_SLOTS (2u * 4u * 65537u)
#define IKELB_DEFAULT_AFFINITY_ENTRIES 1048576
#define IKELB_FRAG_ENTRIES 8192
#define IKELB_MAX_LOCAL_ADDRS 256
/* Slots of the outcome and event counter arrays: room for counters added by later versions, so a
 * new program adopting pinned counters from an older one still counts everything. */
#define IKELB_COUNTER_SLOTS 64
/* Token buckets of the IKE_SA_INIT limiter, one per (virtual server, client source). */
#define IKELB_INIT_SOURCE_ENTRIES 65536

#define IKELB_NO_BACKEND 0xFFFFFFFFu

/* When a Maglev slot names a backend that cannot take new clients (its state flipped before the
 * agent rewrote the table), try this many following slots before dropping. This makes a state
 * change effective on the next packet, without waiting for the table rewrite. */
#define IKELB_MAGLEV_PROBES 4

/* An affinity entry's last-seen time is rewritten at most this often, so the hot path of a busy
 * client is a read-only lookup. */
#define IKELB_AFFINITY_REFRESH_NS 1000000000ull

enum ikelb_family {
  IKELB_AF_INET = 4,
  IKELB_AF_INET6 = 6,
};

/* 0 is deliberately not a usable state: a never-written `backends` slot (all zero) takes no
 * traffic even if a stale Maglev slot or affinity entry points at it. */
enum ikelb_backend_state {
  IKELB_BACKEND_UNUSED = 0,   /* id not allocated */
  IKELB_BACKEND_ACTIVE = 1,   /* new and existing clients */
  IKELB_BACKEND_DRAINING = 2, /* existing (pinned) clients only; not in the Maglev table */
  IKELB_BACKEND_DOWN = 3,     /* health probe failed: no traffic, pinned clients fail over */
  IKELB_BACKEND_DISABLED = 4, /* operator: no traffic, pinned clients fail over */
};

enum ikelb_direction {
  IKELB_DIR_TO_BACKEND = 0, /* client -> VIP, destination rewritten to the backend */
  IKELB_DIR_TO_CLIENT = 1,  /* backend -> client, source rewritten to the VIP */
  IKELB_DIR_MAX = 2,
};

/* What happened to a packet: every packet the program sees ends in exactly one outcome, so the
 * sum of the outcome counters is the number of packets seen. X(enum suffix, metric label). */
#define IKELB_OUTCOMES(X)                                                                         \
  X(FWD_REDIRECT, "forward_redirect")  /* rewritten and redirected to another interface */        \
  X(FWD_TX, "forward_tx")              /* rewritten and sent back out of its interface */         \
  X(FWD_KERNEL_NEIGH, "pass_no_neigh") /* rewritten; kernel resolves the next hop */              \
  X(FWD_KERNEL_VLAN, "pass_vlan")      /* rewritten 802.1Q frame; kernel forwards it */           \
  X(FWD_KERNEL_FIB, "pass_fib")        /* rewritten; FIB says frag needed/local/blackhole */      \
  X(FWD_KERNEL_NO_TX_PORT, "pass_no_tx_port") /* rewritten; egress not in tx_ports */             \
  X(PASS_NOT_IP, "pass_not_ip")               /* ARP and other ethertypes */                      \
  X(PASS_NOT_OURS, "pass_not_ours")       /* IP, neither to a VIP service nor from a backend */   \
  X(PASS_TTL_EXPIRED, "pass_ttl_expired") /* TTL/hop limit <= 1: kernel sends time exceeded */    \
  X(PASS_FRAG_UNKNOWN, "pass_reply_fragment_unknown") /* reply fragment, first not seen */        \
  X(DROP_MALFORMED_L2, "drop_malformed_l2")           /* truncated Ethernet or VLAN header */     \
  X(DROP_MALFORMED_IP, "drop_malformed_ip")       /* truncated header, bad ihl/version/length */  \
  X(DROP_MALFORMED_L4, "drop_malformed_l4")       /* VIP traffic: truncated or lying UDP/ESP */   \
  X(DROP_NO_BACKEND, "drop_no_backend")           /* virtual server has no live backend */        \
  X(DROP_INTERNAL, "drop_internal")               /* map inconsistency, should never happen */    \
  X(DROP_REVERSE_PATH, "drop_reply_reverse_path") /* from a backend address, but not arrived */   \
                                                  /* where the route to that backend leaves */    \
  X(DROP_SPOOFED_CLIENT, "drop_client_spoofed")   /* to a VIP from a backend or VIP address */    \
  X(DROP_INIT_LIMIT_SOURCE, "drop_ike_init_limit_source") /* IKE_SA_INIT over per-source rate */  \
  X(DROP_INIT_LIMIT_TOTAL, "drop_ike_init_limit_total")   /* IKE_SA_INIT over the VIP's rate */   \
  X(PASS_ICMP_OTHER, "pass_icmp_other") /* ICMP to a VIP or from a backend, not an error about */ \
                                        /* VIP traffic (echo, quotes of other traffic) */         \
  X(DROP_ICMP_MALFORMED, "drop_icmp_malformed") /* such an ICMP error with a truncated quote */

#define IKELB_X_ENUM(name, label) IKELB_OUT_##name,
enum ikelb_outcome { IKELB_OUTCOMES(IKELB_X_ENUM) IKELB_OUTCOME_MAX };
#undef IKELB_X_ENUM

/* Things that happen on the way, counted independently of the outcome. */
#define IKELB_EVENTS(X)                                                                           \
  X(AFFINITY_HIT, "affinity_hit")         /* pinned client, backend may take it */                \
  X(AFFINITY_MISS, "affinity_miss")       /* no entry: Maglev chose */                            \
  X(AFFINITY_EXPIRED, "affinity_expired") /* entry older than the idle timeout: Maglev */         \
  X(FAILOVER, "failover")                 /* pinned to a down/disabled/removed backend */         \
  X(MAGLEV_PROBED, "maglev_probed")       /* Maglev slot not active, a following slot used */     \
  X(REPLY_FRAGMENT_LEARNED, "reply_fragment_learned") /* first fragment of a reply */             \
  X(ICMP_TO_BACKEND, "icmp_to_backend") /* ICMP error about VIP -> client, sent to the backend */ \
  X(ICMP_TO_CLIENT, "icmp_to_client")   /* backend's ICMP error about a client's packet */        \
  X(SPI_LABEL, "spi_label")             /* routed by the gateway id in the gateway's SPI */       \
  X(SPI_LEARNED, "spi_learned")         /* routed by a learned SPI owner */                       \
  X(SPI_LABEL_DOWN, "spi_label_down")   /* SPI names a gateway that cannot take the client */     \
  X(SPI_UNKNOWN, "spi_unknown")         /* SPI routing on, SPI neither a known id nor learned */  \
  X(SPI_OWNER_LEARNED, "spi_owner_learned") /* a new (SPI, backend) remembered */                 \
  X(SPI_AFFINITY_KEPT, "spi_affinity_kept") /* SPI and source's affinity entry disagree */

#define IKELB_X_ENUM(name, label) IKELB_EV_##name,
enum ikelb_event { IKELB_EVENTS(IKELB_X_ENUM) IKELB_EVENT_MAX };
#undef IKELB_X_ENUM

struct ikelb_addr {
  __u32 u32[4];
};

/* vips: which (address, protocol, port) belong to which virtual server. port is in network
 * order; port 0 is the protocol-wide entry used for ESP (no ports) and for non-first IP fragments
 * (no L4 header), so a virtual server with UDP ports has a (vip, 17, 0) entry too. */
struct ikelb_vip_key {
  struct ikelb_addr addr;
  __u16 port;
  __u8 proto;
  __u8 family;
};

struct ikelb_vip_value {
  __u32 vs_id;
  __u32 pad;
};

/* vs: per virtual server. A hash map on purpose: an update replaces the element atomically, so
 * switching to a freshly written Maglev table half (table_base) is one update that packets see
 * either entirely or not at all. */
struct ikelb_vs {
  struct ikelb_addr vip;
  __u8 family;
  __u8 pad[3];
  __u32 table_base; /* index of this virtual server's first slot in `maglev` */
  __u32 table_size; /* prime; slots table_base .. table_base + table_size - 1 */
  __u32 pad2;
};

/* backends: indexed by backend id. The agent never changes the address behind an id in place
 * (it allocates a new id), so a concurrent reader can only ever see a state change. */
struct ikelb_backend {
  struct ikelb_addr addr;
  __u32 vs_id;
  __u8 family;
  __u8 state; /* enum ikelb_backend_state */
  __u16 pad;
};

/* reverse: backend address -> the VIP its replies must appear to come from. Stateless, so any
 * ikelb node can translate any reply; hence one virtual server per backend address and family. */
struct ikelb_reverse_key {
  struct ikelb_addr addr;
  __u8 family;
  __u8 pad[3];
};

/* local_addrs: the ikelb host's own addresses (same key layout as reverse). A backend's packet
 * to one of them is the answer to a health probe, not a reply to a client: never translated. */
struct ikelb_local_key {
  struct ikelb_addr addr;
  __u8 family;
  __u8 pad[3];
};

struct ikelb_reverse_value {
  struct ikelb_addr vip;
  __u32 vs_id;
  __u32 backend_id;
};

/* replies: what the program reads for a backend's packet, so that a reply needs one lookup to
 * know both its VIP and whether its source port is a service of that VIP (any virtual server on
 * it). Keyed like reverse, one entry per reverse entry: that entry's value and the VIP's services
 * from vips. A VIP with more UDP ports than fit sets `more`, and the program asks vips for a port
 * not listed. Derived state: built from reverse and vips whenever ikelbd starts, never pinned. */
#define IKELB_REPLY_PORTS 6
struct ikelb_reply {
  struct ikelb_reverse_value rev;
  __u16 udp_ports[IKELB_REPLY_PORTS]; /* network order; 0 = unused */
  __u8 esp;                           /* the VIP has an ESP service */
  __u8 more;                          /* UDP ports beyond udp_ports: look them up in vips */
  __u8 pad[2];
};

/* addr_filter: a summary of the addresses in vips, reverse and local_addrs, so that most packets
 * skip the hash lookups that would find nothing. Each address sets its kind's bit in the slot
 * its hash picks (ikelb_addr_slot); a clear bit proves the address is not of that kind, a set bit
 * only that it may be (another address can share the slot). The agent counts the entries behind
 * each slot and kind: it sets a bit before it writes the first entry and clears it after it
 * deleted the last, so the filter never hides an entry. Derived state: counted from the maps
 * whenever ikelbd starts, never pinned. */
#define IKELB_ADDR_FILTER_SLOTS 4096 /* a power of two */
enum ikelb_addr_kind {
  IKELB_ADDR_VIP = 1,     /* a VIP (an address in vips) */
  IKELB_ADDR_BACKEND = 2, /* a backend (an address in reverse and replies) */
  IKELB_ADDR_LOCAL = 4,   /* one of the host's own (an address in local_addrs) */
  IKELB_ADDR_RECORD = 8,  /* the slot's vip_records entry is published (struct ikelb_vip_record) */
  IKELB_ADDR_REPLY_RECORD = 16, /* the slot's reply_records entry is published */
};

struct ikelb_addr_filter {
  __u8 kinds[IKELB_ADDR_FILTER_SLOTS]; /* enum ikelb_addr_kind bits */
};

/* vip_records, one per addr_filter slot: every service of the one VIP whose address is in the
 * slot, so that a client's packet finds its virtual server in an array instead of a vips lookup.
 * The program reads a slot's record only while the slot has IKELB_ADDR_RECORD, and then answers
 * for the record's address from the record alone; any other address, or a slot without the bit,
 * is looked up in vips. The agent clears the bit before it changes the slot's services in vips and
 * publishes records in batches: a grace period (no program still reads a record whose bit it
 * cleared), the records, another grace period (every CPU sees them), then the bits. So a record is
 * never written while a program reads it, and a slot whose services changed is answered by vips
 * until the next batch. Only a slot with exactly one VIP with at most IKELB_VIP_RECORD_SERVICES
 * services gets a record. Derived state, rebuilt from vips whenever ikelbd starts, never pinned. */
#define IKELB_VIP_RECORD_SERVICES 5
struct ikelb_vip_service {
  __u16 port; /* network order; 0 = protocol-wide, as in vips */
  __u8 proto;
  __u8 pad;
  __u32 vs_id;
};

struct ikelb_vip_record {
  struct ikelb_addr addr;
  __u8 family;
  __u8 count; /* services used */
  __u8 pad[2];
  struct ikelb_vip_service services[IKELB_VIP_RECORD_SERVICES];
};

/* reply_records, one per addr_filter slot: the replies entry of the one backend whose address is
 * in the slot, read by a backend's packet instead of replies while the slot has
 * IKELB_ADDR_REPLY_RECORD. Published exactly like vip_records (the bit is cleared before the
 * backend's replies entry changes; records and bits follow in the next batch). */
struct ikelb_reply_record {
  struct ikelb_addr addr;
  __u8 family;
  __u8 pad[3];
  struct ikelb_reply reply;
};

/* affinity (LRU): (virtual server, client address) -> backend. Never the port: a client's UDP
 * 500, UDP 4500, ESP and fragments all share one entry. */
struct ikelb_affinity_key {
  __u32 vs_id;
  __u8 family;
  __u8 pad[3];
  struct ikelb_addr client;
};

struct ikelb_affinity_value {
  __u32 backend_id;
  __u32 flags;        /* IKELB_AFFINITY_* */
  __u64 last_seen_ns; /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
};

/* The entry was created by an IKE_SA_INIT request of a virtual server with an IKE_SA_INIT limit,
 * and its backend has not yet sent that client an IKE message of a later exchange. Until then the
 * client's IKE_SA_INIT requests stay subject to the limit: otherwise one admitted request would
 * exempt its source for good. */
#define IKELB_AFFINITY_PROVISIONAL 1u

/* reply_frags (LRU): the first fragment of a reply seen from a backend, so its non-first
 * fragments (no ports) are translated the same way. id is the IPv4 id (network order, in the
 * low 16 bits) or the IPv6 fragment identification. */
struct ikelb_frag_key {
  struct ikelb_addr src;
  struct ikelb_addr dst;
  __u32 id;
  __u8 family;
  __u8 proto;
  __u16 pad;
};

struct ikelb_frag_value {
  struct ikelb_addr vip;
  __u32 vs_id;
  __u32 backend_id;
};

/* edge (one-element array, rewritten on reload): how replies are checked. All-zero (never
 * written) is the safe default. */
enum ikelb_reverse_path_mode {
  IKELB_RP_STRICT = 0,     /* the route to the backend must leave through the ingress port */
  IKELB_RP_STRICT_MAC = 1, /* and the frame must come from that route's next-hop MAC */
  IKELB_RP_OFF = 2,        /* no check (asymmetric routing towards the backends) */
};
struct ikelb_edge_settings {
  __u32 reverse_path; /* enum ikelb_reverse_path_mode */
  __u32 pad;
};

/* init_limits, index vs_id (rewritten on reload): generic cell rate algorithm (GCRA) limits of
 * IKE_SA_INIT requests. A request is admitted when its bucket's theoretical arrival time is no
 * more than tolerance ahead of now, and then moves it interval ahead: `rate` per second with
 * bursts of `burst` is interval = 1e9 / rate, tolerance = (burst - 1) * interval. An interval of
 * 0 means no limit of that kind. */
struct ikelb_init_limit {
  __u64 source_interval_ns;
  __u64 source_tolerance_ns;
  __u64 total_interval_ns;
  __u64 total_tolerance_ns;
  __u8 ipv6_prefix_len; /* IPv6 sources share a bucket per prefix of this length (1..128) */
  __u8 pad[7];
};

/* init_sources (LRU; key: struct ikelb_affinity_key with the address masked to the source
 * prefix) and init_totals (index vs_id): each bucket's theoretical arrival time, in
 * bpf_ktime_get_ns() time. The agent never writes them, so a reload keeps every bucket. */

/* vs_edge_stats (per CPU, index vs_id): what the IKE_SA_INIT limiter did. */
struct ikelb_vs_edge_stats {
  __u64 init_admitted;
  __u64 init_limited_source;
  __u64 init_limited_total;
  __u64 pad;
};

/* SPI routing (clients that move: MOBIKE, NAT rebinding). A client's IKE and ESP packets carry
 * SPIs its gateway chose; routing on them keeps a client that changed address on its gateway.
 *
 * spi_routing, index vs_id (rewritten on reload; all-zero: off). Labels: strongSwan gateways put
 * their id into the SPIs they allocate (charon.spi_mask/spi_label, spi_min/spi_max): the id is
 * (SPI & mask) >> shift, with the IKE SPI read as a big-endian 64-bit number and the ESP SPI as
 * a big-endian 32-bit number (as on the wire). spi_labels maps (vs_id, id) to a backend id.
 * Learning: gateways that cannot label; the program remembers which backend owns each gateway
 * SPI it sees routed by affinity or Maglev (spi_owners), entries idle longer than the idle
 * time are ignored and may be replaced. */
#define IKELB_SPI_LABELS 1u /* spi_labels holds this virtual server's gateway ids */
#define IKELB_SPI_LEARN 2u  /* learn and use spi_owners */
struct ikelb_spi_routing {
  __u64 ike_mask;
  __u32 esp_mask;
  __u8 ike_shift;
  __u8 esp_shift;
  __u8 flags; /* IKELB_SPI_* */
  __u8 pad;
  __u64 ike_idle_ns; /* learned IKE SPI owners (longer than the IKE SA rekey interval) */
  __u64 esp_idle_ns; /* learned ESP SPI owners (longer than the CHILD SA rekey interval) */
};

struct ikelb_spi_label_key {
  __u32 vs_id;
  __u32 id;
};

/* spi_owners (LRU, written by the program only, except by the peer sync): the gateway-side SPI
 * -> its backend. Never overwritten by traffic while live. */
enum ikelb_spi_kind {
  IKELB_SPI_IKE = 1, /* the gateway's IKE SPI, as the 8 wire bytes */
  IKELB_SPI_ESP = 2, /* an inbound (client -> gateway) ESP SPI, wire bytes in the low 4 */
};
struct ikelb_spi_owner_key {
  __u64 spi;
  __u32 vs_id;
  __u8 kind; /* enum ikelb_spi_kind */
  __u8 pad[3];
};
struct ikelb_spi_owner {
  __u32 backend_id;
  __u32 pad;
  __u64 last_seen_ns;
};
#define IKELB_SPI_OWNER_ENTRIES 262144

/* settings: a one-element array the agent rewrites on reload. */
struct ikelb_settings {
  __u64 affinity_idle_ns; /* 0: entries never expire by age (the LRU still evicts) */
};

/* vs_stats (per CPU, index vs_id) and backend_stats (per CPU, index backend id). bytes are
 * Ethernet frame bytes as received. */
struct ikelb_traffic {
  __u64 packets[IKELB_DIR_MAX];
  __u64 bytes[IKELB_DIR_MAX];
};

struct ikelb_backend_stats {
  struct ikelb_traffic traffic;
  __u64 failovers_from; /* pinned clients moved off this backend */
  __u64 new_clients;    /* affinity entries created towards this backend */
};

/* Caches of bpf_fib_lookup() (the lookup is close to half of a forwarded packet's cost), per CPU:
 * nexthops, index backend id, for packets to a backend; client_nexthops, LRU by client address,
 * for replies. An entry serves packets that arrive on the interface it was looked up for and are
 * no longer than the longest packet the lookup allowed (MTU), until expires_ns; then the FIB is
 * asked again. A route or neighbour change reaches the traffic within IKELB_NEXTHOP_TTL_NS and
 * one tick (expiry is judged on the coarse clock). Written by the program only. */
#define IKELB_NEXTHOP_TTL_NS 100000000ull
#define IKELB_CLIENT_NEXTHOP_ENTRIES 65536
struct ikelb_nexthop_key {
  struct ikelb_addr addr;
  __u8 family;
  __u8 pad[3];
};
struct ikelb_nexthop {
  __u64 expires_ns; /* bpf_ktime_get_coarse_ns() clock; 0: empty */
  __u32 ingress_ifindex;
  __u32 egress_ifindex;
  __u32 ok_len; /* IP packets up to this length passed the lookup's MTU check */
  __u8 dmac[6];
  __u8 smac[6];
};

/* Agent bookkeeping, never read by the program: kept in pinned maps so that it lives and dies
 * with the forwarding state it describes (a restarted agent adopts both, teardown removes both).
 * Names are NUL-padded; an all-zero entry is a free slot. */
#define IKELB_NAME_LEN 64

/* vs_meta, index vs_id: which virtual server owns the id, and its region of `maglev`
 * (2 * table_size slots from region_base; the active half is ikelb_vs.table_base). */
struct ikelb_vs_meta {
  char name[IKELB_NAME_LEN];
  __u32 region_base;
  __u32 table_size;
};

/* Operator overrides of a backend's state (ikelbctl drain/disable). */
enum ikelb_operator_state {
  IKELB_OPERATOR_NONE = 0,
  IKELB_OPERATOR_DRAIN = 1,
  IKELB_OPERATOR_DISABLE = 2,
  IKELB_OPERATOR_ENABLE = 3, /* active although the config says draining or disabled */
};

/* Administrative state a config file gave explicitly (0: the config said nothing). */
enum ikelb_config_state {
  IKELB_CONFIG_UNSET = 0,
  IKELB_CONFIG_ACTIVE = 1,
  IKELB_CONFIG_DRAINING = 2,
  IKELB_CONFIG_DISABLED = 3,
};

/* backend_meta, index backend id. config_state is the one the operator state was set against:
 * when a later config gives a different one, the config wins and the override is dropped. */
struct ikelb_backend_meta {
  char vs[IKELB_NAME_LEN];
  char name[IKELB_NAME_LEN];
  __u8 operator_state; /* enum ikelb_operator_state */
  __u8 config_state;   /* enum ikelb_config_state */
  __u8 healthy;        /* last probe verdict: 1 up, 0 down */
  __u8 pad[5];
};

/* Map names as user space finds (and pins) them in the object. */
#define IKELB_MAP_VIPS "vips"
#define IKELB_MAP_VS "vs"
#define IKELB_MAP_MAGLEV "maglev"
#define IKELB_MAP_BACKENDS "backends"
#define IKELB_MAP_REVERSE "reverse"
#define IKELB_MAP_AFFINITY "affinity"
#define IKELB_MAP_REPLY_FRAGS "reply_frags"
#define IKELB_MAP_TX_PORTS "tx_ports"
#define IKELB_MAP_SETTINGS "settings"
#define IKELB_MAP_VS_STATS "vs_stats"
#define IKELB_MAP_BACKEND_STATS "backend_stats"
#define IKELB_MAP_OUTCOMES "outcomes"
#define IKELB_MAP_EVENTS "events"
#define IKELB_MAP_LOCAL_ADDRS "local_addrs"
#define IKELB_MAP_VS_META "vs_meta"
#define IKELB_MAP_BACKEND_META "backend_meta"
#define IKELB_MAP_NEXTHOPS "nexthops"
#define IKELB_MAP_CLIENT_NEXTHOPS "client_nexthops"
#define IKELB_MAP_GATEWAY_ROUTES "gateway_routes"
#define IKELB_MAP_EDGE "edge"
#define IKELB_MAP_INIT_LIMITS "init_limits"
#define IKELB_MAP_INIT_SOURCES "init_sources"
#define IKELB_MAP_INIT_TOTALS "init_totals"
#define IKELB_MAP_VS_EDGE_STATS "vs_edge_stats"
#define IKELB_MAP_SPI_ROUTING "spi_routing"
#define IKELB_MAP_SPI_LABELS "spi_labels"
#define IKELB_MAP_SPI_OWNERS "spi_owners"
#define IKELB_MAP_ADDR_FILTER "addr_filter"
#define IKELB_MAP_REPLIES "replies"
#define IKELB_MAP_VIP_RECORDS "vip_records"
#define IKELB_MAP_REPLY_RECORDS "reply_records"

/* The Maglev index of a client: a hash of its address only (never the port), so every packet of
 * a client, fragments included, maps to one slot. Shared with C++ so tests and tools can predict
 * the backend a client lands on. Words are read as raw network-order bytes on a little-endian
 * host (x86_64, arm64). */
#define IKELB_HASH_SEED 0x1ce1b00du

static inline __attribute__((always_inline)) __u32 ikelb_mix32(__u32 h) {
  /* murmur3 finaliser: full avalanche, cheap on BPF (no loops, no tables). */
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

/* The addr_filter slot of an address: a multiplicative hash of its words' XOR (IPv4 uses the
 * first word only, the others are 0). Not secret: an attacker who picks colliding addresses only
 * gets the lookups every packet made before the filter existed. */
static inline __attribute__((always_inline)) __u32 ikelb_addr_slot(const struct ikelb_addr* a,
                                                                   __u8 family) {
  __u32 h = (a->u32[0] ^ a->u32[1] ^ a->u32[2] ^ a->u32[3] ^ family) * 0x9e3779b1u;
  return h >> 20; /* the top 12 bits: IKELB_ADDR_FILTER_SLOTS */
}

static inline __attribute__((always_inline)) __u32 ikelb_client_hash(const struct ikelb_addr* a,
                                                                     __u8 family) {
  __u32 h = IKELB_HASH_SEED ^ family;
  h = ikelb_mix32(h ^ a->u32[0]);
  h = ikelb_mix32(h ^ a->u32[1]);
  h = ikelb_mix32(h ^ a->u32[2]);
  h = ikelb_mix32(h ^ a->u32[3]);
  return h;
}

#ifdef __cplusplus
static_assert(IKELB_OUTCOME_MAX <= IKELB_COUNTER_SLOTS);
static_assert(IKELB_EVENT_MAX <= IKELB_COUNTER_SLOTS);
static_assert(sizeof(struct ikelb_addr) == 16);
static_assert(sizeof(struct ikelb_vip_key) == 20);
static_assert(sizeof(struct ikelb_vip_value) == 8);
static_assert(sizeof(struct ikelb_vs) == 32);
static_assert(sizeof(struct ikelb_backend) == 24);
static_assert(sizeof(struct ikelb_reverse_key) == 20);
static_assert(sizeof(struct ikelb_reverse_value) == 24);
static_assert(sizeof(struct ikelb_reply) == 40);
static_assert(sizeof(struct ikelb_vip_record) == 60);
static_assert(sizeof(struct ikelb_reply_record) == 60);
static_assert(sizeof(struct ikelb_local_key) == 20);
static_assert(sizeof(struct ikelb_affinity_key) == 24);
static_assert(sizeof(struct ikelb_affinity_value) == 16);
static_assert(sizeof(struct ikelb_frag_key) == 40);
static_assert(sizeof(struct ikelb_frag_value) == 24);
static_assert(sizeof(struct ikelb_settings) == 8);
static_assert(sizeof(struct ikelb_edge_settings) == 8);
static_assert(sizeof(struct ikelb_init_limit) == 40);
static_assert(sizeof(struct ikelb_vs_edge_stats) == 32);
static_assert(sizeof(struct ikelb_nexthop) == 32);
static_assert(sizeof(struct ikelb_nexthop_key) == 20);
static_assert(sizeof(struct ikelb_traffic) == 32);
static_assert(sizeof(struct ikelb_backend_stats) == 48);
static_assert(sizeof(struct ikelb_vs_meta) == 72);
static_assert(sizeof(struct ikelb_backend_meta) == 136);
static_assert(sizeof(struct ikelb_spi_routing) == 32);
static_assert(sizeof(struct ikelb_spi_label_key) == 8);
static_assert(sizeof(struct ikelb_spi_owner_key) == 16);
static_assert(sizeof(struct ikelb_spi_owner) == 16);
static_assert(sizeof(struct ikelb_addr_filter) == IKELB_ADDR_FILTER_SLOTS);
static_assert(IKELB_ADDR_FILTER_SLOTS == 1u << 12);
#endif

#endif /* IKELB_ABI_H */
