/* jsonstrict.h: JSON from outside read strictly: one object, valid UTF-8, no key twice, nothing after it. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* Parses text (len bytes, no NUL needed; none may be in it) as exactly one JSON object, refusing
 * what cJSON lets through and RFC 8259 does not: bytes that are not UTF-8, control characters
 * outside strings or unescaped inside them, "\u0000" and lone UTF-16 surrogates in strings,
 * anything but whitespace after the object, and a key twice in one object at any depth (which of
 * the two counts differs between readers). `what` names the text in messages ("request").
 * Returns 0 and *ret (caller frees with cJSON_Delete), or -EPROTO with why saying what was wrong
 * and where (a byte offset, or the object holding the repeated key), or -ENOMEM. */
int jsonstrict_parse_object(const char *text, size_t len, const char *what, cJSON **ret, char *why,
                            size_t whylen);

/* Whether every string in v (keys and values, at any depth) is free of control characters (C0,
 * DEL and C1): such a value is not echoed into a reply or a log. When not, why names `what` and
 * the first one found. v may be NULL (true). */
bool jsonstrict_printable(const cJSON *v, const char *what, char *why, size_t whylen);

/* The length of the longest prefix of s (len bytes) that is whole, valid UTF-8: where to cut a
 * message that a bounded format may have cut inside a character. */
size_t jsonstrict_utf8_prefix(const char *s, size_t len);
