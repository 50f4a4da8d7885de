/* test_spool.c: the metering spool on real files: ids, group commit, acks, recovery, quarantine, full disks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cleanup.h"
#include "fileio.h"
#include "crc32c.h"
#include "spool.h"
#include "spool_internal.h"
#include "testutil.h"

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

/* A state directory per test; the spool under it is opened and closed by the tests. */
struct fx {
        struct tu_scratch *dir;
        struct spool *s;
        struct spool_recovery rec;
        char msg[SPOOL_MSG_MAX];
        char path[PATH_MAX];
};

static int setup(void **state) {
        struct fx *f = calloc(1, sizeof(*f));
        void *d = NULL;

        assert_non_null(f);
        tu_scratch_setup(&d);
        f->dir = d;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fx *f = *state;
        void *d = f->dir;

        spool_close(f->s);
        free(f);
        return tu_scratch_teardown(&d);
}

/* A JWS-like line of 400..599 bytes that only this id produces. */
static size_t payload(uint64_t id, char *buf) {
        static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        uint64_t x = id * UINT64_C(0x9e3779b97f4a7c15) + 1;
        size_t len = 400 + (size_t)(id * 37 % 200);
        int n = snprintf(buf, len, "{\"seq\":%" PRIu64 ",\"sig\":\"", id);

        for (size_t i = (size_t)n; i < len; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf[i] = b64[x & 63];
        }
        return len;
}

static const char *spath(struct fx *f, const char *name) {
        snprintf(f->path, sizeof(f->path), "%s/" SPOOL_DIR "/%s", f->dir->path, name);
        return f->path;
}

static const char *segpath(struct fx *f, uint64_t id) {
        char name[SPOOL_NAME_MAX];

        spool__seg_name(name, sizeof(name), id);
        return spath(f, name);
}

static void open_with(struct fx *f, uint64_t max_bytes, uint64_t segment_bytes) {
        struct spool_options o = { .max_bytes = max_bytes, .segment_bytes = segment_bytes };

        spool_close(f->s);
        f->s = NULL;
        memset(&f->rec, 0, sizeof(f->rec));
        f->msg[0] = '\0';
        assert_int_equal(spool_open(f->dir->fd, f->dir->path, &o, &f->s, &f->rec, f->msg, sizeof(f->msg)),
                         0);
}

static void reopen(struct fx *f) {
        open_with(f, 0, 0);
}

static void append_n(struct spool *s, uint64_t n) {
        char buf[600];

        for (uint64_t i = 0; i < n; i++) {
                uint64_t id = spool_next_id(s), got = 0;

                assert_int_equal(spool_append(s, buf, payload(id, buf), &got), 0);
                assert_int_equal(got, id);
        }
}

/* Appends n records and makes them durable with one group commit. */
static void append_synced(struct spool *s, uint64_t n) {
        append_n(s, n);
        assert_int_equal(spool_sync(s), (int)n);
}

/* Reads the next record and checks it is id with id's bytes. */
static void expect_next(struct spool *s, uint64_t id) {
        char want[600];
        size_t want_len = payload(id, want), len = 0;
        void *buf = NULL;
        uint64_t got = 0;

        assert_int_equal(spool_read_next(s, &buf, &len, &got), 0);
        assert_int_equal(got, id);
        assert_int_equal(len, want_len);
        assert_memory_equal(buf, want, len);
        free(buf);
}

static void expect_none(struct spool *s) {
        void *buf = NULL;
        size_t len;
        uint64_t id;

        assert_int_equal(spool_read_next(s, &buf, &len, &id), -EAGAIN);
        assert_null(buf);
}

/* Reads exactly these records, in this order, and then nothing. */
static void expect_only(struct spool *s, const uint64_t *ids, size_t n) {
        for (size_t i = 0; i < n; i++)
                expect_next(s, ids[i]);
        expect_none(s);
}

static uint64_t file_size(const char *path) {
        struct stat st;

        assert_int_equal(stat(path, &st), 0);
        return (uint64_t)st.st_size;
}

static size_t count_files(struct fx *f, const char *sub, const char *prefix) {
        _cleanup_closedir_ DIR *d = opendir(spath(f, sub));
        struct dirent *de;
        size_t n = 0;

        if (!d)
                return 0;
        while ((de = readdir(d)))
                n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
        return n;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

/* The ids in the segment file names, ascending, up to max of them in ids; returns how many there
 * are, or with ids NULL the highest of them. */
static uint64_t seg_ids(struct fx *f, uint64_t *ids, size_t max) {
        _cleanup_closedir_ DIR *d = opendir(spath(f, ""));
        uint64_t all[1024], n = 0;
        struct dirent *de;

        assert_non_null(d);
        while ((de = readdir(d)))
                if (!strncmp(de->d_name, "seg-", 4)) {
                        assert_true(n < ELEMENTSOF(all));
                        all[n++] = strtoull(de->d_name + 4, NULL, 10);
                }
        qsort(all, n, sizeof(*all), cmp_u64);
        if (!ids)
                return n ? all[n - 1] : 0;
        memcpy(ids, all, (n < max ? n : max) * sizeof(*ids));
        return n;
}

static void flip_byte(const char *path, uint64_t off) {
        _cleanup_close_ int fd = open(path, O_RDWR | O_CLOEXEC);
        uint8_t b;

        assert_true(fd >= 0);
        assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
        b ^= 0x40;
        assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
}

/* The offset of record id in a spool of records 1.. written by append_n into one segment. */
static uint64_t offset_of(uint64_t id) {
        char buf[600];
        uint64_t off = 0;

        for (uint64_t i = 1; i < id; i++)
                off += SPOOL_HDR_BYTES + payload(i, buf);
        return off;
}

static void write_file(const char *path, const void *buf, size_t len) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, buf, len), (ssize_t)len);
}

