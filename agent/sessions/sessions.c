/* sessions.c: the admission service: session ops from the control socket and MQTT commands, group-
 * committed to the slots state machine, turned into events, forced ends enforced before reuse. */
#include "sessions.h"

#include "cleanup.h"
#include "clock.h"
#include "counters.h"
#include "enforce.h"
#include "fileio.h"
#include "flows.h"
#include "log.h"
#include "strutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PENDING_MAX (2 * SESSIONS_BATCH_MAX + 2 * SLOTS_MAX)
#define TIMER_USEC (1000 * 1000ULL)

struct sessions {
        sd_event *event;
        const struct cfg *cfg;
        int root_fd, state_fd;
        struct slots *slots;
        struct enforce *enforce;
        struct sessions_hooks hooks;
        sd_event_source *commit_src, *timer;
        struct slots_event pending[PENDING_MAX];
        size_t n_pending, batch_ops;
        char inflight[SESSIONS_BATCH_MAX][SLOTS_USER_MAX + 1]; /* users with an op in the open batch */
        size_t n_inflight;
        struct slot_bytes bytes[SLOTS_MAX];
        uint64_t retry_at[SLOTS_MAX];     /* mono: when a failed enforcement is tried again */
        bool failure_reported[SLOTS_MAX]; /* one enforcement_failed event per session */
        uint64_t commits, commit_failures;
        /* The byte counters changed since they were last written: the next commit writes them. */
        bool counters_dirty;
        char last_error[SLOTS_MSG_MAX];
};

static const char *const flow_names[SESSIONS_FLOWS] = { "player", "viewers", "push" };

const char *sessions_flow_str(enum sessions_flow f) {
        return f < SESSIONS_FLOWS ? flow_names[f] : "?";
}

static struct slots_clock clock_now(void) {
        return (struct slots_clock){ .mono_usec = plat_now_mono_usec(), .real_usec = plat_now_real_usec() };
}

/* ---- events ---- */

static const char *event_type(const struct slots_event *ev) {
        switch (ev->kind) {
        case SLOTS_EV_RESERVE:
                return "session_reserve";
        case SLOTS_EV_TAKEOVER:
                return "session_takeover";
        case SLOTS_EV_RESUME:
                return "session_resume";
        case SLOTS_EV_START:
                return "session_start";
        case SLOTS_EV_GRACE:
                return "session_grace";
        case SLOTS_EV_ENDING:
                return "session_ending";
        case SLOTS_EV_FREED:
                return !strcmp(ev->reason, "reserve_expired") ? "reserve_expired" : "session_end";
        case SLOTS_EV_VIEWER_JOIN:
                return "viewer_join";
        case SLOTS_EV_VIEWER_LEAVE:
                return "viewer_leave";
        case SLOTS_EV_DRAIN:
                return "node_drain";
        case SLOTS_EV_UNDRAIN:
                return "node_undrain";
        case SLOTS_EV_UNBLOCK:
                return "slot_unblock";
        default:
                return NULL;
        }
}

static void add_time(cJSON *o, const char *key, uint64_t real_usec) {
        char ts[40];

        if (real_usec)
                cJSON_AddStringToObject(o, key, plat_format_rfc3339_ms(real_usec, ts, sizeof(ts)));
}

/* The session's push targets stop with it. */
static void stop_pushes(struct sessions *s, const struct slots_event *ev) {
        const struct slot_bytes *b = &s->bytes[ev->slot];

        if (!s->hooks.push || strcmp(b->session, ev->session))
                return;
        for (size_t k = 0; k < b->n; k++)
                if (b->peers[k].flow == SESSIONS_FLOW_PUSH && b->peers[k].announced)
                        s->hooks.push(ev->slot, ev->session, b->peers[k].id, false, s->hooks.userdata);
}

/* A transition of the batch being written, to the meter: its records are made now, to be
 * written with the state. */
static void transition(struct sessions *s, const struct slots_event *ev) {
        if (ev->kind == SLOTS_EV_ENDING)
                stop_pushes(s, ev);
        if (s->hooks.transition)
                s->hooks.transition(ev, s->hooks.userdata);
}

/* A transition on disk, as an event. */
static void emit(struct sessions *s, const struct slots_event *ev) {
        const char *type = event_type(ev);
        cJSON *f;

        if (!type || !s->hooks.event)
                return;
        f = cJSON_CreateObject();
        if (!f)
                return;
        if (ev->slot != (size_t)-1) {
                struct slots_info info;

                slots_get(s->slots, ev->slot, &info);
                cJSON_AddStringToObject(f, "slot", info.id);
                cJSON_AddStringToObject(f, "state", slots_state_str(ev->state));
        }
        if (ev->user[0])
                cJSON_AddStringToObject(f, "user", ev->user);
        if (ev->session[0])
                cJSON_AddStringToObject(f, "session", ev->session);
        if (ev->project[0])
                cJSON_AddStringToObject(f, "project", ev->project);
        if (ev->app[0])
                cJSON_AddStringToObject(f, "app", ev->app);
        if (ev->reason[0])
                cJSON_AddStringToObject(f, "reason", ev->reason);
        if (ev->viewer[0])
                cJSON_AddStringToObject(f, "viewer", ev->viewer);
        if (ev->role[0])
                cJSON_AddStringToObject(f, "role", ev->role);
        if (ev->client_ip[0] &&
            (ev->kind == SLOTS_EV_RESERVE || ev->kind == SLOTS_EV_TAKEOVER || ev->kind == SLOTS_EV_RESUME))
                cJSON_AddStringToObject(f, "client_ip", ev->client_ip);
        add_time(f, "started", ev->started_real_usec);
        s->hooks.event(type, f, s->hooks.userdata);
}

/* ---- group commit ---- */

static int commit(struct sessions *s);

static void open_batch(struct sessions *s) {
        if (slots_in_batch(s->slots))
                return;
        slots_batch_begin(s->slots);
        sd_event_source_set_enabled(s->commit_src, SD_EVENT_ONESHOT);
}

