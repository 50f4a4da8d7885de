/* test_cmd.c: the MQTT command filter: which ops pass to the dispatcher, and what the others get. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"
#include "cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the dispatcher saw: every op that reached it, and whether it had a peer. */
struct seen {
        char ops[8][32];
        size_t n;
        bool had_peer;
};

static cJSON *dispatch(const char *op, const cJSON *req, const struct plat_peer *peer, void *ud,
                       bool *ret_held, const char **ret_code, char *msg, size_t msglen) {
        struct seen *s = ud;
        cJSON *r;

        if (s->n < 8)
                snprintf(s->ops[s->n++], sizeof(s->ops[0]), "%s", op);
        s->had_peer |= peer != NULL;
        if (cJSON_IsString(cJSON_GetObjectItem(req, "user")) &&
            !strcmp(cJSON_GetObjectItem(req, "user")->valuestring, "nobody")) {
                *ret_code = "SESSION_NOT_FOUND";
                snprintf(msg, msglen, "no session for nobody");
                return NULL;
        }
        *ret_held = !strcmp(op, "drain");
        r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "did", op);
        return r;
}

/* The reply to `payload`, parsed (caller deletes). */
static cJSON *reply(struct seen *s, const char *payload, bool *held) {
        char *line = cmd_handle_payload(NULL, payload, strlen(payload), dispatch, s, held);
        cJSON *j;

        assert_non_null(line);
        j = cJSON_Parse(line);
        free(line);
        assert_non_null(j);
        return j;
}

/* The reply to request {"id":id,"op":op,"slot":"s0","user":"alice"}, parsed (caller deletes). */
static cJSON *op_reply(struct seen *s, size_t id, const char *op, bool *held) {
        char payload[128];

        snprintf(payload, sizeof(payload), "{\"id\":%zu,\"op\":\"%s\",\"slot\":\"s0\",\"user\":\"alice\"}",
                 id, op);
        return reply(s, payload, held);
}

static const char *error_code(const cJSON *j) {
        const cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "code");

        return cJSON_IsString(c) ? c->valuestring : NULL;
}

static void test_operator_commands_reach_the_dispatcher_without_a_peer(void **state) {
        static const char *const ops[] = { "disconnect", "drain", "undrain", "status" };
        struct seen s = { 0 };

        (void)state;
        for (size_t i = 0; i < 4; i++) {
                bool held = true;
                cJSON *j = op_reply(&s, i, ops[i], &held);

                assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")));
                assert_string_equal(cJSON_GetObjectItem(j, "did")->valuestring, ops[i]);
                assert_int_equal(cJSON_GetObjectItem(j, "id")->valuedouble, (double)i);
                /* Only drain's reply waits for a commit: held is the dispatcher's, passed through. */
                assert_int_equal(held, !strcmp(ops[i], "drain"));
                cJSON_Delete(j);
                assert_true(cmd_allowed(ops[i]));
        }
        assert_int_equal(s.n, 4);
        assert_false(s.had_peer);
}

static void test_session_ops_are_forbidden_and_never_dispatched(void **state) {
        static const char *const ops[] = { "reserve",      "start",       "end",  "release", "unblock",
                                           "report_bytes", "viewer_join", "spec", "Status",  "status " };
        struct seen s = { 0 };

        (void)state;
        for (size_t i = 0; i < 10; i++) {
                bool held = true;
                cJSON *j = op_reply(&s, 1, ops[i], &held);

                assert_false(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")));
                assert_string_equal(error_code(j), "FORBIDDEN");
                assert_non_null(
                        strstr(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message")->valuestring,
                               "not taken over MQTT (commands: status, disconnect, drain, undrain)"));
                assert_false(held);
                assert_false(cmd_allowed(ops[i]));
                cJSON_Delete(j);
        }
        assert_int_equal(s.n, 0);
}

static void test_malformed_payloads_get_bad_request(void **state) {
        static const char *const payloads[] = { "", "drain", "[\"drain\"]", "{\"op\":7}", "{\"id\":1}" };
        struct seen s = { 0 };

        (void)state;
        for (size_t i = 0; i < 5; i++) {
                bool held = true;
                cJSON *j = reply(&s, payloads[i], &held);

                assert_string_equal(error_code(j), "BAD_REQUEST");
                assert_false(held);
                cJSON_Delete(j);
        }
        assert_int_equal(s.n, 0);
}

static void test_ambiguous_payloads_are_refused_and_never_dispatched(void **state) {
        static const char *const payloads[] = {
                "{\"id\":1,\"op\":\"status\",\"op\":\"drain\"}",
                "{\"id\":2,\"op\":\"disconnect\",\"user\":\"alice\"}{\"op\":\"drain\"}",
                "{\"id\":\"\xc0\xaf\",\"op\":\"drain\"}",
                "{\"id\":\"\\u0007\",\"op\":\"drain\"}",
        };
        static const char *const why[] = {
                "request has the key \"op\" twice in the top-level object",
                "request has data after its JSON object, at byte 41 (one object per line)",
                "request is not valid UTF-8: byte 0xC0 at byte 7",
                "\"id\" has a control character (U+0007)",
        };
        struct seen s = { 0 };

        (void)state;
        for (size_t i = 0; i < 4; i++) {
                bool held = true;
                cJSON *j = reply(&s, payloads[i], &held);

                assert_string_equal(error_code(j), "BAD_REQUEST");
                assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "id")));
                assert_string_equal(
                        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message")->valuestring,
                        why[i]);
                assert_false(held);
                cJSON_Delete(j);
        }
        assert_int_equal(s.n, 0);
}

