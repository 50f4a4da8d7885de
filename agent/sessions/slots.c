/* slots.c: the per-slot session state machine, the admission authority, persisted before every ack. */
#include "slots_internal.h"

#include "cleanup.h"
#include "strutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Shown in messages: outside input that failed validation is not echoed. */
#define SHOWN(s, ok) ((ok) ? (s) : "(invalid)")

/* ---- time ---- */

/* now >= deadline, for mono values that may have wrapped. */
static bool passed(uint64_t now, uint64_t deadline) {
        return (int64_t)(now - deadline) >= 0;
}

/* ---- construction ---- */

static int check_limits(const struct slots_limits *l, char *msg, size_t msg_len) {
        if (l->grace_usec < SLOTS_GRACE_MIN_S * UINT64_C(1000000) ||
            l->grace_usec > SLOTS_GRACE_MAX_S * UINT64_C(1000000))
                return FAIL(-EINVAL, "slots: reconnect window %" PRIu64 " s is outside %d..%d s",
                            l->grace_usec / 1000000, SLOTS_GRACE_MIN_S, SLOTS_GRACE_MAX_S);
        if (l->lock_ttl_usec == 0 || l->lock_ttl_usec > 3600 * UINT64_C(1000000))
                return FAIL(-EINVAL, "slots: lock ttl must be 1 us..3600 s");
        if (l->viewers_max > SLOTS_VIEWERS_MAX)
                return FAIL(-EINVAL, "slots: viewers cap %u is over the hard limit %d", l->viewers_max,
                            SLOTS_VIEWERS_MAX);
        return 0;
}

int slots_new(const struct slots_config *cfg, struct slots **ret, char *msg, size_t msg_len) {
        struct slots *s;
        int r;

        if (cfg->n_slots == 0 || cfg->n_slots > SLOTS_MAX)
                return FAIL(-EINVAL, "slots: %zu slots configured, want 1..%d", cfg->n_slots, SLOTS_MAX);
        r = check_limits(&cfg->limits, msg, msg_len);
        if (r < 0)
                return r;
        for (size_t i = 0; i < cfg->n_slots; i++) {
                if (!slots__valid_slot_id(cfg->slot_ids[i]))
                        return FAIL(-EINVAL, "slots: slot %zu: id must be 1..%d bytes", i, SLOTS_ID_MAX);
                for (size_t j = 0; j < i; j++)
                        if (!strcmp(cfg->slot_ids[i], cfg->slot_ids[j]))
                                return FAIL(-EINVAL, "slots: slot id \"%s\" appears twice",
                                            cfg->slot_ids[i]);
        }
        r = slots__check_projects(cfg->n_slots, cfg->slot_ids, cfg->slot_projects, msg, msg_len);
        if (r < 0)
                return r;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->n = cfg->n_slots;
        s->slot = calloc(s->n, sizeof(*s->slot));
        s->saved = calloc(s->n, sizeof(*s->saved));
        s->bound = calloc(s->n, sizeof(*s->bound));
        s->state_dir = strdup(cfg->state_dir ? cfg->state_dir : "state dir");
        if (!s->slot || !s->saved || !s->bound || !s->state_dir) {
                slots_free(s);
                return -ENOMEM;
        }
        for (size_t i = 0; i < s->n; i++) {
                slots__copy(s->slot[i].id, sizeof(s->slot[i].id), cfg->slot_ids[i]);
                if (cfg->slot_projects)
                        slots__copy(s->bound[i], sizeof(s->bound[i]), cfg->slot_projects[i]);
        }
        s->lim = cfg->limits;
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
        free(s->bound);
        free(s->state_dir);
        for (size_t k = 0; k < SLOTS_EXTRAS; k++)
                free(s->extra[k]);
        free(s);
}

/* Every mutating call: begin() before touching the state, commit() before acknowledging. Inside a
 * batch the snapshot is the one taken at slots_batch_begin and commit() only marks the state dirty:
 * slots_batch_commit writes once for the whole batch. */
static void begin(struct slots *s) {
        if (s->batch)
                return;
        memcpy(s->saved, s->slot, s->n * sizeof(*s->slot));
        s->saved_draining = s->draining;
}

