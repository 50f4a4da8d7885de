/* jsonw.h: one JSON document written member by member, as compact text or as a cJSON tree. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Containers open at once; deeper nesting fails the document. */
#define JSONW_DEPTH_MAX 8
/* A formatted number's buffer, NUL included. A fixed-point figure wider than this (past 10^45) is
 * cut to fit, as the documents' snprintf() into 48 bytes always cut it. */
#define JSONW_NUM_MAX 48

/* Text mode writes the bytes cJSON_PrintUnformatted() prints for the tree that tree mode builds
 * from the same calls, without the tree: no allocation per member, one growing buffer. Tree mode
 * is for documents that become part of another cJSON tree (control replies). Members are private. */
struct jsonw {
        bool tree;
        bool failed; /* out of memory, or misuse (see jsonw_object): the result is NULL */
        unsigned depth;
        bool is_array[JSONW_DEPTH_MAX];
        bool has_member[JSONW_DEPTH_MAX]; /* text: the open container needs a ',' before the next */
        cJSON *open[JSONW_DEPTH_MAX];     /* tree: the open containers, borrowed from root */
        cJSON *root;                      /* tree: owned until jsonw_take_tree() */
        char *buf;                        /* text: owned until jsonw_take_text() */
        size_t len, cap;
};

/* Sets w up empty; nothing to fail. */
void jsonw_init(struct jsonw *w, bool tree);
/* Frees what was not taken; w may be initialised again. */
void jsonw_done(struct jsonw *w);

/* Opens an object or array: the document's root (key NULL, first call only), an element of the
 * open array (key NULL), or the member `key` of the open object (key required). jsonw_end()
 * closes the innermost one. */
void jsonw_object(struct jsonw *w, const char *key);
void jsonw_array(struct jsonw *w, const char *key);
void jsonw_end(struct jsonw *w);

/* Scalars, with key as above. A NULL string is left out, as cJSON_AddStringToObject() leaves it. */
void jsonw_string(struct jsonw *w, const char *key, const char *s);
void jsonw_bool(struct jsonw *w, const char *key, bool v);
void jsonw_null(struct jsonw *w, const char *key);
/* As cJSON prints a number: %1.15g, or %1.17g where that would not read back; NaN and infinities
 * as null. */
void jsonw_number(struct jsonw *w, const char *key, double v);
/* Exact decimal digits (a raw number: cJSON's doubles would round counters past 2^53). */
void jsonw_u64(struct jsonw *w, const char *key, uint64_t v);
/* printf("%.*f", decimals, v), a raw number; a value that is not finite is left out. */
void jsonw_fixed(struct jsonw *w, const char *key, double v, int decimals);

/* The finished document: text (caller frees) or tree (caller deletes); NULL after a failure, in
 * the other mode, or while a container is still open. w is empty afterwards. */
char *jsonw_take_text(struct jsonw *w);
cJSON *jsonw_take_tree(struct jsonw *w);

/* The formatters behind jsonw_u64() and jsonw_fixed(), into buf of JSONW_NUM_MAX bytes
 * (NUL-terminated); they return the length. jsonw_fmt_fixed() prints what snprintf("%.*f")
 * prints, byte for byte, and is that call when the fast path cannot be sure of the rounding. */
size_t jsonw_fmt_u64(char buf[static JSONW_NUM_MAX], uint64_t v);
size_t jsonw_fmt_fixed(char buf[static JSONW_NUM_MAX], double v, int decimals);
