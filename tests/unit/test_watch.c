/* test_watch.c: plan verdicts and the events they raise: bandwidth over the cap, memory, GPUs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"
#include "config.h"
#include "fileio.h"
#include "sampler.h"
#include "slot.h"
#include "telemetry.h"
#include "testutil.h"
#include "usage.h"
#include "watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

struct seen {
        int n;
        char types[32][32];
        char last[512];
};

static void collect(const char *type, cJSON *fields, void *ud) {
        struct seen *s = ud;
        char *j = cJSON_PrintUnformatted(fields);

        if (s->n < 32)
                snprintf(s->types[s->n++], sizeof(s->types[0]), "%s", type);
        snprintf(s->last, sizeof(s->last), "%s", j);
        free(j);
        cJSON_Delete(fields);
}

static struct cfg *load(const char *slots) {
        struct cfg_problems p = { 0 };
        struct cfg *c = NULL;
        char json[2048];

        snprintf(json, sizeof(json),
                 "{\"node\":{\"id\":\"n\",\"region\":\"r\"},\"mqtt\":{\"host\":\"h\",\"tls\":false},"
                 "\"events\":{\"bandwidth_over_s\":5,\"bandwidth_under_s\":5},\"slots\":[%s]}",
                 slots);
        assert_int_equal(cfg_parse("/etc/agent.json", json, strlen(json), &c, &p), 0);
        return c;
}

/* Writes a /proc/net/dev with veth-s0 at `tx` bytes sent. */
static void put_netdev(const struct tu_scratch *t, uint64_t tx) {
        char buf[512];

        snprintf(buf, sizeof(buf),
                 "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n"
                 "veth-s0: 0 0 0 0 0 0 0 0 %llu 0 0 0 0 0 0 0\n",
                 (unsigned long long)tx);
        tu_put(t->fd, "proc/net/dev", buf);
}

static void test_bandwidth_over_cap_needs_five_seconds_and_clears_after_five(void **state) {
        struct tu_scratch *t = *state;
        struct cfg *c = load("{\"id\":\"s0\",\"scale\":\"cpu-8\",\"iface\":\"veth-s0\"}"); /* cap 8 Mbps */
        struct seen seen = { 0 };
        struct watch w = { 0 };
        struct slot_table st = { 0 };
        struct sampler s;
        uint64_t tx = 0;
        int fd = t->fd;

        sampler_init(&s, fd);
        assert_int_equal(slot_table_sync(&st, c), 0);
        watch_init(&w, &st, collect, &seen);
        /* 10 Mbps (1,250,000 bytes a second) for 7 s, then 2 Mbps for 7 s. */
        for (uint64_t sec = 0; sec <= 14; sec++) {
                put_netdev(t, tx);
                plat_clock_set_fake((100 + sec) * USEC_PER_SEC, 1);
                sampler_tick(&s);
                watch_tick(&w, c, &s, s.cur.mono_usec);
                if (sec == 5)
                        assert_int_equal(seen.n, 0); /* over for 4 s of rates only */
                tx += sec < 7 ? 1250000 : 250000;
        }
        assert_int_equal(seen.n, 2);
        assert_string_equal(seen.types[0], "bandwidth_over_cap");
        assert_string_equal(seen.types[1], "bandwidth_normal");
        assert_string_equal(seen.last,
                            "{\"slot\":\"s0\",\"scale\":\"cpu-8\",\"mbps\":2,\"cap_mbps\":8,\"for_s\":5}");
        plat_clock_set_fake(0, 0);
        watch_done(&w);
        slot_table_done(&st);
        sampler_done(&s);
        cfg_free(c);
}

/* Over the cap, then a reload (the slot kept, another added before it), then under the cap: the
 * kept slot's bandwidth_normal still comes (a watch started over never said it). */
static void test_a_reload_keeps_a_slot_over_its_cap_until_it_clears(void **state) {
        struct tu_scratch *t = *state;
        struct cfg *c = load("{\"id\":\"s0\",\"scale\":\"cpu-8\",\"iface\":\"veth-s0\"}");
        struct cfg *n = load("{\"id\":\"s9\",\"scale\":\"cpu-8\",\"iface\":\"veth-s9\"},"
                             "{\"id\":\"s0\",\"scale\":\"cpu-8\",\"iface\":\"veth-s0\"}");
        struct seen seen = { 0 };
        struct watch w = { 0 };
        struct slot_table st = { 0 };
        struct sampler s;
        uint64_t tx = 0;

        sampler_init(&s, t->fd);
        assert_int_equal(slot_table_sync(&st, c), 0);
        watch_init(&w, &st, collect, &seen);
        for (uint64_t sec = 0; sec <= 14; sec++) {
                if (sec == 7) {
                        assert_int_equal(seen.n, 1); /* over the cap */
                        assert_int_equal(slot_table_sync(&st, n), 0);
                        watch_reload(&w);
                }
                put_netdev(t, tx);
                plat_clock_set_fake((100 + sec) * USEC_PER_SEC, 1);
                sampler_tick(&s);
                watch_tick(&w, sec < 7 ? c : n, &s, s.cur.mono_usec);
                tx += sec < 7 ? 1250000 : 250000;
        }
        assert_int_equal(seen.n, 2);
        assert_string_equal(seen.types[0], "bandwidth_over_cap");
        assert_string_equal(seen.types[1], "bandwidth_normal");
        assert_non_null(strstr(seen.last, "\"slot\":\"s0\""));
        plat_clock_set_fake(0, 0);
        watch_done(&w);
        slot_table_done(&st);
        sampler_done(&s);
        cfg_free(c);
        cfg_free(n);
}

