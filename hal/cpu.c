/* cpu.c: host CPU counters from /proc/stat (aggregate jiffies, online core count). */
#include "cpu.h"

#include "cleanup.h"
#include "fileio.h"
#include "strutil.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define STAT_PATH "/proc/stat"
/* The intr line alone runs to tens of KiB on hosts with 256+ cores and many IRQs. */
#define STAT_MAX_BYTES (1024 * 1024)

/* Kernels have printed user nice system idle since 2.4; iowait, irq and softirq came with 2.6,
 * steal with 2.6.11, guest with 2.6.24, guest_nice with 2.6.33. A kernel that lacks a column
 * did not account that time apart (it is inside system or idle), so the sum of the columns
 * present is still the whole of CPU time: missing trailing columns are absent, not zero
 * readings, and the four classic ones are the least a cpu line may carry. */
#define STAT_MIN_FIELDS 4
/* guest and guest_nice are already counted in user and nice: sum the first eight only. */
#define STAT_SUM_FIELDS 8
#define STAT_IDLE 3
#define STAT_IOWAIT 4
/* "cpu" and up to ten digits: no kernel numbers its CPUs past UINT_MAX. */
#define STAT_LABEL_MAX 13

static const char *const field_names[] = {
        "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice",
};

/* Parses the counters after a cpu line's label into ret_v[0..7]; fields past the eighth are
 * checked and dropped, missing trailing ones (old kernels, see above) come back as 0. */
static int parse_cpu_fields(const char *p, const char *end, unsigned lineno, const char *label,
                            uint64_t ret_v[static STAT_SUM_FIELDS], char *err, size_t errlen) {
        uint64_t v[STAT_SUM_FIELDS] = { 0 };
        const char *tok;
        size_t toklen, n = 0;

        while (plat_next_token(&p, end, &tok, &toklen)) {
                char q[PLAT_QUOTE_MAX];
                uint64_t x;
                int r;

                r = plat_parse_u64(tok, toklen, &x);
                if (r < 0) {
                        plat_errf(err, errlen, STAT_PATH ":%u: %s field %zu (%s) %s: '%s'", lineno, label,
                                  n + 1, n < ELEMENTSOF(field_names) ? field_names[n] : "unnamed",
                                  r == -ERANGE ? "does not fit in 64 bits" : "is not a decimal number",
                                  plat_quote(tok, toklen, q));
                        return r;
                }
                if (n < STAT_SUM_FIELDS)
                        v[n] = x;
                n++;
        }
        if (n < STAT_MIN_FIELDS) {
                plat_errf(err, errlen, STAT_PATH ":%u: %s line has %zu fields, expected at least %d", lineno,
                          label, n, STAT_MIN_FIELDS);
                return -EPROTO;
        }
        memcpy(ret_v, v, sizeof(v));
        return 0;
}

static bool is_digits(const char *s, size_t len) {
        if (len == 0)
                return false;
        for (size_t i = 0; i < len; i++)
                if (s[i] < '0' || s[i] > '9')
                        return false;
        return true;
}

