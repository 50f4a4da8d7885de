/* clock.c: the one source of time for data (timestamps, rates); tests can pin it. */
#include "clock.h"

#include <stdio.h>
#include <time.h>

static uint64_t fake_mono, fake_real;

static uint64_t now_usec(clockid_t id) {
        struct timespec ts;

        clock_gettime(id, &ts);
        return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t plat_now_mono_usec(void) {
        return fake_mono ? fake_mono : now_usec(CLOCK_MONOTONIC);
}

uint64_t plat_now_real_usec(void) {
        return fake_real ? fake_real : now_usec(CLOCK_REALTIME);
}

void plat_clock_set_fake(uint64_t mono_usec, uint64_t real_usec) {
        fake_mono = mono_usec;
        fake_real = real_usec;
}

char *plat_format_rfc3339_ms(uint64_t real_usec, char *buf, size_t len) {
        time_t secs = (time_t)(real_usec / USEC_PER_SEC);
        unsigned ms = (unsigned)(real_usec % USEC_PER_SEC / 1000);
        struct tm tm;

        gmtime_r(&secs, &tm);
        snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
        return buf;
}
