/* test_spec.c: the scale catalog and the capacity plan: who meets their scale, who fails and by how much. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"
#include "spec.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static struct cfg *load(const char *extra, const char *slots) {
        struct cfg_problems p = { 0 };
        struct cfg *c = NULL;
        char json[8192];

        snprintf(json, sizeof(json),
                 "{\"node\":{\"id\":\"n\",\"region\":\"r\"},\"mqtt\":{\"host\":\"h\",\"tls\":false}%s,"
                 "\"slots\":[%s]}",
                 extra, slots);
        if (cfg_parse("/etc/agent.json", json, strlen(json), &c, &p) < 0) {
                for (size_t i = 0; i < p.n; i++)
                        print_message("%s\n", p.msgs[i]);
                fail();
        }
        return c;
}

static struct spec_host big_gpu_host(double fp32, uint64_t vram) {
        struct spec_host h = {
                .cls = HAL_CLASS_X86_GPU, .cores = 128, .ram_bytes = 1024 * SPEC_GB, .n_gpus = 1
        };

        h.gpus[0].fp32_tflops = fp32;
        h.gpus[0].vram_bytes = vram;
        return h;
}

static void test_published_catalog_has_the_product_figures(void **state) {
        size_t n;
        const struct spec_scale *b = spec_builtin(&n);

        (void)state;
        assert_int_equal(n, 6);
        assert_string_equal(b[2].name, "L");
        assert_int_equal(b[2].vcpu, 10);
        assert_int_equal(b[2].ram_bytes, 32 * SPEC_GB);
        assert_float_equal(b[2].fp32_tflops, 8.1, 1e-9);
        assert_int_equal(b[2].vram_bytes, 12 * SPEC_GB);
        assert_float_equal(spec_builtin_find("S")->bandwidth_mbps, 6, 1e-9);
        assert_float_equal(spec_builtin_find("cpu-16")->bandwidth_mbps, 8, 1e-9);
        assert_float_equal(spec_builtin_find("cpu-8")->fp32_tflops, 0, 1e-9);
        assert_null(spec_builtin_find("XL"));
}

static void test_eight_L_slots_on_one_80GB_GPU_admit_six(void **state) {
        char slots[2048] = "";
        struct spec_verdict v[8];
        struct spec_host h = big_gpu_host(100, 80 * SPEC_GB);
        struct cfg *c;

        (void)state;
        for (int i = 0; i < 8; i++)
                snprintf(slots + strlen(slots), sizeof(slots) - strlen(slots),
                         "%s{\"id\":\"s%d\",\"scale\":\"L\",\"gpu\":0}", i ? "," : "", i);
        c = load("", slots);
        spec_plan(c, &h, v);
        for (int i = 0; i < 6; i++)
                assert_true(v[i].meets);
        assert_false(v[6].meets);
        assert_int_equal(v[6].fails, SPEC_FAIL_VRAM);
        assert_string_equal(v[6].reason, "vram: needs 12.0 GB, 8.0 left on GPU 0 of 80.0 (short by 4.0 GB)");
        assert_false(v[7].meets);
        cfg_free(c);
}

static void test_four_core_host_with_an_L_slot_fails_on_vcpu_by_six(void **state) {
        struct spec_host h = big_gpu_host(31.2, 24 * SPEC_GB);
        struct spec_verdict v[1];
        struct cfg *c = load("", "{\"id\":\"s0\",\"scale\":\"L\",\"gpu\":0}");

        (void)state;
        h.cores = 4;
        spec_plan(c, &h, v);
        assert_false(v[0].meets);
        assert_int_equal(v[0].fails, SPEC_FAIL_VCPU);
        assert_string_equal(v[0].reason, "vcpu: needs 10, 4 left of 4 (short by 6)");
        cfg_free(c);
}

static void test_override_in_config_changes_the_plan(void **state) {
        struct spec_host h = big_gpu_host(31.2, 24 * SPEC_GB);
        struct spec_verdict v[1];
        struct cfg *c =
                load(",\"scales\":{\"L\":{\"vcpu\":4}}", "{\"id\":\"s0\",\"scale\":\"L\",\"gpu\":0}");

        (void)state;
        h.cores = 4;
        spec_plan(c, &h, v);
        assert_true(v[0].meets);
        assert_string_equal(v[0].reason, "");
        cfg_free(c);
}

static void test_wrong_platform_scales_are_errors(void **state) {
        struct spec_host cpu_host = { .cls = HAL_CLASS_X86_CPU, .cores = 64, .ram_bytes = 256 * SPEC_GB };
        struct spec_verdict v[3];
        struct cfg *c = load(
                ",\"scales\":{\"arm-a1\":{\"class\":\"arm\",\"vcpu\":4,\"ram_gb\":8,\"bandwidth_mbps\":6}}",
                "{\"id\":\"s0\",\"scale\":\"M\",\"gpu\":0},{\"id\":\"s1\",\"scale\":\"arm-a1\"},"
                "{\"id\":\"s2\",\"scale\":\"cpu-8\"}");

        (void)state;
        spec_plan(c, &cpu_host, v);
        assert_false(v[0].meets);
        assert_int_equal(v[0].fails, SPEC_FAIL_CLASS);
        assert_string_equal(v[0].reason, "GPU scale M on a host without a GPU");
        assert_false(v[1].meets);
        assert_string_equal(v[1].reason, "ARM scale arm-a1 on a x86-cpu host");
        assert_true(v[2].meets);
        cfg_free(c);
}

static void test_gpu_problems_name_the_gpu(void **state) {
        struct spec_host h = big_gpu_host(NAN, 24 * SPEC_GB);
        struct spec_verdict v[3];
        struct cfg *c = load("", "{\"id\":\"s0\",\"scale\":\"S\",\"gpu\":0},{\"id\":\"s1\",\"scale\":\"S\"},"
                                 "{\"id\":\"s2\",\"scale\":\"S\",\"gpu\":3}");

        (void)state;
        spec_plan(c, &h, v);
        assert_string_equal(v[0].reason, "fp32: GPU 0's FP32 is unknown; set gpu.fp32_tflops.\"0\"");
        assert_string_equal(v[1].reason, "gpu: scale S needs a GPU and the slot has none (slots[].gpu)");
        assert_string_equal(v[2].reason, "gpu: GPU 3 does not exist (1 found)");
        cfg_free(c);
}

static void test_failing_slot_takes_nothing_and_every_dimension_is_listed(void **state) {
        struct spec_host h = big_gpu_host(10, 16 * SPEC_GB);
        struct spec_verdict v[3];
        struct cfg *c = load(
                "", "{\"id\":\"s0\",\"scale\":\"L\",\"gpu\":0},{\"id\":\"s1\",\"scale\":\"L\",\"gpu\":0},"
                    "{\"id\":\"s2\",\"scale\":\"S\",\"gpu\":0}");

        (void)state;
        h.cores = 12;
        h.ram_bytes = 40 * SPEC_GB;
        spec_plan(c, &h, v);
        assert_true(v[0].meets);
        assert_string_equal(
                v[1].reason,
                "vcpu: needs 10, 2 left of 12 (short by 8); ram: needs 32.0 GB, 8.0 left of "
                "40.0 (short by 24.0 GB); fp32: needs 8.1 TFLOPS, 1.9 left on GPU 0 of 10.0 "
                "(short by 6.2); vram: needs 12.0 GB, 4.0 left on GPU 0 of 16.0 (short by 8.0 GB)");
        /* s1 took nothing, so S is judged on what s0 left: 2 cores are not enough for it either. */
        assert_int_equal(v[2].fails, SPEC_FAIL_VCPU | SPEC_FAIL_FP32);
        assert_true(isnan(spec_pct(1, 0)));
        assert_float_equal(spec_pct(2, 8), 25, 1e-9);
        cfg_free(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_published_catalog_has_the_product_figures),
                cmocka_unit_test(test_eight_L_slots_on_one_80GB_GPU_admit_six),
                cmocka_unit_test(test_four_core_host_with_an_L_slot_fails_on_vcpu_by_six),
                cmocka_unit_test(test_override_in_config_changes_the_plan),
                cmocka_unit_test(test_wrong_platform_scales_are_errors),
                cmocka_unit_test(test_gpu_problems_name_the_gpu),
                cmocka_unit_test(test_failing_slot_takes_nothing_and_every_dimension_is_listed),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
