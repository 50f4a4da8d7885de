/* test_config.c: config parsing and validation: defaults, every kind of problem and its message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"
#include "link_proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/ra-test-config-XXXXXX";
static char path[256];

static void write_file(const char *name, const char *content) {
        char p[512];
        FILE *f;

        snprintf(p, sizeof(p), "%s/%s", dir, name);
        f = fopen(p, "w");
        assert_non_null(f);
        fputs(content, f);
        fclose(f);
}

static int setup_dir(void **state) {
        (void)state;
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/agent.json", dir);
        write_file("ca.crt", "ca\n");
        write_file("client.crt", "cert\n");
        write_file("client.key", "key\n");
        return 0;
}

static int teardown_dir(void **state) {
        char cmd[512];

        (void)state;
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        return system(cmd);
}

#define TLS_OK "\"tls\":{\"ca_file\":\"ca.crt\",\"cert_file\":\"client.crt\",\"key_file\":\"client.key\"}"
#define NODE_OK "\"node\":{\"id\":\"render-01\",\"region\":\"eu-west\"}"

/* Parses `json` as the file `path`; returns the problems (caller frees) and the result code. */
static int parse(const char *json, struct cfg **ret, struct cfg_problems *p) {
        write_file("agent.json", json);
        *p = (struct cfg_problems){ 0 };
        return cfg_load(path, ret, p);
}

static bool has_problem(const struct cfg_problems *p, const char *text) {
        char want[1024];

        snprintf(want, sizeof(want), "%s%s", path, text);
        for (size_t i = 0; i < p->n; i++)
                if (strcmp(p->msgs[i], want) == 0)
                        return true;
        for (size_t i = 0; i < p->n; i++)
                print_message("problem: %s\n", p->msgs[i]);
        print_message("wanted:  %s\n", want);
        return false;
}

/* Expects exactly one problem with the given text (after "FILE"). */
static void expect_problem(const char *json, const char *text) {
        struct cfg_problems p;
        struct cfg *c = NULL;

        assert_int_equal(parse(json, &c, &p), -EINVAL);
        assert_null(c);
        assert_true(has_problem(&p, text));
        cfg_problems_done(&p);
}

static void test_minimal_config_gets_documented_defaults(void **state) {
        struct cfg_problems p;
        struct cfg *c = NULL;
        char want[512];

        (void)state;
        assert_int_equal(parse("{" NODE_OK ",\"mqtt\":{\"host\":\"broker.example\"," TLS_OK "}}", &c, &p),
                         0);
        assert_int_equal(p.n, 0);
        assert_string_equal(c->node_id, "render-01");
        assert_string_equal(c->node_region, "eu-west");
        assert_int_equal(c->sampling_interval_ms, 1000);
        assert_int_equal(c->mqtt.port, 8883);
        assert_true(c->mqtt.tls);
        assert_int_equal(c->mqtt.keepalive_s, 30);
        assert_string_equal(c->mqtt.topic_prefix, "render/v1");
        assert_string_equal(c->state_dir, "/var/lib/render-agent");
        assert_string_equal(c->control_socket, "/run/render-agent/agent.sock");
        assert_int_equal(c->n_slots, 0);
        /* Relative certificate paths resolve against the config file's directory. */
        snprintf(want, sizeof(want), "%s/ca.crt", dir);
        assert_string_equal(c->mqtt.ca_file, want);
        cfg_free(c);
}

static void test_full_config_reads_every_key(void **state) {
        struct cfg_problems p;
        struct cfg *c = NULL;

        (void)state;
        assert_int_equal(
                parse("{" NODE_OK ",\"sampling\":{\"interval_ms\":250},"
                      "\"mqtt\":{\"host\":\"10.0.0.1\",\"port\":18883,\"keepalive_s\":15,"
                      "\"topic_prefix\":\"fleet/a\"," TLS_OK "},"
                      "\"state_dir\":\"/var/lib/x\",\"control\":{\"socket\":\"/run/x.sock\"},"
                      "\"slots\":[{\"id\":\"s0\",\"scale\":\"L\",\"cgroup\":\"render.slice/s0\","
                      "\"iface\":\"veth-s0\",\"gpu\":1},{\"id\":\"s1\",\"scale\":\"arm-a1\",\"gpu\":null}],"
                      "\"gpu\":{\"nvml_library\":\"/opt/nvidia/"
                      "libnvidia-ml.so.1\",\"fp32_tflops\":{\"1\":31.2}},"
                      "\"scales\":{\"arm-a1\":{\"class\":\"arm\",\"vcpu\":8,\"ram_gb\":16,\"bandwidth_"
                      "mbps\":6},"
                      "\"M\":{\"vcpu\":6}},"
                      "\"events\":{\"bandwidth_over_s\":3,\"bandwidth_under_s\":7,\"memory_pressure_pct\":"
                      "80}}",
                      &c, &p),
                0);
        assert_int_equal(c->sampling_interval_ms, 250);
        assert_int_equal(c->mqtt.port, 18883);
        assert_int_equal(c->mqtt.keepalive_s, 15);
        assert_string_equal(c->mqtt.topic_prefix, "fleet/a");
        assert_string_equal(c->state_dir, "/var/lib/x");
        assert_string_equal(c->control_socket, "/run/x.sock");
        assert_int_equal(c->n_slots, 2);
        assert_string_equal(c->slots[0].cgroup, "render.slice/s0");
        assert_string_equal(c->slots[0].iface, "veth-s0");
        assert_int_equal(c->slots[0].gpu, 1);
        assert_string_equal(c->slots[1].scale, "arm-a1");
        assert_null(c->slots[1].iface);
        assert_int_equal(c->slots[1].gpu, -1);
        assert_ptr_equal(cfg_find_slot(c, "s1"), &c->slots[1]);
        assert_string_equal(c->gpu.nvml_library, "/opt/nvidia/libnvidia-ml.so.1");
        assert_float_equal(c->gpu.fp32_tflops[1], 31.2, 1e-9);
        assert_float_equal(c->gpu.fp32_tflops[0], 0, 1e-9);
        assert_int_equal(c->events.bandwidth_over_s, 3);
        assert_int_equal(c->events.bandwidth_under_s, 7);
        assert_int_equal(c->events.memory_pressure_pct, 80);
        /* A defined ARM scale joins the catalog; an override changes only the keys it gives. */
        assert_int_equal(spec_find(c, "arm-a1")->cls, HAL_CLASS_ARM);
        assert_int_equal(spec_find(c, "arm-a1")->ram_bytes, 16 * SPEC_GB);
        assert_false(spec_find(c, "arm-a1")->builtin);
        assert_int_equal(spec_find(c, "M")->vcpu, 6);
        assert_int_equal(spec_find(c, "M")->vram_bytes, 6 * SPEC_GB);
        assert_float_equal(spec_find(c, "M")->bandwidth_mbps, 8, 1e-9);
        assert_int_equal(spec_builtin_find("M")->vcpu, 4); /* the published table is untouched */
        assert_null(cfg_find_slot(c, "s9"));
        cfg_free(c);
}

static void test_tls_false_is_explicit_and_defaults_port_1883(void **state) {
        struct cfg_problems p;
        struct cfg *c = NULL;

        (void)state;
        assert_int_equal(parse("{" NODE_OK ",\"mqtt\":{\"host\":\"localhost\",\"tls\":false}}", &c, &p), 0);
        assert_false(c->mqtt.tls);
        assert_int_equal(c->mqtt.port, 1883);
        assert_null(c->mqtt.ca_file);
        cfg_free(c);
}

