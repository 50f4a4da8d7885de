/* testutil.c: helpers the unit tests share: fixture host roots, scratch host trees, unterminated copies. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "testutil.h"

#include "cleanup.h"
#include "fileio.h"
#include "strutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int tu_open_host(const char *host) {
        char path[PATH_MAX];
        int fd;

        snprintf(path, sizeof(path), "%s/hosts/%s", RA_FIXTURES, host);
        fd = plat_open_dir(path);
        assert_true(fd >= 0);
        return fd;
}

char *tu_copy_unterminated(const char *s, size_t len) {
        char *copy = malloc(len > 0 ? len : 1);

        assert_non_null(copy);
        memcpy(copy, s, len);
        return copy;
}

int tu_scratch_setup(void **state) {
        struct tu_scratch *s = calloc(1, sizeof(*s));
        int n;

        assert_non_null(s);
        /* Named after the test program, so a tree left by a crash says whose it is. */
        n = snprintf(s->path, sizeof(s->path), "/tmp/%s.XXXXXX", program_invocation_short_name);
        assert_true(n > 0 && (size_t)n < sizeof(s->path));
        assert_non_null(mkdtemp(s->path));
        s->fd = plat_open_dir(s->path);
        assert_true(s->fd >= 0);
        *state = s;
        return 0;
}

int tu_scratch_teardown(void **state) {
        struct tu_scratch *s = *state;

        close(s->fd);
        tu_rm_rf(s->path);
        free(s);
        return 0;
}

/* True for "/tmp/<name>[/<name>...]" with no empty, "." or ".." component: a path that cannot
 * name /tmp itself, / or anything outside /tmp. */
static bool is_below_tmp(const char *path) {
        const char *p;

        if (!path || strncmp(path, "/tmp/", 5) != 0)
                return false;
        for (p = path + 5;;) {
                size_t len = strcspn(p, "/");

                if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
                        return false;
                if (p[len] == '\0')
                        return true;
                p += len + 1;
        }
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        (void)st;
        (void)type;
        (void)ftw;
        return remove(path);
}

void tu_rm_rf(const char *path) {
        if (!is_below_tmp(path))
                fail_msg("refusing to remove '%s': not a tree below /tmp/", path ? path : "(null)");
        assert_int_equal(nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT), 0);
}

void tu_mkparents(int root, const char *path) {
        char dir[PATH_MAX];

        plat_strlcpy(dir, path, sizeof(dir));
        for (char *p = strchr(dir, '/'); p; p = strchr(p + 1, '/')) {
                *p = '\0';
                if (mkdirat(root, dir, 0755) < 0)
                        assert_int_equal(errno, EEXIST);
                *p = '/';
        }
}

void tu_put(int root, const char *path, const char *content) {
        tu_put_bytes(root, path, content, strlen(content));
}

void tu_put_bytes(int root, const char *path, const char *content, size_t len) {
        _cleanup_close_ int fd = -1;

        tu_mkparents(root, path);
        fd = openat(root, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, content, len), (ssize_t)len);
}

static unsigned skipped;

void tu_note_skip(const char *test, const char *fmt, ...) {
        const char *log = getenv("RA_SKIP_LOG"), *name = program_invocation_short_name;
        char why[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        skipped++;
        fprintf(stderr, "SKIP: %s: %s: %s\n", program_invocation_short_name, test, why);
        if (log && *log) {
                FILE *f = fopen(log, "ae");

                /* A log that cannot be written must not pass for "nothing skipped". */
                assert_non_null(f);
                if (strncmp(name, "test_", 5) == 0)
                        name += 5;
                fprintf(f, "unit.%s\t%s\t%s\n", name, test, why);
                assert_int_equal(fclose(f), 0);
        }
}

int tu_exit_status(int failed) {
        if (failed)
                return failed;
        return skipped ? 77 : 0;
}

uint64_t tu_xorshift64(uint64_t *state) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        return *state;
}

unsigned tu_dir_entries(const char *path) {
        DIR *d = opendir(path);
        struct dirent *e;
        unsigned n = 0;

        if (!d)
                fail_msg("cannot open %s: %s", path, strerror(errno));
        while ((e = readdir(d)))
                n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
        closedir(d);
        return n;
}
