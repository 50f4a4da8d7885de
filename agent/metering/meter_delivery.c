/* meter_delivery.c: the meter's records on their way out: QoS 1 publishes within the window
 * (delivery.h decides what a PUBACK means and how long to wait), acks into the spool, status. */
#include "meter_internal.h"

#include "cleanup.h"
#include "evhist.h"
#include "link.h"
#include "log.h"
#include "pace.h"
#include "strutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int on_pace(sd_event_source *s, uint64_t usec, void *ud) {
        (void)s;
        (void)usec;
        meter__pump(ud);
        return 0;
}

/* The rate cap holds the next record back `wait` usec: pump again then. */
static void pump_later(struct meter *m, uint64_t wait) {
        uint64_t now;

        sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        if (m->pace_src) {
                (void)sd_event_source_set_time(m->pace_src, now + wait);
                (void)sd_event_source_set_enabled(m->pace_src, SD_EVENT_ONESHOT);
        } else if (sd_event_add_time(m->event, &m->pace_src, CLOCK_MONOTONIC, now + wait, 1000, on_pace, m) <
                   0)
                /* The meter's 1 s timer pumps too: the backlog goes on, only slower. */
                log_debug("metering: cannot arm the pacing timer");
}

void meter__pump(struct meter *m) {
        uint64_t now = plat_now_mono_usec();
        unsigned window;

        if (!m->spool || !m->signer)
                return; /* records stay in the spool until there is a key to sign them */
        /* Without a consumer: nothing while a backoff runs, then one record at a time. */
        window = delivery_window(&m->delivery, now, m->max_inflight);
        while (m->link && link_get_state(m->link) == LINK_CONNECTED && m->n_inflight < window) {
                _cleanup_free_ void *buf = NULL;
                _cleanup_free_ char *line = NULL;
                size_t len;
                uint64_t id, wait = pace_wait_usec(&m->pace, now);
                int mid = 0, r;

                if (wait) {
                        pump_later(m, wait);
                        break;
                }
                r = spool_read_next(m->spool, &buf, &len, &id);
                if (r < 0)
                        return; /* delivery is at the newest record: nothing to sign ahead */
                if (id > m->handed_high)
                        m->handed_high = id;
                r = signing_line(m->signing, id, buf, len, &line);
                if (r < 0) {
                        meter__alarm(m, "sign_failed", "metering: cannot sign record %" PRIu64 ": %s", id,
                                     strerror(-r));
                        spool_rewind(m->spool);
                        return;
                }
                r = link_publish_ex(m->link, m->topic, line, strlen(line), 1, NULL, 0, &mid);
                if (r < 0) {
                        /* Handed out but not sent: the next pump starts again from the oldest unacked. */
                        plat_strlcpy(m->last_error, "publish failed; the record is sent again",
                                     sizeof(m->last_error));
                        spool_rewind(m->spool);
                        break;
                }
                m->inflight[m->n_inflight++] = (struct inflight){ .mid = mid, .id = id };
                (void)pace_take(&m->pace, now);
                m->published++;
        }
        /* The link is away or its window full: what is behind gets signed meanwhile. */
        signing_kick(m->signing, m->handed_high);
}

void meter_set_link(struct meter *m, struct link *l, const char *topic) {
        if (!m)
                return;
        m->link = l;
        m->n_inflight = 0;
        if (topic)
                plat_strlcpy(m->topic, topic, sizeof(m->topic));
}

void meter_connected(struct meter *m) {
        if (!m)
                return;
        if (m->link && link_protocol_version(m->link) == 4 && !m->said_v311) {
                m->said_v311 = true;
                log_warn("metering: the broker speaks MQTT 3.1.1, whose PUBACK cannot say that nobody "
                         "subscribed: a record leaves the spool once the broker has it; the central "
                         "consumer must hold a persistent session (docs/metering.md)");
        }
        m->n_inflight = 0; /* acks for the old connection's mids would name other records now */
        if (m->spool)
                spool_rewind(m->spool);
        meter__pump(m);
}

/* PUBACK 0x10: the broker took record `id` and nobody received it. It stays in the spool; the
 * alarm goes out once, when this begins. */
static void no_consumer(struct meter *m, uint64_t id) {
        uint64_t now = plat_now_mono_usec();

        if (delivery_no_consumer(&m->delivery, now, plat_now_real_usec(), pace_random_u32()))
                meter__alarm(m, "no_consumer",
                             "metering: nobody subscribes to %s: the broker dropped record %" PRIu64
                             " (MQTT 5 PUBACK reason 0x10, no matching subscribers); records stay in the "
                             "spool and are offered one at a time, after 1 s doubling to 60 s, until a "
                             "consumer receives them",
                             m->topic, id);
        else
                log_debug("metering: still nobody subscribes to %s (record %" PRIu64 "); next offer in "
                          "%.1f s",
                          m->topic, id, (double)(m->delivery.next_usec - now) / 1e6);
}

static void received(struct meter *m, uint64_t id) {
        struct delivery was = m->delivery;
        char msg[METER_MSG_MAX], ts[40];

        if (m->spool) {
                (void)meter__checked(m, "spool_ack", spool_ack(m->spool, id));
                m->acked++;
        }
        if (!delivery_received(&m->delivery))
                return;
        snprintf(msg, sizeof(msg),
                 "metering: a consumer receives records on %s again (record %" PRIu64
                 "); nobody had since %s, %" PRIu64 " offer(s) refused; the held records follow",
                 m->topic, id, plat_format_rfc3339_ms(was.since_real_usec, ts, sizeof(ts)), was.refused);
        log_notice("%s", msg);
        if (m->hooks.cleared)
                m->hooks.cleared("no_consumer", msg, m->hooks.userdata);
}