static void record(struct sessions *s, const struct slots_event *ev) {
        if (ev->kind == SLOTS_EV_NONE || ev->kind == SLOTS_EV_HEARTBEAT)
                return;
        if (s->n_pending < PENDING_MAX) /* room is made before each op: see make_room() */
                s->pending[s->n_pending++] = *ev;
}

/* Before an op: a batch that is full is written first, so its events all fit. */
static void make_room(struct sessions *s) {
        if (s->batch_ops >= SESSIONS_BATCH_MAX || s->n_pending + 2 * SLOTS_MAX + 4 > PENDING_MAX)
                (void)commit(s);
        open_batch(s);
        s->batch_ops++;
}

static void start_enforcement(struct sessions *s, size_t i) {
        struct slots_info info;

        slots_get(s->slots, i, &info);
        if (info.state != SLOTS_ENDING || enforce_running(s->enforce, i))
                return;
        s->retry_at[i] = 0;
        (void)enforce_start(s->enforce, i, info.user, info.session, info.end_reason);
}

/* What is written with the batch's state besides it: the records owed (hooks.journal), the bytes
 * of billing's open minutes (hooks.open_minutes) and the byte counters, so that a reply to
 * report_bytes is sent once the counters it moved, and the bytes it counted, are durable. */
static int extras(struct sessions *s) {
        char *json = NULL;
        int r;

        if (s->hooks.journal) {
                r = s->hooks.journal(s->hooks.userdata, &json);
                if (r < 0)
                        return r;
                slots_set_journal(s->slots, json);
        }
        if (s->hooks.open_minutes) {
                json = NULL;
                r = s->hooks.open_minutes(s->hooks.userdata, &json);
                if (r < 0)
                        return r;
                if (r > 0)
                        slots_set_extra(s->slots, SLOTS_EXTRA_OPEN_MINUTES, json);
        }
        if (s->counters_dirty) {
                json = counters_json(s->bytes, s->slots);
                if (!json)
                        return -ENOMEM;
                slots_set_extra(s->slots, SLOTS_EXTRA_COUNTERS, json);
        }
        return 0;
}

static int commit(struct sessions *s) {
        struct slots_event done[PENDING_MAX];
        char msg[SLOTS_MSG_MAX] = "";
        size_t n = s->n_pending;
        int r;

        if (!slots_in_batch(s->slots))
                return 0;
        sd_event_source_set_enabled(s->commit_src, SD_EVENT_OFF);
        memcpy(done, s->pending, n * sizeof(done[0]));
        s->n_pending = s->n_inflight = s->batch_ops = 0;
        /* The batch's records are made first and written with its state: one fdatasync makes a
         * transition and its records durable together, before any reply or event. */
        for (size_t k = 0; k < n; k++) {
                transition(s, &done[k]);
                /* A freed slot's counters leave slots.state with the session. */
                if (done[k].kind == SLOTS_EV_FREED && s->bytes[done[k].slot].session[0])
                        s->counters_dirty = true;
        }
        r = extras(s);
        if (r < 0)
                r = slots_batch_fail(s->slots, r, msg, sizeof(msg));
        else
                r = slots_batch_commit(s->slots, msg, sizeof(msg));
        if (r < 0) {
                s->commit_failures++;
                plat_strlcpy(s->last_error, msg, sizeof(s->last_error));
                if (s->hooks.committed)
                        s->hooks.committed(false, msg, s->hooks.userdata);
                return r;
        }
        if (r > 0)
                s->commits++;
        s->counters_dirty = false;
        for (size_t k = 0; k < n; k++)
                emit(s, &done[k]);
        if (s->hooks.committed)
                s->hooks.committed(true, NULL, s->hooks.userdata);
        /* Only now is the end on disk: a restart would enforce it again, never forget it. */
        for (size_t k = 0; k < n; k++)
                if (done[k].kind == SLOTS_EV_ENDING)
                        start_enforcement(s, done[k].slot);
        return r;
}

static int on_commit(sd_event_source *src, void *ud) {
        (void)src;
        (void)commit(ud);
        return 0;
}

/* An enforcement finished: the slot is given back, or stays ENDING and is tried again later. */
static void on_enforced(size_t slot, const char *session, int r, const char *why, void *ud) {
        struct sessions *s = ud;
        struct slots_event ev;
        char msg[SLOTS_MSG_MAX];

        if (r < 0) {
                if (!s->failure_reported[slot])
                        log_warn("slot %s: enforcing the end of session %s failed: %s; the slot stays "
                                 "ending and "
                                 "is tried again every %llu s (render-agentctl release frees it by hand)",
                                 s->cfg->slots[slot].id, session, why,
                                 (unsigned long long)(SESSIONS_RETRY_USEC / 1000000));
                s->retry_at[slot] = plat_now_mono_usec() + SESSIONS_RETRY_USEC;
                snprintf(s->last_error, sizeof(s->last_error), "slot %s: enforcement failed: %s",
                         s->cfg->slots[slot].id, why);
                if (!s->failure_reported[slot] && s->hooks.event) {
                        cJSON *f = cJSON_CreateObject();

                        cJSON_AddStringToObject(f, "slot", s->cfg->slots[slot].id);
                        cJSON_AddStringToObject(f, "session", session);
                        cJSON_AddStringToObject(f, "error", why);
                        cJSON_AddNumberToObject(f, "retry_s", (double)(SESSIONS_RETRY_USEC / 1000000));
                        s->hooks.event("enforcement_failed", f, s->hooks.userdata);
                }
                s->failure_reported[slot] = true;
                return;
        }
        s->failure_reported[slot] = false;
        open_batch(s);
        if (slots_release(s->slots, (struct slots_ref){ .session = session }, clock_now(), &ev, msg,
                          sizeof(msg)) == SLOTS_OK)
                record(s, &ev);
}

/* Every second: write what is open (its ends start their enforcement), retry failed or
 * restored ends, then apply the timeouts in a new batch. An idle node opens none: its empty
 * commit would cost a snapshot of every slot and one more turn of the loop each second. */
