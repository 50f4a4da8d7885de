/* test_spool_prealloc.c: preallocated spool segments on real files: zeros after the records, syncs
 * that change neither size nor blocks, the prepared next segment, recovery of a zero tail, the cap,
 * the room left, and the fall-backs when zeros do not fit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cleanup.h"
#include "fileio.h"
#include "crc32c.h"
#include "spool.h"
#include "spool_fx.h"
#include "spool_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SEG_SMALL 16384 /* about 30 records */

/* True when every byte of the file at path from off to its end is zero. */
static bool zero_from(const char *path, uint64_t off) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        uint8_t buf[4096];
        ssize_t n;

        assert_true(fd >= 0);
        while ((n = pread(fd, buf, sizeof(buf), (off_t)off)) > 0) {
                for (ssize_t i = 0; i < n; i++)
                        if (buf[i])
                                return false;
                off += (uint64_t)n;
        }
        assert_int_equal(n, 0);
        return true;
}

/* The lengths of the spool's segment files and of a prepared one: what the cap counts. */
static uint64_t disk_bytes(struct fx *f) {
        _cleanup_closedir_ DIR *d = opendir(spath(f, ""));
        struct dirent *de;
        uint64_t sum = 0;

        assert_non_null(d);
        while ((de = readdir(d)))
                if (!strncmp(de->d_name, "seg-", 4) || !strcmp(de->d_name, SPOOL__PREP))
                        sum += file_size(spath(f, de->d_name));
        return sum;
}

static uint64_t stats_bytes(struct fx *f) {
        struct spool_stats st;

        spool_stats(f->s, &st);
        return st.bytes;
}

static void test_new_segment_is_preallocated_with_zeros_after_its_records(void **state) {
        struct fx *f = *state;
        struct spool_stats st;

        open_with(f, 0, SEG_SMALL);
        append_synced(f->s, 3);
        assert_int_equal(file_size(segpath(f, 1)), SEG_SMALL);
        assert_true(zero_from(segpath(f, 1), offset_of(4)));
        spool_stats(f->s, &st);
        assert_int_equal(st.bytes, SEG_SMALL);
        assert_int_equal(st.used, offset_of(4));
        expect_only(f->s, (const uint64_t[]){ 1, 2, 3 }, 3);
}

/* The point of preallocation: the inode does not change, so fdatasync writes the data alone. */
static void test_append_and_sync_change_neither_size_nor_blocks(void **state) {
        struct fx *f = *state;
        struct stat a, b;

        reopen(f);
        append_synced(f->s, 1);
        assert_int_equal(stat(segpath(f, 1), &a), 0);
        for (int i = 0; i < 20; i++)
                append_synced(f->s, 2);
        assert_int_equal(stat(segpath(f, 1), &b), 0);
        assert_int_equal(b.st_size, a.st_size);
        assert_int_equal(b.st_blocks, a.st_blocks);
        assert_true((uint64_t)b.st_blocks * 512 >= SPOOL_SEGMENT_BYTES_DEFAULT); /* written, not sparse */
        assert_int_equal(seg_ids(f, NULL, 0), 1);
}

static void test_prepare_makes_the_next_segment_once_and_the_roll_over_takes_it(void **state) {
        struct fx *f = *state;
        struct stat prep, seg;
        uint64_t ids[4];

        open_with(f, 0, SEG_SMALL);
        assert_int_equal(spool_prepare(f->s), 1); /* no segment yet: the first one */
        append_synced(f->s, 3);
        assert_int_equal(access(spath(f, SPOOL__PREP), F_OK), -1);
        assert_int_equal(spool_prepare(f->s), 0); /* the newest is not half full */
        append_synced(f->s, 14);                  /* 17 records: past half */
        assert_true(offset_of(18) > SEG_SMALL / 2);
        assert_int_equal(spool_prepare(f->s), 1);
        assert_int_equal(stat(spath(f, SPOOL__PREP), &prep), 0);
        assert_int_equal(prep.st_size, SEG_SMALL);
        assert_true(zero_from(spath(f, SPOOL__PREP), 0));
        assert_int_equal(stats_bytes(f), 2 * SEG_SMALL);
        assert_int_equal(spool_prepare(f->s), 0); /* once */
        while (seg_ids(f, ids, 4) == 1)
                append_synced(f->s, 1);
        assert_int_equal(stat(segpath(f, ids[1]), &seg), 0);
        assert_int_equal(seg.st_ino, prep.st_ino);
        assert_int_equal(seg.st_size, SEG_SMALL);
        assert_int_equal(access(spath(f, SPOOL__PREP), F_OK), -1);
        assert_int_equal(stats_bytes(f), 2 * SEG_SMALL);
        assert_int_equal(spool_prepare(f->s), 0);
        /* The older segment's zeros after its last record are its clean end. */
        open_with(f, 0, SEG_SMALL);
        assert_string_equal(f->rec.msg, "");
        assert_int_equal(f->rec.segments, 2);
        for (uint64_t id = 1; id < spool_next_id(f->s); id++)
                expect_next(f->s, id);
        expect_none(f->s);
}

