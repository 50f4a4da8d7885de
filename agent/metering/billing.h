/* billing.h: billing windows: peak concurrency per wall-clock window and bandwidth per minute, pure math. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* A pure module: no I/O, no logging, no clock of its own. Every call takes the time and may hand
 * records that it closed to the emit callback of the config. docs/metering.md ("Billing windows") states the
 * rules (alignment, clock steps, late bytes, restarts) and what the central side may assume.
 *
 * Units: times are microseconds (wall clock: since the Unix epoch, UTC); bytes are bytes.
 * Durations come from the monotonic clock, alignment from the wall clock. */

/* Hard limits on what the caller hands in. */
#define BILLING_SLOTS_MAX 256  /* slots per module (the agent has at most 64) */
#define BILLING_ID_MAX 64      /* slot id bytes */
#define BILLING_SCALE_MAX 32   /* scale name bytes */
#define BILLING_PROJECT_MAX 64 /* project name bytes */
/* (project, scale) pairs one window lists by name; the sessions of further pairs are summed under
 * BILLING_OTHER_PROJECT (per scale). The cap keeps a window's record within one signed payload. */
#define BILLING_PROJECTS_MAX 200
#define BILLING_OTHER_PROJECT "(other)" /* no valid project name: it has parentheses */
#define BILLING_HOUR_USEC (3600 * UINT64_C(1000000))
#define BILLING_MINUTE_USEC (60 * UINT64_C(1000000))
#define BILLING_WINDOW_DEFAULT_USEC (3600 * UINT64_C(1000000))
#define BILLING_LATE_DEFAULT_USEC (10 * UINT64_C(1000000))
#define BILLING_LATE_MAX_USEC (120 * UINT64_C(1000000))
/* Times past the year 9999 are refused (they cannot be real and would overflow the arithmetic). */
#define BILLING_TIME_MAX_USEC (UINT64_C(253402300800) * UINT64_C(1000000))
/* A change of (wall - monotonic) larger than this between two calls is a clock step; smaller
 * ones are the jitter of reading two clocks one after the other and are ignored. */
#define BILLING_STEP_TOLERANCE_USEC (100 * UINT64_C(1000))
#define BILLING_MSG_MAX 256 /* room for any message the module writes */
/* Push targets one slot's open minutes keep apart: as many peers as one session may report
 * (SESSIONS_PEERS_MAX). Each costs 504 bytes per open minute (its figures), reserved for every slot
 * and open minute: 2 MiB of address space for 64 slots at the default lateness, of which only the
 * pages of targets in use are ever touched. */
#define BILLING_TARGETS_MAX 32
#define BILLING_TARGET_MAX 64 /* push target name bytes (report_bytes' peer ids) */

enum billing_flow {
        BILLING_PLAYER,  /* the player's own stream */
        BILLING_VIEWERS, /* every viewer of the slot, summed; the player's bytes excluded */
        BILLING_PUSH,    /* push streaming (restream) out of the slot: every target, and each apart */
        BILLING_FLOWS,
};

/* "player", "viewers", "push"; NULL out of range. Static storage. */
const char *billing_flow_str(enum billing_flow f);

/* Both clocks, read together. */
struct billing_time {
        uint64_t mono_usec; /* CLOCK_MONOTONIC */
        uint64_t real_usec; /* CLOCK_REALTIME */
};

enum billing_record_kind {
        BILLING_WINDOW, /* concurrency_window */
        BILLING_MINUTE, /* bandwidth_minute */
};

struct billing_scale_figures {
        const char *scale;  /* borrowed from the module */
        uint32_t peak;      /* most slots of this scale occupied at one instant */
        uint64_t slot_usec; /* integral of this scale's occupied slots over the covered time */
};

struct billing_project_figures {
        const char *project; /* borrowed from the module */
        const char *scale;   /* borrowed from the module */
        uint32_t peak;       /* most slots of this scale occupied for this project at one instant */
        uint64_t slot_usec;  /* integral of those slots over the covered time */
};

