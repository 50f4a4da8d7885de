/* test_jsonstrict.c: strict JSON from outside: one object, UTF-8, each key once, nothing after it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "jsonstrict.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses `text` (len bytes; strlen when 0) and expects it taken. */
static void expect_taken(const char *text, size_t len) {
        char why[256] = "";
        cJSON *j = NULL;

        if (!len)
                len = strlen(text);
        assert_int_equal(jsonstrict_parse_object(text, len, "request", &j, why, sizeof(why)), 0);
        assert_non_null(j);
        cJSON_Delete(j);
}

/* Parses `text` (len bytes; strlen when 0) and expects it refused with exactly `want`. */
static void expect_refused(const char *text, size_t len, const char *want) {
        char why[256] = "";
        cJSON *j = NULL;

        if (!len)
                len = strlen(text);
        assert_int_equal(jsonstrict_parse_object(text, len, "request", &j, why, sizeof(why)), -EPROTO);
        assert_null(j);
        assert_string_equal(why, want);
}

static void test_one_object_with_whitespace_around_it_is_taken(void **state) {
        (void)state;
        expect_taken("{\"op\":\"status\",\"id\":[1,{\"a\":null}]}", 0);
        expect_taken(" \t{\"op\":\"status\"}\r\n ", 0);
        expect_taken("{\"user\":\"\xc3\xa9l\xc3\xa8ne \xe2\x82\xac \xf0\x9f\x98\x80\"}", 0);
        expect_taken("{\"user\":\"\\ud83d\\ude00 \\u00e9 \\n\\t\\\"\\\\\"}", 0);
        /* The same key in two different objects is two keys. */
        expect_taken("{\"a\":{\"k\":1},\"b\":{\"k\":2},\"c\":[{\"k\":1},{\"k\":2}]}", 0);
        /* Only the first len bytes count. */
        expect_taken("{\"op\":\"status\"}garbage", 15);
}

static void test_a_key_twice_is_refused_at_any_depth(void **state) {
        char big[4096];
        size_t n;

        (void)state;
        expect_refused("{\"op\":\"status\",\"op\":\"drain\"}", 0,
                       "request has the key \"op\" twice in the top-level object");
        expect_refused("{\"id\":1,\"a\":{\"b\":1,\"c\":2,\"b\":3}}", 0,
                       "request has the key \"b\" twice in the object at .a");
        expect_refused("{\"a\":[{},{\"x\":[{\"k\":1,\"k\":1}]}]}", 0,
                       "request has the key \"k\" twice in the object at .a[1].x[0]");
        /* Escapes are read before keys are compared: "\u006fp" is "op". */
        expect_refused("{\"op\":\"status\",\"\\u006fp\":\"drain\"}", 0,
                       "request has the key \"op\" twice in the top-level object");
        /* A key with control characters is quoted with them shown as '?'. */
        expect_refused("{\"a\\nb\":1,\"a\\nb\":2}", 0,
                       "request has the key \"a?b\" twice in the top-level object");
        /* A large object (sorted, not compared pairwise): 100 keys, the repeat last. */
        n = (size_t)snprintf(big, sizeof(big), "{");
        for (int i = 0; i < 100; i++)
                n += (size_t)snprintf(big + n, sizeof(big) - n, "\"k%d\":%d,", i, i);
        snprintf(big + n, sizeof(big) - n, "\"k%d\":0}", 100);
        expect_taken(big, 0);
        snprintf(big + n, sizeof(big) - n, "\"k%d\":0}", 57);
        expect_refused(big, 0, "request has the key \"k57\" twice in the top-level object");
}

static void test_data_after_the_object_is_refused(void **state) {
        (void)state;
        expect_refused("{\"op\":\"status\"} x", 0,
                       "request has data after its JSON object, at byte 16 (one object per line)");
        expect_refused("{\"op\":\"status\"}{\"op\":\"drain\"}", 0,
                       "request has data after its JSON object, at byte 15 (one object per line)");
        expect_refused("{\"op\":\"status\"},", 0,
                       "request has data after its JSON object, at byte 15 (one object per line)");
        expect_refused("[1]", 0, "request is not a JSON object");
        expect_refused("\"op\"", 0, "request is not a JSON object");
        expect_refused("{\"op\":", 0, "request is not a JSON object");
        expect_refused("", 0, "request is not a JSON object");
        expect_refused("{\"op\":\0}", 8, "request contains a NUL byte");
}

