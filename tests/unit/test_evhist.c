/* test_evhist.c: the in-memory event history: bounded by count and bytes, "since" read strictly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "evhist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cJSON *since(const struct evhist *h, uint64_t t) {
        cJSON *arr = cJSON_CreateArray();

        assert_int_equal(evhist_since(h, t, arr), 0);
        return arr;
}

static void test_history_keeps_the_newest_events_oldest_first(void **state) {
        struct evhist *h;
        char doc[64];
        cJSON *arr;

        (void)state;
        assert_int_equal(evhist_new(&h), 0);
        for (int i = 0; i < EVHIST_MAX + 10; i++) {
                snprintf(doc, sizeof(doc), "{\"n\":%d}", i);
                assert_int_equal(evhist_add(h, doc, 1000 + (uint64_t)i), 0);
        }
        arr = since(h, 0);
        assert_int_equal(cJSON_GetArraySize(arr), EVHIST_MAX);
        assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "n")->valueint, 10);
        assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, EVHIST_MAX - 1), "n")->valueint,
                         EVHIST_MAX + 9);
        cJSON_Delete(arr);
        arr = since(h, 1000 + EVHIST_MAX + 8); /* the last two */
        assert_int_equal(cJSON_GetArraySize(arr), 2);
        assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "n")->valueint, EVHIST_MAX + 8);
        cJSON_Delete(arr);
        evhist_free(h);
        evhist_free(NULL);
}

static void test_history_drops_the_oldest_past_its_byte_limit(void **state) {
        size_t big = EVHIST_MAX_BYTES / 3 + 16; /* two fit, three do not */
        char *doc = malloc(big + 16);
        struct evhist *h;
        cJSON *arr;

        (void)state;
        assert_int_equal(evhist_new(&h), 0);
        for (int i = 0; i < 4; i++) {
                int n = snprintf(doc, 16, "{\"n\":%d,\"p\":\"", i);

                memset(doc + n, 'x', big - (size_t)n - 2);
                strcpy(doc + big - 2, "\"}");
                assert_int_equal(evhist_add(h, doc, (uint64_t)i), 0);
        }
        arr = since(h, 0);
        assert_int_equal(cJSON_GetArraySize(arr), 2);
        assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "n")->valueint, 2);
        cJSON_Delete(arr);
        free(doc);
        doc = calloc(EVHIST_MAX_BYTES + 2, 1);
        memset(doc, ' ', EVHIST_MAX_BYTES + 1);
        assert_int_equal(evhist_add(h, doc, 9), -E2BIG);
        free(doc);
        evhist_free(h);
}

static void test_since_takes_seconds_ago_or_an_rfc3339_utc_time(void **state) {
        const uint64_t now = 1764598801950000ULL; /* 2025-12-01T14:20:01.950Z */
        char msg[256];
        uint64_t t = 1;
        cJSON *v;

        (void)state;
        assert_int_equal(evhist_parse_since(NULL, now, &t, msg, sizeof(msg)), 0);
        assert_int_equal(t, 0);
        v = cJSON_CreateNumber(1.5);
        assert_int_equal(evhist_parse_since(v, now, &t, msg, sizeof(msg)), 0);
        assert_int_equal(t, now - 1500000);
        cJSON_Delete(v);
        v = cJSON_CreateString("2025-12-01T14:20:01.95Z");
        assert_int_equal(evhist_parse_since(v, now, &t, msg, sizeof(msg)), 0);
        assert_int_equal(t, now);
        cJSON_Delete(v);
        v = cJSON_CreateString("2025-12-01T14:20:01+00:00");
        assert_int_equal(evhist_parse_since(v, now, &t, msg, sizeof(msg)), 0);
        assert_int_equal(t, now - 950000);
        cJSON_Delete(v);
}

static void test_a_bad_since_is_refused_with_what_was_wrong(void **state) {
        static const char *const bad[] = { "yesterday",
                                           "2025-12-01T14:20:01",
                                           "2025-12-01T14:20:01+02:00",
                                           "2025-12-01T14:20:01.Z",
                                           "2025-12-01 14:20:01Z",
                                           "" };
        char msg[256];
        uint64_t t = 7;
        cJSON *v;

        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                v = cJSON_CreateString(bad[i]);
                assert_int_equal(evhist_parse_since(v, 1000, &t, msg, sizeof(msg)), -EINVAL);
                assert_non_null(
                        strstr(msg, "\"since\" must be a number of seconds or an RFC 3339 UTC time"));
                cJSON_Delete(v);
        }
        v = cJSON_CreateNumber(-1);
        assert_int_equal(evhist_parse_since(v, 1000, &t, msg, sizeof(msg)), -EINVAL);
        cJSON_Delete(v);
        v = cJSON_CreateTrue();
        assert_int_equal(evhist_parse_since(v, 1000, &t, msg, sizeof(msg)), -EINVAL);
        cJSON_Delete(v);
        assert_int_equal(t, 7); /* untouched on failure */
}

static void test_events_op_replies_history_and_following(void **state) {
        const char *code = NULL;
        struct evhist *h;
        char msg[256];
        cJSON *req, *res;

        (void)state;
        assert_int_equal(evhist_new(&h), 0);
        assert_int_equal(evhist_add(h, "{\"event\":\"node_drain\"}", 5000000), 0);
        req = cJSON_Parse("{\"op\":\"events\",\"follow\":true,\"since\":2}");
        res = evhist_op(h, req, 6000000, &code, msg, sizeof(msg));
        assert_non_null(res);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "events")), 1);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(res, "following")));
        cJSON_Delete(res);
        cJSON_Delete(req);
        req = cJSON_Parse("{\"op\":\"events\",\"follow\":\"yes\"}");
        assert_null(evhist_op(h, req, 6000000, &code, msg, sizeof(msg)));
        assert_string_equal(code, "BAD_REQUEST");
        assert_string_equal(msg, "\"follow\" must be true or false");
        cJSON_Delete(req);
        evhist_free(h);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_history_keeps_the_newest_events_oldest_first),
                cmocka_unit_test(test_history_drops_the_oldest_past_its_byte_limit),
                cmocka_unit_test(test_since_takes_seconds_ago_or_an_rfc3339_utc_time),
                cmocka_unit_test(test_a_bad_since_is_refused_with_what_was_wrong),
                cmocka_unit_test(test_events_op_replies_history_and_following),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
