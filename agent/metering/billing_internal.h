/* billing_internal.h: the billing module's state, shared by billing.c (windows, minutes, the clock)
 * and billing_targets.c (push targets, open bytes). Nothing outside billing*.c includes it. */
#pragma once

#include "billing.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEC UINT64_C(1000000)
#define SECONDS_PER_MINUTE BILLING_SECONDS

/* "no push target": bytes counted in their flow only. */
#define NO_TARGET ((size_t)-1)

struct flow_acc {
        uint64_t bytes;     /* late included */
        uint64_t late;      /* bytes of closed minutes */
        uint64_t late_peak; /* the highest rate (bytes/s) among the late spans */
        uint64_t sec[SECONDS_PER_MINUTE];
};

_Static_assert(BILLING_TARGETS_MAX <= 32, "slot_minute.targets is a 32-bit mask");

struct slot_minute {
        bool any;
        /* Bit t: the minute holds bytes of the slot's push target t (its targets[t] is in use); the
         * figures of the others are stale and are zeroed when first used. */
        uint32_t targets;
        struct flow_acc flow[BILLING_FLOWS];
};

/* Slots of one scale occupied for one project: the window's figures and the count now. */
struct pair {
        char project[BILLING_PROJECT_MAX + 1];
        size_t scale;
        uint32_t count, peak;
        uint64_t slot_usec;
};

/* A minute still open for bytes: the current one and those waiting late_usec for late reports. */
struct minute {
        bool active;
        bool clock_step, partial;
        bool clock_synced; /* as billing_minute's */
        uint64_t clock_err;
        uint64_t start;
        struct slot_minute *slots; /* n_slots of them, inside billing.minute_mem */
        /* n_slots * BILLING_TARGETS_MAX, slot i's push targets from i * BILLING_TARGETS_MAX,
         * inside billing.target_mem */
        struct flow_acc *targets;
};

struct billing {
        size_t n_slots, n_scales;
        char (*ids)[BILLING_ID_MAX + 1];
        char (*scales)[BILLING_SCALE_MAX + 1];
        size_t *scale_of; /* slot -> scale */
        bool *occupied;
        uint32_t count;                           /* occupied slots */
        uint32_t *scale_count;                    /* occupied slots by scale */
        char (*project)[BILLING_PROJECT_MAX + 1]; /* slot -> the pair's project it counts in; "" none */
        /* (project, scale) pairs occupied in the open window or carried into it: at most
         * BILLING_PROJECTS_MAX by name, then one BILLING_OTHER_PROJECT per scale. */
        struct pair *pairs;
        size_t n_pairs;
        struct billing_project_figures *pfig; /* the record's view of pairs */
        uint64_t window_usec, late_usec;
        billing_emit_fn emit;
        void *userdata;

        /* The module's place on the wall-clock line. It moves with the monotonic clock at offset
         * `off` (wall - monotonic, adopted at the last step) and never goes back: after a
         * backward step it stays put, time still accruing, until the wall clock catches up.
         * Invariant after every call: pos >= mono + off. */
        uint64_t mono, pos;
        int64_t off;

        /* The open window: its figures are the record's. */
        struct billing_window win;
        struct billing_scale_figures *fig;

        uint64_t first_minute; /* minutes before it predate the module: bytes for them are late */
        bool first_partial;
        size_t n_ring;
        struct minute *ring; /* minute m lives at ring[(m / 60 s) % n_ring] */
        struct slot_minute *minute_mem;
        struct flow_acc *target_mem;

        /* Push target names: slot i's from i * BILLING_TARGETS_MAX; "" is a free entry. An entry
         * is in use while an open minute holds bytes of it (its bit in slot_minute.targets). */
        char (*target_ids)[BILLING_TARGET_MAX + 1];
        struct billing_target_figures *tfig; /* BILLING_TARGETS_MAX: a record's view */

        bool sync_now; /* the latest billing_clock_sync */
        uint64_t err_now;

        bool busy;   /* inside the emit callback */
        bool closed; /* flushed */
        struct billing_stats stats;
};

static inline uint64_t max_u64(uint64_t a, uint64_t b) {
        return a > b ? a : b;
}

/* billing.c */

/* -EBUSY inside the emit callback, -ESHUTDOWN after a flush, else 0. */
int billing__enter(const struct billing *b);
/* Spreads bytes of slot's flow f (and of its push target `target`, NO_TARGET: none) evenly over
 * [end - span, end) (span 0: the instant end) by wall-clock second; what falls before the open
 * minutes goes to the current one as late bytes. */
void billing__spread(struct billing *b, size_t slot, enum billing_flow f, size_t target, uint64_t bytes,
                     uint64_t span, uint64_t end);
/* Emits slot's part of every open minute with bytes, oldest first, as closed early (session_end
 * as given), and zeroes it; its push target entries are freed. */
void billing__close_slot_minutes(struct billing *b, size_t slot, bool session_end);
uint64_t billing__flow_peak(const struct flow_acc *a);

/* billing_targets.c */

/* Slot's push target t's figures in open minute m (zeroed when the minute first holds bytes of
 * it): the caller adds bytes. */
struct flow_acc *billing__target_acc(struct minute *m, size_t slot, size_t t);
/* Fills b->tfig with the push targets slot's part of m holds bytes of; returns how many. */
size_t billing__target_figures(struct billing *b, const struct minute *m, size_t slot);
/* 0, or -EINVAL with msg (may be NULL) when target is not 1..BILLING_TARGET_MAX bytes of UTF-8 text
 * without control characters. */
int billing__check_target(const char *target, char *msg, size_t msg_len);
/* The entry of slot's push target `target` (checked), taken when new; when the slot has no free
 * entry, its open minutes are closed early first (billing_push_bytes). */
size_t billing__target_get(struct billing *b, size_t slot, const char *target);
/* Frees slot's push target entries (its open minutes hold no bytes of them any more). */
void billing__targets_clear(struct billing *b, size_t slot);
