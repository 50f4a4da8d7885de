/* test_sigcache.c: the signature cache on real files: round trips, misses, resets, holes, torn tails, trim.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "crc32c.h"
#include "sigcache.h"
#include "testutil.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define KID "q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0xcv" /* 43 characters, like a real kid */
#define KID2 "Q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0xcv"
#define HDR 64
#define ENTRY 84

/* A state directory per test and the cache open in it. */
struct fx {
        struct tu_scratch *dir;
        struct sigcache *c;
        bool reset;
        char msg[512];
};

/* One test at a time: a static fixture, set afresh by setup. */
static struct fx the_fx;

static int setup(void **state) {
        void *d = NULL;

        tu_scratch_setup(&d);
        the_fx = (struct fx){ .dir = d };
        *state = &the_fx;
        return 0;
}

static int teardown(void **state) {
        struct fx *f = *state;
        void *d = f->dir;

        sigcache_close(f->c);
        f->c = NULL;
        return tu_scratch_teardown(&d);
}

/* (Re)opens the cache with kid; returns what sigcache_open returned. */
static int reopen(struct fx *f, const char *kid) {
        sigcache_close(f->c);
        f->c = NULL;
        f->reset = false;
        memset(f->msg, 'x', sizeof(f->msg) - 1);
        f->msg[sizeof(f->msg) - 1] = '\0';
        return sigcache_open(f->dir->fd, f->dir->path, kid, &f->c, &f->reset, f->msg, sizeof(f->msg));
}

/* Bytes that only (id, salt) produce: a digest with salt 0, a signature with salt 1. */
static void fill(uint64_t id, unsigned salt, uint8_t *buf, size_t len) {
        uint64_t x = id * UINT64_C(0x9e3779b97f4a7c15) + salt + 1;

        for (size_t i = 0; i < len; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf[i] = (uint8_t)x;
        }
}

static void put_ok(struct fx *f, uint64_t id) {
        uint8_t d[PLAT_SHA256_LEN], s[PLAT_ES256_SIG_LEN];

        fill(id, 0, d, sizeof(d));
        fill(id, 1, s, sizeof(s));
        assert_int_equal(sigcache_put(f->c, id, d, s), 0);
}

/* sigcache_get of id with the digest put_ok used; checks the signature on a hit. */
static int get(struct fx *f, uint64_t id) {
        uint8_t d[PLAT_SHA256_LEN], s[PLAT_ES256_SIG_LEN], want[PLAT_ES256_SIG_LEN], got[PLAT_ES256_SIG_LEN];
        int r;

        fill(id, 0, d, sizeof(d));
        fill(id, 1, want, sizeof(want));
        memset(got, 0xee, sizeof(got));
        memcpy(s, got, sizeof(s));
        r = sigcache_get(f->c, id, d, got);
        if (r == 0)
                assert_memory_equal(got, want, sizeof(want));
        else
                assert_memory_equal(got, s, sizeof(s)); /* ret_sig untouched on a miss */
        return r;
}

static off_t file_size(struct fx *f) {
        struct stat st;

        assert_int_equal(fstatat(f->dir->fd, SIGCACHE_FILE, &st, 0), 0);
        return st.st_size;
}

static int open_file(struct fx *f, int flags) {
        int fd = openat(f->dir->fd, SIGCACHE_FILE, flags | O_CLOEXEC);

        assert_true(fd >= 0);
        return fd;
}

/* XORs the byte at off of the file with x. */
static void flip(struct fx *f, off_t off, uint8_t x) {
        int fd = open_file(f, O_RDWR);
        uint8_t b;

        assert_int_equal(pread(fd, &b, 1, off), 1);
        b ^= x;
        assert_int_equal(pwrite(fd, &b, 1, off), 1);
        close(fd);
}

static void truncate_to(struct fx *f, off_t size) {
        int fd = open_file(f, O_RDWR);

        assert_int_equal(ftruncate(fd, size), 0);
        close(fd);
}

/* Writes the 64-byte header of the documented format: magic, base, kid, CRC-32C. */
static void write_header(struct fx *f, const char *magic, uint64_t base, const char *kid) {
        uint8_t h[HDR] = { 0 };
        uint64_t b = htole64(base);
        uint32_t crc;
        int fd = open_file(f, O_RDWR);

        memcpy(h, magic, 8);
        memcpy(h + 8, &b, 8);
        memcpy(h + 16, kid, strlen(kid));
        crc = htole32(plat_crc32c(0, h, 60));
        memcpy(h + 60, &crc, 4);
        assert_int_equal(pwrite(fd, h, sizeof(h), 0), HDR);
        close(fd);
}

