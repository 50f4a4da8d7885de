/* fake_adjtimex.c: an LD_PRELOAD library that answers a process's adjtimex(2) reads with the clock
 * sync state a test writes, so doctor and the agent can be shown an unsynchronised clock. */
/*
 * The file $RA_FAKE_ADJTIMEX_FILE holds "synced EST_US" (TIME_OK, STA_PLL, esterror EST_US) or
 * "unsynced" (TIME_ERROR, STA_UNSYNC, esterror 16 s as the kernel reports a clock nobody
 * disciplines); it is read again at every call, so a test flips the state of a running agent by
 * replacing the file. Absent or unreadable: the real adjtimex. A call that sets anything (modes
 * != 0) is refused with EPERM: no test may move the host's clock.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timex.h>
#include <unistd.h>

typedef int (*adjtimex_fn)(struct timex *);

int adjtimex(struct timex *t) {
        const char *path = getenv("RA_FAKE_ADJTIMEX_FILE");
        char buf[64];
        ssize_t n = -1;
        int fd;

        if (t->modes != 0) {
                errno = EPERM;
                return -1;
        }
        fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
        if (fd >= 0) {
                n = read(fd, buf, sizeof(buf) - 1);
                close(fd);
        }
        if (n <= 0) {
                adjtimex_fn real = (adjtimex_fn)dlsym(RTLD_NEXT, "adjtimex");

                return real ? real(t) : (errno = ENOSYS, -1);
        }
        buf[n] = '\0';
        memset(t, 0, sizeof(*t));
        if (!strncmp(buf, "synced", 6)) {
                t->status = STA_PLL;
                t->esterror = strtol(buf + 6, NULL, 10);
                t->maxerror = 2 * t->esterror + 1000;
                return TIME_OK;
        }
        t->status = STA_UNSYNC;
        t->esterror = 16000000;
        t->maxerror = 16000000;
        return TIME_ERROR;
}
