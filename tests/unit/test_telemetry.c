/* test_telemetry.c: the status, telemetry and probe documents and the topic scheme. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"
#include "config.h"
#include "fileio.h"
#include "platform_class.h"
#include "sampler.h"
#include "telemetry.h"
#include "usage.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#define CFG_JSON                                                                          \
        "{\"node\":{\"id\":\"n1\",\"region\":\"eu\"},\"sampling\":{\"interval_ms\":500}," \
        "\"mqtt\":{\"host\":\"h\",\"tls\":false,\"topic_prefix\":\"fleet/x\"},"           \
        "\"slots\":[{\"id\":\"s0\",\"scale\":\"M\",\"iface\":\"veth-s0\",\"gpu\":0},"     \
        "{\"id\":\"s1\",\"scale\":\"cpu-4\",\"iface\":\"gone0\"}]}"

static struct cfg *load_cfg(void) {
        struct cfg_problems p = { 0 };
        struct cfg *c = NULL;

        assert_int_equal(cfg_parse("/etc/agent.json", CFG_JSON, strlen(CFG_JSON), &c, &p), 0);
        return c;
}

static void test_topics_follow_prefix_region_node(void **state) {
        struct cfg *c = load_cfg();
        char buf[64], tiny[8];

        (void)state;
        assert_int_equal(tele_topic(c, "telemetry", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "fleet/x/eu/n1/telemetry");
        assert_int_equal(tele_topic(c, "status", tiny, sizeof(tiny)), -ENAMETOOLONG);
        cfg_free(c);
}

static void test_status_online_lists_platform_and_slots(void **state) {
        struct cfg *c = load_cfg();
        struct hal_platform p = { .arch = "x86_64", .cls = HAL_CLASS_X86_GPU };
        char *s = tele_status_json(c, &p, true, NULL, 1795518420123000ULL);
        cJSON *j = cJSON_Parse(s), *slots;

        (void)state;
        assert_non_null(j);
        assert_int_equal(cJSON_GetObjectItem(j, "v")->valueint, 1);
        assert_string_equal(cJSON_GetObjectItem(j, "type")->valuestring, "status");
        assert_string_equal(cJSON_GetObjectItem(j, "state")->valuestring, "online");
        assert_string_equal(cJSON_GetObjectItem(j, "ts")->valuestring, "2026-11-24T11:07:00.123Z");
        assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "platform"), "class")->valuestring,
                            "x86-gpu");
        slots = cJSON_GetObjectItem(j, "slots");
        assert_int_equal(cJSON_GetArraySize(slots), 2);
        assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(slots, 0), "gpu")->valueint, 0);
        assert_null(cJSON_GetObjectItem(cJSON_GetArrayItem(slots, 1), "gpu"));
        cJSON_Delete(j);
        free(s);
        cfg_free(c);
}

static void test_status_offline_is_short_and_says_why(void **state) {
        struct cfg *c = load_cfg();
        char *s = tele_status_json(c, NULL, false, "connection lost", 0);

        (void)state;
        assert_string_equal(
                s, "{\"v\":1,\"type\":\"status\",\"node\":\"n1\",\"region\":\"eu\",\"state\":\"offline\","
                   "\"reason\":\"connection lost\",\"version\":\"" RA_VERSION "\"}");
        free(s);
        cfg_free(c);
}

static void write_net(const char *dir, uint64_t rx) {
        char p[256], buf[512];
        FILE *f;

        snprintf(p, sizeof(p), "%s/proc/net/dev", dir);
        f = fopen(p, "w");
        assert_non_null(f);
        snprintf(buf, sizeof(buf),
                 "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n"
                 "veth-s0: %llu 0 0 0 0 0 0 0 18446744073709551615 0 0 0 0 0 0 0\n",
                 (unsigned long long)rx);
        fputs(buf, f);
        fclose(f);
}

static void test_telemetry_has_exact_counters_rates_and_missing_ifaces(void **state) {
        char dir[] = "/tmp/ra-test-tele-XXXXXX", p[256], cmd[300];
        struct cfg *c = load_cfg();
        struct sampler s;
        struct usage u = { 0 };
        cJSON *j, *slots, *net;
        char *doc;
        int fd;

        (void)state;
        assert_non_null(mkdtemp(dir));
        snprintf(p, sizeof(p), "%s/proc/net", dir);
        snprintf(cmd, sizeof(cmd), "mkdir -p %s", p);
        assert_int_equal(system(cmd), 0);
        fd = plat_open_dir(dir);
        sampler_init(&s, fd);
        write_net(dir, 1000);
        plat_clock_set_fake(5 * USEC_PER_SEC, 1795518420000000ULL);
        sampler_tick(&s);
        write_net(dir, 1000 + 125000); /* 1 Mbps over 1 s */
        plat_clock_set_fake(6 * USEC_PER_SEC, 1795518421000000ULL);
        sampler_tick(&s);
        assert_int_equal(usage_init(&u, fd, c), 0);
        usage_tick(&u, c, &s, s.cur.mono_usec);
        doc = tele_telemetry_json(c, &s, &u, NULL, 42);
        j = cJSON_Parse(doc);
        assert_non_null(j);
        assert_int_equal(cJSON_GetObjectItem(j, "seq")->valueint, 42);
        assert_int_equal(cJSON_GetObjectItem(j, "interval_ms")->valueint, 500);
        /* /proc/stat and meminfo are absent in this root: left out, never zero. */
        assert_null(cJSON_GetObjectItem(j, "cpu"));
        assert_null(cJSON_GetObjectItem(j, "memory"));
        /* 64-bit counters are printed exactly, past double precision. */
        assert_non_null(strstr(doc, "\"tx_bytes\":18446744073709551615"));
        slots = cJSON_GetObjectItem(j, "slots");
        net = cJSON_GetObjectItem(cJSON_GetArrayItem(slots, 0), "net");
        assert_float_equal(cJSON_GetObjectItem(net, "rx_mbps")->valuedouble, 1.0, 1e-9);
        assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(slots, 1), "iface_error")->valuestring,
                            "interface not found");
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "gpus")), 0);
        cJSON_Delete(j);
        free(doc);
        sampler_done(&s);
        usage_done(&u);
        close(fd);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        assert_int_equal(system(cmd), 0);
        plat_clock_set_fake(0, 0);
        cfg_free(c);
}

