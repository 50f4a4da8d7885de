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
#include "slot.h"
#include "usage.h"

#include <dirent.h>
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

/* The slot table following c, for usage_init. */
static struct slot_table *table_of(struct slot_table *st, const struct cfg *c) {
        assert_int_equal(slot_table_sync(st, c), 0);
        return st;
}

/* Slot i's usage, which must be there. */
static const struct usage_slot *at(const struct usage *u, size_t i) {
        const struct usage_slot *us = usage_slot_at(u, i);

        assert_non_null(us);
        return us;
}

static void sh(const char *cmd) {
        assert_int_equal(system(cmd), 0);
}

static void test_cores_used_is_cpu_time_over_wall_time(void **state) {
        char dir[] = "/tmp/ra-test-usage-XXXXXX", cmd[512];
        struct cfg *c = load_cfg("{\"id\":\"s0\",\"scale\":\"M\",\"cgroup\":\"render.slice/s0.scope\"}");
        struct sampler s;
        struct slot_table st = { 0 };
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
        assert_int_equal(usage_init(&u, fd, table_of(&st, c)), 0);
        assert_int_equal(u.cgroup_version, HAL_CGROUP_V2);
        usage_tick(&u, &s, 10 * USEC_PER_SEC);
        assert_true(at(&u, 0)->has_cg);
        assert_false(at(&u, 0)->has_cores); /* a rate needs two samples */
        assert_int_equal(at(&u, 0)->cg.mem_current_bytes, 1048576);
        /* 3 s of CPU time in 2 s of wall time: 1.5 cores. */
        snprintf(cmd, sizeof(cmd),
                 "printf 'usage_usec 4000000\\n' > %s/sys/fs/cgroup/render.slice/s0.scope/cpu.stat", dir);
        sh(cmd);
        usage_tick(&u, &s, 12 * USEC_PER_SEC);
        assert_true(at(&u, 0)->has_cores);
        assert_float_equal(at(&u, 0)->cores_used, 1.5, 1e-9);
        /* The scope was recreated (new session): the counter restarts, no rate this tick. */
        snprintf(cmd, sizeof(cmd),
                 "printf 'usage_usec 10\\n' > %s/sys/fs/cgroup/render.slice/s0.scope/cpu.stat", dir);
        sh(cmd);
        usage_tick(&u, &s, 13 * USEC_PER_SEC);
        assert_false(at(&u, 0)->has_cores);
        /* No session: the scope is gone. That is a state, not an error. */
        snprintf(cmd, sizeof(cmd), "rm -rf %s/sys/fs/cgroup/render.slice/s0.scope", dir);
        sh(cmd);
        usage_tick(&u, &s, 14 * USEC_PER_SEC);
        assert_false(at(&u, 0)->has_cg);
        assert_string_equal(at(&u, 0)->cg_state, "absent");
        assert_string_equal(at(&u, 0)->cg_error, "");

        usage_done(&u);
        slot_table_done(&st);
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
        struct slot_table st = { 0 };
        struct usage u = { 0 };

        (void)state;
        assert_true(fd >= 0);
        sampler_init(&s, fd);
        assert_int_equal(usage_init(&u, fd, table_of(&st, c)), 0);
        usage_tick(&u, &s, USEC_PER_SEC);
        assert_string_equal(at(&u, 0)->cg_state, "error");
        assert_non_null(strstr(at(&u, 0)->cg_error, "cpu.stat"));
        assert_null(at(&u, 1)->cg_state); /* no cgroup configured: nothing to say */
        usage_done(&u);
        slot_table_done(&st);
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
        struct slot_table st = { 0 };
        struct usage u = { 0 };

        (void)state;
        sampler_init(&s, fd);
        assert_int_equal(usage_init(&u, fd, table_of(&st, c)), 0);
        assert_true(at(&u, 0)->gpu_shared && at(&u, 1)->gpu_shared);
        assert_false(at(&u, 2)->gpu_shared);
        /* pid 4242 lives in slot-0's scope, 4343 in slot-1's, 99999 is gone. */
        g[0] = (struct hal_gpu_sample){ .present = HAL_GPU_PROCS, .n_procs = 3 };
        g[0].procs[0] = (struct hal_gpu_proc){ .pid = 4242, .vram_bytes = 1000 };
        g[0].procs[1] = (struct hal_gpu_proc){ .pid = 4343, .vram_bytes = 20 };
        g[0].procs[2] = (struct hal_gpu_proc){ .pid = 99999, .vram_bytes = 5 };
        s.cur.n_gpus = 2;
        s.cur.gpus = g;
        usage_tick(&u, &s, USEC_PER_SEC);
        assert_true(at(&u, 0)->has_gpu_vram);
        assert_int_equal(at(&u, 0)->gpu_vram_bytes, 1000);
        assert_int_equal(at(&u, 1)->gpu_vram_bytes, 20);
        assert_false(at(&u, 2)->has_gpu_vram);
        s.cur.n_gpus = 0;
        s.cur.gpus = NULL;
        usage_done(&u);
        slot_table_done(&st);
        sampler_done(&s);
        close(fd);
        cfg_free(c);
}

