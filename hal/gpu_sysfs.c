/* gpu_sysfs.c: sysfs attribute reads shared by the amdgpu and Mali/devfreq GPU backends, and their parsers.
 */
#include "gpu_sysfs.h"

#include "cleanup.h"
#include "fileio.h"
#include "strutil.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void hal_gpu_sysfs_note(struct hal_gpu_sample *s, int error, const char *fmt, ...) {
        va_list ap;

        if (s->error < 0)
                return;
        s->error = error;
        va_start(ap, fmt);
        vsnprintf(s->error_msg, sizeof(s->error_msg), fmt, ap);
        va_end(ap);
}

int hal_gpu_sysfs_read(int dir_fd, const char *label, const char *file, struct hal_gpu_sample *s,
                       char **ret_buf, size_t *ret_len) {
        int r;

        r = plat_read_file_at(dir_fd, file, HAL_GPU_SYSFS_MAX, ret_buf, ret_len);
        if (r >= 0)
                return 1;
        /* Drivers hide what a GPU lacks, or answer ENODATA/EOPNOTSUPP for it: not offered. */
        if (r == -ENOENT || r == -ENODATA || r == -EOPNOTSUPP)
                return 0;
        if (r == -EFBIG)
                hal_gpu_sysfs_note(s, r, "%s/%s: larger than %d bytes", label, file, HAL_GPU_SYSFS_MAX);
        else
                hal_gpu_sysfs_note(s, r, "%s/%s: %s", label, file, strerror(-r));
        return 0;
}

/* Drops the one newline sysfs ends a value with. */
static size_t chomp(const char *buf, size_t len) {
        return len > 0 && buf[len - 1] == '\n' ? len - 1 : len;
}

int hal_gpu_sysfs_u64(int dir_fd, const char *label, const char *file, struct hal_gpu_sample *s,
                      uint64_t *ret) {
        _cleanup_free_ char *buf = NULL;
        char q[PLAT_QUOTE_MAX];
        size_t len;
        uint64_t v;
        int r;

        if (hal_gpu_sysfs_read(dir_fd, label, file, s, &buf, &len) <= 0)
                return 0;
        len = chomp(buf, len);
        r = plat_parse_u64(buf, len, &v);
        if (r < 0) {
                hal_gpu_sysfs_note(s, -EPROTO, "%s/%s: '%s' %s", label, file, plat_quote(buf, len, q),
                                   r == -ERANGE ? "does not fit in 64 bits" : "is not a decimal number");
                return 0;
        }
        *ret = v;
        return 1;
}

int hal_gpu_sysfs_s64(int dir_fd, const char *label, const char *file, struct hal_gpu_sample *s,
                      int64_t *ret) {
        _cleanup_free_ char *buf = NULL;
        char q[PLAT_QUOTE_MAX];
        bool neg;
        size_t len;
        uint64_t v;
        int r;

        if (hal_gpu_sysfs_read(dir_fd, label, file, s, &buf, &len) <= 0)
                return 0;
        len = chomp(buf, len);
        neg = len > 0 && buf[0] == '-';
        r = plat_parse_u64(buf + neg, len - neg, &v);
        if (r == 0 && v > (uint64_t)INT64_MAX)
                r = -ERANGE;
        if (r < 0) {
                hal_gpu_sysfs_note(s, -EPROTO, "%s/%s: '%s' %s", label, file, plat_quote(buf, len, q),
                                   r == -ERANGE ? "does not fit in 64 bits" : "is not a decimal number");
                return 0;
        }
        *ret = neg ? -(int64_t)v : (int64_t)v;
        return 1;
}

int hal_gpu_sysfs_pct(int dir_fd, const char *label, const char *file, struct hal_gpu_sample *s,
                      double *ret) {
        uint64_t v;

        if (!hal_gpu_sysfs_u64(dir_fd, label, file, s, &v))
                return 0;
        if (v > 100) {
                hal_gpu_sysfs_note(s, -EPROTO, "%s/%s: %" PRIu64 " is not a percentage (0..100)", label,
                                   file, v);
                return 0;
        }
        *ret = (double)v;
        return 1;
}

int hal_gpu_sysfs_pci_id(int dir_fd, const char *label, const char *file, uint32_t *ret, char *err,
                         size_t errlen) {
        _cleanup_free_ char *buf = NULL;
        char q[PLAT_QUOTE_MAX];
        size_t len;
        int r;

        r = plat_read_file_at(dir_fd, file, HAL_GPU_SYSFS_MAX, &buf, &len);
        if (r == -ENOENT)
                return r;
        if (r < 0) {
                plat_errf(err, errlen, "%s/%s: %s", label, file,
                          r == -EFBIG ? "larger than a sysfs page" : strerror(-r));
                return r;
        }
        len = chomp(buf, len);
        if (plat_parse_hex_u32(buf, len, ret) == 0)
                return 0;
        plat_errf(err, errlen, "%s/%s: '%s' is not a hex PCI id like 0x1002", label, file,
                  plat_quote(buf, len, q));
        return -EPROTO;
}

