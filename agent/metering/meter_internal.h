/* meter_internal.h: the meter's state, shared by its three files: meter.c (durability: the
 * journal into the spool, room, the timer, construction), meter_records.c (records from
 * transitions, pushes and billing windows) and meter_delivery.c (publishing, PUBACKs, status).
 * Nothing outside agent/metering/meter*.c includes it. */
#pragma once

#include "meter.h"

#include "billing.h"
#include "clock.h"
#include "clocksync.h"
#include "crypto.h"
#include "delivery.h"
#include "journal.h"
#include "pace.h"
#include "signing.h"
#include "slot.h"
#include "spool.h"
#include "streamsum.h"
#include "syncer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* The meter's part of a slot object (slot.h: sl->meter): made by meter_new for each of its slots,
 * freed with the slot. A meter that starts after a reload sets the view afresh from the session
 * state; streams go on (a kept slot's session is the same session). */
struct meter_slot {
        struct slot_view view;
        /* As they were before the batch in progress (meter_transition .. meter_sync or meter_abort),
         * put back by meter_abort: the view, and the occupancy billing was told (billing_occupied). */
        struct slot_view saved;
        bool saved_occupied;
        char saved_project[SLOTS_PROJECT_MAX + 1];
        /* Its running session's stream quality (meter_streams), for its session_end. Not put back
         * by meter_abort: a batch that did not happen took nothing from it. */
        struct streamsum streams;
};

struct inflight {
        int mid;
        uint64_t id;
};

struct meter {
        sd_event *event;
        char *node, *region, *state_dir;
        /* Borrowed: the slot objects in the order billing knows them (the config's when the meter was
         * made; a reload that changes the slots makes a new meter, and the table keeps the slots it
         * dropped until the old one is freed: slot_table_reap). Each has its meter part. */
        size_t n_slots;
        struct slot *slot[SLOTS_MAX];
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
         * meter_abort): each slot's part keeps its view and occupancy as they were before it. */
        bool in_batch;
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
        /* metering.redeliver_per_s: a backlog after an outage goes out at this rate, so a fleet
         * back from a broker restart does not flood it; pace_src pumps again when it allows. */
        struct pace pace;
        sd_event_source *pace_src;
        bool said_v311; /* the 3.1.1 caveat was logged */
        uint64_t published, acked, made;
        sd_event_source *sync_src, *timer;
        /* The spool's fdatasync runs on a worker (NULL: inline, if it could not start): the loop
         * never waits for it, since the records are in slots.state until it ends. One at a time;
         * records made meanwhile wait in the journal for the next (sync_again). The ticket belongs
         * to spool generation ticket_gen (a reopen makes a new one: an old ticket's end is void). */
        struct plat_syncer *syncer;
        sd_event_source *synced_src;
        struct spool_sync_ticket ticket;
        int ticket_append; /* journal_to_spool's result for the records the ticket covers, */
        bool ticket_all;   /* and whether the spool took every record owed then */
        unsigned spool_gen, ticket_gen;
        bool sync_again;
        bool alarmed_full;
        bool room_low; /* refusing since the start: the spool had under ROOM_MIN of room */
        /* The refusal waits for a sync: room came back (check_room) or the journal outgrew its soft
         * limit while records were owed; the sync that takes them all lifts it. */
        bool admit_on_sync;
        char refusal[METER_MSG_MAX];
        char last_error[METER_MSG_MAX];
        /* meter__checked: the call that failed last and its error, said once. */
        const char *failed_call;
        int failed_err;
        int cursor_err;               /* meter__flush_cursor's last failure, 0 */
        struct clocksync_watch clock; /* the kernel's clock sync state, read each second */
};

/* Slot i's part (i < m->n_slots), in the order billing knows the slots. */
static inline struct meter_slot *meter__slot(const struct meter *m, size_t i) {
        return m->slot[i]->meter;
}

static inline struct billing_time meter__now(void) {
        return (struct billing_time){ .mono_usec = plat_now_mono_usec(), .real_usec = plat_now_real_usec() };
}

/* An alarm for the operator (hooks.alarm), also kept as status.last_error. */
void meter__alarm(struct meter *m, const char *what, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* r < 0 from `call`, a billing or spool call that should never fail and whose failure could make
 * billing figures wrong: logged and raised as metering_alarm `internal_error`, once per call and
 * error until one works again. Returns r. */
int meter__checked(struct meter *m, const char *call, int r);
/* spool_flush_cursor, whose failure (a full disk) costs no record: acknowledged records are offered
 * again after a restart. Logged once per error until it works again. */
void meter__flush_cursor(struct meter *m);
/* Why new sessions are refused from now on (status.refusing_sessions). */
void meter__refuse(struct meter *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Billing is told a slot's occupancy (project: the session's, "" none); meter_abort puts it back. */
void meter__occupancy(struct meter *m, size_t slot, bool occupied, const char *project);
/* Reads the clock's sync state: billing's open records are marked, losing it raises the
 * clock_unsynced alarm, regaining it clears it (meter_clock.c). */
void meter__clock_tick(struct meter *m);
/* status.metering.clock_steps: {"forward":n,"back":n,"last":"<RFC 3339>","last_s_ago":s}: the wall-clock
 * steps billing saw since the agent started (last and last_s_ago only after one). */
void meter__clock_steps_json(const struct meter *m, cJSON *status);
/* billing's emit callback: a window or minute becomes a record. */
void meter__on_billing_record(void *ud, const struct billing_record *r);
/* Publishes what the link's window takes, from the oldest unacked record. */
void meter__pump(struct meter *m);
