/* test_ratelimit.c: the log rate limit (burst per interval, the count of what was held back), on
 * an injected clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"
#include "log.h"
#include "ratelimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEC 1000000ULL

static void test_burst_passes_then_the_rest_is_counted_until_the_interval_ends(void **state) {
        struct plat_ratelimit rl = PLAT_RATELIMIT(10 * SEC, 3);
        uint64_t t = 1000 * SEC, k = 99;

        (void)state;
        for (int i = 0; i < 3; i++) {
                assert_true(plat_ratelimit_pass(&rl, t + (uint64_t)i, &k));
                assert_int_equal(k, 0);
        }
        for (int i = 0; i < 1000; i++) {
                assert_false(plat_ratelimit_pass(&rl, t + 9 * SEC, &k));
                assert_int_equal(k, 0);
        }
        /* The next interval: the first line says how many were held back, once. */
        assert_true(plat_ratelimit_pass(&rl, t + 10 * SEC, &k));
        assert_int_equal(k, 1000);
        assert_true(plat_ratelimit_pass(&rl, t + 10 * SEC + 1, &k));
        assert_int_equal(k, 0);
}

static void test_quiet_traffic_is_never_limited(void **state) {
        struct plat_ratelimit rl = PLAT_RATELIMIT(10 * SEC, 2);
        uint64_t k;

        (void)state;
        for (uint64_t t = 1; t < 100; t++) {
                assert_true(plat_ratelimit_pass(&rl, t * 6 * SEC, &k));
                assert_int_equal(k, 0);
        }
}

/* One call site: its limit is its own. */
static void command_answered(int i) {
        log_limited(LOG_INFO, "MQTT command %d answered", i);
}

/* What a flood of one log line writes: the burst, then one "suppressed" line and the line that
 * passes when the interval ends; nothing in between. */
static void test_log_limited_writes_the_burst_then_one_count_line(void **state) {
        FILE *tmp = tmpfile();
        int saved = dup(STDERR_FILENO);
        char out[64 * 1024], *p;
        size_t n, lines = 0;

        (void)state;
        unsetenv("JOURNAL_STREAM");
        plat_log_setup("t", LOG_INFO);
        fflush(stderr);
        dup2(fileno(tmp), STDERR_FILENO);
        plat_clock_set_fake(500 * SEC, 1);
        for (int i = 0; i < 10000; i++)
                command_answered(i);
        log_limited(LOG_INFO, "another call site"); /* not limited by the first one's flood */
        plat_clock_set_fake(500 * SEC + LOG_LIMIT_INTERVAL_USEC, 1);
        command_answered(10000);
        plat_clock_set_fake(0, 0);
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
        rewind(tmp);
        n = fread(out, 1, sizeof(out) - 1, tmp);
        out[n] = '\0';
        fclose(tmp);
        for (p = out; (p = strchr(p, '\n')); p++)
                lines++;
        assert_int_equal(lines, LOG_LIMIT_BURST + 3);
        assert_non_null(strstr(out, "t: info: another call site\n"));
        assert_non_null(strstr(out, "t: info: MQTT command 49 answered\n"));
        assert_null(strstr(out, "MQTT command 50 answered"));
        assert_non_null(strstr(out, "t: info: suppressed 9950 similar lines"));
        assert_non_null(strstr(out, "t: info: MQTT command 10000 answered\n"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_burst_passes_then_the_rest_is_counted_until_the_interval_ends),
                cmocka_unit_test(test_quiet_traffic_is_never_limited),
                cmocka_unit_test(test_log_limited_writes_the_burst_then_one_count_line),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
