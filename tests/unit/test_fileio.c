/* test_fileio.c: bounded reads relative to a root directory fd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cleanup.h"
#include "fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

static void test_pread_all_reads_from_offset_zero_whatever_the_file_position(void **state) {
        _cleanup_close_ int root = plat_open_dir(dir);
        _cleanup_close_ int fd = -1;
        char buf[64];
        size_t len = 0;

        (void)state;
        put("values", "4294967296\n", 11);
        fd = openat(root, "values", O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(lseek(fd, 5, SEEK_SET), 5);
        assert_int_equal(plat_pread_all(fd, buf, sizeof(buf), &len), 0);
        assert_int_equal(len, 11);
        assert_string_equal(buf, "4294967296\n");
        /* Rewritten in place (as cgroupfs and procfs print afresh): the same fd reads the new text. */
        put("values", "7\n", 2);
        assert_int_equal(plat_pread_once(fd, buf, sizeof(buf), &len), 0);
        assert_int_equal(len, 2);
        assert_string_equal(buf, "7\n");
        assert_int_equal(plat_pread_all(fd, buf, sizeof(buf), &len), 0);
        assert_string_equal(buf, "7\n");
}

static void test_pread_limit_keeps_room_for_the_nul_and_full_is_efbig(void **state) {
        _cleanup_close_ int root = plat_open_dir(dir);
        _cleanup_close_ int fd = -1;
        char buf[8];
        size_t len = 99;

        (void)state;
        put("seven", "1234567", 7);
        fd = openat(root, "seven", O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(plat_pread_all(fd, buf, 8, &len), 0);
        assert_int_equal(len, 7);
        assert_string_equal(buf, "1234567");
        assert_int_equal(plat_pread_once(fd, buf, 8, &len), 0);
        assert_int_equal(len, 7);
        len = 99;
        assert_int_equal(plat_pread_all(fd, buf, 7, &len), -EFBIG);
        assert_int_equal(plat_pread_once(fd, buf, 7, &len), -EFBIG);
        assert_int_equal(len, 99);
        assert_int_equal(plat_pread_once(fd, buf, 0, &len), -EINVAL);
        put("seven", "", 0);
        assert_int_equal(plat_pread_all(fd, buf, 1, &len), 0);
        assert_int_equal(len, 0);
        assert_string_equal(buf, "");
}

static void test_pread_errors_are_errno(void **state) {
        _cleanup_close_ int root = plat_open_dir(dir);
        char buf[16];
        size_t len;

        (void)state;
        assert_int_equal(plat_pread_all(-1, buf, sizeof(buf), &len), -EBADF);
        /* An O_PATH directory fd has no read. */
        assert_int_equal(plat_pread_once(root, buf, sizeof(buf), &len), -EBADF);
}

static void test_pread_all_gets_every_page_of_a_seq_file_one_pread_gets_one(void **state) {
        _cleanup_close_ int fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
        _cleanup_free_ char *buf = malloc(1 << 22);
        size_t all = 0, once = 0;

        (void)state;
        assert_true(fd >= 0);
        assert_non_null(buf);
        /* A record per mapping: far more than a page, handed out about a page per read. */
        assert_int_equal(plat_pread_all(fd, buf, 1 << 22, &all), 0);
        assert_true(all > 4096);
        assert_int_equal(buf[all - 1], '\n');
        assert_int_equal(strlen(buf), all);
        assert_int_equal(plat_pread_once(fd, buf, 1 << 22, &once), 0);
        assert_true(once < all);
}

static void test_file_keeps_fd_grows_buffer_and_reopens_after_failure(void **state) {
        _cleanup_close_ int root = plat_open_dir(dir);
        _cleanup_free_ char *big = malloc(10000);
        struct plat_file f;
        const char *buf;
        size_t len;

        (void)state;
        assert_non_null(big);
        plat_file_init(&f, root, "/later", 10000, true);
        assert_int_equal(plat_file_read(&f, &buf, &len), -ENOENT);
        put("later", "one\n", 4);
        assert_int_equal(plat_file_read(&f, &buf, &len), 0);
        assert_int_equal(len, 4);
        assert_string_equal(buf, "one\n");
        /* Past the first buffer: it grows, and the same fd sees the new content. */
        memset(big, 'b', 10000);
        put("later", big, 10000);
        assert_int_equal(plat_file_read(&f, &buf, &len), 0);
        assert_int_equal(len, 10000);
        assert_int_equal(buf[10000], '\0');
        put("later", big, 9000);
        assert_int_equal(plat_file_read(&f, &buf, &len), 0);
        assert_int_equal(len, 9000);
        plat_file_done(&f);

        /* Over max_bytes is -EFBIG, and the file can still be read once it shrinks. */
        put("later", big, 10000);
        plat_file_init(&f, root, "later", 9999, false);
        assert_int_equal(plat_file_read(&f, &buf, &len), -EFBIG);
        put("later", "two\n", 4);
        assert_int_equal(plat_file_read(&f, &buf, &len), 0);
        assert_string_equal(buf, "two\n");
        plat_file_done(&f);
        plat_file_done(&f); /* twice is harmless */
}

static void test_file_reads_a_proc_file_again_and_again(void **state) {
        _cleanup_close_ int root = plat_open_dir("/");
        struct plat_file f;
        const char *buf;
        size_t len;

        (void)state;
        plat_file_init(&f, root, "/proc/self/stat", 4096, true);
        for (int i = 0; i < 3; i++) {
                assert_int_equal(plat_file_read(&f, &buf, &len), 0);
                assert_true(len > 10);
                assert_int_equal(buf[len - 1], '\n');
        }
        plat_file_done(&f);
}

/* Names in the test directory that hold ".tmp.": temporary files left behind. */
static int count_temp_files(void) {
        DIR *d = opendir(dir);
        struct dirent *de;
        int n = 0;

        assert_non_null(d);
        while ((de = readdir(d)))
                if (strstr(de->d_name, ".tmp."))
                        n++;
        closedir(d);
        return n;
}

static void test_write_atomic_creates_and_replaces_with_exact_mode_and_no_temp_left(void **state) {
        _cleanup_close_ int root = plat_open_dir(dir);
        mode_t old_umask = umask(077);
        char *buf = NULL;
        struct stat st;
        size_t len = 0;

        (void)state;
        assert_int_equal(plat_write_atomic_at(root, "state.json", "{\"v\":1}", 7, 0644), 0);
        umask(old_umask);
        assert_int_equal(plat_read_file_at(root, "state.json", 100, &buf, &len), 0);
        assert_string_equal(buf, "{\"v\":1}");
        free(buf);
        assert_int_equal(fstatat(root, "state.json", &st, 0), 0);
        assert_int_equal(st.st_mode & 07777, 0644); /* not narrowed by the umask */
        /* Replaced by shorter content: nothing of the old tail survives. */
        assert_int_equal(plat_write_atomic_at(root, "state.json", "{}", 2, 0600), 0);
        assert_int_equal(plat_read_file_at(root, "state.json", 100, &buf, &len), 0);
        assert_int_equal(len, 2);
        assert_string_equal(buf, "{}");
        free(buf);
        assert_int_equal(fstatat(root, "state.json", &st, 0), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(plat_write_atomic_at(root, "empty", "", 0, 0600), 0);
        assert_int_equal(fstatat(root, "empty", &st, 0), 0);
        assert_int_equal(st.st_size, 0);
        assert_int_equal(count_temp_files(), 0);
}

static void test_write_atomic_rejects_names_that_are_not_plain_file_names(void **state) {
        _cleanup_close_ int root = plat_open_dir(dir);
        char longname[300];

        (void)state;
        memset(longname, 'x', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        assert_int_equal(plat_write_atomic_at(root, "", "x", 1, 0600), -EINVAL);
        assert_int_equal(plat_write_atomic_at(root, "a/b", "x", 1, 0600), -EINVAL);
        assert_int_equal(plat_write_atomic_at(root, "..", "x", 1, 0600), -EINVAL);
        assert_int_equal(plat_write_atomic_at(root, ".", "x", 1, 0600), -EINVAL);
        assert_int_equal(plat_write_atomic_at(root, longname, "x", 1, 0600), -EINVAL);
        assert_int_equal(plat_write_atomic_at(-1, "f", "x", 1, 0600), -EBADF);
        assert_int_equal(count_temp_files(), 0);
}

static void test_write_atomic_failure_leaves_target_and_no_temp_file(void **state) {
        _cleanup_close_ int root = plat_open_dir(dir);
        struct stat st;
        char p[256];

        (void)state;
        /* The rename fails (a file cannot replace a non-empty directory): the temporary file,
         * already written and synced, must go. */
        snprintf(p, sizeof(p), "%s/busy", dir);
        assert_int_equal(mkdir(p, 0755), 0);
        put("busy/inside", "x", 1);
        assert_int_equal(plat_write_atomic_at(root, "busy", "new", 3, 0600), -EISDIR);
        assert_int_equal(fstatat(root, "busy/inside", &st, 0), 0);
        assert_int_equal(count_temp_files(), 0);
        /* The directory is read-only. Root may write anyway, so as root the write runs in a child
         * that has become nobody (it holds the directory's fd, so /tmp's 0700 dir is no bar). */
        snprintf(p, sizeof(p), "%s/ro", dir);
        assert_int_equal(mkdir(p, 0555), 0);
        _cleanup_close_ int ro = plat_open_dir(p);
        assert_true(ro >= 0);
        if (geteuid() != 0) {
                assert_int_equal(plat_write_atomic_at(ro, "f", "x", 1, 0600), -EACCES);
                return;
        }
        pid_t pid = fork();
        int status;

        assert_true(pid >= 0);
        if (pid == 0) {
                if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
                    setresuid(65534, 65534, 65534) < 0)
                        _exit(2);
                _exit(plat_write_atomic_at(ro, "f", "x", 1, 0600) == -EACCES ? 0 : 1);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_int_equal(faccessat(ro, "f", F_OK, 0), -1);
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

static void test_opendir_at_lists_relative_to_root_and_reports_errno(void **state) {
        _cleanup_close_ int root = plat_open_dir(dir);
        _cleanup_closedir_ DIR *d = NULL;
        DIR *none = NULL;
        bool seen = false;

        (void)state;
        put("listed", "x", 1);
        assert_int_equal(plat_opendir_at(root, ".", &d), 0);
        for (struct dirent *de; (de = readdir(d));)
                seen |= strcmp(de->d_name, "listed") == 0;
        assert_true(seen);
        assert_int_equal(plat_opendir_at(root, "missing", &none), -ENOENT);
        assert_int_equal(plat_opendir_at(root, "listed", &none), -ENOTDIR);
        assert_null(none);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_reads_whole_file_relative_to_root_even_with_leading_slash),
                cmocka_unit_test(test_limit_is_exact_and_oversize_is_efbig),
                cmocka_unit_test(test_missing_file_and_missing_dir_give_errno),
                cmocka_unit_test(test_opendir_at_lists_relative_to_root_and_reports_errno),
                cmocka_unit_test(test_pread_all_reads_from_offset_zero_whatever_the_file_position),
                cmocka_unit_test(test_pread_limit_keeps_room_for_the_nul_and_full_is_efbig),
                cmocka_unit_test(test_pread_errors_are_errno),
                cmocka_unit_test(test_pread_all_gets_every_page_of_a_seq_file_one_pread_gets_one),
                cmocka_unit_test(test_file_keeps_fd_grows_buffer_and_reopens_after_failure),
                cmocka_unit_test(test_file_reads_a_proc_file_again_and_again),
                cmocka_unit_test(test_write_atomic_creates_and_replaces_with_exact_mode_and_no_temp_left),
                cmocka_unit_test(test_write_atomic_rejects_names_that_are_not_plain_file_names),
                cmocka_unit_test(test_write_atomic_failure_leaves_target_and_no_temp_file),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
