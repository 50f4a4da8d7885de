/* test_syncer.c: fdatasync on the worker, its end on the eventfd, one request at a time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "syncer.h"
#include "testutil.h"

static int open_fds(void) {
        return (int)tu_dir_entries("/proc/self/fd") - 1; /* the directory's own */
}

static int scratch_file(void) {
        char path[] = "/tmp/test_syncer.XXXXXX";
        int fd = mkostemp(path, O_CLOEXEC);

        assert_true(fd >= 0);
        unlink(path);
        assert_int_equal(write(fd, "x", 1), 1);
        return fd;
}

static void wait_readable(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLIN };

        assert_int_equal(poll(&p, 1, 10000), 1);
}

static void test_a_sync_ends_on_the_eventfd_with_its_result_and_closes_the_fd(void **state) {
        struct plat_syncer *s;
        int before, err = 1;

        (void)state;
        assert_int_equal(plat_syncer_new(&s), 0);
        before = open_fds();
        assert_false(plat_syncer_busy(s));
        assert_int_equal(plat_syncer_start(s, scratch_file()), 0);
        assert_true(plat_syncer_busy(s));
        wait_readable(plat_syncer_fd(s));
        assert_int_equal(plat_syncer_collect(s, false, &err), 1);
        assert_int_equal(err, 0);
        assert_false(plat_syncer_busy(s));
        assert_int_equal(open_fds(), before);
        /* Collected: the eventfd is reset, nothing more to take. */
        struct pollfd p = { .fd = plat_syncer_fd(s), .events = POLLIN };
        assert_int_equal(poll(&p, 1, 0), 0);
        err = 7;
        assert_int_equal(plat_syncer_collect(s, false, &err), 0);
        assert_int_equal(err, 7);
        plat_syncer_free(s);
}

static void test_a_failed_sync_reports_its_errno(void **state) {
        struct plat_syncer *s;
        int p[2], err = 0;

        (void)state;
        assert_int_equal(plat_syncer_new(&s), 0);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        close(p[1]);
        assert_int_equal(plat_syncer_start(s, p[0]), 0); /* a pipe cannot be synced: EINVAL */
        assert_int_equal(plat_syncer_collect(s, true, &err), 1);
        assert_int_equal(err, -EINVAL);
        plat_syncer_free(s);
}

static void test_one_request_at_a_time_and_the_refused_fd_is_closed(void **state) {
        struct plat_syncer *s;
        int before, err = 1;

        (void)state;
        assert_int_equal(plat_syncer_new(&s), 0);
        before = open_fds();
        assert_int_equal(plat_syncer_start(s, scratch_file()), 0);
        assert_int_equal(plat_syncer_start(s, scratch_file()), -EBUSY);
        assert_int_equal(plat_syncer_collect(s, true, &err), 1);
        assert_int_equal(err, 0);
        assert_int_equal(open_fds(), before);
        /* And the next one is taken. */
        assert_int_equal(plat_syncer_start(s, scratch_file()), 0);
        assert_int_equal(plat_syncer_collect(s, true, &err), 1);
        plat_syncer_free(s);
}

static void test_free_waits_for_the_request_in_flight(void **state) {
        struct plat_syncer *s;
        int before;

        (void)state;
        before = open_fds();
        assert_int_equal(plat_syncer_new(&s), 0);
        assert_int_equal(plat_syncer_start(s, scratch_file()), 0);
        plat_syncer_free(s);
        assert_int_equal(open_fds(), before);
        plat_syncer_free(NULL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_a_sync_ends_on_the_eventfd_with_its_result_and_closes_the_fd),
                cmocka_unit_test(test_a_failed_sync_reports_its_errno),
                cmocka_unit_test(test_one_request_at_a_time_and_the_refused_fd_is_closed),
                cmocka_unit_test(test_free_waits_for_the_request_in_flight),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
