/* cgroup.c: a slot's resource usage from its cgroup: opening, reading its files, version detection;
 * the files of each version are in cgroup_v2.c and cgroup_v1.c. */
#include "cgroup_internal.h"

#include "cleanup.h"
#include "fileio.h"
#include "strutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>

DEFINE_TRIVIAL_CLEANUP_FUNC(struct hal_cgroup *, hal_cgroup_close)

/* Splits off the leading '/' and refuses paths that could leave the hierarchy. */
int hal_cgroup__check_path(const char *path, const char **ret, char *err, size_t errlen) {
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
void hal_cgroup__rel_path(const char *hier, const char *path, char *buf, size_t len) {
        snprintf(buf, len, CG_ROOT "%s%s%s%s", *hier ? "/" : "", hier, *path ? "/" : "", path);
}

/* "/sys/fs/cgroup/<hier>/<path>" of a directory, for messages. */
const char *hal_cgroup__dir_label(const struct hal_cgroup *h, const struct cg_dir *d, char *buf,
                                  size_t len) {
        buf[0] = '/';
        hal_cgroup__rel_path(d->hier, h->path, buf + 1, len - 1);
        return buf;
}

/* Opens <root>/sys/fs/cgroup/<hier>/<path> (hier may be ""); -ENOENT when it does not exist. */
static int open_cgroup(int root_fd, const char *hier, const char *path, int *ret_fd, char *err,
                       size_t errlen) {
        char rel[PATH_MAX];
        int fd, r;

        hal_cgroup__rel_path(hier, path, rel, sizeof(rel));
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
int hal_cgroup__add_dir(struct hal_cgroup *h, int root_fd, const char *hier, char *err, size_t errlen) {
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

void hal_cgroup__set_file(struct hal_cgroup *h, size_t id, const char *name, int dir) {
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

        plat_errf(err, errlen, "%s: cgroup was removed", hal_cgroup__dir_label(h, d, label, sizeof(label)));
        return -ENOENT;
}

/* Outside cgroupfs, a removed directory shows only in its link count. */
static bool dir_removed(const struct cg_dir *d) {
        struct stat st;

        return d->check_removed && fstat(d->fd, &st) == 0 && st.st_nlink == 0;
}

static int file_error(const struct hal_cgroup *h, const struct cg_file *f, int r, char *err, size_t errlen) {
        char label[PATH_MAX];

        hal_cgroup__dir_label(h, &h->dirs[f->dir], label, sizeof(label));
        if (r == -EFBIG)
                plat_errf(err, errlen, "%s/%s: larger than %d bytes", label, f->name, CG_FILE_MAX);
        else
                plat_errf(err, errlen, "%s/%s: %s", label, f->name, strerror(-r));
        return r;
}

/* Reads a file of the cgroup into buf (CG_FILE_MAX + 1 bytes): 1 with its length, 0 when absent
 * (controller not enabled there), -ENOENT when the cgroup was removed, -errno with err naming the
 * file. A file that could not be opened is tried again on every read. */
int hal_cgroup__read_file(struct hal_cgroup *h, struct cg_file *f, char *buf, size_t *ret_len, char *err,
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
void hal_cgroup__value_of(const char *buf, size_t len, size_t *ret_len) {
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
                len--;
        *ret_len = len;
}

int hal_cgroup__bad_value(const struct hal_cgroup *h, const struct cg_file *f, const char *buf, size_t len,
                          const char *what, char *err, size_t errlen) {
        char label[PATH_MAX], q[PLAT_QUOTE_MAX];

        plat_errf(err, errlen, "%s/%s: '%s' is not %s",
                  hal_cgroup__dir_label(h, &h->dirs[f->dir], label, sizeof(label)), f->name,
                  plat_quote(buf, len, q), what);
        return -EPROTO;
}

/* A decimal file; with `max_word`, the word "max" (v2 for "no limit") reads as UINT64_MAX. buf is
 * the caller's scratch space of CG_FILE_MAX + 1 bytes. */
int hal_cgroup__read_u64(struct hal_cgroup *h, struct cg_file *f, char *buf, bool max_word, uint64_t *ret,
                         char *err, size_t errlen) {
        size_t len;
        int r;

        r = hal_cgroup__read_file(h, f, buf, &len, err, errlen);
        if (r <= 0)
                return r;
        hal_cgroup__value_of(buf, len, &len);
        if (max_word && len == 3 && memcmp(buf, "max", 3) == 0) {
                *ret = UINT64_MAX;
                return 1;
        }
        if (plat_parse_u64(buf, len, ret) < 0)
                return hal_cgroup__bad_value(h, f, buf, len,
                                             max_word ? "a byte count or 'max'" : "a decimal number", err,
                                             errlen);
        return 1;
}

/* A CPU quota in microseconds, or the word `unlimited` (v2 "max", v1 "-1") for no quota. */
int hal_cgroup__parse_quota(const char *s, size_t len, const char *unlimited, bool *ret_unlimited,
                            uint64_t *ret_quota) {
        if (len == strlen(unlimited) && memcmp(s, unlimited, len) == 0) {
                *ret_unlimited = true;
                return 0;
        }
        *ret_unlimited = false;
        return plat_parse_u64(s, len, ret_quota);
}

int hal_cgroup_open(int root_fd, enum hal_cgroup_version v, const char *path, struct hal_cgroup **ret,
                    char *err, size_t errlen) {
        _cleanup_(hal_cgroup_closep) struct hal_cgroup *h = NULL;
        const char *rel;
        int r;

        r = hal_cgroup__check_path(path, &rel, err, errlen);
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
        r = v == HAL_CGROUP_V2 ? hal_cgroup__open_v2(h, root_fd, err, errlen)
                               : hal_cgroup__open_v1(h, root_fd, err, errlen);
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
        return h->version == HAL_CGROUP_V2 ? hal_cgroup__sample_v2(h, ret, err, errlen)
                                           : hal_cgroup__sample_v1(h, ret, err, errlen);
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
