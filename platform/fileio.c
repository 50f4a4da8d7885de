/* fileio.c: bounded whole-file reads relative to a directory fd (re-rootable for tests). */
#include "fileio.h"

#include "cleanup.h"

#include <errno.h>
#include <fcntl.h>
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
