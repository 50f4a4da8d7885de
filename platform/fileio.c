/* fileio.c: bounded whole-file reads relative to a directory fd (re-rootable for tests). */
#include "fileio.h"

#include "cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
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
