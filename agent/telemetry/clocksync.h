/* clocksync.h: the kernel's view of the wall clock's truth (adjtimex(2)): synchronised or not, and
 * how far off it may be. Read each sampling tick (one cheap syscall, no privilege needed). */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

struct jsonw;
struct timex;

/* The kernel's NTP state, as adjtimex(2) with modes 0 (a read) reports it. */
struct clocksync_state {
        bool synced;           /* neither STA_UNSYNC nor TIME_ERROR: an NTP daemon disciplines it */
        int state;             /* adjtimex's return: TIME_OK, TIME_INS, ..., TIME_ERROR */
        int status;            /* the STA_* bits */
        uint64_t est_error_us; /* the kernel's estimated error */
        uint64_t max_error_us; /* its bound on the error (grows 500 ppm while nobody disciplines it) */
};

/* The call that reads the kernel's state; adjtimex(2) unless a test set another. */
typedef int (*clocksync_adjtimex_fn)(struct timex *buf);

/* Tests: read through fn instead (NULL: adjtimex(2) again). */
void clocksync_set_adjtimex(clocksync_adjtimex_fn fn);

/* Reads the state. -errno when the call failed (a seccomp filter, -EPERM): then the clock's truth
 * is unknown and *ret is untouched. */
int clocksync_read(struct clocksync_state *ret);

/* Watches the state from read to read: the transitions an operator must hear of. */
enum clocksync_change {
        CLOCKSYNC_SAME,
        CLOCKSYNC_LOST,     /* was synchronised (or first read) and is not */
        CLOCKSYNC_REGAINED, /* was not synchronised and is */
};

struct clocksync_watch {
        bool have;
        struct clocksync_state last;
};

/* Folds a new reading into w and says what changed. The first reading counts as LOST when it is
 * unsynchronised (the agent starts on a clock nobody disciplines), else SAME. */
enum clocksync_change clocksync_watch_update(struct clocksync_watch *w, const struct clocksync_state *s);

/* "synchronised", or "unsynchronised (STA_UNSYNC)" / "... (TIME_ERROR)": why, in words. Static. */
const char *clocksync_reason(const struct clocksync_state *s);

/* {"synced":true,"state":"TIME_OK","est_error_us":..,"max_error_us":..} as member `key` of j's open
 * object (key NULL: the root); clocksync_json as a tree (caller frees; NULL when out of memory). */
void clocksync_jsonw(struct jsonw *j, const char *key, const struct clocksync_state *s);
cJSON *clocksync_json(const struct clocksync_state *s);

/* "TIME_OK", "TIME_INS", "TIME_DEL", "TIME_OOP", "TIME_WAIT", "TIME_ERROR", else "unknown". Static. */
const char *clocksync_state_str(int state);