static int on_timer(sd_event_source *src, uint64_t usec, void *ud) {
        struct sessions *s = ud;
        struct slots_event evs[SLOTS_MAX];
        uint64_t now = plat_now_mono_usec();
        int n;

        sd_event_source_set_time(src, usec + TIMER_USEC);
        (void)commit(s);
        for (size_t i = 0; i < slots_count(s->slots); i++)
                if ((int64_t)(now - s->retry_at[i]) >= 0)
                        start_enforcement(s, i);
        if (!slots_may_expire(s->slots))
                return 0;
        open_batch(s);
        n = slots_expire(s->slots, clock_now(), evs, SLOTS_MAX);
        for (int k = 0; k < n; k++) {
                if (evs[k].kind == SLOTS_EV_ENDING)
                        s->failure_reported[evs[k].slot] = false;
                record(s, &evs[k]);
        }
        return 0;
}

int sessions_flush(struct sessions *s) {
        return commit(s);
}

void sessions_touch(struct sessions *s) {
        open_batch(s);
}

void sessions_stop(struct sessions *s) {
        slots_set_stopping(s->slots);
        (void)commit(s);
}

/* ---- construction ---- */

static bool admissible_cb(void *ud, size_t i) {
        struct sessions *s = ud;

        return !s->hooks.admissible || s->hooks.admissible(s->hooks.userdata, i);
}

static void limits_from_cfg(const struct cfg *c, struct slots_limits *l) {
        slots_limits_default(l);
        l->lock_ttl_usec = c->sessions.lock_ttl_s * 1000000ULL;
        l->grace_usec = c->sessions.grace_s * 1000000ULL;
        l->max_session_usec = c->sessions.max_session_s * 1000000ULL;
        l->heartbeat_timeout_usec = c->sessions.heartbeat_timeout_s * 1000000ULL;
        l->idle_usec = c->sessions.idle_s * 1000000ULL;
        l->viewers_max = c->sessions.viewers_max;
}

/* The slots of cfg, restored from the state dir. */
static int open_slots(struct sessions *s, const struct cfg *c, struct slots **ret, char *warning, char *msg,
                      size_t msg_len) {
        const char *ids[SLOTS_MAX], *projects[SLOTS_MAX];
        struct slots_config sc = { .n_slots = c->n_slots,
                                   .slot_ids = ids,
                                   .slot_projects = projects,
                                   .state_dir_fd = s->state_fd,
                                   .state_dir = c->state_dir,
                                   .admissible = admissible_cb,
                                   .userdata = s };
        struct slots *sl = NULL;
        int r;

        if (c->n_slots == 0 || c->n_slots > SLOTS_MAX)
                return plat_errf(msg, msg_len, "%zu slots configured: sessions need 1..%d", c->n_slots,
                                 SLOTS_MAX),
                       -EINVAL;
        for (size_t i = 0; i < c->n_slots; i++) {
                ids[i] = c->slots[i].id;
                projects[i] = c->slots[i].project;
        }
        limits_from_cfg(c, &sc.limits);
        r = slots_new(&sc, &sl, msg, msg_len);
        if (r < 0)
                return r;
        r = slots_load(sl, clock_now(), warning, SLOTS_MSG_MAX);
        if (r == -ENOMEM) {
                slots_free(sl);
                return plat_errf(msg, msg_len, "out of memory"), r;
        }
        *ret = sl;
        return 0;
}

/* The byte counters slots.state kept (its "counters" member): the next report of a session counts
 * from its last durable counter. Counters that cannot be read are logged, and every held session
 * starts with a baseline instead (nothing counted twice). */
static int restore_counters(struct sessions *s) {
        const char *json = slots_extra(s->slots, SLOTS_EXTRA_COUNTERS);
        char why[SLOTS_MSG_MAX];
        int r = counters_restore(s->bytes, s->slots, json, why, sizeof(why));

        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                snprintf(s->last_error, sizeof(s->last_error),
                         "%s/%s: %s; the byte counters are not used: each running session's next "
                         "report_bytes only sets a baseline",
                         s->cfg->state_dir, SLOTS_STATE_FILE, why);
                log_warn("%s", s->last_error);
        }
        /* Baselines (no member, or one that could not be read) are written with the next batch. */
        s->counters_dirty = r < 0 || !json;
        return 0;
}

int sessions_new(sd_event *e, const struct cfg *cfg, int root_fd, const struct sessions_hooks *hooks,
                 struct sessions **ret, char *ret_warning, char *msg, size_t msg_len) {
        struct sessions *s;
        uint64_t now;
        int r;

        ret_warning[0] = '\0';
        if (mkdir(cfg->state_dir, 0700) < 0 && errno != EEXIST)
                return plat_errf(msg, msg_len, "cannot make the state dir %s: %s", cfg->state_dir,
                                 strerror(errno)),
                       -errno;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->event = sd_event_ref(e);
        s->cfg = cfg;
        s->root_fd = root_fd;
        s->hooks = *hooks;
        s->state_fd = plat_open_dir(cfg->state_dir);
        if (s->state_fd < 0) {
                r = s->state_fd;
                plat_errf(msg, msg_len, "cannot open the state dir %s: %s", cfg->state_dir, strerror(-r));
                goto fail;
        }
        r = open_slots(s, cfg, &s->slots, ret_warning, msg, msg_len);
        if (r < 0)
                goto fail;
        if (ret_warning[0])
                plat_strlcpy(s->last_error, ret_warning, sizeof(s->last_error));
        r = restore_counters(s);
        if (r < 0) {
                plat_errf(msg, msg_len, "out of memory");
                goto fail;
        }
        r = enforce_new(e, root_fd, on_enforced, s, &s->enforce);
        if (r < 0)
                goto fail;
        enforce_configure(s->enforce, cfg);
        sd_event_now(e, CLOCK_MONOTONIC, &now);
        r = sd_event_add_defer(e, &s->commit_src, on_commit, s);
        if (r >= 0)
                r = sd_event_source_set_priority(s->commit_src, SD_EVENT_PRIORITY_IDLE);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->commit_src, SD_EVENT_OFF);
        /* The first tick comes at once: ends restored from the file are enforced right away. */
        if (r >= 0)
                r = sd_event_add_time(e, &s->timer, CLOCK_MONOTONIC, now, 10000, on_timer, s);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->timer, SD_EVENT_ON);
        if (r < 0) {
                plat_errf(msg, msg_len, "cannot set up the session timers: %s", strerror(-r));
                goto fail;
        }
        *ret = s;
        return 0;
