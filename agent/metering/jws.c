/* jws.c: metering records as JWS (RFC 7515) flattened JSON serialization, ES256: signing, strict checks. */
#include "jws.h"

#include "base64.h"
#include "cleanup.h"
#include "strutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

DEFINE_TRIVIAL_CLEANUP_FUNC(cJSON *, cJSON_Delete);

/* The three members of a flattened JWS, borrowed from the parsed line. */
struct parts {
        const char *protected, *payload, *signature;
        size_t protected_len, payload_len, signature_len;
};

#define SHOWN_MAX 64

/* An untrusted string made fit for a message: at most SHOWN_MAX characters, non-printables as '?'. */
static const char *shown(const char *s, char out[static SHOWN_MAX + 4]) {
        size_t i = 0;

        for (; s[i] && i < SHOWN_MAX; i++)
                out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
        strcpy(out + i, s[i] ? "..." : "");
        return out;
}

/* Parses len bytes as one JSON value with nothing but blanks after it. */
static cJSON *parse_exact(const char *buf, size_t len) {
        const char *end = NULL;
        cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, false);

        if (!root)
                return NULL;
        for (; end < buf + len; end++)
                if (*end != ' ' && *end != '\t' && *end != '\r' && *end != '\n') {
                        cJSON_Delete(root);
                        return NULL;
                }
        return root;
}

int jws_input_make(struct plat_signer *s, const void *payload, size_t len, struct jws_input *ret) {
        char header[sizeof("{\"alg\":\"ES256\",\"kid\":\"\"}") + PLAT_KID_LEN];
        char h64[PLAT_B64URL_LEN(sizeof(header)) + 1];
        _cleanup_free_ char *input = NULL;
        size_t hlen, plen, cap;
        int r;

        if (len > JWS_PAYLOAD_MAX)
                return -EMSGSIZE;
        snprintf(header, sizeof(header), "{\"alg\":\"ES256\",\"kid\":\"%s\"}", plat_signer_kid(s));
        r = plat_b64url_encode(header, strlen(header), h64, sizeof(h64), &hlen);
        if (r < 0)
                return r;
        /* The signing input: ASCII(BASE64URL(header)) '.' ASCII(BASE64URL(payload)). */
        cap = hlen + 1 + PLAT_B64URL_LEN(len) + 1;
        input = malloc(cap);
        if (!input)
                return -ENOMEM;
        memcpy(input, h64, hlen);
        input[hlen] = '.';
        r = plat_b64url_encode(payload, len, input + hlen + 1, cap - hlen - 1, &plen);
        if (r < 0)
                return r;
        r = plat_sha256(input, hlen + 1 + plen, ret->digest);
        if (r < 0)
                return r;
        ret->hlen = hlen;
        ret->buf = TAKE_PTR(input);
        return 0;
}

int jws_input_line(struct jws_input *in, const uint8_t sig[static PLAT_ES256_SIG_LEN], char **ret_line) {
        char s64[PLAT_B64URL_LEN(PLAT_ES256_SIG_LEN) + 1];
        char *line;
        int r;

        r = plat_b64url_encode(sig, PLAT_ES256_SIG_LEN, s64, sizeof(s64), NULL);
        if (r < 0)
                return r;
        /* The header and payload parts print as two strings: the '.' between them becomes a NUL. */
        in->buf[in->hlen] = '\0';
        r = asprintf(&line, "{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"}", in->buf,
                     in->buf + in->hlen + 1, s64);
        in->buf[in->hlen] = '.';
        if (r < 0)
                return -ENOMEM;
        *ret_line = line;
        return 0;
}

void jws_input_done(struct jws_input *in) {
        free(in->buf);
        in->buf = NULL;
}

/* The line's three members. Base64url needs no JSON escapes, and refusing them keeps one spelling
 * per record: what is signed is exactly the characters on the line. */
