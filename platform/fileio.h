/* fileio.h: bounded whole-file reads relative to a directory fd (re-rootable for tests). */
#pragma once

#include <stddef.h>

/* Reads all of `path` (relative to dir_fd; AT_FDCWD or an absolute path work too) into a
 * NUL-terminated buffer. Fails with -EFBIG if the file holds more than max_bytes, leaving
 * nothing half-read. On success *ret_buf is caller-freed and *ret_len excludes the NUL. */
int plat_read_file_at(int dir_fd, const char *path, size_t max_bytes, char **ret_buf, size_t *ret_len);

/* Opens `path` as a directory fd (O_PATH|O_DIRECTORY|O_CLOEXEC); returns the fd or -errno. */
int plat_open_dir(const char *path);