static void test_missing_tls_is_an_error(void **state) {
        (void)state;
        expect_problem(
                "{" NODE_OK ",\"mqtt\":{\"host\":\"h\"}}",
                ": mqtt.tls: required: an object with ca_file, cert_file and key_file (or false to run "
                "without TLS, which is not for production)");
}

static void test_port_out_of_range_names_key_and_value(void **state) {
        (void)state;
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"h\",\"port\":70000," TLS_OK "}}",
                       ": mqtt.port: must be 1..65535 (got 70000)");
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"h\",\"port\":1.5," TLS_OK "}}",
                       ": mqtt.port: must be 1..65535 (got 1.5)");
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"h\",\"port\":\"8883\"," TLS_OK "}}",
                       ": mqtt.port: must be an integer 1..65535 (got a string)");
}

static void test_syntax_error_reports_line_and_column(void **state) {
        (void)state;
        expect_problem("{\n  \"node\": {\"id\": \"a\",\n    \"region\" \"b\"}\n}\n",
                       ":3:14: syntax error near '\"b\"}'");
        expect_problem("{\"node\": {", ":1:11: syntax error: unexpected end of file");
        expect_problem("{} trailing", ":1:4: syntax error near 'trailing'");
        /* cJSON stops one byte into an unquoted key or a stray '}'; the message points at its start. */
        expect_problem("{\n  \"node\": {},\n    oops: 1\n}\n", ":3:5: syntax error near 'oops: 1'");
        expect_problem("{\n  \"node\": {\"id\": \"a\",}\n}\n", ":2:22: syntax error near '}'");
        expect_problem("{\n  \"node\": {\"id\": \"n1\",", ":2:23: syntax error: unexpected end of file");
}

static void test_unknown_and_duplicate_keys_are_errors(void **state) {
        (void)state;
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"h\",\"prot\":1," TLS_OK "}}",
                       ": mqtt.prot: unknown key");
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"h\"," TLS_OK "},\"sampling\":{\"interval\":5}}",
                       ": sampling.interval: unknown key");
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"h\",\"host\":\"g\"," TLS_OK "}}",
                       ": mqtt.host: duplicate key");
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"h\"," TLS_OK "},\"slotz\":[]}",
                       ": slotz: unknown key");
}

static void test_missing_certificate_file_is_named(void **state) {
        char want[512];

        (void)state;
        snprintf(want, sizeof(want),
                 ": mqtt.tls.key_file: cannot read %s/nope.key: No such file or directory", dir);
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"h\",\"tls\":{\"ca_file\":\"ca.crt\","
                       "\"cert_file\":\"client.crt\",\"key_file\":\"nope.key\"}}}",
                       want);
}

static void test_reconnect_window_and_redelivery_rate_default_and_are_checked(void **state) {
        struct cfg_problems p;
        struct cfg *c = NULL;

        (void)state;
        assert_int_equal(parse("{" NODE_OK ",\"mqtt\":{\"host\":\"h\"," TLS_OK "}}", &c, &p), 0);
        assert_int_equal(c->mqtt.reconnect_window_ms, 5000);
        assert_int_equal(c->metering.redeliver_per_s, 50);
        cfg_free(c);
        c = NULL;
        assert_int_equal(parse("{" NODE_OK ",\"mqtt\":{\"host\":\"h\",\"reconnect_window_ms\":30000," TLS_OK
                               "},\"metering\":{\"redeliver_per_s\":0}}",
                               &c, &p),
                         0);
        assert_int_equal(c->mqtt.reconnect_window_ms, 30000);
        assert_int_equal(c->metering.redeliver_per_s, 0);
        cfg_free(c);
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"h\",\"reconnect_window_ms\":600001," TLS_OK "}}",
                       ": mqtt.reconnect_window_ms: must be 0..600000 (got 600001)");
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"h\"," TLS_OK
                       "},\"metering\":{\"redeliver_per_s\":-1}}",
                       ": metering.redeliver_per_s: must be 0..100000 (got -1)");
}

/* Telemetry aggregates whole samples: 10 s by default (rounded up to a multiple of the sampling
 * interval when not given), a given one must be a multiple of it. */
static void test_telemetry_interval_defaults_and_must_be_a_multiple_of_sampling(void **state) {
        struct cfg_problems p;
        struct cfg *c = NULL;

        (void)state;
        assert_int_equal(parse("{" NODE_OK ",\"mqtt\":{\"host\":\"h\"," TLS_OK "}}", &c, &p), 0);
        assert_int_equal(c->telemetry_interval_ms, 10000);
        cfg_free(c);
        assert_int_equal(parse("{" NODE_OK
                               ",\"sampling\":{\"interval_ms\":3000},\"mqtt\":{\"host\":\"h\"," TLS_OK "}}",
                               &c, &p),
                         0);
        assert_int_equal(c->telemetry_interval_ms, 12000);
        cfg_free(c);
        assert_int_equal(parse("{" NODE_OK
                               ",\"telemetry\":{\"interval_ms\":1000},\"mqtt\":{\"host\":\"h\"," TLS_OK "}}",
                               &c, &p),
                         0);
        assert_int_equal(c->telemetry_interval_ms, 1000);
        cfg_free(c);
        expect_problem("{" NODE_OK ",\"telemetry\":{\"interval_ms\":1500},\"mqtt\":{\"host\":\"h\"," TLS_OK
                       "}}",
                       ": telemetry.interval_ms: 1500 is not a multiple of sampling.interval_ms (1000): a "
                       "telemetry document aggregates whole samples; use 1000 or 2000");
        expect_problem(
                "{" NODE_OK ",\"sampling\":{\"interval_ms\":2000},\"telemetry\":{\"interval_ms\":1000},"
                "\"mqtt\":{\"host\":\"h\"," TLS_OK "}}",
                ": telemetry.interval_ms: 1000 is shorter than sampling.interval_ms (2000): a telemetry "
                "document aggregates whole samples; use 2000 or a multiple of it");
        expect_problem("{" NODE_OK
                       ",\"telemetry\":{\"interval_ms\":3600001},\"mqtt\":{\"host\":\"h\"," TLS_OK "}}",
                       ": telemetry.interval_ms: must be 100..3600000 (got 3600001)");
        expect_problem("{" NODE_OK ",\"telemetry\":{\"every\":2},\"mqtt\":{\"host\":\"h\"," TLS_OK "}}",
                       ": telemetry.every: unknown key");
}

static void test_every_problem_is_reported_not_just_the_first(void **state) {
        struct cfg_problems p;
        struct cfg *c = NULL;

        (void)state;
        assert_int_equal(parse("{\"node\":{\"id\":\"bad/id\"},\"mqtt\":{\"host\":\"h\",\"port\":0,"
                               "\"keepalive_s\":1," TLS_OK "},\"sampling\":{\"interval_ms\":10}}",
                               &c, &p),
                         -EINVAL);
        assert_true(has_problem(&p,
                                ": node.id: must be 1..64 characters of A-Z a-z 0-9 . _ - starting with a "
                                "letter or digit (got \"bad/id\")"));
        assert_true(has_problem(&p, ": node.region: required key is missing"));
        assert_true(has_problem(&p, ": mqtt.port: must be 1..65535 (got 0)"));
        assert_true(has_problem(&p, ": mqtt.keepalive_s: must be 5..3600 (got 1)"));
        assert_true(has_problem(&p, ": sampling.interval_ms: must be 100..60000 (got 10)"));
        assert_int_equal(p.n, 5);
        cfg_problems_done(&p);
}

