/* sessions.h: the admission service: session ops from the control socket and MQTT commands, group-
 * committed to the slots state machine, turned into events, forced ends enforced before reuse. */
#pragma once

#include "config.h"
#include "slots.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

/* Operations in one group commit at most; past it the batch is written at once. */
#define SESSIONS_BATCH_MAX 256
/* Byte counters a streaming process may report per slot (player, viewers, push targets). */
#define SESSIONS_PEERS_MAX 32
/* How long a failed enforcement waits before it is tried again. */
#define SESSIONS_RETRY_USEC (10 * 1000000ULL)

enum sessions_flow {
        SESSIONS_FLOW_PLAYER,  /* the host user's own stream */
        SESSIONS_FLOW_VIEWERS, /* every viewer of the session, summed */
        SESSIONS_FLOW_PUSH,    /* push streaming targets */
        SESSIONS_FLOWS,
};

const char *sessions_flow_str(enum sessions_flow f);

struct sessions_hooks {
        /* A session event for the events topic; takes ownership of `fields`. */
        void (*event)(const char *type, cJSON *fields, void *userdata);
        /* Each transition of a batch as it is written, before the write (metering makes its
         * records); may be NULL. */
        void (*transition)(const struct slots_event *ev, void *userdata);
        /* Then the records owed with the batch: *ret_json a JSON array text written into
         * slots.state with the state (slots_set_journal takes it), NULL for none; -errno fails the
         * batch (nothing is written). May be NULL. */
        int (*journal)(void *userdata, char **ret_json);
        /* Then what billing holds of counted bytes that no record made yet has (the meter's open
         * minutes), for slots.state's "open_minutes" member: 1 and *ret_json (an object text, NULL
         * for none; slots_set_extra takes it) when it changed since it was last asked, 0 when not
         * (the member stays); -errno fails the batch. May be NULL. */
        int (*open_minutes)(void *userdata, char **ret_json);
        /* Bytes slot i moved on `flow` to `peer` (the viewer or push target; "" for the player)
         * between two reports (wall clock, usec), counted in the batch being made: the report's reply
         * is held until the batch is written (its counters are in slots.state then, and open_minutes
         * is asked). May be NULL. */
        void (*bytes)(size_t slot, enum sessions_flow flow, const char *peer, uint64_t bytes,
                      uint64_t from_real_usec, uint64_t to_real_usec, void *userdata);
        /* A push target of slot i's session started (the first report with its counter above 0) or
         * stopped (the session ended; only a target that started); may be NULL. */
        void (*push)(size_t slot, const char *session, const char *target, bool started, void *userdata);
        /* After each group commit: ok (the state and the journal are durable; the events have
         * gone out), or why every reply held since the last one must fail (nothing was written:
         * the records the transitions made must be dropped). */
        void (*committed)(bool ok, const char *msg, void *userdata);
        /* Whether slot i may take sessions (its host meets its scale); NULL: always. */
        bool (*admissible)(void *userdata, size_t slot);
        /* Whether ops that would open billing (a new user's reserve, a reservation's renewal or
         * start, a new viewer) must be refused for a reason of the caller's (the metering spool
         * cannot take records); returns the reason or NULL; may be NULL. */
        const char *(*refuse_new)(void *userdata);
        void *userdata;
};

struct sessions;
struct slot_table;

/* Opens <cfg->state_dir> (made 0700 when missing) and restores slots.state. A state file that
 * cannot be read leaves every slot BLOCKED (see docs/sessions.md): that is not an error here, the
 * agent runs on; *ret_warning (room for SLOTS_MSG_MAX) says what happened, "" when nothing did.
 * -errno with msg when the state dir cannot be used at all. cfg is borrowed until
 * sessions_reconfigure or sessions_free, table (slot.h: the slot objects the service keeps its
 * per-slot state in) until sessions_free; it is synced with cfg here and by sessions_reconfigure. */
int sessions_new(sd_event *e, const struct cfg *cfg, struct slot_table *table, int root_fd,
                 const struct sessions_hooks *hooks, struct sessions **ret, char *ret_warning, char *msg,
                 size_t msg_len);
/* Writes what is pending, kills running enforcement hooks. NULL is a no-op. */
void sessions_free(struct sessions *s);

/* A reloaded config. The slot list must be the same ids in the same order as before, unless no
 * slot that holds a session disappears and nothing is pending: then the state is reopened, and the
 * slot table follows by id (slot_table_sync): a kept slot keeps its byte counters and enforcement
 * retries.
 * -EBUSY (a held slot would go) or -EINVAL (bad limits) with msg; the old config stays. */
int sessions_reconfigure(struct sessions *s, const struct cfg *cfg, char *msg, size_t msg_len);

/* The ops the session service answers (the daemon binds the control ops of ops.h to them). */
enum sessions_op {
        SESSIONS_OP_NONE, /* not one of the service's: sessions_request refuses it with INTERNAL */
        SESSIONS_OP_RESERVE,
        SESSIONS_OP_START,
        SESSIONS_OP_HEARTBEAT,
        SESSIONS_OP_CLIENT_LOST,
        SESSIONS_OP_END,
        SESSIONS_OP_DISCONNECT,
        SESSIONS_OP_RELEASE,
        SESSIONS_OP_VIEWER_JOIN,
        SESSIONS_OP_VIEWER_LEAVE,
        SESSIONS_OP_REPORT_BYTES,
        SESSIONS_OP_DRAIN,
        SESSIONS_OP_UNDRAIN,
        SESSIONS_OP_UNBLOCK,
        SESSIONS_OPS,
};

/* Answers one request of op `op`. On success the reply's members (caller frees) and *ret_held: the
 * reply acknowledges a transition that is not on disk yet; hold it until hooks->committed. On
 * refusal NULL, *ret_code a stable code (slots_code_str names) and msg. The lists (the slots and
 * sessions ops) are sessions_slots_json and sessions_list_json. */
cJSON *sessions_request(struct sessions *s, enum sessions_op op, const cJSON *req, bool *ret_held,
                        const char **ret_code, char *msg, size_t msg_len);

/* Writes the open batch now (tests; the agent's stop). Returns slots_batch_commit's result. */
int sessions_flush(struct sessions *s);
/* Opens a batch if none is open: the next commit writes the journal (records made outside any
 * op, such as billing windows, that the spool could not take). */
void sessions_touch(struct sessions *s);
/* Shutting down: new sessions get STOPPING; pending changes are written. */
void sessions_stop(struct sessions *s);

/* Each slot: id, scale, state, user, session, times, viewers (status and the `slots` op). */
cJSON *sessions_slots_json(const struct sessions *s);
/* Each held session with its viewers and byte totals (the `sessions` op). */
cJSON *sessions_list_json(const struct sessions *s);
/* Counts by state, draining, commits, the last error. */
cJSON *sessions_summary_json(const struct sessions *s);

/* Slots not FREE (reserved, active, in grace, ending or blocked). */
size_t sessions_busy(const struct sessions *s);
const struct slots *sessions_slots(const struct sessions *s);