/* Stream-session attribution: GPU 0 shared by s0 and s1 (by cgroup: the fixture's /proc puts 4242
 * in slot-0's scope, 4343 in slot-1's), GPU 1 s2's own, s3 without a GPU. */
struct stream_fx {
        struct cfg *c;
        int fd;
        struct sampler s;
        struct slot_table st;
        struct usage u;
        struct hal_gpu_sample g[2];
};

static struct stream_fx *stream_fx_new(void) {
        struct stream_fx *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        f->c = load_cfg("{\"id\":\"s0\",\"scale\":\"M\",\"cgroup\":\"render.slice/slot-0.scope\",\"gpu\":0},"
                        "{\"id\":\"s1\",\"scale\":\"M\",\"cgroup\":\"render.slice/slot-1.scope\",\"gpu\":0},"
                        "{\"id\":\"s2\",\"scale\":\"L\",\"gpu\":1},{\"id\":\"s3\",\"scale\":\"M\"}");
        f->fd = plat_open_dir(RA_FIXTURES "/hosts/x86-cpu");
        sampler_init(&f->s, f->fd);
        assert_int_equal(usage_init(&f->u, f->fd, table_of(&f->st, f->c)), 0);
        f->s.cur.n_gpus = 2;
        f->s.cur.gpus = f->g;
        return f;
}

static void stream_fx_free(struct stream_fx *f) {
        f->s.cur.n_gpus = 0;
        f->s.cur.gpus = NULL;
        usage_done(&f->u);
        slot_table_done(&f->st);
        sampler_done(&f->s);
        close(f->fd);
        cfg_free(f->c);
        free(f);
}

/* NVENC sessions go to slots: on the shared GPU 0 by the process's cgroup (4242 is slot-0's, 4343
 * slot-1's, 99999 nobody's), on the dedicated GPU 1 all to s2. */
