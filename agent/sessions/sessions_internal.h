/* sessions_internal.h: the session service's state, shared by its three files: sessions.c (the
 * group-commit service: batches, events, enforcement, construction and reload), sessions_ops.c (the
 * JSON op layer and the views) and sessions_bytes.c (report_bytes: the byte counters for metering).
 * Nothing outside agent/sessions*.c includes it. */
#pragma once

#include "sessions.h"

#include "clock.h"
#include "counters.h"
#include "slot.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PENDING_MAX (2 * SESSIONS_BATCH_MAX + 2 * SLOTS_MAX)

struct sessions {
        sd_event *event;
        const struct cfg *cfg;
        int root_fd, state_fd;
        struct slots *slots;
        struct enforce *enforce;
        struct sessions_hooks hooks;
        sd_event_source *commit_src, *timer;
        struct slots_event pending[PENDING_MAX];
        /* The batch being committed, and the timer's expiries: here rather than on the stack (282
         * KB and 28 KB frames, whose pages stayed resident), only the entries used are touched. */
        struct slots_event done[PENDING_MAX];
        struct slots_event expired[SLOTS_MAX];
        bool committing; /* done[] is in use: a commit from inside a commit's hooks waits its turn */
        size_t n_pending, batch_ops;
        char inflight[SESSIONS_BATCH_MAX][SLOTS_USER_MAX + 1]; /* users with an op in the open batch */
        size_t n_inflight;
        /* Each slot's runtime state (retries, byte counters): borrowed, synced with cfg here. */
        struct slot_table *table;
        uint64_t commits, commit_failures;
        /* The byte counters changed since they were last written: the next commit writes them. */
        bool counters_dirty;
        char last_error[SLOTS_MSG_MAX];
};

/* One request being answered (sessions_request). */
struct req_ctx {
        struct sessions *s;
        enum sessions_op op;
        const cJSON *req;
        const char **code;
        char *msg;
        size_t msg_len;
        bool held;
};

/* Sets the refusal's code and message; evaluates to NULL (no reply). */
#define REFUSE(x, c, ...)                                      \
        ({                                                     \
                *(x)->code = (c);                              \
                snprintf((x)->msg, (x)->msg_len, __VA_ARGS__); \
                (cJSON *)NULL;                                 \
        })

static inline struct slots_clock sessions__clock_now(void) {
        return (struct slots_clock){ .mono_usec = plat_now_mono_usec(), .real_usec = plat_now_real_usec() };
}

/* sessions.c */

/* Adds key: the RFC 3339 time of real_usec to o; nothing when 0. */
void sessions__add_time(cJSON *o, const char *key, uint64_t real_usec);
/* Slot i of the state machine (its index in cfg and in s->slots). */
static inline struct slot *sessions__slot(const struct sessions *s, size_t i) {
        return slot_at(s->table, i);
}

/* Keeps a transition of the open batch for its commit (metering records, then events). */
void sessions__record(struct sessions *s, const struct slots_event *ev);
/* Before an op: a batch that is full is written first, then one is open. */
void sessions__make_room(struct sessions *s);

/* sessions_ops.c */

/* The session a request names: "session", "user", or "slot" (its current session); false with the
 * refusal set. */
bool sessions__ref_of(struct req_ctx *x, struct slots_ref *ret);
/* The slot of the session ref names (by session, else by user) and its info; -1 when none. */
int sessions__slot_of(const struct sessions *s, struct slots_ref ref, struct slots_info *ret);
/* Whether viewer is joined to the session of slot i now. */
bool sessions__is_viewer(const struct sessions *s, size_t i, const struct slots_info *info,
                         const char *viewer);
/* The slot after an op: named `key` ("slot" in replies and session lists, "id" in slot lists). */
cJSON *sessions__slot_reply(const struct sessions *s, size_t i, const struct slots_event *ev,
                            const char *key);

/* sessions_bytes.c */

/* report_bytes: cumulative byte counters per peer since it joined; deltas go to metering. */
cJSON *sessions__op_report_bytes(struct req_ctx *x);
/* A viewer left (viewer_leave done): its bytes are no longer billed. */
void sessions__viewer_left(struct sessions *s, const struct slots_event *ev, const char *viewer);
/* The session of ev (ENDING) ends: its push targets that started stop with it. */
void sessions__stop_pushes(struct sessions *s, const struct slots_event *ev);
/* Adds "bytes": each flow's total of slot i's counters to o. */
void sessions__add_totals(const struct sessions *s, size_t i, cJSON *o);
