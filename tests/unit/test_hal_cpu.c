/* test_hal_cpu.c: /proc/stat parsing, on fixture hosts and on hand-made buffers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cleanup.h"
#include "cpu.h"
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses s from a heap copy of exactly strlen(s) bytes, no NUL: ASan catches any overread. */
static int parse(const char *s, struct hal_cpu_sample *ret, char *err, size_t errlen) {
        size_t len = strlen(s);
        _cleanup_free_ char *copy = tu_copy_unterminated(s, len);

        return hal_cpu_parse(copy, len, ret, err, errlen);
}

/* A sample no parser would produce: failures must leave it as it is. */
static const struct hal_cpu_sample sentinel = { .total_jiffies = 0xdead,
                                                .idle_jiffies = 0xbeef,
                                                .cores = 77 };

static void assert_untouched(const struct hal_cpu_sample *s) {
        assert_int_equal(s->total_jiffies, sentinel.total_jiffies);
        assert_int_equal(s->idle_jiffies, sentinel.idle_jiffies);
        assert_int_equal(s->cores, sentinel.cores);
}

/* One read through a fresh reader, as the sampler's first tick does. */
static int read_once(int root, struct hal_cpu_sample *ret, char *err, size_t errlen) {
        struct hal_cpu_reader *r = NULL;
        int k;

        assert_int_equal(hal_cpu_reader_new(root, &r), 0);
        k = hal_cpu_reader_read(r, ret, err, errlen);
        hal_cpu_reader_free(r);
        return k;
}

static void test_read_x86_host_sums_eight_fields_and_counts_cores(void **state) {
        _cleanup_close_ int root = tu_open_host("x86-cpu");
        struct hal_cpu_sample s = sentinel;
        char err[256] = "";

        (void)state;
        assert_int_equal(read_once(root, &s, err, sizeof(err)), 0);
        /* cpu  11618328 12946 2626545 195224351 111271 127208 71491 23678 0 0 */
        assert_int_equal(s.total_jiffies, UINT64_C(209815818));
        assert_int_equal(s.idle_jiffies, UINT64_C(195224351) + UINT64_C(111271));
        assert_int_equal(s.cores, 8);
        assert_string_equal(err, "");
}

static void test_read_gpu_host_counts_sixteen_cores(void **state) {
        _cleanup_close_ int root = tu_open_host("x86-gpu-nvidia");
        struct hal_cpu_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(read_once(root, &s, err, sizeof(err)), 0);
        assert_int_equal(s.total_jiffies, UINT64_C(443059812));
        assert_int_equal(s.idle_jiffies, UINT64_C(410492298));
        assert_int_equal(s.cores, 16);
}

static void test_read_arm_host_counts_eight_cores(void **state) {
        _cleanup_close_ int root = tu_open_host("arm");
        struct hal_cpu_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(read_once(root, &s, err, sizeof(err)), 0);
        assert_int_equal(s.total_jiffies, UINT64_C(223414019));
        assert_int_equal(s.idle_jiffies, UINT64_C(209940892));
        assert_int_equal(s.cores, 8);
}