static void test_encoder_sessions_are_attributed_to_slots(void **state) {
        struct stream_fx *f = stream_fx_new();
        struct hal_gpu_sample *g = f->g;
        struct usage *u = &f->u;

        (void)state;
        g[0] = (struct hal_gpu_sample){ .present = HAL_GPU_ENC_SESSIONS, .n_enc = 3 };
        g[0].enc[0] = (struct hal_gpu_enc_session){
                .pid = 4343, .codec = "hevc", .avg_fps = 59, .avg_latency_us = 4100
        };
        g[0].enc[1] = (struct hal_gpu_enc_session){ .pid = 99999, .codec = "h264", .avg_fps = 30 };
        g[0].enc[2] = (struct hal_gpu_enc_session){
                .pid = 4242, .codec = "av1", .avg_fps = 120, .avg_latency_us = 2000
        };
        g[1] = (struct hal_gpu_sample){ .present = HAL_GPU_ENC_SESSIONS, .n_enc = 1 };
        g[1].enc[0] = (struct hal_gpu_enc_session){
                .pid = 5, .codec = "h264", .avg_fps = 60, .avg_latency_us = 7000
        };
        usage_tick(u, &f->s, USEC_PER_SEC);
        assert_true(at(u, 0)->has_enc);
        assert_int_equal(at(u, 0)->n_enc, 1);
        assert_int_equal(at(u, 0)->enc[0].pid, 4242);
        assert_int_equal(at(u, 0)->enc[0].avg_fps, 120);
        assert_int_equal(at(u, 1)->n_enc, 1);
        assert_int_equal(at(u, 1)->enc[0].avg_latency_us, 4100);
        assert_true(at(u, 2)->has_enc);
        assert_int_equal(at(u, 2)->n_enc, 1);
        assert_int_equal(at(u, 2)->enc[0].pid, 5);
        assert_false(at(u, 3)->has_enc); /* no GPU */

        /* A driver without the call: no slot claims to know (none is not "zero sessions"). */
        g[1].present = 0;
        usage_tick(u, &f->s, 2 * USEC_PER_SEC);
        assert_false(at(u, 2)->has_enc);
        assert_int_equal(at(u, 2)->n_enc, 0);
        stream_fx_free(f);
}

/* NvFBC capture sessions go the same way, apart from the NVENC ones: a GPU that lists FBC sessions
 * and not encoder sessions gives its slots the one and not the other. */
static void test_fbc_sessions_are_attributed_to_slots_like_encoder_sessions(void **state) {
        struct stream_fx *f = stream_fx_new();
        struct hal_gpu_sample *g = f->g;
        struct usage *u = &f->u;

        (void)state;
        g[0] = (struct hal_gpu_sample){ .present = HAL_GPU_FBC_SESSIONS, .n_fbc = 3 };
        g[0].fbc[0] = (struct hal_gpu_fbc_session){ .pid = 99999, .type = "tosys", .avg_fps = 30 };
        g[0].fbc[1] = (struct hal_gpu_fbc_session){
                .pid = 4343, .type = "hwenc", .avg_fps = 59, .avg_latency_us = 1700
        };
        g[0].fbc[2] = (struct hal_gpu_fbc_session){
                .pid = 4242, .type = "cuda", .avg_fps = 60, .avg_latency_us = 900
        };
        g[1] = (struct hal_gpu_sample){ .present = HAL_GPU_ENC_SESSIONS | HAL_GPU_FBC_SESSIONS,
                                        .n_enc = 1,
                                        .n_fbc = 1 };
        g[1].enc[0] = (struct hal_gpu_enc_session){ .pid = 5, .codec = "h264", .avg_fps = 60 };
        g[1].fbc[0] = (struct hal_gpu_fbc_session){ .pid = 5, .type = "vid", .avg_fps = 61 };
        usage_tick(u, &f->s, USEC_PER_SEC);
        assert_false(at(u, 0)->has_enc);
        assert_true(at(u, 0)->has_fbc);
        assert_int_equal(at(u, 0)->n_fbc, 1);
        assert_int_equal(at(u, 0)->fbc[0].pid, 4242);
        assert_int_equal(at(u, 0)->fbc[0].avg_latency_us, 900);
        assert_true(at(u, 1)->has_fbc);
        assert_int_equal(at(u, 1)->n_fbc, 1);
        assert_string_equal(at(u, 1)->fbc[0].type, "hwenc");
        assert_true(at(u, 2)->has_enc && at(u, 2)->has_fbc);
        assert_int_equal(at(u, 2)->n_enc, 1);
        assert_int_equal(at(u, 2)->n_fbc, 1);
        assert_int_equal(at(u, 2)->fbc[0].avg_fps, 61);
        assert_false(at(u, 3)->has_fbc); /* no GPU */

        /* The sessions end: listed and empty, not absent. */
        g[0].n_fbc = 0;
        usage_tick(u, &f->s, 2 * USEC_PER_SEC);
        assert_true(at(u, 0)->has_fbc);
        assert_int_equal(at(u, 0)->n_fbc, 0);
        stream_fx_free(f);
}

