/* test_flows.c: what a report_bytes request may say: the counters' form, peer ids that are text,
 * and the rate ceiling on byte deltas. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cleanup.h"
#include "flows.h"
#include "sessions.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define SEC UINT64_C(1000000)

/* flows_check_counters on the JSON text `counters`; msg gets the refusal. */
static int check(const char *counters, char *msg, size_t msg_len) {
        cJSON *c = cJSON_Parse(counters);
        int r;

        assert_non_null(c);
        msg[0] = '\0';
        r = flows_check_counters(c, msg, msg_len);
        cJSON_Delete(c);
        return r;
}

static void expect_refused(const char *counters, const char *text) {
        char msg[256];

        assert_int_equal(check(counters, msg, sizeof(msg)), -EPROTO);
        if (!strstr(msg, text))
                fail_msg("%s: got \"%s\", want \"%s\"", counters, msg, text);
}

static void test_well_formed_counters_pass(void **state) {
        char msg[256];

        (void)state;
        assert_int_equal(check("[]", msg, sizeof(msg)), 0);
        assert_int_equal(
                check("[{\"flow\":\"player\",\"bytes\":9007199254740992},"
                      "{\"flow\":\"viewer\",\"peer\":\"vic\",\"bytes\":0},"
                      "{\"flow\":\"push\",\"peer\":\"rtmp://live.example/\xe7\x9b\xb4\xe6\x92\xad\","
                      "\"bytes\":5},"
                      "{\"flow\":\"push\",\"peer\":\"vic\",\"bytes\":5}]",
                      msg, sizeof(msg)),
                0);
        assert_string_equal(msg, "");
}

static void test_malformed_counters_name_the_entry_and_the_fault(void **state) {
        char big[4096];
        size_t len;

        (void)state;
        expect_refused("{}", "\"counters\" must be an array of at most 32 objects");
        expect_refused("[{\"flow\":\"player\",\"bytes\":1},{\"flow\":\"audio\",\"bytes\":1}]",
                       "counters[1].flow must be \"player\", \"viewer\" or \"push\"");
        expect_refused("[7]", "counters[0].flow must be");
        expect_refused("[{\"flow\":\"viewer\",\"bytes\":1}]", "counters[0].peer must name the viewer");
        expect_refused("[{\"flow\":\"push\",\"peer\":\"\",\"bytes\":1}]", "counters[0].peer must name");
        expect_refused("[{\"flow\":\"player\",\"bytes\":-1}]",
                       "counters[0].bytes must be a whole number of bytes, 0..2^53");
        expect_refused("[{\"flow\":\"player\",\"bytes\":1.5}]", "counters[0].bytes must be");
        expect_refused("[{\"flow\":\"player\",\"bytes\":9007199254740994}]", "counters[0].bytes must be");
        expect_refused("[{\"flow\":\"player\",\"bytes\":\"9\"}]", "counters[0].bytes must be");
        expect_refused("[{\"flow\":\"push\",\"peer\":\"a\",\"bytes\":1},{\"flow\":\"push\",\"peer\":\"a\","
                       "\"bytes\":2}]",
                       "counters[1] repeats an earlier counter's peer");
        expect_refused("[{\"flow\":\"player\",\"bytes\":1},{\"flow\":\"player\",\"bytes\":2}]",
                       "counters[1] repeats");
        len = (size_t)snprintf(big, sizeof(big), "[");
        for (int k = 0; k <= SESSIONS_PEERS_MAX; k++)
                len += (size_t)snprintf(big + len, sizeof(big) - len,
                                        "%s{\"flow\":\"push\",\"peer\":\"p%d\",\"bytes\":1}", k ? "," : "",
                                        k);
        snprintf(big + len, sizeof(big) - len, "]");
        expect_refused(big, "at most 32");
}

