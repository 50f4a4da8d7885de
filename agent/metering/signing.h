/* signing.h: the signatures of metering records: made ahead of delivery in idle time, kept in the
 * signature cache, or made when a record is published. */
#pragma once

#include "crypto.h"
#include "spool.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <systemd/sd-event.h>

/* Signing ahead takes at most this share of the loop's time (percent): one record (~0.35 ms with
 * mbedtls' P-256) at a time, then a pause as long as the signature took. The loop stays free for
 * the control socket, and a render host's CPUs for its users. */
#define SIGNING_AHEAD_DUTY_PCT 50
/* ... and only after this long without new records: while sessions come and go, a control
 * request never waits behind a signature made ahead. */
#define SIGNING_QUIET_USEC (5 * 1000ULL)

struct signing;

/* signer is borrowed and may be NULL (nothing is signed: records wait in the spool). The signature
 * cache <state_dir>/signatures is opened for the signer's kid; when it cannot be, signing still
 * works, only never ahead (a warning says why). -ENOMEM or an sd-event error. */
int signing_new(sd_event *e, struct plat_signer *signer, int state_dir_fd, const char *state_dir,
                struct signing **ret);
void signing_free(struct signing *g);

/* The spool whose records are signed ahead (borrowed). Call with NULL before that spool is
 * closed, and again with the new one after it was opened. -ENOMEM. */
int signing_set_spool(struct signing *g, struct spool *s);

/* Delivery stopped short of the spool's newest record (the link is down, or its window is full):
 * sign ahead, SIGNING_QUIET_USEC from now, the durable records after `delivered`, the highest id
 * delivery has handed out. */
void signing_kick(struct signing *g, uint64_t delivered);

/* Record id as a JWS line (jws_sign's): with the signature made ahead when the cache has it,
 * else signed now. Deterministic signatures make both the same bytes. -errno from jws/crypto. */
int signing_line(struct signing *g, uint64_t id, const void *payload, size_t len, char **ret_line);

/* Every id <= acked was delivered: the cache may be emptied. */
void signing_acked(struct signing *g, uint64_t acked);

/* {"ahead":n,"from_cache":n,"at_publish":n,"ahead_upto":id,"cache":"<path>"|"off: <why>"}:
 * ahead_upto is the newest id the signer ahead has looked at (each one up to it is signed or
 * delivered). */
cJSON *signing_status_json(const struct signing *g);