static void test_reopen_appends_at_the_logical_end_and_reads_all_back_in_order(void **state) {
        struct fx *f = *state;

        reopen(f);
        append_synced(f->s, 5);
        reopen(f);
        assert_string_equal(f->rec.msg, "");
        assert_int_equal(f->rec.torn, 0);
        assert_int_equal(f->rec.records, 5);
        assert_int_equal(spool_next_id(f->s), 6);
        assert_int_equal(stats_bytes(f), SPOOL_SEGMENT_BYTES_DEFAULT);
        append_synced(f->s, 3);
        reopen(f);
        assert_string_equal(f->rec.msg, "");
        assert_int_equal(file_size(segpath(f, 1)), SPOOL_SEGMENT_BYTES_DEFAULT);
        assert_true(zero_from(segpath(f, 1), offset_of(9)));
        for (uint64_t id = 1; id <= 8; id++)
                expect_next(f->s, id);
        expect_none(f->s);
}

/* What a crash in an append leaves in a preallocated segment: part of a record, then zeros. The
 * torn bytes are zeroed in place; the file keeps its length. */
static void test_torn_record_followed_by_zeros_is_zeroed_and_reported(void **state) {
        struct fx *f = *state;
        char buf[600];
        uint64_t off5 = offset_of(5), len5 = SPOOL_HDR_BYTES + payload(5, buf);
        _cleanup_close_ int fd = -1;

        reopen(f);
        append_synced(f->s, 5);
        spool_close(f->s);
        f->s = NULL;
        fd = open(segpath(f, 1), O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        memset(buf, 0, sizeof(buf));
        assert_int_equal(pwrite(fd, buf, len5 - 100, (off_t)(off5 + 100)), (ssize_t)(len5 - 100));
        reopen(f);
        assert_int_equal(f->rec.torn, 1);
        assert_int_equal(f->rec.torn_bytes, 100);
        assert_int_equal(f->rec.quarantined, 0);
        assert_false(spool_recovery_alarm(&f->rec));
        assert_non_null(strstr(f->rec.msg, "incomplete record"));
        assert_int_equal(f->rec.records, 4);
        assert_int_equal(spool_next_id(f->s), 5);
        assert_int_equal(file_size(segpath(f, 1)), SPOOL_SEGMENT_BYTES_DEFAULT);
        assert_true(zero_from(segpath(f, 1), off5));
        /* A whole record with a bad CRC, then zeros: the same. */
        append_synced(f->s, 1);
        spool_close(f->s);
        f->s = NULL;
        flip_byte(segpath(f, 1), off5 + len5 - 1);
        reopen(f);
        assert_int_equal(f->rec.torn, 1);
        assert_int_equal(f->rec.torn_bytes, len5);
        assert_true(zero_from(segpath(f, 1), off5));
        append_synced(f->s, 2);
        reopen(f);
        assert_string_equal(f->rec.msg, "");
        expect_only(f->s, (const uint64_t[]){ 1, 2, 3, 4, 5, 6 }, 6);
}

static void test_leftover_prepared_file_is_removed_at_open_without_a_word(void **state) {
        struct fx *f = *state;

        open_with(f, 0, SEG_SMALL);
        append_synced(f->s, 20);
        assert_int_equal(spool_prepare(f->s), 1);
        reopen(f);
        assert_int_equal(access(spath(f, SPOOL__PREP), F_OK), -1);
        assert_string_equal(f->rec.msg, "");
        assert_int_equal(f->rec.segments, 1);
        /* Half written by a crash: not zeros. */
        spool_close(f->s);
        f->s = NULL;
        write_file(spath(f, SPOOL__PREP), "\xf5junk", 5);
        open_with(f, 0, SEG_SMALL);
        assert_int_equal(access(spath(f, SPOOL__PREP), F_OK), -1);
        assert_string_equal(f->rec.msg, "");
        assert_int_equal(f->rec.warnings, 0);
        assert_int_equal(f->rec.segments, 1);
        assert_int_equal(f->rec.records, 20);
        assert_int_equal(stats_bytes(f), SEG_SMALL);
}

/* The cap counts file lengths: preallocated zeros and the prepared file. */
static void test_cap_counts_preallocated_and_prepared_files(void **state) {
        struct fx *f = *state;
        char buf[600];
        uint64_t id;
        int r;

        open_with(f, 4 * SEG_SMALL, SEG_SMALL);
        while (count_files(f, "", "seg-") < 3 ||
               offset_of(spool_next_id(f->s)) - offset_of(seg_ids(f, NULL, 0)) <= SEG_SMALL / 2)
                append_synced(f->s, 1);
        assert_int_equal(stats_bytes(f), 3 * SEG_SMALL);
        assert_int_equal(spool_prepare(f->s), 1);
        assert_int_equal(stats_bytes(f), 4 * SEG_SMALL);
        assert_int_equal(disk_bytes(f), 4 * SEG_SMALL);
        while (count_files(f, "", "seg-") < 4)
                append_synced(f->s, 1);
        append_synced(f->s, 16);
        assert_int_equal(spool_prepare(f->s), 0); /* no room for a fifth */
        assert_int_equal(access(spath(f, SPOOL__PREP), F_OK), -1);
        while ((r = spool_append(f->s, buf, payload(spool_next_id(f->s), buf), &id)) == 0)
                ;
        assert_int_equal(r, -ENOSPC);
        assert_int_equal(stats_bytes(f), 4 * SEG_SMALL);
        assert_int_equal(disk_bytes(f), 4 * SEG_SMALL);
}

/* spool_room, what a restart admits sessions by: the zeros left in the newest segment and in a
 * prepared one, plus what the cap lets files grow by (this disk has far more than the cap). */
static void test_room_is_the_zeros_left_and_the_growth_the_cap_allows(void **state) {
        struct fx *f = *state;
        struct spool_stats st;
        uint64_t room, id;
        char buf[600];
        int r;

        open_with(f, 4 * SEG_SMALL, SEG_SMALL);
        assert_int_equal(spool_room(f->s, &room), 0);
        assert_int_equal(room, 4 * SEG_SMALL);
        append_synced(f->s, 1);
        spool_stats(f->s, &st);
        assert_int_equal(st.bytes, SEG_SMALL);
        assert_int_equal(spool_room(f->s, &room), 0);
        assert_int_equal(room, 4 * SEG_SMALL - st.used);
        /* A prepared segment is room already paid for under the cap: the sum stays the same. */
        while (offset_of(spool_next_id(f->s)) <= SEG_SMALL / 2)
                append_synced(f->s, 1);
        assert_int_equal(spool_prepare(f->s), 1);
        spool_stats(f->s, &st);
        assert_int_equal(st.bytes, 2 * SEG_SMALL);
        assert_int_equal(spool_room(f->s, &room), 0);
        assert_int_equal(room, 4 * SEG_SMALL - st.used);
        /* Full to the cap: less room than a record, and the same after a restart. */
        while ((r = spool_append(f->s, buf, payload(spool_next_id(f->s), buf), &id)) == 0)
                ;
        assert_int_equal(r, -ENOSPC);
        assert_int_equal(spool_sync(f->s) >= 0, 1);
        assert_int_equal(spool_room(f->s, &room), 0);
        assert_true(room < SPOOL_HDR_BYTES + payload(spool_next_id(f->s), buf));
        open_with(f, 4 * SEG_SMALL, SEG_SMALL);
        assert_int_equal(spool_room(f->s, &room), 0);
        assert_true(room < SPOOL_HDR_BYTES + payload(spool_next_id(f->s), buf));
}

/* Zero-filling a segment hits RLIMIT_FSIZE: the spool goes on with a segment that grows, up to the
 * limit, as before preallocation. */
static void test_zero_fill_over_the_file_size_limit_falls_back_to_a_growing_segment(void **state) {
        struct fx *f = *state;
        int status;
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
                struct rlimit lim = { 20000, 20000 };
                struct spool *s = NULL;
                struct spool_stats st;
                uint64_t n;

                signal(SIGXFSZ, SIG_IGN);
                if (spool_open(f->dir->fd, f->dir->path, NULL, &s, NULL, NULL, 0) < 0 ||
                    setrlimit(RLIMIT_FSIZE, &lim) < 0)
                        _exit(1);
                if (spool_prepare(s) != -EFBIG || access(spath(f, SPOOL__PREP), F_OK) == 0)
                        _exit(2);
                if (spool_prepare(s) != 0) /* it waits before trying again */
                        _exit(3);
                if (fill(s, &n) != -EFBIG || n < 30 || access(spath(f, SPOOL__PREP), F_OK) == 0)
                        _exit(4);
                spool_stats(s, &st);
                if (!st.full || st.bytes != offset_of(n + 1) || st.used != st.bytes ||
                    file_size(segpath(f, 1)) != st.bytes)
                        _exit(5);
                spool_close(s);
                _exit(check_all(f->dir->fd, f->dir->path, n) ? 6 : 0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

/* A record crossing RLIMIT_FSIZE inside a preallocated segment: the short write is zeroed back,
 * the file keeps its length, recovery finds a clean end. */
static void test_short_write_inside_a_preallocated_segment_is_zeroed_back(void **state) {
        struct fx *f = *state;
        uint64_t n = 0;
        int status;
        pid_t pid;

        reopen(f);
        append_synced(f->s, 1);
        spool_close(f->s);
        f->s = NULL;
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                struct rlimit lim = { 20000, 20000 };
                struct spool *s = NULL;

                signal(SIGXFSZ, SIG_IGN);
                if (spool_open(f->dir->fd, f->dir->path, NULL, &s, NULL, NULL, 0) < 0 ||
                    setrlimit(RLIMIT_FSIZE, &lim) < 0)
                        _exit(1);
                if (fill(s, &n) != -EFBIG || n < 30)
                        _exit(2);
                spool_close(s);
                _exit(check_all(f->dir->fd, f->dir->path, n + 1) ? 3 : 0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        reopen(f);
        n = spool_next_id(f->s);
        assert_true(offset_of(n) <= 20000 && offset_of(n + 1) > 20000);
        assert_int_equal(f->rec.torn, 0);
        assert_int_equal(file_size(segpath(f, 1)), SPOOL_SEGMENT_BYTES_DEFAULT);
        assert_true(zero_from(segpath(f, 1), offset_of(n)));
        append_synced(f->s, 1);
        expect_next(f->s, 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
                T(test_new_segment_is_preallocated_with_zeros_after_its_records),
                T(test_append_and_sync_change_neither_size_nor_blocks),
                T(test_prepare_makes_the_next_segment_once_and_the_roll_over_takes_it),
                T(test_reopen_appends_at_the_logical_end_and_reads_all_back_in_order),
                T(test_torn_record_followed_by_zeros_is_zeroed_and_reported),
                T(test_leftover_prepared_file_is_removed_at_open_without_a_word),
                T(test_cap_counts_preallocated_and_prepared_files),
                T(test_room_is_the_zeros_left_and_the_growth_the_cap_allows),
                T(test_zero_fill_over_the_file_size_limit_falls_back_to_a_growing_segment),
                T(test_short_write_inside_a_preallocated_segment_is_zeroed_back),
#undef T
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