/* A peer id reaches signed records (push_start's target): text only, never echoed when it is not. */
static void test_peer_ids_must_be_utf8_text_of_at_most_64_bytes(void **state) {
        static const char *const bad[] = {
                "[{\"flow\":\"push\",\"peer\":\"rtmp\xff\",\"bytes\":1}]",
                "[{\"flow\":\"push\",\"peer\":\"\xc3\",\"bytes\":1}]",
                "[{\"flow\":\"push\",\"peer\":\"\xed\xa0\x80\",\"bytes\":1}]",
                "[{\"flow\":\"push\",\"peer\":\"a\\u001b[31m\",\"bytes\":1}]",
                "[{\"flow\":\"push\",\"peer\":\"a\\nb\",\"bytes\":1}]",
                "[{\"flow\":\"viewer\",\"peer\":\"v\\u0085\",\"bytes\":1}]",
                "[{\"flow\":\"push\",\"peer\":"
                "\"0123456789012345678901234567890123456789012345678901234567890123x\",\"bytes\":1}]",
        };
        char msg[256];

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_int_equal(check(bad[i], msg, sizeof(msg)), -EPROTO);
                assert_non_null(strstr(msg, "counters[0].peer must name the viewer or push target: 1..64 "
                                            "bytes of UTF-8 text without control characters"));
                assert_null(strchr(msg, '\xff'));
        }
        /* 64 bytes of text, multi-byte characters included, are fine. */
        assert_int_equal(check("[{\"flow\":\"push\",\"peer\":"
                               "\"\xe7\x9b\xb4\xe6\x92\xad"
                               "0123456789012345678901234567890123456789012345678901234567\",\"bytes\":1}]",
                               msg, sizeof(msg)),
                         0);
}

static int rate(const char *counter, uint64_t bytes, uint64_t span, unsigned max_mbps, char *msg,
                size_t msg_len) {
        cJSON *c = cJSON_Parse(counter);
        int r;

        assert_non_null(c);
        msg[0] = '\0';
        r = flows_check_rate(c, 3, bytes, 1000 * SEC, 1000 * SEC + span, max_mbps, msg, msg_len);
        cJSON_Delete(c);
        return r;
}

static void test_rate_ceiling_refuses_faster_deltas_naming_flow_peer_and_rate(void **state) {
        const char *push = "{\"flow\":\"push\",\"peer\":\"rtmp-1\",\"bytes\":0}";
        char msg[256];

        (void)state;
        /* 1000 Mbit/s is 125,000,000 bytes a second: exactly that passes, one byte more does not. */
        assert_int_equal(rate(push, 125000000, SEC, 1000, msg, sizeof(msg)), 0);
        assert_int_equal(rate(push, 1250000000, 10 * SEC, 1000, msg, sizeof(msg)), 0);
        assert_int_equal(rate(push, 125000001, SEC, 1000, msg, sizeof(msg)), -ERANGE);
        assert_string_equal(msg,
                            "counters[3] (push rtmp-1): 125000001 bytes in 1.0 s is 1000 Mbit/s, faster "
                            "than sessions.max_flow_mbps (1000); nothing in this report is counted");
        /* The 2^53 bytes of a broken counter, two seconds after the previous report. */
        assert_int_equal(rate("{\"flow\":\"player\",\"bytes\":0}", UINT64_C(9007199254740992), 2 * SEC, 1000,
                              msg, sizeof(msg)),
                         -ERANGE);
        assert_string_equal(msg, "counters[3] (player): 9007199254740992 bytes in 2.0 s is 36028797019 "
                                 "Mbit/s, faster than sessions.max_flow_mbps (1000); nothing in this "
                                 "report is counted");
        /* A span under a second (or none: a clock step back) counts as one second. */
        assert_int_equal(rate(push, 125000000, 0, 1000, msg, sizeof(msg)), 0);
        assert_int_equal(rate(push, 125000000, 1000, 1000, msg, sizeof(msg)), 0);
        assert_int_equal(rate(push, 125000001, 0, 1000, msg, sizeof(msg)), -ERANGE);
        /* A long span cannot overflow into a refusal. */
        assert_int_equal(rate(push, UINT64_C(9007199254740992), UINT64_MAX / 2, 100000, msg, sizeof(msg)),
                         0);
        /* The ceiling is the configured one. */
        assert_int_equal(rate(push, 1250001, SEC, 10, msg, sizeof(msg)), -ERANGE);
        assert_non_null(strstr(msg, "sessions.max_flow_mbps (10)"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_well_formed_counters_pass),
                cmocka_unit_test(test_malformed_counters_name_the_entry_and_the_fault),
                cmocka_unit_test(test_peer_ids_must_be_utf8_text_of_at_most_64_bytes),
                cmocka_unit_test(test_rate_ceiling_refuses_faster_deltas_naming_flow_peer_and_rate),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
