/* selfstat.c: this process's own cost (CPU time, resident memory), so a fleet can watch the watcher. */
#include "selfstat.h"

#include "cleanup.h"
#include "fileio.h"
#include "strutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

int plat_parse_proc_statm(const char *buf, size_t len, uint64_t page_size, uint64_t *ret_rss_bytes,
                          char *msg, size_t msg_len) {
        const char *p = buf, *end = buf + len;
        uint64_t v[7];
        size_t n = 0;

        if (len && end[-1] == '\n')
                end--;
        while (p < end) {
                const char *start = p;
                char q[PLAT_QUOTE_MAX];
                int r;

                for (; p < end && *p >= '0' && *p <= '9'; p++)
                        ;
                r = n < ELEMENTSOF(v) ? plat_parse_u64(start, (size_t)(p - start), &v[n]) : -EPROTO;
                if (r >= 0 && p < end && (*p != ' ' || p + 1 == end)) /* one space, then a figure */
                        r = -EPROTO;
                if (r < 0) {
                        plat_errf(msg, msg_len, "/proc/self/statm: figure %zu \"%s\" is %s", n + 1,
                                  plat_quote(start, (size_t)(end - start), q),
                                  r == -ERANGE ? "past 64 bits" : "not a number of pages (7 of them)");
                        return r == -ERANGE ? r : -EPROTO;
                }
                n++;
                p += p < end; /* the space */
        }
        if (n != ELEMENTSOF(v)) {
                plat_errf(msg, msg_len, "/proc/self/statm: %zu figure%s, not 7", n, n == 1 ? "" : "s");
                return -EPROTO;
        }
        if (page_size && v[1] > UINT64_MAX / page_size) {
                plat_errf(msg, msg_len,
                          "/proc/self/statm: resident pages %" PRIu64 " are past 64 bits in bytes", v[1]);
                return -ERANGE;
        }
        *ret_rss_bytes = v[1] * page_size;
        return 0;
}

void plat_self_init(struct plat_self *s) {
        plat_file_init(&s->statm, AT_FDCWD, "/proc/self/statm", PLAT_PROC_STATM_MAX, true);
}

void plat_self_done(struct plat_self *s) {
        plat_file_done(&s->statm);
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
        r = plat_file_read(&s->statm, &buf, &len);
        if (r < 0) {
                if (r == -EFBIG)
                        plat_errf(msg, msg_len, "/proc/self/statm: larger than %d bytes",
                                  PLAT_PROC_STATM_MAX);
                else
                        plat_errf(msg, msg_len, "/proc/self/statm: %s", strerror(-r));
                return r;
        }
        r = plat_parse_proc_statm(buf, len, (uint64_t)sysconf(_SC_PAGESIZE), &u.rss_bytes, msg, msg_len);
        if (r < 0)
                return r;
        /* ru_maxrss is the high-water mark (VmHWM) in KiB, taken just before the resident size. */
        u.peak_rss_bytes = (uint64_t)ru.ru_maxrss * 1024;
        if (u.peak_rss_bytes < u.rss_bytes)
                u.peak_rss_bytes = u.rss_bytes;
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