static void rollback(struct slots *s) {
        memcpy(s->slot, s->saved, s->n * sizeof(*s->slot));
        s->draining = s->saved_draining;
}

static enum slots_code commit(struct slots *s, char *msg, size_t msg_len) {
        int r;

        if (s->batch) {
                s->batch_dirty = true;
                return SLOTS_OK;
        }
        r = slots__persist(s);

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

void slots__clear_session(struct slots_entry *sl) {
        char id[SLOTS_ID_MAX + 1];

        memcpy(id, sl->id, sizeof(id));
        memset(sl, 0, sizeof(*sl));
        memcpy(sl->id, id, sizeof(id));
        sl->state = SLOTS_FREE;
}

static void event(const struct slots *s, struct slots_event *ev, enum slots_event_kind kind, size_t i,
                  const char *reason) {
        const struct slots_entry *sl;

        if (!ev)
                return;
        memset(ev, 0, sizeof(*ev));
        ev->kind = kind;
        ev->slot = i;
        if (i == (size_t)-1)
                return;
        sl = &s->slot[i];
        ev->state = sl->state;
        slots__copy(ev->user, sizeof(ev->user), sl->user);
        slots__copy(ev->session, sizeof(ev->session), sl->session);
        slots__copy(ev->client_ip, sizeof(ev->client_ip), sl->client_ip);
        slots__copy(ev->reason, sizeof(ev->reason), reason);
        ev->started_real_usec = sl->started_real;
        slots__copy(ev->project, sizeof(ev->project), sl->project);
        slots__copy(ev->app, sizeof(ev->app), sl->app);
}

bool slots__holds_session(const struct slots_entry *sl) {
        return sl->state != SLOTS_FREE && sl->state != SLOTS_BLOCKED;
}

static int find_user(const struct slots *s, const char *user) {
        for (size_t i = 0; i < s->n; i++)
                if (slots__holds_session(&s->slot[i]) && !strcmp(s->slot[i].user, user))
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
        slots__copy(s->expired[s->expired_next], sizeof(s->expired[0]), session);
        s->expired_next = (s->expired_next + 1) % EXPIRED_RING;
}

/* The slot of a session named by ref. */
static enum slots_code lookup(const struct slots *s, struct slots_ref ref, size_t *ret, char *msg,
                              size_t msg_len) {
        int i = -1;

        if (!ref.session && !ref.user)
                return FAIL(SLOTS_BAD_REQUEST, "name the session or the user");
        if (ref.session && !slots__valid_session(ref.session))
                return FAIL(SLOTS_BAD_REQUEST, "session id must be %d lower-case hex digits",
                            SLOTS_SESSION_LEN);
        if (ref.user && !slots__valid_user(ref.user))
                return FAIL(SLOTS_BAD_REQUEST, "user id must be 1..%d of [A-Za-z0-9._@:-]", SLOTS_USER_MAX);
        if (ref.session) {
                for (size_t k = 0; k < s->n; k++)
                        if (slots__holds_session(&s->slot[k]) && !strcmp(s->slot[k].session, ref.session))
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

static const char *or_none(const char *v) {
        return v[0] ? v : "(none)";
}

enum slots_code slots_reserve(struct slots *s, const char *user, const char *slot_id, const char *client_ip,
                              struct slots_clock now, struct slots_event *ret_ev, char *msg,
                              size_t msg_len) {
        struct slots_reserve_req req = { .user = user, .slot_id = slot_id, .client_ip = client_ip };

        return slots_reserve_for(s, &req, now, ret_ev, msg, msg_len);
}

enum slots_code slots_reserve_for(struct slots *s, const struct slots_reserve_req *req,
                                  struct slots_clock now, struct slots_event *ret_ev, char *msg,
                                  size_t msg_len) {
        const char *user = req->user, *slot_id = req->slot_id, *client_ip = req->client_ip;
        const char *project = req->project, *app = req->app;
        enum slots_event_kind kind;
        struct slots_entry *sl;
        int want = -1, i;
        enum slots_code c;

        if (!slots__valid_user(user))
                return FAIL(SLOTS_BAD_REQUEST, "user id must be 1..%d of [A-Za-z0-9._@:-]", SLOTS_USER_MAX);
        if (project && !slots_valid_project(project))
                return FAIL(SLOTS_BAD_REQUEST, "project must be 1..%d of [A-Za-z0-9._@:-]",
                            SLOTS_PROJECT_MAX);
        if (app && !slots_valid_project(app))
                return FAIL(SLOTS_BAD_REQUEST, "app must be 1..%d of [A-Za-z0-9._@:-]", SLOTS_APP_MAX);
        if (client_ip && !slots__valid_ip(client_ip))
                return FAIL(SLOTS_BAD_REQUEST, "client_ip is not an IPv4 or IPv6 address");
        if (slot_id) {
                want = slots_find(s, slot_id);
                if (want < 0)
                        return FAIL(SLOTS_BAD_REQUEST, "no slot \"%s\" on this node",
                                    SHOWN(slot_id, slots__valid_slot_id(slot_id)));
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
                /* Its billing dimensions are the session's, for its whole length. */
                if ((project && strcmp(project, sl->project)) || (app && strcmp(app, sl->app)))
                        return FAIL(SLOTS_BAD_REQUEST,
                                    "user %s holds session %s of project %s, app %s; a user holds one "
                                    "session at a time: end it first",
                                    user, sl->session, or_none(sl->project), or_none(sl->app));
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
                slots__copy(sl->client_ip, sizeof(sl->client_ip), client_ip);
                c = commit(s, msg, msg_len);
                if (c == SLOTS_OK)
                        event(s, ret_ev, kind, (size_t)i, NULL);
                return c;
        }
        if (s->draining)
                return FAIL(SLOTS_DRAINING, "the node is draining; it takes no new sessions");
        if (want >= 0) {
                sl = &s->slot[want];
                if (slots__fit(s, (size_t)want, project) < 0)
                        return FAIL(SLOTS_FORBIDDEN,
                                    "slot %s is bound to project %s; project %s cannot use it", sl->id,
                                    s->bound[want], project);
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
                i = slots__pick(s, project, msg, msg_len);
                if (i < 0)
                        return SLOTS_NO_IDLE;
        }
        begin(s);
        sl = &s->slot[i];
        slots__clear_session(sl);
        sl->state = SLOTS_RESERVED;
        slots__copy(sl->user, sizeof(sl->user), user);
        slots__copy(sl->client_ip, sizeof(sl->client_ip), client_ip);
        slots__copy(sl->project, sizeof(sl->project), project ? project : s->bound[i]);
        slots__copy(sl->app, sizeof(sl->app), app);
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
        struct slots_entry *sl;
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
        struct slots_entry *sl;
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

static void enter_grace(struct slots *s, struct slots_entry *sl, struct slots_clock now) {
        sl->state = SLOTS_GRACE;
        sl->deadline_mono = now.mono_usec + s->lim.grace_usec;
        sl->deadline_real = now.real_usec + s->lim.grace_usec;
}

static void enter_ending(struct slots_entry *sl, const char *reason) {
        sl->state = SLOTS_ENDING;
        slots__copy(sl->end_reason, sizeof(sl->end_reason), reason);
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
        struct slots_entry *sl;
        size_t i;

        (void)now;
        if (!slots__valid_token(reason))
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
                slots__clear_session(sl);
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
                            s->slot[i].session, s->slot[i].id, slots__state_names[s->slot[i].state]);
        event(s, &ev, SLOTS_EV_FREED, i, s->slot[i].end_reason);
        begin(s);
        slots__clear_session(&s->slot[i]);
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
        const struct slots_entry *sl;
        size_t i;

        if (!slots__valid_user(viewer))
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
        struct slots_entry *sl;
        enum slots_code c;
        size_t i, k;

        (void)now;
        if (s->stopping)
                return FAIL(SLOTS_STOPPING, "the agent is stopping; it takes no viewers");
        if (!slots__valid_token(role))
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
                slots__copy(sl->viewers[k].user, sizeof(sl->viewers[k].user), viewer);
        }
        slots__copy(sl->viewers[k].role, sizeof(sl->viewers[k].role), role);
        c = commit(s, msg, msg_len);
        if (c != SLOTS_OK)
                return c;
        event(s, ret_ev, SLOTS_EV_VIEWER_JOIN, i, NULL);
        if (ret_ev) {
                slots__copy(ret_ev->viewer, sizeof(ret_ev->viewer), viewer);
                slots__copy(ret_ev->role, sizeof(ret_ev->role), role);
        }
        return SLOTS_OK;
}

enum slots_code slots_viewer_leave(struct slots *s, struct slots_ref ref, const char *viewer,
                                   struct slots_clock now, struct slots_event *ret_ev, char *msg,
                                   size_t msg_len) {
        struct slots_entry *sl;
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
                slots__copy(ret_ev->viewer, sizeof(ret_ev->viewer), viewer);
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
                            SHOWN(slot_id, slots__valid_slot_id(slot_id)));
        if (s->slot[i].state != SLOTS_BLOCKED)
                return FAIL(SLOTS_BAD_REQUEST, "slot %s is %s, not blocked", s->slot[i].id,
                            slots__state_names[s->slot[i].state]);
        begin(s);
        slots__clear_session(&s->slot[i]);
        c = commit(s, msg, msg_len);
        if (c == SLOTS_OK)
                event(s, ret_ev, SLOTS_EV_UNBLOCK, (size_t)i, NULL);
        return c;
}

int slots_set_limits(struct slots *s, const struct slots_limits *l, char *msg, size_t msg_len) {
        int r = check_limits(l, msg, msg_len);

        if (r < 0)
                return r;
        s->lim = *l;
        return 0;
}

void slots_batch_begin(struct slots *s) {
        if (s->batch)
                return;
        begin(s);
        s->batch = true;
        s->batch_dirty = false;
}

bool slots_in_batch(const struct slots *s) {
        return s->batch;
}

int slots_batch_commit(struct slots *s, char *msg, size_t msg_len) {
        int r;

        if (!s->batch)
                return 0;
        s->batch = false;
        if (!s->batch_dirty)
                return 0;
        r = slots__persist(s);
        if (r >= 0)
                return 1;
        rollback(s);
        return FAIL(r, "cannot write %s/%s: %s; every change since the last write is undone", s->state_dir,
                    SLOTS_STATE_FILE, strerror(-r));
}

int slots_batch_fail(struct slots *s, int err, char *msg, size_t msg_len) {
        if (s->batch) {
                s->batch = false;
                rollback(s);
        }
        return FAIL(err,
                    "the batch's records could not be made ready for %s/%s: %s; every change since the last "
                    "write is undone",
                    s->state_dir, SLOTS_STATE_FILE, strerror(-err));
}

void slots_set_extra(struct slots *s, enum slots_extra k, char *json) {
        if (s->batch && !plat_streq_ptr(s->extra[k], json))
                s->batch_dirty = true;
        free(s->extra[k]);
        s->extra[k] = json;
}

const char *slots_extra(const struct slots *s, enum slots_extra k) {
        return s->extra[k];
}

/* No journal is no change: the records the copy on disk owes are in the spool already. */
void slots_set_journal(struct slots *s, char *json) {
        if (json && s->batch)
                s->batch_dirty = true;
        free(s->extra[SLOTS_EXTRA_JOURNAL]);
        s->extra[SLOTS_EXTRA_JOURNAL] = json;
}

const char *slots_journal(const struct slots *s) {
        return slots_extra(s, SLOTS_EXTRA_JOURNAL);
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
                struct slots_entry *sl = &s->slot[i];
                const struct slots_limits *l = &s->lim;

                if (sl->state == SLOTS_RESERVED && passed(t, sl->deadline_mono)) {
                        event(s, &evs[n++], SLOTS_EV_FREED, i, "reserve_expired");
                        evs[n - 1].state = SLOTS_FREE;
                        slots__clear_session(sl);
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
        if (s->batch)
                s->batch_dirty = true;
        else {
                r = slots__persist(s);
                if (r < 0) {
                        rollback(s);
                        return r;
                }
        }
        for (size_t k = 0; k < n; k++) {
                if (evs[k].kind == SLOTS_EV_FREED)
                        remember_expired(s, evs[k].session);
                if (ret_ev)
                        ret_ev[k] = evs[k];
        }
        return (int)n;
}
