/* link.h: the MQTT connection to the central broker, driven from the sd-event loop. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

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

/* A message on a subscribed topic. MQTT 5 request/response: response_topic and correlation data
 * as the sender set them (NULL, 0 when absent or on 3.1.1). Everything is borrowed for the call. */
typedef void (*link_message_fn)(struct link *l, const char *topic, const void *payload, size_t len,
                                const char *response_topic, const void *corr, size_t corr_len,
                                void *userdata);
/* The broker acknowledged QoS 1 publish `mid` (PUBACK); ok false when it refused it (MQTT 5
 * reason code >= 0x80): the message was not taken and must be sent again. */
typedef void (*link_published_fn)(struct link *l, int mid, bool ok, void *userdata);

struct link_options {
        const char *host;
        unsigned port;
        bool tls;
        const char *ca_file, *cert_file, *key_file;
        unsigned keepalive_s;
        const char *client_id;
        const char *will_topic; /* retained last will (status = offline) */
        const char *will_payload;
        link_message_fn on_message;     /* may be NULL */
        link_published_fn on_published; /* may be NULL */
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

/* Subscribes (after each connect: call it from on_connected). -ENOTCONN when not connected. */
int link_subscribe(struct link *l, const char *topic, int qos);

/* Publishes a last message (the retained offline status), disconnects and flushes what the
 * socket takes without blocking; then the link is idle. */
void link_stop(struct link *l, const char *topic, const char *payload);

enum link_state link_get_state(const struct link *l);
const char *link_state_to_string(enum link_state s);
/* The reason of the last failed attempt ("" when none since the last success); borrowed. */
const char *link_last_error(const struct link *l);
int link_protocol_version(const struct link *l); /* 5 or 4 (3.1.1) */
uint64_t link_connects(const struct link *l);    /* successful connections so far */

/* Reconnect delay: full jitter over min(60 s, 0.5 s * 2^attempt), never under 100 ms so a
 * failing broker is never hammered. `rnd` is a uniform random 32-bit value. */
uint64_t link_backoff_usec(unsigned attempt, uint32_t rnd);

/* Maps a MOSQ_ERR_* code to a negative errno (the one place that does). */
int link_errno_from_mosq(int mosq_err);
