/* link.c: the MQTT connection to the central broker, driven from the sd-event loop. */
#include "link.h"

#include "clock.h"
#include "link_tls.h"
#include "log.h"
#include "pace.h"
#include "strutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define BACKOFF_BASE_USEC (500 * 1000ULL)
#define BACKOFF_CAP_USEC (60 * 1000 * 1000ULL)
#define BACKOFF_FLOOR_USEC (100 * 1000ULL)
#define MISC_INTERVAL_USEC (1000 * 1000ULL)
#define LINK_ERR_MAX 512
#define LINK_NAME_MAX (253 + 2 + 7) /* "[" host "]:" port */

struct link_target {
        char *host;
        unsigned port;
        char name[LINK_NAME_MAX];      /* "host:port", "[v6]:port": for logs and status */
        char logged_key[LINK_ERR_MAX]; /* cause of its last failure logged as a warning */
        struct link_proto proto;       /* the MQTT version it gets, kept for the run */
};

struct link {
        sd_event *event;
        struct mosquitto *mosq;
        sd_event_source *io;
        sd_event_source *misc_timer;
        sd_event_source *retry_timer;
        enum link_state state;
        bool tcp_pending; /* non-blocking TCP connect not yet complete */
        unsigned attempt;
        uint64_t spread_usec; /* mqtt.reconnect_window_ms */
        int protocol;
        uint64_t connects;
        link_connected_fn on_connected;
        link_message_fn on_message;
        link_published_fn on_published;
        link_lost_fn on_lost;
        void *userdata;
        int stop_mid; /* link_stop: the offline status, acknowledged last */
        bool stop_acked;

        struct link_target *brokers;
        size_t n_brokers;
        size_t cur;      /* the broker of the current or last attempt */
        size_t next;     /* the broker the retry timer dials */
        size_t home;     /* where a round of attempts starts: the last broker that worked */
        size_t dialled;  /* the broker libmosquitto holds (connect_async), SIZE_MAX for none */
        bool retry_same; /* the broker wants MQTT 3.1.1: the same one again, not the next */
        char *ca_file, *cert_file, *key_file, *client_id, *will_topic, *will_payload;
        unsigned keepalive_s;
        bool tls;

        char tls_detail[LINK_ERR_MAX]; /* first error libmosquitto logged during this attempt */
        struct link_tls_seen tls_seen; /* what the TLS layer saw of this attempt */
        char refusal[LINK_ERR_MAX];    /* the broker's CONNACK reason, when it said no */
        char last_error[LINK_ERR_MAX + LINK_NAME_MAX]; /* "broker: reason" of the last failure */
};

int link_errno_from_mosq(int e) {
        switch (e) {
        case MOSQ_ERR_SUCCESS:
                return 0;
        case MOSQ_ERR_NOMEM:
                return -ENOMEM;
        case MOSQ_ERR_INVAL:
        case MOSQ_ERR_MALFORMED_UTF8:
                return -EINVAL;
        case MOSQ_ERR_NO_CONN:
        case MOSQ_ERR_CONN_LOST:
                return -ENOTCONN;
        case MOSQ_ERR_CONN_REFUSED:
        case MOSQ_ERR_AUTH:
                return -ECONNREFUSED;
        case MOSQ_ERR_TLS:
        case MOSQ_ERR_PROTOCOL:
        case MOSQ_ERR_MALFORMED_PACKET:
                return -EPROTO;
        case MOSQ_ERR_PAYLOAD_SIZE:
        case MOSQ_ERR_OVERSIZE_PACKET:
                return -EMSGSIZE;
        case MOSQ_ERR_NOT_SUPPORTED:
                return -EOPNOTSUPP;
        case MOSQ_ERR_ACL_DENIED:
                return -EACCES;
        case MOSQ_ERR_EAI:
                return -EHOSTUNREACH;
        case MOSQ_ERR_KEEPALIVE:
                return -ETIMEDOUT;
        case MOSQ_ERR_ERRNO:
                return errno > 0 ? -errno : -EIO;
        default:
                return -EIO;
        }
}

