/* cgroup.c: a slot's resource usage from its cgroup (v2 unified, v1 controllers as fallback). */
#include "cgroup.h"

#include "cleanup.h"
#include "fileio.h"
#include "strutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#define CG_ROOT "sys/fs/cgroup" /* relative: openat() must stay under root_fd */
/* Flat-keyed files are a dozen lines; single values a word. */
#define CG_FILE_MAX 16384
/* /proc/<pid>/cgroup: a line per hierarchy (at most 16 v1 controllers plus named ones), each
 * with a path of up to PATH_MAX. */
#define PID_FILE_MAX (64 * 1024)
/* Most /proc/<pid>/cgroup files are a few hundred bytes: read on the stack, the rest on the heap. */
#define PID_FILE_SMALL 4096
/* v1 prints "no limit" as PAGE_COUNTER_MAX in bytes: LONG_MAX rounded down to a page
 * (9223372036854771712 with 4 KiB pages, ...710272 with 64 KiB). Anything this close to it is
 * no limit at all, whatever the page size. */
#define V1_UNLIMITED_MIN ((uint64_t)INT64_MAX - (UINT64_C(1) << 20))

/* The files each version reads, in the order samples read them (and report the first error). */
enum {
        F2_CPU_STAT,
        F2_MEM_CURRENT,
        F2_MEM_MAX,
        F2_PIDS_CURRENT,
        F2_CPU_MAX,
        F2_COUNT,
};

enum {
        F1_CPUACCT_USAGE,
        F1_CFS_QUOTA,
        F1_CFS_PERIOD,
        F1_MEM_USAGE,
        F1_MEM_LIMIT,
        F1_PIDS_CURRENT,
        F1_COUNT,
};

/* v1 hierarchies: cpuacct, cpu, memory, pids (one directory when they are mounted together). */
#define CG_MAX_DIRS 4
#define CG_MAX_FILES 6
_Static_assert((int)F1_COUNT <= CG_MAX_FILES && (int)F2_COUNT <= CG_MAX_FILES, "files[] too small");

struct cg_dir {
        int fd;             /* O_PATH directory of the cgroup in one hierarchy */
        const char *hier;   /* mount name under /sys/fs/cgroup ("" on v2); static */
        bool check_removed; /* not on cgroupfs: see dir_removed() */
};

struct cg_file {
        const char *name; /* static */
        int dir;          /* index in dirs; -1 when that hierarchy lacks the cgroup */
        int fd;           /* -1 until opened */
        bool absent;      /* looked for and not there (controller not enabled) */
};

struct hal_cgroup {
        enum hal_cgroup_version version;
        char *path; /* below the hierarchy's root, no leading '/'; owned */
        unsigned samples;
        size_t n_dirs, n_files;
        struct cg_dir dirs[CG_MAX_DIRS];
        struct cg_file files[CG_MAX_FILES];
};

DEFINE_TRIVIAL_CLEANUP_FUNC(struct hal_cgroup *, hal_cgroup_close)

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

/* "sys/fs/cgroup[/<hier>][/<path>]", relative to the root. */
static void rel_path(const char *hier, const char *path, char *buf, size_t len) {
        snprintf(buf, len, CG_ROOT "%s%s%s%s", *hier ? "/" : "", hier, *path ? "/" : "", path);
}

/* "/sys/fs/cgroup/<hier>/<path>" of a directory, for messages. */
static const char *dir_label(const struct hal_cgroup *h, const struct cg_dir *d, char *buf, size_t len) {
        buf[0] = '/';
        rel_path(d->hier, h->path, buf + 1, len - 1);
        return buf;
}

/* Opens <root>/sys/fs/cgroup/<hier>/<path> (hier may be ""); -ENOENT when it does not exist. */
static int open_cgroup(int root_fd, const char *hier, const char *path, int *ret_fd, char *err,
                       size_t errlen) {
        char rel[PATH_MAX];
        int fd, r;

        rel_path(hier, path, rel, sizeof(rel));
        fd = openat(root_fd, rel, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                if (r == -ENOTDIR)
                        r = -ENOENT; /* a file where the cgroup would be: no such cgroup either */
                if (r != -ENOENT)
                        plat_errf(err, errlen, "/%s: %s", rel, strerror(-r));
                return r;
        }
        *ret_fd = fd;
        return 0;
}

