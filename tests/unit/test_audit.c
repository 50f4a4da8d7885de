/* test_audit.c: checking record streams: order, redeliveries, conflicts, gaps, chain breaks, bad lines,
 * nodes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "audit.h"
#include "base64.h"
#include "jws.h"
#include "testsign.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZEROS "0000000000000000000000000000000000000000000000000000000000000000"
#define MAXREC 16

/* A signed chain of records of node n1, seq 1..MAXREC, and the lines fed to the audit. */
struct fx {
        struct plat_signer *signer, *other;
        struct plat_verifier *key;
        char *chain[MAXREC + 1]; /* chain[seq], a correct record */
        char hash[MAXREC + 1][PLAT_SHA256_HEX_LEN + 1];
        struct audit *a;
        uint64_t lineno;
        char *text;
};

static char *sign(struct plat_signer *s, const char *payload) {
        char *line = NULL;

        assert_int_equal(tu_jws_sign(s, payload, strlen(payload), &line), 0);
        return line;
}

/* A record's payload; its hash goes to ret_hash when not NULL. */
static char *payload_of(const char *node, uint64_t seq, const char *prev, const char *type,
                        const char *extra, char ret_hash[PLAT_SHA256_HEX_LEN + 1]) {
        char *p;
        uint8_t d[PLAT_SHA256_LEN];

        assert_true(asprintf(&p,
                             "{\"v\":1,\"type\":\"%s\",\"node\":\"%s\",\"region\":\"r1\",\"seq\":%" PRIu64
                             ",\"prev\":\"%s\",\"ts\":\"2026-12-01T13:00:%02" PRIu64 ".123Z\"%s}",
                             type, node, seq, prev, seq % 60, extra) > 0);
        if (ret_hash) {
                assert_int_equal(plat_sha256(p, strlen(p), d), 0);
                plat_sha256_hex(d, ret_hash);
        }
        return p;
}

