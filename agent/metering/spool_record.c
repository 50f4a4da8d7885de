/* spool_record.c: the spool's record format: headers (CRC-32C), the bounded scanner, resync, zero-filled
 * ends, quarantine. */
#include "spool_internal.h"

#include "cleanup.h"
#include "crc32c.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static uint32_t le32(const uint8_t *p) {
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p) {
        return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void put32(uint8_t *p, uint32_t v) {
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v) {
        put32(p, (uint32_t)v);
        put32(p + 4, (uint32_t)(v >> 32));
}

void spool__header(uint8_t hdr[SPOOL_HDR_BYTES], uint64_t id, const void *payload, uint32_t len) {
        put32(hdr, SPOOL__MAGIC);
        put32(hdr + 4, len);
        put64(hdr + 8, id);
        put32(hdr + 16, plat_crc32c(plat_crc32c(0, hdr + 4, 12), payload, len));
}

void spool__seg_name(char *buf, size_t size, uint64_t id) {
        snprintf(buf, size, "seg-%020" PRIu64 ".log", id);
}

void spool__say(char *msg, size_t len, const char *fmt, ...) {
        size_t used;
        va_list ap;

        if (!msg || len == 0)
                return;
        used = strnlen(msg, len);
        if (used + 3 >= len)
                return;
        if (used > 0) {
                memcpy(msg + used, "; ", 3);
                used += 2;
        }
        va_start(ap, fmt);
        vsnprintf(msg + used, len - used, fmt, ap);
        va_end(ap);
}

/* ---- scanner ---- */

int spool__scanner_init(struct spool__scanner *sc, size_t cap) {
        *sc = (struct spool__scanner){ .fd = -1, .cap = cap };
        sc->buf = malloc(cap);
        return sc->buf ? 0 : -ENOMEM;
}

void spool__scanner_reset(struct spool__scanner *sc, int fd) {
        sc->fd = fd;
        sc->base = 0;
        sc->len = 0;
}

void spool__scanner_done(struct spool__scanner *sc) {
        free(sc->buf);
        sc->buf = NULL;
}

/* Points *ret at bytes [off, off + n) (n <= cap), reading ahead up to cap bytes but never at or
 * past end. -ENODATA when they run past end, or past the file's real end (it shrank). */
static int scan_get(struct spool__scanner *sc, uint64_t off, size_t n, uint64_t end, const uint8_t **ret) {
        size_t want, got = 0;

        if (off > end || end - off < n)
                return -ENODATA;
        if (off >= sc->base && off + n <= sc->base + sc->len) {
                *ret = sc->buf + (off - sc->base);
                return 0;
        }
        want = end - off < sc->cap ? (size_t)(end - off) : sc->cap;
        /* Bytes already here from off on are kept: a resync that steps one byte at a time over
         * candidates reaching past the buffer reads each byte of the file once, not once per step. */
        if (off >= sc->base && off < sc->base + sc->len) {
                got = (size_t)(sc->base + sc->len - off);
                memmove(sc->buf, sc->buf + (off - sc->base), got);
        }
        sc->len = 0;
        while (got < want) {
                ssize_t k = pread(sc->fd, sc->buf + got, want - got, (off_t)(off + got));

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                got += (size_t)k;
        }
        sc->base = off;
        sc->len = got;
        if (got < n)
                return -ENODATA;
        *ret = sc->buf;
        return 0;
}

/* ---- zero-filled ends ---- */

/* Not const on purpose: in .bss, the kernel maps the one shared zero page when pwritev reads it, so
 * it costs no memory; in .rodata it would be 16 pages of the binary read in and kept by every
 * agent (USS). Nothing writes it. */
static uint8_t zeros[64 * 1024];

int spool__pwritev_all(int fd, struct iovec *v, int cnt, uint64_t off, uint64_t *done) {
        uint64_t at = off;

        *done = 0;
        while (cnt > 0) {
                ssize_t n = pwritev(fd, v, cnt, (off_t)at);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                at += (uint64_t)n;
                *done = at - off;
                while (cnt > 0 && (size_t)n >= v->iov_len) {
                        n -= (ssize_t)v->iov_len;
                        v++;
                        cnt--;
                }
                if (cnt > 0) {
                        v->iov_base = (uint8_t *)v->iov_base + n;
                        v->iov_len -= (size_t)n;
                }
        }
        return 0;
}

int spool__zero(int fd, uint64_t start, uint64_t end) {
        for (uint64_t done; start < end; start += done) {
                struct iovec v = { (void *)zeros,
                                   end - start < sizeof(zeros) ? (size_t)(end - start) : sizeof(zeros) };
                int r = spool__pwritev_all(fd, &v, 1, start, &done);

                if (r < 0)
                        return r;
        }
        return 0;
}

int spool__data_end(struct spool__scanner *sc, uint64_t size, uint64_t *ret) {
        uint64_t end = size;
        int r = 0;

        /* Backwards from the end, a buffer at a time: an older segment's zeros are less than a
         * record long, only the newest one's can be most of the file. */
        spool__scanner_reset(sc, sc->fd);
        while (r == 0 && end > 0) {
                size_t want = end < sc->cap ? (size_t)end : sc->cap, got = 0, i;
                uint64_t at = end - want;

                while (r == 0 && got < want) {
                        ssize_t k = pread(sc->fd, sc->buf + got, want - got, (off_t)(at + got));

                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k <= 0)
                                r = k < 0 ? -errno : -ENODATA; /* the file shrank under us */
                        else
                                got += (size_t)k;
                }
                if (r < 0)
                        break;
                /* All zero (memcmp against itself shifted by one: the library's fast compare). */
                if (sc->buf[0] == 0 && memcmp(sc->buf, sc->buf + 1, want - 1) == 0) {
                        end = at;
                        continue;
                }
                for (i = want; sc->buf[i - 1] == 0; i--)
                        ;
                end = at + i;
                break;
        }
        spool__scanner_reset(sc, sc->fd);
        if (r < 0)
                return r;
        *ret = end;
        return 0;
}

