/* test_hal_platform.c: architecture, GPU count and platform class, on fixture hosts and scratch trees. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cleanup.h"
#include "platform_class.h"
#include "testutil.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

static const struct hal_platform sentinel = { .arch = "sentinel", .cls = HAL_CLASS_ARM, .gpu_devices = 77 };

static void assert_untouched(const struct hal_platform *p) {
        assert_memory_equal(p, &sentinel, sizeof(*p));
}

static void put_card(int root, const char *card, const char *vendor, const char *class) {
        char path[PATH_MAX];

        snprintf(path, sizeof(path), "sys/class/drm/%s/device/vendor", card);
        tu_put(root, path, vendor);
        snprintf(path, sizeof(path), "sys/class/drm/%s/device/class", card);
        tu_put(root, path, class);
}

static void test_detect_x86_host_ignores_bmc_vga(void **state) {
        _cleanup_close_ int root = tu_open_host("x86-cpu");
        struct hal_platform p = sentinel;
        char err[256] = "";

        (void)state;
        assert_int_equal(hal_platform_detect(root, &p, err, sizeof(err)), 0);
        assert_string_equal(p.arch, "x86_64");
        assert_int_equal(p.gpu_devices, 0);
        assert_int_equal(p.cls, HAL_CLASS_X86_CPU);
        assert_string_equal(hal_class_to_string(p.cls), "x86-cpu");
        assert_string_equal(err, "");
}

static void test_detect_nvidia_host_counts_card_not_connector_or_render_node(void **state) {
        _cleanup_close_ int root = tu_open_host("x86-gpu-nvidia");
        struct hal_platform p = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(hal_platform_detect(root, &p, err, sizeof(err)), 0);
        assert_string_equal(p.arch, "x86_64");
        assert_int_equal(p.gpu_devices, 1);
        assert_int_equal(p.cls, HAL_CLASS_X86_GPU);
        assert_string_equal(hal_class_to_string(p.cls), "x86-gpu");
}

static void test_detect_arm_host_without_drm_dir_has_no_gpus(void **state) {
        _cleanup_close_ int root = tu_open_host("arm");
        struct hal_platform p = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(hal_platform_detect(root, &p, err, sizeof(err)), 0);
        assert_string_equal(p.arch, "aarch64");
        assert_int_equal(p.gpu_devices, 0);
        assert_int_equal(p.cls, HAL_CLASS_ARM);
        assert_string_equal(hal_class_to_string(p.cls), "arm");
}

static void test_detect_missing_arch_file_falls_back_to_uname(void **state) {
        _cleanup_close_ int root = tu_open_host("corrupt/empty");
        struct hal_platform p = sentinel;
        struct utsname u;
        char err[256];

        (void)state;
        assert_int_equal(uname(&u), 0);
        assert_int_equal(hal_platform_detect(root, &p, err, sizeof(err)), 0);
        assert_string_equal(p.arch, u.machine);
        assert_int_equal(p.gpu_devices, 0);
}

static void test_detect_unreadable_arch_is_error_not_uname(void **state) {
        _cleanup_close_ int root = tu_open_host("corrupt/arch-is-dir");
        struct hal_platform p = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(hal_platform_detect(root, &p, err, sizeof(err)), -EISDIR);
        assert_string_equal(err, "/proc/sys/kernel/arch: Is a directory");
        assert_untouched(&p);
}

static void test_detect_empty_arch_is_rejected(void **state) {
        _cleanup_close_ int root = tu_open_host("corrupt/arch-empty");
        struct hal_platform p = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(hal_platform_detect(root, &p, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/sys/kernel/arch: architecture name is empty");
        assert_untouched(&p);
}

static void test_detect_bad_vendor_id_names_file(void **state) {
        _cleanup_close_ int root = tu_open_host("corrupt/gpu-bad-vendor");
        struct hal_platform p = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(hal_platform_detect(root, &p, err, sizeof(err)), -EPROTO);
        assert_string_equal(err,
                            "/sys/class/drm/card0/device/vendor: 'NVIDIA' is not a hex PCI id like 0x10de");
        assert_untouched(&p);
}

static void test_detect_amd_3d_controller_is_a_gpu(void **state) {
        struct tu_scratch *s = *state;
        struct hal_platform p = sentinel;
        char err[256];

        tu_put(s->fd, "proc/sys/kernel/arch", "x86_64\n");
        put_card(s->fd, "card1", "0x1002\n", "0x030200\n");
        assert_int_equal(hal_platform_detect(s->fd, &p, err, sizeof(err)), 0);
        assert_int_equal(p.gpu_devices, 1);
        assert_int_equal(p.cls, HAL_CLASS_X86_GPU);
}

static void test_detect_counts_each_display_card_and_skips_the_rest(void **state) {
        struct tu_scratch *s = *state;
        struct hal_platform p = sentinel;
        char err[256];

        tu_put(s->fd, "proc/sys/kernel/arch", "x86_64\n");
        put_card(s->fd, "card0", "0x10de\n", "0x030000\n");
        put_card(s->fd, "card1", "0x10DE\n", "0x030200\n");
        put_card(s->fd, "card2", "0x8086\n", "0x030000\n");  /* Intel iGPU */
        put_card(s->fd, "card3", "0x10de\n", "0x040300\n");  /* not display class */
        tu_put(s->fd, "sys/class/drm/card4/dev", "226:4\n"); /* simpledrm: no PCI device */
        put_card(s->fd, "card5x", "0x10de\n", "0x030000\n"); /* not a card name */
        put_card(s->fd, "card", "0x10de\n", "0x030000\n");   /* no number */
        put_card(s->fd, "card1-HDMI-A-1", "0x10de\n", "0x030000\n");
        assert_int_equal(hal_platform_detect(s->fd, &p, err, sizeof(err)), 0);
        assert_int_equal(p.gpu_devices, 2);
        assert_int_equal(p.cls, HAL_CLASS_X86_GPU);
}

