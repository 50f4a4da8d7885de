/* test_jws.c: flattened JWS ES256 records: signing, the RFC 7515 A.3 example, tampering, strict parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base64.h"
#include "jws.h"
#include "testutil.h"
#include "testsign.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char payload[] =
        "{\"v\":1,\"type\":\"session_start\",\"node\":\"n1\",\"region\":\"r1\",\"seq\":42,"
        "\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\","
        "\"ts\":\"2026-12-01T13:00:00.123Z\"}";

struct fx {
        struct plat_signer *signer, *other;
        struct plat_verifier *key, *other_key;
        char msg[512];
};

static int setup(void **state) {
        struct fx *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        assert_int_equal(plat_signer_generate(&f->signer, f->msg, sizeof(f->msg)), 0);
        assert_int_equal(plat_signer_generate(&f->other, f->msg, sizeof(f->msg)), 0);
        assert_int_equal(plat_verifier_from_signer(f->signer, &f->key, f->msg, sizeof(f->msg)), 0);
        assert_int_equal(plat_verifier_from_signer(f->other, &f->other_key, f->msg, sizeof(f->msg)), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fx *f = *state;

        plat_verifier_free(f->key);
        plat_verifier_free(f->other_key);
        plat_signer_free(f->signer);
        plat_signer_free(f->other);
        free(f);
        return 0;
}

/* jws_parse_verify on an unterminated heap copy of line, so ASan sees any read past its end. */
static int verify(struct fx *f, const char *line, struct plat_verifier *key, char **ret, size_t *ret_len) {
        char *copy = tu_copy_unterminated(line, strlen(line));
        int r;

        f->msg[0] = '\0';
        r = jws_parse_verify(copy, strlen(line), key, ret, ret_len, f->msg, sizeof(f->msg));
        free(copy);
        return r;
}

static char *b64(const char *s) {
        size_t n = strlen(s);
        char *out = malloc(PLAT_B64URL_LEN(n) + 1);

        assert_non_null(out);
        assert_int_equal(plat_b64url_encode(s, n, out, PLAT_B64URL_LEN(n) + 1, NULL), 0);
        return out;
}

/* A record line from its three members as given, signed by s over them when sig is NULL. */
static char *assemble(struct plat_signer *s, const char *h64, const char *p64, const char *sig) {
        char *input, *line, s64[PLAT_B64URL_LEN(PLAT_ES256_SIG_LEN) + 1];
        uint8_t raw[PLAT_ES256_SIG_LEN];

        if (!sig) {
                assert_true(asprintf(&input, "%s.%s", h64, p64) > 0);
                assert_int_equal(plat_signer_sign(s, input, strlen(input), raw), 0);
                assert_int_equal(plat_b64url_encode(raw, sizeof(raw), s64, sizeof(s64), NULL), 0);
                free(input);
                sig = s64;
        }
        assert_true(asprintf(&line, "{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"}", h64,
                             p64, sig) > 0);
        return line;
}

/* The value of one member of a line we made (caller frees). */
static char *member(const char *line, const char *name) {
        char key[32], *v;
        const char *p;

        snprintf(key, sizeof(key), "\"%s\":\"", name);
        p = strstr(line, key);
        assert_non_null(p);
        v = strdup(p + strlen(key));
        assert_non_null(v);
        *strchr(v, '"') = '\0';
        return v;
}

/* A line signed by s with the given header JSON (over the b64 of payload). */
static char *with_header(struct plat_signer *s, const char *header) {
        char *h64 = b64(header), *p64 = b64(payload), *line = assemble(s, h64, p64, NULL);

        free(h64);
        free(p64);
        return line;
}

static void test_signed_record_is_one_line_that_verifies(void **state) {
        struct fx *f = *state;
        char *line = NULL, *out = NULL, want[128], hdr[JWS_HEADER_MAX];
        const char *h, *e;
        size_t n;

        assert_int_equal(tu_jws_sign(f->signer, payload, strlen(payload), &line), 0);
        assert_null(strchr(line, '\n'));
        assert_true(strncmp(line, "{\"protected\":\"", 14) == 0);
        /* The protected header is exactly {"alg":"ES256","kid":"<kid>"}. */
        h = line + 14;
        e = strchr(h, '"');
        assert_int_equal(plat_b64url_decode(h, (size_t)(e - h), (uint8_t *)hdr, sizeof(hdr) - 1, &n), 0);
        hdr[n] = '\0';
        snprintf(want, sizeof(want), "{\"alg\":\"ES256\",\"kid\":\"%s\"}", plat_signer_kid(f->signer));
        assert_string_equal(hdr, want);

        assert_int_equal(verify(f, line, f->key, &out, &n), 0);
        assert_int_equal(n, strlen(payload));
        assert_string_equal(out, payload);
        free(out);
        free(line);
}

