/* test_billing.c: billing windows: peak concurrency, slot-seconds, minute bandwidth, clock steps, restarts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "billing.h"
#include "cleanup.h"
#include "jws.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEC UINT64_C(1000000)
#define MSEC UINT64_C(1000)
/* 2023-11-14T00:00:00Z: a day start, so every window and minute of the tests starts at BASE + k. */
#define BASE (UINT64_C(1699920000) * SEC)
#define MONO0 (UINT64_C(5000) * SEC)
#define MAX_REC 64
#define MAX_SCALES 4
#define MAX_PROJECTS 8
#define N_IDS 80

static char id_buf[N_IDS][8];
static const char *ids[N_IDS];
static const char *all_s[N_IDS];

/* A record as the callback saw it, with what it borrowed copied. */
struct rec {
        struct billing_record r;
        struct billing_scale_figures scales[MAX_SCALES];
        char names[MAX_SCALES][BILLING_SCALE_MAX + 1];
        char slot_id[BILLING_ID_MAX + 1];
        struct billing_project_figures projects[MAX_PROJECTS];
        char project_names[MAX_PROJECTS][BILLING_PROJECT_MAX + 1];
        uint64_t flow_sec[BILLING_FLOWS][BILLING_SECONDS];
        struct billing_target_figures targets[BILLING_TARGETS_MAX];
        char target_names[BILLING_TARGETS_MAX][BILLING_TARGET_MAX + 1];
        uint64_t target_sec[BILLING_TARGETS_MAX][BILLING_SECONDS];
};

struct fx {
        struct billing *b;
        struct billing_time now;
        struct rec rec[MAX_REC];
        size_t n;
        char msg[BILLING_MSG_MAX];
        bool reenter;   /* the callback calls back in */
        int reenter_rc; /* and what that call returned */
};

static void collect(void *userdata, const struct billing_record *r) {
        struct fx *f = userdata;
        struct rec *c;

        assert_true(f->n < MAX_REC);
        if (f->reenter)
                f->reenter_rc = billing_tick(f->b, f->now);
        c = &f->rec[f->n++];
        c->r = *r;
        if (r->kind == BILLING_MINUTE) {
                snprintf(c->slot_id, sizeof(c->slot_id), "%s", r->minute.slot_id);
                c->r.minute.slot_id = c->slot_id;
                for (size_t fl = 0; fl < BILLING_FLOWS; fl++) {
                        memcpy(c->flow_sec[fl], r->minute.flow[fl].sec_bytes, sizeof(c->flow_sec[fl]));
                        c->r.minute.flow[fl].sec_bytes = c->flow_sec[fl];
                }
                assert_true(r->minute.n_targets <= BILLING_TARGETS_MAX);
                for (size_t t = 0; t < r->minute.n_targets; t++) {
                        c->targets[t] = r->minute.targets[t];
                        snprintf(c->target_names[t], sizeof(c->target_names[t]), "%s",
                                 r->minute.targets[t].target);
                        c->targets[t].target = c->target_names[t];
                        memcpy(c->target_sec[t], r->minute.targets[t].fig.sec_bytes,
                               sizeof(c->target_sec[t]));
                        c->targets[t].fig.sec_bytes = c->target_sec[t];
                }
                c->r.minute.targets = c->targets;
                return;
        }
        assert_true(r->window.n_scales <= MAX_SCALES);
        for (size_t i = 0; i < r->window.n_scales; i++) {
                c->scales[i] = r->window.scales[i];
                snprintf(c->names[i], sizeof(c->names[i]), "%s", r->window.scales[i].scale);
                c->scales[i].scale = c->names[i];
        }
        c->r.window.scales = c->scales;
        assert_true(r->window.n_projects <= MAX_PROJECTS);
        for (size_t i = 0; i < r->window.n_projects; i++) {
                size_t k = 0;

                c->projects[i] = r->window.projects[i];
                snprintf(c->project_names[i], sizeof(c->project_names[i]), "%s",
                         r->window.projects[i].project);
                c->projects[i].project = c->project_names[i];
                while (k < r->window.n_scales && strcmp(c->names[k], r->window.projects[i].scale))
                        k++;
                assert_true(k < r->window.n_scales);
                c->projects[i].scale = c->names[k];
        }
        c->r.window.projects = c->projects;
}

static int setup(void **state) {
        struct fx *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        for (size_t i = 0; i < N_IDS; i++) {
                snprintf(id_buf[i], sizeof(id_buf[i]), "s%zu", i);
                ids[i] = id_buf[i];
                all_s[i] = "S";
        }
        f->now = (struct billing_time){ .mono_usec = MONO0, .real_usec = BASE };
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fx *f = *state;

        billing_free(f->b);
        free(f);
        return 0;
}

static struct billing_config config(void *userdata, size_t n, uint64_t window_s, uint64_t late_s,
                                    const char *const *scales) {
        return (struct billing_config){ .n_slots = n,
                                        .slot_ids = ids,
                                        .slot_scales = scales ? scales : all_s,
                                        .window_usec = window_s * SEC,
                                        .late_usec = late_s * SEC,
                                        .emit = collect,
                                        .userdata = userdata };
}

static void start(struct fx *f, size_t n, uint64_t window_s, uint64_t late_s, const char *const *scales) {
        struct billing_config c = config(f, n, window_s, late_s, scales);

        assert_int_equal(billing_new(&c, f->now, &f->b, f->msg, sizeof(f->msg)), 0);
}

/* Both clocks to BASE + t (no step so far). */
static void at(struct fx *f, uint64_t t) {
        f->now = (struct billing_time){ .mono_usec = MONO0 + t, .real_usec = BASE + t };
}

/* Time passes: both clocks move. */
static void advance(struct fx *f, uint64_t d) {
        f->now.mono_usec += d;
        f->now.real_usec += d;
}

/* Time passes d, then the wall clock is set `wall` away from where it was. */
static void stepped(struct fx *f, uint64_t d, int64_t wall) {
        advance(f, d);
        f->now.real_usec = (uint64_t)((int64_t)f->now.real_usec + wall);
}

static void occ(struct fx *f, size_t slot, bool on) {
        assert_true(billing_occupancy(f->b, slot, on, NULL, f->now) >= 0);
}

/* Slot occupied for project. */
static void occ_for(struct fx *f, size_t slot, const char *project) {
        assert_true(billing_occupancy(f->b, slot, true, project, f->now) >= 0);
}

static int tick(struct fx *f) {
        int r = billing_tick(f->b, f->now);

        assert_true(r >= 0);
        return r;
}

static void bytes_over(struct fx *f, size_t slot, enum billing_flow fl, uint64_t n, uint64_t span) {
        struct billing_time from = { f->now.mono_usec - span, f->now.real_usec - span };

        assert_true(billing_bytes(f->b, slot, fl, n, from, f->now) >= 0);
}

static size_t count_kind(const struct fx *f, enum billing_record_kind k) {
        size_t n = 0;

        for (size_t i = 0; i < f->n; i++)
                n += f->rec[i].r.kind == k;
        return n;
}

/* The one window record that starts at BASE + t; fails the test when there is none or several. */
static const struct billing_window *window_at(const struct fx *f, uint64_t t) {
        const struct billing_window *found = NULL;

        for (size_t i = 0; i < f->n; i++)
                if (f->rec[i].r.kind == BILLING_WINDOW && f->rec[i].r.window.start_usec == BASE + t) {
                        assert_null(found);
                        found = &f->rec[i].r.window;
                }
        assert_non_null(found);
        return found;
}

/* The window at BASE + t has these figures; returns it for more checks. */
static const struct billing_window *expect_window(const struct fx *f, uint64_t t, uint64_t covered,
                                                  uint64_t slot_usec, uint32_t peak, bool clock_step) {
        const struct billing_window *w = window_at(f, t);

        assert_int_equal(w->covered_usec, covered);
        assert_int_equal(w->slot_usec, slot_usec);
        assert_int_equal(w->peak, peak);
        assert_int_equal(w->clock_step, clock_step);
        return w;
}

static const struct billing_minute *minute_at(const struct fx *f, size_t slot, uint64_t t) {
        const struct billing_minute *found = NULL;

        for (size_t i = 0; i < f->n; i++)
                if (f->rec[i].r.kind == BILLING_MINUTE && f->rec[i].r.minute.slot == slot &&
                    f->rec[i].r.minute.start_usec == BASE + t) {
                        assert_null(found);
                        found = &f->rec[i].r.minute;
                }
        assert_non_null(found);
        return found;
}

/* ---- concurrency windows ---- */

/* The product's worked example: an hour in thirds peaking at 25, 10 and 74 users is billed 74. */
static void test_hour_of_thirds_peaking_25_10_74_reports_74(void **state) {
        struct fx *f = *state;
        const struct billing_window *w;

        start(f, N_IDS, 3600, 10, NULL);
        /* First third: 25 users arrive 10 s apart and all leave at 1200 s. */
        for (size_t i = 0; i < 25; i++) {
                at(f, i * 10 * SEC);
                occ(f, i, true);
        }
        at(f, 1200 * SEC);
        for (size_t i = 0; i < 25; i++)
                occ(f, i, false);
        /* Second third: 10 users from 1200 s to 2400 s (handover at the same microsecond). */
        for (size_t i = 0; i < 10; i++)
                occ(f, i, true);
        at(f, 2400 * SEC);
        for (size_t i = 0; i < 10; i++)
                occ(f, i, false);
        /* Last third: 74 users arrive i s + i us after 2400 s, all leave at 3500 s. */
        for (size_t i = 0; i < 74; i++) {
                at(f, (2400 + i) * SEC + i);
                occ(f, i, true);
        }
        at(f, 3500 * SEC);
        for (size_t i = 0; i < 74; i++)
                occ(f, i, false);
        assert_int_equal(f->n, 0);
        at(f, 3600 * SEC);
        assert_int_equal(tick(f), 1);

        /* 25*1200 - 10*(0+..+24) + 10*1200 + 74*1100 - (0+..+73) s - (0+..+73) us */
        w = expect_window(f, 0, 3600 * SEC, (27000 + 12000 + 78699) * SEC - 2701, 74, false);
        assert_int_equal(w->window_usec, 3600 * SEC);
        assert_int_equal(w->n_windows, 1);
        assert_false(w->partial);
        assert_int_equal(w->n_scales, 1);
        assert_int_equal(w->scales[0].peak, 74);
        assert_int_equal(w->scales[0].slot_usec, w->slot_usec);
}

static void test_session_across_windows_counts_in_every_window_it_spans(void **state) {
        struct fx *f = *state;

        start(f, 2, 10, 10, NULL);
        at(f, 5 * SEC);
        occ(f, 0, true);
        at(f, 25 * SEC);
        occ(f, 0, false);
        at(f, 40 * SEC);
        tick(f);
        assert_int_equal(count_kind(f, BILLING_WINDOW), 4);
        expect_window(f, 0, 10 * SEC, 5 * SEC, 1, false);
        /* The middle window sees no event at all: the carried occupancy is its peak. */
        expect_window(f, 10 * SEC, 10 * SEC, 10 * SEC, 1, false);
        expect_window(f, 20 * SEC, 10 * SEC, 5 * SEC, 1, false);
        /* An idle window is still reported: the central side sees the node was up. */
        expect_window(f, 30 * SEC, 10 * SEC, 0, 0, false);
}

