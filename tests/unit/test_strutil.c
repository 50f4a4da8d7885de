/* test_strutil.c: strict number parsing, bounded copies, error buffers and UTF-8 text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "strutil.h"

#include <errno.h>
#include <string.h>

static void test_parse_u64_is_strict(void **state) {
        uint64_t v = 7;

        (void)state;
        assert_int_equal(plat_parse_u64("12345", 5, &v), 0);
        assert_int_equal(v, 12345);
        assert_int_equal(plat_parse_u64("18446744073709551615", 20, &v), 0);
        assert_true(v == UINT64_MAX);
        assert_int_equal(plat_parse_u64("18446744073709551616", 20, &v), -ERANGE);
        assert_int_equal(plat_parse_u64("", 0, &v), -EPROTO);
        assert_int_equal(plat_parse_u64("-1", 2, &v), -EPROTO);
        assert_int_equal(plat_parse_u64("12a", 3, &v), -EPROTO);
        assert_int_equal(plat_parse_u64(" 1", 2, &v), -EPROTO);
        /* Only [s, s+len) is read. */
        assert_int_equal(plat_parse_u64("99xyz", 2, &v), 0);
        assert_int_equal(v, 99);
}

static void test_strlcpy_truncates_and_terminates(void **state) {
        char buf[4];

        (void)state;
        assert_int_equal(plat_strlcpy(buf, "abcdef", sizeof(buf)), 6);
        assert_string_equal(buf, "abc");
        assert_int_equal(plat_strlcpy(buf, "", sizeof(buf)), 0);
        assert_string_equal(buf, "");
}

static void test_errf_tolerates_null_buffer(void **state) {
        char buf[8];

        (void)state;
        plat_errf(NULL, 0, "x %d", 1);
        plat_errf(buf, sizeof(buf), "%s", "0123456789");
        assert_string_equal(buf, "0123456");
        assert_true(plat_streq_ptr(NULL, NULL));
        assert_false(plat_streq_ptr("a", NULL));
        assert_true(plat_streq_ptr("a", "a"));
}

static void test_quote_and_tokens_stay_inside_the_buffer(void **state) {
        const char line[] = "  MemTotal:\t 123 kB";
        const char *p = line, *end = line + sizeof(line) - 1, *tok;
        char q[PLAT_QUOTE_MAX];
        size_t len;

        (void)state;
        assert_true(plat_next_token(&p, end, &tok, &len));
        assert_int_equal(len, 9);
        assert_memory_equal(tok, "MemTotal:", 9);
        assert_true(plat_next_token(&p, end, &tok, &len));
        assert_memory_equal(tok, "123", 3);
        assert_true(plat_next_token(&p, end, &tok, &len));
        assert_false(plat_next_token(&p, end, &tok, &len));
        assert_string_equal(plat_quote("a\001b\n", 4, q), "a?b?");
        assert_int_equal(strlen(plat_quote("0123456789012345678901234567890123456789", 40, q)),
                         PLAT_QUOTE_MAX - 1);
}

static void test_parse_hex_u32_takes_sysfs_pci_ids_only(void **state) {
        uint32_t v = 0;

        (void)state;
        assert_int_equal(plat_parse_hex_u32("0x10de", 6, &v), 0);
        assert_int_equal(v, 0x10de);
        assert_int_equal(plat_parse_hex_u32("0x030000", 8, &v), 0);
        assert_int_equal(v, 0x030000);
        assert_int_equal(plat_parse_hex_u32("0xFFFFFFFF", 10, &v), 0);
        assert_int_equal(v, 0xffffffffu);
        assert_int_equal(plat_parse_hex_u32("0x100000000", 11, &v), -EPROTO);
        assert_int_equal(plat_parse_hex_u32("0x", 2, &v), -EPROTO);
        assert_int_equal(plat_parse_hex_u32("10de", 4, &v), -EPROTO);
        assert_int_equal(plat_parse_hex_u32("0x10dg", 6, &v), -EPROTO);
        assert_int_equal(plat_parse_hex_u32("0x1002zz", 6, &v), 0); /* only [s, s+len) */
        assert_int_equal(v, 0x1002);
}

static void test_utf8_text_takes_well_formed_printable_text_only(void **state) {
        static const char *const good[] = { "rtmp-1",       "live.example/\xe7\x9b\xb4\xe6\x92\xad",
                                            "caf\xc3\xa9",  "\xf0\x9f\x8e\xae",
                                            "\xef\xbf\xbd", "" };
        static const char *const bad[] = {
                "\xff",             /* never in UTF-8 */
                "a\x80",            /* a continuation byte without a lead */
                "\xc3",             /* cut short */
                "\xe7\x9b",         /* cut short */
                "\xc0\xaf",         /* overlong '/' */
                "\xe0\x80\xaf",     /* overlong '/' */
                "\xed\xa0\x80",     /* a surrogate (U+D800) */
                "\xf4\x90\x80\x80", /* past U+10FFFF */
                "a\tb",             /* C0 control */
                "a\x7f",            /* DEL */
                "\xc2\x85",         /* C1 control (NEL) */
                "\xc3\xa9\x1b[31m", /* an escape sequence after good text */
        };

        (void)state;
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
                assert_true(plat_utf8_text(good[i], strlen(good[i])));
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (plat_utf8_text(bad[i], strlen(bad[i])))
                        fail_msg("bad[%zu] was taken", i);
        }
        /* A NUL inside the length is a control character; only [s, s+len) is read. */
        assert_false(plat_utf8_text("a\0b", 3));
        assert_true(plat_utf8_text("ab\xff", 2));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_u64_is_strict),
                cmocka_unit_test(test_strlcpy_truncates_and_terminates),
                cmocka_unit_test(test_errf_tolerates_null_buffer),
                cmocka_unit_test(test_quote_and_tokens_stay_inside_the_buffer),
                cmocka_unit_test(test_parse_hex_u32_takes_sysfs_pci_ids_only),
                cmocka_unit_test(test_utf8_text_takes_well_formed_printable_text_only),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
