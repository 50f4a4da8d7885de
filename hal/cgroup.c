/* cgroup.c: a slot's resource usage from its cgroup (v2 unified, v1 controllers as fallback). */
#include "cgroup.h"

#include "cleanup.h"
#include "fileio.h"
#include "strutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define CG_ROOT "sys/fs/cgroup" /* relative: openat() must stay under root_fd */
/* Flat-keyed files are a dozen lines; single values a word. */
#define CG_FILE_MAX 16384
/* /proc/<pid>/cgroup: a line per hierarchy (at most 16 v1 controllers plus named ones), each
 * with a path of up to PATH_MAX. */
#define PID_FILE_MAX (64 * 1024)
/* v1 prints "no limit" as PAGE_COUNTER_MAX in bytes: LONG_MAX rounded down to a page
 * (9223372036854771712 with 4 KiB pages, ...710272 with 64 KiB). Anything this close to it is
 * no limit at all, whatever the page size. */
#define V1_UNLIMITED_MIN ((uint64_t)INT64_MAX - (UINT64_C(1) << 20))

struct cg_dir {
        int fd;               /* O_PATH directory of the cgroup */
        char label[PATH_MAX]; /* "/sys/fs/cgroup/<hierarchy>/<path>", for messages */
};

static void cg_dir_close(struct cg_dir *d) {
        plat_closep(&d->fd);
}

/* Splits off the leading '/' and refuses paths that could leave the hierarchy. */
static int check_path(const char *path, const char **ret, char *err, size_t errlen) {
        const char *p;

        if (!path) {
                plat_errf(err, errlen, "cgroup path is missing");
                return -EINVAL;
        }
        while (*path == '/')
                path++;
        if (strlen(path) > PATH_MAX - 64) {
                plat_errf(err, errlen, "cgroup path is longer than %d bytes", PATH_MAX - 64);
                return -EINVAL;
        }
        for (p = path; *p;) {
                size_t n = strcspn(p, "/");

                if (n == 2 && p[0] == '.' && p[1] == '.') {
                        plat_errf(err, errlen, "cgroup path '%s' has a '..' component", path);
                        return -EINVAL;
                }
                p += n;
                while (*p == '/')
                        p++;
        }
        *ret = path;
        return 0;
}

/* Opens <root>/sys/fs/cgroup/<hier>/<path> (hier may be ""); -ENOENT when it does not exist. */
static int open_cgroup(int root_fd, const char *hier, const char *path, struct cg_dir *ret, char *err,
                       size_t errlen) {
        char rel[PATH_MAX];
        int fd, r;

        snprintf(rel, sizeof(rel), CG_ROOT "%s%s%s%s", *hier ? "/" : "", hier, *path ? "/" : "", path);
        fd = openat(root_fd, rel, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                if (r == -ENOTDIR)
                        r = -ENOENT; /* a file where the cgroup would be: no such cgroup either */
                if (r != -ENOENT)
                        plat_errf(err, errlen, "/%s: %s", rel, strerror(-r));
                return r;
        }
        ret->fd = fd;
        snprintf(ret->label, sizeof(ret->label), "/%s", rel);
        return 0;
}

/* Reads file `name` of the cgroup: 1 with the buffer, 0 when absent (controller not enabled
 * there), -errno with err naming the file. */
static int read_cg_file(const struct cg_dir *d, const char *name, char **ret_buf, size_t *ret_len, char *err,
                        size_t errlen) {
        int r;

        r = plat_read_file_at(d->fd, name, CG_FILE_MAX, ret_buf, ret_len);
        if (r >= 0)
                return 1;
        /* ENODEV: the cgroup was removed under us after we opened it; its files are as good as gone. */
        if (r == -ENOENT || r == -ENODEV)
                return 0;
        if (r == -EFBIG)
                plat_errf(err, errlen, "%s/%s: larger than %d bytes", d->label, name, CG_FILE_MAX);
        else
                plat_errf(err, errlen, "%s/%s: %s", d->label, name, strerror(-r));
        return r;
}

/* The one value of a single-value file, without its newline. */
static void value_of(const char *buf, size_t len, size_t *ret_len) {
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
                len--;
        *ret_len = len;
}

