/* test_tele_agg.c: a telemetry interval's samples folded into last/min/max/avg and byte totals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"
#include "sampler.h"
#include "slot.h"
#include "tele_agg.h"
#include "telemetry.h"
#include "usage.h"
#include "watch.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define CFG_JSON                                                                                     \
        "{\"node\":{\"id\":\"n1\",\"region\":\"eu\"},\"sampling\":{\"interval_ms\":1000},"           \
        "\"telemetry\":{\"interval_ms\":3000},\"mqtt\":{\"host\":\"h\",\"tls\":false},"              \
        "\"slots\":[{\"id\":\"s0\",\"scale\":\"M\",\"iface\":\"veth-s0\",\"gpu\":0},{\"id\":\"s1\"," \
        "\"scale\":\"cpu-4\",\"iface\":\"gone0\"}]}"

/* A host of two interfaces (one a slot's), one GPU and two slots, its figures set per sample. */
struct host {
        struct cfg *c;
        struct sampler s;
        struct hal_net_iface ifaces[2];
        struct net_rate rates[2];
        struct hal_gpu_sample gpu;
        struct usage_slot us[2];
        struct watch_slot ws[2];
        struct slot sl[2];
        struct slot_table table;
};

static void host_init(struct host *h) {
        struct cfg_problems p = { 0 };

        memset(h, 0, sizeof(*h));
        assert_int_equal(cfg_parse("/etc/agent.json", CFG_JSON, strlen(CFG_JSON), &h->c, &p), 0);
        h->s.cur.real_usec = 1795518420123000ULL;
        h->s.cur.has_cpu = h->s.cur.has_cpu_util = h->s.cur.has_mem = h->s.cur.has_net = true;
        h->s.cur.mem = (struct hal_mem_sample){ .total_bytes = 1000 * 1024, .available_bytes = 600 * 1024 };
        memcpy(h->ifaces[0].name, "eth0", 5);
        memcpy(h->ifaces[1].name, "veth-s0", 8);
        h->s.cur.net = (struct hal_net_sample){ .n = 2, .ifaces = h->ifaces };
        h->s.cur.net_rates = h->rates;
        h->gpu = (struct hal_gpu_sample){ .present = HAL_GPU_UTIL | HAL_GPU_VRAM | HAL_GPU_THROTTLE,
                                          .vram_used_bytes = 4096 };
        h->s.cur.n_gpus = 1;
        h->s.cur.gpus = &h->gpu;
        h->us[0] = (struct usage_slot){ .has_cg = true, .cg_state = "ok", .cg = { .present = HAL_CG_MEM } };
        h->us[1] = (struct usage_slot){ .cg_state = "absent" };
        h->ws[0].has_bandwidth = true;
        /* The watch's and usage's part of each slot live in its slot object (slot.h). */
        for (size_t i = 0; i < 2; i++) {
                h->sl[i].index = i;
                h->sl[i].cfg = &h->c->slots[i];
                h->sl[i].watch = &h->ws[i];
                h->sl[i].usage = &h->us[i];
        }
        h->table = (struct slot_table){ .n = 2, .slot = { &h->sl[0], &h->sl[1] } };
}

/* The interval's parts of the slots (made by tele_agg on the first sample) and the config. */
static void host_done(struct host *h) {
        for (size_t i = 0; i < 2; i++)
                free(h->sl[i].agg);
        cfg_free(h->c);
}

/* One sample: host CPU, eth0's rx counter and rate, the slot's memory and bandwidth, the GPU. */
static void sample(struct host *h, struct tele_agg *a, double cpu, uint64_t eth_rx, double mbps,
                   uint64_t slot_mem, double gpu_util, uint64_t throttle) {
        h->s.cur.cpu_util_pct = cpu;
        h->ifaces[0].rx_bytes = eth_rx;
        h->rates[0] = (struct net_rate){ .valid = true, .rx_mbps = mbps };
        h->us[0].cg.mem_current_bytes = slot_mem;
        h->ws[0].bandwidth_mbps = mbps;
        h->gpu.util_pct = gpu_util;
        h->gpu.throttle_reasons = throttle;
        assert_int_equal(tele_agg_add(a, &h->s), 0);
}

