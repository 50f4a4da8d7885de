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
#include "slot.h"
#include "telemetry.h"
#include "usage.h"
#include "watch.h"

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
        char *s = tele_status_json(c, &p, NULL, NULL, NULL, true, NULL, 1795518420123000ULL);
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
        char *s = tele_status_json(c, NULL, NULL, NULL, NULL, false, "connection lost", 0);

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
        struct slot_table st = { 0 };
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
        assert_int_equal(slot_table_sync(&st, c), 0);
        assert_int_equal(usage_init(&u, fd, &st), 0);
        usage_tick(&u, &s, s.cur.mono_usec);
        doc = tele_telemetry_json(c, &s, &u, NULL, 42, NULL);
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
        slot_table_done(&st);
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
        doc = tele_telemetry_json(c, &s, NULL, NULL, 1, &self);
        assert_non_null(strstr(doc, "\"self\":{\"cpu_usec\":1234567,\"rss_bytes\":3145728,"
                                    "\"peak_rss_bytes\":18446744073709551615,\"spool_records\":7,"
                                    "\"spool_bytes\":4096}"));
        free(doc);
        /* A tick but nothing read: the figures are absent, never 0. */
        self = (struct tele_self){ .has_tick = true, .tick_usec = 140, .tick_max_usec = 900 };
        doc = tele_telemetry_json(c, &s, NULL, NULL, 2, &self);
        j = cJSON_Parse(doc);
        o = cJSON_GetObjectItem(j, "self");
        assert_int_equal(cJSON_GetObjectItem(o, "tick_usec")->valueint, 140);
        assert_int_equal(cJSON_GetObjectItem(o, "tick_max_usec")->valueint, 900);
        assert_null(cJSON_GetObjectItem(o, "cpu_usec"));
        assert_null(cJSON_GetObjectItem(o, "spool_records"));
        cJSON_Delete(j);
        free(doc);
        doc = tele_telemetry_json(c, &s, NULL, NULL, 3, NULL);
        assert_null(strstr(doc, "\"self\""));
        free(doc);
        cfg_free(c);
}

/* The host clock's sync state is a top-level member, present only when it could be read. */
static void test_telemetry_clock_is_present_only_when_read(void **state) {
        struct cfg *c = load_cfg();
        struct sampler s = { 0 };
        struct tele_self self = { .has_clock = true,
                                  .clock = { .synced = false,
                                             .state = 5 /* TIME_ERROR */,
                                             .est_error_us = 1600000,
                                             .max_error_us = 16000000 } };
        char *doc;

        (void)state;
        doc = tele_telemetry_json(c, &s, NULL, NULL, 1, &self);
        assert_non_null(strstr(doc, "\"clock\":{\"synced\":false,\"state\":\"TIME_ERROR\","
                                    "\"est_error_us\":1600000,\"max_error_us\":16000000}"));
        free(doc);
        self.has_clock = false;
        doc = tele_telemetry_json(c, &s, NULL, NULL, 2, &self);
        assert_null(strstr(doc, "\"clock\""));
        free(doc);
        cfg_free(c);
}

/* One of everything a document can hold: slots with a cgroup, with one that could not be read and
 * on a shared GPU; interfaces with and without rates; a GPU with every metric and its processes and
 * a lost one; the plan's verdicts; the agent's own cost; strings that need escaping; a rate that is
 * an exact tie in binary (55.25 to one decimal: printf rounds it to even). */
#define RICH_CFG_JSON                                                                                   \
        "{\"node\":{\"id\":\"n1\",\"region\":\"eu\"},\"sampling\":{\"interval_ms\":1000},"              \
        "\"mqtt\":{\"host\":\"h\",\"tls\":false,\"topic_prefix\":\"fleet/x\"},"                         \
        "\"scales\":{\"XL\":{\"class\":\"x86-gpu\",\"vcpu\":16,\"ram_gb\":64,\"gpu_fp32_tflops\":16,"   \
        "\"vram_gb\":24,\"bandwidth_mbps\":10},\"cpu-4\":{\"vcpu\":1,\"ram_gb\":1}},"                   \
        "\"gpu\":{\"fp32_tflops\":{\"1\":12.5}},"                                                       \
        "\"slots\":[{\"id\":\"s0\",\"scale\":\"XL\",\"cgroup\":\"render.slice/s0.scope\","              \
        "\"iface\":\"veth-s0\",\"gpu\":0},"                                                             \
        "{\"id\":\"s1\",\"scale\":\"cpu-4\",\"cgroup\":\"render.slice/s1.scope\",\"iface\":\"gone0\"}," \
        "{\"id\":\"s2\",\"scale\":\"M\",\"iface\":\"eth0\",\"gpu\":1}]}"