uint64_t link_backoff_usec(unsigned attempt, uint32_t rnd) {
        uint64_t cap = BACKOFF_CAP_USEC, d;

        if (attempt < 32 && (BACKOFF_BASE_USEC << attempt) < cap)
                cap = BACKOFF_BASE_USEC << attempt;
        d = (uint64_t)((double)rnd / 4294967296.0 * (double)cap);
        return d < BACKOFF_FLOOR_USEC ? BACKOFF_FLOOR_USEC : d;
}

size_t link_next_broker(size_t n, size_t current, size_t home, bool lost, bool *ret_backoff) {
        size_t next;

        if (n <= 1 || current >= n) {
                *ret_backoff = true;
                return 0;
        }
        /* A lost connection backs off first: when a cluster member restarts, its nodes must not
         * all dial the others in the same instant. */
        if (lost) {
                *ret_backoff = true;
                return current;
        }
        next = (current + 1) % n;
        *ret_backoff = next == home % n;
        return next;
}

static void link_drop_io(struct link *l) {
        l->io = sd_event_source_disable_unref(l->io);
}

static void schedule_next(struct link *l, size_t next, bool backoff, bool lost);

static int update_io(struct link *l);

/* Turns a failed attempt into the reason operators read, and a key that stays the same for the
 * same cause, so a broker that keeps failing the same way is one warning, not one per retry.
 * `handshake` says the TCP connection was up with TLS on and no CONNACK came: with TLS 1.3 a
 * broker rejects the client certificate after the client's side of the handshake is done, and
 * what the client sees then varies (reset, EOF, an alert) from one attempt to the next. `closed`:
 * the broker closed a connection that had sent its CONNECT (mqtt.protocol "auto" may try 3.1.1). */
