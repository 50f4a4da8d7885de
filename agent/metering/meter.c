/* meter.c: billing-grade records, durable before anything acknowledges them: the journal
 * (records owed, written with the session state) into the spool, room for records, the timer,
 * construction. The records themselves are made in meter_records.c, delivered in
 * meter_delivery.c (meter_internal.h). */
#include "meter_internal.h"

#include "cleanup.h"
#include "fileio.h"
#include "log.h"
#include "strutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

void meter__alarm(struct meter *m, const char *what, const char *fmt, ...) {
        char msg[METER_MSG_MAX];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        plat_strlcpy(m->last_error, msg, sizeof(m->last_error));
        if (m->hooks.alarm)
                m->hooks.alarm(what, msg, m->hooks.userdata);
}

int meter__checked(struct meter *m, const char *call, int r) {
        if (r >= 0) {
                if (m->failed_call == call)
                        m->failed_call = NULL;
                return r;
        }
        if (m->failed_call == call && m->failed_err == r)
                return r;
        m->failed_call = call;
        m->failed_err = r;
        log_err("metering: %s failed: %s; billing figures may be wrong from here on (a bug: please report "
                "it with this line)",
                call, strerror(-r));
        meter__alarm(m, "internal_error", "metering: %s failed: %s", call, strerror(-r));
        return r;
}

void meter__flush_cursor(struct meter *m) {
        int r = spool_flush_cursor(m->spool);

        if (r < 0 && r != m->cursor_err)
                log_warn("metering: the spool's ack cursor cannot be written: %s; records acknowledged "
                         "since are "
                         "offered again after a restart (duplicates by seq, nothing lost), and acknowledged "
                         "segments stay on disk until it can",
                         strerror(-r));
        else if (r >= 0 && m->cursor_err)
                log_notice("metering: the spool's ack cursor is written again");
        m->cursor_err = r < 0 ? r : 0;
}

/* ---- durability and delivery ---- */

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

static int synced(struct meter *m, int appended, bool all, int s);

/* The owed records into the spool, one fdatasync for them all, then published. Records the spool
 * cannot take stay owed (they are in slots.state, or get there: request_state_write), and new
 * sessions are refused until it takes them. With the worker, the fdatasync runs off the loop and
 * on_synced finishes; while one runs, the records wait for it (inline: the caller needs them
 * synced now, the worker's first). */
static int flush_as(struct meter *m, bool now) {
        struct spool_sync_ticket t;
        int r, b, err;
        bool all;

        sd_event_source_set_enabled(m->sync_src, SD_EVENT_OFF);
        if (m->syncer && plat_syncer_busy(m->syncer)) {
                if (!now) {
                        m->sync_again = true;
                        return 0;
                }
                (void)plat_syncer_collect(m->syncer, true, &err);
                if (m->spool && m->ticket_gen == m->spool_gen)
                        (void)synced(m, m->ticket_append, m->ticket_all,
                                     spool_sync_end(m->spool, &m->ticket, err));
        }
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
        /* Every owed record is in the spool now (the spool's ids are the records' seqs)? */
        all = spool_next_id(m->spool) >= journal_next_seq(m->journal);
        if (!m->syncer || now)
                return synced(m, r, all, spool_sync(m->spool));
        b = spool_sync_begin(m->spool, &t);
        if (b <= 0)
                return synced(m, r, all, b);
        m->ticket = t;
        m->ticket_gen = m->spool_gen;
        m->ticket_append = r;
        m->ticket_all = all;
        m->sync_again = false;
        (void)plat_syncer_start(m->syncer, t.fd); /* not busy: cannot fail */
        return r;
}

static int flush(struct meter *m) {
        return flush_as(m, false);
}

/* The worker's fdatasync ended: its records are durable in the spool (or the spool is broken), the
 * journal lets them go, and the records made meanwhile go next. */
static int on_synced(sd_event_source *src, int fd, uint32_t revents, void *ud) {
        struct meter *m = ud;
        int err;

        (void)src, (void)fd, (void)revents;
        if (plat_syncer_collect(m->syncer, false, &err) <= 0)
                return 0;
        if (m->spool && m->ticket_gen == m->spool_gen)
                (void)synced(m, m->ticket_append, m->ticket_all, spool_sync_end(m->spool, &m->ticket, err));
        if (m->sync_again || m->ticket_gen != m->spool_gen)
                (void)flush(m);
        return 0;
}

