/* test_streamsum.c: a player session's stream quality, summed tick by tick for its session_end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "streamsum.h"
#include "usage.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static struct usage_slot slot_with(unsigned n_enc, unsigned n_fbc) {
        struct usage_slot us = {
                .has_enc = true, .has_fbc = true, .n_enc = (uint8_t)n_enc, .n_fbc = (uint8_t)n_fbc
        };

        return us;
}

static char *summary_text(const struct streamsum *s) {
        cJSON *o = streamsum_json(s);
        char *t = o ? cJSON_PrintUnformatted(o) : NULL;

        cJSON_Delete(o);
        return t;
}

static void test_averages_and_worst_figures_over_ticks_and_sessions(void **state) {
        struct usage_slot us = slot_with(2, 1);
        struct streamsum s = { 0 };
        char *t;

        (void)state;
        us.enc[0] = (struct hal_gpu_enc_session){ .id = 1, .avg_fps = 60, .avg_latency_us = 4200 };
        us.enc[1] = (struct hal_gpu_enc_session){ .id = 2, .avg_fps = 58, .avg_latency_us = 6100 };
        us.fbc[0] = (struct hal_gpu_fbc_session){ .id = 101, .avg_fps = 59, .avg_latency_us = 1800 };
        streamsum_add(&s, &us, false);
        /* The next tick: session 1 slows down; session 2 is gone, 3 is new. */
        us.enc[0].avg_fps = 31;
        us.enc[1] = (struct hal_gpu_enc_session){ .id = 3, .avg_fps = 60, .avg_latency_us = 9000 };
        us.fbc[0].avg_latency_us = 1900;
        streamsum_add(&s, &us, false);
        t = summary_text(&s);
        /* encoder: (60+58+31+60)/4 = 52.25 -> 52.3 fps; (4200+6100+4200+9000)/4 = 5875 us. */
        assert_string_equal(t, "{\"ticks\":2,"
                               "\"encoder\":{\"sessions\":3,\"samples\":4,\"avg_fps\":52.3,\"min_fps\":31,"
                               "\"avg_latency_us\":5875,\"max_latency_us\":9000},"
                               "\"fbc\":{\"sessions\":1,\"samples\":2,\"avg_fps\":59,\"min_fps\":59,"
                               "\"avg_latency_us\":1850,\"max_latency_us\":1900}}");
        free(t);
}

/* A driver stuck gives the same sample tick after tick: it would weigh its last figures as many
 * times as the driver stays stuck. */
static void test_stale_gpu_sample_adds_nothing(void **state) {
        struct usage_slot us = slot_with(1, 0);
        struct streamsum s = { 0 };

        (void)state;
        us.enc[0] = (struct hal_gpu_enc_session){ .id = 1, .avg_fps = 60, .avg_latency_us = 4000 };
        streamsum_add(&s, &us, false);
        streamsum_add(&s, &us, true);
        streamsum_add(&s, &us, true);
        assert_int_equal(s.ticks, 1);
        assert_int_equal(s.enc.samples, 1);
}

/* Never listed (no NVIDIA GPU, an old driver, a shared GPU without a cgroup): nothing is known, no
 * member; listed without sessions: "no stream", sessions 0 without averages. */
static void test_never_listed_is_no_member_and_listed_empty_is_zero_sessions(void **state) {
        struct usage_slot none = { 0 }, empty = { .has_enc = true };
        struct streamsum s = { 0 };
        char *t;

        (void)state;
        streamsum_add(&s, &none, false);
        assert_null(streamsum_json(&s));
        streamsum_add(&s, &empty, false);
        t = summary_text(&s);
        assert_string_equal(t, "{\"ticks\":1,\"encoder\":{\"sessions\":0}}");
        free(t);
        streamsum_reset(&s);
        assert_null(streamsum_json(&s));
}

/* More distinct sessions than are told apart: counted up to the limit and said so. */
static void test_many_sessions_are_counted_to_the_limit_and_flagged(void **state) {
        struct usage_slot us = slot_with(1, 0);
        struct streamsum s = { 0 };
        cJSON *o;

        (void)state;
        for (uint32_t id = 1; id <= STREAMSUM_IDS_MAX + 5; id++) {
                us.enc[0] = (struct hal_gpu_enc_session){ .id = id, .avg_fps = 30, .avg_latency_us = 100 };
                streamsum_add(&s, &us, false);
                streamsum_add(&s, &us, false); /* the same session again: not a new one */
        }
        o = streamsum_json(&s);
        assert_non_null(o);
        assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "encoder"), "sessions")->valuedouble,
                         STREAMSUM_IDS_MAX);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "encoder"), "more_sessions")));
        assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "encoder"), "samples")->valuedouble,
                         2 * (STREAMSUM_IDS_MAX + 5));
        cJSON_Delete(o);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_averages_and_worst_figures_over_ticks_and_sessions),
                cmocka_unit_test(test_stale_gpu_sample_adds_nothing),
                cmocka_unit_test(test_never_listed_is_no_member_and_listed_empty_is_zero_sessions),
                cmocka_unit_test(test_many_sessions_are_counted_to_the_limit_and_flagged),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