static int split(const char *line, size_t len, cJSON **ret_root, struct parts *ret, char *msg,
                 size_t msg_len) {
        static const char *const names[] = { "protected", "payload", "signature" };
        _cleanup_(cJSON_Deletep) cJSON *root = NULL;
        const cJSON *m[3];
        size_t n = 0;

        if (len > JWS_LINE_MAX) {
                plat_errf(msg, msg_len, "not a record: %zu bytes, more than %d", len, JWS_LINE_MAX);
                return -EMSGSIZE;
        }
        if (memchr(line, '\\', len)) {
                plat_errf(msg, msg_len, "not a JWS: JSON escapes (\\) have no place in a record");
                return -EPROTO;
        }
        root = parse_exact(line, len);
        if (!cJSON_IsObject(root)) {
                plat_errf(msg, msg_len, "not a JWS: %s", root ? "not a JSON object" : "not JSON");
                return -EPROTO;
        }
        for (const cJSON *c = root->child; c; c = c->next)
                n++;
        for (size_t i = 0; i < 3; i++) {
                m[i] = cJSON_GetObjectItemCaseSensitive(root, names[i]);
                if (!cJSON_IsString(m[i])) {
                        plat_errf(msg, msg_len, "not a JWS: member \"%s\" %s", names[i],
                                  m[i] ? "is not a string" : "is missing");
                        return -EPROTO;
                }
        }
        /* Each name found once among exactly three members: no duplicates, nothing else. */
        if (n != 3) {
                plat_errf(msg, msg_len,
                          "not a JWS: %zu members, want exactly protected, payload and signature (flattened "
                          "JSON)",
                          n);
                return -EPROTO;
        }
        *ret = (struct parts){ .protected = m[0]->valuestring,
                               .protected_len = strlen(m[0]->valuestring),
                               .payload = m[1]->valuestring,
                               .payload_len = strlen(m[1]->valuestring),
                               .signature = m[2]->valuestring,
                               .signature_len = strlen(m[2]->valuestring) };
        *ret_root = TAKE_PTR(root);
        return 0;
}

/* The protected header: alg ES256, an optional kid naming key (when there is a key), nothing else. */
static int check_header(const struct parts *p, struct plat_verifier *key, char *msg, size_t msg_len) {
        _cleanup_(cJSON_Deletep) cJSON *h = NULL;
        const cJSON *alg = NULL, *kid = NULL;
        char buf[JWS_HEADER_MAX], show[SHOWN_MAX + 4];
        size_t n;

        if (p->protected_len > PLAT_B64URL_LEN(JWS_HEADER_MAX)) {
                plat_errf(msg, msg_len, "protected header: longer than %d bytes", JWS_HEADER_MAX);
                return -EPROTO;
        }
        if (plat_b64url_decode(p->protected, p->protected_len, (uint8_t *)buf, sizeof(buf), &n) < 0) {
                plat_errf(msg, msg_len, "protected header: not base64url");
                return -EPROTO;
        }
        h = parse_exact(buf, n);
        if (!cJSON_IsObject(h)) {
                plat_errf(msg, msg_len, "protected header: not a JSON object");
                return -EPROTO;
        }
        for (const cJSON *c = h->child; c; c = c->next) {
                const cJSON **slot = !strcmp(c->string, "alg")   ? &alg
                                     : !strcmp(c->string, "kid") ? &kid
                                                                 : NULL;

                /* crit, b64, jku, x5u...: an extension we do not implement could change what the
                 * signature means, so any member beyond alg and kid is refused. */
                if (!slot) {
                        plat_errf(msg, msg_len,
                                  "protected header: member \"%s\" is not supported (only alg and kid)",
                                  shown(c->string, show));
                        return -EPROTO;
                }
                if (*slot || !cJSON_IsString(c)) {
                        plat_errf(msg, msg_len, "protected header: \"%s\" %s", c->string,
                                  *slot ? "appears twice" : "is not a string");
                        return -EPROTO;
                }
                *slot = c;
        }
        if (!alg) {
                plat_errf(msg, msg_len, "protected header: no alg");
                return -EPROTO;
        }
        if (strcmp(alg->valuestring, "ES256") != 0) {
                plat_errf(msg, msg_len,
                          "protected header: alg \"%s\" refused: records are signed with ES256 only",
                          shown(alg->valuestring, show));
                return -EOPNOTSUPP;
        }
        if (key && kid && !plat_verifier_has_kid(key, kid->valuestring, strlen(kid->valuestring))) {
                plat_errf(msg, msg_len,
                          "kid \"%s\" does not name the verification key (kid \"%s\"): signed with another "
                          "key "
                          "or certificate",
                          shown(kid->valuestring, show), plat_verifier_kid(key));
                return -EKEYREJECTED;
        }
        return 0;
}

