/* ratelimit.h: at most `burst` events per `interval`, counting the rest (repeated log lines that an
 * outsider can cause: one MQTT command per line made 22 MB of log a minute under a flood). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct plat_ratelimit {
        uint64_t interval_usec;
        unsigned burst;
        uint64_t begin; /* start of the current interval; 0: none yet */
        unsigned n;     /* events let through in it */
        uint64_t suppressed;
};

#define PLAT_RATELIMIT(interval_usec_, burst_) \
        { .interval_usec = (interval_usec_), .burst = (burst_) }

/* Whether one more event may pass at `now` (a monotonic time in µs). *suppressed is set to how
 * many were held back since the last one that passed, when this one passes and there were some
 * (the caller says so first), and to 0 otherwise. */
bool plat_ratelimit_pass(struct plat_ratelimit *rl, uint64_t now, uint64_t *suppressed);