fail:
        sessions_free(s);
        return r;
}

void sessions_free(struct sessions *s) {
        if (!s)
                return;
        if (s->slots)
                (void)commit(s);
        enforce_free(s->enforce);
        sd_event_source_disable_unref(s->commit_src);
        sd_event_source_disable_unref(s->timer);
        slots_free(s->slots);
        if (s->state_fd >= 0)
                close(s->state_fd);
        sd_event_unref(s->event);
        free(s);
}

static bool same_slots(const struct cfg *a, const struct cfg *b) {
        if (a->n_slots != b->n_slots || !plat_streq_ptr(a->state_dir, b->state_dir))
                return false;
        for (size_t i = 0; i < a->n_slots; i++)
                if (strcmp(a->slots[i].id, b->slots[i].id))
                        return false;
        return true;
}

/* The byte counters follow their slot, by id, into the new table n: a session that goes on keeps
 * its baselines and the push targets already announced (no second push_start after a reload).
 * old is s->bytes as it was, indexed like the slots still in s->slots. */
static void carry_bytes(struct sessions *s, const struct slot_bytes *old, const struct slots *n) {
        memset(s->bytes, 0, sizeof(s->bytes));
        for (size_t i = 0; i < slots_count(n); i++) {
                struct slots_info now, was;

                slots_get(n, i, &now);
                for (size_t j = 0; now.session[0] && j < slots_count(s->slots); j++) {
                        slots_get(s->slots, j, &was);
                        if (!strcmp(was.id, now.id) && !strcmp(old[j].session, now.session))
                                s->bytes[i] = old[j];
                }
        }
}

int sessions_reconfigure(struct sessions *s, const struct cfg *cfg, char *msg, size_t msg_len) {
        _cleanup_free_ struct slot_bytes *old_bytes = NULL;
        struct slots_limits l;
        struct slots *n = NULL;
        char warning[SLOTS_MSG_MAX];
        int r;

        limits_from_cfg(cfg, &l);
        if (same_slots(s->cfg, cfg)) {
                const char *projects[SLOTS_MAX];

                for (size_t i = 0; i < cfg->n_slots; i++)
                        projects[i] = cfg->slots[i].project;
                r = slots_set_limits(s->slots, &l, msg, msg_len);
                if (r >= 0)
                        r = slots_set_projects(s->slots, projects, msg, msg_len);
                if (r < 0)
                        return r;
                s->cfg = cfg;
                enforce_configure(s->enforce, cfg);
                return 0;
        }
        (void)commit(s);
        for (size_t i = 0; i < slots_count(s->slots); i++) {
                struct slots_info info;

                slots_get(s->slots, i, &info);
                if (info.state != SLOTS_FREE && !cfg_find_slot(cfg, info.id))
                        return plat_errf(msg, msg_len,
                                         "slot %s is %s%s%s and the new config drops it; %s first", info.id,
                                         slots_state_str(info.state), info.user[0] ? ", user " : "",
                                         info.user,
                                         info.state == SLOTS_BLOCKED ? "unblock it" : "end its session"),
                               -EBUSY;
                if (enforce_running(s->enforce, i))
                        return plat_errf(msg, msg_len,
                                         "slot %s is being emptied by the enforcement hook; reload again "
                                         "once it is free",
                                         info.id),
                               -EBUSY;
        }
        if (!plat_streq_ptr(s->cfg->state_dir, cfg->state_dir))
                return plat_errf(msg, msg_len, "state_dir cannot change on reload; restart the agent"),
                       -EBUSY;
        old_bytes = malloc(sizeof(s->bytes));
        if (!old_bytes)
                return plat_errf(msg, msg_len, "out of memory"), -ENOMEM;
        r = open_slots(s, cfg, &n, warning, msg, msg_len);
        if (r < 0)
                return r;
        memcpy(old_bytes, s->bytes, sizeof(s->bytes));
        carry_bytes(s, old_bytes, n);
        slots_free(s->slots);
        s->slots = n;
        s->cfg = cfg;
        enforce_configure(s->enforce, cfg);
        /* The reopened file's counters are the last written; memory is as new and goes next. */
        s->counters_dirty = true;
        memset(s->retry_at, 0, sizeof(s->retry_at));
        if (warning[0])
                plat_strlcpy(s->last_error, warning, sizeof(s->last_error));
        return 0;
}

/* ---- requests ---- */

struct req_ctx {
        struct sessions *s;
        const cJSON *req;
        const char **code;
        char *msg;
        size_t msg_len;
        bool held;
};

#define REFUSE(x, c, ...)                                      \
        ({                                                     \
                *(x)->code = (c);                              \
                snprintf((x)->msg, (x)->msg_len, __VA_ARGS__); \
                (cJSON *)NULL;                                 \
        })

/* Optional string member `key`: *ret NULL when absent; false (and the refusal set) when it is
 * there but not a string. */
static bool field(struct req_ctx *x, const char *key, const char **ret) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(x->req, key);

        *ret = NULL;
        if (!v || cJSON_IsNull(v))
                return true;
        if (!cJSON_IsString(v)) {
                REFUSE(x, "BAD_REQUEST", "\"%s\" must be a string", key);
                return false;
        }
        *ret = v->valuestring;
        return true;
}

/* The session a request names: "session", "user", or "slot" (its current session). */
static bool ref_of(struct req_ctx *x, struct slots_ref *ret) {
        const char *slot;

        if (!field(x, "session", &ret->session) || !field(x, "user", &ret->user) || !field(x, "slot", &slot))
                return false;
        if (slot && !ret->session) {
                int i = slots_find(x->s->slots, slot);
                struct slots_info info;

                if (i < 0) {
                        REFUSE(x, "BAD_REQUEST", "no slot \"%.64s\" on this node", slot);
                        return false;
                }
                slots_get(x->s->slots, (size_t)i, &info);
                if (!info.session[0]) {
                        REFUSE(x, "SESSION_NOT_FOUND", "slot %s holds no session", info.id);
                        return false;
                }
                ret->session = info.session;
        }
        if (!ret->session && !ret->user) {
                REFUSE(x, "BAD_REQUEST", "name the session: \"session\", \"user\" or \"slot\"");
                return false;
        }
        return true;
}

