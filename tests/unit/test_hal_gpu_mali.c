/* test_hal_gpu_mali.c: the ARM Mali (kbase) and devfreq backend, on fixture hosts and scratch trees. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cleanup.h"
#include "gpu.h"
#include "gpu_backends.h"
#include "gpu_sysfs.h"
#include "testutil.h"

#include <errno.h>
#include <string.h>

static const struct hal_gpu_backend *const be = &hal_gpu_backend_mali;

/* Opens the backend on root (expecting one GPU) and samples it into *ret; closes it again. */
static void sample_one(int root, struct hal_gpu_sample *ret) {
        void *ctx = NULL;
        unsigned n = 0;
        char err[256] = "";

        assert_int_equal(be->open(root, NULL, &ctx, &n, err, sizeof(err)), 0);
        assert_int_equal(n, 1);
        memset(ret, 0xa5, sizeof(*ret));
        assert_int_equal(be->sample(ctx, 0, ret), 0);
        assert_int_equal(be->sample(ctx, 1, ret), -EINVAL);
        be->close(ctx);
}

static void test_rk3588_combines_kbase_and_gpu_devfreq(void **state) {
        _cleanup_close_ int root = tu_open_host("arm-mali");
        struct hal_gpu_sample s;

        (void)state;
        sample_one(root, &s);
        assert_string_equal(be->name, "mali");
        assert_string_equal(s.backend, "mali");
        assert_string_equal(s.name, "Mali-G610 MP4 4 cores r0p0 0xA867");
        assert_string_equal(s.uuid, "");
        assert_string_equal(s.pci_bus_id, "");
        assert_int_equal(s.pci_vendor, 0);
        assert_int_equal(s.pci_device, 0);
        assert_true(s.shared_memory);
        /* kbase's 45 wins over the governor's 52; the clock is the GPU's, not the dmc's or npu's */
        assert_int_equal(s.present, HAL_GPU_UTIL | HAL_GPU_CLOCK | HAL_GPU_CLOCK_MAX);
        assert_true(s.util_pct == 45.0);
        assert_int_equal(s.clock_mhz, 800);
        assert_int_equal(s.clock_max_mhz, 1000);
        assert_int_equal(s.n_procs, 0);
        assert_int_equal(s.error, 0);
        assert_string_equal(s.error_msg, "");
}

static void test_hosts_without_mali_or_gpu_devfreq_are_no_device(void **state) {
        static const char *const hosts[] = { "arm", "x86-gpu-amd", "x86-gpu-nvidia" };

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(hosts); i++) {
                _cleanup_close_ int root = tu_open_host(hosts[i]);
                void *ctx = (void *)&ctx;
                unsigned n = 77;
                char err[256] = "";

                assert_int_equal(be->open(root, NULL, &ctx, &n, err, sizeof(err)), -ENODEV);
                assert_ptr_equal(ctx, (void *)&ctx);
                assert_int_equal(n, 77);
        }
}

static void test_devfreq_only_gpu_takes_util_from_load(void **state) {
        struct tu_scratch *sc = *state;
        struct hal_gpu_sample s;

        /* panfrost: no kbase files, devfreq named after the device node */
        tu_put(sc->fd, "sys/class/devfreq/dmc/cur_freq", "1560000000\n");
        tu_put(sc->fd, "sys/class/devfreq/fb000000.gpu/cur_freq", "299999999\n");
        tu_put(sc->fd, "sys/class/devfreq/fb000000.gpu/load", "17@300000000Hz\n");
        sample_one(sc->fd, &s);
        assert_string_equal(s.name, "fb000000.gpu");
        assert_int_equal(s.present, HAL_GPU_UTIL | HAL_GPU_CLOCK);
        assert_true(s.util_pct == 17.0);
        assert_int_equal(s.clock_mhz, 300); /* rounded, not cut */
        assert_int_equal(s.error, 0);
}

static void test_devfreq_found_by_compatible_is_named_by_it(void **state) {
        static const char compat[] = "mediatek,mt8195-mali\0arm,mali-valhall-jm\0";
        struct tu_scratch *sc = *state;
        struct hal_gpu_sample s;

        tu_put_bytes(sc->fd, "sys/class/devfreq/13000000.g3d/device/of_node/compatible", compat,
                     sizeof(compat) - 1);
        tu_put(sc->fd, "sys/class/devfreq/13000000.g3d/max_freq", "880000000\n");
        tu_put_bytes(sc->fd, "sys/class/devfreq/10012000.dvfsrc/device/of_node/compatible",
                     "mediatek,mt8195-dvfsrc", strlen("mediatek,mt8195-dvfsrc") + 1);
        tu_put(sc->fd, "sys/class/devfreq/10012000.dvfsrc/max_freq", "1\n");
        sample_one(sc->fd, &s);
        assert_string_equal(s.name, "mediatek,mt8195-mali");
        assert_int_equal(s.present, HAL_GPU_CLOCK_MAX);
        assert_int_equal(s.clock_max_mhz, 880);
}

