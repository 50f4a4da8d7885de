/* test_hysteresis.c: over-cap detection that needs the condition to hold, and never flaps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hysteresis.h"

#define S 1000000ULL

static void test_raises_only_after_five_consecutive_seconds(void **state) {
        struct hysteresis h = { 0 };

        (void)state;
        for (uint64_t t = 0; t < 5; t++)
                assert_int_equal(hyst_update(&h, true, t * S, 5 * S, 5 * S), HYST_NONE);
        assert_int_equal(hyst_update(&h, true, 5 * S, 5 * S, 5 * S), HYST_RAISED);
        assert_true(h.raised);
        assert_int_equal(hyst_update(&h, true, 6 * S, 5 * S, 5 * S), HYST_NONE);
}

static void test_one_sample_under_restarts_the_wait(void **state) {
        struct hysteresis h = { 0 };

        (void)state;
        for (uint64_t t = 0; t < 4; t++)
                hyst_update(&h, true, t * S, 5 * S, 5 * S);
        assert_int_equal(hyst_update(&h, false, 4 * S, 5 * S, 5 * S), HYST_NONE);
        for (uint64_t t = 5; t < 10; t++)
                assert_int_equal(hyst_update(&h, true, t * S, 5 * S, 5 * S), HYST_NONE);
        assert_int_equal(hyst_update(&h, true, 10 * S, 5 * S, 5 * S), HYST_RAISED);
}

static void test_signal_hovering_at_the_cap_never_flaps(void **state) {
        struct hysteresis h = { 0 };
        int events = 0;

        (void)state;
        /* Alternating over/under every second for ten minutes. */
        for (uint64_t t = 0; t < 600; t++)
                events += hyst_update(&h, t % 2 == 0, t * S, 5 * S, 5 * S) != HYST_NONE;
        assert_int_equal(events, 0);
        /* Over for 3 s, under for 1 s, repeatedly: still never 5 consecutive seconds. */
        for (uint64_t t = 600; t < 1200; t++)
                events += hyst_update(&h, t % 4 != 3, t * S, 5 * S, 5 * S) != HYST_NONE;
        assert_int_equal(events, 0);
}

static void test_clears_after_its_own_delay(void **state) {
        struct hysteresis h = { .raised = true };

        (void)state;
        assert_int_equal(hyst_update(&h, false, 100 * S, 3 * S, 10 * S), HYST_NONE);
        assert_int_equal(hyst_update(&h, false, 109 * S, 3 * S, 10 * S), HYST_NONE);
        assert_int_equal(hyst_update(&h, false, 110 * S, 3 * S, 10 * S), HYST_CLEARED);
        assert_false(h.raised);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_raises_only_after_five_consecutive_seconds),
                cmocka_unit_test(test_one_sample_under_restarts_the_wait),
                cmocka_unit_test(test_signal_hovering_at_the_cap_never_flaps),
                cmocka_unit_test(test_clears_after_its_own_delay),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
