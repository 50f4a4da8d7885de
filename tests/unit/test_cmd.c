/* test_cmd.c: the MQTT command filter: which ops pass to the dispatcher, and what the others get. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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

        (void)req;
        (void)ret_code;
        (void)msg;
        (void)msglen;
        if (s->n < 8)
                snprintf(s->ops[s->n++], sizeof(s->ops[0]), "%s", op);
        s->had_peer |= peer != NULL;
        *ret_held = !strcmp(op, "drain");
        r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "did", op);
        return r;
}

/* The reply to `payload`, parsed (caller deletes). */
static cJSON *reply(struct seen *s, const char *payload, bool *held) {
        char *line = cmd_handle_payload(payload, strlen(payload), dispatch, s, held);
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
                               "not taken over MQTT"));
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
        line = cmd_handle_payload(big, len, dispatch, &s, NULL);
        assert_non_null(line);
        j = cJSON_Parse(line);
        assert_string_equal(error_code(j), "BAD_REQUEST");
        assert_non_null(strstr(line, "longer than"));
        assert_int_equal(s.n, 0);
        cJSON_Delete(j);
        free(line);
        /* At the limit exactly it is read. */
        line = cmd_handle_payload(big, CMD_PAYLOAD_MAX, dispatch, &s, NULL);
        assert_non_null(strstr(line, "\"ok\":true"));
        assert_int_equal(s.n, 1);
        free(line);
        free(big);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_operator_commands_reach_the_dispatcher_without_a_peer),
                cmocka_unit_test(test_session_ops_are_forbidden_and_never_dispatched),
                cmocka_unit_test(test_malformed_payloads_get_bad_request),
                cmocka_unit_test(test_payload_over_the_limit_is_refused_unread),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