static cJSON *doc(struct host *h, struct tele_agg *a) {
        char *text = tele_agg_json(a, h->c, &h->s, 9, NULL);
        cJSON *j = cJSON_Parse(text);

        assert_non_null(j);
        free(text);
        return j;
}

static const cJSON *at(const cJSON *o, const char *path) {
        char buf[128];
        char *save = NULL;

        strcpy(buf, path);
        for (char *m = strtok_r(buf, ".", &save); m && o; m = strtok_r(NULL, ".", &save))
                o = m[0] >= '0' && m[0] <= '9' ? cJSON_GetArrayItem(o, atoi(m))
                                               : cJSON_GetObjectItemCaseSensitive(o, m);
        assert_non_null(o);
        return o;
}

/* [last, min, max, avg] */
static void assert_gauge(const cJSON *g, double last, double min, double max, double avg) {
        assert_true(cJSON_IsArray(g));
        assert_int_equal(cJSON_GetArraySize(g), 4);
        assert_float_equal(cJSON_GetArrayItem(g, 0)->valuedouble, last, 1e-9);
        assert_float_equal(cJSON_GetArrayItem(g, 1)->valuedouble, min, 1e-9);
        assert_float_equal(cJSON_GetArrayItem(g, 2)->valuedouble, max, 1e-9);
        assert_float_equal(cJSON_GetArrayItem(g, 3)->valuedouble, avg, 1e-9);
}

static void test_varying_gauges_carry_last_min_max_and_average(void **state) {
        struct host h;
        struct tele_agg a;
        cJSON *j;

        (void)state;
        host_init(&h);
        tele_agg_init(&a, &h.table);
        sample(&h, &a, 10, 0, 2.0, 100 * 1024, 50, 0);
        sample(&h, &a, 90, 1000, 9.5, 300 * 1024, 50, 0);
        sample(&h, &a, 20, 2000, 1.0, 200 * 1024, 50, 0);
        j = doc(&h, &a);
        assert_int_equal(at(j, "v")->valueint, TELE_AGG_WIRE_VERSION);
        assert_int_equal(at(j, "samples")->valueint, 3);
        assert_int_equal(at(j, "interval_ms")->valueint, 3000);
        /* The 90 % second between two documents is not averaged away. */
        assert_gauge(at(j, "cpu.util_pct"), 20, 10, 90, 40);
        /* Memory in KiB (pages: nothing lost), rates to 10 kbit/s. */
        assert_gauge(at(j, "slots.0.cgroup.memory_kib"), 200, 100, 300, 200);
        assert_gauge(at(j, "slots.0.net.mbps"), 1.0, 1.0, 9.5, 4.17);
        assert_gauge(at(j, "net.0.rx_mbps"), 1.0, 1.0, 9.5, 4.17);
        /* A gauge that held still is one number. */
        assert_true(cJSON_IsNumber(at(j, "gpus.0.util_pct")));
        assert_float_equal(at(j, "gpus.0.util_pct")->valuedouble, 50, 1e-9);
        assert_float_equal(at(j, "memory.available_kib")->valuedouble, 600, 1e-9);
        cJSON_Delete(j);
        tele_agg_done(&a);
        host_done(&h);
}