static void test_malformed_process_cgroup_withholds_the_shared_vram_and_says_why(void **state) {
        struct cfg *c = load_cfg(
                "{\"id\":\"s0\",\"scale\":\"M\",\"cgroup\":\"render.slice/slot-0.scope\",\"gpu\":0},"
                "{\"id\":\"s1\",\"scale\":\"M\",\"cgroup\":\"render.slice/slot-1.scope\",\"gpu\":0}");
        int fd = plat_open_dir(RA_FIXTURES "/hosts/corrupt/cgroup-pidfile-garbage");
        static struct hal_gpu_sample g[1];
        struct sampler s;
        struct slot_table st = { 0 };
        struct usage u = { 0 };

        (void)state;
        sampler_init(&s, fd);
        assert_int_equal(usage_init(&u, fd, table_of(&st, c)), 0);
        /* pid 77's /proc/77/cgroup is garbage: which slot its 1 GiB belongs to is unknown. */
        g[0] = (struct hal_gpu_sample){ .present = HAL_GPU_PROCS, .n_procs = 1 };
        g[0].procs[0] = (struct hal_gpu_proc){ .pid = 77, .vram_bytes = 1 << 30 };
        s.cur.n_gpus = 1;
        s.cur.gpus = g;
        usage_tick(&u, &s, USEC_PER_SEC);
        assert_false(at(&u, 0)->has_gpu_vram);
        assert_false(at(&u, 1)->has_gpu_vram);
        assert_non_null(strstr(u.attr_error, "/proc/77/cgroup"));
        /* A process that is simply gone is no error. */
        g[0].procs[0].pid = 99999;
        usage_tick(&u, &s, 2 * USEC_PER_SEC);
        assert_true(at(&u, 0)->has_gpu_vram);
        assert_string_equal(u.attr_error, "");
        s.cur.n_gpus = 0;
        s.cur.gpus = NULL;
        usage_done(&u);
        slot_table_done(&st);
        sampler_done(&s);
        close(fd);
        cfg_free(c);
}

static int count_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        int n = 0;

        assert_non_null(d);
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}

static void put_usage(const char *dir, const char *scope, unsigned long long usec) {
        char cmd[512];

        snprintf(cmd, sizeof(cmd),
                 "mkdir -p %1$s/sys/fs/cgroup/render.slice/%2$s && printf 'usage_usec %3$llu\\n' > "
                 "%1$s/sys/fs/cgroup/render.slice/%2$s/cpu.stat",
                 dir, scope, usec);
        sh(cmd);
}

