/* test_hal_net.c: /proc/net/dev parsing, lookup and release, on fixture hosts and hand-made buffers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cleanup.h"
#include "net.h"
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEADER                                                                                          \
        "Inter-|   Receive                                                |  Transmit\n"                \
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop " \
        "fifo "                                                                                         \
        "colls carrier compressed\n"
#define ZEROS7 " 0 0 0 0 0 0 0"

/* Parses s from a heap copy of exactly strlen(s) bytes, no NUL: ASan catches any overread. */
static int parse(const char *s, struct hal_net_sample *ret, char *err, size_t errlen) {
        size_t len = strlen(s);
        _cleanup_free_ char *copy = tu_copy_unterminated(s, len);

        return hal_net_parse(copy, len, ret, err, errlen);
}

/* Failures must leave *ret alone: a pointer that is never allocated marks it. */
static char sentinel_mark;
#define SENTINEL ((struct hal_net_sample){ .n = 99, .ifaces = (struct hal_net_iface *)&sentinel_mark })

static void assert_untouched(const struct hal_net_sample *s) {
        assert_int_equal(s->n, 99);
        assert_ptr_equal(s->ifaces, &sentinel_mark);
}

static void assert_iface(const struct hal_net_iface *i, const char *name, uint64_t rx, uint64_t tx) {
        assert_non_null(i);
        assert_string_equal(i->name, name);
        assert_int_equal(i->rx_bytes, rx);
        assert_int_equal(i->tx_bytes, tx);
}

/* One read through a fresh reader, as the sampler's first tick does. */
static int read_once(int root, struct hal_net_sample *ret, char *err, size_t errlen) {
        struct hal_net_reader *r = NULL;
        int k;

        assert_int_equal(hal_net_reader_new(root, &r), 0);
        k = hal_net_reader_read(r, ret, err, errlen);
        hal_net_reader_free(r);
        return k;
}

static void test_read_x86_host_lists_interfaces_in_file_order(void **state) {
        _cleanup_close_ int root = tu_open_host("x86-cpu");
        struct hal_net_sample s = SENTINEL;
        char err[256] = "";

        (void)state;
        assert_int_equal(read_once(root, &s, err, sizeof(err)), 0);
        assert_int_equal(s.n, 4);
        assert_iface(&s.ifaces[0], "lo", UINT64_C(48213377), UINT64_C(48213377));
        assert_iface(&s.ifaces[1], "eth0", UINT64_C(9876543210), UINT64_C(1234567890));
        assert_iface(&s.ifaces[2], "veth-s0", UINT64_C(734003200), UINT64_C(5368709120));
        assert_iface(&s.ifaces[3], "veth-s1", UINT64_C(12345678), UINT64_C(87654321));
        assert_string_equal(err, "");
        hal_net_sample_done(&s);
}

static void test_read_arm_host_reads_long_pci_name(void **state) {
        _cleanup_close_ int root = tu_open_host("arm");
        struct hal_net_sample s = SENTINEL;
        char err[256];

        (void)state;
        assert_int_equal(read_once(root, &s, err, sizeof(err)), 0);
        assert_int_equal(s.n, 2);
        assert_iface(hal_net_find(&s, "enP2p1s0"), "enP2p1s0", UINT64_C(5432109876), UINT64_C(876543210));
        hal_net_sample_done(&s);
}

static void test_find_returns_borrowed_entry_or_null(void **state) {
        _cleanup_close_ int root = tu_open_host("x86-gpu-nvidia");
        struct hal_net_sample s = SENTINEL;
        char err[256];

        (void)state;
        assert_int_equal(read_once(root, &s, err, sizeof(err)), 0);
        assert_ptr_equal(hal_net_find(&s, "veth-s1"), &s.ifaces[3]);
        assert_iface(hal_net_find(&s, "veth-s0"), "veth-s0", UINT64_C(2147483648), UINT64_C(107374182400));
        assert_null(hal_net_find(&s, "veth-s2"));
        assert_null(hal_net_find(&s, "veth"));
        assert_null(hal_net_find(&s, NULL));
        assert_null(hal_net_find(NULL, "lo"));
        hal_net_sample_done(&s);
}

static void test_sample_done_frees_zeroes_and_is_idempotent(void **state) {
        _cleanup_close_ int root = tu_open_host("x86-cpu");
        struct hal_net_sample s = SENTINEL;
        char err[256];

        (void)state;
        assert_int_equal(read_once(root, &s, err, sizeof(err)), 0);
        hal_net_sample_done(&s);
        assert_int_equal(s.n, 0);
        assert_null(s.ifaces);
        assert_null(hal_net_find(&s, "lo"));
        hal_net_sample_done(&s);
        hal_net_sample_done(NULL);
}

