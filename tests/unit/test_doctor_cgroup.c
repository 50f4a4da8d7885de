/* test_doctor_cgroup.c: doctor's cgroup check on a fixture cgroup tree: missing, present but not
 * delegated to the agent, delegated by ownership, delegated by systemd's xattr. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "doctor.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

struct fx {
        char root[64];
        int root_fd;
        unsigned agent_uid; /* owns the cgroup's files once given them */
        struct doctor d;
};

static void touch(int dir_fd, const char *name) {
        int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

        assert_true(fd >= 0);
        close(fd);
}

static int setup(void **state) {
        struct fx *f = calloc(1, sizeof(*f));
        int fd;

        snprintf(f->root, sizeof(f->root), "/tmp/ra-doctor-cg-XXXXXX");
        assert_non_null(mkdtemp(f->root));
        f->root_fd = open(f->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(f->root_fd >= 0);
        assert_int_equal(mkdirat(f->root_fd, "ra.slice", 0755), 0);
        assert_int_equal(mkdirat(f->root_fd, "ra.slice/s0", 0755), 0);
        fd = openat(f->root_fd, "ra.slice/s0", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        touch(fd, "cgroup.kill");
        touch(fd, "cgroup.procs");
        touch(fd, "cgroup.subtree_control");
        close(fd);
        /* Root hands the files to another user, as systemd does for a non-root User=; otherwise this
         * user owns them already. */
        f->agent_uid = geteuid() == 0 ? 4242 : geteuid();
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fx *f = *state;
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", f->root);
        assert_int_equal(system(cmd), 0);
        close(f->root_fd);
        free(f);
        return 0;
}

static void give(struct fx *f, const char *file) {
        char path[64];

        snprintf(path, sizeof(path), "ra.slice/s0/%s", file);
        if (geteuid() == 0)
                assert_int_equal(fchownat(f->root_fd, path, f->agent_uid, 0, 0), 0);
}

static void test_missing_cgroup_fails_naming_its_path(void **state) {
        struct fx *f = *state;

        doctor_cgroup(&f->d, f->root_fd, "/sys/fs/cgroup", "s1", "ra.slice/s1", f->agent_uid);
        assert_int_equal(f->d.n, 1);
        assert_int_equal(f->d.f[0].level, DOCTOR_FAIL);
        assert_non_null(strstr(f->d.f[0].evidence, "/sys/fs/cgroup/ra.slice/s1 is missing"));
}

static void test_cgroup_not_delegated_to_the_agent_warns_with_delegate_yes(void **state) {
        struct fx *f = *state;
        unsigned other = f->agent_uid + 1000; /* an agent user that owns nothing here */

        doctor_cgroup(&f->d, f->root_fd, "/sys/fs/cgroup", "s0", "ra.slice/s0", other);
        assert_int_equal(f->d.n, 1);
        assert_int_equal(f->d.f[0].level, DOCTOR_WARN);
        assert_non_null(strstr(f->d.f[0].evidence, "ra.slice/s0 is not delegated to the agent"));
        assert_non_null(strstr(f->d.f[0].evidence, "cgroup.procs belongs to uid"));
        assert_non_null(strstr(f->d.f[0].fix, "Delegate=yes"));
        /* Root is no exception: without systemd's mark, the cgroup is systemd's to rearrange. */
        memset(&f->d, 0, sizeof(f->d));
        doctor_cgroup(&f->d, f->root_fd, "/sys/fs/cgroup", "s0", "ra.slice/s0", 0);
        assert_int_equal(f->d.f[0].level, DOCTOR_WARN);
}

static void test_cgroup_whose_files_the_agent_owns_is_delegated(void **state) {
        struct fx *f = *state;

        give(f, "cgroup.procs");
        if (geteuid() == 0) {
                /* cgroup.procs alone is not a delegation: cgroup.subtree_control must be the agent's too */
                doctor_cgroup(&f->d, f->root_fd, "/sys/fs/cgroup", "s0", "ra.slice/s0", f->agent_uid);
                assert_int_equal(f->d.f[0].level, DOCTOR_WARN);
                assert_non_null(strstr(f->d.f[0].evidence, "cgroup.subtree_control belongs to uid 0"));
                memset(&f->d, 0, sizeof(f->d));
        }
        give(f, "cgroup.subtree_control");
        doctor_cgroup(&f->d, f->root_fd, "/sys/fs/cgroup", "s0", "ra.slice/s0", f->agent_uid);
        assert_int_equal(f->d.f[0].level, DOCTOR_PASS);
        assert_non_null(strstr(f->d.f[0].evidence, "delegated (cgroup.procs and"));
}

static void test_cgroup_marked_by_systemd_is_delegated(void **state) {
        struct fx *f = *state;
        char path[96];

        /* The mark on the parent slice does not delegate the slot's cgroup. */
        snprintf(path, sizeof(path), "%s/ra.slice", f->root);
        assert_int_equal(setxattr(path, "user.delegate", "1", 1, 0), 0);
        doctor_cgroup(&f->d, f->root_fd, "/sys/fs/cgroup", "s0", "ra.slice/s0", 0);
        assert_int_equal(f->d.f[0].level, DOCTOR_WARN);
        memset(&f->d, 0, sizeof(f->d));
        snprintf(path, sizeof(path), "%s/ra.slice/s0", f->root);
        assert_int_equal(setxattr(path, "user.delegate", "1", 1, 0), 0);
        doctor_cgroup(&f->d, f->root_fd, "/sys/fs/cgroup", "s0", "ra.slice/s0", 0);
        assert_int_equal(f->d.f[0].level, DOCTOR_PASS);
        assert_non_null(strstr(f->d.f[0].evidence, "delegated (user.delegate)"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_missing_cgroup_fails_naming_its_path, setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_cgroup_not_delegated_to_the_agent_warns_with_delegate_yes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cgroup_whose_files_the_agent_owns_is_delegated, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_cgroup_marked_by_systemd_is_delegated, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
