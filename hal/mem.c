/* mem.c: host memory from /proc/meminfo (MemTotal, MemAvailable, or its estimate before Linux 3.14). */
#include "mem.h"

#include "fileio.h"
#include "strutil.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MEMINFO_PATH "/proc/meminfo"
#define MEMINFO_MAX_BYTES (64 * 1024)
#define ZONEINFO_PATH "/proc/zoneinfo"
#define ZONEINFO_MAX_BYTES (1024 * 1024) /* a zone is ~1.5 kB per CPU (pagesets): room for big hosts */

/* The lines we take; every other key is ignored (the list grows with each kernel). */
enum { KEY_TOTAL, KEY_AVAILABLE, KEY_FREE, KEY_ACTIVE_FILE, KEY_INACTIVE_FILE, KEY_SRECLAIMABLE, KEY_COUNT };

static const char *const key_names[KEY_COUNT] = {
        [KEY_TOTAL] = "MemTotal",
        [KEY_AVAILABLE] = "MemAvailable",
        [KEY_FREE] = "MemFree",
        [KEY_ACTIVE_FILE] = "Active(file)",
        [KEY_INACTIVE_FILE] = "Inactive(file)",
        [KEY_SRECLAIMABLE] = "SReclaimable",
};

/* Parses "  <N> kB" after a key's colon into bytes. */
static int parse_kb(const char *p, const char *end, unsigned lineno, const char *key, uint64_t *ret,
                    char *err, size_t errlen) {
        const char *num, *unit, *extra;
        size_t numlen, unitlen, extralen;
        char q[PLAT_QUOTE_MAX];
        uint64_t kb, bytes;
        int r;

        if (!plat_next_token(&p, end, &num, &numlen)) {
                plat_errf(err, errlen, MEMINFO_PATH ":%u: %s has no value", lineno, key);
                return -EPROTO;
        }
        r = plat_parse_u64(num, numlen, &kb);
        if (r < 0) {
                plat_errf(err, errlen, MEMINFO_PATH ":%u: %s value '%s' %s", lineno, key,
                          plat_quote(num, numlen, q),
                          r == -ERANGE ? "does not fit in 64 bits" : "is not a decimal number");
                return r;
        }
        if (!plat_next_token(&p, end, &unit, &unitlen)) {
                plat_errf(err, errlen, MEMINFO_PATH ":%u: %s has no unit, expected kB", lineno, key);
                return -EPROTO;
        }
        if (unitlen != 2 || memcmp(unit, "kB", 2) != 0) {
                plat_errf(err, errlen, MEMINFO_PATH ":%u: %s has unit '%s', expected kB", lineno, key,
                          plat_quote(unit, unitlen, q));
                return -EPROTO;
        }
        if (plat_next_token(&p, end, &extra, &extralen)) {
                plat_errf(err, errlen, MEMINFO_PATH ":%u: %s has trailing '%s' after kB", lineno, key,
                          plat_quote(extra, extralen, q));
                return -EPROTO;
        }
        if (__builtin_mul_overflow(kb, UINT64_C(1024), &bytes)) {
                plat_errf(err, errlen,
                          MEMINFO_PATH ":%u: %s of %" PRIu64 " kB does not fit in 64 bits as bytes", lineno,
                          key, kb);
                return -ERANGE;
        }
        *ret = bytes;
        return 0;
}

int hal_mem_parse(const char *buf, size_t len, struct hal_mem_sample *ret, char *err, size_t errlen) {
        uint64_t val[KEY_COUNT], sum;
        unsigned seen[KEY_COUNT] = { 0 }; /* line each key was found on, 0 = not yet */
        unsigned lineno = 0;
        const char *p = buf, *end;

        if (len == 0) {
                plat_errf(err, errlen, MEMINFO_PATH ": file is empty");
                return -EPROTO;
        }
        end = buf + len;

        while (p < end) {
                const char *line = p, *nl, *colon;
                size_t keylen;
                int k, r;

                if (lineno == UINT_MAX) {
                        plat_errf(err, errlen, MEMINFO_PATH ": more than %u lines", UINT_MAX);
                        return -EPROTO;
                }
                lineno++;
                /* The kernel ends every line with '\n'; a last line without one was cut off. */
                nl = memchr(line, '\n', (size_t)(end - line));
                if (!nl) {
                        plat_errf(err, errlen,
                                  MEMINFO_PATH ":%u: line is cut short (no newline at end of file)", lineno);
                        return -EPROTO;
                }
                p = nl + 1;

                colon = memchr(line, ':', (size_t)(nl - line));
                if (!colon)
                        continue;
                keylen = (size_t)(colon - line);
                for (k = 0; k < KEY_COUNT; k++)
                        if (keylen == strlen(key_names[k]) && memcmp(line, key_names[k], keylen) == 0)
                                break;
                if (k == KEY_COUNT)
                        continue;

                if (seen[k] > 0) {
                        plat_errf(err, errlen, MEMINFO_PATH ":%u: duplicate %s (first on line %u)", lineno,
                                  key_names[k], seen[k]);
                        return -EPROTO;
                }
                r = parse_kb(colon + 1, nl, lineno, key_names[k], &val[k], err, errlen);
                if (r < 0)
                        return r;
                seen[k] = lineno;
        }

        if (seen[KEY_TOTAL] == 0) {
                plat_errf(err, errlen, MEMINFO_PATH ": MemTotal missing");
                return -EPROTO;
        }
        if (seen[KEY_AVAILABLE]) {
                *ret = (struct hal_mem_sample){ .total_bytes = val[KEY_TOTAL],
                                                .available_bytes = val[KEY_AVAILABLE] };
                return 0;
        }
        /* MemAvailable appeared in Linux 3.14: before, the estimate its commit describes (free memory,
         * the file-backed LRU pages and reclaimable slab; the watermarks come off in read_through()). */
        for (int k = KEY_FREE; k <= KEY_SRECLAIMABLE; k++)
                if (seen[k] == 0) {
                        plat_errf(err, errlen, MEMINFO_PATH ": MemAvailable missing, and %s to estimate it",
                                  key_names[k]);
                        return -EPROTO;
                }
        if (__builtin_add_overflow(val[KEY_FREE], val[KEY_ACTIVE_FILE], &sum) ||
            __builtin_add_overflow(sum, val[KEY_INACTIVE_FILE], &sum) ||
            __builtin_add_overflow(sum, val[KEY_SRECLAIMABLE], &sum)) {
                plat_errf(err, errlen,
                          MEMINFO_PATH ": the estimate of MemAvailable does not fit in 64 bits");
                return -ERANGE;
        }
        *ret = (struct hal_mem_sample){
                .total_bytes = val[KEY_TOTAL],
                .available_bytes = sum,
                .available_estimated = true,
        };
        return 0;
}

