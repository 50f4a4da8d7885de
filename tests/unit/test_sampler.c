/* test_sampler.c: rates between samples, counter resets, per-metric failure handling, and GPUs read on
 * the worker thread (against tests/fakes' NVML). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"
#include "fileio.h"
#include "sampler.h"
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fx {
        char dir[64];
        int root_fd;
        struct sampler s;
        unsigned threads; /* this process's threads at setup */
};

static void put(struct fx *f, const char *rel, const char *content) {
        char p[256];
        FILE *fp;

        snprintf(p, sizeof(p), "%s/%s", f->dir, rel);
        fp = fopen(p, "w");
        assert_non_null(fp);
        fputs(content, fp);
        fclose(fp);
}

static void put_host(struct fx *f, uint64_t user, uint64_t idle, uint64_t rx, uint64_t tx) {
        char buf[1024];

        snprintf(buf, sizeof(buf),
                 "cpu  %llu 0 0 %llu 0 0 0 0 0 0\ncpu0 %llu 0 0 %llu 0 0 0 0 0 0\nintr 0\n",
                 (unsigned long long)user, (unsigned long long)idle, (unsigned long long)user,
                 (unsigned long long)idle);
        put(f, "proc/stat", buf);
        put(f, "proc/meminfo", "MemTotal:       16000000 kB\nMemFree:  1 kB\nMemAvailable:    4000000 kB\n");
        snprintf(buf, sizeof(buf),
                 "Inter-|   Receive                                                |  Transmit\n"
                 " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
                 "drop "
                 "fifo colls carrier compressed\n"
                 "veth0: %llu 0 0 0 0 0 0 0 %llu 0 0 0 0 0 0 0\n",
                 (unsigned long long)rx, (unsigned long long)tx);
        put(f, "proc/net/dev", buf);
}

/* The threads of this process. */
static unsigned count_threads(void) {
        return tu_dir_entries("/proc/self/task");
}

/* The number of threads once it is `want`, waiting up to 5 s: a thread pthread_join has waited for
 * may still be listed in /proc/self/task for a moment (it wakes the joiner before its task is gone;
 * under qemu-user, the arm64 run, for longer). */
static unsigned threads_settled_at(unsigned want) {
        unsigned n = count_threads();

        for (int k = 0; k < 250 && n != want; k++) {
                usleep(20 * 1000);
                n = count_threads();
        }
        return n;
}

