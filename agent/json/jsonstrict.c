/* jsonstrict.c: JSON from outside read strictly: one object, valid UTF-8, no key twice, nothing after it. */
#include "jsonstrict.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Objects up to this many keys are checked pairwise; larger ones sorted. */
#define SMALL_OBJECT 16
/* Bytes of a key quoted in a message, and of the path to the object holding it. */
#define KEY_SHOWN 48
#define PATH_MAX_SHOWN 128

static int __attribute__((format(printf, 3, 4))) fail(char *why, size_t whylen, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
        return -EPROTO;
}

/* The length of the UTF-8 character at s (RFC 3629: no overlong forms, no surrogates, nothing
 * past U+10FFFF), its code point in *ret_cp; 0 when s does not start one within len bytes. */
static size_t utf8_char(const unsigned char *s, size_t len, uint32_t *ret_cp) {
        static const uint32_t min[] = { 0, 0, 0x80, 0x800, 0x10000 };
        size_t n;
        uint32_t cp;

        if (len == 0)
                return 0;
        if (s[0] < 0x80) {
                *ret_cp = s[0];
                return 1;
        }
        if ((s[0] & 0xE0) == 0xC0) {
                n = 2;
                cp = s[0] & 0x1F;
        } else if ((s[0] & 0xF0) == 0xE0) {
                n = 3;
                cp = s[0] & 0x0F;
        } else if ((s[0] & 0xF8) == 0xF0) {
                n = 4;
                cp = s[0] & 0x07;
        } else
                return 0;
        if (len < n)
                return 0;
        for (size_t k = 1; k < n; k++) {
                if ((s[k] & 0xC0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[k] & 0x3F);
        }
        if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                return 0;
        *ret_cp = cp;
        return n;
}

size_t jsonstrict_utf8_prefix(const char *s, size_t len) {
        const unsigned char *u = (const unsigned char *)s;
        size_t i = 0;

        while (i < len) {
                uint32_t cp;
                size_t n = utf8_char(u + i, len - i, &cp);

                if (!n)
                        break;
                i += n;
        }
        return i;
}

static bool is_control(uint32_t cp) {
        return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

/* Four hex digits at s (len bytes there) as *ret. */
static bool hex4(const unsigned char *s, size_t len, uint32_t *ret) {
        uint32_t v = 0;

        if (len < 4)
                return false;
        for (size_t k = 0; k < 4; k++) {
                unsigned char c = s[k];

                v <<= 4;
                if (c >= '0' && c <= '9')
                        v |= (uint32_t)(c - '0');
                else if (c >= 'a' && c <= 'f')
                        v |= (uint32_t)(c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        v |= (uint32_t)(c - 'A' + 10);
                else
                        return false;
        }
        *ret = v;
        return true;
}

/* The "\uXXXX" escape at s[0] (the backslash): 0 when it is not one (cJSON judges the rest), else
 * its length (12 for a surrogate pair); -EPROTO for \u0000 and a lone surrogate. */
static int u_escape(const unsigned char *s, size_t len, size_t at, const char *what, char *why,
                    size_t whylen) {
        uint32_t hi, lo;

        if (len < 2 || s[1] != 'u' || !hex4(s + 2, len - 2, &hi))
                return 0;
        if (hi == 0)
                return fail(why, whylen, "%s has \\u0000 in a string, at byte %zu", what, at);
        if (hi >= 0xDC00 && hi <= 0xDFFF)
                return fail(why, whylen, "%s has a lone UTF-16 surrogate \\u%04X in a string, at byte %zu",
                            what, (unsigned)hi, at);
        if (hi < 0xD800 || hi > 0xDBFF)
                return 6;
        if (len < 12 || s[6] != '\\' || s[7] != 'u' || !hex4(s + 8, len - 8, &lo) || lo < 0xDC00 ||
            lo > 0xDFFF)
                return fail(why, whylen, "%s has a lone UTF-16 surrogate \\u%04X in a string, at byte %zu",
                            what, (unsigned)hi, at);
        return 12;
}

/* What cJSON lets through on the byte level: not UTF-8, control characters, \u0000, surrogates. */
static int scan(const unsigned char *s, size_t len, const char *what, char *why, size_t whylen) {
        bool in_string = false;
        size_t i = 0;

        while (i < len) {
                unsigned char c = s[i];
                uint32_t cp;
                int r;

                if (c >= 0x80) {
                        size_t n = utf8_char(s + i, len - i, &cp);

                        if (!n)
                                return fail(why, whylen, "%s is not valid UTF-8: byte 0x%02X at byte %zu",
                                            what, c, i);
                        i += n;
                        continue;
                }
                if (!in_string) {
                        /* cJSON skips any byte up to 0x20 between tokens; JSON has four. */
                        if (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r')
                                return fail(why, whylen,
                                            "%s has a control character (0x%02X) outside a string, at "
                                            "byte %zu",
                                            what, c, i);
                        in_string = c == '"';
                        i++;
                        continue;
                }
                if (c < 0x20)
                        return fail(why, whylen,
                                    "%s has an unescaped control character (0x%02X) in a string, at "
                                    "byte %zu",
                                    what, c, i);
                if (c == '"')
                        in_string = false;
                if (c != '\\') {
                        i++;
                        continue;
                }
                r = u_escape(s + i, len - i, i, what, why, whylen);
                if (r < 0)
                        return r;
                /* Any other escape is two ASCII bytes; a byte past 0x7F after a backslash is
                 * checked as UTF-8 on the next turn (and refused by cJSON as an escape). */
                i += r > 0 ? (size_t)r : (i + 1 < len && s[i + 1] < 0x80) ? 2 : 1;
        }
        return 0;
}

/* Copies at most `max` bytes of s (valid UTF-8) into dst without cutting a character, control
 * characters shown as '?': a key as a message may quote it. */
static void shown(char *dst, size_t dstlen, const char *s, size_t max) {
        const unsigned char *u = (const unsigned char *)s;
        size_t len = strlen(s), i = 0, o = 0;

        while (i < len) {
                uint32_t cp;
                size_t n = utf8_char(u + i, len - i, &cp);

                if (!n || i + n > max || o + n >= dstlen)
                        break;
                if (is_control(cp))
                        dst[o++] = '?';
                else {
                        memcpy(dst + o, s + i, n);
                        o += n;
                }
                i += n;
        }
        dst[o] = '\0';
}

static int cmp_keys(const void *a, const void *b) {
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A key that is in object o twice; NULL when none (or out of memory: *ret_oom). */
static const char *repeated_key(const cJSON *o, bool *ret_oom) {
        const char **keys, *dup = NULL;
        const cJSON *a, *b;
        size_t n = 0, k = 0;

        for (a = o->child; a; a = a->next)
                n++;
        if (n <= SMALL_OBJECT) {
                for (a = o->child; a; a = a->next)
                        for (b = a->next; b; b = b->next)
                                if (!strcmp(a->string, b->string))
                                        return a->string;
                return NULL;
        }
        keys = malloc(n * sizeof(*keys));
        if (!keys) {
                *ret_oom = true;
                return NULL;
        }
        for (a = o->child; a; a = a->next)
                keys[k++] = a->string;
        qsort(keys, n, sizeof(*keys), cmp_keys);
        for (k = 1; k < n && !dup; k++)
                if (!strcmp(keys[k - 1], keys[k]))
                        dup = keys[k];
        free(keys);
        return dup;
}

/* Refuses a key twice in any object of v; path (PATH_MAX_SHOWN bytes, `used` of them used) is
 * where v is, for the message. */
static int no_repeated_keys(const cJSON *v, char *path, size_t used, const char *what, char *why,
                            size_t whylen) {
        size_t index = 0;
        const cJSON *c;

        if (cJSON_IsObject(v)) {
                bool oom = false;
                const char *dup = repeated_key(v, &oom);
                char key[KEY_SHOWN + 1];

                if (oom)
                        return -ENOMEM;
                if (dup) {
                        shown(key, sizeof(key), dup, KEY_SHOWN);
                        return fail(why, whylen, "%s has the key \"%s\" twice in %s%s", what, key,
                                    used ? "the object at " : "the top-level object", path);
                }
        } else if (!cJSON_IsArray(v))
                return 0;
        for (c = v->child; c; c = c->next, index++) {
                char seg[KEY_SHOWN + 1];
                int r;

                if (used < PATH_MAX_SHOWN && c->string) {
                        shown(seg, sizeof(seg), c->string, KEY_SHOWN / 2);
                        snprintf(path + used, PATH_MAX_SHOWN + 1 - used, ".%s", seg);
                } else if (used < PATH_MAX_SHOWN)
                        snprintf(path + used, PATH_MAX_SHOWN + 1 - used, "[%zu]", index);
                r = no_repeated_keys(c, path, strlen(path), what, why, whylen);
                path[used] = '\0';
                if (r < 0)
                        return r;
        }
        return 0;
}

int jsonstrict_parse_object(const char *text, size_t len, const char *what, cJSON **ret, char *why,
                            size_t whylen) {
        char path[PATH_MAX_SHOWN + 1] = "";
        const char *end = NULL;
        cJSON *j;
        int r;

        if (memchr(text, '\0', len))
                return fail(why, whylen, "%s contains a NUL byte", what);
        r = scan((const unsigned char *)text, len, what, why, whylen);
        if (r < 0)
                return r;
        j = cJSON_ParseWithLengthOpts(text, len, &end, false);
        if (!j || !cJSON_IsObject(j)) {
                cJSON_Delete(j);
                return fail(why, whylen, "%s is not a JSON object", what);
        }
        for (; end && end < text + len; end++)
                if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r') {
                        cJSON_Delete(j);
                        return fail(why, whylen,
                                    "%s has data after its JSON object, at byte %zu (one object per "
                                    "line)",
                                    what, (size_t)(end - text));
                }
        r = no_repeated_keys(j, path, 0, what, why, whylen);
        if (r < 0) {
                cJSON_Delete(j);
                return r;
        }
        *ret = j;
        return 0;
}

/* The first control character (or byte that is not UTF-8) in s as *ret_cp; false when none. */
static bool first_control(const char *s, uint32_t *ret_cp) {
        const unsigned char *u = (const unsigned char *)s;
        size_t len = strlen(s), i = 0;

        while (i < len) {
                uint32_t cp;
                size_t n = utf8_char(u + i, len - i, &cp);

                if (!n || is_control(cp)) {
                        *ret_cp = n ? cp : UINT32_MAX;
                        return true;
                }
                i += n;
        }
        return false;
}

bool jsonstrict_printable(const cJSON *v, const char *what, char *why, size_t whylen) {
        uint32_t cp;

        if (!v)
                return true;
        if ((v->string && first_control(v->string, &cp)) ||
            (cJSON_IsString(v) && v->valuestring && first_control(v->valuestring, &cp))) {
                if (cp == UINT32_MAX)
                        snprintf(why, whylen, "%s is not valid UTF-8", what);
                else
                        snprintf(why, whylen, "%s has a control character (U+%04X)", what, (unsigned)cp);
                return false;
        }
        for (const cJSON *c = v->child; c; c = c->next)
                if (!jsonstrict_printable(c, what, why, whylen))
                        return false;
        return true;
}