static void test_payload_over_the_limit_is_refused_unread(void **state) {
        size_t len = CMD_PAYLOAD_MAX + 4096;
        char *big = malloc(len);
        struct seen s = { 0 };
        char *line;
        cJSON *j;

        (void)state;
        assert_non_null(big);
        /* A valid request, padded with spaces past the limit: refused for its size alone. */
        memset(big, ' ', len);
        memcpy(big, "{\"op\":\"drain\"}", 14);
        line = cmd_handle_payload(NULL, big, len, dispatch, &s, NULL);
        assert_non_null(line);
        j = cJSON_Parse(line);
        assert_string_equal(error_code(j), "BAD_REQUEST");
        assert_non_null(strstr(line, "longer than"));
        assert_int_equal(s.n, 0);
        cJSON_Delete(j);
        free(line);
        /* At the limit exactly it is read. */
        line = cmd_handle_payload(NULL, big, CMD_PAYLOAD_MAX, dispatch, &s, NULL);
        assert_non_null(strstr(line, "\"ok\":true"));
        assert_int_equal(s.n, 1);
        free(line);
        free(big);
}

/* The reply to `payload` with the channel's memory, parsed (caller deletes). */
static cJSON *reply_st(struct cmd_state *st, struct seen *s, const char *payload) {
        char *line = cmd_handle_payload(st, payload, strlen(payload), dispatch, s, NULL);
        cJSON *j = cJSON_Parse(line);

        free(line);
        assert_non_null(j);
        return j;
}

static const char *message(const cJSON *j) {
        return cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message")->valuestring;
}

static void test_empty_payload_is_a_bad_request(void **state) {
        struct cmd_message m = { .payload = NULL, .len = 0 };
        struct cmd_state *st = calloc(1, sizeof(*st));
        const char *topic = NULL;
        struct seen s = { 0 };
        char *line = NULL;
        cJSON *j;

        (void)state;
        /* libmosquitto hands a zero-length payload over as NULL. */
        line = cmd_handle_payload(NULL, NULL, 0, dispatch, &s, NULL);
        j = cJSON_Parse(line);
        assert_string_equal(error_code(j), "BAD_REQUEST");
        cJSON_Delete(j);
        free(line);
        assert_int_equal(cmd_handle_message(st, &m, "r/n/cmd/reply", dispatch, &s, &j, &topic, NULL), 1);
        assert_string_equal(topic, "r/n/cmd/reply");
        assert_string_equal(error_code(j), "BAD_REQUEST");
        cJSON_Delete(j);
        assert_int_equal(s.n, 0);
        free(st);
}

