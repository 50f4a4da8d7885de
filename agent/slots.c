/* slots.c: the per-slot session state machine, the admission authority, persisted before every ack. */
#include "slots.h"

#include "cleanup.h"
#include "fileio.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

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
        struct slots_limits lim;
        int dir_fd;
        char *state_dir;
        slots_admissible_fn admissible;
        void *userdata;
        char expired[EXPIRED_RING][SLOTS_SESSION_LEN + 1];
        size_t expired_next;
};

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

static const char *const state_names[] = {
        [SLOTS_FREE] = "free",   [SLOTS_RESERVED] = "reserved", [SLOTS_ACTIVE] = "active",
        [SLOTS_GRACE] = "grace", [SLOTS_ENDING] = "ending",     [SLOTS_BLOCKED] = "blocked",
};

const char *slots_state_str(enum slots_state s) {
        return (unsigned)s < ELEMENTSOF(state_names) ? state_names[s] : "unknown";
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

__attribute__((format(printf, 3, 4))) static void say(char *msg, size_t len, const char *fmt, ...) {
        va_list ap;

        if (!msg || len == 0)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, len, fmt, ap);
        va_end(ap);
}

#define FAIL(code, ...)                         \
        ({                                      \
                say(msg, msg_len, __VA_ARGS__); \
                (code);                         \
        })

static void copy(char *dst, size_t size, const char *src) {
        snprintf(dst, size, "%s", src ? src : "");
}

/* ---- validation of outside input ---- */

