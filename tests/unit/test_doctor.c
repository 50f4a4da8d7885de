/* test_doctor.c: doctor's findings, the exit status they make, its JSON, the clock check through an
 * injected adjtimex, and the checks on an agent's status as the agent reports it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clocksync.h"
#include "doctor.h"

#include <stdlib.h>
#include <string.h>
#include <sys/timex.h>

static struct {
        bool unsynced;
        long est;
} fake;

static int fake_adjtimex(struct timex *t) {
        t->status = fake.unsynced ? STA_UNSYNC : STA_PLL;
        t->esterror = fake.est;
        t->maxerror = fake.est * 2;
        return fake.unsynced ? TIME_ERROR : TIME_OK;
}

static int setup(void **state) {
        *state = calloc(1, sizeof(struct doctor));
        memset(&fake, 0, sizeof(fake));
        clocksync_set_adjtimex(fake_adjtimex);
        return *state ? 0 : -1;
}

static int teardown(void **state) {
        free(*state);
        clocksync_set_adjtimex(NULL);
        return 0;
}

static const struct doctor_finding *find(const struct doctor *d, const char *check) {
        const struct doctor_finding *found = NULL;

        for (size_t i = 0; i < d->n; i++)
                if (!strcmp(d->f[i].check, check)) {
                        assert_null(found);
                        found = &d->f[i];
                }
        assert_non_null(found);
        return found;
}

static void test_exit_status_is_the_worst_finding(void **state) {
        struct doctor *d = *state;

        assert_int_equal(doctor_exit_status(d), 0);
        doctor_add(d, DOCTOR_PASS, "a", NULL, "fine");
        assert_int_equal(doctor_exit_status(d), 0);
        doctor_add(d, DOCTOR_WARN, "b", "do b", "meh");
        assert_int_equal(doctor_exit_status(d), 1);
        doctor_add(d, DOCTOR_FAIL, "c", "do c", "bad %d", 7);
        doctor_add(d, DOCTOR_PASS, "d", NULL, "fine");
        assert_int_equal(doctor_exit_status(d), 2);
        assert_string_equal(find(d, "c")->evidence, "bad 7");
}

static void test_findings_past_the_cap_are_counted_as_a_warning(void **state) {
        struct doctor *d = *state;

        for (size_t i = 0; i < DOCTOR_CHECKS_MAX + 2; i++)
                doctor_add(d, DOCTOR_PASS, "x", NULL, "fine");
        assert_int_equal(d->n, DOCTOR_CHECKS_MAX);
        assert_int_equal(d->dropped, 2);
        assert_int_equal(doctor_exit_status(d), 1);
}

static void test_json_lists_checks_with_fix_only_when_not_passing(void **state) {
        struct doctor *d = *state;
        cJSON *j;
        char *text;

        doctor_add(d, DOCTOR_PASS, "config", NULL, "valid");
        doctor_add(d, DOCTOR_FAIL, "clock", "start NTP", "unsynchronised \"now\"");
        j = doctor_json(d, false);
        text = cJSON_PrintUnformatted(j);
        assert_string_equal(text, "{\"v\":1,\"result\":\"FAIL\",\"agent_running\":false,\"checks\":["
                                  "{\"check\":\"config\",\"result\":\"PASS\",\"evidence\":\"valid\"},"
                                  "{\"check\":\"clock\",\"result\":\"FAIL\",\"evidence\":"
                                  "\"unsynchronised \\\"now\\\"\",\"fix\":\"start NTP\"}],\"left_out\":0}");
        free(text);
        cJSON_Delete(j);
}

static void test_clock_check_fails_unsynced_warns_large_error_passes_synced(void **state) {
        struct doctor *d = *state;

        fake.unsynced = true;
        fake.est = 16000000;
        doctor_local(d, NULL, 0, 14);
        assert_int_equal(find(d, "clock")->level, DOCTOR_FAIL);
        assert_non_null(strstr(find(d, "clock")->evidence, "STA_UNSYNC"));
        assert_non_null(strstr(find(d, "clock")->fix, "NTP"));
        memset(d, 0, sizeof(*d));
        fake.unsynced = false;
        fake.est = 250000;
        doctor_local(d, NULL, 0, 14);
        assert_int_equal(find(d, "clock")->level, DOCTOR_WARN);
        memset(d, 0, sizeof(*d));
        fake.est = 300;
        doctor_local(d, NULL, 0, 14);
        assert_int_equal(find(d, "clock")->level, DOCTOR_PASS);
        assert_non_null(strstr(find(d, "clock")->evidence, "estimated error 300 us"));
        assert_int_equal(d->n, 1); /* without a config, only the clock */
}