struct rich {
        struct cfg *c;
        struct hal_platform platform;
        struct sampler s;
        struct hal_net_iface ifaces[2];
        struct net_rate rates[2];
        struct hal_gpu_sample gpus[2];
        struct usage_slot us[3];
        struct usage u;
        struct watch_slot ws[3];
        struct slot sl[3]; /* the watch's and usage's part of each slot are its own */
        struct slot_table table;
        struct watch w;
        struct tele_self self;
};

static void rich_init(struct rich *r) {
        struct cfg_problems p = { 0 };
        struct host_sample *h = &r->s.cur;

        memset(r, 0, sizeof(*r));
        assert_int_equal(cfg_parse("/etc/agent.json", RICH_CFG_JSON, strlen(RICH_CFG_JSON), &r->c, &p), 0);
        r->platform = (struct hal_platform){ .arch = "x86_64", .cls = HAL_CLASS_X86_GPU };
        h->real_usec = 1795518420123000ULL;
        h->has_cpu = h->has_cpu_util = h->has_mem = h->has_net = true;
        h->cpu = (struct hal_cpu_sample){ .total_jiffies = 1000, .idle_jiffies = 400, .cores = 8 };
        h->cpu_util_pct = 37.5;
        h->mem = (struct hal_mem_sample){ .total_bytes = 16000000000ULL, .available_bytes = 4000000000ULL };
        r->ifaces[0] =
                (struct hal_net_iface){ .name = "veth-s0", .rx_bytes = 125000, .tx_bytes = UINT64_MAX };
        r->ifaces[1] = (struct hal_net_iface){ .name = "eth0", .rx_bytes = 1, .tx_bytes = 2 };
        r->rates[0] = (struct net_rate){ .valid = true, .rx_mbps = 1.0, .tx_mbps = 0.0625 };
        h->net = (struct hal_net_sample){ .n = 2, .ifaces = r->ifaces };
        h->net_rates = r->rates;
        r->gpus[0] = (struct hal_gpu_sample){ .backend = "nvml",
                                              .name = "NVIDIA A10G",
                                              .uuid = "GPU-1",
                                              .pci_bus_id = "0000:01:00.0",
                                              .pci_vendor = 0x10de,
                                              .pci_device = 0x2237,
                                              .present = (1u << 11) - 1,
                                              .util_pct = 55.25,
                                              .mem_util_pct = 20,
                                              .enc_pct = 10.05,
                                              .vram_total_bytes = 24000000000ULL,
                                              .vram_used_bytes = 6000000000ULL,
                                              .power_w = 149.96,
                                              .temp_c = 61,
                                              .clock_mhz = 1710,
                                              .clock_max_mhz = 1710,
                                              .throttle_reasons = 4,
                                              .n_procs = 2,
                                              .procs = { { 4242, 1ULL << 30 }, { 4243, UINT64_MAX } } };
        r->gpus[1] = (struct hal_gpu_sample){ .backend = "amdgpu",
                                              .name = "Mystery \"GPU\"\t1",
                                              .shared_memory = true,
                                              .error = -ENXIO,
                                              .error_msg = "GPU is lost: \x01 gone\\" };
        h->n_gpus = 2;
        h->gpus = r->gpus;
        h->gpu_age_usec = 2345678; /* the GPU worker stuck: its last sample is 2.3 s old */
        h->gpus_stale = true;
        r->us[0] = (struct usage_slot){ .has_cg = true,
                                        .cg_state = "ok",
                                        .cg = { .present = HAL_CG_CPU | HAL_CG_MEM | HAL_CG_MEM_MAX |
                                                           HAL_CG_PIDS | HAL_CG_CPU_MAX,
                                                .cpu_usage_usec = 123456789,
                                                .mem_current_bytes = 2ULL << 30,
                                                .mem_max_bytes = 8ULL << 30,
                                                .pids_current = 37,
                                                .cpu_quota_cores = 4 },
                                        .has_cores = true,
                                        .cores_used = 1.2345 };
        r->us[1] = (struct usage_slot){ .cg_state = "error", .cg_error = "cannot read cpu.stat: \"x\"" };
        r->us[2] = (struct usage_slot){ .gpu_shared = true,
                                        .has_gpu_vram = true,
                                        .gpu_vram_bytes = 1ULL << 30 };
        r->u = (struct usage){ .table = &r->table };
        r->ws[0] = (struct watch_slot){ .verdict = { .meets = true },
                                        .has_bandwidth = true,
                                        .bandwidth_mbps = 12.5,
                                        .bandwidth = { .raised = true } };
        r->ws[1] = (struct watch_slot){ .verdict = { .meets = false, .reason = "vcpu: needs 1, 0 left" } };
        r->ws[2] = (struct watch_slot){ .verdict = { .meets = true } };
        for (size_t i = 0; i < 3; i++) {
                r->sl[i].watch = &r->ws[i];
                r->sl[i].usage = &r->us[i];
        }
        r->table = (struct slot_table){ .n = 3, .slot = { &r->sl[0], &r->sl[1], &r->sl[2] } };
        r->w = (struct watch){
                .planned = true,
                .host = { .cls = HAL_CLASS_X86_GPU, .cores = 8, .ram_bytes = 16000000000ULL, .n_gpus = 2 },
                .table = &r->table
        };
        r->self = (struct tele_self){
                .has_usage = true,
                .usage = { .cpu_usec = 1234, .rss_bytes = 3 << 20, .peak_rss_bytes = 4 << 20 },
                .has_tick = true,
                .tick_usec = 140,
                .tick_max_usec = 900,
                .has_spool = true
        };
}