static void test_scope_recreated_between_ticks_is_read_at_once_without_a_rate(void **state) {
        char dir[] = "/tmp/ra-test-usage-XXXXXX", cmd[512];
        struct cfg *c = load_cfg("{\"id\":\"s0\",\"scale\":\"M\",\"cgroup\":\"render.slice/s0.scope\"}");
        struct sampler s;
        struct slot_table st = { 0 };
        struct usage u = { 0 };
        int fd;

        (void)state;
        assert_non_null(mkdtemp(dir));
        snprintf(cmd, sizeof(cmd), "mkdir -p %s/sys/fs/cgroup && touch %s/sys/fs/cgroup/cgroup.controllers",
                 dir, dir);
        sh(cmd);
        put_usage(dir, "s0.scope", 1000000);
        fd = plat_open_dir(dir);
        sampler_init(&s, fd);
        assert_int_equal(usage_init(&u, fd, table_of(&st, c)), 0);
        usage_tick(&u, &s, 10 * USEC_PER_SEC);
        put_usage(dir, "s0.scope", 3000000);
        usage_tick(&u, &s, 12 * USEC_PER_SEC);
        assert_true(at(&u, 0)->has_cores);
        assert_float_equal(at(&u, 0)->cores_used, 1.0, 1e-9);
        /* One session ends and the next starts within a tick: a new scope at the same path whose
         * counter happens to be higher. It is read this tick, but is no base for a rate. */
        snprintf(cmd, sizeof(cmd), "rm -rf %s/sys/fs/cgroup/render.slice/s0.scope", dir);
        sh(cmd);
        put_usage(dir, "s0.scope", 9000000);
        usage_tick(&u, &s, 13 * USEC_PER_SEC);
        assert_true(at(&u, 0)->has_cg);
        assert_string_equal(at(&u, 0)->cg_state, "ok");
        assert_int_equal(at(&u, 0)->cg.cpu_usage_usec, 9000000);
        assert_false(at(&u, 0)->has_cores);
        put_usage(dir, "s0.scope", 9500000);
        usage_tick(&u, &s, 14 * USEC_PER_SEC);
        assert_true(at(&u, 0)->has_cores);
        assert_float_equal(at(&u, 0)->cores_used, 0.5, 1e-9);

        usage_done(&u);
        slot_table_done(&st);
        sampler_done(&s);
        close(fd);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        sh(cmd);
        cfg_free(c);
}

static void test_absent_scope_is_found_on_the_tick_after_it_appears(void **state) {
        char dir[] = "/tmp/ra-test-usage-XXXXXX", cmd[512];
        struct cfg *c = load_cfg("{\"id\":\"s0\",\"scale\":\"M\",\"cgroup\":\"render.slice/s0.scope\"}");
        struct sampler s;
        struct slot_table st = { 0 };
        struct usage u = { 0 };
        int fd;

        (void)state;
        assert_non_null(mkdtemp(dir));
        snprintf(cmd, sizeof(cmd), "mkdir -p %s/sys/fs/cgroup && touch %s/sys/fs/cgroup/cgroup.controllers",
                 dir, dir);
        sh(cmd);
        fd = plat_open_dir(dir);
        sampler_init(&s, fd);
        assert_int_equal(usage_init(&u, fd, table_of(&st, c)), 0);
        for (int i = 1; i <= 3; i++) {
                usage_tick(&u, &s, (uint64_t)i * USEC_PER_SEC);
                assert_string_equal(at(&u, 0)->cg_state, "absent");
        }
        put_usage(dir, "s0.scope", 42);
        usage_tick(&u, &s, 4 * USEC_PER_SEC);
        assert_string_equal(at(&u, 0)->cg_state, "ok");
        assert_int_equal(at(&u, 0)->cg.cpu_usage_usec, 42);

        usage_done(&u);
        slot_table_done(&st);
        sampler_done(&s);
        close(fd);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        sh(cmd);
        cfg_free(c);
}

/* Usage of config c's slots on a cgroup v2 tree in a temporary dir with scopes s0.scope and
 * s1.scope, to be reloaded to config n. */
struct reload_fx {
        char dir[32];
        int fd;
        struct cfg *c, *n;
        struct slot_table st;
        struct usage u;
        struct sampler s;
};

static void reload_fx_start(struct reload_fx *f, const char *c_slots, const char *n_slots) {
        char cmd[512];

        *f = (struct reload_fx){ .dir = "/tmp/ra-test-usage-XXXXXX" };
        assert_non_null(mkdtemp(f->dir));
        snprintf(cmd, sizeof(cmd), "mkdir -p %s/sys/fs/cgroup && touch %s/sys/fs/cgroup/cgroup.controllers",
                 f->dir, f->dir);
        sh(cmd);
        put_usage(f->dir, "s0.scope", 1000000);
        put_usage(f->dir, "s1.scope", 5000000);
        f->fd = plat_open_dir(f->dir);
        f->c = load_cfg(c_slots);
        f->n = load_cfg(n_slots);
        sampler_init(&f->s, f->fd);
        assert_int_equal(usage_init(&f->u, f->fd, table_of(&f->st, f->c)), 0);
}