static void test_session_of_10ms_counts_in_peak(void **state) {
        struct fx *f = *state;

        start(f, 2, 10, 10, NULL);
        at(f, 3 * SEC);
        occ(f, 1, true);
        advance(f, 10 * MSEC);
        occ(f, 1, false);
        at(f, 10 * SEC);
        assert_int_equal(tick(f), 1);
        expect_window(f, 0, 10 * SEC, 10 * MSEC, 1, false);
}

static void test_changes_at_one_microsecond_apply_in_call_order(void **state) {
        struct fx *f = *state;

        start(f, 3, 10, 10, NULL);
        at(f, 2 * SEC);
        /* A handover (stop, then start) never counts two; a start before a stop does. */
        occ(f, 0, true);
        occ(f, 0, false);
        occ(f, 1, true);
        occ(f, 1, false);
        occ(f, 2, true);
        occ(f, 0, true);
        occ(f, 2, false);
        occ(f, 0, false);
        at(f, 10 * SEC);
        tick(f);
        assert_int_equal(window_at(f, 0)->peak, 2);
        assert_int_equal(window_at(f, 0)->slot_usec, 0);
}

static void test_repeated_occupancy_counts_once(void **state) {
        struct fx *f = *state;

        start(f, 2, 10, 10, NULL);
        occ(f, 0, true);
        advance(f, SEC);
        occ(f, 0, true); /* GRACE after ACTIVE: still one occupied slot */
        occ(f, 1, false);
        at(f, 10 * SEC);
        tick(f);
        assert_int_equal(window_at(f, 0)->peak, 1);
        assert_int_equal(window_at(f, 0)->slot_usec, 10 * SEC);
}

static void test_figures_split_by_scale(void **state) {
        static const char *const scales[] = { "S", "S", "M", "L" };
        struct fx *f = *state;
        const struct billing_window *w;

        start(f, 4, 60, 10, scales);
        occ(f, 0, true);
        occ(f, 2, true);
        at(f, 5 * SEC);
        occ(f, 1, true);
        at(f, 10 * SEC);
        occ(f, 0, false);
        at(f, 15 * SEC);
        occ(f, 1, false);
        at(f, 20 * SEC);
        occ(f, 2, false);
        at(f, 60 * SEC);
        tick(f);
        w = window_at(f, 0);
        assert_int_equal(w->peak, 3);
        assert_int_equal(w->slot_usec, 40 * SEC);
        assert_int_equal(w->n_scales, 3);
        assert_string_equal(w->scales[0].scale, "S");
        assert_int_equal(w->scales[0].peak, 2);
        assert_int_equal(w->scales[0].slot_usec, 20 * SEC);
        assert_string_equal(w->scales[1].scale, "M");
        assert_int_equal(w->scales[1].peak, 1);
        assert_int_equal(w->scales[1].slot_usec, 20 * SEC);
        assert_string_equal(w->scales[2].scale, "L");
        assert_int_equal(w->scales[2].peak, 0);
        assert_int_equal(w->scales[2].slot_usec, 0);
}

/* ---- concurrency by project ---- */

/* The figures of (project, scale) in window w; fails the test when it is not listed. */
static void expect_project(const struct billing_window *w, const char *project, const char *scale,
                           uint32_t peak, uint64_t slot_usec) {
        for (size_t i = 0; i < w->n_projects; i++)
                if (!strcmp(w->projects[i].project, project) && !strcmp(w->projects[i].scale, scale)) {
                        assert_int_equal(w->projects[i].peak, peak);
                        assert_int_equal(w->projects[i].slot_usec, slot_usec);
                        return;
                }
        fail_msg("window has no figures for project %s, scale %s", project, scale);
}

/* by_project of r's JSON, printed. Caller frees. */
static char *by_project_json(const struct billing_record *r) {
        cJSON *o = cJSON_CreateObject();
        char *s;

        assert_non_null(o);
        assert_int_equal(billing_record_json(r, o), 0);
        s = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(o, "by_project"));
        assert_non_null(s);
        cJSON_Delete(o);
        return s;
}

static void test_peaks_per_project_and_scale_at_one_instant(void **state) {
        static const char *const scales[] = { "S", "S", "M", "M", "S" };
        struct fx *f = *state;
        const struct billing_window *w;
        char *json;

        start(f, 5, 60, 10, scales);
        occ_for(f, 0, "acme");
        at(f, 10 * SEC);
        occ_for(f, 1, "acme");
        occ_for(f, 2, "acme");
        occ_for(f, 3, "zeta");
        occ(f, 4, true); /* no project: in the totals only */
        at(f, 20 * SEC);
        occ(f, 0, false);
        at(f, 30 * SEC);
        for (size_t i = 1; i < 5; i++)
                occ(f, i, false);
        at(f, 60 * SEC);
        tick(f);
        w = expect_window(f, 0, 60 * SEC, 100 * SEC, 5, false);
        assert_int_equal(w->n_projects, 3);
        expect_project(w, "acme", "S", 2, 40 * SEC);
        expect_project(w, "acme", "M", 1, 20 * SEC);
        expect_project(w, "zeta", "M", 1, 20 * SEC);
        json = by_project_json(&f->rec[0].r);
        assert_string_equal(json,
                            "{\"acme\":{\"S\":{\"peak\":2,\"slot_seconds\":40},\"M\":{\"peak\":1,"
                            "\"slot_seconds\":20}},\"zeta\":{\"M\":{\"peak\":1,\"slot_seconds\":20}}}");
        free(json);
}

static void test_a_handover_between_projects_counts_once_in_each(void **state) {
        struct fx *f = *state;
        const struct billing_window *w;

        start(f, 1, 60, 10, NULL);
        occ_for(f, 0, "acme");
        at(f, 30 * SEC);
        occ(f, 0, false);
        occ_for(f, 0, "zeta");
        at(f, 60 * SEC);
        tick(f);
        w = expect_window(f, 0, 60 * SEC, 60 * SEC, 1, false);
        assert_int_equal(w->n_projects, 2);
        expect_project(w, "acme", "S", 1, 30 * SEC);
        expect_project(w, "zeta", "S", 1, 30 * SEC);
        /* Carried into the next window: zeta alone, acme is done. */
        at(f, 90 * SEC);
        occ(f, 0, false);
        at(f, 180 * SEC);
        tick(f);
        w = expect_window(f, 60 * SEC, 60 * SEC, 30 * SEC, 1, false);
        assert_int_equal(w->n_projects, 1);
        expect_project(w, "zeta", "S", 1, 30 * SEC);
        assert_int_equal(window_at(f, 120 * SEC)->n_projects, 0);
}

static void test_a_repeat_keeps_the_project_and_a_bad_project_changes_nothing(void **state) {
        struct fx *f = *state;
        char long_name[BILLING_PROJECT_MAX + 2];
        const struct billing_window *w;
        const char *project = NULL;

        memset(long_name, 'p', sizeof(long_name) - 1);
        long_name[sizeof(long_name) - 1] = '\0';
        start(f, 2, 60, 10, NULL);
        assert_int_equal(billing_occupancy(f->b, 1, true, "a b", f->now), -EINVAL);
        assert_int_equal(billing_occupancy(f->b, 1, true, long_name, f->now), -EINVAL);
        assert_false(billing_occupied(f->b, 1, &project));
        assert_string_equal(project, "");
        occ_for(f, 0, "acme");
        at(f, 10 * SEC);
        occ_for(f, 0, "zeta");                            /* GRACE after ACTIVE: the same session */
        assert_true(billing_occupied(f->b, 0, &project)); /* what the meter puts back after a failed batch */
        assert_string_equal(project, "acme");
        at(f, 60 * SEC);
        tick(f);
        w = expect_window(f, 0, 60 * SEC, 60 * SEC, 1, false);
        assert_int_equal(w->n_projects, 1);
        expect_project(w, "acme", "S", 1, 60 * SEC);
}

/* What a window past the cap of named pairs holds, from its record. */
struct crowd {
        size_t json_max, windows, n_projects;
        uint64_t slot_usec, project_usec, other_usec;
};

static void crowd_collect(void *userdata, const struct billing_record *r) {
        struct crowd *c = userdata;
        cJSON *o = cJSON_CreateObject();
        char *s;

        if (r->kind != BILLING_WINDOW) {
                cJSON_Delete(o);
                return;
        }
        assert_int_equal(billing_record_json(r, o), 0);
        s = cJSON_PrintUnformatted(o);
        assert_non_null(s);
        c->json_max = strlen(s) > c->json_max ? strlen(s) : c->json_max;
        free(s);
        cJSON_Delete(o);
        c->windows++;
        c->n_projects = r->window.n_projects;
        c->slot_usec += r->window.slot_usec;
        for (size_t i = 0; i < r->window.n_projects; i++) {
                c->project_usec += r->window.projects[i].slot_usec;
                if (!strcmp(r->window.projects[i].project, BILLING_OTHER_PROJECT))
                        c->other_usec += r->window.projects[i].slot_usec;
        }
}

/* 64 slots of 64 scales with the longest names, and 400 projects with the longest names in one hour:
 * the first 200 (project, scale) pairs are listed, the rest summed per scale under "(other)", and the
 * record still fits one signed payload with room for the common members. */
static void test_past_the_cap_pairs_are_summed_as_other_and_the_record_fits_a_payload(void **state) {
        static char scale_buf[64][BILLING_SCALE_MAX + 1];
        static const char *scales[64];
        struct fx *f = *state;
        struct crowd c = { 0 };
        struct billing_config cfg;

        for (size_t i = 0; i < 64; i++) {
                snprintf(scale_buf[i], sizeof(scale_buf[i]), "%02zu%030d", i, 0);
                scales[i] = scale_buf[i];
        }
        cfg = config(&c, 64, 3600, 10, scales);
        cfg.emit = crowd_collect;
        assert_int_equal(billing_new(&cfg, f->now, &f->b, f->msg, sizeof(f->msg)), 0);
        for (size_t k = 0; k < 400; k++) {
                char project[BILLING_PROJECT_MAX + 1];

                snprintf(project, sizeof(project), "%03zu%061d", k, 0);
                at(f, k * SEC + 123457 * k % SEC); /* six decimals in slot_seconds */
                if (k >= 64)
                        occ(f, k % 64, false);
                occ_for(f, k % 64, project);
        }
        at(f, 3600 * SEC);
        tick(f);
        assert_int_equal(c.windows, 1);
        assert_int_equal(c.n_projects, BILLING_PROJECTS_MAX + 64);
        /* Every slot-second of a session with a project is in by_project, named or not. */
        assert_int_equal(c.project_usec, c.slot_usec);
        assert_true(c.other_usec > 0);
        assert_true(c.json_max + 1024 <= JWS_PAYLOAD_MAX);
}

static void test_tick_with_nothing_due_emits_nothing(void **state) {
        struct fx *f = *state;

        start(f, 2, 3600, 10, NULL);
        occ(f, 0, true);
        for (uint64_t t = 1; t < 3600; t += 7) {
                at(f, t * SEC);
                assert_int_equal(tick(f), 0);
        }
        assert_int_equal(f->n, 0);
        at(f, 3600 * SEC);
        assert_int_equal(tick(f), 1);
        assert_int_equal(tick(f), 0);
        assert_int_equal(f->n, 1);
}

