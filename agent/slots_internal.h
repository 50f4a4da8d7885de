/* slots_internal.h: what slots.c (the state machine) and slots_store.c (its file) share; no other module. */
#pragma once

#include "slots.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct viewer {
        char user[SLOTS_USER_MAX + 1];
        char role[SLOTS_TOKEN_MAX + 1];
};

/* Times are kept twice: mono decides while the agent runs (wall-clock jumps move no deadline),
 * real is what the file holds. Mono values may wrap below zero after a restart: they are only
 * ever compared by unsigned difference. */
struct slot {
        char id[SLOTS_ID_MAX + 1];
        enum slots_state state;
        char user[SLOTS_USER_MAX + 1];
        char session[SLOTS_SESSION_LEN + 1];
        char client_ip[SLOTS_IP_MAX];
        char end_reason[SLOTS_TOKEN_MAX + 1];
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
        struct slot *slot;
        struct slot *saved; /* the state before the call in progress, put back when persisting fails */
        bool draining, saved_draining;
        bool stopping;
        bool batch, batch_dirty; /* inside slots_batch_begin..commit; something changed */
        struct slots_limits lim;
        int dir_fd;
        char *state_dir;
        slots_admissible_fn admissible;
        void *userdata;
        char expired[EXPIRED_RING][SLOTS_SESSION_LEN + 1];
        size_t expired_next;
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

bool slots__holds_session(const struct slot *sl);
void slots__clear_session(struct slot *sl);

/* Writes the whole state to slots.json (atomic replace, fsync); -errno. A no-op without a state dir. */
int slots__persist(struct slots *s);

/* Fills the caller's message buffer (named msg, msg_len in the function) and yields code. */
#define FAIL(code, ...)                                \
        ({                                             \
                slots__say(msg, msg_len, __VA_ARGS__); \
                (code);                                \
        })