static void test_retained_command_is_dropped_unrun_and_logged_sparingly(void **state) {
        static const char drain[] = "{\"id\":\"r1\",\"op\":\"disconnect\",\"user\":\"alice\"}";
        struct cmd_message m = { drain, sizeof(drain) - 1, true, NULL };
        struct cmd_state *st = calloc(1, sizeof(*st));
        const char *topic = NULL;
        cJSON *reply = NULL;
        struct seen s = { 0 };

        (void)state;
        plat_clock_set_fake(1000 * USEC_PER_SEC, 1700000000 * USEC_PER_SEC);
        for (int i = 0; i < 12; i++)
                assert_int_equal(
                        cmd_handle_message(st, &m, "r/n/cmd/reply", dispatch, &s, &reply, &topic, NULL), 0);
        assert_null(reply);
        assert_null(topic);
        assert_int_equal(s.n, 0);
        /* Five lines a minute, the rest counted; said in the next minute. */
        assert_int_equal(st->dropped.n, CMD_LOG_BURST);
        assert_int_equal(st->dropped.suppressed, 12 - CMD_LOG_BURST);
        plat_clock_set_fake(1061 * USEC_PER_SEC, 1700000061 * USEC_PER_SEC);
        assert_int_equal(cmd_handle_message(st, &m, "r/n/cmd/reply", dispatch, &s, &reply, &topic, NULL), 0);
        assert_int_equal(st->dropped.n, 1);
        assert_int_equal(st->dropped.suppressed, 0);
        /* The same command sent now (not retained) is carried out. */
        m.retain = false;
        assert_int_equal(cmd_handle_message(st, &m, "r/n/cmd/reply", dispatch, &s, &reply, &topic, NULL), 1);
        assert_int_equal(s.n, 1);
        assert_string_equal(s.ops[0], "disconnect");
        assert_string_equal(topic, "r/n/cmd/reply");
        cJSON_Delete(reply);
        plat_clock_set_fake(0, 0);
        free(st);
}

static void test_response_topic_must_be_below_the_nodes_reply_topic(void **state) {
        static const char *const refused[] = {
                "r/n/metering",    "r/n/status",   "r/n/events",     "r/n/telemetry",  "r/n/cmd",
                "r/n/cmd/replyx",  "r/n/cmd/repl", "ops/replies/42", "r/n2/cmd/reply", "",
                "r/n/cmd/reply2/a"
        };
        static const char *const taken[] = { "r/n/cmd/reply", "r/n/cmd/reply/42", "r/n/cmd/reply/a/b" };
        static const char drain[] = "{\"op\":\"drain\"}";
        struct cmd_state *st = calloc(1, sizeof(*st));
        struct cmd_message m = { drain, sizeof(drain) - 1, false, NULL };
        const char *topic = NULL;
        cJSON *reply = NULL;
        struct seen s = { 0 };

        (void)state;
        for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
                m.response_topic = refused[i];
                assert_false(cmd_reply_topic_ok("r/n/cmd/reply", refused[i]));
                assert_int_equal(
                        cmd_handle_message(st, &m, "r/n/cmd/reply", dispatch, &s, &reply, &topic, NULL), 0);
                assert_null(reply);
        }
        assert_int_equal(s.n, 0); /* refused commands run nothing */
        for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++) {
                m.response_topic = taken[i];
                assert_int_equal(
                        cmd_handle_message(st, &m, "r/n/cmd/reply", dispatch, &s, &reply, &topic, NULL), 1);
                assert_ptr_equal(topic, taken[i]); /* the message's, borrowed */
                assert_true(cJSON_IsTrue(cJSON_GetObjectItem(reply, "ok")));
                cJSON_Delete(reply);
        }
        assert_int_equal(s.n, 3);
        free(st);
}

static void test_command_id_is_carried_out_once(void **state) {
        struct cmd_state *st = calloc(1, sizeof(*st));
        struct seen s = { 0 };
        char payload[256];
        cJSON *j;

        (void)state;
        j = reply_st(st, &s, "{\"id\":\"c1\",\"op\":\"disconnect\",\"user\":\"alice\"}");
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")));
        cJSON_Delete(j);
        j = reply_st(st, &s, "{\"id\":\"c1\",\"op\":\"disconnect\",\"user\":\"alice\"}");
        assert_string_equal(error_code(j), "DUPLICATE");
        assert_string_equal(message(j),
                            "a command with id \"c1\" was carried out already; it is not run again");
        assert_string_equal(cJSON_GetObjectItem(j, "id")->valuestring, "c1");
        cJSON_Delete(j);
        assert_int_equal(s.n, 1);
        /* Ids are JSON values: "1" and 1 differ; no id, or null, is never a repeat. */
        for (int i = 0; i < 2; i++) {
                cJSON_Delete(reply_st(st, &s, "{\"id\":1,\"op\":\"drain\"}"));
                cJSON_Delete(reply_st(st, &s, "{\"op\":\"undrain\"}"));
                cJSON_Delete(reply_st(st, &s, "{\"id\":null,\"op\":\"status\"}"));
        }
        assert_int_equal(s.n, 1 + 1 + 2 + 2);
        /* A command that failed ran nothing: the same id may come again. */
        j = reply_st(st, &s, "{\"id\":\"c2\",\"op\":\"disconnect\",\"user\":\"nobody\"}");
        assert_string_equal(error_code(j), "SESSION_NOT_FOUND");
        cJSON_Delete(j);
        j = reply_st(st, &s, "{\"id\":\"c2\",\"op\":\"disconnect\",\"user\":\"nobody\"}");
        assert_string_equal(error_code(j), "SESSION_NOT_FOUND");
        cJSON_Delete(j);
        /* An id whose change was undone (the write failed) is forgotten. */
        j = cJSON_CreateString("c1");
        cmd_forget(st, j);
        cJSON_Delete(j);
        j = reply_st(st, &s, "{\"id\":\"c1\",\"op\":\"disconnect\",\"user\":\"alice\"}");
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")));
        cJSON_Delete(j);
        /* The memory is bounded: after CMD_SEEN_MAX newer ids the oldest may run again. */
        for (int i = 0; i < CMD_SEEN_MAX; i++) {
                snprintf(payload, sizeof(payload), "{\"id\":\"n%d\",\"op\":\"status\"}", i);
                cJSON_Delete(reply_st(st, &s, payload));
        }
        assert_int_equal(st->n_seen, CMD_SEEN_MAX);
        j = reply_st(st, &s, "{\"id\":\"c1\",\"op\":\"status\"}");
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")));
        cJSON_Delete(j);
        j = reply_st(st, &s, "{\"id\":\"n255\",\"op\":\"status\"}");
        assert_string_equal(error_code(j), "DUPLICATE");
        cJSON_Delete(j);
        /* An id too long to remember is refused. */
        memset(payload, 0, sizeof(payload));
        snprintf(payload, sizeof(payload), "{\"id\":\"%0127d\",\"op\":\"drain\"}", 0);
        j = reply_st(st, &s, payload);
        assert_string_equal(error_code(j), "BAD_REQUEST");
        assert_string_equal(message(j), "\"id\" is longer than 128 bytes as JSON");
        cJSON_Delete(j);
        free(st);
}

