/* test_spool_reader.c: the spool's read-ahead reader on real files: durability, order, seeks, deletions, bad
 * bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cleanup.h"
#include "spool.h"
#include "spool_internal.h"
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A state directory per test, the spool in it and one reader on the spool. */
struct fx {
        void *scratch; /* struct tu_scratch */
        struct spool *s;
        struct spool_reader *rd;
        struct spool_recovery rec;
        uint64_t at[256]; /* the file offset of each record id appended, while ids are this small */
};

static struct tu_scratch *dir(struct fx *f) {
        return f->scratch;
}

static void shut(struct fx *f) {
        spool_reader_free(f->rd);
        spool_close(f->s);
        f->rd = NULL;
        f->s = NULL;
}

static int setup(void **state) {
        struct fx *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        *state = f;
        return tu_scratch_setup(&f->scratch);
}

static int teardown(void **state) {
        struct fx *f = *state;
        int r;

        shut(f);
        r = tu_scratch_teardown(&f->scratch);
        free(f);
        return r;
}

/* (Re)opens the spool with segments of about seg_bytes (0: the default) and a fresh reader. */
static void start(struct fx *f, uint64_t seg_bytes) {
        struct spool_options o = { .segment_bytes = seg_bytes };
        char msg[SPOOL_MSG_MAX];

        shut(f);
        assert_int_equal(spool_open(dir(f)->fd, dir(f)->path, &o, &f->s, &f->rec, msg, sizeof(msg)), 0);
        assert_int_equal(spool_reader_new(f->s, &f->rd), 0);
}

/* Record id's payload: 1..300 bytes, each a function of id and its place. */
static size_t body(uint64_t id, uint8_t *buf) {
        size_t n = 1 + (size_t)(id * 53 % 300);

        for (size_t i = 0; i < n; i++)
                buf[i] = (uint8_t)(id * 131 + i * 7 + (i >> 3));
        return n;
}

static void put(struct fx *f, uint64_t count, bool sync) {
        uint8_t buf[300];

        for (uint64_t i = 0; i < count; i++) {
                uint64_t want = spool_next_id(f->s), id = 0;

                assert_int_equal(spool_append(f->s, buf, body(want, buf), &id), 0);
                assert_int_equal(id, want);
                if (id < ELEMENTSOF(f->at))
                        f->at[id] = f->s->last_off;
        }
        if (sync)
                assert_int_equal(spool_sync(f->s), (int)count);
}

static void reads(struct spool_reader *rd, uint64_t id) {
        uint8_t want[300];
        const void *buf = NULL;
        size_t len = 0, want_len = body(id, want);
        uint64_t got = 0;

        assert_int_equal(spool_reader_next(rd, &buf, &len, &got), 0);
        assert_int_equal(got, id);
        assert_int_equal(len, want_len);
        assert_memory_equal(buf, want, len);
}

static void reads_range(struct spool_reader *rd, uint64_t first, uint64_t last) {
        for (uint64_t id = first; id <= last; id++)
                reads(rd, id);
}

static void reads_none(struct spool_reader *rd) {
        const void *buf = NULL;
        size_t len = 0;
        uint64_t id = 0;

        assert_int_equal(spool_reader_next(rd, &buf, &len, &id), -EAGAIN);
        assert_null(buf);
        assert_int_equal(id, 0);
}

/* Delivery hands out id (its bytes are checked) and it is acked. */
static void deliver(struct spool *s, uint64_t id) {
        uint8_t want[300];
        void *buf = NULL;
        size_t len = 0;
        uint64_t got = 0;

        assert_int_equal(spool_read_next(s, &buf, &len, &got), 0);
        assert_int_equal(got, id);
        assert_int_equal(len, body(id, want));
        assert_memory_equal(buf, want, len);
        free(buf);
        assert_int_equal(spool_ack(s, id), 0);
}