static void attempt_failed(struct link *l, const char *what, bool handshake, bool closed) {
        struct link_target *b = &l->brokers[l->cur];
        bool lost = l->state == LINK_CONNECTED, backoff;
        char reason[LINK_ERR_MAX], then[LINK_ERR_MAX];
        const char *key, *tls_key;
        enum link_proto_verdict v = LINK_PROTO_KEEP;
        size_t n, next;

        plat_strlcpy(reason, l->refusal[0] ? l->refusal : what, sizeof(reason));
        n = strlen(reason);
        if (n && reason[n - 1] == '.') /* libmosquitto's strings end in '.' */
                reason[n - 1] = '\0';
        /* What the TLS layer saw says more than the generic texts below; it writes reason. */
        tls_key = l->tls && !lost && !l->refusal[0] ? link_tls_explain(&l->tls_seen, l->tls_detail, b->host,
                                                                       b->port, reason, sizeof(reason))
                                                    : NULL;
        if (l->refusal[0]) {
                key = reason;
        } else if (tls_key) {
                key = tls_key;
        } else if (handshake && strstr(l->tls_detail, "certificate verify failed")) {
                snprintf(reason, sizeof(reason),
                         "the broker's certificate is not trusted by mqtt.tls.ca_file or does not name %s "
                         "(%s)",
                         b->host, l->tls_detail);
                key = "tls: broker certificate not trusted";
        } else if (handshake && strstr(l->tls_detail, "host name verification failed")) {
                /* libmosquitto's own check, after OpenSSL trusted the chain. */
                snprintf(reason, sizeof(reason),
                         "the broker's certificate does not name %s: list the broker by a name (or IP "
                         "address) its certificate has (%s)",
                         b->host, l->tls_detail);
                key = "tls: broker certificate names another host";
        } else if (handshake) {
                n = strlen(reason);
                if (l->tls_detail[0])
                        snprintf(reason + n, sizeof(reason) - n, " (%s)", l->tls_detail);
                n = strlen(reason);
                snprintf(reason + n, sizeof(reason) - n,
                         " before CONNACK: the broker dropped the connection during or after the TLS "
                         "handshake: it did not accept this node's client certificate (mqtt.tls.cert_file), "
                         "or could not parse the MQTT CONNECT");
                key = LINK_TLS_KEY_DROPPED;
        } else {
                key = reason;
                if (l->tls_detail[0]) {
                        n = strlen(reason);
                        snprintf(reason + n, sizeof(reason) - n, " (%s)", l->tls_detail);
                        key = what;
                }
        }
        /* Only a connection whose TLS completed with nothing said against it can have been
         * dropped for its CONNECT: a refused client certificate must not read as MQTT 5. */
        if (closed && !lost && !l->refusal[0] && (!l->tls || (l->tls_seen.tls_done && !tls_key)))
                v = link_proto_dropped(&b->proto, true);
        if (v != LINK_PROTO_KEEP && b->proto.ruled_out)
                key = "mqtt: dropped with MQTT 5 and 3.1.1";
        else if (v == LINK_PROTO_RETRY_V311)
                key = "mqtt: MQTT 5 dropped";
        n = strlen(reason);
        if (v == LINK_PROTO_NOT_VERSION)
                snprintf(reason + n, sizeof(reason) - n,
                         "; MQTT 3.1.1 was dropped as MQTT 5 was: the cause is not the MQTT version");
        else if (closed && !lost && !l->refusal[0] && b->proto.mode == LINK_PROTO_V5)
                snprintf(reason + n, sizeof(reason) - n,
                         " (mqtt.protocol \"5\": a broker that speaks only MQTT 3.1.1 does this too)");
        l->retry_same |= v == LINK_PROTO_RETRY_V311;
        snprintf(l->last_error, sizeof(l->last_error), "%s: %s", b->name, reason);
        l->tls_detail[0] = l->refusal[0] = '\0';
        link_drop_io(l);

        if (l->retry_same) {
                next = l->cur;
                backoff = true;
                l->retry_same = false;
        } else
                next = link_next_broker(l->n_brokers, l->cur, l->home, lost, &backoff);
        if (v == LINK_PROTO_RETRY_V311)
                snprintf(then, sizeof(then), "trying %s again with MQTT 3.1.1 (mqtt.protocol \"auto\")",
                         b->name);
        else if (l->n_brokers == 1)
                snprintf(then, sizeof(then), "reconnecting with backoff%s",
                         lost ? "" : " (0.5 s doubling to 60 s)");
        else if (!backoff)
                snprintf(then, sizeof(then), "trying %s next", l->brokers[next].name);
        else
                snprintf(then, sizeof(then),
                         "every broker failed; retrying from %s after a backoff (0.5 s doubling to 60 s)",
                         l->brokers[next].name);

        if (lost) {
                log_warn("lost the MQTT connection to %s: %s; %s", b->name, reason,
                         l->n_brokers == 1 ? then : "reconnecting with backoff, then the other brokers");
                plat_strlcpy(b->logged_key, "lost", sizeof(b->logged_key));
        } else if (strcmp(key, b->logged_key) != 0) {
                log_warn("MQTT broker %s: %s; %s, further failures %sfor the same cause are logged at debug "
                         "level",
                         b->name, reason, then, l->n_brokers > 1 ? "of this broker " : "");
                plat_strlcpy(b->logged_key, key, sizeof(b->logged_key));
        } else
                log_debug("MQTT broker %s: %s; %s", b->name, reason, then);
        schedule_next(l, next, backoff, lost);
        if (lost && l->on_lost) /* after: the link is no longer connected for what it publishes */
                l->on_lost(l, b->name, reason, l->userdata);
}

static void on_log(struct mosquitto *m, void *ud, int level, const char *msg) {
        struct link *l = ud;

        /* OpenSSL's reasons (certificate verify failed, unknown ca, ...) only arrive here. */
        if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING)) {
                if (!l->tls_detail[0])
                        plat_strlcpy(l->tls_detail, msg, sizeof(l->tls_detail));
                if (l->tls && l->state == LINK_CONNECTING)
                        link_tls_observe_error(&l->tls_seen, m);
        }
        log_debug("libmosquitto: %s", msg);
}

