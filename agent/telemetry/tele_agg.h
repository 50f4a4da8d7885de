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
struct slot_table;
struct tele_self;

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

/* A slot's part of the interval: its `agg` member (slot.h), made on the slot's first sample. */
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
        struct slot_table *table;      /* borrowed: the slots, in cfg's order; NULL: none */
        unsigned n_gpus;
        struct tele_agg_gpu gpus[HAL_GPU_MAX];
};

/* The interval of the slots of table (borrowed until tele_agg_done, NULL: none; each slot's part is
 * its `agg` member, which must follow the config passed to tele_agg_json: slot_table_sync). a is
 * overwritten. */
void tele_agg_init(struct tele_agg *a, struct slot_table *table);
/* Frees what a holds (the slots' parts go with their slots: slot_table_done); a is empty after. */
void tele_agg_done(struct tele_agg *a);

/* Folds in the sampler's current sample and, for each slot of the table, its usage part and its
 * watch part's bandwidth and over-cap state (a slot without them has none of those figures).
 * -ENOMEM (a slot's part could not be made: the slot has no figures until it is made) leaves the sample
 * partly counted. */
int tele_agg_add(struct tele_agg *a, const struct sampler *s);

/* The interval's telemetry document (caller frees; NULL when out of memory). The last sample's
 * time is its ts, seq the last sample's number; self is borrowed and may be NULL. */
char *tele_agg_json(const struct tele_agg *a, const struct cfg *c, const struct sampler *s, uint64_t seq,
                    const struct tele_self *self);

/* Ends the interval: the next tele_agg_add starts a new one (counters keep their last values), for
 * every slot of the table. The agent ends it on a reload too, after slot_table_sync: a slot whose
 * config changed, or a reload that changed the intervals, would otherwise mix two sources in one
 * figure; a dropped slot's part went with it and a new slot's starts empty. */
void tele_agg_next(struct tele_agg *a);