/* What the agent's reload does: the table follows n by id, then usage catches up. */
static void reload_fx_reload(struct reload_fx *f) {
        assert_int_equal(slot_table_sync(&f->st, f->n), 0);
        assert_int_equal(usage_reload(&f->u), 0);
}

static void reload_fx_end(struct reload_fx *f) {
        char cmd[512];

        usage_done(&f->u);
        slot_table_done(&f->st);
        sampler_done(&f->s);
        close(f->fd);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
        sh(cmd);
        cfg_free(f->c);
        cfg_free(f->n);
}

/* A reload keeps s0 (moved behind a new slot, now on a GPU it shares): its open cgroup and CPU
 * baseline stay with it, so the first tick after the reload has its cores already. */
static void test_reload_keeps_a_kept_slots_cpu_baseline(void **state) {
        struct reload_fx f;
        const struct usage_slot *before;

        (void)state;
        reload_fx_start(&f, "{\"id\":\"s0\",\"scale\":\"M\",\"cgroup\":\"render.slice/s0.scope\",\"gpu\":0}",
                        "{\"id\":\"s9\",\"scale\":\"M\",\"cgroup\":\"render.slice/s1.scope\",\"gpu\":0},"
                        "{\"id\":\"s0\",\"scale\":\"M\",\"cgroup\":\"render.slice/s0.scope\",\"gpu\":0}");
        usage_tick(&f.u, &f.s, 10 * USEC_PER_SEC);
        before = at(&f.u, 0);
        assert_false(before->gpu_shared);
        reload_fx_reload(&f);
        assert_ptr_equal(at(&f.u, 1), before); /* s0's own part, at its new place */
        assert_true(at(&f.u, 1)->gpu_shared);  /* s9 came onto its GPU */
        assert_true(at(&f.u, 0)->gpu_shared);
        put_usage(f.dir, "s0.scope", 3000000);
        usage_tick(&f.u, &f.s, 12 * USEC_PER_SEC);
        assert_true(at(&f.u, 1)->has_cores);
        assert_float_equal(at(&f.u, 1)->cores_used, 1.0, 1e-9);
        assert_false(at(&f.u, 0)->has_cores); /* new: a rate needs two samples */
        reload_fx_end(&f);
}

/* A reload that gives s0 another cgroup: the old one is closed, and the new one's counter is no
 * base for a rate against the old one's. */
static void test_reload_that_moves_a_slots_cgroup_starts_its_usage_over(void **state) {
        struct reload_fx f;
        int fds;

        (void)state;
        reload_fx_start(&f, "{\"id\":\"s0\",\"scale\":\"M\",\"cgroup\":\"render.slice/s0.scope\"}",
                        "{\"id\":\"s0\",\"scale\":\"M\",\"cgroup\":\"render.slice/s1.scope\"}");
        fds = count_fds();
        usage_tick(&f.u, &f.s, 10 * USEC_PER_SEC);
        assert_true(count_fds() > fds);
        reload_fx_reload(&f);
        assert_int_equal(count_fds(), fds); /* s0.scope closed */
        usage_tick(&f.u, &f.s, 12 * USEC_PER_SEC);
        assert_string_equal(at(&f.u, 0)->cg_state, "ok");
        assert_int_equal(at(&f.u, 0)->cg.cpu_usage_usec, 5000000);
        assert_false(at(&f.u, 0)->has_cores);
        put_usage(f.dir, "s1.scope", 6000000);
        usage_tick(&f.u, &f.s, 13 * USEC_PER_SEC);
        assert_float_equal(at(&f.u, 0)->cores_used, 1.0, 1e-9);
        reload_fx_end(&f);
}