/* The slot of the session ref names (by session, else by user) and its info; -1 when none. */
static int slot_of(const struct sessions *s, struct slots_ref ref, struct slots_info *ret) {
        for (size_t i = 0; i < slots_count(s->slots); i++) {
                slots_get(s->slots, i, ret);
                if (ret->session[0] &&
                    (ref.session ? !strcmp(ret->session, ref.session) : !strcmp(ret->user, ref.user)))
                        return (int)i;
        }
        return -1;
}

/* The user an op is for, whatever names it; "" when none holds it. */
static const char *user_of(const struct sessions *s, struct slots_ref ref) {
        struct slots_info info;

        if (ref.user)
                return ref.user;
        return slot_of(s, ref, &info) >= 0 ? info.user : "";
}

/* Whether viewer is joined to the session of slot i now. */
static bool is_viewer(const struct sessions *s, size_t i, const struct slots_info *info,
                      const char *viewer) {
        for (size_t k = 0; k < info->n_viewers; k++) {
                const char *user, *role;

                slots_get_viewer(s->slots, i, k, &user, &role);
                if (!strcmp(user, viewer))
                        return true;
        }
        return false;
}

/* Why ops that would open billing (a reservation, a start, a viewer) must be refused now, or
 * NULL: the metering spool cannot take records (hooks.refuse_new). */
static const char *refusal(const struct sessions *s) {
        return s->hooks.refuse_new ? s->hooks.refuse_new(s->hooks.userdata) : NULL;
}

/* SLOW_DOWN: an operation for this user waits for the batch's write; a second one would act on
 * a state its client has not been told about. */
static bool in_flight(struct req_ctx *x, const char *user) {
        for (size_t k = 0; *user && k < x->s->n_inflight; k++)
                if (!strcmp(x->s->inflight[k], user)) {
                        REFUSE(x, "SLOW_DOWN",
                               "an operation for user %s is in flight; retry after its reply", user);
                        return true;
                }
        return false;
}

static void note_in_flight(struct sessions *s, const char *user) {
        if (*user && s->n_inflight < SESSIONS_BATCH_MAX)
                plat_strlcpy(s->inflight[s->n_inflight++], user, sizeof(s->inflight[0]));
}

/* The slot after an op: named "slot" in replies and session lists, "id" in slot lists. */
static cJSON *slot_reply(const struct sessions *s, size_t i, const struct slots_event *ev, const char *key) {
        cJSON *o = cJSON_CreateObject();
        const char *project, *app;
        struct slots_info info;

        slots_get(s->slots, i, &info);
        cJSON_AddStringToObject(o, key, info.id);
        cJSON_AddStringToObject(o, "state", slots_state_str(info.state));
        /* A session that ended and was released in the same op is still the one the reply is about. */
        if (info.user[0] || (ev && ev->user[0]))
                cJSON_AddStringToObject(o, "user", info.user[0] ? info.user : ev->user);
        if (info.session[0] || (ev && ev->session[0]))
                cJSON_AddStringToObject(o, "session", info.session[0] ? info.session : ev->session);
        project = info.session[0] ? info.project : ev ? ev->project : "";
        app = info.session[0] ? info.app : ev ? ev->app : "";
        if (project[0])
                cJSON_AddStringToObject(o, "project", project);
        if (app[0])
                cJSON_AddStringToObject(o, "app", app);
        if (ev)
                cJSON_AddStringToObject(o, "event", slots_event_str(ev->kind));
        add_time(o, "deadline", info.deadline_real_usec);
        add_time(o, "started", info.started_real_usec);
        return o;
}

/* After a slots call: the refusal, or the event recorded (and, with nothing to enforce, an end
 * released in the same batch) and the reply. */
static cJSON *finish_op(struct req_ctx *x, enum slots_code c, struct slots_event *ev, const char *user) {
        struct sessions *s = x->s;

        if (c != SLOTS_OK) {
                *x->code = slots_code_str(c);
                return NULL;
        }
        record(s, ev);
        if (ev->kind != SLOTS_EV_NONE && ev->kind != SLOTS_EV_HEARTBEAT) {
                x->held = true;
                note_in_flight(s, user);
        }
        if (ev->kind == SLOTS_EV_ENDING) {
                s->failure_reported[ev->slot] = false;
                if (s->cfg->sessions.enforcement == CFG_ENFORCE_NONE) {
                        struct slots_event fr;

                        if (slots_release(s->slots, (struct slots_ref){ .session = ev->session },
                                          clock_now(), &fr, x->msg, x->msg_len) == SLOTS_OK)
                                record(s, &fr);
                }
        }
        if (ev->slot == (size_t)-1) {
                cJSON *o = cJSON_CreateObject();

                cJSON_AddBoolToObject(o, "draining", slots_draining(s->slots));
                return o;
        }
        return slot_reply(s, ev->slot, ev, "slot");
}

static cJSON *op_reserve(struct req_ctx *x) {
        const char *user, *slot, *ip, *why;
        struct slots_reserve_req rq = { 0 };
        struct slots_info info;
        struct slots_event ev;

        if (!field(x, "user", &user) || !field(x, "slot", &slot) || !field(x, "client_ip", &ip) ||
            !field(x, "project", &rq.project) || !field(x, "app", &rq.app))
                return NULL;
        if (!user)
                return REFUSE(x, "BAD_REQUEST", "reserve needs \"user\"");
        if (in_flight(x, user))
                return NULL;
        why = refusal(x->s);
        /* A started session goes on (takeover, resume): its billing is open already. A reservation
         * is not renewed: its start would be refused. */
        if (why &&
            (slot_of(x->s, (struct slots_ref){ .user = user }, &info) < 0 || info.state == SLOTS_RESERVED))
                return REFUSE(x, "NO_IDLE", "the node takes no new sessions: %s", why);
        rq.user = user;
        rq.slot_id = slot;
        rq.client_ip = ip;
        return finish_op(x, slots_reserve_for(x->s->slots, &rq, clock_now(), &ev, x->msg, x->msg_len), &ev,
                         user);
}