/* The documents of that fixture as the cJSON implementation that jsonw replaced printed them (the
 * bytes on the wire did not change), in the pieces they share: a slot in the probe is its part of the
 * telemetry slot, which the spec extends with its scale's limits. */
#define RICH_NET0                                                                       \
        "{\"iface\":\"veth-s0\",\"rx_bytes\":125000,\"tx_bytes\":18446744073709551615," \
        "\"rx_mbps\":1.000,\"tx_mbps\":0.062}"

#define RICH_CGROUP0                                                                   \
        "{\"cores_used\":1.234,\"cpu_usage_usec\":123456789,\"cpu_quota_cores\":4.00," \
        "\"memory_bytes\":2147483648,\"memory_max_bytes\":8589934592,\"pids\":37}"

#define RICH_SLOT0                                                                       \
        "{\"id\":\"s0\",\"scale\":\"XL\",\"cgroup\":" RICH_CGROUP0 ",\"net\":" RICH_NET0 \
        ",\"gpu\":{\"index\":0,\"shared\":false,\"util_pct\":55.2,\"vram_used_bytes\":6000000000}"

#define RICH_SLOT0_SPEC                                                                  \
        ",\"conformant\":true,\"usage_pct\":{\"cpu\":7.7,\"memory\":25.0,\"vram\":25.0," \
        "\"gpu\":55.2,\"bandwidth\":125.0},\"bandwidth_mbps\":12.500,\"bandwidth_over_cap\":true"

#define RICH_SLOT1                                                       \
        "{\"id\":\"s1\",\"scale\":\"cpu-4\",\"cgroup_state\":\"error\"," \
        "\"cgroup_error\":\"cannot read cpu.stat: \\\"x\\\"\","          \
        "\"iface_error\":\"interface not found\""

#define RICH_SLOT1_SPEC                                                                       \
        ",\"conformant\":false,\"nonconformant\":\"vcpu: needs 1, 0 left\",\"usage_pct\":{}," \
        "\"bandwidth_over_cap\":false"

