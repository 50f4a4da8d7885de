/* test_hal_cgroup.c: cgroup v2 and v1 readers and /proc/<pid>/cgroup, on fixture hosts and scratch trees. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cgroup.h"
#include "cleanup.h"
#include "fileio.h"
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <linux/magic.h>
#include <unistd.h>

/* A sample no reader would produce: failures must leave it as it is. */
static const struct hal_cgroup_sample sentinel = {
        .present = 0xdead,
        .cpu_usage_usec = 1,
        .mem_current_bytes = 2,
        .mem_max_bytes = 3,
        .pids_current = 4,
        .cpu_quota_cores = 5.0,
};

/* Member by member: a struct copy need not copy the padding after `present`. */
static void assert_untouched(const struct hal_cgroup_sample *s) {
        assert_int_equal(s->present, sentinel.present);
        assert_int_equal(s->cpu_usage_usec, sentinel.cpu_usage_usec);
        assert_int_equal(s->mem_current_bytes, sentinel.mem_current_bytes);
        assert_int_equal(s->mem_max_bytes, sentinel.mem_max_bytes);
        assert_int_equal(s->pids_current, sentinel.pids_current);
        assert_true(s->cpu_quota_cores == sentinel.cpu_quota_cores);
}

static void test_detect_v2_v1_hybrid_and_none(void **state) {
        _cleanup_close_ int v2 = tu_open_host("x86-cpu");
        _cleanup_close_ int v1 = tu_open_host("x86-cpu-cgv1");
        _cleanup_close_ int none = tu_open_host("arm");

        (void)state;
        assert_int_equal(hal_cgroup_detect(v2), HAL_CGROUP_V2);
        /* systemd's hybrid layout: cgroup.controllers only under unified/, controllers on v1 */
        assert_int_equal(hal_cgroup_detect(v1), HAL_CGROUP_V1);
        assert_int_equal(hal_cgroup_detect(none), HAL_CGROUP_NONE);
}

static void test_v2_slot_reads_every_file(void **state) {
        _cleanup_close_ int root = tu_open_host("x86-cpu");
        struct hal_cgroup_sample s = sentinel;
        char err[256] = "";

        (void)state;
        assert_int_equal(
                hal_cgroup_read(root, HAL_CGROUP_V2, "render.slice/slot-0.scope", &s, err, sizeof(err)), 0);
        assert_int_equal(s.present, HAL_CG_CPU | HAL_CG_MEM | HAL_CG_MEM_MAX | HAL_CG_PIDS | HAL_CG_CPU_MAX);
        assert_int_equal(s.cpu_usage_usec, UINT64_C(8123456789));
        assert_int_equal(s.mem_current_bytes, UINT64_C(6871269376));
        assert_int_equal(s.mem_max_bytes, UINT64_C(17179869184));
        assert_int_equal(s.pids_current, 87);
        assert_true(s.cpu_quota_cores == 4.0);
        assert_string_equal(err, "");
}

static void test_v2_max_memory_is_uint64_max_and_max_cpu_is_no_quota(void **state) {
        _cleanup_close_ int root = tu_open_host("x86-cpu");
        struct hal_cgroup_sample s = sentinel;
        char err[256];

        (void)state;
        /* A leading '/' (as /proc/<pid>/cgroup prints it) is accepted. */
        assert_int_equal(
                hal_cgroup_read(root, HAL_CGROUP_V2, "/render.slice/slot-1.scope", &s, err, sizeof(err)), 0);
        assert_int_equal(s.present, HAL_CG_CPU | HAL_CG_MEM | HAL_CG_MEM_MAX | HAL_CG_PIDS);
        assert_int_equal(s.cpu_usage_usec, 120000);
        assert_int_equal(s.mem_current_bytes, 104857600);
        assert_int_equal(s.mem_max_bytes, UINT64_MAX);
        assert_int_equal(s.pids_current, 3);
}

static void test_v2_root_cgroup_has_only_what_the_root_offers(void **state) {
        _cleanup_close_ int root = tu_open_host("x86-cpu");
        struct hal_cgroup_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(hal_cgroup_read(root, HAL_CGROUP_V2, "", &s, err, sizeof(err)), 0);
        assert_int_equal(s.present, HAL_CG_CPU);
        assert_int_equal(s.cpu_usage_usec, UINT64_C(2716032148));
}

static void test_missing_cgroup_is_enoent_and_leaves_sample(void **state) {
        _cleanup_close_ int v2 = tu_open_host("x86-cpu");
        _cleanup_close_ int v1 = tu_open_host("x86-cpu-cgv1");
        struct hal_cgroup_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(
                hal_cgroup_read(v2, HAL_CGROUP_V2, "render.slice/slot-9.scope", &s, err, sizeof(err)),
                -ENOENT);
        assert_string_equal(err, "/sys/fs/cgroup/render.slice/slot-9.scope: no such cgroup");
        assert_int_equal(
                hal_cgroup_read(v1, HAL_CGROUP_V1, "render.slice/slot-9.scope", &s, err, sizeof(err)),
                -ENOENT);
        assert_string_equal(err,
                            "/sys/fs/cgroup/*/render.slice/slot-9.scope: no such cgroup in any hierarchy");
        /* A file where the cgroup directory would be is no cgroup either. */
        assert_int_equal(hal_cgroup_read(v2, HAL_CGROUP_V2, "render.slice/slot-0.scope/cpu.max", &s, err,
                                         sizeof(err)),
                         -ENOENT);
        assert_untouched(&s);
}

