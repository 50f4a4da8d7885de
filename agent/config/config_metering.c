/* config_metering.c: the config's "metering" section: billing windows, spool, signing files. */
#include "config_internal.h"

#include <math.h>

/* A resource pack deducts each hour's peak concurrency: that is the largest peak of the hour's
 * windows only when whole windows tile the hour. */
static void parse_window_s(struct cfg_ctx *x, const cJSON *e, struct cfg_metering *m) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "window_s");
        double got;

        /* A whole number of seconds that is too long gets the reason, not only the range. */
        if (cJSON_IsNumber(v) && v->valuedouble > 3600 && v->valuedouble == floor(v->valuedouble)) {
                got = v->valuedouble;
        } else {
                cfg__get_uint(x, e, "window_s", "metering.window_s", 1, 3600, &m->window_s);
                if (3600 % m->window_s == 0)
                        return;
                got = m->window_s;
        }
        cfg__problem(
                x,
                "metering.window_s: must divide an hour (3600 s) so each hour's peak concurrency can be "
                "computed (got %.15g)",
                got);
}

void cfg__parse_metering(struct cfg_ctx *x, const cJSON *root, struct cfg *c) {
        static const char *const keys[] = { "window_s", "late_s",          "spool_max_mb", "inflight",
                                            "key_file", "redeliver_per_s", "cert_file",    NULL };
        struct cfg_metering *m = &c->metering;
        const cJSON *e = cfg__get_object(x, root, "metering", false);
        uint64_t unused = 0;

        if (!e)
                return;
        cfg__check_keys(x, e, "metering", keys);
        parse_window_s(x, e, m);
        cfg__get_uint(x, e, "late_s", "metering.late_s", 0, 120, &m->late_s);
        cfg__get_uint(x, e, "spool_max_mb", "metering.spool_max_mb", 1, 1024 * 1024, &m->spool_max_mb);
        cfg__get_uint(x, e, "inflight", "metering.inflight", 1, 1000, &m->inflight);
        cfg__get_uint(x, e, "redeliver_per_s", "metering.redeliver_per_s", 0, 100000, &m->redeliver_per_s);
        if (cJSON_GetObjectItemCaseSensitive(e, "key_file"))
                cfg__get_file(x, e, "key_file", "metering.key_file", &m->key_file, &unused);
        if (cJSON_GetObjectItemCaseSensitive(e, "cert_file"))
                cfg__get_file(x, e, "cert_file", "metering.cert_file", &m->cert_file, &unused);
}