/* After the spool's sync (s: its result), with appended the append's and all whether it took every
 * record owed then: the journal lets the durable records go, refusal and alarms follow what the
 * spool could not take (records made since wait for the next flush), the link gets what is new. */
static int synced(struct meter *m, int appended, bool all, int s) {
        struct spool_stats st;
        int r = appended;

        if (s < 0) {
                meter__alarm(m, "spool_broken",
                             "metering: the spool could not be synced: %s; it is reopened, and the records "
                             "it may "
                             "have lost are appended again from the journal",
                             strerror(-s));
                meter__refuse(m, "the metering spool failed to sync (%s)", strerror(-s));
                m->flush_err = s;
                request_journal_write(m);
                return s;
        }
        spool_stats(m->spool, &st);
        journal_synced(m->journal, st.synced_id);
        if (!all) {
                m->flush_err = r < 0 ? r : -ENOSPC;
                meter__refuse(m, "billing records cannot be spooled (%s)", strerror(-m->flush_err));
                if (!m->alarmed_full)
                        meter__alarm(
                                m, "spool_full",
                                "metering: %zu record(s) cannot be spooled (%s); they are kept with the "
                                "session "
                                "state in slots.state, new sessions are refused until the spool takes them",
                                journal_owed(m->journal), strerror(-m->flush_err));
                m->alarmed_full = true;
                request_journal_write(m);
        } else if (m->flush_err || m->alarmed_full ||
                   (m->admit_on_sync && journal_bytes(m->journal) <= JOURNAL_SOFT_MAX_BYTES)) {
                /* Said for what ended: a spool that failed, or records that waited for it. */
                const char *what = m->flush_err || m->alarmed_full
                                           ? "the spool takes records again"
                                           : "the billing records that waited are in the spool";

                m->flush_err = 0;
                m->alarmed_full = false;
                m->admit_on_sync = false;
                if (m->room_low)
                        log_notice("metering: %s; new sessions stay refused: %s", what, m->refusal);
                else {
                        m->refusal[0] = '\0';
                        log_notice("metering: %s; new sessions are admitted", what);
                }
        }
        meter__pump(m);
        return r;
}

static int sync_as(struct meter *m, bool now) {
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
        return flush_as(m, now);
}

int meter_sync(struct meter *m) {
        return sync_as(m, false);
}