static int setup(void **state) {
        struct fx *f = calloc(1, sizeof(*f));
        char p[128];

        strcpy(f->dir, "/tmp/ra-test-sampler-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(p, sizeof(p), "%s/proc", f->dir);
        mkdir(p, 0755);
        snprintf(p, sizeof(p), "%s/proc/net", f->dir);
        mkdir(p, 0755);
        f->root_fd = plat_open_dir(f->dir);
        assert_true(f->root_fd >= 0);
        sampler_init(&f->s, f->root_fd);
        f->threads = count_threads();
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fx *f = *state;
        char cmd[128];

        sampler_done(&f->s);
        /* A worker let go mid-request ends on its own: the next test counts threads from a quiet
         * process (not checked here: a test that left a thread asserts that itself). */
        (void)threads_settled_at(f->threads);
        close(f->root_fd);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
        assert_int_equal(system(cmd), 0);
        plat_clock_set_fake(0, 0);
        free(f);
        return 0;
}

static void test_first_sample_has_counters_but_no_rates(void **state) {
        struct fx *f = *state;
        const struct host_sample *h;

        put_host(f, 100, 900, 1000, 2000);
        plat_clock_set_fake(10 * USEC_PER_SEC, 1);
        h = sampler_tick(&f->s);
        assert_true(h->has_cpu && h->has_mem && h->has_net);
        assert_false(h->has_cpu_util);
        assert_int_equal(h->cpu.cores, 1);
        assert_int_equal(h->mem.available_bytes, 4000000ULL * 1024);
        assert_int_equal(h->net.n, 1);
        assert_false(h->net_rates[0].valid);
}

static void test_rates_come_from_counter_deltas_over_elapsed_time(void **state) {
        struct fx *f = *state;
        const struct host_sample *h;
        const struct hal_net_iface *ni = NULL;
        const struct net_rate *r;

        put_host(f, 100, 900, 1000, 2000);
        plat_clock_set_fake(10 * USEC_PER_SEC, 1);
        sampler_tick(&f->s);
        /* 2 s later: 25 of 100 jiffies busy; 1,000,000 bytes in = 4 Mbps; 500,000 out = 2 Mbps. */
        put_host(f, 125, 975, 1001000, 502000);
        plat_clock_set_fake(12 * USEC_PER_SEC, 1);
        h = sampler_tick(&f->s);
        assert_true(h->has_cpu_util);
        assert_float_equal(h->cpu_util_pct, 25.0, 1e-9);
        r = sampler_iface_rate(&f->s, "veth0", &ni);
        assert_non_null(r);
        assert_true(r->valid);
        assert_float_equal(r->rx_mbps, 4.0, 1e-9);
        assert_float_equal(r->tx_mbps, 2.0, 1e-9);
        assert_string_equal(ni->name, "veth0");
        assert_null(sampler_iface_rate(&f->s, "eth9", NULL));
}

static void test_counter_going_backwards_gives_no_rate_not_a_huge_one(void **state) {
        struct fx *f = *state;
        const struct host_sample *h;

        put_host(f, 100, 900, 5000000, 5000000);
        plat_clock_set_fake(10 * USEC_PER_SEC, 1);
        sampler_tick(&f->s);
        put_host(f, 110, 990, 100, 100); /* interface recreated */
        plat_clock_set_fake(11 * USEC_PER_SEC, 1);
        h = sampler_tick(&f->s);
        assert_false(h->net_rates[0].valid);
        assert_true(h->has_cpu_util);
}

static void test_broken_file_drops_only_that_metric_and_backs_off(void **state) {
        struct fx *f = *state;
        const struct host_sample *h;
        uint64_t t = 10;
        int reads = 0;

        put_host(f, 100, 900, 1, 1);
        put(f, "proc/meminfo", "MemTotal: garbage kB\n");
        plat_clock_set_fake(t * USEC_PER_SEC, 1);
        h = sampler_tick(&f->s);
        assert_false(h->has_mem);
        assert_true(h->has_cpu && h->has_net);
        assert_non_null(strstr(f->s.mem.error, "meminfo"));
        /* While it stays broken, it is retried less and less often. */
        for (int i = 0; i < 40; i++) {
                uint64_t before = f->s.mem.failures;

                plat_clock_set_fake(++t * USEC_PER_SEC, 1);
                sampler_tick(&f->s);
                if (f->s.mem.failures != before)
                        reads++;
        }
        assert_true(reads < 10);
        assert_true(reads >= 3);
        /* Once it reads again, it is back on the very next due tick. */
        put_host(f, 200, 1800, 2, 2);
        for (int i = 0; i < 70 && f->s.mem.error[0]; i++) {
                plat_clock_set_fake(++t * USEC_PER_SEC, 1);
                h = sampler_tick(&f->s);
        }
        assert_string_equal(f->s.mem.error, "");
        assert_true(h->has_mem);
}

static void test_proc_files_stay_open_and_one_missing_at_first_is_read_once_there(void **state) {
        struct fx *f = *state;
        const struct host_sample *h;
        char p[128];
        uint64_t t = 10;

        put_host(f, 100, 900, 1, 1);
        snprintf(p, sizeof(p), "%s/proc/meminfo", f->dir);
        assert_int_equal(unlink(p), 0);
        plat_clock_set_fake(t * USEC_PER_SEC, 1);
        h = sampler_tick(&f->s);
        assert_false(h->has_mem);
        assert_non_null(strstr(f->s.mem.error, "/proc/meminfo: No such file or directory"));
        assert_true(h->has_cpu);
        /* /proc/stat is not opened again on each tick: unlinked, it is still the file read. */
        snprintf(p, sizeof(p), "%s/proc/stat", f->dir);
        assert_int_equal(unlink(p), 0);
        plat_clock_set_fake(++t * USEC_PER_SEC, 1);
        h = sampler_tick(&f->s);
        assert_true(h->has_cpu);
        assert_int_equal(h->cpu.total_jiffies, 1000);
        put(f, "proc/meminfo", "MemTotal:       16000000 kB\nMemAvailable:    2000000 kB\n");
        for (int i = 0; i < 4 && !h->has_mem; i++) {
                plat_clock_set_fake(++t * USEC_PER_SEC, 1);
                h = sampler_tick(&f->s);
        }
        assert_true(h->has_mem);
        assert_int_equal(h->mem.available_bytes, 2000000ULL * 1024);
}

struct events {
        unsigned n;
        char type[4][32];
        char call[4][160];
};

static void record_event(const char *type, cJSON *fields, void *ud) {
        struct events *e = ud;
        const cJSON *call = cJSON_GetObjectItem(fields, "call");

        if (e->n < 4) {
                snprintf(e->type[e->n], sizeof(e->type[0]), "%s", type);
                snprintf(e->call[e->n], sizeof(e->call[0]), "%s",
                         cJSON_IsString(call) ? call->valuestring : "");
        }
        e->n++;
        cJSON_Delete(fields);
}

/* The GPUs are read on the worker: a call stuck past the deadline (tests/fakes' NVML hanging while
 * FAKE_NVML_HANG exists) leaves the tick its last complete sample, marked stale, names the call, and
 * raises one event; its return raises another. */
static void test_stuck_gpu_call_is_stale_named_and_raised_once_then_recovered(void **state) {
        struct fx *f = *state;
        struct hal_gpu_options o = { .nvml_path = FAKE_NVML_PATH };
        const struct host_sample *h;
        struct events ev = { 0 };
        char script[128], hang[128];
        cJSON *st;

        snprintf(script, sizeof(script), "%s/nvml.script", f->dir);
        snprintf(hang, sizeof(hang), "%s/nvml.hang", f->dir);
        put(f, "nvml.script", "gpu 0 name=NVIDIA L4 util=42\n");
        setenv("FAKE_NVML_SCRIPT", script, 1);
        setenv("FAKE_NVML_HANG", hang, 1);
        put_host(f, 100, 100, 0, 0);
        sampler_set_event(&f->s, record_event, &ev);
        assert_int_equal(sampler_open_gpus(&f->s, &o, 500 * USEC_PER_MSEC, 5 * USEC_PER_SEC, NULL, NULL), 1);

        h = sampler_tick(&f->s);
        assert_int_equal(h->n_gpus, 1);
        assert_false(h->gpus_stale);
        assert_string_equal(h->gpus[0].name, "NVIDIA L4");
        put(f, "nvml.hang", "");
        /* Ticks take what ended and ask for the next; one of those hangs. Past the 500 ms deadline
         * the call is stuck (counted from when the worker began GPU 0), and at twice that since the
         * last sample ended the sample is stale. Polled for both: the two clocks start apart, and by
         * more than a short deadline when the worker wakes late (qemu, a loaded machine). */
        for (int k = 0; k < 250 && !(h->gpus_stale && ev.n > 0); k++) {
                usleep(20 * 1000);
                h = sampler_tick(&f->s);
        }
        assert_int_equal(h->n_gpus, 1);
        assert_true(h->gpus_stale);
        assert_true(h->gpu_age_usec >= 1000 * USEC_PER_MSEC);
        assert_true(h->gpus[0].util_pct == 42.0); /* the last complete sample */
        assert_int_equal(ev.n, 1);
        assert_string_equal(ev.type[0], "gpu_driver_stuck");
        assert_string_equal(ev.call[0], "sampling GPU 0 (NVIDIA L4)");
        st = sampler_gpu_status_json(&f->s);
        assert_string_equal(cJSON_GetObjectItem(st, "stuck")->valuestring, "sampling GPU 0 (NVIDIA L4)");
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(st, "stale")));
        cJSON_Delete(st);
        h = sampler_tick(&f->s);
        assert_int_equal(ev.n, 1); /* said once */

        unlink(hang);
        for (int k = 0; k < 250 && h->gpus_stale; k++) {
                usleep(20 * 1000);
                h = sampler_tick(&f->s);
        }
        assert_false(h->gpus_stale);
        assert_int_equal(ev.n, 2);
        assert_string_equal(ev.type[1], "gpu_driver_recovered");
        st = sampler_gpu_status_json(&f->s);
        assert_null(cJSON_GetObjectItem(st, "stuck"));
        cJSON_Delete(st);
        unsetenv("FAKE_NVML_HANG");
}