void meter_published(struct meter *m, int mid, int reason) {
        if (!m)
                return;
        for (size_t k = 0; k < m->n_inflight; k++) {
                uint64_t id = m->inflight[k].id;

                if (m->inflight[k].mid != mid)
                        continue;
                m->inflight[k] = m->inflight[--m->n_inflight];
                switch (delivery_outcome(reason)) {
                case DELIVERY_RECEIVED:
                        received(m, id);
                        break;
                case DELIVERY_NO_CONSUMER:
                        no_consumer(m, id);
                        /* Offered again from the oldest unacked record, when the backoff allows. */
                        if (m->spool)
                                spool_rewind(m->spool);
                        break;
                case DELIVERY_REFUSED:
                        plat_strlcpy(m->last_error, "the broker refused a metering record; it is sent again",
                                     sizeof(m->last_error));
                        if (m->spool)
                                spool_rewind(m->spool);
                        break;
                }
                meter__pump(m);
                return;
        }
}

void meter_backlog(const struct meter *m, uint64_t *ret_records, uint64_t *ret_bytes) {
        struct spool_stats st = { 0 };

        if (m->spool)
                spool_stats(m->spool, &st);
        *ret_records = st.pending;
        *ret_bytes = st.used; /* the records' bytes: preallocated zeros are no backlog */
}

/* spool.oldest_pending_ts and oldest_pending_age_s: when the oldest record not yet acknowledged was
 * made (its document's "ts"), so that a stuck backlog shows how long it has waited. One record read
 * per status request; left out when there is none, or it cannot be read or has no ts. */
static void oldest_pending_json(const struct meter *m, const struct spool_stats *st, cJSON *sp) {
        struct spool_reader *rd = NULL;
        const void *buf;
        size_t len;
        uint64_t id, made;
        char msg[64];

        if (!m->spool || !st->pending || !st->oldest_unacked || spool_reader_new(m->spool, &rd) < 0)
                return;
        spool_reader_seek(rd, st->oldest_unacked - 1);
        if (spool_reader_next(rd, &buf, &len, &id) >= 0) {
                cJSON *doc = cJSON_ParseWithLength(buf, len);
                const cJSON *ts = cJSON_GetObjectItemCaseSensitive(doc, "ts");
                uint64_t now = plat_now_real_usec();

                if (cJSON_IsString(ts) && evhist_parse_since(ts, now, &made, msg, sizeof(msg)) >= 0) {
                        cJSON_AddStringToObject(sp, "oldest_pending_ts", ts->valuestring);
                        cJSON_AddNumberToObject(sp, "oldest_pending_age_s",
                                                made < now ? (double)((now - made) / USEC_PER_SEC) : 0);
                }
                cJSON_Delete(doc);
        }
        spool_reader_free(rd);
}

cJSON *meter_status_json(const struct meter *m) {
        cJSON *o = cJSON_CreateObject(), *sp;
        struct spool_stats st = { 0 };

        if (m->spool)
                spool_stats(m->spool, &st);
        cJSON_AddNumberToObject(o, "next_seq", (double)st.next_id);
        if (m->signer)
                cJSON_AddStringToObject(o, "kid", plat_signer_kid(m->signer));
        cJSON_AddNumberToObject(o, "records_made", (double)m->made);
        cJSON_AddNumberToObject(o, "published", (double)m->published);
        cJSON_AddNumberToObject(o, "acked", (double)m->acked);
        cJSON_AddNumberToObject(o, "in_flight", (double)m->n_inflight);
        cJSON_AddNumberToObject(o, "owed", (double)journal_owed(m->journal));
        cJSON_AddNumberToObject(o, "owed_bytes", (double)journal_bytes(m->journal));
        cJSON_AddNumberToObject(o, "lost", (double)m->lost);
        delivery_status_json(&m->delivery, plat_now_mono_usec(), o);
        sp = cJSON_AddObjectToObject(o, "spool");
        cJSON_AddNumberToObject(sp, "pending", (double)st.pending);
        cJSON_AddNumberToObject(sp, "bytes", (double)st.bytes);
        cJSON_AddNumberToObject(sp, "used", (double)st.used);
        cJSON_AddNumberToObject(sp, "max_bytes", (double)st.max_bytes);
        cJSON_AddNumberToObject(sp, "acked_seq", (double)st.acked);
        cJSON_AddNumberToObject(sp, "segments", (double)st.segments);
        cJSON_AddNumberToObject(sp, "quarantined", (double)st.quarantined);
        cJSON_AddBoolToObject(sp, "full", st.full);
        oldest_pending_json(m, &st, sp);
        if (m->signing)
                cJSON_AddItemToObject(o, "signatures", signing_status_json(m->signing));
        if (m->billing)
                meter__clock_steps_json(m, o);
        if (m->refusal[0])
                cJSON_AddStringToObject(o, "refusing_sessions", m->refusal);
        if (m->last_error[0])
                cJSON_AddStringToObject(o, "last_error", m->last_error);
        return o;
}
