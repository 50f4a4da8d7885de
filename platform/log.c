/* log.c: logging to the journal with structured fields under systemd, to stderr otherwise. */
#include "log.h"

#include "clock.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <systemd/sd-journal.h>

static int log_max = LOG_INFO;
static bool log_to_journal;
static const char *log_ident = "render-agent";

static const char *const level_names[] = {
        [LOG_EMERG] = "emerg",     [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit", [LOG_ERR] = "err",
        [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice", [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

/* systemd sets JOURNAL_STREAM=dev:ino when stderr is connected to the journal; comparing it
 * with stderr's own identity avoids logging to the journal from a child whose stderr moved. */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        uintmax_t dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%ju:%ju", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (uintmax_t)st.st_dev == dev && (uintmax_t)st.st_ino == ino;
}

void plat_log_setup(const char *ident, int max_priority) {
        if (ident)
                log_ident = ident;
        if (max_priority >= LOG_EMERG && max_priority <= LOG_DEBUG)
                log_max = max_priority;
        log_to_journal = stderr_is_journal();
}

int plat_log_get_max(void) {
        return log_max;
}

int plat_log_level_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        for (int i = LOG_ERR; i <= LOG_DEBUG; i++)
                if (strcmp(s, level_names[i]) == 0)
                        return i;
        if (strcmp(s, "error") == 0)
                return LOG_ERR;
        if (strcmp(s, "warn") == 0)
                return LOG_WARNING;
        if (s[0] >= '3' && s[0] <= '7' && s[1] == '\0')
                return s[0] - '0';
        return -EINVAL;
}

#define LOG_MAX_FIELDS 8
#define LOG_MSG_MAX 1024

static void emit(int priority, const char *const *fields, const char *msg);

void plat_log_fields(int priority, const char *const *fields, const char *fmt, ...) {
        char msg[LOG_MSG_MAX];
        va_list ap;
        int saved = errno;

        if (priority > log_max)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        emit(priority, fields, msg);
        errno = saved;
}

void plat_log_limited(struct plat_ratelimit *rl, int priority, const char *const *fields, const char *fmt,
                      ...) {
        uint64_t suppressed;
        char msg[LOG_MSG_MAX];
        va_list ap;
        int saved = errno;

        if (priority > log_max)
                return;
        if (!plat_ratelimit_pass(rl, plat_now_mono_usec(), &suppressed))
                return;
        if (suppressed) {
                snprintf(msg, sizeof(msg),
                         "suppressed %" PRIu64 " similar lines (at most %u every %" PRIu64
                         " s are logged); the "
                         "next follows",
                         suppressed, rl->burst, rl->interval_usec / 1000000);
                emit(priority, fields, msg);
        }
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        emit(priority, fields, msg);
        errno = saved;
}

/* Writes one formatted line to the journal, or to stderr; errno is kept. */
static void emit(int priority, const char *const *fields, const char *msg) {
        int saved = errno;

        if (log_to_journal) {
                char mbuf[LOG_MSG_MAX + 8], pbuf[16], ibuf[64];
                struct iovec iov[3 + LOG_MAX_FIELDS];
                size_t n = 0;

                snprintf(mbuf, sizeof(mbuf), "MESSAGE=%s", msg);
                snprintf(pbuf, sizeof(pbuf), "PRIORITY=%d", priority);
                snprintf(ibuf, sizeof(ibuf), "SYSLOG_IDENTIFIER=%s", log_ident);
                iov[n++] = (struct iovec){ mbuf, strlen(mbuf) };
                iov[n++] = (struct iovec){ pbuf, strlen(pbuf) };
                iov[n++] = (struct iovec){ ibuf, strlen(ibuf) };
                for (size_t i = 0; fields && fields[i] && i < LOG_MAX_FIELDS; i++)
                        iov[n++] = (struct iovec){ (void *)fields[i], strlen(fields[i]) };
                if (sd_journal_sendv(iov, (int)n) >= 0) {
                        errno = saved;
                        return;
                }
                /* Journal unreachable: fall through to stderr rather than lose the line. */
        }

        fprintf(stderr, "%s: %s: %s", log_ident, level_names[priority], msg);
        for (size_t i = 0; fields && fields[i] && i < LOG_MAX_FIELDS; i++)
                fprintf(stderr, " %s", fields[i]);
        fputc('\n', stderr);
        errno = saved;
}