static void test_detect_malformed_class_names_file(void **state) {
        struct tu_scratch *s = *state;
        struct hal_platform p = sentinel;
        char err[256];

        tu_put(s->fd, "proc/sys/kernel/arch", "x86_64\n");
        put_card(s->fd, "card0", "0x10de\n", "0x0300000000\n");
        assert_int_equal(hal_platform_detect(s->fd, &p, err, sizeof(err)), -EPROTO);
        assert_string_equal(err,
                            "/sys/class/drm/card0/device/class: '0x0300000000' is not a hex PCI id like "
                            "0x10de");
        assert_untouched(&p);
}

static void test_detect_drm_path_that_is_a_file_is_error(void **state) {
        struct tu_scratch *s = *state;
        struct hal_platform p = sentinel;
        char err[256];

        tu_put(s->fd, "proc/sys/kernel/arch", "x86_64\n");
        tu_put(s->fd, "sys/class/drm", "");
        assert_int_equal(hal_platform_detect(s->fd, &p, err, sizeof(err)), -ENOTDIR);
        assert_string_equal(err, "/sys/class/drm: Not a directory");
        assert_untouched(&p);
}

static void test_detect_maps_arch_names_to_classes(void **state) {
        static const struct {
                const char *arch;
                enum hal_class cls;
        } cases[] = {
                { "x86_64", HAL_CLASS_X86_CPU },  { "x86", HAL_CLASS_X86_CPU },
                { "i386", HAL_CLASS_X86_CPU },    { "i686", HAL_CLASS_X86_CPU },
                { "aarch64", HAL_CLASS_ARM },     { "armv7l", HAL_CLASS_ARM },
                { "arm", HAL_CLASS_ARM },         { "riscv64", HAL_CLASS_UNKNOWN },
                { "ppc64le", HAL_CLASS_UNKNOWN }, { "i786", HAL_CLASS_UNKNOWN },
                { "x86_64x", HAL_CLASS_UNKNOWN }, { "aarch", HAL_CLASS_UNKNOWN },
        };
        struct tu_scratch *s = *state;
        char err[256];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct hal_platform p = sentinel;
                char line[64];

                snprintf(line, sizeof(line), "%s\n", cases[i].arch);
                tu_put(s->fd, "proc/sys/kernel/arch", line);
                assert_int_equal(hal_platform_detect(s->fd, &p, err, sizeof(err)), 0);
                assert_string_equal(p.arch, cases[i].arch);
                assert_int_equal(p.cls, cases[i].cls);
        }
}

