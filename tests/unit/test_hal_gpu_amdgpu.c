/* test_hal_gpu_amdgpu.c: the amdgpu sysfs backend, on fixture hosts and scratch trees. */
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
#include <limits.h>
#include <stdio.h>
#include <string.h>

static const struct hal_gpu_backend *const be = &hal_gpu_backend_amdgpu;

static void put_card(int root, const char *card, const char *vendor, const char *device) {
        char path[PATH_MAX];

        snprintf(path, sizeof(path), "sys/class/drm/%s/device/vendor", card);
        tu_put(root, path, vendor);
        snprintf(path, sizeof(path), "sys/class/drm/%s/device/device", card);
        tu_put(root, path, device);
        snprintf(path, sizeof(path), "sys/class/drm/%s/device/class", card);
        tu_put(root, path, "0x030000\n");
}

/* Opens the backend on root and samples GPU i into *ret; closes it again. */
static void sample_one(int root, unsigned i, struct hal_gpu_sample *ret) {
        void *ctx = NULL;
        unsigned n = 0;
        char err[256] = "";

        assert_int_equal(be->open(root, NULL, &ctx, &n, err, sizeof(err)), 0);
        assert_true(i < n);
        assert_int_equal(be->sample(ctx, i, ret), 0);
        be->close(ctx);
}

static void test_open_counts_amd_cards_not_bmc_connectors_or_render_nodes(void **state) {
        _cleanup_close_ int root = tu_open_host("x86-gpu-amd");
        void *ctx = NULL;
        unsigned n = 0;
        char err[256] = "";

        (void)state;
        assert_int_equal(be->open(root, NULL, &ctx, &n, err, sizeof(err)), 0);
        assert_int_equal(n, 2);
        assert_non_null(ctx);
        assert_string_equal(err, "");
        assert_string_equal(be->name, "amdgpu");
        be->close(ctx);
}

static void test_sample_full_card_reads_every_metric(void **state) {
        _cleanup_close_ int root = tu_open_host("x86-gpu-amd");
        struct hal_gpu_sample s;

        (void)state;
        memset(&s, 0xa5, sizeof(s));
        sample_one(root, 0, &s); /* card1: card0 is the BMC's VGA */
        assert_string_equal(s.backend, "amdgpu");
        assert_string_equal(s.name, "AMD Radeon PRO V620");
        assert_string_equal(s.uuid, "6c2f1a0e9b3d4471");
        assert_string_equal(s.pci_bus_id, "0000:c3:00.0");
        assert_int_equal(s.pci_vendor, 0x1002);
        assert_int_equal(s.pci_device, 0x73a1);
        assert_false(s.shared_memory);
        assert_int_equal(s.present, HAL_GPU_UTIL | HAL_GPU_MEM_UTIL | HAL_GPU_VRAM | HAL_GPU_POWER |
                                            HAL_GPU_TEMP | HAL_GPU_CLOCK | HAL_GPU_CLOCK_MAX);
        assert_true(s.util_pct == 37.0);
        assert_true(s.mem_util_pct == 12.0);
        assert_int_equal(s.vram_total_bytes, UINT64_C(34342961152));
        assert_int_equal(s.vram_used_bytes, UINT64_C(9126805504));
        assert_true(s.power_w == 187.0);
        assert_true(s.temp_c == 64.0);
        assert_int_equal(s.clock_mhz, 1854);
        assert_int_equal(s.clock_max_mhz, 2570);
        assert_int_equal(s.n_procs, 0);
        assert_int_equal(s.error, 0);
        assert_string_equal(s.error_msg, "");
}

static void test_sample_missing_files_are_absent_not_zero(void **state) {
        _cleanup_close_ int root = tu_open_host("x86-gpu-amd");
        struct hal_gpu_sample s;

        (void)state;
        sample_one(root, 1, &s); /* card2: no product_name, unique_id, uevent, mem_busy_percent */
        assert_string_equal(s.name, "AMD GPU 0x73a1");
        assert_string_equal(s.uuid, "");
        assert_string_equal(s.pci_bus_id, "");
        assert_int_equal(s.present, HAL_GPU_UTIL | HAL_GPU_VRAM | HAL_GPU_POWER | HAL_GPU_TEMP |
                                            HAL_GPU_CLOCK | HAL_GPU_CLOCK_MAX);
        assert_true(s.util_pct == 0.0);
        assert_true(s.mem_util_pct == 0.0);
        assert_int_equal(s.vram_used_bytes, UINT64_C(27394048));
        assert_true(s.power_w == 9.0); /* power1_input when there is no power1_average */
        assert_true(s.temp_c == 31.0);
        assert_int_equal(s.clock_mhz, 19); /* deep sleep */
        assert_int_equal(s.clock_max_mhz, 2570);
        assert_int_equal(s.error, 0);
}

