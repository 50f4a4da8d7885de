/* telemetry.h: the JSON documents the agent publishes (status, telemetry) and prints (--probe). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "clocksync.h"
#include "selfstat.h"

struct cfg;
struct hal_platform;
struct host_sample;
struct sampler;
struct tele_self;
struct usage;
struct watch;

#define TELE_WIRE_VERSION 1

/* "<prefix>/<region>/<node>/<leaf>" into buf; -ENAMETOOLONG if it does not fit. */
int tele_topic(const struct cfg *c, const char *leaf, char *buf, size_t len);

/* Each returns a caller-freed NUL-terminated JSON string, or NULL when out of memory. */

/* Retained status: state "online" (with platform, the slots and the catalog, and the facts that
 * rarely change: the host's cores, memory, interfaces and GPUs from s, each slot's cgroup limits
 * from u and verdict from w; s, u, w may be NULL) or "offline" with a reason ("connection lost"
 * for the broker-published last will, "stopped" on a clean shutdown). real_usec 0: no "ts". */
char *tele_status_json(const struct cfg *c, const struct hal_platform *p, const struct sampler *s,
                       const struct usage *u, const struct watch *w, bool online, const char *reason,
                       uint64_t real_usec);

/* One sample as a document (v1: facts and figures of the current sample of `s`, the slots' usage
 * `u` and, when w is not NULL, each slot's scale, conformance and usage against its limits; with
 * self, the agent's own cost as "self", borrowed). The control socket's "telemetry" op and the
 * gauges take it; what is published on `telemetry` is tele_agg_json(), the interval's aggregates. */
char *tele_telemetry_json(const struct cfg *c, const struct sampler *s, const struct usage *u,
                          const struct watch *w, uint64_t seq, const struct tele_self *self);
/* The control socket's "telemetry" reply: {"telemetry": the document above} (caller frees). */
cJSON *tele_telemetry_reply(const struct cfg *c, const struct sampler *s, const struct usage *u,
                            const struct watch *w, uint64_t seq);

/* How long the sampling ticks take: the last one, and the longest over the last minute (kept as
 * the longest of each second in a ring, so the window slides by the second). Zeroed is empty. */
#define TELE_TICK_WINDOW_S 60
struct tele_ticks {
        uint64_t count; /* ticks that ended */
        uint64_t last_usec;
        uint64_t max_usec[TELE_TICK_WINDOW_S];
        uint64_t second[TELE_TICK_WINDOW_S]; /* the second (monotonic, + 1) each bucket holds; 0: none */
};

/* A tick that ended at monotonic time now_usec took took_usec. */
void tele_ticks_add(struct tele_ticks *t, uint64_t now_usec, uint64_t took_usec);
/* The longest tick that ended in the minute up to now_usec; 0 when none did. */
uint64_t tele_ticks_max(const struct tele_ticks *t, uint64_t now_usec);

/* The agent's own cost ("self" in status and telemetry). A part whose has_* is false is left out:
 * a figure that could not be read is absent, never 0. */
struct tele_self {
        bool has_usage;
        struct plat_self_usage usage;
        bool has_tick;
        uint64_t tick_usec, tick_max_usec; /* the last tick; the longest in the last minute */
        bool has_spool;
        uint64_t spool_records, spool_bytes; /* see meter_backlog() */
        /* The host's clock (not the agent's cost): telemetry's top-level "clock" */
        bool has_clock;
        struct clocksync_state clock;
};

/* The "self" object (caller frees; NULL when out of memory). */
cJSON *tele_self_json(const struct tele_self *self);

/* The catalog, and each slot's plan and usage against its scale (render-agentctl spec). */
cJSON *tele_spec_json(const struct cfg *c, const struct sampler *s, const struct usage *u,
                      const struct watch *w);

/* The --probe document: raw counters of one sample (GPUs with their processes); with a config
 * (c and u not NULL) also each slot's measured counters. `errors` lists what could not be read. */
char *tele_probe_json(const struct hal_platform *p, const struct host_sample *h, const struct cfg *c,
                      const struct sampler *s, const struct usage *u, const char *const *errors,
                      size_t n_errors);
