/* test_hal_gpu_worker.c: the GPU worker thread against tests/fakes' NVML, stuck on demand
 * (FAKE_NVML_HANG): the caller's waits are bounded, a stuck call is named, and freeing never waits. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "clock.h"
#include "gpu_worker.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/test_hal_gpu_worker.XXXXXX";
static char script_path[PATH_MAX], hang_path[PATH_MAX];
static int root_fd = -1;

static int group_setup(void **state) {
        FILE *f;

        (void)state;
        if (!mkdtemp(dir))
                return -1;
        snprintf(script_path, sizeof(script_path), "%s/script", dir);
        snprintf(hang_path, sizeof(hang_path), "%s/hang", dir);
        f = fopen(script_path, "we");
        if (!f)
                return -1;
        fputs("gpu 0 name=NVIDIA L4 pci=0000:01:00.0 device=0x27b8 util=42 temp=50\n", f);
        fclose(f);
        setenv("FAKE_NVML_SCRIPT", script_path, 1);
        setenv("FAKE_NVML_HANG", hang_path, 1);
        root_fd = tu_open_host("x86-cpu");
        return root_fd < 0 ? -1 : 0;
}

static int group_teardown(void **state) {
        (void)state;
        close(root_fd);
        unlink(script_path);
        unlink(hang_path);
        rmdir(dir);
        return 0;
}

static void hang(bool on) {
        if (on)
                close(open(hang_path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
        else
                unlink(hang_path);
}

static struct hal_gpu_worker *new_worker(void) {
        struct hal_gpu_options o = { .nvml_path = FAKE_NVML_PATH };
        struct hal_gpu_worker *w = NULL;

        assert_int_equal(hal_gpu_worker_new(root_fd, &o, &w), 0);
        return w;
}

static void test_sample_comes_from_the_worker_with_its_end_time(void **state) {
        struct hal_gpu_worker *w = new_worker();
        struct hal_gpu_sample s;
        struct pollfd p;
        uint64_t t0, ended = 0;
        unsigned n = 0;

        (void)state;
        assert_int_equal(hal_gpu_worker_opened(w, 5 * USEC_PER_SEC, &n, NULL, NULL), 1);
        assert_int_equal(n, 1);
        assert_int_equal(hal_gpu_worker_collect(w, 0, &s, &ended), 0); /* nothing asked yet */
        t0 = plat_now_mono_usec();
        assert_int_equal(hal_gpu_worker_start(w), 0);
        /* The eventfd says when the sample has ended: a loop needs no timer for it. */
        p = (struct pollfd){ .fd = hal_gpu_worker_fd(w), .events = POLLIN };
        assert_int_equal(poll(&p, 1, 5000), 1);
        assert_int_equal(hal_gpu_worker_collect(w, 0, &s, &ended), 1);
        assert_true(ended >= t0 && ended <= plat_now_mono_usec());
        assert_string_equal(s.backend, "nvml");
        assert_string_equal(s.name, "NVIDIA L4");
        assert_true(s.present & HAL_GPU_UTIL);
        assert_true(s.util_pct == 42.0);
        assert_int_equal(poll(&p, 1, 0), 0); /* collected: the fd is quiet again */
        hal_gpu_worker_free(w);
}

static void test_stuck_sample_is_named_and_never_waited_for(void **state) {
        struct hal_gpu_worker *w = new_worker();
        struct hal_gpu_sample s;
        uint64_t t0, since = 0, ended;
        char what[160] = "";
        unsigned n;

        (void)state;
        assert_int_equal(hal_gpu_worker_opened(w, 5 * USEC_PER_SEC, &n, NULL, NULL), 1);
        assert_int_equal(hal_gpu_worker_start(w), 0);
        assert_int_equal(hal_gpu_worker_collect(w, 5 * USEC_PER_SEC, &s, &ended), 1);
        assert_false(hal_gpu_worker_busy(w, what, sizeof(what), &since));

        hang(true);
        assert_int_equal(hal_gpu_worker_start(w), 0);
        assert_int_equal(hal_gpu_worker_start(w), -EBUSY); /* one request at a time */
        t0 = plat_now_mono_usec();
        assert_int_equal(hal_gpu_worker_collect(w, 200 * USEC_PER_MSEC, &s, &ended), 0);
        assert_true(plat_now_mono_usec() - t0 < 2 * USEC_PER_SEC); /* the bound held */
        assert_true(hal_gpu_worker_busy(w, what, sizeof(what), &since));
        assert_string_equal(what, "sampling GPU 0 (NVIDIA L4)");
        assert_true(since <= plat_now_mono_usec());

        /* Freeing a stuck worker returns at once; its thread frees itself when the call returns. */
        t0 = plat_now_mono_usec();
        hal_gpu_worker_free(w);
        assert_true(plat_now_mono_usec() - t0 < USEC_PER_SEC);
        hang(false);
        usleep(300 * 1000); /* let the abandoned thread finish, so LSan sees it freed */
}