static void test_byte_counters_are_totals_counted_once_across_intervals(void **state) {
        struct host h;
        struct tele_agg a;
        cJSON *j;

        (void)state;
        host_init(&h);
        tele_agg_init(&a, &h.table);
        sample(&h, &a, 0, 1000, 0, 0, 0, 0);
        sample(&h, &a, 0, 1500, 0, 0, 0, 0);
        sample(&h, &a, 0, 4000, 0, 0, 0, 0);
        j = doc(&h, &a);
        assert_int_equal(at(j, "net.0.rx_bytes")->valueint, 3000);
        cJSON_Delete(j);
        tele_agg_next(&a);
        /* The next interval counts from the last sample of this one: 4000 -> 4500 -> 4700. */
        sample(&h, &a, 0, 4500, 0, 0, 0, 0);
        sample(&h, &a, 0, 4700, 0, 0, 0, 0);
        /* A counter that went backwards (interface recreated) adds nothing, then counts again. */
        sample(&h, &a, 0, 100, 0, 0, 0, 0);
        sample(&h, &a, 0, 150, 0, 0, 0, 0);
        j = doc(&h, &a);
        assert_int_equal(at(j, "samples")->valueint, 4);
        assert_int_equal(at(j, "net.0.rx_bytes")->valueint, 750);
        cJSON_Delete(j);
        tele_agg_done(&a);
        host_done(&h);
}

static void test_slot_interface_is_under_its_slot_and_facts_stay_out(void **state) {
        struct host h;
        struct tele_agg a;
        cJSON *j;
        char *text;

        (void)state;
        host_init(&h);
        tele_agg_init(&a, &h.table);
        h.ifaces[1].tx_bytes = 10;
        /* Two NVENC streams: the slowest one's FPS and the worst latency, per sample. */
        h.us[0].has_enc = true;
        h.us[0].n_enc = 2;
        h.us[0].enc[0] = (struct hal_gpu_enc_session){ .pid = 7, .avg_fps = 60, .avg_latency_us = 4000 };
        h.us[0].enc[1] = (struct hal_gpu_enc_session){ .pid = 8, .avg_fps = 30, .avg_latency_us = 9000 };
        sample(&h, &a, 0, 10, 0, 0, 0, 1);
        h.us[0].enc[1].avg_fps = 45;
        h.ifaces[1].tx_bytes = 1010;
        h.ws[0].bandwidth.raised = true;
        sample(&h, &a, 0, 20, 0, 0, 0, 4);
        h.ws[0].bandwidth.raised = false;
        sample(&h, &a, 0, 30, 0, 0, 0, 0);
        text = tele_agg_json(&a, h.c, &h.s, 9, NULL);
        j = cJSON_Parse(text);
        /* The host's list leaves the slot's interface to its slot, which has no name for it (status
         * has), and lo, which moved nothing. */
        assert_int_equal(cJSON_GetArraySize(at(j, "net")), 1);
        assert_string_equal(at(j, "net.0.iface")->valuestring, "eth0");
        assert_int_equal(at(j, "slots.0.net.tx_bytes")->valueint, 1000);
        assert_null(cJSON_GetObjectItem(at(j, "slots.0.net"), "iface"));
        /* Raised at any sample of the interval; throttle reasons seen at any sample. */
        assert_true(cJSON_IsTrue(at(j, "slots.0.bandwidth_over_cap")));
        assert_int_equal(at(j, "gpus.0.throttle_reasons")->valueint, 5);
        assert_gauge(at(j, "slots.0.gpu.encoder.fps"), 45, 30, 45, 40);
        assert_int_equal(at(j, "slots.0.gpu.encoder.latency_us")->valueint, 9000);
        assert_null(strstr(text, "codec"));
        /* A slot without a session: nothing measured, nothing said (status says the cgroup and the
         * interface are not there). */
        assert_int_equal(cJSON_GetArraySize(at(j, "slots.1")), 1);
        /* Scales, names, verdicts and states are the status document's. */
        assert_null(strstr(text, "_state\""));
        assert_null(strstr(text, "iface_error"));
        assert_null(strstr(text, "\"scale\""));
        assert_null(strstr(text, "\"name\""));
        assert_null(strstr(text, "conformant"));
        assert_null(strstr(text, "total_bytes"));
        cJSON_Delete(j);
        free(text);
        tele_agg_done(&a);
        host_done(&h);
}

