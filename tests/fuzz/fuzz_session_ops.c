/* fuzz_session_ops.c: libFuzzer target for the real session service fed control-socket lines. */
#include "diag.h"
#include "fuzz_sessions_fx.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Input: up to MAX_LINES lines, each a control-socket request (docs/protocol.md) or a directive:
 *   !kill          (first line only) forced ends go through enforcement (cgroup_kill), not none
 *   !commit        write the open batch now, as the loop does between turns
 *   !advance N     commit, then move both clocks on N seconds (lock ttl, grace windows)
 *   !restart       commit, free the service and open it again on its state file
 * The service is fresh for every input. After every commit: no user holds two slots, every
 * slot's user and session are consistent, and each acknowledged reserve or start still holds its
 * slot for its user. A restart brings back exactly what was written. */
#define MAX_LINES 64
#define MAX_ACKS 64

struct ack {
        char slot[SLOTS_ID_MAX + 1];
        char user[SLOTS_USER_MAX + 1];
};

static struct ack acks[MAX_ACKS];
static size_t n_acks;

/* The batch is written: its acknowledgements are now promises the state must keep. */
static void commit(struct sessions *s) {
        (void)sessions_flush(s);
        fxs_check(s);
        if (fxs_commit_failures() == 0)
                for (size_t k = 0; k < n_acks; k++)
                        fxs_check_holds(s, acks[k].slot, acks[k].user);
        n_acks = 0;
}

/* Remembers an acknowledged reserve or start that changed the state (its reply names the slot and
 * user it holds). Until the commit, that user's further ops get SLOW_DOWN, so nothing in the same
 * batch may take the slot from them. A repeat (a start of an ACTIVE session) changed nothing and
 * is not held: a later op of the same batch may end it. */
static void note_ack(const char *line, size_t len, const char *reply, bool held) {
        cJSON *req = cJSON_ParseWithLength(line, len), *rep = cJSON_Parse(reply);
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(req, "op");
        const cJSON *slot = cJSON_GetObjectItemCaseSensitive(rep, "slot");
        const cJSON *user = cJSON_GetObjectItemCaseSensitive(rep, "user");
        const cJSON *state = cJSON_GetObjectItemCaseSensitive(rep, "state");

        /* Every line gets one reply, a JSON object that says ok or not. */
        if (!rep || !cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(rep, "ok")))
                abort();
        if (held && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rep, "ok")) && cJSON_IsString(op) &&
            (!strcmp(op->valuestring, "reserve") || !strcmp(op->valuestring, "start")) &&
            cJSON_IsString(slot) && cJSON_IsString(user) && cJSON_IsString(state) && n_acks < MAX_ACKS &&
            strlen(slot->valuestring) <= SLOTS_ID_MAX && strlen(user->valuestring) <= SLOTS_USER_MAX) {
                if (strcmp(state->valuestring, "reserved") && strcmp(state->valuestring, "active"))
                        abort(); /* reserve and start leave a held slot or fail */
                snprintf(acks[n_acks].slot, sizeof(acks[0].slot), "%s", slot->valuestring);
                snprintf(acks[n_acks].user, sizeof(acks[0].user), "%s", user->valuestring);
                n_acks++;
        }
        cJSON_Delete(req);
        cJSON_Delete(rep);
}

static bool directive(const char *line, size_t len, const char *name) {
        size_t n = strlen(name);

        return len >= n && !memcmp(line, name, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *p = (const char *)data, *end = p + size;
        bool kill = size >= 5 && !memcmp(data, "!kill", 5);
        struct sessions *s = fxs_open(kill);
        struct plat_peer peer = { .pid = 1, .uid = 0, .gid = 0 };

        n_acks = 0;
        for (int n = 0; p < end && n < MAX_LINES; n++) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t len = (size_t)((nl ? nl : end) - p);
                char *reply;

                if (directive(p, len, "!commit"))
                        commit(s);
                else if (directive(p, len, "!advance")) {
                        char num[16] = "";

                        commit(s);
                        memcpy(num, p + 8, len - 8 < sizeof(num) - 1 ? len - 8 : sizeof(num) - 1);
                        fxs_advance((uint64_t)strtoul(num, NULL, 10) % 100000 * 1000000);
                } else if (directive(p, len, "!restart")) {
                        commit(s);
                        s = fxs_restart();
                        fxs_check(s);
                } else if (!directive(p, len, "!")) {
                        bool held = false;

                        reply = diag_handle_line(p, len, &peer, fxs_dispatch, s, &held);
                        if (!reply)
                                abort();
                        note_ack(p, len, reply, held);
                        free(reply);
                }
                p = nl ? nl + 1 : end;
        }
        commit(s);
        if (fxs_commit_failures())
                abort(); /* tmpfs does not fill up here: a failed write is a bug */
        fxs_close();
        return 0;
}