static void test_probe_lists_errors_and_omits_failed_metrics(void **state) {
        struct hal_platform p = { .arch = "aarch64", .cls = HAL_CLASS_ARM };
        struct host_sample h = { .has_cpu = true,
                                 .cpu = { .cores = 8, .total_jiffies = 10, .idle_jiffies = 4 } };
        const char *errs[] = { "/proc/meminfo: MemAvailable missing" };
        char *doc = tele_probe_json(&p, &h, NULL, NULL, NULL, errs, 1);

        (void)state;
        assert_string_equal(
                doc, "{\"v\":1,\"platform\":{\"arch\":\"aarch64\",\"class\":\"arm\"},\"cpu\":{\"cores\":8,"
                     "\"total_jiffies\":10,\"idle_jiffies\":4},\"gpus\":[],\"errors\":[\"/proc/meminfo: "
                     "MemAvailable missing\"]}");
        free(doc);
}

static void test_gpus_report_present_metrics_only_and_fp32_source(void **state) {
        struct cfg *c = load_cfg();
        struct hal_platform p = { .arch = "x86_64", .cls = HAL_CLASS_X86_GPU };
        struct hal_gpu_sample g[2] = {
                { .backend = "nvml",
                  .name = "NVIDIA A10G",
                  .pci_vendor = 0x10de,
                  .pci_device = 0x2237,
                  .present = HAL_GPU_UTIL | HAL_GPU_VRAM | HAL_GPU_PROCS,
                  .util_pct = 37,
                  .vram_total_bytes = 100,
                  .vram_used_bytes = 40,
                  .n_procs = 1,
                  .procs = { { .pid = 4242, .vram_bytes = 40 } } },
                { .backend = "amdgpu", .name = "Mystery GPU", .error = -ENXIO, .error_msg = "GPU is lost" },
        };
        struct host_sample h = { .n_gpus = 2, .gpus = g };
        cJSON *j, *gpus, *g0, *g1;
        char *doc;

        (void)state;
        c->gpu.fp32_tflops[1] = 12.5;
        doc = tele_probe_json(&p, &h, c, NULL, NULL, NULL, 0);
        j = cJSON_Parse(doc);
        gpus = cJSON_GetObjectItem(j, "gpus");
        g0 = cJSON_GetArrayItem(gpus, 0);
        g1 = cJSON_GetArrayItem(gpus, 1);
        assert_float_equal(cJSON_GetObjectItem(g0, "util_pct")->valuedouble, 37, 1e-9);
        /* Not offered by the GPU: absent, never 0. */
        assert_null(cJSON_GetObjectItem(g0, "power_w"));
        assert_null(cJSON_GetObjectItem(g0, "enc_pct"));
        assert_string_equal(cJSON_GetObjectItem(g0, "fp32_source")->valuestring, "table");
        assert_int_equal(
                cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(g0, "processes"), 0), "pid")
                        ->valueint,
                4242);
        /* The config's figure wins; a lost GPU says so and keeps its place in the list. */
        assert_float_equal(cJSON_GetObjectItem(g1, "fp32_tflops")->valuedouble, 12.5, 1e-9);
        assert_string_equal(cJSON_GetObjectItem(g1, "fp32_source")->valuestring, "config");
        assert_string_equal(cJSON_GetObjectItem(g1, "error")->valuestring, "GPU is lost");
        c->gpu.fp32_tflops[1] = 0;
        cJSON_Delete(j);
        free(doc);
        doc = tele_probe_json(&p, &h, c, NULL, NULL, NULL, 0);
        assert_non_null(strstr(doc, "\"fp32_tflops\":null,\"fp32_source\":\"unknown\""));
        free(doc);
        cfg_free(c);
}

