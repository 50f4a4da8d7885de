/* test_hal_gpu_nvml.c: the NVML backend and the GPU registry, through the real dlopen path,
 * against tests/fakes/fake_nvml.c (a library with the NVML C ABI that answers from a script). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cleanup.h"
#include "fileio.h"
#include "gpu.h"
#include "gpu_backends.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ALL_METRICS                                                                                 \
        (HAL_GPU_UTIL | HAL_GPU_MEM_UTIL | HAL_GPU_ENC | HAL_GPU_DEC | HAL_GPU_VRAM |               \
         HAL_GPU_VRAM_RESERVED | HAL_GPU_POWER | HAL_GPU_TEMP | HAL_GPU_CLOCK | HAL_GPU_CLOCK_MAX | \
         HAL_GPU_THROTTLE | HAL_GPU_PROCS)

#define GPU0_METRICS                                                                                       \
        "name=NVIDIA A10G uuid=GPU-5e1c3a4b-0000-1111-2222-333344445555 pci=0000:01:00.0 device=0x2237 "   \
        "util=37 memutil=12 enc=5 dec=3 vram_total=24146608128 vram_used=1234567 power_mw=150250 temp=61 " \
        "sm=1710 sm_max=1710 throttle=0x4 "
#define GPU1_METRICS                                                                                     \
        "name=NVIDIA A10G uuid=GPU-0b0b0b0b-0000-1111-2222-333344445555 pci=0000:02:00.0 device=0x2237 " \
        "util=80 memutil=40 enc=20 dec=10 vram_total=24146608128 vram_used=999 power_mw=200000 temp=70 " \
        "sm=1500 sm_max=1710 throttle=0x0 procs=42:1024 "

static char dir[] = "/tmp/test_hal_gpu_nvml.XXXXXX";
static char script_path[PATH_MAX], log_path[PATH_MAX];

struct warnings {
        unsigned n;
        char last[512];
};

static void collect_warning(const char *msg, void *ud) {
        struct warnings *w = ud;

        w->n++;
        snprintf(w->last, sizeof(w->last), "%s", msg);
}

static int group_setup(void **state) {
        (void)state;
        if (!mkdtemp(dir))
                return -1;
        snprintf(script_path, sizeof(script_path), "%s/script", dir);
        snprintf(log_path, sizeof(log_path), "%s/log", dir);
        setenv("FAKE_NVML_SCRIPT", script_path, 1);
        setenv("FAKE_NVML_LOG", log_path, 1);
        return 0;
}

static int group_teardown(void **state) {
        (void)state;
        return rmdir(dir);
}

static int test_teardown(void **state) {
        (void)state;
        unlink(script_path);
        unlink(log_path);
        return 0;
}

static void write_script(const char *text) {
        FILE *f = fopen(script_path, "we");

        assert_non_null(f);
        assert_true(fputs(text, f) >= 0);
        assert_int_equal(fclose(f), 0);
}

static char *read_log(void) {
        char *buf = NULL;
        size_t len;

        assert_int_equal(plat_read_file_at(AT_FDCWD, log_path, 65536, &buf, &len), 0);
        return buf;
}

/* Opens the NVML backend on a fake library and checks it found `count` GPUs. */
static void *open_backend(const char *lib, unsigned count) {
        struct hal_gpu_options o = { .nvml_path = lib };
        unsigned n = 0;
        char err[256] = "";
        void *ctx = NULL;

        assert_int_equal(hal_gpu_backend_nvml.open(-1, &o, &ctx, &n, err, sizeof(err)), 0);
        assert_string_equal(err, "");
        assert_non_null(ctx);
        assert_int_equal(n, count);
        return ctx;
}

static struct hal_gpus *open_gpus(const char *lib, struct warnings *w) {
        struct hal_gpu_options o = { .nvml_path = lib };
        struct hal_gpus *g = NULL;
        _cleanup_close_ int fd = tu_open_host("x86-cpu");

        assert_int_equal(hal_gpus_open(fd, &o, &g, collect_warning, w), 0);
        assert_non_null(g);
        return g;
}