static void expect_reset(struct fx *f, const char *why) {
        assert_int_equal(reopen(f, KID), 0);
        assert_true(f->reset);
        assert_non_null(strstr(f->msg, f->dir->path));
        assert_non_null(strstr(f->msg, "/" SIGCACHE_FILE ": "));
        assert_non_null(strstr(f->msg, why));
        assert_int_equal(file_size(f), HDR);
        assert_int_equal(sigcache_high(f->c), 0);
}

static void test_fresh_file_is_private_header_only_and_no_reset(void **state) {
        struct fx *f = *state;
        struct stat st;

        assert_int_equal(reopen(f, KID), 0);
        assert_false(f->reset);
        assert_string_equal(f->msg, "");
        assert_int_equal(fstatat(f->dir->fd, SIGCACHE_FILE, &st, 0), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(st.st_size, HDR);
        assert_int_equal(sigcache_high(f->c), 0);
        assert_int_equal(get(f, 1), -ENOENT);
        /* The same file opened again is a valid, empty cache. */
        assert_int_equal(reopen(f, KID), 0);
        assert_false(f->reset);
}

static void test_put_get_round_trip_across_close_and_reopen(void **state) {
        struct fx *f = *state;

        assert_int_equal(reopen(f, KID), 0);
        for (uint64_t id = 100; id < 140; id++)
                put_ok(f, id);
        assert_int_equal(sigcache_high(f->c), 139);
        assert_int_equal(get(f, 117), 0);
        assert_int_equal(reopen(f, KID), 0);
        assert_false(f->reset);
        assert_int_equal(sigcache_high(f->c), 139);
        assert_int_equal(file_size(f), HDR + 40 * ENTRY);
        for (uint64_t id = 100; id < 140; id++)
                assert_int_equal(get(f, id), 0);
        assert_int_equal(get(f, 99), -ENOENT);
        assert_int_equal(get(f, 140), -ENOENT);
        /* Overwriting an entry keeps the newest. */
        put_ok(f, 120);
        assert_int_equal(get(f, 120), 0);
}

static void test_file_written_to_the_documented_format_is_read(void **state) {
        struct fx *f = *state;
        uint8_t e[ENTRY], d[PLAT_SHA256_LEN], s[PLAT_ES256_SIG_LEN];
        uint64_t id = htole64(7);
        uint32_t crc;
        int fd;

        assert_int_equal(reopen(f, KID), 0);
        sigcache_close(f->c);
        f->c = NULL;
        write_header(f, "RASIGC1\n", 5, KID);
        fill(7, 0, d, sizeof(d));
        fill(7, 1, s, sizeof(s));
        memcpy(e, &id, 8);
        memcpy(e + 8, d, 8);
        memcpy(e + 16, s, 64);
        crc = htole32(plat_crc32c(0, e, 80));
        memcpy(e + 80, &crc, 4);
        fd = open_file(f, O_RDWR);
        assert_int_equal(pwrite(fd, e, sizeof(e), HDR + 2 * ENTRY), ENTRY);
        close(fd);
        assert_int_equal(reopen(f, KID), 0);
        assert_false(f->reset);
        assert_int_equal(sigcache_high(f->c), 7);
        assert_int_equal(get(f, 7), 0);
        assert_int_equal(get(f, 5), -ENOENT);
}

static void test_other_digest_misses(void **state) {
        struct fx *f = *state;
        uint8_t d[PLAT_SHA256_LEN], s[PLAT_ES256_SIG_LEN];

        assert_int_equal(reopen(f, KID), 0);
        put_ok(f, 3);
        fill(3, 0, d, sizeof(d));
        d[0] ^= 1;
        assert_int_equal(sigcache_get(f->c, 3, d, s), -ENOENT);
        /* Only the first 8 bytes are kept: a digest that differs after them is the same record. */
        fill(3, 0, d, sizeof(d));
        d[7] ^= 0x80;
        assert_int_equal(sigcache_get(f->c, 3, d, s), -ENOENT);
        assert_int_equal(get(f, 3), 0);
}

static void test_entry_under_a_moved_base_misses_even_with_its_digest(void **state) {
        struct fx *f = *state;
        uint8_t d[PLAT_SHA256_LEN], s[PLAT_ES256_SIG_LEN];

        /* A header newer than its entries (a crash loses writes in any order): each entry now sits
         * where another id belongs, and its own id says so. */
        assert_int_equal(reopen(f, KID), 0);
        for (uint64_t id = 10; id <= 12; id++)
                put_ok(f, id);
        write_header(f, "RASIGC1\n", 11, KID);
        assert_int_equal(reopen(f, KID), 0);
        assert_false(f->reset);
        assert_int_equal(sigcache_high(f->c), 13);
        fill(10, 0, d, sizeof(d));
        assert_int_equal(sigcache_get(f->c, 11, d, s), -ENOENT);
        assert_int_equal(get(f, 11), -ENOENT);
        assert_int_equal(get(f, 12), -ENOENT);
}

static void test_other_kid_resets_and_names_the_file(void **state) {
        struct fx *f = *state;

        assert_int_equal(reopen(f, KID), 0);
        put_ok(f, 1);
        put_ok(f, 2);
        assert_int_equal(reopen(f, KID2), 0);
        assert_true(f->reset);
        assert_non_null(strstr(f->msg, f->dir->path));
        assert_non_null(strstr(f->msg, "/" SIGCACHE_FILE ": made with another key (kid " KID ")"));
        assert_int_equal(file_size(f), HDR);
        assert_int_equal(get(f, 1), -ENOENT);
        /* The file belongs to the new kid now: the old one resets it again. */
        put_ok(f, 1);
        assert_int_equal(reopen(f, KID2), 0);
        assert_false(f->reset);
        assert_int_equal(get(f, 1), 0);
        expect_reset(f, "another key");
}

static void test_shorter_kid_is_another_kid(void **state) {
        struct fx *f = *state;

        assert_int_equal(reopen(f, KID), 0);
        put_ok(f, 1);
        assert_int_equal(reopen(f, "q1w2e3"), 0);
        assert_true(f->reset);
        assert_int_equal(get(f, 1), -ENOENT);
}

static void test_kid_of_bad_length_is_einval(void **state) {
        struct fx *f = *state;

        assert_int_equal(reopen(f, ""), -EINVAL);
        assert_null(f->c);
        assert_non_null(strstr(f->msg, "kid"));
        assert_int_equal(reopen(f, KID "x"), -EINVAL);
        assert_int_equal(reopen(f, NULL), -EINVAL);
        assert_int_equal(faccessat(f->dir->fd, SIGCACHE_FILE, F_OK, 0), -1); /* nothing created */
}

static void test_corrupt_header_resets(void **state) {
        struct fx *f = *state;

        assert_int_equal(reopen(f, KID), 0);
        put_ok(f, 1);
        sigcache_close(f->c);
        f->c = NULL;
        flip(f, 9, 0x40); /* inside base: only the CRC can tell */
        expect_reset(f, "header checksum mismatch");
        assert_int_equal(get(f, 1), -ENOENT);
}

static void test_short_header_resets(void **state) {
        struct fx *f = *state;

        assert_int_equal(reopen(f, KID), 0);
        truncate_to(f, 63);
        expect_reset(f, "header cut short (63 bytes)");
}

static void test_bad_magic_or_base_resets_with_the_reason(void **state) {
        static const struct {
                const char *magic;
                uint64_t base;
                unsigned entries;
                const char *why;
        } cases[] = {
                { "RASIGC2\n", 1, 1, "not a signature cache (bad magic)" },
                { "RASIGC1\n", 0, 1, "entries without a base id" },
                { "RASIGC1\n", UINT64_MAX, 2, "entries past the largest id" },
        };
        struct fx *f = *state;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                assert_int_equal(reopen(f, KID), 0);
                for (unsigned n = 0; n < cases[i].entries; n++)
                        put_ok(f, 1 + n);
                write_header(f, cases[i].magic, cases[i].base, KID);
                expect_reset(f, cases[i].why);
        }
        /* The same with a sound base is no reset: the case above is what the table varies. */
        put_ok(f, 1);
        put_ok(f, 2);
        write_header(f, "RASIGC1\n", UINT64_MAX - 1, KID);
        assert_int_equal(reopen(f, KID), 0);
        assert_false(f->reset);
        assert_int_equal(sigcache_high(f->c), UINT64_MAX);
}

