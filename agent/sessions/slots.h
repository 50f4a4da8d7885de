/* slots.h: the per-slot session state machine, the admission authority, persisted before every ack. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* FREE -> RESERVED(user, lock ttl) -> ACTIVE(user) -> GRACE(user, reconnect window) -> ENDING -> FREE.
 * BLOCKED: the slot's occupancy is unknown (its persisted state was unreadable); it takes no
 * sessions until an operator unblocks it (see docs/sessions.md). */
enum slots_state {
        SLOTS_FREE,
        SLOTS_RESERVED,
        SLOTS_ACTIVE,
        SLOTS_GRACE,
        SLOTS_ENDING,
        SLOTS_BLOCKED,
};

/* Stable error codes of the wire contract; slots_code_str() gives the wire name. */
enum slots_code {
        SLOTS_OK = 0,
        SLOTS_NO_IDLE,           /* the slot is busy with another user, not admissible, or none is free */
        SLOTS_SLOW_DOWN,         /* the user's session is ending: retry shortly */
        SLOTS_LOCK_TIMEOUT,      /* start without a live reservation */
        SLOTS_SESSION_NOT_FOUND, /* no such session (or viewer) */
        SLOTS_ROLE_LIMIT,        /* the slot has its cap of viewers */
        SLOTS_STOPPING,          /* the agent is shutting down */
        SLOTS_DRAINING,          /* the node takes no new sessions */
        SLOTS_BAD_REQUEST,       /* malformed user id, project, app, slot, reason, role or address */
        SLOTS_FORBIDDEN,         /* the session belongs to another user; the slot to another project */
        SLOTS_INTERNAL,          /* the state could not be persisted: nothing changed */
};

/* "NO_IDLE", "SLOW_DOWN", ...; "INTERNAL" for values out of range. Static storage. */
const char *slots_code_str(enum slots_code c);
/* "free", "reserved", "active", "grace", "ending", "blocked". Static storage. */
const char *slots_state_str(enum slots_state s);

/* Hard limits on outside input. */
#define SLOTS_MAX 64                       /* slots per node (matches CFG_MAX_SLOTS) */
#define SLOTS_USER_MAX 64                  /* user id bytes; [A-Za-z0-9._@:-] only */
#define SLOTS_PROJECT_MAX 64               /* the customer's project: as a user id */
#define SLOTS_APP_MAX 64                   /* the customer's application: as a user id */
#define SLOTS_TOKEN_MAX 32                 /* reason and role bytes; [a-z0-9_] only */
#define SLOTS_VIEWERS_MAX 16               /* hard cap on viewers per slot, whatever the config says */
#define SLOTS_SESSION_LEN 32               /* session ids: 32 lower-case hex digits */
#define SLOTS_ID_MAX 64                    /* slot id bytes */
#define SLOTS_IP_MAX 46                    /* INET6_ADDRSTRLEN */
#define SLOTS_STATE_FILE "slots.state"     /* two checksummed copies of the state (docs/sessions.md) */
#define SLOTS_STATE_MAX_BYTES (256 * 1024) /* the JSON of the state, in each copy */
#define SLOTS_GRACE_MIN_S 40
#define SLOTS_GRACE_MAX_S 3600

#define SLOTS_MSG_MAX 256 /* room for any message the module writes */

/* Both clocks, passed into every call so tests inject time. mono drives timeouts while the agent
 * runs; real (wall clock) is what the state file holds, so deadlines survive a restart. */
struct slots_clock {
        uint64_t mono_usec;
        uint64_t real_usec;
};

struct slots_limits {
        uint64_t lock_ttl_usec;          /* RESERVED without start: freed after this; default 30 s */
        uint64_t grace_usec;             /* reconnect window; default 120 s, 40..3600 s */
        uint64_t max_session_usec;       /* from start to forced end; 0 = none */
        uint64_t heartbeat_timeout_usec; /* ACTIVE without heartbeat -> GRACE; 0 = none */
        uint64_t idle_usec;              /* ACTIVE without user input -> ENDING; 0 = none */
        unsigned viewers_max;            /* per slot, at most SLOTS_VIEWERS_MAX; default 4 */
};

/* Fills the defaults above. */
void slots_limits_default(struct slots_limits *l);

/* Whether slot i may take sessions now (watch_slot_admissible in the agent). */
typedef bool (*slots_admissible_fn)(void *userdata, size_t slot);