#define RICH_SLOT2                                                                   \
        "{\"id\":\"s2\",\"scale\":\"M\",\"net\":{\"iface\":\"eth0\",\"rx_bytes\":1," \
        "\"tx_bytes\":2},\"gpu\":{\"index\":1,\"shared\":true,\"vram_used_bytes\":1073741824}"

#define RICH_SLOT2_SPEC ",\"conformant\":true,\"usage_pct\":{\"vram\":17.9},\"bandwidth_over_cap\":false"

#define RICH_GPU0                                                                                    \
        "{\"index\":0,\"age_ms\":2345,\"stale\":true,\"backend\":\"nvml\",\"name\":\"NVIDIA A10G\"," \
        "\"uuid\":\"GPU-1\","                                                                        \
        "\"pci_bus_id\":\"0000:01:00.0\",\"util_pct\":55.2,\"mem_util_pct\":20.0,"                   \
        "\"enc_pct\":10.1,\"dec_pct\":0.0,\"vram_total_bytes\":24000000000,"                         \
        "\"vram_used_bytes\":6000000000,\"power_w\":150.0,\"temp_c\":61.0,\"clock_mhz\":1710,"       \
        "\"clock_max_mhz\":1710,\"throttle_reasons\":4,\"fp32_tflops\":31.2,"                        \
        "\"fp32_source\":\"table\",\"process_count\":2"

#define RICH_GPU1                                                                                \
        "{\"index\":1,\"age_ms\":2345,\"stale\":true,\"backend\":\"amdgpu\",\"name\":\"Mystery " \
        "\\\"GPU\\\"\\t1\","                                                                     \
        "\"shared_memory\":true,\"fp32_tflops\":12.5,\"fp32_source\":\"config\","                \
        "\"error\":\"GPU is lost: \\u0001 gone\\\\\"}"

#define RICH_SCALE_S                                                                 \
        "{\"name\":\"S\",\"class\":\"x86-gpu\",\"vcpu\":4,\"ram_bytes\":8000000000," \
        "\"gpu_fp32_tflops\":2.0,\"vram_bytes\":4000000000,\"bandwidth_mbps\":6.0,"  \
        "\"published\":true}"

#define RICH_SCALE_M                                                                  \
        "{\"name\":\"M\",\"class\":\"x86-gpu\",\"vcpu\":4,\"ram_bytes\":16000000000," \
        "\"gpu_fp32_tflops\":4.0,\"vram_bytes\":6000000000,\"bandwidth_mbps\":8.0,"   \
        "\"published\":true}"

#define RICH_SCALE_L                                                                   \
        "{\"name\":\"L\",\"class\":\"x86-gpu\",\"vcpu\":10,\"ram_bytes\":32000000000," \
        "\"gpu_fp32_tflops\":8.1,\"vram_bytes\":12000000000,\"bandwidth_mbps\":8.0,"   \
        "\"published\":true}"

#define RICH_SCALE_CPU4                                                                  \
        "{\"name\":\"cpu-4\",\"class\":\"x86-cpu\",\"vcpu\":1,\"ram_bytes\":1000000000," \
        "\"bandwidth_mbps\":6.0,\"published\":true}"

#define RICH_SCALE_CPU8                                                                   \
        "{\"name\":\"cpu-8\",\"class\":\"x86-cpu\",\"vcpu\":8,\"ram_bytes\":16000000000," \
        "\"bandwidth_mbps\":8.0,\"published\":true}"

#define RICH_SCALE_CPU16                                                                    \
        "{\"name\":\"cpu-16\",\"class\":\"x86-cpu\",\"vcpu\":16,\"ram_bytes\":32000000000," \
        "\"bandwidth_mbps\":8.0,\"published\":true}"

#define RICH_SCALE_XL                                                                   \
        "{\"name\":\"XL\",\"class\":\"x86-gpu\",\"vcpu\":16,\"ram_bytes\":64000000000," \
        "\"gpu_fp32_tflops\":16.0,\"vram_bytes\":24000000000,\"bandwidth_mbps\":10.0,"  \
        "\"published\":false}"