static void test_file_larger_than_the_most_entries_resets(void **state) {
        struct fx *f = *state;

        assert_int_equal(reopen(f, KID), 0);
        put_ok(f, 1);
        /* Sparse: no disk is used for it. One byte more than the most entries take. */
        truncate_to(f, (off_t)(HDR + ENTRY * SIGCACHE_ENTRIES_MAX + 1));
        expect_reset(f, "larger than 2097152 entries");
        /* Exactly the most is fine. */
        put_ok(f, 1);
        truncate_to(f, (off_t)(HDR + ENTRY * SIGCACHE_ENTRIES_MAX));
        assert_int_equal(reopen(f, KID), 0);
        assert_false(f->reset);
        assert_int_equal(sigcache_high(f->c), SIGCACHE_ENTRIES_MAX);
        assert_int_equal(get(f, 1), 0);
        assert_int_equal(get(f, SIGCACHE_ENTRIES_MAX), -ENOENT); /* a hole */
}

static void test_corrupt_entry_misses_and_its_neighbours_hit(void **state) {
        struct fx *f = *state;

        assert_int_equal(reopen(f, KID), 0);
        for (uint64_t id = 50; id < 55; id++)
                put_ok(f, id);
        /* Each byte of entry 52 in turn: id, digest prefix, signature, CRC. */
        for (off_t b = 0; b < ENTRY; b++) {
                off_t off = HDR + 2 * ENTRY + b;

                flip(f, off, 0x10);
                assert_int_equal(get(f, 52), -ENOENT);
                assert_int_equal(get(f, 51), 0);
                assert_int_equal(get(f, 53), 0);
                flip(f, off, 0x10);
        }
        assert_int_equal(get(f, 52), 0);
}

