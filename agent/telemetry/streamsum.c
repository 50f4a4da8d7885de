/* streamsum.c: a player session's stream quality, summed tick by tick for its session_end record. */
#include "streamsum.h"

#include "jsonnum.h"
#include "usage.h"

#include <string.h>

void streamsum_reset(struct streamsum *s) {
        memset(s, 0, sizeof(*s));
}

static void add_one(struct streamsum_kind *k, uint32_t id, uint32_t fps, uint32_t latency_us) {
        bool known = false;

        for (size_t i = 0; i < k->n_ids && !known; i++)
                known = k->ids[i] == id;
        if (!known && k->n_ids < STREAMSUM_IDS_MAX)
                k->ids[k->n_ids++] = id;
        else if (!known)
                k->more_ids = true;
        if (k->samples == 0 || fps < k->min_fps)
                k->min_fps = fps;
        if (latency_us > k->max_latency_us)
                k->max_latency_us = latency_us;
        k->sum_fps += fps;
        k->sum_latency_us += latency_us;
        k->samples++;
}

void streamsum_add(struct streamsum *s, const struct usage_slot *us, bool gpus_stale) {
        if (gpus_stale || (!us->has_enc && !us->has_fbc))
                return;
        s->ticks++;
        s->enc.listed = s->enc.listed || us->has_enc;
        s->fbc.listed = s->fbc.listed || us->has_fbc;
        for (size_t k = 0; us->has_enc && k < us->n_enc; k++)
                add_one(&s->enc, us->enc[k].id, us->enc[k].avg_fps, us->enc[k].avg_latency_us);
        for (size_t k = 0; us->has_fbc && k < us->n_fbc; k++)
                add_one(&s->fbc, us->fbc[k].id, us->fbc[k].avg_fps, us->fbc[k].avg_latency_us);
}

/* A mean to one decimal: cJSON prints 59.3, not 59.299999999999997. */
static double mean1(uint64_t sum, uint64_t n) {
        return jsonnum_round((double)sum / (double)n * 10.0) / 10.0;
}

static bool kind_json(cJSON *o, const char *key, const struct streamsum_kind *k) {
        cJSON *e;

        if (!k->listed)
                return true;
        e = cJSON_AddObjectToObject(o, key);
        if (!e || !cJSON_AddNumberToObject(e, "sessions", k->n_ids))
                return false;
        if (k->more_ids && !cJSON_AddBoolToObject(e, "more_sessions", true))
                return false;
        if (k->samples == 0)
                return true;
        return cJSON_AddNumberToObject(e, "samples", (double)k->samples) &&
               cJSON_AddNumberToObject(e, "avg_fps", mean1(k->sum_fps, k->samples)) &&
               cJSON_AddNumberToObject(e, "min_fps", k->min_fps) &&
               cJSON_AddNumberToObject(e, "avg_latency_us",
                                       jsonnum_round((double)k->sum_latency_us / (double)k->samples)) &&
               cJSON_AddNumberToObject(e, "max_latency_us", k->max_latency_us);
}

cJSON *streamsum_json(const struct streamsum *s) {
        cJSON *o;

        if (!s->enc.listed && !s->fbc.listed)
                return NULL;
        o = cJSON_CreateObject();
        if (!o || !cJSON_AddNumberToObject(o, "ticks", (double)s->ticks) ||
            !kind_json(o, "encoder", &s->enc) || !kind_json(o, "fbc", &s->fbc)) {
                cJSON_Delete(o);
                return NULL;
        }
        return o;
}
