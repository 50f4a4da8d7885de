/* signing.c: the signatures of metering records: made ahead of delivery in idle time, kept in the
 * signature cache, or made when a record is published.
 *
 * An ES256 signature costs ~0.35 ms with mbedtls; draining a day's backlog after an outage would
 * be bound by it. While the broker is away the loop is mostly idle, so the records it spools are
 * signed then, one at a time at idle priority, and the signatures go to a file (sigcache.h) that
 * outlives a restart. Signatures are deterministic: a cached one and a fresh one are the same
 * bytes, so the cache can be lost or wrong (a miss) without changing what is published. */
#include "signing.h"

#include "clock.h"
#include "jws.h"
#include "log.h"
#include "sigcache.h"
#include "strutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Records looked at and found delivered or cached that one dispatch may pass over. */
#define SKIPS_PER_DISPATCH 256
#define WHY_MAX 320

struct signing {
        sd_event_source *ahead;     /* the signer ahead: a time source, off when caught up */
        struct plat_signer *signer; /* borrowed */
        struct spool *spool;        /* borrowed */
        struct spool_reader *rd;
        struct sigcache *cache;
        char cache_path[256];
        char off_why[WHY_MAX]; /* why nothing is signed ahead; "" when it is */
        uint64_t delivered;    /* ids up to it were handed out for delivery: not signed ahead */
        uint64_t ahead_upto;   /* the reader's last id */
        uint64_t n_ahead, n_from_cache, n_at_publish;
        bool read_failed;
        bool cache_full; /* the cache holds all the ids it can: nothing ahead until it is emptied */
};

/* One record signed ahead, or up to SKIPS_PER_DISPATCH passed over, per dispatch. */
static int on_ahead(sd_event_source *s, uint64_t usec, void *ud) {
        struct signing *g = ud;
        uint64_t t0 = plat_now_mono_usec();

        (void)usec;
        for (unsigned skips = 0; skips < SKIPS_PER_DISPATCH; skips++) {
                uint8_t sig[PLAT_ES256_SIG_LEN];
                struct jws_input in;
                const void *buf;
                size_t len;
                uint64_t id;
                int r;

                r = spool_reader_next(g->rd, &buf, &len, &id);
                if (r == -EAGAIN)
                        return sd_event_source_set_enabled(s, SD_EVENT_OFF), 0;
                if (r < 0) {
                        if (!g->read_failed)
                                log_warn("metering: reading the spool ahead of delivery: %s; records are "
                                         "signed when published",
                                         strerror(-r));
                        g->read_failed = true;
                        return sd_event_source_set_enabled(s, SD_EVENT_OFF), 0;
                }
                g->ahead_upto = id;
                if (id <= g->delivered)
                        continue;
                r = jws_input_make(g->signer, buf, len, &in);
                if (r < 0)
                        continue; /* publishing meets the same error and raises it */
                if (sigcache_get(g->cache, id, in.digest, sig) == 0) {
                        jws_input_done(&in);
                        continue;
                }
                r = plat_signer_sign_digest(g->signer, in.digest, sig);
                if (r >= 0)
                        r = sigcache_put(g->cache, id, in.digest, sig);
                jws_input_done(&in);
                if (r == -ERANGE) {
                        /* Past what one cache file holds: the rest is signed when published, and
                         * nothing ahead until acks empty the file. */
                        g->cache_full = true;
                        return sd_event_source_set_enabled(s, SD_EVENT_OFF), 0;
                }
                if (r < 0) {
                        /* The cache is unusable: publishing signs, as without one. */
                        snprintf(g->off_why, sizeof(g->off_why),
                                 "the signature cache %s cannot be written: %s", g->cache_path,
                                 strerror(-r));
                        log_warn("metering: %s; records are signed when published", g->off_why);
                        return sd_event_source_set_enabled(s, SD_EVENT_OFF), 0;
                }
                g->n_ahead++;
                break;
        }
        /* Pause as long as the work took: SIGNING_AHEAD_DUTY_PCT of the time, at most. */
        uint64_t t1 = plat_now_mono_usec();
        sd_event_source_set_time(s,
                                 t1 + (t1 - t0) * (100 - SIGNING_AHEAD_DUTY_PCT) / SIGNING_AHEAD_DUTY_PCT);
        return 0;
}

