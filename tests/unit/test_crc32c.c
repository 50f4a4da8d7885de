/* test_crc32c.c: CRC-32C: the published check values, chaining, and the slicing path against a bitwise one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "crc32c.h"

#include <string.h>

/* The check value of the CRC catalogue and RFC 3720 (iSCSI) appendix B.4's 32-byte vectors. */
static void test_matches_published_vectors(void **state) {
        uint8_t buf[32];

        (void)state;
        assert_int_equal(plat_crc32c(0, "123456789", 9), 0xe3069283);
        assert_int_equal(plat_crc32c(0, "", 0), 0);
        memset(buf, 0, sizeof(buf));
        assert_int_equal(plat_crc32c(0, buf, sizeof(buf)), 0x8a9136aa);
        memset(buf, 0xff, sizeof(buf));
        assert_int_equal(plat_crc32c(0, buf, sizeof(buf)), 0x62a8ab43);
        for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (uint8_t)i;
        assert_int_equal(plat_crc32c(0, buf, sizeof(buf)), 0x46dd794e);
}

static void test_chained_calls_equal_one_call(void **state) {
        (void)state;
        assert_int_equal(plat_crc32c(plat_crc32c(0, "1234", 4), "56789", 5), 0xe3069283);
        assert_int_equal(plat_crc32c(plat_crc32c(0, "", 0), "123456789", 9), 0xe3069283);
}

/* One bit at a time, straight from the polynomial: what the tables must agree with. */
static uint32_t bitwise(const uint8_t *p, size_t len) {
        uint32_t c = ~UINT32_C(0);

        while (len--) {
                c ^= *p++;
                for (int k = 0; k < 8; k++)
                        c = c & 1 ? (c >> 1) ^ UINT32_C(0x82f63b78) : c >> 1;
        }
        return ~c;
}

/* Every start alignment and every tail length of the 8-byte loop. */
static void test_any_offset_and_length_matches_bitwise(void **state) {
        uint8_t buf[80];
        uint32_t x = 2463534242u;

        (void)state;
        for (size_t i = 0; i < sizeof(buf); i++) {
                x ^= x << 13, x ^= x >> 17, x ^= x << 5;
                buf[i] = (uint8_t)x;
        }
        for (size_t off = 0; off < 8; off++)
                for (size_t len = 0; off + len <= sizeof(buf); len++)
                        assert_int_equal(plat_crc32c(0, buf + off, len), bitwise(buf + off, len));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_matches_published_vectors),
                cmocka_unit_test(test_chained_calls_equal_one_call),
                cmocka_unit_test(test_any_offset_and_length_matches_bitwise),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
