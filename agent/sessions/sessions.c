/* sessions.c: the admission service's group commit: the transitions of a batch made into metering
 * records and written with the state in one write, then turned into events; forced ends enforced
 * before reuse; construction and reload. The op layer is sessions_ops.c, the byte counters
 * sessions_bytes.c. */
#include "sessions_internal.h"

#include "cleanup.h"
#include "clock.h"
#include "enforce.h"
#include "fileio.h"
#include "log.h"
#include "strutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TIMER_USEC (1000 * 1000ULL)

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

void sessions__add_time(cJSON *o, const char *key, uint64_t real_usec) {
        char ts[40];

        if (real_usec)
                cJSON_AddStringToObject(o, key, plat_format_rfc3339_ms(real_usec, ts, sizeof(ts)));
}

/* A transition of the batch being written, to the meter: its records are made now, to be
 * written with the state. */
static void transition(struct sessions *s, const struct slots_event *ev) {
        if (ev->kind == SLOTS_EV_ENDING)
                sessions__stop_pushes(s, ev);
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
        sessions__add_time(f, "started", ev->started_real_usec);
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

void sessions__record(struct sessions *s, const struct slots_event *ev) {
        if (ev->kind == SLOTS_EV_NONE || ev->kind == SLOTS_EV_HEARTBEAT)
                return;
        if (s->n_pending < PENDING_MAX) /* room is made before each op: see make_room() */
                s->pending[s->n_pending++] = *ev;
}

/* Before an op: a batch that is full is written first, so its events all fit. */
void sessions__make_room(struct sessions *s) {
        if (s->batch_ops >= SESSIONS_BATCH_MAX || s->n_pending + 2 * SLOTS_MAX + 4 > PENDING_MAX)
                (void)commit(s);
        open_batch(s);
        s->batch_ops++;
}

static void start_enforcement(struct sessions *s, size_t i) {
        struct slots_info info;

        slots_get(s->slots, i, &info);
        if (info.state != SLOTS_ENDING || enforce_running(sessions__slot(s, i)))
                return;
        sessions__slot(s, i)->retry_at = 0;
        (void)enforce_start(s->enforce, sessions__slot(s, i), info.user, info.session, info.end_reason);
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
                json = counters_json(s->table, s->slots);
                if (!json)
                        return -ENOMEM;
                slots_set_extra(s->slots, SLOTS_EXTRA_COUNTERS, json);
        }
        return 0;
}