static void test_sample_reads_every_metric_with_exact_values(void **state) {
        struct hal_gpu_sample s;
        void *ctx;

        (void)state;
        write_script("gpu 0 " GPU0_METRICS "procs=1234:1048576,5678:2097152 gprocs=4321:3145728\n");
        ctx = open_backend(FAKE_NVML_PATH, 1);

        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.error, 0);
        assert_string_equal(s.error_msg, "");
        assert_string_equal(s.backend, "nvml");
        assert_string_equal(s.name, "NVIDIA A10G");
        assert_string_equal(s.uuid, "GPU-5e1c3a4b-0000-1111-2222-333344445555");
        assert_string_equal(s.pci_bus_id, "0000:01:00.0");
        assert_int_equal(s.pci_vendor, 0x10de);
        assert_int_equal(s.pci_device, 0x2237);
        assert_false(s.shared_memory);
        assert_int_equal(s.present, ALL_METRICS);
        assert_true(s.util_pct == 37.0);
        assert_true(s.mem_util_pct == 12.0);
        assert_true(s.enc_pct == 5.0);
        assert_true(s.dec_pct == 3.0);
        assert_int_equal(s.vram_total_bytes, UINT64_C(24146608128));
        assert_int_equal(s.vram_used_bytes, 1234567);
        assert_true(s.power_w == 150.25);
        assert_true(s.temp_c == 61.0);
        assert_int_equal(s.clock_mhz, 1710);
        assert_int_equal(s.clock_max_mhz, 1710);
        assert_int_equal(s.throttle_reasons, 0x4);
        assert_int_equal(s.n_procs, 3);
        assert_int_equal(s.procs[0].pid, 1234);
        assert_int_equal(s.procs[0].vram_bytes, 1048576);
        assert_int_equal(s.procs[1].pid, 5678);
        assert_int_equal(s.procs[1].vram_bytes, 2097152);
        assert_int_equal(s.procs[2].pid, 4321); /* a graphics process: a render host runs those */
        assert_int_equal(s.procs[2].vram_bytes, 3145728);

        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 1, &s), -EINVAL);
        hal_gpu_backend_nvml.close(ctx);
}

static void test_unsupported_metric_is_absent_not_zero(void **state) {
        struct hal_gpu_sample s;
        void *ctx;

        (void)state;
        /* No power_mw, temp, clocks, throttle or processes in the script: NVML says NOT_SUPPORTED. */
        write_script("gpu 0 name=NVIDIA T4 util=1 memutil=2 dec=3 vram_total=100 vram_used=10 "
                     "err.encoder=NOT_SUPPORTED\n");
        ctx = open_backend(FAKE_NVML_PATH, 1);

        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.error, 0);
        assert_string_equal(s.error_msg, "");
        assert_int_equal(s.present, HAL_GPU_UTIL | HAL_GPU_MEM_UTIL | HAL_GPU_DEC | HAL_GPU_VRAM |
                                            HAL_GPU_VRAM_RESERVED);
        assert_int_equal(s.n_procs, 0);
        assert_string_equal(s.pci_bus_id, ""); /* PCI info not supported either */
        hal_gpu_backend_nvml.close(ctx);
}

static void test_lost_gpu_reports_error_and_other_gpu_is_intact(void **state) {
        struct warnings w = { 0 };
        struct hal_gpu_sample s;
        struct hal_gpus *g;

        (void)state;
        write_script("gpu 0 " GPU0_METRICS "\n"
                     "gpu 1 " GPU1_METRICS "err.memory=GPU_IS_LOST\n");
        g = open_gpus(FAKE_NVML_PATH, &w);
        assert_int_equal(w.n, 0);
        assert_int_equal(hal_gpus_count(g), 2);

        assert_int_equal(hal_gpus_sample(g, 1, &s), 0);
        assert_int_equal(s.error, -ENXIO);
        assert_string_equal(
                s.error_msg,
                "nvmlDeviceGetMemoryInfo_v2 on GPU 1 (0000:02:00.0): GPU is lost (NVML error 15)");
        assert_string_equal(s.backend, "nvml");
        assert_string_equal(s.uuid, "GPU-0b0b0b0b-0000-1111-2222-333344445555");
        /* Read before the loss: kept. After it: not asked, so absent. */
        assert_int_equal(s.present, HAL_GPU_UTIL | HAL_GPU_MEM_UTIL | HAL_GPU_ENC | HAL_GPU_DEC);
        assert_true(s.util_pct == 80.0);
        assert_int_equal(s.n_procs, 0);

        assert_int_equal(hal_gpus_sample(g, 0, &s), 0);
        assert_int_equal(s.error, 0);
        assert_string_equal(s.uuid, "GPU-5e1c3a4b-0000-1111-2222-333344445555");
        assert_int_equal(s.present, ALL_METRICS & ~HAL_GPU_PROCS);
        assert_int_equal(s.vram_used_bytes, 1234567);
        hal_gpus_free(g);
}

static void test_no_permission_on_process_list_sets_eacces_and_keeps_other_metrics(void **state) {
        struct hal_gpu_sample s;
        void *ctx;

        (void)state;
        write_script("gpu 0 " GPU0_METRICS "procs=1:1 gprocs=2:2 err.procs=NO_PERMISSION\n");
        ctx = open_backend(FAKE_NVML_PATH, 1);

        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.error, -EACCES);
        assert_string_equal(s.error_msg, "nvmlDeviceGetComputeRunningProcesses on GPU 0 (0000:01:00.0): "
                                         "Insufficient Permissions (NVML error 4)");
        /* Half a process list would be a wrong one: the graphics list is not reported alone. */
        assert_int_equal(s.present, ALL_METRICS & ~HAL_GPU_PROCS);
        assert_int_equal(s.n_procs, 0);
        assert_true(s.power_w == 150.25);
        hal_gpu_backend_nvml.close(ctx);
}