/* One concurrency window [start, start + n_windows * window_usec). */
struct billing_window {
        uint64_t start_usec;   /* wall clock, a multiple of window_usec */
        uint64_t window_usec;  /* the configured window */
        uint64_t n_windows;    /* 1; more only for the windows a forward clock step skipped */
        uint64_t covered_usec; /* monotonic time these figures cover: window_usec for a whole window */
        uint32_t peak;         /* most slots occupied at one instant, occupancy carried in included */
        uint64_t slot_usec;    /* integral of occupied slots over the covered time */
        size_t n_scales;
        const struct billing_scale_figures *scales; /* borrowed for the callback; config order */
        size_t n_projects;
        /* Borrowed for the callback: each (project, scale) occupied in the window or carried into
         * it, in the order first seen; slots occupied without a project are in none. */
        const struct billing_project_figures *projects;
        bool clock_step; /* a clock step happened while it was open */
        bool partial;    /* the agent started or stopped inside it: covers only part of it */
        /* The kernel said the clock was synchronised at its opening and at every billing_clock_sync
         * while it was open; the worst estimated error among those readings. */
        bool clock_synced;
        uint64_t clock_est_error_us;
};

#define BILLING_SECONDS 60 /* seconds in a minute: the length of a flow's per-second series */

struct billing_flow_figures {
        uint64_t bytes;         /* late_bytes included */
        uint64_t late_bytes;    /* bytes of minutes already closed, added here (see the doc) */
        uint64_t peak_bytes_1s; /* the most bytes in one wall-clock second of the minute */
        /* Borrowed for the callback: BILLING_SECONDS entries, the bytes of each wall-clock second
         * of the minute (entry k: [minute + k s, minute + k + 1 s)); late bytes are in none. */
        const uint64_t *sec_bytes;
};

/* One push target's part of a minute's push flow. */
struct billing_target_figures {
        const char *target; /* borrowed for the callback */
        struct billing_flow_figures fig;
};

/* One slot's bandwidth in one wall-clock minute; emitted only when some flow had bytes. */
struct billing_minute {
        uint64_t start_usec; /* wall clock, a multiple of 60 s */
        const char *slot_id; /* borrowed for the callback */
        size_t slot;         /* its index in the config */
        struct billing_flow_figures flow[BILLING_FLOWS];
        /* Borrowed for the callback: each push target with bytes in the minute (billing_push_bytes),
         * in no particular order, at most BILLING_TARGETS_MAX. Counted by the same seconds as the
         * push flow: their bytes, late_bytes and each second's bytes add up to flow[BILLING_PUSH]'s
         * exactly when every push byte was counted with its target (the agent's are). */
        size_t n_targets;
        const struct billing_target_figures *targets;
        bool clock_step;  /* a clock step happened while it was the current minute */
        bool partial;     /* the agent started or stopped inside it, or it was closed early */
        bool session_end; /* closed early by billing_close_slot: the slot's session ended */
        /* As billing_window's, over the time it was the current minute. */
        bool clock_synced;
        uint64_t clock_est_error_us;
};

struct billing_record {
        enum billing_record_kind kind;
        union {
                struct billing_window window;
                struct billing_minute minute;
        };
};

/* Called for each record as it closes. The record and what it points to are borrowed for the
 * call: copy what you keep. It must not call back into the module (such calls get -EBUSY). */
typedef void (*billing_emit_fn)(void *userdata, const struct billing_record *r);

struct billing_config {
        size_t n_slots;                 /* 1..BILLING_SLOTS_MAX */
        const char *const *slot_ids;    /* borrowed for the call; copied. Unique, 1..BILLING_ID_MAX bytes */
        const char *const *slot_scales; /* borrowed for the call; copied. 1..BILLING_SCALE_MAX bytes */
        uint64_t window_usec;           /* whole seconds dividing an hour (1 s..1 h); default 3600 s */
        uint64_t late_usec;             /* how long a minute waits for late bytes, 0..120 s; default 10 s */
        billing_emit_fn emit;           /* required */
        void *userdata;
};

/* Fills window_usec and late_usec with their defaults; leaves the rest alone. */
void billing_config_default(struct billing_config *c);

struct billing;

/* Validates the config (-EINVAL with a message in msg, which may be NULL) and starts the first
 * window and minute at `now`; every slot starts unoccupied. After a restart, call
 * billing_occupancy at the same `now` for each slot the persisted state says is occupied: they
 * count in the peak from that instant. Caller frees. */
int billing_new(const struct billing_config *c, struct billing_time now, struct billing **ret, char *msg,
                size_t msg_len);
void billing_free(struct billing *b);

/* Every call below first closes what ended by `now` (billing_bytes: by `to`, unless that is older
 * than the latest call), handing the records to emit, and returns the number of records
 * emitted, or -EINVAL (bad argument or time: nothing changed), -EBUSY (called from the emit
 * callback), -ESHUTDOWN (after billing_flush). A `now` older than the previous call's counts as
 * the previous call's time. */