#define RICH_SELF                                                                                \
        "{\"cpu_usec\":1234,\"rss_bytes\":3145728,\"peak_rss_bytes\":4194304,\"tick_usec\":140," \
        "\"tick_max_usec\":900,\"spool_records\":0,\"spool_bytes\":0}"

#define RICH_PLATFORM "{\"arch\":\"x86_64\",\"class\":\"x86-gpu\"}"

#define RICH_TELEMETRY                                                                                \
        "{\"v\":1,\"type\":\"telemetry\",\"node\":\"n1\",\"region\":\"eu\","                          \
        "\"ts\":\"2026-11-24T11:07:00.123Z\",\"seq\":7,\"interval_ms\":1000,\"cpu\":{\"cores\":8,"    \
        "\"util_pct\":37.50},\"memory\":{\"total_bytes\":16000000000,"                                \
        "\"available_bytes\":4000000000,\"used_pct\":75.00},\"net\":[" RICH_NET0                      \
        ",{\"iface\":\"eth0\",\"rx_bytes\":1,\"tx_bytes\":2}],\"slots\":[" RICH_SLOT0 RICH_SLOT0_SPEC \
        "}," RICH_SLOT1 RICH_SLOT1_SPEC "}," RICH_SLOT2 RICH_SLOT2_SPEC "}],\"gpus\":[" RICH_GPU0     \
        "}," RICH_GPU1 "],\"self\":" RICH_SELF "}"

#define RICH_PROBE                                                                                \
        "{\"v\":1,\"platform\":" RICH_PLATFORM                                                    \
        ",\"cpu\":{\"cores\":8,\"total_jiffies\":1000,\"idle_jiffies\":400},"                     \
        "\"memory\":{\"total_bytes\":16000000000,\"available_bytes\":4000000000},"                \
        "\"net\":[{\"iface\":\"veth-s0\",\"rx_bytes\":125000,\"tx_bytes\":18446744073709551615}," \
        "{\"iface\":\"eth0\",\"rx_bytes\":1,\"tx_bytes\":2}],\"gpus\":[" RICH_GPU0                \
        ",\"processes\":[{\"pid\":4242,\"vram_bytes\":1073741824},{\"pid\":4243}]}," RICH_GPU1    \
        "],\"slots\":[" RICH_SLOT0 "}," RICH_SLOT1 "}," RICH_SLOT2                                \
        "}],\"errors\":[\"/proc/meminfo: \\\"MemAvailable\\\" missing\"]}"

/* The status holds the facts: the host's, each GPU's identity, each slot's config, cgroup limits and
 * verdict, and the catalog. */
#define RICH_STATUS                                                                                   \
        "{\"v\":1,\"type\":\"status\",\"node\":\"n1\",\"region\":\"eu\","                             \
        "\"ts\":\"2026-11-24T11:07:00.123Z\",\"state\":\"online\",\"version\":\"" RA_VERSION          \
        "\",\"platform\":" RICH_PLATFORM ",\"sampling_interval_ms\":1000,"                            \
        "\"telemetry_interval_ms\":10000,\"host\":{\"cores\":8,\"memory_total_bytes\":16000000000},"  \
        "\"interfaces\":[\"veth-s0\",\"eth0\"],\"gpus\":[{\"index\":0,\"backend\":\"nvml\","          \
        "\"name\":\"NVIDIA A10G\",\"uuid\":\"GPU-1\",\"pci_bus_id\":\"0000:01:00.0\","                \
        "\"vram_total_bytes\":24000000000,\"clock_max_mhz\":1710,\"fp32_tflops\":31.2,"               \
        "\"fp32_source\":\"table\"},{\"index\":1,\"backend\":\"amdgpu\",\"name\":\"Mystery "          \
        "\\\"GPU\\\"\\t1\",\"shared_memory\":true,\"fp32_tflops\":12.5,\"fp32_source\":\"config\"}]," \
        "\"slots\":[{\"id\":\"s0\",\"scale\":\"XL\",\"cgroup\":\"render.slice/s0.scope\","            \
        "\"iface\":\"veth-s0\",\"gpu\":0,\"gpu_shared\":false,\"cpu_quota_cores\":4.00,"              \
        "\"memory_max_bytes\":8589934592,\"cgroup_state\":\"ok\",\"iface_found\":true,"               \
        "\"conformant\":true},{\"id\":\"s1\",\"scale\":\"cpu-4\","                                    \
        "\"cgroup\":\"render.slice/s1.scope\",\"iface\":\"gone0\",\"cgroup_state\":\"error\","        \
        "\"cgroup_error\":\"cannot read cpu.stat: \\\"x\\\"\",\"iface_found\":false,"                 \
        "\"conformant\":false,\"nonconformant\":\"vcpu: needs 1, 0 left\"},{\"id\":\"s2\","           \
        "\"scale\":\"M\",\"iface\":\"eth0\",\"gpu\":1,\"gpu_shared\":true,\"iface_found\":true,"      \
        "\"conformant\":true}],\"catalog\":[" RICH_SCALE_S "," RICH_SCALE_M "," RICH_SCALE_L          \
        "," RICH_SCALE_CPU4 "," RICH_SCALE_CPU8 "," RICH_SCALE_CPU16 "," RICH_SCALE_XL "]}"

