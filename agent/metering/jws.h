/* jws.h: metering records as JWS (RFC 7515) flattened JSON serialization, ES256: signing, strict checks. */
#pragma once

#include "crypto.h"

#include <stddef.h>

/* The longest record line produced or accepted, without its newline (docs/metering.md). */
#define JWS_LINE_MAX (64 * 1024)

/* The largest payload jws_input_make() takes: its line then always fits JWS_LINE_MAX. */
#define JWS_PAYLOAD_MAX 48000

/* The longest protected header accepted, decoded. Ours is about 70 bytes. */
#define JWS_HEADER_MAX 1024

/* Signing a record, in steps, for a caller that may hold the signature already (agent/metering/sigcache.h):
 * the signing input with its digest, then the line from a signature made over that digest. The
 * line is one line of {"protected":"<b64url>","payload":"<b64url>","signature":"<b64url r||s>"},
 * with no newline, NUL-terminated; the protected header is {"alg":"ES256","kid":"<signer's kid>"}. */
struct jws_input {
        char *buf;                       /* ASCII(BASE64URL(header)) '.' ASCII(BASE64URL(payload)), owned */
        size_t hlen;                     /* where the '.' is */
        uint8_t digest[PLAT_SHA256_LEN]; /* SHA-256 of buf: what ES256 signs */
};
/* -EMSGSIZE when len > JWS_PAYLOAD_MAX, -ENOMEM. Free with jws_input_done. */
int jws_input_make(struct plat_signer *s, const void *payload, size_t len, struct jws_input *ret);
/* The record line (caller frees), with sig (plat_signer_sign_digest of in->digest). */
int jws_input_line(struct jws_input *in, const uint8_t sig[static PLAT_ES256_SIG_LEN], char **ret_line);
void jws_input_done(struct jws_input *in);

/* Checks one record line (len bytes, no newline, no NUL needed) and returns its payload:
 * - the line is a JSON object with exactly the members protected, payload and signature, each a
 *   base64url string (no padding, no JSON escapes), at most JWS_LINE_MAX bytes;
 * - the protected header is a JSON object with "alg" and optionally "kid" and nothing else, and
 *   alg is "ES256" ("none" and every other algorithm are refused);
 * - a kid, when present, names key (plat_verifier_has_kid); a header without one is checked
 *   against key alone, as RFC 7515 allows;
 * - the signature is 64 bytes and verifies with key over ASCII(protected) '.' ASCII(payload).
 * On success *ret_payload holds the decoded payload, NUL-terminated (caller frees), and
 * *ret_payload_len its length without the NUL. Errors: -EMSGSIZE (too long), -EPROTO (not such a
 * JWS), -EOPNOTSUPP (alg not ES256), -EKEYREJECTED (kid names another key), -EBADMSG (the
 * signature does not verify), -ENOMEM; msg says which and where. */
int jws_parse_verify(const char *line, size_t len, struct plat_verifier *key, char **ret_payload,
                     size_t *ret_payload_len, char *msg, size_t msg_len);

/* The same checks without a key: structure and header, not the kid or the signature. What it
 * returns is not authenticated; for reading records when no key is at hand. */
int jws_parse_unverified(const char *line, size_t len, char **ret_payload, size_t *ret_payload_len,
                         char *msg, size_t msg_len);
