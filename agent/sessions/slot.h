/* slot.h: the slot object: each configured slot's runtime state in one place, a table keyed by slot
 * id that a reload carries over by id. The modules that act on a slot (sessions, counters, enforcement,
 * the scale watch, usage, telemetry's interval) take a struct slot, never an index into arrays of their
 * own. */
#pragma once

#include "counters.h"
#include "enforce.h"
#include "slots.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfg;
struct cfg_slot;
struct meter_slot;
struct tele_agg_slot;
struct usage_slot;
struct watch_slot;

struct slot {
        char id[SLOTS_ID_MAX + 1];
        /* Its position in the config in force: the index the slots state machine (slots.h), the
         * meter and billing know it by. */
        size_t index;
        const struct cfg_slot *cfg; /* borrowed: the config in force's entry */

        /* The session service (sessions.c): enforcement of a forced end, and its hook (enforce.c). */
        uint64_t retry_at;     /* mono: when a failed enforcement is tried again; 0: at once */
        bool failure_reported; /* its enforcement_failed event went out (one per session) */
        struct enforce_hook hook;
        /* The byte counters its streaming process reported (sessions_bytes.c, counters.h). */
        struct slot_bytes bytes;

        /* The scale watch's part (telemetry/watch.c: the plan's verdict, bandwidth and memory
         * hysteresis): opaque here, since telemetry sits above sessions. A plain allocation the
         * watch makes on first use (NULL before), freed with the slot. */
        struct watch_slot *watch;
        /* Usage's part (telemetry/usage.c: the slot's open cgroup, its CPU baseline, its figures and
         * stream sessions), opaque here for the same reason. Usage makes it on first use (NULL before)
         * and sets usage_free, which frees the slot's part (closing its cgroup) with the slot. */
        struct usage_slot *usage;
        void (*usage_free)(struct usage_slot *usage);
        /* The meter's part (metering/meter_internal.h: what its records say of the slot's session,
         * the occupancy billing was told, the session's stream summary, and their copies for a batch
         * that fails), opaque here since metering's records come from the sessions: a plain
         * allocation the meter makes when it starts (meter_new), freed with the slot. */
        struct meter_slot *meter;
        /* Telemetry's interval part (telemetry/tele_agg.c: the slot's gauges since the telemetry
         * interval began), opaque here like the watch's: a plain allocation tele_agg makes on first
         * use (NULL before), freed with the slot. */
        struct tele_agg_slot *agg;
};

/* The slots of the config in force, in its order. Zeroed is an empty table. */
struct slot_table {
        size_t n;
        struct slot *slot[SLOTS_MAX]; /* owned */
        /* The slots the last sync dropped, kept until slot_table_reap (or the next sync): a meter
         * made before the reload still holds them, and closes their windows when it stops. */
        size_t n_retired;
        struct slot *retired[SLOTS_MAX]; /* owned */
};

/* Makes t follow c's slots, one diff by id: a slot c keeps (same id) keeps its struct slot and all
 * it holds (counters, hysteresis, enforcement retries, usage, interval gauges, the meter's part), with its
 * cfg and index updated; a new slot starts zeroed; a slot c drops leaves the table and is retired: freed,
 * its parts with it, by slot_table_reap or the next sync (the session service refuses a reload that drops a
 * slot holding a session or running an enforcement hook, so nothing is left to end; the meter made before
 * the reload reads its part until it stops). The parts that depend on the slot's config follow it in
 * their own modules' reload (usage_reload). -ENOMEM leaves t as it was. c is borrowed until the next
 * call or slot_table_done. */
int slot_table_sync(struct slot_table *t, const struct cfg *c);
/* Frees the slots the last sync retired. */
void slot_table_reap(struct slot_table *t);
/* Frees every slot, the retired ones too; t is an empty table after. */
void slot_table_done(struct slot_table *t);

/* The slot `id`, or NULL. */
struct slot *slot_table_find(const struct slot_table *t, const char *id);

/* Slot i (< t->n), in the config's order. */
static inline struct slot *slot_at(const struct slot_table *t, size_t i) {
        return t->slot[i];
}