static void test_hole_misses(void **state) {
        struct fx *f = *state;

        assert_int_equal(reopen(f, KID), 0);
        put_ok(f, 10);
        put_ok(f, 12);
        assert_int_equal(sigcache_high(f->c), 12);
        assert_int_equal(get(f, 11), -ENOENT);
        assert_int_equal(reopen(f, KID), 0);
        assert_int_equal(get(f, 11), -ENOENT);
        assert_int_equal(get(f, 10), 0);
        assert_int_equal(get(f, 12), 0);
        /* Filling the hole later works. */
        put_ok(f, 11);
        assert_int_equal(get(f, 11), 0);
}

static void test_truncated_last_entry_misses_and_the_previous_hits(void **state) {
        struct fx *f = *state;

        assert_int_equal(reopen(f, KID), 0);
        for (uint64_t id = 20; id < 24; id++)
                put_ok(f, id);
        /* Every cut inside the last entry: it is not counted, 22 still hits. */
        for (off_t cut = 1; cut < ENTRY; cut += 7) {
                truncate_to(f, HDR + 3 * ENTRY + cut);
                assert_int_equal(reopen(f, KID), 0);
                assert_false(f->reset);
                assert_int_equal(sigcache_high(f->c), 22);
                assert_int_equal(get(f, 23), -ENOENT);
                assert_int_equal(get(f, 22), 0);
                put_ok(f, 23); /* the next put writes over the torn bytes */
                assert_int_equal(get(f, 23), 0);
        }
}

static void test_file_cut_under_an_open_cache_misses(void **state) {
        struct fx *f = *state;

        assert_int_equal(reopen(f, KID), 0);
        put_ok(f, 1);
        put_ok(f, 2);
        truncate_to(f, HDR + ENTRY + 10);
        assert_int_equal(get(f, 2), -ENOENT);
        assert_int_equal(get(f, 1), 0);
}

static void test_trim_below_high_keeps_and_at_high_empties(void **state) {
        struct fx *f = *state;

        assert_int_equal(reopen(f, KID), 0);
        for (uint64_t id = 30; id <= 40; id++)
                put_ok(f, id);
        assert_int_equal(sigcache_trim(f->c, 29), 0);
        assert_int_equal(sigcache_trim(f->c, 39), 0);
        assert_int_equal(sigcache_high(f->c), 40);
        assert_int_equal(file_size(f), HDR + 11 * ENTRY);
        assert_int_equal(get(f, 30), 0);
        assert_int_equal(get(f, 40), 0);
        assert_int_equal(sigcache_trim(f->c, 40), 0);
        assert_int_equal(file_size(f), HDR);
        assert_int_equal(sigcache_high(f->c), 0);
        assert_int_equal(get(f, 40), -ENOENT);
        /* The next put sets a new base, lower or higher than the old one. */
        put_ok(f, 5);
        assert_int_equal(sigcache_high(f->c), 5);
        assert_int_equal(file_size(f), HDR + ENTRY);
        assert_int_equal(reopen(f, KID), 0);
        assert_false(f->reset);
        assert_int_equal(get(f, 5), 0);
        assert_int_equal(sigcache_trim(f->c, 1000), 0);
        assert_int_equal(file_size(f), HDR);
        assert_int_equal(sigcache_trim(f->c, 1000), 0); /* empty: nothing to do */
        put_ok(f, 2000);
        assert_int_equal(sigcache_high(f->c), 2000);
        assert_int_equal(get(f, 2000), 0);
}

