/* test_base64.c: base64url without padding: RFC 4648 vectors, the URL alphabet, strict decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base64.h"
#include "testutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* RFC 4648 section 10, with the padding base64url leaves out. */
static const struct {
        const char *plain, *enc;
} vectors[] = {
        { "", "" },           { "f", "Zg" },          { "fo", "Zm8" },          { "foo", "Zm9v" },
        { "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" },
};

static void test_encode_matches_rfc4648_vectors(void **state) {
        char out[16];
        size_t n = 99;

        (void)state;
        for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
                assert_int_equal(
                        plat_b64url_encode(vectors[i].plain, strlen(vectors[i].plain), out, sizeof(out), &n),
                        0);
                assert_string_equal(out, vectors[i].enc);
                assert_int_equal(n, strlen(vectors[i].enc));
                assert_int_equal(PLAT_B64URL_LEN(strlen(vectors[i].plain)), n);
        }
}

static void test_decode_matches_rfc4648_vectors(void **state) {
        uint8_t out[16];
        size_t n = 99;

        (void)state;
        for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
                const char *enc = vectors[i].enc;
                /* An unterminated copy: the decoder reads len characters and not one more. */
                char *copy = tu_copy_unterminated(enc, strlen(enc));

                assert_int_equal(plat_b64url_decode(copy, strlen(enc), out, sizeof(out), &n), 0);
                assert_int_equal(n, strlen(vectors[i].plain));
                assert_memory_equal(out, vectors[i].plain, n);
                assert_true(PLAT_B64URL_DECODED_MAX(strlen(enc)) == n);
                free(copy);
        }
}

static void test_uses_the_url_alphabet_both_ways(void **state) {
        static const uint8_t bytes[] = { 0xfb, 0xff, 0xbf };
        uint8_t back[3];
        char out[8];
        size_t n;

        (void)state;
        assert_int_equal(plat_b64url_encode(bytes, 3, out, sizeof(out), NULL), 0);
        assert_string_equal(out, "-_-_");
        assert_int_equal(plat_b64url_encode(bytes, 2, out, sizeof(out), NULL), 0);
        assert_string_equal(out, "-_8");
        assert_int_equal(plat_b64url_decode("-_-_", 4, back, sizeof(back), &n), 0);
        assert_int_equal(n, 3);
        assert_memory_equal(back, bytes, 3);
        /* Standard base64's + and / are not base64url. */
        assert_int_equal(plat_b64url_decode("+/+/", 4, back, sizeof(back), &n), -EPROTO);
}

static void test_decode_rejects_padding_whitespace_and_strangers(void **state) {
        static const char *const bad[] = {
                "Zg==",     "Zg=",  "Zm9v\n",  " Zm9v", "Zm 9v", "Zm9v\t",
                "Zm9v\r\n", "Zm9.", "Zm9\x80", "Z",     "Zm9vY", /* 4k+1 characters: no byte string encodes
                                                                    so */
                "Zh",       "Zm9", /* leftover bits set: "Zg" and "Zm8" are the one spelling */
        };
        uint8_t out[16];
        size_t n = 77;

        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                memset(out, 0xaa, sizeof(out));
                assert_int_equal(plat_b64url_decode(bad[i], strlen(bad[i]), out, sizeof(out), &n), -EPROTO);
                assert_int_equal(n, 77);
                assert_int_equal(out[0], 0xaa);
        }
        /* A NUL inside the span is a stranger too, not the end. */
        assert_int_equal(plat_b64url_decode("Zm\0v", 4, out, sizeof(out), &n), -EPROTO);
}

static void test_short_buffers_are_refused_untouched(void **state) {
        uint8_t out[6];
        char enc[9];
        size_t n = 5;

        (void)state;
        memset(enc, 'x', sizeof(enc));
        assert_int_equal(plat_b64url_encode("foobar", 6, enc, 8, &n), -ENOBUFS); /* 8 + NUL needed */
        assert_int_equal(enc[0], 'x');
        assert_int_equal(plat_b64url_encode("foobar", 6, enc, 9, &n), 0);
        assert_int_equal(plat_b64url_decode("Zm9vYmFy", 8, out, 5, &n), -ENOBUFS);
        assert_int_equal(plat_b64url_decode("Zm9vYmFy", 8, out, 6, &n), 0);
        assert_int_equal(n, 6);
}

static void test_every_byte_value_round_trips(void **state) {
        uint8_t in[256], back[256];
        char enc[PLAT_B64URL_LEN(256) + 1];
        size_t n, m;

        (void)state;
        for (int i = 0; i < 256; i++)
                in[i] = (uint8_t)(255 - i);
        for (size_t len = 0; len <= sizeof(in); len += 37) {
                assert_int_equal(plat_b64url_encode(in, len, enc, sizeof(enc), &n), 0);
                assert_int_equal(plat_b64url_decode(enc, n, back, sizeof(back), &m), 0);
                assert_int_equal(m, len);
                assert_memory_equal(back, in, len);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_encode_matches_rfc4648_vectors),
                cmocka_unit_test(test_decode_matches_rfc4648_vectors),
                cmocka_unit_test(test_uses_the_url_alphabet_both_ways),
                cmocka_unit_test(test_decode_rejects_padding_whitespace_and_strangers),
                cmocka_unit_test(test_short_buffers_are_refused_untouched),
                cmocka_unit_test(test_every_byte_value_round_trips),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