static void test_detect_arm_with_gpu_stays_arm(void **state) {
        struct tu_scratch *s = *state;
        struct hal_platform p = sentinel;
        char err[256];

        tu_put(s->fd, "proc/sys/kernel/arch", "aarch64\n");
        put_card(s->fd, "card0", "0x10de\n", "0x030200\n");
        assert_int_equal(hal_platform_detect(s->fd, &p, err, sizeof(err)), 0);
        assert_int_equal(p.gpu_devices, 1);
        assert_int_equal(p.cls, HAL_CLASS_ARM);
}

static void test_detect_arch_of_31_bytes_fits_32_does_not(void **state) {
        struct tu_scratch *s = *state;
        struct hal_platform p = sentinel;
        char err[256];

        tu_put(s->fd, "proc/sys/kernel/arch", "abcdefghijklmnopqrstuvwxyz01234\n");
        assert_int_equal(hal_platform_detect(s->fd, &p, err, sizeof(err)), 0);
        assert_string_equal(p.arch, "abcdefghijklmnopqrstuvwxyz01234");
        assert_int_equal(p.cls, HAL_CLASS_UNKNOWN);

        p = sentinel;
        tu_put(s->fd, "proc/sys/kernel/arch", "abcdefghijklmnopqrstuvwxyz012345\n");
        assert_int_equal(hal_platform_detect(s->fd, &p, err, sizeof(err)), -EPROTO);
        assert_string_equal(err,
                            "/proc/sys/kernel/arch: architecture name 'abcdefghijklmnopqrstuvwxyz01234' "
                            "is 32 bytes, at most 31");
        assert_untouched(&p);
}

static void test_detect_arch_with_blank_or_second_line_is_rejected(void **state) {
        struct tu_scratch *s = *state;
        struct hal_platform p = sentinel;
        char err[256];

        tu_put(s->fd, "proc/sys/kernel/arch", "x86 64\n");
        assert_int_equal(hal_platform_detect(s->fd, &p, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/sys/kernel/arch: architecture name 'x86 64' holds byte 0x20");
        tu_put(s->fd, "proc/sys/kernel/arch", "x86_64\n\n");
        assert_int_equal(hal_platform_detect(s->fd, &p, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/sys/kernel/arch: architecture name 'x86_64?' holds byte 0x0a");
        assert_untouched(&p);
}

static void test_class_to_string_names_every_class(void **state) {
        (void)state;
        assert_string_equal(hal_class_to_string(HAL_CLASS_X86_GPU), "x86-gpu");
        assert_string_equal(hal_class_to_string(HAL_CLASS_X86_CPU), "x86-cpu");
        assert_string_equal(hal_class_to_string(HAL_CLASS_ARM), "arm");
        assert_string_equal(hal_class_to_string(HAL_CLASS_UNKNOWN), "unknown");
        assert_string_equal(hal_class_to_string((enum hal_class)42), "unknown");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_detect_x86_host_ignores_bmc_vga),
                cmocka_unit_test(test_detect_nvidia_host_counts_card_not_connector_or_render_node),
                cmocka_unit_test(test_detect_arm_host_without_drm_dir_has_no_gpus),
                cmocka_unit_test(test_detect_missing_arch_file_falls_back_to_uname),
                cmocka_unit_test(test_detect_unreadable_arch_is_error_not_uname),
                cmocka_unit_test(test_detect_empty_arch_is_rejected),
                cmocka_unit_test(test_detect_bad_vendor_id_names_file),
                cmocka_unit_test_setup_teardown(test_detect_amd_3d_controller_is_a_gpu, tu_scratch_setup,
                                                tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_detect_counts_each_display_card_and_skips_the_rest,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_detect_malformed_class_names_file, tu_scratch_setup,
                                                tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_detect_drm_path_that_is_a_file_is_error,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_detect_maps_arch_names_to_classes, tu_scratch_setup,
                                                tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_detect_arm_with_gpu_stays_arm, tu_scratch_setup,
                                                tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_detect_arch_of_31_bytes_fits_32_does_not,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_detect_arch_with_blank_or_second_line_is_rejected,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test(test_class_to_string_names_every_class),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
