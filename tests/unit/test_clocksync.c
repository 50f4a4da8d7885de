/* test_clocksync.c: the kernel's clock sync state read through an injected adjtimex, and the
 * transitions the agent raises events for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clocksync.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timex.h>

/* What the fake adjtimex answers. */
static struct {
        int ret, err, status;
        long est, max;
        int modes_seen;
} fake;

static int fake_adjtimex(struct timex *t) {
        fake.modes_seen = (int)t->modes;
        if (fake.ret < 0) {
                errno = fake.err;
                return -1;
        }
        t->status = fake.status;
        t->esterror = fake.est;
        t->maxerror = fake.max;
        return fake.ret;
}

static int setup(void **state) {
        (void)state;
        memset(&fake, 0, sizeof(fake));
        fake.modes_seen = -1;
        clocksync_set_adjtimex(fake_adjtimex);
        return 0;
}

static int teardown(void **state) {
        (void)state;
        clocksync_set_adjtimex(NULL);
        return 0;
}

static void test_read_synced_clock_reports_errors_and_only_reads(void **state) {
        struct clocksync_state s;

        (void)state;
        fake.ret = TIME_OK;
        fake.status = STA_PLL;
        fake.est = 250;
        fake.max = 16000;
        assert_int_equal(clocksync_read(&s), 0);
        assert_true(s.synced);
        assert_int_equal(s.est_error_us, 250);
        assert_int_equal(s.max_error_us, 16000);
        assert_int_equal(fake.modes_seen, 0); /* a read: nothing set */
        assert_string_equal(clocksync_reason(&s), "synchronised");
}

static void test_read_sta_unsync_is_unsynchronised(void **state) {
        struct clocksync_state s;

        (void)state;
        fake.ret = TIME_OK;
        fake.status = STA_UNSYNC;
        fake.est = 1600000;
        assert_int_equal(clocksync_read(&s), 0);
        assert_false(s.synced);
        assert_non_null(strstr(clocksync_reason(&s), "STA_UNSYNC"));
}

static void test_read_time_error_is_unsynchronised(void **state) {
        struct clocksync_state s;

        (void)state;
        fake.ret = TIME_ERROR;
        assert_int_equal(clocksync_read(&s), 0);
        assert_false(s.synced);
        assert_non_null(strstr(clocksync_reason(&s), "TIME_ERROR"));
}

static void test_read_failure_returns_errno_and_leaves_state(void **state) {
        struct clocksync_state s = { .synced = true, .est_error_us = 7 };

        (void)state;
        fake.ret = -1;
        fake.err = EPERM;
        assert_int_equal(clocksync_read(&s), -EPERM);
        assert_true(s.synced);
        assert_int_equal(s.est_error_us, 7);
}

static void test_watch_reports_loss_and_regain_once(void **state) {
        struct clocksync_watch w = { 0 };
        struct clocksync_state on = { .synced = true }, off = { .synced = false };

        (void)state;
        assert_int_equal(clocksync_watch_update(&w, &on), CLOCKSYNC_SAME);
        assert_int_equal(clocksync_watch_update(&w, &off), CLOCKSYNC_LOST);
        assert_int_equal(clocksync_watch_update(&w, &off), CLOCKSYNC_SAME);
        assert_int_equal(clocksync_watch_update(&w, &on), CLOCKSYNC_REGAINED);
        assert_int_equal(clocksync_watch_update(&w, &on), CLOCKSYNC_SAME);
}

static void test_watch_first_unsynced_reading_is_a_loss(void **state) {
        struct clocksync_watch w = { 0 };
        struct clocksync_state off = { .synced = false };

        (void)state;
        assert_int_equal(clocksync_watch_update(&w, &off), CLOCKSYNC_LOST);
}

static void test_json_names_state_and_errors(void **state) {
        struct clocksync_state s = {
                .synced = false, .state = TIME_ERROR, .est_error_us = 5, .max_error_us = 9
        };
        cJSON *o = clocksync_json(&s);
        char *text;

        (void)state;
        assert_non_null(o);
        text = cJSON_PrintUnformatted(o);
        assert_string_equal(
                text, "{\"synced\":false,\"state\":\"TIME_ERROR\",\"est_error_us\":5,\"max_error_us\":9}");
        free(text);
        cJSON_Delete(o);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_read_synced_clock_reports_errors_and_only_reads, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_read_sta_unsync_is_unsynchronised, setup, teardown),
                cmocka_unit_test_setup_teardown(test_read_time_error_is_unsynchronised, setup, teardown),
                cmocka_unit_test_setup_teardown(test_read_failure_returns_errno_and_leaves_state, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_watch_reports_loss_and_regain_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_watch_first_unsynced_reading_is_a_loss, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_json_names_state_and_errors, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