/* An hour's peak is the largest of its windows' only when whole windows tile the hour. */
static void test_window_must_divide_an_hour(void **state) {
        static const uint64_t bad[] = { 0,          7 * SEC,    1500 * MSEC, 500 * MSEC, 2400 * SEC,
                                        5400 * SEC, 7200 * SEC, 86400 * SEC, 86401 * SEC };
        static const uint64_t good[] = { SEC, 2 * SEC, 900 * SEC, 1800 * SEC, 3600 * SEC };
        struct fx *f = *state;
        struct billing_config c = config(f, 2, 3600, 10, NULL);
        struct billing *b = NULL;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                c.window_usec = bad[i];
                f->msg[0] = '\0';
                assert_int_equal(billing_new(&c, f->now, &b, f->msg, sizeof(f->msg)), -EINVAL);
                assert_null(b);
                assert_non_null(strstr(f->msg, "divide an hour (3600 s)"));
        }
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                c.window_usec = good[i];
                assert_int_equal(billing_new(&c, f->now, &b, f->msg, sizeof(f->msg)), 0);
                billing_free(b);
                b = NULL;
        }
        billing_config_default(&c);
        assert_int_equal(c.window_usec, 3600 * SEC);
        assert_int_equal(c.late_usec, 10 * SEC);
}

static void test_config_refuses_bad_slots_and_lateness(void **state) {
        static const char *const dup_ids[] = { "s0", "s0" };
        static const char *const long_scale[] = { "S", "a-scale-name-longer-than-thirty-two-bytes" };
        static const char *const blank_id[] = { "s0", "" };
        struct fx *f = *state;
        struct billing_config c = config(f, 2, 3600, 10, NULL);
        struct billing *b = NULL;

        c.late_usec = 121 * SEC;
        assert_int_equal(billing_new(&c, f->now, &b, f->msg, sizeof(f->msg)), -EINVAL);
        assert_non_null(strstr(f->msg, "lateness"));
        c = config(f, 2, 3600, 10, NULL);
        c.slot_ids = dup_ids;
        assert_int_equal(billing_new(&c, f->now, &b, f->msg, sizeof(f->msg)), -EINVAL);
        assert_non_null(strstr(f->msg, "s0 appears twice"));
        c.slot_ids = blank_id;
        assert_int_equal(billing_new(&c, f->now, &b, f->msg, sizeof(f->msg)), -EINVAL);
        assert_non_null(strstr(f->msg, "slot 1: id"));
        c = config(f, 2, 3600, 10, long_scale);
        assert_int_equal(billing_new(&c, f->now, &b, f->msg, sizeof(f->msg)), -EINVAL);
        assert_non_null(strstr(f->msg, "slot s1: scale"));
        c = config(f, BILLING_SLOTS_MAX + 1, 3600, 10, NULL);
        assert_int_equal(billing_new(&c, f->now, &b, f->msg, sizeof(f->msg)), -EINVAL);
        c = config(f, 2, 3600, 10, NULL);
        c.emit = NULL;
        assert_int_equal(billing_new(&c, f->now, &b, f->msg, sizeof(f->msg)), -EINVAL);
        assert_null(b);
}

static void test_bad_arguments_change_nothing(void **state) {
        struct fx *f = *state;
        struct billing_time later = f->now;

        start(f, 2, 10, 10, NULL);
        later.mono_usec += SEC;
        assert_int_equal(billing_occupancy(f->b, 2, true, NULL, f->now), -EINVAL);
        assert_int_equal(billing_bytes(f->b, 0, BILLING_FLOWS, 1, f->now, f->now), -EINVAL);
        assert_int_equal(billing_bytes(f->b, 0, BILLING_PLAYER, 1, later, f->now), -EINVAL);
        later.real_usec = BILLING_TIME_MAX_USEC + 1;
        assert_int_equal(billing_tick(f->b, later), -EINVAL);
        at(f, 10 * SEC);
        tick(f);
        assert_int_equal(window_at(f, 0)->peak, 0);
        assert_int_equal(count_kind(f, BILLING_MINUTE), 0);
}

/* ---- restarts ---- */

static void test_start_inside_a_window_reports_it_partial_and_flush_reports_the_rest(void **state) {
        struct fx *f = *state;
        struct billing_stats st;

        at(f, 1800 * SEC + 500 * MSEC);
        start(f, 2, 3600, 10, NULL);
        occ(f, 0, true); /* re-seeded from the persisted slot state */
        bytes_over(f, 0, BILLING_PLAYER, 100, 0);
        /* The first sample after a restart may reach back before it: late, never a minute of its own. */
        bytes_over(f, 0, BILLING_VIEWERS, 4000, 40 * SEC);
        at(f, 3600 * SEC);
        tick(f);
        assert_int_equal(window_at(f, 0)->peak, 1);
        assert_int_equal(window_at(f, 0)->covered_usec, 1799 * SEC + 500 * MSEC);
        assert_true(window_at(f, 0)->partial);
        assert_true(minute_at(f, 0, 1800 * SEC)->partial);
        assert_int_equal(minute_at(f, 0, 1800 * SEC)->flow[BILLING_VIEWERS].bytes, 4000);
        assert_int_equal(minute_at(f, 0, 1800 * SEC)->flow[BILLING_VIEWERS].late_bytes, 3950);
        assert_int_equal(count_kind(f, BILLING_MINUTE), 1);

        at(f, 3700 * SEC);
        bytes_over(f, 0, BILLING_PUSH, 300, SEC);
        assert_int_equal(billing_flush(f->b, f->now), 2);
        assert_true(window_at(f, 3600 * SEC)->partial);
        assert_int_equal(window_at(f, 3600 * SEC)->covered_usec, 100 * SEC);
        assert_int_equal(window_at(f, 3600 * SEC)->slot_usec, 100 * SEC);
        assert_int_equal(minute_at(f, 0, 3660 * SEC)->flow[BILLING_PUSH].bytes, 300);
        assert_true(minute_at(f, 0, 3660 * SEC)->partial);
        assert_int_equal(billing_tick(f->b, f->now), -ESHUTDOWN);
        assert_int_equal(billing_occupancy(f->b, 1, true, NULL, f->now), -ESHUTDOWN);
        billing_get_stats(f->b, &st);
        assert_int_equal(st.records, f->n);
}

/* ---- bandwidth minutes ---- */

/* The rate of 5-second block k: changes every block, up and down. */
static uint64_t block_rate(uint64_t k) {
        return 100000 * (1 + k * 7 % 13);
}

/* Slot 0 is reported every 5 s, 3 s after each span ends; slot 1 every 0.5 s on time. Both carry
 * the same traffic, so both minutes must come out the same. */
static void test_five_second_and_half_second_reports_give_the_same_minutes(void **state) {
        struct fx *f = *state;
        uint64_t sum[2] = { 0, 0 }, peak[2] = { 0, 0 };

        start(f, 2, 3600, 10, NULL);
        for (uint64_t u = 500 * MSEC; u <= 130 * SEC; u += 500 * MSEC) {
                uint64_t k = (u - 500 * MSEC) / (5 * SEC);
                struct billing_time from, to;

                at(f, u);
                bytes_over(f, 1, BILLING_VIEWERS, block_rate(k) / 2, 500 * MSEC);
                if (u >= 8 * SEC && u % (5 * SEC) == 3 * SEC) {
                        uint64_t end = u - 3 * SEC;

                        from = (struct billing_time){ MONO0 + end - 5 * SEC, BASE + end - 5 * SEC };
                        to = (struct billing_time){ MONO0 + end, BASE + end };
                        assert_true(billing_bytes(f->b, 0, BILLING_VIEWERS,
                                                  block_rate(end / (5 * SEC) - 1) * 5, from, to) >= 0);
                }
        }
        for (uint64_t k = 0; k < 24; k++) {
                sum[k / 12] += block_rate(k) * 5;
                peak[k / 12] = block_rate(k) > peak[k / 12] ? block_rate(k) : peak[k / 12];
        }
        at(f, 200 * SEC);
        tick(f);
        for (size_t m = 0; m < 2; m++)
                for (size_t slot = 0; slot < 2; slot++) {
                        const struct billing_minute *r = minute_at(f, slot, m * 60 * SEC);

                        assert_int_equal(r->flow[BILLING_VIEWERS].bytes, sum[m]);
                        assert_int_equal(r->flow[BILLING_VIEWERS].peak_bytes_1s, peak[m]);
                        assert_int_equal(r->flow[BILLING_VIEWERS].late_bytes, 0);
                        assert_int_equal(r->flow[BILLING_PLAYER].bytes, 0);
                }
}

static void test_report_spanning_two_minutes_is_split_by_time(void **state) {
        struct fx *f = *state;

        start(f, 1, 3600, 10, NULL);
        at(f, 61500 * MSEC);
        bytes_over(f, 0, BILLING_PLAYER, 3000, 3 * SEC);
        at(f, 60500 * MSEC + 60 * SEC);
        bytes_over(f, 0, BILLING_PUSH, 1001, 1500 * MSEC);
        at(f, 300 * SEC);
        tick(f);
        assert_int_equal(minute_at(f, 0, 0)->flow[BILLING_PLAYER].bytes, 1500);
        assert_int_equal(minute_at(f, 0, 0)->flow[BILLING_PLAYER].peak_bytes_1s, 1000);
        assert_int_equal(minute_at(f, 0, 60 * SEC)->flow[BILLING_PLAYER].bytes, 1500);
        assert_int_equal(minute_at(f, 0, 60 * SEC)->flow[BILLING_PLAYER].peak_bytes_1s, 1000);
        /* 1001 bytes over [119 s, 120.5 s): two thirds before the boundary, rounded down. */
        assert_int_equal(minute_at(f, 0, 60 * SEC)->flow[BILLING_PUSH].bytes, 667);
        assert_int_equal(minute_at(f, 0, 120 * SEC)->flow[BILLING_PUSH].bytes, 334);
        assert_int_equal(count_kind(f, BILLING_MINUTE), 3);
}

static void test_minute_without_bytes_has_no_record(void **state) {
        struct fx *f = *state;

        start(f, 3, 3600, 10, NULL);
        at(f, 10 * SEC);
        bytes_over(f, 1, BILLING_PLAYER, 0, SEC);
        bytes_over(f, 2, BILLING_VIEWERS, 5, SEC);
        at(f, 600 * SEC);
        assert_int_equal(tick(f), 1);
        assert_int_equal(minute_at(f, 2, 0)->flow[BILLING_VIEWERS].bytes, 5);
        assert_string_equal(minute_at(f, 2, 0)->slot_id, "s2");
}