static void on_connect(struct mosquitto *m, void *ud, int rc, int flags, const mosquitto_property *props) {
        struct link *l = ud;
        const char *name = l->brokers[l->cur].name;
        char why[LINK_ERR_MAX];

        (void)m;
        (void)flags;
        (void)props;
        if (rc == MOSQ_ERR_SUCCESS) {
                bool was_failing = false;

                /* Every broker's failures are news again after a success: a later failover that
                 * meets them says so once more. */
                for (size_t i = 0; i < l->n_brokers; i++) {
                        was_failing |= l->brokers[i].logged_key[0] != '\0';
                        l->brokers[i].logged_key[0] = '\0';
                }
                l->state = LINK_CONNECTED;
                l->attempt = 0;
                l->home = l->cur;
                l->connects++;
                l->last_error[0] = l->tls_detail[0] = '\0';
                link_proto_connack(&l->brokers[l->cur].proto, link_protocol_version(l), true, 0);
                if (was_failing || l->connects == 1)
                        log_notice("connected to MQTT broker %s (MQTT %s: %s; %s)", name,
                                   link_proto_version_to_string(link_protocol_version(l)),
                                   l->brokers[l->cur].proto.why, l->tls ? "TLS, mutual auth" : "no TLS");
                else
                        log_info("reconnected to MQTT broker %s", name);
                if (l->on_connected)
                        l->on_connected(l, l->userdata);
                return;
        }
        if (link_proto_connack(&l->brokers[l->cur].proto, link_protocol_version(l), false, rc) ==
            LINK_PROTO_RETRY_V311) {
                log_notice("MQTT broker %s does not speak MQTT 5; using 3.1.1 (%s)", name,
                           l->brokers[l->cur].proto.why);
                l->attempt = 0;
                l->retry_same = true;
        }
        snprintf(why, sizeof(why), "broker refused the connection: %s",
                 l->protocol == MQTT_PROTOCOL_V5 ? mosquitto_reason_string(rc)
                                                 : mosquitto_connack_string(rc));
        /* libmosquitto closes the socket after the callback; the io handler sees that. */
        plat_strlcpy(l->refusal, why, sizeof(l->refusal));
}

static int on_misc(sd_event_source *s, uint64_t usec, void *ud) {
        struct link *l = ud;

        (void)s;
        sd_event_source_set_time(l->misc_timer, usec + MISC_INTERVAL_USEC);
        if (l->state != LINK_CONNECTING && l->state != LINK_CONNECTED)
                return 0;
        /* Keepalive: sends PINGREQ, and drops a connection whose PINGRESP is overdue. */
        mosquitto_loop_misc(l->mosq);
        if (mosquitto_socket(l->mosq) < 0) {
                attempt_failed(l, "no answer to keepalive ping (broker hung, or the network is gone)", false,
                               false);
                return 0;
        }
        update_io(l);
        return 0;
}

static int socket_error(int fd) {
        int err = 0;
        socklen_t len = sizeof(err);

        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                return errno;
        return err;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *ud) {
        struct link *l = ud;
        char what[LINK_ERR_MAX] = "";
        int rc = MOSQ_ERR_SUCCESS, err;
        bool reset = false;

        (void)s;
        if (l->tls && l->state == LINK_CONNECTING)
                link_tls_observe(&l->tls_seen, l->mosq);
        /* libmosquitto 2.0 retries a TLS handshake on a socket whose connect failed instead of
         * reporting it, so a refused or reset connection is detected here, from the socket. */
        if (revents & (EPOLLERR | EPOLLHUP)) {
                err = socket_error(fd);
                if (err || l->tcp_pending) {
                        /* A reset is never the version's doing: a broker that could not parse
                         * our CONNECT had read it, and closes in order. A broker refusing our
                         * certificate resets a connection whose CONNECT it left unread. */
                        reset = true;
                        /* The handshake's first write may already have consumed SO_ERROR. */
                        snprintf(what, sizeof(what), "%s%s", l->tcp_pending ? "cannot connect: " : "",
                                 err ? strerror(err) : "connection refused or reset");
                        goto failed;
                }
        }
        if (l->tcp_pending) {
                if (!(revents & EPOLLOUT))
                        return 0;
                /* TCP is up: drive the TLS handshake (libmosquitto does it from loop_read)
                 * and send CONNECT. From here on, write interest follows want_write. */
                l->tcp_pending = false;
                revents |= EPOLLIN;
        }
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
                rc = mosquitto_loop_read(l->mosq, 1);
        if (rc == MOSQ_ERR_SUCCESS && mosquitto_socket(l->mosq) >= 0 && (revents & EPOLLOUT))
                rc = mosquitto_loop_write(l->mosq, 1);
        if (rc == MOSQ_ERR_SUCCESS && mosquitto_socket(l->mosq) >= 0 && !(revents & (EPOLLHUP | EPOLLERR)))
                return update_io(l);

        if (rc == MOSQ_ERR_ERRNO)
                snprintf(what, sizeof(what), "%s", strerror(errno));
        else if (rc != MOSQ_ERR_SUCCESS)
                snprintf(what, sizeof(what), "%s", mosquitto_strerror(rc));
        else
                snprintf(what, sizeof(what), "connection closed by the broker");
failed:
        attempt_failed(l, what, l->tls && l->state == LINK_CONNECTING && !l->tcp_pending,
                       !reset && l->state == LINK_CONNECTING && !l->tcp_pending);
        return 0;
}

