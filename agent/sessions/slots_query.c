/* slots_query.c: what the session state machine answers without changing: wire names of its codes,
 * states and events, validation of outside input, and read-only queries. */
#include "slots_internal.h"

#include "cleanup.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const code_names[] = {
        [SLOTS_OK] = "OK",
        [SLOTS_NO_IDLE] = "NO_IDLE",
        [SLOTS_SLOW_DOWN] = "SLOW_DOWN",
        [SLOTS_LOCK_TIMEOUT] = "LOCK_TIMEOUT",
        [SLOTS_SESSION_NOT_FOUND] = "SESSION_NOT_FOUND",
        [SLOTS_ROLE_LIMIT] = "ROLE_LIMIT",
        [SLOTS_STOPPING] = "STOPPING",
        [SLOTS_DRAINING] = "DRAINING",
        [SLOTS_BAD_REQUEST] = "BAD_REQUEST",
        [SLOTS_FORBIDDEN] = "FORBIDDEN",
        [SLOTS_INTERNAL] = "INTERNAL",
};

const char *slots_code_str(enum slots_code c) {
        return (unsigned)c < ELEMENTSOF(code_names) ? code_names[c] : "INTERNAL";
}

const char *const slots__state_names[SLOTS_STATE_COUNT] = {
        [SLOTS_FREE] = "free",   [SLOTS_RESERVED] = "reserved", [SLOTS_ACTIVE] = "active",
        [SLOTS_GRACE] = "grace", [SLOTS_ENDING] = "ending",     [SLOTS_BLOCKED] = "blocked",
};

const char *slots_state_str(enum slots_state s) {
        return (unsigned)s < ELEMENTSOF(slots__state_names) ? slots__state_names[s] : "unknown";
}

static const char *const event_names[] = {
        [SLOTS_EV_NONE] = "none",
        [SLOTS_EV_RESERVE] = "reserve",
        [SLOTS_EV_TAKEOVER] = "takeover",
        [SLOTS_EV_RESUME] = "resume",
        [SLOTS_EV_START] = "start",
        [SLOTS_EV_HEARTBEAT] = "heartbeat",
        [SLOTS_EV_GRACE] = "grace",
        [SLOTS_EV_ENDING] = "ending",
        [SLOTS_EV_FREED] = "freed",
        [SLOTS_EV_VIEWER_JOIN] = "viewer_join",
        [SLOTS_EV_VIEWER_LEAVE] = "viewer_leave",
        [SLOTS_EV_DRAIN] = "drain",
        [SLOTS_EV_UNDRAIN] = "undrain",
        [SLOTS_EV_UNBLOCK] = "unblock",
};

const char *slots_event_str(enum slots_event_kind k) {
        return (unsigned)k < ELEMENTSOF(event_names) ? event_names[k] : "unknown";
}

void slots_limits_default(struct slots_limits *l) {
        *l = (struct slots_limits){
                .lock_ttl_usec = 30 * UINT64_C(1000000),
                .grace_usec = 120 * UINT64_C(1000000),
                .viewers_max = 4,
        };
}

void slots__say(char *msg, size_t len, const char *fmt, ...) {
        va_list ap;

        if (!msg || len == 0)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, len, fmt, ap);
        va_end(ap);
}

void slots__copy(char *dst, size_t size, const char *src) {
        snprintf(dst, size, "%s", src ? src : "");
}

/* ---- validation of outside input ---- */

bool slots__valid_user(const char *u) {
        size_t n;

        if (!u)
                return false;
        n = strnlen(u, SLOTS_USER_MAX + 1);
        if (n == 0 || n > SLOTS_USER_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@:-", u[i]))
                        return false;
        return true;
}

bool slots__valid_token(const char *t) {
        size_t n;

        if (!t)
                return false;
        n = strnlen(t, SLOTS_TOKEN_MAX + 1);
        if (n == 0 || n > SLOTS_TOKEN_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789_", t[i]))
                        return false;
        return true;
}

bool slots__valid_session(const char *id) {
        if (!id || strnlen(id, SLOTS_SESSION_LEN + 1) != SLOTS_SESSION_LEN)
                return false;
        for (size_t i = 0; i < SLOTS_SESSION_LEN; i++)
                if (!strchr("0123456789abcdef", id[i]))
                        return false;
        return true;
}

bool slots__valid_ip(const char *ip) {
        unsigned char a[16];

        if (!ip || strnlen(ip, SLOTS_IP_MAX) >= SLOTS_IP_MAX)
                return false;
        return inet_pton(AF_INET, ip, a) == 1 || inet_pton(AF_INET6, ip, a) == 1;
}

bool slots__valid_slot_id(const char *id) {
        size_t n = id ? strnlen(id, SLOTS_ID_MAX + 1) : 0;

        return n > 0 && n <= SLOTS_ID_MAX;
}

/* ---- queries ---- */

size_t slots_count(const struct slots *s) {
        return s->n;
}

bool slots_draining(const struct slots *s) {
        return s->draining;
}

void slots_get(const struct slots *s, size_t i, struct slots_info *ret) {
        const struct slots_entry *sl = &s->slot[i];

        *ret = (struct slots_info){
                .id = sl->id,
                .state = sl->state,
                .user = sl->user,
                .session = sl->session,
                .client_ip = sl->client_ip,
                .deadline_real_usec = sl->deadline_real,
                .started_real_usec = sl->started_real,
                .n_viewers = sl->n_viewers,
                .end_reason = sl->end_reason,
                .project = sl->project,
                .app = sl->app,
                .bound_project = s->bound[i],
        };
}

void slots_get_viewer(const struct slots *s, size_t i, size_t k, const char **ret_user,
                      const char **ret_role) {
        *ret_user = s->slot[i].viewers[k].user;
        *ret_role = s->slot[i].viewers[k].role;
}

int slots_find(const struct slots *s, const char *id) {
        if (!slots__valid_slot_id(id))
                return -ENOENT;
        for (size_t i = 0; i < s->n; i++)
                if (!strcmp(s->slot[i].id, id))
                        return (int)i;
        return -ENOENT;
}

bool slots_may_expire(const struct slots *s) {
        for (size_t i = 0; i < s->n; i++)
                if (s->slot[i].state == SLOTS_RESERVED || s->slot[i].state == SLOTS_ACTIVE ||
                    s->slot[i].state == SLOTS_GRACE)
                        return true;
        return false;
}