static void test_read_truncated_stat_names_file_and_line(void **state) {
        _cleanup_close_ int root = tu_open_host("corrupt/stat-truncated");
        struct hal_cpu_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(read_once(root, &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/stat:6: line is cut short (no newline at end of file)");
        assert_untouched(&s);
}

static void test_read_short_cpu_line_names_field_count(void **state) {
        _cleanup_close_ int root = tu_open_host("corrupt/stat-short-cpu-line");
        struct hal_cpu_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(read_once(root, &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/stat:1: cpu line has 3 fields, expected at least 4");
        assert_untouched(&s);
}

static void test_read_stat_without_cpuN_lines_is_error_not_zero_cores(void **state) {
        _cleanup_close_ int root = tu_open_host("corrupt/stat-no-cores");
        struct hal_cpu_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(read_once(root, &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/stat: no cpuN lines, cannot count cores");
        assert_untouched(&s);
}

static void test_read_empty_stat_names_file(void **state) {
        _cleanup_close_ int root = tu_open_host("corrupt/empty");
        struct hal_cpu_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(read_once(root, &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/stat: file is empty");
        assert_untouched(&s);
}

static void test_read_missing_stat_returns_enoent_with_path(void **state) {
        _cleanup_close_ int root = tu_open_host("corrupt/arch-empty");
        struct hal_cpu_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(read_once(root, &s, err, sizeof(err)), -ENOENT);
        assert_non_null(strstr(err, "/proc/stat: "));
        assert_untouched(&s);
}

static void test_reader_keeps_stat_open_reads_fresh_and_reopens_after_failure(void **state) {
        struct tu_scratch *sc = *state;
        struct hal_cpu_reader *r = NULL;
        struct hal_cpu_sample s = sentinel;
        char err[256];

        assert_int_equal(hal_cpu_reader_new(sc->fd, &r), 0);
        /* Not there yet: ENOENT naming the file, and the next read tries the open again. */
        assert_int_equal(hal_cpu_reader_read(r, &s, err, sizeof(err)), -ENOENT);
        assert_string_equal(err, "/proc/stat: No such file or directory");
        assert_untouched(&s);
        tu_put(sc->fd, "proc/stat", "cpu  10 0 5 100 1 0 0 0 0 0\ncpu0 10 0 5 100 1 0 0 0 0 0\n");
        assert_int_equal(hal_cpu_reader_read(r, &s, err, sizeof(err)), 0);
        assert_int_equal(s.total_jiffies, 116);
        /* Rewritten in place, as the kernel prints it afresh: the open file reads the new counters. */
        tu_put(sc->fd, "proc/stat",
               "cpu  20 0 5 200 1 0 0 0 0 0\ncpu0 10 0 5 100 1 0 0 0 0 0\ncpu1 1 0 0 1\n");
        assert_int_equal(hal_cpu_reader_read(r, &s, err, sizeof(err)), 0);
        assert_int_equal(s.total_jiffies, 226);
        assert_int_equal(s.cores, 2);
        /* Malformed content: the line and what is wrong with it. */
        tu_put(sc->fd, "proc/stat", "cpu  1 2\n");
        assert_int_equal(hal_cpu_reader_read(r, &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/stat:1: cpu line has 2 fields, expected at least 4");
        hal_cpu_reader_free(r);
        hal_cpu_reader_free(NULL);
}

static void test_reader_reads_a_stat_larger_than_its_first_buffer(void **state) {
        struct tu_scratch *sc = *state;
        struct hal_cpu_reader *r = NULL;
        struct hal_cpu_sample s = sentinel;
        char err[256], *text = malloc(64 * 1024);
        size_t n = 0;

        assert_non_null(text);
        n += (size_t)snprintf(text + n, 64 * 1024 - n, "cpu  1 0 0 1 0 0 0 0 0 0\n");
        for (int i = 0; i < 512; i++)
                n += (size_t)snprintf(text + n, 64 * 1024 - n, "cpu%d 1 0 0 1 0 0 0 0 0 0\n", i);
        assert_true(n > 8192);
        tu_put(sc->fd, "proc/stat", text);
        assert_int_equal(hal_cpu_reader_new(sc->fd, &r), 0);
        for (int i = 0; i < 2; i++) {
                assert_int_equal(hal_cpu_reader_read(r, &s, err, sizeof(err)), 0);
                assert_int_equal(s.cores, 512);
        }
        hal_cpu_reader_free(r);
        free(text);
}

static void test_parse_stops_at_len_of_unterminated_buffer(void **state) {
        static const char text[] = "cpu  10 0 5 100 1 0 0 0 0 0\ncpu0 10 0 5 100 1 0 0 0 0 0\nGARBAGE";
        size_t len = strlen("cpu  10 0 5 100 1 0 0 0 0 0\ncpu0 10 0 5 100 1 0 0 0 0 0\n");
        /* no NUL, and the garbage after it is out of reach */
        _cleanup_free_ char *buf = tu_copy_unterminated(text, len);
        struct hal_cpu_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(hal_cpu_parse(buf, len, &s, err, sizeof(err)), 0);
        assert_int_equal(s.total_jiffies, 116);
        assert_int_equal(s.idle_jiffies, 101);
        assert_int_equal(s.cores, 1);
}

static void test_parse_linux_2_4_four_fields_sums_what_is_present(void **state) {
        struct hal_cpu_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(
                parse("cpu  100 20 30 400\ncpu0 50 10 15 200\ncpu1 50 10 15 200\n", &s, err, sizeof(err)),
                0);
        assert_int_equal(s.total_jiffies, 550);
        assert_int_equal(s.idle_jiffies, 400);
        assert_int_equal(s.cores, 2);
}

static void test_parse_linux_2_6_0_seven_fields_counts_iowait_as_idle(void **state) {
        struct hal_cpu_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(parse("cpu  100 20 30 400 7 3 2\ncpu0 100 20 30 400 7 3 2\n", &s, err, sizeof(err)),
                         0);
        assert_int_equal(s.total_jiffies, 562);
        assert_int_equal(s.idle_jiffies, 407);
}

static void test_parse_guest_time_is_not_counted_twice(void **state) {
        struct hal_cpu_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(parse("cpu  100 20 30 400 7 3 2 1 60 15\ncpu0 100 20 30 400 7 3 2 1 60 15\n", &s,
                               err, sizeof(err)),
                         0);
        assert_int_equal(s.total_jiffies, 563);
}

static void test_parse_sum_overflow_is_erange(void **state) {
        struct hal_cpu_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(parse("cpu  18446744073709551615 0 0 1\ncpu0 1 0 0 1\n", &s, err, sizeof(err)),
                         -ERANGE);
        assert_string_equal(err, "/proc/stat:1: sum of cpu fields does not fit in 64 bits");
        assert_untouched(&s);
}

static void test_parse_field_past_64_bits_is_erange(void **state) {
        struct hal_cpu_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(parse("cpu  18446744073709551616 0 0 1\ncpu0 1 0 0 1\n", &s, err, sizeof(err)),
                         -ERANGE);
        assert_string_equal(err, "/proc/stat:1: cpu field 1 (user) does not fit in 64 bits: "
                                 "'18446744073709551616'");
        assert_untouched(&s);
}

static void test_parse_non_numeric_field_names_line_field_and_value(void **state) {
        struct hal_cpu_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(parse("cpu  1 2 3 4\ncpu0 1 2 x3 4\n", &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/stat:2: cpu0 field 3 (system) is not a decimal number: 'x3'");
        assert_untouched(&s);
}

static void test_parse_control_bytes_are_masked_in_message(void **state) {
        static const char text[] = "cpu  1 2 3 4\ncpu0 1 2 3 \0334\x01\n";
        struct hal_cpu_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(hal_cpu_parse(text, sizeof(text) - 1, &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/stat:2: cpu0 field 4 (idle) is not a decimal number: '?4?'");
}

static void test_parse_embedded_nul_is_malformed(void **state) {
        static const char text[] = "cpu  1 2 3 4\ncpu0 1 2 3 4\0\n";
        struct hal_cpu_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(hal_cpu_parse(text, sizeof(text) - 1, &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/stat:2: cpu0 field 4 (idle) is not a decimal number: '4?'");
}

static void test_parse_second_aggregate_line_is_rejected(void **state) {
        struct hal_cpu_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(parse("cpu  1 2 3 4\ncpu0 1 2 3 4\ncpu  1 2 3 4\n", &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/stat:3: second aggregate cpu line (first on line 1)");
}

static void test_parse_missing_aggregate_line_is_error(void **state) {
        struct hal_cpu_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(parse("cpu0 1 2 3 4\nctxt 5\n", &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/stat: aggregate cpu line missing");
        assert_untouched(&s);
}

static void test_parse_garbled_cpu_label_is_rejected(void **state) {
        struct hal_cpu_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(parse("cpu  1 2 3 4\ncpu0 1 2 3 4\ncpu1x 1 2 3 4\n", &s, err, sizeof(err)),
                         -EPROTO);
        assert_string_equal(err, "/proc/stat:3: unexpected line label 'cpu1x', expected cpu or cpuN");
}

static void test_parse_short_per_cpu_line_is_not_counted_as_core(void **state) {
        struct hal_cpu_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(parse("cpu  1 2 3 4\ncpu0 1 2 3 4\ncpu1 1 2\n", &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/stat:3: cpu1 line has 2 fields, expected at least 4");
}

static void test_parse_empty_line_is_rejected(void **state) {
        struct hal_cpu_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(parse("cpu  1 2 3 4\n\ncpu0 1 2 3 4\n", &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/stat:2: empty line");
}

static void test_parse_error_with_tiny_or_null_err_buffer_is_safe(void **state) {
        struct hal_cpu_sample s = sentinel;
        char err[8];

        (void)state;
        assert_int_equal(parse("cpu  1 2\n", &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/s");
        assert_int_equal(parse("cpu  1 2\n", &s, NULL, 0), -EPROTO);
        assert_untouched(&s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_read_x86_host_sums_eight_fields_and_counts_cores),
                cmocka_unit_test(test_read_gpu_host_counts_sixteen_cores),
                cmocka_unit_test(test_read_arm_host_counts_eight_cores),
                cmocka_unit_test(test_read_truncated_stat_names_file_and_line),
                cmocka_unit_test(test_read_short_cpu_line_names_field_count),
                cmocka_unit_test(test_read_stat_without_cpuN_lines_is_error_not_zero_cores),
                cmocka_unit_test(test_read_empty_stat_names_file),
                cmocka_unit_test(test_read_missing_stat_returns_enoent_with_path),
                cmocka_unit_test_setup_teardown(
                        test_reader_keeps_stat_open_reads_fresh_and_reopens_after_failure, tu_scratch_setup,
                        tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_reader_reads_a_stat_larger_than_its_first_buffer,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test(test_parse_stops_at_len_of_unterminated_buffer),
                cmocka_unit_test(test_parse_linux_2_4_four_fields_sums_what_is_present),
                cmocka_unit_test(test_parse_linux_2_6_0_seven_fields_counts_iowait_as_idle),
                cmocka_unit_test(test_parse_guest_time_is_not_counted_twice),
                cmocka_unit_test(test_parse_sum_overflow_is_erange),
                cmocka_unit_test(test_parse_field_past_64_bits_is_erange),
                cmocka_unit_test(test_parse_non_numeric_field_names_line_field_and_value),
                cmocka_unit_test(test_parse_control_bytes_are_masked_in_message),
                cmocka_unit_test(test_parse_embedded_nul_is_malformed),
                cmocka_unit_test(test_parse_second_aggregate_line_is_rejected),
                cmocka_unit_test(test_parse_missing_aggregate_line_is_error),
                cmocka_unit_test(test_parse_garbled_cpu_label_is_rejected),
                cmocka_unit_test(test_parse_short_per_cpu_line_is_not_counted_as_core),
                cmocka_unit_test(test_parse_empty_line_is_rejected),
                cmocka_unit_test(test_parse_error_with_tiny_or_null_err_buffer_is_safe),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
