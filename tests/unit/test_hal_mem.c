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
#include <unistd.h>

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

/* One read through a fresh reader, as the sampler's first tick does. */
static int read_once(int root, struct hal_mem_sample *ret, char *err, size_t errlen) {
        struct hal_mem_reader *r = NULL;
        int k;

        assert_int_equal(hal_mem_reader_new(root, &r), 0);
        k = hal_mem_reader_read(r, ret, err, errlen);
        hal_mem_reader_free(r);
        return k;
}

static void test_read_x86_host_converts_kb_to_bytes(void **state) {
        _cleanup_close_ int root = tu_open_host("x86-cpu");
        struct hal_mem_sample s = sentinel;
        char err[256] = "";

        (void)state;
        assert_int_equal(read_once(root, &s, err, sizeof(err)), 0);
        assert_int_equal(s.total_bytes, UINT64_C(65759140) * 1024);
        assert_int_equal(s.available_bytes, UINT64_C(58212344) * 1024);
        assert_string_equal(err, "");
}

static void test_read_arm_host_converts_kb_to_bytes(void **state) {
        _cleanup_close_ int root = tu_open_host("arm");
        struct hal_mem_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(read_once(root, &s, err, sizeof(err)), 0);
        assert_int_equal(s.total_bytes, UINT64_C(32803944) * 1024);
        assert_int_equal(s.available_bytes, UINT64_C(29104512) * 1024);
}

/* A truncated file: no MemAvailable, and no SReclaimable to estimate it with. */
static void test_read_meminfo_without_available_or_estimate_names_field(void **state) {
        _cleanup_close_ int root = tu_open_host("corrupt/meminfo-no-available");
        struct hal_mem_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(read_once(root, &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/meminfo: MemAvailable missing, and SReclaimable to estimate it");
        assert_untouched(&s);
}

/* Linux 3.10 (CentOS 7 style) has no MemAvailable: MemTotal as given, and available estimated as the
 * kernel's own commit does, less the three zones' low watermarks (41 + 8673 + 34582 pages). */
static void test_read_pre_3_14_host_estimates_available_less_low_watermarks(void **state) {
        _cleanup_close_ int root = tu_open_host("x86-cpu-linux-3.10");
        struct hal_mem_sample s = sentinel;
        uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
        char err[256] = "";

        (void)state;
        assert_int_equal(read_once(root, &s, err, sizeof(err)), 0);
        assert_int_equal(s.total_bytes, UINT64_C(16267484) * 1024);
        assert_true(s.available_estimated);
        assert_int_equal(s.available_bytes,
                         (UINT64_C(9538320) + 2559780 + 2012316 + 331092) * 1024 - UINT64_C(43296) * page);
        assert_string_equal(err, "");
}

static void test_estimate_without_zoneinfo_keeps_the_sum(void **state) {
        struct tu_scratch *sc = *state;
        struct hal_mem_sample s = sentinel;
        char err[256];

        tu_put(sc->fd, "proc/meminfo",
               "MemTotal: 100 kB\nMemFree: 10 kB\nActive(file): 20 kB\nInactive(file): 5 kB\nSReclaimable: "
               "3 kB\n");
        assert_int_equal(read_once(sc->fd, &s, err, sizeof(err)), 0);
        assert_int_equal(s.available_bytes, 38 * 1024);
        assert_true(s.available_estimated);
        /* Watermarks past the estimate leave nothing available, never a wrapped huge number. */
        tu_put(sc->fd, "proc/zoneinfo", "Node 0, zone Normal\n  pages free 1\n        low      100000\n");
        assert_int_equal(read_once(sc->fd, &s, err, sizeof(err)), 0);
        assert_int_equal(s.available_bytes, 0);
}

static void test_parse_available_given_is_not_estimated(void **state) {
        struct hal_mem_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(parse("MemTotal: 9 kB\nMemFree: 1 kB\nMemAvailable: 4 kB\n", &s, err, sizeof(err)),
                         0);
        assert_int_equal(s.available_bytes, 4 * 1024);
        assert_false(s.available_estimated);
}

static void test_zoneinfo_low_sums_every_zone_and_names_a_bad_line(void **state) {
        static const char good[] = "Node 0, zone DMA\n        min 1\n        low 2\n        high 3\n"
                                   "Node 0, zone Normal\n        low 40\n    nr_zone_low 7\n";
        uint64_t pages = 99;
        char err[256];

        (void)state;
        assert_int_equal(hal_mem_zoneinfo_low_pages(good, strlen(good), &pages, err, sizeof(err)), 0);
        assert_int_equal(pages, 42);
        assert_int_equal(hal_mem_zoneinfo_low_pages("Node 0\n  low x1\n", 16, &pages, err, sizeof(err)),
                         -EPROTO);
        assert_string_equal(err, "/proc/zoneinfo:2: 'low' is not followed by one number: 'low x1'");
        assert_int_equal(pages, 42);
}

static void test_read_empty_meminfo_names_file(void **state) {
        _cleanup_close_ int root = tu_open_host("corrupt/empty");
        struct hal_mem_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(read_once(root, &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/meminfo: file is empty");
        assert_untouched(&s);
}

static void test_read_missing_meminfo_returns_enoent_with_path(void **state) {
        _cleanup_close_ int root = tu_open_host("corrupt/arch-empty");
        struct hal_mem_sample s = sentinel;
        char err[256];

        (void)state;
        assert_int_equal(read_once(root, &s, err, sizeof(err)), -ENOENT);
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
        assert_string_equal(err, "/proc/meminfo: MemAvailable missing, and MemFree to estimate it");
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
                cmocka_unit_test(test_read_meminfo_without_available_or_estimate_names_field),
                cmocka_unit_test(test_read_pre_3_14_host_estimates_available_less_low_watermarks),
                cmocka_unit_test_setup_teardown(test_estimate_without_zoneinfo_keeps_the_sum,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test(test_parse_available_given_is_not_estimated),
                cmocka_unit_test(test_zoneinfo_low_sums_every_zone_and_names_a_bad_line),
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