static void test_slot_problems_name_the_slot(void **state) {
        (void)state;
        expect_problem(
                "{" NODE_OK ",\"mqtt\":{\"host\":\"h\"," TLS_OK
                "},\"slots\":[{\"id\":\"s0\",\"scale\":\"XXL\"}]}",
                ": slots[0].scale: unknown scale \"XXL\" (the catalog has S, M, L, cpu-4, cpu-8, cpu-16 and "
                "what \"scales\" defines)");
        expect_problem(
                "{" NODE_OK ",\"mqtt\":{\"host\":\"h\"," TLS_OK
                "},\"slots\":[{\"id\":\"s0\",\"scale\":\"XL\"}]}",
                ": slots[0].scale: scale \"XL\" has no published figures; define it under \"scales\"");
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"h\"," TLS_OK
                       "},\"scales\":{\"XL\":{\"class\":\"x86-gpu\","
                       "\"vcpu\":16,\"ram_gb\":64,\"bandwidth_mbps\":10,\"vram_gb\":24}}}",
                       ": scales.XL.gpu_fp32_tflops: required for an x86-gpu scale");
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"h\"," TLS_OK
                       "},\"scales\":{\"arm-x\":{\"class\":\"risc\","
                       "\"vcpu\":4,\"ram_gb\":8,\"bandwidth_mbps\":6}}}",
                       ": scales.arm-x.class: must be \"x86-gpu\", \"x86-cpu\" or \"arm\"");
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"h\"," TLS_OK "},\"scales\":{\"M\":{\"vcpu\":0}}}",
                       ": scales.M.vcpu: must be 1..1024 (got 0)");
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"h\"," TLS_OK
                       "},\"gpu\":{\"fp32_tflops\":{\"16\":1}}}",
                       ": gpu.fp32_tflops.16: the key must be a GPU index 0..15");
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"h\"," TLS_OK
                       "},\"slots\":[{\"id\":\"s0\",\"scale\":\"M\","
                       "\"iface\":\"v0\"},{\"id\":\"s1\",\"scale\":\"M\",\"iface\":\"v0\"}]}",
                       ": slots[1].iface: \"v0\" is already used by slot \"s0\"");
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"h\"," TLS_OK
                       "},\"slots\":[{\"id\":\"s0\",\"scale\":\"M\"},"
                       "{\"id\":\"s0\",\"scale\":\"S\"}]}",
                       ": slots[1].id: \"s0\" is already the id of slots[0]");
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"h\"," TLS_OK
                       "},\"slots\":[{\"id\":\"s0\",\"scale\":\"M\","
                       "\"cgroup\":\"a/../../etc\"}]}",
                       ": slots[0].cgroup: must be a path below the cgroup mount (e.g. "
                       "\"render.slice/slot-0.scope\") "
                       "without '..' components (got \"a/../../etc\")");
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"h\"," TLS_OK
                       "},\"slots\":[{\"id\":\"s0\",\"scale\":\"M\","
                       "\"gpu\":\"0\"}]}",
                       ": slots[0].gpu: must be a GPU index 0..63 or null (got a string)");
        expect_problem(
                "{" NODE_OK ",\"mqtt\":{\"host\":\"h\"," TLS_OK
                "},\"slots\":[{\"id\":\"s0\",\"scale\":\"M\","
                "\"iface\":\"this-name-is-too-long\"}]}",
                ": slots[0].iface: must be a network interface name of 1..15 characters without '/', ':' or "
                "spaces (got \"this-name-is-too-long\")");
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"h\"," TLS_OK "},\"slots\":{}}",
                       ": slots: must be an array (got an object)");
}

static void test_a_slot_may_be_bound_to_a_project(void **state) {
        struct cfg_problems p;
        struct cfg *c = NULL;

        (void)state;
        assert_int_equal(
                parse("{" NODE_OK ",\"mqtt\":{\"host\":\"h\"," TLS_OK
                      "},\"slots\":[{\"id\":\"s0\",\"scale\":\"M\",\"project\":\"acme-7@eu:1.x_y\"},"
                      "{\"id\":\"s1\",\"scale\":\"M\"}]}",
                      &c, &p),
                0);
        assert_non_null(c);
        assert_string_equal(c->slots[0].project, "acme-7@eu:1.x_y");
        assert_null(c->slots[1].project);
        cfg_free(c);
        cfg_problems_done(&p);
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"h\"," TLS_OK
                       "},\"slots\":[{\"id\":\"s0\",\"scale\":\"M\",\"project\":\"a b\"}]}",
                       ": slots[0].project: must be 1..64 characters of A-Z a-z 0-9 . _ @ : -, as a user id "
                       "(got \"a b\")");
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"h\"," TLS_OK
                       "},\"slots\":[{\"id\":\"s0\",\"scale\":\"M\",\"project\":\"\"}]}",
                       ": slots[0].project: must not be empty");
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"h\"," TLS_OK
                       "},\"slots\":[{\"id\":\"s0\",\"scale\":\"M\",\"project\":7}]}",
                       ": slots[0].project: must be a string (got a number)");
}

static void test_topic_prefix_rejects_wildcards(void **state) {
        (void)state;
        expect_problem(
                "{" NODE_OK ",\"mqtt\":{\"host\":\"h\",\"topic_prefix\":\"render/#\"," TLS_OK "}}",
                ": mqtt.topic_prefix: must be a topic path without wildcards (+ #), empty levels, or a "
                "leading or trailing '/' (got \"render/#\")");
}

static void test_wrong_types_and_top_level(void **state) {
        (void)state;
        expect_problem("[1,2]", ": the top level must be a JSON object (got an array)");
        expect_problem("{\"node\":5,\"mqtt\":{\"host\":\"h\"," TLS_OK "}}",
                       ": node: must be an object (got a number)");
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"h\",\"tls\":true}}",
                       ": mqtt.tls: must be an object or false (got a boolean)");
        expect_problem("{" NODE_OK "}", ": mqtt: required section is missing");
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"\"," TLS_OK "}}",
                       ": mqtt.host: must not be empty");
}

static void test_unreadable_and_oversized_files(void **state) {
        struct cfg_problems p = { 0 };
        struct cfg *c = NULL;
        char big[256];
        FILE *f;

        (void)state;
        assert_int_equal(cfg_load("/nonexistent/agent.json", &c, &p), -ENOENT);
        assert_int_equal(p.n, 1);
        assert_string_equal(p.msgs[0], "/nonexistent/agent.json: cannot read: No such file or directory");
        cfg_problems_done(&p);

        snprintf(big, sizeof(big), "%s/big.json", dir);
        f = fopen(big, "w");
        assert_non_null(f);
        assert_int_equal(ftruncate(fileno(f), CFG_MAX_BYTES + 1), 0);
        fclose(f);
        assert_int_equal(cfg_load(big, &c, &p), -EINVAL);
        assert_int_equal(p.n, 1);
        assert_non_null(strstr(p.msgs[0], "larger than 1048576 bytes"));
        cfg_problems_done(&p);
}

static void test_nul_byte_is_rejected(void **state) {
        struct cfg_problems p = { 0 };
        struct cfg *c = NULL;
        static const char buf[] = "{\"node\"\0:1}";

        (void)state;
        assert_int_equal(cfg_parse("x.json", buf, sizeof(buf) - 1, &c, &p), -EINVAL);
        assert_string_equal(p.msgs[0], "x.json: contains a NUL byte at offset 7: not a JSON text file");
        cfg_problems_done(&p);
}

