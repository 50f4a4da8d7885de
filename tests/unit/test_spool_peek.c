/* test_spool_peek.c: the spool's newest records read beside a running spool (no lock), oldest first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "spool_fx.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

struct seen {
        uint64_t ids[64];
        size_t n;
        bool bytes_ok;
};

static int collect(uint64_t id, const void *p, size_t len, void *ud) {
        struct seen *s = ud;
        char want[600];
        size_t want_len = payload(id, want);

        s->bytes_ok &= len == want_len && memcmp(p, want, len) == 0;
        s->ids[s->n++] = id;
        return 0;
}

static int spool_dir(struct fx *f) {
        int fd = open(spath(f, ""), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        assert_true(fd >= 0);
        return fd;
}

static void test_peek_gives_the_newest_records_across_segments_while_the_spool_is_open(void **state) {
        struct fx *f = *state;
        struct seen s = { .bytes_ok = true };
        int fd;

        open_with(f, 0, 4096); /* a few records per segment */
        append_synced(f->s, 30);
        assert_true(seg_ids(f, NULL, 0) > 3);
        fd = spool_dir(f);
        assert_int_equal(spool_peek_last(fd, 12, collect, &s), 12);
        assert_int_equal(s.n, 12);
        for (size_t i = 0; i < 12; i++)
                assert_int_equal(s.ids[i], 19 + i);
        assert_true(s.bytes_ok);
        s = (struct seen){ .bytes_ok = true };
        assert_int_equal(spool_peek_last(fd, 64, collect, &s), 30); /* fewer than asked: all */
        assert_int_equal(s.ids[0], 1);
        assert_int_equal(s.ids[29], 30);
        close(fd);
}

static void test_peek_skips_a_corrupt_record_and_an_empty_spool_gives_none(void **state) {
        struct fx *f = *state;
        struct seen s = { .bytes_ok = true };
        int fd;

        open_with(f, 0, 0);
        fd = spool_dir(f);
        assert_int_equal(spool_peek_last(fd, 5, collect, &s), 0);
        append_synced(f->s, 6);
        flip_byte(segpath(f, 1), offset_of(5) + SPOOL_HDR_BYTES + 3); /* record 5's payload */
        assert_int_equal(spool_peek_last(fd, 3, collect, &s), 3);
        assert_int_equal(s.ids[0], 3);
        assert_int_equal(s.ids[1], 4);
        assert_int_equal(s.ids[2], 6);
        assert_true(s.bytes_ok);
        close(fd);
}

static int stop_at_two(uint64_t id, const void *p, size_t len, void *ud) {
        (void)p;
        (void)len;
        (void)ud;
        return id == 2 ? -ECANCELED : 0;
}

static void test_a_callback_error_stops_the_walk(void **state) {
        struct fx *f = *state;
        int fd;

        open_with(f, 0, 0);
        append_synced(f->s, 4);
        fd = spool_dir(f);
        assert_int_equal(spool_peek_last(fd, 4, stop_at_two, NULL), -ECANCELED);
        close(fd);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(
                        test_peek_gives_the_newest_records_across_segments_while_the_spool_is_open, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(
                        test_peek_skips_a_corrupt_record_and_an_empty_spool_gives_none, setup, teardown),
                cmocka_unit_test_setup_teardown(test_a_callback_error_stops_the_walk, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