static void test_trimmed_file_reopens_empty(void **state) {
        struct fx *f = *state;
        uint8_t h[HDR], zero[8] = { 0 };
        int fd;

        assert_int_equal(reopen(f, KID), 0);
        put_ok(f, 8);
        put_ok(f, 9);
        assert_int_equal(sigcache_trim(f->c, 9), 0);
        fd = open_file(f, O_RDONLY);
        assert_int_equal(pread(fd, h, sizeof(h), 0), HDR);
        close(fd);
        assert_memory_equal(h + 8, zero, 8); /* base forgotten */
        assert_int_equal(reopen(f, KID), 0);
        assert_false(f->reset);
        assert_int_equal(sigcache_high(f->c), 0);
        put_ok(f, 3);
        assert_int_equal(get(f, 3), 0);
}

static void test_old_base_over_no_entries_reads_empty(void **state) {
        struct fx *f = *state;

        /* What a crash between trim's truncate and its header write leaves. */
        assert_int_equal(reopen(f, KID), 0);
        put_ok(f, 100);
        truncate_to(f, HDR);
        assert_int_equal(reopen(f, KID), 0);
        assert_false(f->reset);
        assert_int_equal(sigcache_high(f->c), 0);
        put_ok(f, 7); /* below the old base: a new base, not -ERANGE */
        assert_int_equal(get(f, 7), 0);
}

static void test_ids_outside_the_window_are_erange(void **state) {
        struct fx *f = *state;
        uint8_t d[PLAT_SHA256_LEN] = { 0 }, s[PLAT_ES256_SIG_LEN] = { 0 };

        assert_int_equal(reopen(f, KID), 0);
        assert_int_equal(sigcache_put(f->c, 0, d, s), -ERANGE);
        assert_int_equal(sigcache_high(f->c), 0);
        put_ok(f, 1000);
        assert_int_equal(sigcache_put(f->c, 999, d, s), -ERANGE);
        assert_int_equal(sigcache_put(f->c, 1000 + SIGCACHE_ENTRIES_MAX, d, s), -ERANGE);
        assert_int_equal(sigcache_put(f->c, UINT64_MAX, d, s), -ERANGE);
        assert_int_equal(sigcache_high(f->c), 1000);
        assert_int_equal(file_size(f), HDR + ENTRY);
        /* The last id the window takes (a sparse file of ~176 MB, no disk used). */
        put_ok(f, 1000 + SIGCACHE_ENTRIES_MAX - 1);
        assert_int_equal(sigcache_high(f->c), 1000 + SIGCACHE_ENTRIES_MAX - 1);
        assert_int_equal(get(f, 1000 + SIGCACHE_ENTRIES_MAX - 1), 0);
        assert_int_equal(get(f, 1000), 0);
        assert_int_equal(reopen(f, KID), 0);
        assert_false(f->reset);
        assert_int_equal(get(f, 1000 + SIGCACHE_ENTRIES_MAX - 1), 0);
}

/* sigcache_put under a file size limit of `limit` bytes (SIGXFSZ ignored, as the agent does). */
static int put_limited(struct fx *f, uint64_t id, rlim_t limit) {
        uint8_t d[PLAT_SHA256_LEN] = { 0 }, s[PLAT_ES256_SIG_LEN] = { 0 };
        struct rlimit old, lim;
        int r;

        assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
        lim = old;
        lim.rlim_cur = limit;
        signal(SIGXFSZ, SIG_IGN);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        r = sigcache_put(f->c, id, d, s);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        signal(SIGXFSZ, SIG_DFL);
        return r;
}

static void test_file_size_limit_gives_efbig_and_a_miss(void **state) {
        struct fx *f = *state;

        assert_int_equal(reopen(f, KID), 0);
        put_ok(f, 1);
        assert_int_equal(put_limited(f, 10, HDR + 3 * ENTRY), -EFBIG);
        assert_int_equal(sigcache_high(f->c), 1);
        assert_int_equal(get(f, 10), -ENOENT);
        assert_int_equal(get(f, 1), 0);
        assert_int_equal(sigcache_trim(f->c, 1), 0);
        assert_int_equal(file_size(f), HDR);
}