/* A slot a reload drops takes its cgroup with it; the table's end closes the rest. */
static void test_reload_and_table_done_close_the_dropped_slots_cgroups(void **state) {
        struct cfg *c = load_cfg("{\"id\":\"s0\",\"scale\":\"M\",\"cgroup\":\"render.slice/slot-0.scope\"},"
                                 "{\"id\":\"s1\",\"scale\":\"M\",\"cgroup\":\"render.slice/slot-1.scope\"}");
        struct cfg *n = load_cfg("{\"id\":\"s1\",\"scale\":\"M\",\"cgroup\":\"render.slice/slot-1.scope\"}");
        int fd = plat_open_dir(RA_FIXTURES "/hosts/x86-cpu");
        struct slot_table st = { 0 };
        struct usage u = { 0 };
        struct sampler s;
        int before, two, one;

        (void)state;
        usage_done(&u); /* zeroed: nothing to do */
        sampler_init(&s, fd);
        before = count_fds();
        assert_int_equal(usage_init(&u, fd, table_of(&st, c)), 0);
        usage_tick(&u, &s, USEC_PER_SEC);
        assert_string_equal(at(&u, 1)->cg_state, "ok");
        two = count_fds();
        assert_true(two > before);
        assert_int_equal(slot_table_sync(&st, n), 0);
        assert_int_equal(usage_reload(&u), 0);
        assert_int_equal(count_fds(), two); /* retired until the reload ends (the old meter reads it) */
        slot_table_reap(&st);
        one = count_fds();
        assert_true(one > before && one < two); /* s1's still open */
        assert_int_equal((two - before), 2 * (one - before));
        usage_tick(&u, &s, 2 * USEC_PER_SEC);
        assert_int_equal(count_fds(), one);
        usage_done(&u);
        slot_table_done(&st);
        assert_int_equal(count_fds(), before);
        sampler_done(&s);
        close(fd);
        cfg_free(c);
        cfg_free(n);
}

static void put_pid(const char *dir, int pid, const char *cgroup) {
        char cmd[512];

        snprintf(cmd, sizeof(cmd), "mkdir -p %1$s/proc/%2$d && echo 0::/%3$s > %1$s/proc/%2$d/cgroup", dir,
                 pid, cgroup);
        sh(cmd);
}