static void test_bytes_of_a_closed_minute_go_to_the_current_one_as_late(void **state) {
        struct fx *f = *state;
        struct billing_time from = { MONO0 + 30 * SEC, BASE + 30 * SEC };
        struct billing_time to = { MONO0 + 31 * SEC, BASE + 31 * SEC };
        const struct billing_flow_figures *fl;
        struct billing_stats st;

        start(f, 1, 3600, 10, NULL);
        at(f, 125 * SEC);
        tick(f);
        /* A report for [30 s, 31 s) arrives at 125 s: minute 0 closed at 70 s. */
        assert_true(billing_bytes(f->b, 0, BILLING_PLAYER, 1000, from, to) >= 0);
        /* One for [50 s, 130 s) at 130 s: its part up to 120 s is late (minute 1 closed at 130 s). */
        at(f, 130 * SEC);
        bytes_over(f, 0, BILLING_PLAYER, 8000, 80 * SEC);
        /* Late on the push flow: an instant and half a second count as if spread over one second. */
        from.mono_usec = to.mono_usec = MONO0 + 40 * SEC;
        assert_true(billing_bytes(f->b, 0, BILLING_PUSH, 2000, from, to) >= 0);
        from.mono_usec -= 500 * MSEC;
        assert_true(billing_bytes(f->b, 0, BILLING_PUSH, 1500, from, to) >= 0);
        at(f, 300 * SEC);
        tick(f);
        assert_int_equal(count_kind(f, BILLING_MINUTE), 1);
        fl = &minute_at(f, 0, 120 * SEC)->flow[BILLING_PLAYER];
        assert_int_equal(fl->bytes, 9000);
        assert_int_equal(fl->late_bytes, 1000 + 7000);
        /* The peak: the late spans at their own rate (1000 B/s, 100 B/s), the rest 100 B/s. */
        assert_int_equal(fl->peak_bytes_1s, 1000);
        fl = &minute_at(f, 0, 120 * SEC)->flow[BILLING_PUSH];
        assert_int_equal(fl->bytes, 3500);
        assert_int_equal(fl->late_bytes, 3500);
        assert_int_equal(fl->peak_bytes_1s, 2000);
        billing_get_stats(f->b, &st);
        assert_int_equal(st.late_bytes, 11500);
}

/* ---- carrying counted bytes across a restart ---- */

static struct billing_open open_of(struct fx *f, size_t slot, enum billing_flow fl) {
        struct billing_open o;

        assert_int_equal(billing_open_bytes(f->b, slot, fl, &o), 0);
        return o;
}

/* The open minutes hold exactly the bytes no record has; spread over the span given, no second
 * would get more than their busiest second had. */
static void test_open_bytes_hold_what_no_record_has_in_a_span_no_faster_than_its_peak(void **state) {
        struct fx *f = *state;
        struct billing_open o;

        start(f, 2, 3600, 10, NULL);
        at(f, 10 * SEC);
        bytes_over(f, 0, BILLING_PLAYER, 900, 9 * SEC); /* [1 s, 10 s) at 100 B/s */
        at(f, 40 * SEC);
        bytes_over(f, 0, BILLING_PLAYER, 3000, 30 * SEC);
        at(f, 61 * SEC);
        bytes_over(f, 0, BILLING_PLAYER, 50, SEC);
        o = open_of(f, 0, BILLING_PLAYER);
        assert_int_equal(o.bytes, 3950);
        assert_int_equal(o.from_usec, BASE + 1 * SEC);
        assert_int_equal(o.to_usec, BASE + 61 * SEC);
        o = open_of(f, 1, BILLING_PLAYER);
        assert_int_equal(o.bytes + o.from_usec + o.to_usec, 0);
        o = open_of(f, 0, BILLING_VIEWERS);
        assert_int_equal(o.bytes, 0);
        assert_int_equal(billing_open_bytes(f->b, 2, BILLING_PLAYER, &o), -EINVAL);
        assert_int_equal(billing_open_bytes(f->b, 0, BILLING_FLOWS, &o), -EINVAL);
        /* Minute 0 is made into its record at 70 s: it is no longer open. */
        at(f, 75 * SEC);
        assert_int_equal(tick(f), 1);
        assert_int_equal(minute_at(f, 0, 0)->flow[BILLING_PLAYER].bytes, 3900);
        o = open_of(f, 0, BILLING_PLAYER);
        assert_int_equal(o.bytes, 50);
        assert_int_equal(o.from_usec, BASE + 60 * SEC);
        assert_int_equal(o.to_usec, BASE + 61 * SEC);
        /* Late bytes keep no seconds: the span is as long as their rate (100 B/s) needs. */
        f->now.mono_usec -= 45 * SEC;
        f->now.real_usec -= 45 * SEC;
        bytes_over(f, 0, BILLING_PLAYER, 1000, 10 * SEC); /* [20 s, 30 s), told at 75 s */
        at(f, 75 * SEC);
        o = open_of(f, 0, BILLING_PLAYER);
        assert_int_equal(o.bytes, 1050);
        assert_int_equal(o.to_usec, BASE + 61 * SEC);
        assert_int_equal(o.from_usec, BASE + 61 * SEC - 10500 * MSEC);
}

/* What one module held open, given to the next (a restart), comes out in its minute records once,
 * every byte, and no second faster than before. */
static void test_restored_bytes_come_out_once_exact_and_no_faster(void **state) {
        struct fx *f = *state;
        _cleanup_free_ char *json = NULL;
        const struct billing_flow_figures *fl;

        /* Back within the same minute: the bytes take their own seconds again. */
        start(f, 2, 3600, 10, NULL);
        at(f, 30 * SEC);
        bytes_over(f, 1, BILLING_PUSH, 3000, 30 * SEC);
        assert_int_equal(billing_carry_json(f->b, &json), 0);
        assert_non_null(json);
        billing_free(f->b); /* killed: nothing flushed */
        f->b = NULL;
        at(f, 45 * SEC);
        start(f, 2, 3600, 10, NULL);
        assert_int_equal(billing_carry_in(f->b, json, f->msg, sizeof(f->msg)), 0);
        bytes_over(f, 1, BILLING_PUSH, 1500, 15 * SEC);
        at(f, 200 * SEC);
        tick(f);
        assert_int_equal(count_kind(f, BILLING_MINUTE), 1);
        fl = &minute_at(f, 1, 0)->flow[BILLING_PUSH];
        assert_int_equal(fl->bytes, 4500);
        assert_int_equal(fl->late_bytes, 0);
        assert_int_equal(fl->peak_bytes_1s, 100);
        assert_true(minute_at(f, 1, 0)->partial);
        billing_free(f->b);
        f->b = NULL;
        free(json);
        json = NULL;

        /* Back two minutes later: the bytes of minutes closed meanwhile are late bytes of the first. */
        f->n = 0;
        at(f, 0);
        start(f, 2, 3600, 10, NULL);
        at(f, 40 * SEC);
        bytes_over(f, 0, BILLING_PLAYER, 3900, 39 * SEC);
        at(f, 61 * SEC);
        bytes_over(f, 0, BILLING_PLAYER, 50, SEC);
        assert_int_equal(billing_carry_json(f->b, &json), 0);
        billing_free(f->b);
        f->b = NULL;
        at(f, 190 * SEC);
        start(f, 2, 3600, 10, NULL);
        assert_int_equal(billing_carry_in(f->b, json, f->msg, sizeof(f->msg)), 0);
        at(f, 400 * SEC);
        tick(f);
        assert_int_equal(count_kind(f, BILLING_MINUTE), 1);
        fl = &minute_at(f, 0, 180 * SEC)->flow[BILLING_PLAYER];
        assert_int_equal(fl->bytes, 3950);
        assert_int_equal(fl->late_bytes, 3950);
        assert_true(fl->peak_bytes_1s > 0 && fl->peak_bytes_1s <= 100);
        /* Nothing is left to carry once the minutes are made. */
        free(json);
        json = NULL;
        assert_int_equal(billing_carry_json(f->b, &json), 0);
        assert_null(json);
}

/* Open minutes that are not what billing_carry_json writes are refused whole, each fault named. */
static void test_carry_in_refuses_malformed_open_minutes_whole(void **state) {
        static const struct {
                const char *json, *msg;
        } bad[] = {
                { "[]", "open_minutes: not a JSON object" },
                { "{\"v\":2,\"slots\":[]}", "open_minutes.v: missing or not 1" },
                { "{\"v\":1}", "open_minutes.slots: missing or not an array" },
                { "{\"v\":1,\"slots\":[{\"player\":[1,0,1]}]}",
                  "open_minutes.slots[0]: not an object with a slot id" },
                { "{\"v\":1,\"slots\":[{\"slot\":\"s0\",\"player\":[1,0,1]},{\"slot\":\"s1\",\"player\":[1,"
                  "5,4]}]}",
                  "open_minutes.slots[1].player: want [bytes, from_us, to_us]" },
                { "{\"v\":1,\"slots\":[{\"slot\":\"s0\",\"viewers\":[1.5,0,1]}]}",
                  "open_minutes.slots[0].viewers: want" },
                { "{\"v\":1,\"slots\":[{\"slot\":\"s0\",\"audio\":[1,0,1]}]}",
                  "open_minutes.slots[0]: unknown member \"audio\"" },
                { "{\"v\":1,\"slots\":[{\"slot\":\"s0\",\"push\":[1,0,1]},{\"slot\":\"s0\"}]}",
                  "open_minutes.slots[1]: slot s0 listed twice" },
                { "{\"v\":1,\"slots\":[{\"slot\":\"s0\",\"push\":[1,0,1],\"push\":[1,0,1]}]}",
                  "open_minutes.slots[0].push: listed twice" },
                { "{\"v\":1,\"slots\":[{\"slot\":\"s0\",\"push\":[1,0,1],\"targets\":[]}]}",
                  "open_minutes.slots[0].targets: not an object of at most 32 push targets" },
                { "{\"v\":1,\"slots\":[{\"slot\":\"s0\",\"push\":[1,0,1],\"targets\":{\"a\":[2,0,1]}}]}",
                  "open_minutes.slots[0].targets: 2 bytes, more than push's 1" },
                { "{\"v\":1,\"slots\":[{\"slot\":\"s0\",\"targets\":{\"a\":[2,0,1]}}]}",
                  "open_minutes.slots[0].targets: 2 bytes, more than push's 0" },
                { "{\"v\":1,\"slots\":[{\"slot\":\"s0\",\"push\":[5,0,1],\"targets\":{\"\":[2,0,1]}}]}",
                  "open_minutes.slots[0].targets: member 0: a push target must be 1..64 bytes" },
                { "{\"v\":1,\"slots\":[{\"slot\":\"s0\",\"push\":[5,0,1],\"targets\":{\"a\":[2,0,1],"
                  "\"a\":[1,0,1]}}]}",
                  "open_minutes.slots[0].targets.a: listed twice" },
                { "{\"v\":1,\"slots\":[{\"slot\":\"s0\",\"push\":[5,0,1],\"targets\":{\"a\":[2,1,0]}}]}",
                  "open_minutes.slots[0].targets.a: want [bytes, from_us, to_us]" },
                { "{\"v\":1,\"slots\":[{\"slot\":\"s0\",\"push\":[5,0,1],\"targets\":{},\"targets\":{}}]}",
                  "open_minutes.slots[0].targets: listed twice" },
        };
        struct fx *f = *state;

        start(f, 2, 3600, 10, NULL);
        at(f, 30 * SEC);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                f->msg[0] = '\0';
                assert_int_equal(billing_carry_in(f->b, bad[i].json, f->msg, sizeof(f->msg)), -EBADMSG);
                if (!strstr(f->msg, bad[i].msg))
                        print_message("%s: %s\n", bad[i].json, f->msg);
                assert_non_null(strstr(f->msg, bad[i].msg));
        }
        /* A slot this config lacks: dropped, named; the others are taken. */
        assert_int_equal(
                billing_carry_in(f->b,
                                 "{\"v\":1,\"slots\":[{\"slot\":\"gone\",\"player\":[7,0,1]},"
                                 "{\"slot\":\"s1\",\"player\":[40,1699920000000000,1699920020000000]}]}",
                                 f->msg, sizeof(f->msg)),
                1);
        assert_string_equal(f->msg, "slot gone is not configured: its open bytes are dropped");
        at(f, 200 * SEC);
        assert_true(billing_flush(f->b, f->now) >= 0);
        /* Only the good entry's bytes: none of the refused ones were taken. */
        assert_int_equal(count_kind(f, BILLING_MINUTE), 1);
        assert_int_equal(minute_at(f, 1, 0)->flow[BILLING_PLAYER].bytes, 40);
        assert_int_equal(minute_at(f, 1, 0)->flow[BILLING_PLAYER].peak_bytes_1s, 2);
}