static void test_gpu_without_handle_reports_error(void **state) {
        struct hal_gpu_sample s;
        void *ctx;

        (void)state;
        write_script("gpu 0 " GPU0_METRICS "err.handle=NO_PERMISSION\n"
                     "gpu 1 " GPU1_METRICS "\n");
        ctx = open_backend(FAKE_NVML_PATH, 2);

        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.error, -EACCES);
        assert_string_equal(
                s.error_msg,
                "nvmlDeviceGetHandleByIndex_v2 on GPU 0: Insufficient Permissions (NVML error 4)");
        assert_int_equal(s.present, 0);
        assert_string_equal(s.name, "");

        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 1, &s), 0);
        assert_int_equal(s.error, 0);
        assert_int_equal(s.present, ALL_METRICS);
        hal_gpu_backend_nvml.close(ctx);
}

static void test_missing_library_is_enodev_not_a_warning(void **state) {
        struct hal_gpu_options o = { .nvml_path = "/nonexistent/libnvidia-ml.so.1" };
        struct warnings w = { 0 };
        struct hal_gpus *g;
        unsigned n = 7;
        char err[256] = "";
        void *ctx = NULL;

        (void)state;
        assert_int_equal(hal_gpu_backend_nvml.open(-1, &o, &ctx, &n, err, sizeof(err)), -ENODEV);
        assert_null(ctx);
        assert_int_equal(n, 7);
        assert_non_null(strstr(err, "/nonexistent/libnvidia-ml.so.1"));

        g = open_gpus("/nonexistent/libnvidia-ml.so.1", &w);
        assert_int_equal(hal_gpus_count(g), 0);
        assert_int_equal(w.n, 0);
        hal_gpus_free(g);
}

static void test_init_failure_returns_errno_and_nvml_text(void **state) {
        struct hal_gpu_options o = { .nvml_path = FAKE_NVML_PATH };
        struct warnings w = { 0 };
        _cleanup_free_ char *log = NULL;
        struct hal_gpus *g;
        char err[256] = "", want[512];
        unsigned n = 7;
        void *ctx = NULL;

        (void)state;
        write_script("init=LIBRARY_NOT_FOUND\ngpu 0 " GPU0_METRICS "\n");
        assert_int_equal(hal_gpu_backend_nvml.open(-1, &o, &ctx, &n, err, sizeof(err)), -ELIBACC);
        assert_null(ctx);
        assert_int_equal(n, 7);
        snprintf(want, sizeof(want),
                 "nvmlInit_v2 (%s): NVML Shared Library Not Found (NVML error 12); NVIDIA GPUs are not "
                 "sampled",
                 FAKE_NVML_PATH);
        assert_string_equal(err, want);

        g = open_gpus(FAKE_NVML_PATH, &w);
        assert_int_equal(hal_gpus_count(g), 0);
        assert_int_equal(w.n, 1);
        snprintf(want, sizeof(want), "GPU backend nvml: nvmlInit_v2 (%s): NVML Shared Library Not Found",
                 FAKE_NVML_PATH);
        assert_memory_equal(w.last, want, strlen(want));
        hal_gpus_free(g);

        /* A failed init is not shut down. */
        log = read_log();
        assert_string_equal(log, "init\ninit\n");
}

static void test_driver_not_loaded_is_enodev(void **state) {
        struct hal_gpu_options o = { .nvml_path = FAKE_NVML_PATH };
        char err[256] = "";
        unsigned n = 0;
        void *ctx = NULL;

        (void)state;
        /* A CPU host that has the NVIDIA userspace installed but no GPU to load nvidia.ko for. */
        write_script("init=DRIVER_NOT_LOADED\n");
        assert_int_equal(hal_gpu_backend_nvml.open(-1, &o, &ctx, &n, err, sizeof(err)), -ENODEV);
        assert_null(ctx);
}

static void test_library_without_nvml_symbols_is_rejected(void **state) {
        struct hal_gpu_options o = { .nvml_path = "libc.so.6" };
        char err[256] = "";
        unsigned n = 0;
        void *ctx = NULL;

        (void)state;
        assert_int_equal(hal_gpu_backend_nvml.open(-1, &o, &ctx, &n, err, sizeof(err)), -ELIBBAD);
        assert_null(ctx);
        assert_non_null(strstr(err, "libc.so.6: symbol nvmlInit_v2 missing"));
}

static void test_process_list_larger_than_first_buffer_is_read_whole(void **state) {
        _cleanup_free_ char *log = NULL;
        struct hal_gpu_sample s;
        void *ctx;

        (void)state;
        write_script("gpu 0 name=NVIDIA L4 procs=gen:40\n");
        ctx = open_backend(FAKE_NVML_PATH, 1);

        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.error, 0);
        assert_int_equal(s.present, HAL_GPU_PROCS);
        assert_int_equal(s.n_procs, 40);
        for (unsigned k = 0; k < 40; k++) {
                assert_int_equal(s.procs[k].pid, 1000 + k);
                assert_int_equal(s.procs[k].vram_bytes, (k + UINT64_C(1)) << 20);
        }
        hal_gpu_backend_nvml.close(ctx);

        /* 32 was too small; NVML said 40, we asked again with room to spare. */
        log = read_log();
        assert_string_equal(log, "init\nprocs 32\nprocs 56\nshutdown\n");
}

