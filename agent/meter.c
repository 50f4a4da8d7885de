/* meter.c: billing-grade records from session transitions and billing windows: hash-chained,
 * appended to the spool before anything acknowledges them, signed (JWS ES256, deterministic) ahead
 * in idle time or as they are published (signing.h), delivered at least once. */
#include "meter.h"

#include "billing.h"
#include "cleanup.h"
#include "clock.h"
#include "crypto.h"
#include "delivery.h"
#include "fileio.h"
#include "journal.h"
#include "jws.h"
#include "log.h"
#include "signing.h"
#include "spool.h"
#include "strutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define TIMER_USEC (1000 * 1000ULL)
/* The room (spool_room) the spool must have at start for new sessions to be admitted. */
#define ROOM_MIN (256 * 1024)
#define TOPIC_MAX 256

struct slot_view {
        char id[SLOTS_ID_MAX + 1];
        char scale[64];
        bool in_grace;
        char session[SLOTS_SESSION_LEN + 1]; /* the session started_mono belongs to */
        char user[SLOTS_USER_MAX + 1];       /* its user */
        bool ended;                          /* it ended: billing holds no bytes of it any more */
        uint64_t started_mono;               /* its start on the monotonic clock; 0: unknown */
        char project[SLOTS_PROJECT_MAX + 1]; /* that session's billing dimensions; "" none */
        char app[SLOTS_APP_MAX + 1];
        size_t n_viewers;
        char viewers[SLOTS_VIEWERS_MAX][SLOTS_USER_MAX + 1];
};

struct inflight {
        int mid;
        uint64_t id;
};

struct meter {
        sd_event *event;
        char *node, *region, *state_dir;
        size_t n_slots;
        struct slot_view slot[SLOTS_MAX];
        unsigned max_inflight;
        int state_fd;
        struct spool *spool; /* NULL only while a broken spool could not be opened again */
        uint64_t spool_max_bytes;
        bool reopen_alarmed;
        int prepare_err; /* the last spool_prepare failure, 0 since one worked */
        struct plat_signer *signer;
        struct signing *signing;
        uint64_t handed_high; /* the highest id pump handed out: signing ahead starts after it */
        struct billing *billing;
        /* The session whose end is closing its slot's minutes (billing_close_slot), or NULL. */
        const struct slots_event *closing;
        struct meter_hooks hooks;
        /* Records made and not yet synced in the spool (journal.h): written with the session state. */
        struct journal *journal;
        /* A batch's transitions are being made into records (meter_transition .. meter_sync or
         * meter_abort): the views as they were before it, and its occupancy changes. */
        bool in_batch;
        struct slot_view saved[SLOTS_MAX];
        bool occupied[SLOTS_MAX], saved_occupied[SLOTS_MAX]; /* as billing was told */
        char occ_project[SLOTS_MAX][SLOTS_PROJECT_MAX + 1], saved_project[SLOTS_MAX][SLOTS_PROJECT_MAX + 1];
        /* Billing's open minutes in slots.state (meter_open_minutes): they changed since last handed
         * over; the newest state written (or being written) may hold some; a JSON was handed to the
         * state write in progress (and whether it held bytes); a minute record was made whose bytes
         * the state on disk still holds as open, so no record may reach the spool before the next
         * state write (else a crash would count those bytes twice). */
        bool open_dirty, open_on_disk, open_handed, handed_bytes, stale;
        int flush_err; /* why the last flush could not put every owed record in the spool; 0 */
        /* The newest seq handed to a state write (meter_journal) and the newest known written
         * (meter_sync after it): owed records up to journal_written are in slots.state. */
        uint64_t journal_given, journal_written;
        uint64_t lost;
        struct link *link;
        char topic[TOPIC_MAX];
        struct inflight *inflight;
        size_t n_inflight;
        struct delivery delivery; /* whether records reach a consumer (PUBACK 0x10) */
        bool said_v311;           /* the 3.1.1 caveat was logged */
        uint64_t published, acked, made;
        sd_event_source *sync_src, *timer;
        bool alarmed_full;
        bool room_low; /* refusing since the start: the spool had under ROOM_MIN of room */
        char refusal[METER_MSG_MAX];
        char last_error[METER_MSG_MAX];
};

static struct billing_time now_both(void) {
        return (struct billing_time){ .mono_usec = plat_now_mono_usec(), .real_usec = plat_now_real_usec() };
}