static bool valid_user(const char *u) {
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

static bool valid_token(const char *t) {
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

static bool valid_session(const char *id) {
        if (!id || strnlen(id, SLOTS_SESSION_LEN + 1) != SLOTS_SESSION_LEN)
                return false;
        for (size_t i = 0; i < SLOTS_SESSION_LEN; i++)
                if (!strchr("0123456789abcdef", id[i]))
                        return false;
        return true;
}

static bool valid_ip(const char *ip) {
        unsigned char a[16];

        if (!ip || strnlen(ip, SLOTS_IP_MAX) >= SLOTS_IP_MAX)
                return false;
        return inet_pton(AF_INET, ip, a) == 1 || inet_pton(AF_INET6, ip, a) == 1;
}

static bool valid_slot_id(const char *id) {
        size_t n = id ? strnlen(id, SLOTS_ID_MAX + 1) : 0;

        return n > 0 && n <= SLOTS_ID_MAX;
}

/* Shown in messages: outside input that failed validation is not echoed. */
#define SHOWN(s, ok) ((ok) ? (s) : "(invalid)")

/* ---- time ---- */

/* now >= deadline, for mono values that may have wrapped. */
static bool passed(uint64_t now, uint64_t deadline) {
        return (int64_t)(now - deadline) >= 0;
}

/* ---- construction ---- */

int slots_new(const struct slots_config *cfg, struct slots **ret, char *msg, size_t msg_len) {
        const struct slots_limits *l = &cfg->limits;
        struct slots *s;

        if (cfg->n_slots == 0 || cfg->n_slots > SLOTS_MAX)
                return FAIL(-EINVAL, "slots: %zu slots configured, want 1..%d", cfg->n_slots, SLOTS_MAX);
        if (l->grace_usec < SLOTS_GRACE_MIN_S * UINT64_C(1000000) ||
            l->grace_usec > SLOTS_GRACE_MAX_S * UINT64_C(1000000))
                return FAIL(-EINVAL, "slots: reconnect window %" PRIu64 " s is outside %d..%d s",
                            l->grace_usec / 1000000, SLOTS_GRACE_MIN_S, SLOTS_GRACE_MAX_S);
        if (l->lock_ttl_usec == 0 || l->lock_ttl_usec > 3600 * UINT64_C(1000000))
                return FAIL(-EINVAL, "slots: lock ttl must be 1 us..3600 s");
        if (l->viewers_max > SLOTS_VIEWERS_MAX)
                return FAIL(-EINVAL, "slots: viewers cap %u is over the hard limit %d", l->viewers_max,
                            SLOTS_VIEWERS_MAX);
        for (size_t i = 0; i < cfg->n_slots; i++) {
                if (!valid_slot_id(cfg->slot_ids[i]))
                        return FAIL(-EINVAL, "slots: slot %zu: id must be 1..%d bytes", i, SLOTS_ID_MAX);
                for (size_t j = 0; j < i; j++)
                        if (!strcmp(cfg->slot_ids[i], cfg->slot_ids[j]))
                                return FAIL(-EINVAL, "slots: slot id \"%s\" appears twice",
                                            cfg->slot_ids[i]);
        }
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->n = cfg->n_slots;
        s->slot = calloc(s->n, sizeof(*s->slot));
        s->saved = calloc(s->n, sizeof(*s->saved));
        s->state_dir = strdup(cfg->state_dir ? cfg->state_dir : "state dir");
        if (!s->slot || !s->saved || !s->state_dir) {
                slots_free(s);
                return -ENOMEM;
        }
        for (size_t i = 0; i < s->n; i++)
                copy(s->slot[i].id, sizeof(s->slot[i].id), cfg->slot_ids[i]);
        s->lim = *l;
        s->dir_fd = cfg->state_dir_fd;
        s->admissible = cfg->admissible;
        s->userdata = cfg->userdata;
        *ret = s;
        return 0;
}

void slots_free(struct slots *s) {
        if (!s)
                return;
        free(s->slot);
        free(s->saved);
        free(s->state_dir);
        free(s);
}

/* ---- persistence ---- */

static bool add_num(cJSON *o, const char *k, uint64_t v) {
        return cJSON_AddNumberToObject(o, k, (double)v) != NULL;
}

static cJSON *slot_json(const struct slot *sl) {
        cJSON *o = cJSON_CreateObject(), *vs;
        bool ok;

        if (!o)
                return NULL;
        ok = cJSON_AddStringToObject(o, "id", sl->id) &&
             cJSON_AddStringToObject(o, "state", state_names[sl->state]);
        if (ok && sl->state != SLOTS_FREE && sl->state != SLOTS_BLOCKED)
                ok = cJSON_AddStringToObject(o, "user", sl->user) &&
                     cJSON_AddStringToObject(o, "session", sl->session) &&
                     cJSON_AddStringToObject(o, "client_ip", sl->client_ip);
        if (ok && (sl->state == SLOTS_RESERVED || sl->state == SLOTS_GRACE))
                ok = add_num(o, "deadline", sl->deadline_real);
        if (ok && (sl->state == SLOTS_ACTIVE || sl->state == SLOTS_GRACE || sl->state == SLOTS_ENDING))
                ok = add_num(o, "started", sl->started_real);
        if (ok && sl->state == SLOTS_ENDING)
                ok = cJSON_AddStringToObject(o, "reason", sl->end_reason) != NULL;
        if (ok && sl->n_viewers > 0) {
                vs = cJSON_AddArrayToObject(o, "viewers");
                ok = vs != NULL;
                for (size_t i = 0; ok && i < sl->n_viewers; i++) {
                        cJSON *v = cJSON_CreateObject();

                        ok = v && cJSON_AddItemToArray(vs, v) &&
                             cJSON_AddStringToObject(v, "user", sl->viewers[i].user) &&
                             cJSON_AddStringToObject(v, "role", sl->viewers[i].role);
                }
        }
        if (!ok) {
                cJSON_Delete(o);
                return NULL;
        }
        return o;
}

static int persist(struct slots *s) {
        _cleanup_free_ char *text = NULL;
        cJSON *root, *arr;
        bool ok;

        if (s->dir_fd < 0)
                return 0;
        root = cJSON_CreateObject();
        ok = root && cJSON_AddNumberToObject(root, "v", 1) &&
             cJSON_AddBoolToObject(root, "draining", s->draining) &&
             (arr = cJSON_AddArrayToObject(root, "slots"));
        for (size_t i = 0; ok && i < s->n; i++) {
                cJSON *o = slot_json(&s->slot[i]);

                ok = o && cJSON_AddItemToArray(arr, o);
                if (o && !ok)
                        cJSON_Delete(o);
        }
        if (ok)
                text = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        if (!text)
                return -ENOMEM;
        return plat_write_atomic_at(s->dir_fd, SLOTS_STATE_FILE, text, strlen(text), 0600);
}

/* Every mutating call: begin() before touching the state, commit() before acknowledging. */
static void begin(struct slots *s) {
        memcpy(s->saved, s->slot, s->n * sizeof(*s->slot));
        s->saved_draining = s->draining;
}

static void rollback(struct slots *s) {
        memcpy(s->slot, s->saved, s->n * sizeof(*s->slot));
        s->draining = s->saved_draining;
}

static enum slots_code commit(struct slots *s, char *msg, size_t msg_len) {
        int r = persist(s);

        if (r >= 0)
                return SLOTS_OK;
        rollback(s);
        return FAIL(SLOTS_INTERNAL, "cannot write %s/%s: %s; nothing changed", s->state_dir,
                    SLOTS_STATE_FILE, strerror(-r));
}

/* ---- helpers ---- */

static void new_session_id(char out[SLOTS_SESSION_LEN + 1]) {
        static uint64_t fallback;
        uint8_t b[SLOTS_SESSION_LEN / 2];

        if (getrandom(b, sizeof(b), GRND_NONBLOCK) != (ssize_t)sizeof(b)) {
                /* No entropy yet (early boot): unique within this process is what matters. */
                uint64_t x = ++fallback * UINT64_C(0x9e3779b97f4a7c15) ^ (uint64_t)getpid();

                for (size_t i = 0; i < sizeof(b); i++)
                        b[i] = (uint8_t)(x >> (8 * (i % 8))) ^ (uint8_t)i;
        }
        for (size_t i = 0; i < sizeof(b); i++)
                snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static void clear_session(struct slot *sl) {
        char id[SLOTS_ID_MAX + 1];

        memcpy(id, sl->id, sizeof(id));
        memset(sl, 0, sizeof(*sl));
        memcpy(sl->id, id, sizeof(id));
        sl->state = SLOTS_FREE;
}

static void event(const struct slots *s, struct slots_event *ev, enum slots_event_kind kind, size_t i,
                  const char *reason) {
        const struct slot *sl;

        if (!ev)
                return;
        memset(ev, 0, sizeof(*ev));
        ev->kind = kind;
        ev->slot = i;
        if (i == (size_t)-1)
                return;
        sl = &s->slot[i];
        ev->state = sl->state;
        copy(ev->user, sizeof(ev->user), sl->user);
        copy(ev->session, sizeof(ev->session), sl->session);
        copy(ev->client_ip, sizeof(ev->client_ip), sl->client_ip);
        copy(ev->reason, sizeof(ev->reason), reason);
}

static bool holds_session(const struct slot *sl) {
        return sl->state != SLOTS_FREE && sl->state != SLOTS_BLOCKED;
}

static int find_user(const struct slots *s, const char *user) {
        for (size_t i = 0; i < s->n; i++)
                if (holds_session(&s->slot[i]) && !strcmp(s->slot[i].user, user))
                        return (int)i;
        return -1;
}

static bool recently_expired(const struct slots *s, const char *session) {
        for (size_t i = 0; i < EXPIRED_RING; i++)
                if (!strcmp(s->expired[i], session))
                        return true;
        return false;
}

static void remember_expired(struct slots *s, const char *session) {
        copy(s->expired[s->expired_next], sizeof(s->expired[0]), session);
        s->expired_next = (s->expired_next + 1) % EXPIRED_RING;
}

/* The slot of a session named by ref. */
static enum slots_code lookup(const struct slots *s, struct slots_ref ref, size_t *ret, char *msg,
                              size_t msg_len) {
        int i = -1;

        if (!ref.session && !ref.user)
                return FAIL(SLOTS_BAD_REQUEST, "name the session or the user");
        if (ref.session && !valid_session(ref.session))
                return FAIL(SLOTS_BAD_REQUEST, "session id must be %d lower-case hex digits",
                            SLOTS_SESSION_LEN);
        if (ref.user && !valid_user(ref.user))
                return FAIL(SLOTS_BAD_REQUEST, "user id must be 1..%d of [A-Za-z0-9._@:-]", SLOTS_USER_MAX);
        if (ref.session) {
                for (size_t k = 0; k < s->n; k++)
                        if (holds_session(&s->slot[k]) && !strcmp(s->slot[k].session, ref.session))
                                i = (int)k;
                if (i < 0)
                        return FAIL(SLOTS_SESSION_NOT_FOUND, "no session %s", ref.session);
                if (ref.user && strcmp(s->slot[i].user, ref.user) != 0)
                        return FAIL(SLOTS_FORBIDDEN, "session %s belongs to another user, not %s",
                                    ref.session, ref.user);
        } else {
                i = find_user(s, ref.user);
                if (i < 0)
                        return FAIL(SLOTS_SESSION_NOT_FOUND, "user %s has no session", ref.user);
        }
        *ret = (size_t)i;
        return SLOTS_OK;
}

static bool admissible(const struct slots *s, size_t i) {
        return !s->admissible || s->admissible(s->userdata, i);
}

/* ---- operations ---- */

enum slots_code slots_reserve(struct slots *s, const char *user, const char *slot_id, const char *client_ip,
                              struct slots_clock now, struct slots_event *ret_ev, char *msg,
                              size_t msg_len) {
        enum slots_event_kind kind;
        struct slot *sl;
        size_t busy = 0, barred = 0;
        int want = -1, i;
        enum slots_code c;

        if (!valid_user(user))
                return FAIL(SLOTS_BAD_REQUEST, "user id must be 1..%d of [A-Za-z0-9._@:-]", SLOTS_USER_MAX);
        if (client_ip && !valid_ip(client_ip))
                return FAIL(SLOTS_BAD_REQUEST, "client_ip is not an IPv4 or IPv6 address");
        if (slot_id) {
                want = slots_find(s, slot_id);
                if (want < 0)
                        return FAIL(SLOTS_BAD_REQUEST, "no slot \"%s\" on this node",
                                    SHOWN(slot_id, valid_slot_id(slot_id)));
        }
        if (s->stopping)
                return FAIL(SLOTS_STOPPING, "the agent is stopping; it takes no sessions");

        i = find_user(s, user);
        if (i >= 0) {
                /* One user, one slot: the user's own slot back, whatever state it is in. */
                sl = &s->slot[i];
                if (want >= 0 && want != i)
                        return FAIL(SLOTS_BAD_REQUEST,
                                    "user %s holds slot %s; a user holds one slot at a time", user, sl->id);
                if (sl->state == SLOTS_ENDING)
                        return FAIL(SLOTS_SLOW_DOWN,
                                    "the session of user %s in slot %s is ending; retry shortly", user,
                                    sl->id);
                begin(s);
                if (sl->state == SLOTS_RESERVED) {
                        kind = SLOTS_EV_RESERVE;
                        sl->deadline_mono = now.mono_usec + s->lim.lock_ttl_usec;
                        sl->deadline_real = now.real_usec + s->lim.lock_ttl_usec;
                } else if (sl->state == SLOTS_ACTIVE) {
                        kind = SLOTS_EV_TAKEOVER;
                } else {
                        kind = SLOTS_EV_RESUME;
                        sl->state = SLOTS_ACTIVE;
                        sl->deadline_mono = sl->deadline_real = 0;
                }
                if (sl->state == SLOTS_ACTIVE)
                        sl->last_hb_mono = sl->last_input_mono = now.mono_usec;
                copy(sl->client_ip, sizeof(sl->client_ip), client_ip);
                c = commit(s, msg, msg_len);
                if (c == SLOTS_OK)
                        event(s, ret_ev, kind, (size_t)i, NULL);
                return c;
        }
        if (s->draining)
                return FAIL(SLOTS_DRAINING, "the node is draining; it takes no new sessions");
        if (want >= 0) {
                sl = &s->slot[want];
                if (sl->state == SLOTS_BLOCKED)
                        return FAIL(
                                SLOTS_NO_IDLE,
                                "slot %s is blocked: its state was unreadable at startup; an operator must "
                                "unblock it",
                                sl->id);
                if (sl->state != SLOTS_FREE)
                        return FAIL(SLOTS_NO_IDLE, "slot %s is busy with another user", sl->id);
                if (!admissible(s, (size_t)want))
                        return FAIL(SLOTS_NO_IDLE, "slot %s is not admissible: it does not meet its scale",
                                    sl->id);
                i = want;
        } else {
                for (size_t k = 0; k < s->n && i < 0; k++) {
                        if (s->slot[k].state != SLOTS_FREE)
                                busy++;
                        else if (!admissible(s, k))
                                barred++;
                        else
                                i = (int)k;
                }
                if (i < 0)
                        return FAIL(SLOTS_NO_IDLE, "no free slot: %zu busy or blocked, %zu not admissible",
                                    busy, barred);
        }
        begin(s);
        sl = &s->slot[i];
        clear_session(sl);
        sl->state = SLOTS_RESERVED;
        copy(sl->user, sizeof(sl->user), user);
        copy(sl->client_ip, sizeof(sl->client_ip), client_ip);
        new_session_id(sl->session);
        sl->deadline_mono = now.mono_usec + s->lim.lock_ttl_usec;
        sl->deadline_real = now.real_usec + s->lim.lock_ttl_usec;
        c = commit(s, msg, msg_len);
        if (c == SLOTS_OK)
                event(s, ret_ev, SLOTS_EV_RESERVE, (size_t)i, NULL);
        return c;
}

enum slots_code slots_start(struct slots *s, struct slots_ref ref, struct slots_clock now,
                            struct slots_event *ret_ev, char *msg, size_t msg_len) {
        enum slots_event_kind kind;
        struct slot *sl;
        enum slots_code c;
        size_t i;

        if (s->stopping)
                return FAIL(SLOTS_STOPPING, "the agent is stopping; it takes no sessions");
        c = lookup(s, ref, &i, msg, msg_len);
        if (c == SLOTS_SESSION_NOT_FOUND && (ref.session ? recently_expired(s, ref.session) : true))
                return FAIL(SLOTS_LOCK_TIMEOUT, "no live reservation for %s %s; reserve again",
                            ref.session ? "session" : "user", ref.session ? ref.session : ref.user);
        if (c != SLOTS_OK)
                return c;
        sl = &s->slot[i];
        switch (sl->state) {
        case SLOTS_RESERVED:
                if (passed(now.mono_usec, sl->deadline_mono))
                        return FAIL(SLOTS_LOCK_TIMEOUT,
                                    "the reservation %s in slot %s has expired; reserve again", sl->session,
                                    sl->id);
                kind = SLOTS_EV_START;
                break;
        case SLOTS_ACTIVE:
                event(s, ret_ev, SLOTS_EV_NONE, i, NULL);
                return SLOTS_OK;
        case SLOTS_GRACE:
                kind = SLOTS_EV_RESUME;
                break;
        default:
                return FAIL(SLOTS_SLOW_DOWN, "the session %s in slot %s is ending; retry shortly",
                            sl->session, sl->id);
        }
        begin(s);
        if (kind == SLOTS_EV_START) {
                sl->started_mono = now.mono_usec;
                sl->started_real = now.real_usec;
        }
        sl->state = SLOTS_ACTIVE;
        sl->deadline_mono = sl->deadline_real = 0;
        sl->last_hb_mono = sl->last_input_mono = now.mono_usec;
        c = commit(s, msg, msg_len);
        if (c == SLOTS_OK)
                event(s, ret_ev, kind, i, NULL);
        return c;
}

enum slots_code slots_heartbeat(struct slots *s, struct slots_ref ref, bool input, struct slots_clock now,
                                struct slots_event *ret_ev, char *msg, size_t msg_len) {
        enum slots_code c;
        struct slot *sl;
        size_t i;

        c = lookup(s, ref, &i, msg, msg_len);
        if (c != SLOTS_OK)
                return c;
        sl = &s->slot[i];
        /* Timers only, nothing the file holds: no write. */
        if (sl->state != SLOTS_ACTIVE) {
                event(s, ret_ev, SLOTS_EV_NONE, i, NULL);
                return SLOTS_OK;
        }
        sl->last_hb_mono = now.mono_usec;
        if (input)
                sl->last_input_mono = now.mono_usec;
        event(s, ret_ev, SLOTS_EV_HEARTBEAT, i, NULL);
        return SLOTS_OK;
}

static void enter_grace(struct slots *s, struct slot *sl, struct slots_clock now) {
        sl->state = SLOTS_GRACE;
        sl->deadline_mono = now.mono_usec + s->lim.grace_usec;
        sl->deadline_real = now.real_usec + s->lim.grace_usec;
}

static void enter_ending(struct slot *sl, const char *reason) {
        sl->state = SLOTS_ENDING;
        copy(sl->end_reason, sizeof(sl->end_reason), reason);
        sl->deadline_mono = sl->deadline_real = 0;
        /* Viewers go with the host's session. */
        sl->n_viewers = 0;
        memset(sl->viewers, 0, sizeof(sl->viewers));
}

enum slots_code slots_client_lost(struct slots *s, struct slots_ref ref, struct slots_clock now,
                                  struct slots_event *ret_ev, char *msg, size_t msg_len) {
        enum slots_code c;
        size_t i;

        c = lookup(s, ref, &i, msg, msg_len);
        if (c != SLOTS_OK)
                return c;
        if (s->slot[i].state != SLOTS_ACTIVE) {
                event(s, ret_ev, SLOTS_EV_NONE, i, NULL);
                return SLOTS_OK;
        }
        begin(s);
        enter_grace(s, &s->slot[i], now);
        c = commit(s, msg, msg_len);
        if (c == SLOTS_OK)
                event(s, ret_ev, SLOTS_EV_GRACE, i, "client_lost");
        return c;
}

enum slots_code slots_end(struct slots *s, struct slots_ref ref, const char *reason, struct slots_clock now,
                          struct slots_event *ret_ev, char *msg, size_t msg_len) {
        struct slots_event ev;
        enum slots_code c;
        struct slot *sl;
        size_t i;

        (void)now;
        if (!valid_token(reason))
                return FAIL(SLOTS_BAD_REQUEST, "reason must be 1..%d of [a-z0-9_]", SLOTS_TOKEN_MAX);
        c = lookup(s, ref, &i, msg, msg_len);
        if (c != SLOTS_OK)
                return c;
        sl = &s->slot[i];
        if (sl->state == SLOTS_ENDING) {
                event(s, ret_ev, SLOTS_EV_NONE, i, sl->end_reason);
                return SLOTS_OK;
        }
        begin(s);
        if (sl->state == SLOTS_RESERVED) {
                /* Nothing runs yet, nothing to enforce. The event names the user who held it. */
                event(s, &ev, SLOTS_EV_FREED, i, reason);
                ev.state = SLOTS_FREE;
                clear_session(sl);
        } else {
                enter_ending(sl, reason);
                event(s, &ev, SLOTS_EV_ENDING, i, reason);
        }
        c = commit(s, msg, msg_len);
        if (c == SLOTS_OK && ret_ev)
                *ret_ev = ev;
        return c;
}

enum slots_code slots_release(struct slots *s, struct slots_ref ref, struct slots_clock now,
                              struct slots_event *ret_ev, char *msg, size_t msg_len) {
        struct slots_event ev;
        enum slots_code c;
        size_t i;

        (void)now;
        c = lookup(s, ref, &i, msg, msg_len);
        if (c != SLOTS_OK)
                return c;
        if (s->slot[i].state != SLOTS_ENDING)
                return FAIL(SLOTS_BAD_REQUEST, "session %s in slot %s is %s, not ending: end it first",
                            s->slot[i].session, s->slot[i].id, state_names[s->slot[i].state]);
        event(s, &ev, SLOTS_EV_FREED, i, s->slot[i].end_reason);
        begin(s);
        clear_session(&s->slot[i]);
        c = commit(s, msg, msg_len);
        if (c != SLOTS_OK)
                return c;
        ev.state = SLOTS_FREE;
        if (ret_ev)
                *ret_ev = ev;
        return SLOTS_OK;
}

/* The ACTIVE/GRACE slot a viewer op names. */
static enum slots_code viewer_slot(const struct slots *s, struct slots_ref ref, const char *viewer,
                                   size_t *ret, char *msg, size_t msg_len) {
        enum slots_code c;
        const struct slot *sl;
        size_t i;

        if (!valid_user(viewer))
                return FAIL(SLOTS_BAD_REQUEST, "viewer id must be 1..%d of [A-Za-z0-9._@:-]",
                            SLOTS_USER_MAX);
        c = lookup(s, ref, &i, msg, msg_len);
        if (c != SLOTS_OK)
                return c;
        sl = &s->slot[i];
        if (sl->state == SLOTS_ENDING)
                return FAIL(SLOTS_SLOW_DOWN, "the session %s in slot %s is ending", sl->session, sl->id);
        if (sl->state != SLOTS_ACTIVE && sl->state != SLOTS_GRACE)
                return FAIL(SLOTS_BAD_REQUEST,
                            "the session %s in slot %s has not started; viewers join "
                            "started sessions",
                            sl->session, sl->id);
        *ret = i;
        return SLOTS_OK;
}

enum slots_code slots_viewer_join(struct slots *s, struct slots_ref ref, const char *viewer,
                                  const char *role, struct slots_clock now, struct slots_event *ret_ev,
                                  char *msg, size_t msg_len) {
        struct slot *sl;
        enum slots_code c;
        size_t i, k;

        (void)now;
        if (s->stopping)
                return FAIL(SLOTS_STOPPING, "the agent is stopping; it takes no viewers");
        if (!valid_token(role))
                return FAIL(SLOTS_BAD_REQUEST, "role must be 1..%d of [a-z0-9_]", SLOTS_TOKEN_MAX);
        c = viewer_slot(s, ref, viewer, &i, msg, msg_len);
        if (c != SLOTS_OK)
                return c;
        sl = &s->slot[i];
        if (!strcmp(viewer, sl->user))
                return FAIL(SLOTS_BAD_REQUEST, "user %s hosts session %s; a host is not its own viewer",
                            viewer, sl->session);
        for (k = 0; k < sl->n_viewers; k++)
                if (!strcmp(sl->viewers[k].user, viewer))
                        break;
        if (k == sl->n_viewers && sl->n_viewers >= s->lim.viewers_max)
                return FAIL(SLOTS_ROLE_LIMIT, "session %s has its %u viewers", sl->session,
                            s->lim.viewers_max);
        if (k < sl->n_viewers && !strcmp(sl->viewers[k].role, role)) {
                event(s, ret_ev, SLOTS_EV_NONE, i, NULL);
                return SLOTS_OK;
        }
        begin(s);
        if (k == sl->n_viewers) {
                sl->n_viewers++;
                copy(sl->viewers[k].user, sizeof(sl->viewers[k].user), viewer);
        }
        copy(sl->viewers[k].role, sizeof(sl->viewers[k].role), role);
        c = commit(s, msg, msg_len);
        if (c != SLOTS_OK)
                return c;
        event(s, ret_ev, SLOTS_EV_VIEWER_JOIN, i, NULL);
        if (ret_ev)
                copy(ret_ev->viewer, sizeof(ret_ev->viewer), viewer);
        return SLOTS_OK;
}

enum slots_code slots_viewer_leave(struct slots *s, struct slots_ref ref, const char *viewer,
                                   struct slots_clock now, struct slots_event *ret_ev, char *msg,
                                   size_t msg_len) {
        struct slot *sl;
        enum slots_code c;
        size_t i, k;

        (void)now;
        c = viewer_slot(s, ref, viewer, &i, msg, msg_len);
        if (c != SLOTS_OK)
                return c;
        sl = &s->slot[i];
        for (k = 0; k < sl->n_viewers; k++)
                if (!strcmp(sl->viewers[k].user, viewer))
                        break;
        if (k == sl->n_viewers)
                return FAIL(SLOTS_SESSION_NOT_FOUND, "viewer %s is not in session %s", viewer, sl->session);
        begin(s);
        memmove(&sl->viewers[k], &sl->viewers[k + 1], (sl->n_viewers - k - 1) * sizeof(sl->viewers[0]));
        sl->n_viewers--;
        memset(&sl->viewers[sl->n_viewers], 0, sizeof(sl->viewers[0]));
        c = commit(s, msg, msg_len);
        if (c != SLOTS_OK)
                return c;
        event(s, ret_ev, SLOTS_EV_VIEWER_LEAVE, i, NULL);
        if (ret_ev)
                copy(ret_ev->viewer, sizeof(ret_ev->viewer), viewer);
        return SLOTS_OK;
}

enum slots_code slots_drain(struct slots *s, bool drain, struct slots_clock now, struct slots_event *ret_ev,
                            char *msg, size_t msg_len) {
        enum slots_code c;

        (void)now;
        if (s->draining == drain) {
                event(s, ret_ev, SLOTS_EV_NONE, (size_t)-1, NULL);
                return SLOTS_OK;
        }
        begin(s);
        s->draining = drain;
        c = commit(s, msg, msg_len);
        if (c == SLOTS_OK)
                event(s, ret_ev, drain ? SLOTS_EV_DRAIN : SLOTS_EV_UNDRAIN, (size_t)-1, NULL);
        return c;
}

enum slots_code slots_unblock(struct slots *s, const char *slot_id, struct slots_clock now,
                              struct slots_event *ret_ev, char *msg, size_t msg_len) {
        enum slots_code c;
        int i;

        (void)now;
        i = slot_id ? slots_find(s, slot_id) : -1;
        if (i < 0)
                return FAIL(SLOTS_BAD_REQUEST, "no slot \"%s\" on this node",
                            SHOWN(slot_id, valid_slot_id(slot_id)));
        if (s->slot[i].state != SLOTS_BLOCKED)
                return FAIL(SLOTS_BAD_REQUEST, "slot %s is %s, not blocked", s->slot[i].id,
                            state_names[s->slot[i].state]);
        begin(s);
        clear_session(&s->slot[i]);
        c = commit(s, msg, msg_len);
        if (c == SLOTS_OK)
                event(s, ret_ev, SLOTS_EV_UNBLOCK, (size_t)i, NULL);
        return c;
}

void slots_set_stopping(struct slots *s) {
        s->stopping = true;
}

int slots_expire(struct slots *s, struct slots_clock now, struct slots_event *ret_ev, size_t cap) {
        struct slots_event evs[SLOTS_MAX];
        size_t n = 0;
        uint64_t t = now.mono_usec;
        int r;

        begin(s);
        for (size_t i = 0; i < s->n && n < cap; i++) {
                struct slot *sl = &s->slot[i];
                const struct slots_limits *l = &s->lim;

                if (sl->state == SLOTS_RESERVED && passed(t, sl->deadline_mono)) {
                        event(s, &evs[n++], SLOTS_EV_FREED, i, "reserve_expired");
                        evs[n - 1].state = SLOTS_FREE;
                        clear_session(sl);
                } else if ((sl->state == SLOTS_ACTIVE || sl->state == SLOTS_GRACE) && l->max_session_usec &&
                           t - sl->started_mono >= l->max_session_usec) {
                        enter_ending(sl, "max_length");
                        event(s, &evs[n++], SLOTS_EV_ENDING, i, "max_length");
                } else if (sl->state == SLOTS_GRACE && passed(t, sl->deadline_mono)) {
                        enter_ending(sl, "grace_expired");
                        event(s, &evs[n++], SLOTS_EV_ENDING, i, "grace_expired");
                } else if (sl->state == SLOTS_ACTIVE && l->idle_usec &&
                           t - sl->last_input_mono >= l->idle_usec) {
                        enter_ending(sl, "idle");
                        event(s, &evs[n++], SLOTS_EV_ENDING, i, "idle");
                } else if (sl->state == SLOTS_ACTIVE && l->heartbeat_timeout_usec &&
                           t - sl->last_hb_mono >= l->heartbeat_timeout_usec) {
                        enter_grace(s, sl, now);
                        event(s, &evs[n++], SLOTS_EV_GRACE, i, "heartbeat_timeout");
                }
        }
        if (n == 0)
                return 0;
        r = persist(s);
        if (r < 0) {
                rollback(s);
                return r;
        }
        for (size_t k = 0; k < n; k++) {
                if (evs[k].kind == SLOTS_EV_FREED)
                        remember_expired(s, evs[k].session);
                if (ret_ev)
                        ret_ev[k] = evs[k];
        }
        return (int)n;
}

/* ---- queries ---- */

size_t slots_count(const struct slots *s) {
        return s->n;
}

bool slots_draining(const struct slots *s) {
        return s->draining;
}

void slots_get(const struct slots *s, size_t i, struct slots_info *ret) {
        const struct slot *sl = &s->slot[i];

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
        };
}

int slots_find(const struct slots *s, const char *id) {
        if (!valid_slot_id(id))
                return -ENOENT;
        for (size_t i = 0; i < s->n; i++)
                if (!strcmp(s->slot[i].id, id))
                        return (int)i;
        return -ENOENT;
}

/* ---- restore ---- */

/* 2^53: past it a JSON number is no longer an exact integer. */
#define MAX_EXACT 9007199254740992.0

static bool get_time(const cJSON *o, const char *k, uint64_t *ret) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= MAX_EXACT) ||
            floor(v->valuedouble) != v->valuedouble)
                return false;
        *ret = (uint64_t)v->valuedouble;
        return true;
}