int spool__rec_at(struct spool__scanner *sc, uint64_t off, uint64_t end, struct spool__rec *ret,
                  const uint8_t **ret_bytes) {
        const uint8_t *p;
        uint32_t len;
        uint64_t id;
        int r;

        r = scan_get(sc, off, SPOOL_HDR_BYTES, end, &p);
        if (r < 0)
                return r;
        len = le32(p + 4);
        id = le64(p + 8);
        if (le32(p) != SPOOL__MAGIC || len == 0 || len > SPOOL_RECORD_MAX || id == 0 ||
            id >= SPOOL__ID_LIMIT)
                return -EBADMSG;
        r = scan_get(sc, off, SPOOL_HDR_BYTES + (size_t)len, end, &p);
        if (r < 0)
                return r;
        if (plat_crc32c(plat_crc32c(0, p + 4, 12), p + SPOOL_HDR_BYTES, len) != le32(p + 16))
                return -EBADMSG;
        *ret = (struct spool__rec){ .id = id, .len = len };
        if (ret_bytes)
                *ret_bytes = p;
        return 0;
}

int spool__next(struct spool__scanner *sc, uint64_t pos, uint64_t end, uint64_t prev_id,
                struct spool__rec *ret, uint64_t *ret_bad_end, bool *ret_stale) {
        struct spool__rec rec;
        bool stale;
        uint64_t p;
        int r;

        if (pos >= end)
                return SPOOL__NEXT_END;
        r = spool__rec_at(sc, pos, end, &rec, NULL);
        if (r == 0 && rec.id > prev_id) {
                *ret = rec;
                return SPOOL__NEXT_REC;
        }
        if (r < 0 && r != -EBADMSG && r != -ENODATA)
                return r;
        /* Resync: the next offset where a valid record with a fresh id starts. Valid records with
         * stale ids are stepped over whole, so a payload is never searched for a record inside. */
        stale = r == 0;
        p = r == 0 ? pos + SPOOL_HDR_BYTES + rec.len : pos + 1;
        while (p < end && end - p >= SPOOL_HDR_BYTES) {
                r = spool__rec_at(sc, p, end, &rec, NULL);
                if (r == 0 && rec.id > prev_id)
                        break;
                if (r == 0) {
                        stale = true;
                        p += SPOOL_HDR_BYTES + rec.len;
                } else if (r == -EBADMSG || r == -ENODATA) {
                        p++;
                } else {
                        return r;
                }
        }
        *ret_bad_end = p < end && end - p >= SPOOL_HDR_BYTES ? p : end;
        if (ret_stale)
                *ret_stale = stale;
        return SPOOL__NEXT_BAD;
}

/* ---- quarantine ---- */

static int copy_range(int in, uint64_t start, uint64_t end, int out) {
        _cleanup_free_ uint8_t *buf = malloc(SPOOL__READ_BUF);

        if (!buf)
                return -ENOMEM;
        while (start < end) {
                size_t want = end - start < SPOOL__READ_BUF ? (size_t)(end - start) : SPOOL__READ_BUF;
                ssize_t k = pread(in, buf, want, (off_t)start);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        return -ENODATA; /* the segment shrank under us */
                for (ssize_t done = 0; done < k;) {
                        ssize_t w = write(out, buf + done, (size_t)(k - done));

                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w < 0)
                                return -errno;
                        done += w;
                }
                start += (uint64_t)k;
        }
        return 0;
}

