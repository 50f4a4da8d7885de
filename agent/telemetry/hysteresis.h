/* hysteresis.h: a two-state detector that changes state only after a condition held long enough. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct hysteresis {
        bool raised;  /* the alarm state (e.g. "over the cap") */
        bool pending; /* the opposite condition holds, since `since` */
        uint64_t since;
};

enum {
        HYST_NONE = 0,
        HYST_RAISED = 1,  /* the condition held for raise_usec: now raised */
        HYST_CLEARED = 2, /* its opposite held for clear_usec: now cleared */
};

/* Feeds one observation at monotonic time `now`. A signal that hovers at the threshold never
 * flips the state: every observation on the current side restarts the wait. */
int hyst_update(struct hysteresis *h, bool condition, uint64_t now, uint64_t raise_usec,
                uint64_t clear_usec);
