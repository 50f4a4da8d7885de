/* agent_control.c: the control plane: every op from the socket and from MQTT commands, who may send
 * it (ops.h, authz.h), and the replies held until the group commit that makes them true. */
#include "agent_internal.h"

#include "authz.h"
#include "cleanup.h"
#include "clock.h"
#include "diag.h"
#include "evhist.h"
#include "held.h"
#include "log.h"
#include "meter.h"
#include "ops.h"
#include "sessions.h"
#include "streams.h"

#include <string.h>

/* At accept: a peer that may change sessions is not limited per uid and may use the reserve. */
unsigned agent__on_admit(const struct plat_peer *peer, void *ud) {
        struct agent *a = ud;

        return authz_may_change(a->cfg, peer) ? DIAG_ADMIT_PRIVILEGED : a->cfg->control_clients_per_user;
}

static cJSON *op_status(struct agent *a, const cJSON *req, const char **ret_code, char *msg, size_t msglen) {
        cJSON *res = cJSON_CreateObject();

        (void)req, (void)ret_code, (void)msg, (void)msglen;
        cJSON_AddItemToObject(res, "status", agent__status_json(a));
        return res;
}

static cJSON *op_spec(struct agent *a, const cJSON *req, const char **ret_code, char *msg, size_t msglen) {
        cJSON *res = cJSON_CreateObject();

        (void)req, (void)ret_code, (void)msg, (void)msglen;
        cJSON_AddItemToObject(res, "spec", tele_spec_json(a->cfg, &a->sampler, &a->usage, &a->watch));
        return res;
}

/* The last sample, as published: for render-agentctl top. */
static cJSON *op_telemetry(struct agent *a, const cJSON *req, const char **ret_code, char *msg,
                           size_t msglen) {
        (void)req, (void)ret_code, (void)msg, (void)msglen;
        return tele_telemetry_reply(a->cfg, &a->sampler, &a->usage, &a->watch, a->telemetry_seq);
}

static cJSON *op_events(struct agent *a, const cJSON *req, const char **ret_code, char *msg, size_t msglen) {
        return evhist_op(a->evhist, req, plat_now_real_usec(), ret_code, msg, msglen);
}

static cJSON *list_slots(struct agent *a) {
        cJSON *res = cJSON_CreateObject();

        cJSON_AddItemToObject(res, "slots", sessions_slots_json(a->sessions));
        return res;
}

static cJSON *list_sessions(struct agent *a) {
        cJSON *res = cJSON_CreateObject(), *list = sessions_list_json(a->sessions);

        streams_add_to_sessions(list, a->cfg, &a->usage); /* each stream's FPS and latency */
        cJSON_AddItemToObject(res, "sessions", list);
        return res;
}

/* How the daemon answers an op: by one of its own handlers, or on the session service (which a node
 * without slots does not have) by one of its lists or its ops. */
struct handler {
        cJSON *(*agent)(struct agent *a, const cJSON *req, const char **ret_code, char *msg, size_t msglen);
        cJSON *(*list)(struct agent *a);
        enum sessions_op sessions;
};

/* Every op of ops.h, by id (test_agent_control holds the table to having each one). */
static const struct handler handlers[] = {
        [OP_STATUS] = { .agent = op_status },
        [OP_SPEC] = { .agent = op_spec },
        [OP_TELEMETRY] = { .agent = op_telemetry },
        [OP_EVENTS] = { .agent = op_events },
        [OP_SLOTS] = { .list = list_slots },
        [OP_SESSIONS] = { .list = list_sessions },
        [OP_RESERVE] = { .sessions = SESSIONS_OP_RESERVE },
        [OP_START] = { .sessions = SESSIONS_OP_START },
        [OP_HEARTBEAT] = { .sessions = SESSIONS_OP_HEARTBEAT },
        [OP_CLIENT_LOST] = { .sessions = SESSIONS_OP_CLIENT_LOST },
        [OP_END] = { .sessions = SESSIONS_OP_END },
        [OP_DISCONNECT] = { .sessions = SESSIONS_OP_DISCONNECT },
        [OP_RELEASE] = { .sessions = SESSIONS_OP_RELEASE },
        [OP_VIEWER_JOIN] = { .sessions = SESSIONS_OP_VIEWER_JOIN },
        [OP_VIEWER_LEAVE] = { .sessions = SESSIONS_OP_VIEWER_LEAVE },
        [OP_REPORT_BYTES] = { .sessions = SESSIONS_OP_REPORT_BYTES },
        [OP_DRAIN] = { .sessions = SESSIONS_OP_DRAIN },
        [OP_UNDRAIN] = { .sessions = SESSIONS_OP_UNDRAIN },
        [OP_UNBLOCK] = { .sessions = SESSIONS_OP_UNBLOCK },
};

_Static_assert(ELEMENTSOF(handlers) == OPS_COUNT, "agent_control.c: the last op of ops.h has no handler");

static const struct handler *handler_of(enum ops_id id) {
        const struct handler *h = (unsigned)id < ELEMENTSOF(handlers) ? &handlers[id] : NULL;

        return h && (h->agent || h->list || h->sessions != SESSIONS_OP_NONE) ? h : NULL;
}

bool agent_answers(enum ops_id id) {
        return handler_of(id) != NULL;
}

enum sessions_op agent_sessions_op(enum ops_id id) {
        return (unsigned)id < ELEMENTSOF(handlers) ? handlers[id].sessions : SESSIONS_OP_NONE;
}