/* start, client_lost, heartbeat, end, release: a session named by session, user or slot. */
static cJSON *op_ref(struct req_ctx *x, const char *op) {
        struct sessions *s = x->s;
        struct slots_clock now = clock_now();
        struct slots_event ev;
        struct slots_ref ref = { 0 };
        const char *reason = NULL, *user;
        struct slots_info held;
        enum slots_code c;
        const cJSON *input;

        if (!ref_of(x, &ref) || !field(x, "reason", &reason))
                return NULL;
        user = user_of(s, ref);
        if (strcmp(op, "heartbeat") && in_flight(x, user))
                return NULL;
        /* Only a reservation's start opens billing: an active session's is a repeat, a grace one's
         * a resume. (One named by another user's id is slots_start's FORBIDDEN.) */
        if (!strcmp(op, "start") && refusal(s) && slot_of(s, ref, &held) >= 0 &&
            held.state == SLOTS_RESERVED && (!ref.user || !strcmp(ref.user, held.user)))
                return REFUSE(x, "NO_IDLE", "the node takes no new sessions: %s; session %s does not start",
                              refusal(s), held.session);
        if (!strcmp(op, "start"))
                c = slots_start(s->slots, ref, now, &ev, x->msg, x->msg_len);
        else if (!strcmp(op, "client_lost"))
                c = slots_client_lost(s->slots, ref, now, &ev, x->msg, x->msg_len);
        else if (!strcmp(op, "heartbeat")) {
                input = cJSON_GetObjectItemCaseSensitive(x->req, "input");
                if (input && !cJSON_IsBool(input))
                        return REFUSE(x, "BAD_REQUEST", "\"input\" must be true or false");
                c = slots_heartbeat(s->slots, ref, cJSON_IsTrue(input), now, &ev, x->msg, x->msg_len);
        } else if (!strcmp(op, "release")) {
                /* A hook still at work could act on the next user: it finishes (or is killed at
                 * its timeout) first. */
                for (size_t i = 0; i < slots_count(s->slots); i++) {
                        struct slots_info info;

                        slots_get(s->slots, i, &info);
                        if (info.session[0] && ref.session && !strcmp(info.session, ref.session) &&
                            enforce_running(s->enforce, i))
                                return REFUSE(
                                        x, "SLOW_DOWN",
                                        "the enforcement hook of slot %s is still running; it is killed at "
                                        "its timeout (%u s), retry then",
                                        info.id, s->cfg->sessions.enforcement_timeout_s);
                }
                c = slots_release(s->slots, ref, now, &ev, x->msg, x->msg_len);
        } else
                c = slots_end(s->slots, ref,
                              reason                      ? reason
                              : !strcmp(op, "disconnect") ? "disconnected"
                                                          : "ended",
                              now, &ev, x->msg, x->msg_len);
        return finish_op(x, c, &ev, user);
}

static cJSON *op_viewer(struct req_ctx *x, bool join) {
        struct slots_ref ref = { 0 };
        struct slots_event ev;
        const char *viewer, *role;
        struct slots_info info;
        enum slots_code c;
        cJSON *o;
        int i;

        if (!ref_of(x, &ref) || !field(x, "viewer", &viewer) || !field(x, "role", &role))
                return NULL;
        if (!viewer)
                return REFUSE(x, "BAD_REQUEST", "%s needs \"viewer\"",
                              join ? "viewer_join" : "viewer_leave");
        if (in_flight(x, user_of(x->s, ref)))
                return NULL;
        i = slot_of(x->s, ref, &info);
        /* A new viewer opens billing; one already joined may change its role. */
        if (join && refusal(x->s) && i >= 0 && !is_viewer(x->s, (size_t)i, &info, viewer))
                return REFUSE(x, "NO_IDLE", "the node takes no new viewers: %s", refusal(x->s));
        if (join)
                c = slots_viewer_join(x->s->slots, ref, viewer, role ? role : "viewer", clock_now(), &ev,
                                      x->msg, x->msg_len);
        else
                c = slots_viewer_leave(x->s->slots, ref, viewer, clock_now(), &ev, x->msg, x->msg_len);
        o = finish_op(x, c, &ev, user_of(x->s, ref));
        /* Its bytes are no longer billed, not even while the session ends (op_report_bytes). */
        if (o && ev.kind == SLOTS_EV_VIEWER_LEAVE) {
                struct slot_bytes *b = &x->s->bytes[ev.slot];

                for (size_t k = 0; !strcmp(b->session, ev.session) && k < b->n; k++)
                        if (b->peers[k].flow == SESSIONS_FLOW_VIEWERS && !strcmp(b->peers[k].id, viewer)) {
                                b->peers[k].left = true;
                                x->s->counters_dirty = true;
                        }
        }
        return o;
}

static cJSON *op_node(struct req_ctx *x, const char *op) {
        struct slots_event ev;
        const char *slot;
        enum slots_code c;

        if (!strcmp(op, "unblock")) {
                if (!field(x, "slot", &slot))
                        return NULL;
                if (!slot)
                        return REFUSE(x, "BAD_REQUEST", "unblock needs \"slot\"");
                c = slots_unblock(x->s->slots, slot, clock_now(), &ev, x->msg, x->msg_len);
        } else
                c = slots_drain(x->s->slots, !strcmp(op, "drain"), clock_now(), &ev, x->msg, x->msg_len);
        return finish_op(x, c, &ev, "");
}

/* The counter of (flow, id) in b, added when new; NULL when b is full. */
static struct peer_counter *counter(struct slot_bytes *b, enum sessions_flow flow, const char *id) {
        for (size_t k = 0; k < b->n; k++)
                if (b->peers[k].flow == flow && !strcmp(b->peers[k].id, id))
                        return &b->peers[k];
        if (b->n == SESSIONS_PEERS_MAX)
                return NULL;
        b->peers[b->n] = (struct peer_counter){ .flow = flow };
        plat_strlcpy(b->peers[b->n].id, id, sizeof(b->peers[0].id));
        return &b->peers[b->n++];
}