static void alarm_(struct meter *m, const char *what, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void alarm_(struct meter *m, const char *what, const char *fmt, ...) {
        char msg[METER_MSG_MAX];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        plat_strlcpy(m->last_error, msg, sizeof(m->last_error));
        if (m->hooks.alarm)
                m->hooks.alarm(what, msg, m->hooks.userdata);
}

/* ---- making records ---- */

static void refuse(struct meter *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void refuse(struct meter *m, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(m->refusal, sizeof(m->refusal), fmt, ap);
        va_end(ap);
}

/* Makes a record, whole (seq, prev, ts), owed until the spool has synced it (journal.h). The
 * payload is signed later (deterministic ES256: a redelivery is the same bytes), so making a
 * record costs no signature: session ops stay fast. Takes ownership of fields. */
static void record(struct meter *m, const char *type, cJSON *fields) {
        cJSON *o = fields ? cJSON_CreateObject() : NULL;
        int r = -ENOMEM;

        if (o && cJSON_AddNumberToObject(o, "v", 1) && cJSON_AddStringToObject(o, "type", type) &&
            cJSON_AddStringToObject(o, "node", m->node) && cJSON_AddStringToObject(o, "region", m->region))
                r = journal_make(m->journal, o, fields, plat_now_real_usec(), JWS_PAYLOAD_MAX);
        cJSON_Delete(o);
        cJSON_Delete(fields);
        if (r < 0) {
                if (m->lost++ == 0)
                        alarm_(m, "records_lost", "metering: a %s record could not be made (%s); it is lost",
                               type, r == -ENOSPC ? "too many records wait for the spool" : strerror(-r));
                return;
        }
        m->made++;
        /* Outside a batch (billing windows, push targets): the spool takes it at the end of the loop
         * turn. A batch's records wait for its state write (meter_sync). */
        if (!m->in_batch)
                sd_event_source_set_enabled(m->sync_src, SD_EVENT_ONESHOT);
}

/* The first transition of a batch: what meter_abort puts back. */
static void begin_batch(struct meter *m) {
        if (m->in_batch)
                return;
        m->in_batch = true;
        memcpy(m->saved, m->slot, m->n_slots * sizeof(m->slot[0]));
        memcpy(m->saved_occupied, m->occupied, sizeof(m->occupied));
        memcpy(m->saved_project, m->occ_project, sizeof(m->occ_project));
        journal_mark(m->journal);
}

/* The session's project and app, when it has them. */
static void add_dimensions(cJSON *f, const char *project, const char *app) {
        if (project[0])
                cJSON_AddStringToObject(f, "project", project);
        if (app[0])
                cJSON_AddStringToObject(f, "app", app);
}

static cJSON *session_fields(const struct meter *m, const struct slots_event *ev) {
        cJSON *f = cJSON_CreateObject();

        cJSON_AddStringToObject(f, "slot", m->slot[ev->slot].id);
        cJSON_AddStringToObject(f, "scale", m->slot[ev->slot].scale);
        cJSON_AddStringToObject(f, "user", ev->user);
        cJSON_AddStringToObject(f, "session", ev->session);
        add_dimensions(f, ev->project, ev->app);
        return f;
}

static void add_time(cJSON *o, const char *key, uint64_t real_usec) {
        char ts[40];

        cJSON_AddStringToObject(o, key, plat_format_rfc3339_ms(real_usec, ts, sizeof(ts)));
}

static void viewer_record(struct meter *m, const struct slots_event *ev, const char *viewer, bool join,
                          const char *reason) {
        cJSON *f = session_fields(m, ev);

        cJSON_AddStringToObject(f, "viewer", viewer);
        if (join && ev->role[0])
                cJSON_AddStringToObject(f, "role", ev->role);
        if (reason)
                cJSON_AddStringToObject(f, "reason", reason);
        record(m, join ? "viewer_join" : "viewer_leave", f);
}

static void grace_end(struct meter *m, const struct slots_event *ev, const char *reason) {
        cJSON *f;

        if (!m->slot[ev->slot].in_grace)
                return;
        m->slot[ev->slot].in_grace = false;
        f = session_fields(m, ev);
        cJSON_AddStringToObject(f, "reason", reason);
        record(m, "grace_end", f);
}

/* project: the session's ("" none). */
static void occupancy(struct meter *m, size_t slot, bool occupied, const char *project) {
        m->occupied[slot] = occupied;
        plat_strlcpy(m->occ_project[slot], project, sizeof(m->occ_project[slot]));
        if (m->billing)
                (void)billing_occupancy(m->billing, slot, occupied, project, now_both());
}

/* How long the session ran: by the monotonic clock when it started in this run (a wall-clock step
 * must not bill an hour that did not pass), else by the wall clock (it started before a restart). */
static uint64_t duration_usec(const struct slot_view *sv, const struct slots_event *ev, uint64_t now_real) {
        uint64_t mono = plat_now_mono_usec();

        if (sv->started_mono && !strcmp(sv->session, ev->session) && mono >= sv->started_mono)
                return mono - sv->started_mono;
        return ev->started_real_usec && now_real > ev->started_real_usec ? now_real - ev->started_real_usec
                                                                         : 0;
}

void meter_transition(struct meter *m, const struct slots_event *ev) {
        struct slot_view *sv;
        uint64_t now = plat_now_real_usec();
        cJSON *f;

        if (!m || ev->slot >= m->n_slots)
                return;
        begin_batch(m);
        sv = &m->slot[ev->slot];
        switch (ev->kind) {
        case SLOTS_EV_START:
                occupancy(m, ev->slot, true, ev->project);
                plat_strlcpy(sv->session, ev->session, sizeof(sv->session));
                plat_strlcpy(sv->user, ev->user, sizeof(sv->user));
                sv->ended = false;
                plat_strlcpy(sv->project, ev->project, sizeof(sv->project));
                plat_strlcpy(sv->app, ev->app, sizeof(sv->app));
                sv->started_mono = plat_now_mono_usec();
                f = session_fields(m, ev);
                if (ev->client_ip[0])
                        cJSON_AddStringToObject(f, "client_ip", ev->client_ip);
                add_time(f, "started", ev->started_real_usec ? ev->started_real_usec : now);
                record(m, "session_start", f);
                break;
        case SLOTS_EV_TAKEOVER:
                occupancy(m, ev->slot, true, ev->project);
                break;
        case SLOTS_EV_RESUME:
                occupancy(m, ev->slot, true, ev->project);
                grace_end(m, ev, "resumed");
                break;
        case SLOTS_EV_GRACE:
                sv->in_grace = true;
                f = session_fields(m, ev);
                cJSON_AddStringToObject(f, "reason", ev->reason);
                record(m, "grace_start", f);
                break;
        case SLOTS_EV_ENDING:
                occupancy(m, ev->slot, false, ev->project);
                /* Its bytes become records now, in this batch (written with its state): a minute
                 * record never holds the bytes of two sessions. */
                m->closing = ev;
                if (m->billing)
                        (void)billing_close_slot(m->billing, ev->slot, now_both());
                m->closing = NULL;
                sv->ended = true;
                grace_end(m, ev, ev->reason);
                for (size_t k = 0; k < sv->n_viewers; k++)
                        viewer_record(m, ev, sv->viewers[k], false, "session_end");
                sv->n_viewers = 0;
                f = session_fields(m, ev);
                add_time(f, "started", ev->started_real_usec);
                add_time(f, "ended", now);
                cJSON_AddNumberToObject(f, "duration_s",
                                        (double)(duration_usec(sv, ev, now) / 1000) / 1000.0);
                cJSON_AddStringToObject(f, "reason", ev->reason);
                record(m, "session_end", f);
                break;
        case SLOTS_EV_FREED:
                occupancy(m, ev->slot, false, ev->project);
                if (!strcmp(ev->reason, "reserve_expired"))
                        record(m, "reserve_expired", session_fields(m, ev));
                break;
        case SLOTS_EV_VIEWER_JOIN:
                for (size_t k = 0; k < sv->n_viewers; k++)
                        if (!strcmp(sv->viewers[k], ev->viewer))
                                return; /* a new role, not a new viewer */
                if (sv->n_viewers < SLOTS_VIEWERS_MAX)
                        plat_strlcpy(sv->viewers[sv->n_viewers++], ev->viewer, sizeof(sv->viewers[0]));
                viewer_record(m, ev, ev->viewer, true, NULL);
                break;
        case SLOTS_EV_VIEWER_LEAVE:
                for (size_t k = 0; k < sv->n_viewers; k++)
                        if (!strcmp(sv->viewers[k], ev->viewer)) {
                                memmove(sv->viewers[k], sv->viewers[k + 1],
                                        (sv->n_viewers - k - 1) * sizeof(sv->viewers[0]));
                                sv->n_viewers--;
                                break;
                        }
                viewer_record(m, ev, ev->viewer, false, "left");
                break;
        default:
                break;
        }
}

void meter_push(struct meter *m, size_t slot, const char *session, const char *target, bool started) {
        cJSON *f;

        if (!m || slot >= m->n_slots)
                return;
        f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "slot", m->slot[slot].id);
        cJSON_AddStringToObject(f, "session", session);
        if (!strcmp(m->slot[slot].session, session))
                add_dimensions(f, m->slot[slot].project, m->slot[slot].app);
        cJSON_AddStringToObject(f, "target", target);
        record(m, started ? "push_start" : "push_stop", f);
}

void meter_bytes(struct meter *m, size_t slot, enum sessions_flow flow, uint64_t bytes,
                 uint64_t from_real_usec) {
        struct billing_time to = now_both(), from = to;
        static const enum billing_flow map[SESSIONS_FLOWS] = { BILLING_PLAYER, BILLING_VIEWERS,
                                                               BILLING_PUSH };

        if (!m || !m->billing || flow >= SESSIONS_FLOWS)
                return;
        m->open_dirty = true;
        /* The span's length in monotonic time, from the wall-clock times the report carries. */
        if (from_real_usec < to.real_usec && to.real_usec - from_real_usec < to.mono_usec) {
                from.real_usec = from_real_usec;
                from.mono_usec = to.mono_usec - (to.real_usec - from_real_usec);
        }
        (void)billing_bytes(m->billing, slot, map[flow], bytes, from, to);
}

/* The session a minute's bytes belong to: the one whose end closed it, else the slot's current one
 * (report_bytes needs a session, and the end of each closes its minutes). Bytes of a slot without a
 * session (none in practice) are recorded without session members. */
static void minute_owner(const struct meter *m, const struct billing_minute *mi, cJSON *f) {
        const struct slot_view *sv = &m->slot[mi->slot];
        const struct slots_event *ev = m->closing;

        cJSON_AddStringToObject(f, "scale", sv->scale);
        if (ev && mi->session_end && ev->slot == mi->slot) {
                cJSON_AddStringToObject(f, "session", ev->session);
                cJSON_AddStringToObject(f, "user", ev->user);
                add_dimensions(f, ev->project, ev->app);
        } else if (sv->session[0] && !sv->ended) {
                cJSON_AddStringToObject(f, "session", sv->session);
                cJSON_AddStringToObject(f, "user", sv->user);
                add_dimensions(f, sv->project, sv->app);
        }
}

static void on_billing_record(void *ud, const struct billing_record *r) {
        struct meter *m = ud;
        cJSON *f = cJSON_CreateObject();

        if (r->kind == BILLING_MINUTE) {
                m->open_dirty = true;
                m->stale = m->stale || (m->open_on_disk && m->hooks.write_journal);
                if (f && r->minute.slot < m->n_slots)
                        minute_owner(m, &r->minute, f);
        }
        if (f && billing_record_json(r, f) < 0) {
                cJSON_Delete(f);
                alarm_(m, "records_lost", "metering: out of memory making a %s record",
                       billing_record_type(r));
                return;
        }
        record(m, billing_record_type(r), f);
}

/* ---- durability and delivery ---- */

static void pump(struct meter *m);

static void request_state_write(struct meter *m) {
        if (m->hooks.write_journal)
                m->hooks.write_journal(m->hooks.userdata);
}

/* Owed records that no state write holds yet get one; those it holds already need none (while
 * the disk stays full, every retry would otherwise write slots.state again, in a loop). */
static void request_journal_write(struct meter *m) {
        if (journal_next_seq(m->journal) - 1 > m->journal_written)
                request_state_write(m);
}

/* The owed records into the spool, one fdatasync for them all, then published. Records the spool
 * cannot take stay owed (they are in slots.state, or get there: request_state_write), and new
 * sessions are refused until it takes them. */
static int flush(struct meter *m) {
        struct spool_stats st;
        int r = 0, s;

        sd_event_source_set_enabled(m->sync_src, SD_EVENT_OFF);
        if (!journal_owed(m->journal))
                return 0;
        /* The minute records wait for a state write without their bytes (meter_open_minutes). */
        if (m->stale) {
                request_state_write(m);
                return 0;
        }
        if (!m->spool) {
                request_journal_write(m);
                return -EIO;
        }
        r = journal_to_spool(m->journal, m->spool);
        s = spool_sync(m->spool);
        if (s < 0) {
                alarm_(m, "spool_broken",
                       "metering: the spool could not be synced: %s; it is reopened, and the records it may "
                       "have lost are appended again from the journal",
                       strerror(-s));
                refuse(m, "the metering spool failed to sync (%s)", strerror(-s));
                m->flush_err = s;
                request_journal_write(m);
                return s;
        }
        spool_stats(m->spool, &st);
        journal_synced(m->journal, st.synced_id);
        if (journal_owed(m->journal)) {
                m->flush_err = r < 0 ? r : -ENOSPC;
                refuse(m, "billing records cannot be spooled (%s)", strerror(-m->flush_err));
                if (!m->alarmed_full)
                        alarm_(m, "spool_full",
                               "metering: %zu record(s) cannot be spooled (%s); they are kept with the "
                               "session "
                               "state in slots.state, new sessions are refused until the spool takes them",
                               journal_owed(m->journal), strerror(-m->flush_err));
                m->alarmed_full = true;
                request_journal_write(m);
        } else if (m->flush_err || m->alarmed_full) {
                m->flush_err = 0;
                m->alarmed_full = false;
                if (!m->room_low)
                        m->refusal[0] = '\0';
                log_notice("metering: the spool takes records again; new sessions are admitted");
        }
        pump(m);
        return r;
}

int meter_sync(struct meter *m) {
        if (!m)
                return 0;
        m->in_batch = false;
        /* The records meter_journal handed over are in slots.state now. */
        if (m->journal_given > m->journal_written)
                m->journal_written = m->journal_given;
        if (m->open_handed) {
                /* Written: the open minutes on disk are those handed over, without the bytes of any
                 * record made before. */
                m->open_handed = false;
                m->open_on_disk = m->handed_bytes;
                m->stale = false;
        }
        return flush(m);
}

void meter_abort(struct meter *m) {
        if (m && m->open_handed) {
                /* Not written: handed over again next time; what is on disk is not known now. */
                m->open_handed = false;
                m->open_dirty = m->open_on_disk = true;
        }
        if (m)
                m->journal_given = m->journal_written;
        if (!m || !m->in_batch)
                return;
        memcpy(m->slot, m->saved, m->n_slots * sizeof(m->slot[0]));
        /* Billing saw the batch's occupancy as it happened (a window's peak may keep an instant
         * of it: a failed state write is a disk error, not a business); it is put back now. */
        for (size_t i = 0; i < m->n_slots; i++)
                if (m->occupied[i] != m->saved_occupied[i])
                        occupancy(m, i, m->saved_occupied[i], m->saved_project[i]);
        journal_abort(m->journal);
        m->in_batch = false;
}

int meter_journal(struct meter *m, char **ret_json) {
        int r;

        *ret_json = m ? journal_json(m->journal, &r) : NULL;
        if (!m)
                return 0;
        if (r >= 0)
                m->journal_given = journal_next_seq(m->journal) - 1;
        if (r >= 0 && journal_bytes(m->journal) > JOURNAL_SOFT_MAX_BYTES && !m->refusal[0])
                refuse(m, "%zu KiB of billing records wait for the spool", journal_bytes(m->journal) >> 10);
        return r;
}

int meter_open_minutes(struct meter *m, char **ret_json) {
        char *json = NULL;
        int r;

        *ret_json = NULL;
        if (!m || !m->open_dirty)
                return 0;
        r = m->billing ? billing_carry_json(m->billing, &json) : 0;
        if (r < 0)
                return r;
        m->open_dirty = false;
        m->open_handed = true;
        m->handed_bytes = json != NULL;
        /* Maybe on disk from now on, whatever the write's outcome. */
        m->open_on_disk = m->open_on_disk || json;
        *ret_json = json;
        return 1;
}

static int on_sync(sd_event_source *s, void *ud) {
        (void)s;
        (void)meter_sync(ud);
        return 0;
}

static void pump(struct meter *m) {
        unsigned window;

        if (!m->spool || !m->signer)
                return; /* records stay in the spool until there is a key to sign them */
        /* Without a consumer: nothing while a backoff runs, then one record at a time. */
        window = delivery_window(&m->delivery, plat_now_mono_usec(), m->max_inflight);
        while (m->link && link_get_state(m->link) == LINK_CONNECTED && m->n_inflight < window) {
                _cleanup_free_ void *buf = NULL;
                _cleanup_free_ char *line = NULL;
                size_t len;
                uint64_t id;
                int mid = 0, r;

                r = spool_read_next(m->spool, &buf, &len, &id);
                if (r < 0)
                        return; /* delivery is at the newest record: nothing to sign ahead */
                if (id > m->handed_high)
                        m->handed_high = id;
                r = signing_line(m->signing, id, buf, len, &line);
                if (r < 0) {
                        alarm_(m, "sign_failed", "metering: cannot sign record %" PRIu64 ": %s", id,
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
        pump(m);
}

static uint32_t random_u32(void) {
        uint32_t v;

        if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v))
                v = (uint32_t)random();
        return v;
}

/* PUBACK 0x10: the broker took record `id` and nobody received it. It stays in the spool; the
 * alarm goes out once, when this begins. */
static void no_consumer(struct meter *m, uint64_t id) {
        uint64_t now = plat_now_mono_usec();

        if (delivery_no_consumer(&m->delivery, now, plat_now_real_usec(), random_u32()))
                alarm_(m, "no_consumer",
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
                (void)spool_ack(m->spool, id);
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
                pump(m);
                return;
        }
}

static void recovery_alarms(struct meter *m, const struct spool_recovery *rec);

/* After a failed sync the spool's view of the file may be wrong (the kernel may have dropped the
 * pages): it is closed and opened again, which recovers from what is really on disk. Until that
 * works every second try fails and new sessions stay refused. */
static void reopen_if_broken(struct meter *m) {
        struct spool_options o = { .max_bytes = m->spool_max_bytes };
        struct spool_recovery rec;
        char msg[METER_MSG_MAX];
        int r;

        if (m->spool) {
                struct spool_stats st;

                spool_stats(m->spool, &st);
                if (!st.broken)
                        return;
                (void)signing_set_spool(m->signing, NULL);
                spool_close(m->spool); /* its lock must go before the directory is opened again */
                m->spool = NULL;
        }
        r = spool_open(m->state_fd, m->state_dir, &o, &m->spool, &rec, msg, sizeof(msg));
        if (r < 0) {
                spool_close(m->spool);
                m->spool = NULL;
                refuse(m, "the metering spool cannot be opened again: %s", msg);
                if (!m->reopen_alarmed)
                        alarm_(m, "spool_broken",
                               "metering: the spool cannot be opened again: %s; tried every second, new "
                               "sessions "
                               "are refused meanwhile",
                               msg);
                m->reopen_alarmed = true;
                return;
        }
        recovery_alarms(m, &rec);
        (void)signing_set_spool(m->signing, m->spool);
        m->reopen_alarmed = false;
        m->n_inflight = 0;
        log_notice("metering: spool opened again after a failed sync (%" PRIu64
                   " records pending); the journal's records it lacks are appended again",
                   rec.pending);
        /* The chain goes on from the journal: what the spool lost comes back byte for byte. */
        (void)flush(m);
}

/* Zero-fills the next spool segment ahead of need; says so once when that stops working (the disk
 * or the file size limit is full: segments then grow with each append, and syncs cost more) and
 * once when it works again. */
static void prepare_next(struct meter *m) {
        int r = spool_prepare(m->spool);

        if (r < 0 && r != m->prepare_err)
                log_warn("metering: the next spool segment cannot be preallocated: %s; segments grow as "
                         "records come (each sync also writes the file size); tried again in a minute",
                         strerror(-r));
        else if (r > 0 && m->prepare_err)
                log_notice("metering: spool segments are preallocated again");
        if (r != 0)
                m->prepare_err = r < 0 ? r : 0;
}

/* After a start nothing in memory says whether the spool took its last record: the disk does.
 * False, and new sessions refused, when the spool has less than ROOM_MIN of room. */
static bool has_room(struct meter *m) {
        uint64_t room = 0;
        int r = spool_room_at_least(m->spool, ROOM_MIN, &room);

        if (r == 0) {
                /* Acked segments may still be on disk, waiting for a cursor flush. */
                (void)spool_flush_cursor(m->spool);
                r = spool_room_at_least(m->spool, ROOM_MIN, &room);
        }
        if (r > 0)
                return true;
        refuse(m,
               "billing records cannot be spooled (%s: the spool has room for %" PRIu64
               " KiB of records, new sessions need %d KiB)",
               strerror(r < 0 ? -r : ENOSPC), room >> 10, ROOM_MIN >> 10);
        return false;
}

/* Refusing for want of room (at start, or seen before an op that opens billing): measured again
 * each second, until there is room. */
static void check_room(struct meter *m) {
        if (!m->room_low || !m->spool || !has_room(m))
                return;
        m->room_low = false;
        if (journal_owed(m->journal))
                return; /* refused until they are in the spool (flush) */
        m->refusal[0] = '\0';
        m->alarmed_full = false;
        log_notice("metering: the spool has room again; new sessions are admitted");
}

/* Every second: close billing windows, retry what waits, write the ack cursor, prepare the next
 * spool segment, empty the signature cache once all it holds is acked. */
static int on_timer(sd_event_source *s, uint64_t usec, void *ud) {
        struct meter *m = ud;

        sd_event_source_set_time(s, usec + TIMER_USEC);
        if (m->billing)
                (void)billing_tick(m->billing, now_both());
        reopen_if_broken(m);
        if (journal_owed(m->journal))
                (void)flush(m);
        if (m->spool) {
                struct spool_stats st;

                (void)spool_flush_cursor(m->spool);
                /* The next segment zero-filled now, not inside a commit (spool.h). */
                prepare_next(m);
                check_room(m);
                spool_stats(m->spool, &st);
                signing_acked(m->signing, st.acked);
        }
        pump(m);
        return 0;
}

/* ---- construction ---- */

/* seq and prev continue from the newest record: the journal's owed ones (those of slots.state
 * the spool lacks), else the spool's newest (the chain survives restarts). */
static int restore_chain(struct meter *m, const struct slots *slots, char *msg, size_t msg_len) {
        _cleanup_free_ void *buf = NULL;
        char prev[PLAT_SHA256_HEX_LEN + 1], why[METER_MSG_MAX];
        uint8_t digest[PLAT_SHA256_LEN];
        size_t len;
        uint64_t id;
        int r;

        memset(prev, '0', PLAT_SHA256_HEX_LEN);
        prev[PLAT_SHA256_HEX_LEN] = '\0';
        r = spool_last(m->spool, &buf, &len, &id);
        if (r < 0 && r != -ENOENT)
                return snprintf(msg, msg_len, "cannot read the spool's newest record: %s", strerror(-r)), r;
        if (r >= 0) {
                plat_sha256(buf, len, digest);
                plat_sha256_hex(digest, prev);
        }
        r = journal_restore(m->journal, slots ? slots_journal(slots) : NULL, spool_next_id(m->spool), why,
                            sizeof(why));
        if (r < 0) {
                /* Not refused: the state written with it was read, and the spool is whole. */
                alarm_(m, "records_lost",
                       "metering: the journal of %s/slots.state cannot be read (%s); the records "
                       "it owed the spool are lost",
                       m->state_dir, why);
        } else if (r > 0) {
                log_notice("metering: %s/slots.state: %s; they are appended first", m->state_dir, why);
        }
        journal_continue(m->journal, spool_next_id(m->spool), prev);
        return 0;
}

/* The bytes the earlier run had counted into minutes it never made into records (slots.state's
 * open_minutes) go into this run's minutes: acknowledged bytes are billed once, after any crash. */
static void carry_in(struct meter *m, const struct slots *slots) {
        const char *json = slots ? slots_extra(slots, SLOTS_EXTRA_OPEN_MINUTES) : NULL;
        char why[METER_MSG_MAX] = "";
        int r;

        m->open_on_disk = json != NULL;
        if (!json)
                return;
        r = billing_carry_in(m->billing, json, why, sizeof(why));
        if (r < 0)
                alarm_(m, "records_lost",
                       "metering: the open minutes of %s/slots.state cannot be read (%s); the bytes they "
                       "held are lost",
                       m->state_dir, why);
        else if (r > 0)
                log_warn("metering: %s/slots.state: %s", m->state_dir, why);
}

static void recovery_alarms(struct meter *m, const struct spool_recovery *rec) {
        if (spool_recovery_alarm(rec))
                alarm_(m, "spool_recovered",
                       "metering spool recovered with damage: %u corrupt region(s) quarantined, %" PRIu64
                       " record id(s) lost (%" PRIu64 "..%" PRIu64 "): %s",
                       rec->quarantined, rec->lost_ids, rec->lost_first, rec->lost_last, rec->msg);
        else if (rec->torn || rec->warnings || rec->cursor_reset)
                log_warn("metering spool: %s", rec->msg[0] ? rec->msg : "recovered (torn tail cut)");
}

int meter_new(sd_event *e, const struct cfg *cfg, const struct slots *slots, const struct meter_hooks *h,
              struct meter **ret, char *msg, size_t msg_len) {
        struct spool_options so = { .max_bytes = (uint64_t)cfg->metering.spool_max_mb << 20 };
        const char *ids[SLOTS_MAX], *scales[SLOTS_MAX];
        struct billing_config bc = { 0 };
        struct spool_recovery rec;
        const char *key = cfg->metering.key_file ? cfg->metering.key_file : cfg->mqtt.key_file;
        const char *cert = cfg->metering.key_file ? cfg->metering.cert_file : cfg->mqtt.cert_file;
        struct billing_time now = now_both();
        char why[METER_MSG_MAX];
        struct meter *m;
        uint64_t t;
        int r;

        if (cfg->n_slots > SLOTS_MAX)
                return -EINVAL;
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->event = sd_event_ref(e);
        m->hooks = *h;
        m->state_fd = -1;
        m->node = strdup(cfg->node_id);
        m->region = strdup(cfg->node_region);
        m->state_dir = strdup(cfg->state_dir);
        m->max_inflight = cfg->metering.inflight;
        m->inflight = calloc(m->max_inflight, sizeof(*m->inflight));
        if (!m->node || !m->region || !m->state_dir || !m->inflight) {
                r = -ENOMEM;
                goto fail;
        }
        m->n_slots = cfg->n_slots;
        for (size_t i = 0; i < cfg->n_slots; i++) {
                plat_strlcpy(m->slot[i].id, cfg->slots[i].id, sizeof(m->slot[i].id));
                plat_strlcpy(m->slot[i].scale, cfg->slots[i].scale, sizeof(m->slot[i].scale));
                ids[i] = m->slot[i].id;
                scales[i] = m->slot[i].scale;
        }
        /* Made here as well as by the session service: a node without slots has none, and its
         * spool still needs the directory. */
        if (mkdir(cfg->state_dir, 0700) < 0 && errno != EEXIST) {
                r = -errno;
                snprintf(msg, msg_len, "cannot make the state dir %s: %s", cfg->state_dir, strerror(-r));
                goto fail;
        }
        m->state_fd = plat_open_dir(cfg->state_dir);
        if (m->state_fd < 0) {
                r = m->state_fd;
                snprintf(msg, msg_len, "cannot open the state dir %s: %s", cfg->state_dir, strerror(-r));
                goto fail;
        }
        m->spool_max_bytes = so.max_bytes;
        r = spool_open(m->state_fd, cfg->state_dir, &so, &m->spool, &rec, msg, msg_len);
        if (r < 0)
                goto fail;
        recovery_alarms(m, &rec);
        r = journal_new(&m->journal);
        if (r >= 0)
                r = restore_chain(m, slots, msg, msg_len);
        if (r < 0)
                goto fail;
        m->room_low = !has_room(m);
        if (m->room_low)
                alarm_(m, "spool_full", "metering: at start, %s; new sessions are refused until it has room",
                       m->refusal);
        /* Without a key records are still made and kept: they wait in the spool (and new sessions
         * are refused only once it is full) until a key is configured and the agent reloaded. */
        if (!key)
                alarm_(m, "no_key",
                       "metering: no signing key (set mqtt.tls.key_file or metering.key_file); records are "
                       "kept in "
                       "the spool, unpublished, until there is one");
        else if (plat_signer_load(key, cert, &m->signer, why, sizeof(why)) < 0)
                alarm_(m, "no_key",
                       "metering: %s; records are kept in the spool, unpublished, until the key is fixed "
                       "and the "
                       "agent reloaded",
                       why);
        r = signing_new(e, m->signer, m->state_fd, cfg->state_dir, &m->signing);
        if (r >= 0)
                r = signing_set_spool(m->signing, m->spool);
        if (r < 0) {
                snprintf(msg, msg_len, "cannot set up metering signatures: %s", strerror(-r));
                goto fail;
        }
        if (cfg->n_slots) {
                billing_config_default(&bc);
                bc.n_slots = cfg->n_slots;
                bc.slot_ids = ids;
                bc.slot_scales = scales;
                bc.window_usec = cfg->metering.window_s * 1000000ULL;
                bc.late_usec = cfg->metering.late_s * 1000000ULL;
                bc.emit = on_billing_record;
                bc.userdata = m;
                r = billing_new(&bc, now, &m->billing, msg, msg_len);
                if (r < 0)
                        goto fail;
                for (size_t i = 0; slots && i < slots_count(slots) && i < m->n_slots; i++) {
                        struct slots_info info;

                        slots_get(slots, i, &info);
                        m->slot[i].in_grace = info.state == SLOTS_GRACE;
                        /* The held session's dimensions, for its push records. */
                        plat_strlcpy(m->slot[i].session, info.session, sizeof(m->slot[i].session));
                        plat_strlcpy(m->slot[i].user, info.user, sizeof(m->slot[i].user));
                        m->slot[i].ended = info.state == SLOTS_ENDING;
                        plat_strlcpy(m->slot[i].project, info.project, sizeof(m->slot[i].project));
                        plat_strlcpy(m->slot[i].app, info.app, sizeof(m->slot[i].app));
                        if (info.state == SLOTS_ACTIVE || info.state == SLOTS_GRACE)
                                occupancy(m, i, true, info.project ? info.project : "");
                        for (size_t k = 0; k < info.n_viewers && k < SLOTS_VIEWERS_MAX; k++) {
                                const char *user, *role;

                                slots_get_viewer(slots, i, k, &user, &role);
                                plat_strlcpy(m->slot[i].viewers[m->slot[i].n_viewers++], user,
                                             sizeof(m->slot[i].viewers[0]));
                        }
                }
                carry_in(m, slots);
        }
        sd_event_now(e, CLOCK_MONOTONIC, &t);
        r = sd_event_add_defer(e, &m->sync_src, on_sync, m);
        if (r >= 0)
                r = sd_event_source_set_priority(m->sync_src, SD_EVENT_PRIORITY_IDLE);
        if (r >= 0)
                r = sd_event_source_set_enabled(m->sync_src, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_time(e, &m->timer, CLOCK_MONOTONIC, t + TIMER_USEC, 100000, on_timer, m);
        if (r >= 0)
                r = sd_event_source_set_enabled(m->timer, SD_EVENT_ON);
        if (r < 0) {
                snprintf(msg, msg_len, "cannot set up the metering timers: %s", strerror(-r));
                goto fail;
        }
        /* What slots.state owed the spool goes in first. */
        (void)flush(m);
        *ret = m;
        return 0;
fail:
        meter_free(m);
        return r;
}

void meter_stop(struct meter *m) {
        if (!m)
                return;
        if (m->billing) {
                (void)billing_flush(m->billing, now_both());
                billing_free(m->billing);
                m->billing = NULL;
                m->open_dirty = true; /* none open now: the next state write says so */
        }
        /* And publishes what the link still takes; the minute records wait for the state write that
         * drops their bytes from the open minutes (the caller writes the state next). */
        (void)meter_sync(m);
}

void meter_free(struct meter *m) {
        if (!m)
                return;
        if (m->billing)
                (void)billing_flush(m->billing, now_both());
        if (m->stale && journal_owed(m->journal))
                log_warn("metering: minute records are spooled while %s/slots.state still holds their bytes "
                         "as open (the state could not be written): the next start counts those bytes again",
                         m->state_dir);
        if (m->spool && m->journal) {
                if (journal_owed(m->journal) && journal_to_spool(m->journal, m->spool) >= 0 &&
                    spool_sync(m->spool) >= 0) {
                        struct spool_stats st;

                        spool_stats(m->spool, &st);
                        journal_synced(m->journal, st.synced_id);
                }
                (void)spool_flush_cursor(m->spool);
        }
        if (m->journal && journal_owed(m->journal))
                log_warn("metering: %zu record(s) could not be spooled before the meter stopped; those "
                         "written "
                         "with the session state (slots.state) are appended at the next start",
                         journal_owed(m->journal));
        journal_free(m->journal);
        billing_free(m->billing);
        signing_free(m->signing); /* its spool reader first */
        spool_close(m->spool);
        plat_signer_free(m->signer);
        sd_event_source_disable_unref(m->sync_src);
        sd_event_source_disable_unref(m->timer);
        if (m->state_fd >= 0)
                close(m->state_fd);
        sd_event_unref(m->event);
        free(m->inflight);
        free(m->node);
        free(m->region);
        free(m->state_dir);
        free(m);
}

const char *meter_refusal(const struct meter *m) {
        return m && m->refusal[0] ? m->refusal : NULL;
}

const char *meter_admission(struct meter *m) {
        if (!m || m->refusal[0] || !m->spool)
                return meter_refusal(m);
        /* The same rule as at start, before every op that opens billing: a disk that filled up
         * since the last append is seen before the first record fails, not after. */
        if (!has_room(m)) {
                m->room_low = true;
                alarm_(m, "spool_full", "metering: %s; new sessions are refused until it has room",
                       m->refusal);
                m->alarmed_full = true;
        }
        return meter_refusal(m);
}

void meter_backlog(const struct meter *m, uint64_t *ret_records, uint64_t *ret_bytes) {
        struct spool_stats st = { 0 };

        if (m->spool)
                spool_stats(m->spool, &st);
        *ret_records = st.pending;
        *ret_bytes = st.used; /* the records' bytes: preallocated zeros are no backlog */
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
        if (m->signing)
                cJSON_AddItemToObject(o, "signatures", signing_status_json(m->signing));
        if (m->refusal[0])
                cJSON_AddStringToObject(o, "refusing_sessions", m->refusal);
        if (m->last_error[0])
                cJSON_AddStringToObject(o, "last_error", m->last_error);
        return o;
}
