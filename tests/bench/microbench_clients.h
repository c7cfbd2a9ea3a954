/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The client addresses the micro-benchmark's entry points send from (microbench.bpf.c), shared
 * with the harness that prepares the affinity table for them (microbench.cc). */
#ifndef IKELB_MICROBENCH_CLIENTS_H
#define IKELB_MICROBENCH_CLIENTS_H

/* 100.64.0.0, host order: the first client address. */
#define BENCH_CLIENT_BASE 0x64400000u
/* bench_ikelb_10k_clients cycles over BENCH_CLIENT_BASE + 0 .. BENCH_10K_CLIENTS - 1. */
#define BENCH_10K_CLIENTS 10000u

#endif