struct slots_config {
        size_t n_slots;              /* 1..SLOTS_MAX */
        const char *const *slot_ids; /* borrowed for the call; copied */
        struct slots_limits limits;  /* validated by slots_new */
        int state_dir_fd;      /* borrowed, must outlive the slots; -1: nothing persisted (tests, fuzz) */
        const char *state_dir; /* its path, for messages only (copied); NULL: "state dir" */
        slots_admissible_fn admissible; /* NULL: every slot is admissible */
        void *userdata;
        /* NULL: no slot is bound to a project; else n_slots entries, each NULL (unbound) or the
         * project (as a user id) whose sessions alone the slot takes. Borrowed for the call; copied. */
        const char *const *slot_projects;
};

/* What a call changed, for the caller's events and replies. */
enum slots_event_kind {
        SLOTS_EV_NONE,      /* nothing changed (an idempotent repeat) */
        SLOTS_EV_RESERVE,   /* FREE -> RESERVED, or a RESERVED lock renewed by its user */
        SLOTS_EV_TAKEOVER,  /* the same user connected again to ACTIVE: the old client is evicted */
        SLOTS_EV_RESUME,    /* the same user back within the GRACE window: GRACE -> ACTIVE */
        SLOTS_EV_START,     /* RESERVED -> ACTIVE */
        SLOTS_EV_HEARTBEAT, /* ACTIVE stays ACTIVE */
        SLOTS_EV_GRACE,     /* ACTIVE -> GRACE (client lost or heartbeat timeout) */
        SLOTS_EV_ENDING,    /* ACTIVE/GRACE -> ENDING: the caller enforces, then slots_release */
        SLOTS_EV_FREED,     /* -> FREE (reservation ended or expired, ENDING released) */
        SLOTS_EV_VIEWER_JOIN,
        SLOTS_EV_VIEWER_LEAVE,
        SLOTS_EV_DRAIN,
        SLOTS_EV_UNDRAIN,
        SLOTS_EV_UNBLOCK, /* BLOCKED -> FREE by an operator */
};

const char *slots_event_str(enum slots_event_kind k);

struct slots_event {
        enum slots_event_kind kind;
        size_t slot;            /* index; (size_t)-1 for node-wide events (drain) */
        enum slots_state state; /* the slot's state after the event */
        char user[SLOTS_USER_MAX + 1];
        char session[SLOTS_SESSION_LEN + 1];
        char viewer[SLOTS_USER_MAX + 1];     /* viewer events */
        char role[SLOTS_TOKEN_MAX + 1];      /* VIEWER_JOIN: the viewer's role */
        char reason[SLOTS_TOKEN_MAX + 1];    /* GRACE, ENDING and FREED: why */
        char client_ip[SLOTS_IP_MAX];        /* RESERVE, TAKEOVER and RESUME: the new client's, "" unknown */
        uint64_t started_real_usec;          /* when the session started (wall clock); 0 before START */
        char project[SLOTS_PROJECT_MAX + 1]; /* the session's project; "" none */
        char app[SLOTS_APP_MAX + 1];         /* the session's application; "" none */
};

/* A session named by id, or by its user, or both (then they must agree, else FORBIDDEN). */
struct slots_ref {
        const char *session; /* NULL: by user */
        const char *user;    /* NULL: by session */
};

/* A read-only view of one slot. */
struct slots_info {
        const char *id; /* borrowed from the slots */
        enum slots_state state;
        const char *user;    /* "" when FREE or BLOCKED */
        const char *session; /* "" when FREE or BLOCKED */
        const char *client_ip;
        uint64_t deadline_real_usec; /* RESERVED: lock expiry; GRACE: window end; else 0 */
        uint64_t started_real_usec;  /* ACTIVE/GRACE/ENDING: start; else 0 */
        size_t n_viewers;
        const char *end_reason;    /* ENDING: why; else "" */
        const char *project;       /* the session's project; "" when none or no session */
        const char *app;           /* the session's application; "" when none or no session */
        const char *bound_project; /* the project the slot is bound to (config); "" when unbound */
};

struct slots;

/* Validates the config: -EINVAL with a message in msg (may be NULL) for a bad slot count, slot id
 * or limit. Every slot starts FREE; slots_load restores the persisted state. Caller frees. */
int slots_new(const struct slots_config *cfg, struct slots **ret, char *msg, size_t msg_len);
void slots_free(struct slots *s);

/* Restores state_dir/slots.state: of its two copies, the valid one written last (absent: a
 * slots.json of an older agent is read, written as slots.state and renamed slots.json.migrated;
 * neither: every slot stays FREE, the file is written). ACTIVE stays ACTIVE, GRACE keeps its
 * wall-clock deadline, an expired RESERVED becomes FREE, a slot the file names that the config
 * lacks is dropped. One torn copy is what a crash mid-write leaves, and no error. A file that
 * cannot be read or parsed (both copies invalid, or the newest one's JSON) is -EBADMSG
 * (unparsable) or -errno with msg naming the file and the fault; then every slot is BLOCKED, the
 * file is kept aside as <file>.corrupt-<unix seconds>, and the blocked state is persisted: no slot
 * is ever freed by accident, the agent keeps running and reporting. */
