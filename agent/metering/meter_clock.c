/* meter_clock.c: the kernel's clock sync state, read each second, marks billing's records and
 * raises an alarm when the clock stops being synchronised (docs/metering.md, "Clock truth"). */
#include "meter_internal.h"

#include "clocksync.h"
#include "log.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

void meter__clock_tick(struct meter *m) {
        struct clocksync_state s = { .synced = false, .state = -1 };
        char msg[METER_MSG_MAX];
        int r = clocksync_read(&s);

        /* A clock whose state cannot be read is not known to be synchronised: its records say so. */
        if (m->billing)
                (void)billing_clock_sync(m->billing, s.synced, s.est_error_us);
        switch (clocksync_watch_update(&m->clock, &s)) {
        case CLOCKSYNC_LOST:
                if (r < 0)
                        snprintf(msg, sizeof(msg),
                                 "metering: cannot read the clock's sync state (adjtimex: %s); billing "
                                 "records are marked clock_synced false until it can be read",
                                 strerror(-r));
                else
                        snprintf(msg, sizeof(msg),
                                 "metering: the wall clock is %s (estimated error %" PRIu64
                                 " us, at most %" PRIu64
                                 " us); billing records are still made, marked clock_synced false: start "
                                 "or fix the NTP daemon (timedatectl, chronyc tracking)",
                                 clocksync_reason(&s), s.est_error_us, s.max_error_us);
                if (m->hooks.alarm)
                        m->hooks.alarm("clock_unsynced", msg, m->hooks.userdata);
                break;
        case CLOCKSYNC_REGAINED:
                snprintf(msg, sizeof(msg),
                         "metering: the wall clock is synchronised again (estimated error %" PRIu64
                         " us); billing records made from now on are marked clock_synced true",
                         s.est_error_us);
                log_notice("%s", msg);
                if (m->hooks.cleared)
                        m->hooks.cleared("clock_unsynced", msg, m->hooks.userdata);
                break;
        case CLOCKSYNC_SAME:
                break;
        }
}

void meter__clock_steps_json(const struct meter *m, cJSON *status) {
        struct billing_stats st;
        cJSON *o = cJSON_AddObjectToObject(status, "clock_steps");
        char ts[40];

        billing_get_stats(m->billing, &st);
        cJSON_AddNumberToObject(o, "forward", (double)st.steps_forward);
        cJSON_AddNumberToObject(o, "back", (double)st.steps_back);
        if (!st.last_step_usec)
                return;
        cJSON_AddStringToObject(o, "last", plat_format_rfc3339_ms(st.last_step_usec, ts, sizeof(ts)));
        /* By the wall clock, as the step is placed: a later step back can make it negative. */
        cJSON_AddNumberToObject(o, "last_s_ago",
                                (double)((int64_t)plat_now_real_usec() - (int64_t)st.last_step_usec) / 1e6);
}