int signing_new(sd_event *e, struct plat_signer *signer, int state_dir_fd, const char *state_dir,
                struct signing **ret) {
        struct signing *g = calloc(1, sizeof(*g));
        char msg[WHY_MAX];
        bool reset = false;
        int r;

        if (!g)
                return -ENOMEM;
        g->signer = signer;
        snprintf(g->cache_path, sizeof(g->cache_path), "%s/%s", state_dir, SIGCACHE_FILE);
        r = sd_event_add_time(e, &g->ahead, CLOCK_MONOTONIC, 0, 1, on_ahead, g);
        if (r >= 0)
                r = sd_event_source_set_priority(g->ahead, SD_EVENT_PRIORITY_IDLE + 10);
        if (r >= 0)
                r = sd_event_source_set_enabled(g->ahead, SD_EVENT_OFF);
        if (r < 0) {
                signing_free(g);
                return r;
        }
        if (!signer)
                plat_strlcpy(g->off_why, "no signing key", sizeof(g->off_why));
        else if (sigcache_open(state_dir_fd, state_dir, plat_signer_kid(signer), &g->cache, &reset, msg,
                               sizeof(msg)) < 0) {
                snprintf(g->off_why, sizeof(g->off_why), "%s", msg);
                log_warn("metering: %s; records are signed when published", msg);
        } else if (reset)
                log_info("metering: %s", msg);
        *ret = g;
        return 0;
}

void signing_free(struct signing *g) {
        if (!g)
                return;
        spool_reader_free(g->rd);
        sigcache_close(g->cache);
        sd_event_source_disable_unref(g->ahead);
        free(g);
}

int signing_set_spool(struct signing *g, struct spool *s) {
        struct spool_stats st;
        uint64_t from;
        int r;

        spool_reader_free(g->rd);
        g->rd = NULL;
        g->spool = s;
        sd_event_source_set_enabled(g->ahead, SD_EVENT_OFF);
        if (!s || !g->cache)
                return 0;
        r = spool_reader_new(s, &g->rd);
        if (r < 0)
                return r;
        spool_stats(s, &st);
        /* Entries for ids the spool never gave out belong to another spool's life (a spool
         * deleted by hand): the whole file goes (a trim at its highest id empties it). */
        if (sigcache_high(g->cache) >= st.next_id)
                (void)sigcache_trim(g->cache, sigcache_high(g->cache));
        g->cache_full = false;
        /* What the cache reaches was signed before the restart (a hole is signed on publish). */
        from = st.acked > sigcache_high(g->cache) ? st.acked : sigcache_high(g->cache);
        spool_reader_seek(g->rd, from);
        g->ahead_upto = from;
        g->delivered = 0;
        g->read_failed = false;
        return 0;
}

void signing_kick(struct signing *g, uint64_t delivered) {
        if (!g)
                return;
        if (delivered > g->delivered)
                g->delivered = delivered;
        if (!g->rd || !g->signer || g->off_why[0] || g->read_failed || g->cache_full)
                return;
        sd_event_source_set_time(g->ahead, plat_now_mono_usec() + SIGNING_QUIET_USEC);
        sd_event_source_set_enabled(g->ahead, SD_EVENT_ON);
}

int signing_line(struct signing *g, uint64_t id, const void *payload, size_t len, char **ret_line) {
        uint8_t sig[PLAT_ES256_SIG_LEN];
        struct jws_input in;
        int r;

        if (!g->signer)
                return -ENOKEY;
        r = jws_input_make(g->signer, payload, len, &in);
        if (r < 0)
                return r;
        if (g->cache && sigcache_get(g->cache, id, in.digest, sig) == 0)
                g->n_from_cache++;
        else {
                r = plat_signer_sign_digest(g->signer, in.digest, sig);
                g->n_at_publish += r >= 0;
        }
        if (r >= 0)
                r = jws_input_line(&in, sig, ret_line);
        jws_input_done(&in);
        return r;
}

void signing_acked(struct signing *g, uint64_t acked) {
        if (!g || !g->cache)
                return;
        (void)sigcache_trim(g->cache, acked);
        if (sigcache_high(g->cache) == 0)
                g->cache_full = false;
}

cJSON *signing_status_json(const struct signing *g) {
        cJSON *o = cJSON_CreateObject();
        char buf[WHY_MAX + 8];

        cJSON_AddNumberToObject(o, "ahead", (double)g->n_ahead);
        cJSON_AddNumberToObject(o, "from_cache", (double)g->n_from_cache);
        cJSON_AddNumberToObject(o, "at_publish", (double)g->n_at_publish);
        cJSON_AddNumberToObject(o, "ahead_upto", (double)g->ahead_upto);
        if (g->off_why[0])
                snprintf(buf, sizeof(buf), "off: %s", g->off_why);
        cJSON_AddStringToObject(o, "cache", g->off_why[0] ? buf : g->cache_path);
        return o;
}