static void seg1(struct fx *f, char path[PATH_MAX]) {
        char name[SPOOL_NAME_MAX];

        spool__seg_name(name, sizeof(name), 1);
        snprintf(path, PATH_MAX, "%s/" SPOOL_DIR "/%s", dir(f)->path, name);
}

/* Changes one byte of seg-1 in place, as a disk going bad would. */
static void corrupt(struct fx *f, uint64_t off) {
        char path[PATH_MAX];
        _cleanup_close_ int fd = -1;
        uint8_t b = 0;

        seg1(f, path);
        fd = open(path, O_RDWR | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
        b = (uint8_t)~b;
        assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
}

static void test_records_appear_only_once_synced(void **state) {
        struct fx *f = *state;

        start(f, 0);
        reads_none(f->rd);
        put(f, 3, false);
        reads_none(f->rd);
        assert_int_equal(spool_sync(f->s), 3);
        put(f, 2, false);
        reads_range(f->rd, 1, 3);
        reads_none(f->rd);
        assert_int_equal(spool_sync(f->s), 2);
        reads_range(f->rd, 4, 5);
        reads_none(f->rd);
        spool_reader_free(NULL);
}

static void test_records_come_in_id_order_with_their_bytes_up_to_the_largest(void **state) {
        struct fx *f = *state;
        _cleanup_free_ uint8_t *big = malloc(SPOOL_RECORD_MAX);
        const void *buf = NULL;
        size_t len = 0;
        uint64_t id = 0;

        assert_non_null(big);
        for (size_t i = 0; i < SPOOL_RECORD_MAX; i++)
                big[i] = (uint8_t)(i * 31 + 5);
        start(f, 0);
        put(f, 200, true);
        assert_int_equal(spool_append(f->s, big, SPOOL_RECORD_MAX, &id), 0);
        put(f, 10, false);
        assert_int_equal(spool_sync(f->s), 11);
        reads_range(f->rd, 1, 200);
        assert_int_equal(spool_reader_next(f->rd, &buf, &len, &id), 0);
        assert_int_equal(id, 201);
        assert_int_equal(len, SPOOL_RECORD_MAX);
        assert_memory_equal(buf, big, SPOOL_RECORD_MAX);
        reads_range(f->rd, 202, 211);
        reads_none(f->rd);
}

/* Reading ahead leaves delivery as it was, and delivery (hand-outs, acks, rewinds) moves nothing
 * of the reader's. */
static void test_reader_and_delivery_do_not_touch_each_other(void **state) {
        struct fx *f = *state;
        struct spool_stats before, after;

        start(f, 0);
        put(f, 10, true);
        spool_stats(f->s, &before);
        reads_range(f->rd, 1, 10);
        reads_none(f->rd);
        spool_stats(f->s, &after);
        assert_int_equal(after.pending, before.pending);
        assert_int_equal(after.oldest_unacked, before.oldest_unacked);
        assert_int_equal(after.acked, 0);
        assert_int_equal(after.quarantined, 0);
        for (uint64_t id = 1; id <= 7; id++)
                deliver(f->s, id);
        spool_rewind(f->s);
        for (uint64_t id = 8; id <= 10; id++)
                deliver(f->s, id);

        spool_reader_seek(f->rd, 0);
        reads_range(f->rd, 1, 4);
        put(f, 5, true);
        assert_int_equal(spool_flush_cursor(f->s), 0); /* one segment, the newest: nothing goes */
        reads_range(f->rd, 5, 15);
        for (uint64_t id = 11; id <= 15; id++)
                deliver(f->s, id);
        reads_none(f->rd);
}

static void test_seek_to_the_middle_to_zero_and_past_the_end(void **state) {
        struct fx *f = *state;

        start(f, 1024); /* a few records a segment */
        put(f, 40, true);
        assert_true(f->s->n_segs > 5);
        spool_reader_seek(f->rd, 17);
        reads_range(f->rd, 18, 40);
        reads_none(f->rd);
        spool_reader_seek(f->rd, 0);
        reads_range(f->rd, 1, 3);
        spool_reader_seek(f->rd, 39);
        reads(f->rd, 40);
        reads_none(f->rd);
        spool_reader_seek(f->rd, 45);
        reads_none(f->rd);
        put(f, 10, true);
        reads_range(f->rd, 46, 50);
        reads_none(f->rd);
        /* The first record of a segment, and the last of one. */
        for (size_t i = 1; i < 4; i++) {
                spool_reader_seek(f->rd, f->s->segs[i].first_id - 1);
                reads(f->rd, f->s->segs[i].first_id);
                spool_reader_seek(f->rd, f->s->segs[i].last_id);
                reads(f->rd, f->s->segs[i].last_id + 1);
        }
}

/* One record and one read at a time: the reader waits at the end of the newest segment and goes
 * on into the segment that a roll-over starts after it. */
static void test_reader_follows_appends_across_small_segments(void **state) {
        struct fx *f = *state;

        start(f, 1024);
        for (uint64_t id = 1; id <= 120; id++) {
                put(f, 1, true);
                reads(f->rd, id);
                reads_none(f->rd);
        }
        assert_true(f->s->n_segs > 15);
        spool_reader_seek(f->rd, 0);
        reads_range(f->rd, 1, 120);
        reads_none(f->rd);
}

/* Acked segments deleted by spool_flush_cursor: a reader inside one, behind all of them, or in a
 * segment that stays while the ones before it go (its index shifts) goes on at the first record
 * above where it was. */
static void test_segments_deleted_under_the_reader_are_skipped(void **state) {
        struct fx *f = *state;
        struct spool_reader *behind = NULL, *inside = NULL, *kept = NULL;
        uint64_t first, name;

        start(f, 1024); /* at least three records a segment: each is at most 320 bytes */
        put(f, 80, true);
        assert_true(f->s->n_segs > 7);
        first = f->s->segs[5].first_id;
        name = f->s->segs[5].name_id;
        assert_int_equal(spool_reader_new(f->s, &behind), 0);
        assert_int_equal(spool_reader_new(f->s, &inside), 0);
        assert_int_equal(spool_reader_new(f->s, &kept), 0);
        reads_range(inside, 1, 3);
        reads_range(kept, 1, first + 1);
        for (uint64_t id = 1; id <= first; id++)
                deliver(f->s, id);
        assert_int_equal(spool_flush_cursor(f->s), 0);
        assert_int_equal(f->s->segs[0].name_id, name); /* five gone; kept's is now the first */

        reads_range(behind, first, 80);
        reads_range(inside, first, 80);
        reads_range(kept, first + 2, 80);
        reads_none(behind);
        reads_none(inside);
        reads_none(kept);
        /* A seek into what is gone lands on the first record there is. */
        spool_reader_seek(inside, first - 3);
        reads(inside, first);
        spool_reader_free(behind);
        spool_reader_free(inside);
        spool_reader_free(kept);
}

/* Open files of this process whose target was deleted. */
static unsigned deleted_files_open(void) {
        _cleanup_closedir_ DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        unsigned n = 0;

        assert_non_null(d);
        while ((de = readdir(d))) {
                char link[300], target[PATH_MAX];
                ssize_t len;

                snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
                len = readlink(link, target, sizeof(target) - 1);
                if (len <= 0)
                        continue;
                target[len] = '\0';
                n += strstr(target, " (deleted)") != NULL;
        }
        return n;
}

/* A reader that has caught up holds no segment open: one acked and deleted meanwhile must give its
 * disk space back (the cap no longer counts it). */
static void test_a_caught_up_reader_holds_no_deleted_segment(void **state) {
        struct fx *f = *state;

        uint64_t newest;

        start(f, 1024);
        put(f, 30, true);
        reads_range(f->rd, 1, 30);
        reads_none(f->rd); /* at the end of the newest segment */
        newest = f->s->segs[f->s->n_segs - 1].name_id;
        /* Delivery goes on without the reader: later segments, everything acked, the old ones gone. */
        put(f, 30, true);
        for (uint64_t id = 1; id <= 60; id++)
                deliver(f->s, id);
        assert_int_equal(spool_flush_cursor(f->s), 0);
        assert_true(f->s->segs[0].name_id > newest);
        assert_int_equal(deleted_files_open(), 0);
        reads(f->rd, f->s->segs[0].first_id); /* the first record left */
}

/* A payload byte changed on disk after the sync: the reader steps over that record without
 * quarantining it, before a reopen and after one (which quarantines it), and delivery still finds
 * and quarantines it. */
static void test_record_corrupted_on_disk_is_skipped(void **state) {
        struct fx *f = *state;
        struct spool_stats st;
        char qdir[PATH_MAX];
        struct stat sb;

        start(f, 0);
        put(f, 6, true);
        corrupt(f, f->at[3] + SPOOL_HDR_BYTES + 1);
        corrupt(f, f->at[5] + 9); /* the id in its header */
        reads_range(f->rd, 1, 2);
        reads(f->rd, 4);
        reads(f->rd, 6);
        reads_none(f->rd);
        spool_stats(f->s, &st);
        assert_int_equal(st.quarantined, 0);
        snprintf(qdir, sizeof(qdir), "%s/" SPOOL_DIR "/quarantine", dir(f)->path);
        assert_int_equal(stat(qdir, &sb), -1);

        start(f, 0);
        assert_int_equal(f->rec.quarantined, 2);
        reads_range(f->rd, 1, 2);
        reads(f->rd, 4);
        reads(f->rd, 6);
        reads_none(f->rd);
        deliver(f->s, 1);
        deliver(f->s, 2);
        deliver(f->s, 4);
        deliver(f->s, 6);
}

/* Bytes that delivery found bad and quarantined before the reader got there: a known bad region,
 * stepped over. */
static void test_corruption_found_by_delivery_first_is_skipped_by_the_reader(void **state) {
        struct fx *f = *state;
        struct spool_stats st;

        start(f, 0);
        put(f, 5, true);
        corrupt(f, f->at[2] + SPOOL_HDR_BYTES + 3);
        deliver(f->s, 1);
        deliver(f->s, 3);
        spool_stats(f->s, &st);
        assert_int_equal(st.quarantined, 1);
        reads(f->rd, 1);
        reads_range(f->rd, 3, 5);
        reads_none(f->rd);
}

static void test_reader_on_a_spool_reopened_after_a_torn_tail(void **state) {
        struct fx *f = *state;
        char path[PATH_MAX];
        uint64_t next;

        start(f, 0);
        put(f, 5, true);
        shut(f);
        seg1(f, path);
        /* Record 5 cut after its header and two bytes, then zeros, as a crash leaves a file whose
         * size was set before its bytes were written. */
        assert_int_equal(truncate(path, (off_t)(f->at[5] + SPOOL_HDR_BYTES + 2)), 0);
        assert_int_equal(truncate(path, (off_t)(f->at[5] + 4096)), 0);
        start(f, 0);
        assert_int_equal(f->rec.torn, 1);
        reads_range(f->rd, 1, 4);
        reads_none(f->rd);
        next = spool_next_id(f->s);
        put(f, 2, true);
        reads_range(f->rd, next, next + 1);
        reads_none(f->rd);
}

int main(void) {
        const struct CMUnitTest tests[] = {
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
                T(test_records_appear_only_once_synced),
                T(test_records_come_in_id_order_with_their_bytes_up_to_the_largest),
                T(test_reader_and_delivery_do_not_touch_each_other),
                T(test_seek_to_the_middle_to_zero_and_past_the_end),
                T(test_reader_follows_appends_across_small_segments),
                T(test_segments_deleted_under_the_reader_are_skipped),
                T(test_a_caught_up_reader_holds_no_deleted_segment),
                T(test_record_corrupted_on_disk_is_skipped),
                T(test_corruption_found_by_delivery_first_is_skipped_by_the_reader),
                T(test_reader_on_a_spool_reopened_after_a_torn_tail),
#undef T
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