static void test_rfc7515_a3_example_verifies_as_flattened_json(void **state) {
        static const char line[] =
                "{\"payload\":"
                "\"eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0"
                "cnVlfQ\",\"protected\":\"eyJhbGciOiJFUzI1NiJ9\",\"signature\":"
                "\"DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-"
                "F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q\"}";
        static const char x64[] = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
        static const char y64[] = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
        struct fx *f = *state;
        struct plat_verifier *v = NULL;
        uint8_t x[32], y[32];
        char *out = NULL;
        size_t n;

        assert_int_equal(plat_b64url_decode(x64, strlen(x64), x, sizeof(x), &n), 0);
        assert_int_equal(plat_b64url_decode(y64, strlen(y64), y, sizeof(y), &n), 0);
        assert_int_equal(plat_verifier_from_point(x, y, &v, f->msg, sizeof(f->msg)), 0);
        assert_int_equal(verify(f, line, v, &out, &n), 0);
        assert_string_equal(
                out, "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}");
        free(out);
        /* Our key is not the example's. */
        assert_int_equal(verify(f, line, f->key, &out, &n), -EBADMSG);
        plat_verifier_free(v);
}

static void test_tampered_payload_header_or_signature_fails(void **state) {
        struct fx *f = *state;
        char *line = NULL, *out = NULL, *bad, *p;
        char *h64, *p64, *sig, hdr[128];
        size_t n;

        assert_int_equal(tu_jws_sign(f->signer, payload, strlen(payload), &line), 0);

        /* Payload: "seq":42 becomes "seq":43 under the same signature. */
        p = strdup(payload);
        strstr(p, "\"seq\":42")[7] = '3';
        p64 = b64(p);
        bad = strdup(line);
        memcpy(strstr(bad, "\"payload\":\"") + 11, p64, strlen(p64));
        assert_int_equal(verify(f, bad, f->key, &out, &n), -EBADMSG);
        assert_non_null(strstr(f->msg, "signature does not verify"));
        free(bad);
        free(p64);
        free(p);

        /* Header: the same members, spelt with a blank, under the same signature. */
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\", \"kid\":\"%s\"}", plat_signer_kid(f->signer));
        h64 = b64(hdr);
        p64 = b64(payload);
        sig = member(line, "signature");
        bad = assemble(NULL, h64, p64, sig);
        assert_int_equal(verify(f, bad, f->key, &out, &n), -EBADMSG);
        free(bad);
        free(sig);
        free(h64);
        free(p64);

        /* Signature: one bit of s. */
        bad = strdup(line);
        p = strstr(bad, "\"signature\":\"") + 13 + 60;
        *p = *p == 'A' ? 'B' : 'A';
        assert_int_equal(verify(f, bad, f->key, &out, &n), -EBADMSG);
        free(bad);
        assert_null(out);
        free(line);
}

static void test_alg_none_and_other_algorithms_are_refused(void **state) {
        static const char *const headers[] = {
                "{\"alg\":\"none\"}",  "{\"alg\":\"HS256\"}", "{\"alg\":\"RS256\"}",
                "{\"alg\":\"es256\"}", "{\"alg\":\"ES384\"}", "{\"alg\":\"ES256 \"}",
        };
        struct fx *f = *state;
        char *out = NULL, *h64, *p64, *line;
        size_t n;

        for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
                h64 = b64(headers[i]);
                p64 = b64(payload);
                /* alg none comes with an empty signature; the others with a real one. */
                line = assemble(f->signer, h64, p64, i == 0 ? "" : NULL);
                assert_int_equal(verify(f, line, f->key, &out, &n), -EOPNOTSUPP);
                assert_non_null(strstr(f->msg, "refused: records are signed with ES256 only"));
                f->msg[0] = '\0';
                assert_int_equal(jws_parse_unverified(line, strlen(line), &out, &n, f->msg, sizeof(f->msg)),
                                 -EOPNOTSUPP);
                free(line);
                free(h64);
                free(p64);
        }
        assert_null(out);
}

static void test_kid_of_another_key_is_refused_naming_both(void **state) {
        struct fx *f = *state;
        char *line = NULL, *out = NULL, hdr[128];
        size_t n;

        assert_int_equal(tu_jws_sign(f->other, payload, strlen(payload), &line), 0);
        assert_int_equal(verify(f, line, f->key, &out, &n), -EKEYREJECTED);
        assert_non_null(strstr(f->msg, plat_signer_kid(f->other)));
        assert_non_null(strstr(f->msg, plat_signer_kid(f->signer)));
        assert_non_null(strstr(f->msg, "does not name the verification key"));
        free(line);

        /* Our kid on another key's signature: the kid is no authority, the signature decides. */
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"kid\":\"%s\"}", plat_signer_kid(f->signer));
        line = with_header(f->other, hdr);
        assert_int_equal(verify(f, line, f->key, &out, &n), -EBADMSG);
        free(line);

        /* No kid at all: checked against the key given. */
        line = with_header(f->signer, "{\"alg\":\"ES256\"}");
        assert_int_equal(verify(f, line, f->key, &out, &n), 0);
        free(out);
        free(line);
}

