/* tele_agg.h: the samples of one telemetry interval folded into last, min, max and average per
 * gauge and totals per byte counter, and the telemetry document published from them. */
#pragma once

#include "gpu.h"
#include "net.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfg;
struct sampler;
struct tele_self;
struct usage;
struct watch;

/* The published telemetry's wire version: its members are aggregates (docs/topics.md). */
#define TELE_AGG_WIRE_VERSION 2

/* One gauge over the interval; n == 0: no sample had it. */
struct tele_gauge {
        uint32_t n;
        double last, min, max, sum;
};

void tele_gauge_add(struct tele_gauge *g, double v);

/* A slot's stream sessions of one kind (NVENC, NvFBC): gauges of the slowest stream's FPS and the
 * worst latency at each sample; cur_* gather one sample's streams. */
struct tele_streams {
        struct tele_gauge fps, latency;
        uint32_t cur_fps, cur_latency;
};

/* A byte counter: the total it grew by over the interval, from the counter's value at each sample.
 * The last value is kept across intervals, so the growth between two intervals is counted once. */
struct tele_counter {
        bool has_last, has_total;
        uint64_t last, total;
};

/* A counter that went backwards (interface recreated) adds nothing and starts again from v. */
void tele_counter_add(struct tele_counter *k, uint64_t v);

struct tele_agg_iface {
        char name[HAL_NET_IFNAME_MAX];
        bool seen; /* in a sample of this interval */
        struct tele_counter rx, tx;
        struct tele_gauge rx_mbps, tx_mbps;
};

struct tele_agg_slot {
        struct tele_gauge cores, memory, pids, gpu_util, gpu_vram, mbps;
        /* NVENC: per sample, the slowest stream's FPS and the worst encode latency */
        struct tele_streams enc, fbc; /* NVENC encode, NvFBC capture */
        bool over_cap;                /* at any sample */
};

struct tele_agg_gpu {
        struct tele_gauge util, mem_util, enc, dec, vram_used, power, temp, clock, procs;
        bool has_throttle, stale;
        uint64_t throttle; /* every reason bit seen */
};

struct tele_agg {
        uint32_t samples;
        struct tele_gauge cpu_util, mem_available;
        size_t n_ifaces, cap_ifaces;
        struct tele_agg_iface *ifaces; /* owned */
        size_t n_slots;
        struct tele_agg_slot *slots; /* owned, cfg's slots by position */
        unsigned n_gpus;
        struct tele_agg_gpu gpus[HAL_GPU_MAX];
};

/* Frees what a holds; a zeroed or freed tele_agg is empty and ready. */
void tele_agg_done(struct tele_agg *a);

/* Folds in the sampler's current sample, the slots' usage and the watch's bandwidth and over-cap
 * state (u, w may be NULL). A change in the number of slots (reload) starts the slots over.
 * -ENOMEM leaves the sample partly counted. */
int tele_agg_add(struct tele_agg *a, const struct cfg *c, const struct sampler *s, const struct usage *u,
                 const struct watch *w);

/* The interval's telemetry document (caller frees; NULL when out of memory). The last sample's
 * time is its ts, seq the last sample's number; self is borrowed and may be NULL. */
char *tele_agg_json(const struct tele_agg *a, const struct cfg *c, const struct sampler *s, uint64_t seq,
                    const struct tele_self *self);

/* Ends the interval: the next tele_agg_add starts a new one (counters keep their last values). */
void tele_agg_next(struct tele_agg *a);