static void test_process_list_past_the_cap_keeps_the_first_entries(void **state) {
        struct hal_gpu_sample s;
        void *ctx;

        (void)state;
        write_script("gpu 0 name=NVIDIA L4 procs=gen:200\n");
        ctx = open_backend(FAKE_NVML_PATH, 1);

        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.error, 0);
        assert_int_equal(s.present, HAL_GPU_PROCS);
        assert_int_equal(s.n_procs, HAL_GPU_MAX_PROCS);
        assert_int_equal(s.procs[0].pid, 1000);
        assert_int_equal(s.procs[HAL_GPU_MAX_PROCS - 1].pid, 1000 + HAL_GPU_MAX_PROCS - 1);
        assert_int_equal(s.procs[HAL_GPU_MAX_PROCS - 1].vram_bytes, (uint64_t)HAL_GPU_MAX_PROCS << 20);
        hal_gpu_backend_nvml.close(ctx);
}

static void test_process_in_both_lists_is_listed_once(void **state) {
        struct hal_gpu_sample s;
        void *ctx;

        (void)state;
        write_script("gpu 0 name=NVIDIA L4 procs=1234:-,5678:2097152 gprocs=1234:4194304,9999:-\n");
        ctx = open_backend(FAKE_NVML_PATH, 1);

        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.present, HAL_GPU_PROCS);
        assert_int_equal(s.n_procs, 3);
        assert_int_equal(s.procs[0].pid, 1234);
        assert_int_equal(s.procs[0].vram_bytes, 4194304); /* known in one list: that figure */
        assert_int_equal(s.procs[1].pid, 5678);
        assert_int_equal(s.procs[1].vram_bytes, 2097152);
        assert_int_equal(s.procs[2].pid, 9999);
        assert_int_equal(s.procs[2].vram_bytes, UINT64_MAX); /* the driver does not say */
        hal_gpu_backend_nvml.close(ctx);
}

static void test_old_library_lacks_optional_metrics_but_reads_the_rest(void **state) {
        struct hal_gpu_sample s;
        void *ctx;

        (void)state;
        write_script("gpu 0 " GPU0_METRICS "procs=1234:1048576,5678:2097152 gprocs=4321:3145728\n"
                     "gpu 1 " GPU1_METRICS "err.memory=GPU_IS_LOST\n");
        ctx = open_backend(FAKE_NVML_OLD_PATH, 2);

        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.error, 0);
        assert_int_equal(s.present, ALL_METRICS & ~(HAL_GPU_ENC | HAL_GPU_DEC | HAL_GPU_THROTTLE |
                                                    HAL_GPU_VRAM_RESERVED));
        /* nvmlDeviceGetPciInfo_v2 stands in for the missing _v3. */
        assert_string_equal(s.pci_bus_id, "0000:01:00.0");
        assert_int_equal(s.pci_device, 0x2237);
        /* No graphics list in this driver: the compute list alone. */
        assert_int_equal(s.n_procs, 2);
        assert_int_equal(s.procs[1].pid, 5678);

        /* No nvmlErrorString either: the message has the number. */
        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 1, &s), 0);
        assert_int_equal(s.error, -ENXIO);
        assert_string_equal(s.error_msg, "nvmlDeviceGetMemoryInfo on GPU 1 (0000:02:00.0): NVML error 15");
        hal_gpu_backend_nvml.close(ctx);
}

static void test_gpus_are_numbered_in_order_and_free_shuts_nvml_down(void **state) {
        struct warnings w = { 0 };
        _cleanup_free_ char *log = NULL;
        struct hal_gpu_sample s = { .pci_device = 0xbeef };
        struct hal_gpus *g;

        (void)state;
        write_script("gpu 0 " GPU0_METRICS "\ngpu 1 " GPU1_METRICS "\n");
        g = open_gpus(FAKE_NVML_PATH, &w);
        assert_int_equal(hal_gpus_count(g), 2);

        assert_int_equal(hal_gpus_sample(g, 1, &s), 0);
        assert_string_equal(s.backend, "nvml");
        assert_string_equal(s.pci_bus_id, "0000:02:00.0");
        assert_int_equal(s.n_procs, 1);
        assert_int_equal(s.procs[0].pid, 42);

        s.pci_device = 0xbeef;
        assert_int_equal(hal_gpus_sample(g, 2, &s), -EINVAL);
        assert_int_equal(s.pci_device, 0xbeef); /* untouched on failure */
        hal_gpus_free(g);

        log = read_log();
        assert_string_equal(log, "init\nprocs 32\nshutdown\n");
}