static void test_tick_max_is_the_longest_of_the_last_minute(void **state) {
        struct tele_ticks t = { 0 };
        const uint64_t s = USEC_PER_SEC;

        (void)state;
        assert_int_equal(tele_ticks_max(&t, 1000 * s), 0);
        tele_ticks_add(&t, 1000 * s + 10, 900);
        tele_ticks_add(&t, 1000 * s + 500000, 300); /* same second: the larger stays */
        tele_ticks_add(&t, 1030 * s, 150);
        assert_int_equal(t.count, 3);
        assert_int_equal(t.last_usec, 150);
        assert_int_equal(tele_ticks_max(&t, 1030 * s), 900);
        assert_int_equal(tele_ticks_max(&t, 1059 * s + 999999), 900);
        /* A minute after its second, the 900 µs tick has left the window. */
        assert_int_equal(tele_ticks_max(&t, 1060 * s), 150);
        /* Its bucket is reused 60 s on: the old figure does not survive there. */
        tele_ticks_add(&t, 1060 * s + 1, 200);
        assert_int_equal(tele_ticks_max(&t, 1060 * s + 2), 200);
        assert_int_equal(tele_ticks_max(&t, 1090 * s), 200);
        assert_int_equal(tele_ticks_max(&t, 1120 * s), 0);
}

static void test_telemetry_self_has_the_given_parts_only(void **state) {
        struct cfg *c = load_cfg();
        struct sampler s = { 0 };
        struct tele_self self = { .has_usage = true,
                                  .usage = { .cpu_usec = 1234567,
                                             .rss_bytes = 3 << 20,
                                             .peak_rss_bytes = UINT64_C(18446744073709551615) },
                                  .has_spool = true,
                                  .spool_records = 7,
                                  .spool_bytes = 4096 };
        cJSON *j, *o;
        char *doc;

        (void)state;
        doc = tele_telemetry_json_ex(c, &s, NULL, NULL, 1, &self);
        assert_non_null(strstr(doc, "\"self\":{\"cpu_usec\":1234567,\"rss_bytes\":3145728,"
                                    "\"peak_rss_bytes\":18446744073709551615,\"spool_records\":7,"
                                    "\"spool_bytes\":4096}"));
        free(doc);
        /* A tick but nothing read: the figures are absent, never 0. */
        self = (struct tele_self){ .has_tick = true, .tick_usec = 140, .tick_max_usec = 900 };
        doc = tele_telemetry_json_ex(c, &s, NULL, NULL, 2, &self);
        j = cJSON_Parse(doc);
        o = cJSON_GetObjectItem(j, "self");
        assert_int_equal(cJSON_GetObjectItem(o, "tick_usec")->valueint, 140);
        assert_int_equal(cJSON_GetObjectItem(o, "tick_max_usec")->valueint, 900);
        assert_null(cJSON_GetObjectItem(o, "cpu_usec"));
        assert_null(cJSON_GetObjectItem(o, "spool_records"));
        cJSON_Delete(j);
        free(doc);
        doc = tele_telemetry_json(c, &s, NULL, NULL, 3);
        assert_null(strstr(doc, "\"self\""));
        free(doc);
        cfg_free(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_topics_follow_prefix_region_node),
                cmocka_unit_test(test_status_online_lists_platform_and_slots),
                cmocka_unit_test(test_status_offline_is_short_and_says_why),
                cmocka_unit_test(test_telemetry_has_exact_counters_rates_and_missing_ifaces),
                cmocka_unit_test(test_probe_lists_errors_and_omits_failed_metrics),
                cmocka_unit_test(test_gpus_report_present_metrics_only_and_fp32_source),
                cmocka_unit_test(test_tick_max_is_the_longest_of_the_last_minute),
                cmocka_unit_test(test_telemetry_self_has_the_given_parts_only),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
