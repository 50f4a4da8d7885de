/* spool_fx.c: the fixture test_spool and test_spool_prealloc share (spool_fx.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "spool_fx.h"

#include "cleanup.h"
#include "spool_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int setup(void **state) {
        struct fx *f = calloc(1, sizeof(*f));
        void *d = NULL;

        assert_non_null(f);
        tu_scratch_setup(&d);
        f->dir = d;
        *state = f;
        return 0;
}

int teardown(void **state) {
        struct fx *f = *state;
        void *d = f->dir;

        spool_close(f->s);
        free(f);
        return tu_scratch_teardown(&d);
}

/* A JWS-like line of 400..599 bytes that only this id produces. */
size_t payload(uint64_t id, char *buf) {
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

const char *spath(struct fx *f, const char *name) {
        snprintf(f->path, sizeof(f->path), "%s/" SPOOL_DIR "/%s", f->dir->path, name);
        return f->path;
}

const char *segpath(struct fx *f, uint64_t id) {
        char name[SPOOL_NAME_MAX];

        spool__seg_name(name, sizeof(name), id);
        return spath(f, name);
}

void open_with(struct fx *f, uint64_t max_bytes, uint64_t segment_bytes) {
        struct spool_options o = { .max_bytes = max_bytes, .segment_bytes = segment_bytes };

        spool_close(f->s);
        f->s = NULL;
        memset(&f->rec, 0, sizeof(f->rec));
        f->msg[0] = '\0';
        assert_int_equal(spool_open(f->dir->fd, f->dir->path, &o, &f->s, &f->rec, f->msg, sizeof(f->msg)),
                         0);
}

void reopen(struct fx *f) {
        open_with(f, 0, 0);
}

void append_n(struct spool *s, uint64_t n) {
        char buf[600];

        for (uint64_t i = 0; i < n; i++) {
                uint64_t id = spool_next_id(s), got = 0;

                assert_int_equal(spool_append(s, buf, payload(id, buf), &got), 0);
                assert_int_equal(got, id);
        }
}

/* Appends n records and makes them durable with one group commit. */
void append_synced(struct spool *s, uint64_t n) {
        append_n(s, n);
        assert_int_equal(spool_sync(s), (int)n);
}

/* Reads the next record and checks it is id with id's bytes. */
void expect_next(struct spool *s, uint64_t id) {
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

void expect_none(struct spool *s) {
        void *buf = NULL;
        size_t len;
        uint64_t id;

        assert_int_equal(spool_read_next(s, &buf, &len, &id), -EAGAIN);
        assert_null(buf);
}

/* Reads exactly these records, in this order, and then nothing. */
void expect_only(struct spool *s, const uint64_t *ids, size_t n) {
        for (size_t i = 0; i < n; i++)
                expect_next(s, ids[i]);
        expect_none(s);
}

uint64_t file_size(const char *path) {
        struct stat st;

        assert_int_equal(stat(path, &st), 0);
        return (uint64_t)st.st_size;
}

size_t count_files(struct fx *f, const char *sub, const char *prefix) {
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
uint64_t seg_ids(struct fx *f, uint64_t *ids, size_t max) {
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

void flip_byte(const char *path, uint64_t off) {
        _cleanup_close_ int fd = open(path, O_RDWR | O_CLOEXEC);
        uint8_t b;

        assert_true(fd >= 0);
        assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
        b ^= 0x40;
        assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
}

/* The offset of record id in a spool of records 1.. written by append_n into one segment. */
uint64_t offset_of(uint64_t id) {
        char buf[600];
        uint64_t off = 0;

        for (uint64_t i = 1; i < id; i++)
                off += SPOOL_HDR_BYTES + payload(i, buf);
        return off;
}

void write_file(const char *path, const void *buf, size_t len) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, buf, len), (ssize_t)len);
}

/* Appends and syncs one record at a time until an error; returns the error, *ret_n the records
 * synced. Asserts nothing: it runs in children. */
int fill(struct spool *s, uint64_t *ret_n) {
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
int check_all(int dir_fd, const char *path, uint64_t n) {
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