static void test_more_gpus_than_hal_max_are_capped_with_one_warning(void **state) {
        char script[4096] = "";
        struct warnings w = { 0 };
        struct hal_gpu_sample s;
        struct hal_gpus *g;

        (void)state;
        for (unsigned k = 0; k <= HAL_GPU_MAX; k++) {
                char line[64];

                snprintf(line, sizeof(line), "gpu %u name=NVIDIA L4 temp=%u\n", k, 40 + k);
                strncat(script, line, sizeof(script) - strlen(script) - 1);
        }
        write_script(script);
        g = open_gpus(FAKE_NVML_PATH, &w);

        assert_int_equal(hal_gpus_count(g), HAL_GPU_MAX);
        assert_int_equal(w.n, 1);
        assert_string_equal(w.last,
                            "GPU backend nvml: 17 GPUs, more than the 16 a host may have; GPUs past 16 "
                            "are not sampled");
        assert_int_equal(hal_gpus_sample(g, HAL_GPU_MAX - 1, &s), 0);
        assert_true(s.temp_c == 40.0 + HAL_GPU_MAX - 1);
        assert_int_equal(hal_gpus_sample(g, HAL_GPU_MAX, &s), -EINVAL);
        hal_gpus_free(g);
}

static void test_free_and_count_accept_null(void **state) {
        (void)state;
        hal_gpus_free(NULL);
        assert_int_equal(hal_gpus_count(NULL), 0);
}

/* An idle GPU with 300 bytes set aside by the driver: _v2 shows them apart and "used" without them;
 * v1 (an old driver) can only count them as used. */
static void test_memory_v2_shows_reserved_apart_and_used_without_it(void **state) {
        static const char script[] =
                "gpu 0 name=NVIDIA L4 vram_total=1000 vram_used=100 vram_reserved=300\n";
        struct hal_gpu_sample s;
        void *ctx;

        (void)state;
        write_script(script);
        ctx = open_backend(FAKE_NVML_PATH, 1);
        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.error, 0);
        assert_int_equal(s.present, HAL_GPU_VRAM | HAL_GPU_VRAM_RESERVED);
        assert_int_equal(s.vram_total_bytes, 1000);
        assert_int_equal(s.vram_used_bytes, 100);
        assert_int_equal(s.vram_reserved_bytes, 300);
        hal_gpu_backend_nvml.close(ctx);

        ctx = open_backend(FAKE_NVML_OLD_PATH, 1);
        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.present, HAL_GPU_VRAM);
        assert_int_equal(s.vram_used_bytes, 400);
        hal_gpu_backend_nvml.close(ctx);
}

static void test_memory_v2_refused_falls_back_to_v1_without_error(void **state) {
        struct hal_gpu_sample s;
        void *ctx;

        (void)state;
        write_script("gpu 0 name=NVIDIA L4 vram_total=1000 vram_used=100 vram_reserved=300 "
                     "err.memory_v2=ARGUMENT_VERSION_MISMATCH\n");
        ctx = open_backend(FAKE_NVML_PATH, 1);
        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.error, 0);
        assert_int_equal(s.present, HAL_GPU_VRAM);
        assert_int_equal(s.vram_used_bytes, 400);
        hal_gpu_backend_nvml.close(ctx);
}

/* The successor of the deprecated temperature call is the one asked; where it is not supported the
 * old call still answers. */
static void test_temperature_v_is_asked_first_and_old_call_is_the_fallback(void **state) {
        struct hal_gpu_sample s;
        void *ctx;

        (void)state;
        write_script("gpu 0 name=NVIDIA L4 temp=67 err.temp_v=NOT_SUPPORTED\n");
        ctx = open_backend(FAKE_NVML_PATH, 1);
        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.error, 0);
        assert_int_equal(s.present, HAL_GPU_TEMP);
        assert_true(s.temp_c == 67.0);
        hal_gpu_backend_nvml.close(ctx);

        write_script("gpu 0 name=NVIDIA L4 temp=67 err.temp_v=UNKNOWN\n");
        ctx = open_backend(FAKE_NVML_PATH, 1);
        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.present, 0);
        assert_string_equal(s.error_msg,
                            "nvmlDeviceGetTemperatureV on GPU 0: Unknown Error (NVML error 999)");
        hal_gpu_backend_nvml.close(ctx);
}

/* MIG and sandboxed services meet NO_PERMISSION on some queries: it costs that field, the GPU keeps
 * the others, and the error names the call. */
static void test_permission_error_costs_only_the_field_it_hits(void **state) {
        struct hal_gpu_sample s;
        void *ctx;

        (void)state;
        write_script("gpu 0 name=NVIDIA A100 pci=0000:01:00.0 util=5 memutil=1 temp=50 power_mw=60000 "
                     "vram_total=1000 vram_used=10 err.memory=NO_PERMISSION\n");
        ctx = open_backend(FAKE_NVML_PATH, 1);
        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.error, -EACCES);
        assert_string_equal(s.error_msg, "nvmlDeviceGetMemoryInfo_v2 on GPU 0 (0000:01:00.0): Insufficient "
                                         "Permissions (NVML error 4)");
        assert_int_equal(s.present, HAL_GPU_UTIL | HAL_GPU_MEM_UTIL | HAL_GPU_TEMP | HAL_GPU_POWER);
        hal_gpu_backend_nvml.close(ctx);
}