/* Watches the socket for writability only while libmosquitto has bytes queued. */
static int update_io(struct link *l) {
        int fd = mosquitto_socket(l->mosq);
        uint32_t ev = EPOLLIN | (l->tcp_pending || mosquitto_want_write(l->mosq) ? EPOLLOUT : 0);
        int r;

        if (fd < 0) {
                link_drop_io(l);
                return 0;
        }
        if (l->io) {
                int cur = sd_event_source_get_io_fd(l->io);

                if (cur == fd)
                        return sd_event_source_set_io_events(l->io, ev);
                link_drop_io(l);
        }
        /* libmosquitto opens its socket without SOCK_CLOEXEC: an enforcement hook must not inherit
         * the broker connection. */
        (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
        r = sd_event_add_io(l->event, &l->io, fd, ev, on_io, l);
        if (r < 0)
                return r;
        (void)sd_event_source_set_description(l->io, "mqtt-io");
        return 0;
}

static void connect_now(struct link *l) {
        const struct link_target *b;
        int rc;

        l->cur = l->next;
        b = &l->brokers[l->cur];
        l->protocol = b->proto.version == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311;
        mosquitto_int_option(l->mosq, MOSQ_OPT_PROTOCOL_VERSION, l->protocol);
        l->state = LINK_CONNECTING;
        l->tcp_pending = true;
        l->tls_detail[0] = l->refusal[0] = '\0';
        link_tls_seen_reset(&l->tls_seen);
        /* reconnect_async dials the host libmosquitto holds; another broker takes connect_async,
         * which also makes TLS verify the new host's name. */
        if (l->dialled == l->cur)
                rc = mosquitto_reconnect_async(l->mosq);
        else
                rc = mosquitto_connect_async(l->mosq, b->host, (int)b->port, (int)l->keepalive_s);
        /* After a failure, whichever call it was, libmosquitto's host is not known to be set. */
        l->dialled = rc == MOSQ_ERR_SUCCESS ? l->cur : SIZE_MAX;
        if (rc != MOSQ_ERR_SUCCESS) {
                int err = rc == MOSQ_ERR_ERRNO ? errno : 0;
                char what[LINK_ERR_MAX];
                bool handshake;

                /* On loopback the whole TLS handshake, and the broker's rejection, can happen
                 * inside this call. A key or certificate that cannot be loaded is ours, not the
                 * broker's doing. */
                handshake = l->tls && !strstr(l->tls_detail, "Unable to load") &&
                            (rc == MOSQ_ERR_TLS || l->tls_detail[0] || err == EPROTO || err == ECONNRESET ||
                             err == EPIPE);
                snprintf(what, sizeof(what), "%s", err ? strerror(err) : mosquitto_strerror(rc));
                attempt_failed(l, what, handshake, false);
                return;
        }
        if (update_io(l) < 0)
                attempt_failed(l, "cannot watch the MQTT socket", false, false);
}

static int on_retry(sd_event_source *s, uint64_t usec, void *ud) {
        (void)s;
        (void)usec;
        connect_now(ud);
        return 0;
}

/* Arms the retry timer for broker `next`: after the backoff delay, or in this loop's next
 * iteration when switching brokers within a round (not from here: this runs inside socket
 * handlers, and one attempt's failure must not nest the next attempt's). */
static void schedule_next(struct link *l, size_t next, bool backoff, bool lost) {
        uint64_t delay = 0, now;

        /* After a lost connection (a broker restart loses the whole fleet's) the first retry is
         * drawn over the reconnect window, so the nodes come back spread over it. */
        if (backoff) {
                delay = lost && l->spread_usec
                                ? pace_spread_usec(l->spread_usec, BACKOFF_FLOOR_USEC, pace_random_u32())
                                : link_backoff_usec(l->attempt, pace_random_u32());
                if (l->attempt < 64)
                        l->attempt++;
        }
        l->next = next;
        l->state = LINK_BACKOFF;
        sd_event_now(l->event, CLOCK_MONOTONIC, &now);
        if (l->retry_timer) {
                sd_event_source_set_time(l->retry_timer, now + delay);
                sd_event_source_set_enabled(l->retry_timer, SD_EVENT_ONESHOT);
        } else if (sd_event_add_time(l->event, &l->retry_timer, CLOCK_MONOTONIC, now + delay, 10000,
                                     on_retry, l) < 0) {
                log_err("cannot arm the MQTT reconnect timer; the link stays down");
                l->state = LINK_IDLE;
        }
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg,
                       const mosquitto_property *props) {
        struct link *l = ud;
        char *resp = NULL;
        void *corr = NULL;
        uint16_t corr_len = 0;

        (void)m;
        if (!l->on_message)
                return;
        (void)mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &resp, false);
        (void)mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &corr, &corr_len, false);
        l->on_message(l, msg->topic, msg->payload, (size_t)msg->payloadlen, msg->retain, resp, corr,
                      corr_len, l->userdata);
        free(resp);
        free(corr);
}