/* 1 when qdir/name holds exactly bytes [start, end) of fd, 0 when not, or -errno. */
static int same_bytes(int qdir, const char *name, int fd, uint64_t start, uint64_t end) {
        _cleanup_close_ int q = openat(qdir, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        _cleanup_free_ uint8_t *a = malloc(SPOOL__READ_BUF), *b = malloc(SPOOL__READ_BUF);
        struct stat st;

        if (q < 0)
                return -errno;
        if (!a || !b)
                return -ENOMEM;
        if (fstat(q, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != end - start)
                return 0;
        for (uint64_t off = 0; start + off < end;) {
                size_t want =
                        end - start - off < SPOOL__READ_BUF ? (size_t)(end - start - off) : SPOOL__READ_BUF;
                ssize_t ka = pread(fd, a, want, (off_t)(start + off)), kb = pread(q, b, want, (off_t)off);

                if (ka < 0 || kb < 0)
                        return -errno;
                if (ka != (ssize_t)want || kb != (ssize_t)want || memcmp(a, b, want) != 0)
                        return 0;
                off += want;
        }
        return 1;
}

static int add_bad(struct spool__seg *g, uint64_t start, uint64_t end) {
        struct spool__range *nb = realloc(g->bad, (g->n_bad + 1) * sizeof(*nb));
        size_t i;

        if (!nb)
                return -ENOMEM;
        g->bad = nb;
        /* Kept in order of start: recovery finds them in order, the reader may find one before a
         * region recovery had found further on. */
        for (i = g->n_bad; i > 0 && nb[i - 1].start > start; i--)
                nb[i] = nb[i - 1];
        nb[i] = (struct spool__range){ start, end };
        g->n_bad++;
        return 0;
}

#define QUARANTINE_SIBLINGS 100

int spool__quarantine(struct spool *s, struct spool__seg *g, int fd, uint64_t start, uint64_t end,
                      char ret_name[SPOOL_NAME_MAX]) {
        _cleanup_close_ int qdir = -1, out = -1;
        char name[SPOOL_NAME_MAX];
        bool made_dir;
        int r;

        made_dir = mkdirat(s->dir_fd, SPOOL__QDIR, 0700) == 0;
        if (!made_dir && errno != EEXIST)
                return -errno;
        qdir = openat(s->dir_fd, SPOOL__QDIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (qdir < 0)
                return -errno;
        for (unsigned n = 1;; n++) {
                if (n == 1)
                        snprintf(name, sizeof(name), "seg-%020" PRIu64 "-%" PRIu64 ".bad", g->name_id,
                                 start);
                else
                        snprintf(name, sizeof(name), "seg-%020" PRIu64 "-%" PRIu64 ".%u.bad", g->name_id,
                                 start, n);
                out = openat(qdir, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (out >= 0)
                        break;
                if (errno != EEXIST)
                        return -errno;
                r = same_bytes(qdir, name, fd, start, end);
                if (r < 0)
                        return r;
                if (r > 0)
                        goto known; /* quarantined by an earlier open: the region is still there */
                if (n == QUARANTINE_SIBLINGS)
                        return -EEXIST;
        }
        r = copy_range(fd, start, end, out);
        if (r >= 0 && fsync(out) < 0)
                r = -errno;
        if (r >= 0 && fsync(qdir) < 0)
                r = -errno;
        if (r >= 0 && made_dir && fsync(s->dir_fd) < 0)
                r = -errno;
        if (r < 0) {
                /* A half copy is no evidence: leave nothing that looks like one. */
                (void)unlinkat(qdir, name, 0);
                return r;
        }
known:
        r = add_bad(g, start, end);
        if (r < 0)
                return r;
        s->quarantined++;
        memcpy(ret_name, name, sizeof(name));
        return 0;
}

size_t spool__cursor_text(char *buf, size_t size, uint64_t acked, uint64_t high) {
        int n = snprintf(buf, size, "v1 acked=%" PRIu64 " high=%" PRIu64, acked, high);
        uint32_t crc = plat_crc32c(0, buf, (size_t)n);

        n += snprintf(buf + n, size - (size_t)n, " crc=%08" PRIx32 "\n", crc);
        return (size_t)n;
}
