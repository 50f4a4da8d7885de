/* slots_internal.h: what slots.c (the state machine), slots_query.c, slots_project.c and slots_store.c
 * (its file) share; no other module. */
#pragma once

#include "slots.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct viewer {
        char user[SLOTS_USER_MAX + 1];
        char role[SLOTS_TOKEN_MAX + 1];
};

/* One slot as the state machine keeps it (the daemon's slot object is struct slot, slot.h). Times are
 * kept twice: mono decides while the agent runs (wall-clock jumps move no deadline),
 * real is what the file holds. Mono values may wrap below zero after a restart: they are only
 * ever compared by unsigned difference. */
struct slots_entry {
        char id[SLOTS_ID_MAX + 1];
        enum slots_state state;
        char user[SLOTS_USER_MAX + 1];
        char session[SLOTS_SESSION_LEN + 1];
        char client_ip[SLOTS_IP_MAX];
        char end_reason[SLOTS_TOKEN_MAX + 1];
        char project[SLOTS_PROJECT_MAX + 1]; /* the session's billing dimensions; "" none */
        char app[SLOTS_APP_MAX + 1];
        uint64_t deadline_mono, deadline_real;  /* RESERVED: lock expiry; GRACE: window end */
        uint64_t started_mono, started_real;    /* ACTIVE, GRACE, ENDING */
        uint64_t last_hb_mono, last_input_mono; /* ACTIVE: not persisted, reset on restore */
        size_t n_viewers;
        struct viewer viewers[SLOTS_VIEWERS_MAX];
};

/* Sessions whose reservation expired lately: a late start gets LOCK_TIMEOUT, not SESSION_NOT_FOUND. */
#define EXPIRED_RING (2 * SLOTS_MAX)

struct slots {
        size_t n;
        struct slots_entry *slot;
        struct slots_entry
                *saved; /* the state before the call in progress, put back when persisting fails */
        bool draining, saved_draining;
        bool stopping;
        bool batch, batch_dirty; /* inside slots_batch_begin..commit; something changed */
        struct slots_limits lim;
        int dir_fd;
        char *state_dir;
        slots_admissible_fn admissible;
        void *userdata;
        char (*bound)[SLOTS_PROJECT_MAX + 1]; /* per slot: the project it is bound to; "" unbound */
        char expired[EXPIRED_RING][SLOTS_SESSION_LEN + 1];
        size_t expired_next;
        /* slots.state (slots_store.c): the generation of the newest copy on disk (0: none yet) and
         * the region the next write goes to, the one not holding it. Zeroed by slots_new. */
        uint64_t store_gen;
        size_t store_next;
        /* The callers' members written with the state (slots_set_extra), or read back with it. */
        char *extra[SLOTS_EXTRAS];
};

#define SLOTS_STATE_COUNT (SLOTS_BLOCKED + 1)
extern const char *const slots__state_names[SLOTS_STATE_COUNT];

void slots__say(char *msg, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void slots__copy(char *dst, size_t size, const char *src);

/* Validation of outside input (user ids, roles and reasons, session ids, addresses, slot ids). */
bool slots__valid_user(const char *u);
bool slots__valid_token(const char *t);
bool slots__valid_session(const char *id);
bool slots__valid_ip(const char *ip);
bool slots__valid_slot_id(const char *id);

/* Project bindings (slots_project.c). -EINVAL with msg when a project of projects (NULL: none
 * bound; else per slot NULL or "" for unbound) is not valid. */
int slots__check_projects(size_t n, const char *const *ids, const char *const *projects, char *msg,
                          size_t msg_len);
/* How well free slot i suits a reservation for project (NULL: none given): 0 bound to it (without
 * one: unbound), 1 unbound (without one: bound, its project taken), -1 bound to another. */
int slots__fit(const struct slots *s, size_t i, const char *project);
/* The free admissible slot a reservation for project takes: the best fit, then the first; -1 with
 * msg saying why there is none (NO_IDLE). */
int slots__pick(const struct slots *s, const char *project, char *msg, size_t msg_len);

bool slots__holds_session(const struct slots_entry *sl);
void slots__clear_session(struct slots_entry *sl);

/* Writes the whole state to the region of slots.state not holding the newest copy, and
 * fdatasyncs it; creates the file (atomically, preallocated) when it is missing. -errno; on
 * failure the newest copy on disk is still the one before. A no-op without a state dir. */
int slots__persist(struct slots *s);

/* slots.state: two regions of SLOTS__REGION_BYTES at offsets 0 and SLOTS__REGION_BYTES, each a
 * header and a JSON payload (what slots_restore reads). Header, little-endian: magic u32 ("RAST"),
 * version u32, generation u64, payload length u32, CRC-32C u32 over the 16 bytes of version,
 * generation and length as stored, then the payload. A region whose header or CRC does not check
 * is invalid; the valid region of the higher generation is the state. Regions are 4 KiB-aligned
 * and share no block, so a torn write of one cannot touch the other. */
#define SLOTS__LEGACY_FILE "slots.json" /* one JSON copy, replaced atomically (before slots.state) */
#define SLOTS__MAGIC UINT32_C(0x54534152)
#define SLOTS__VERSION 1
#define SLOTS__HDR_BYTES 24
#define SLOTS__REGION_BYTES (SLOTS_STATE_MAX_BYTES + 4096)
#define SLOTS__FILE_BYTES (2 * SLOTS__REGION_BYTES)

/* A valid region of a slots.state image. */
struct slots__frame {
        size_t region;       /* 0 or 1 */
        uint64_t gen;        /* >= 1 */
        const char *payload; /* borrowed from the image; len bytes, no NUL */
        size_t len;
};

/* The newest valid region of the len bytes at image (any length: a region it cuts short is
 * invalid). 0 and *ret, or -EBADMSG when neither region is valid, msg saying why for each. */
int slots__frame_pick(const void *image, size_t len, struct slots__frame *ret, char *msg, size_t msg_len);
/* The header of a region holding the len bytes at payload (len <= SLOTS_STATE_MAX_BYTES) as generation gen.
 */
void slots__frame_header(uint8_t hdr[SLOTS__HDR_BYTES], uint64_t gen, const void *payload, size_t len);

/* Fills the caller's message buffer (named msg, msg_len in the function) and yields code. */
#define FAIL(code, ...)                                \
        ({                                             \
                slots__say(msg, msg_len, __VA_ARGS__); \
                (code);                                \
        })