static void test_agent_checks_name_tls_reason_refusal_and_nonconformance(void **state) {
        struct doctor *d = *state;
        cJSON *st = cJSON_Parse(
                "{\"broker\":{\"host\":\"b1\",\"port\":8883,\"state\":\"backoff\",\"last_error\":\"b1:8883: "
                "the "
                "broker's certificate failed verification: unable to get local issuer certificate\"},"
                "\"slots\":[{\"id\":\"s0\",\"scale\":\"S\",\"conformant\":false,\"nonconformant\":\"vcpu: "
                "needs 4\"},{\"id\":\"s1\",\"scale\":\"S\",\"conformant\":true}],"
                "\"metering\":{\"refusing_sessions\":\"the spool is full\",\"lost\":0,"
                "\"spool\":{\"pending\":12,\"used\":4096,\"max_bytes\":1048576,\"full\":true}}}");

        assert_non_null(st);
        doctor_agent(d, st, NULL);
        assert_int_equal(find(d, "broker")->level, DOCTOR_FAIL);
        assert_non_null(strstr(find(d, "broker")->evidence, "failed verification"));
        assert_non_null(strstr(find(d, "broker")->fix, "mqtt.tls.ca_file"));
        assert_int_equal(find(d, "conformance")->level, DOCTOR_FAIL);
        assert_non_null(strstr(find(d, "conformance")->evidence, "slot s0 (scale S)"));
        assert_int_equal(find(d, "spool")->level, DOCTOR_FAIL);
        assert_non_null(strstr(find(d, "spool")->evidence, "new sessions refused: the spool is full"));
        assert_int_equal(doctor_exit_status(d), 2);
        cJSON_Delete(st);
}

static void test_spool_without_consumer_warns_and_quiet_spool_passes(void **state) {
        struct doctor *d = *state;
        cJSON *st = cJSON_Parse("{\"broker\":{\"state\":\"connected\"},\"slots\":[],\"metering\":{"
                                "\"no_consumer\":true,\"no_consumer_since\":\"2026-12-05T00:00:00.000Z\","
                                "\"spool\":{\"pending\":3}}}");

        doctor_agent(d, st, NULL);
        assert_int_equal(find(d, "spool")->level, DOCTOR_WARN);
        assert_non_null(strstr(find(d, "spool")->evidence, "no consumer receives the records since"));
        assert_int_equal(find(d, "broker")->level, DOCTOR_PASS);
        cJSON_Delete(st);
        memset(d, 0, sizeof(*d));
        st = cJSON_Parse("{\"broker\":{\"state\":\"connected\"},\"slots\":[],\"metering\":{\"spool\":{"
                         "\"pending\":0}}}");
        doctor_agent(d, st, NULL);
        assert_int_equal(find(d, "spool")->level, DOCTOR_PASS);
        assert_int_equal(doctor_exit_status(d), 0);
        cJSON_Delete(st);
}

/* Sets status.metering.<object>.<member> to value and runs the agent checks again, afresh. */
static void recheck_with(struct doctor *d, cJSON *st, const char *object, const char *member, double value) {
        cJSON_SetNumberValue(
                cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(st, "metering"), object),
                                    member),
                value);
        memset(d, 0, sizeof(*d));
        doctor_agent(d, st, NULL);
}