/* ---- a session's end closes its slot's minutes ---- */

/* Slot 0's minutes hold bytes of minute 0 (still open for late reports) and minute 1; its session
 * ends: both go out at once, partial and session_end, and never again; slot 1 is left alone. */
static void test_closing_a_slot_emits_its_open_minutes_once_and_zeroes_them(void **state) {
        struct fx *f = *state;
        const struct billing_minute *m0, *m1;
        struct billing_open o;

        start(f, 2, 3600, 10, NULL);
        at(f, 50 * SEC);
        bytes_over(f, 0, BILLING_PLAYER, 4000, 10 * SEC);
        at(f, 62 * SEC);
        bytes_over(f, 0, BILLING_VIEWERS, 700, 0);
        bytes_over(f, 1, BILLING_PUSH, 900, 0);
        assert_int_equal(billing_close_slot(f->b, 0, f->now), 2);
        m0 = minute_at(f, 0, 0);
        m1 = minute_at(f, 0, 60 * SEC);
        assert_true(m0->start_usec < m1->start_usec && f->rec[0].r.minute.start_usec == m0->start_usec);
        assert_int_equal(m0->flow[BILLING_PLAYER].bytes, 4000);
        assert_int_equal(m0->flow[BILLING_VIEWERS].bytes, 0);
        assert_int_equal(m1->flow[BILLING_VIEWERS].bytes, 700);
        assert_true(m0->partial && m0->session_end && m1->partial && m1->session_end);
        /* Nothing of slot 0 is left to close; a close with nothing open emits nothing. */
        assert_int_equal(billing_close_slot(f->b, 0, f->now), 0);
        assert_int_equal(billing_open_bytes(f->b, 0, BILLING_PLAYER, &o), 0);
        assert_int_equal(o.bytes, 0);
        assert_int_equal(billing_open_bytes(f->b, 0, BILLING_VIEWERS, &o), 0);
        assert_int_equal(o.bytes, 0);
        /* The next session's bytes on slot 0, in the same minute, are a record of their own. */
        at(f, 65 * SEC);
        bytes_over(f, 0, BILLING_PLAYER, 300, 0);
        at(f, 200 * SEC);
        assert_int_equal(tick(f), 2);
        assert_int_equal(f->n, 4);
        assert_int_equal(f->rec[2].r.minute.slot, 0);
        assert_int_equal(f->rec[2].r.minute.flow[BILLING_PLAYER].bytes, 300);
        assert_int_equal(f->rec[2].r.minute.flow[BILLING_VIEWERS].bytes, 0);
        assert_false(f->rec[2].r.minute.partial || f->rec[2].r.minute.session_end);
        assert_int_equal(f->rec[3].r.minute.slot, 1);
        assert_int_equal(f->rec[3].r.minute.flow[BILLING_PUSH].bytes, 900);
        assert_false(f->rec[3].r.minute.session_end);
        assert_int_equal(billing_close_slot(f->b, 2, f->now), -EINVAL);
}

/* The member `key` of o, which must be there. */
static const cJSON *member(const cJSON *o, const char *key) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        assert_non_null(v);
        return v;
}

/* Each second's bytes * 8 / 1000, rounded to nearest: 1937 B -> 15.496 -> 15, 1938 B -> 15.504 ->
 * 16, 62 B -> 0, 63 B -> 1, 3000 B over three seconds -> 8 each, 2^40 B in one second exact. */
static void test_minute_series_gives_each_seconds_kbps_rounded_to_nearest(void **state) {
        struct fx *f = *state;
        uint64_t want[BILLING_SECONDS] = { 0 };
        const cJSON *viewers, *kbps;
        cJSON *o = cJSON_CreateObject();
        uint64_t sum = 0, bits;

        start(f, 1, 3600, 0, NULL);
        at(f, 5500 * MSEC);
        bytes_over(f, 0, BILLING_VIEWERS, 1937, 0);
        at(f, 7200 * MSEC);
        bytes_over(f, 0, BILLING_VIEWERS, 1938, 0);
        at(f, 9 * SEC);
        bytes_over(f, 0, BILLING_VIEWERS, 62, 0);
        at(f, 10 * SEC);
        bytes_over(f, 0, BILLING_VIEWERS, 63, 0);
        at(f, 23 * SEC);
        bytes_over(f, 0, BILLING_VIEWERS, 3000, 3 * SEC);
        at(f, 59 * SEC);
        bytes_over(f, 0, BILLING_VIEWERS, UINT64_C(1) << 40, 0);
        at(f, 61 * SEC);
        assert_int_equal(tick(f), 1);
        want[5] = 15;
        want[7] = 16;
        want[10] = 1;
        want[20] = want[21] = want[22] = 8;
        want[59] = UINT64_C(8796093022); /* 2^40 * 8 / 1000 = 8796093022.208 */
        assert_non_null(o);
        assert_int_equal(billing_record_json(&f->rec[0].r, o), 0);
        viewers = member(o, "viewers");
        kbps = member(viewers, "kbps");
        assert_int_equal(cJSON_GetArraySize(kbps), BILLING_SECONDS);
        for (int k = 0; k < BILLING_SECONDS; k++) {
                const cJSON *v = cJSON_GetArrayItem(kbps, k);

                assert_true(cJSON_IsNumber(v));
                assert_true(v->valuedouble == (double)want[k]);
                sum += (uint64_t)v->valuedouble;
        }
        assert_int_equal(f->rec[0].r.minute.flow[BILLING_VIEWERS].sec_bytes[21], 1000);
        /* The series is the bytes, second by second: its sum is bytes * 8 / 1000 within rounding. */
        bits = f->rec[0].r.minute.flow[BILLING_VIEWERS].bytes * 8;
        assert_true(sum * 1000 <= bits + 500 * BILLING_SECONDS &&
                    bits <= sum * 1000 + 500 * BILLING_SECONDS);
        /* Flows without bytes have no series. */
        assert_null(cJSON_GetObjectItemCaseSensitive(member(o, "player"), "kbps"));
        assert_null(cJSON_GetObjectItemCaseSensitive(member(o, "push"), "kbps"));
        cJSON_Delete(o);
}

/* ---- clock steps ---- */

static void test_step_forward_closes_the_window_and_reports_skipped_windows_once(void **state) {
        struct fx *f = *state;
        struct billing_stats st;
        uint64_t next = BASE;

        start(f, 2, 10, 10, NULL);
        at(f, 2 * SEC);
        occ(f, 0, true);
        stepped(f, 4 * SEC, 100 * (int64_t)SEC); /* at 6 s the wall clock jumps to 106 s */
        assert_int_equal(tick(f), 2);
        expect_window(f, 0, 6 * SEC, 4 * SEC, 1, true);
        /* The nine windows jumped over: one record, no time, the occupancy carried through. */
        assert_int_equal(expect_window(f, 10 * SEC, 0, 0, 1, true)->n_windows, 9);

        advance(f, 14 * SEC); /* wall 120 s */
        assert_int_equal(tick(f), 2);
        expect_window(f, 100 * SEC, 4 * SEC, 4 * SEC, 1, true);
        expect_window(f, 110 * SEC, 10 * SEC, 10 * SEC, 1, false);
        /* Every window from 0 to 120 s is in exactly one record. */
        for (size_t i = 0; i < f->n; i++) {
                assert_int_equal(f->rec[i].r.window.start_usec, next);
                next += f->rec[i].r.window.n_windows * 10 * SEC;
        }
        assert_int_equal(next, BASE + 120 * SEC);
        billing_get_stats(f->b, &st);
        assert_int_equal(st.steps_forward, 1);
}

static void test_step_back_keeps_the_window_open_until_the_wall_clock_passes_its_end(void **state) {
        struct fx *f = *state;
        struct billing_stats st;

        start(f, 2, 10, 10, NULL);
        occ(f, 0, true);
        at(f, 15 * SEC);
        assert_int_equal(tick(f), 1);
        stepped(f, SEC, -8 * (int64_t)SEC); /* at 16 s the wall clock goes back to 8 s */
        assert_int_equal(tick(f), 0);
        advance(f, 7 * SEC); /* wall 15 s */
        assert_int_equal(tick(f), 0);
        advance(f, 5 * SEC - 1); /* wall 20 s - 1 us */
        assert_int_equal(tick(f), 0);
        advance(f, 1);
        assert_int_equal(tick(f), 1);
        assert_int_equal(count_kind(f, BILLING_WINDOW), 2);
        window_at(f, 0); /* once, never again */
        /* 6 s before the step, 8 s while the wall clock caught up, 4 s after. */
        expect_window(f, 10 * SEC, 18 * SEC, 18 * SEC, 1, true);
        advance(f, 10 * SEC);
        tick(f);
        expect_window(f, 20 * SEC, 10 * SEC, 10 * SEC, 1, false);
        billing_get_stats(f->b, &st);
        assert_int_equal(st.steps_back, 1);
        assert_int_equal(st.last_step_usec, BASE + 8 * SEC); /* the wall clock the step landed on */
}

static void test_minutes_align_to_the_wall_clock_across_steps(void **state) {
        struct fx *f = *state;
        const struct billing_minute *m;

        start(f, 1, 3600, 10, NULL);
        at(f, 30 * SEC);
        bytes_over(f, 0, BILLING_PLAYER, 1000, SEC);
        stepped(f, 500 * MSEC, 45 * (int64_t)SEC); /* wall 75.5 s */
        advance(f, SEC);
        bytes_over(f, 0, BILLING_PLAYER, 2000, SEC); /* [75.5 s, 76.5 s) on the new wall clock */
        m = minute_at(f, 0, 0);
        assert_int_equal(m->flow[BILLING_PLAYER].bytes, 1000);
        assert_true(m->clock_step);

        stepped(f, 500 * MSEC, -70 * (int64_t)SEC); /* wall 7 s: minute 0 is closed */
        advance(f, SEC);
        bytes_over(f, 0, BILLING_PLAYER, 500, SEC);
        advance(f, 200 * SEC);
        tick(f);
        assert_int_equal(count_kind(f, BILLING_MINUTE), 2);
        m = minute_at(f, 0, 60 * SEC);
        assert_int_equal(m->flow[BILLING_PLAYER].bytes, 2500);
        assert_int_equal(m->flow[BILLING_PLAYER].late_bytes, 500);
        assert_int_equal(m->flow[BILLING_PLAYER].peak_bytes_1s, 1000);
        assert_true(m->clock_step);
}

static void test_delayed_report_read_before_a_step_is_not_a_step(void **state) {
        struct fx *f = *state;
        struct billing_time from = { MONO0 + 29 * SEC, BASE + 29 * SEC };
        struct billing_time to = { MONO0 + 30 * SEC, BASE + 30 * SEC };
        struct billing_stats st;

        start(f, 1, 3600, 10, NULL);
        at(f, 30 * SEC);
        stepped(f, 500 * MSEC, 45 * (int64_t)SEC);
        tick(f);
        /* This report's readings predate the step the module saw at 30.5 s. */
        assert_true(billing_bytes(f->b, 0, BILLING_PLAYER, 700, from, to) >= 0);
        advance(f, SEC);
        tick(f);
        billing_get_stats(f->b, &st);
        assert_int_equal(st.steps_forward, 1);
        assert_int_equal(st.steps_back, 0);
        advance(f, 300 * SEC);
        tick(f);
        assert_int_equal(minute_at(f, 0, 60 * SEC)->flow[BILLING_PLAYER].bytes, 700);
}

