/* cmd.c: MQTT commands on .../cmd: which ops a central operator may send, and the reply to one payload. */
#include "cmd.h"

#include "cleanup.h"
#include "clock.h"
#include "log.h"
#include "ops.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The latest "expires" taken (year 5138): far enough for anyone, small enough for usec in 64 bits. */
#define CMD_EXPIRES_MAX 1e11

bool cmd_allowed(const char *op) {
        const struct ops_entry *e = ops_find(op);

        return e && e->mqtt;
}

static bool seen(const struct cmd_state *s, const char *key) {
        for (size_t i = 0; i < s->n_seen; i++)
                if (!strcmp(s->seen[i], key))
                        return true;
        return false;
}

static void remember(struct cmd_state *s, const char *key) {
        snprintf(s->seen[s->next_seen], sizeof(s->seen[0]), "%s", key);
        s->next_seen = (s->next_seen + 1) % CMD_SEEN_MAX;
        if (s->n_seen < CMD_SEEN_MAX)
                s->n_seen++;
}

void cmd_forget(struct cmd_state *state, const cJSON *id) {
        _cleanup_free_ char *key = NULL;

        if (!state || !id || cJSON_IsNull(id) || !(key = cJSON_PrintUnformatted(id)))
                return;
        for (size_t i = 0; i < state->n_seen; i++)
                if (!strcmp(state->seen[i], key))
                        state->seen[i][0] = '\0'; /* never matches: printed ids are not empty */
}

/* Logs a message that was dropped without a reply, CMD_LOG_BURST times a window at most. */
static void __attribute__((format(printf, 2, 3)))
log_dropped(struct cmd_log_limit *l, const char *fmt, ...) {
        uint64_t now = plat_now_mono_usec();
        char buf[512];
        va_list ap;

        if (!l->window_start || now - l->window_start >= CMD_LOG_WINDOW_USEC) {
                if (l->suppressed)
                        log_warn("%" PRIu64
                                 " more MQTT commands were dropped without a reply since the last "
                                 "one logged (at most %d are logged a minute)",
                                 l->suppressed, CMD_LOG_BURST);
                *l = (struct cmd_log_limit){ .window_start = now };
        }
        if (l->n >= CMD_LOG_BURST) {
                l->suppressed++;
                return;
        }
        l->n++;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        log_warn("%s", buf);
}

/* The handler, its userdata and the channel's memory, through diag_handle_line's one pointer. */
struct filter {
        diag_handler_fn dispatch;
        void *userdata;
        struct cmd_state *state;
};

/* Refuses a command past its "expires"; BAD_REQUEST for an "expires" that is not a time. */
static bool expired(const cJSON *req, const char **ret_code, char *msg, size_t msglen) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(req, "expires");
        uint64_t now = plat_now_real_usec(), at;
        char ts[40];

        if (!e || cJSON_IsNull(e))
                return false;
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble) || e->valuedouble <= 0 ||
            e->valuedouble > CMD_EXPIRES_MAX) {
                *ret_code = "BAD_REQUEST";
                snprintf(msg, msglen, "\"expires\" must be a time in unix seconds (a number > 0)");
                return true;
        }
        at = (uint64_t)(e->valuedouble * 1e6);
        if (now < at)
                return false;
        *ret_code = "EXPIRED";
        snprintf(msg, msglen, "the command expired at %s; it is not run",
                 plat_format_rfc3339_ms(at, ts, sizeof(ts)));
        return true;
}

