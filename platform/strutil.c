/* strutil.c: small string helpers: bounded formatting, error buffers, strict number parsing. */
#include "strutil.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void plat_errf(char *err, size_t errlen, const char *fmt, ...) {
        va_list ap;

        if (!err || errlen == 0)
                return;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
}

int plat_parse_u64(const char *s, size_t len, uint64_t *ret) {
        uint64_t v = 0;

        if (len == 0)
                return -EPROTO;
        for (size_t i = 0; i < len; i++) {
                unsigned d;

                if (s[i] < '0' || s[i] > '9')
                        return -EPROTO;
                d = (unsigned)(s[i] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        *ret = v;
        return 0;
}

int plat_parse_hex_u32(const char *s, size_t len, uint32_t *ret) {
        uint32_t v = 0;

        if (len < 3 || len > 10 || s[0] != '0' || s[1] != 'x')
                return -EPROTO;
        for (size_t i = 2; i < len; i++) {
                char c = s[i];
                unsigned d;

                if (c >= '0' && c <= '9')
                        d = (unsigned)(c - '0');
                else if (c >= 'a' && c <= 'f')
                        d = (unsigned)(c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        d = (unsigned)(c - 'A' + 10);
                else
                        return -EPROTO;
                v = v << 4 | d;
        }
        *ret = v;
        return 0;
}

size_t plat_strlcpy(char *dst, const char *src, size_t size) {
        size_t n = strlen(src);

        if (size > 0) {
                size_t c = n < size - 1 ? n : size - 1;
                memcpy(dst, src, c);
                dst[c] = '\0';
        }
        return n;
}

bool plat_utf8_text(const char *s, size_t len) {
        const unsigned char *p = (const unsigned char *)s, *end = p + len;

        while (p < end) {
                uint32_t c = *p, min;
                size_t n;

                if (c < 0x80) {
                        if (c < 0x20 || c == 0x7f)
                                return false;
                        p++;
                        continue;
                }
                /* The lead byte: how many continuation bytes follow, and the least value that
                 * needs them (less is an overlong form). 0x80..0xc1 and 0xf5.. never lead. */
                if (c >= 0xc2 && c <= 0xdf) {
                        n = 1;
                        c &= 0x1f;
                        min = 0x80;
                } else if (c >= 0xe0 && c <= 0xef) {
                        n = 2;
                        c &= 0x0f;
                        min = 0x800;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        n = 3;
                        c &= 0x07;
                        min = 0x10000;
                } else
                        return false;
                if ((size_t)(end - p) <= n)
                        return false;
                for (size_t k = 1; k <= n; k++) {
                        if ((p[k] & 0xc0) != 0x80)
                                return false;
                        c = (c << 6) | (p[k] & 0x3f);
                }
                if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff) || c <= 0x9f)
                        return false;
                p += n + 1;
        }
        return true;
}

bool plat_streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

const char *plat_quote(const char *s, size_t len, char q[static PLAT_QUOTE_MAX]) {
        size_t n = len < PLAT_QUOTE_MAX - 1 ? len : PLAT_QUOTE_MAX - 1;

        for (size_t i = 0; i < n; i++)
                q[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
        q[n] = '\0';
        return q;
}

bool plat_next_token(const char **p, const char *end, const char **ret_tok, size_t *ret_len) {
        const char *s = *p, *t;

        while (s < end && (*s == ' ' || *s == '\t'))
                s++;
        if (s == end) {
                *p = s;
                return false;
        }
        for (t = s; t < end && *t != ' ' && *t != '\t'; t++)
                ;
        *p = t;
        *ret_tok = s;
        *ret_len = (size_t)(t - s);
        return true;
}