static void test_document_is_byte_exact(void **state) {
        struct host h;
        struct tele_agg a;
        struct tele_self self = { .has_tick = true, .tick_usec = 140, .tick_max_usec = 900 };
        char *text;

        (void)state;
        host_init(&h);
        tele_agg_init(&a, &h.table);
        h.gpu.present = HAL_GPU_UTIL;
        sample(&h, &a, 12.5, 10, 1.25, 4096, 40, 0);
        sample(&h, &a, 37.5, 20, 1.25, 4096, 60, 0);
        text = tele_agg_json(&a, h.c, &h.s, 9, &self);
        assert_string_equal(text, "{\"v\":2,\"type\":\"telemetry\",\"node\":\"n1\",\"region\":\"eu\","
                                  "\"ts\":\"2026-11-24T11:07:00.123Z\",\"seq\":9,\"interval_ms\":3000,"
                                  "\"samples\":2,\"cpu\":{\"util_pct\":[37.50,12.50,37.50,25.00]},"
                                  "\"memory\":{\"available_kib\":600},\"net\":[{\"iface\":\"eth0\","
                                  "\"rx_bytes\":10,\"tx_bytes\":0,\"rx_mbps\":1.25,\"tx_mbps\":0.00}],"
                                  "\"slots\":[{\"id\":\"s0\",\"cgroup\":{\"memory_kib\":4},"
                                  "\"net\":{\"rx_bytes\":0,\"tx_bytes\":0,\"mbps\":1.25},"
                                  "\"gpu\":{\"util_pct\":[60.0,40.0,60.0,50.0]}},{\"id\":\"s1\"}],"
                                  "\"gpus\":[{\"index\":0,\"age_ms\":0,\"util_pct\":[60.0,40.0,60.0,50.0]}],"
                                  "\"self\":{\"tick_usec\":140,\"tick_max_usec\":900}}");
        free(text);
        tele_agg_done(&a);
        host_done(&h);
}

/* A reload that drops slot a, keeps b (moving from index 1 to 0) and adds c, as the agent does it:
 * the table synced by id (slot_table_sync), then the interval ended (tele_agg_next). */
#define RELOAD_CFG(slots)                                                                                \
        "{\"node\":{\"id\":\"n1\",\"region\":\"eu\"},\"sampling\":{\"interval_ms\":1000},"               \
        "\"telemetry\":{\"interval_ms\":3000},\"mqtt\":{\"host\":\"h\",\"tls\":false},\"slots\":[" slots \
        "]}"
#define RELOAD_SLOT_A "{\"id\":\"a\",\"scale\":\"cpu-4\"}"
#define RELOAD_SLOT_B "{\"id\":\"b\",\"scale\":\"cpu-4\"}"
#define RELOAD_SLOT_C "{\"id\":\"c\",\"scale\":\"cpu-4\"}"

static void free_usage_part(struct usage_slot *us) {
        free(us);
}

/* Gives slots 0..n-1 of t a usage part (made here when they have none) whose cgroup reads
 * mem_kib[i] KiB. */
static void set_memory(struct slot_table *t, size_t n, const uint64_t *mem_kib) {
        for (size_t i = 0; i < n; i++) {
                struct slot *sl = slot_at(t, i);

                if (!sl->usage) {
                        sl->usage = calloc(1, sizeof(*sl->usage));
                        assert_non_null(sl->usage);
                        sl->usage_free = free_usage_part;
                }
                sl->usage->has_cg = true;
                sl->usage->cg.present = HAL_CG_MEM;
                sl->usage->cg.mem_current_bytes = mem_kib[i] * 1024;
        }
}

static struct cfg *parse(const char *json) {
        struct cfg_problems p = { 0 };
        struct cfg *c = NULL;