/* The open batch, its events copied into done, written (commit's body). */
static int commit_batch(struct sessions *s, struct slots_event *done, char *msg, size_t msg_len) {
        size_t n = s->n_pending;
        int r;

        sd_event_source_set_enabled(s->commit_src, SD_EVENT_OFF);
        memcpy(done, s->pending, n * sizeof(done[0]));
        s->n_pending = s->n_inflight = s->batch_ops = 0;
        /* The batch's records are made first and written with its state: one fdatasync makes a
         * transition and its records durable together, before any reply or event. */
        for (size_t k = 0; k < n; k++) {
                transition(s, &done[k]);
                /* A freed slot's counters leave slots.state with the session. */
                if (done[k].kind == SLOTS_EV_FREED && sessions__slot(s, done[k].slot)->bytes.session[0])
                        s->counters_dirty = true;
        }
        r = extras(s);
        if (r < 0)
                r = slots_batch_fail(s->slots, r, msg, msg_len);
        else
                r = slots_batch_commit(s->slots, msg, msg_len);
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

/* The open batch, once: its records and state written together, then replies, events, enforcement. */
static int commit(struct sessions *s) {
        char msg[SLOTS_MSG_MAX] = "";
        int r;

        if (!slots_in_batch(s->slots) || s->committing)
                return 0;
        s->committing = true;
        r = commit_batch(s, s->done, msg, sizeof(msg));
        s->committing = false;
        return r;
}

static int on_commit(sd_event_source *src, void *ud) {
        (void)src;
        (void)commit(ud);
        return 0;
}

/* An enforcement finished: the slot is given back, or stays ENDING and is tried again later. */
static void on_enforced(struct slot *sl, const char *session, int r, const char *why, void *ud) {
        struct sessions *s = ud;
        struct slots_event ev;
        char msg[SLOTS_MSG_MAX];

        if (r < 0) {
                if (!sl->failure_reported)
                        log_warn("slot %s: enforcing the end of session %s failed: %s; the slot stays "
                                 "ending and "
                                 "is tried again every %llu s (render-agentctl release frees it by hand)",
                                 sl->id, session, why, (unsigned long long)(SESSIONS_RETRY_USEC / 1000000));
                sl->retry_at = plat_now_mono_usec() + SESSIONS_RETRY_USEC;
                snprintf(s->last_error, sizeof(s->last_error), "slot %s: enforcement failed: %s", sl->id,
                         why);
                if (!sl->failure_reported && s->hooks.event) {
                        cJSON *f = cJSON_CreateObject();

                        cJSON_AddStringToObject(f, "slot", sl->id);
                        cJSON_AddStringToObject(f, "session", session);
                        cJSON_AddStringToObject(f, "error", why);
                        cJSON_AddNumberToObject(f, "retry_s", (double)(SESSIONS_RETRY_USEC / 1000000));
                        s->hooks.event("enforcement_failed", f, s->hooks.userdata);
                }
                sl->failure_reported = true;
                return;
        }
        sl->failure_reported = false;
        open_batch(s);
        if (slots_release(s->slots, (struct slots_ref){ .session = session }, sessions__clock_now(), &ev,
                          msg, sizeof(msg)) == SLOTS_OK)
                sessions__record(s, &ev);
}

/* Every second: write what is open (its ends start their enforcement), retry failed or
 * restored ends, then apply the timeouts in a new batch. An idle node opens none: its empty
 * commit would cost a snapshot of every slot and one more turn of the loop each second. */
static int on_timer(sd_event_source *src, uint64_t usec, void *ud) {
        struct sessions *s = ud;
        struct slots_event *evs = s->expired;
        uint64_t now = plat_now_mono_usec();
        int n;

        sd_event_source_set_time(src, usec + TIMER_USEC);
        (void)commit(s);
        for (size_t i = 0; i < slots_count(s->slots); i++)
                if ((int64_t)(now - sessions__slot(s, i)->retry_at) >= 0)
                        start_enforcement(s, i);
        if (!slots_may_expire(s->slots))
                return 0;
        open_batch(s);
        n = slots_expire(s->slots, sessions__clock_now(), evs, SLOTS_MAX);
        for (int k = 0; k < n; k++) {
                if (evs[k].kind == SLOTS_EV_ENDING)
                        sessions__slot(s, evs[k].slot)->failure_reported = false;
                sessions__record(s, &evs[k]);
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
        r = slots_load(sl, sessions__clock_now(), warning, SLOTS_MSG_MAX);
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
        int r = counters_restore(s->table, s->slots, json, why, sizeof(why));

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

int sessions_new(sd_event *e, const struct cfg *cfg, struct slot_table *table, int root_fd,
                 const struct sessions_hooks *hooks, struct sessions **ret, char *ret_warning, char *msg,
                 size_t msg_len) {
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
        s->table = table;
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
        r = slot_table_sync(table, cfg);
        if (r >= 0)
                r = restore_counters(s);
        if (r < 0) {
                plat_errf(msg, msg_len, "out of memory");
                goto fail;
        }
        r = enforce_new(e, root_fd, table, on_enforced, s, &s->enforce);
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

/* A kept slot keeps its counters (slot_table_sync) only for the session it still holds in the
 * reopened state: a session that goes on keeps its baselines and the push targets already
 * announced (no second push_start after a reload). */
static void drop_stale_bytes(struct sessions *s) {
        for (size_t i = 0; i < slots_count(s->slots); i++) {
                struct slot_bytes *b = &sessions__slot(s, i)->bytes;
                struct slots_info info;

                slots_get(s->slots, i, &info);
                if (!info.session[0] || strcmp(b->session, info.session))
                        memset(b, 0, sizeof(*b));
        }
}

int sessions_reconfigure(struct sessions *s, const struct cfg *cfg, char *msg, size_t msg_len) {
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
                /* The same ids in the same order: every slot is kept, nothing to allocate. */
                (void)slot_table_sync(s->table, cfg);
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
                if (enforce_running(sessions__slot(s, i)))
                        return plat_errf(msg, msg_len,
                                         "slot %s is being emptied by the enforcement hook; reload again "
                                         "once it is free",
                                         info.id),
                               -EBUSY;
        }
        if (!plat_streq_ptr(s->cfg->state_dir, cfg->state_dir))
                return plat_errf(msg, msg_len, "state_dir cannot change on reload; restart the agent"),
                       -EBUSY;
        r = open_slots(s, cfg, &n, warning, msg, msg_len);
        if (r < 0)
                return r;
        /* The one diff by id: kept slots keep their state, new ones start clean. */
        r = slot_table_sync(s->table, cfg);
        if (r < 0) {
                slots_free(n);
                return plat_errf(msg, msg_len, "out of memory"), r;
        }
        slots_free(s->slots);
        s->slots = n;
        s->cfg = cfg;
        drop_stale_bytes(s);
        enforce_configure(s->enforce, cfg);
        /* The reopened file's counters are the last written; memory is as new and goes next. */
        s->counters_dirty = true;
        if (warning[0])
                plat_strlcpy(s->last_error, warning, sizeof(s->last_error));
        return 0;
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
