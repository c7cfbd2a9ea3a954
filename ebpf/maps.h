/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The program's maps; their key and value types live in ikelb_abi.h. */
#ifndef IKELB_MAPS_H
#define IKELB_MAPS_H

#include <bpf/bpf_helpers.h>
#include <linux/bpf.h>
#include "ikelb_abi.h"

/* Service entries: (VIP, protocol, port) -> virtual server. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, IKELB_MAX_VIP_KEYS);
  __type(key, struct ikelb_vip_key);
  __type(value, struct ikelb_vip_value);
} vips SEC(".maps");

/* Virtual servers by id; a hash so that one update switches a Maglev table atomically. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, IKELB_MAX_VS);
  __type(key, __u32);
  __type(value, struct ikelb_vs);
} vs SEC(".maps");

/* All Maglev tables, back to back; each virtual server names its current slice. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, IKELB_DEFAULT_TABLE_SLOTS);
  __type(key, __u32);
  __type(value, __u32);
} maglev SEC(".maps");

/* Backends by id. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, IKELB_MAX_BACKENDS);
  __type(key, __u32);
  __type(value, struct ikelb_backend);
} backends SEC(".maps");

/* Backend address -> VIP, for replies. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, IKELB_MAX_BACKENDS);
  __type(key, struct ikelb_reverse_key);
  __type(value, struct ikelb_reverse_value);
} reverse SEC(".maps");

/* What a backend's packet needs (ikelb_abi.h, struct ikelb_reply), derived from reverse and vips.
 * The program reads this, never reverse. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, IKELB_MAX_BACKENDS);
  __type(key, struct ikelb_reverse_key);
  __type(value, struct ikelb_reply);
} replies SEC(".maps");

/* (virtual server, client address) -> backend. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, IKELB_DEFAULT_AFFINITY_ENTRIES);
  __type(key, struct ikelb_affinity_key);
  __type(value, struct ikelb_affinity_value);
} affinity SEC(".maps");

/* First fragments of replies, to translate the rest of the datagram. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, IKELB_FRAG_ENTRIES);
  __type(key, struct ikelb_frag_key);
  __type(value, struct ikelb_frag_value);
} reply_frags SEC(".maps");

/* Which addresses may be in vips, reverse or local_addrs (ikelb_abi.h, struct ikelb_addr_filter):
 * lets most packets skip lookups that would fail. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct ikelb_addr_filter);
} addr_filter SEC(".maps");

/* The services of the VIP in each addr_filter slot (ikelb_abi.h, struct ikelb_vip_record). */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, IKELB_ADDR_FILTER_SLOTS);
  __type(key, __u32);
  __type(value, struct ikelb_vip_record);
} vip_records SEC(".maps");

/* The replies entry of the backend in each addr_filter slot (ikelb_abi.h, struct
 * ikelb_reply_record). */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, IKELB_ADDR_FILTER_SLOTS);
  __type(key, __u32);
  __type(value, struct ikelb_reply_record);
} reply_records SEC(".maps");

/* The host's own addresses: replies from backends to them are probe answers. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, IKELB_MAX_LOCAL_ADDRS);
  __type(key, struct ikelb_local_key);
  __type(value, __u32);
} local_addrs SEC(".maps");

/* Cached next hops of the forward path (ikelb_abi.h, struct ikelb_nexthop). */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, IKELB_MAX_BACKENDS);
  __type(key, __u32);
  __type(value, struct ikelb_nexthop);
} nexthops SEC(".maps");

/* Cached next hops of replies, by client (ikelb_abi.h, struct ikelb_nexthop). */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
  __uint(max_entries, IKELB_CLIENT_NEXTHOP_ENTRIES);
  __type(key, struct ikelb_nexthop_key);
  __type(value, struct ikelb_nexthop);
} client_nexthops SEC(".maps");

/* Interfaces the program may redirect to (key and value: ifindex). */
struct {
  __uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
  __uint(max_entries, 64);
  __type(key, __u32);
  __type(value, __u32);
} tx_ports SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct ikelb_settings);
} settings SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, IKELB_MAX_VS);
  __type(key, __u32);
  __type(value, struct ikelb_traffic);
} vs_stats SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, IKELB_MAX_BACKENDS);
  __type(key, __u32);
  __type(value, struct ikelb_backend_stats);
} backend_stats SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, IKELB_COUNTER_SLOTS);
  __type(key, __u32);
  __type(value, __u64);
} outcomes SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, IKELB_COUNTER_SLOTS);
  __type(key, __u32);
  __type(value, __u64);
} events SEC(".maps");

/* Where the route to each backend leaves, by backend id, per CPU: the reverse-path check of
 * replies (ikelb_abi.h, struct ikelb_nexthop; egress_ifindex 0: no route). */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, IKELB_MAX_BACKENDS);
  __type(key, __u32);
  __type(value, struct ikelb_nexthop);
} gateway_routes SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct ikelb_edge_settings);
} edge SEC(".maps");

/* IKE_SA_INIT limits per virtual server, and their buckets (ikelb_abi.h). */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, IKELB_MAX_VS);
  __type(key, __u32);
  __type(value, struct ikelb_init_limit);
} init_limits SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, IKELB_INIT_SOURCE_ENTRIES);
  __type(key, struct ikelb_affinity_key);
  __type(value, __u64);
} init_sources SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, IKELB_MAX_VS);
  __type(key, __u32);
  __type(value, __u64);
} init_totals SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, IKELB_MAX_VS);
  __type(key, __u32);
  __type(value, struct ikelb_vs_edge_stats);
} vs_edge_stats SEC(".maps");

/* SPI routing per virtual server, the gateways' ids, and learned SPI owners (ikelb_abi.h). */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, IKELB_MAX_VS);
  __type(key, __u32);
  __type(value, struct ikelb_spi_routing);
} spi_routing SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, IKELB_MAX_BACKENDS);
  __type(key, struct ikelb_spi_label_key);
  __type(value, __u32);
} spi_labels SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, IKELB_SPI_OWNER_ENTRIES);
  __type(key, struct ikelb_spi_owner_key);
  __type(value, struct ikelb_spi_owner);
} spi_owners SEC(".maps");

/* Agent bookkeeping (see ikelb_abi.h); the program never touches these. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, IKELB_MAX_VS);
  __type(key, __u32);
  __type(value, struct ikelb_vs_meta);
} vs_meta SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, IKELB_MAX_BACKENDS);
  __type(key, __u32);
  __type(value, struct ikelb_backend_meta);
} backend_meta SEC(".maps");

#endif /* IKELB_MAPS_H */