static void on_publish(struct mosquitto *m, void *ud, int mid, int reason, const mosquitto_property *props) {
        struct link *l = ud;

        (void)m;
        (void)props;
        if (mid == l->stop_mid)
                l->stop_acked = true;
        if (l->on_published)
                l->on_published(l, mid, reason, l->userdata);
}

static int setup_mosq(struct link *l) {
        int rc;

        l->mosq = mosquitto_new(l->client_id, true, l);
        if (!l->mosq)
                return errno ? -errno : -ENOMEM;
        mosquitto_int_option(l->mosq, MOSQ_OPT_PROTOCOL_VERSION, l->protocol);
        mosquitto_connect_v5_callback_set(l->mosq, on_connect);
        mosquitto_log_callback_set(l->mosq, on_log);
        mosquitto_message_v5_callback_set(l->mosq, on_message);
        mosquitto_publish_v5_callback_set(l->mosq, on_publish);
        rc = mosquitto_will_set(l->mosq, l->will_topic, (int)strlen(l->will_payload), l->will_payload, 1,
                                true);
        if (rc != MOSQ_ERR_SUCCESS)
                return link_errno_from_mosq(rc);
        if (l->tls) {
                rc = mosquitto_tls_set(l->mosq, l->ca_file, NULL, l->cert_file, l->key_file, NULL);
                if (rc == MOSQ_ERR_SUCCESS)
                        /* 1 = SSL_VERIFY_PEER; "tlsv1.2" means TLS 1.2 or newer. */
                        rc = mosquitto_tls_opts_set(l->mosq, 1, "tlsv1.2", NULL);
                if (rc == MOSQ_ERR_SUCCESS)
                        /* false: each broker's certificate must name the host dialled. */
                        rc = mosquitto_tls_insecure_set(l->mosq, false);
                if (rc != MOSQ_ERR_SUCCESS)
                        return link_errno_from_mosq(rc);
        }
        return 0;
}