static void test_spool_whose_oldest_record_waits_over_ten_minutes_warns_with_its_age(void **state) {
        struct doctor *d = *state;
        cJSON *st =
                cJSON_Parse("{\"broker\":{\"state\":\"connected\"},\"slots\":[],\"metering\":{"
                            "\"spool\":{\"pending\":2,\"oldest_pending_ts\":\"2026-12-05T00:00:00.000Z\","
                            "\"oldest_pending_age_s\":900}}}");

        doctor_agent(d, st, NULL);
        assert_int_equal(find(d, "spool")->level, DOCTOR_WARN);
        assert_non_null(
                strstr(find(d, "spool")->evidence, "the oldest made 900 s ago (2026-12-05T00:00:00.000Z)"));
        assert_non_null(strstr(find(d, "spool")->fix, "ACL"));
        recheck_with(d, st, "spool", "oldest_pending_age_s", 30);
        assert_int_equal(find(d, "spool")->level, DOCTOR_PASS);
        assert_non_null(strstr(find(d, "spool")->evidence, "the oldest made 30 s ago"));
        cJSON_Delete(st);
}

static void test_a_recent_clock_step_warns_an_old_one_passes(void **state) {
        struct doctor *d = *state;
        cJSON *st = cJSON_Parse(
                "{\"broker\":{\"state\":\"connected\"},\"metering\":{\"spool\":{},"
                "\"clock_steps\":{\"forward\":1,\"back\":0,\"last\":\"2026-12-05T03:00:00.000Z\","
                "\"last_s_ago\":42}}}");

        doctor_agent(d, st, NULL);
        assert_int_equal(find(d, "clock_steps")->level, DOCTOR_WARN);
        assert_non_null(strstr(find(d, "clock_steps")->evidence, "stepped 42 s ago"));
        recheck_with(d, st, "clock_steps", "last_s_ago", 86400);
        assert_int_equal(find(d, "clock_steps")->level, DOCTOR_PASS);
        cJSON_Delete(st);
}

static void test_each_slot_gpu_is_checked_from_the_spec(void **state) {
        struct doctor *d = *state;
        cJSON *st = cJSON_Parse("{\"broker\":{\"state\":\"connected\"},\"metering\":{\"spool\":{}}}");
        cJSON *spec = cJSON_Parse("{\"slots\":[{\"id\":\"s0\",\"gpu\":{\"index\":0,\"shared\":false,"
                                  "\"util_pct\":37.0}},{\"id\":\"s1\",\"gpu\":{\"index\":1,\"error\":"
                                  "\"no such GPU on this host\"}},{\"id\":\"s2\",\"gpu\":{\"index\":2,"
                                  "\"shared\":false}},{\"id\":\"s3\"}]}");
        size_t pass = 0, fail = 0;

        doctor_agent(d, st, spec);
        for (size_t i = 0; i < d->n; i++) {
                if (strcmp(d->f[i].check, "gpu") != 0)
                        continue;
                if (d->f[i].level == DOCTOR_PASS) {
                        pass++;
                        assert_string_equal(d->f[i].evidence, "slot s0: GPU 0 answers");
                } else {
                        fail++;
                        assert_true(strstr(d->f[i].evidence, "slot s1: GPU 1: no such GPU") ||
                                    strstr(d->f[i].evidence, "slot s2: GPU 2 answered none"));
                        assert_non_null(strstr(d->f[i].fix, "nvidia-smi"));
                }
        }
        assert_int_equal(pass, 1);
        assert_int_equal(fail, 2);
        cJSON_Delete(st);
        cJSON_Delete(spec);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_exit_status_is_the_worst_finding, setup, teardown),
                cmocka_unit_test_setup_teardown(test_findings_past_the_cap_are_counted_as_a_warning, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_json_lists_checks_with_fix_only_when_not_passing, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(
                        test_clock_check_fails_unsynced_warns_large_error_passes_synced, setup, teardown),
                cmocka_unit_test_setup_teardown(test_agent_checks_name_tls_reason_refusal_and_nonconformance,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_spool_whose_oldest_record_waits_over_ten_minutes_warns_with_its_age, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(test_spool_without_consumer_warns_and_quiet_spool_passes,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_a_recent_clock_step_warns_an_old_one_passes, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_each_slot_gpu_is_checked_from_the_spec, setup,
                                                teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