/* Adds the directory of the cgroup in hierarchy `hier` as dirs[n_dirs]. */
static int add_dir(struct hal_cgroup *h, int root_fd, const char *hier, char *err, size_t errlen) {
        struct cg_dir *d = &h->dirs[h->n_dirs];
        struct statfs sf;
        int fd, r;

        r = open_cgroup(root_fd, hier, h->path, &fd, err, errlen);
        if (r < 0)
                return r;
        *d = (struct cg_dir){ .fd = fd, .hier = hier };
        /* cgroupfs fails reads of a removed cgroup's open files with ENODEV; other trees (test
         * fixtures, benches, copies of a host under --root) keep serving them. */
        d->check_removed = fstatfs(fd, &sf) < 0 ||
                           (sf.f_type != CGROUP2_SUPER_MAGIC && sf.f_type != CGROUP_SUPER_MAGIC);
        h->n_dirs++;
        return 0;
}

static void set_file(struct hal_cgroup *h, size_t id, const char *name, int dir) {
        h->files[id] = (struct cg_file){ .name = name, .dir = dir, .fd = -1 };
}

/* Opens a file of the cgroup: 1 when open, 0 when it does not exist, else -errno. */
static int open_file(const struct hal_cgroup *h, struct cg_file *f) {
        int fd = openat(h->dirs[f->dir].fd, f->name, O_RDONLY | O_CLOEXEC | O_NOCTTY);

        if (fd < 0) {
                if (errno != ENOENT)
                        return -errno;
                f->absent = true;
                return 0;
        }
        f->fd = fd;
        return 1;
}

static int removed(const struct hal_cgroup *h, const struct cg_dir *d, char *err, size_t errlen) {
        char label[PATH_MAX];

        plat_errf(err, errlen, "%s: cgroup was removed", dir_label(h, d, label, sizeof(label)));
        return -ENOENT;
}

/* Outside cgroupfs, a removed directory shows only in its link count. */
static bool dir_removed(const struct cg_dir *d) {
        struct stat st;

        return d->check_removed && fstat(d->fd, &st) == 0 && st.st_nlink == 0;
}

static int file_error(const struct hal_cgroup *h, const struct cg_file *f, int r, char *err, size_t errlen) {
        char label[PATH_MAX];

        dir_label(h, &h->dirs[f->dir], label, sizeof(label));
        if (r == -EFBIG)
                plat_errf(err, errlen, "%s/%s: larger than %d bytes", label, f->name, CG_FILE_MAX);
        else
                plat_errf(err, errlen, "%s/%s: %s", label, f->name, strerror(-r));
        return r;
}

/* Reads a file of the cgroup into buf (CG_FILE_MAX + 1 bytes): 1 with its length, 0 when absent
 * (controller not enabled there), -ENOENT when the cgroup was removed, -errno with err naming the
 * file. A file that could not be opened is tried again on every read. */
static int read_file(struct hal_cgroup *h, struct cg_file *f, char *buf, size_t *ret_len, char *err,
                     size_t errlen) {
        int r;

        if (f->dir < 0 || f->absent)
                return 0;
        if (f->fd < 0) {
                r = open_file(h, f);
                if (r < 0)
                        return file_error(h, f, r, err, errlen);
                if (r == 0)
                        return 0;
        }
        /* cgroupfs prints an attribute in one piece: one pread() is the whole file. */
        r = plat_pread_once(f->fd, buf, CG_FILE_MAX + 1, ret_len);
        if (r == -ENODEV)
                return removed(h, &h->dirs[f->dir], err, errlen);
        if (r < 0)
                return file_error(h, f, r, err, errlen);
        return 1;
}

/* The one value of a single-value file, without its newline. */
static void value_of(const char *buf, size_t len, size_t *ret_len) {
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
                len--;
        *ret_len = len;
}

static int bad_value(const struct hal_cgroup *h, const struct cg_file *f, const char *buf, size_t len,
                     const char *what, char *err, size_t errlen) {
        char label[PATH_MAX], q[PLAT_QUOTE_MAX];

        plat_errf(err, errlen, "%s/%s: '%s' is not %s", dir_label(h, &h->dirs[f->dir], label, sizeof(label)),
                  f->name, plat_quote(buf, len, q), what);
        return -EPROTO;
}