static void test_only_non_gpu_devfreq_devices_is_no_device(void **state) {
        struct tu_scratch *sc = *state;
        void *ctx = NULL;
        unsigned n = 0;
        char err[256];

        tu_put(sc->fd, "sys/class/devfreq/dmc/cur_freq", "1560000000\n");
        tu_put_bytes(sc->fd, "sys/class/devfreq/fdab0000.npu/device/of_node/compatible",
                     "rockchip,rk3588-rknpu", strlen("rockchip,rk3588-rknpu") + 1);
        assert_int_equal(be->open(sc->fd, NULL, &ctx, &n, err, sizeof(err)), -ENODEV);
}

static void test_kbase_only_reads_gpu_utilization_and_has_no_clock(void **state) {
        struct tu_scratch *sc = *state;
        struct hal_gpu_sample s;

        tu_put(sc->fd, "sys/class/misc/mali0/device/gpu_utilization", "3\n");
        sample_one(sc->fd, &s);
        assert_string_equal(s.name, "Mali GPU"); /* no gpuinfo */
        assert_int_equal(s.present, HAL_GPU_UTIL);
        assert_true(s.util_pct == 3.0);
        assert_int_equal(s.error, 0);
}

static void test_garbage_load_is_absent_with_error_naming_file(void **state) {
        _cleanup_close_ int root = tu_open_host("corrupt/mali-load-garbage");
        struct hal_gpu_sample s;

        (void)state;
        sample_one(root, &s);
        assert_int_equal(s.present, HAL_GPU_CLOCK | HAL_GPU_CLOCK_MAX);
        assert_int_equal(s.clock_mhz, 800);
        assert_int_equal(s.error, -EPROTO);
        assert_string_equal(
                s.error_msg,
                "/sys/class/devfreq/fb000000.gpu/load: 'busy' is not a load like '45@800000000Hz'");
}

static void test_garbage_kbase_util_falls_back_to_load_and_says_so(void **state) {
        struct tu_scratch *sc = *state;
        struct hal_gpu_sample s;

        tu_put(sc->fd, "sys/class/misc/mali0/device/gpuinfo", "Mali-G52 2 cores r1p0 0x7402\n");
        tu_put(sc->fd, "sys/class/misc/mali0/device/utilization", "45%\n");
        tu_put(sc->fd, "sys/class/devfreq/ff400000.gpu/load", "60@800000000Hz\n");
        sample_one(sc->fd, &s);
        assert_string_equal(s.name, "Mali-G52 2 cores r1p0 0x7402");
        assert_int_equal(s.present, HAL_GPU_UTIL);
        assert_true(s.util_pct == 60.0);
        assert_int_equal(s.error, -EPROTO);
        assert_string_equal(s.error_msg,
                            "/sys/class/misc/mali0/device/utilization: '45%' is not a decimal number");
}

/* Parses s from a heap copy of exactly strlen(s) bytes, no NUL: ASan catches any overread. */
static int parse_load(const char *s, unsigned *pct, uint64_t *hz, char *err, size_t errlen) {
        size_t len = strlen(s);
        _cleanup_free_ char *copy = tu_copy_unterminated(s, len);

        return hal_gpu_parse_devfreq_load(copy, len, pct, hz, err, errlen);
}

static void test_parse_load_reads_percent_and_frequency(void **state) {
        unsigned pct = 7;
        uint64_t hz = 7;
        char err[128];

        (void)state;
        assert_int_equal(parse_load("100@1000000000Hz\n", &pct, &hz, err, sizeof(err)), 0);
        assert_int_equal(pct, 100);
        assert_int_equal(hz, UINT64_C(1000000000));
        assert_int_equal(parse_load("0@1Hz", &pct, &hz, err, sizeof(err)), 0);
        assert_int_equal(pct, 0);
        assert_int_equal(hz, 1);
}

static void test_parse_load_rejects_malformed_and_over_100(void **state) {
        static const char *const bad[] = { "",          "\n",       "45",
                                           "45@",       "45@Hz",    "@800Hz",
                                           "45@800",    "45@800hz", "45@800Hz\n\n",
                                           "4 5@800Hz", "-1@800Hz", "45@800Hz junk" };
        unsigned pct = 7;
        uint64_t hz = 7;
        char err[128];

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(parse_load(bad[i], &pct, &hz, err, sizeof(err)), -EPROTO);
        assert_int_equal(parse_load("101@800Hz\n", &pct, &hz, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "load 101% is over 100%");
        assert_int_equal(pct, 7);
        assert_int_equal(hz, 7);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rk3588_combines_kbase_and_gpu_devfreq),
                cmocka_unit_test(test_hosts_without_mali_or_gpu_devfreq_are_no_device),
                cmocka_unit_test_setup_teardown(test_devfreq_only_gpu_takes_util_from_load, tu_scratch_setup,
                                                tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_devfreq_found_by_compatible_is_named_by_it,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_only_non_gpu_devfreq_devices_is_no_device,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_kbase_only_reads_gpu_utilization_and_has_no_clock,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test(test_garbage_load_is_absent_with_error_naming_file),
                cmocka_unit_test_setup_teardown(test_garbage_kbase_util_falls_back_to_load_and_says_so,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test(test_parse_load_reads_percent_and_frequency),
                cmocka_unit_test(test_parse_load_rejects_malformed_and_over_100),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