int meter_sync_wait(struct meter *m) {
        return sync_as(m, true);
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
        /* Billing saw the batch's occupancy as it happened (a window's peak may keep an instant
         * of it: a failed state write is a disk error, not a business); it is put back now. */
        for (size_t i = 0; i < m->n_slots; i++) {
                struct meter_slot *ms = meter__slot(m, i);
                const char *project = "";

                ms->view = ms->saved;
                if (m->billing && billing_occupied(m->billing, i, &project) != ms->saved_occupied)
                        meter__occupancy(m, i, ms->saved_occupied, ms->saved_project);
        }
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
        if (r >= 0 && journal_bytes(m->journal) > JOURNAL_SOFT_MAX_BYTES && !m->refusal[0]) {
                meter__refuse(m, "%zu KiB of billing records wait for the spool",
                              journal_bytes(m->journal) >> 10);
                m->admit_on_sync = true;
        }
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
                m->spool_gen++; /* a sync in flight was for the old one */
        }
        r = spool_open(m->state_fd, m->state_dir, &o, &m->spool, &rec, msg, sizeof(msg));
        if (r < 0) {
                spool_close(m->spool);
                m->spool = NULL;
                meter__refuse(m, "the metering spool cannot be opened again: %s", msg);
                if (!m->reopen_alarmed)
                        meter__alarm(
                                m, "spool_broken",
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
                meter__flush_cursor(m);
                r = spool_room_at_least(m->spool, ROOM_MIN, &room);
        }
        if (r > 0)
                return true;
        meter__refuse(m,
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
        if (journal_owed(m->journal)) {
                /* Refused until they are in the spool: the sync that takes them (on the worker, it
                 * may still run) lifts the refusal. */
                m->admit_on_sync = true;
                return;
        }
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
                (void)meter__checked(m, "billing_tick", billing_tick(m->billing, meter__now()));
        meter__clock_tick(m);
        reopen_if_broken(m);
        if (journal_owed(m->journal))
                (void)flush(m);
        if (m->spool) {
                struct spool_stats st;

                meter__flush_cursor(m);
                /* The next segment zero-filled now, not inside a commit (spool.h). */
                prepare_next(m);
                check_room(m);
                spool_stats(m->spool, &st);
                signing_acked(m->signing, st.acked);
        }
        meter__pump(m);
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
                meter__alarm(m, "records_lost",
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
                meter__alarm(
                        m, "records_lost",
                        "metering: the open minutes of %s/slots.state cannot be read (%s); the bytes they "
                        "held are lost",
                        m->state_dir, why);
        else if (r > 0)
                log_warn("metering: %s/slots.state: %s", m->state_dir, why);
}

static void recovery_alarms(struct meter *m, const struct spool_recovery *rec) {
        if (spool_recovery_alarm(rec))
                meter__alarm(
                        m, "spool_recovered",
                        "metering spool recovered with damage: %u corrupt region(s) quarantined, %" PRIu64
                        " record id(s) lost (%" PRIu64 "..%" PRIu64 "): %s",
                        rec->quarantined, rec->lost_ids, rec->lost_first, rec->lost_last, rec->msg);
        else if (rec->torn || rec->warnings || rec->cursor_reset)
                log_warn("metering spool: %s", rec->msg[0] ? rec->msg : "recovered (torn tail cut)");
}

/* Each slot's part, made where the slot has none yet; the view and occupancy start over, the
 * streams go on (see struct meter_slot). */
static int take_slots(struct meter *m, struct slot_table *table, const char **ids, const char **scales) {
        m->n_slots = table->n;
        for (size_t i = 0; i < table->n; i++) {
                struct slot *sl = slot_at(table, i);
                struct slot_view *v;

                if (!sl->meter && !(sl->meter = calloc(1, sizeof(*sl->meter))))
                        return -ENOMEM;
                m->slot[i] = sl;
                v = &sl->meter->view;
                *v = (struct slot_view){ 0 };
                plat_strlcpy(v->id, sl->id, sizeof(v->id));
                plat_strlcpy(v->scale, sl->cfg->scale, sizeof(v->scale));
                ids[i] = v->id;
                scales[i] = v->scale;
        }
        return 0;
}

int meter_new(sd_event *e, const struct cfg *cfg, struct slot_table *table, const struct slots *slots,
              const struct meter_hooks *h, struct meter **ret, char *msg, size_t msg_len) {
        struct spool_options so = { .max_bytes = (uint64_t)cfg->metering.spool_max_mb << 20 };
        const char *ids[SLOTS_MAX], *scales[SLOTS_MAX];
        struct billing_config bc = { 0 };
        struct spool_recovery rec;
        const char *key = cfg->metering.key_file ? cfg->metering.key_file : cfg->mqtt.key_file;
        const char *cert = cfg->metering.key_file ? cfg->metering.cert_file : cfg->mqtt.cert_file;
        struct billing_time now = meter__now();
        char why[METER_MSG_MAX];
        struct meter *m;
        uint64_t t;
        int r, no_worker;

        if (table->n != cfg->n_slots)
                return plat_errf(msg, msg_len, "the slot table has %zu slots, the config %zu", table->n,
                                 cfg->n_slots),
                       -EINVAL;
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
        pace_init(&m->pace, cfg->metering.redeliver_per_s, cfg->metering.redeliver_per_s / 10 + 1);
        m->inflight = calloc(m->max_inflight, sizeof(*m->inflight));
        if (!m->node || !m->region || !m->state_dir || !m->inflight) {
                r = -ENOMEM;
                goto fail;
        }
        r = take_slots(m, table, ids, scales);
        if (r < 0) {
                plat_errf(msg, msg_len, "out of memory");
                goto fail;
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
                meter__alarm(m, "spool_full",
                             "metering: at start, %s; new sessions are refused until it has room",
                             m->refusal);
        /* Without a key records are still made and kept: they wait in the spool (and new sessions
         * are refused only once it is full) until a key is configured and the agent reloaded. */
        if (!key)
                meter__alarm(
                        m, "no_key",
                        "metering: no signing key (set mqtt.tls.key_file or metering.key_file); records are "
                        "kept in "
                        "the spool, unpublished, until there is one");
        else if (plat_signer_load(key, cert, &m->signer, why, sizeof(why)) < 0)
                meter__alarm(
                        m, "no_key",
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
                bc.emit = meter__on_billing_record;
                bc.userdata = m;
                r = billing_new(&bc, now, &m->billing, msg, msg_len);
                if (r < 0)
                        goto fail;
                meter__clock_tick(m);
                for (size_t i = 0; slots && i < slots_count(slots) && i < m->n_slots; i++) {
                        struct slot_view *v = &meter__slot(m, i)->view;
                        struct slots_info info;

                        slots_get(slots, i, &info);
                        v->in_grace = info.state == SLOTS_GRACE;
                        /* The held session's dimensions, for its push records. */
                        plat_strlcpy(v->session, info.session, sizeof(v->session));
                        plat_strlcpy(v->user, info.user, sizeof(v->user));
                        v->ended = info.state == SLOTS_ENDING;
                        plat_strlcpy(v->project, info.project, sizeof(v->project));
                        plat_strlcpy(v->app, info.app, sizeof(v->app));
                        if (info.state == SLOTS_ACTIVE || info.state == SLOTS_GRACE)
                                meter__occupancy(m, i, true, info.project ? info.project : "");
                        for (size_t k = 0; k < info.n_viewers && k < SLOTS_VIEWERS_MAX; k++) {
                                const char *user, *role;

                                slots_get_viewer(slots, i, k, &user, &role);
                                plat_strlcpy(v->viewers[v->n_viewers++], user, sizeof(v->viewers[0]));
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
        if (r >= 0 && (no_worker = plat_syncer_new(&m->syncer)) < 0)
                log_warn("metering: no worker thread for the spool's fdatasync (%s); it runs on the "
                         "event loop",
                         strerror(-no_worker));
        if (r >= 0 && m->syncer)
                r = sd_event_add_io(e, &m->synced_src, plat_syncer_fd(m->syncer), EPOLLIN, on_synced, m);
        if (r >= 0)
                r = sd_event_add_time(e, &m->timer, CLOCK_MONOTONIC, t + TIMER_USEC, 100000, on_timer, m);
        if (r >= 0)
                r = sd_event_source_set_enabled(m->timer, SD_EVENT_ON);
        if (r < 0) {
                snprintf(msg, msg_len, "cannot set up the metering timers: %s", strerror(-r));
                goto fail;
        }
        /* What slots.state owed the spool goes in first, before the loop runs. */
        (void)flush_as(m, true);
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
                (void)billing_flush(m->billing, meter__now());
                billing_free(m->billing);
                m->billing = NULL;
                m->open_dirty = true; /* none open now: the next state write says so */
        }
        /* And publishes what the link still takes; the minute records wait for the state write that
         * drops their bytes from the open minutes (the caller writes the state next). The spool's
         * sync is done here, not on the worker: the loop is about to end. */
        (void)meter_sync_wait(m);
}

void meter_free(struct meter *m) {
        if (!m)
                return;
        if (m->billing)
                (void)billing_flush(m->billing, meter__now());
        if (m->stale && journal_owed(m->journal))
                log_warn("metering: minute records are spooled while %s/slots.state still holds their bytes "
                         "as open (the state could not be written): the next start counts those bytes again",
                         m->state_dir);
        if (m->syncer && plat_syncer_busy(m->syncer)) {
                int err;

                (void)plat_syncer_collect(m->syncer, true, &err);
                if (m->spool && m->ticket_gen == m->spool_gen)
                        (void)spool_sync_end(m->spool, &m->ticket, err);
        }
        sd_event_source_disable_unref(m->synced_src); /* before the descriptor it watches goes */
        m->synced_src = NULL;
        plat_syncer_free(m->syncer);
        if (m->spool && m->journal) {
                if (journal_owed(m->journal)) {
                        struct spool_stats st;

                        /* What went in is synced, also when the spool refused the rest. */
                        (void)journal_to_spool(m->journal, m->spool);
                        if (spool_sync(m->spool) >= 0) {
                                spool_stats(m->spool, &st);
                                journal_synced(m->journal, st.synced_id);
                        }
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
        sd_event_source_disable_unref(m->pace_src);
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
                meter__alarm(m, "spool_full", "metering: %s; new sessions are refused until it has room",
                             m->refusal);
                m->alarmed_full = true;
        }
        return meter_refusal(m);
}