static void test_link_equal_detects_broker_and_certificate_changes(void **state) {
        struct cfg_problems p;
        struct cfg *a = NULL, *b = NULL;
        const char *json = "{" NODE_OK ",\"mqtt\":{\"host\":\"h\"," TLS_OK "},\"slots\":[]}";

        (void)state;
        assert_int_equal(parse(json, &a, &p), 0);
        assert_int_equal(parse("{" NODE_OK ",\"mqtt\":{\"host\":\"h\"," TLS_OK
                               "},\"slots\":[{\"id\":\"s\",\"scale\":\"S\"}]}",
                               &b, &p),
                         0);
        assert_true(cfg_link_equal(a, b)); /* slots do not touch the link */
        cfg_free(b);
        /* A rotated certificate (same path, new content) must renew the connection. */
        sleep(0); /* mtime granularity is ns on tmpfs/ext4; the size changes too */
        write_file("client.crt", "rotated cert\n");
        assert_int_equal(parse(json, &b, &p), 0);
        assert_false(cfg_link_equal(a, b));
        cfg_free(b);
        assert_int_equal(parse("{" NODE_OK ",\"mqtt\":{\"host\":\"other\"," TLS_OK "}}", &b, &p), 0);
        assert_false(cfg_link_equal(a, b));
        cfg_free(b);
        cfg_free(a);
}

#define MQTT_OK "\"mqtt\":{\"host\":\"h\"," TLS_OK "}"

/* mqtt.protocol: auto by default, "5" or "3.1.1"; anything else named; a change renews the link. */
static void test_mqtt_protocol_values_default_and_errors(void **state) {
        static const struct {
                const char *value;
                int mode;
        } ok[] = { { "\"auto\"", LINK_PROTO_AUTO },
                   { "\"5\"", LINK_PROTO_V5 },
                   { "\"3.1.1\"", LINK_PROTO_V311 } };
        struct cfg_problems p;
        struct cfg *a = NULL, *b = NULL;
        char json[512];

        (void)state;
        assert_int_equal(parse("{" NODE_OK "," MQTT_OK "}", &a, &p), 0);
        assert_int_equal(a->mqtt.protocol, LINK_PROTO_AUTO);
        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                snprintf(json, sizeof(json),
                         "{" NODE_OK ",\"mqtt\":{\"host\":\"h\",\"protocol\":%s," TLS_OK "}}", ok[i].value);
                assert_int_equal(parse(json, &b, &p), 0);
                assert_int_equal(b->mqtt.protocol, ok[i].mode);
                assert_true(cfg_link_equal(a, b) == (ok[i].mode == LINK_PROTO_AUTO));
                cfg_free(b);
        }
        cfg_free(a);
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"h\",\"protocol\":\"3.1\"," TLS_OK "}}",
                       ": mqtt.protocol: must be \"auto\", \"5\" or \"3.1.1\" (got \"3.1\")");
        expect_problem("{" NODE_OK ",\"mqtt\":{\"host\":\"h\",\"protocol\":5," TLS_OK "}}",
                       ": mqtt.protocol: must be a string (got a number)");
}

/* Every sessions.* number and the enforcement mode (not the hook's argv) as in want. */
static void expect_sessions(const struct cfg_sessions *got, const struct cfg_sessions *want) {
        assert_int_equal(got->lock_ttl_s, want->lock_ttl_s);
        assert_int_equal(got->grace_s, want->grace_s);
        assert_int_equal(got->max_session_s, want->max_session_s);
        assert_int_equal(got->heartbeat_timeout_s, want->heartbeat_timeout_s);
        assert_int_equal(got->idle_s, want->idle_s);
        assert_int_equal(got->viewers_max, want->viewers_max);
        assert_int_equal(got->max_flow_mbps, want->max_flow_mbps);
        assert_int_equal(got->enforcement, want->enforcement);
        assert_int_equal(got->enforcement_timeout_s, want->enforcement_timeout_s);
}

static void test_sessions_and_allow_defaults_when_absent(void **state) {
        struct cfg_problems p;
        struct cfg *c = NULL;

        (void)state;
        assert_int_equal(parse("{" NODE_OK "," MQTT_OK "}", &c, &p), 0);
        expect_sessions(&c->sessions, &(struct cfg_sessions){ .lock_ttl_s = 30,
                                                              .grace_s = 120,
                                                              .viewers_max = 4,
                                                              .max_flow_mbps = 1000,
                                                              .enforcement = CFG_ENFORCE_NONE,
                                                              .enforcement_timeout_s = 10 });
        assert_null(c->sessions.exec_argv[0]);
        assert_int_equal(c->control_allow.n_uids, 0);
        assert_int_equal(c->control_allow.n_gids, 0);
        cfg_free(c);
}

static void test_sessions_and_allow_keys_are_read(void **state) {
        struct cfg_problems p;
        struct cfg *c = NULL;

        (void)state;
        assert_int_equal(parse("{" NODE_OK "," MQTT_OK ",\"sessions\":{\"lock_ttl_s\":5,\"grace_s\":40,"
                               "\"max_session_s\":7200,\"heartbeat_timeout_s\":15,\"idle_s\":600,"
                               "\"viewers_max\":0,\"enforcement\":\"exec\",\"enforcement_exec\":["
                               "\"/usr/lib/render-agent/end-session\",\"--force\",\"\"],"
                               "\"enforcement_timeout_s\":300,\"max_flow_mbps\":250},"
                               "\"control\":{\"socket\":\"/run/x.sock\",\"allow\":[\"user:root\","
                               "\"group:root\",\"uid:1000\",\"gid:50\",\"uid:4294967294\"]}}",
                               &c, &p),
                         0);
        expect_sessions(&c->sessions, &(struct cfg_sessions){ .lock_ttl_s = 5,
                                                              .grace_s = 40,
                                                              .max_session_s = 7200,
                                                              .heartbeat_timeout_s = 15,
                                                              .idle_s = 600,
                                                              .viewers_max = 0,
                                                              .max_flow_mbps = 250,
                                                              .enforcement = CFG_ENFORCE_EXEC,
                                                              .enforcement_timeout_s = 300 });
        assert_string_equal(c->sessions.exec_argv[0], "/usr/lib/render-agent/end-session");
        assert_string_equal(c->sessions.exec_argv[1], "--force");
        assert_string_equal(c->sessions.exec_argv[2], "");
        assert_null(c->sessions.exec_argv[3]);
        assert_int_equal(c->control_allow.n_uids, 3);
        assert_int_equal(c->control_allow.uids[0], 0);
        assert_int_equal(c->control_allow.uids[1], 1000);
        assert_int_equal(c->control_allow.uids[2], 4294967294u);
        assert_int_equal(c->control_allow.n_gids, 2);
        assert_int_equal(c->control_allow.gids[0], 0);
        assert_int_equal(c->control_allow.gids[1], 50);
        cfg_free(c);
        /* cgroup_kill with a cgroup for every slot is complete. */
        assert_int_equal(parse("{" NODE_OK "," MQTT_OK ",\"sessions\":{\"enforcement\":\"cgroup_kill\"},"
                               "\"slots\":[{\"id\":\"s0\",\"scale\":\"S\",\"cgroup\":\"render.slice/s0\"}]}",
                               &c, &p),
                         0);
        assert_int_equal(c->sessions.enforcement, CFG_ENFORCE_CGROUP_KILL);
        assert_null(c->sessions.exec_argv[0]);
        cfg_free(c);
}

/* Expects the single problem `text` for a config whose "sessions" object has `members`. */
static void expect_sessions_problem(const char *members, const char *text) {
        char json[2048];

        snprintf(json, sizeof(json), "{" NODE_OK "," MQTT_OK ",\"sessions\":{%s}}", members);
        expect_problem(json, text);
}

