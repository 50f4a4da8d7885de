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
struct slot;
struct slot_table;

#define WATCH_MEMORY_DELAY_USEC (5 * 1000000ULL)

/* Receives one event: `type` ("bandwidth_over_cap", ...) and its members (taken). */
typedef void (*watch_emit_fn)(const char *type, cJSON *fields, void *userdata);

/* A slot's part of the watch: it lives in its slot object (slot.h), so that it follows the slot's
 * id over a reload. */
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
        struct slot_table *table; /* borrowed: the slots, in cfg's order; NULL: none */
        struct hysteresis host_memory;
        bool gpu_lost[HAL_GPU_MAX];
        watch_emit_fn emit;
        void *userdata;
};

/* The watch of the slots of table (borrowed until watch_done; each slot's part is its `watch`
 * member), which must follow the config passed to the other calls (slot_table_sync). */
void watch_init(struct watch *w, struct slot_table *table, watch_emit_fn emit, void *userdata);
/* After a reload: the table followed the new config by id (slot_table_sync), so a slot kept keeps
 * what it had raised (over the cap, under pressure) and its hysteresis, and its clearing event
 * still comes; a new slot starts clean; the host's state (memory pressure, GPUs lost) is kept.
 * Nothing is admitted until the next watch_plan. */
void watch_reload(struct watch *w);
void watch_done(struct watch *w);

/* What the host offers, from a sample and the platform. */
void watch_host_from_sample(const struct cfg *c, const struct hal_platform *p, const struct host_sample *h,
                            struct spec_host *ret);

/* Plans the slots against the host and emits slot_nonconformant for each slot that fails. */
void watch_plan(struct watch *w, const struct cfg *c, const struct spec_host *host);

/* One tick: bandwidth over the cap and memory pressure with hysteresis, GPUs lost and back. Each
 * slot's memory comes from its usage part (usage_tick, before). */
void watch_tick(struct watch *w, const struct cfg *c, const struct sampler *s, uint64_t now_usec);

/* True when the slot may take sessions: planned, and it meets its scale. */
bool watch_slot_admissible(const struct watch *w, const struct slot *sl);
/* Slot i's part of the watch (in cfg's order), or NULL when there is no slot i. */
const struct watch_slot *watch_slot_at(const struct watch *w, size_t i);
