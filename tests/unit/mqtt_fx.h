/* mqtt_fx.h: a scripted MQTT 5 broker for unit tests (test_link, test_meter): plain TCP on
 * 127.0.0.1, one client at a time, served from the test's own sd-event loop. It answers CONNECT
 * with a CONNACK, each QoS 1 PUBLISH with a PUBACK carrying the reason code the test sets, PINGREQ
 * with PINGRESP, and keeps what was published. Speaks 3.1.1 to a 3.1.1 client, and can play a
 * broker that drops MQTT 5 CONNECTs. Enough MQTT for the link and the meter, no more. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#define MQTT_FX_KEEP 64 /* payloads kept; later ones are only counted */

struct mqtt_fx {
        sd_event_source *listen_src, *client_src;
        int listen_fd, client_fd;
        unsigned port;
        uint8_t in[128 * 1024]; /* bytes read, not yet a whole packet */
        size_t in_len;
        int puback_reason; /* what the PUBACKs carry: 0, 0x10, 0x80... (set by the test) */
        bool drop_v5;      /* close on an MQTT 5 CONNECT, as RabbitMQ 3.10 does (set by the test) */
        bool drop_all;     /* close on every CONNECT, whatever its version (set by the test) */
        int levels[8];     /* the protocol level of each CONNECT received (the first 8) */
        int level;         /* the current client's: CONNACK and PUBACK are in its version */
        size_t n_connects;
        size_t n_publishes;          /* QoS 1 PUBLISH packets received */
        char *payload[MQTT_FX_KEEP]; /* the first MQTT_FX_KEEP payloads, NUL added */
        char topic[256];             /* of the last PUBLISH */
};

/* Listens on a free loopback port, served by e. -errno. */
int mqtt_fx_start(sd_event *e, struct mqtt_fx **ret);
/* Drops the client's connection (the broker goes away, as after a restart). */
void mqtt_fx_drop(struct mqtt_fx *b);
/* NULL is a no-op. */
void mqtt_fx_free(struct mqtt_fx *b);
