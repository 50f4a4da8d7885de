/* test_usage.c: per-slot usage: cores from cgroup CPU time, absent and broken cgroups, shared GPUs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"
#include "config.h"
#include "fileio.h"
#include "sampler.h"
#include "usage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct cfg *load_cfg(const char *slots) {
        struct cfg_problems p = { 0 };
        struct cfg *c = NULL;
        char json[1024];

        snprintf(json, sizeof(json),
                 "{\"node\":{\"id\":\"n1\",\"region\":\"eu\"},\"mqtt\":{\"host\":\"h\",\"tls\":false},"
                 "\"slots\":[%s]}",
                 slots);
        assert_int_equal(cfg_parse("/etc/agent.json", json, strlen(json), &c, &p), 0);
        return c;
}

static void sh(const char *cmd) {
        assert_int_equal(system(cmd), 0);
}

static void test_cores_used_is_cpu_time_over_wall_time(void **state) {
        char dir[] = "/tmp/ra-test-usage-XXXXXX", cmd[512];
        struct cfg *c = load_cfg("{\"id\":\"s0\",\"scale\":\"M\",\"cgroup\":\"render.slice/s0.scope\"}");
        struct sampler s;
        struct usage u = { 0 };
        int fd;

        (void)state;
        assert_non_null(mkdtemp(dir));
        snprintf(cmd, sizeof(cmd),
                 "mkdir -p %1$s/sys/fs/cgroup/render.slice/s0.scope && touch "
                 "%1$s/sys/fs/cgroup/cgroup.controllers && "
                 "printf 'usage_usec 1000000\\nuser_usec 1\\nsystem_usec 1\\n' > "
                 "%1$s/sys/fs/cgroup/render.slice/s0.scope/cpu.stat && "
                 "echo 1048576 > %1$s/sys/fs/cgroup/render.slice/s0.scope/memory.current",
                 dir);
        sh(cmd);
        fd = plat_open_dir(dir);
        sampler_init(&s, fd);
        assert_int_equal(usage_init(&u, fd, c), 0);
        assert_int_equal(u.cgroup_version, HAL_CGROUP_V2);
        usage_tick(&u, c, &s, 10 * USEC_PER_SEC);
        assert_true(u.slots[0].has_cg);
        assert_false(u.slots[0].has_cores); /* a rate needs two samples */
        assert_int_equal(u.slots[0].cg.mem_current_bytes, 1048576);
        /* 3 s of CPU time in 2 s of wall time: 1.5 cores. */
        snprintf(cmd, sizeof(cmd),
                 "printf 'usage_usec 4000000\\n' > %s/sys/fs/cgroup/render.slice/s0.scope/cpu.stat", dir);
        sh(cmd);
        usage_tick(&u, c, &s, 12 * USEC_PER_SEC);
        assert_true(u.slots[0].has_cores);
        assert_float_equal(u.slots[0].cores_used, 1.5, 1e-9);
        /* The scope was recreated (new session): the counter restarts, no rate this tick. */
        snprintf(cmd, sizeof(cmd),
                 "printf 'usage_usec 10\\n' > %s/sys/fs/cgroup/render.slice/s0.scope/cpu.stat", dir);
        sh(cmd);
        usage_tick(&u, c, &s, 13 * USEC_PER_SEC);
        assert_false(u.slots[0].has_cores);
        /* No session: the scope is gone. That is a state, not an error. */
        snprintf(cmd, sizeof(cmd), "rm -rf %s/sys/fs/cgroup/render.slice/s0.scope", dir);
        sh(cmd);
        usage_tick(&u, c, &s, 14 * USEC_PER_SEC);
        assert_false(u.slots[0].has_cg);
        assert_string_equal(u.slots[0].cg_state, "absent");
        assert_string_equal(u.slots[0].cg_error, "");

        usage_done(&u);
        sampler_done(&s);
        close(fd);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        sh(cmd);
        cfg_free(c);
}