/* Every op, whoever asks: the socket and MQTT handlers check who may before calling this. */
static cJSON *dispatch(struct agent *a, const char *op, const cJSON *req, bool *ret_held,
                       const char **ret_code, char *msg, size_t msglen) {
        const struct ops_entry *e = ops_find(op);
        const struct handler *h = e ? handler_of(e->id) : NULL;

        *ret_held = false;
        if (!e) {
                *ret_code = "BAD_REQUEST";
                snprintf(msg, msglen, "unknown op \"%.64s\" (known: %s)", op, ops_names());
                return NULL;
        }
        if (!h) { /* a new op in ops.c without its entry in handlers[] (test_agent_control fails) */
                *ret_code = "INTERNAL";
                snprintf(msg, msglen, "op %s has no handler", op);
                return NULL;
        }
        if (h->agent)
                return h->agent(a, req, ret_code, msg, msglen);
        if (!a->sessions) {
                *ret_code = "NO_IDLE";
                snprintf(msg, msglen, "this node has no slots configured");
                return NULL;
        }
        if (h->list)
                return h->list(a);
        return sessions_request(a->sessions, h->sessions, req, ret_held, ret_code, msg, msglen);
}

cJSON *agent__on_request(const char *op, const cJSON *req, const struct plat_peer *peer, void *ud,
                         bool *ret_held, const char **ret_code, char *msg, size_t msglen) {
        const struct ops_entry *e = ops_find(op);
        struct agent *a = ud;
        cJSON *res;

        if (e && e->mutates && !authz_may_change(a->cfg, peer)) {
                *ret_code = "FORBIDDEN";
                snprintf(msg, msglen,
                         "op %s changes sessions: uid %u is not root, the agent's user, or in control.allow",
                         op, peer ? (unsigned)peer->uid : 0U);
                return NULL;
        }
        /* Reads are open to whoever can connect; with control.read set, who uses a slot is not. */
        res = dispatch(a, op, req, ret_held, ret_code, msg, msglen);
        if (res && !authz_may_read_personal(a->cfg, peer))
                authz_redact(res);
        return res;
}

/* MQTT commands that agent/control/cmd.c lets through: the broker authenticated the sender (its ACL
 * decides who may publish on cmd). */
static cJSON *on_mqtt_op(const char *op, const cJSON *req, const struct plat_peer *peer, void *ud,
                         bool *ret_held, const char **ret_code, char *msg, size_t msglen) {
        (void)peer;
        return dispatch(ud, op, req, ret_held, ret_code, msg, msglen);
}

/* The MQTT side of the held queue: a reply is published on its route. */
static void mqtt_send(struct held_dest *d, const cJSON *reply, const struct held_route *route) {
        struct agent *a = d->userdata;
        _cleanup_free_ char *line = reply ? cJSON_PrintUnformatted(reply) : NULL;
        int r;

        if (!line) { /* also a reply held_committed could not make */
                log_warn("cannot make the reply for %s: out of memory; the command's sender will not "
                         "hear back",
                         route->topic);
                return;
        }
        log_limited(LOG_INFO, "MQTT command answered on %s: %.200s", route->topic, line);
        r = link_publish_ex(a->link, route->topic, line, strlen(line), 1, route->corr, route->corr_len,
                            NULL);
        if (r < 0)
                log_warn("cannot publish the reply on %s: %s; the command's sender will not hear back",
                         route->topic, strerror(-r));
}

/* A command whose change was undone (the state could not be written) may be sent again. */
static void mqtt_undone(struct held_dest *d, const cJSON *id) {
        struct agent *a = d->userdata;

        cmd_forget(&a->cmd, id);
}

static const struct held_sink mqtt_sink = { .send = mqtt_send, .undone = mqtt_undone };

void agent__control_init(struct agent *a) {
        a->mqtt_replies = (struct held_dest){ .sink = &mqtt_sink, .userdata = a, .max = CMD_HELD_MAX };
}

void agent__on_message(struct link *l, const char *topic, const void *payload, size_t len, bool retain,
                       const char *response_topic, const void *corr, size_t corr_len, void *ud) {
        struct agent *a = ud;
        struct cmd_message m = { payload, len, retain, response_topic };
        struct held_route route = { .corr = corr, .corr_len = corr_len };
        bool held = false;
        cJSON *reply;
        int r;

        (void)l;
        if (strcmp(topic, a->topic_cmd))
                return;
        /* No room to hold one more reply: write the open batch (its replies go out) first. */
        if (a->mqtt_replies.n == a->mqtt_replies.max && a->sessions)
                (void)sessions_flush(a->sessions);
        r = cmd_handle_message(&a->cmd, &m, a->topic_cmd_reply, on_mqtt_op, a, &reply, &route.topic, &held);
        if (r <= 0)
                return; /* dropped (the log says why), or out of memory */
        /* At the limit still (the batch could not be written to make room) it goes now, out of
         * order rather than not at all. */
        if (held_must_wait(&a->mqtt_replies, held) && a->mqtt_replies.n < a->mqtt_replies.max) {
                if (held_push(&a->held, &a->mqtt_replies, reply, held, &route) < 0)
                        log_warn("cannot hold the reply for %s: out of memory; the command's sender will "
                                 "not hear back",
                                 route.topic);
                return;
        }
        mqtt_send(&a->mqtt_replies, reply, &route);
        cJSON_Delete(reply);
}

/* The group commit is done: held replies go out on both channels, or fail with INTERNAL. */
void agent__on_committed(bool ok, const char *msg, void *ud) {
        struct agent *a = ud;

        if (!ok) {
                log_err("session state not written: %s; the operations of this batch are refused", msg);
                meter_abort(a->meter);
        }
        /* The batch's records (session_start, session_end...) were written with its state, in
         * one fdatasync, before any reply says the transition happened. The spool takes them
         * after the replies (meter_sync, below). */
        held_committed(&a->held, ok, msg);
        if (ok && a->meter)
                (void)meter_sync(a->meter);
}