int hal_cpu_parse(const char *buf, size_t len, struct hal_cpu_sample *ret, char *err, size_t errlen) {
        uint64_t agg[STAT_SUM_FIELDS], total = 0;
        unsigned lineno = 0, agg_line = 0, cores = 0;
        const char *p = buf, *end;

        if (len == 0) {
                plat_errf(err, errlen, STAT_PATH ": file is empty");
                return -EPROTO;
        }
        end = buf + len;

        while (p < end) {
                const char *line = p, *nl, *tok;
                char label[STAT_LABEL_MAX + 1], q[PLAT_QUOTE_MAX];
                uint64_t v[STAT_SUM_FIELDS];
                size_t toklen;
                int r;

                if (lineno == UINT_MAX) {
                        plat_errf(err, errlen, STAT_PATH ": more than %u lines", UINT_MAX);
                        return -EPROTO;
                }
                lineno++;
                /* The kernel ends every line with '\n'; a last line without one was cut off. */
                nl = memchr(line, '\n', (size_t)(end - line));
                if (!nl) {
                        plat_errf(err, errlen,
                                  STAT_PATH ":%u: line is cut short (no newline at end of file)", lineno);
                        return -EPROTO;
                }
                p = nl + 1;

                if (!plat_next_token(&line, nl, &tok, &toklen)) {
                        plat_errf(err, errlen, STAT_PATH ":%u: empty line", lineno);
                        return -EPROTO;
                }
                if (toklen < 3 || memcmp(tok, "cpu", 3) != 0)
                        continue; /* intr, ctxt, btime, ...: not ours */

                if (toklen > STAT_LABEL_MAX || (toklen > 3 && !is_digits(tok + 3, toklen - 3))) {
                        plat_errf(err, errlen,
                                  STAT_PATH ":%u: unexpected line label '%s', expected cpu or cpuN", lineno,
                                  plat_quote(tok, toklen, q));
                        return -EPROTO;
                }
                memcpy(label, tok, toklen);
                label[toklen] = '\0';

                if (toklen == 3) {
                        if (agg_line > 0) {
                                plat_errf(err, errlen,
                                          STAT_PATH ":%u: second aggregate cpu line (first on line %u)",
                                          lineno, agg_line);
                                return -EPROTO;
                        }
                        r = parse_cpu_fields(line, nl, lineno, label, agg, err, errlen);
                        if (r < 0)
                                return r;
                        agg_line = lineno;
                } else {
                        /* Per-CPU counters are checked so that garbage there is not mistaken for a core. */
                        r = parse_cpu_fields(line, nl, lineno, label, v, err, errlen);
                        if (r < 0)
                                return r;
                        cores++; /* cannot wrap: lineno would have first */
                }
        }

        if (agg_line == 0) {
                plat_errf(err, errlen, STAT_PATH ": aggregate cpu line missing");
                return -EPROTO;
        }
        if (cores == 0) {
                plat_errf(err, errlen, STAT_PATH ": no cpuN lines, cannot count cores");
                return -EPROTO;
        }
        for (size_t i = 0; i < STAT_SUM_FIELDS; i++)
                if (__builtin_add_overflow(total, agg[i], &total)) {
                        plat_errf(err, errlen, STAT_PATH ":%u: sum of cpu fields does not fit in 64 bits",
                                  agg_line);
                        return -ERANGE;
                }

        /* Both are terms of total, so this sum cannot overflow once total did not. */
        *ret = (struct hal_cpu_sample){
                .total_jiffies = total,
                .idle_jiffies = agg[STAT_IDLE] + agg[STAT_IOWAIT],
                .cores = cores,
        };
        return 0;
}

struct hal_cpu_reader {
        struct plat_file file;
};

static int read_through(struct plat_file *f, struct hal_cpu_sample *ret, char *err, size_t errlen) {
        const char *buf;
        size_t len;
        int r;

        r = plat_file_read(f, &buf, &len);
        if (r == -EFBIG) {
                plat_errf(err, errlen, STAT_PATH ": larger than %d bytes", STAT_MAX_BYTES);
                return r;
        }
        if (r < 0) {
                plat_errf(err, errlen, STAT_PATH ": %s", strerror(-r));
                return r;
        }
        return hal_cpu_parse(buf, len, ret, err, errlen);
}

int hal_cpu_reader_new(int root_fd, struct hal_cpu_reader **ret) {
        struct hal_cpu_reader *r = malloc(sizeof(*r));

        if (!r)
                return -ENOMEM;
        /* /proc/stat is printed in one piece (single_open_size), so one pread() is the whole file. */
        plat_file_init(&r->file, root_fd, STAT_PATH, STAT_MAX_BYTES, true);
        *ret = r;
        return 0;
}

int hal_cpu_reader_read(struct hal_cpu_reader *r, struct hal_cpu_sample *ret, char *err, size_t errlen) {
        return read_through(&r->file, ret, err, errlen);
}

void hal_cpu_reader_free(struct hal_cpu_reader *r) {
        if (!r)
                return;
        plat_file_done(&r->file);
        free(r);
}