/* The counter a checked counters[] entry c reports, added when new; NULL when b is full. */
static struct peer_counter *counter_of(struct slot_bytes *b, const cJSON *c, enum sessions_flow *ret_flow) {
        const char *fl = cJSON_GetObjectItemCaseSensitive(c, "flow")->valuestring;
        const cJSON *peer = cJSON_GetObjectItemCaseSensitive(c, "peer");
        enum sessions_flow flow = !strcmp(fl, "player")   ? SESSIONS_FLOW_PLAYER
                                  : !strcmp(fl, "viewer") ? SESSIONS_FLOW_VIEWERS
                                                          : SESSIONS_FLOW_PUSH;

        *ret_flow = flow;
        return counter(b, flow, flow == SESSIONS_FLOW_PLAYER ? "" : peer->valuestring);
}

static uint64_t bytes_of(const cJSON *c) {
        return (uint64_t)cJSON_GetObjectItemCaseSensitive(c, "bytes")->valuedouble;
}

/* What counters[] entry c adds to pc. A counter that went down was restarted by its process: it
 * counts from zero. */
static uint64_t delta(const struct slot_bytes *b, const struct peer_counter *pc, const cJSON *c) {
        uint64_t v = bytes_of(c);

        return b->baseline ? 0 : v >= pc->last ? v - pc->last : v;
}

/* Whether counters[k] (c, checked) may be billed: a viewer's bytes only while it is the session's
 * viewer (never its host); once the session ends (its viewers go with it), those of a viewer that
 * reported while joined and did not leave. False with the refusal set. */
static bool billable(struct req_ctx *x, size_t i, const struct slots_info *info, const cJSON *c, size_t k) {
        const struct slot_bytes *b = &x->s->bytes[i];
        const char *viewer = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "peer"));

        if (strcmp(cJSON_GetObjectItemCaseSensitive(c, "flow")->valuestring, "viewer") ||
            is_viewer(x->s, i, info, viewer))
                return true;
        if (!strcmp(viewer, info->user)) {
                REFUSE(x, "BAD_REQUEST",
                       "counters[%zu]: user %s hosts session %s; a host's own stream is flow \"player\", "
                       "never a viewer",
                       k, viewer, info->session);
                return false;
        }
        for (size_t n = 0; info->state == SLOTS_ENDING && !strcmp(b->session, info->session) && n < b->n;
             n++)
                if (b->peers[n].flow == SESSIONS_FLOW_VIEWERS && !strcmp(b->peers[n].id, viewer)) {
                        if (!b->peers[n].left)
                                return true;
                        break;
                }
        REFUSE(x, "SESSION_NOT_FOUND",
               "counters[%zu]: viewer %s is not in session %s (it never joined, or it left); only joined "
               "viewers' bytes are billed",
               k, viewer, info->session);
        return false;
}

/* report_bytes: cumulative byte counters per peer since it joined; deltas go to metering. */
static cJSON *op_report_bytes(struct req_ctx *x) {
        struct sessions *s = x->s;
        struct slots_ref ref = { 0 };
        const cJSON *counters, *c;
        struct slots_info info;
        struct slot_bytes *b, saved;
        uint64_t now = plat_now_real_usec(), from;
        size_t i, k = 0;
        cJSON *o, *t;
        int r;

        if (!ref_of(x, &ref))
                return NULL;
        r = slot_of(s, ref, &info);
        if (r < 0)
                return REFUSE(x, "SESSION_NOT_FOUND", "no session %s", ref.session ? ref.session : ref.user);
        i = (size_t)r;
        if (ref.session && ref.user && strcmp(info.user, ref.user))
                return REFUSE(x, "FORBIDDEN", "session %s is not user %s's", info.session, ref.user);
        if (info.state == SLOTS_RESERVED)
                return REFUSE(x, "LOCK_TIMEOUT", "session %s has not started", info.session);
        /* Checked whole before anything is counted: a bad report changes nothing. */
        counters = cJSON_GetObjectItemCaseSensitive(x->req, "counters");
        if (flows_check_counters(counters, x->msg, x->msg_len) < 0) {
                *x->code = "BAD_REQUEST";
                return NULL;
        }
        cJSON_ArrayForEach(c, counters) {
                if (!billable(x, i, &info, c, k++))
                        return NULL;
        }
        b = &s->bytes[i];
        if (strcmp(b->session, info.session)) {
                /* Its first report here: none was written before (counters_restore), count from 0. */
                memset(b, 0, sizeof(*b));
                plat_strlcpy(b->session, info.session, sizeof(b->session));
        }
        from = b->last_real ? b->last_real : info.started_real_usec ? info.started_real_usec : now;
        /* Every peer gets its counter, and every delta is checked, before any is counted: a report
         * past the cap or the rate ceiling counts nothing. */
        saved = *b;
        k = 0;
        cJSON_ArrayForEach(c, counters) {
                enum sessions_flow flow;
                struct peer_counter *pc = counter_of(b, c, &flow);

                if (!pc) {
                        *b = saved;
                        return REFUSE(x, "ROLE_LIMIT", "session %s reports more than %d peers", info.session,
                                      SESSIONS_PEERS_MAX);
                }
                if (flows_check_rate(c, k++, delta(b, pc, c), from, now, s->cfg->sessions.max_flow_mbps,
                                     x->msg, x->msg_len) < 0) {
                        *b = saved;
                        *x->code = "BAD_REQUEST";
                        return NULL;
                }
        }
        /* slots.state keeps every counter: their room there is bounded. */
        if (b->n > saved.n && counters_size(s->bytes, slots_count(s->slots)) > COUNTERS_MAX_BYTES) {
                *b = saved;
                return REFUSE(x, "ROLE_LIMIT",
                              "the node's byte counters would take more than %d KiB of %s; session %s "
                              "reports no new peer until sessions end",
                              COUNTERS_MAX_BYTES / 1024, SLOTS_STATE_FILE, info.session);
        }
        cJSON_ArrayForEach(c, counters) {
                enum sessions_flow flow;
                struct peer_counter *pc = counter_of(b, c, &flow);
                uint64_t v = bytes_of(c), d = delta(b, pc, c);

                /* A push target starts with its first bytes, before they are counted. */
                if (flow == SESSIONS_FLOW_PUSH && v > 0 && !pc->announced) {
                        pc->announced = true;
                        if (s->hooks.push)
                                s->hooks.push(i, info.session, pc->id, true, s->hooks.userdata);
                }
                pc->last = v;
                pc->left = false; /* billable: joined (again) */
                b->total[flow] += d;
                if (d && s->hooks.bytes)
                        s->hooks.bytes(i, flow, pc->id, d, from, now, s->hooks.userdata);
        }
        b->last_real = now;
        b->baseline = false;
        /* The reply waits for the state write that holds what it moved (and the bytes the meter
         * counted): a report acknowledged is never counted again, nor lost, after a crash. */
        if (counters_moved(&saved, b)) {
                s->counters_dirty = true;
                x->held = true;
        }
        o = slot_reply(s, i, NULL, "slot");
        t = cJSON_AddObjectToObject(o, "bytes");
        for (int f = 0; f < SESSIONS_FLOWS; f++)
                cJSON_AddNumberToObject(t, flow_names[f], (double)b->total[f]);
        return o;
}