static int check_signature(const struct parts *p, struct plat_verifier *key, char *msg, size_t msg_len) {
        uint8_t sig[PLAT_ES256_SIG_LEN + 1];
        _cleanup_free_ char *input = NULL;
        size_t n;
        int r;

        r = plat_b64url_decode(p->signature, p->signature_len, sig, sizeof(sig), &n);
        if (r < 0 && r != -ENOBUFS) {
                plat_errf(msg, msg_len, "signature: not base64url");
                return -EPROTO;
        }
        if (r == -ENOBUFS || n != PLAT_ES256_SIG_LEN) {
                plat_errf(msg, msg_len, "signature: %zu bytes, ES256 has %d (r || s)",
                          r == -ENOBUFS ? PLAT_B64URL_DECODED_MAX(p->signature_len) : n, PLAT_ES256_SIG_LEN);
                return -EPROTO;
        }
        if (!key)
                return 0;
        input = malloc(p->protected_len + 1 + p->payload_len);
        if (!input)
                return -ENOMEM;
        memcpy(input, p->protected, p->protected_len);
        input[p->protected_len] = '.';
        memcpy(input + p->protected_len + 1, p->payload, p->payload_len);
        r = plat_verifier_verify(key, input, p->protected_len + 1 + p->payload_len, sig);
        if (r == -EBADMSG)
                plat_errf(msg, msg_len, "signature does not verify with key %s", plat_verifier_kid(key));
        else if (r < 0)
                plat_errf(msg, msg_len, "cannot check the signature: %s", strerror(-r));
        return r;
}

static int parse(const char *line, size_t len, struct plat_verifier *key, char **ret_payload,
                 size_t *ret_payload_len, char *msg, size_t msg_len) {
        _cleanup_(cJSON_Deletep) cJSON *root = NULL;
        _cleanup_free_ char *payload = NULL;
        struct parts p;
        size_t n;
        int r;

        r = split(line, len, &root, &p, msg, msg_len);
        if (r < 0)
                return r;
        r = check_header(&p, key, msg, msg_len);
        if (r < 0)
                return r;
        payload = malloc(PLAT_B64URL_DECODED_MAX(p.payload_len) + 1);
        if (!payload)
                return -ENOMEM;
        if (plat_b64url_decode(p.payload, p.payload_len, (uint8_t *)payload,
                               PLAT_B64URL_DECODED_MAX(p.payload_len), &n) < 0) {
                plat_errf(msg, msg_len, "payload: not base64url");
                return -EPROTO;
        }
        payload[n] = '\0';
        r = check_signature(&p, key, msg, msg_len);
        if (r < 0)
                return r;
        *ret_payload = TAKE_PTR(payload);
        *ret_payload_len = n;
        return 0;
}

int jws_parse_verify(const char *line, size_t len, struct plat_verifier *key, char **ret_payload,
                     size_t *ret_payload_len, char *msg, size_t msg_len) {
        if (!key)
                return -EINVAL;
        return parse(line, len, key, ret_payload, ret_payload_len, msg, msg_len);
}

int jws_parse_unverified(const char *line, size_t len, char **ret_payload, size_t *ret_payload_len,
                         char *msg, size_t msg_len) {
        return parse(line, len, NULL, ret_payload, ret_payload_len, msg, msg_len);
}
