/* jsonw.c: one JSON document written member by member, as compact text or as a cJSON tree. */
#include "jsonw.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A telemetry document with 8 slots is about 2.5 KB: one allocation holds it. */
#define TEXT_FIRST_CAP 4096

void jsonw_init(struct jsonw *w, bool tree) {
        *w = (struct jsonw){ .tree = tree };
}

void jsonw_done(struct jsonw *w) {
        free(w->buf);
        cJSON_Delete(w->root);
        jsonw_init(w, w->tree);
}

/* ---- numbers ---- */

/* Powers of ten up to 10^9 are exact doubles: a * 10^d is then rounded once. */
static const double pow10_f[] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9 };
static const uint64_t pow10_u[] = {
        1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000
};

/* The digits of v at out (no NUL); returns how many. */
static size_t put_digits(char *out, uint64_t v) {
        char tmp[20];
        size_t n = 0;

        do {
                tmp[n++] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        for (size_t i = 0; i < n; i++)
                out[i] = tmp[n - 1 - i];
        return n;
}

size_t jsonw_fmt_u64(char buf[static JSONW_NUM_MAX], uint64_t v) {
        size_t n = put_digits(buf, v);

        buf[n] = '\0';
        return n;
}

/* What snprintf() returned, as the length of what is in the buffer (cut to fit). */
static size_t printed(char buf[static JSONW_NUM_MAX], int n) {
        if (n < 0) {
                buf[0] = '\0';
                return 0;
        }
        return (size_t)n < JSONW_NUM_MAX ? (size_t)n : JSONW_NUM_MAX - 1;
}

size_t jsonw_fmt_fixed(char buf[static JSONW_NUM_MAX], double v, int decimals) {
        bool fast = decimals >= 0 && decimals < (int)(sizeof(pow10_f) / sizeof(pow10_f[0])) && isfinite(v);
        double s = 0, whole = 0, frac = 0;
        uint64_t n;
        size_t len = 0;

        if (fast) {
                s = fabs(v) * pow10_f[decimals];
                fast = s < 0x1p52;
        }
        if (fast) {
                whole = floor(s);
                frac = s - whole; /* exact: s < 2^52 */
                /* s is |v| * 10^d off by at most half an ulp (<= s * 2^-53). Only a fraction that
                 * close to one half could round the other way in exact arithmetic: printf decides
                 * those (it rounds the exact binary value, ties to even). Elsewhere both agree. */
                fast = fabs(frac - 0.5) > s * 0x1p-52;
        }
        if (!fast)
                return printed(buf, snprintf(buf, JSONW_NUM_MAX, "%.*f", decimals, v));
        n = (uint64_t)whole + (frac > 0.5);
        if (signbit(v)) /* printf keeps the sign of -0.0 and of what rounds to zero */
                buf[len++] = '-';
        len += put_digits(buf + len, n / pow10_u[decimals]);
        if (decimals) {
                uint64_t f = n % pow10_u[decimals];

                buf[len++] = '.';
                for (int i = decimals - 1; i >= 0; i--) {
                        buf[len + (size_t)i] = (char)('0' + f % 10);
                        f /= 10;
                }
                len += (size_t)decimals;
        }
        buf[len] = '\0';
        return len;
}

/* cJSON's print_number() (1.7.15): %1.15g when that reads back within an epsilon, else %1.17g.
 * An int's value (counts, indexes: nearly every number here) is printed as %1.15g prints it, without
 * snprintf(): its digits, and "-0" for negative zero. */
static size_t fmt_number(char buf[static JSONW_NUM_MAX], double d) {
        double back, max;
        size_t n;

        if (isnan(d) || isinf(d)) {
                memcpy(buf, "null", 5);
                return 4;
        }
        if (d >= INT_MIN && d <= INT_MAX && d == (double)(int)d) {
                int i = (int)d;

                n = 0;
                if (signbit(d))
                        buf[n++] = '-';
                n += put_digits(buf + n, i < 0 ? (uint64_t)(-(int64_t)i) : (uint64_t)i);
                buf[n] = '\0';
                return n;
        }
        n = printed(buf, snprintf(buf, JSONW_NUM_MAX, "%1.15g", d));
        back = strtod(buf, NULL);
        max = fabs(back) > fabs(d) ? fabs(back) : fabs(d);
        if (!(fabs(back - d) <= max * DBL_EPSILON))
                n = printed(buf, snprintf(buf, JSONW_NUM_MAX, "%1.17g", d));
        return n;
}

/* ---- text ---- */

/* The slow half of room(): a larger buffer. */
static bool grow(struct jsonw *w, size_t n) {
        size_t cap = w->cap ? w->cap : TEXT_FIRST_CAP;
        char *b;

        if (w->failed)
                return false;
        while (cap <= w->len + n) {
                if (cap > SIZE_MAX / 2) {
                        w->failed = true;
                        return false;
                }
                cap *= 2;
        }
        b = realloc(w->buf, cap);
        if (!b) {
                w->failed = true;
                return false;
        }
        w->buf = b;
        w->cap = cap;
        return true;
}

/* Room for n more bytes and a NUL; false when there is none (the document has failed). Writing on
 * after a misuse is harmless: the text is dropped at the end. */
static inline bool room(struct jsonw *w, size_t n) {
        return w->len + n < w->cap || grow(w, n);
}

static void put(struct jsonw *w, const char *s, size_t n) {
        if (!room(w, n))
                return;
        memcpy(w->buf + w->len, s, n);
        w->len += n;
}

static inline void put_char(struct jsonw *w, char c) {
        if (room(w, 1))
                w->buf[w->len++] = c;
}

/* The bytes of p before the first one that must be escaped (or its end). */
static inline size_t plain_len(const unsigned char *p) {
        size_t n = 0;

        while (p[n] >= 32 && p[n] != '"' && p[n] != '\\')
                n++;
        return n;
}

/* The bytes cJSON escapes by name (a newline becomes "\n"), indexed by the byte. */
static const char escaped_as[] = {
        ['"'] = '"', ['\\'] = '\\', ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't'
};

/* As cJSON's print_string_ptr(): '"' and '\\' and five control characters by name, the other
 * control characters as \u00xx, every other byte (UTF-8 included) as it is. */
static void put_string(struct jsonw *w, const char *s) {
        const unsigned char *p = (const unsigned char *)s;
        size_t plain = plain_len(p);

        if (!p[plain]) { /* the usual case, keys included: nothing to escape */
                if (room(w, plain + 2)) {
                        char *o = w->buf + w->len;

                        o[0] = '"';
                        memcpy(o + 1, p, plain);
                        o[plain + 1] = '"';
                        w->len += plain + 2;
                }
                return;
        }
        put_char(w, '"');
        for (;;) {
                char esc[8];

                put(w, (const char *)p, plain);
                p += plain;
                if (!*p)
                        break;
                if (*p < sizeof(escaped_as) && escaped_as[*p]) {
                        esc[0] = '\\';
                        esc[1] = escaped_as[*p];
                        put(w, esc, 2);
                } else {
                        snprintf(esc, sizeof(esc), "\\u%04x", *p);
                        put(w, esc, 6);
                }
                p++;
                plain = plain_len(p);
        }
        put_char(w, '"');
}

/* ---- both ---- */

/* Before a value: checks where it goes (only a container may be the root, and only one; an array
 * takes no keys, an object needs them) and, in text, writes the ',' and the key. */
static bool begin_value(struct jsonw *w, const char *key, bool container) {
        if (w->failed)
                return false;
        if (w->depth == 0) {
                if (!container || key || w->len || w->root)
                        w->failed = true;
                return !w->failed;
        }
        if (w->is_array[w->depth - 1] == (key != NULL)) {
                w->failed = true;
                return false;
        }
        if (w->tree)
                return true;
        if (w->has_member[w->depth - 1])
                put_char(w, ',');
        w->has_member[w->depth - 1] = true;
        if (key) {
                put_string(w, key);
                put_char(w, ':');
        }
        return !w->failed;
}

/* Tree: item (taken) as the root or into the open container. */
static bool tree_add(struct jsonw *w, const char *key, cJSON *item) {
        cJSON *parent = w->depth ? w->open[w->depth - 1] : NULL;
        bool ok;

        if (!item) {
                w->failed = true;
                return false;
        }
        if (!parent) {
                w->root = item;
                return true;
        }
        ok = key ? cJSON_AddItemToObject(parent, key, item) : cJSON_AddItemToArray(parent, item);
        if (!ok) {
                cJSON_Delete(item);
                w->failed = true;
        }
        return ok;
}

static void open_container(struct jsonw *w, const char *key, bool array) {
        if (!begin_value(w, key, true))
                return;
        if (w->depth == JSONW_DEPTH_MAX) {
                w->failed = true;
                return;
        }
        if (w->tree) {
                cJSON *c = array ? cJSON_CreateArray() : cJSON_CreateObject();

                if (!tree_add(w, key, c))
                        return;
                w->open[w->depth] = c;
        } else
                put_char(w, array ? '[' : '{');
        w->is_array[w->depth] = array;
        w->has_member[w->depth] = false;
        w->depth++;
}

void jsonw_object(struct jsonw *w, const char *key) {
        open_container(w, key, false);
}

void jsonw_array(struct jsonw *w, const char *key) {
        open_container(w, key, true);
}

void jsonw_end(struct jsonw *w) {
        if (w->failed)
                return;
        if (w->depth == 0) {
                w->failed = true;
                return;
        }
        w->depth--;
        if (!w->tree)
                put_char(w, w->is_array[w->depth] ? ']' : '}');
}

/* A scalar: `text` (len bytes) in text mode, `item` (taken; made only in tree mode) in a tree. */
static void scalar(struct jsonw *w, const char *key, const char *text, size_t len, cJSON *item) {
        if (!begin_value(w, key, false)) {
                cJSON_Delete(item);
                return;
        }
        if (w->tree)
                tree_add(w, key, item);
        else
                put(w, text, len);
}

void jsonw_string(struct jsonw *w, const char *key, const char *s) {
        if (!s)
                return;
        if (!w->tree) {
                if (begin_value(w, key, false))
                        put_string(w, s);
                return;
        }
        scalar(w, key, NULL, 0, cJSON_CreateString(s));
}

void jsonw_bool(struct jsonw *w, const char *key, bool v) {
        scalar(w, key, v ? "true" : "false", v ? 4 : 5, w->tree ? cJSON_CreateBool(v) : NULL);
}

void jsonw_null(struct jsonw *w, const char *key) {
        scalar(w, key, "null", 4, w->tree ? cJSON_CreateNull() : NULL);
}

void jsonw_number(struct jsonw *w, const char *key, double v) {
        char buf[JSONW_NUM_MAX];

        if (w->tree) {
                scalar(w, key, NULL, 0, cJSON_CreateNumber(v));
                return;
        }
        scalar(w, key, buf, fmt_number(buf, v), NULL);
}

/* A number already printed: a raw item in a tree. */
static void raw(struct jsonw *w, const char *key, const char *buf, size_t len) {
        scalar(w, key, buf, len, w->tree ? cJSON_CreateRaw(buf) : NULL);
}

void jsonw_u64(struct jsonw *w, const char *key, uint64_t v) {
        char buf[JSONW_NUM_MAX];

        raw(w, key, buf, jsonw_fmt_u64(buf, v));
}

void jsonw_fixed(struct jsonw *w, const char *key, double v, int decimals) {
        char buf[JSONW_NUM_MAX];

        if (!isfinite(v))
                return;
        raw(w, key, buf, jsonw_fmt_fixed(buf, v, decimals));
}

/* ---- results ---- */

static bool finished(const struct jsonw *w, bool tree) {
        return !w->failed && w->tree == tree && w->depth == 0 && (tree ? w->root != NULL : w->len > 0);
}

char *jsonw_take_text(struct jsonw *w) {
        char *s = NULL;

        if (finished(w, false) && room(w, 0)) {
                w->buf[w->len] = '\0';
                s = w->buf;
                w->buf = NULL;
        }
        jsonw_done(w);
        return s;
}

cJSON *jsonw_take_tree(struct jsonw *w) {
        cJSON *t = NULL;

        if (finished(w, true)) {
                t = w->root;
                w->root = NULL;
        }
        jsonw_done(w);
        return t;
}
