/* meter.h: billing-grade records from session transitions and billing windows: hash-chained,
 * appended to the spool before anything acknowledges them, signed (JWS ES256, deterministic) ahead
 * in idle time or as they are published, delivered at least once. */
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

/* Records kept in memory while the spool cannot take them (full, broken); past it a
 * record is lost and counted, with an alarm: by then new sessions have long been refused. */
#define METER_PENDING_MAX 4096
#define METER_MSG_MAX 512

struct meter;

struct meter_hooks {
        /* Something an operator must hear about: `what` is a stable key (spool_full,
         * spool_recovered, spool_broken, no_key, records_lost, sign_failed, no_consumer), msg says
         * what and what next. */
        void (*alarm)(const char *what, const char *msg, void *userdata);
        /* An alarm that ends on its own is over (no_consumer: a record was received again); msg
         * says so. May be NULL. */
        void (*cleared)(const char *what, const char *msg, void *userdata);
        void *userdata;
};

/* Opens <state_dir>/spool (state_dir is made, mode 0700, when missing: a node without slots has
 * no session service to make it; its parent must exist; recovery findings are raised as alarms),
 * loads the signing key (metering.key_file, else mqtt.tls.key_file; without a usable one records
 * are made and kept in the spool, unpublished, with an alarm), continues the hash chain from the
 * spool's newest record, and starts the billing windows with the slots occupied in `slots`.
 * -errno with msg when the spool cannot be opened at all. cfg and slots are borrowed for the call. */
int meter_new(sd_event *e, const struct cfg *cfg, const struct slots *slots, const struct meter_hooks *h,
              struct meter **ret, char *msg, size_t msg_len);
/* Shutting down, while the link is still up: the open billing window and minutes become
 * (partial) records, everything is synced and as much as the link takes is published; what is
 * not acknowledged is sent again after the next start. */
void meter_stop(struct meter *m);
/* Does what meter_stop does if it was not called, and closes the spool. NULL is a no-op. */
void meter_free(struct meter *m);

/* Inputs, from the session service's hooks (after its commit). */
void meter_transition(struct meter *m, const struct slots_event *ev);
/* `bytes` moved on `flow` of slot i since from_real_usec (wall clock) until now. */
void meter_bytes(struct meter *m, size_t slot, enum sessions_flow flow, uint64_t bytes,
                 uint64_t from_real_usec);
void meter_push(struct meter *m, size_t slot, const char *session, const char *target, bool started);

/* Group commit: one fdatasync makes every record made so far durable, then they are published.
 * The agent calls it before acknowledging session ops; records made elsewhere (billing windows)
 * are synced at the end of the loop turn. */
int meter_sync(struct meter *m);

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
/* Spool backlog, seq, kid, in flight, delivered, what is failing. */
cJSON *meter_status_json(const struct meter *m);
/* The spool's backlog for telemetry: records not yet acknowledged by the broker, and the bytes of
 * its segment files (acknowledged records stay there until their segment is deleted). */
void meter_backlog(const struct meter *m, uint64_t *ret_records, uint64_t *ret_bytes);