static void test_bytes_that_are_not_utf8_are_refused(void **state) {
        (void)state;
        expect_refused("{\"id\":\"\xff\"}", 0, "request is not valid UTF-8: byte 0xFF at byte 7");
        /* Overlong '/', a UTF-16 surrogate encoded, past U+10FFFF, a character cut short. */
        expect_refused("{\"id\":\"\xc0\xaf\"}", 0, "request is not valid UTF-8: byte 0xC0 at byte 7");
        expect_refused("{\"id\":\"\xed\xa0\x80\"}", 0, "request is not valid UTF-8: byte 0xED at byte 7");
        expect_refused("{\"id\":\"\xf4\x90\x80\x80\"}", 0,
                       "request is not valid UTF-8: byte 0xF4 at byte 7");
        expect_refused("{\"id\":\"\xe2\x82\"}", 0, "request is not valid UTF-8: byte 0xE2 at byte 7");
        /* In a key, and outside any string. */
        expect_refused("{\"\x80\":1}", 0, "request is not valid UTF-8: byte 0x80 at byte 2");
        expect_refused("{\"op\":1}\xe2\x82", 0, "request is not valid UTF-8: byte 0xE2 at byte 8");
}

static void test_control_characters_nul_and_lone_surrogates_are_refused(void **state) {
        (void)state;
        expect_refused("{\"id\":\"a\x01\"}", 0,
                       "request has an unescaped control character (0x01) in a string, at byte 8");
        expect_refused("{\"id\":\"a\tb\"}", 0,
                       "request has an unescaped control character (0x09) in a string, at byte 8");
        /* cJSON skips any byte up to 0x20 between tokens. */
        expect_refused("\x01{\"op\":1}", 0,
                       "request has a control character (0x01) outside a string, at byte 0");
        expect_refused("{\"op\":\x0b"
                       "1}",
                       0, "request has a control character (0x0B) outside a string, at byte 6");
        expect_refused("{\"id\":\"a\\u0000b\"}", 0, "request has \\u0000 in a string, at byte 8");
        expect_refused("{\"id\":\"\\ud800\"}", 0,
                       "request has a lone UTF-16 surrogate \\uD800 in a string, at byte 7");
        expect_refused("{\"id\":\"\\ud800\\u0041\"}", 0,
                       "request has a lone UTF-16 surrogate \\uD800 in a string, at byte 7");
        expect_refused("{\"id\":\"\\uDC00\"}", 0,
                       "request has a lone UTF-16 surrogate \\uDC00 in a string, at byte 7");
        /* An escaped quote does not end the string; what follows it is still checked. */
        expect_refused("{\"id\":\"\\\"\x02\"}", 0,
                       "request has an unescaped control character (0x02) in a string, at byte 9");
}

static void test_printable_refuses_control_characters_anywhere_in_a_value(void **state) {
        static const char *const bad[] = { "{\"id\":\"a\\u0007b\"}", "{\"id\":\"line\\nbreak\"}",
                                           "{\"id\":\"\\u007f\"}", "{\"id\":\"\\u0085\"}",
                                           "{\"id\":[1,{\"k\\u001b\":2}]}" };
        static const char *const want[] = { "\"id\" has a control character (U+0007)",
                                            "\"id\" has a control character (U+000A)",
                                            "\"id\" has a control character (U+007F)",
                                            "\"id\" has a control character (U+0085)",
                                            "\"id\" has a control character (U+001B)" };
        char why[128];

        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                cJSON *j = cJSON_Parse(bad[i]);

                assert_false(jsonstrict_printable(cJSON_GetObjectItem(j, "id"), "\"id\"", why, sizeof(why)));
                assert_string_equal(why, want[i]);
                cJSON_Delete(j);
        }
        {
                cJSON *j = cJSON_Parse("{\"id\":[\"\xc3\xa9t\xc3\xa9\",7,null,{\"k\":\"v\"}]}");

                assert_true(jsonstrict_printable(cJSON_GetObjectItem(j, "id"), "\"id\"", why, sizeof(why)));
                assert_true(jsonstrict_printable(NULL, "\"id\"", why, sizeof(why)));
                cJSON_Delete(j);
        }
}

static void test_utf8_prefix_stops_before_a_cut_character(void **state) {
        (void)state;
        assert_int_equal(jsonstrict_utf8_prefix("abc", 3), 3);
        assert_int_equal(jsonstrict_utf8_prefix("ab\xc3\xa9", 4), 4);
        assert_int_equal(jsonstrict_utf8_prefix("ab\xc3\xa9", 3), 2);
        assert_int_equal(jsonstrict_utf8_prefix("ab\xe2\x82", 4), 2);
        assert_int_equal(jsonstrict_utf8_prefix("a\xff"
                                                "b",
                                                3),
                         1);
        assert_int_equal(jsonstrict_utf8_prefix("", 0), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_one_object_with_whitespace_around_it_is_taken),
                cmocka_unit_test(test_a_key_twice_is_refused_at_any_depth),
                cmocka_unit_test(test_data_after_the_object_is_refused),
                cmocka_unit_test(test_bytes_that_are_not_utf8_are_refused),
                cmocka_unit_test(test_control_characters_nul_and_lone_surrogates_are_refused),
                cmocka_unit_test(test_printable_refuses_control_characters_anywhere_in_a_value),
                cmocka_unit_test(test_utf8_prefix_stops_before_a_cut_character),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