static int bad_value(const struct cg_dir *d, const char *name, const char *buf, size_t len, const char *what,
                     char *err, size_t errlen) {
        char q[PLAT_QUOTE_MAX];

        plat_errf(err, errlen, "%s/%s: '%s' is not %s", d->label, name, plat_quote(buf, len, q), what);
        return -EPROTO;
}

/* A decimal file; with `max_word`, the word "max" (v2 for "no limit") reads as UINT64_MAX. */
static int read_u64(const struct cg_dir *d, const char *name, bool max_word, uint64_t *ret, char *err,
                    size_t errlen) {
        _cleanup_free_ char *buf = NULL;
        size_t len;
        int r;

        r = read_cg_file(d, name, &buf, &len, err, errlen);
        if (r <= 0)
                return r;
        value_of(buf, len, &len);
        if (max_word && len == 3 && memcmp(buf, "max", 3) == 0) {
                *ret = UINT64_MAX;
                return 1;
        }
        if (plat_parse_u64(buf, len, ret) < 0)
                return bad_value(d, name, buf, len, max_word ? "a byte count or 'max'" : "a decimal number",
                                 err, errlen);
        return 1;
}

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

/* A CPU quota in microseconds, or the word `unlimited` (v2 "max", v1 "-1") for no quota. */
static int parse_quota(const char *s, size_t len, const char *unlimited, bool *ret_unlimited,
                       uint64_t *ret_quota) {
        if (len == strlen(unlimited) && memcmp(s, unlimited, len) == 0) {
                *ret_unlimited = true;
                return 0;
        }
        *ret_unlimited = false;
        return plat_parse_u64(s, len, ret_quota);
}

#define CPU_MAX_FORM "'<quota|max> <period>' with a period over 0"

/* v2 cpu.max "<quota|max> <period>": 1 with the quota in cores, 0 without a quota or file. */
static int read_cpu_max_v2(const struct cg_dir *d, double *ret, char *err, size_t errlen) {
        _cleanup_free_ char *buf = NULL;
        const char *p, *q, *per, *extra;
        size_t len, qlen, perlen, extralen;
        uint64_t quota = 0, period;
        bool unlimited;
        int r;

        r = read_cg_file(d, "cpu.max", &buf, &len, err, errlen);
        if (r <= 0)
                return r;
        value_of(buf, len, &len);
        p = buf;
        if (!plat_next_token(&p, buf + len, &q, &qlen) || !plat_next_token(&p, buf + len, &per, &perlen) ||
            plat_next_token(&p, buf + len, &extra, &extralen))
                return bad_value(d, "cpu.max", buf, len, CPU_MAX_FORM, err, errlen);
        if (parse_quota(q, qlen, "max", &unlimited, &quota) < 0 ||
            plat_parse_u64(per, perlen, &period) < 0 || period == 0)
                return bad_value(d, "cpu.max", buf, len, CPU_MAX_FORM, err, errlen);
        if (unlimited)
                return 0;
        *ret = (double)quota / (double)period;
        return 1;
}

/* v1 cpu.cfs_quota_us ("-1": none) over cpu.cfs_period_us: as read_cpu_max_v2(). */
static int read_cpu_max_v1(const struct cg_dir *d, double *ret, char *err, size_t errlen) {
        _cleanup_free_ char *buf = NULL;
        uint64_t quota = 0, period;
        bool unlimited;
        size_t len;
        int r;

        r = read_cg_file(d, "cpu.cfs_quota_us", &buf, &len, err, errlen);
        if (r <= 0)
                return r;
        value_of(buf, len, &len);
        if (parse_quota(buf, len, "-1", &unlimited, &quota) < 0)
                return bad_value(d, "cpu.cfs_quota_us", buf, len, "a quota in microseconds or -1", err,
                                 errlen);
        if (unlimited)
                return 0;
        r = read_u64(d, "cpu.cfs_period_us", false, &period, err, errlen);
        if (r <= 0)
                return r;
        if (period == 0)
                return bad_value(d, "cpu.cfs_period_us", "0", 1, "a period over 0", err, errlen);
        *ret = (double)quota / (double)period;
        return 1;
}