/* A host without GPUs keeps no GPU worker thread once the backends' open has ended with none:
 * nothing would ever be asked of it, and its stack and malloc arena would stay in the agent's memory.
 * The ticks and the status go on as for a host whose GPUs were looked for. */
static void test_no_gpu_found_leaves_no_worker_thread(void **state) {
        struct fx *f = *state;
        struct hal_gpu_options o = { .no_nvml = true };
        const struct host_sample *h;
        unsigned before = count_threads();
        cJSON *st;

        put_host(f, 100, 100, 0, 0);
        assert_int_equal(sampler_open_gpus(&f->s, &o, 50 * USEC_PER_MSEC, 5 * USEC_PER_SEC, NULL, NULL), 0);
        assert_int_equal(threads_settled_at(before), before);
        h = sampler_tick(&f->s);
        assert_int_equal(h->n_gpus, 0);
        st = sampler_gpu_status_json(&f->s);
        assert_int_equal(cJSON_GetObjectItem(st, "count")->valueint, 0);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(st, "opened")));
        cJSON_Delete(st);
}

/* The same when the open ends late (NVML stuck in init past the open's timeout) with no GPU: a
 * tick takes the open's end, the worker goes, and the ticks after go on without it. */
static void test_late_open_with_no_gpu_drops_the_worker_and_ticks_go_on(void **state) {
        struct fx *f = *state;
        struct hal_gpu_options o = { .nvml_path = FAKE_NVML_PATH };
        const struct host_sample *h;
        unsigned before = count_threads();
        char script[128], hang[128];
        int k;

        snprintf(script, sizeof(script), "%s/nvml.script", f->dir);
        snprintf(hang, sizeof(hang), "%s/nvml.hang", f->dir);
        put(f, "nvml.script", "\n");
        put(f, "nvml.hang", "");
        setenv("FAKE_NVML_SCRIPT", script, 1);
        setenv("FAKE_NVML_HANG", hang, 1);
        put_host(f, 100, 100, 0, 0);
        assert_int_equal(sampler_open_gpus(&f->s, &o, 50 * USEC_PER_MSEC, 50 * USEC_PER_MSEC, NULL, NULL),
                         -ETIMEDOUT);
        assert_int_equal(count_threads(), before + 1);
        assert_int_equal(unlink(hang), 0);
        for (k = 0; k < 250 && count_threads() != before; k++) {
                usleep(20 * 1000);
                h = sampler_tick(&f->s);
                assert_int_equal(h->n_gpus, 0);
        }
        assert_int_equal(count_threads(), before);
        h = sampler_tick(&f->s);
        assert_int_equal(h->n_gpus, 0);
        unsetenv("FAKE_NVML_SCRIPT");
        unsetenv("FAKE_NVML_HANG");
}

static void test_done_is_safe_on_a_zeroed_sampler(void **state) {
        struct sampler s = { 0 };

        (void)state;
        sampler_done(&s);
        sampler_done(&s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_first_sample_has_counters_but_no_rates, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_rates_come_from_counter_deltas_over_elapsed_time, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_counter_going_backwards_gives_no_rate_not_a_huge_one,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_broken_file_drops_only_that_metric_and_backs_off, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(
                        test_proc_files_stay_open_and_one_missing_at_first_is_read_once_there, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(
                        test_stuck_gpu_call_is_stale_named_and_raised_once_then_recovered, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_gpu_found_leaves_no_worker_thread, setup, teardown),
                cmocka_unit_test_setup_teardown(test_late_open_with_no_gpu_drops_the_worker_and_ticks_go_on,
                                                setup, teardown),
                cmocka_unit_test(test_done_is_safe_on_a_zeroed_sampler),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
