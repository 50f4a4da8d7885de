/* fuzz_mqtt_cmd.c: libFuzzer target for MQTT command payloads through agent/cmd.c into the real sessions. */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct sessions *s = fxs_open(size & 1);
        const cJSON *err, *code, *why;
        bool held = false;
        cJSON *reply;
        char *line;

        prelude(s);
        dispatched = 0;
        line = cmd_handle_payload(data, size, dispatch, s, &held);
        if (!line)
                abort();
        /* One reply, a JSON object; an op the filter refuses (FORBIDDEN, 'op "..." is not taken over
         * MQTT') reached nothing. */
        reply = cJSON_Parse(line);
        err = cJSON_GetObjectItemCaseSensitive(reply, "error");
        code = cJSON_GetObjectItemCaseSensitive(err, "code");
        why = cJSON_GetObjectItemCaseSensitive(err, "message");
        if (!reply || !cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(reply, "ok")) ||
            (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok")) && dispatched != 1) ||
            (cJSON_IsString(code) && !strcmp(code->valuestring, "FORBIDDEN") && cJSON_IsString(why) &&
             !strncmp(why->valuestring, "op \"", 4) && dispatched) ||
            (held && dispatched != 1))
                abort();
        cJSON_Delete(reply);
        free(line);
        (void)sessions_flush(s);
        fxs_check(s);
        if (fxs_commit_failures())
                abort();
        fxs_close();
        return 0;
}