static void test_encoder_sessions_are_read_with_fps_and_latency(void **state) {
        struct hal_gpu_sample s;
        void *ctx;

        (void)state;
        write_script("gpu 0 name=NVIDIA L4 "
                     "encs=4242:h264:1920x1080:60:4200,4343:av1:3840x2160:30:9100,7:9:640x480:1:2\n");
        ctx = open_backend(FAKE_NVML_PATH, 1);
        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.error, 0);
        assert_int_equal(s.present, HAL_GPU_ENC_SESSIONS);
        assert_int_equal(s.n_enc, 3);
        assert_int_equal(s.enc[0].pid, 4242);
        assert_int_equal(s.enc[0].id, 1);
        assert_string_equal(s.enc[0].codec, "h264");
        assert_int_equal(s.enc[0].width, 1920);
        assert_int_equal(s.enc[0].height, 1080);
        assert_int_equal(s.enc[0].avg_fps, 60);
        assert_int_equal(s.enc[0].avg_latency_us, 4200);
        assert_string_equal(s.enc[1].codec, "av1");
        assert_int_equal(s.enc[1].avg_latency_us, 9100);
        assert_string_equal(s.enc[2].codec, "unknown"); /* a codec number nvml.h does not name */
        hal_gpu_backend_nvml.close(ctx);

        /* "none": the call answers with no session: listed, empty (not absent). */
        write_script("gpu 0 name=NVIDIA L4 encs=none\n");
        ctx = open_backend(FAKE_NVML_PATH, 1);
        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.present, HAL_GPU_ENC_SESSIONS);
        assert_int_equal(s.n_enc, 0);
        hal_gpu_backend_nvml.close(ctx);
}

/* NvFBC sessions: pid, type, the resolution asked for, capture FPS and latency; a permission error
 * on them costs them alone. */
static void test_fbc_sessions_are_read_with_fps_and_latency(void **state) {
        struct hal_gpu_sample s;
        void *ctx;

        (void)state;
        write_script("gpu 0 name=NVIDIA L4 encs=4242:h264:1920x1080:60:4200 "
                     "fbcs=4242:hwenc:1920x1080:59:1800,4343:tosys:1280x720:30:900,7:9:640x480:1:2\n");
        ctx = open_backend(FAKE_NVML_PATH, 1);
        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.error, 0);
        assert_int_equal(s.present, HAL_GPU_ENC_SESSIONS | HAL_GPU_FBC_SESSIONS);
        assert_int_equal(s.n_enc, 1);
        assert_int_equal(s.n_fbc, 3);
        assert_int_equal(s.fbc[0].pid, 4242);
        assert_int_equal(s.fbc[0].id, 101);
        assert_string_equal(s.fbc[0].type, "hwenc");
        assert_int_equal(s.fbc[0].width, 1920);
        assert_int_equal(s.fbc[0].height, 1080);
        assert_int_equal(s.fbc[0].avg_fps, 59);
        assert_int_equal(s.fbc[0].avg_latency_us, 1800);
        assert_string_equal(s.fbc[1].type, "tosys");
        assert_int_equal(s.fbc[1].pid, 4343);
        assert_int_equal(s.fbc[1].avg_latency_us, 900);
        assert_string_equal(s.fbc[2].type, "unknown"); /* a type number nvml.h does not name */
        hal_gpu_backend_nvml.close(ctx);

        write_script(
                "gpu 0 name=NVIDIA L4 encs=none fbcs=4242:cuda:1920x1080:59:1800 err.fbcs=NO_PERMISSION\n");
        ctx = open_backend(FAKE_NVML_PATH, 1);
        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.present, HAL_GPU_ENC_SESSIONS);
        assert_int_equal(s.n_fbc, 0);
        assert_int_equal(s.error, -EACCES);
        assert_non_null(strstr(s.error_msg, "nvmlDeviceGetFBCSessions on GPU 0"));
        hal_gpu_backend_nvml.close(ctx);

        /* A driver without the call (the old library): no FBC figures, no error. */
        write_script("gpu 0 name=NVIDIA L4 fbcs=4242:cuda:1920x1080:59:1800\n");
        ctx = open_backend(FAKE_NVML_OLD_PATH, 1);
        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.error, 0);
        assert_int_equal(s.present & HAL_GPU_FBC_SESSIONS, 0);
        hal_gpu_backend_nvml.close(ctx);
}

/* A MIG-enabled A100: its MIG devices listed with their own memory and processes, utilisation
 * marked unsupported (what NVML answers on a MIG device), an empty index skipped. */