/* ---- push targets ---- */

static void push_over(struct fx *f, size_t slot, const char *target, uint64_t n, uint64_t span) {
        struct billing_time from = { f->now.mono_usec - span, f->now.real_usec - span };

        assert_true(billing_push_bytes(f->b, slot, target, n, from, f->now, f->msg, sizeof(f->msg)) >= 0);
}

/* Push target `name`'s figures in m; NULL when m has none of it. */
static const struct billing_flow_figures *target_of(const struct billing_minute *m, const char *name) {
        for (size_t t = 0; t < m->n_targets; t++)
                if (!strcmp(m->targets[t].target, name))
                        return &m->targets[t].fig;
        return NULL;
}

/* m's push targets add up to its push flow: bytes, late bytes and each second's bytes exactly. In
 * JSON each target's kbps entry is its own second's bytes rounded (half up), and the targets'
 * entries add up to push's within floor(n / 2) kbit/s, n the targets with bytes in that second. */
static void expect_targets_add_up(const struct billing_minute *m) {
        const struct billing_flow_figures *push = &m->flow[BILLING_PUSH];
        struct billing_record r = { .kind = BILLING_MINUTE, .minute = *m };
        uint64_t bytes = 0, late = 0, sec[BILLING_SECONDS] = { 0 };
        cJSON *o = cJSON_CreateObject();
        const cJSON *pj, *tj, *t;

        for (size_t k = 0; k < m->n_targets; k++) {
                bytes += m->targets[k].fig.bytes;
                late += m->targets[k].fig.late_bytes;
                for (size_t s = 0; s < BILLING_SECONDS; s++)
                        sec[s] += m->targets[k].fig.sec_bytes[s];
        }
        assert_int_equal(bytes, push->bytes);
        assert_int_equal(late, push->late_bytes);
        for (size_t s = 0; s < BILLING_SECONDS; s++)
                assert_int_equal(sec[s], push->sec_bytes[s]);

        assert_non_null(o);
        assert_int_equal(billing_record_json(&r, o), 0);
        pj = member(o, "push");
        tj = member(pj, "targets");
        assert_int_equal(cJSON_GetArraySize(tj), m->n_targets);
        for (size_t s = 0; s < BILLING_SECONDS && push->bytes > 0; s++) {
                int64_t sum = 0, n = 0,
                        total = (int64_t)cJSON_GetArrayItem(member(pj, "kbps"), (int)s)->valuedouble;

                cJSON_ArrayForEach(t, tj) {
                        const struct billing_flow_figures *fig = target_of(m, t->string);
                        double kbps = cJSON_GetArrayItem(member(t, "kbps"), (int)s)->valuedouble;

                        assert_non_null(fig);
                        assert_int_equal((uint64_t)kbps, (fig->sec_bytes[s] * 8 + 500) / 1000);
                        assert_int_equal(member(t, "bytes")->valuedouble, (double)fig->bytes);
                        sum += (int64_t)kbps;
                        n += fig->sec_bytes[s] > 0;
                }
                assert_true(sum - total <= n / 2 && total - sum <= n / 2);
        }
        cJSON_Delete(o);
}

static void test_push_targets_add_up_to_the_push_flow_to_the_byte_and_second(void **state) {
        struct fx *f = *state;
        struct billing_time from = { MONO0 + 20 * SEC, BASE + 20 * SEC },
                            to = { MONO0 + 30 * SEC, BASE + 30 * SEC };
        const struct billing_minute *m0, *m1;

        start(f, 2, 3600, 10, NULL);
        at(f, 10 * SEC);
        push_over(f, 0, "rtmp-a", 3001, 7 * SEC);
        push_over(f, 0, "rtmp-b", 999, 3 * SEC);
        push_over(f, 0, "srt://ü", 12345, 0);
        push_over(f, 1, "rtmp-a", 7, 0); /* another slot's target of the same name: apart */
        bytes_over(f, 0, BILLING_PLAYER, 100, 0);
        at(f, 65 * SEC);
        push_over(f, 0, "rtmp-a", 1000, 10 * SEC); /* [55 s, 65 s): half in each minute */
        at(f, 75 * SEC);
        tick(f);
        /* A late report for [20 s, 30 s): minute 0 has closed, so late bytes of minute 1. */
        assert_int_equal(billing_push_bytes(f->b, 0, "rtmp-b", 500, from, to, f->msg, sizeof(f->msg)), 0);
        at(f, 200 * SEC);
        tick(f);

        m0 = minute_at(f, 0, 0);
        assert_int_equal(m0->n_targets, 3);
        assert_int_equal(m0->flow[BILLING_PUSH].bytes, 3001 + 999 + 12345 + 500);
        assert_int_equal(target_of(m0, "rtmp-a")->bytes, 3501);
        assert_int_equal(target_of(m0, "rtmp-b")->bytes, 999);
        assert_int_equal(target_of(m0, "srt://ü")->bytes, 12345);
        assert_int_equal(target_of(m0, "srt://ü")->peak_bytes_1s, 12345);
        assert_int_equal(m0->flow[BILLING_PLAYER].bytes, 100);
        expect_targets_add_up(m0);
        m1 = minute_at(f, 0, 60 * SEC);
        assert_int_equal(m1->n_targets, 2);
        assert_int_equal(target_of(m1, "rtmp-a")->bytes, 500);
        assert_int_equal(target_of(m1, "rtmp-b")->bytes, 500);
        assert_int_equal(target_of(m1, "rtmp-b")->late_bytes, 500);
        assert_int_equal(target_of(m1, "rtmp-b")->peak_bytes_1s, 50); /* its own rate over 10 s */
        assert_int_equal(m1->flow[BILLING_PUSH].late_bytes, 500);
        expect_targets_add_up(m1);
        assert_int_equal(minute_at(f, 1, 0)->n_targets, 1);
        assert_int_equal(target_of(minute_at(f, 1, 0), "rtmp-a")->bytes, 7);
        expect_targets_add_up(minute_at(f, 1, 0));
}

/* Each stream's peak is its own: "a" peaks at second 10, "b" at second 20; push's peak is the
 * busiest second of both together, less than their peaks added. */
static void test_two_targets_peaking_in_different_seconds_keep_their_own_peaks(void **state) {
        struct fx *f = *state;
        const struct billing_minute *m;
        cJSON *o = cJSON_CreateObject();
        const cJSON *targets;

        start(f, 1, 3600, 10, NULL);
        at(f, 11 * SEC);
        push_over(f, 0, "a", 10000, SEC);
        push_over(f, 0, "b", 1000, SEC);
        at(f, 21 * SEC);
        push_over(f, 0, "a", 1000, SEC);
        push_over(f, 0, "b", 8000, SEC);
        at(f, 80 * SEC);
        assert_int_equal(tick(f), 1);
        m = minute_at(f, 0, 0);
        assert_int_equal(m->flow[BILLING_PUSH].peak_bytes_1s, 11000);
        assert_int_equal(target_of(m, "a")->peak_bytes_1s, 10000);
        assert_int_equal(target_of(m, "b")->peak_bytes_1s, 8000);
        assert_int_equal(target_of(m, "a")->sec_bytes[10], 10000);
        assert_int_equal(target_of(m, "b")->sec_bytes[20], 8000);
        expect_targets_add_up(m);
        assert_non_null(o);
        assert_int_equal(billing_record_json(&f->rec[0].r, o), 0);
        targets = member(member(o, "push"), "targets");
        assert_true(member(member(o, "push"), "peak_mbps")->valuedouble == 0.088);
        assert_true(member(member(targets, "a"), "peak_mbps")->valuedouble == 0.08);
        assert_true(member(member(targets, "b"), "peak_mbps")->valuedouble == 0.064);
        assert_int_equal(cJSON_GetArrayItem(member(member(targets, "b"), "kbps"), 20)->valuedouble, 64);
        assert_int_equal(cJSON_GetArrayItem(member(member(targets, "b"), "kbps"), 10)->valuedouble, 8);
        cJSON_Delete(o);
}

/* A restart carries each target's open bytes apart: after it, every target has its bytes once and
 * the targets still add up to push; push bytes counted without a target come back without one. */
static void test_a_restart_carries_each_push_targets_open_bytes_once(void **state) {
        struct fx *f = *state;
        _cleanup_free_ char *json = NULL;
        const struct billing_minute *m;

        start(f, 2, 3600, 10, NULL);
        at(f, 30 * SEC);
        push_over(f, 0, "a", 3000, 30 * SEC);
        push_over(f, 0, "b", 600, 6 * SEC);
        bytes_over(f, 0, BILLING_PUSH, 40, 0); /* no target */
        assert_int_equal(billing_carry_json(f->b, &json), 0);
        assert_non_null(json);
        assert_non_null(strstr(json, "\"push\":[3640,"));
        assert_non_null(strstr(json, "\"targets\":{\"a\":[3000,"));
        billing_free(f->b); /* killed: nothing flushed */
        f->b = NULL;
        at(f, 45 * SEC);
        start(f, 2, 3600, 10, NULL);
        assert_int_equal(billing_carry_in(f->b, json, f->msg, sizeof(f->msg)), 0);
        push_over(f, 0, "a", 1500, 15 * SEC);
        at(f, 200 * SEC);
        tick(f);
        assert_int_equal(count_kind(f, BILLING_MINUTE), 1);
        m = minute_at(f, 0, 0);
        assert_int_equal(m->flow[BILLING_PUSH].bytes, 5140);
        assert_int_equal(target_of(m, "a")->bytes, 4500);
        assert_int_equal(target_of(m, "a")->peak_bytes_1s, 100);
        assert_int_equal(target_of(m, "b")->bytes, 600);
        assert_int_equal(target_of(m, "b")->peak_bytes_1s, 100);
        /* The 40 bytes without a target are in push and in no target. */
        assert_int_equal(target_of(m, "a")->bytes + target_of(m, "b")->bytes + 40,
                         m->flow[BILLING_PUSH].bytes);
        free(json);
        json = NULL;
        assert_int_equal(billing_carry_json(f->b, &json), 0);
        assert_null(json);
}

/* A session's end closes its targets with its minutes: the next session's minutes name only its own. */
static void test_closing_a_slot_closes_its_push_targets(void **state) {
        struct fx *f = *state;
        struct billing_open o;
        const char *name;

        start(f, 1, 3600, 10, NULL);
        at(f, 10 * SEC);
        push_over(f, 0, "old", 500, 0);
        assert_int_equal(billing_close_slot(f->b, 0, f->now), 1);
        assert_true(f->rec[0].r.minute.session_end);
        assert_int_equal(f->rec[0].r.minute.n_targets, 1);
        assert_int_equal(target_of(&f->rec[0].r.minute, "old")->bytes, 500);
        for (size_t t = 0; t < BILLING_TARGETS_MAX; t++)
                assert_int_equal(billing_open_target(f->b, 0, t, &name, &o), -ENOENT);
        push_over(f, 0, "new", 70, 0);
        at(f, 200 * SEC);
        assert_int_equal(tick(f), 1);
        assert_int_equal(f->rec[1].r.minute.n_targets, 1);
        assert_null(target_of(&f->rec[1].r.minute, "old"));
        assert_int_equal(target_of(&f->rec[1].r.minute, "new")->bytes, 70);
        assert_int_equal(billing_open_target(f->b, 1, 0, &name, &o), -EINVAL);
        assert_int_equal(billing_open_target(f->b, 0, BILLING_TARGETS_MAX, &name, &o), -EINVAL);
}