static void test_dotdot_components_are_refused(void **state) {
        static const char *const bad[] = { "..",    "../etc",  "render.slice/../../x", "render.slice/..",
                                           "/../x", "a//..//b" };
        _cleanup_close_ int root = tu_open_host("x86-cpu");
        struct hal_cgroup_sample s = sentinel;
        char err[256];

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(hal_cgroup_read(root, HAL_CGROUP_V2, bad[i], &s, err, sizeof(err)),
                                 -EINVAL);
        assert_string_equal(err, "cgroup path 'a//..//b' has a '..' component");
        assert_int_equal(hal_cgroup_read(root, HAL_CGROUP_V2, NULL, &s, err, sizeof(err)), -EINVAL);
        /* Names that merely start with dots are names. */
        assert_int_equal(hal_cgroup_read(root, HAL_CGROUP_V2, "..slot", &s, err, sizeof(err)), -ENOENT);
        assert_int_equal(hal_cgroup_read(root, HAL_CGROUP_V2, "...", &s, err, sizeof(err)), -ENOENT);
        assert_untouched(&s);
}

static void test_no_hierarchy_is_unsupported(void **state) {
        _cleanup_close_ int root = tu_open_host("arm");
        struct hal_cgroup_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(hal_cgroup_read(root, HAL_CGROUP_NONE, "x", &s, err, sizeof(err)), -EOPNOTSUPP);
        assert_int_equal(hal_cgroup_read(root, (enum hal_cgroup_version)9, "x", &s, err, sizeof(err)),
                         -EINVAL);
        assert_untouched(&s);
}

static void test_v1_slot_reads_each_controller_hierarchy(void **state) {
        _cleanup_close_ int root = tu_open_host("x86-cpu-cgv1");
        struct hal_cgroup_sample s = sentinel;
        char err[256] = "";

        (void)state;
        assert_int_equal(
                hal_cgroup_read(root, HAL_CGROUP_V1, "render.slice/slot-0.scope", &s, err, sizeof(err)), 0);
        assert_int_equal(s.present, HAL_CG_CPU | HAL_CG_MEM | HAL_CG_MEM_MAX | HAL_CG_PIDS | HAL_CG_CPU_MAX);
        assert_int_equal(s.cpu_usage_usec, UINT64_C(8123456789)); /* 8123456789123 ns */
        assert_int_equal(s.mem_current_bytes, UINT64_C(6871269376));
        assert_int_equal(s.mem_max_bytes, UINT64_C(17179869184));
        assert_int_equal(s.pids_current, 87);
        assert_true(s.cpu_quota_cores == 2.0);
        assert_string_equal(err, "");
}

static void test_v1_huge_limit_is_unlimited_and_missing_pids_is_absent(void **state) {
        _cleanup_close_ int root = tu_open_host("x86-cpu-cgv1");
        struct hal_cgroup_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(
                hal_cgroup_read(root, HAL_CGROUP_V1, "render.slice/slot-1.scope", &s, err, sizeof(err)), 0);
        assert_int_equal(s.present, HAL_CG_CPU | HAL_CG_MEM | HAL_CG_MEM_MAX);
        assert_int_equal(s.cpu_usage_usec, 120000);
        assert_int_equal(s.mem_max_bytes, UINT64_MAX);
}

static void test_v1_separate_cpu_and_cpuacct_mounts(void **state) {
        struct tu_scratch *sc = *state;
        struct hal_cgroup_sample s = sentinel;
        char err[256];

        tu_put(sc->fd, "sys/fs/cgroup/cpuacct/slot/cpuacct.usage", "1999\n");
        tu_put(sc->fd, "sys/fs/cgroup/cpu/slot/cpu.cfs_quota_us", "50000\n");
        tu_put(sc->fd, "sys/fs/cgroup/cpu/slot/cpu.cfs_period_us", "100000\n");
        /* 64 KiB pages make a different "unlimited", still unlimited */
        tu_put(sc->fd, "sys/fs/cgroup/memory/slot/memory.limit_in_bytes", "9223372036854710272\n");
        assert_int_equal(hal_cgroup_detect(sc->fd), HAL_CGROUP_V1);
        assert_int_equal(hal_cgroup_read(sc->fd, HAL_CGROUP_V1, "slot", &s, err, sizeof(err)), 0);
        assert_int_equal(s.present, HAL_CG_CPU | HAL_CG_CPU_MAX | HAL_CG_MEM_MAX);
        assert_int_equal(s.cpu_usage_usec, 1);
        assert_true(s.cpu_quota_cores == 0.5);
        assert_int_equal(s.mem_max_bytes, UINT64_MAX);
}