        assert_int_equal(cfg_parse("/etc/agent.json", json, strlen(json), &c, &p), 0);
        return c;
}

static void test_reload_gives_a_kept_slot_its_own_figures_never_another_slots(void **state) {
        struct cfg *ab = parse(RELOAD_CFG(RELOAD_SLOT_A "," RELOAD_SLOT_B)),
                   *bc = parse(RELOAD_CFG(RELOAD_SLOT_B "," RELOAD_SLOT_C));
        struct slot_table t = { 0 };
        struct sampler s = { .cur = { .real_usec = 1795518420123000ULL } };
        struct tele_agg a;
        char *text;
        cJSON *j;

        (void)state;
        assert_int_equal(slot_table_sync(&t, ab), 0);
        tele_agg_init(&a, &t);
        set_memory(&t, 2, (const uint64_t[]){ 100, 900 });
        assert_int_equal(tele_agg_add(&a, &s), 0);
        set_memory(&t, 2, (const uint64_t[]){ 300, 700 });
        assert_int_equal(tele_agg_add(&a, &s), 0);
        /* The reload: a goes, b is slot 0 now and keeps its slot object, c is new at a's old count
         * (no usage part yet: nothing measured). */
        assert_int_equal(slot_table_sync(&t, bc), 0);
        assert_string_equal(slot_at(&t, 0)->id, "b");
        assert_null(slot_at(&t, 1)->usage);
        tele_agg_next(&a);
        set_memory(&t, 1, (const uint64_t[]){ 500 });
        assert_int_equal(tele_agg_add(&a, &s), 0);
        text = tele_agg_json(&a, bc, &s, 9, NULL);
        j = cJSON_Parse(text);
        assert_non_null(j);
        /* b's one sample since the interval began again: neither a's 100..300 nor b's own figures
         * of the interval the reload ended. */
        assert_int_equal(cJSON_GetArraySize(at(j, "slots")), 2);
        assert_string_equal(at(j, "slots.0.id")->valuestring, "b");
        assert_true(cJSON_IsNumber(at(j, "slots.0.cgroup.memory_kib")));
        assert_int_equal(at(j, "slots.0.cgroup.memory_kib")->valueint, 500);
        assert_int_equal(at(j, "samples")->valueint, 1);
        /* c shows no figures, not b's, whose place it took in the count, nor a's. */
        assert_string_equal(at(j, "slots.1.id")->valuestring, "c");
        assert_int_equal(cJSON_GetArraySize(at(j, "slots.1")), 1);
        cJSON_Delete(j);
        free(text);
        tele_agg_done(&a);
        slot_table_done(&t);
        cfg_free(bc);
        cfg_free(ab);
}

static void test_a_gauge_no_sample_had_is_absent(void **state) {
        struct tele_gauge g = { 0 };
        struct tele_counter k = { 0 };

        (void)state;
        tele_gauge_add(&g, 3);
        tele_gauge_add(&g, -1);
        assert_int_equal(g.n, 2);
        assert_float_equal(g.min, -1, 0);
        assert_float_equal(g.max, 3, 0);
        assert_float_equal(g.last, -1, 0);
        /* One reading of a counter is no total yet. */
        tele_counter_add(&k, UINT64_MAX - 1);
        assert_false(k.has_total);
        tele_counter_add(&k, UINT64_MAX);
        assert_true(k.has_total);
        assert_int_equal(k.total, 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_varying_gauges_carry_last_min_max_and_average),
                cmocka_unit_test(test_byte_counters_are_totals_counted_once_across_intervals),
                cmocka_unit_test(test_slot_interface_is_under_its_slot_and_facts_stay_out),
                cmocka_unit_test(test_document_is_byte_exact),
                cmocka_unit_test(test_reload_gives_a_kept_slot_its_own_figures_never_another_slots),
                cmocka_unit_test(test_a_gauge_no_sample_had_is_absent),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
