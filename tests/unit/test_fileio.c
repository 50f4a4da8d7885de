/* test_fileio.c: bounded reads relative to a root directory fd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cleanup.h"
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/ra-test-fileio-XXXXXX";

static void put(const char *name, const char *content, size_t len) {
        char p[256];
        int fd;

        snprintf(p, sizeof(p), "%s/%s", dir, name);
        fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, content, len), (ssize_t)len);
        close(fd);
}

static void test_reads_whole_file_relative_to_root_even_with_leading_slash(void **state) {
        _cleanup_close_ int root = plat_open_dir(dir);
        char *buf = NULL;
        size_t len = 0;

        (void)state;
        put("stat", "cpu 1 2 3\n", 10);
        assert_int_equal(plat_read_file_at(root, "/stat", 100, &buf, &len), 0);
        assert_int_equal(len, 10);
        assert_string_equal(buf, "cpu 1 2 3\n");
        free(buf);
}

static void test_limit_is_exact_and_oversize_is_efbig(void **state) {
        _cleanup_close_ int root = plat_open_dir(dir);
        char *big = malloc(10000), *buf = NULL;
        size_t len = 0;

        (void)state;
        memset(big, 'a', 10000);
        put("big", big, 10000);
        assert_int_equal(plat_read_file_at(root, "big", 10000, &buf, &len), 0);
        assert_int_equal(len, 10000);
        assert_int_equal(buf[10000], '\0');
        free(buf);
        buf = NULL;
        assert_int_equal(plat_read_file_at(root, "big", 9999, &buf, &len), -EFBIG);
        assert_null(buf);
        put("empty", "", 0);
        assert_int_equal(plat_read_file_at(root, "empty", 0, &buf, &len), 0);
        assert_int_equal(len, 0);
        free(buf);
        free(big);
}

static void test_missing_file_and_missing_dir_give_errno(void **state) {
        _cleanup_close_ int root = plat_open_dir(dir);
        char *buf = NULL;

        (void)state;
        assert_int_equal(plat_read_file_at(root, "nope", 10, &buf, NULL), -ENOENT);
        assert_int_equal(plat_open_dir("/nonexistent-dir"), -ENOENT);
        /* procfs files report size 0 yet have content: reads must not trust st_size. */
        assert_int_equal(plat_read_file_at(AT_FDCWD, "/proc/self/stat", 4096, &buf, NULL), 0);
        assert_true(strlen(buf) > 10);
        free(buf);
}

static int setup(void **state) {
        (void)state;
        return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
        char cmd[128];

        (void)state;
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        return system(cmd);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_reads_whole_file_relative_to_root_even_with_leading_slash),
                cmocka_unit_test(test_limit_is_exact_and_oversize_is_efbig),
                cmocka_unit_test(test_missing_file_and_missing_dir_give_errno),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