static void test_sessions_limits_name_the_key_and_range(void **state) {
        (void)state;
        expect_sessions_problem("\"lock_ttl_s\":0", ": sessions.lock_ttl_s: must be 1..3600 (got 0)");
        expect_sessions_problem("\"lock_ttl_s\":3601", ": sessions.lock_ttl_s: must be 1..3600 (got 3601)");
        expect_sessions_problem("\"grace_s\":39", ": sessions.grace_s: must be 40..3600 (got 39)");
        expect_sessions_problem("\"grace_s\":3601", ": sessions.grace_s: must be 40..3600 (got 3601)");
        expect_sessions_problem("\"max_session_s\":2592001",
                                ": sessions.max_session_s: must be 0..2592000 (got 2592001)");
        expect_sessions_problem("\"heartbeat_timeout_s\":3601",
                                ": sessions.heartbeat_timeout_s: must be 0..3600 (got 3601)");
        expect_sessions_problem("\"idle_s\":86401", ": sessions.idle_s: must be 0..86400 (got 86401)");
        expect_sessions_problem("\"idle_s\":-1", ": sessions.idle_s: must be 0..86400 (got -1)");
        expect_sessions_problem("\"viewers_max\":17", ": sessions.viewers_max: must be 0..16 (got 17)");
        expect_sessions_problem("\"viewers_max\":2.5", ": sessions.viewers_max: must be 0..16 (got 2.5)");
        expect_sessions_problem("\"max_flow_mbps\":0",
                                ": sessions.max_flow_mbps: must be 1..100000 (got 0)");
        expect_sessions_problem("\"max_flow_mbps\":100001",
                                ": sessions.max_flow_mbps: must be 1..100000 (got 100001)");
        expect_sessions_problem("\"enforcement_timeout_s\":0",
                                ": sessions.enforcement_timeout_s: must be 1..300 (got 0)");
        expect_sessions_problem("\"enforcement_timeout_s\":301",
                                ": sessions.enforcement_timeout_s: must be 1..300 (got 301)");
        expect_sessions_problem("\"grace_s\":\"120\"",
                                ": sessions.grace_s: must be an integer 40..3600 (got a string)");
        expect_sessions_problem("\"lock_tll_s\":30", ": sessions.lock_tll_s: unknown key");
        expect_problem("{" NODE_OK "," MQTT_OK ",\"sessions\":[]}",
                       ": sessions: must be an object (got an array)");
}

static void test_enforcement_values_and_exec_rules(void **state) {
        char many[1024];
        size_t len;

        (void)state;
        expect_sessions_problem("\"enforcement\":\"kill\"",
                                ": sessions.enforcement: must be \"none\", \"cgroup_kill\" or \"exec\"");
        expect_sessions_problem("\"enforcement\":1",
                                ": sessions.enforcement: must be \"none\", \"cgroup_kill\" or \"exec\"");
        expect_sessions_problem("\"enforcement\":\"exec\"",
                                ": sessions.enforcement_exec: required with \"enforcement\": \"exec\"");
        expect_sessions_problem("\"enforcement_exec\":[\"/bin/true\"]",
                                ": sessions.enforcement_exec: only used with \"enforcement\": \"exec\"");
        expect_sessions_problem("\"enforcement\":\"none\",\"enforcement_exec\":[\"/bin/true\"]",
                                ": sessions.enforcement_exec: only used with \"enforcement\": \"exec\"");
        expect_sessions_problem("\"enforcement\":\"exec\",\"enforcement_exec\":[\"hooks/end.sh\",\"-x\"]",
                                ": sessions.enforcement_exec[0]: the command must be an absolute path (got "
                                "\"hooks/end.sh\")");
        expect_sessions_problem("\"enforcement\":\"exec\",\"enforcement_exec\":[\"/bin/end\",5]",
                                ": sessions.enforcement_exec[1]: must be a string of at most 4096 bytes");
        expect_sessions_problem(
                "\"enforcement\":\"exec\",\"enforcement_exec\":[]",
                ": sessions.enforcement_exec: must be an array of 1..16 strings, the command "
                "(an absolute path) and its arguments");
        expect_sessions_problem(
                "\"enforcement\":\"exec\",\"enforcement_exec\":\"/bin/end\"",
                ": sessions.enforcement_exec: must be an array of 1..16 strings, the command "
                "(an absolute path) and its arguments");
        len = (size_t)snprintf(many, sizeof(many),
                               "\"enforcement\":\"exec\",\"enforcement_exec\":[\"/bin/end\"");
        for (int i = 1; i <= CFG_EXEC_MAX_ARGS; i++)
                len += (size_t)snprintf(many + len, sizeof(many) - len, ",\"a%d\"", i);
        snprintf(many + len, sizeof(many) - len, "]");
        expect_sessions_problem(many, ": sessions.enforcement_exec: must be an array of 1..16 strings, the "
                                      "command (an absolute path) and its arguments");
}

/* Parses a config whose "metering" object is {"window_s": window}; returns the window or fails. */
static unsigned window_accepted(const char *window) {
        struct cfg_problems p;
        struct cfg *c = NULL;
        char json[512];
        unsigned w;

        snprintf(json, sizeof(json), "{" NODE_OK "," MQTT_OK ",\"metering\":{\"window_s\":%s}}", window);
        assert_int_equal(parse(json, &c, &p), 0);
        assert_int_equal(p.n, 0);
        w = c->metering.window_s;
        cfg_free(c);
        return w;
}

static void expect_window_problem(const char *window, const char *text) {
        char json[512];

        snprintf(json, sizeof(json), "{" NODE_OK "," MQTT_OK ",\"metering\":{\"window_s\":%s}}", window);
        expect_problem(json, text);
}

/* A resource pack deducts each hour's peak concurrency: windows that do not tile an hour (5400,
 * 7200, a day) would leave it uncomputable, so they are refused with the reason. */
static void test_metering_window_must_divide_an_hour(void **state) {
        static const char *const refused[] = { "7", "2400", "3601", "5400", "7200", "86400", "1e9" };
        static const char *const got[] = { "7", "2400", "3601", "5400", "7200", "86400", "1000000000" };

        (void)state;
        assert_int_equal(window_accepted("1"), 1);
        assert_int_equal(window_accepted("60"), 60);
        assert_int_equal(window_accepted("1800"), 1800);
        assert_int_equal(window_accepted("3600"), 3600);
        for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
                char want[256];

                snprintf(want, sizeof(want),
                         ": metering.window_s: must divide an hour (3600 s) so each hour's peak concurrency "
                         "can be computed (got %s)",
                         got[i]);
                expect_window_problem(refused[i], want);
        }
        expect_window_problem("0", ": metering.window_s: must be 1..3600 (got 0)");
        expect_window_problem("-3600", ": metering.window_s: must be 1..3600 (got -3600)");
        expect_window_problem("7200.5", ": metering.window_s: must be 1..3600 (got 7200.5)");
        expect_window_problem("\"3600\"", ": metering.window_s: must be an integer 1..3600 (got a string)");
}

static void test_cgroup_kill_needs_every_slot_cgroup(void **state) {
        struct cfg_problems p;
        struct cfg *c = NULL;

        (void)state;
        assert_int_equal(parse("{" NODE_OK "," MQTT_OK ",\"sessions\":{\"enforcement\":\"cgroup_kill\"},"
                               "\"slots\":[{\"id\":\"s0\",\"scale\":\"S\",\"cgroup\":\"render.slice/s0\"},"
                               "{\"id\":\"s1\",\"scale\":\"S\"},{\"id\":\"s2\",\"scale\":\"S\"}]}",
                               &c, &p),
                         -EINVAL);
        assert_null(c);
        assert_true(has_problem(
                &p, ": slots[1].cgroup: required with sessions.enforcement \"cgroup_kill\" (slot "
                    "s1 has none to kill)"));
        assert_true(has_problem(
                &p, ": slots[2].cgroup: required with sessions.enforcement \"cgroup_kill\" (slot "
                    "s2 has none to kill)"));
        assert_int_equal(p.n, 2);
        cfg_problems_done(&p);
}