/* Copies the broker list (or the single host/port) into l->brokers. */
static int copy_brokers(struct link *l, const struct link_options *o) {
        const struct link_broker single = { .host = o->host, .port = o->port };
        const struct link_broker *list = o->n_brokers ? o->brokers : &single;
        size_t n = o->n_brokers ? o->n_brokers : 1;

        if (n > LINK_MAX_BROKERS)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!list[i].host || !list[i].host[0] || strlen(list[i].host) > 253 || list[i].port < 1 ||
                    list[i].port > 65535)
                        return -EINVAL;
        l->brokers = calloc(n, sizeof(*l->brokers));
        if (!l->brokers)
                return -ENOMEM;
        l->n_brokers = n;
        for (size_t i = 0; i < n; i++) {
                struct link_target *b = &l->brokers[i];

                b->host = strdup(list[i].host);
                if (!b->host)
                        return -ENOMEM;
                b->port = list[i].port;
                link_proto_init(&b->proto, o->protocol);
                snprintf(b->name, sizeof(b->name), strchr(b->host, ':') ? "[%s]:%u" : "%s:%u", b->host,
                         b->port);
        }
        return 0;
}

int link_new(sd_event *e, const struct link_options *o, link_connected_fn on_connected, void *userdata,
             struct link **ret) {
        struct link *l;
        int r;

        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->dialled = SIZE_MAX;
        l->event = sd_event_ref(e);
        l->on_connected = on_connected;
        l->on_message = o->on_message;
        l->on_published = o->on_published;
        l->on_lost = o->on_lost;
        l->userdata = userdata;
        l->stop_mid = -1;
        l->keepalive_s = o->keepalive_s;
        l->spread_usec = (uint64_t)o->reconnect_window_ms * 1000;
        l->tls = o->tls;
        r = copy_brokers(l, o);
        if (r < 0) {
                link_free(l);
                return r;
        }
        l->protocol = l->brokers[0].proto.version == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311;
        l->client_id = strdup(o->client_id);
        l->will_topic = strdup(o->will_topic);
        l->will_payload = strdup(o->will_payload);
        if (o->tls) {
                l->ca_file = strdup(o->ca_file);
                l->cert_file = strdup(o->cert_file);
                l->key_file = strdup(o->key_file);
        }
        if (!l->client_id || !l->will_topic || !l->will_payload ||
            (o->tls && (!l->ca_file || !l->cert_file || !l->key_file))) {
                link_free(l);
                return -ENOMEM;
        }
        r = setup_mosq(l);
        if (r < 0) {
                link_free(l);
                return r;
        }
        *ret = l;
        return 0;
}

int link_start(struct link *l) {
        uint64_t now;
        int r;

        sd_event_now(l->event, CLOCK_MONOTONIC, &now);
        r = sd_event_add_time(l->event, &l->misc_timer, CLOCK_MONOTONIC, now + MISC_INTERVAL_USEC, 100000,
                              on_misc, l);
        if (r < 0)
                return r;
        sd_event_source_set_enabled(l->misc_timer, SD_EVENT_ON);
        connect_now(l);
        return 0;
}

int link_publish(struct link *l, const char *topic, const char *payload, size_t len, int qos, bool retain) {
        int rc;

        if (!l || l->state != LINK_CONNECTED)
                return -ENOTCONN;
        rc = mosquitto_publish(l->mosq, NULL, topic, (int)len, payload, qos, retain);
        if (rc != MOSQ_ERR_SUCCESS)
                return link_errno_from_mosq(rc);
        update_io(l);
        return 0;
}

int link_publish_ex(struct link *l, const char *topic, const void *payload, size_t len, int qos,
                    const void *corr, size_t corr_len, int *ret_mid) {
        mosquitto_property *props = NULL;
        int rc, mid = 0;

        if (!l || l->state != LINK_CONNECTED)
                return -ENOTCONN;
        if (corr_len > UINT16_MAX)
                return -EINVAL;
        if (corr_len && l->protocol == MQTT_PROTOCOL_V5) {
                rc = mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, corr,
                                                   (uint16_t)corr_len);
                if (rc != MOSQ_ERR_SUCCESS)
                        return link_errno_from_mosq(rc);
        }
        rc = mosquitto_publish_v5(l->mosq, &mid, topic, (int)len, payload, qos, false, props);
        mosquitto_property_free_all(&props);
        if (rc != MOSQ_ERR_SUCCESS)
                return link_errno_from_mosq(rc);
        update_io(l);
        if (ret_mid)
                *ret_mid = mid;
        return 0;
}

bool link_backlogged(const struct link *l) {
        return l && l->state == LINK_CONNECTED && mosquitto_want_write(l->mosq);
}