static int setup(void **state) {
        struct fx *f = calloc(1, sizeof(*f));
        char msg[256];

        assert_non_null(f);
        assert_int_equal(plat_signer_generate(&f->signer, msg, sizeof(msg)), 0);
        assert_int_equal(plat_signer_generate(&f->other, msg, sizeof(msg)), 0);
        assert_int_equal(plat_verifier_from_signer(f->signer, &f->key, msg, sizeof(msg)), 0);
        for (uint64_t seq = 1; seq <= MAXREC; seq++) {
                char *p = payload_of("n1", seq, seq == 1 ? ZEROS : f->hash[seq - 1],
                                     seq % 4 == 1 ? "session_start" : "bandwidth_minute", "", f->hash[seq]);

                f->chain[seq] = sign(f->signer, p);
                free(p);
        }
        assert_int_equal(audit_new(f->key, &f->a), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fx *f = *state;

        audit_free(f->a);
        for (size_t i = 0; i <= MAXREC; i++)
                free(f->chain[i]);
        free(f->text);
        plat_verifier_free(f->key);
        plat_signer_free(f->signer);
        plat_signer_free(f->other);
        free(f);
        return 0;
}

static void feed(struct fx *f, const char *line) {
        assert_int_equal(audit_line(f->a, line, strlen(line), ++f->lineno), 0);
}

/* Finishes the audit and keeps its human summary in f->text. */
static const char *finish(struct fx *f) {
        size_t n;
        FILE *m = open_memstream(&f->text, &n);

        assert_non_null(m);
        assert_int_equal(audit_finish(f->a), 0);
        audit_print_text(f->a, m);
        fclose(m);
        return f->text;
}

static void assert_says(struct fx *f, const char *what) {
        if (!strstr(f->text, what))
                fail_msg("the summary does not say \"%s\":\n%s", what, f->text);
}

static void test_complete_chain_in_order_passes(void **state) {
        struct fx *f = *state;

        for (int s = 1; s <= 8; s++)
                feed(f, f->chain[s]);
        finish(f);
        assert_true(audit_ok(f->a));
        assert_says(f, "records: 8 good of 8 lines; 8 unique, 0 duplicates");
        assert_says(f, "node n1 (region r1): seq 1..8: 8 unique, 0 duplicates");
        assert_says(f, "types: bandwidth_minute 6, session_start 2");
        assert_says(f, "result: OK");
}

static void test_records_out_of_order_and_blank_lines_still_pass(void **state) {
        static const int order[] = { 5, 2, 8, 1, 7, 3, 6, 4 };
        struct fx *f = *state;

        for (size_t i = 0; i < 8; i++) {
                feed(f, f->chain[order[i]]);
                feed(f, i % 2 ? "" : "  \t\r");
        }
        finish(f);
        assert_true(audit_ok(f->a));
        assert_says(f, "records: 8 good of 8 lines");
        assert_says(f, "seq 1..8");
}

static void test_identical_redelivery_is_counted_not_failed(void **state) {
        struct fx *f = *state;

        for (int s = 1; s <= 4; s++)
                feed(f, f->chain[s]);
        feed(f, f->chain[3]);
        feed(f, f->chain[3]);
        finish(f);
        assert_true(audit_ok(f->a));
        assert_says(f, "records: 6 good of 6 lines; 4 unique, 2 duplicates");
}

static void test_same_seq_with_another_payload_is_a_conflict(void **state) {
        struct fx *f = *state;
        char *p = payload_of("n1", 3, f->hash[2], "bandwidth_minute", ",\"bytes\":1", NULL);
        char *line = sign(f->signer, p);

        for (int s = 1; s <= 4; s++)
                feed(f, f->chain[s]);
        feed(f, line);
        finish(f);
        assert_false(audit_ok(f->a));
        assert_says(f, "conflicts (same seq, different payload): 1");
        assert_says(f, "seq 3: lines ");
        assert_says(f, "result: FAILED: 1 conflict;");
        free(line);
        free(p);
}

static void test_missing_seqs_are_gaps_listed_as_ranges(void **state) {
        struct fx *f = *state;

        for (int s = 1; s <= 10; s++)
                if (s != 3 && s != 4 && s != 7)
                        feed(f, f->chain[s]);
        finish(f);
        assert_false(audit_ok(f->a));
        assert_says(f, "seq 1..10: 7 unique");
        assert_says(f, "gaps: 2 (3 seq missing): 3..4, 7");
        /* Across a gap the chain cannot be checked, and is not reported broken. */
        assert_null(strstr(f->text, "chain breaks"));
        assert_says(f, "result: FAILED: 2 gaps;");
}

static void test_wrong_prev_is_a_chain_break_naming_both_lines(void **state) {
        struct fx *f = *state;
        char *p = payload_of("n1", 3, f->hash[1], "bandwidth_minute", "", NULL); /* prev of seq 1, not 2 */
        char *line = sign(f->signer, p);

        feed(f, f->chain[1]);
        feed(f, f->chain[2]);
        feed(f, line);
        feed(f, f->chain[4]);
        finish(f);
        assert_false(audit_ok(f->a));
        assert_says(f, "chain breaks: 2");
        assert_says(f, "seq 3 (line 3): prev is not the SHA-256 of seq 2 (line 2)");
        /* seq 4 names the real seq 3's hash, not this one's: a second break. */
        assert_says(f, "seq 4 (line 4): prev is not the SHA-256 of seq 3 (line 3)");
        free(line);
        free(p);
}

static void test_first_record_must_have_a_zero_prev(void **state) {
        struct fx *f = *state;
        char *p = payload_of("n1", 1, f->hash[5], "session_start", "", NULL);
        char *line = sign(f->signer, p);

        feed(f, line);
        finish(f);
        assert_false(audit_ok(f->a));
        assert_says(f, "seq 1 (line 1): the first record's prev must be zeros");
        free(line);
        free(p);
}

static void test_bad_lines_are_reported_by_number_and_the_rest_checked(void **state) {
        struct fx *f = *state;
        char *other = sign(f->other, "{}");
        char *not_record = sign(f->signer, "{\"v\":1,\"type\":\"x\"}");
        char *tampered = strdup(f->chain[2]);
        char *none, *p64, *h64, *sig;
        char *payload_text = payload_of("n1", 2, f->hash[1], "bandwidth_minute", "", NULL);

        /* alg none: a header of {"alg":"none"} and no signature. */
        h64 = calloc(1, 64);
        p64 = calloc(1, 1024);
        assert_int_equal(plat_b64url_encode("{\"alg\":\"none\"}", 14, h64, 64, NULL), 0);
        assert_int_equal(plat_b64url_encode(payload_text, strlen(payload_text), p64, 1024, NULL), 0);
        assert_true(asprintf(&none, "{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"\"}", h64,
                             p64) > 0);
        sig = strstr(tampered, "\"signature\":\"") + 20;
        *sig = *sig == 'A' ? 'B' : 'A';

        feed(f, f->chain[1]);
        feed(f, "this is not JSON");
        feed(f, other);
        feed(f, tampered);
        feed(f, none);
        feed(f, not_record);
        feed(f, f->chain[2]);
        audit_line_too_long(f->a, ++f->lineno, 65536);
        feed(f, f->chain[3]);
        finish(f);
        assert_false(audit_ok(f->a));
        assert_says(f, "records: 3 good of 9 lines");
        assert_says(f, "seq 1..3: 3 unique");
        assert_says(f, "bad lines: 6 (2 not a JWS, 1 alg refused, 1 signed with another key, 1 bad "
                       "signature, 1 not "
                       "a metering record)");
        assert_says(f, "line 2: not a JWS: not JSON");
        assert_says(f, "line 3: kid ");
        assert_says(f, "line 4: signature does not verify");
        assert_says(f, "line 5: protected header: alg \"none\" refused");
        assert_says(f, "line 6: payload: \"node\" missing or malformed");
        assert_says(f, "line 8: not a record: longer than 65536 bytes");
        assert_says(f, "result: FAILED: 6 bad lines;");
        free(payload_text);
        free(tampered);
        free(none);
        free(h64);
        free(p64);
        free(other);
        free(not_record);
}

static void test_without_a_key_nothing_passes(void **state) {
        struct fx *f = *state;

        audit_free(f->a);
        assert_int_equal(audit_new(NULL, &f->a), 0);
        for (int s = 1; s <= 3; s++)
                feed(f, f->chain[s]);
        finish(f);
        assert_false(audit_ok(f->a));
        assert_says(f, "signatures: NOT CHECKED");
        assert_says(f, "seq 1..3: 3 unique");
        assert_says(f, "result: FAILED: signatures not checked;");
}

static void test_nodes_are_checked_each_on_its_own(void **state) {
        struct fx *f = *state;
        char h[3][PLAT_SHA256_HEX_LEN + 1];
        char *p, *line;

        /* n2: seq 1, 2, 4 interleaved with n1's complete 1..3. */
        for (uint64_t s = 1; s <= 4; s++) {
                p = payload_of("n2", s, s == 1 ? ZEROS : h[(s - 1) % 3], "heartbeat", "", h[s % 3]);
                line = sign(f->signer, p);
                if (s != 3)
                        feed(f, line);
                if (s <= 3)
                        feed(f, f->chain[s]);
                free(line);
                free(p);
        }
        finish(f);
        assert_false(audit_ok(f->a));
        assert_says(f, "node n1 (region r1): seq 1..3: 3 unique, 0 duplicates");
        assert_says(f, "node n2 (region r1): seq 1..4: 3 unique, 0 duplicates");
        assert_says(f, "gaps: 1 (1 seq missing): 3\n");
}

/* A good signature says which key signed, not for which node: with the certificate's CN set, a
 * record of another node is a bad line naming its seq, its node and the CN, and the stream fails. */
static void test_record_of_another_node_than_the_certificate_fails(void **state) {
        struct fx *f = *state;
        char *p = payload_of("n2", 4, f->hash[3], "bandwidth_minute", "", NULL);
        char *foreign = sign(f->signer, p);

        assert_int_equal(audit_expect_node(f->a, "n1"), 0);
        for (int s = 1; s <= 3; s++)
                feed(f, f->chain[s]);
        feed(f, foreign);
        feed(f, f->chain[4]);
        finish(f);
        assert_false(audit_ok(f->a));
        assert_says(f, "node: every record must name n1, the certificate's CN");
        assert_says(f, "records: 4 good of 5 lines");
        assert_says(f, "node n1 (region r1): seq 1..4: 4 unique, 0 duplicates");
        assert_says(f, "bad lines: 1 (1 naming another node than the certificate's CN)");
        assert_says(f, "line 4: seq 4: node \"n2\" is not the certificate's CN \"n1\"");
        assert_says(f, "result: FAILED: 1 bad line;");
        if (strstr(f->text, "node n2"))
                fail_msg("a record of another node was counted as one:\n%s", f->text);
        {
                char *text = NULL;
                size_t n;
                FILE *m = open_memstream(&text, &n);
                cJSON *o, *bad;

                assert_non_null(m);
                assert_int_equal(audit_print_json(f->a, m), 0);
                fclose(m);
                o = cJSON_Parse(text);
                assert_non_null(o);
                assert_string_equal(cJSON_GetObjectItem(o, "cert_cn")->valuestring, "n1");
                assert_int_equal(
                        cJSON_GetObjectItem(cJSON_GetObjectItem(o, "bad_lines"), "wrong_node")->valueint, 1);
                bad = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "bad_line_list"), 0);
                assert_string_equal(cJSON_GetObjectItem(bad, "kind")->valuestring, "wrong_node");
                assert_int_equal(cJSON_GetObjectItem(bad, "line")->valueint, 4);
                cJSON_Delete(o);
                free(text);
        }
        free(foreign);
        free(p);
}