static const char *get_str(const cJSON *o, const char *k) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

        return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A wall-clock deadline as a mono one; a deadline further away than `span` (the clock went back
 * while we were down) is cut to span, so that no slot stays booked for ever. */
static void restore_deadline(struct slot *sl, struct slots_clock now, uint64_t span) {
        uint64_t left = sl->deadline_real > now.real_usec ? sl->deadline_real - now.real_usec : 0;

        if (left > span) {
                left = span;
                sl->deadline_real = now.real_usec + span;
        }
        sl->deadline_mono = now.mono_usec + left;
}

#define BAD(...)                                \
        do {                                    \
                say(msg, msg_len, __VA_ARGS__); \
                r = -EBADMSG;                   \
                goto out;                       \
        } while (0)

static int parse_slot(const cJSON *o, size_t k, struct slot *sl, char *msg, size_t msg_len) {
        const char *st = get_str(o, "state"), *user, *session, *ip, *reason;
        const cJSON *vs, *v;
        int r = 0;

        sl->state = SLOTS_BLOCKED + 1;
        for (size_t j = 0; st && j < ELEMENTSOF(state_names); j++)
                if (!strcmp(st, state_names[j]))
                        sl->state = (enum slots_state)j;
        if (sl->state > SLOTS_BLOCKED)
                BAD("slots[%zu].state: want one of free, reserved, active, grace, ending, blocked", k);
        if (sl->state == SLOTS_FREE || sl->state == SLOTS_BLOCKED)
                goto out;
        user = get_str(o, "user");
        session = get_str(o, "session");
        ip = get_str(o, "client_ip");
        if (!valid_user(user))
                BAD("slots[%zu].user: missing or not a valid user id", k);
        if (!valid_session(session))
                BAD("slots[%zu].session: missing or not %d hex digits", k, SLOTS_SESSION_LEN);
        if (ip && *ip && !valid_ip(ip))
                BAD("slots[%zu].client_ip: not an IP address", k);
        copy(sl->user, sizeof(sl->user), user);
        copy(sl->session, sizeof(sl->session), session);
        copy(sl->client_ip, sizeof(sl->client_ip), ip);
        if ((sl->state == SLOTS_RESERVED || sl->state == SLOTS_GRACE) &&
            !get_time(o, "deadline", &sl->deadline_real))
                BAD("slots[%zu].deadline: missing or not a time in microseconds", k);
        if (sl->state != SLOTS_RESERVED && !get_time(o, "started", &sl->started_real))
                BAD("slots[%zu].started: missing or not a time in microseconds", k);
        if (sl->state == SLOTS_ENDING) {
                reason = get_str(o, "reason");
                if (!valid_token(reason))
                        BAD("slots[%zu].reason: missing or not a reason token", k);
                copy(sl->end_reason, sizeof(sl->end_reason), reason);
        }
        vs = cJSON_GetObjectItemCaseSensitive(o, "viewers");
        if (!vs)
                goto out;
        if (!cJSON_IsArray(vs) || cJSON_GetArraySize(vs) > SLOTS_VIEWERS_MAX)
                BAD("slots[%zu].viewers: not an array of at most %d viewers", k, SLOTS_VIEWERS_MAX);
        if (cJSON_GetArraySize(vs) > 0 && sl->state != SLOTS_ACTIVE && sl->state != SLOTS_GRACE)
                BAD("slots[%zu].viewers: a %s slot has no viewers", k, state_names[sl->state]);
        cJSON_ArrayForEach(v, vs) {
                const char *vu = get_str(v, "user"), *role = get_str(v, "role");

                if (!valid_user(vu) || !valid_token(role) || !strcmp(vu, sl->user))
                        BAD("slots[%zu].viewers[%zu]: want a user id other than the host's and a role", k,
                            sl->n_viewers);
                for (size_t j = 0; j < sl->n_viewers; j++)
                        if (!strcmp(sl->viewers[j].user, vu))
                                BAD("slots[%zu].viewers[%zu]: viewer listed twice", k, sl->n_viewers);
                copy(sl->viewers[sl->n_viewers].user, sizeof(sl->viewers[0].user), vu);
                copy(sl->viewers[sl->n_viewers].role, sizeof(sl->viewers[0].role), role);
                sl->n_viewers++;
        }
out:
        return r;
}