/* fmt with %1$s, %2$s and %3$s replaced by a, b and c. Not printf: a format that skips an
 * argument (%1$s and %3$s only) is undefined there, and fortified glibc aborts on it. */
static void fill(char *out, size_t len, const char *fmt, const char *a, const char *b, const char *c) {
        const char *args[] = { a, b, c };
        size_t n = 0;

        for (const char *p = fmt; *p && n + 1 < len; p++) {
                if (p[0] == '%' && p[1] >= '1' && p[1] <= '3' && p[2] == '$' && p[3] == 's') {
                        const char *v = args[p[1] - '1'];
                        size_t k = strlen(v);

                        assert_true(n + k < len);
                        memcpy(out + n, v, k);
                        n += k;
                        p += 3;
                } else
                        out[n++] = *p;
        }
        out[n] = '\0';
}

static void test_malformed_records_are_refused_with_a_reason(void **state) {
        struct fx *f = *state;
        char *good = NULL, *out = NULL, *h64, *p64, *line, *sig;
        char bad[1024];
        size_t n;
        const struct {
                const char *fmt; /* %1$s protected, %2$s payload, %3$s signature */
                const char *says;
        } cases[] = {
                { "", "not a JWS: not JSON" },
                { "%1$s.%2$s.%3$s", "not a JWS: not JSON" },
                { "[\"%1$s\",\"%2$s\",\"%3$s\"]", "not a JWS: not a JSON object" },
                { "{\"protected\":\"%1$s\",\"payload\":\"%2$s\"}", "member \"signature\" is missing" },
                { "{\"protected\":\"%1$s\",\"payload\":\"%2$s\",\"signature\":\"%3$s\",\"header\":{}}",
                  "4 members, want exactly" },
                { "{\"protected\":\"%1$s\",\"payload\":\"%2$s\",\"signature\":\"%3$s\",\"payload\":\"%2$"
                  "s\"}",
                  "4 members, want exactly" },
                { "{\"protected\":\"%1$s\",\"payload\":42,\"signature\":\"%3$s\"}",
                  "member \"payload\" is not a string" },
                { "{\"payload\":\"%2$s\",\"signatures\":[{\"protected\":\"%1$s\",\"signature\":\"%3$s\"}]}",
                  "member \"protected\" is missing" },
                { "{\"protected\":\"%1$s\",\"payload\":\"%2$s\",\"signature\":\"%3$s\"} x",
                  "not a JWS: not JSON" },
                { "{\"protected\":\"%1$s\",\"payload\":\"%2$s==\",\"signature\":\"%3$s\"}",
                  "payload: not base64url" },
                { "{\"protected\":\"%1$s\",\"payload\":\"%2$s\",\"signature\":\"%3$s=\"}",
                  "signature: not base64url" },
                { "{\"protected\":\"%1$s\",\"payload\":\"%2$s\",\"signature\":\"%3$sAAAA\"}",
                  "signature: 67 bytes, ES256 has 64" },
                { "{\"protected\":\"%1$s\",\"payload\":\"%2$s\",\"signature\":\"AAAA\"}",
                  "signature: 3 bytes" },
                { "{\"protected\":\"%1$s\",\"payload\":\"\\u0041%2$s\",\"signature\":\"%3$s\"}",
                  "JSON escapes (\\) have no place" },
                { "{\"protected\":\"e30\",\"payload\":\"%2$s\",\"signature\":\"%3$s\"}",
                  "protected header: no alg" },
                { "{\"protected\":\"%1$s*\",\"payload\":\"%2$s\",\"signature\":\"%3$s\"}",
                  "protected header: not base64url" },
                { "{\"protected\":\"bm90IGpzb24\",\"payload\":\"%2$s\",\"signature\":\"%3$s\"}",
                  "protected header: not a JSON object" },
        };

        assert_int_equal(tu_jws_sign(f->signer, payload, strlen(payload), &good), 0);
        h64 = member(good, "protected");
        p64 = member(good, "payload");
        sig = member(good, "signature");
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                /* Positional arguments: each format uses the members it needs. */
                fill(bad, sizeof(bad), cases[i].fmt, h64, p64, sig);
                assert_int_equal(verify(f, bad, f->key, &out, &n), -EPROTO);
                if (!strstr(f->msg, cases[i].says))
                        fail_msg("case %zu: got \"%s\", want \"%s\"", i, f->msg, cases[i].says);
        }
        assert_null(out);

        /* Header members beyond alg and kid, and twice the same, are refused. */
        line = with_header(f->signer, "{\"alg\":\"ES256\",\"crit\":[\"b64\"],\"b64\":false}");
        assert_int_equal(verify(f, line, f->key, &out, &n), -EPROTO);
        assert_non_null(strstr(f->msg, "member \"crit\" is not supported"));
        free(line);
        line = with_header(f->signer, "{\"alg\":\"ES256\",\"alg\":\"none\"}");
        assert_int_equal(verify(f, line, f->key, &out, &n), -EPROTO);
        assert_non_null(strstr(f->msg, "\"alg\" appears twice"));
        free(line);
        line = with_header(f->signer, "{\"alg\":\"ES256\",\"kid\":7}");
        assert_int_equal(verify(f, line, f->key, &out, &n), -EPROTO);
        assert_non_null(strstr(f->msg, "\"kid\" is not a string"));
        free(line);
        free(sig);
        free(p64);
        free(h64);
        free(good);
}

