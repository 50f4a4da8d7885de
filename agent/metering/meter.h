/* meter.h: billing-grade records from session transitions and billing windows: hash-chained,
 * durable before anything acknowledges them (written with the session state: journal.h, then
 * spooled), signed (JWS ES256, deterministic) ahead in idle time or as they are published,
 * delivered at least once. */
#pragma once

#include "config.h"
#include "link.h"
#include "sessions.h"
#include "slots.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#define METER_MSG_MAX 512

struct slot_table;
struct usage_slot;

struct meter;

struct meter_hooks {
        /* Something an operator must hear about: `what` is a stable key (spool_full,
         * spool_recovered, spool_broken, no_key, records_lost, sign_failed, no_consumer), msg says
         * what and what next. */
        void (*alarm)(const char *what, const char *msg, void *userdata);
        /* An alarm that ends on its own is over (no_consumer: a record was received again); msg
         * says so. May be NULL. */
        void (*cleared)(const char *what, const char *msg, void *userdata);
        /* Records wait for a state write (sessions_touch): made outside a batch, the spool refused
         * them and no state write holds them yet; or minute records whose bytes the state on disk
         * still holds as open (meter_open_minutes), which reach the spool only once a state write
         * no longer does. May be NULL: then nothing waits for a state write. */
        void (*write_journal)(void *userdata);
        void *userdata;
};

/* Opens <state_dir>/spool (state_dir is made, mode 0700, when missing: a node without slots has
 * no session service to make it; its parent must exist; recovery findings are raised as alarms),
 * loads the signing key (metering.key_file, else mqtt.tls.key_file; without a usable one records
 * are made and kept in the spool, unpublished, with an alarm), continues the hash chain from the
 * spool's newest record, starts the billing windows with the slots occupied in `slots`, and
 * counts into its minutes the bytes the earlier run's open minutes held (slots.state).
 * -errno with msg when the spool cannot be opened at all. cfg and slots are borrowed for the call;
 * table (the slot objects, synced to cfg: -EINVAL otherwise) until meter_free: each of its slots
 * gets the meter's part (slot.h), and the meter reads its slots in this order until it is freed, so
 * a reload that changes them frees the meter before slot_table_reap. */
int meter_new(sd_event *e, const struct cfg *cfg, struct slot_table *table, const struct slots *slots,
              const struct meter_hooks *h, struct meter **ret, char *msg, size_t msg_len);
/* Shutting down, while the link is still up: the open billing window and minutes become
 * (partial) records, everything is synced and as much as the link takes is published; what is
 * not acknowledged is sent again after the next start. With a write_journal hook the minute
 * records wait for the state write it asks for: write the state next (sessions_flush), then
 * meter_free. */
void meter_stop(struct meter *m);
/* Does what meter_stop does if it was not called, and closes the spool. NULL is a no-op. */
void meter_free(struct meter *m);

/* Inputs, from the session service's hooks. A batch's transitions come before its state is
 * written: their records are made and owed; meter_journal gives them to the state write; then
 * meter_sync (written) or meter_abort (not written: the records are dropped, seq and chain go
 * back, and the views are as before the batch). */
/* A session's end (SLOTS_EV_ENDING) also closes its slot's open billing minutes at once
 * (billing_close_slot): their bandwidth_minute records, stamped with the ending session, are made in
 * the same batch, before its session_end. */
void meter_transition(struct meter *m, const struct slots_event *ev);
/* `bytes` moved on `flow` of slot i since from_real_usec (wall clock) until now. */
void meter_bytes(struct meter *m, size_t slot, enum sessions_flow flow, uint64_t bytes,
                 uint64_t from_real_usec);
/* `bytes` moved to push target `target` (its peer id; borrowed) of slot i, like meter_bytes: billed
 * to the push flow and to that target apart. */
void meter_push_bytes(struct meter *m, size_t slot, const char *target, uint64_t bytes,
                      uint64_t from_real_usec);
void meter_push(struct meter *m, size_t slot, const char *session, const char *target, bool started);
/* One tick of slot i's stream sessions (us borrowed; gpus_stale: the GPU sample is the driver's last,
 * repeated), summed while the slot holds a running session into its session_end's "streams". */
void meter_streams(struct meter *m, size_t slot, const struct usage_slot *us, bool gpus_stale);

/* Every record not yet synced in the spool, as a JSON array text for slots.state (caller frees;
 * NULL when none). -ENOMEM: the state must not be written without them. */
int meter_journal(struct meter *m, char **ret_json);
/* The bytes counted into billing minutes that no record holds yet, for slots.state's
 * "open_minutes" (billing_carry_json; the hook of sessions.h): 1 and *ret_json (caller frees; NULL:
 * none) when they changed since last asked, else 0; -ENOMEM. Written with the batch, they are
 * what the next meter_new (on these slots) counts again: every minute record made before stays
 * out of the spool until that write is done (meter_sync, or meter_abort when it failed). */
int meter_open_minutes(struct meter *m, char **ret_json);
/* The batch is on disk (the replies may go out): its occupancy changes count, and every owed
 * record goes to the spool with one fdatasync, then is published. That fdatasync runs on a worker
 * thread, so the loop never waits for it (the records are durable in slots.state meanwhile, and
 * leave the journal when it ends); one at a time: records owed while one runs go with the next.
 * Records made outside a batch (billing windows) go at the end of the loop turn the same way.
 * Records the spool does not take stay owed, new sessions are refused, and write_journal asks for
 * a state write. Returns the records appended (0 while a sync is in flight) or -errno. */
int meter_sync(struct meter *m);
/* meter_sync, and the fdatasync done before it returns (a sync in flight waited for first): the
 * owed records are durable in the spool, or still owed and refused as above. For a stop, and for
 * tests that look at the spool next. */
int meter_sync_wait(struct meter *m);
/* The batch's state could not be written: its records are dropped (see meter_transition). */
void meter_abort(struct meter *m);

/* Delivery. The link (borrowed; NULL while there is none) and the topic (copied). */
void meter_set_link(struct meter *m, struct link *l, const char *topic);
/* A new broker connection: every unacknowledged record is sent again (the same bytes, the same
 * seq: duplicates are allowed, loss is not). */
void meter_connected(struct meter *m);
/* The broker answered QoS 1 publish `mid` with PUBACK `reason` (link.h). 0: received, the record
 * leaves the spool. 0x10 (no matching subscribers): nobody received it: it stays, the alarm
 * no_consumer is raised, and records are offered again one at a time with backoff (delivery.h)
 * until one is received (then the alarm is cleared). 0x80 and above: refused, sent again. */
void meter_published(struct meter *m, int mid, int reason);

/* Why new sessions must be refused now (fail closed: a record could not be kept), or NULL. */
const char *meter_refusal(const struct meter *m);
/* The same, asked before an op that would open billing: also measures the spool's room (the
 * rule applied at start, ROOM_MIN), so a disk that filled up is seen before a record fails. */
const char *meter_admission(struct meter *m);
/* Spool backlog, seq, kid, in flight, delivered, what is failing. */
cJSON *meter_status_json(const struct meter *m);
/* The spool's backlog for telemetry: records not yet acknowledged by the broker, and the bytes of
 * its segment files (acknowledged records stay there until their segment is deleted). */
void meter_backlog(const struct meter *m, uint64_t *ret_records, uint64_t *ret_bytes);
