/* pace.c: a fleet's reconnects spread over a window, and a node's publishing capped at a rate
 * (pace.h). The cap is the generic cell rate algorithm: one timestamp, no refill timer. */
#include "pace.h"

#include <stdlib.h>
#include <sys/random.h>

uint32_t pace_random_u32(void) {
        uint32_t v;

        if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v))
                v = (uint32_t)random();
        return v;
}

uint64_t pace_spread_usec(uint64_t window_usec, uint64_t floor_usec, uint32_t rnd) {
        /* 128-bit free: window_usec is at most minutes, rnd < 2^32, the product fits 64 bits. */
        uint64_t d = (uint64_t)(((unsigned __int128)window_usec * rnd) >> 32);

        return d < floor_usec ? floor_usec : d;
}

void pace_init(struct pace *p, unsigned per_s, unsigned burst) {
        *p = (struct pace){ 0 };
        if (!per_s)
                return;
        p->interval_usec = 1000000ULL / per_s;
        if (!p->interval_usec)
                p->interval_usec = 1;
        p->burst_usec = (uint64_t)(burst ? burst - 1 : 0) * p->interval_usec;
}

uint64_t pace_wait_usec(const struct pace *p, uint64_t now_usec) {
        if (!p->interval_usec || p->tat_usec <= now_usec + p->burst_usec)
                return 0;
        return p->tat_usec - p->burst_usec - now_usec;
}

bool pace_take(struct pace *p, uint64_t now_usec) {
        if (!p->interval_usec)
                return true;
        if (pace_wait_usec(p, now_usec))
                return false;
        /* An idle spell earns no more than one burst: the clock restarts from now. */
        p->tat_usec = (p->tat_usec > now_usec ? p->tat_usec : now_usec) + p->interval_usec;
        return true;
}
