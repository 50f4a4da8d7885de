/* delivery.h: whether a published metering record reached a consumer, and when records are offered
 * again when none did. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

/* With MQTT 5 a broker answers a QoS 1 publish that no subscription matches with PUBACK reason
 * 0x10 (No matching subscribers): it took the record and dropped it. For billing that is not
 * delivered: the record stays in the spool and is offered again, one at a time, with backoff,
 * until a consumer subscribes. A 3.1.1 PUBACK has no reason code (the callback gets 0): there a
 * PUBACK only says the broker took the record (docs/metering.md, "Delivered means received").
 * Pure: the caller passes the clocks and the random draws. */

#define DELIVERY_NO_SUBSCRIBERS 0x10 /* the MQTT 5 PUBACK reason code */
#define DELIVERY_RETRY_FIRST_USEC (1000 * 1000ULL)
#define DELIVERY_RETRY_CAP_USEC (60 * 1000 * 1000ULL)

enum delivery_outcome {
        DELIVERY_RECEIVED,    /* reason 0 (always 0 on 3.1.1): ack the record */
        DELIVERY_NO_CONSUMER, /* 0x10: nobody received it: keep it, offer it again later */
        DELIVERY_REFUSED,     /* 0x80 and above: the broker refused it: send it again */
};

enum delivery_outcome delivery_outcome(int reason);

/* The no-consumer state of one meter. Zero-initialised: records reach a consumer. */
struct delivery {
        bool no_consumer;
        uint64_t since_real_usec; /* when it began (wall clock, for status) */
        uint64_t next_usec;       /* monotonic: nothing is offered before it */
        unsigned attempt;         /* refusals in a row that backed off */
        uint64_t refused;         /* 0x10 PUBACKs since it began */
};

/* The wait after `attempt` backed-off refusals in a row: d = min(60 s, 1 s * 2^attempt), drawn
 * uniformly from [d/2, d) ("equal jitter": nodes that lost their consumer together do not come
 * back together, and no wait is shorter than half a second). `rnd` is a uniform 32-bit value. */
uint64_t delivery_retry_usec(unsigned attempt, uint32_t rnd);

/* A 0x10 PUBACK at now. True when it begins the no-consumer state (the caller raises the alarm).
 * It backs off further only when no wait is running: the refusals of the records that were in
 * flight together count once. */
bool delivery_no_consumer(struct delivery *d, uint64_t now_mono, uint64_t now_real, uint32_t rnd);

/* A record was received by a consumer. True when that ends the no-consumer state (the caller
 * clears the alarm); the backoff starts over. */
bool delivery_received(struct delivery *d);

/* How many of `max` records may be in flight now: all while records reach a consumer; none while
 * a wait runs; one once it is over (a probe: the oldest unacked record). */
unsigned delivery_window(const struct delivery *d, uint64_t now_mono, unsigned max);

/* Adds no_consumer (bool) to o and, while it holds, no_consumer_since (RFC 3339), no_consumer_refused
 * and next_offer_s (seconds until the next probe, 0 when it is due). */
void delivery_status_json(const struct delivery *d, uint64_t now_mono, cJSON *o);
