/* config_telemetry.c: telemetry.interval_ms against sampling.interval_ms (see config.h). */
#include "config.h"

#include <errno.h>
#include <stdio.h>

int cfg_telemetry_interval(struct cfg *c, char *msg, size_t len) {
        unsigned s = c->sampling_interval_ms, t = c->telemetry_interval_ms;

        if (t == 0) { /* not given */
                c->telemetry_interval_ms = (CFG_TELEMETRY_DEFAULT_MS + s - 1) / s * s;
                return 0;
        }
        if (t < s) {
                snprintf(msg, len,
                         "telemetry.interval_ms: %u is shorter than sampling.interval_ms (%u): a telemetry "
                         "document aggregates whole samples; use %u or a multiple of it",
                         t, s, s);
                return -EINVAL;
        }
        if (t % s != 0) {
                snprintf(msg, len,
                         "telemetry.interval_ms: %u is not a multiple of sampling.interval_ms (%u): a "
                         "telemetry document aggregates whole samples; use %u or %u",
                         t, s, t / s * s, (t / s + 1) * s);
                return -EINVAL;
        }
        return 0;
}