cJSON *sessions_request(struct sessions *s, const char *op, const cJSON *req, bool *ret_held,
                        const char **ret_code, char *msg, size_t msg_len) {
        struct req_ctx x = { .s = s, .req = req, .code = ret_code, .msg = msg, .msg_len = msg_len };
        cJSON *r;

        *ret_held = false;
        if (!strcmp(op, "slots") || !strcmp(op, "sessions")) {
                r = cJSON_CreateObject();
                cJSON_AddItemToObject(r, op,
                                      !strcmp(op, "slots") ? sessions_slots_json(s) : sessions_list_json(s));
                return r;
        }
        make_room(s);
        if (!strcmp(op, "reserve"))
                r = op_reserve(&x);
        else if (!strcmp(op, "viewer_join") || !strcmp(op, "viewer_leave"))
                r = op_viewer(&x, !strcmp(op, "viewer_join"));
        else if (!strcmp(op, "drain") || !strcmp(op, "undrain") || !strcmp(op, "unblock"))
                r = op_node(&x, op);
        else if (!strcmp(op, "report_bytes"))
                r = op_report_bytes(&x);
        else
                r = op_ref(&x, op);
        *ret_held = r && x.held;
        return r;
}

/* ---- views ---- */

static cJSON *slot_json(const struct sessions *s, size_t i, bool session_view) {
        cJSON *o = slot_reply(s, i, NULL, session_view ? "slot" : "id"), *v;
        struct slots_info info;

        slots_get(s->slots, i, &info);
        cJSON_AddStringToObject(o, "scale", s->cfg->slots[i].scale);
        if (info.bound_project[0])
                cJSON_AddStringToObject(o, "bound_project", info.bound_project);
        if (info.client_ip[0])
                cJSON_AddStringToObject(o, "client_ip", info.client_ip);
        if (info.end_reason[0])
                cJSON_AddStringToObject(o, "reason", info.end_reason);
        if (info.state == SLOTS_ENDING)
                cJSON_AddBoolToObject(o, "enforcing", enforce_running(s->enforce, i));
        v = cJSON_AddArrayToObject(o, "viewers");
        for (size_t k = 0; k < info.n_viewers; k++) {
                const char *user, *role;
                cJSON *e = cJSON_CreateObject();

                slots_get_viewer(s->slots, i, k, &user, &role);
                cJSON_AddStringToObject(e, "user", user);
                cJSON_AddStringToObject(e, "role", role);
                cJSON_AddItemToArray(v, e);
        }
        if (session_view && !strcmp(s->bytes[i].session, info.session)) {
                cJSON *t = cJSON_AddObjectToObject(o, "bytes");

                for (int f = 0; f < SESSIONS_FLOWS; f++)
                        cJSON_AddNumberToObject(t, flow_names[f], (double)s->bytes[i].total[f]);
        }
        return o;
}

cJSON *sessions_slots_json(const struct sessions *s) {
        cJSON *a = cJSON_CreateArray();

        for (size_t i = 0; i < slots_count(s->slots); i++)
                cJSON_AddItemToArray(a, slot_json(s, i, false));
        return a;
}

cJSON *sessions_list_json(const struct sessions *s) {
        cJSON *a = cJSON_CreateArray();

        for (size_t i = 0; i < slots_count(s->slots); i++) {
                struct slots_info info;

                slots_get(s->slots, i, &info);
                if (info.session[0])
                        cJSON_AddItemToArray(a, slot_json(s, i, true));
        }
        return a;
}

cJSON *sessions_summary_json(const struct sessions *s) {
        size_t count[SLOTS_BLOCKED + 1] = { 0 };
        cJSON *o = cJSON_CreateObject(), *c;

        for (size_t i = 0; i < slots_count(s->slots); i++) {
                struct slots_info info;

                slots_get(s->slots, i, &info);
                count[info.state]++;
        }
        c = cJSON_AddObjectToObject(o, "slots");
        for (int st = SLOTS_FREE; st <= SLOTS_BLOCKED; st++)
                cJSON_AddNumberToObject(c, slots_state_str((enum slots_state)st), (double)count[st]);
        cJSON_AddBoolToObject(o, "draining", slots_draining(s->slots));
        cJSON_AddNumberToObject(o, "commits", (double)s->commits);
        cJSON_AddNumberToObject(o, "commit_failures", (double)s->commit_failures);
        if (s->last_error[0])
                cJSON_AddStringToObject(o, "last_error", s->last_error);
        return o;
}

size_t sessions_busy(const struct sessions *s) {
        size_t k = 0;

        for (size_t i = 0; i < slots_count(s->slots); i++) {
                struct slots_info info;

                slots_get(s->slots, i, &info);
                k += info.state != SLOTS_FREE;
        }
        return k;
}

const struct slots *sessions_slots(const struct sessions *s) {
        return s->slots;
}