void hal_gpu_sysfs_copy_text(const char *buf, size_t len, char *dst, size_t dstlen) {
        const char *nl = memchr(buf, '\n', len);
        size_t n = nl ? (size_t)(nl - buf) : len;

        if (dstlen == 0)
                return;
        while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t' || buf[n - 1] == '\0'))
                n--;
        if (n > dstlen - 1)
                n = dstlen - 1;
        for (size_t i = 0; i < n; i++)
                dst[i] = buf[i] >= 0x20 && buf[i] < 0x7f ? buf[i] : '?';
        dst[n] = '\0';
}

/* "<N>Mhz" (amdgpu prints "Mhz"; accept any case of the unit). */
static int parse_mhz(const char *tok, size_t len, unsigned *ret) {
        uint64_t v;

        if (len < 4 || strncasecmp(tok + len - 3, "mhz", 3) != 0)
                return -EPROTO;
        if (plat_parse_u64(tok, len - 3, &v) < 0 || v > UINT_MAX)
                return -EPROTO;
        *ret = (unsigned)v;
        return 0;
}

/* "<digits>:" or the deep-sleep level "S:". */
static bool is_dpm_level(const char *tok, size_t len) {
        if (len < 2 || tok[len - 1] != ':')
                return false;
        if (len == 2 && tok[0] == 'S')
                return true;
        for (size_t i = 0; i + 1 < len; i++)
                if (tok[i] < '0' || tok[i] > '9')
                        return false;
        return true;
}

int hal_gpu_parse_dpm_sclk(const char *buf, size_t len, unsigned *ret_cur_mhz, unsigned *ret_max_mhz,
                           char *err, size_t errlen) {
        const char *p = buf, *end = buf + len;
        unsigned lineno = 0, cur = 0, max = 0, levels = 0;
        bool has_cur = false;

        while (p < end) {
                const char *start = p, *line = p, *nl = memchr(p, '\n', (size_t)(end - p));
                const char *eol = nl ? nl : end;
                const char *lvl, *mhz, *mark, *extra;
                size_t lvllen, mhzlen, marklen, extralen;
                char q[PLAT_QUOTE_MAX];
                unsigned v;

                p = nl ? nl + 1 : end;
                lineno++; /* bounded by the 4 KiB the reader allows, and by len for the fuzzer */
                if (!plat_next_token(&line, eol, &lvl, &lvllen))
                        continue; /* blank line */
                if (!is_dpm_level(lvl, lvllen) || !plat_next_token(&line, eol, &mhz, &mhzlen) ||
                    parse_mhz(mhz, mhzlen, &v) < 0)
                        goto bad;
                if (plat_next_token(&line, eol, &mark, &marklen)) {
                        if (marklen != 1 || mark[0] != '*' || plat_next_token(&line, eol, &extra, &extralen))
                                goto bad;
                        if (!has_cur) {
                                cur = v;
                                has_cur = true;
                        }
                }
                if (v > max)
                        max = v;
                levels++;
                continue;
        bad:
                plat_errf(err, errlen, "line %u: '%s' is not a clock level like '1: 2100Mhz *'", lineno,
                          plat_quote(start, (size_t)(eol - start), q));
                return -EPROTO;
        }
        if (levels == 0) {
                plat_errf(err, errlen, "no clock levels");
                return -EPROTO;
        }
        if (has_cur)
                *ret_cur_mhz = cur;
        *ret_max_mhz = max;
        return HAL_GPU_CLOCK_MAX | (has_cur ? HAL_GPU_CLOCK : 0);
}

int hal_gpu_parse_devfreq_load(const char *buf, size_t len, unsigned *ret_pct, uint64_t *ret_hz, char *err,
                               size_t errlen) {
        const char *at, *end = buf + chomp(buf, len);
        char q[PLAT_QUOTE_MAX];
        uint64_t pct, hz;

        at = memchr(buf, '@', (size_t)(end - buf));
        if (!at || end - at < 3 || memcmp(end - 2, "Hz", 2) != 0 ||
            plat_parse_u64(buf, (size_t)(at - buf), &pct) < 0 ||
            plat_parse_u64(at + 1, (size_t)(end - 2 - at - 1), &hz) < 0) {
                plat_errf(err, errlen, "'%s' is not a load like '45@800000000Hz'",
                          plat_quote(buf, (size_t)(end - buf), q));
                return -EPROTO;
        }
        if (pct > 100) {
                plat_errf(err, errlen, "load %" PRIu64 "%% is over 100%%", pct);
                return -EPROTO;
        }
        *ret_pct = (unsigned)pct;
        *ret_hz = hz;
        return 0;
}
