/* test_spool.c: the metering spool on real files: ids, group commit, acks, recovery, quarantine, full disks.
 * Preallocated segments: test_spool_prealloc.c.
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

/* The two halves of a sync, as the meter runs them with the fdatasync on its worker: appends go on
 * in between; only what the ticket covers becomes readable; a failure breaks the spool. */
static void test_a_sync_in_two_halves_makes_the_ticket_s_records_durable_only(void **state) {
        struct fx *f = *state;
        struct spool_sync_ticket t;

        reopen(f);
        assert_int_equal(spool_sync_begin(f->s, &t), 0); /* nothing appended: no ticket */
        append_n(f->s, 2);
        assert_int_equal(spool_sync_begin(f->s, &t), 1);
        assert_int_equal(t.last_id, 2);
        append_n(f->s, 1); /* id 3, after the ticket was taken */
        expect_none(f->s);
        assert_int_equal(fdatasync(t.fd), 0);
        close(t.fd);
        assert_int_equal(spool_sync_end(f->s, &t, 0), 2);
        expect_only(f->s, (const uint64_t[]){ 1, 2 }, 2);
        /* The next ticket takes id 3; its failure breaks the spool like spool_sync's would. */
        assert_int_equal(spool_sync_begin(f->s, &t), 1);
        assert_int_equal(t.last_id, 3);
        close(t.fd);
        assert_int_equal(spool_sync_end(f->s, &t, -EIO), -EIO);
        assert_int_equal(spool_sync(f->s), -EIO);
        assert_int_equal(spool_sync_begin(f->s, &t), -EIO);
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
                tu_skip("no private tmpfs here (not root, or a container without mount namespaces)");
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

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_crc32c_matches_the_castagnoli_check_value),
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
                T(test_open_creates_private_dir_and_cursor),
                T(test_second_open_of_one_spool_is_busy),
                T(test_records_are_readable_only_after_sync),
                T(test_a_sync_in_two_halves_makes_the_ticket_s_records_durable_only),
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
#undef T
        };

        return tu_exit_status(cmocka_run_group_tests(tests, NULL, NULL));
}