int slots_load(struct slots *s, struct slots_clock now, char *msg, size_t msg_len);

/* The parser of slots_load without any I/O: buf (len bytes, no NUL needed) replaces the state
 * only when it is entirely valid; otherwise -EBADMSG, msg says what is wrong, s is unchanged. */
int slots_restore(struct slots *s, const char *buf, size_t len, struct slots_clock now, char *msg,
                  size_t msg_len);

/* The operations. Each returns SLOTS_OK and fills *ret_ev (may be NULL) with what changed, or a
 * code and a one-line message in msg (may be NULL; SLOTS_MSG_MAX is enough). A transition is
 * written to the state file before the call returns SLOTS_OK; when that write fails the call
 * returns SLOTS_INTERNAL and the state in memory is as before the call. */

/* What a reservation asks for. */
struct slots_reserve_req {
        const char *user;      /* required */
        const char *project;   /* NULL: none given (on a slot bound to a project: that project) */
        const char *app;       /* NULL: none */
        const char *slot_id;   /* NULL: a free admissible slot the project may use */
        const char *client_ip; /* NULL or an IPv4/IPv6 literal */
};

/* Books a slot for req->user. Without slot_id: a free admissible slot, those bound to the
 * reservation's project first, then unbound ones (a reservation without a project: unbound slots
 * first, then a bound one, whose project it takes); none: NO_IDLE. A slot_id bound to another
 * project than the one given: FORBIDDEN. A user who already holds a slot gets that slot back: the
 * lock renewed (RESERVED), a takeover (ACTIVE) or a resume (GRACE); a project or app given then
 * must be the session's (else BAD_REQUEST). */
enum slots_code slots_reserve_for(struct slots *s, const struct slots_reserve_req *req,
                                  struct slots_clock now, struct slots_event *ret_ev, char *msg,
                                  size_t msg_len);
/* slots_reserve_for without a project or app. */
enum slots_code slots_reserve(struct slots *s, const char *user, const char *slot_id, const char *client_ip,
                              struct slots_clock now, struct slots_event *ret_ev, char *msg, size_t msg_len);
/* RESERVED -> ACTIVE; ACTIVE is an idempotent repeat (EV_NONE). */
enum slots_code slots_start(struct slots *s, struct slots_ref ref, struct slots_clock now,
                            struct slots_event *ret_ev, char *msg, size_t msg_len);
/* The streaming process is alive; `input`: the user did something (resets the idle timeout). */
enum slots_code slots_heartbeat(struct slots *s, struct slots_ref ref, bool input, struct slots_clock now,
                                struct slots_event *ret_ev, char *msg, size_t msg_len);
/* ACTIVE -> GRACE for the reconnect window; GRACE again is EV_NONE. */
enum slots_code slots_client_lost(struct slots *s, struct slots_ref ref, struct slots_clock now,
                                  struct slots_event *ret_ev, char *msg, size_t msg_len);
/* RESERVED -> FREE; ACTIVE/GRACE -> ENDING (reason: [a-z0-9_]{1,32}); ENDING again is EV_NONE. */
enum slots_code slots_end(struct slots *s, struct slots_ref ref, const char *reason, struct slots_clock now,
                          struct slots_event *ret_ev, char *msg, size_t msg_len);
/* ENDING -> FREE once the caller has enforced the end (or had nothing to enforce). */
enum slots_code slots_release(struct slots *s, struct slots_ref ref, struct slots_clock now,
                              struct slots_event *ret_ev, char *msg, size_t msg_len);
/* A viewer joins the ACTIVE/GRACE session of ref with a role ([a-z0-9_]{1,32}); joining again
 * changes the role. Over the cap: ROLE_LIMIT. */
enum slots_code slots_viewer_join(struct slots *s, struct slots_ref ref, const char *viewer,
                                  const char *role, struct slots_clock now, struct slots_event *ret_ev,
                                  char *msg, size_t msg_len);
enum slots_code slots_viewer_leave(struct slots *s, struct slots_ref ref, const char *viewer,
                                   struct slots_clock now, struct slots_event *ret_ev, char *msg,
                                   size_t msg_len);
/* Draining: new users get DRAINING; users holding a slot keep it and may reconnect. Persisted. */
enum slots_code slots_drain(struct slots *s, bool drain, struct slots_clock now, struct slots_event *ret_ev,
                            char *msg, size_t msg_len);
/* BLOCKED -> FREE: an operator vouches that nobody plays in slot_id. */
enum slots_code slots_unblock(struct slots *s, const char *slot_id, struct slots_clock now,
                              struct slots_event *ret_ev, char *msg, size_t msg_len);