static void test_failed_first_put_leaves_the_file_empty_for_any_id(void **state) {
        struct fx *f = *state;

        assert_int_equal(reopen(f, KID), 0);
        /* The header (base 10) goes in, the entry only in part. */
        assert_int_equal(put_limited(f, 10, HDR + 40), -EFBIG);
        assert_int_equal(sigcache_high(f->c), 0);
        assert_int_equal(get(f, 10), -ENOENT);
        put_ok(f, 5); /* below the base the failed put wrote: a new base */
        assert_int_equal(get(f, 5), 0);
        assert_int_equal(reopen(f, KID), 0);
        assert_int_equal(sigcache_high(f->c), 5);
        assert_int_equal(get(f, 5), 0);
}

static void expect_refused(struct fx *f, int err, const char *why) {
        assert_int_equal(reopen(f, KID), err);
        assert_null(f->c);
        assert_non_null(strstr(f->msg, f->dir->path));
        assert_non_null(strstr(f->msg, "/" SIGCACHE_FILE ": "));
        assert_non_null(strstr(f->msg, why));
}

static void test_directory_named_signatures_is_refused(void **state) {
        struct fx *f = *state;

        assert_int_equal(mkdirat(f->dir->fd, SIGCACHE_FILE, 0700), 0);
        expect_refused(f, -EISDIR, "cannot open: Is a directory");
}

static void test_fifo_named_signatures_is_refused_and_left_alone(void **state) {
        struct fx *f = *state;
        struct stat st;

        assert_int_equal(mkfifoat(f->dir->fd, SIGCACHE_FILE, 0600), 0);
        expect_refused(f, -EBADFD, "a FIFO, not a regular file");
        assert_int_equal(fstatat(f->dir->fd, SIGCACHE_FILE, &st, 0), 0);
        assert_true(S_ISFIFO(st.st_mode));
}

static void test_symlink_named_signatures_is_not_followed(void **state) {
        struct fx *f = *state;
        char target[PATH_MAX];

        snprintf(target, sizeof(target), "%s/elsewhere", f->dir->path);
        assert_int_equal(symlinkat(target, f->dir->fd, SIGCACHE_FILE), 0);
        expect_refused(f, -ELOOP, "cannot open");
        assert_int_equal(faccessat(f->dir->fd, "elsewhere", F_OK, 0), -1);
}

static void test_state_dir_that_is_no_directory_is_an_error(void **state) {
        struct fx *f = *state;
        struct tu_scratch *d = f->dir;
        int fd, dir_fd = d->fd;

        tu_put(d->fd, "plain", "");
        fd = openat(d->fd, "plain", O_PATH | O_CLOEXEC);
        assert_true(fd >= 0);
        d->fd = fd; /* the fixture's dir fd for one open; the path in messages stays the dir's */
        expect_refused(f, -ENOTDIR, "cannot open: Not a directory");
        d->fd = dir_fd;
        close(fd);
}

int main(void) {
        const struct CMUnitTest tests[] = {
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
                T(test_fresh_file_is_private_header_only_and_no_reset),
                T(test_put_get_round_trip_across_close_and_reopen),
                T(test_file_written_to_the_documented_format_is_read),
                T(test_other_digest_misses),
                T(test_entry_under_a_moved_base_misses_even_with_its_digest),
                T(test_other_kid_resets_and_names_the_file),
                T(test_shorter_kid_is_another_kid),
                T(test_kid_of_bad_length_is_einval),
                T(test_corrupt_header_resets),
                T(test_short_header_resets),
                T(test_bad_magic_or_base_resets_with_the_reason),
                T(test_file_larger_than_the_most_entries_resets),
                T(test_corrupt_entry_misses_and_its_neighbours_hit),
                T(test_hole_misses),
                T(test_truncated_last_entry_misses_and_the_previous_hits),
                T(test_file_cut_under_an_open_cache_misses),
                T(test_trim_below_high_keeps_and_at_high_empties),
                T(test_trimmed_file_reopens_empty),
                T(test_old_base_over_no_entries_reads_empty),
                T(test_ids_outside_the_window_are_erange),
                T(test_file_size_limit_gives_efbig_and_a_miss),
                T(test_failed_first_put_leaves_the_file_empty_for_any_id),
                T(test_directory_named_signatures_is_refused),
                T(test_fifo_named_signatures_is_refused_and_left_alone),
                T(test_symlink_named_signatures_is_not_followed),
                T(test_state_dir_that_is_no_directory_is_an_error),
#undef T
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