/* Appends one well-formed record with this id to a hand-made segment file. */
static void put_record(const char *path, uint64_t id) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        uint8_t hdr[SPOOL_HDR_BYTES];
        char buf[600];
        size_t len = payload(id, buf);

        assert_true(fd >= 0);
        spool__header(hdr, id, buf, (uint32_t)len);
        assert_int_equal(write(fd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
        assert_int_equal(write(fd, buf, len), (ssize_t)len);
}

/* A hand-made segment seg-<name_id>.log holding records with these ids, in this order. */
static void make_segment(struct fx *f, uint64_t name_id, const uint64_t *ids, size_t n) {
        if (mkdir(spath(f, ""), 0700) < 0)
                assert_int_equal(errno, EEXIST);
        for (size_t i = 0; i < n; i++)
                put_record(segpath(f, name_id), ids[i]);
}

/* ---- format ---- */

static void test_crc32c_matches_the_castagnoli_check_value(void **state) {
        (void)state;
        assert_int_equal(plat_crc32c(0, "123456789", 9), 0xe3069283);
        /* Piecewise is the same as at once. */
        assert_int_equal(plat_crc32c(plat_crc32c(0, "1234", 4), "56789", 5), 0xe3069283);
}

/* ---- basics ---- */

static void test_open_creates_private_dir_and_cursor(void **state) {
        struct fx *f = *state;
        struct spool_stats st;
        void *buf = NULL;
        size_t len;
        uint64_t id;
        struct stat sb;

        reopen(f);
        assert_int_equal(stat(spath(f, ""), &sb), 0);
        assert_int_equal(sb.st_mode & 0777, 0700);
        assert_int_equal(stat(spath(f, SPOOL__CURSOR), &sb), 0);
        assert_int_equal(spool_next_id(f->s), 1);
        assert_int_equal(spool_last(f->s, &buf, &len, &id), -ENOENT);
        assert_false(spool_recovery_alarm(&f->rec));
        assert_false(f->rec.cursor_reset);
        assert_string_equal(f->rec.msg, "");
        spool_stats(f->s, &st);
        assert_int_equal(st.bytes, 0);
        assert_int_equal(st.pending, 0);
        assert_int_equal(st.max_bytes, SPOOL_MAX_BYTES_DEFAULT);
        assert_false(st.full);
        expect_none(f->s);
}

static void test_second_open_of_one_spool_is_busy(void **state) {
        struct fx *f = *state;
        struct spool *other = NULL;
        char msg[SPOOL_MSG_MAX];

        reopen(f);
        assert_int_equal(spool_open(f->dir->fd, f->dir->path, NULL, &other, NULL, msg, sizeof(msg)), -EBUSY);
        assert_null(other);
        assert_non_null(strstr(msg, "another process"));
}

static void test_records_are_readable_only_after_sync(void **state) {
        struct fx *f = *state;

        reopen(f);
        append_n(f->s, 3);
        expect_none(f->s);
        assert_int_equal(spool_sync(f->s), 3);
        append_n(f->s, 1);
        expect_only(f->s, (const uint64_t[]){ 1, 2, 3 }, 3);
        assert_int_equal(spool_sync(f->s), 1);
        expect_next(f->s, 4);
        assert_int_equal(spool_sync(f->s), 0);
}

static void test_bad_sizes_are_refused_with_emsgsize(void **state) {
        struct fx *f = *state;
        static char big[SPOOL_RECORD_MAX + 1];
        uint64_t id = 0;

        reopen(f);
        assert_int_equal(spool_append(f->s, big, 0, &id), -EMSGSIZE);
        assert_int_equal(spool_append(f->s, big, SPOOL_RECORD_MAX + 1, &id), -EMSGSIZE);
        assert_int_equal(spool_append(f->s, NULL, 10, &id), -EMSGSIZE);
        assert_int_equal(id, 0);
        assert_int_equal(spool_append(f->s, big, SPOOL_RECORD_MAX, &id), 0);
        assert_int_equal(id, 1);
}

static void test_restart_keeps_ids_cursor_and_unacked_records(void **state) {
        struct fx *f = *state;

        reopen(f);
        append_synced(f->s, 10);
        for (uint64_t id = 1; id <= 10; id++)
                expect_next(f->s, id);
        for (uint64_t id = 1; id <= 6; id++)
                assert_int_equal(spool_ack(f->s, id), 0);
        assert_int_equal(spool_flush_cursor(f->s), 0);
        reopen(f);
        assert_int_equal(spool_next_id(f->s), 11);
        assert_int_equal(f->rec.records, 10);
        assert_int_equal(f->rec.pending, 4);
        assert_false(spool_recovery_alarm(&f->rec));
        assert_string_equal(f->rec.msg, "");
        expect_only(f->s, (const uint64_t[]){ 7, 8, 9, 10 }, 4);
        append_synced(f->s, 1);
        expect_next(f->s, 11);
}

static void test_acks_out_of_order_move_the_cursor_over_the_acked_prefix_only(void **state) {
        struct fx *f = *state;
        struct spool_stats st;

        reopen(f);
        append_synced(f->s, 6);
        for (uint64_t id = 1; id <= 5; id++)
                expect_next(f->s, id);
        assert_int_equal(spool_ack(f->s, 3), 0);
        assert_int_equal(spool_ack(f->s, 5), 0);
        spool_stats(f->s, &st);
        assert_int_equal(st.acked, 0);
        assert_int_equal(st.pending, 4);
        assert_int_equal(st.oldest_unacked, 1);
        assert_int_equal(spool_ack(f->s, 1), 0);
        spool_stats(f->s, &st);
        assert_int_equal(st.acked, 1);
        assert_int_equal(spool_ack(f->s, 2), 0);
        spool_stats(f->s, &st);
        assert_int_equal(st.acked, 3);
        assert_int_equal(st.oldest_unacked, 4);
        assert_int_equal(spool_ack(f->s, 3), 0);       /* repeated */
        assert_int_equal(spool_ack(f->s, 6), -ERANGE); /* never handed out */
        assert_int_equal(spool_ack(f->s, 4), 0);
        spool_stats(f->s, &st);
        assert_int_equal(st.acked, 5);
        assert_int_equal(st.pending, 1);
        assert_int_equal(st.oldest_unacked, 6);
}

static void test_rewind_hands_out_unacked_records_again_and_skips_acked_ones(void **state) {
        struct fx *f = *state;

        reopen(f);
        append_synced(f->s, 5);
        for (uint64_t id = 1; id <= 5; id++)
                expect_next(f->s, id);
        assert_int_equal(spool_ack(f->s, 2), 0);
        assert_int_equal(spool_ack(f->s, 4), 0);
        spool_rewind(f->s);
        expect_only(f->s, (const uint64_t[]){ 1, 3, 5 }, 3);
        assert_int_equal(spool_ack(f->s, 1), 0);
        assert_int_equal(spool_ack(f->s, 3), 0);
        assert_int_equal(spool_ack(f->s, 5), 0);
        spool_rewind(f->s);
        expect_none(f->s);
}

static void test_acked_segments_are_deleted_but_the_newest_record_stays(void **state) {
        struct fx *f = *state;
        struct spool_stats st;
        char want[600];
        void *buf = NULL;
        size_t len = 0;
        uint64_t id = 0;

        open_with(f, 0, 4096); /* about 7 records per segment */
        append_synced(f->s, 50);
        assert_true(count_files(f, "", "seg-") > 5);
        for (uint64_t i = 1; i <= 50; i++) {
                expect_next(f->s, i);
                assert_int_equal(spool_ack(f->s, i), 0);
        }
        assert_int_equal(spool_flush_cursor(f->s), 0);
        assert_int_equal(count_files(f, "", "seg-"), 1);
        spool_stats(f->s, &st);
        assert_int_equal(st.segments, 1);
        assert_int_equal(st.pending, 0);
        assert_int_equal(st.oldest_unacked, 0);
        assert_int_equal(st.bytes, file_size(segpath(f, seg_ids(f, NULL, 0))));

        /* After a restart: the ids go on, and the newest record's bytes continue the chain. */
        open_with(f, 0, 4096);
        assert_int_equal(spool_next_id(f->s), 51);
        assert_int_equal(spool_last(f->s, &buf, &len, &id), 0);
        assert_int_equal(id, 50);
        assert_int_equal(len, payload(50, want));
        assert_memory_equal(buf, want, len);
        free(buf);
        expect_none(f->s);
        append_synced(f->s, 1);
        expect_next(f->s, 51);
}

/* A crash right after a roll-over leaves an empty newest segment: the newest record is in the one
 * before, which therefore stays even when all of it is acked. */
static void test_segment_with_the_newest_record_stays_behind_an_empty_newest_segment(void **state) {
        struct fx *f = *state;
        char want[600];
        void *buf = NULL;
        size_t len = 0;
        uint64_t id = 0;

        reopen(f);
        append_synced(f->s, 3);
        spool_close(f->s);
        f->s = NULL;
        write_file(segpath(f, 4), "", 0);
        reopen(f);
        for (uint64_t i = 1; i <= 3; i++) {
                expect_next(f->s, i);
                assert_int_equal(spool_ack(f->s, i), 0);
        }
        assert_int_equal(spool_flush_cursor(f->s), 0);
        assert_int_equal(file_size(segpath(f, 1)), SPOOL_SEGMENT_BYTES_DEFAULT); /* still there */
        reopen(f);
        assert_int_equal(spool_last(f->s, &buf, &len, &id), 0);
        assert_int_equal(id, 3);
        assert_int_equal(len, payload(3, want));
        assert_memory_equal(buf, want, len);
        free(buf);
        assert_int_equal(spool_next_id(f->s), 4);
}

/* ---- the cap: fail closed ---- */

static void test_cap_refuses_appends_without_writing_and_room_comes_back_with_acks(void **state) {
        struct fx *f = *state;
        struct spool_stats st;
        char buf[600];
        uint64_t id = 0, n = 0, bytes;
        int r;

        open_with(f, 16384, 0); /* segments of 4 KiB */
        while ((r = spool_append(f->s, buf, payload(spool_next_id(f->s), buf), &id)) == 0)
                n++;
        assert_int_equal(r, -ENOSPC);
        assert_true(n >= 25);
        spool_stats(f->s, &st);
        assert_true(st.full);
        assert_true(st.bytes <= 16384);
        bytes = st.bytes;
        /* Nothing of the refused record reached a file. */
        assert_int_equal(spool_append(f->s, buf, payload(n + 1, buf), &id), -ENOSPC);
        assert_int_equal(id, n);
        spool_stats(f->s, &st);
        assert_int_equal(st.bytes, bytes);
        assert_int_equal(spool_next_id(f->s), n + 1);
        spool_sync(f->s);
        /* The broker acks half: their segments go, appends go on. */
        for (uint64_t i = 1; i <= n / 2; i++) {
                expect_next(f->s, i);
                assert_int_equal(spool_ack(f->s, i), 0);
        }
        assert_int_equal(spool_append(f->s, buf, payload(n + 1, buf), &id), 0);
        assert_int_equal(id, n + 1);
        spool_stats(f->s, &st);
        assert_false(st.full);
        spool_sync(f->s);
        reopen(f);
        assert_int_equal(f->rec.torn, 0);
        assert_int_equal(f->rec.quarantined, 0);
        assert_int_equal(spool_next_id(f->s), n + 2);
}

/* ---- recovery ---- */

/* Five synced records; then the last one is cut or damaged at every byte; recovery keeps 1..4. */
static void test_torn_tail_at_every_offset_of_the_last_record_is_cut(void **state) {
        struct fx *f = *state;
        char buf[600];
        uint64_t base = offset_of(5), size = base + SPOOL_HDR_BYTES + payload(5, buf);
        _cleanup_free_ uint8_t *orig = malloc(size);
        _cleanup_close_ int fd = -1;

        assert_non_null(orig);
        reopen(f);
        append_synced(f->s, 5);
        spool_close(f->s);
        f->s = NULL;
        fd = open(segpath(f, 1), O_RDONLY | O_CLOEXEC);
        assert_int_equal(pread(fd, orig, size, 0), (ssize_t)size);
        for (uint64_t cut = base; cut < size; cut++) {
                /* Short: the record ends at cut. */
                write_file(segpath(f, 1), orig, cut);
                reopen(f);
                assert_int_equal(f->rec.torn, cut > base);
                assert_int_equal(f->rec.torn_bytes, cut - base);
                assert_int_equal(f->rec.records, 4);
                assert_int_equal(f->rec.quarantined, 0);
                assert_false(spool_recovery_alarm(&f->rec));
                assert_int_equal(spool_next_id(f->s), 5);
                assert_int_equal(file_size(segpath(f, 1)), base);
                for (uint64_t id = 1; id <= 4; id++)
                        expect_next(f->s, id);
                expect_none(f->s);
                spool_close(f->s);
                f->s = NULL;
                /* Full length with this byte changed: a bad CRC (or header) in the last record. */
                write_file(segpath(f, 1), orig, size);
                flip_byte(segpath(f, 1), cut);
                reopen(f);
                assert_int_equal(f->rec.torn, 1);
                assert_int_equal(f->rec.records, 4);
                assert_int_equal(f->rec.quarantined, 0);
                assert_int_equal(file_size(segpath(f, 1)), base);
                spool_close(f->s);
                f->s = NULL;
        }
}

static void test_cut_record_that_the_cursor_calls_synced_is_reported_lost(void **state) {
        struct fx *f = *state;

        reopen(f);
        append_synced(f->s, 5);
        assert_int_equal(spool_flush_cursor(f->s), 0); /* high = 5 */
        spool_close(f->s);
        f->s = NULL;
        assert_int_equal(truncate(segpath(f, 1), (off_t)offset_of(5) + 7), 0);
        reopen(f);
        assert_int_equal(f->rec.torn, 1);
        assert_true(spool_recovery_alarm(&f->rec));
        assert_int_equal(f->rec.lost_ids, 1);
        assert_int_equal(f->rec.lost_first, 5);
        assert_int_equal(f->rec.lost_last, 5);
        assert_non_null(strstr(f->rec.msg, "lost"));
        assert_int_equal(spool_next_id(f->s), 6); /* 5 was synced once: never reused */
}

static void test_corrupt_record_in_the_middle_is_quarantined_and_reported(void **state) {
        struct fx *f = *state;
        char want[600], q[PATH_MAX];
        uint64_t off3 = offset_of(3), len3 = SPOOL_HDR_BYTES + payload(3, want);
        _cleanup_free_ char *got = NULL;
        _cleanup_close_ int seg = -1;
        uint8_t orig[620];
        size_t n;

        reopen(f);
        append_synced(f->s, 5);
        spool_close(f->s);
        f->s = NULL;
        seg = open(segpath(f, 1), O_RDONLY | O_CLOEXEC);
        flip_byte(segpath(f, 1), off3 + SPOOL_HDR_BYTES + 100);
        assert_int_equal(pread(seg, orig, len3, (off_t)off3), (ssize_t)len3);

        reopen(f);
        assert_int_equal(f->rec.quarantined, 1);
        assert_int_equal(f->rec.torn, 0);
        assert_true(spool_recovery_alarm(&f->rec));
        assert_int_equal(f->rec.lost_ids, 1);
        assert_int_equal(f->rec.lost_first, 3);
        assert_int_equal(f->rec.lost_last, 3);
        snprintf(q, sizeof(q), "seg-%020d-%" PRIu64 ".bad", 1, off3);
        assert_string_equal(f->rec.quarantine_files[0], q);
        assert_non_null(strstr(f->rec.msg, q));
        /* The quarantine file holds exactly the bad record's bytes. */
        snprintf(q, sizeof(q), "%s/" SPOOL_DIR "/quarantine/seg-%020d-%" PRIu64 ".bad", f->dir->path, 1,
                 off3);
        assert_int_equal(plat_read_file_at(AT_FDCWD, q, 4096, &got, &n), 0);
        assert_int_equal(n, len3);
        assert_memory_equal(got, orig, len3);
        expect_only(f->s, (const uint64_t[]){ 1, 2, 4, 5 }, 4);

        /* Seen again at the next start, reported again, its copy not overwritten nor doubled. */
        reopen(f);
        assert_int_equal(f->rec.quarantined, 1);
        assert_int_equal(count_files(f, "quarantine", "seg-"), 1);
}

static void test_damaged_header_resyncs_on_the_next_valid_record(void **state) {
        struct fx *f = *state;

        reopen(f);
        append_synced(f->s, 4);
        spool_close(f->s);
        f->s = NULL;
        flip_byte(segpath(f, 1), offset_of(2));     /* magic */
        flip_byte(segpath(f, 1), offset_of(2) + 6); /* length */
        reopen(f);
        assert_int_equal(f->rec.quarantined, 1);
        assert_int_equal(f->rec.lost_first, 2);
        assert_int_equal(f->rec.lost_last, 2);
        expect_only(f->s, (const uint64_t[]){ 1, 3, 4 }, 3);
}

static void test_repeated_and_backward_ids_are_quarantined(void **state) {
        struct fx *f = *state;

        /* 2 repeats, 1 goes back */
        make_segment(f, 1, (const uint64_t[]){ 1, 2, 3, 2, 1, 4 }, 6);
        reopen(f);
        assert_int_equal(f->rec.quarantined, 1);
        assert_int_equal(f->rec.lost_ids, 0); /* nothing missing: the region held copies */
        assert_true(spool_recovery_alarm(&f->rec));
        for (uint64_t id = 1; id <= 4; id++)
                expect_next(f->s, id);
        expect_none(f->s);
        assert_int_equal(spool_next_id(f->s), 5);
}

static void test_repeated_record_at_the_tail_is_quarantined_not_cut(void **state) {
        struct fx *f = *state;
        uint64_t size;

        make_segment(f, 1, (const uint64_t[]){ 1, 2, 1 }, 3);
        size = file_size(segpath(f, 1));
        reopen(f);
        assert_int_equal(f->rec.torn, 0);
        assert_int_equal(f->rec.quarantined, 1);
        assert_int_equal(file_size(segpath(f, 1)), size);
        /* Appends go after the quarantined bytes, and the next start finds them all again. */
        append_synced(f->s, 1);
        reopen(f);
        assert_int_equal(f->rec.quarantined, 1);
        assert_int_equal(f->rec.records, 3);
        expect_only(f->s, (const uint64_t[]){ 1, 2, 3 }, 3);
}

static void test_empty_newest_segment_named_for_a_past_id_is_replaced_on_append(void **state) {
        struct fx *f = *state;
        char text[SPOOL__CURSOR_MAX];
        struct spool_stats st;
        size_t len;

        reopen(f);
        append_synced(f->s, 3);
        spool_close(f->s);
        f->s = NULL;
        write_file(segpath(f, 4), "", 0);
        len = spool__cursor_text(text, sizeof(text), 0, 9); /* 4..9 were synced once */
        write_file(spath(f, SPOOL__CURSOR), text, len);
        reopen(f);
        assert_int_equal(f->rec.lost_first, 4);
        assert_int_equal(f->rec.lost_last, 9);
        assert_int_equal(spool_next_id(f->s), 10);
        append_synced(f->s, 1);
        assert_int_equal(access(segpath(f, 4), F_OK), -1);
        assert_int_equal(file_size(segpath(f, 10)), SPOOL_SEGMENT_BYTES_DEFAULT);
        spool_stats(f->s, &st);
        assert_int_equal(st.bytes, 2 * SPOOL_SEGMENT_BYTES_DEFAULT); /* seg 1 and seg 10 */
        reopen(f);
        assert_int_equal(f->rec.warnings, 0);
        for (uint64_t id = 1; id <= 3; id++)
                expect_next(f->s, id);
        expect_next(f->s, 10);
        expect_none(f->s);
}

static void test_missing_middle_segment_is_reported_lost(void **state) {
        struct fx *f = *state;
        uint64_t ids[8];

        open_with(f, 0, 4096);
        append_synced(f->s, 24);
        spool_close(f->s);
        f->s = NULL;
        assert_true(seg_ids(f, ids, 8) >= 3);
        assert_int_equal(unlink(segpath(f, ids[1])), 0);
        open_with(f, 0, 4096);
        assert_true(spool_recovery_alarm(&f->rec));
        assert_int_equal(f->rec.lost_first, ids[1]);
        assert_int_equal(f->rec.lost_last, ids[2] - 1);
        assert_int_equal(f->rec.lost_ids, ids[2] - ids[1]);
        for (uint64_t id = 1; id < ids[1]; id++)
                expect_next(f->s, id);
        for (uint64_t id = ids[2]; id <= 24; id++)
                expect_next(f->s, id);
        expect_none(f->s);
}

static void test_corrupt_cursor_delivers_every_record_again(void **state) {
        struct fx *f = *state;

        reopen(f);
        append_synced(f->s, 4);
        for (uint64_t id = 1; id <= 4; id++) {
                expect_next(f->s, id);
                assert_int_equal(spool_ack(f->s, id), 0);
        }
        assert_int_equal(spool_flush_cursor(f->s), 0);
        spool_close(f->s);
        f->s = NULL;
        write_file(spath(f, SPOOL__CURSOR), "v1 acked=4 high=4 crc=00000000\n", 31);
        reopen(f);
        assert_true(f->rec.cursor_reset);
        assert_false(spool_recovery_alarm(&f->rec)); /* duplicates, not a loss */
        assert_non_null(strstr(f->rec.msg, "corrupt"));
        for (uint64_t id = 1; id <= 4; id++)
                expect_next(f->s, id);
        assert_int_equal(spool_next_id(f->s), 5);
        /* The cursor was written afresh: the next start is clean. */
        reopen(f);
        assert_false(f->rec.cursor_reset);
}

static void test_cursor_beyond_the_last_record_counts_all_as_acked(void **state) {
        struct fx *f = *state;
        char text[SPOOL__CURSOR_MAX];
        size_t len;
        struct spool_stats st;

        reopen(f);
        append_synced(f->s, 3);
        spool_close(f->s);
        f->s = NULL;
        len = spool__cursor_text(text, sizeof(text), 100, 100);
        write_file(spath(f, SPOOL__CURSOR), text, len);
        reopen(f);
        assert_true(f->rec.warnings > 0);
        assert_false(spool_recovery_alarm(&f->rec));
        assert_non_null(strstr(f->rec.msg, "beyond the newest record"));
        assert_int_equal(f->rec.pending, 0);
        assert_int_equal(spool_next_id(f->s), 101);
        expect_none(f->s);
        spool_stats(f->s, &st);
        assert_int_equal(st.acked, 100);
}

static void test_misnamed_segment_and_stray_files_are_reported_not_removed(void **state) {
        struct fx *f = *state;

        make_segment(f, 7, (const uint64_t[]){ 1, 2 }, 2);
        write_file(spath(f, "seg-junk.log"), "x", 1);
        reopen(f);
        assert_int_equal(f->rec.warnings, 2);
        assert_false(spool_recovery_alarm(&f->rec));
        assert_non_null(strstr(f->rec.msg, "not the id its name says"));
        assert_non_null(strstr(f->rec.msg, "seg-junk.log"));
        assert_int_equal(file_size(spath(f, "seg-junk.log")), 1);
        expect_next(f->s, 1);
        expect_next(f->s, 2);
        assert_int_equal(spool_next_id(f->s), 8); /* past the name too: no name is ever made twice */
}

static void test_oversized_segment_file_is_refused(void **state) {
        struct fx *f = *state;
        struct spool *s = NULL;
        char msg[SPOOL_MSG_MAX];

        assert_int_equal(mkdir(spath(f, ""), 0700), 0);
        write_file(segpath(f, 1), "", 0);
        assert_int_equal(truncate(segpath(f, 1), (off_t)SPOOL__SEG_FILE_MAX + 1), 0);
        assert_int_equal(spool_open(f->dir->fd, f->dir->path, NULL, &s, NULL, msg, sizeof(msg)), -EFBIG);
        assert_non_null(strstr(msg, "seg-00000000000000000001.log"));
}

static void test_bytes_that_go_bad_after_recovery_are_quarantined_when_read(void **state) {
        struct fx *f = *state;
        struct spool_stats st;

        reopen(f);
        append_synced(f->s, 5);
        flip_byte(segpath(f, 1), offset_of(3) + SPOOL_HDR_BYTES + 1);
        expect_only(f->s, (const uint64_t[]){ 1, 2, 4, 5 }, 4);
        spool_stats(f->s, &st);
        assert_int_equal(st.quarantined, 1);
        assert_int_equal(st.pending, 4);
        assert_int_equal(count_files(f, "quarantine", "seg-"), 1);
}

/* ---- full filesystems and crashes (forked children: limits and mounts stay with them) ---- */

/* Appends and syncs one record at a time until an error; returns the error, *ret_n the records
 * synced. Asserts nothing: it runs in children. */
static int fill(struct spool *s, uint64_t *ret_n) {
        char buf[600];
        uint64_t id;
        int r;

        *ret_n = 0;
        for (;;) {
                r = spool_append(s, buf, payload(spool_next_id(s), buf), &id);
                if (r < 0)
                        return r;
                r = spool_sync(s);
                if (r < 0)
                        return r;
                (*ret_n)++;
        }
}

/* Every record 1..n is there with its bytes, and nothing else; 0 or a line number. */
static int check_all(int dir_fd, const char *path, uint64_t n) {
        struct spool_recovery rec;
        struct spool *s = NULL;
        char msg[SPOOL_MSG_MAX], want[600];
        int bad = 0;

        if (spool_open(dir_fd, path, NULL, &s, &rec, msg, sizeof(msg)) < 0)
                return __LINE__;
        if (rec.torn || rec.quarantined || rec.records != n || spool_next_id(s) != n + 1)
                bad = __LINE__;
        for (uint64_t i = 1; !bad && i <= n; i++) {
                void *buf = NULL;
                size_t len;
                uint64_t id;

                if (spool_read_next(s, &buf, &len, &id) < 0 || id != i || len != payload(i, want) ||
                    memcmp(buf, want, len) != 0)
                        bad = __LINE__;
                free(buf);
        }
        spool_close(s);
        return bad;
}

static void test_file_size_limit_gives_efbig_and_no_torn_record(void **state) {
        struct fx *f = *state;
        int status;
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
                struct rlimit lim = { 20000, 20000 }; /* a record crosses it: a short write */
                struct spool *s = NULL;
                uint64_t n, id;
                char buf[600];

                signal(SIGXFSZ, SIG_IGN);
                if (spool_open(f->dir->fd, f->dir->path, NULL, &s, NULL, NULL, 0) < 0 ||
                    setrlimit(RLIMIT_FSIZE, &lim) < 0)
                        _exit(1);
                if (fill(s, &n) != -EFBIG || n == 0)
                        _exit(2);
                if (spool_append(s, buf, payload(n + 1, buf), &id) != -EFBIG)
                        _exit(3);
                spool_close(s);
                _exit(check_all(f->dir->fd, f->dir->path, n) ? 4 : 0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        /* No limit here: the spool takes appends again, and recovery found a clean tail. */
        reopen(f);
        assert_int_equal(f->rec.torn, 0);
        assert_int_equal(f->rec.quarantined, 0);
        assert_int_equal(file_size(segpath(f, 1)), offset_of(spool_next_id(f->s)));
        append_synced(f->s, 1);
}

static void test_full_tmpfs_gives_enospc_and_appends_resume_once_space_frees(void **state) {
        struct fx *f = *state;
        char fs[PATH_MAX];
        int status;
        pid_t pid;

        snprintf(fs, sizeof(fs), "%s/fs", f->dir->path);
        assert_int_equal(mkdir(fs, 0700), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                static char filler[64 * 1024];
                struct spool *s = NULL;
                struct spool_stats st;
                uint64_t n, id;
                char buf[600];
                int dfd, fd;

                /* A mount of our own: private to this child, gone when it exits. */
                if (unshare(CLONE_NEWNS) < 0 || mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
                    mount("tmpfs", fs, "tmpfs", 0, "size=256k,mode=0700") < 0)
                        _exit(77);
                dfd = open(fs, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (dfd < 0)
                        _exit(1);
                fd = openat(dfd, "filler", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
                if (fd < 0 || write(fd, filler, sizeof(filler)) != (ssize_t)sizeof(filler) ||
                    close(fd) < 0 || spool_open(dfd, fs, NULL, &s, NULL, NULL, 0) < 0)
                        _exit(1);
                /* No room for a segment of zeros: nothing prepared, nothing left behind. */
                if (spool_prepare(s) != -ENOSPC || faccessat(dfd, SPOOL_DIR "/" SPOOL__PREP, F_OK, 0) == 0)
                        _exit(8);
                if (fill(s, &n) != -ENOSPC || n == 0)
                        _exit(2);
                spool_stats(s, &st);
                if (!st.full || spool_append(s, buf, payload(n + 1, buf), &id) != -ENOSPC)
                        _exit(3);
                spool_close(s);
                if (check_all(dfd, fs, n))
                        _exit(4);
                /* Room again: appends go on, and everything synced is found. */
                if (unlinkat(dfd, "filler", 0) < 0 || spool_open(dfd, fs, NULL, &s, NULL, NULL, 0) < 0 ||
                    spool_append(s, buf, payload(n + 1, buf), &id) < 0 || id != n + 1 || spool_sync(s) != 1)
                        _exit(5);
                spool_stats(s, &st);
                if (st.full)
                        _exit(6);
                spool_close(s);
                _exit(check_all(dfd, fs, n + 1) ? 7 : 0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status) == 77)
                skip(); /* no mount namespaces here (not root, or a container without them) */
        assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_kill9_during_appends_loses_no_synced_record(void **state) {
        struct fx *f = *state;
        uint64_t synced = 0, v;
        int p[2], status;
        size_t reports = 0;
        pid_t pid;

        assert_int_equal(pipe(p), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                struct spool *s = NULL;
                char buf[600];
                uint64_t id;

                close(p[0]);
                if (spool_open(f->dir->fd, f->dir->path, NULL, &s, NULL, NULL, 0) < 0)
                        _exit(1);
                for (uint64_t k = 1;; k++) {
                        /* Batches of 1..7 records, then one group commit, then the report. */
                        for (uint64_t i = 0; i < k % 7 + 1; i++)
                                if (spool_append(s, buf, payload(spool_next_id(s), buf), &id) < 0)
                                        _exit(2);
                        if (spool_sync(s) < 0)
                                _exit(3);
                        id = spool_next_id(s) - 1;
                        if (write(p[1], &id, sizeof(id)) != (ssize_t)sizeof(id))
                                _exit(4);
                }
        }
        close(p[1]);
        while (reports < 300 && read(p[0], &v, sizeof(v)) == (ssize_t)sizeof(v)) {
                synced = v;
                reports++;
        }
        assert_int_equal(kill(pid, SIGKILL), 0);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        while (read(p[0], &v, sizeof(v)) == (ssize_t)sizeof(v))
                synced = v;
        close(p[0]);
        assert_true(synced > 300);
        reopen(f);
        assert_int_equal(f->rec.quarantined, 0);
        assert_false(spool_recovery_alarm(&f->rec));
        assert_true(f->rec.records >= synced);
        assert_true(spool_next_id(f->s) > synced);
        for (uint64_t id = 1; id <= synced; id++)
                expect_next(f->s, id);
}

/* ---- preallocated segments ---- */

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
                cmocka_unit_test(test_crc32c_matches_the_castagnoli_check_value),
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
                T(test_open_creates_private_dir_and_cursor),
                T(test_second_open_of_one_spool_is_busy),
                T(test_records_are_readable_only_after_sync),
                T(test_bad_sizes_are_refused_with_emsgsize),
                T(test_restart_keeps_ids_cursor_and_unacked_records),
                T(test_acks_out_of_order_move_the_cursor_over_the_acked_prefix_only),
                T(test_rewind_hands_out_unacked_records_again_and_skips_acked_ones),
                T(test_acked_segments_are_deleted_but_the_newest_record_stays),
                T(test_segment_with_the_newest_record_stays_behind_an_empty_newest_segment),
                T(test_cap_refuses_appends_without_writing_and_room_comes_back_with_acks),
                T(test_torn_tail_at_every_offset_of_the_last_record_is_cut),
                T(test_cut_record_that_the_cursor_calls_synced_is_reported_lost),
                T(test_corrupt_record_in_the_middle_is_quarantined_and_reported),
                T(test_damaged_header_resyncs_on_the_next_valid_record),
                T(test_repeated_and_backward_ids_are_quarantined),
                T(test_repeated_record_at_the_tail_is_quarantined_not_cut),
                T(test_empty_newest_segment_named_for_a_past_id_is_replaced_on_append),
                T(test_missing_middle_segment_is_reported_lost),
                T(test_corrupt_cursor_delivers_every_record_again),
                T(test_cursor_beyond_the_last_record_counts_all_as_acked),
                T(test_misnamed_segment_and_stray_files_are_reported_not_removed),
                T(test_oversized_segment_file_is_refused),
                T(test_bytes_that_go_bad_after_recovery_are_quarantined_when_read),
                T(test_file_size_limit_gives_efbig_and_no_torn_record),
                T(test_full_tmpfs_gives_enospc_and_appends_resume_once_space_frees),
                T(test_kill9_during_appends_loses_no_synced_record),
                T(test_new_segment_is_preallocated_with_zeros_after_its_records),
                T(test_append_and_sync_change_neither_size_nor_blocks),
                T(test_prepare_makes_the_next_segment_once_and_the_roll_over_takes_it),
                T(test_reopen_appends_at_the_logical_end_and_reads_all_back_in_order),
                T(test_torn_record_followed_by_zeros_is_zeroed_and_reported),
                T(test_leftover_prepared_file_is_removed_at_open_without_a_word),
                T(test_cap_counts_preallocated_and_prepared_files),
                T(test_zero_fill_over_the_file_size_limit_falls_back_to_a_growing_segment),
                T(test_short_write_inside_a_preallocated_segment_is_zeroed_back),
#undef T
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