int slots_restore(struct slots *s, const char *buf, size_t len, struct slots_clock now, char *msg,
                  size_t msg_len) {
        _cleanup_free_ struct slot *tmp = NULL;
        _cleanup_free_ bool *seen = NULL;
        const cJSON *v, *arr, *o, *dr;
        cJSON *root = NULL;
        size_t k = 0;
        int r = 0;

        if (len > SLOTS_STATE_MAX_BYTES)
                return FAIL(-EBADMSG, "%zu bytes, more than the %d a state file may hold", len,
                            SLOTS_STATE_MAX_BYTES);
        tmp = calloc(s->n, sizeof(*tmp));
        seen = calloc(s->n, sizeof(*seen));
        if (!tmp || !seen)
                return -ENOMEM;
        for (size_t i = 0; i < s->n; i++)
                copy(tmp[i].id, sizeof(tmp[i].id), s->slot[i].id);
        if (len == 0)
                BAD("empty file");
        root = cJSON_ParseWithLength(buf, len);
        if (!root)
                BAD("not JSON (truncated or corrupt)");
        if (!cJSON_IsObject(root))
                BAD("not a JSON object");
        v = cJSON_GetObjectItemCaseSensitive(root, "v");
        if (!cJSON_IsNumber(v) || v->valuedouble != 1)
                BAD("\"v\": missing or not 1 (a state file of another version)");
        dr = cJSON_GetObjectItemCaseSensitive(root, "draining");
        if (dr && !cJSON_IsBool(dr))
                BAD("\"draining\": not true or false");
        arr = cJSON_GetObjectItemCaseSensitive(root, "slots");
        if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) > SLOTS_MAX)
                BAD("\"slots\": missing or not an array of at most %d slots", SLOTS_MAX);
        cJSON_ArrayForEach(o, arr) {
                struct slot one;
                const char *id;
                int i = -1;

                if (!cJSON_IsObject(o))
                        BAD("slots[%zu]: not an object", k);
                id = get_str(o, "id");
                if (!valid_slot_id(id))
                        BAD("slots[%zu].id: missing or not 1..%d bytes", k, SLOTS_ID_MAX);
                memset(&one, 0, sizeof(one));
                r = parse_slot(o, k, &one, msg, msg_len);
                if (r < 0)
                        goto out;
                for (size_t j = 0; j < s->n; j++)
                        if (!strcmp(tmp[j].id, id))
                                i = (int)j;
                /* A slot the config no longer has can hold nobody here: dropped. */
                if (i >= 0) {
                        if (seen[i])
                                BAD("slots[%zu].id: slot \"%s\" listed twice", k, id);
                        seen[i] = true;
                        copy(one.id, sizeof(one.id), id);
                        tmp[i] = one;
                }
                k++;
        }
        for (size_t i = 0; i < s->n; i++)
                for (size_t j = 0; j < i; j++)
                        if (holds_session(&tmp[i]) && holds_session(&tmp[j]) &&
                            (!strcmp(tmp[i].user, tmp[j].user) || !strcmp(tmp[i].session, tmp[j].session)))
                                BAD("slots %s and %s hold the same user or session", tmp[j].id, tmp[i].id);
        for (size_t i = 0; i < s->n; i++) {
                struct slot *sl = &tmp[i];
                uint64_t ago;

                if (sl->state == SLOTS_RESERVED) {
                        if (sl->deadline_real <= now.real_usec) {
                                clear_session(sl);
                                continue;
                        }
                        restore_deadline(sl, now, s->lim.lock_ttl_usec);
                } else if (sl->state == SLOTS_GRACE) {
                        restore_deadline(sl, now, s->lim.grace_usec);
                }
                if (sl->state == SLOTS_ACTIVE || sl->state == SLOTS_GRACE || sl->state == SLOTS_ENDING) {
                        /* Started ago: a start in the future (the clock went back) counts as now. */
                        ago = sl->started_real < now.real_usec ? now.real_usec - sl->started_real : 0;
                        sl->started_mono = now.mono_usec - ago; /* may wrap: compared by difference */
                        /* Nobody could heartbeat while the agent was down. */
                        sl->last_hb_mono = sl->last_input_mono = now.mono_usec;
                }
        }
        memcpy(s->slot, tmp, s->n * sizeof(*tmp));
        s->draining = cJSON_IsTrue(dr);