static void test_expired_command_is_refused(void **state) {
        struct cmd_state *st = calloc(1, sizeof(*st));
        struct seen s = { 0 };
        cJSON *j;

        (void)state;
        plat_clock_set_fake(1000 * USEC_PER_SEC, 1764600000 * USEC_PER_SEC);
        j = reply_st(st, &s, "{\"id\":\"e1\",\"op\":\"drain\",\"expires\":1764599999.5}");
        assert_string_equal(error_code(j), "EXPIRED");
        assert_string_equal(message(j), "the command expired at 2025-12-01T14:39:59.500Z; it is not run");
        cJSON_Delete(j);
        j = reply_st(st, &s, "{\"id\":\"e2\",\"op\":\"drain\",\"expires\":1764600000}");
        assert_string_equal(error_code(j), "EXPIRED"); /* at the second itself: expired */
        cJSON_Delete(j);
        assert_int_equal(s.n, 0);
        j = reply_st(st, &s, "{\"id\":\"e1\",\"op\":\"drain\",\"expires\":1764600001}");
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok"))); /* e1 never ran: not a repeat */
        cJSON_Delete(j);
        assert_int_equal(s.n, 1);
        /* Without state too: expiry needs no memory. */
        j = reply(&s, "{\"op\":\"drain\",\"expires\":1}", NULL);
        assert_string_equal(error_code(j), "EXPIRED");
        cJSON_Delete(j);
        for (const char *const *p = (const char *const[]){ "\"soon\"", "0", "-5", "1e300", "true", NULL };
             *p; p++) {
                char payload[128];

                snprintf(payload, sizeof(payload), "{\"op\":\"drain\",\"expires\":%s}", *p);
                j = reply_st(st, &s, payload);
                assert_string_equal(error_code(j), "BAD_REQUEST");
                assert_string_equal(message(j), "\"expires\" must be a time in unix seconds (a number > 0)");
                cJSON_Delete(j);
        }
        assert_int_equal(s.n, 1);
        plat_clock_set_fake(0, 0);
        free(st);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_operator_commands_reach_the_dispatcher_without_a_peer),
                cmocka_unit_test(test_session_ops_are_forbidden_and_never_dispatched),
                cmocka_unit_test(test_malformed_payloads_get_bad_request),
                cmocka_unit_test(test_ambiguous_payloads_are_refused_and_never_dispatched),
                cmocka_unit_test(test_payload_over_the_limit_is_refused_unread),
                cmocka_unit_test(test_empty_payload_is_a_bad_request),
                cmocka_unit_test(test_retained_command_is_dropped_unrun_and_logged_sparingly),
                cmocka_unit_test(test_response_topic_must_be_below_the_nodes_reply_topic),
                cmocka_unit_test(test_command_id_is_carried_out_once),
                cmocka_unit_test(test_expired_command_is_refused),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
