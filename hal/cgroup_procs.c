/* cgroup_procs.c: the processes of a cgroup: which cgroup a pid is in, killing all of a cgroup's
 * processes, whether any are left; and the canonical spelling of a cgroup path. */
#include "cgroup_internal.h"

#include "cleanup.h"
#include "fileio.h"
#include "strutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* /proc/<pid>/cgroup: a line per hierarchy (at most 16 v1 controllers plus named ones), each
 * with a path of up to PATH_MAX. */
#define PID_FILE_MAX (64 * 1024)
/* Most /proc/<pid>/cgroup files are a few hundred bytes: read on the stack, the rest on the heap. */
#define PID_FILE_SMALL 4096

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

        hal_cgroup__rel_path(hier, path, rel, sizeof(rel));
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

        r = hal_cgroup__check_path(path, &path, err, errlen);
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

        if (hal_cgroup__check_path(path, &path, NULL, 0) < 0)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(hiers); i++) {
                _cleanup_free_ char *buf = NULL;
                size_t len;
                int r;

                hal_cgroup__rel_path(hiers[i], path, rel, sizeof(rel));
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
