/* cgroup_internal.h: what cgroup.c and its version files (cgroup_v2.c, cgroup_v1.c, cgroup_procs.c)
 * share; not for other modules. */
#pragma once

#include "cgroup.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CG_ROOT "sys/fs/cgroup" /* relative: openat() must stay under root_fd */
/* Flat-keyed files are a dozen lines; single values a word. */
#define CG_FILE_MAX 16384

/* v1 hierarchies: cpuacct, cpu, memory, pids (one directory when they are mounted together). */
#define CG_MAX_DIRS 4
#define CG_MAX_FILES 6

struct cg_dir {
        int fd;             /* O_PATH directory of the cgroup in one hierarchy */
        const char *hier;   /* mount name under /sys/fs/cgroup ("" on v2); static */
        bool check_removed; /* not on cgroupfs: see dir_removed() in cgroup.c */
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

/* Splits off the leading '/' and refuses paths that could leave the hierarchy. */
int hal_cgroup__check_path(const char *path, const char **ret, char *err, size_t errlen);
/* "sys/fs/cgroup[/<hier>][/<path>]", relative to the root. */
void hal_cgroup__rel_path(const char *hier, const char *path, char *buf, size_t len);
/* "/sys/fs/cgroup/<hier>/<path>" of a directory, for messages. */
const char *hal_cgroup__dir_label(const struct hal_cgroup *h, const struct cg_dir *d, char *buf, size_t len);
/* Adds the directory of the cgroup in hierarchy `hier` as dirs[n_dirs]; -ENOENT when absent. */
int hal_cgroup__add_dir(struct hal_cgroup *h, int root_fd, const char *hier, char *err, size_t errlen);
/* Names files[id]: `name` (static) in dirs[dir], -1 when that hierarchy lacks the cgroup. */
void hal_cgroup__set_file(struct hal_cgroup *h, size_t id, const char *name, int dir);
/* Reads a file of the cgroup into buf (CG_FILE_MAX + 1 bytes): 1 with its length, 0 when absent
 * (controller not enabled there), -ENOENT when the cgroup was removed, -errno with err naming the
 * file. */
int hal_cgroup__read_file(struct hal_cgroup *h, struct cg_file *f, char *buf, size_t *ret_len, char *err,
                          size_t errlen);
/* The one value of a single-value file, without its newline. */
void hal_cgroup__value_of(const char *buf, size_t len, size_t *ret_len);
/* -EPROTO with err saying the file's value is not `what`. */
int hal_cgroup__bad_value(const struct hal_cgroup *h, const struct cg_file *f, const char *buf, size_t len,
                          const char *what, char *err, size_t errlen);
/* A decimal file; with `max_word`, the word "max" (v2 for "no limit") reads as UINT64_MAX. buf is
 * the caller's scratch space of CG_FILE_MAX + 1 bytes. As hal_cgroup__read_file(). */
int hal_cgroup__read_u64(struct hal_cgroup *h, struct cg_file *f, char *buf, bool max_word, uint64_t *ret,
                         char *err, size_t errlen);
/* A CPU quota in microseconds, or the word `unlimited` (v2 "max", v1 "-1") for no quota. */
int hal_cgroup__parse_quota(const char *s, size_t len, const char *unlimited, bool *ret_unlimited,
                            uint64_t *ret_quota);

/* Each version: open_*() finds the cgroup's directories and names its files; sample_*() reads them. */
int hal_cgroup__open_v2(struct hal_cgroup *h, int root_fd, char *err, size_t errlen);
int hal_cgroup__sample_v2(struct hal_cgroup *h, struct hal_cgroup_sample *ret, char *err, size_t errlen);
int hal_cgroup__open_v1(struct hal_cgroup *h, int root_fd, char *err, size_t errlen);
int hal_cgroup__sample_v1(struct hal_cgroup *h, struct hal_cgroup_sample *ret, char *err, size_t errlen);
