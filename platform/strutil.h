/* strutil.h: small string helpers: bounded formatting, error buffers, strict number parsing. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Writes a formatted message into a caller-supplied error buffer (may be NULL). */
void plat_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Strict unsigned decimal parse of [s, s+len): digits only, no sign, no overflow. */
int plat_parse_u64(const char *s, size_t len, uint64_t *ret);

/* Strict "0x" + 1..8 hex digits parse of [s, s+len) (sysfs PCI ids: "0x10de", "0x030000"). */
int plat_parse_hex_u32(const char *s, size_t len, uint32_t *ret);

/* Copies with truncation; always NUL-terminates when size > 0. Returns strlen(src). */
size_t plat_strlcpy(char *dst, const char *src, size_t size);

bool plat_streq_ptr(const char *a, const char *b);

/* Whether [s, s+len) is well-formed UTF-8 text: no overlong form, surrogate or code point past
 * U+10FFFF, and no control character (U+0000..U+001F, U+007F..U+009F). JSON carries it as it is. */
bool plat_utf8_text(const char *s, size_t len);

#define PLAT_QUOTE_MAX 32

/* Copies an untrusted token into q for an error message: truncated, non-printables as '?'. */
const char *plat_quote(const char *s, size_t len, char q[static PLAT_QUOTE_MAX]);

/* The next blank-separated (space, tab) token in [*p, end); false when none is left. */
bool plat_next_token(const char **p, const char *end, const char **ret_tok, size_t *ret_len);
