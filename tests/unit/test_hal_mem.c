/* test_hal_mem.c: /proc/meminfo parsing, on fixture hosts and on hand-made buffers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cleanup.h"
#include "mem.h"
#include "testutil.h"

#include <errno.h>
#include <string.h>

/* Parses s from a heap copy of exactly strlen(s) bytes, no NUL: ASan catches any overread. */
static int parse(const char *s, struct hal_mem_sample *ret, char *err, size_t errlen) {
        size_t len = strlen(s);
        _cleanup_free_ char *copy = tu_copy_unterminated(s, len);

        return hal_mem_parse(copy, len, ret, err, errlen);
}

static const struct hal_mem_sample sentinel = { .total_bytes = 0xdead, .available_bytes = 0xbeef };

static void assert_untouched(const struct hal_mem_sample *s) {
        assert_memory_equal(s, &sentinel, sizeof(*s));
}

static void test_read_x86_host_converts_kb_to_bytes(void **state) {
        _cleanup_close_ int root = tu_open_host("x86-cpu");
        struct hal_mem_sample s = sentinel;
        char err[256] = "";

        (void)state;
        assert_int_equal(hal_mem_read(root, &s, err, sizeof(err)), 0);
        assert_int_equal(s.total_bytes, UINT64_C(65759140) * 1024);
        assert_int_equal(s.available_bytes, UINT64_C(58212344) * 1024);
        assert_string_equal(err, "");
}

static void test_read_arm_host_converts_kb_to_bytes(void **state) {
        _cleanup_close_ int root = tu_open_host("arm");
        struct hal_mem_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(hal_mem_read(root, &s, err, sizeof(err)), 0);
        assert_int_equal(s.total_bytes, UINT64_C(32803944) * 1024);
        assert_int_equal(s.available_bytes, UINT64_C(29104512) * 1024);
}

