/* cgroup_v1.c: a cgroup's files on the v1 controllers (cpuacct, cpu, memory, pids), each mounted
 * alone or together with others. */
#include "cgroup_internal.h"

#include "strutil.h"

#include <errno.h>
#include <string.h>

/* v1 prints "no limit" as PAGE_COUNTER_MAX in bytes: LONG_MAX rounded down to a page
 * (9223372036854771712 with 4 KiB pages, ...710272 with 64 KiB). Anything this close to it is
 * no limit at all, whatever the page size. */
#define V1_UNLIMITED_MIN ((uint64_t)INT64_MAX - (UINT64_C(1) << 20))

enum {
        F1_CPUACCT_USAGE,
        F1_CFS_QUOTA,
        F1_CFS_PERIOD,
        F1_MEM_USAGE,
        F1_MEM_LIMIT,
        F1_PIDS_CURRENT,
        F1_COUNT,
};
_Static_assert((int)F1_COUNT <= CG_MAX_FILES, "files[] too small");

/* v1 cpu.cfs_quota_us ("-1": none) over cpu.cfs_period_us: as read_cpu_max_v2() in cgroup_v2.c. */
static int read_cpu_max_v1(struct hal_cgroup *h, char *buf, double *ret, char *err, size_t errlen) {
        struct cg_file *f = &h->files[F1_CFS_QUOTA];
        uint64_t quota = 0, period;
        bool unlimited;
        size_t len;
        int r;

        r = hal_cgroup__read_file(h, f, buf, &len, err, errlen);
        if (r <= 0)
                return r;
        hal_cgroup__value_of(buf, len, &len);
        if (hal_cgroup__parse_quota(buf, len, "-1", &unlimited, &quota) < 0)
                return hal_cgroup__bad_value(h, f, buf, len, "a quota in microseconds or -1", err, errlen);
        if (unlimited)
                return 0;
        f = &h->files[F1_CFS_PERIOD];
        r = hal_cgroup__read_u64(h, f, buf, false, &period, err, errlen);
        if (r <= 0)
                return r;
        if (period == 0)
                return hal_cgroup__bad_value(h, f, "0", 1, "a period over 0", err, errlen);
        *ret = (double)quota / (double)period;
        return 1;
}

int hal_cgroup__sample_v1(struct hal_cgroup *h, struct hal_cgroup_sample *ret, char *err, size_t errlen) {
        struct hal_cgroup_sample s = { 0 };
        char buf[CG_FILE_MAX + 1];
        uint64_t ns;
        int r;

        r = hal_cgroup__read_u64(h, &h->files[F1_CPUACCT_USAGE], buf, false, &ns, err, errlen);
        if (r < 0)
                return r;
        if (r > 0) {
                s.cpu_usage_usec = ns / 1000; /* v1 counts nanoseconds */
                s.present |= HAL_CG_CPU;
        }
        r = read_cpu_max_v1(h, buf, &s.cpu_quota_cores, err, errlen);
        if (r < 0)
                return r;
        s.present |= r > 0 ? HAL_CG_CPU_MAX : 0;
        r = hal_cgroup__read_u64(h, &h->files[F1_MEM_USAGE], buf, false, &s.mem_current_bytes, err, errlen);
        if (r < 0)
                return r;
        s.present |= r > 0 ? HAL_CG_MEM : 0;
        r = hal_cgroup__read_u64(h, &h->files[F1_MEM_LIMIT], buf, false, &s.mem_max_bytes, err, errlen);
        if (r < 0)
                return r;
        if (r > 0) {
                if (s.mem_max_bytes >= V1_UNLIMITED_MIN)
                        s.mem_max_bytes = UINT64_MAX;
                s.present |= HAL_CG_MEM_MAX;
        }
        r = hal_cgroup__read_u64(h, &h->files[F1_PIDS_CURRENT], buf, false, &s.pids_current, err, errlen);
        if (r < 0)
                return r;
        s.present |= r > 0 ? HAL_CG_PIDS : 0;
        *ret = s;
        return 0;
}

/* The directory of the cgroup in the first of the hierarchies (mount names) that has it, shared
 * with an earlier controller mounted in the same one; -1 when none has it. */
static int find_dir_v1(struct hal_cgroup *h, int root_fd, const char *const *hiers, int *ret_dir, char *err,
                       size_t errlen) {
        int r;

        for (; *hiers; hiers++) {
                for (size_t i = 0; i < h->n_dirs; i++)
                        if (strcmp(h->dirs[i].hier, *hiers) == 0) {
                                *ret_dir = (int)i;
                                return 0;
                        }
                r = hal_cgroup__add_dir(h, root_fd, *hiers, err, errlen);
                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        return r;
                *ret_dir = (int)h->n_dirs - 1;
                return 0;
        }
        *ret_dir = -1;
        return 0;
}

int hal_cgroup__open_v1(struct hal_cgroup *h, int root_fd, char *err, size_t errlen) {
        /* systemd mounts cpu and cpuacct together as "cpu,cpuacct" with links named after each;
         * other setups (containers, older distributions) mount them apart. */
        static const char *const cpuacct_h[] = { "cpu,cpuacct", "cpuacct", NULL };
        static const char *const cpu_h[] = { "cpu,cpuacct", "cpu", NULL };
        static const char *const memory_h[] = { "memory", NULL };
        static const char *const pids_h[] = { "pids", NULL };
        int acct, cpu, mem, pids, r;

        r = find_dir_v1(h, root_fd, cpuacct_h, &acct, err, errlen);
        if (r >= 0)
                r = find_dir_v1(h, root_fd, cpu_h, &cpu, err, errlen);
        if (r >= 0)
                r = find_dir_v1(h, root_fd, memory_h, &mem, err, errlen);
        if (r >= 0)
                r = find_dir_v1(h, root_fd, pids_h, &pids, err, errlen);
        if (r < 0)
                return r;
        if (h->n_dirs == 0) {
                plat_errf(err, errlen, "/" CG_ROOT "/*/%s: no such cgroup in any hierarchy", h->path);
                return -ENOENT;
        }
        hal_cgroup__set_file(h, F1_CPUACCT_USAGE, "cpuacct.usage", acct);
        hal_cgroup__set_file(h, F1_CFS_QUOTA, "cpu.cfs_quota_us", cpu);
        hal_cgroup__set_file(h, F1_CFS_PERIOD, "cpu.cfs_period_us", cpu);
        hal_cgroup__set_file(h, F1_MEM_USAGE, "memory.usage_in_bytes", mem);
        hal_cgroup__set_file(h, F1_MEM_LIMIT, "memory.limit_in_bytes", mem);
        hal_cgroup__set_file(h, F1_PIDS_CURRENT, "pids.current", pids);
        h->n_files = F1_COUNT;
        return 0;
}