static void test_open_hosts_without_amd_gpus_is_no_device(void **state) {
        static const char *const hosts[] = { "x86-gpu-nvidia", "x86-cpu", "arm", "arm-mali" };

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

static void test_sample_garbage_vram_is_absent_with_error_naming_file(void **state) {
        _cleanup_close_ int root = tu_open_host("corrupt/amd-vram-garbage");
        struct hal_gpu_sample s;

        (void)state;
        sample_one(root, 0, &s);
        assert_int_equal(s.present, HAL_GPU_UTIL | HAL_GPU_CLOCK | HAL_GPU_CLOCK_MAX);
        assert_true(s.util_pct == 88.0);
        assert_int_equal(s.clock_mhz, 2570);
        assert_int_equal(s.error, -EPROTO);
        assert_string_equal(
                s.error_msg,
                "/sys/class/drm/card0/device/mem_info_vram_total: 'lots' is not a decimal number");
}

static void test_sample_first_problem_is_reported_and_other_metrics_kept(void **state) {
        _cleanup_close_ int root = tu_open_host("corrupt/amd-dpm-garbage");
        struct hal_gpu_sample s;

        (void)state;
        sample_one(root, 0, &s);
        assert_int_equal(s.present, HAL_GPU_TEMP);
        assert_true(s.temp_c == 55.0);
        assert_int_equal(s.error, -EPROTO);
        assert_string_equal(
                s.error_msg,
                "/sys/class/drm/card0/device/gpu_busy_percent: 250 is not a percentage (0..100)");
}

static void test_sample_garbage_clock_table_names_file_and_line(void **state) {
        struct tu_scratch *sc = *state;
        struct hal_gpu_sample s;

        put_card(sc->fd, "card0", "0x1002\n", "0x73bf\n");
        tu_put(sc->fd, "sys/class/drm/card0/device/pp_dpm_sclk", "0: 500Mhz \n1: fastMhz *\n");
        sample_one(sc->fd, 0, &s);
        assert_int_equal(s.present, 0);
        assert_int_equal(s.error, -EPROTO);
        assert_string_equal(s.error_msg,
                            "/sys/class/drm/card0/device/pp_dpm_sclk: line 2: '1: fastMhz *' is "
                            "not a clock level like '1: 2100Mhz *'");
}

static void test_open_malformed_device_id_fails_naming_file(void **state) {
        _cleanup_close_ int root = tu_open_host("corrupt/amd-bad-device-id");
        void *ctx = NULL;
        unsigned n = 0;
        char err[256] = "";

        (void)state;
        assert_int_equal(be->open(root, NULL, &ctx, &n, err, sizeof(err)), -EPROTO);
        assert_null(ctx);
        assert_string_equal(err,
                            "/sys/class/drm/card0/device/device: 'Navi21' is not a hex PCI id like 0x1002");
}

static void test_open_numbers_gpus_by_card_number_and_skips_nvidia(void **state) {
        struct tu_scratch *sc = *state;
        struct hal_gpu_sample s;
        void *ctx = NULL;
        unsigned n = 0;
        char err[256];

        put_card(sc->fd, "card10", "0x1002\n", "0x740f\n");
        put_card(sc->fd, "card2", "0x1002\n", "0x73bf\n");
        put_card(sc->fd, "card1", "0x10de\n", "0x2236\n");
        tu_put(sc->fd, "sys/class/drm/card3/device/vendor", "0x1002\n"); /* HDMI audio-like: not display */
        tu_put(sc->fd, "sys/class/drm/card3/device/class", "0x040300\n");
        tu_put(sc->fd, "sys/class/drm/card4/dev", "226:4\n"); /* simpledrm: no device */
        put_card(sc->fd, "card2-DP-1", "0x1002\n", "0x73bf\n");
        assert_int_equal(be->open(sc->fd, NULL, &ctx, &n, err, sizeof(err)), 0);
        assert_int_equal(n, 2);
        assert_int_equal(be->sample(ctx, 0, &s), 0);
        assert_int_equal(s.pci_device, 0x73bf);
        assert_int_equal(be->sample(ctx, 1, &s), 0);
        assert_int_equal(s.pci_device, 0x740f);
        assert_string_equal(s.name, "AMD GPU 0x740f");
        assert_int_equal(be->sample(ctx, 2, &s), -EINVAL);
        be->close(ctx);
}

static void test_sample_bus_id_comes_from_device_link(void **state) {
        struct tu_scratch *sc = *state;
        struct hal_gpu_sample s;

        tu_put(sc->fd, "sys/devices/pci0000:00/0000:00:01.1/0000:0a:00.0/vendor", "0x1002\n");
        tu_put(sc->fd, "sys/devices/pci0000:00/0000:00:01.1/0000:0a:00.0/device", "0x73a1\n");
        tu_put(sc->fd, "sys/devices/pci0000:00/0000:00:01.1/0000:0a:00.0/class", "0x038000\n");
        tu_put(sc->fd, "sys/devices/pci0000:00/0000:00:01.1/0000:0a:00.0/uevent", "PCI_SLOT_NAME=wrong\n");
        tu_mkparents(sc->fd, "sys/class/drm/card0/x");
        assert_int_equal(symlinkat("../../../devices/pci0000:00/0000:00:01.1/0000:0a:00.0", sc->fd,
                                   "sys/class/drm/card0/device"),
                         0);
        sample_one(sc->fd, 0, &s);
        assert_string_equal(s.pci_bus_id, "0000:0a:00.0");
}

static void test_sample_uses_lowest_hwmon_and_prefers_average_power(void **state) {
        struct tu_scratch *sc = *state;
        struct hal_gpu_sample s;

        put_card(sc->fd, "card0", "0x1002\n", "0x73a1\n");
        tu_put(sc->fd, "sys/class/drm/card0/device/hwmon/hwmon12/temp1_input", "99000\n");
        tu_put(sc->fd, "sys/class/drm/card0/device/hwmon/hwmon7/temp1_input", "45500\n");
        tu_put(sc->fd, "sys/class/drm/card0/device/hwmon/hwmon7/power1_average", "120500000\n");
        tu_put(sc->fd, "sys/class/drm/card0/device/hwmon/hwmon7/power1_input", "1000000\n");
        tu_put(sc->fd, "sys/class/drm/card0/device/hwmon/name", "not a hwmon dir\n");
        sample_one(sc->fd, 0, &s);
        assert_int_equal(s.present, HAL_GPU_POWER | HAL_GPU_TEMP);
        assert_true(s.temp_c == 45.5);
        assert_true(s.power_w == 120.5);
        assert_int_equal(s.error, 0);
}

static void test_sample_card_with_no_metric_files_has_nothing_present_and_no_error(void **state) {
        struct tu_scratch *sc = *state;
        struct hal_gpu_sample s;

        put_card(sc->fd, "card0", "0x1002\n", "0x73a1\n");
        tu_put(sc->fd, "sys/class/drm/card0/device/product_name", "\n"); /* no FRU EEPROM */
        sample_one(sc->fd, 0, &s);
        assert_string_equal(s.name, "AMD GPU 0x73a1");
        assert_int_equal(s.present, 0);
        assert_int_equal(s.error, 0);
        assert_string_equal(s.error_msg, "");
}

static void test_sample_unreadable_file_is_error_naming_it(void **state) {
        struct tu_scratch *sc = *state;
        struct hal_gpu_sample s;

        put_card(sc->fd, "card0", "0x1002\n", "0x73a1\n");
        tu_put(sc->fd, "sys/class/drm/card0/device/gpu_busy_percent/x", "");
        tu_put(sc->fd, "sys/class/drm/card0/device/mem_busy_percent", "3\n");
        sample_one(sc->fd, 0, &s);
        assert_int_equal(s.present, HAL_GPU_MEM_UTIL);
        assert_int_equal(s.error, -EISDIR);
        assert_string_equal(s.error_msg, "/sys/class/drm/card0/device/gpu_busy_percent: Is a directory");
}

static void test_sample_lost_gpu_reports_enodev_once(void **state) {
        struct tu_scratch *sc = *state;
        struct hal_gpu_sample s;
        void *ctx = NULL;
        unsigned n = 0;
        char err[256];

        put_card(sc->fd, "card0", "0x1002\n", "0x73a1\n");
        tu_put(sc->fd, "sys/class/drm/card0/device/gpu_busy_percent", "50\n");
        assert_int_equal(be->open(sc->fd, NULL, &ctx, &n, err, sizeof(err)), 0);
        assert_int_equal(unlinkat(sc->fd, "sys/class/drm/card0/device/vendor", 0), 0);
        assert_int_equal(be->sample(ctx, 0, &s), 0);
        assert_int_equal(s.error, -ENODEV);
        assert_string_equal(s.error_msg, "/sys/class/drm/card0/device: device is gone");
        assert_int_equal(s.present, 0);
        assert_string_equal(s.name, "AMD GPU 0x73a1"); /* identity stays for the report */
        be->close(ctx);
}

static void test_open_stops_at_hal_gpu_max(void **state) {
        struct tu_scratch *sc = *state;
        void *ctx = NULL;
        unsigned n = 0;
        char err[256];

        for (unsigned i = 0; i < HAL_GPU_MAX + 3; i++) {
                char card[16];

                snprintf(card, sizeof(card), "card%u", i);
                put_card(sc->fd, card, "0x1002\n", "0x73a1\n");
        }
        assert_int_equal(be->open(sc->fd, NULL, &ctx, &n, err, sizeof(err)), 0);
        assert_int_equal(n, HAL_GPU_MAX);
        be->close(ctx);
}

/* Parses s from a heap copy of exactly strlen(s) bytes, no NUL: ASan catches any overread. */
static int parse_sclk(const char *s, unsigned *cur, unsigned *max, char *err, size_t errlen) {
        size_t len = strlen(s);
        _cleanup_free_ char *copy = tu_copy_unterminated(s, len);

        return hal_gpu_parse_dpm_sclk(copy, len, cur, max, err, errlen);
}

static void test_parse_sclk_without_star_has_only_max(void **state) {
        unsigned cur = 7, max = 7;
        char err[128];

        (void)state;
        assert_int_equal(parse_sclk("0: 500Mhz \n1: 2100Mhz \n", &cur, &max, err, sizeof(err)),
                         HAL_GPU_CLOCK_MAX);
        assert_int_equal(cur, 7);
        assert_int_equal(max, 2100);
        /* No final newline, "MHz" spelling: still read. */
        assert_int_equal(parse_sclk("0: 500MHz *\n1: 2100MHz", &cur, &max, err, sizeof(err)),
                         HAL_GPU_CLOCK | HAL_GPU_CLOCK_MAX);
        assert_int_equal(cur, 500);
        assert_int_equal(max, 2100);
}

static void test_parse_sclk_rejects_empty_and_trailing_junk(void **state) {
        unsigned cur = 7, max = 7;
        char err[128];

        (void)state;
        assert_int_equal(parse_sclk("", &cur, &max, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "no clock levels");
        assert_int_equal(parse_sclk("0: 500Mhz * now\n", &cur, &max, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "line 1: '0: 500Mhz * now' is not a clock level like '1: 2100Mhz *'");
        assert_int_equal(parse_sclk("0: 500\n", &cur, &max, err, sizeof(err)), -EPROTO);
        assert_int_equal(parse_sclk("x: 500Mhz\n", &cur, &max, err, sizeof(err)), -EPROTO);
        assert_int_equal(parse_sclk("0: 4294967296Mhz\n", &cur, &max, err, sizeof(err)), -EPROTO);
        assert_int_equal(cur, 7);
        assert_int_equal(max, 7);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_open_counts_amd_cards_not_bmc_connectors_or_render_nodes),
                cmocka_unit_test(test_sample_full_card_reads_every_metric),
                cmocka_unit_test(test_sample_missing_files_are_absent_not_zero),
                cmocka_unit_test(test_open_hosts_without_amd_gpus_is_no_device),
                cmocka_unit_test(test_sample_garbage_vram_is_absent_with_error_naming_file),
                cmocka_unit_test(test_sample_first_problem_is_reported_and_other_metrics_kept),
                cmocka_unit_test_setup_teardown(test_sample_garbage_clock_table_names_file_and_line,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test(test_open_malformed_device_id_fails_naming_file),
                cmocka_unit_test_setup_teardown(test_open_numbers_gpus_by_card_number_and_skips_nvidia,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_sample_bus_id_comes_from_device_link, tu_scratch_setup,
                                                tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_sample_uses_lowest_hwmon_and_prefers_average_power,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(
                        test_sample_card_with_no_metric_files_has_nothing_present_and_no_error,
                        tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_sample_unreadable_file_is_error_naming_it,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_sample_lost_gpu_reports_enodev_once, tu_scratch_setup,
                                                tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_open_stops_at_hal_gpu_max, tu_scratch_setup,
                                                tu_scratch_teardown),
                cmocka_unit_test(test_parse_sclk_without_star_has_only_max),
                cmocka_unit_test(test_parse_sclk_rejects_empty_and_trailing_junk),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