static void test_mig_devices_are_listed_with_their_own_memory_and_processes(void **state) {
        struct hal_gpu_sample s;
        void *ctx;

        (void)state;
        write_script("gpu 0 name=NVIDIA A100 pci=0000:01:00.0 vram_total=42949672960 vram_used=5000 "
                     "migmode=1 mig_max=7\n"
                     "mig 0 0 uuid=MIG-4f0a gi=1 ci=0 vram_total=10200547328 vram_used=1073741824 "
                     "procs=4242:1000000000 gprocs=none\n"
                     "mig 0 2 uuid=MIG-9b3c gi=2 ci=0 vram_total=20401094656 vram_used=0 procs=none "
                     "gprocs=none\n");
        ctx = open_backend(FAKE_NVML_PATH, 1);
        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.error, 0);
        assert_true(s.present & HAL_GPU_MIG);
        assert_true(s.present & HAL_GPU_MIG_DEVICES);
        assert_false(s.present & HAL_GPU_UTIL);
        assert_true(s.mig_enabled);
        assert_int_equal(s.n_mig, 2);
        assert_int_equal(s.mig[0].index, 0);
        assert_string_equal(s.mig[0].uuid, "MIG-4f0a");
        assert_int_equal(s.mig[0].present, HAL_GPU_MIG_IDS | HAL_GPU_MIG_VRAM | HAL_GPU_MIG_PROCS);
        assert_true(s.mig[0].util_unsupported);
        assert_int_equal(s.mig[0].gpu_instance_id, 1);
        assert_int_equal(s.mig[0].compute_instance_id, 0);
        assert_int_equal(s.mig[0].vram_total_bytes, 10200547328ull);
        assert_int_equal(s.mig[0].vram_used_bytes, 1073741824);
        assert_int_equal(s.mig[0].n_procs, 1);
        assert_int_equal(s.mig[0].procs[0].pid, 4242);
        assert_int_equal(s.mig[0].procs[0].vram_bytes, 1000000000);
        assert_int_equal(s.mig[1].index, 2); /* index 1 holds no MIG device */
        assert_int_equal(s.mig[1].gpu_instance_id, 2);
        assert_int_equal(s.mig[1].n_procs, 0);
        assert_true(s.mig[1].present & HAL_GPU_MIG_PROCS); /* listed, empty */
        hal_gpu_backend_nvml.close(ctx);

        /* A permission error on one MIG device's processes costs that list, named; the rest stays. */
        write_script(
                "gpu 0 name=NVIDIA A100 pci=0000:01:00.0 migmode=1 mig_max=7\n"
                "mig 0 0 uuid=MIG-4f0a vram_total=100 vram_used=1 procs=4242:5 err.procs=NO_PERMISSION\n"
                "mig 0 1 uuid=MIG-9b3c vram_total=200 vram_used=2 procs=4343:6\n");
        ctx = open_backend(FAKE_NVML_PATH, 1);
        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.error, -EACCES);
        assert_string_equal(s.error_msg, "nvmlDeviceGetComputeRunningProcesses for MIG device 0 on GPU 0 "
                                         "(0000:01:00.0): Insufficient Permissions (NVML error 4)");
        assert_int_equal(s.n_mig, 2);
        assert_int_equal(s.mig[0].present, HAL_GPU_MIG_VRAM);
        assert_int_equal(s.mig[1].present, HAL_GPU_MIG_VRAM | HAL_GPU_MIG_PROCS);
        assert_int_equal(s.mig[1].procs[0].pid, 4343);
        hal_gpu_backend_nvml.close(ctx);

        /* A MIG device that cannot be looked up: no list rather than one with a hole. */
        write_script("gpu 0 name=NVIDIA A100 migmode=1 mig_max=7 err.mighandle=NO_PERMISSION\n"
                     "mig 0 0 uuid=MIG-4f0a\n");
        ctx = open_backend(FAKE_NVML_PATH, 1);
        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.present, HAL_GPU_MIG);
        assert_true(s.mig_enabled);
        assert_int_equal(s.n_mig, 0);
        assert_int_equal(s.error, -EACCES);
        hal_gpu_backend_nvml.close(ctx);

        /* MIG-capable, MIG off: said so, no devices; an old driver: nothing about MIG. */
        write_script("gpu 0 name=NVIDIA A100 migmode=0 mig_max=0\n");
        ctx = open_backend(FAKE_NVML_PATH, 1);
        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.present, HAL_GPU_MIG);
        assert_false(s.mig_enabled);
        hal_gpu_backend_nvml.close(ctx);
        ctx = open_backend(FAKE_NVML_OLD_PATH, 1);
        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.present, 0);
        assert_int_equal(s.error, 0);
        hal_gpu_backend_nvml.close(ctx);
}

/* A vGPU guest's device says so (its engine figures are shares of the vGPU); a mode nvml.h does not
 * name is "unknown"; a driver without the call says nothing. */
