/* test_jsonw.c: the JSON writer: its text is what cJSON prints for the tree it builds, and misuse fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "jsonw.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 88172645463325252ULL;

static uint64_t next(void) {
        return tu_xorshift64(&rng);
}

static unsigned below(unsigned n) {
        return (unsigned)(next() % n);
}

/* Doubles that exercise each path: ints (cJSON's %d), ties in binary, values that round across a
 * digit, huge (cut at 47 characters), tiny, negative zero, and not finite. */
static double some_double(void) {
        uint64_t bits;
        double d;

        switch (below(14)) {
        case 0:
                return NAN;
        case 1:
                return below(2) ? INFINITY : -INFINITY;
        case 2:
                return -0.0;
        case 3:
                return (double)below(100000) / 8.0 - 5000;
        case 4:
                return (double)below(100000) / 1000.0 + 0.0005;
        case 5:
                return 1e20 * (double)(below(1000) + 1);
        case 6:
                return 1e50;
        case 7:
                return 1e-300;
        case 8:
                return (double)(int32_t)next();
        case 9:
                return 4e9 + (double)below(1000);
        case 10:
                bits = next();
                memcpy(&d, &bits, sizeof(d));
                return d;
        default:
                return (double)(int64_t)(next() >> 20) / (double)(below(100000) + 1);
        }
}

static const char *const odd_strings[] = { "",
                                           "plain",
                                           "quote\"in",
                                           "back\\slash",
                                           "\x01\x1f\x7f",
                                           "\t\n\r\b\f",
                                           "caf\xc3\xa9 \xe2\x82\xac",
                                           "\x1b[31m" };

static const char *some_string(void) {
        return odd_strings[below(sizeof(odd_strings) / sizeof(odd_strings[0]))];
}

static const char *const keys[] = { "a", "key", "k\"q", "\x01", "long_key_name" };

/* One random document, written to both writers with the same calls. */
static void write_value(struct jsonw *t, struct jsonw *x, const char *key, unsigned depth) {
        unsigned kind = depth >= 5 ? 2 + below(7) : below(9);

        switch (kind) {
        case 0:
        case 1: {
                bool array = kind == 1;
                unsigned n = below(5);

                if (array) {
                        jsonw_array(t, key);
                        jsonw_array(x, key);
                } else {
                        jsonw_object(t, key);
                        jsonw_object(x, key);
                }
                for (unsigned i = 0; i < n; i++)
                        write_value(t, x, array ? NULL : keys[below(5)], depth + 1);
                jsonw_end(t);
                jsonw_end(x);
                break;
        }
        case 2: {
                const char *s = below(8) ? some_string() : NULL;

                jsonw_string(t, key, s);
                jsonw_string(x, key, s);
                break;
        }
        case 3: {
                double d = some_double();

                jsonw_number(t, key, d);
                jsonw_number(x, key, d);
                break;
        }
        case 4: {
                uint64_t v = below(2) ? next() : below(1000);

                jsonw_u64(t, key, v);
                jsonw_u64(x, key, v);
                break;
        }
        case 5: {
                double d = some_double();
                int dec = (int)below(5);

                jsonw_fixed(t, key, d, dec);
                jsonw_fixed(x, key, d, dec);
                break;
        }
        case 6:
                jsonw_bool(t, key, true);
                jsonw_bool(x, key, true);
                break;
        case 7:
                jsonw_bool(t, key, false);
                jsonw_bool(x, key, false);
                break;
        default:
                jsonw_null(t, key);
                jsonw_null(x, key);
        }
}

static void test_text_is_what_cjson_prints_for_the_same_calls(void **state) {
        (void)state;
        for (int i = 0; i < 3000; i++) {
                struct jsonw t, x;
                cJSON *tree;
                char *text, *printed;

                jsonw_init(&t, true);
                jsonw_init(&x, false);
                jsonw_object(&t, NULL);
                jsonw_object(&x, NULL);
                for (unsigned n = below(6); n > 0; n--)
                        write_value(&t, &x, keys[below(5)], 1);
                jsonw_end(&t);
                jsonw_end(&x);
                tree = jsonw_take_tree(&t);
                text = jsonw_take_text(&x);
                assert_non_null(tree);
                assert_non_null(text);
                printed = cJSON_PrintUnformatted(tree);
                assert_string_equal(text, printed);
                free(printed);
                free(text);
                cJSON_Delete(tree);
        }
}

static void expect_fixed(double v, int decimals, const char *want) {
        char buf[JSONW_NUM_MAX];

        assert_int_equal(jsonw_fmt_fixed(buf, v, decimals), strlen(want));
        assert_string_equal(buf, want);
}

/* The fast path rounds |v| * 10^d itself; only where that product is too close to a half to be sure
 * does printf decide. Either way the bytes are printf's. */
