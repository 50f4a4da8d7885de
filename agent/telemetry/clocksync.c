/* clocksync.c: the kernel's clock sync state through adjtimex(2), and its transitions. */
#include "clocksync.h"

#include "jsonw.h"

#include <errno.h>
#include <sys/timex.h>

static clocksync_adjtimex_fn adjtimex_fn = adjtimex;

void clocksync_set_adjtimex(clocksync_adjtimex_fn fn) {
        adjtimex_fn = fn ? fn : adjtimex;
}

static uint64_t nonneg(long v) {
        return v > 0 ? (uint64_t)v : 0;
}

int clocksync_read(struct clocksync_state *ret) {
        struct timex t = { .modes = 0 };
        int r = adjtimex_fn(&t);

        if (r < 0)
                return errno > 0 ? -errno : -EIO;
        *ret = (struct clocksync_state){
                .synced = r != TIME_ERROR && !(t.status & STA_UNSYNC),
                .state = r,
                .status = t.status,
                .est_error_us = nonneg(t.esterror),
                .max_error_us = nonneg(t.maxerror),
        };
        return 0;
}

enum clocksync_change clocksync_watch_update(struct clocksync_watch *w, const struct clocksync_state *s) {
        bool was = w->have ? w->last.synced : true;

        w->have = true;
        w->last = *s;
        if (was == s->synced)
                return CLOCKSYNC_SAME;
        return s->synced ? CLOCKSYNC_REGAINED : CLOCKSYNC_LOST;
}

const char *clocksync_reason(const struct clocksync_state *s) {
        if (s->synced)
                return "synchronised";
        if (s->status & STA_UNSYNC)
                return "unsynchronised (STA_UNSYNC: no NTP daemon disciplines the clock)";
        return "unsynchronised (TIME_ERROR: the kernel's clock state is in error)";
}

const char *clocksync_state_str(int state) {
        switch (state) {
        case TIME_OK:
                return "TIME_OK";
        case TIME_INS:
                return "TIME_INS";
        case TIME_DEL:
                return "TIME_DEL";
        case TIME_OOP:
                return "TIME_OOP";
        case TIME_WAIT:
                return "TIME_WAIT";
        case TIME_ERROR:
                return "TIME_ERROR";
        default:
                return "unknown";
        }
}

void clocksync_jsonw(struct jsonw *j, const char *key, const struct clocksync_state *s) {
        jsonw_object(j, key);
        jsonw_bool(j, "synced", s->synced);
        jsonw_string(j, "state", clocksync_state_str(s->state));
        jsonw_u64(j, "est_error_us", s->est_error_us);
        jsonw_u64(j, "max_error_us", s->max_error_us);
        jsonw_end(j);
}

cJSON *clocksync_json(const struct clocksync_state *s) {
        struct jsonw j;

        jsonw_init(&j, true);
        clocksync_jsonw(&j, NULL, s);
        return jsonw_take_tree(&j);
}