static void test_broken_cgroup_file_is_an_error_naming_it(void **state) {
        struct cfg *c = load_cfg("{\"id\":\"s0\",\"scale\":\"M\",\"cgroup\":\"render.slice/slot-0.scope\"},"
                                 "{\"id\":\"s1\",\"scale\":\"M\"}");
        int fd = plat_open_dir(RA_FIXTURES "/hosts/corrupt/cgroup-cpustat-garbage");
        struct sampler s;
        struct usage u = { 0 };

        (void)state;
        assert_true(fd >= 0);
        sampler_init(&s, fd);
        assert_int_equal(usage_init(&u, fd, c), 0);
        usage_tick(&u, c, &s, USEC_PER_SEC);
        assert_string_equal(u.slots[0].cg_state, "error");
        assert_non_null(strstr(u.slots[0].cg_error, "cpu.stat"));
        assert_null(u.slots[1].cg_state); /* no cgroup configured: nothing to say */
        usage_done(&u);
        sampler_done(&s);
        close(fd);
        cfg_free(c);
}

static void test_shared_gpu_vram_is_attributed_by_process_cgroup(void **state) {
        struct cfg *c = load_cfg(
                "{\"id\":\"s0\",\"scale\":\"M\",\"cgroup\":\"render.slice/slot-0.scope\",\"gpu\":0},"
                "{\"id\":\"s1\",\"scale\":\"M\",\"cgroup\":\"render.slice/slot-1.scope\",\"gpu\":0},"
                "{\"id\":\"s2\",\"scale\":\"L\",\"gpu\":1}");
        int fd = plat_open_dir(RA_FIXTURES "/hosts/x86-cpu");
        static struct hal_gpu_sample g[2];
        struct sampler s;
        struct usage u = { 0 };

        (void)state;
        sampler_init(&s, fd);
        assert_int_equal(usage_init(&u, fd, c), 0);
        assert_true(u.slots[0].gpu_shared && u.slots[1].gpu_shared);
        assert_false(u.slots[2].gpu_shared);
        /* pid 4242 lives in slot-0's scope, 4343 in slot-1's, 99999 is gone. */
        g[0] = (struct hal_gpu_sample){ .present = HAL_GPU_PROCS, .n_procs = 3 };
        g[0].procs[0] = (struct hal_gpu_proc){ .pid = 4242, .vram_bytes = 1000 };
        g[0].procs[1] = (struct hal_gpu_proc){ .pid = 4343, .vram_bytes = 20 };
        g[0].procs[2] = (struct hal_gpu_proc){ .pid = 99999, .vram_bytes = 5 };
        s.cur.n_gpus = 2;
        s.cur.gpus = g;
        usage_tick(&u, c, &s, USEC_PER_SEC);
        assert_true(u.slots[0].has_gpu_vram);
        assert_int_equal(u.slots[0].gpu_vram_bytes, 1000);
        assert_int_equal(u.slots[1].gpu_vram_bytes, 20);
        assert_false(u.slots[2].has_gpu_vram);
        s.cur.n_gpus = 0;
        s.cur.gpus = NULL;
        usage_done(&u);
        sampler_done(&s);
        close(fd);
        cfg_free(c);
}

static void test_cgroup_containment_respects_path_components(void **state) {
        (void)state;
        assert_true(usage_cgroup_contains("render.slice/slot-1.scope", "render.slice/slot-1.scope"));
        assert_true(usage_cgroup_contains("/render.slice/slot-1.scope/", "render.slice/slot-1.scope/app"));
        assert_false(usage_cgroup_contains("render.slice/slot-1.scope", "render.slice/slot-1.scope2"));
        assert_false(usage_cgroup_contains("render.slice/slot-1", "render.slice/slot-10.scope"));
        assert_false(usage_cgroup_contains("", "anything"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cores_used_is_cpu_time_over_wall_time),
                cmocka_unit_test(test_broken_cgroup_file_is_an_error_naming_it),
                cmocka_unit_test(test_shared_gpu_vram_is_attributed_by_process_cgroup),
                cmocka_unit_test(test_cgroup_containment_respects_path_components),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