static void test_virtualization_mode_is_read(void **state) {
        static const struct {
                const char *script;
                const char *want;
        } cases[] = {
                { "gpu 0 name=NVIDIA L4-6Q virt=2\n", "vgpu" },
                { "gpu 0 name=NVIDIA L4 virt=0\n", "none" },
                { "gpu 0 name=NVIDIA L4 virt=1\n", "passthrough" },
                { "gpu 0 name=NVIDIA L4 virt=9\n", "unknown" },
        };
        struct hal_gpu_sample s;
        void *ctx;

        (void)state;
        for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
                write_script(cases[k].script);
                ctx = open_backend(FAKE_NVML_PATH, 1);
                assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
                assert_int_equal(s.error, 0);
                assert_int_equal(s.present, HAL_GPU_VIRT);
                assert_string_equal(s.virtualization, cases[k].want);
                hal_gpu_backend_nvml.close(ctx);
        }
        write_script("gpu 0 name=NVIDIA L4 virt=2\n");
        ctx = open_backend(FAKE_NVML_OLD_PATH, 1);
        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.present, 0);
        hal_gpu_backend_nvml.close(ctx);
}

/* nvml.h allows a UUID of up to 95 characters (NVML_DEVICE_UUID_V2_BUFFER_SIZE, 96 with the NUL): a
 * buffer of 80 got INSUFFICIENT_SIZE and lost the UUID. */
static void test_uuid_up_to_nvml_v2_buffer_size_is_read_whole(void **state) {
        char uuid[96], script[256];
        struct hal_gpu_sample s;
        void *ctx;

        (void)state;
        memset(uuid, 'f', sizeof(uuid) - 1);
        memcpy(uuid, "MIG-GPU-", 8);
        uuid[sizeof(uuid) - 1] = '\0';
        snprintf(script, sizeof(script), "gpu 0 name=NVIDIA A100 uuid=%s pci=0000:01:00.0 device=0x20b0\n",
                 uuid);
        write_script(script);
        ctx = open_backend(FAKE_NVML_PATH, 1);
        assert_int_equal(hal_gpu_backend_nvml.sample(ctx, 0, &s), 0);
        assert_int_equal(s.error, 0);
        assert_int_equal(strlen(s.uuid), 95);
        assert_string_equal(s.uuid, uuid);
        hal_gpu_backend_nvml.close(ctx);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_uuid_up_to_nvml_v2_buffer_size_is_read_whole),
                cmocka_unit_test(test_encoder_sessions_are_read_with_fps_and_latency),
                cmocka_unit_test(test_fbc_sessions_are_read_with_fps_and_latency),
                cmocka_unit_test(test_mig_devices_are_listed_with_their_own_memory_and_processes),
                cmocka_unit_test(test_virtualization_mode_is_read),
                cmocka_unit_test(test_memory_v2_shows_reserved_apart_and_used_without_it),
                cmocka_unit_test(test_memory_v2_refused_falls_back_to_v1_without_error),
                cmocka_unit_test(test_temperature_v_is_asked_first_and_old_call_is_the_fallback),
                cmocka_unit_test(test_permission_error_costs_only_the_field_it_hits),
                cmocka_unit_test_teardown(test_sample_reads_every_metric_with_exact_values, test_teardown),
                cmocka_unit_test_teardown(test_unsupported_metric_is_absent_not_zero, test_teardown),
                cmocka_unit_test_teardown(test_lost_gpu_reports_error_and_other_gpu_is_intact,
                                          test_teardown),
                cmocka_unit_test_teardown(
                        test_no_permission_on_process_list_sets_eacces_and_keeps_other_metrics,
                        test_teardown),
                cmocka_unit_test_teardown(test_gpu_without_handle_reports_error, test_teardown),
                cmocka_unit_test_teardown(test_missing_library_is_enodev_not_a_warning, test_teardown),
                cmocka_unit_test_teardown(test_init_failure_returns_errno_and_nvml_text, test_teardown),
                cmocka_unit_test_teardown(test_driver_not_loaded_is_enodev, test_teardown),
                cmocka_unit_test_teardown(test_library_without_nvml_symbols_is_rejected, test_teardown),
                cmocka_unit_test_teardown(test_process_list_larger_than_first_buffer_is_read_whole,
                                          test_teardown),
                cmocka_unit_test_teardown(test_process_list_past_the_cap_keeps_the_first_entries,
                                          test_teardown),
                cmocka_unit_test_teardown(test_process_in_both_lists_is_listed_once, test_teardown),
                cmocka_unit_test_teardown(test_old_library_lacks_optional_metrics_but_reads_the_rest,
                                          test_teardown),
                cmocka_unit_test_teardown(test_gpus_are_numbered_in_order_and_free_shuts_nvml_down,
                                          test_teardown),
                cmocka_unit_test_teardown(test_more_gpus_than_hal_max_are_capped_with_one_warning,
                                          test_teardown),
                cmocka_unit_test(test_free_and_count_accept_null),
        };

        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