static cJSON *filter_op(const char *op, const cJSON *req, const struct plat_peer *peer, void *ud,
                        bool *ret_held, const char **ret_code, char *msg, size_t msglen) {
        const struct filter *f = ud;
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
        _cleanup_free_ char *key = NULL;
        cJSON *res;

        (void)peer; /* the broker authenticated the sender; there is no local peer */
        if (!cmd_allowed(op)) {
                *ret_code = "FORBIDDEN";
                snprintf(msg, msglen, "op \"%.64s\" is not taken over MQTT (commands: %s)", op,
                         ops_mqtt_names());
                return NULL;
        }
        if (f->state && id && !cJSON_IsNull(id)) {
                key = cJSON_PrintUnformatted(id);
                if (!key) {
                        snprintf(msg, msglen, "out of memory");
                        return NULL;
                }
                if (strlen(key) > CMD_ID_MAX) {
                        *ret_code = "BAD_REQUEST";
                        snprintf(msg, msglen, "\"id\" is longer than %d bytes as JSON", CMD_ID_MAX);
                        return NULL;
                }
                if (seen(f->state, key)) {
                        *ret_code = "DUPLICATE";
                        snprintf(msg, msglen,
                                 "a command with id %.128s was carried out already; it is not run again",
                                 key);
                        return NULL;
                }
        }
        if (expired(req, ret_code, msg, msglen))
                return NULL;
        res = f->dispatch(op, req, NULL, f->userdata, ret_held, ret_code, msg, msglen);
        if (res && key)
                remember(f->state, key);
        return res;
}

/* The reply tree to one payload (cmd_handle_payload's, unprinted). */
static cJSON *reply_to(struct cmd_state *state, const void *payload, size_t len, diag_handler_fn dispatch,
                       void *userdata, bool *ret_held) {
        struct filter f = { dispatch, userdata, state };

        if (!payload || !len) {
                payload = ""; /* libmosquitto hands an empty payload over as NULL */
                len = 0;
        }
        /* The line handler refuses anything over its limit as too long without reading it: a
         * payload past ours is cut to one byte more than that, never copied whole. */
        if (len > CMD_PAYLOAD_MAX)
                len = CMD_PAYLOAD_MAX + 1;
        return diag_handle_request(payload, len, NULL, filter_op, &f, ret_held);
}

char *cmd_handle_payload(struct cmd_state *state, const void *payload, size_t len, diag_handler_fn dispatch,
                         void *userdata, bool *ret_held) {
        cJSON *reply = reply_to(state, payload, len, dispatch, userdata, ret_held);
        char *line = reply ? cJSON_PrintUnformatted(reply) : NULL;

        cJSON_Delete(reply);
        return line;
}

bool cmd_reply_topic_ok(const char *reply_base, const char *topic) {
        size_t n = strlen(reply_base);

        return !strncmp(topic, reply_base, n) && (topic[n] == '\0' || topic[n] == '/');
}

int cmd_handle_message(struct cmd_state *state, const struct cmd_message *m, const char *reply_base,
                       diag_handler_fn dispatch, void *userdata, cJSON **ret_reply, const char **ret_topic,
                       bool *ret_held) {
        bool held = false;
        cJSON *reply;

        /* A broker hands a retained message to every new subscription: a command kept so would
         * run again on every reconnect. Commands count when they are sent, never from storage. */
        if (m->retain) {
                log_dropped(&state->dropped,
                            "retained MQTT command ignored (%zu bytes): the broker kept it from an earlier "
                            "publish and a command is carried out only when it is sent; clear it with an "
                            "empty retained message",
                            m->len);
                return 0;
        }
        /* Replies go below the node's own reply topic, never onto metering, status, events or
         * telemetry, where a reply could pass for the node's own documents. */
        if (m->response_topic && !cmd_reply_topic_ok(reply_base, m->response_topic)) {
                log_dropped(&state->dropped,
                            "MQTT command refused: its response topic \"%.200s\" is not %s or below it; "
                            "nothing is run and nothing is published",
                            m->response_topic, reply_base);
                return 0;
        }
        reply = reply_to(state, m->payload, m->len, dispatch, userdata, &held);
        if (!reply)
                return -ENOMEM;
        *ret_reply = reply;
        *ret_topic = m->response_topic ? m->response_topic : reply_base;
        if (ret_held)
                *ret_held = held;
        return 1;
}