static void test_stuck_open_is_bounded_and_joins_when_it_returns(void **state) {
        struct hal_gpu_worker *w;
        char what[160] = "";
        uint64_t t0, since;
        unsigned n = 7;

        (void)state;
        hang(true);
        w = new_worker();
        t0 = plat_now_mono_usec();
        assert_int_equal(hal_gpu_worker_opened(w, 300 * USEC_PER_MSEC, &n, NULL, NULL), 0);
        assert_int_equal(n, 7); /* untouched */
        assert_true(plat_now_mono_usec() - t0 < 2 * USEC_PER_SEC);
        assert_true(hal_gpu_worker_busy(w, what, sizeof(what), &since));
        assert_string_equal(what, "opening the GPU backends");
        assert_int_equal(hal_gpu_worker_start(w), -EBUSY);
        hang(false);
        assert_int_equal(hal_gpu_worker_opened(w, 5 * USEC_PER_SEC, &n, NULL, NULL), 1);
        assert_int_equal(n, 1);
        hal_gpu_worker_free(w);
}

/* A sample cleared then copied as the worker hands it on: the header and the lists' first n_*
 * entries arrive; entries past them are not part of the sample and are not copied. */
static void test_samples_copy_the_header_and_the_used_list_entries(void **state) {
        static struct hal_gpu_sample src[2], dst[2];

        (void)state;
        memset(dst, 0x5a, sizeof(dst));
        for (size_t k = 0; k < 2; k++) {
                memset(&src[k], 0x7f, sizeof(src[k])); /* stale entries from an earlier sample */
                hal_gpu_sample_clear(&src[k]);
        }
        assert_int_equal(src[0].n_procs + src[0].n_enc + src[0].n_fbc + src[0].n_mig, 0);
        assert_int_equal(src[0].present, 0);
        assert_null(src[0].virtualization);
        snprintf(src[1].name, sizeof(src[1].name), "GPU one");
        src[1].present = HAL_GPU_PROCS | HAL_GPU_ENC_SESSIONS;
        src[1].n_procs = 2;
        src[1].procs[0] = (struct hal_gpu_proc){ .pid = 41 };
        src[1].procs[1] = (struct hal_gpu_proc){ .pid = 42 };
        src[1].n_enc = 1;
        src[1].enc[0] = (struct hal_gpu_enc_session){ .pid = 42, .avg_fps = 60 };
        hal_gpu_samples_copy(dst, src, 2);
        assert_int_equal(dst[0].present, 0);
        assert_int_equal(dst[0].n_procs, 0);
        assert_string_equal(dst[1].name, "GPU one");
        assert_int_equal(dst[1].n_procs, 2);
        assert_int_equal(dst[1].procs[1].pid, 42);
        assert_int_equal(dst[1].enc[0].avg_fps, 60);
        /* Past the lists' counts: what dst held before, not src's stale bytes. */
        assert_int_equal(((unsigned char *)&dst[1].procs[2])[0], 0x5a);
        assert_int_equal(((unsigned char *)&dst[1].fbc[0])[0], 0x5a);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sample_comes_from_the_worker_with_its_end_time),
                cmocka_unit_test(test_stuck_sample_is_named_and_never_waited_for),
                cmocka_unit_test(test_stuck_open_is_bounded_and_joins_when_it_returns),
                cmocka_unit_test(test_samples_copy_the_header_and_the_used_list_entries),
        };

        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
