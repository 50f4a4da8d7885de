/* meter_records.c: the meter's records: from a batch's session transitions (before its state
 * write), push targets, and billing's windows and minutes; each made whole into the journal. */
#include "meter_internal.h"

#include "jws.h"
#include "strutil.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- making records ---- */

void meter__refuse(struct meter *m, const char *fmt, ...) {
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
                        meter__alarm(m, "records_lost",
                                     "metering: a %s record could not be made (%s); it is lost", type,
                                     r == -ENOSPC ? "too many records wait for the spool" : strerror(-r));
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
        for (size_t i = 0; i < m->n_slots; i++) {
                struct meter_slot *ms = meter__slot(m, i);

                const char *project = "";

                ms->saved = ms->view;
                ms->saved_occupied = m->billing && billing_occupied(m->billing, i, &project);
                plat_strlcpy(ms->saved_project, project, sizeof(ms->saved_project));
        }
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

        const struct slot_view *sv = &meter__slot(m, ev->slot)->view;

        cJSON_AddStringToObject(f, "slot", sv->id);
        cJSON_AddStringToObject(f, "scale", sv->scale);
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
        struct slot_view *sv = &meter__slot(m, ev->slot)->view;
        cJSON *f;

        if (!sv->in_grace)
                return;
        sv->in_grace = false;
        f = session_fields(m, ev);
        cJSON_AddStringToObject(f, "reason", reason);
        record(m, "grace_end", f);
}