int hal_mem_zoneinfo_low_pages(const char *buf, size_t len, uint64_t *ret_pages, char *err, size_t errlen) {
        const char *p = buf, *end = buf + len;
        uint64_t sum = 0;
        unsigned lineno = 0;

        while (p < end) {
                const char *tok, *num, *extra, *nl = memchr(p, '\n', (size_t)(end - p));
                const char *eol = nl ? nl : end;
                size_t toklen, numlen, extralen;
                char q[PLAT_QUOTE_MAX];
                uint64_t pages;

                lineno++;
                if (plat_next_token(&p, eol, &tok, &toklen) && toklen == 3 && memcmp(tok, "low", 3) == 0) {
                        if (!plat_next_token(&p, eol, &num, &numlen) ||
                            plat_parse_u64(num, numlen, &pages) < 0 ||
                            plat_next_token(&p, eol, &extra, &extralen)) {
                                plat_errf(err, errlen,
                                          ZONEINFO_PATH ":%u: 'low' is not followed by one number: '%s'",
                                          lineno, plat_quote(tok, (size_t)(eol - tok), q));
                                return -EPROTO;
                        }
                        if (__builtin_add_overflow(sum, pages, &sum)) {
                                plat_errf(err, errlen, ZONEINFO_PATH ":%u: low watermarks overflow 64 bits",
                                          lineno);
                                return -ERANGE;
                        }
                }
                p = nl ? nl + 1 : end;
        }
        *ret_pages = sum;
        return 0;
}

/* Takes the zones' low watermarks off an estimate; a zoneinfo that cannot be read leaves it as is
 * (the kernel's own estimate used them; without them it is a little high). */
static void subtract_watermarks(struct plat_file *zf, struct hal_mem_sample *s) {
        const char *buf;
        uint64_t pages, bytes;
        size_t len;
        char err[8];
        long page = sysconf(_SC_PAGESIZE);

        if (plat_file_read(zf, &buf, &len) < 0 ||
            hal_mem_zoneinfo_low_pages(buf, len, &pages, err, sizeof(err)) < 0)
                return;
        if (__builtin_mul_overflow(pages, (uint64_t)(page > 0 ? page : 4096), &bytes) ||
            bytes > s->available_bytes)
                s->available_bytes = 0;
        else
                s->available_bytes -= bytes;
}

struct hal_mem_reader {
        struct plat_file file, zoneinfo;
};

/* zf: /proc/zoneinfo, read only when MemAvailable is missing (pre-3.14 kernels). */
static int read_through(struct plat_file *f, struct plat_file *zf, struct hal_mem_sample *ret, char *err,
                        size_t errlen) {
        struct hal_mem_sample s;
        const char *buf;
        size_t len;
        int r;

        r = plat_file_read(f, &buf, &len);
        if (r == -EFBIG) {
                plat_errf(err, errlen, MEMINFO_PATH ": larger than %d bytes", MEMINFO_MAX_BYTES);
                return r;
        }
        if (r < 0) {
                plat_errf(err, errlen, MEMINFO_PATH ": %s", strerror(-r));
                return r;
        }
        r = hal_mem_parse(buf, len, &s, err, errlen);
        if (r < 0)
                return r;
        if (s.available_estimated)
                subtract_watermarks(zf, &s);
        *ret = s;
        return 0;
}

int hal_mem_reader_new(int root_fd, struct hal_mem_reader **ret) {
        struct hal_mem_reader *r = malloc(sizeof(*r));

        if (!r)
                return -ENOMEM;
        /* /proc/meminfo is printed in one piece (single_open), so one pread() is the whole file;
         * /proc/zoneinfo is a seq_file, read to EOF. */
        plat_file_init(&r->file, root_fd, MEMINFO_PATH, MEMINFO_MAX_BYTES, true);
        plat_file_init(&r->zoneinfo, root_fd, ZONEINFO_PATH, ZONEINFO_MAX_BYTES, false);
        *ret = r;
        return 0;
}

int hal_mem_reader_read(struct hal_mem_reader *r, struct hal_mem_sample *ret, char *err, size_t errlen) {
        return read_through(&r->file, &r->zoneinfo, ret, err, errlen);
}

void hal_mem_reader_free(struct hal_mem_reader *r) {
        if (!r)
                return;
        plat_file_done(&r->file);
        plat_file_done(&r->zoneinfo);
        free(r);
}