/* Expects the single problem `text` for one slot whose cgroup is `cg` (a JSON string literal). */
static void expect_cgroup_problem(const char *cg, const char *text) {
        char json[1024];

        snprintf(json, sizeof(json),
                 "{" NODE_OK "," MQTT_OK ",\"slots\":[{\"id\":\"s0\",\"scale\":\"S\",\"cgroup\":%s}]}", cg);
        expect_problem(json, text);
}

static void test_slot_cgroup_that_is_the_mount_root_is_refused(void **state) {
        static const char *const root[] = { "\".\"", "\"./\"", "\"./.\"", "\".//./\"" };
        static const char *const outside[] = { "\"..\"", "\"a/..\"", "\"a/../b\"", "\"/\"",
                                               "\"/render.slice/s0\"" };
        static const char below[] =
                "must be a path below the cgroup mount (e.g. \"render.slice/slot-0.scope\") "
                "without '..' components";
        char want[512];

        (void)state;
        /* Ending a session writes the slot cgroup's cgroup.kill: the root's would end the host. */
        for (size_t i = 0; i < sizeof(root) / sizeof(root[0]); i++) {
                char lit[16];

                snprintf(lit, sizeof(lit), "%.*s", (int)strlen(root[i]) - 2, root[i] + 1);
                snprintf(want, sizeof(want),
                         ": slots[0].cgroup: \"%s\" (slot s0) is the root of the cgroup mount itself; a "
                         "slot's cgroup must be strictly below it, e.g. \"render.slice/slot-0.scope\"",
                         lit);
                expect_cgroup_problem(root[i], want);
        }
        for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
                snprintf(want, sizeof(want), ": slots[0].cgroup: %s (got %s)", below, outside[i]);
                expect_cgroup_problem(outside[i], want);
        }
}

static void test_slot_cgroup_is_kept_in_canonical_form(void **state) {
        struct cfg_problems p;
        struct cfg *c = NULL;

        (void)state;
        assert_int_equal(parse("{" NODE_OK "," MQTT_OK ",\"slots\":[{\"id\":\"s0\",\"scale\":\"S\","
                               "\"cgroup\":\"./render.slice//./s0/\"}]}",
                               &c, &p),
                         0);
        assert_string_equal(c->slots[0].cgroup, "render.slice/s0");
        cfg_free(c);
        /* The same cgroup spelt two ways is still one cgroup for two slots. */
        expect_problem(
                "{" NODE_OK "," MQTT_OK ",\"slots\":[{\"id\":\"s0\",\"scale\":\"S\",\"cgroup\":"
                "\"render.slice/s0\"},{\"id\":\"s1\",\"scale\":\"S\",\"cgroup\":\"render.slice/./s0/\"}]}",
                ": slots[1].cgroup: \"render.slice/s0\" is already used by slot \"s0\"");
}

static void test_control_clients_per_user_default_and_range(void **state) {
        struct cfg_problems p;
        struct cfg *c = NULL;

        (void)state;
        assert_int_equal(parse("{" NODE_OK "," MQTT_OK "}", &c, &p), 0);
        assert_int_equal(c->control_clients_per_user, 8);
        cfg_free(c);
        assert_int_equal(parse("{" NODE_OK "," MQTT_OK ",\"control\":{\"clients_per_user\":3}}", &c, &p), 0);
        assert_int_equal(c->control_clients_per_user, 3);
        cfg_free(c);
        expect_problem("{" NODE_OK "," MQTT_OK ",\"control\":{\"clients_per_user\":0}}",
                       ": control.clients_per_user: must be 1..48 (got 0)");
        expect_problem("{" NODE_OK "," MQTT_OK ",\"control\":{\"clients_per_user\":49}}",
                       ": control.clients_per_user: must be 1..48 (got 49)");
}

/* Expects the single problem `text` for a config whose control.allow is `allow`. */
static void expect_allow_problem(const char *allow, const char *text) {
        char json[4096];

        snprintf(json, sizeof(json), "{" NODE_OK "," MQTT_OK ",\"control\":{\"allow\":%s}}", allow);
        expect_problem(json, text);
}

static void test_control_allow_forms_and_limits(void **state) {
        static const char form[] = ": must be \"user:NAME\", \"group:NAME\", \"uid:N\" or \"gid:N\"";
        char want[256], many[1024];
        size_t len;

        (void)state;
        expect_allow_problem("[\"user:ra-no-such-user\"]",
                             ": control.allow[0]: no user \"ra-no-such-user\" on this host");
        expect_allow_problem("[\"uid:0\",\"group:ra-no-such-group\"]",
                             ": control.allow[1]: no group \"ra-no-such-group\" on this host");
        expect_allow_problem("[\"uid:abc\"]", ": control.allow[0]: \"uid:abc\" is not a numeric id");
        expect_allow_problem("[\"gid:-1\"]", ": control.allow[0]: \"gid:-1\" is not a numeric id");
        expect_allow_problem("[\"uid:\"]", ": control.allow[0]: \"uid:\" is not a numeric id");
        /* (uid_t)-1 means "no change" to the kernel, never a caller. */
        expect_allow_problem("[\"uid:4294967295\"]",
                             ": control.allow[0]: \"uid:4294967295\" is not a numeric id");
        snprintf(want, sizeof(want), ": control.allow[0]%s", form);
        expect_allow_problem("[\"root\"]", want);
        expect_allow_problem("[\"user:\"]", want);
        expect_allow_problem("[\"group:\"]", want);
        expect_allow_problem("[42]", want);
        snprintf(want, sizeof(want), ": control.allow[1]%s", form);
        expect_allow_problem("[\"user:root\",\"name:root\"]", want);
        expect_allow_problem("\"user:root\"", ": control.allow: must be an array of at most 32 entries");
        len = (size_t)snprintf(many, sizeof(many), "[\"uid:0\"");
        for (int i = 1; i <= CFG_MAX_ALLOW; i++)
                len += (size_t)snprintf(many + len, sizeof(many) - len, ",\"uid:%d\"", i);
        snprintf(many + len, sizeof(many) - len, "]");
        expect_allow_problem(many, ": control.allow: must be an array of at most 32 entries");
}

