/* agent_link.c: the daemon's MQTT side: events out (held while offline), what the link says
 * (connected, lost, each PUBACK for the meter), and starting the link with the node's certificate
 * checked first. */
#include "agent_internal.h"

#include "cleanup.h"
#include "clock.h"
#include "config.h"
#include "crypto.h"
#include "evhist.h"
#include "log.h"
#include "meter.h"

#include <mosquitto.h>
#include <string.h>

/* Events go out at QoS 1 while connected. Offline, the last EVENTS_PENDING_MAX wait for the next
 * connection (older ones are dropped and counted: events are alarms, not billing records). */
static void publish_event(struct agent *a, char *doc) {
        if (a->link && link_publish(a->link, a->topic_events, doc, strlen(doc), 1, false) >= 0) {
                free(doc);
                return;
        }
        if (a->n_pending_events == EVENTS_PENDING_MAX) {
                free(a->pending_events[0]);
                memmove(a->pending_events, a->pending_events + 1, (EVENTS_PENDING_MAX - 1) * sizeof(char *));
                a->n_pending_events--;
                if (a->events_dropped++ == 0)
                        log_warn("more than %d events while the broker is unreachable; the oldest are "
                                 "dropped",
                                 EVENTS_PENDING_MAX);
        }
        a->pending_events[a->n_pending_events++] = doc;
}

static void flush_events(struct agent *a) {
        size_t sent = 0;

        while (sent < a->n_pending_events && link_publish(a->link, a->topic_events, a->pending_events[sent],
                                                          strlen(a->pending_events[sent]), 1, false) >= 0)
                free(a->pending_events[sent++]);
        memmove(a->pending_events, a->pending_events + sent, (a->n_pending_events - sent) * sizeof(char *));
        a->n_pending_events -= sent;
}

void agent__on_event(const char *type, cJSON *fields, void *ud) {
        struct agent *a = ud;
        cJSON *o = cJSON_CreateObject(), *f;
        char ts[32], *doc;

        cJSON_AddNumberToObject(o, "v", TELE_WIRE_VERSION);
        cJSON_AddStringToObject(o, "type", "event");
        cJSON_AddStringToObject(o, "event", type);
        cJSON_AddStringToObject(o, "node", a->cfg->node_id);
        cJSON_AddStringToObject(o, "region", a->cfg->node_region);
        cJSON_AddStringToObject(o, "ts", plat_format_rfc3339_ms(plat_now_real_usec(), ts, sizeof(ts)));
        while ((f = fields->child)) {
                cJSON_DetachItemViaPointer(fields, f);
                cJSON_AddItemToObject(o, f->string, f);
        }
        cJSON_Delete(fields);
        evhist_record(a->evhist, a->diag, o, plat_now_real_usec());
        doc = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (doc)
                publish_event(a, doc);
        log_limited(LOG_INFO, "event %s", type);
}

/* mqtt_connected / mqtt_lost: kept in the event history, and on .../events once connected. */
static void link_event(struct agent *a, const char *type, const char *broker, const char *reason) {
        cJSON *f = cJSON_CreateObject();

        if (f && cJSON_AddStringToObject(f, "broker", broker) &&
            (!reason || cJSON_AddStringToObject(f, "reason", reason)))
                agent__on_event(type, f, a);
        else
                cJSON_Delete(f);
}

static void on_link_lost(struct link *l, const char *broker, const char *reason, void *ud) {
        (void)l;
        link_event(ud, "mqtt_lost", broker, reason);
}

static void on_connected(struct link *l, void *ud) {
        struct agent *a = ud;
        /* QoS 0: the session is clean, so QoS 1 would save nothing across a lost connection, and
         * RabbitMQ makes a QoS 1 subscription a durable queue on one node, which pins the agent
         * to that node when it dies (docs/topics.md, cmd). */
        int r = link_subscribe(l, a->topic_cmd, 0);

        if (r < 0)
                log_warn("cannot subscribe to %s: %s; MQTT commands are not taken", a->topic_cmd,
                         strerror(-r));
        agent__publish_status(ud);
        flush_events(ud);
        link_event(a, "mqtt_connected", link_broker(l), NULL);
        meter_connected(a->meter);
        agent__announce(ud, false);
}

/* Only metering decides what a PUBACK reason means for its records: an event or status that no
 * one subscribed to (0x10) is fine, they are not tracked. */
static void on_published(struct link *l, int mid, int reason, void *ud) {
        struct agent *a = ud;

        (void)l;
        meter_published(a->meter, mid, reason);
}

#define CERT_WARN_USEC (14 * 86400 * USEC_PER_SEC)

