/* fuzz_mqtt_cmd.c: libFuzzer target for MQTT command messages (payload, retain flag, response topic)
 * through agent/control/cmd.c into the real sessions. */
#include "cmd.h"
#include "fuzz_sessions_fx.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned dispatched;

/* What agent.c's MQTT handler does behind the filter, with a check that the filter held. */
static cJSON *dispatch(const char *op, const cJSON *req, const struct plat_peer *peer, void *ud,
                       bool *ret_held, const char **ret_code, char *msg, size_t msglen) {
        if (peer || !cmd_allowed(op))
                abort(); /* a session op from the broker, or a local peer where there is none */
        dispatched++;
        return fxs_dispatch(op, req, peer, ud, ret_held, ret_code, msg, msglen);
}

/* Two users playing and one reserved, so that disconnect and drain have something to act on. */
static void prelude(struct sessions *s) {
        static const char *const lines[] = {
                "{\"op\":\"reserve\",\"user\":\"alice\",\"slot\":\"s0\"}",
                "{\"op\":\"reserve\",\"user\":\"bob\",\"slot\":\"s1\"}",
                "{\"op\":\"reserve\",\"user\":\"carol\",\"slot\":\"s2\"}",
                "!",
                "{\"op\":\"start\",\"user\":\"alice\"}",
                "{\"op\":\"start\",\"user\":\"bob\"}",
        };

        for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
                char *r;

                if (lines[i][0] == '!') {
                        (void)sessions_flush(s);
                        continue;
                }
                r = diag_handle_line(lines[i], strlen(lines[i]), NULL, fxs_dispatch, s, NULL);
                if (!r || !strstr(r, "\"ok\":true"))
                        abort();
                free(r);
        }
        (void)sessions_flush(s);
}

#define REPLY_BASE "render/v1/eu/n1/cmd/reply"

/* An input that opens with a byte below 0x08 carries flags for the message (the rest is its
 * payload, possibly empty: handed over as NULL, as libmosquitto does): 1 retained, 2 with a
 * response topic, 4 that topic outside cmd/reply (the node's metering topic). Any other input is
 * the payload of a plain message. */
enum { F_RETAIN = 1, F_TOPIC = 2, F_FOREIGN = 4 };

/* The reply, checked: an object with "ok"; an op the filter refuses (FORBIDDEN, 'op "..." is not
 * taken over MQTT') reached nothing. */
static void check_reply(const cJSON *reply, bool held) {
        const cJSON *err = cJSON_GetObjectItemCaseSensitive(reply, "error");
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
        const cJSON *why = cJSON_GetObjectItemCaseSensitive(err, "message");

        if (!reply || !cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(reply, "ok")) ||
            (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok")) && dispatched != 1) ||
            (cJSON_IsString(code) && !strcmp(code->valuestring, "FORBIDDEN") && cJSON_IsString(why) &&
             !strncmp(why->valuestring, "op \"", 4) && dispatched) ||
            (held && dispatched != 1))
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static struct cmd_state st;
        struct sessions *s = fxs_open(size & 1);
        struct cmd_message m = { data, size, false, NULL };
        unsigned flags = 0;
        const char *topic = NULL;
        const cJSON *id;
        bool held = false;
        cJSON *reply = NULL;
        int r;

        if (size > 0 && data[0] < 0x08) {
                flags = data[0];
                m.payload = size > 1 ? data + 1 : NULL;
                m.len = size - 1;
        }
        m.retain = flags & F_RETAIN;
        if (flags & F_TOPIC)
                m.response_topic = flags & F_FOREIGN ? "render/v1/eu/n1/metering" : REPLY_BASE "/42";
        memset(&st, 0, sizeof(st));
        prelude(s);
        dispatched = 0;
        r = cmd_handle_message(&st, &m, REPLY_BASE, dispatch, s, &reply, &topic, &held);
        /* Retained, or a reply topic the node does not publish on: nothing runs, nothing answers. */
        if (m.retain || (flags & F_TOPIC && flags & F_FOREIGN)) {
                if (r != 0 || reply || topic || dispatched)
                        abort();
        } else {
                if (r != 1 || !reply || !topic ||
                    strcmp(topic, m.response_topic ? m.response_topic : REPLY_BASE))
                        abort();
                check_reply(reply, held);
                (void)sessions_flush(s);
                /* The same command again: a carried-out id is not run twice. */
                id = cJSON_GetObjectItemCaseSensitive(reply, "id");
                if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok")) && !cJSON_IsNull(id)) {
                        char *again = cmd_handle_payload(&st, m.payload, m.len, dispatch, s, NULL);

                        dispatched = 0;
                        if (!again || !strstr(again, "\"code\":\"DUPLICATE\"") || dispatched)
                                abort();
                        free(again);
                }
                cJSON_Delete(reply);
        }
        (void)sessions_flush(s);
        fxs_check(s);
        if (fxs_commit_failures())
                abort();
        fxs_close();
        return 0;
}
