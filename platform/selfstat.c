/* selfstat.c: this process's own cost (CPU time, resident memory), so a fleet can watch the watcher. */
#include "selfstat.h"

#include "cleanup.h"
#include "fileio.h"
#include "strutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/resource.h>

/* The figure of a "Key:<blanks>N kB" line, in bytes. */
static int parse_kb_line(const char *p, const char *end, const char *key, uint64_t *ret, char *msg,
                         size_t msg_len) {
        const char *digits;
        char q[PLAT_QUOTE_MAX];
        uint64_t kb;
        int r;

        while (p < end && (*p == ' ' || *p == '\t'))
                p++;
        for (digits = p; p < end && *p >= '0' && *p <= '9'; p++)
                ;
        r = plat_parse_u64(digits, (size_t)(p - digits), &kb);
        if (r >= 0 && ((size_t)(end - p) != 3 || memcmp(p, " kB", 3) != 0))
                r = -EPROTO;
        if (r >= 0 && kb > UINT64_MAX / 1024)
                r = -ERANGE;
        if (r < 0) {
                plat_errf(msg, msg_len, "status line %s \"%s\" is %s", key,
                          plat_quote(digits, (size_t)(end - digits), q),
                          r == -ERANGE ? "past 64 bits in bytes" : "not \"N kB\"");
                return r;
        }
        *ret = kb * 1024;
        return 0;
}

int plat_parse_proc_status_mem(const char *buf, size_t len, uint64_t *ret_rss_bytes,
                               uint64_t *ret_peak_rss_bytes, char *msg, size_t msg_len) {
        static const char *const keys[] = { "VmRSS:", "VmHWM:" };
        uint64_t v[2];
        bool found[2] = { false, false };
        const char *p = buf, *end = buf + len;

        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p)), *eol = nl ? nl : end;

                /* Read on every tick: most of the ~55 lines are passed over on their first byte. */
                for (size_t i = 0; i < ELEMENTSOF(keys) && *p == 'V'; i++) {
                        size_t kl = strlen(keys[i]);
                        int r;

                        if ((size_t)(eol - p) < kl || memcmp(p, keys[i], kl) != 0)
                                continue;
                        r = parse_kb_line(p + kl, eol, keys[i], &v[i], msg, msg_len);
                        if (r < 0)
                                return r;
                        found[i] = true;
                }
                p = nl ? nl + 1 : end;
        }
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (!found[i]) {
                        plat_errf(msg, msg_len, "no %s line in the status file", keys[i]);
                        return -EPROTO;
                }
        *ret_rss_bytes = v[0];
        *ret_peak_rss_bytes = v[1];
        return 0;
}

void plat_self_init(struct plat_self *s) {
        plat_file_init(&s->status, AT_FDCWD, "/proc/self/status", PLAT_PROC_STATUS_MAX, true);
}

void plat_self_done(struct plat_self *s) {
        plat_file_done(&s->status);
}

int plat_self_read(struct plat_self *s, struct plat_self_usage *ret, char *msg, size_t msg_len) {
        struct plat_self_usage u;
        struct rusage ru;
        const char *buf;
        size_t len;
        int r;

        if (getrusage(RUSAGE_SELF, &ru) < 0) {
                r = -errno;
                plat_errf(msg, msg_len, "getrusage: %s", strerror(-r));
                return r;
        }
        u.cpu_usec = (uint64_t)ru.ru_utime.tv_sec * 1000000 + (uint64_t)ru.ru_utime.tv_usec +
                     (uint64_t)ru.ru_stime.tv_sec * 1000000 + (uint64_t)ru.ru_stime.tv_usec;
        r = plat_file_read(&s->status, &buf, &len);
        if (r < 0) {
                plat_errf(msg, msg_len, "/proc/self/status: %s",
                          r == -EFBIG ? "larger than 16 KiB" : strerror(-r));
                return r;
        }
        r = plat_parse_proc_status_mem(buf, len, &u.rss_bytes, &u.peak_rss_bytes, msg, msg_len);
        if (r < 0)
                return r;
        *ret = u;
        return 0;
}

int plat_self_usage(struct plat_self_usage *ret, char *msg, size_t msg_len) {
        struct plat_self s;
        int r;

        plat_self_init(&s);
        r = plat_self_read(&s, ret, msg, msg_len);
        plat_self_done(&s);
        return r;
}
