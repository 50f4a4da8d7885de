/* test_clock.c: the pinned test clock and RFC 3339 timestamps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"

static void test_fake_clock_pins_both_clocks(void **state) {
        (void)state;
        plat_clock_set_fake(5, 6);
        assert_int_equal(plat_now_mono_usec(), 5);
        assert_int_equal(plat_now_real_usec(), 6);
        plat_clock_set_fake(0, 0);
        assert_true(plat_now_real_usec() > 1700000000ULL * USEC_PER_SEC);
}

static void test_rfc3339_has_milliseconds_and_z(void **state) {
        char buf[32];

        (void)state;
        assert_string_equal(plat_format_rfc3339_ms(0, buf, sizeof(buf)), "1970-01-01T00:00:00.000Z");
        assert_string_equal(plat_format_rfc3339_ms(1795518420999999ULL, buf, sizeof(buf)),
                            "2026-11-24T11:07:00.999Z");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fake_clock_pins_both_clocks),
                cmocka_unit_test(test_rfc3339_has_milliseconds_and_z),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