/* Slot `slot` became occupied (ACTIVE, GRACE) for `project` (NULL or "": none; else
 * 1..BILLING_PROJECT_MAX printable bytes, else -EINVAL) or not at `now`. Repeats are harmless (a
 * repeat of occupied keeps the project it had). Changes at the same microsecond apply in call order:
 * start-then-stop counts in the peak, stop-then-start (a handover) does not count twice. */
int billing_occupancy(struct billing *b, size_t slot, bool occupied, const char *project,
                      struct billing_time now);
/* Whether slot `slot` (< the slots configured) counts as occupied, and for which project ("": none). */
bool billing_occupied(const struct billing *b, size_t slot, const char **ret_project);

/* `bytes` moved on flow `f` of slot `slot` during [from, to]: the span's length comes from the
 * monotonic clock, its place from the wall clock at `to`. `to` is normally now; an earlier `to`
 * (a report that arrives late) does not move the module's clock. The bytes are spread evenly
 * over the seconds the span covers (from == to: an instant), so minute sums and 1-second peaks
 * are the same whatever the reporting cadence. Bytes for a minute already closed go to the
 * current minute as late_bytes: never lost. -EINVAL when from is after to. */
int billing_bytes(struct billing *b, size_t slot, enum billing_flow f, uint64_t bytes,
                  struct billing_time from, struct billing_time to);

/* billing_bytes on BILLING_PUSH for push target `target` (1..BILLING_TARGET_MAX bytes of UTF-8 text
 * without control characters, else -EINVAL with msg naming it; msg may be NULL): the bytes count in
 * the push flow and in the target's own figures, in the same seconds. A slot's open minutes keep
 * at most BILLING_TARGETS_MAX targets apart: a further one first closes the slot's open minutes
 * early (records partial, not session_end; then the slot's next records of those minutes hold the
 * rest), which frees every entry. So memory stays bounded and no byte is lost. */
int billing_push_bytes(struct billing *b, size_t slot, const char *target, uint64_t bytes,
                       struct billing_time from, struct billing_time to, char *msg, size_t msg_len);

/* Closes every window that ended at or before `now` and every minute that ended late_usec or
 * more before it. Call it every second or so. */
int billing_tick(struct billing *b, struct billing_time now);

/* The session on slot `slot` ended at `now`: every open minute of that slot with bytes is emitted
 * at once (oldest first), marked partial and session_end, and that slot's part of them is zeroed,
 * so the records of one session never hold bytes of the next one on the slot. Other slots' minutes
 * stay open. Bytes of that slot that come later (late reports) go into fresh minutes. */
int billing_close_slot(struct billing *b, size_t slot, struct billing_time now);

/* The kernel's clock sync state now (agent/telemetry/clocksync.h; unknown counts as not synchronised):
 * folded into the open window and the current minute, and the state windows and minutes opened from now on
 * start with. No time passes: call it after billing_tick. Until the first call the clock counts as
 * synchronised with no error. -EINVAL, -EBUSY, -ESHUTDOWN as the calls above; else 0. */
int billing_clock_sync(struct billing *b, bool synced, uint64_t est_error_us);

/* Shutting down: emits the open window and every open minute with bytes (those not yet ended
 * marked partial); the module takes nothing after (-ESHUTDOWN). */
int billing_flush(struct billing *b, struct billing_time now);

/* ---- Carrying counted bytes across a restart (docs/metering.md, "Restarts") ---- */

/* What the open minutes hold of one slot's flow: bytes counted that no record has yet. Spread
 * evenly over [from_usec, to_usec) (wall clock) no second gets more than the busiest second of
 * theirs had: the span runs from their first second to the end of their last, longer when their
 * peak needs it (late bytes, whose seconds are not kept); it ends at the start of their minute when
 * they are all late bytes. All 0 when there are none. */
struct billing_open {
        uint64_t bytes;
        uint64_t from_usec, to_usec;
};

/* A pure query: what the open minutes hold of slot's flow f now. -EINVAL for a bad slot or flow. */
int billing_open_bytes(const struct billing *b, size_t slot, enum billing_flow f, struct billing_open *ret);

/* After a restart: bytes an earlier run's open minutes held (billing_open_bytes, before it ended)
 * come back, spread evenly over [from, to) as billing_bytes spreads a report: the seconds still
 * open get their share; what falls before this run's first minute goes to the current minute as
 * late_bytes, at the span's average rate (no second is inflated). A span that ends after the
 * module's time (the clock went back) is moved to end at it. Bytes are exact. Returns the records
 * emitted, or -EINVAL (bad argument: nothing changed), -EBUSY, -ESHUTDOWN. */