static void test_gpu_process_cgroup_is_read_when_listed_then_rechecked(void **state) {
        char dir[] = "/tmp/ra-test-usage-XXXXXX", cmd[512];
        struct cfg *c =
                load_cfg("{\"id\":\"s0\",\"scale\":\"M\",\"cgroup\":\"render.slice/s0.scope\",\"gpu\":0},"
                         "{\"id\":\"s1\",\"scale\":\"M\",\"cgroup\":\"render.slice/s1.scope\",\"gpu\":0}");
        static struct hal_gpu_sample g[1];
        struct sampler s;
        struct slot_table st = { 0 };
        struct usage u = { 0 };
        uint64_t t = 1;
        int fd, ticks;

        (void)state;
        assert_non_null(mkdtemp(dir));
        snprintf(cmd, sizeof(cmd), "mkdir -p %s/sys/fs/cgroup && touch %s/sys/fs/cgroup/cgroup.controllers",
                 dir, dir);
        sh(cmd);
        put_pid(dir, 700, "render.slice/s0.scope");
        put_pid(dir, 800, "render.slice/s1.scope/app");
        fd = plat_open_dir(dir);
        sampler_init(&s, fd);
        assert_int_equal(usage_init(&u, fd, table_of(&st, c)), 0);
        g[0] = (struct hal_gpu_sample){ .present = HAL_GPU_PROCS, .n_procs = 2 };
        g[0].procs[0] = (struct hal_gpu_proc){ .pid = 800, .vram_bytes = 20 };
        g[0].procs[1] = (struct hal_gpu_proc){ .pid = 700, .vram_bytes = 1000 };
        s.cur.n_gpus = 1;
        s.cur.gpus = g;
        usage_tick(&u, &s, t++ * USEC_PER_SEC);
        assert_int_equal(at(&u, 0)->gpu_vram_bytes, 1000);
        assert_int_equal(at(&u, 1)->gpu_vram_bytes, 20);
        assert_int_equal(u.n_pids, 2);

        /* pid 700 exits and a process of s1 gets its number without missing a listing: the
         * remembered cgroup holds until the recheck, which comes within USAGE_PID_RECHECK_TICKS. */
        put_pid(dir, 700, "render.slice/s1.scope");
        usage_tick(&u, &s, t++ * USEC_PER_SEC);
        assert_int_equal(at(&u, 0)->gpu_vram_bytes, 1000);
        for (ticks = 1; ticks <= USAGE_PID_RECHECK_TICKS && at(&u, 0)->gpu_vram_bytes != 0; ticks++)
                usage_tick(&u, &s, t++ * USEC_PER_SEC);
        assert_true(ticks <= USAGE_PID_RECHECK_TICKS);
        assert_int_equal(at(&u, 0)->gpu_vram_bytes, 0);
        assert_int_equal(at(&u, 1)->gpu_vram_bytes, 1020);

        /* A pid missing from one listing is forgotten, and read afresh when it is back. */
        g[0].n_procs = 1;
        usage_tick(&u, &s, t++ * USEC_PER_SEC);
        assert_int_equal(u.n_pids, 1);
        assert_int_equal(at(&u, 1)->gpu_vram_bytes, 20);
        put_pid(dir, 700, "render.slice/s0.scope");
        g[0].n_procs = 2;
        usage_tick(&u, &s, t++ * USEC_PER_SEC);
        assert_int_equal(at(&u, 0)->gpu_vram_bytes, 1000);
        assert_int_equal(at(&u, 1)->gpu_vram_bytes, 20);

        /* Gone from /proc: unattributed, not an error. */
        snprintf(cmd, sizeof(cmd), "rm -rf %s/proc/900", dir);
        sh(cmd);
        g[0].procs[0] = (struct hal_gpu_proc){ .pid = 900, .vram_bytes = 5 };
        usage_tick(&u, &s, t++ * USEC_PER_SEC);
        assert_true(at(&u, 0)->has_gpu_vram);
        assert_int_equal(at(&u, 0)->gpu_vram_bytes, 1000);
        assert_int_equal(at(&u, 1)->gpu_vram_bytes, 0);

        s.cur.n_gpus = 0;
        s.cur.gpus = NULL;
        usage_done(&u);
        slot_table_done(&st);
        sampler_done(&s);
        close(fd);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        sh(cmd);
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
                cmocka_unit_test(test_encoder_sessions_are_attributed_to_slots),
                cmocka_unit_test(test_fbc_sessions_are_attributed_to_slots_like_encoder_sessions),
                cmocka_unit_test(test_malformed_process_cgroup_withholds_the_shared_vram_and_says_why),
                cmocka_unit_test(test_cgroup_containment_respects_path_components),
                cmocka_unit_test(test_scope_recreated_between_ticks_is_read_at_once_without_a_rate),
                cmocka_unit_test(test_absent_scope_is_found_on_the_tick_after_it_appears),
                cmocka_unit_test(test_reload_keeps_a_kept_slots_cpu_baseline),
                cmocka_unit_test(test_reload_that_moves_a_slots_cgroup_starts_its_usage_over),
                cmocka_unit_test(test_reload_and_table_done_close_the_dropped_slots_cgroups),
                cmocka_unit_test(test_gpu_process_cgroup_is_read_when_listed_then_rechecked),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
