/* base64.h: base64url without padding (RFC 4648 section 5), as JOSE uses it; strict decoding. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Characters base64url needs for n bytes, without padding and without a NUL. */
#define PLAT_B64URL_LEN(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))

/* The most bytes that n characters of base64url decode to. */
#define PLAT_B64URL_DECODED_MAX(n) ((n) / 4 * 3 + ((n) % 4 ? (n) % 4 - 1 : 0))

/* Encodes the len bytes at in into out, NUL-terminated: out_size must be at least
 * PLAT_B64URL_LEN(len) + 1, else -ENOBUFS and out is untouched. *ret_len (may be NULL) gets
 * the number of characters, without the NUL. */
int plat_b64url_encode(const void *in, size_t len, char *out, size_t out_size, size_t *ret_len);

/* Decodes the len characters at in (no NUL needed) into out (out_size bytes). Strict, so that
 * one byte string has exactly one accepted spelling: -EPROTO for padding ('='), whitespace,
 * characters outside A-Z a-z 0-9 - _, a length of 4k+1 characters, and bits left over in the
 * last character that are not zero; -ENOBUFS when out is too small (nothing written then).
 * *ret_len gets the number of bytes. */
int plat_b64url_decode(const char *in, size_t len, uint8_t *out, size_t out_size, size_t *ret_len);