out:
        cJSON_Delete(root);
        return r;
}

int slots_load(struct slots *s, struct slots_clock now, char *msg, size_t msg_len) {
        _cleanup_free_ char *buf = NULL;
        char why[SLOTS_MSG_MAX] = "", aside[64];
        size_t len = 0;
        int r, w;

        if (s->dir_fd < 0)
                return 0;
        r = plat_read_file_at(s->dir_fd, SLOTS_STATE_FILE, SLOTS_STATE_MAX_BYTES, &buf, &len);
        if (r == -ENOENT) {
                /* First start: every slot FREE, and the file exists from now on. */
                r = persist(s);
                if (r < 0)
                        return FAIL(r, "%s/%s: cannot write: %s", s->state_dir, SLOTS_STATE_FILE,
                                    strerror(-r));
                return 0;
        }
        if (r == -EFBIG) {
                snprintf(why, sizeof(why), "more than %d bytes", SLOTS_STATE_MAX_BYTES);
                r = -EBADMSG;
        } else if (r < 0)
                snprintf(why, sizeof(why), "cannot read: %s", strerror(-r));
        else
                r = slots_restore(s, buf, len, now, why, sizeof(why));
        if (r == -ENOMEM)
                return FAIL(r, "%s/%s: out of memory", s->state_dir, SLOTS_STATE_FILE);
        if (r >= 0) {
                /* Written back at once: an expired reservation freed here stays freed. */
                r = persist(s);
                if (r < 0)
                        return FAIL(r, "%s/%s: cannot write: %s", s->state_dir, SLOTS_STATE_FILE,
                                    strerror(-r));
                return 0;
        }
        /* Who plays where is unknown: block every slot rather than free one by accident. */
        for (size_t i = 0; i < s->n; i++) {
                clear_session(&s->slot[i]);
                s->slot[i].state = SLOTS_BLOCKED;
        }
        snprintf(aside, sizeof(aside), "%s.corrupt-%" PRIu64, SLOTS_STATE_FILE, now.real_usec / 1000000);
        if (renameat(s->dir_fd, SLOTS_STATE_FILE, s->dir_fd, aside) < 0) {
                w = -errno;
                /* Not written over: the file may be all there is to go by. */
                return FAIL(r,
                            "%s/%s: %s; every slot is blocked until an operator unblocks it (could not "
                            "keep the file aside: %s)",
                            s->state_dir, SLOTS_STATE_FILE, why, strerror(-w));
        }
        w = persist(s);
        return FAIL(r,
                    "%s/%s: %s; kept aside as %s, every slot is blocked until an operator unblocks it%s%s",
                    s->state_dir, SLOTS_STATE_FILE, why, aside,
                    w < 0 ? "; cannot write the new state: " : "", w < 0 ? strerror(-w) : "");
}
