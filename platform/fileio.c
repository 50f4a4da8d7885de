/* fileio.c: bounded whole-file reads and atomic replaces relative to a directory fd (re-rootable for tests).
 */
#include "fileio.h"

#include "cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

int plat_read_file_at(int dir_fd, const char *path, size_t max_bytes, char **ret_buf, size_t *ret_len) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap = 4096;

        /* Skip a leading '/' so "/proc/stat" resolves under dir_fd, never the real root. */
        if (dir_fd != AT_FDCWD)
                while (*path == '/')
                        path++;
        fd = openat(dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        /* Room for max_bytes, one byte more to detect an oversized file, and the NUL. */
        if (cap > max_bytes + 2)
                cap = max_bytes + 2;
        buf = malloc(cap);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n;

                if (len + 1 >= cap) {
                        char *nb;

                        if (cap >= max_bytes + 2)
                                break;
                        cap = cap * 2 > max_bytes + 2 ? max_bytes + 2 : cap * 2;
                        nb = realloc(buf, cap);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                }
                n = read(fd, buf + len, cap - 1 - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        if (len > max_bytes)
                return -EFBIG;
        buf[len] = '\0';
        *ret_buf = TAKE_PTR(buf);
        if (ret_len)
                *ret_len = len;
        return 0;
}

int plat_opendir_at(int dir_fd, const char *path, DIR **ret) {
        _cleanup_close_ int fd = openat(dir_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d;

        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d)
                return -errno;
        TAKE_FD(fd); /* d owns it now */
        *ret = d;
        return 0;
}

int plat_open_dir(const char *path) {
        int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

static int pread_from_start(int fd, char *buf, size_t size, bool to_eof, size_t *ret_len) {
        size_t len = 0;

        if (size == 0)
                return -EINVAL; /* no room for the NUL */
        for (;;) {
                ssize_t n = pread(fd, buf + len, size - len, (off_t)len);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                len += (size_t)n;
                /* Full: the NUL has no room, and there may be more. */
                if (len == size)
                        return -EFBIG;
                if (n == 0 || !to_eof)
                        break;
        }
        buf[len] = '\0';
        *ret_len = len;
        return 0;
}

int plat_pread_all(int fd, char *buf, size_t size, size_t *ret_len) {
        return pread_from_start(fd, buf, size, true, ret_len);
}

int plat_pread_once(int fd, char *buf, size_t size, size_t *ret_len) {
        return pread_from_start(fd, buf, size, false, ret_len);
}

/* Room for the first read of a /proc file: /proc/stat of a small host, meminfo, net/dev. */
#define PLAT_FILE_FIRST_CAP 4096

void plat_file_init(struct plat_file *f, int dir_fd, const char *path, size_t max_bytes, bool once) {
        /* Skip a leading '/' so "/proc/stat" resolves under dir_fd, never the real root. */
        if (dir_fd != AT_FDCWD)
                while (*path == '/')
                        path++;
        *f = (struct plat_file){
                .dir_fd = dir_fd, .path = path, .max_bytes = max_bytes, .once = once, .fd = -1
        };
}

/* Makes the buffer ready for a read: its first allocation, or twice as large up to max_bytes + 1.
 * Grown, never shrunk: a file that outgrew it once will again. */
static int file_grow(struct plat_file *f) {
        size_t cap;
        char *nb;

        if (!f->buf)
                cap = f->max_bytes < PLAT_FILE_FIRST_CAP ? f->max_bytes + 1 : PLAT_FILE_FIRST_CAP;
        else
                cap = f->cap > f->max_bytes / 2 ? f->max_bytes + 1 : f->cap * 2;
        nb = realloc(f->buf, cap);
        if (!nb)
                return -ENOMEM;
        f->buf = nb;
        f->cap = cap;
        return 0;
}

int plat_file_read(struct plat_file *f, const char **ret_buf, size_t *ret_len) {
        size_t len = 0;
        int r;

        if (f->fd < 0) {
                f->fd = openat(f->dir_fd, f->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (f->fd < 0)
                        return -errno;
        }
        if (!f->buf) {
                r = file_grow(f);
                if (r < 0)
                        return r;
        }
        for (;;) {
                r = f->once ? plat_pread_once(f->fd, f->buf, f->cap, &len)
                            : plat_pread_all(f->fd, f->buf, f->cap, &len);
                if (r != -EFBIG || f->cap > f->max_bytes)
                        break;
                /* Virtual files are printed afresh by the next read: starting over loses nothing. */
                r = file_grow(f);
                if (r < 0)
                        return r;
        }
        if (r < 0) {
                /* A failed read may mean the file went away under us: open it afresh next time. */
                if (r != -EFBIG) {
                        close(f->fd);
                        f->fd = -1;
                }
                return r;
        }
        *ret_buf = f->buf;
        *ret_len = len;
        return 0;
}

void plat_file_done(struct plat_file *f) {
        plat_closep(&f->fd);
        f->fd = -1;
        free(f->buf);
        f->buf = NULL;
        f->cap = 0;
}

static int write_all(int fd, const char *p, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, p, len);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

/* Opens a fresh name.tmp.XXXXXX beside name; ret_tmp gets its name. Random suffixes, not a
 * counter: two writers of one directory must not meet on a name. */
static int open_temp_at(int dir_fd, const char *name, mode_t mode, char *ret_tmp, size_t tmp_len) {
        for (int tries = 0; tries < 16; tries++) {
                uint32_t rnd;
                int fd;

                if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
                        rnd = (uint32_t)getpid() * 2654435761u + (uint32_t)tries;
                snprintf(ret_tmp, tmp_len, "%s.tmp.%06x", name, rnd & 0xffffffu);
                fd = openat(dir_fd, ret_tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, mode);
                if (fd >= 0)
                        return fd;
                if (errno != EEXIST)
                        return -errno;
        }
        return -EEXIST;
}

int plat_write_atomic_at(int dir_fd, const char *name, const void *buf, size_t len, mode_t mode) {
        _cleanup_close_ int fd = -1, dfd = -1;
        char tmp[NAME_MAX + 1];
        int r;

        if (!name || !*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..") ||
            strlen(name) + sizeof(".tmp.XXXXXX") > sizeof(tmp))
                return -EINVAL;
        /* The directory fd to fsync: an O_PATH fd has no fsync, so open it for reading. */
        dfd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        fd = open_temp_at(dfd, name, mode, tmp, sizeof(tmp));
        if (fd < 0)
                return fd;
        r = write_all(fd, buf, len);
        /* The umask applied at creation; the caller asked for exactly `mode`. */
        if (r >= 0 && fchmod(fd, mode) < 0)
                r = -errno;
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && close(TAKE_FD(fd)) < 0)
                r = -errno;
        if (r >= 0 && renameat(dfd, tmp, dfd, name) < 0)
                r = -errno;
        if (r < 0) {
                (void)unlinkat(dfd, tmp, 0);
                return r;
        }
        /* The rename is durable only once the directory is. */
        if (fsync(dfd) < 0)
                return -errno;
        return 0;
}

int plat_write_file_at(int dir_fd, const char *path, const void *buf, size_t len) {
        _cleanup_close_ int fd = openat(dir_fd, path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        ssize_t n;

        if (fd < 0)
                return -errno;
        n = write(fd, buf, len);
        if (n < 0)
                return -errno;
        return (size_t)n == len ? 0 : -EIO;
}