#define RICH_SPEC                                                                                      \
        "{\"catalog\":[" RICH_SCALE_S "," RICH_SCALE_M "," RICH_SCALE_L "," RICH_SCALE_CPU4            \
        "," RICH_SCALE_CPU8 "," RICH_SCALE_CPU16 "," RICH_SCALE_XL                                     \
        "],\"host\":{\"class\":\"x86-gpu\",\"vcpu\":8,\"ram_bytes\":16000000000,\"gpus\":2},"          \
        "\"slots\":[" RICH_SLOT0 RICH_SLOT0_SPEC ",\"limits\":" RICH_SCALE_XL                          \
        "}," RICH_SLOT1 RICH_SLOT1_SPEC ",\"limits\":" RICH_SCALE_CPU4 "}," RICH_SLOT2 RICH_SLOT2_SPEC \
        ",\"limits\":" RICH_SCALE_M "}]}"

static void test_telemetry_document_is_byte_exact(void **state) {
        struct rich r;
        char *doc;

        (void)state;
        rich_init(&r);
        doc = tele_telemetry_json(r.c, &r.s, &r.u, &r.w, 7, &r.self);
        assert_string_equal(doc, RICH_TELEMETRY);
        free(doc);
        cfg_free(r.c);
}

static void test_probe_and_status_documents_are_byte_exact(void **state) {
        const char *errs[] = { "/proc/meminfo: \"MemAvailable\" missing" };
        struct rich r;
        char *doc;

        (void)state;
        rich_init(&r);
        doc = tele_probe_json(&r.platform, &r.s.cur, r.c, &r.s, &r.u, errs, 1);
        assert_string_equal(doc, RICH_PROBE);
        free(doc);
        doc = tele_status_json(r.c, &r.platform, &r.s, &r.u, &r.w, true, NULL, r.s.cur.real_usec);
        assert_string_equal(doc, RICH_STATUS);
        free(doc);
        cfg_free(r.c);
}

/* The spec and self documents are trees (they go into a control reply): printed, the same bytes. */
static void test_spec_and_self_trees_print_byte_exact(void **state) {
        struct rich r;
        cJSON *t;
        char *doc;

        (void)state;
        rich_init(&r);
        t = tele_spec_json(r.c, &r.s, &r.u, &r.w);
        doc = cJSON_PrintUnformatted(t);
        assert_string_equal(doc, RICH_SPEC);
        free(doc);
        cJSON_Delete(t);
        t = tele_self_json(&r.self);
        doc = cJSON_PrintUnformatted(t);
        assert_string_equal(doc, RICH_SELF);
        free(doc);
        cJSON_Delete(t);
        cfg_free(r.c);
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
                cmocka_unit_test(test_telemetry_clock_is_present_only_when_read),
                cmocka_unit_test(test_telemetry_document_is_byte_exact),
                cmocka_unit_test(test_probe_and_status_documents_are_byte_exact),
                cmocka_unit_test(test_spec_and_self_trees_print_byte_exact),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