/* Memory is bounded: a slot's open minutes keep BILLING_TARGETS_MAX targets apart. A further one
 * closes them early (partial records, nothing lost); a restore never closes minutes, so it refuses
 * one, and open minutes listing more are refused whole, named. Bad names are refused, named. */
static void test_targets_past_the_bound_are_refused_or_close_the_minutes_early(void **state) {
        struct fx *f = *state;
        char name[BILLING_TARGETS_MAX + 1][16], big[BILLING_TARGET_MAX + 2];
        uint64_t got[BILLING_TARGETS_MAX + 1] = { 0 }, push = 0;
        _cleanup_free_ char *json = NULL;
        int r;

        start(f, 1, 3600, 10, NULL);
        at(f, 10 * SEC);
        for (size_t k = 0; k <= BILLING_TARGETS_MAX; k++)
                snprintf(name[k], sizeof(name[k]), "t%zu", k);
        for (size_t k = 0; k < BILLING_TARGETS_MAX; k++)
                push_over(f, 0, name[k], 100 + k, 0);
        assert_int_equal(f->n, 0);
        /* The 33rd: the slot's open minute goes out now, with the 32, partial, not session_end. */
        r = billing_push_bytes(f->b, 0, name[BILLING_TARGETS_MAX], 5000, f->now, f->now, f->msg,
                               sizeof(f->msg));
        assert_int_equal(r, 1);
        assert_int_equal(f->rec[0].r.minute.n_targets, BILLING_TARGETS_MAX);
        assert_true(f->rec[0].r.minute.partial);
        assert_false(f->rec[0].r.minute.session_end);
        expect_targets_add_up(&f->rec[0].r.minute);
        push_over(f, 0, name[0], 1, 0);
        at(f, 200 * SEC);
        assert_int_equal(tick(f), 1);
        assert_int_equal(f->rec[1].r.minute.n_targets, 2);
        expect_targets_add_up(&f->rec[1].r.minute);
        /* Every byte, once, under its own target. */
        for (size_t i = 0; i < f->n; i++) {
                push += f->rec[i].r.minute.flow[BILLING_PUSH].bytes;
                for (size_t k = 0; k <= BILLING_TARGETS_MAX; k++)
                        if (target_of(&f->rec[i].r.minute, name[k]))
                                got[k] += target_of(&f->rec[i].r.minute, name[k])->bytes;
        }
        for (size_t k = 0; k < BILLING_TARGETS_MAX; k++)
                assert_int_equal(got[k], 100 + k + (k == 0));
        assert_int_equal(got[BILLING_TARGETS_MAX], 5000);
        /* Entries free themselves once their minutes are records: 32 new names fit, no early close. */
        for (size_t k = 0; k < BILLING_TARGETS_MAX; k++)
                push_over(f, 0, name[k + 1], 1, 0);
        assert_int_equal(f->n, 2);

        /* A restore refuses a 33rd target and changes nothing. */
        billing_free(f->b);
        f->b = NULL;
        start(f, 1, 3600, 10, NULL);
        for (size_t k = 0; k < BILLING_TARGETS_MAX; k++)
                assert_int_equal(billing_restore_target(f->b, 0, name[k], 10, BASE, BASE + 10 * SEC), 0);
        assert_int_equal(
                billing_restore_target(f->b, 0, name[BILLING_TARGETS_MAX], 10, BASE, BASE + 10 * SEC),
                -ENOSPC);
        assert_int_equal(billing_restore_target(f->b, 0, name[3], 10, BASE, BASE + 10 * SEC), 0);
        assert_int_equal(billing_carry_json(f->b, &json), 0);
        assert_non_null(strstr(json, "\"push\":[330,"));
        assert_null(strstr(json, name[BILLING_TARGETS_MAX]));
        free(json);
        json = NULL;

        /* Open minutes with 33 targets on a slot: refused whole, with the bound named. */
        {
                char text[4096];
                size_t n = (size_t)snprintf(
                        text, sizeof(text),
                        "{\"v\":1,\"slots\":[{\"slot\":\"s0\",\"push\":[33,0,1],\"targets\":{");

                for (size_t k = 0; k <= BILLING_TARGETS_MAX; k++)
                        n += (size_t)snprintf(text + n, sizeof(text) - n, "%s\"%s\":[1,0,1]", k ? "," : "",
                                              name[k]);
                snprintf(text + n, sizeof(text) - n, "}}]}");
                assert_int_equal(billing_carry_in(f->b, text, f->msg, sizeof(f->msg)), -EBADMSG);
                assert_string_equal(f->msg,
                                    "open_minutes.slots[0].targets: not an object of at most 32 push "
                                    "targets (a slot's open minutes keep no more)");
        }

        /* Names: 1..64 bytes of UTF-8 text without control characters; nothing counted otherwise. */
        memset(big, 'x', BILLING_TARGET_MAX + 1);
        big[BILLING_TARGET_MAX + 1] = '\0';
        {
                const char *bad[] = { "", big, "a\x01", "\xff\xfe", NULL };

                for (size_t k = 0; k < ELEMENTSOF(bad); k++) {
                        f->msg[0] = '\0';
                        assert_int_equal(billing_push_bytes(f->b, 0, bad[k], 10, f->now, f->now, f->msg,
                                                            sizeof(f->msg)),
                                         -EINVAL);
                        assert_string_equal(f->msg,
                                            "billing: a push target must be 1..64 bytes of UTF-8 text "
                                            "without control characters");
                        assert_int_equal(billing_restore_target(f->b, 0, bad[k], 10, BASE, BASE), -EINVAL);
                }
        }
        big[BILLING_TARGET_MAX] = '\0'; /* 64 bytes: fine */
        push_over(f, 0, big, 1, 0);
}

/* The largest minute record: 32 targets with 64-byte names, each at the rate ceiling (1 Gbit/s)
 * every second, with the player and viewers too, fits one signed payload with room to spare. */
static void test_a_minute_of_32_targets_at_the_rate_ceiling_fits_a_payload(void **state) {
        struct fx *f = *state;
        char name[BILLING_TARGET_MAX + 1];
        cJSON *o = cJSON_CreateObject();
        char *text;

        start(f, 1, 3600, 10, NULL);
        at(f, 60 * SEC);
        for (size_t k = 0; k < BILLING_TARGETS_MAX; k++) {
                snprintf(name, sizeof(name), "%02zu%062d", k, 0);
                push_over(f, 0, name, UINT64_C(125000000) * 60 - k, 60 * SEC);
        }
        bytes_over(f, 0, BILLING_PLAYER, UINT64_C(125000000) * 60 - 1, 60 * SEC);
        bytes_over(f, 0, BILLING_VIEWERS, UINT64_C(125000000) * 60 - 1, 60 * SEC);
        at(f, 200 * SEC);
        assert_int_equal(tick(f), 1);
        assert_int_equal(f->rec[0].r.minute.n_targets, BILLING_TARGETS_MAX);
        assert_non_null(o);
        assert_int_equal(billing_record_json(&f->rec[0].r, o), 0);
        text = cJSON_PrintUnformatted(o);
        assert_non_null(text);
        print_message("a minute of 32 targets at 1 Gbit/s: %zu bytes\n", strlen(text));
        /* The agent adds v, type, node, region, seq, prev, ts and the session's members: < 1 KB. */
        assert_true(strlen(text) + 1024 < JWS_PAYLOAD_MAX);
        free(text);
        cJSON_Delete(o);
}

/* ---- JSON ---- */

static void expect_json(const struct billing_record *r, const char *want) {
        cJSON *o = cJSON_CreateObject();
        char *s;

        assert_non_null(o);
        assert_int_equal(billing_record_json(r, o), 0);
        s = cJSON_PrintUnformatted(o);
        assert_non_null(s);
        assert_string_equal(s, want);
        free(s);
        cJSON_Delete(o);
}

static void test_records_as_json(void **state) {
        static const char *const scales[] = { "S", "M" };
        struct fx *f = *state;

        start(f, 2, 60, 10, scales);
        occ(f, 0, true);
        at(f, 3 * SEC);
        bytes_over(f, 1, BILLING_VIEWERS, 1000001, 0);
        at(f, 30500 * MSEC);
        occ(f, 0, false);
        at(f, 70 * SEC);
        assert_int_equal(tick(f), 2);
        assert_string_equal(billing_record_type(&f->rec[0].r), "concurrency_window");
        expect_json(
                &f->rec[0].r,
                "{\"window_start\":\"2023-11-14T00:00:00Z\",\"window_s\":60,\"windows\":1,\"covered_s\":60,"
                "\"peak\":1,\"slot_seconds\":30.5,\"by_scale\":{\"S\":{\"peak\":1,\"slot_seconds\":30.5},"
                "\"M\":{\"peak\":0,\"slot_seconds\":0}},\"by_project\":{},\"clock_step\":false,"
                "\"partial\":false,\"clock_synced\":true,\"clock_est_error_us\":0}");
        assert_string_equal(billing_record_type(&f->rec[1].r), "bandwidth_minute");
        expect_json(&f->rec[1].r,
                    "{\"minute\":\"2023-11-14T00:00:00Z\",\"slot\":\"s1\","
                    "\"player\":{\"bytes\":0,\"peak_mbps\":0,\"late_bytes\":0},"
                    "\"viewers\":{\"bytes\":1000001,\"peak_mbps\":8.000008,\"late_bytes\":0,"
                    "\"kbps\":[0,0,0,8000,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,"
                    "0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]},"
                    "\"push\":{\"bytes\":0,\"peak_mbps\":0,\"late_bytes\":0,\"targets\":{}},\"clock_step\":"
                    "false,\"partial\":false,\"session_end\":false,\"clock_synced\":true,"
                    "\"clock_est_error_us\":0}");
}

static void clock_sync(struct fx *f, bool synced, uint64_t est_error_us) {
        assert_int_equal(billing_clock_sync(f->b, synced, est_error_us), 0);
}

static void test_window_unsynced_for_a_moment_is_marked_with_worst_error(void **state) {
        struct fx *f = *state;
        const struct billing_window *w;

        start(f, 1, 60, 0, NULL);
        clock_sync(f, true, 100);
        at(f, 10 * SEC);
        tick(f);
        clock_sync(f, false, 16000);
        at(f, 11 * SEC);
        tick(f);
        clock_sync(f, true, 300);
        at(f, 130 * SEC);
        tick(f);
        w = window_at(f, 0);
        assert_false(w->clock_synced);
        assert_int_equal(w->clock_est_error_us, 16000);
        /* The next windows opened on a synchronised clock and stayed so. */
        w = window_at(f, 60 * SEC);
        assert_true(w->clock_synced);
        assert_int_equal(w->clock_est_error_us, 300);
}

static void test_window_opened_on_an_unsynced_clock_is_marked_without_a_new_reading(void **state) {
        struct fx *f = *state;

        start(f, 1, 60, 0, NULL);
        clock_sync(f, false, 500);
        at(f, 125 * SEC); /* windows 0 and 60 close with no reading inside them */
        tick(f);
        assert_false(window_at(f, 0)->clock_synced);
        assert_false(window_at(f, 60 * SEC)->clock_synced);
        assert_int_equal(window_at(f, 60 * SEC)->clock_est_error_us, 500);
}

