/* test_gauges.c: the flat per-host, per-slot and per-GPU documents derived from telemetry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"
#include "gauges.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CFG_JSON                                                                         \
        "{\"node\":{\"id\":\"n1\",\"region\":\"eu\"},\"sampling\":{\"gauges_every\":5}," \
        "\"mqtt\":{\"host\":\"h\",\"tls\":false,\"topic_prefix\":\"fleet/x\"},"          \
        "\"slots\":[{\"id\":\"s0\",\"scale\":\"M\",\"iface\":\"veth-s0\",\"gpu\":0},"    \
        "{\"id\":\"s1\",\"scale\":\"cpu-4\",\"iface\":\"gone0\"}]}"

#define TELE                                                                                             \
        "{\"v\":1,\"type\":\"telemetry\",\"seq\":3,\"cpu\":{\"cores\":32,\"util_pct\":41.27},"           \
        "\"memory\":{\"total_bytes\":1000,\"available_bytes\":600,\"used_pct\":40.0},"                   \
        "\"slots\":[{\"id\":\"s0\",\"scale\":\"M\",\"cgroup\":{\"cores_used\":1.5,\"memory_bytes\":42}," \
        "\"gpu\":{\"index\":0,\"shared\":true,\"vram_used_bytes\":7},"                                   \
        "\"usage_pct\":{\"cpu\":37.5,\"bandwidth\":12.0},\"bandwidth_mbps\":2.4},"                       \
        "{\"id\":\"s1\",\"scale\":\"cpu-4\",\"cgroup_state\":\"absent\"}],"                              \
        "\"gpus\":[{\"index\":0,\"util_pct\":55.0,\"vram_total_bytes\":100}]}"

struct seen {
        size_t n;
        char topic[8][128];
        cJSON *doc[8];
        int fail_at; /* 1-based call to fail with -EIO; 0: never */
};

static int collect(void *userdata, const char *topic, const char *payload) {
        struct seen *s = userdata;

        if (s->fail_at && (int)s->n + 1 == s->fail_at)
                return -EIO;
        assert_true(s->n < 8);
        snprintf(s->topic[s->n], sizeof(s->topic[0]), "%s", topic);
        s->doc[s->n] = cJSON_Parse(payload);
        assert_non_null(s->doc[s->n]);
        s->n++;
        return 0;
}

static void seen_free(struct seen *s) {
        for (size_t i = 0; i < s->n; i++)
                cJSON_Delete(s->doc[i]);
}

static double num(const cJSON *o, const char *key) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        assert_true(cJSON_IsNumber(v));
        return v->valuedouble;
}

static struct cfg *load_cfg(void) {
        struct cfg_problems p = { 0 };
        struct cfg *c = NULL;

        assert_int_equal(cfg_parse("/etc/agent.json", CFG_JSON, strlen(CFG_JSON), &c, &p), 0);
        assert_int_equal(c->sampling_gauges_every, 5);
        return c;
}

static void test_each_slot_gets_a_topic_named_by_id_and_scale(void **state) {
        struct cfg *c = load_cfg();
        struct seen s = { 0 };

        (void)state;
        assert_int_equal(gauges_publish(c, TELE, NULL, collect, &s), 4);
        assert_string_equal(s.topic[0], "fleet/x/eu/n1/gauges/host");
        assert_string_equal(s.topic[1], "fleet/x/eu/n1/gauges/slot/s0/M");
        assert_string_equal(s.topic[2], "fleet/x/eu/n1/gauges/slot/s1/cpu-4");
        assert_string_equal(s.topic[3], "fleet/x/eu/n1/gauges/gpu/0");
        assert_float_equal(num(s.doc[0], "cpu_util_pct"), 41.27, 1e-9);
        assert_float_equal(num(s.doc[0], "memory_used_pct"), 40.0, 1e-9);
        assert_float_equal(num(s.doc[1], "cpu_cores_used"), 1.5, 1e-9);
        assert_float_equal(num(s.doc[1], "cpu_usage_pct"), 37.5, 1e-9);
        assert_float_equal(num(s.doc[1], "bandwidth_usage_pct"), 12.0, 1e-9);
        assert_float_equal(num(s.doc[1], "vram_used_bytes"), 7, 1e-9);
        assert_float_equal(num(s.doc[3], "util_pct"), 55.0, 1e-9);
        seen_free(&s);
        cfg_free(c);
}

static void test_slot_carries_its_scale_limits_and_no_absent_metric(void **state) {
        struct cfg *c = load_cfg();
        struct seen s = { 0 };

        (void)state;
        assert_int_equal(gauges_publish(c, TELE, NULL, collect, &s), 4);
        /* cpu-4: 4 vCPU, no GPU memory, so no vram limit; its session-less cgroup has no usage. */
        assert_float_equal(num(s.doc[2], "limit_vcpu"), 4, 1e-9);
        assert_true(num(s.doc[2], "limit_ram_bytes") > 0);
        assert_null(cJSON_GetObjectItemCaseSensitive(s.doc[2], "limit_vram_bytes"));
        assert_null(cJSON_GetObjectItemCaseSensitive(s.doc[2], "cpu_cores_used"));
        assert_null(cJSON_GetObjectItemCaseSensitive(s.doc[2], "held")); /* no slots given */
        assert_null(cJSON_GetObjectItemCaseSensitive(s.doc[0], "sessions_held"));
        seen_free(&s);
        cfg_free(c);
}

static void test_not_a_telemetry_document_is_refused(void **state) {
        struct cfg *c = load_cfg();
        struct seen s = { 0 };

        (void)state;
        assert_int_equal(gauges_publish(c, "{\"type\":\"status\"}", NULL, collect, &s), -EPROTO);
        assert_int_equal(gauges_publish(c, "{not json", NULL, collect, &s), -EPROTO);
        assert_int_equal(gauges_publish(c, NULL, NULL, collect, &s), -EPROTO);
        assert_int_equal(s.n, 0);
        cfg_free(c);
}

static void test_publish_failure_stops_the_round(void **state) {
        struct cfg *c = load_cfg();
        struct seen s = { .fail_at = 2 };

        (void)state;
        assert_int_equal(gauges_publish(c, TELE, NULL, collect, &s), -EIO);
        assert_int_equal(s.n, 1);
        seen_free(&s);
        cfg_free(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_each_slot_gets_a_topic_named_by_id_and_scale),
                cmocka_unit_test(test_slot_carries_its_scale_limits_and_no_absent_metric),
                cmocka_unit_test(test_not_a_telemetry_document_is_refused),
                cmocka_unit_test(test_publish_failure_stops_the_round),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
