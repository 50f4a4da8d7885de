/* pace.h: spreading a fleet's load over time, so that a broker restart is not met by every node
 * at once: the first reconnect after a lost connection drawn over a window, and a rate cap on
 * what a node publishes from a backlog (a token bucket). Pure arithmetic: the caller passes the
 * time and the random numbers, so tests can set both. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* A uniform random 32-bit value for jitter (getrandom, else random()): not for secrets. */
uint32_t pace_random_u32(void);

/* The delay before the first reconnect after a lost connection: uniform over [0, window_usec)
 * (full jitter), but never under floor_usec. `rnd` is a uniform random 32-bit value. With a
 * window under floor_usec the delay is floor_usec. */
uint64_t pace_spread_usec(uint64_t window_usec, uint64_t floor_usec, uint32_t rnd);

/* A rate cap: at most per_s events a second on average, bursts of at most `burst`. per_s 0:
 * no cap. The state is plain data; zero-initialise it, or pace_init. */
struct pace {
        uint64_t interval_usec; /* 1 s / per_s; 0: no cap */
        uint64_t burst_usec;    /* (burst - 1) * interval: how far ahead of the rate a burst may go */
        uint64_t tat_usec;      /* theoretical arrival time of the next event (GCRA) */
};

/* burst 0 is taken as 1. */
void pace_init(struct pace *p, unsigned per_s, unsigned burst);

/* Whether one more event may go at `now_usec`; true uses it up. */
bool pace_take(struct pace *p, uint64_t now_usec);

/* How long from now_usec until pace_take would say true; 0 when it would now. */
uint64_t pace_wait_usec(const struct pace *p, uint64_t now_usec);
