/* test_pace.c: the first reconnect drawn over the whole window, and a backlog published at the
 * configured rate, with the clock and the random numbers set by the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pace.h"

#define MS UINT64_C(1000)
#define SEC UINT64_C(1000000)

static void test_first_reconnect_delay_spreads_over_the_whole_window(void **state) {
        uint64_t lo = UINT64_MAX, hi = 0, buckets[10] = { 0 };
        uint32_t x = 2463534242u; /* xorshift32: a fixed, evenly spread sequence */

        (void)state;
        for (int i = 0; i < 10000; i++) {
                uint64_t d;

                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                d = pace_spread_usec(30 * SEC, 100 * MS, x);
                assert_true(d >= 100 * MS && d < 30 * SEC);
                lo = d < lo ? d : lo;
                hi = d > hi ? d : hi;
                buckets[d / (3 * SEC)]++;
        }
        /* Not all in the first second: every tenth of the window gets about a tenth of the nodes. */
        assert_true(lo < SEC && hi > 29 * SEC);
        for (int b = 0; b < 10; b++)
                assert_true(buckets[b] > 800 && buckets[b] < 1200);
}

static void test_spread_ends_at_the_window_and_keeps_the_floor(void **state) {
        (void)state;
        assert_int_equal(pace_spread_usec(10 * SEC, 100 * MS, 0), 100 * MS);
        assert_int_equal(pace_spread_usec(10 * SEC, 100 * MS, UINT32_MAX / 2 + 1), 5 * SEC);
        assert_true(pace_spread_usec(10 * SEC, 100 * MS, UINT32_MAX) < 10 * SEC);
        assert_true(pace_spread_usec(10 * SEC, 100 * MS, UINT32_MAX) > 10 * SEC - MS);
        /* A window of 0 (spreading off) leaves the floor. */
        assert_int_equal(pace_spread_usec(0, 100 * MS, UINT32_MAX), 100 * MS);
}

static void test_backlog_goes_out_at_the_configured_rate(void **state) {
        struct pace p;
        uint64_t t = 1000 * SEC, start = t, sent = 0;

        (void)state;
        pace_init(&p, 50, 5);
        /* 1,000 records waiting: take as fast as the cap allows, sleeping only as told. */
        while (sent < 1000) {
                uint64_t w = pace_wait_usec(&p, t);

                if (w) {
                        assert_false(pace_take(&p, t));
                        t += w;
                        continue;
                }
                assert_true(pace_take(&p, t));
                sent++;
                /* Never more than the burst plus the rate since the start. */
                assert_true(sent <= 5 + (t - start) * 50 / SEC);
        }
        /* 995 after the burst at 50/s: 19.9 s. */
        assert_int_equal(t - start, 19900 * MS);
}

static void test_burst_is_bounded_after_an_idle_spell(void **state) {
        struct pace p;
        uint64_t t = 5 * SEC;
        int n = 0;

        (void)state;
        pace_init(&p, 10, 3);
        assert_true(pace_take(&p, t));
        /* An hour idle earns no more than the burst. */
        t += 3600 * SEC;
        while (pace_take(&p, t))
                n++;
        assert_int_equal(n, 3);
        assert_int_equal(pace_wait_usec(&p, t), 100 * MS);
        assert_true(pace_take(&p, t + 100 * MS));
}

static void test_rate_zero_never_holds_back(void **state) {
        struct pace p;

        (void)state;
        pace_init(&p, 0, 0);
        for (int i = 0; i < 100000; i++)
                assert_true(pace_take(&p, 7));
        assert_int_equal(pace_wait_usec(&p, 7), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_first_reconnect_delay_spreads_over_the_whole_window),
                cmocka_unit_test(test_spread_ends_at_the_window_and_keeps_the_floor),
                cmocka_unit_test(test_backlog_goes_out_at_the_configured_rate),
                cmocka_unit_test(test_burst_is_bounded_after_an_idle_spell),
                cmocka_unit_test(test_rate_zero_never_holds_back),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
