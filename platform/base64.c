/* base64.c: base64url without padding (RFC 4648 section 5), as JOSE uses it; strict decoding. */
#include "base64.h"

#include <errno.h>

static const char alphabet[64] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int plat_b64url_encode(const void *in, size_t len, char *out, size_t out_size, size_t *ret_len) {
        const uint8_t *p = in;
        size_t need = PLAT_B64URL_LEN(len), o = 0, i = 0;

        if (out_size < need + 1)
                return -ENOBUFS;
        for (; i + 3 <= len; i += 3) {
                uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

                out[o++] = alphabet[v >> 18];
                out[o++] = alphabet[(v >> 12) & 63];
                out[o++] = alphabet[(v >> 6) & 63];
                out[o++] = alphabet[v & 63];
        }
        if (len - i == 1) {
                out[o++] = alphabet[p[i] >> 2];
                out[o++] = alphabet[(p[i] & 3) << 4];
        } else if (len - i == 2) {
                uint32_t v = (uint32_t)p[i] << 8 | p[i + 1];

                out[o++] = alphabet[v >> 10];
                out[o++] = alphabet[(v >> 4) & 63];
                out[o++] = alphabet[(v & 15) << 2];
        }
        out[o] = '\0';
        if (ret_len)
                *ret_len = o;
        return 0;
}

/* 0..63, or -1 for anything else (padding and whitespace included). */
static int value_of(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '-')
                return 62;
        if (c == '_')
                return 63;
        return -1;
}

int plat_b64url_decode(const char *in, size_t len, uint8_t *out, size_t out_size, size_t *ret_len) {
        size_t n = PLAT_B64URL_DECODED_MAX(len), o = 0;
        uint32_t acc = 0;
        unsigned bits = 0;

        if (len % 4 == 1)
                return -EPROTO;
        /* Validate everything before writing anything, so a failure leaves out untouched. */
        for (size_t i = 0; i < len; i++)
                if (value_of(in[i]) < 0)
                        return -EPROTO;
        /* The bits below the last whole byte must be zero: "QQ" is "A", "QR" is not. */
        if (len % 4 == 2 && (value_of(in[len - 1]) & 15))
                return -EPROTO;
        if (len % 4 == 3 && (value_of(in[len - 1]) & 3))
                return -EPROTO;
        if (n > out_size)
                return -ENOBUFS;
        for (size_t i = 0; i < len; i++) {
                acc = acc << 6 | (uint32_t)value_of(in[i]);
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[o++] = (uint8_t)(acc >> bits);
                        acc &= (1u << bits) - 1;
                }
        }
        *ret_len = o;
        return 0;
}
