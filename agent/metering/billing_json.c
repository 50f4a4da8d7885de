/* billing_json.c: billing's records as JSON members (concurrency_window, bandwidth_minute). */
#include "billing.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

#define SEC UINT64_C(1000000)

const char *billing_record_type(const struct billing_record *r) {
        return r->kind == BILLING_WINDOW ? "concurrency_window" : "bandwidth_minute";
}

/* Window and minute starts are whole seconds: "2026-11-24T10:00:00Z". */
static const char *format_utc(uint64_t usec, char *buf, size_t len) {
        time_t secs = (time_t)(usec / SEC);
        struct tm tm;

        gmtime_r(&secs, &tm);
        snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
        return buf;
}

/* Microseconds as seconds: exact in a double below 2^53 us (285 years), printed exactly by cJSON. */
static double seconds(uint64_t usec) {
        return (double)usec / (double)SEC;
}

/* "by_project": {"<project>": {"<scale>": {"peak":..,"slot_seconds":..}}}; {} when none. */
static int projects_json(const struct billing_window *w, cJSON *o) {
        cJSON *by_project = cJSON_AddObjectToObject(o, "by_project");

        if (!by_project)
                return -ENOMEM;
        for (size_t i = 0; i < w->n_projects; i++) {
                const struct billing_project_figures *f = &w->projects[i];
                cJSON *p = cJSON_GetObjectItemCaseSensitive(by_project, f->project), *s;

                if (!p)
                        p = cJSON_AddObjectToObject(by_project, f->project);
                s = p ? cJSON_AddObjectToObject(p, f->scale) : NULL;
                if (!s || !cJSON_AddNumberToObject(s, "peak", f->peak) ||
                    !cJSON_AddNumberToObject(s, "slot_seconds", seconds(f->slot_usec)))
                        return -ENOMEM;
        }
        return 0;
}

/* Whether the kernel said the clock was synchronised for all of the record, and its worst error. */
static int clock_json(bool synced, uint64_t est_error_us, cJSON *o) {
        if (!cJSON_AddBoolToObject(o, "clock_synced", synced) ||
            !cJSON_AddNumberToObject(o, "clock_est_error_us", (double)est_error_us))
                return -ENOMEM;
        return 0;
}

static int window_json(const struct billing_window *w, cJSON *o) {
        char ts[32];
        cJSON *by_scale;

        if (!cJSON_AddStringToObject(o, "window_start", format_utc(w->start_usec, ts, sizeof(ts))) ||
            !cJSON_AddNumberToObject(o, "window_s", seconds(w->window_usec)) ||
            !cJSON_AddNumberToObject(o, "windows", (double)w->n_windows) ||
            !cJSON_AddNumberToObject(o, "covered_s", seconds(w->covered_usec)) ||
            !cJSON_AddNumberToObject(o, "peak", w->peak) ||
            !cJSON_AddNumberToObject(o, "slot_seconds", seconds(w->slot_usec)))
                return -ENOMEM;
        by_scale = cJSON_AddObjectToObject(o, "by_scale");
        if (!by_scale)
                return -ENOMEM;
        for (size_t i = 0; i < w->n_scales; i++) {
                cJSON *s = cJSON_AddObjectToObject(by_scale, w->scales[i].scale);

                if (!s || !cJSON_AddNumberToObject(s, "peak", w->scales[i].peak) ||
                    !cJSON_AddNumberToObject(s, "slot_seconds", seconds(w->scales[i].slot_usec)))
                        return -ENOMEM;
        }
        if (projects_json(w, o) < 0 || !cJSON_AddBoolToObject(o, "clock_step", w->clock_step) ||
            !cJSON_AddBoolToObject(o, "partial", w->partial) ||
            clock_json(w->clock_synced, w->clock_est_error_us, o) < 0)
                return -ENOMEM;
        return 0;
}

/* "kbps": second k's bytes * 8 / 1000, rounded to nearest (half up): kbit/s, summable across
 * sessions and nodes second by second. A push target's is rounded from its own bytes, so it is
 * that stream's rate whatever the others did. */
static int series_json(const uint64_t *sec_bytes, cJSON *flow) {
        cJSON *a = cJSON_AddArrayToObject(flow, "kbps");

        if (!a)
                return -ENOMEM;
        for (size_t k = 0; k < BILLING_SECONDS; k++) {
                uint64_t kbps =
                        sec_bytes ? (uint64_t)(((unsigned __int128)sec_bytes[k] * 8 + 500) / 1000) : 0;
                cJSON *n = cJSON_CreateNumber((double)kbps);

                if (!n || !cJSON_AddItemToArray(a, n)) {
                        cJSON_Delete(n);
                        return -ENOMEM;
                }
        }
        return 0;
}

/* A flow's (or a push target's) members into j. */
static int flow_json(const struct billing_flow_figures *ff, cJSON *j) {
        /* Mbps with 6 decimals is exact: 8 bits per byte over 10^6. */
        if (!cJSON_AddNumberToObject(j, "bytes", (double)ff->bytes) ||
            !cJSON_AddNumberToObject(j, "peak_mbps", (double)ff->peak_bytes_1s * 8 / 1e6) ||
            !cJSON_AddNumberToObject(j, "late_bytes", (double)ff->late_bytes) ||
            (ff->bytes > 0 && series_json(ff->sec_bytes, j) < 0))
                return -ENOMEM;
        return 0;
}

/* "targets": {"<target>": {..}} in push; {} when no target moved bytes. */
static int targets_json(const struct billing_minute *m, cJSON *push) {
        cJSON *t = cJSON_AddObjectToObject(push, "targets");

        if (!t)
                return -ENOMEM;
        for (size_t k = 0; k < m->n_targets; k++) {
                cJSON *j = cJSON_AddObjectToObject(t, m->targets[k].target);

                if (!j || flow_json(&m->targets[k].fig, j) < 0)
                        return -ENOMEM;
        }
        return 0;
}

static int minute_json(const struct billing_minute *m, cJSON *o) {
        char ts[32];

        if (!cJSON_AddStringToObject(o, "minute", format_utc(m->start_usec, ts, sizeof(ts))) ||
            !cJSON_AddStringToObject(o, "slot", m->slot_id))
                return -ENOMEM;
        for (size_t f = 0; f < BILLING_FLOWS; f++) {
                cJSON *j = cJSON_AddObjectToObject(o, billing_flow_str(f));

                if (!j || flow_json(&m->flow[f], j) < 0 || (f == BILLING_PUSH && targets_json(m, j) < 0))
                        return -ENOMEM;
        }
        if (!cJSON_AddBoolToObject(o, "clock_step", m->clock_step) ||
            !cJSON_AddBoolToObject(o, "partial", m->partial) ||
            !cJSON_AddBoolToObject(o, "session_end", m->session_end) ||
            clock_json(m->clock_synced, m->clock_est_error_us, o) < 0)
                return -ENOMEM;
        return 0;
}

int billing_record_json(const struct billing_record *r, cJSON *obj) {
        if (!r || !obj)
                return -EINVAL;
        return r->kind == BILLING_WINDOW ? window_json(&r->window, obj) : minute_json(&r->minute, obj);
}
