/* link.h: the MQTT connection to the central broker, driven from the sd-event loop. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "link_proto.h"

struct cfg;
struct link;

enum link_state {
        LINK_IDLE,       /* not started, or stopped */
        LINK_CONNECTING, /* TCP/TLS/CONNECT in progress */
        LINK_CONNECTED,  /* CONNACK accepted */
        LINK_BACKOFF,    /* waiting to reconnect */
};

/* Called once per accepted CONNACK; the agent publishes its retained status from here. */
typedef void (*link_connected_fn)(struct link *l, void *userdata);

/* A message on a subscribed topic. payload is NULL when len is 0. retain: the broker delivered it
 * from its store (a retained message, sent to a new subscription), not as it was published. MQTT 5
 * request/response: response_topic and correlation data as the sender set them (NULL, 0 when
 * absent or on 3.1.1). Everything is borrowed for the call. */
typedef void (*link_message_fn)(struct link *l, const char *topic, const void *payload, size_t len,
                                bool retain, const char *response_topic, const void *corr, size_t corr_len,
                                void *userdata);
/* The broker acknowledged QoS 1 publish `mid` (PUBACK) with `reason`, the MQTT 5 reason code: 0
 * success; 0x10 no matching subscribers (taken, and received by nobody); 0x80 and above refused
 * (not taken: send it again). Always 0 on 3.1.1, whose PUBACK has no reason code. What a reason
 * means for a message is the caller's to decide (delivery.h for metering). */
typedef void (*link_published_fn)(struct link *l, int mid, int reason, void *userdata);

/* The connection to `broker` ("host:port") was lost, for `reason` (borrowed for the call); the
 * link reconnects on its own. Not called for failed attempts, nor for link_stop. */
typedef void (*link_lost_fn)(struct link *l, const char *broker, const char *reason, void *userdata);

#define LINK_MAX_BROKERS 8

/* One broker address. With TLS its certificate must name `host` (verified per broker). */
struct link_broker {
        const char *host; /* name or address; an IPv6 address without brackets */
        unsigned port;
};

/* Failover, with several brokers:
 * - brokers are tried in order; after a failed attempt the next one is tried at once;
 * - after a full round of failures the link backs off (link_backoff_usec, growing per round)
 *   before the next round, which starts from the same broker as the failed one did;
 * - once connected the link stays on that broker, even when one listed before it comes back;
 * - after losing a connection it backs off, then starts again from the broker that was working
 *   (it may have been a blip), then the others in order, wrapping around.
 * link_next_broker() is that rule; the link applies it after every failed attempt. */
struct link_options {
        const char *host; /* the broker when n_brokers is 0 */
        unsigned port;
        const struct link_broker *brokers; /* 0..LINK_MAX_BROKERS; copied */
        size_t n_brokers;
        bool tls;
        const char *ca_file, *cert_file, *key_file;
        unsigned keepalive_s;
        unsigned reconnect_window_ms;  /* the first retry after a lost connection: drawn over it */
        enum link_proto_mode protocol; /* mqtt.protocol: per broker, auto falls back to 3.1.1 */
        const char *client_id;
        const char *will_topic; /* retained last will (status = offline) */
        const char *will_payload;
        link_message_fn on_message;     /* may be NULL */
        link_published_fn on_published; /* may be NULL */
        link_lost_fn on_lost;           /* may be NULL */
};

/* Strings in opts are copied. The link does nothing until link_start(). */
int link_new(sd_event *e, const struct link_options *opts, link_connected_fn on_connected, void *userdata,
             struct link **ret);
void link_free(struct link *l);

int link_start(struct link *l);

/* Publishes when connected; -ENOTCONN otherwise (callers decide what that means for them). */
int link_publish(struct link *l, const char *topic, const char *payload, size_t len, int qos, bool retain);

/* As link_publish, and *ret_mid (may be NULL) the message id that on_published reports. With
 * correlation data (corr_len > 0, MQTT 5 only: ignored on 3.1.1) for replies to requests. */
int link_publish_ex(struct link *l, const char *topic, const void *payload, size_t len, int qos,
                    const void *corr, size_t corr_len, int *ret_mid);

/* True when bytes are still queued for the broker (the socket did not take everything yet). */
bool link_backlogged(const struct link *l);

/* Subscribes (after each connect: call it from on_connected). -ENOTCONN when not connected. */
int link_subscribe(struct link *l, const char *topic, int qos);

/* Publishes a last message (the retained offline status), disconnects and flushes what the
 * socket takes without blocking; then the link is idle. */
void link_stop(struct link *l, const char *topic, const char *payload);

enum link_state link_get_state(const struct link *l);
const char *link_state_to_string(enum link_state s);
/* The reason of the last failed attempt, naming its broker ("mqtt-1:8883: cannot connect: ..."),
 * or "" when none since the last success; borrowed. */
const char *link_last_error(const struct link *l);
/* "host:port" ("[v6]:port") of the broker of the current or last attempt: while connected, the
 * broker in use; borrowed. */
const char *link_broker(const struct link *l);
int link_protocol_version(const struct link *l); /* 5 or 4 (3.1.1) */
/* Broker i's MQTT version and why (NULL when i is past the last broker), and its "host:port" in
 * *ret_name; borrowed. */
const struct link_proto *link_broker_proto(const struct link *l, size_t i, const char **ret_name);
uint64_t link_connects(const struct link *l); /* successful connections so far */

/* Reconnect delay: full jitter over min(60 s, 0.5 s * 2^attempt), never under 100 ms so a
 * failing broker is never hammered. `rnd` is a uniform random 32-bit value. */
uint64_t link_backoff_usec(unsigned attempt, uint32_t rnd);

/* The failover rule above for n brokers: `current` the broker just tried (or just lost: `lost`
 * true), `home` the one a round starts from (the last that worked; 0 before any did). Returns the
 * broker to try next; *ret_backoff says whether to wait for the backoff delay first. */
size_t link_next_broker(size_t n, size_t current, size_t home, bool lost, bool *ret_backoff);

/* Maps a MOSQ_ERR_* code to a negative errno (the one place that does). */
int link_errno_from_mosq(int mosq_err);