static void test_expected_node_must_be_a_node_name(void **state) {
        struct fx *f = *state;

        assert_int_equal(audit_expect_node(f->a, ""), -EINVAL);
        assert_int_equal(audit_expect_node(f->a, "a/b"), -EINVAL);
        /* Refused names leave the check off: the chain alone passes. */
        for (int s = 1; s <= 2; s++)
                feed(f, f->chain[s]);
        finish(f);
        assert_true(audit_ok(f->a));
}

static void test_json_summary_carries_the_counts(void **state) {
        struct fx *f = *state;
        char *text = NULL;
        size_t n;
        FILE *m = open_memstream(&text, &n);
        cJSON *o, *node;

        for (int s = 1; s <= 6; s++)
                if (s != 4)
                        feed(f, f->chain[s]);
        feed(f, f->chain[2]);
        feed(f, "garbage");
        assert_int_equal(audit_finish(f->a), 0);
        assert_int_equal(audit_print_json(f->a, m), 0);
        fclose(m);
        o = cJSON_Parse(text);
        assert_non_null(o);
        assert_true(cJSON_IsFalse(cJSON_GetObjectItem(o, "ok")));
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "signatures_checked")));
        assert_string_equal(cJSON_GetObjectItem(o, "kid")->valuestring, plat_signer_kid(f->signer));
        assert_int_equal(cJSON_GetObjectItem(o, "lines")->valueint, 7);
        assert_int_equal(cJSON_GetObjectItem(o, "records")->valueint, 6);
        assert_int_equal(cJSON_GetObjectItem(o, "unique")->valueint, 5);
        assert_int_equal(cJSON_GetObjectItem(o, "duplicates")->valueint, 1);
        assert_int_equal(cJSON_GetObjectItem(o, "gaps")->valueint, 1);
        assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "bad_lines"), "not_jws")->valueint, 1);
        node = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "nodes"), 0);
        assert_string_equal(cJSON_GetObjectItem(node, "node")->valuestring, "n1");
        assert_int_equal(cJSON_GetObjectItem(node, "first_seq")->valueint, 1);
        assert_int_equal(cJSON_GetObjectItem(node, "last_seq")->valueint, 6);
        assert_int_equal(
                cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(node, "gaps"), 0), "from")
                        ->valueint,
                4);
        assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(node, "types"), "session_start")->valueint,
                         2);
        assert_int_equal(
                cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "bad_line_list"), 0), "line")
                        ->valueint,
                7);
        cJSON_Delete(o);
        free(text);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_complete_chain_in_order_passes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_records_out_of_order_and_blank_lines_still_pass, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_identical_redelivery_is_counted_not_failed, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_same_seq_with_another_payload_is_a_conflict, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_missing_seqs_are_gaps_listed_as_ranges, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_wrong_prev_is_a_chain_break_naming_both_lines, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_first_record_must_have_a_zero_prev, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_lines_are_reported_by_number_and_the_rest_checked,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_without_a_key_nothing_passes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_nodes_are_checked_each_on_its_own, setup, teardown),
                cmocka_unit_test_setup_teardown(test_record_of_another_node_than_the_certificate_fails,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_expected_node_must_be_a_node_name, setup, teardown),
                cmocka_unit_test_setup_teardown(test_json_summary_carries_the_counts, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