static int read_v2(int root_fd, const char *path, struct hal_cgroup_sample *ret, char *err, size_t errlen) {
        _cleanup_(cg_dir_close) struct cg_dir d = { .fd = -1 };
        struct hal_cgroup_sample s = { 0 };
        _cleanup_free_ char *buf = NULL;
        char msg[256];
        size_t len;
        int r;

        r = open_cgroup(root_fd, "", path, &d, err, errlen);
        if (r == -ENOENT)
                plat_errf(err, errlen, "/" CG_ROOT "/%s: no such cgroup", path);
        if (r < 0)
                return r;

        /* cpu.stat is there whether or not the cpu controller is enabled. */
        r = read_cg_file(&d, "cpu.stat", &buf, &len, err, errlen);
        if (r < 0)
                return r;
        if (r > 0) {
                r = hal_cgroup_parse_cpu_stat(buf, len, &s.cpu_usage_usec, msg, sizeof(msg));
                if (r < 0) {
                        plat_errf(err, errlen, "%s/cpu.stat: %s", d.label, msg);
                        return r;
                }
                s.present |= HAL_CG_CPU;
        }
        r = read_u64(&d, "memory.current", false, &s.mem_current_bytes, err, errlen);
        if (r < 0)
                return r;
        s.present |= r > 0 ? HAL_CG_MEM : 0;
        r = read_u64(&d, "memory.max", true, &s.mem_max_bytes, err, errlen);
        if (r < 0)
                return r;
        s.present |= r > 0 ? HAL_CG_MEM_MAX : 0;
        r = read_u64(&d, "pids.current", false, &s.pids_current, err, errlen);
        if (r < 0)
                return r;
        s.present |= r > 0 ? HAL_CG_PIDS : 0;
        r = read_cpu_max_v2(&d, &s.cpu_quota_cores, err, errlen);
        if (r < 0)
                return r;
        s.present |= r > 0 ? HAL_CG_CPU_MAX : 0;
        *ret = s;
        return 0;
}

/* The cgroup in the first of the hierarchies (mount names) that has it; fd -1 when none does. */
static int open_v1(int root_fd, const char *const *hiers, const char *path, struct cg_dir *ret, char *err,
                   size_t errlen) {
        int r;

        ret->fd = -1;
        for (; *hiers; hiers++) {
                r = open_cgroup(root_fd, *hiers, path, ret, err, errlen);
                if (r != -ENOENT)
                        return r;
        }
        return 0;
}

static int read_v1(int root_fd, const char *path, struct hal_cgroup_sample *ret, char *err, size_t errlen) {
        /* systemd mounts cpu and cpuacct together as "cpu,cpuacct" with links named after each;
         * other setups (containers, older distributions) mount them apart. */
        static const char *const cpuacct_h[] = { "cpu,cpuacct", "cpuacct", NULL };
        static const char *const cpu_h[] = { "cpu,cpuacct", "cpu", NULL };
        static const char *const memory_h[] = { "memory", NULL };
        static const char *const pids_h[] = { "pids", NULL };
        _cleanup_(cg_dir_close) struct cg_dir acct = { .fd = -1 }, cpu = { .fd = -1 }, mem = { .fd = -1 },
                                              pids = { .fd = -1 };
        struct hal_cgroup_sample s = { 0 };
        uint64_t ns;
        int r;

        r = open_v1(root_fd, cpuacct_h, path, &acct, err, errlen);
        if (r < 0)
                return r;
        r = open_v1(root_fd, cpu_h, path, &cpu, err, errlen);
        if (r < 0)
                return r;
        r = open_v1(root_fd, memory_h, path, &mem, err, errlen);
        if (r < 0)
                return r;
        r = open_v1(root_fd, pids_h, path, &pids, err, errlen);
        if (r < 0)
                return r;
        if (acct.fd < 0 && cpu.fd < 0 && mem.fd < 0 && pids.fd < 0) {
                plat_errf(err, errlen, "/" CG_ROOT "/*/%s: no such cgroup in any hierarchy", path);
                return -ENOENT;
        }

        if (acct.fd >= 0) {
                r = read_u64(&acct, "cpuacct.usage", false, &ns, err, errlen);
                if (r < 0)
                        return r;
                if (r > 0) {
                        s.cpu_usage_usec = ns / 1000; /* v1 counts nanoseconds */
                        s.present |= HAL_CG_CPU;
                }
        }
        if (cpu.fd >= 0) {
                r = read_cpu_max_v1(&cpu, &s.cpu_quota_cores, err, errlen);
                if (r < 0)
                        return r;
                s.present |= r > 0 ? HAL_CG_CPU_MAX : 0;
        }
        if (mem.fd >= 0) {
                r = read_u64(&mem, "memory.usage_in_bytes", false, &s.mem_current_bytes, err, errlen);
                if (r < 0)
                        return r;
                s.present |= r > 0 ? HAL_CG_MEM : 0;
                r = read_u64(&mem, "memory.limit_in_bytes", false, &s.mem_max_bytes, err, errlen);
                if (r < 0)
                        return r;
                if (r > 0) {
                        if (s.mem_max_bytes >= V1_UNLIMITED_MIN)
                                s.mem_max_bytes = UINT64_MAX;
                        s.present |= HAL_CG_MEM_MAX;
                }
        }
        if (pids.fd >= 0) {
                r = read_u64(&pids, "pids.current", false, &s.pids_current, err, errlen);
                if (r < 0)
                        return r;
                s.present |= r > 0 ? HAL_CG_PIDS : 0;
        }
        *ret = s;
        return 0;
}

