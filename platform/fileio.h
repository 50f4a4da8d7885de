/* fileio.h: bounded whole-file reads and atomic replaces relative to a directory fd (re-rootable for tests).
 */
#pragma once

#include <stdbool.h>
#include <dirent.h>
#include <stddef.h>
#include <sys/types.h>

/* Reads all of `path` (relative to dir_fd; AT_FDCWD or an absolute path work too) into a
 * NUL-terminated buffer. Fails with -EFBIG if the file holds more than max_bytes, leaving
 * nothing half-read. On success *ret_buf is caller-freed and *ret_len excludes the NUL. */
int plat_read_file_at(int dir_fd, const char *path, size_t max_bytes, char **ret_buf, size_t *ret_len);

/* Opens `path` (relative to dir_fd) as a directory stream for readdir(). 0 and *ret (caller
 * closes, e.g. with _cleanup_closedir_), or -errno (-ENOENT when it does not exist). */
int plat_opendir_at(int dir_fd, const char *path, DIR **ret);

/* Opens `path` as a directory fd (O_PATH|O_DIRECTORY|O_CLOEXEC); returns the fd or -errno. */
int plat_open_dir(const char *path);

/* Re-reading a small file through an fd kept open, with pread() at offset 0: procfs seq files and
 * cgroupfs attributes print their content afresh on every read from offset 0. The caller's buffer
 * of `size` bytes takes at most size - 1 bytes and a NUL after them; a file that fills it is
 * -EFBIG (the buffer holds a cut-off copy then, and *ret_len is not written). */

/* Reads until pread() returns 0. Any file: seq files that print one record per item (/proc/net/dev,
 * a line per interface) hand out about a page per call. */
int plat_pread_all(int fd, char *buf, size_t size, size_t *ret_len);

/* One pread(): a short read is the whole file. Only for regular files and for virtual files the
 * kernel prints in one piece (cgroupfs attributes, /proc/stat, /proc/meminfo, /proc/<pid>/cgroup),
 * where it saves the second call that would only find EOF. */
int plat_pread_once(int fd, char *buf, size_t size, size_t *ret_len);

/* One file read again and again (a /proc file sampled every tick): opened relative to dir_fd on the
 * first read, kept open, read with pread() into a buffer that is kept and grows to fit. After a
 * failed open or read the next read opens the file again. Members are private. */
struct plat_file {
        int dir_fd;       /* borrowed */
        const char *path; /* borrowed; a leading '/' stays under dir_fd */
        size_t max_bytes;
        bool once; /* plat_pread_once() suffices (see above) */
        int fd;    /* -1 while closed */
        char *buf; /* owned, cap bytes */
        size_t cap;
};

/* Sets f up closed; nothing to fail. `once`: the file is one of those plat_pread_once() reads. */
void plat_file_init(struct plat_file *f, int dir_fd, const char *path, size_t max_bytes, bool once);

/* The whole file, NUL-terminated, in *ret_buf (borrowed: valid until the next read or done).
 * -EFBIG when it holds more than max_bytes, -ENOMEM, or -errno of the open or the read. */
int plat_file_read(struct plat_file *f, const char **ret_buf, size_t *ret_len);

/* Closes the file and frees the buffer; f may be read again (it reopens). */
void plat_file_done(struct plat_file *f);

/* Writes buf to the existing file `path` under dir_fd in one write(2) (no create, no truncate):
 * for kernel control files such as cgroup.kill. -errno; a short write is -EIO. */
int plat_write_file_at(int dir_fd, const char *path, const void *buf, size_t len);

/* Replaces dir_fd/name with the len bytes at buf, all or nothing: they go to a temporary file
 * beside it (name.tmp.XXXXXX, mode `mode` regardless of the umask), which is fsync'ed, renamed
 * over name, and the directory fsync'ed, so that after a crash name holds either the old or the
 * new content, never a mix. `name` is a plain file name (no '/'): -EINVAL otherwise. dir_fd may be
 * an O_PATH fd (plat_open_dir) or AT_FDCWD. Returns 0 or -errno; on failure the temporary file
 * is removed and name is untouched. */
int plat_write_atomic_at(int dir_fd, const char *name, const void *buf, size_t len, mode_t mode);
