/* watch.h: each slot against its scale: the capacity plan's verdicts, and events when usage crosses limits.
 */
#pragma once

#include "gpu.h"
#include "hysteresis.h"
#include "spec.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfg;
struct hal_platform;
struct host_sample;
struct sampler;
struct usage;

#define WATCH_MEMORY_DELAY_USEC (5 * 1000000ULL)

/* Receives one event: `type` ("bandwidth_over_cap", ...) and its members (taken). */
typedef void (*watch_emit_fn)(const char *type, cJSON *fields, void *userdata);

struct watch_slot {
        struct spec_verdict verdict;
        struct hysteresis bandwidth; /* raised: over the cap */
        struct hysteresis memory;    /* raised: under pressure */
        bool has_bandwidth;
        double bandwidth_mbps; /* the larger direction of the slot's interface, last sample */
};

struct watch {
        bool planned;
        struct spec_host host;
        size_t n; /* == cfg->n_slots */
        struct watch_slot *slots;
        struct hysteresis host_memory;
        bool gpu_lost[HAL_GPU_MAX];
        watch_emit_fn emit;
        void *userdata;
};

/* Slot state follows cfg's slots by position. */
int watch_init(struct watch *w, const struct cfg *c, watch_emit_fn emit, void *userdata);
/* After a reload from `old` to `c`: a slot kept (same id) keeps what it had raised (over the cap,
 * under pressure) and its hysteresis, so its clearing event still comes; a new slot starts clean;
 * the host's state (memory pressure, GPUs lost) is kept. Verdicts wait for the next watch_plan.
 * -ENOMEM leaves w as it was. */
int watch_reload(struct watch *w, const struct cfg *old, const struct cfg *c);
void watch_done(struct watch *w);

/* What the host offers, from a sample and the platform. */
void watch_host_from_sample(const struct cfg *c, const struct hal_platform *p, const struct host_sample *h,
                            struct spec_host *ret);

/* Plans the slots against the host and emits slot_nonconformant for each slot that fails. */
void watch_plan(struct watch *w, const struct cfg *c, const struct spec_host *host);

/* One tick: bandwidth over the cap and memory pressure with hysteresis, GPUs lost and back. */
void watch_tick(struct watch *w, const struct cfg *c, const struct sampler *s, const struct usage *u,
                uint64_t now_usec);

/* True when slot i may take sessions: planned, and it meets its scale. */
bool watch_slot_admissible(const struct watch *w, size_t i);