/* New limits (a reload), checked as slots_new does; deadlines already running keep their values. */
int slots_set_limits(struct slots *s, const struct slots_limits *l, char *msg, size_t msg_len);
/* New project bindings (a reload; as slots_config.slot_projects, checked as slots_new does): they
 * apply to reservations from now on; sessions already held keep their project. -EINVAL with msg,
 * and nothing changed, for an invalid project. Not persisted: the config is their source. */
int slots_set_projects(struct slots *s, const char *const *projects, char *msg, size_t msg_len);
/* Whether p is a valid project or app name: 1..64 of [A-Za-z0-9._@:-], as a user id. */
bool slots_valid_project(const char *p);

/* Group commit. Between slots_batch_begin and slots_batch_commit the operations (and slots_expire)
 * change the state in memory only and return SLOTS_OK without writing; slots_batch_commit writes the
 * state once for all of them. The caller must hold back every acknowledgement and event of the batch
 * until the commit: on failure (-errno, msg says what) every change since slots_batch_begin is
 * undone and each held acknowledgement becomes an INTERNAL error. Returns 1 when it wrote, 0 when
 * nothing had changed (or no batch was open). Nested begins are one batch. */
void slots_batch_begin(struct slots *s);
int slots_batch_commit(struct slots *s, char *msg, size_t msg_len);
/* Ends the batch without writing: every change since slots_batch_begin is undone; returns err
 * with msg saying so (the caller could not get ready what must be written with it). */
int slots_batch_fail(struct slots *s, int err, char *msg, size_t msg_len);
bool slots_in_batch(const struct slots *s);

/* What callers keep in slots.state with the state, each a member of its JSON that this module
 * writes and reads back as it is (it checks only the JSON type; its owner checks the content). */
enum slots_extra {
        SLOTS_EXTRA_JOURNAL,      /* "journal", an array: the metering records owed (journal.h) */
        SLOTS_EXTRA_COUNTERS,     /* "counters", an object: the byte counters (counters.h) */
        SLOTS_EXTRA_OPEN_MINUTES, /* "open_minutes", an object: billing's open bytes (billing.h) */
        SLOTS_EXTRAS,
};

/* Takes ownership of json (NULL: none) and has it written with the state from the next write on.
 * In a batch it is a change (the batch writes) when it differs from what the member held. After
 * slots_load, slots_extra is what the newest copy held (NULL when none); borrowed until the next
 * slots_set_extra of that member or slots_free. */
void slots_set_extra(struct slots *s, enum slots_extra k, char *json);
const char *slots_extra(const struct slots *s, enum slots_extra k);

/* The journal: records of the caller's that must be durable with the state they go with (the
 * metering records of a batch's transitions), as a JSON array text. slots_set_extra of
 * SLOTS_EXTRA_JOURNAL, except that in a batch any journal (not NULL) is a change (the batch
 * writes) and none (NULL) is not (the records the copy on disk owes are in the spool). */
void slots_set_journal(struct slots *s, char *json);
const char *slots_journal(const struct slots *s);

/* Shutting down: reserve, start and viewer_join get STOPPING from now on. Not persisted. */
void slots_set_stopping(struct slots *s);

/* Applies the timeouts: RESERVED past its lock ttl -> FREE (reserve_expired); GRACE past its
 * window -> ENDING (grace_expired); ACTIVE/GRACE past max session length -> ENDING (max_length);
 * ACTIVE idle -> ENDING (idle); ACTIVE without heartbeat -> GRACE (heartbeat_timeout). At most
 * one event per slot, written to ret_ev (room for `cap`; SLOTS_MAX always suffices; events past
 * cap are applied on the next call). Returns the number of events, or -errno when persisting
 * failed (then nothing changed and the next call tries again). */
int slots_expire(struct slots *s, struct slots_clock now, struct slots_event *ret_ev, size_t cap);

/* Whether any slot is in a state slots_expire has a deadline for (RESERVED, ACTIVE, GRACE): with
 * none, a caller need not open a batch to call it. */
bool slots_may_expire(const struct slots *s);

size_t slots_count(const struct slots *s);
bool slots_draining(const struct slots *s);
/* Slot i (< slots_count) in *ret; the strings are borrowed until the next call that changes s. */
void slots_get(const struct slots *s, size_t i, struct slots_info *ret);
/* Viewer k (< n_viewers of slots_get) of slot i; borrowed as slots_get's strings. */
void slots_get_viewer(const struct slots *s, size_t i, size_t k, const char **ret_user,
                      const char **ret_role);
/* The index of slot `id`, or -ENOENT. */
int slots_find(const struct slots *s, const char *id);
