/* mem.c: host memory from /proc/meminfo (MemTotal, MemAvailable). */
#include "mem.h"

#include "fileio.h"
#include "strutil.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MEMINFO_PATH "/proc/meminfo"
#define MEMINFO_MAX_BYTES (64 * 1024)

/* The lines we take; every other key is ignored (the list grows with each kernel). */
enum { KEY_TOTAL, KEY_AVAILABLE, KEY_COUNT };

static const char *const key_names[KEY_COUNT] = {
        [KEY_TOTAL] = "MemTotal",
        [KEY_AVAILABLE] = "MemAvailable",
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
        uint64_t val[KEY_COUNT];
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

        for (int k = 0; k < KEY_COUNT; k++)
                if (seen[k] == 0) {
                        /* MemAvailable appeared in Linux 3.14; estimating it from MemFree and the
                         * caches would report a number the kernel never gave. */
                        plat_errf(err, errlen, MEMINFO_PATH ": %s missing", key_names[k]);
                        return -EPROTO;
                }

        *ret = (struct hal_mem_sample){
                .total_bytes = val[KEY_TOTAL],
                .available_bytes = val[KEY_AVAILABLE],
        };
        return 0;
}

struct hal_mem_reader {
        struct plat_file file;
};

static int read_through(struct plat_file *f, struct hal_mem_sample *ret, char *err, size_t errlen) {
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
        return hal_mem_parse(buf, len, ret, err, errlen);
}

int hal_mem_read(int root_fd, struct hal_mem_sample *ret, char *err, size_t errlen) {
        struct plat_file f;
        int r;

        plat_file_init(&f, root_fd, MEMINFO_PATH, MEMINFO_MAX_BYTES, true);
        r = read_through(&f, ret, err, errlen);
        plat_file_done(&f);
        return r;
}

int hal_mem_reader_new(int root_fd, struct hal_mem_reader **ret) {
        struct hal_mem_reader *r = malloc(sizeof(*r));

        if (!r)
                return -ENOMEM;
        /* /proc/meminfo is printed in one piece (single_open), so one pread() is the whole file. */
        plat_file_init(&r->file, root_fd, MEMINFO_PATH, MEMINFO_MAX_BYTES, true);
        *ret = r;
        return 0;
}

int hal_mem_reader_read(struct hal_mem_reader *r, struct hal_mem_sample *ret, char *err, size_t errlen) {
        return read_through(&r->file, ret, err, errlen);
}

void hal_mem_reader_free(struct hal_mem_reader *r) {
        if (!r)
                return;
        plat_file_done(&r->file);
        free(r);
}