static bool is_dir_at(int root_fd, const char *path) {
        struct stat st;

        return fstatat(root_fd, path, &st, 0) == 0 && S_ISDIR(st.st_mode);
}

enum hal_cgroup_version hal_cgroup_detect(int root_fd) {
        struct stat st;

        /* Hybrid hosts mount v2 at sys/fs/cgroup/unified with the controllers on v1: that is v1. */
        if (fstatat(root_fd, CG_ROOT "/cgroup.controllers", &st, 0) == 0)
                return HAL_CGROUP_V2;
        if (is_dir_at(root_fd, CG_ROOT "/cpu,cpuacct") || is_dir_at(root_fd, CG_ROOT "/cpuacct"))
                return HAL_CGROUP_V1;
        return HAL_CGROUP_NONE;
}

int hal_cgroup_read(int root_fd, enum hal_cgroup_version v, const char *path, struct hal_cgroup_sample *ret,
                    char *err, size_t errlen) {
        const char *rel;
        int r;

        r = check_path(path, &rel, err, errlen);
        if (r < 0)
                return r;
        switch (v) {
        case HAL_CGROUP_V2:
                return read_v2(root_fd, rel, ret, err, errlen);
        case HAL_CGROUP_V1:
                return read_v1(root_fd, rel, ret, err, errlen);
        case HAL_CGROUP_NONE:
                plat_errf(err, errlen, "no cgroup hierarchy on this host");
                return -EOPNOTSUPP;
        }
        plat_errf(err, errlen, "unknown cgroup version %d", (int)v);
        return -EINVAL;
}

/* True when the comma-separated list [s, s+len) has the entry `word`. */
static bool list_has(const char *s, size_t len, const char *word) {
        size_t wl = strlen(word);

        for (const char *end = s + len; s < end;) {
                const char *comma = memchr(s, ',', (size_t)(end - s));
                const char *e = comma ? comma : end;

                if ((size_t)(e - s) == wl && memcmp(s, word, wl) == 0)
                        return true;
                s = comma ? comma + 1 : end;
        }
        return false;
}