int billing_restore_bytes(struct billing *b, size_t slot, enum billing_flow f, uint64_t bytes,
                          uint64_t from_usec, uint64_t to_usec);

/* What the open minutes hold of slot's push target entry t (0..BILLING_TARGETS_MAX - 1), its name
 * in *ret_target (borrowed until the next call that counts bytes or closes minutes): as
 * billing_open_bytes. -ENOENT when no open minute holds bytes of entry t; -EINVAL for a bad slot or
 * t. The push flow's open bytes are the sum of its targets' (and of any counted without one). */
int billing_open_target(const struct billing *b, size_t slot, size_t t, const char **ret_target,
                        struct billing_open *ret);

/* billing_restore_bytes for push target `target` (named as for billing_push_bytes): into the push
 * flow and the target's figures. -ENOSPC when the slot's open minutes hold bytes of
 * BILLING_TARGETS_MAX other targets already (nothing changed: a restore never closes minutes). */
int billing_restore_target(struct billing *b, size_t slot, const char *target, uint64_t bytes,
                           uint64_t from_usec, uint64_t to_usec);

/* Slot i's id (config order); NULL past the last. */
const char *billing_slot_id(const struct billing *b, size_t i);

/* The open minutes' bytes of every slot and flow as the JSON object text slots.state keeps
 * ("open_minutes": {"v":1,"slots":[{"slot":"s0","player":[bytes,from_us,to_us],..,
 * "push":[..],"targets":{"<target>":[bytes,from_us,to_us],..}}]}: "push" the flow's total, "targets"
 * its push targets' parts, when any); NULL in *ret_json when no minute holds any. 0 or -ENOMEM.
 * Caller frees (billing_carry.c). */
int billing_carry_json(const struct billing *b, char **ret_json);
/* After a restart, before any bytes of this run: the bytes json (billing_carry_json's, of the
 * earlier run) lists, each restored with billing_restore_bytes (push targets' with
 * billing_restore_target, and the rest of "push" without a target). Checked whole first: -EBADMSG
 * with msg naming the entry and what is wrong, and nothing restored. Entries of slots this config
 * lacks are dropped: their number is returned (msg names the first), 0 when none. */
int billing_carry_in(struct billing *b, const char *json, char *msg, size_t msg_len);

struct billing_stats {
        uint64_t steps_forward; /* wall-clock steps seen */
        uint64_t steps_back;
        uint64_t last_step_usec; /* the wall clock just after the latest step (its new reading); 0: none */
        uint64_t late_bytes;     /* bytes added to a later minute than their own */
        uint64_t records;        /* records emitted */
};

void billing_get_stats(const struct billing *b, struct billing_stats *ret);

/* "concurrency_window" or "bandwidth_minute". Static storage. */
const char *billing_record_type(const struct billing_record *r);

/* Adds the record's members to obj (the caller's object; the caller adds v, type, node, seq, prev
 * and ts around them; billing_json.c). A flow with bytes has "kbps", its per-second series: 60
 * integers, second k's bytes * 8 / 1000 rounded to nearest (half up). "push" has "targets": each
 * push target's figures alike, its "kbps" rounded from its own bytes (so the targets' entries add up
 * to push's within floor(n / 2) kbit/s for n targets with bytes in that second; bytes exactly):
 *   {"window_start":"2026-11-24T10:00:00Z","window_s":3600,"windows":1,"covered_s":3600,"peak":74,
 *    "slot_seconds":117699.5,"by_scale":{"S":{"peak":3,"slot_seconds":..}},
 *    "by_project":{"p1":{"S":{"peak":2,"slot_seconds":..}}},"clock_step":false,"partial":false,
 *    "clock_synced":true,"clock_est_error_us":250}
 *   {"minute":"2026-11-24T10:01:00Z","slot":"s0","player":{"bytes":..,"peak_mbps":..,"late_bytes":0},
 *    "viewers":{"bytes":..,"peak_mbps":..,"late_bytes":0,"kbps":[0,0,..]},
 *    "push":{"bytes":..,..,"kbps":[..],"targets":{"rtmp-a":{"bytes":..,"peak_mbps":..,
 *            "late_bytes":0,"kbps":[..]}}},
 *    "clock_step":false,"partial":false,"session_end":false,"clock_synced":true,"clock_est_error_us":250}
 * Returns 0 or -ENOMEM (obj may then hold some of the members). */
int billing_record_json(const struct billing_record *r, cJSON *obj);