static void test_control_read_is_unset_by_default_and_takes_the_allow_forms(void **state) {
        struct cfg_problems p;
        struct cfg *c = NULL;
        char json[512];

        (void)state;
        /* Absent: every peer that can connect reads everything, as before control.read. */
        assert_int_equal(parse("{" NODE_OK "," MQTT_OK ",\"control\":{\"allow\":[\"uid:7\"]}}", &c, &p), 0);
        assert_false(c->control_read_set);
        cfg_free(c);
        /* Empty: set, with nobody listed (root, the agent's user and control.allow read). */
        assert_int_equal(parse("{" NODE_OK "," MQTT_OK ",\"control\":{\"read\":[]}}", &c, &p), 0);
        assert_true(c->control_read_set);
        assert_int_equal(c->control_read.n_uids + c->control_read.n_gids, 0);
        cfg_free(c);
        assert_int_equal(parse("{" NODE_OK "," MQTT_OK ",\"control\":{\"read\":[\"user:root\",\"uid:1000\","
                               "\"group:root\",\"gid:50\"],\"allow\":[\"uid:9\"]}}",
                               &c, &p),
                         0);
        assert_true(c->control_read_set);
        assert_int_equal(c->control_read.n_uids, 2);
        assert_int_equal(c->control_read.uids[1], 1000);
        assert_int_equal(c->control_read.n_gids, 2);
        assert_int_equal(c->control_read.gids[1], 50);
        assert_int_equal(c->control_allow.n_uids, 1); /* apart from control.allow */
        cfg_free(c);
        /* Each problem names control.read, not control.allow. */
        snprintf(json, sizeof(json),
                 "{" NODE_OK "," MQTT_OK ",\"control\":{\"read\":[\"uid:0\",\"user:ra-no-such-user\"]}}");
        expect_problem(json, ": control.read[1]: no user \"ra-no-such-user\" on this host");
        snprintf(json, sizeof(json),
                 "{" NODE_OK "," MQTT_OK ",\"control\":{\"read\":[\"group:ra-no-such-group\"]}}");
        expect_problem(json, ": control.read[0]: no group \"ra-no-such-group\" on this host");
        snprintf(json, sizeof(json), "{" NODE_OK "," MQTT_OK ",\"control\":{\"read\":[\"uid:x\"]}}");
        expect_problem(json, ": control.read[0]: \"uid:x\" is not a numeric id");
        snprintf(json, sizeof(json), "{" NODE_OK "," MQTT_OK ",\"control\":{\"read\":[\"operators\"]}}");
        expect_problem(json,
                       ": control.read[0]: must be \"user:NAME\", \"group:NAME\", \"uid:N\" or \"gid:N\"");
        snprintf(json, sizeof(json), "{" NODE_OK "," MQTT_OK ",\"control\":{\"read\":\"group:root\"}}");
        expect_problem(json, ": control.read: must be an array of at most 32 entries");
}

/* Parses a config whose mqtt section is `mqtt` (TLS_OK appended); returns it (caller frees). */
static struct cfg *parse_mqtt_ok(const char *mqtt) {
        char json[4096];
        struct cfg_problems p;
        struct cfg *c = NULL;

        snprintf(json, sizeof(json), "{" NODE_OK ",\"mqtt\":{%s," TLS_OK "}}", mqtt);
        assert_int_equal(parse(json, &c, &p), 0);
        assert_int_equal(p.n, 0);
        return c;
}

/* Expects the single problem `text` for an mqtt section `mqtt` (TLS_OK appended). */
static void expect_mqtt_problem(const char *mqtt, const char *text) {
        char json[4096];

        snprintf(json, sizeof(json), "{" NODE_OK ",\"mqtt\":{%s," TLS_OK "}}", mqtt);
        expect_problem(json, text);
}

static void test_brokers_list_keeps_order_and_defaults_port_to_mqtt_port(void **state) {
        struct cfg *c;

        (void)state;
        c = parse_mqtt_ok("\"port\":9000,\"brokers\":[\"mqtt-1.example\",\"10.0.0.2:18883\","
                          "\"[2001:db8::1]:8884\",\"[::1]\"]");
        assert_int_equal(c->mqtt.n_brokers, 4);
        assert_string_equal(c->mqtt.brokers[0].host, "mqtt-1.example");
        assert_int_equal(c->mqtt.brokers[0].port, 9000);
        assert_string_equal(c->mqtt.brokers[1].host, "10.0.0.2");
        assert_int_equal(c->mqtt.brokers[1].port, 18883);
        assert_string_equal(c->mqtt.brokers[2].host, "2001:db8::1");
        assert_int_equal(c->mqtt.brokers[2].port, 8884);
        assert_string_equal(c->mqtt.brokers[3].host, "::1");
        assert_int_equal(c->mqtt.brokers[3].port, 9000);
        /* What prints one broker prints the first. */
        assert_ptr_equal(c->mqtt.host, c->mqtt.brokers[0].host);
        assert_int_equal(c->mqtt.port, 9000);
        cfg_free(c);

        c = parse_mqtt_ok("\"brokers\":[\"b:1\",\"a\"]");
        assert_int_equal(c->mqtt.brokers[1].port, 8883);
        assert_int_equal(c->mqtt.port, 1);
        cfg_free(c);
}

static void test_brokers_default_port_is_1883_without_tls(void **state) {
        struct cfg_problems p;
        struct cfg *c = NULL;

        (void)state;
        assert_int_equal(parse("{" NODE_OK ",\"mqtt\":{\"brokers\":[\"a\",\"b:2\"],\"tls\":false}}", &c, &p),
                         0);
        assert_int_equal(c->mqtt.n_brokers, 2);
        assert_int_equal(c->mqtt.brokers[0].port, 1883);
        assert_int_equal(c->mqtt.brokers[1].port, 2);
        cfg_free(c);
}

static void test_mqtt_host_is_the_only_broker(void **state) {
        struct cfg *c;

        (void)state;
        c = parse_mqtt_ok("\"host\":\"broker.example\",\"port\":18883");
        assert_int_equal(c->mqtt.n_brokers, 1);
        assert_string_equal(c->mqtt.brokers[0].host, "broker.example");
        assert_int_equal(c->mqtt.brokers[0].port, 18883);
        assert_ptr_equal(c->mqtt.host, c->mqtt.brokers[0].host);
        assert_int_equal(c->mqtt.port, 18883);
        cfg_free(c);
}

static void test_host_and_brokers_are_mutually_exclusive(void **state) {
        (void)state;
        expect_mqtt_problem(
                "\"host\":\"a\",\"brokers\":[\"b\"]",
                ": mqtt.brokers: give either mqtt.host (one broker) or mqtt.brokers (a list), not "
                "both");
        expect_mqtt_problem(
                "\"port\":1",
                ": mqtt.host: required key is missing (or mqtt.brokers: a list of brokers tried in "
                "order)");
}

static void test_brokers_list_shape_is_checked(void **state) {
        char many[512];
        size_t len;

        (void)state;
        expect_mqtt_problem("\"brokers\":\"a:1\"",
                            ": mqtt.brokers: must be an array of 1..8 strings \"host\", "
                            "\"host:port\" or \"[IPv6]:port\" (got a string)");
        expect_mqtt_problem("\"brokers\":[]", ": mqtt.brokers: must list 1..8 brokers (got 0)");
        len = (size_t)snprintf(many, sizeof(many), "\"brokers\":[\"h0\"");
        for (int i = 1; i <= CFG_MAX_BROKERS; i++)
                len += (size_t)snprintf(many + len, sizeof(many) - len, ",\"h%d\"", i);
        snprintf(many + len, sizeof(many) - len, "]");
        expect_mqtt_problem(many, ": mqtt.brokers: must list 1..8 brokers (got 9)");
        expect_mqtt_problem("\"brokers\":[\"a\",8883]", ": mqtt.brokers[1]: must be a string \"host\", "
                                                        "\"host:port\" or \"[IPv6]:port\" (got a number)");
}

/* Expects the single problem "mqtt.brokers[1]: <why> (got "<entry>")" for brokers ["ok", entry]. */
static void expect_bad_broker(const char *entry_json, const char *why, const char *entry) {
        char mqtt[1024], want[1024];

        snprintf(mqtt, sizeof(mqtt), "\"brokers\":[\"ok\",%s]", entry_json);
        snprintf(want, sizeof(want), ": mqtt.brokers[1]: %s (got \"%s\")", why, entry);
        expect_mqtt_problem(mqtt, want);
}

