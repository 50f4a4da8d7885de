/* fake_clock.c: an LD_PRELOAD library that steps a process's wall clock (and only it) at a test's command.
 */
/*
 * The wall clock a process reads (clock_gettime CLOCK_REALTIME*, gettimeofday, time) is the real one
 * plus the offset in whole seconds written in the file $RA_FAKE_CLOCK_FILE ("+3600", "-10"; absent,
 * empty or unreadable: 0), read again at every call so a test steps the clock of a running agent by
 * replacing the file. CLOCK_MONOTONIC, CLOCK_BOOTTIME and every timer are left alone.
 *
 * Why not libfaketime: it also rewrites timerfd_settime and the epoll/poll timeouts, and with the
 * wall clock stepped an hour ahead sd-event's monotonic timers stopped firing, so the agent froze
 * until a socket woke it; that is a fault of the tool, not one a host has. This does one thing.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static clock_gettime_fn real_clock_gettime(void) {
        static clock_gettime_fn fn;

        if (!fn)
                fn = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
        return fn;
}

/* The offset in seconds; errno is kept, since callers read it after a failed call of their own. */
static int64_t offset_s(void) {
        const char *path = getenv("RA_FAKE_CLOCK_FILE");
        char buf[32];
        int saved = errno, fd;
        ssize_t n;
        int64_t v = 0;

        if (!path)
                return 0;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
                n = read(fd, buf, sizeof(buf) - 1);
                close(fd);
                if (n > 0) {
                        buf[n] = '\0';
                        v = strtoll(buf, NULL, 10);
                }
        }
        errno = saved;
        return v;
}

static int is_wall(clockid_t id) {
        return id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE || id == CLOCK_TAI;
}

int clock_gettime(clockid_t id, struct timespec *ts) {
        clock_gettime_fn fn = real_clock_gettime();
        int r;

        if (!fn)
                return errno = ENOSYS, -1;
        r = fn(id, ts);
        if (r == 0 && is_wall(id))
                ts->tv_sec += offset_s();
        return r;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
        struct timespec ts;

        (void)tz; /* obsolete: always zone 0 */
        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return -1;
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
        return 0;
}

time_t time(time_t *t) {
        struct timespec ts;
        time_t v = clock_gettime(CLOCK_REALTIME, &ts) < 0 ? (time_t)-1 : ts.tv_sec;

        if (t)
                *t = v;
        return v;
}