static void test_fixed_is_printf_byte_for_byte_including_ties(void **state) {
        char buf[JSONW_NUM_MAX], want[JSONW_NUM_MAX];

        (void)state;
        expect_fixed(0.125, 2, "0.12"); /* a tie in binary: to even */
        expect_fixed(0.375, 2, "0.38");
        expect_fixed(2.5, 0, "2");
        expect_fixed(0.0625, 3, "0.062");
        expect_fixed(2.675, 2, "2.67"); /* 2.67499999... in binary */
        expect_fixed(9.9996, 3, "10.000");
        expect_fixed(-0.0, 3, "-0.000");
        expect_fixed(-0.0004, 3, "-0.000");
        expect_fixed(-12.34, 1, "-12.3");
        expect_fixed(18446744073709551615.0, 0, "18446744073709551616");
        expect_fixed(1e50, 1, "10000000000000000762976984109188700329496497094"); /* cut to 47 */
        for (int i = 0; i < 200000; i++) {
                double v = some_double();
                int dec = (int)below(11);
                int n = snprintf(want, sizeof(want), "%.*f", dec, v);
                size_t len = jsonw_fmt_fixed(buf, v, dec);

                assert_true(n >= 0);
                assert_int_equal(len, (size_t)n < sizeof(want) ? (size_t)n : sizeof(want) - 1);
                assert_string_equal(buf, want);
        }
}

static void test_u64_digits_are_exact_past_double_precision(void **state) {
        char buf[JSONW_NUM_MAX];

        (void)state;
        assert_int_equal(jsonw_fmt_u64(buf, 0), 1);
        assert_string_equal(buf, "0");
        jsonw_fmt_u64(buf, (1ULL << 53) + 1);
        assert_string_equal(buf, "9007199254740993");
        assert_int_equal(jsonw_fmt_u64(buf, UINT64_MAX), 20);
        assert_string_equal(buf, "18446744073709551615");
}

/* What cJSON_AddStringToObject() does with NULL, and what the documents do with a rate that is not
 * a number: the member is absent, with no stray comma. */
static void test_null_string_and_non_finite_fixed_are_left_out(void **state) {
        struct jsonw w;
        char *s;

        (void)state;
        jsonw_init(&w, false);
        jsonw_object(&w, NULL);
        jsonw_string(&w, "gone", NULL);
        jsonw_fixed(&w, "nan", NAN, 1);
        jsonw_number(&w, "n", 3);
        jsonw_fixed(&w, "inf", INFINITY, 1);
        jsonw_array(&w, "a");
        jsonw_string(&w, NULL, NULL);
        jsonw_number(&w, NULL, NAN); /* a number that is not finite prints as null, as cJSON does */
        jsonw_end(&w);
        jsonw_end(&w);
        s = jsonw_take_text(&w);
        assert_string_equal(s, "{\"n\":3,\"a\":[null]}");
        free(s);
}

/* Each misuse fails the document (NULL), in both modes, without leaking what was built. */
static void test_misuse_fails_the_document(void **state) {
        (void)state;
        for (int tree = 0; tree < 2; tree++)
                for (int c = 0; c < 7; c++) {
                        struct jsonw w;

                        jsonw_init(&w, tree);
                        if (c == 1) { /* a scalar root */
                                jsonw_number(&w, NULL, 1);
                                assert_true(w.failed);
                                jsonw_done(&w);
                                continue;
                        }
                        jsonw_object(&w, NULL);
                        switch (c) {
                        case 0: /* a member without a key */
                                jsonw_number(&w, NULL, 1);
                                break;
                        case 2: /* a key in an array */
                                jsonw_array(&w, "a");
                                jsonw_bool(&w, "k", true);
                                jsonw_end(&w);
                                break;
                        case 3: /* left open */
                                jsonw_object(&w, "o");
                                break;
                        case 4: /* closed once too often */
                                jsonw_end(&w);
                                break;
                        case 5: /* nested past JSONW_DEPTH_MAX */
                                for (int d = 1; d <= JSONW_DEPTH_MAX; d++)
                                        jsonw_array(&w, d == 1 ? "a" : NULL);
                                for (int d = 1; d <= JSONW_DEPTH_MAX; d++)
                                        jsonw_end(&w);
                                break;
                        default: /* a second root */
                                jsonw_end(&w);
                                jsonw_object(&w, NULL);
                        }
                        jsonw_end(&w);
                        if (tree)
                                assert_null(jsonw_take_tree(&w));
                        else
                                assert_null(jsonw_take_text(&w));
                }
}

static void test_a_document_is_taken_in_its_own_mode_only(void **state) {
        struct jsonw w;

        (void)state;
        jsonw_init(&w, false);
        jsonw_object(&w, NULL);
        jsonw_end(&w);
        assert_null(jsonw_take_tree(&w));
        jsonw_init(&w, true);
        jsonw_object(&w, NULL);
        jsonw_end(&w);
        assert_null(jsonw_take_text(&w));
        /* The deepest nesting allowed works. */
        jsonw_init(&w, false);
        for (int d = 0; d < JSONW_DEPTH_MAX; d++)
                jsonw_array(&w, NULL);
        for (int d = 0; d < JSONW_DEPTH_MAX; d++)
                jsonw_end(&w);
        assert_false(w.failed);
        jsonw_done(&w);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_text_is_what_cjson_prints_for_the_same_calls),
                cmocka_unit_test(test_fixed_is_printf_byte_for_byte_including_ties),
                cmocka_unit_test(test_u64_digits_are_exact_past_double_precision),
                cmocka_unit_test(test_null_string_and_non_finite_fixed_are_left_out),
                cmocka_unit_test(test_misuse_fails_the_document),
                cmocka_unit_test(test_a_document_is_taken_in_its_own_mode_only),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
