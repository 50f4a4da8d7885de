/* test_jsonnum.c: jsonnum_round is libm's round() for every kind of double, without libm. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "jsonnum.h"
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static uint64_t rng = 88172645463325252ULL;

static uint64_t next(void) {
        return tu_xorshift64(&rng);
}

/* Same value and same sign bit (round(-0.2) is -0.0), or both NaN. */
static void assert_same_as_libm(double v) {
        double want = round(v), got = jsonnum_round(v);

        if (isnan(want) && isnan(got))
                return;
        if (memcmp(&want, &got, sizeof(want)) != 0) {
                print_error("jsonnum_round(%a) = %a, round() = %a\n", v, got, want);
                fail();
        }
}

static void test_round_halves_go_away_from_zero_like_libm(void **state) {
        static const double edges[] = {
                0.0,
                -0.0,
                0.2,
                -0.2,
                0.5,
                -0.5,
                1.5,
                -1.5,
                2.5,
                -2.5,
                0.49999999999999994,
                -0.49999999999999994,
                1.4999999999999998,
                4503599627370495.5,
                -4503599627370495.5,
                4503599627370496.0,
                4503599627370497.0,
                9007199254740993.0,
                1e300,
                -1e300,
                DBL_MAX,
                -DBL_MAX,
                DBL_MIN,
                -DBL_MIN,
                4.9e-324,
                59.25,
                12.345 * 1000,
                INFINITY,
                -INFINITY,
                NAN,
        };

        (void)state;
        for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
                assert_same_as_libm(edges[i]);
        assert_true(jsonnum_round(2.5) == 3.0);
        assert_true(jsonnum_round(-2.5) == -3.0);
        assert_true(signbit(jsonnum_round(-0.2)));
}

static void test_round_matches_libm_on_random_doubles(void **state) {
        (void)state;
        for (int i = 0; i < 200000; i++) {
                uint64_t bits = next();
                double v;

                memcpy(&v, &bits, sizeof(v));
                assert_same_as_libm(v);
                /* and figures of the documents' size: a percent or Mbps times 10 or 1000 */
                assert_same_as_libm((double)(int64_t)(next() % 2000001) / 1000.0 - 1000.0);
                assert_same_as_libm((double)(next() % 100000000) / 8.0);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_halves_go_away_from_zero_like_libm),
                cmocka_unit_test(test_round_matches_libm_on_random_doubles),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