static void test_minute_records_carry_the_clock_state_of_their_minute(void **state) {
        struct fx *f = *state;
        const struct billing_minute *m;

        start(f, 1, 3600, 0, NULL);
        clock_sync(f, true, 40);
        at(f, 30 * SEC);
        bytes_over(f, 0, BILLING_PLAYER, 1000, SEC);
        clock_sync(f, false, 9000); /* lost in minute 0 */
        at(f, 61 * SEC);
        tick(f);
        clock_sync(f, true, 60); /* back in minute 1 after its first second */
        at(f, 90 * SEC);
        bytes_over(f, 0, BILLING_PLAYER, 1000, SEC);
        at(f, 125 * SEC);
        tick(f);
        clock_sync(f, true, 50); /* minute 2 opened under the reading of 61 s: its error counts */
        bytes_over(f, 0, BILLING_PLAYER, 1000, SEC);
        at(f, 200 * SEC);
        tick(f);
        m = minute_at(f, 0, 0);
        assert_false(m->clock_synced);
        assert_int_equal(m->clock_est_error_us, 9000);
        /* Minute 1 opened while the clock was unsynchronised: marked, though synced again since. */
        m = minute_at(f, 0, 60 * SEC);
        assert_false(m->clock_synced);
        m = minute_at(f, 0, 120 * SEC);
        assert_true(m->clock_synced);
        assert_int_equal(m->clock_est_error_us, 60);
}

static void test_records_without_a_reading_count_as_synced(void **state) {
        struct fx *f = *state;

        start(f, 1, 60, 0, NULL);
        at(f, 60 * SEC);
        tick(f);
        assert_true(window_at(f, 0)->clock_synced);
        assert_int_equal(window_at(f, 0)->clock_est_error_us, 0);
}

static void test_clock_sync_after_flush_is_refused(void **state) {
        struct fx *f = *state;

        start(f, 1, 60, 0, NULL);
        assert_true(billing_flush(f->b, f->now) >= 0);
        assert_int_equal(billing_clock_sync(f->b, true, 0), -ESHUTDOWN);
        assert_int_equal(billing_clock_sync(NULL, true, 0), -EINVAL);
}

static void test_calls_from_the_callback_are_refused(void **state) {
        struct fx *f = *state;

        start(f, 1, 10, 10, NULL);
        f->reenter = true;
        at(f, 10 * SEC);
        assert_int_equal(tick(f), 1);
        assert_int_equal(f->reenter_rc, -EBUSY);
        /* and the module is usable again once the callback returned */
        f->reenter = false;
        at(f, 20 * SEC);
        assert_int_equal(tick(f), 1);
}

/* ---- properties over random event sequences ---- */

struct prop {
        uint64_t bytes, slot_usec, covered_usec, project_usec;
        uint64_t next_window; /* where the next window record must start */
        uint64_t next_minute[4];
        uint64_t window_usec;
        uint32_t peak[64]; /* by window index since BASE: checked against the reference */
        bool check_peaks;
};

static void prop_collect(void *userdata, const struct billing_record *r) {
        struct prop *p = userdata;

        if (r->kind == BILLING_MINUTE) {
                const struct billing_minute *m = &r->minute;

                /* Never a minute twice, and in order. */
                assert_true(m->start_usec >= p->next_minute[m->slot]);
                p->next_minute[m->slot] = m->start_usec + BILLING_MINUTE_USEC;
                for (size_t f = 0; f < BILLING_FLOWS; f++)
                        p->bytes += m->flow[f].bytes;
                return;
        }
        /* Never a window twice, none left out. */
        assert_int_equal(r->window.start_usec, p->next_window);
        p->next_window += r->window.n_windows * p->window_usec;
        p->slot_usec += r->window.slot_usec;
        p->covered_usec += r->window.covered_usec;
        for (size_t i = 0; i < r->window.n_projects; i++) {
                /* A project's peak never passes its scale's. */
                for (size_t k = 0; k < r->window.n_scales; k++)
                        if (!strcmp(r->window.scales[k].scale, r->window.projects[i].scale))
                                assert_true(r->window.projects[i].peak <= r->window.scales[k].peak);
                p->project_usec += r->window.projects[i].slot_usec;
        }
        if (p->check_peaks)
                assert_int_equal(r->window.peak, p->peak[(r->window.start_usec - BASE) / p->window_usec]);
}

static uint64_t rnd(uint64_t *s) {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

/* One random run; with steps, the peaks are not checked (the reference would be the module). */
static void random_run(uint64_t seed, bool steps) {
        static const uint64_t windows[] = { 1, 2, 5, 10, 60 };
        static const uint64_t lates[] = { 0, 10, 120 };
        struct prop p = { 0 };
        struct billing_config c = config(&p, 4, 0, 0, NULL);
        struct billing_time now = { MONO0, BASE }, last[4][BILLING_FLOWS];
        static const char *const projects[] = { NULL, "a", "b" };
        uint64_t fed = 0, occupied_usec = 0, projected_usec = 0, since[4] = { 0 };
        bool on[4] = { false }, projected[4] = { false };
        uint32_t count = 0;
        struct billing *b = NULL;

        c.emit = prop_collect;
        c.window_usec = windows[rnd(&seed) % ELEMENTSOF(windows)] * SEC;
        c.late_usec = lates[rnd(&seed) % ELEMENTSOF(lates)] * SEC;
        p = (struct prop){ .next_window = BASE, .window_usec = c.window_usec, .check_peaks = !steps };
        assert_int_equal(billing_new(&c, now, &b, NULL, 0), 0);
        for (size_t s = 0; s < 4; s++)
                for (size_t f = 0; f < BILLING_FLOWS; f++)
                        last[s][f] = now;
        while (now.real_usec < BASE + 60 * c.window_usec - 5 * SEC) {
                uint64_t d = rnd(&seed) % (3 * SEC), r = rnd(&seed);
                size_t slot = r % 4;
                uint64_t w0 = (now.real_usec - BASE) / c.window_usec, w1;

                now.mono_usec += d;
                now.real_usec += d;
                if (steps && r % 50 == 0)
                        now.real_usec += rnd(&seed) % (200 * SEC) - 100 * SEC; /* -100 s .. +100 s */
                w1 = steps ? 0 : (now.real_usec - BASE) / c.window_usec;
                /* Reference peaks: a window entered starts at the count carried in. */
                for (uint64_t w = w0 + 1; !steps && w <= w1; w++)
                        p.peak[w] = count;
                if (r / 4 % 3 == 0) {
                        const char *project = projects[r / 64 % ELEMENTSOF(projects)];

                        on[slot] = !on[slot];
                        assert_true(billing_occupancy(b, slot, on[slot], project, now) >= 0);
                        if (on[slot]) {
                                since[slot] = now.mono_usec;
                                projected[slot] = project != NULL;
                                count++;
                                p.peak[w1] = count > p.peak[w1] ? count : p.peak[w1];
                        } else {
                                occupied_usec += now.mono_usec - since[slot];
                                projected_usec += projected[slot] ? now.mono_usec - since[slot] : 0;
                                count--;
                        }
                } else {
                        enum billing_flow f = r / 16 % BILLING_FLOWS;
                        uint64_t n = rnd(&seed) % 5000000;

                        assert_true(billing_bytes(b, slot, f, n, last[slot][f], now) >= 0);
                        last[slot][f] = now;
                        fed += n;
                }
                assert_true(billing_tick(b, now) >= 0);
        }
        for (size_t s = 0; s < 4; s++)
                if (on[s]) {
                        occupied_usec += now.mono_usec - since[s];
                        projected_usec += projected[s] ? now.mono_usec - since[s] : 0;
                }
        assert_true(billing_flush(b, now) >= 0);
        assert_int_equal(p.bytes, fed);
        assert_int_equal(p.slot_usec, occupied_usec);
        assert_int_equal(p.project_usec, projected_usec);
        assert_int_equal(p.covered_usec, now.mono_usec - MONO0);
        billing_free(b);
}

static void test_random_runs_keep_every_byte_and_slot_second(void **state) {
        (void)state;
        for (uint64_t seed = 1; seed <= 200; seed++) {
                random_run(seed * 0x9e3779b97f4a7c15u, false);
                random_run(seed * 0x9e3779b97f4a7c15u + 1, true);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_hour_of_thirds_peaking_25_10_74_reports_74, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_session_across_windows_counts_in_every_window_it_spans,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_session_of_10ms_counts_in_peak, setup, teardown),
                cmocka_unit_test_setup_teardown(test_changes_at_one_microsecond_apply_in_call_order, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_repeated_occupancy_counts_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_figures_split_by_scale, setup, teardown),
                cmocka_unit_test_setup_teardown(test_peaks_per_project_and_scale_at_one_instant, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_a_handover_between_projects_counts_once_in_each, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(
                        test_a_repeat_keeps_the_project_and_a_bad_project_changes_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_past_the_cap_pairs_are_summed_as_other_and_the_record_fits_a_payload, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(test_tick_with_nothing_due_emits_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_window_must_divide_an_hour, setup, teardown),
                cmocka_unit_test_setup_teardown(test_config_refuses_bad_slots_and_lateness, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_arguments_change_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_start_inside_a_window_reports_it_partial_and_flush_reports_the_rest, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(
                        test_five_second_and_half_second_reports_give_the_same_minutes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_report_spanning_two_minutes_is_split_by_time, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_minute_without_bytes_has_no_record, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bytes_of_a_closed_minute_go_to_the_current_one_as_late,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_open_bytes_hold_what_no_record_has_in_a_span_no_faster_than_its_peak, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(test_restored_bytes_come_out_once_exact_and_no_faster, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(
                        test_closing_a_slot_emits_its_open_minutes_once_and_zeroes_them, setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_minute_series_gives_each_seconds_kbps_rounded_to_nearest, setup, teardown),
                cmocka_unit_test_setup_teardown(test_carry_in_refuses_malformed_open_minutes_whole, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(
                        test_push_targets_add_up_to_the_push_flow_to_the_byte_and_second, setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_two_targets_peaking_in_different_seconds_keep_their_own_peaks, setup, teardown),
                cmocka_unit_test_setup_teardown(test_a_restart_carries_each_push_targets_open_bytes_once,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_closing_a_slot_closes_its_push_targets, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(
                        test_targets_past_the_bound_are_refused_or_close_the_minutes_early, setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_a_minute_of_32_targets_at_the_rate_ceiling_fits_a_payload, setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_step_forward_closes_the_window_and_reports_skipped_windows_once, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(
                        test_step_back_keeps_the_window_open_until_the_wall_clock_passes_its_end, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(test_minutes_align_to_the_wall_clock_across_steps, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_delayed_report_read_before_a_step_is_not_a_step, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_records_as_json, setup, teardown),
                cmocka_unit_test_setup_teardown(test_calls_from_the_callback_are_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_window_unsynced_for_a_moment_is_marked_with_worst_error,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_window_opened_on_an_unsynced_clock_is_marked_without_a_new_reading, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(test_minute_records_carry_the_clock_state_of_their_minute,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_records_without_a_reading_count_as_synced, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_clock_sync_after_flush_is_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_random_runs_keep_every_byte_and_slot_second, setup,
                                                teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