static void test_member_order_and_blanks_do_not_matter(void **state) {
        struct fx *f = *state;
        char *good = NULL, *out = NULL, *h64, *p64, *sig, line[2048];
        size_t n;

        assert_int_equal(tu_jws_sign(f->signer, payload, strlen(payload), &good), 0);
        h64 = member(good, "protected");
        p64 = member(good, "payload");
        sig = member(good, "signature");
        /* jose writes {"signature":..., "payload":..., "protected":...}, others pretty-print. */
        snprintf(line, sizeof(line),
                 " { \"signature\" : \"%s\",\n\"payload\":\"%s\" ,\"protected\":\"%s\"}\r\n", sig, p64, h64);
        assert_int_equal(verify(f, line, f->key, &out, &n), 0);
        assert_string_equal(out, payload);
        free(out);
        free(sig);
        free(p64);
        free(h64);
        free(good);
}

static void test_payload_and_line_limits_hold(void **state) {
        struct fx *f = *state;
        char *big = malloc(JWS_LINE_MAX + 2), *line = NULL, *out = NULL;
        size_t n;

        assert_non_null(big);
        memset(big, 'x', JWS_LINE_MAX + 1);
        big[JWS_LINE_MAX + 1] = '\0';
        assert_int_equal(tu_jws_sign(f->signer, big, JWS_PAYLOAD_MAX + 1, &line), -EMSGSIZE);
        assert_null(line);
        assert_int_equal(tu_jws_sign(f->signer, big, JWS_PAYLOAD_MAX, &line), 0);
        assert_true(strlen(line) <= JWS_LINE_MAX);
        assert_int_equal(verify(f, line, f->key, &out, &n), 0);
        assert_int_equal(n, JWS_PAYLOAD_MAX);
        free(out);
        free(line);
        /* A line over the limit is refused before it is parsed. */
        assert_int_equal(verify(f, big, f->key, &out, &n), -EMSGSIZE);
        assert_non_null(strstr(f->msg, "65537 bytes, more than 65536"));
        free(big);
}

static void test_unverified_parse_reads_any_key_but_checks_the_form(void **state) {
        struct fx *f = *state;
        char *line = NULL, *out = NULL;
        size_t n;

        assert_int_equal(tu_jws_sign(f->other, payload, strlen(payload), &line), 0);
        assert_int_equal(jws_parse_unverified(line, strlen(line), &out, &n, f->msg, sizeof(f->msg)), 0);
        assert_string_equal(out, payload);
        free(out);
        out = NULL;
        assert_int_equal(jws_parse_unverified("{}", 2, &out, &n, f->msg, sizeof(f->msg)), -EPROTO);
        assert_null(out);
        /* Verification needs a key: none is a caller's mistake, not a pass. */
        assert_int_equal(jws_parse_verify(line, strlen(line), NULL, &out, &n, f->msg, sizeof(f->msg)),
                         -EINVAL);
        free(line);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_signed_record_is_one_line_that_verifies),
                cmocka_unit_test(test_rfc7515_a3_example_verifies_as_flattened_json),
                cmocka_unit_test(test_tampered_payload_header_or_signature_fails),
                cmocka_unit_test(test_alg_none_and_other_algorithms_are_refused),
                cmocka_unit_test(test_kid_of_another_key_is_refused_naming_both),
                cmocka_unit_test(test_malformed_records_are_refused_with_a_reason),
                cmocka_unit_test(test_member_order_and_blanks_do_not_matter),
                cmocka_unit_test(test_payload_and_line_limits_hold),
                cmocka_unit_test(test_unverified_parse_reads_any_key_but_checks_the_form),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