/* A decimal file; with `max_word`, the word "max" (v2 for "no limit") reads as UINT64_MAX. buf is
 * the caller's scratch space of CG_FILE_MAX + 1 bytes. */
static int read_u64(struct hal_cgroup *h, struct cg_file *f, char *buf, bool max_word, uint64_t *ret,
                    char *err, size_t errlen) {
        size_t len;
        int r;

        r = read_file(h, f, buf, &len, err, errlen);
        if (r <= 0)
                return r;
        value_of(buf, len, &len);
        if (max_word && len == 3 && memcmp(buf, "max", 3) == 0) {
                *ret = UINT64_MAX;
                return 1;
        }
        if (plat_parse_u64(buf, len, ret) < 0)
                return bad_value(h, f, buf, len, max_word ? "a byte count or 'max'" : "a decimal number",
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
static int read_cpu_max_v2(struct hal_cgroup *h, char *buf, double *ret, char *err, size_t errlen) {
        struct cg_file *f = &h->files[F2_CPU_MAX];
        const char *p, *q, *per, *extra;
        size_t len, qlen, perlen, extralen;
        uint64_t quota = 0, period;
        bool unlimited;
        int r;

        r = read_file(h, f, buf, &len, err, errlen);
        if (r <= 0)
                return r;
        value_of(buf, len, &len);
        p = buf;
        if (!plat_next_token(&p, buf + len, &q, &qlen) || !plat_next_token(&p, buf + len, &per, &perlen) ||
            plat_next_token(&p, buf + len, &extra, &extralen))
                return bad_value(h, f, buf, len, CPU_MAX_FORM, err, errlen);
        if (parse_quota(q, qlen, "max", &unlimited, &quota) < 0 ||
            plat_parse_u64(per, perlen, &period) < 0 || period == 0)
                return bad_value(h, f, buf, len, CPU_MAX_FORM, err, errlen);
        if (unlimited)
                return 0;
        *ret = (double)quota / (double)period;
        return 1;
}

/* v1 cpu.cfs_quota_us ("-1": none) over cpu.cfs_period_us: as read_cpu_max_v2(). */
static int read_cpu_max_v1(struct hal_cgroup *h, char *buf, double *ret, char *err, size_t errlen) {
        struct cg_file *f = &h->files[F1_CFS_QUOTA];
        uint64_t quota = 0, period;
        bool unlimited;
        size_t len;
        int r;

        r = read_file(h, f, buf, &len, err, errlen);
        if (r <= 0)
                return r;
        value_of(buf, len, &len);
        if (parse_quota(buf, len, "-1", &unlimited, &quota) < 0)
                return bad_value(h, f, buf, len, "a quota in microseconds or -1", err, errlen);
        if (unlimited)
                return 0;
        f = &h->files[F1_CFS_PERIOD];
        r = read_u64(h, f, buf, false, &period, err, errlen);
        if (r <= 0)
                return r;
        if (period == 0)
                return bad_value(h, f, "0", 1, "a period over 0", err, errlen);
        *ret = (double)quota / (double)period;
        return 1;
}

static int sample_v2(struct hal_cgroup *h, struct hal_cgroup_sample *ret, char *err, size_t errlen) {
        struct hal_cgroup_sample s = { 0 };
        char buf[CG_FILE_MAX + 1], msg[256];
        size_t len;
        int r;

        /* cpu.stat is there whether or not the cpu controller is enabled. */
        r = read_file(h, &h->files[F2_CPU_STAT], buf, &len, err, errlen);
        if (r < 0)
                return r;
        if (r > 0) {
                r = hal_cgroup_parse_cpu_stat(buf, len, &s.cpu_usage_usec, msg, sizeof(msg));
                if (r < 0) {
                        char label[PATH_MAX];

                        plat_errf(err, errlen, "%s/cpu.stat: %s",
                                  dir_label(h, &h->dirs[0], label, sizeof(label)), msg);
                        return r;
                }
                s.present |= HAL_CG_CPU;
        }
        r = read_u64(h, &h->files[F2_MEM_CURRENT], buf, false, &s.mem_current_bytes, err, errlen);
        if (r < 0)
                return r;
        s.present |= r > 0 ? HAL_CG_MEM : 0;
        r = read_u64(h, &h->files[F2_MEM_MAX], buf, true, &s.mem_max_bytes, err, errlen);
        if (r < 0)
                return r;
        s.present |= r > 0 ? HAL_CG_MEM_MAX : 0;
        r = read_u64(h, &h->files[F2_PIDS_CURRENT], buf, false, &s.pids_current, err, errlen);
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

static int sample_v1(struct hal_cgroup *h, struct hal_cgroup_sample *ret, char *err, size_t errlen) {
        struct hal_cgroup_sample s = { 0 };
        char buf[CG_FILE_MAX + 1];
        uint64_t ns;
        int r;

        r = read_u64(h, &h->files[F1_CPUACCT_USAGE], buf, false, &ns, err, errlen);
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
        r = read_u64(h, &h->files[F1_MEM_USAGE], buf, false, &s.mem_current_bytes, err, errlen);
        if (r < 0)
                return r;
        s.present |= r > 0 ? HAL_CG_MEM : 0;
        r = read_u64(h, &h->files[F1_MEM_LIMIT], buf, false, &s.mem_max_bytes, err, errlen);
        if (r < 0)
                return r;
        if (r > 0) {
                if (s.mem_max_bytes >= V1_UNLIMITED_MIN)
                        s.mem_max_bytes = UINT64_MAX;
                s.present |= HAL_CG_MEM_MAX;
        }
        r = read_u64(h, &h->files[F1_PIDS_CURRENT], buf, false, &s.pids_current, err, errlen);
        if (r < 0)
                return r;
        s.present |= r > 0 ? HAL_CG_PIDS : 0;
        *ret = s;
        return 0;
}

static int open_v2(struct hal_cgroup *h, int root_fd, char *err, size_t errlen) {
        static const char *const names[F2_COUNT] = {
                [F2_CPU_STAT] = "cpu.stat",  [F2_MEM_CURRENT] = "memory.current",
                [F2_MEM_MAX] = "memory.max", [F2_PIDS_CURRENT] = "pids.current",
                [F2_CPU_MAX] = "cpu.max",
        };
        int r;

        r = add_dir(h, root_fd, "", err, errlen);
        if (r == -ENOENT)
                plat_errf(err, errlen, "/" CG_ROOT "/%s: no such cgroup", h->path);
        if (r < 0)
                return r;
        for (size_t i = 0; i < F2_COUNT; i++)
                set_file(h, i, names[i], 0);
        h->n_files = F2_COUNT;
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
                r = add_dir(h, root_fd, *hiers, err, errlen);
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

static int open_v1(struct hal_cgroup *h, int root_fd, char *err, size_t errlen) {
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
        set_file(h, F1_CPUACCT_USAGE, "cpuacct.usage", acct);
        set_file(h, F1_CFS_QUOTA, "cpu.cfs_quota_us", cpu);
        set_file(h, F1_CFS_PERIOD, "cpu.cfs_period_us", cpu);
        set_file(h, F1_MEM_USAGE, "memory.usage_in_bytes", mem);
        set_file(h, F1_MEM_LIMIT, "memory.limit_in_bytes", mem);
        set_file(h, F1_PIDS_CURRENT, "pids.current", pids);
        h->n_files = F1_COUNT;
        return 0;
}

int hal_cgroup_open(int root_fd, enum hal_cgroup_version v, const char *path, struct hal_cgroup **ret,
                    char *err, size_t errlen) {
        _cleanup_(hal_cgroup_closep) struct hal_cgroup *h = NULL;
        const char *rel;
        int r;

        r = check_path(path, &rel, err, errlen);
        if (r < 0)
                return r;
        if (v == HAL_CGROUP_NONE) {
                plat_errf(err, errlen, "no cgroup hierarchy on this host");
                return -EOPNOTSUPP;
        }
        if (v != HAL_CGROUP_V1 && v != HAL_CGROUP_V2) {
                plat_errf(err, errlen, "unknown cgroup version %d", (int)v);
                return -EINVAL;
        }
        h = calloc(1, sizeof(*h));
        if (!h || !(h->path = strdup(rel))) {
                plat_errf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        h->version = v;
        r = v == HAL_CGROUP_V2 ? open_v2(h, root_fd, err, errlen) : open_v1(h, root_fd, err, errlen);
        if (r < 0)
                return r;
        /* Open what is there now; a file that fails to open for another reason than being absent
         * is tried again, and reported, by the samples. */
        for (size_t i = 0; i < h->n_files; i++)
                if (h->files[i].dir >= 0)
                        (void)open_file(h, &h->files[i]);
        *ret = TAKE_PTR(h);
        return 0;
}

int hal_cgroup_sample(struct hal_cgroup *h, struct hal_cgroup_sample *ret, char *err, size_t errlen) {
        /* Enabling a controller in the parent's cgroup.subtree_control adds its files to cgroups
         * that exist already. */
        if (++h->samples % HAL_CGROUP_REPROBE_SAMPLES == 0)
                for (size_t i = 0; i < h->n_files; i++)
                        h->files[i].absent = false;
        for (size_t i = 0; i < h->n_dirs; i++)
                if (dir_removed(&h->dirs[i]))
                        return removed(h, &h->dirs[i], err, errlen);
        return h->version == HAL_CGROUP_V2 ? sample_v2(h, ret, err, errlen) : sample_v1(h, ret, err, errlen);
}

void hal_cgroup_close(struct hal_cgroup *h) {
        if (!h)
                return;
        for (size_t i = 0; i < h->n_files; i++)
                plat_closep(&h->files[i].fd);
        for (size_t i = 0; i < h->n_dirs; i++)
                plat_closep(&h->dirs[i].fd);
        free(h->path);
        free(h);
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
        _cleanup_(hal_cgroup_closep) struct hal_cgroup *h = NULL;
        int r;

        r = hal_cgroup_open(root_fd, v, path, &h, err, errlen);
        if (r < 0)
                return r;
        return hal_cgroup_sample(h, ret, err, errlen);
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

/* /proc/<pid>/cgroup into small (PID_FILE_SMALL bytes) when it fits, else into a heap buffer
 * (*ret_big, caller-freed); the file is printed in one piece, so one pread() is all of it. */
static int read_pid_file(int root_fd, const char *path, char *small, char **ret_big, const char **ret_buf,
                         size_t *ret_len) {
        /* Without its leading '/', the path stays under root_fd. */
        _cleanup_close_ int fd =
                openat(root_fd, root_fd == AT_FDCWD ? path : path + 1, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        int r;

        if (fd < 0)
                return -errno;
        r = plat_pread_once(fd, small, PID_FILE_SMALL, ret_len);
        if (r != -EFBIG) {
                *ret_buf = small;
                return r;
        }
        r = plat_read_file_at(root_fd, path, PID_FILE_MAX, ret_big, ret_len);
        *ret_buf = *ret_big;
        return r;
}

int hal_cgroup_of_pid(int root_fd, int32_t pid, char *ret_path, size_t len, char *err, size_t errlen) {
        _cleanup_free_ char *big = NULL;
        char path[32], msg[256], small[PID_FILE_SMALL];
        const char *buf = NULL;
        size_t n = 0;
        int r;

        if (pid <= 0) {
                plat_errf(err, errlen, "pid %" PRId32 " is not a process id", pid);
                return -EINVAL;
        }
        snprintf(path, sizeof(path), "/proc/%" PRId32 "/cgroup", pid);
        r = read_pid_file(root_fd, path, small, &big, &buf, &n);
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

/* v1 hierarchies a slot's processes may be found in, most likely first. */
static const char *const kill_v1_hiers[] = { "pids", "cpu,cpuacct", "cpuacct", "memory", "cpu", "freezer" };

/* SIGKILLs every pid listed in the cgroup's cgroup.procs (v1 has no cgroup.kill). A process that
 * forks meanwhile escapes this pass; the caller checks hal_cgroup_populated and tries again. */
static int kill_listed(int dir_fd, const char *label, char *err, size_t errlen) {
        _cleanup_free_ char *buf = NULL;
        size_t len;
        int r, n = 0;

        r = plat_read_file_at(dir_fd, "cgroup.procs", PID_FILE_MAX, &buf, &len);
        if (r < 0) {
                plat_errf(err, errlen, "%s/cgroup.procs: %s", label, strerror(-r));
                return r;
        }
        for (char *p = buf, *end; *p; p = end) {
                long pid = strtol(p, &end, 10);

                if (end == p)
                        break;
                if (pid > 1 && kill((pid_t)pid, SIGKILL) == 0)
                        n++;
        }
        return n;
}

/* Opens <root>/sys/fs/cgroup/<hier>/<path> as a directory to read and write in; -1 when absent. */
static int open_cgroup_rw(int root_fd, const char *hier, const char *path, char *label, size_t len) {
        char rel[PATH_MAX];

        rel_path(hier, path, rel, sizeof(rel));
        snprintf(label, len, "/%s", rel);
        return openat(root_fd, rel, O_DIRECTORY | O_CLOEXEC);
}

int hal_cgroup_normalize(const char *path, char *ret, size_t len) {
        char buf[PATH_MAX];
        size_t n = 0;
        int depth = 0;

        if (!path)
                return -EINVAL;
        for (const char *p = path; *p;) {
                size_t k = strcspn(p, "/");

                if (k == 2 && p[0] == '.' && p[1] == '.')
                        return -EINVAL;
                if (k > 0 && !(k == 1 && p[0] == '.')) {
                        if (n + (n > 0) + k >= sizeof(buf))
                                return -ENAMETOOLONG;
                        if (n > 0)
                                buf[n++] = '/';
                        memcpy(buf + n, p, k);
                        n += k;
                        depth++;
                }
                p += k;
                while (*p == '/')
                        p++;
        }
        if (n >= len)
                return -ENAMETOOLONG;
        memcpy(ret, buf, n);
        ret[n] = '\0';
        return depth;
}

int hal_cgroup_kill(int root_fd, const char *path, char *err, size_t errlen) {
        static const char *const v2_hiers[] = { "", "unified" };
        char label[PATH_MAX + 1];
        int r;

        r = check_path(path, &path, err, errlen);
        if (r < 0)
                return r;
        /* "." or "./." is the root as surely as "": its cgroup.kill would end every process. */
        if (hal_cgroup_normalize(path, label, sizeof(label)) <= 0) {
                plat_errf(err, errlen, "refusing to kill the root cgroup ('%s')", path);
                return -EINVAL;
        }
        for (size_t i = 0; i < ELEMENTSOF(v2_hiers); i++) {
                _cleanup_close_ int fd = open_cgroup_rw(root_fd, v2_hiers[i], path, label, sizeof(label));

                if (fd < 0)
                        continue;
                r = plat_write_file_at(fd, "cgroup.kill", "1", 1);
                if (r >= 0)
                        return 0;
                if (r != -ENOENT) {
                        plat_errf(err, errlen, "%s/cgroup.kill: %s", label, strerror(-r));
                        return r;
                }
                /* A kernel older than 5.14 has no cgroup.kill; cgroup.procs lists the pids. */
                return kill_listed(fd, label, err, errlen);
        }
        for (size_t i = 0; i < ELEMENTSOF(kill_v1_hiers); i++) {
                _cleanup_close_ int fd =
                        open_cgroup_rw(root_fd, kill_v1_hiers[i], path, label, sizeof(label));

                if (fd >= 0)
                        return kill_listed(fd, label, err, errlen);
        }
        return -ENOENT;
}

int hal_cgroup_populated(int root_fd, const char *path) {
        static const char *const hiers[] = { "", "unified", "pids", "cpu,cpuacct", "cpuacct", "memory" };
        char rel[PATH_MAX];

        if (check_path(path, &path, NULL, 0) < 0)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(hiers); i++) {
                _cleanup_free_ char *buf = NULL;
                size_t len;
                int r;

                rel_path(hiers[i], path, rel, sizeof(rel));
                strncat(rel, "/cgroup.procs", sizeof(rel) - strlen(rel) - 1);
                r = plat_read_file_at(root_fd, rel, PID_FILE_MAX, &buf, &len);
                if (r == -ENOENT || r == -ENOTDIR)
                        continue;
                if (r < 0)
                        return r;
                return strspn(buf, " \n") < len;
        }
        return -ENOENT;
}