static void test_bad_broker_entries_name_the_index_and_the_rule(void **state) {
        static const char port[] = "the port must be 1..65535";
        static const char v6[] = "an IPv6 address must be in brackets, e.g. \"[2001:db8::1]:8883\"";
        static const char host[] =
                "must be a host name or address of at most 253 characters, without spaces";

        (void)state;
        expect_bad_broker("\"h:0\"", port, "h:0");
        expect_bad_broker("\"h:65536\"", port, "h:65536");
        expect_bad_broker("\"h:\"", port, "h:");
        expect_bad_broker("\"h:+1\"", port, "h:+1");
        expect_bad_broker("\"h:88x\"", port, "h:88x");
        expect_bad_broker("\"[::1]:0\"", port, "[::1]:0");
        expect_bad_broker("\"::1\"", v6, "::1");
        expect_bad_broker("\"2001:db8::1:8883\"", v6, "2001:db8::1:8883");
        expect_bad_broker("\"[::1\"", "must be an IPv6 address in brackets, e.g. \"[2001:db8::1]:8883\"",
                          "[::1");
        expect_bad_broker("\"[]:1\"", "must be an IPv6 address in brackets, e.g. \"[2001:db8::1]:8883\"",
                          "[]:1");
        expect_bad_broker("\"[mqtt-1]:1\"", "the brackets must hold an IPv6 address", "[mqtt-1]:1");
        expect_bad_broker("\"[::1]8883\"", "only \":port\" may follow the ']'", "[::1]8883");
        expect_bad_broker("\":8883\"", "the host is missing", ":8883");
        expect_bad_broker("\"\"", "the host is missing", "");
        expect_bad_broker("\"mqtt 1:8883\"", host, "mqtt 1:8883");
        expect_bad_broker("\"a/b\"", host, "a/b");
        expect_bad_broker("\"mqtt]:1\"", "'[' and ']' only go around an IPv6 address", "mqtt]:1");
}

static void test_overlong_broker_entry_is_refused(void **state) {
        char mqtt[1024], want[1024], name[300];

        (void)state;
        memset(name, 'a', 262);
        name[262] = '\0';
        snprintf(mqtt, sizeof(mqtt), "\"brokers\":[\"%s\"]", name);
        snprintf(
                want, sizeof(want),
                ": mqtt.brokers[0]: longer than a host name and a port can be (261 characters) (got \"%s\")",
                name);
        expect_mqtt_problem(mqtt, want);
        /* 254 characters of host fit the entry's limit but not a host name's. */
        name[254] = '\0';
        snprintf(mqtt, sizeof(mqtt), "\"brokers\":[\"%s\"]", name);
        snprintf(want, sizeof(want),
                 ": mqtt.brokers[0]: must be a host name or address of at most 253 characters, without "
                 "spaces (got \"%s\")",
                 name);
        expect_mqtt_problem(mqtt, want);
}

static void test_duplicate_brokers_are_refused_after_port_defaulting(void **state) {
        (void)state;
        /* "b" is b:8883 like "B:8883": host names compare case-insensitively. */
        expect_mqtt_problem("\"brokers\":[\"a\",\"B:8883\",\"b\"]",
                            ": mqtt.brokers[2]: \"b\" is the same broker as mqtt.brokers[1]");
        expect_mqtt_problem("\"port\":1,\"brokers\":[\"[::1]\",\"[::1]:1\"]",
                            ": mqtt.brokers[1]: \"[::1]:1\" is the same broker as mqtt.brokers[0]");
        /* Same host, other port: another broker. */
        cfg_free(parse_mqtt_ok("\"brokers\":[\"a:1\",\"a:2\"]"));
}

static void test_link_equal_compares_the_broker_list_in_order(void **state) {
        struct cfg *a, *b;

        (void)state;
        a = parse_mqtt_ok("\"brokers\":[\"x\",\"y:2\"]");
        b = parse_mqtt_ok("\"brokers\":[\"x\",\"y:2\"]");
        assert_true(cfg_link_equal(a, b));
        cfg_free(b);
        b = parse_mqtt_ok("\"brokers\":[\"y:2\",\"x\"]"); /* failover order changed */
        assert_false(cfg_link_equal(a, b));
        cfg_free(b);
        b = parse_mqtt_ok("\"brokers\":[\"x\",\"y:3\"]");
        assert_false(cfg_link_equal(a, b));
        cfg_free(b);
        b = parse_mqtt_ok("\"brokers\":[\"x\"]");
        assert_false(cfg_link_equal(a, b));
        cfg_free(b);
        /* mqtt.host "x" is the list ["x"]: the same link. */
        cfg_free(a);
        a = parse_mqtt_ok("\"brokers\":[\"x\"]");
        b = parse_mqtt_ok("\"host\":\"x\"");
        assert_true(cfg_link_equal(a, b));
        cfg_free(b);
        cfg_free(a);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_minimal_config_gets_documented_defaults),
                cmocka_unit_test(test_full_config_reads_every_key),
                cmocka_unit_test(test_tls_false_is_explicit_and_defaults_port_1883),
                cmocka_unit_test(test_missing_tls_is_an_error),
                cmocka_unit_test(test_port_out_of_range_names_key_and_value),
                cmocka_unit_test(test_syntax_error_reports_line_and_column),
                cmocka_unit_test(test_unknown_and_duplicate_keys_are_errors),
                cmocka_unit_test(test_missing_certificate_file_is_named),
                cmocka_unit_test(test_reconnect_window_and_redelivery_rate_default_and_are_checked),
                cmocka_unit_test(test_telemetry_interval_defaults_and_must_be_a_multiple_of_sampling),
                cmocka_unit_test(test_every_problem_is_reported_not_just_the_first),
                cmocka_unit_test(test_slot_problems_name_the_slot),
                cmocka_unit_test(test_a_slot_may_be_bound_to_a_project),
                cmocka_unit_test(test_topic_prefix_rejects_wildcards),
                cmocka_unit_test(test_wrong_types_and_top_level),
                cmocka_unit_test(test_unreadable_and_oversized_files),
                cmocka_unit_test(test_nul_byte_is_rejected),
                cmocka_unit_test(test_link_equal_detects_broker_and_certificate_changes),
                cmocka_unit_test(test_mqtt_protocol_values_default_and_errors),
                cmocka_unit_test(test_sessions_and_allow_defaults_when_absent),
                cmocka_unit_test(test_sessions_and_allow_keys_are_read),
                cmocka_unit_test(test_sessions_limits_name_the_key_and_range),
                cmocka_unit_test(test_enforcement_values_and_exec_rules),
                cmocka_unit_test(test_metering_window_must_divide_an_hour),
                cmocka_unit_test(test_cgroup_kill_needs_every_slot_cgroup),
                cmocka_unit_test(test_slot_cgroup_that_is_the_mount_root_is_refused),
                cmocka_unit_test(test_slot_cgroup_is_kept_in_canonical_form),
                cmocka_unit_test(test_control_clients_per_user_default_and_range),
                cmocka_unit_test(test_control_allow_forms_and_limits),
                cmocka_unit_test(test_control_read_is_unset_by_default_and_takes_the_allow_forms),
                cmocka_unit_test(test_brokers_list_keeps_order_and_defaults_port_to_mqtt_port),
                cmocka_unit_test(test_brokers_default_port_is_1883_without_tls),
                cmocka_unit_test(test_mqtt_host_is_the_only_broker),
                cmocka_unit_test(test_host_and_brokers_are_mutually_exclusive),
                cmocka_unit_test(test_brokers_list_shape_is_checked),
                cmocka_unit_test(test_bad_broker_entries_name_the_index_and_the_rule),
                cmocka_unit_test(test_overlong_broker_entry_is_refused),
                cmocka_unit_test(test_duplicate_brokers_are_refused_after_port_defaulting),
                cmocka_unit_test(test_link_equal_compares_the_broker_list_in_order),
        };
        return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