static void test_v1_bad_quota_and_zero_period_name_the_file(void **state) {
        struct tu_scratch *sc = *state;
        struct hal_cgroup_sample s = sentinel;
        char err[256];

        tu_put(sc->fd, "sys/fs/cgroup/cpu,cpuacct/slot/cpu.cfs_quota_us", "-5\n");
        tu_put(sc->fd, "sys/fs/cgroup/cpu,cpuacct/slot/cpu.cfs_period_us", "100000\n");
        assert_int_equal(hal_cgroup_read(sc->fd, HAL_CGROUP_V1, "slot", &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/sys/fs/cgroup/cpu,cpuacct/slot/cpu.cfs_quota_us: '-5' is not a quota in "
                                 "microseconds or -1");
        tu_put(sc->fd, "sys/fs/cgroup/cpu,cpuacct/slot/cpu.cfs_quota_us", "5000\n");
        tu_put(sc->fd, "sys/fs/cgroup/cpu,cpuacct/slot/cpu.cfs_period_us", "0\n");
        assert_int_equal(hal_cgroup_read(sc->fd, HAL_CGROUP_V1, "slot", &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err,
                            "/sys/fs/cgroup/cpu,cpuacct/slot/cpu.cfs_period_us: '0' is not a period over 0");
        assert_untouched(&s);
}

static void test_v2_garbage_cpu_stat_is_eproto_naming_file(void **state) {
        _cleanup_close_ int root = tu_open_host("corrupt/cgroup-cpustat-garbage");
        struct hal_cgroup_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(
                hal_cgroup_read(root, HAL_CGROUP_V2, "render.slice/slot-0.scope", &s, err, sizeof(err)),
                -EPROTO);
        assert_string_equal(err,
                            "/sys/fs/cgroup/render.slice/slot-0.scope/cpu.stat: line 1: usage_usec '12x45' "
                            "is not a decimal number");
        assert_untouched(&s);
}

static void test_v2_garbage_memory_max_is_eproto_naming_file(void **state) {
        _cleanup_close_ int root = tu_open_host("corrupt/cgroup-memmax-garbage");
        struct hal_cgroup_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(
                hal_cgroup_read(root, HAL_CGROUP_V2, "render.slice/slot-0.scope", &s, err, sizeof(err)),
                -EPROTO);
        assert_string_equal(err,
                            "/sys/fs/cgroup/render.slice/slot-0.scope/memory.max: 'unlimited' is not a byte "
                            "count or 'max'");
        assert_untouched(&s);
}

static void test_v2_cpu_max_malformed_forms_are_refused(void **state) {
        static const char *const bad[] = { "max\n",       "100000\n", "max 0\n",  "max 100000 1\n",
                                           "-1 100000\n", "\n",       "max max\n" };
        struct tu_scratch *sc = *state;
        struct hal_cgroup_sample s = sentinel;
        char err[256];

        tu_put(sc->fd, "sys/fs/cgroup/cgroup.controllers", "cpu\n");
        tu_put(sc->fd, "sys/fs/cgroup/slot/cpu.stat", "usage_usec 1\n");
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                tu_put(sc->fd, "sys/fs/cgroup/slot/cpu.max", bad[i]);
                assert_int_equal(hal_cgroup_read(sc->fd, HAL_CGROUP_V2, "slot", &s, err, sizeof(err)),
                                 -EPROTO);
                assert_non_null(strstr(err, "/sys/fs/cgroup/slot/cpu.max: '"));
                assert_non_null(strstr(err, "' is not '<quota|max> <period>' with a period over 0"));
        }
        assert_untouched(&s);
        tu_put(sc->fd, "sys/fs/cgroup/slot/cpu.max", "150000 100000\n");
        assert_int_equal(hal_cgroup_read(sc->fd, HAL_CGROUP_V2, "slot", &s, err, sizeof(err)), 0);
        assert_int_equal(s.present, HAL_CG_CPU | HAL_CG_CPU_MAX);
        assert_true(s.cpu_quota_cores == 1.5);
}

static void test_v2_unreadable_file_is_an_error_not_absent(void **state) {
        struct tu_scratch *sc = *state;
        struct hal_cgroup_sample s = sentinel;
        char err[256];

        tu_put(sc->fd, "sys/fs/cgroup/cgroup.controllers", "cpu\n");
        tu_put(sc->fd, "sys/fs/cgroup/slot/pids.current/x", "");
        assert_int_equal(hal_cgroup_read(sc->fd, HAL_CGROUP_V2, "slot", &s, err, sizeof(err)), -EISDIR);
        assert_string_equal(err, "/sys/fs/cgroup/slot/pids.current: Is a directory");
        assert_untouched(&s);
}

static void test_pid_cgroup_v2_and_v1(void **state) {
        _cleanup_close_ int v2 = tu_open_host("x86-cpu");
        _cleanup_close_ int v1 = tu_open_host("x86-cpu-cgv1");
        char path[128], err[256];

        (void)state;
        assert_int_equal(hal_cgroup_of_pid(v2, 4242, path, sizeof(path), err, sizeof(err)), 0);
        assert_string_equal(path, "render.slice/slot-0.scope");
        assert_int_equal(hal_cgroup_of_pid(v2, 4343, path, sizeof(path), err, sizeof(err)), 0);
        assert_string_equal(path, "render.slice/slot-1.scope");
        assert_int_equal(hal_cgroup_of_pid(v1, 5151, path, sizeof(path), err, sizeof(err)), 0);
        assert_string_equal(path, "render.slice/slot-0.scope");
        /* The first line (pids) says docker.service; cpuacct's hierarchy is the one read. */
        assert_int_equal(hal_cgroup_of_pid(v1, 5252, path, sizeof(path), err, sizeof(err)), 0);
        assert_string_equal(path, "render.slice/slot-1.scope");
}

static void test_pid_gone_bad_or_garbage(void **state) {
        _cleanup_close_ int root = tu_open_host("x86-cpu");
        _cleanup_close_ int bad = tu_open_host("corrupt/cgroup-pidfile-garbage");
        char path[128] = "untouched", err[256];

        (void)state;
        assert_int_equal(hal_cgroup_of_pid(root, 999999, path, sizeof(path), err, sizeof(err)), -ESRCH);
        assert_string_equal(err, "/proc/999999/cgroup: no such process");
        assert_int_equal(hal_cgroup_of_pid(root, 0, path, sizeof(path), err, sizeof(err)), -EINVAL);
        assert_int_equal(hal_cgroup_of_pid(root, -4, path, sizeof(path), err, sizeof(err)), -EINVAL);
        assert_string_equal(err, "pid -4 is not a process id");
        assert_int_equal(hal_cgroup_of_pid(bad, 77, path, sizeof(path), err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/77/cgroup: line 1: cgroup path 'render.slice/slot-0.scope' does not "
                                 "start with '/'");
        assert_string_equal(path, "untouched");
}

/* Open fds of this process, to see what a handle holds and that closing it lets all of them go. */
static int count_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        int n = 0;

        assert_non_null(d);
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}

static void test_handle_keeps_files_open_and_reads_new_values(void **state) {
        struct tu_scratch *sc = *state;
        struct hal_cgroup_sample s = sentinel;
        struct hal_cgroup *h = NULL;
        char err[256] = "";
        int before = count_fds();

        tu_put(sc->fd, "sys/fs/cgroup/cgroup.controllers", "cpu memory\n");
        tu_put(sc->fd, "sys/fs/cgroup/slot/cpu.stat", "usage_usec 10\n");
        tu_put(sc->fd, "sys/fs/cgroup/slot/memory.current", "4096\n");
        assert_int_equal(hal_cgroup_open(sc->fd, HAL_CGROUP_V2, "/slot", &h, err, sizeof(err)), 0);
        assert_non_null(h);
        /* The directory and the two files there; the three missing ones hold nothing. */
        assert_int_equal(count_fds(), before + 3);
        assert_int_equal(hal_cgroup_sample(h, &s, err, sizeof(err)), 0);
        assert_int_equal(s.present, HAL_CG_CPU | HAL_CG_MEM);
        assert_int_equal(s.cpu_usage_usec, 10);
        assert_int_equal(s.mem_current_bytes, 4096);
        /* Rewritten in place, as the kernel does on every read: the open files see it. */
        tu_put(sc->fd, "sys/fs/cgroup/slot/cpu.stat", "usage_usec 2500\nuser_usec 1\n");
        tu_put(sc->fd, "sys/fs/cgroup/slot/memory.current", "8192\n");
        assert_int_equal(hal_cgroup_sample(h, &s, err, sizeof(err)), 0);
        assert_int_equal(s.cpu_usage_usec, 2500);
        assert_int_equal(s.mem_current_bytes, 8192);
        assert_int_equal(count_fds(), before + 3);
        assert_string_equal(err, "");
        hal_cgroup_close(h);
        assert_int_equal(count_fds(), before);
        hal_cgroup_close(NULL);
}

static void test_handle_looks_for_missing_files_only_every_reprobe_period(void **state) {
        struct tu_scratch *sc = *state;
        struct hal_cgroup_sample s = sentinel;
        struct hal_cgroup *h = NULL;
        char err[256];

        tu_put(sc->fd, "sys/fs/cgroup/cgroup.controllers", "cpu\n");
        tu_put(sc->fd, "sys/fs/cgroup/slot/cpu.stat", "usage_usec 1\n");
        assert_int_equal(hal_cgroup_open(sc->fd, HAL_CGROUP_V2, "slot", &h, err, sizeof(err)), 0);
        /* The pids controller is enabled after the cgroup was opened. */
        tu_put(sc->fd, "sys/fs/cgroup/slot/pids.current", "3\n");
        for (int i = 1; i < HAL_CGROUP_REPROBE_SAMPLES; i++) {
                assert_int_equal(hal_cgroup_sample(h, &s, err, sizeof(err)), 0);
                assert_int_equal(s.present, HAL_CG_CPU);
        }
        assert_int_equal(hal_cgroup_sample(h, &s, err, sizeof(err)), 0);
        assert_int_equal(s.present, HAL_CG_CPU | HAL_CG_PIDS);
        assert_int_equal(s.pids_current, 3);
        hal_cgroup_close(h);
}

static void test_handle_of_removed_cgroup_is_enoent_and_a_new_open_finds_the_new_one(void **state) {
        struct tu_scratch *sc = *state;
        struct hal_cgroup_sample s = sentinel;
        struct hal_cgroup *h = NULL, *h2 = NULL;
        char err[256], dir[128];

        tu_put(sc->fd, "sys/fs/cgroup/cgroup.controllers", "cpu\n");
        tu_put(sc->fd, "sys/fs/cgroup/render.slice/slot/cpu.stat", "usage_usec 5\n");
        assert_int_equal(hal_cgroup_open(sc->fd, HAL_CGROUP_V2, "render.slice/slot", &h, err, sizeof(err)),
                         0);
        assert_int_equal(hal_cgroup_sample(h, &s, err, sizeof(err)), 0);
        assert_int_equal(s.cpu_usage_usec, 5);
        /* The session ends: its scope goes. The open files would still read; the handle must not. */
        snprintf(dir, sizeof(dir), "%s/sys/fs/cgroup/render.slice/slot", sc->path);
        tu_rm_rf(dir);
        s = sentinel;
        assert_int_equal(hal_cgroup_sample(h, &s, err, sizeof(err)), -ENOENT);
        assert_string_equal(err, "/sys/fs/cgroup/render.slice/slot: cgroup was removed");
        assert_untouched(&s);
        /* A new session makes a new scope at the same path: the old handle stays on the old one. */
        tu_put(sc->fd, "sys/fs/cgroup/render.slice/slot/cpu.stat", "usage_usec 9\n");
        assert_int_equal(hal_cgroup_sample(h, &s, err, sizeof(err)), -ENOENT);
        hal_cgroup_close(h);
        assert_int_equal(hal_cgroup_open(sc->fd, HAL_CGROUP_V2, "render.slice/slot", &h2, err, sizeof(err)),
                         0);
        assert_int_equal(hal_cgroup_sample(h2, &s, err, sizeof(err)), 0);
        assert_int_equal(s.cpu_usage_usec, 9);
        hal_cgroup_close(h2);
}

static void test_handle_open_failures_leave_ret_alone(void **state) {
        _cleanup_close_ int root = tu_open_host("x86-cpu");
        struct hal_cgroup *h = NULL;
        char err[256];

        (void)state;
        assert_int_equal(
                hal_cgroup_open(root, HAL_CGROUP_V2, "render.slice/slot-9.scope", &h, err, sizeof(err)),
                -ENOENT);
        assert_string_equal(err, "/sys/fs/cgroup/render.slice/slot-9.scope: no such cgroup");
        assert_int_equal(hal_cgroup_open(root, HAL_CGROUP_V2, "a/../b", &h, err, sizeof(err)), -EINVAL);
        assert_int_equal(hal_cgroup_open(root, HAL_CGROUP_NONE, "x", &h, err, sizeof(err)), -EOPNOTSUPP);
        assert_int_equal(hal_cgroup_open(root, (enum hal_cgroup_version)9, "x", &h, err, sizeof(err)),
                         -EINVAL);
        assert_null(h);
}

static void test_handle_v1_holds_one_directory_per_hierarchy(void **state) {
        _cleanup_close_ int root = tu_open_host("x86-cpu-cgv1");
        struct hal_cgroup_sample s = sentinel, once = sentinel;
        struct hal_cgroup *h = NULL;
        char err[256] = "";
        int before = count_fds();

        (void)state;
        assert_int_equal(
                hal_cgroup_open(root, HAL_CGROUP_V1, "render.slice/slot-0.scope", &h, err, sizeof(err)), 0);
        /* cpu and cpuacct share "cpu,cpuacct"; memory and pids have their own: 3 directories, 6 files. */
        assert_int_equal(count_fds(), before + 9);
        for (int i = 0; i < 3; i++) {
                assert_int_equal(hal_cgroup_sample(h, &s, err, sizeof(err)), 0);
                assert_int_equal(hal_cgroup_read(root, HAL_CGROUP_V1, "render.slice/slot-0.scope", &once,
                                                 err, sizeof(err)),
                                 0);
                assert_int_equal(s.present, once.present);
                assert_int_equal(s.cpu_usage_usec, once.cpu_usage_usec);
                assert_int_equal(s.mem_current_bytes, once.mem_current_bytes);
                assert_int_equal(s.mem_max_bytes, once.mem_max_bytes);
                assert_int_equal(s.pids_current, once.pids_current);
                assert_true(s.cpu_quota_cores == once.cpu_quota_cores);
        }
        assert_int_equal(s.cpu_usage_usec, UINT64_C(8123456789));
        hal_cgroup_close(h);
        assert_int_equal(count_fds(), before);
}

/* On cgroupfs a removed cgroup fails reads of its open files with ENODEV. Needs a cgroup this
 * process may create (root on most hosts): skipped elsewhere. */
static void test_handle_on_cgroupfs_sees_rmdir_as_removed(void **state) {
        _cleanup_close_ int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        enum hal_cgroup_version v = hal_cgroup_detect(root);
        struct hal_cgroup_sample s = sentinel;
        struct hal_cgroup *h = NULL;
        char name[64], dir[128], err[256];
        struct statfs sf;

        (void)state;
        snprintf(name, sizeof(name), "ra-test-hal-cgroup-%d", (int)getpid());
        if (v == HAL_CGROUP_V2)
                snprintf(dir, sizeof(dir), "/sys/fs/cgroup/%s", name);
        else if (v == HAL_CGROUP_V1)
                snprintf(dir, sizeof(dir), "/sys/fs/cgroup/%s/%s",
                         access("/sys/fs/cgroup/cpu,cpuacct", F_OK) == 0 ? "cpu,cpuacct" : "cpuacct", name);
        else
                tu_skip("no cgroup hierarchy found under /sys/fs/cgroup");
        if (mkdir(dir, 0755) < 0) /* not root, read-only, or in a container without delegation */
                tu_skip("cannot make the cgroup %s: %s", dir, strerror(errno));
        if (statfs(dir, &sf) < 0 || (sf.f_type != CGROUP2_SUPER_MAGIC && sf.f_type != CGROUP_SUPER_MAGIC)) {
                rmdir(dir);
                tu_skip("%s is not on cgroupfs", dir);
        }
        assert_int_equal(hal_cgroup_open(root, v, name, &h, err, sizeof(err)), 0);
        assert_int_equal(hal_cgroup_sample(h, &s, err, sizeof(err)), 0);
        assert_true(s.present & HAL_CG_CPU);
        assert_int_equal(rmdir(dir), 0);
        s = sentinel;
        assert_int_equal(hal_cgroup_sample(h, &s, err, sizeof(err)), -ENOENT);
        assert_non_null(strstr(err, ": cgroup was removed"));
        assert_untouched(&s);
        hal_cgroup_close(h);
}

static void test_pid_file_past_a_page_is_read_whole_and_past_the_limit_is_efbig(void **state) {
        struct tu_scratch *sc = *state;
        _cleanup_free_ char *text = malloc(80 * 1024);
        char path[128] = "untouched", err[256], dir[200];
        size_t n = 0;

        assert_non_null(text);
        /* Named v1 hierarchies with long paths push the unified line past the first page. */
        memset(dir, 'd', sizeof(dir) - 1);
        dir[sizeof(dir) - 1] = '\0';
        for (int i = 1; i <= 40; i++)
                n += (size_t)snprintf(text + n, 80 * 1024 - n, "%d:name=h%d:/%s\n", i, i, dir);
        n += (size_t)snprintf(text + n, 80 * 1024 - n, "0::/render.slice/slot-3.scope\n");
        assert_true(n > 4096);
        tu_put(sc->fd, "proc/77/cgroup", text);
        assert_int_equal(hal_cgroup_of_pid(sc->fd, 77, path, sizeof(path), err, sizeof(err)), 0);
        assert_string_equal(path, "render.slice/slot-3.scope");
        while (n < 65 * 1024)
                n += (size_t)snprintf(text + n, 80 * 1024 - n, "9:name=x:/%s\n", dir);
        tu_put(sc->fd, "proc/77/cgroup", text);
        assert_int_equal(hal_cgroup_of_pid(sc->fd, 77, path, sizeof(path), err, sizeof(err)), -EFBIG);
        assert_string_equal(err, "/proc/77/cgroup: larger than 65536 bytes");
}

/* Parses s from a heap copy of exactly len bytes, no NUL: ASan catches any overread. */
static int parse_pid_n(const char *s, size_t len, char *path, size_t pathlen, char *err, size_t errlen) {
        _cleanup_free_ char *copy = tu_copy_unterminated(s, len);

        return hal_cgroup_parse_pid_file(copy, len, path, pathlen, err, errlen);
}

static int parse_pid(const char *s, char *path, size_t pathlen, char *err, size_t errlen) {
        return parse_pid_n(s, strlen(s), path, pathlen, err, errlen);
}

static void test_parse_pid_file_picks_cpuacct_then_v2_then_first_v1(void **state) {
        char path[64], err[128];

        (void)state;
        /* a v2 host that still mounts name=systemd for old containers: the unified line wins */
        assert_int_equal(parse_pid("1:name=systemd:/docker/abc\n0::/render.slice/slot-2.scope\n", path,
                                   sizeof(path), err, sizeof(err)),
                         0);
        assert_string_equal(path, "render.slice/slot-2.scope");
        /* v1 without cpuacct: the first hierarchy */
        assert_int_equal(parse_pid("3:memory:/a\n2:pids:/b\n", path, sizeof(path), err, sizeof(err)), 0);
        assert_string_equal(path, "a");
        /* cpuacct as one entry of a list, after the v2 line */
        assert_int_equal(parse_pid("0::/u\n4:cpuacct,cpu:/c\n", path, sizeof(path), err, sizeof(err)), 0);
        assert_string_equal(path, "c");
        /* "cpuacctx" is not cpuacct */
        assert_int_equal(parse_pid("4:cpuacctx:/x\n0::/u\n", path, sizeof(path), err, sizeof(err)), 0);
        assert_string_equal(path, "u");
        /* the root cgroup, and a path that holds ':' */
        assert_int_equal(parse_pid("0::/\n", path, sizeof(path), err, sizeof(err)), 0);
        assert_string_equal(path, "");
        assert_int_equal(parse_pid("0::/a:b\n", path, sizeof(path), err, sizeof(err)), 0);
        assert_string_equal(path, "a:b");
}

static void test_parse_pid_file_rejects_malformed(void **state) {
        static const char *const bad[] = { "",          "0::/a",      "0:/a\n",   "x::/a\n",
                                           "\n",        "0::a\n",     "0::\n",    "5::/a\n",
                                           ":cpu:/a\n", "0::/a\nx\n", "-1::/a\n", "0::/a\n\n" };
        char path[64] = "untouched", err[128];

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                err[0] = '\0';
                assert_int_equal(parse_pid(bad[i], path, sizeof(path), err, sizeof(err)), -EPROTO);
                assert_true(err[0] != '\0');
        }
        assert_int_equal(parse_pid_n("0::/a\0b\n", 8, path, sizeof(path), err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "line 1: cgroup path '/a?b' holds a NUL byte");
        assert_int_equal(parse_pid("0::/a\n5::/b\n", path, sizeof(path), err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "line 2: hierarchy 5 has no controllers");
        assert_string_equal(path, "untouched");
}

static void test_parse_pid_file_path_must_fit(void **state) {
        char path[4] = "abc", err[128];

        (void)state;
        assert_int_equal(parse_pid("0::/abcd\n", path, sizeof(path), err, sizeof(err)), -ENAMETOOLONG);
        assert_string_equal(err, "cgroup path is 4 bytes, room for 3");
        assert_string_equal(path, "abc");
        assert_int_equal(parse_pid("0::/xyz\n", path, sizeof(path), err, sizeof(err)), 0);
        assert_string_equal(path, "xyz");
}

static int parse_stat(const char *s, uint64_t *ret, char *err, size_t errlen) {
        size_t len = strlen(s);
        _cleanup_free_ char *copy = tu_copy_unterminated(s, len);

        return hal_cgroup_parse_cpu_stat(copy, len, ret, err, errlen);
}

static void test_parse_cpu_stat_needs_one_well_formed_usage_line(void **state) {
        uint64_t u = 7;
        char err[128];

        (void)state;
        assert_int_equal(parse_stat("user_usec 1\nusage_usec 42\nfuture_key x\n", &u, err, sizeof(err)), 0);
        assert_int_equal(u, 42);
        u = 7;
        assert_int_equal(parse_stat("", &u, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "no usage_usec line");
        assert_int_equal(parse_stat("user_usec 1\n", &u, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "no usage_usec line");
        assert_int_equal(parse_stat("usage_usec 1\nusage_usec 2\n", &u, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "line 2: second usage_usec (first on line 1)");
        assert_int_equal(parse_stat("usage_usec 1", &u, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "line 1 is cut short (no newline at end of file)");
        assert_int_equal(parse_stat("usage_usec 1 2\n", &u, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "line 1: 'usage_usec 1 2' is not 'key value'");
        assert_int_equal(parse_stat("usage_usec\n", &u, err, sizeof(err)), -EPROTO);
        assert_int_equal(parse_stat("usage_usec 18446744073709551616\n", &u, err, sizeof(err)), -EPROTO);
        assert_int_equal(u, 7);
}

static void test_kill_writes_cgroup_kill_of_the_slot(void **state) {
        struct tu_scratch *t = *state;
        char err[256] = "", buf[8] = "";
        int fd;

        tu_put(t->fd, "sys/fs/cgroup/render.slice/slot-0.scope/cgroup.kill", "");
        assert_int_equal(hal_cgroup_kill(t->fd, "/render.slice/slot-0.scope", err, sizeof(err)), 0);
        fd = openat(t->fd, "sys/fs/cgroup/render.slice/slot-0.scope/cgroup.kill", O_RDONLY);
        assert_true(fd >= 0);
        assert_int_equal(read(fd, buf, sizeof(buf)), 1);
        close(fd);
        assert_string_equal(buf, "1");
        /* The unified hierarchy of a hybrid host is found too. */
        tu_put(t->fd, "sys/fs/cgroup/unified/render.slice/slot-1.scope/cgroup.kill", "");
        assert_int_equal(hal_cgroup_kill(t->fd, "render.slice/slot-1.scope", err, sizeof(err)), 0);
        /* Nothing to kill where no hierarchy has the cgroup; never the root or outside the mount. */
        assert_int_equal(hal_cgroup_kill(t->fd, "render.slice/slot-9.scope", err, sizeof(err)), -ENOENT);
        assert_int_equal(hal_cgroup_kill(t->fd, "/", err, sizeof(err)), -EINVAL);
        /* The root however it is spelt: its cgroup.kill would end every process on the host. */
        tu_put(t->fd, "sys/fs/cgroup/cgroup.kill", "");
        assert_int_equal(hal_cgroup_kill(t->fd, ".", err, sizeof(err)), -EINVAL);
        assert_string_equal(err, "refusing to kill the root cgroup ('.')");
        assert_int_equal(hal_cgroup_kill(t->fd, "./", err, sizeof(err)), -EINVAL);
        assert_int_equal(hal_cgroup_kill(t->fd, "/././/", err, sizeof(err)), -EINVAL);
        fd = openat(t->fd, "sys/fs/cgroup/cgroup.kill", O_RDONLY);
        assert_true(fd >= 0);
        assert_int_equal(read(fd, buf, sizeof(buf)), 0);
        close(fd);
        assert_int_equal(hal_cgroup_kill(t->fd, "render.slice/../..", err, sizeof(err)), -EINVAL);
        assert_int_equal(hal_cgroup_populated(t->fd, "render.slice/slot-9.scope"), -ENOENT);
        tu_put(t->fd, "sys/fs/cgroup/render.slice/slot-0.scope/cgroup.procs", "\n");
        assert_int_equal(hal_cgroup_populated(t->fd, "render.slice/slot-0.scope"), 0);
        tu_put(t->fd, "sys/fs/cgroup/render.slice/slot-0.scope/cgroup.procs", "4242\n");
        assert_int_equal(hal_cgroup_populated(t->fd, "render.slice/slot-0.scope"), 1);
}

static void test_normalize_gives_canonical_paths_and_depth(void **state) {
        char out[64];

        (void)state;
        assert_int_equal(hal_cgroup_normalize("render.slice/slot-0.scope", out, sizeof(out)), 2);
        assert_string_equal(out, "render.slice/slot-0.scope");
        assert_int_equal(hal_cgroup_normalize("/./render.slice//./slot-0.scope/", out, sizeof(out)), 2);
        assert_string_equal(out, "render.slice/slot-0.scope");
        assert_int_equal(hal_cgroup_normalize("..slot/...", out, sizeof(out)), 2);
        assert_string_equal(out, "..slot/...");
        for (const char *const *p = (const char *const[]){ "", ".", "./", "./.", "/", "//./", NULL }; *p;
             p++) {
                assert_int_equal(hal_cgroup_normalize(*p, out, sizeof(out)), 0);
                assert_string_equal(out, "");
        }
        strcpy(out, "untouched");
        assert_int_equal(hal_cgroup_normalize("a/..", out, sizeof(out)), -EINVAL);
        assert_int_equal(hal_cgroup_normalize("..", out, sizeof(out)), -EINVAL);
        assert_int_equal(hal_cgroup_normalize("render.slice/slot-0.scope", out, 8), -ENAMETOOLONG);
        assert_string_equal(out, "untouched");
}

/* The real thing, where this machine lets a test make a cgroup: a process in it dies. */
static void test_kill_ends_every_process_of_a_real_cgroup(void **state) {
        static const char *const mounts[] = { "/sys/fs/cgroup", "/sys/fs/cgroup/unified" };
        char dir[128], procs[160], name[64], err[256] = "", pidtxt[32];
        const char *mount = NULL;
        int root, status;
        pid_t child;

        (void)state;
        snprintf(name, sizeof(name), "ra-test-kill-%d", (int)getpid());
        for (size_t i = 0; i < 2 && !mount; i++) {
                char probe[96];

                snprintf(probe, sizeof(probe), "%s/cgroup.procs", mounts[i]);
                snprintf(dir, sizeof(dir), "%s/%s", mounts[i], name);
                if (access(probe, W_OK) == 0 && mkdir(dir, 0755) == 0)
                        mount = mounts[i];
        }
        if (!mount)
                tu_skip("no writable cgroup v2 hierarchy here");
        child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                pause();
                _exit(0);
        }
        snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
        snprintf(pidtxt, sizeof(pidtxt), "%d", (int)child);
        root = open("/", O_DIRECTORY | O_CLOEXEC);
        assert_int_equal(plat_write_file_at(AT_FDCWD, procs, pidtxt, strlen(pidtxt)), 0);
        assert_int_equal(hal_cgroup_populated(root, name), 1);
        assert_true(hal_cgroup_kill(root, name, err, sizeof(err)) >= 0);
        assert_int_equal(waitpid(child, &status, 0), child);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGKILL);
        assert_int_equal(hal_cgroup_populated(root, name), 0);
        close(root);
        assert_int_equal(rmdir(dir), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_kill_writes_cgroup_kill_of_the_slot, tu_scratch_setup,
                                                tu_scratch_teardown),
                cmocka_unit_test(test_normalize_gives_canonical_paths_and_depth),
                cmocka_unit_test(test_kill_ends_every_process_of_a_real_cgroup),
                cmocka_unit_test(test_detect_v2_v1_hybrid_and_none),
                cmocka_unit_test(test_v2_slot_reads_every_file),
                cmocka_unit_test(test_v2_max_memory_is_uint64_max_and_max_cpu_is_no_quota),
                cmocka_unit_test(test_v2_root_cgroup_has_only_what_the_root_offers),
                cmocka_unit_test(test_missing_cgroup_is_enoent_and_leaves_sample),
                cmocka_unit_test(test_dotdot_components_are_refused),
                cmocka_unit_test(test_no_hierarchy_is_unsupported),
                cmocka_unit_test(test_v1_slot_reads_each_controller_hierarchy),
                cmocka_unit_test(test_v1_huge_limit_is_unlimited_and_missing_pids_is_absent),
                cmocka_unit_test_setup_teardown(test_v1_separate_cpu_and_cpuacct_mounts, tu_scratch_setup,
                                                tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_v1_bad_quota_and_zero_period_name_the_file,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test(test_v2_garbage_cpu_stat_is_eproto_naming_file),
                cmocka_unit_test(test_v2_garbage_memory_max_is_eproto_naming_file),
                cmocka_unit_test_setup_teardown(test_v2_cpu_max_malformed_forms_are_refused,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_v2_unreadable_file_is_an_error_not_absent,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_handle_keeps_files_open_and_reads_new_values,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(
                        test_handle_looks_for_missing_files_only_every_reprobe_period, tu_scratch_setup,
                        tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(
                        test_handle_of_removed_cgroup_is_enoent_and_a_new_open_finds_the_new_one,
                        tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test(test_handle_open_failures_leave_ret_alone),
                cmocka_unit_test(test_handle_v1_holds_one_directory_per_hierarchy),
                cmocka_unit_test(test_handle_on_cgroupfs_sees_rmdir_as_removed),
                cmocka_unit_test(test_pid_cgroup_v2_and_v1),
                cmocka_unit_test(test_pid_gone_bad_or_garbage),
                cmocka_unit_test_setup_teardown(
                        test_pid_file_past_a_page_is_read_whole_and_past_the_limit_is_efbig,
                        tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test(test_parse_pid_file_picks_cpuacct_then_v2_then_first_v1),
                cmocka_unit_test(test_parse_pid_file_rejects_malformed),
                cmocka_unit_test(test_parse_pid_file_path_must_fit),
                cmocka_unit_test(test_parse_cpu_stat_needs_one_well_formed_usage_line),
        };

        return tu_exit_status(cmocka_run_group_tests(tests, NULL, NULL));
}
