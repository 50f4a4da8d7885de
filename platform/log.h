/* log.h: logging to the journal with structured fields under systemd, to stderr otherwise. */
#pragma once

#include "ratelimit.h"

#include <syslog.h>

/* Chooses the sink (journal when JOURNAL_STREAM names our stderr) and the maximum priority
 * that is emitted (LOG_ERR .. LOG_DEBUG). */
void plat_log_setup(const char *ident, int max_priority);

/* Parses "err|warning|notice|info|debug" (or 3..7); returns the priority or -EINVAL. */
int plat_log_level_from_string(const char *s);

int plat_log_get_max(void);

/* Logs one message. `fields` is NULL or a NULL-terminated array of "KEY=value" strings sent
 * as journal fields (SLOT=, SESSION=, USER_ID=...); on stderr they follow the message. */
void plat_log_fields(int priority, const char *const *fields, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* plat_log_fields through a rate limit: lines beyond rl's burst in its interval are counted, not
 * written, and the next line that passes is preceded by one saying how many were suppressed. */
void plat_log_limited(struct plat_ratelimit *rl, int priority, const char *const *fields, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));

/* For lines that outside input can repeat at will (an MQTT command, a control request): at most
 * LOG_LIMIT_BURST lines every LOG_LIMIT_INTERVAL_USEC from each call site. */
#define LOG_LIMIT_BURST 50
#define LOG_LIMIT_INTERVAL_USEC (10ULL * 1000000ULL)
#define log_limited(priority, ...)                                                \
        do {                                                                      \
                static struct plat_ratelimit rl_ =                                \
                        PLAT_RATELIMIT(LOG_LIMIT_INTERVAL_USEC, LOG_LIMIT_BURST); \
                plat_log_limited(&rl_, priority, NULL, __VA_ARGS__);              \
        } while (0)

#define log_err(...) plat_log_fields(LOG_ERR, NULL, __VA_ARGS__)
#define log_warn(...) plat_log_fields(LOG_WARNING, NULL, __VA_ARGS__)
#define log_notice(...) plat_log_fields(LOG_NOTICE, NULL, __VA_ARGS__)
#define log_info(...) plat_log_fields(LOG_INFO, NULL, __VA_ARGS__)
#define log_debug(...) plat_log_fields(LOG_DEBUG, NULL, __VA_ARGS__)