static void test_read_meminfo_without_available_names_field(void **state) {
        _cleanup_close_ int root = tu_open_host("corrupt/meminfo-no-available");
        struct hal_mem_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(hal_mem_read(root, &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/meminfo: MemAvailable missing");
        assert_untouched(&s);
}

static void test_read_empty_meminfo_names_file(void **state) {
        _cleanup_close_ int root = tu_open_host("corrupt/empty");
        struct hal_mem_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(hal_mem_read(root, &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/meminfo: file is empty");
        assert_untouched(&s);
}

static void test_read_missing_meminfo_returns_enoent_with_path(void **state) {
        _cleanup_close_ int root = tu_open_host("corrupt/arch-empty");
        struct hal_mem_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(hal_mem_read(root, &s, err, sizeof(err)), -ENOENT);
        assert_non_null(strstr(err, "/proc/meminfo: "));
        assert_untouched(&s);
}

static void test_reader_keeps_meminfo_open_reads_fresh_and_reopens_after_failure(void **state) {
        struct tu_scratch *sc = *state;
        struct hal_mem_reader *r = NULL;
        struct hal_mem_sample s = sentinel;
        char err[256];

        assert_int_equal(hal_mem_reader_new(sc->fd, &r), 0);
        assert_int_equal(hal_mem_reader_read(r, &s, err, sizeof(err)), -ENOENT);
        assert_string_equal(err, "/proc/meminfo: No such file or directory");
        assert_untouched(&s);
        tu_put(sc->fd, "proc/meminfo", "MemTotal: 100 kB\nMemAvailable: 40 kB\n");
        assert_int_equal(hal_mem_reader_read(r, &s, err, sizeof(err)), 0);
        assert_int_equal(s.available_bytes, 40 * 1024);
        tu_put(sc->fd, "proc/meminfo", "MemTotal: 100 kB\nMemFree: 1 kB\nMemAvailable: 30 kB\n");
        assert_int_equal(hal_mem_reader_read(r, &s, err, sizeof(err)), 0);
        assert_int_equal(s.available_bytes, 30 * 1024);
        tu_put(sc->fd, "proc/meminfo", "MemTotal: 100 kB\n");
        assert_int_equal(hal_mem_reader_read(r, &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/meminfo: MemAvailable missing");
        hal_mem_reader_free(r);
        hal_mem_reader_free(NULL);
}

static void test_parse_stops_at_len_of_unterminated_buffer(void **state) {
        static const char text[] = "MemTotal: 4 kB\nMemAvailable: 2 kB\nMemTotal: 9 kB\n";
        size_t len = strlen("MemTotal: 4 kB\nMemAvailable: 2 kB\n");
        /* no NUL; the duplicate after len must not be seen */
        _cleanup_free_ char *buf = tu_copy_unterminated(text, len);
        struct hal_mem_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(hal_mem_parse(buf, len, &s, err, sizeof(err)), 0);
        assert_int_equal(s.total_bytes, 4096);
        assert_int_equal(s.available_bytes, 2048);
}

static void test_parse_ignores_other_keys_and_lines_without_colon(void **state) {
        struct hal_mem_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(parse("MemTotalish:  garbage\n"
                               "HugePages_Total:       0\n"
                               "no colon here\n"
                               "MemTotal:       16 kB\n"
                               "MemAvailable:\t8 kB\n",
                               &s, err, sizeof(err)),
                         0);
        assert_int_equal(s.total_bytes, 16384);
        assert_int_equal(s.available_bytes, 8192);
}

static void test_parse_duplicate_key_names_both_lines(void **state) {
        struct hal_mem_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(parse("MemTotal: 1 kB\nMemAvailable: 1 kB\nMemTotal: 2 kB\n", &s, err, sizeof(err)),
                         -EPROTO);
        assert_string_equal(err, "/proc/meminfo:3: duplicate MemTotal (first on line 1)");
        assert_untouched(&s);
}

static void test_parse_largest_kb_that_fits_in_bytes(void **state) {
        struct hal_mem_sample s = sentinel;
        char err[256];

        (void)state;
        /* 2^54 - 1 kB is the last value whose byte count fits in 64 bits. */
        assert_int_equal(parse("MemTotal: 18014398509481983 kB\nMemAvailable: 0 kB\n", &s, err, sizeof(err)),
                         0);
        assert_int_equal(s.total_bytes, UINT64_C(18446744073709550592));
        assert_int_equal(s.available_bytes, 0);
}

static void test_parse_kb_to_bytes_overflow_is_erange(void **state) {
        struct hal_mem_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(parse("MemTotal: 18014398509481984 kB\nMemAvailable: 0 kB\n", &s, err, sizeof(err)),
                         -ERANGE);
        assert_string_equal(err, "/proc/meminfo:1: MemTotal of 18014398509481984 kB does not fit in 64 bits "
                                 "as bytes");
        assert_untouched(&s);
}

static void test_parse_value_past_64_bits_is_erange(void **state) {
        struct hal_mem_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(
                parse("MemTotal: 1 kB\nMemAvailable: 99999999999999999999 kB\n", &s, err, sizeof(err)),
                -ERANGE);
        assert_string_equal(err,
                            "/proc/meminfo:2: MemAvailable value '99999999999999999999' does not fit in "
                            "64 bits");
}

static void test_parse_non_numeric_value_is_error_not_zero(void **state) {
        struct hal_mem_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(parse("MemTotal: -1 kB\nMemAvailable: 1 kB\n", &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/meminfo:1: MemTotal value '-1' is not a decimal number");
        assert_untouched(&s);
}

static void test_parse_missing_value_is_error(void **state) {
        struct hal_mem_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(parse("MemTotal:   \nMemAvailable: 1 kB\n", &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/meminfo:1: MemTotal has no value");
}

static void test_parse_missing_or_wrong_unit_is_error(void **state) {
        struct hal_mem_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(parse("MemTotal: 1\nMemAvailable: 1 kB\n", &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/meminfo:1: MemTotal has no unit, expected kB");
        assert_int_equal(parse("MemTotal: 1 kB\nMemAvailable: 1 MB\n", &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/meminfo:2: MemAvailable has unit 'MB', expected kB");
        assert_untouched(&s);
}

static void test_parse_trailing_data_after_unit_is_error(void **state) {
        struct hal_mem_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(parse("MemTotal: 1 kB 2\nMemAvailable: 1 kB\n", &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/meminfo:1: MemTotal has trailing '2' after kB");
}

static void test_parse_missing_total_names_field(void **state) {
        struct hal_mem_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(parse("MemFree: 1 kB\nMemAvailable: 1 kB\n", &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/meminfo: MemTotal missing");
}

static void test_parse_cut_last_line_names_line(void **state) {
        struct hal_mem_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(parse("MemTotal: 1 kB\nMemAvailable: 1 kB\nBuffers: 12", &s, err, sizeof(err)),
                         -EPROTO);
        assert_string_equal(err, "/proc/meminfo:3: line is cut short (no newline at end of file)");
        assert_untouched(&s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_read_x86_host_converts_kb_to_bytes),
                cmocka_unit_test(test_read_arm_host_converts_kb_to_bytes),
                cmocka_unit_test(test_read_meminfo_without_available_names_field),
                cmocka_unit_test(test_read_empty_meminfo_names_file),
                cmocka_unit_test(test_read_missing_meminfo_returns_enoent_with_path),
                cmocka_unit_test_setup_teardown(
                        test_reader_keeps_meminfo_open_reads_fresh_and_reopens_after_failure,
                        tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test(test_parse_stops_at_len_of_unterminated_buffer),
                cmocka_unit_test(test_parse_ignores_other_keys_and_lines_without_colon),
                cmocka_unit_test(test_parse_duplicate_key_names_both_lines),
                cmocka_unit_test(test_parse_largest_kb_that_fits_in_bytes),
                cmocka_unit_test(test_parse_kb_to_bytes_overflow_is_erange),
                cmocka_unit_test(test_parse_value_past_64_bits_is_erange),
                cmocka_unit_test(test_parse_non_numeric_value_is_error_not_zero),
                cmocka_unit_test(test_parse_missing_value_is_error),
                cmocka_unit_test(test_parse_missing_or_wrong_unit_is_error),
                cmocka_unit_test(test_parse_trailing_data_after_unit_is_error),
                cmocka_unit_test(test_parse_missing_total_names_field),
                cmocka_unit_test(test_parse_cut_last_line_names_line),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
