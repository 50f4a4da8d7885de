/* test_hal_gpu_tflops.c: the FP32 table: by PCI id, by marketing name, unknown GPUs. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "gpu.h"

#include <math.h>

static void test_known_pci_id_gives_its_figure(void **state) {
        (void)state;
        assert_true(hal_gpu_fp32_tflops(0x10de, 0x1eb8, NULL) == 8.1);  /* Tesla T4 */
        assert_true(hal_gpu_fp32_tflops(0x10de, 0x2330, "") == 67.0);   /* H100 SXM5 */
        assert_true(hal_gpu_fp32_tflops(0x1002, 0x740f, NULL) == 22.6); /* Instinct MI210 */
}

static void test_pci_id_wins_over_name(void **state) {
        (void)state;
        assert_true(hal_gpu_fp32_tflops(0x10de, 0x27b8, "NVIDIA A100-SXM4-40GB") == 30.3); /* L4 */
}

static void test_unknown_id_falls_back_to_the_name(void **state) {
        (void)state;
        assert_true(hal_gpu_fp32_tflops(0x10de, 0xffff, "NVIDIA A10G") == 31.2);
        assert_true(hal_gpu_fp32_tflops(0, 0, "Tesla T4") == 8.1);
        assert_true(hal_gpu_fp32_tflops(0x10de, 0x2321, "NVIDIA H100 NVL") == 60.0);
        assert_true(hal_gpu_fp32_tflops(0x1002, 0x740c, "AMD Instinct MI250X") == 47.9);
        assert_true(hal_gpu_fp32_tflops(0x1002, 0x740c, "AMD Instinct MI250") == 45.3);
}

static void test_name_matches_whole_words_most_specific_first(void **state) {
        (void)state;
        assert_true(hal_gpu_fp32_tflops(0, 0, "NVIDIA A100-SXM4-40GB") == 19.5); /* not the A10 */
        assert_true(hal_gpu_fp32_tflops(0, 0, "NVIDIA L40S") == 91.6);           /* not the L40 */
        assert_true(hal_gpu_fp32_tflops(0, 0, "NVIDIA GeForce RTX 4070 Ti SUPER") == 44.1);
        assert_true(hal_gpu_fp32_tflops(0, 0, "nvidia geforce rtx 3060 ti") == 16.2);
        assert_true(isnan(hal_gpu_fp32_tflops(0, 0, "NVIDIA RTX A2000"))); /* not the A2 */
}

static void test_unknown_gpu_is_nan(void **state) {
        (void)state;
        assert_true(isnan(hal_gpu_fp32_tflops(0x10de, 0xffff, "NVIDIA Quadro Something")));
        assert_true(isnan(hal_gpu_fp32_tflops(0, 0, NULL)));
        assert_true(isnan(hal_gpu_fp32_tflops(0, 0, "")));
        /* An NVIDIA device id under another vendor is another device. */
        assert_true(isnan(hal_gpu_fp32_tflops(0x1002, 0x1eb8, NULL)));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_known_pci_id_gives_its_figure),
                cmocka_unit_test(test_pci_id_wins_over_name),
                cmocka_unit_test(test_unknown_id_falls_back_to_the_name),
                cmocka_unit_test(test_name_matches_whole_words_most_specific_first),
                cmocka_unit_test(test_unknown_gpu_is_nan),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