/* A broker that refuses an expired client certificate says so nowhere the agent can read (TLS 1.3
 * ends the handshake before it could): the agent reads its own certificate and says it. */
static void check_certificate(struct agent *a) {
        uint64_t not_before, now = plat_now_real_usec();
        char msg[256], ts[40];

        a->cert_not_after = 0;
        if (!a->cfg->mqtt.tls || plat_cert_validity(a->cfg->mqtt.cert_file, &not_before, &a->cert_not_after,
                                                    msg, sizeof(msg)) < 0)
                return;
        if (a->cert_not_after <= now)
                log_err("mqtt.tls.cert_file %s expired on %s: the broker will refuse this node; install a "
                        "new "
                        "certificate (docs/deploy.md, enrolment) and reload",
                        a->cfg->mqtt.cert_file, plat_format_rfc3339_ms(a->cert_not_after, ts, sizeof(ts)));
        else if (not_before > now)
                log_err("mqtt.tls.cert_file %s is not valid before %s: is this host's clock right?",
                        a->cfg->mqtt.cert_file, plat_format_rfc3339_ms(not_before, ts, sizeof(ts)));
        else if (a->cert_not_after - now < CERT_WARN_USEC)
                log_warn("mqtt.tls.cert_file %s expires on %s; renew it before then (docs/deploy.md)",
                         a->cfg->mqtt.cert_file, plat_format_rfc3339_ms(a->cert_not_after, ts, sizeof(ts)));
}

int agent__start_link(struct agent *a) {
        _cleanup_free_ char *will =
                tele_status_json(a->cfg, NULL, NULL, NULL, NULL, false, "connection lost", 0);
        struct link_options o = {
                .host = a->cfg->mqtt.host,
                .port = a->cfg->mqtt.port,
                .tls = a->cfg->mqtt.tls,
                .ca_file = a->cfg->mqtt.ca_file,
                .cert_file = a->cfg->mqtt.cert_file,
                .key_file = a->cfg->mqtt.key_file,
                .keepalive_s = a->cfg->mqtt.keepalive_s,
                .reconnect_window_ms = a->cfg->mqtt.reconnect_window_ms,
                .protocol = (enum link_proto_mode)a->cfg->mqtt.protocol,
                .client_id = a->cfg->node_id,
                .will_topic = a->topic_status,
                .will_payload = will,
                .on_message = agent__on_message,
                .on_published = on_published,
                .on_lost = on_link_lost,
        };
        struct link_broker brokers[CFG_MAX_BROKERS];
        int r;

        for (size_t i = 0; i < a->cfg->mqtt.n_brokers; i++)
                brokers[i] =
                        (struct link_broker){ a->cfg->mqtt.brokers[i].host, a->cfg->mqtt.brokers[i].port };
        o.brokers = brokers;
        o.n_brokers = a->cfg->mqtt.n_brokers;

        if (!will)
                return -ENOMEM;
        if (tele_topic(a->cfg, "status", a->topic_status, sizeof(a->topic_status)) < 0 ||
            tele_topic(a->cfg, "telemetry", a->topic_telemetry, sizeof(a->topic_telemetry)) < 0 ||
            tele_topic(a->cfg, "events", a->topic_events, sizeof(a->topic_events)) < 0 ||
            tele_topic(a->cfg, "cmd", a->topic_cmd, sizeof(a->topic_cmd)) < 0 ||
            tele_topic(a->cfg, "cmd/reply", a->topic_cmd_reply, sizeof(a->topic_cmd_reply)) < 0 ||
            tele_topic(a->cfg, "metering", a->topic_metering, sizeof(a->topic_metering)) < 0)
                return -ENAMETOOLONG;
        check_certificate(a);
        if (!a->cfg->mqtt.tls)
                log_warn("mqtt.tls is false: telemetry goes to %s:%u in clear text and the broker is not "
                         "authenticated; use this for local tests only",
                         a->cfg->mqtt.host, a->cfg->mqtt.port);
        r = link_new(a->event, &o, on_connected, a, &a->link);
        if (r < 0)
                return r;
        meter_set_link(a->meter, a->link, a->topic_metering);
        a->announced = LINK_IDLE;
        return link_start(a->link);
}

void agent__stop_link(struct agent *a, const char *reason) {
        _cleanup_free_ char *off = NULL;

        if (!a->link)
                return;
        off = tele_status_json(a->cfg, NULL, NULL, NULL, NULL, false, reason, plat_now_real_usec());
        meter_set_link(a->meter, NULL, NULL);
        link_stop(a->link, a->topic_status, off);
        link_free(a->link);
        a->link = NULL;
}
