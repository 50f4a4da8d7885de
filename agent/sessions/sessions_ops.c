/* sessions_ops.c: the session service's JSON op layer: each request checked, carried out on the
 * slots state machine within the open batch, and answered; the slot and session lists. */
#include "sessions_internal.h"

#include "cleanup.h"
#include "enforce.h"
#include "strutil.h"

#include <string.h>

/* ---- requests ---- */

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
bool sessions__ref_of(struct req_ctx *x, struct slots_ref *ret) {
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
int sessions__slot_of(const struct sessions *s, struct slots_ref ref, struct slots_info *ret) {
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
        return sessions__slot_of(s, ref, &info) >= 0 ? info.user : "";
}

/* Whether viewer is joined to the session of slot i now. */
bool sessions__is_viewer(const struct sessions *s, size_t i, const struct slots_info *info,
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
cJSON *sessions__slot_reply(const struct sessions *s, size_t i, const struct slots_event *ev,
                            const char *key) {
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
        sessions__add_time(o, "deadline", info.deadline_real_usec);
        sessions__add_time(o, "started", info.started_real_usec);
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
        sessions__record(s, ev);
        if (ev->kind != SLOTS_EV_NONE && ev->kind != SLOTS_EV_HEARTBEAT) {
                x->held = true;
                note_in_flight(s, user);
        }
        if (ev->kind == SLOTS_EV_ENDING) {
                sessions__slot(s, ev->slot)->failure_reported = false;
                if (s->cfg->sessions.enforcement == CFG_ENFORCE_NONE) {
                        struct slots_event fr;

                        if (slots_release(s->slots, (struct slots_ref){ .session = ev->session },
                                          sessions__clock_now(), &fr, x->msg, x->msg_len) == SLOTS_OK)
                                sessions__record(s, &fr);
                }
        }
        if (ev->slot == (size_t)-1) {
                cJSON *o = cJSON_CreateObject();

                cJSON_AddBoolToObject(o, "draining", slots_draining(s->slots));
                return o;
        }
        return sessions__slot_reply(s, ev->slot, ev, "slot");
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
        if (why && (sessions__slot_of(x->s, (struct slots_ref){ .user = user }, &info) < 0 ||
                    info.state == SLOTS_RESERVED))
                return REFUSE(x, "NO_IDLE", "the node takes no new sessions: %s", why);
        rq.user = user;
        rq.slot_id = slot;
        rq.client_ip = ip;
        return finish_op(x,
                         slots_reserve_for(x->s->slots, &rq, sessions__clock_now(), &ev, x->msg, x->msg_len),
                         &ev, user);
}

/* start, client_lost, heartbeat, end, disconnect, release: a session named by session, user or slot. */
static cJSON *op_ref(struct req_ctx *x) {
        struct sessions *s = x->s;
        struct slots_clock now = sessions__clock_now();
        struct slots_event ev;
        struct slots_ref ref = { 0 };
        const char *reason = NULL, *user;
        struct slots_info held;
        enum slots_code c;
        const cJSON *input;

        if (!sessions__ref_of(x, &ref) || !field(x, "reason", &reason))
                return NULL;
        user = user_of(s, ref);
        if (x->op != SESSIONS_OP_HEARTBEAT && in_flight(x, user))
                return NULL;
        /* Only a reservation's start opens billing: an active session's is a repeat, a grace one's
         * a resume. (One named by another user's id is slots_start's FORBIDDEN.) */
        if (x->op == SESSIONS_OP_START && refusal(s) && sessions__slot_of(s, ref, &held) >= 0 &&
            held.state == SLOTS_RESERVED && (!ref.user || !strcmp(ref.user, held.user)))
                return REFUSE(x, "NO_IDLE", "the node takes no new sessions: %s; session %s does not start",
                              refusal(s), held.session);
        switch (x->op) {
        case SESSIONS_OP_START:
                c = slots_start(s->slots, ref, now, &ev, x->msg, x->msg_len);
                break;
        case SESSIONS_OP_CLIENT_LOST:
                c = slots_client_lost(s->slots, ref, now, &ev, x->msg, x->msg_len);
                break;
        case SESSIONS_OP_HEARTBEAT:
                input = cJSON_GetObjectItemCaseSensitive(x->req, "input");
                if (input && !cJSON_IsBool(input))
                        return REFUSE(x, "BAD_REQUEST", "\"input\" must be true or false");
                c = slots_heartbeat(s->slots, ref, cJSON_IsTrue(input), now, &ev, x->msg, x->msg_len);
                break;
        case SESSIONS_OP_RELEASE:
                /* A hook still at work could act on the next user: it finishes (or is killed at
                 * its timeout) first. */
                for (size_t i = 0; i < slots_count(s->slots); i++) {
                        struct slots_info info;

                        slots_get(s->slots, i, &info);
                        if (info.session[0] && ref.session && !strcmp(info.session, ref.session) &&
                            enforce_running(sessions__slot(s, i)))
                                return REFUSE(
                                        x, "SLOW_DOWN",
                                        "the enforcement hook of slot %s is still running; it is killed at "
                                        "its timeout (%u s), retry then",
                                        info.id, s->cfg->sessions.enforcement_timeout_s);
                }
                c = slots_release(s->slots, ref, now, &ev, x->msg, x->msg_len);
                break;
        default: /* end, disconnect */
                c = slots_end(s->slots, ref,
                              reason                            ? reason
                              : x->op == SESSIONS_OP_DISCONNECT ? "disconnected"
                                                                : "ended",
                              now, &ev, x->msg, x->msg_len);
        }
        return finish_op(x, c, &ev, user);
}

static cJSON *op_viewer(struct req_ctx *x) {
        bool join = x->op == SESSIONS_OP_VIEWER_JOIN;
        struct slots_ref ref = { 0 };
        struct slots_event ev;
        const char *viewer, *role;
        struct slots_info info;
        enum slots_code c;
        cJSON *o;
        int i;

        if (!sessions__ref_of(x, &ref) || !field(x, "viewer", &viewer) || !field(x, "role", &role))
                return NULL;
        if (!viewer)
                return REFUSE(x, "BAD_REQUEST", "%s needs \"viewer\"",
                              join ? "viewer_join" : "viewer_leave");
        if (in_flight(x, user_of(x->s, ref)))
                return NULL;
        i = sessions__slot_of(x->s, ref, &info);
        /* A new viewer opens billing; one already joined may change its role. */
        if (join && refusal(x->s) && i >= 0 && !sessions__is_viewer(x->s, (size_t)i, &info, viewer))
                return REFUSE(x, "NO_IDLE", "the node takes no new viewers: %s", refusal(x->s));
        if (join)
                c = slots_viewer_join(x->s->slots, ref, viewer, role ? role : "viewer",
                                      sessions__clock_now(), &ev, x->msg, x->msg_len);
        else
                c = slots_viewer_leave(x->s->slots, ref, viewer, sessions__clock_now(), &ev, x->msg,
                                       x->msg_len);
        o = finish_op(x, c, &ev, user_of(x->s, ref));
        /* Its bytes are no longer billed, not even while the session ends (op_report_bytes). */
        if (o && ev.kind == SLOTS_EV_VIEWER_LEAVE)
                sessions__viewer_left(x->s, &ev, viewer);
        return o;
}

static cJSON *op_node(struct req_ctx *x) {
        struct slots_event ev;
        const char *slot;
        enum slots_code c;

        if (x->op == SESSIONS_OP_UNBLOCK) {
                if (!field(x, "slot", &slot))
                        return NULL;
                if (!slot)
                        return REFUSE(x, "BAD_REQUEST", "unblock needs \"slot\"");
                c = slots_unblock(x->s->slots, slot, sessions__clock_now(), &ev, x->msg, x->msg_len);
        } else
                c = slots_drain(x->s->slots, x->op == SESSIONS_OP_DRAIN, sessions__clock_now(), &ev, x->msg,
                                x->msg_len);
        return finish_op(x, c, &ev, "");
}

/* Each op's handler, indexed by the op. */
static cJSON *(*const handlers[])(struct req_ctx *x) = {
        [SESSIONS_OP_RESERVE] = op_reserve,
        [SESSIONS_OP_START] = op_ref,
        [SESSIONS_OP_HEARTBEAT] = op_ref,
        [SESSIONS_OP_CLIENT_LOST] = op_ref,
        [SESSIONS_OP_END] = op_ref,
        [SESSIONS_OP_DISCONNECT] = op_ref,
        [SESSIONS_OP_RELEASE] = op_ref,
        [SESSIONS_OP_VIEWER_JOIN] = op_viewer,
        [SESSIONS_OP_VIEWER_LEAVE] = op_viewer,
        [SESSIONS_OP_REPORT_BYTES] = sessions__op_report_bytes,
        [SESSIONS_OP_DRAIN] = op_node,
        [SESSIONS_OP_UNDRAIN] = op_node,
        [SESSIONS_OP_UNBLOCK] = op_node,
};

_Static_assert(ELEMENTSOF(handlers) == SESSIONS_OPS, "sessions_ops.c: a session op has no handler");

cJSON *sessions_request(struct sessions *s, enum sessions_op op, const cJSON *req, bool *ret_held,
                        const char **ret_code, char *msg, size_t msg_len) {
        struct req_ctx x = {
                .s = s, .op = op, .req = req, .code = ret_code, .msg = msg, .msg_len = msg_len
        };
        cJSON *r;

        *ret_held = false;
        if ((unsigned)op >= ELEMENTSOF(handlers) || !handlers[op])
                return REFUSE(&x, "INTERNAL", "the session service has no op %d", (int)op);
        sessions__make_room(s);
        r = handlers[op](&x);
        *ret_held = r && x.held;
        return r;
}

/* ---- views ---- */

static cJSON *slot_json(const struct sessions *s, size_t i, bool session_view) {
        cJSON *o = sessions__slot_reply(s, i, NULL, session_view ? "slot" : "id"), *v;
        struct slots_info info;

        slots_get(s->slots, i, &info);
        cJSON_AddStringToObject(o, "scale", sessions__slot(s, i)->cfg->scale);
        if (info.bound_project[0])
                cJSON_AddStringToObject(o, "bound_project", info.bound_project);
        if (info.client_ip[0])
                cJSON_AddStringToObject(o, "client_ip", info.client_ip);
        if (info.end_reason[0])
                cJSON_AddStringToObject(o, "reason", info.end_reason);
        if (info.state == SLOTS_ENDING)
                cJSON_AddBoolToObject(o, "enforcing", enforce_running(sessions__slot(s, i)));
        v = cJSON_AddArrayToObject(o, "viewers");
        for (size_t k = 0; k < info.n_viewers; k++) {
                const char *user, *role;
                cJSON *e = cJSON_CreateObject();

                slots_get_viewer(s->slots, i, k, &user, &role);
                cJSON_AddStringToObject(e, "user", user);
                cJSON_AddStringToObject(e, "role", role);
                cJSON_AddItemToArray(v, e);
        }
        if (session_view && !strcmp(sessions__slot(s, i)->bytes.session, info.session))
                sessions__add_totals(s, i, o);
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