int hal_cgroup_parse_pid_file(const char *buf, size_t len, char *ret_path, size_t pathlen, char *err,
                              size_t errlen) {
        const char *p = buf, *end = buf + len, *v2 = NULL, *v1 = NULL, *acct = NULL, *pick;
        size_t v2len = 0, v1len = 0, acctlen = 0, picklen;
        unsigned lineno = 0;

        if (len == 0) {
                plat_errf(err, errlen, "file is empty");
                return -EPROTO;
        }
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p)), *c1, *c2, *path;
                char q[PLAT_QUOTE_MAX];
                size_t plen;
                uint64_t id;

                lineno++; /* bounded by len: every line has at least its newline */
                if (!nl) {
                        plat_errf(err, errlen, "line %u is cut short (no newline at end of file)", lineno);
                        return -EPROTO;
                }
                /* "<hierarchy id>:<controllers>:<path>"; the path may itself hold ':'. */
                c1 = memchr(p, ':', (size_t)(nl - p));
                c2 = c1 ? memchr(c1 + 1, ':', (size_t)(nl - c1 - 1)) : NULL;
                if (!c2 || plat_parse_u64(p, (size_t)(c1 - p), &id) < 0) {
                        plat_errf(err, errlen, "line %u: '%s' is not 'id:controllers:/path'", lineno,
                                  plat_quote(p, (size_t)(nl - p), q));
                        return -EPROTO;
                }
                path = c2 + 1;
                plen = (size_t)(nl - path);
                if (plen == 0 || path[0] != '/') {
                        plat_errf(err, errlen, "line %u: cgroup path '%s' does not start with '/'", lineno,
                                  plat_quote(path, plen, q));
                        return -EPROTO;
                }
                if (memchr(path, '\0', plen)) {
                        plat_errf(err, errlen, "line %u: cgroup path '%s' holds a NUL byte", lineno,
                                  plat_quote(path, plen, q));
                        return -EPROTO;
                }
                if (c2 == c1 + 1) {
                        if (id != 0) {
                                plat_errf(err, errlen, "line %u: hierarchy %" PRIu64 " has no controllers",
                                          lineno, id);
                                return -EPROTO;
                        }
                        if (!v2) {
                                v2 = path;
                                v2len = plen;
                        }
                } else {
                        if (!v1) {
                                v1 = path;
                                v1len = plen;
                        }
                        if (!acct && list_has(c1 + 1, (size_t)(c2 - c1 - 1), "cpuacct")) {
                                acct = path;
                                acctlen = plen;
                        }
                }
                p = nl + 1;
        }
        /* cpuacct's path is the one hal_cgroup_read() reads usage from on v1 and hybrid hosts; a
         * v2 host may still list a named v1 hierarchy (name=systemd, for old containers), which
         * must not win over the unified one. */
        pick = acct ? acct : v2 ? v2 : v1;
        picklen = acct ? acctlen : v2 ? v2len : v1len;
        if (!pick) {
                plat_errf(err, errlen, "no cgroup lines");
                return -EPROTO;
        }
        while (picklen > 0 && *pick == '/') {
                pick++;
                picklen--;
        }
        if (picklen >= pathlen) {
                plat_errf(err, errlen, "cgroup path is %zu bytes, room for %zu", picklen,
                          pathlen > 0 ? pathlen - 1 : 0);
                return -ENAMETOOLONG;
        }
        memcpy(ret_path, pick, picklen);
        ret_path[picklen] = '\0';
        return 0;
}

int hal_cgroup_of_pid(int root_fd, int32_t pid, char *ret_path, size_t len, char *err, size_t errlen) {
        _cleanup_free_ char *buf = NULL;
        char path[32], msg[256];
        size_t n;
        int r;

        if (pid <= 0) {
                plat_errf(err, errlen, "pid %" PRId32 " is not a process id", pid);
                return -EINVAL;
        }
        snprintf(path, sizeof(path), "/proc/%" PRId32 "/cgroup", pid);
        r = plat_read_file_at(root_fd, path, PID_FILE_MAX, &buf, &n);
        if (r == -ENOENT) {
                plat_errf(err, errlen, "%s: no such process", path);
                return -ESRCH;
        }
        if (r == -EFBIG) {
                plat_errf(err, errlen, "%s: larger than %d bytes", path, PID_FILE_MAX);
                return r;
        }
        if (r < 0) {
                plat_errf(err, errlen, "%s: %s", path, strerror(-r));
                return r;
        }
        r = hal_cgroup_parse_pid_file(buf, n, ret_path, len, msg, sizeof(msg));
        if (r < 0)
                plat_errf(err, errlen, "%s: %s", path, msg);
        return r;
}