int link_subscribe(struct link *l, const char *topic, int qos) {
        int rc;

        if (!l || l->state != LINK_CONNECTED)
                return -ENOTCONN;
        rc = mosquitto_subscribe(l->mosq, NULL, topic, qos);
        if (rc != MOSQ_ERR_SUCCESS)
                return link_errno_from_mosq(rc);
        update_io(l);
        return 0;
}

void link_stop(struct link *l, const char *topic, const char *payload) {
        if (!l)
                return;
        if (l->state == LINK_CONNECTED) {
                /* Best effort within the shutdown budget: a few non-blocking writes. */
                /* The broker acknowledges the offline status last, after everything sent before it.
                 * Wait for that (up to 300 ms): acknowledgements left unread when the socket closes
                 * make the kernel reset the connection, and the broker would lose our DISCONNECT
                 * with it and publish the will ("connection lost") over the status. */
                l->stop_mid = -1;
                l->stop_acked = false;
                if (topic && payload &&
                    mosquitto_publish(l->mosq, &l->stop_mid, topic, (int)strlen(payload), payload, 1,
                                      true) == MOSQ_ERR_SUCCESS)
                        for (uint64_t end = plat_now_mono_usec() + 300000;
                             !l->stop_acked && mosquitto_socket(l->mosq) >= 0 && plat_now_mono_usec() < end;)
                                if (mosquitto_loop(l->mosq, 50, 1) != MOSQ_ERR_SUCCESS)
                                        break;
                mosquitto_disconnect(l->mosq);
                /* Everything queued goes out before the DISCONNECT (the last metering records, the
                 * offline status): the socket gets up to 300 ms to take it, then the broker sees a
                 * lost connection and publishes the will instead. */
                for (uint64_t end = plat_now_mono_usec() + 300000; mosquitto_socket(l->mosq) >= 0 &&
                                                                   mosquitto_want_write(l->mosq) &&
                                                                   plat_now_mono_usec() < end;) {
                        struct pollfd p = { .fd = mosquitto_socket(l->mosq), .events = POLLOUT };

                        if (poll(&p, 1, 50) < 0 && errno != EINTR)
                                break;
                        if (mosquitto_loop_write(l->mosq, 1) != MOSQ_ERR_SUCCESS)
                                break;
                }
        }
        link_drop_io(l);
        l->retry_timer = sd_event_source_disable_unref(l->retry_timer);
        l->misc_timer = sd_event_source_disable_unref(l->misc_timer);
        l->state = LINK_IDLE;
}

void link_free(struct link *l) {
        if (!l)
                return;
        link_drop_io(l);
        sd_event_source_disable_unref(l->retry_timer);
        sd_event_source_disable_unref(l->misc_timer);
        if (l->mosq)
                mosquitto_destroy(l->mosq);
        sd_event_unref(l->event);
        for (size_t i = 0; i < l->n_brokers; i++)
                free(l->brokers[i].host);
        free(l->brokers);
        free(l->ca_file);
        free(l->cert_file);
        free(l->key_file);
        free(l->client_id);
        free(l->will_topic);
        free(l->will_payload);
        free(l);
}

enum link_state link_get_state(const struct link *l) {
        return l ? l->state : LINK_IDLE;
}

const char *link_state_to_string(enum link_state s) {
        switch (s) {
        case LINK_IDLE:
                return "idle";
        case LINK_CONNECTING:
                return "connecting";
        case LINK_CONNECTED:
                return "connected";
        case LINK_BACKOFF:
                return "backoff";
        }
        return "?";
}

const char *link_last_error(const struct link *l) {
        return l ? l->last_error : "";
}

const char *link_broker(const struct link *l) {
        return l ? l->brokers[l->cur].name : "";
}

int link_protocol_version(const struct link *l) {
        return l->protocol == MQTT_PROTOCOL_V5 ? 5 : 4;
}

const struct link_proto *link_broker_proto(const struct link *l, size_t i, const char **ret_name) {
        if (!l || i >= l->n_brokers)
                return NULL;
        *ret_name = l->brokers[i].name;
        return &l->brokers[i].proto;
}

uint64_t link_connects(const struct link *l) {
        return l ? l->connects : 0;
}