/* project: the session's ("" none). */
void meter__occupancy(struct meter *m, size_t slot, bool occupied, const char *project) {
        if (m->billing)
                (void)meter__checked(m, "billing_occupancy",
                                     billing_occupancy(m->billing, slot, occupied, project, meter__now()));
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

/* The ending session's stream quality, when the slot's driver listed stream sessions for it and the
 * summary is that session's (summed since its start, in this run of the agent). */
static void add_streams(cJSON *f, const struct meter *m, const struct slots_event *ev) {
        const struct meter_slot *ms = meter__slot(m, ev->slot);
        cJSON *s;

        if (strcmp(ms->view.session, ev->session) != 0)
                return;
        s = streamsum_json(&ms->streams);
        if (s && !cJSON_AddItemToObject(f, "streams", s))
                cJSON_Delete(s);
}

void meter_streams(struct meter *m, size_t slot, const struct usage_slot *us, bool gpus_stale) {
        struct meter_slot *ms;

        if (!m || slot >= m->n_slots)
                return;
        ms = meter__slot(m, slot);
        if (ms->view.session[0] && !ms->view.ended)
                streamsum_add(&ms->streams, us, gpus_stale);
}

void meter_transition(struct meter *m, const struct slots_event *ev) {
        struct slot_view *sv;
        uint64_t now = plat_now_real_usec();
        cJSON *f;

        if (!m || ev->slot >= m->n_slots)
                return;
        begin_batch(m);
        sv = &meter__slot(m, ev->slot)->view;
        switch (ev->kind) {
        case SLOTS_EV_START:
                meter__occupancy(m, ev->slot, true, ev->project);
                plat_strlcpy(sv->session, ev->session, sizeof(sv->session));
                plat_strlcpy(sv->user, ev->user, sizeof(sv->user));
                sv->ended = false;
                plat_strlcpy(sv->project, ev->project, sizeof(sv->project));
                plat_strlcpy(sv->app, ev->app, sizeof(sv->app));
                sv->started_mono = plat_now_mono_usec();
                streamsum_reset(&meter__slot(m, ev->slot)->streams);
                f = session_fields(m, ev);
                if (ev->client_ip[0])
                        cJSON_AddStringToObject(f, "client_ip", ev->client_ip);
                add_time(f, "started", ev->started_real_usec ? ev->started_real_usec : now);
                record(m, "session_start", f);
                break;
        case SLOTS_EV_TAKEOVER:
                meter__occupancy(m, ev->slot, true, ev->project);
                break;
        case SLOTS_EV_RESUME:
                meter__occupancy(m, ev->slot, true, ev->project);
                grace_end(m, ev, "resumed");
                break;
        case SLOTS_EV_GRACE:
                sv->in_grace = true;
                f = session_fields(m, ev);
                cJSON_AddStringToObject(f, "reason", ev->reason);
                record(m, "grace_start", f);
                break;
        case SLOTS_EV_ENDING:
                meter__occupancy(m, ev->slot, false, ev->project);
                /* Its bytes become records now, in this batch (written with its state): a minute
                 * record never holds the bytes of two sessions. */
                m->closing = ev;
                if (m->billing)
                        (void)meter__checked(m, "billing_close_slot",
                                             billing_close_slot(m->billing, ev->slot, meter__now()));
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
                add_streams(f, m, ev);
                record(m, "session_end", f);
                break;
        case SLOTS_EV_FREED:
                meter__occupancy(m, ev->slot, false, ev->project);
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
        const struct slot_view *sv;
        cJSON *f;

        if (!m || slot >= m->n_slots)
                return;
        sv = &meter__slot(m, slot)->view;
        f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "slot", sv->id);
        cJSON_AddStringToObject(f, "session", session);
        if (!strcmp(sv->session, session))
                add_dimensions(f, sv->project, sv->app);
        cJSON_AddStringToObject(f, "target", target);
        record(m, started ? "push_start" : "push_stop", f);
}

/* A report's span from from_real_usec until now, its length in monotonic time. */
static void report_span(uint64_t from_real_usec, struct billing_time *ret_from,
                        struct billing_time *ret_to) {
        struct billing_time to = meter__now(), from = to;

        if (from_real_usec < to.real_usec && to.real_usec - from_real_usec < to.mono_usec) {
                from.real_usec = from_real_usec;
                from.mono_usec = to.mono_usec - (to.real_usec - from_real_usec);
        }
        *ret_from = from;
        *ret_to = to;
}

void meter_bytes(struct meter *m, size_t slot, enum sessions_flow flow, uint64_t bytes,
                 uint64_t from_real_usec) {
        static const enum billing_flow map[SESSIONS_FLOWS] = { BILLING_PLAYER, BILLING_VIEWERS,
                                                               BILLING_PUSH };
        struct billing_time from, to;

        if (!m || !m->billing || flow >= SESSIONS_FLOWS)
                return;
        m->open_dirty = true;
        report_span(from_real_usec, &from, &to);
        (void)meter__checked(m, "billing_bytes",
                             billing_bytes(m->billing, slot, map[flow], bytes, from, to));
}

/* A session reports at most SESSIONS_PEERS_MAX peers: billing keeps them all apart. */
_Static_assert(SESSIONS_PEERS_MAX <= BILLING_TARGETS_MAX, "billing keeps fewer push targets apart");
_Static_assert(SLOTS_USER_MAX <= BILLING_TARGET_MAX, "billing refuses report_bytes' push target ids");

void meter_push_bytes(struct meter *m, size_t slot, const char *target, uint64_t bytes,
                      uint64_t from_real_usec) {
        struct billing_time from, to;

        if (!m || !m->billing)
                return;
        m->open_dirty = true;
        report_span(from_real_usec, &from, &to);
        /* report_bytes checked the name as billing does (flows.c): nothing can be refused here. */
        (void)meter__checked(m, "billing_push_bytes",
                             billing_push_bytes(m->billing, slot, target, bytes, from, to, NULL, 0));
}

/* The session a minute's bytes belong to: the one whose end closed it, else the slot's current one
 * (report_bytes needs a session, and the end of each closes its minutes). Bytes of a slot without a
 * session (none in practice) are recorded without session members. */
static void minute_owner(const struct meter *m, const struct billing_minute *mi, cJSON *f) {
        const struct slot_view *sv = &meter__slot(m, mi->slot)->view;
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

void meter__on_billing_record(void *ud, const struct billing_record *r) {
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
                meter__alarm(m, "records_lost", "metering: out of memory making a %s record",
                             billing_record_type(r));
                return;
        }
        record(m, billing_record_type(r), f);
}