static void test_read_garbage_counter_names_file_line_and_counter(void **state) {
        _cleanup_close_ int root = tu_open_host("corrupt/netdev-garbage");
        struct hal_net_sample s = SENTINEL;
        char err[256];

        (void)state;
        assert_int_equal(read_once(root, &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/net/dev:4: eth0 counter 9 (tx_bytes) is not a decimal number: "
                                 "'12345x7890'");
        assert_untouched(&s);
}

static void test_read_empty_netdev_names_file(void **state) {
        _cleanup_close_ int root = tu_open_host("corrupt/empty");
        struct hal_net_sample s = SENTINEL;
        char err[256];

        (void)state;
        assert_int_equal(read_once(root, &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/net/dev: file is empty");
        assert_untouched(&s);
}

static void test_read_missing_netdev_returns_enoent_with_path(void **state) {
        _cleanup_close_ int root = tu_open_host("corrupt/arch-empty");
        struct hal_net_sample s = SENTINEL;
        char err[256];

        (void)state;
        assert_int_equal(read_once(root, &s, err, sizeof(err)), -ENOENT);
        assert_non_null(strstr(err, "/proc/net/dev: "));
        assert_untouched(&s);
}

static void test_reader_keeps_netdev_open_and_reads_all_of_a_long_list(void **state) {
        struct tu_scratch *sc = *state;
        struct hal_net_reader *r = NULL;
        struct hal_net_sample s = SENTINEL;
        char err[256], *text = malloc(64 * 1024);
        size_t n = 0;

        assert_non_null(text);
        assert_int_equal(hal_net_reader_new(sc->fd, &r), 0);
        assert_int_equal(hal_net_reader_read(r, &s, err, sizeof(err)), -ENOENT);
        assert_string_equal(err, "/proc/net/dev: No such file or directory");
        assert_untouched(&s);
        /* Three hundred interfaces: several times what the first buffer holds. */
        n += (size_t)snprintf(text + n, 64 * 1024 - n, HEADER);
        for (int i = 0; i < 300; i++)
                n += (size_t)snprintf(text + n, 64 * 1024 - n, "veth%d: %d" ZEROS7 " %d" ZEROS7 "\n", i, i,
                                      2 * i);
        assert_true(n > 3 * 4096);
        tu_put(sc->fd, "proc/net/dev", text);
        assert_int_equal(hal_net_reader_read(r, &s, err, sizeof(err)), 0);
        assert_int_equal(s.n, 300);
        assert_iface(hal_net_find(&s, "veth199"), "veth199", 199, 398);
        hal_net_sample_done(&s);
        tu_put(sc->fd, "proc/net/dev", HEADER "lo: 5" ZEROS7 " 6" ZEROS7 "\n");
        assert_int_equal(hal_net_reader_read(r, &s, err, sizeof(err)), 0);
        assert_int_equal(s.n, 1);
        assert_iface(&s.ifaces[0], "lo", 5, 6);
        hal_net_sample_done(&s);
        hal_net_reader_free(r);
        hal_net_reader_free(NULL);
        free(text);
}

static void test_parse_stops_at_len_of_unterminated_buffer(void **state) {
        static const char text[] = HEADER "  eth0: 7" ZEROS7 " 9" ZEROS7 "\n  eth0: garbage";
        size_t len = strlen(HEADER "  eth0: 7" ZEROS7 " 9" ZEROS7 "\n");
        _cleanup_free_ char *buf = tu_copy_unterminated(text, len);
        struct hal_net_sample s = SENTINEL;
        char err[256];

        (void)state;
        assert_int_equal(hal_net_parse(buf, len, &s, err, sizeof(err)), 0);
        assert_int_equal(s.n, 1);
        assert_iface(&s.ifaces[0], "eth0", 7, 9);
        hal_net_sample_done(&s);
}

static void test_parse_wide_counter_glued_to_colon(void **state) {
        struct hal_net_sample s = SENTINEL;
        char err[256];

        (void)state;
        assert_int_equal(parse(HEADER "  eth0:123456789012" ZEROS7 " 5" ZEROS7 "\n", &s, err, sizeof(err)),
                         0);
        assert_iface(&s.ifaces[0], "eth0", UINT64_C(123456789012), 5);
        hal_net_sample_done(&s);
}

static void test_parse_fifteen_byte_name_fits_sixteen_does_not(void **state) {
        struct hal_net_sample s = SENTINEL;
        char err[256];

        (void)state;
        assert_int_equal(parse(HEADER "abcdefghijklmno: 1" ZEROS7 " 2" ZEROS7 "\n", &s, err, sizeof(err)),
                         0);
        assert_iface(&s.ifaces[0], "abcdefghijklmno", 1, 2);
        hal_net_sample_done(&s);

        s = SENTINEL;
        assert_int_equal(parse(HEADER "abcdefghijklmnop: 1" ZEROS7 " 2" ZEROS7 "\n", &s, err, sizeof(err)),
                         -EPROTO);
        assert_string_equal(err,
                            "/proc/net/dev:3: interface name 'abcdefghijklmnop' is 16 bytes, at most 15");
        assert_untouched(&s);
}

static void test_parse_empty_name_is_rejected(void **state) {
        struct hal_net_sample s = SENTINEL;
        char err[256];

        (void)state;
        assert_int_equal(parse(HEADER "     : 1" ZEROS7 " 2" ZEROS7 "\n", &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/net/dev:3: empty interface name");
        assert_untouched(&s);
}

static void test_parse_name_with_blank_or_control_byte_is_rejected(void **state) {
        struct hal_net_sample s = SENTINEL;
        char err[256];

        (void)state;
        assert_int_equal(parse(HEADER "  et h0: 1" ZEROS7 " 2" ZEROS7 "\n", &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/net/dev:3: interface name 'et h0' holds byte 0x20");
        assert_int_equal(parse(HEADER "  eth\x7f: 1" ZEROS7 " 2" ZEROS7 "\n", &s, err, sizeof(err)),
                         -EPROTO);
        assert_string_equal(err, "/proc/net/dev:3: interface name 'eth?' holds byte 0x7f");
        assert_untouched(&s);
}

static void test_parse_line_without_colon_is_rejected(void **state) {
        struct hal_net_sample s = SENTINEL;
        char err[256];

        (void)state;
        assert_int_equal(parse(HEADER "  eth0 1" ZEROS7 " 2" ZEROS7 "\n", &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err,
                            "/proc/net/dev:3: no ':' after the interface name in 'eth0 1 0 0 0 0 0 0 0 2 0 "
                            "0 0 0 '");
        assert_untouched(&s);
}

static void test_parse_wrong_counter_count_is_rejected(void **state) {
        struct hal_net_sample s = SENTINEL;
        char err[256];

        (void)state;
        assert_int_equal(parse(HEADER "  eth0: 1" ZEROS7 " 2 0 0 0 0 0 0\n", &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/net/dev:3: eth0 has 15 counters, expected 16");
        assert_int_equal(parse(HEADER "  eth0: 1" ZEROS7 " 2" ZEROS7 " 0\n", &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/net/dev:3: eth0 has more than 16 counters");
        assert_untouched(&s);
}

static void test_parse_counter_past_64_bits_is_erange(void **state) {
        struct hal_net_sample s = SENTINEL;
        char err[256];

        (void)state;
        assert_int_equal(
                parse(HEADER "  eth0: 18446744073709551616" ZEROS7 " 2" ZEROS7 "\n", &s, err, sizeof(err)),
                -ERANGE);
        assert_string_equal(err, "/proc/net/dev:3: eth0 counter 1 (rx_bytes) does not fit in 64 bits: "
                                 "'18446744073709551616'");
        assert_untouched(&s);
}

static void test_parse_duplicate_interface_is_rejected(void **state) {
        struct hal_net_sample s = SENTINEL;
        char err[256];

        (void)state;
        assert_int_equal(parse(HEADER "  eth0: 1" ZEROS7 " 2" ZEROS7 "\n"
                                      "    lo: 1" ZEROS7 " 2" ZEROS7 "\n"
                                      "  eth0: 3" ZEROS7 " 4" ZEROS7 "\n",
                               &s, err, sizeof(err)),
                         -EPROTO);
        assert_string_equal(err, "/proc/net/dev: interface eth0 is listed twice");
        assert_untouched(&s);
}

static void test_parse_header_only_is_error_not_empty_list(void **state) {
        struct hal_net_sample s = SENTINEL;
        char err[256];

        (void)state;
        assert_int_equal(parse(HEADER, &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/net/dev: no interfaces listed, not even lo");
        assert_int_equal(parse("Inter-|   Receive  |  Transmit\n", &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/net/dev: only 1 of 2 header lines");
        assert_untouched(&s);
}

static void test_parse_counter_line_in_place_of_header_is_rejected(void **state) {
        struct hal_net_sample s = SENTINEL;
        char err[256];

        (void)state;
        assert_int_equal(parse("Inter-|   Receive  |  Transmit\n    lo: 1" ZEROS7 " 2" ZEROS7 "\n", &s, err,
                               sizeof(err)),
                         -EPROTO);
        assert_string_equal(
                err, "/proc/net/dev:2: expected a header line, got '    lo: 1 0 0 0 0 0 0 0 2 0 0 0'");
        assert_untouched(&s);
}

static void test_parse_cut_last_line_names_line(void **state) {
        struct hal_net_sample s = SENTINEL;
        char err[256];

        (void)state;
        assert_int_equal(parse(HEADER "    lo: 1" ZEROS7 " 2" ZEROS7 "\n  eth0: 1 0", &s, err, sizeof(err)),
                         -EPROTO);
        assert_string_equal(err, "/proc/net/dev:4: line is cut short (no newline at end of file)");
        assert_untouched(&s);
}

/* HEADER and n numbered interfaces, caller frees. */
static char *make_ifaces(size_t n, size_t *ret_len) {
        size_t cap = sizeof(HEADER) + n * 64, len;
        char *buf = malloc(cap);

        assert_non_null(buf);
        len = (size_t)snprintf(buf, cap, "%s", HEADER);
        for (size_t i = 0; i < n; i++)
                len += (size_t)snprintf(buf + len, cap - len, "if%05zu: %zu" ZEROS7 " 1" ZEROS7 "\n", i, i);
        assert_true(len < cap);
        *ret_len = len;
        return buf;
}

static void test_parse_max_interfaces_fits_one_more_is_rejected(void **state) {
        struct hal_net_sample s = SENTINEL;
        _cleanup_free_ char *full = NULL, *over = NULL;
        size_t len;
        char err[256];

        (void)state;
        full = make_ifaces(HAL_NET_MAX_IFACES, &len);
        assert_int_equal(hal_net_parse(full, len, &s, err, sizeof(err)), 0);
        assert_int_equal(s.n, HAL_NET_MAX_IFACES);
        assert_iface(hal_net_find(&s, "if04095"), "if04095", 4095, 1);
        hal_net_sample_done(&s);

        s = SENTINEL;
        over = make_ifaces(HAL_NET_MAX_IFACES + 1, &len);
        assert_int_equal(hal_net_parse(over, len, &s, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "/proc/net/dev:4099: more than 4096 interfaces");
        assert_untouched(&s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_read_x86_host_lists_interfaces_in_file_order),
                cmocka_unit_test(test_read_arm_host_reads_long_pci_name),
                cmocka_unit_test(test_find_returns_borrowed_entry_or_null),
                cmocka_unit_test(test_sample_done_frees_zeroes_and_is_idempotent),
                cmocka_unit_test(test_read_garbage_counter_names_file_line_and_counter),
                cmocka_unit_test(test_read_empty_netdev_names_file),
                cmocka_unit_test(test_read_missing_netdev_returns_enoent_with_path),
                cmocka_unit_test_setup_teardown(test_reader_keeps_netdev_open_and_reads_all_of_a_long_list,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test(test_parse_stops_at_len_of_unterminated_buffer),
                cmocka_unit_test(test_parse_wide_counter_glued_to_colon),
                cmocka_unit_test(test_parse_fifteen_byte_name_fits_sixteen_does_not),
                cmocka_unit_test(test_parse_empty_name_is_rejected),
                cmocka_unit_test(test_parse_name_with_blank_or_control_byte_is_rejected),
                cmocka_unit_test(test_parse_line_without_colon_is_rejected),
                cmocka_unit_test(test_parse_wrong_counter_count_is_rejected),
                cmocka_unit_test(test_parse_counter_past_64_bits_is_erange),
                cmocka_unit_test(test_parse_duplicate_interface_is_rejected),
                cmocka_unit_test(test_parse_header_only_is_error_not_empty_list),
                cmocka_unit_test(test_parse_counter_line_in_place_of_header_is_rejected),
                cmocka_unit_test(test_parse_cut_last_line_names_line),
                cmocka_unit_test(test_parse_max_interfaces_fits_one_more_is_rejected),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