static void test_nonconformant_slot_raises_an_event_and_shows_in_telemetry(void **state) {
        struct tu_scratch *t = *state;
        struct cfg *c = load("{\"id\":\"s0\",\"scale\":\"cpu-4\"},{\"id\":\"s1\",\"scale\":\"cpu-16\"}");
        struct spec_host host = { .cls = HAL_CLASS_X86_CPU, .cores = 8, .ram_bytes = 64 * SPEC_GB };
        struct seen seen = { 0 };
        struct watch w = { 0 };
        struct slot_table st = { 0 };
        struct usage u = { 0 };
        struct sampler s;
        cJSON *j, *slots;
        char *doc;
        int fd = t->fd;

        put_netdev(t, 0);
        sampler_init(&s, fd);
        sampler_tick(&s);
        assert_int_equal(slot_table_sync(&st, c), 0);
        assert_int_equal(usage_init(&u, fd, &st), 0);
        watch_init(&w, &st, collect, &seen);
        assert_false(watch_slot_admissible(&w, slot_at(&st, 0))); /* nothing is admitted before the plan */
        watch_plan(&w, c, &host);
        assert_true(watch_slot_admissible(&w, slot_at(&st, 0)));
        assert_false(watch_slot_admissible(&w, slot_at(&st, 1)));
        assert_int_equal(seen.n, 1);
        assert_string_equal(seen.types[0], "slot_nonconformant");
        assert_string_equal(seen.last,
                            "{\"slot\":\"s1\",\"scale\":\"cpu-16\",\"reason\":\"vcpu: needs 16, 4 left of 8 "
                            "(short by 12)\"}");
        doc = tele_telemetry_json(c, &s, &u, &w, 1, NULL);
        j = cJSON_Parse(doc);
        slots = cJSON_GetObjectItem(j, "slots");
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(slots, 0), "conformant")));
        assert_true(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetArrayItem(slots, 1), "conformant")));
        assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(slots, 1), "nonconformant")->valuestring,
                            "vcpu: needs 16, 4 left of 8 (short by 12)");
        cJSON_Delete(j);
        free(doc);
        watch_done(&w);
        usage_done(&u);
        slot_table_done(&st);
        sampler_done(&s);
        cfg_free(c);
}

static void test_gpu_lost_and_back_are_events_once_each(void **state) {
        struct cfg *c = load("");
        struct seen seen = { 0 };
        struct watch w = { 0 };
        struct slot_table st = { 0 };
        static struct hal_gpu_sample g[1];
        struct sampler s = { 0 };

        (void)state;
        assert_int_equal(slot_table_sync(&st, c), 0);
        watch_init(&w, &st, collect, &seen);
        s.cur.n_gpus = 1;
        s.cur.gpus = g;
        g[0] = (struct hal_gpu_sample){ .name = "NVIDIA L4", .error = -ENXIO, .error_msg = "GPU is lost" };
        for (int i = 0; i < 3; i++)
                watch_tick(&w, c, &s, (uint64_t)i * USEC_PER_SEC);
        /* A partial sample (one metric unreadable) is not a lost GPU. */
        g[0] = (struct hal_gpu_sample){ .name = "NVIDIA L4", .present = HAL_GPU_UTIL, .error = -EPROTO };
        watch_tick(&w, c, &s, 4 * USEC_PER_SEC);
        assert_int_equal(seen.n, 2);
        assert_string_equal(seen.types[0], "gpu_lost");
        assert_string_equal(seen.types[1], "gpu_recovered");
        watch_done(&w);
        slot_table_done(&st);
        cfg_free(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(
                        test_bandwidth_over_cap_needs_five_seconds_and_clears_after_five, tu_scratch_setup,
                        tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(
                        test_nonconformant_slot_raises_an_event_and_shows_in_telemetry, tu_scratch_setup,
                        tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_a_reload_keeps_a_slot_over_its_cap_until_it_clears,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test(test_gpu_lost_and_back_are_events_once_each),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
