/* hysteresis.c: a two-state detector that changes state only after a condition held long enough. */
#include "hysteresis.h"

int hyst_update(struct hysteresis *h, bool condition, uint64_t now, uint64_t raise_usec,
                uint64_t clear_usec) {
        /* The observation agrees with the current state: nothing is pending any more. */
        if (condition == h->raised) {
                h->pending = false;
                return HYST_NONE;
        }
        if (!h->pending) {
                h->pending = true;
                h->since = now;
        }
        if (now - h->since < (h->raised ? clear_usec : raise_usec))
                return HYST_NONE;
        h->raised = condition;
        h->pending = false;
        return condition ? HYST_RAISED : HYST_CLEARED;
}
