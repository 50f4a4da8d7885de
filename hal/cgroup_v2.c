/* cgroup_v2.c: the unified hierarchy's files of a cgroup: cpu.stat, memory.current and .max,
 * pids.current, cpu.max. */
#include "cgroup_internal.h"

#include "strutil.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

/* The files each version reads, in the order samples read them (and report the first error). */
enum {
        F2_CPU_STAT,
        F2_MEM_CURRENT,
        F2_MEM_MAX,
        F2_PIDS_CURRENT,
        F2_CPU_MAX,
        F2_COUNT,
};
_Static_assert((int)F2_COUNT <= CG_MAX_FILES, "files[] too small");

int hal_cgroup_parse_cpu_stat(const char *buf, size_t len, uint64_t *ret_usage_usec, char *err,
                              size_t errlen) {
        const char *p = buf, *end = buf + len;
        unsigned lineno = 0, found = 0;
        uint64_t usage = 0;

        while (p < end) {
                const char *start = p, *line = p, *nl = memchr(p, '\n', (size_t)(end - p)), *key, *val,
                           *extra;
                size_t keylen, vallen, extralen;
                char q[PLAT_QUOTE_MAX];

                lineno++; /* bounded by len: every line has at least its newline */
                if (!nl) {
                        plat_errf(err, errlen, "line %u is cut short (no newline at end of file)", lineno);
                        return -EPROTO;
                }
                p = nl + 1;
                if (!plat_next_token(&line, nl, &key, &keylen) ||
                    !plat_next_token(&line, nl, &val, &vallen) ||
                    plat_next_token(&line, nl, &extra, &extralen)) {
                        plat_errf(err, errlen, "line %u: '%s' is not 'key value'", lineno,
                                  plat_quote(start, (size_t)(nl - start), q));
                        return -EPROTO;
                }
                if (keylen != strlen("usage_usec") || memcmp(key, "usage_usec", keylen) != 0)
                        continue; /* user_usec, nr_throttled, ...: not ours */
                if (found) {
                        plat_errf(err, errlen, "line %u: second usage_usec (first on line %u)", lineno,
                                  found);
                        return -EPROTO;
                }
                if (plat_parse_u64(val, vallen, &usage) < 0) {
                        plat_errf(err, errlen, "line %u: usage_usec '%s' is not a decimal number", lineno,
                                  plat_quote(val, vallen, q));
                        return -EPROTO;
                }
                found = lineno;
        }
        if (!found) {
                plat_errf(err, errlen, "no usage_usec line");
                return -EPROTO;
        }
        *ret_usage_usec = usage;
        return 0;
}

#define CPU_MAX_FORM "'<quota|max> <period>' with a period over 0"

/* v2 cpu.max "<quota|max> <period>": 1 with the quota in cores, 0 without a quota or file. */
static int read_cpu_max_v2(struct hal_cgroup *h, char *buf, double *ret, char *err, size_t errlen) {
        struct cg_file *f = &h->files[F2_CPU_MAX];
        const char *p, *q, *per, *extra;
        size_t len, qlen, perlen, extralen;
        uint64_t quota = 0, period;
        bool unlimited;
        int r;

        r = hal_cgroup__read_file(h, f, buf, &len, err, errlen);
        if (r <= 0)
                return r;
        hal_cgroup__value_of(buf, len, &len);
        p = buf;
        if (!plat_next_token(&p, buf + len, &q, &qlen) || !plat_next_token(&p, buf + len, &per, &perlen) ||
            plat_next_token(&p, buf + len, &extra, &extralen))
                return hal_cgroup__bad_value(h, f, buf, len, CPU_MAX_FORM, err, errlen);
        if (hal_cgroup__parse_quota(q, qlen, "max", &unlimited, &quota) < 0 ||
            plat_parse_u64(per, perlen, &period) < 0 || period == 0)
                return hal_cgroup__bad_value(h, f, buf, len, CPU_MAX_FORM, err, errlen);
        if (unlimited)
                return 0;
        *ret = (double)quota / (double)period;
        return 1;
}

int hal_cgroup__sample_v2(struct hal_cgroup *h, struct hal_cgroup_sample *ret, char *err, size_t errlen) {
        struct hal_cgroup_sample s = { 0 };
        char buf[CG_FILE_MAX + 1], msg[256];
        size_t len;
        int r;

        /* cpu.stat is there whether or not the cpu controller is enabled. */
        r = hal_cgroup__read_file(h, &h->files[F2_CPU_STAT], buf, &len, err, errlen);
        if (r < 0)
                return r;
        if (r > 0) {
                r = hal_cgroup_parse_cpu_stat(buf, len, &s.cpu_usage_usec, msg, sizeof(msg));
                if (r < 0) {
                        char label[PATH_MAX];

                        plat_errf(err, errlen, "%s/cpu.stat: %s",
                                  hal_cgroup__dir_label(h, &h->dirs[0], label, sizeof(label)), msg);
                        return r;
                }
                s.present |= HAL_CG_CPU;
        }
        r = hal_cgroup__read_u64(h, &h->files[F2_MEM_CURRENT], buf, false, &s.mem_current_bytes, err,
                                 errlen);
        if (r < 0)
                return r;
        s.present |= r > 0 ? HAL_CG_MEM : 0;
        r = hal_cgroup__read_u64(h, &h->files[F2_MEM_MAX], buf, true, &s.mem_max_bytes, err, errlen);
        if (r < 0)
                return r;
        s.present |= r > 0 ? HAL_CG_MEM_MAX : 0;
        r = hal_cgroup__read_u64(h, &h->files[F2_PIDS_CURRENT], buf, false, &s.pids_current, err, errlen);
        if (r < 0)
                return r;
        s.present |= r > 0 ? HAL_CG_PIDS : 0;
        r = read_cpu_max_v2(h, buf, &s.cpu_quota_cores, err, errlen);
        if (r < 0)
                return r;
        s.present |= r > 0 ? HAL_CG_CPU_MAX : 0;
        *ret = s;
        return 0;
}

int hal_cgroup__open_v2(struct hal_cgroup *h, int root_fd, char *err, size_t errlen) {
        static const char *const names[F2_COUNT] = {
                [F2_CPU_STAT] = "cpu.stat",  [F2_MEM_CURRENT] = "memory.current",
                [F2_MEM_MAX] = "memory.max", [F2_PIDS_CURRENT] = "pids.current",
                [F2_CPU_MAX] = "cpu.max",
        };
        int r;

        r = hal_cgroup__add_dir(h, root_fd, "", err, errlen);
        if (r == -ENOENT)
                plat_errf(err, errlen, "/" CG_ROOT "/%s: no such cgroup", h->path);
        if (r < 0)
                return r;
        for (size_t i = 0; i < F2_COUNT; i++)
                hal_cgroup__set_file(h, i, names[i], 0);
        h->n_files = F2_COUNT;
        return 0;
}
