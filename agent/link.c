/* link.c: the MQTT connection to the central broker, driven from the sd-event loop. */
#include "link.h"

#include "log.h"
#include "strutil.h"

#include <errno.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/random.h>

#define BACKOFF_BASE_USEC (500 * 1000ULL)
#define BACKOFF_CAP_USEC (60 * 1000 * 1000ULL)
#define BACKOFF_FLOOR_USEC (100 * 1000ULL)
#define MISC_INTERVAL_USEC (1000 * 1000ULL)
#define LINK_ERR_MAX 512

struct link {
        sd_event *event;
        struct mosquitto *mosq;
        sd_event_source *io;
        sd_event_source *misc_timer;
        sd_event_source *retry_timer;
        enum link_state state;
        bool tcp_pending; /* non-blocking TCP connect not yet complete */
        unsigned attempt;
        int protocol;
        uint64_t connects;
        link_connected_fn on_connected;
        link_message_fn on_message;
        link_published_fn on_published;
        void *userdata;

        char *host, *ca_file, *cert_file, *key_file, *client_id, *will_topic, *will_payload;
        unsigned port, keepalive_s;
        bool tls;

        char tls_detail[LINK_ERR_MAX]; /* first error libmosquitto logged during this attempt */
        char refusal[LINK_ERR_MAX];    /* the broker's CONNACK reason, when it said no */
        char last_error[LINK_ERR_MAX]; /* reason of the last failed attempt */
        char logged_key[LINK_ERR_MAX]; /* cause of the last failure logged as a warning */
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

static uint32_t random_u32(void) {
        uint32_t v;

        if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v))
                v = (uint32_t)random();
        return v;
}

static void link_drop_io(struct link *l) {
        l->io = sd_event_source_disable_unref(l->io);
}

static void schedule_retry(struct link *l);

static int update_io(struct link *l);

/* Turns a failed attempt into the reason operators read, and a key that stays the same for the
 * same cause, so a broker that keeps failing the same way is one warning, not one per retry.
 * `handshake` says the TCP connection was up with TLS on and no CONNACK came: with TLS 1.3 a
 * broker rejects the client certificate after the client's side of the handshake is done, and
 * what the client sees then varies (reset, EOF, an alert) from one attempt to the next. */
static void attempt_failed(struct link *l, const char *what, bool handshake) {
        char reason[LINK_ERR_MAX];
        const char *key;
        size_t n;

        plat_strlcpy(reason, l->refusal[0] ? l->refusal : what, sizeof(reason));
        n = strlen(reason);
        if (n && reason[n - 1] == '.') /* libmosquitto's strings end in '.' */
                reason[n - 1] = '\0';
        if (l->refusal[0]) {
                key = reason;
        } else if (handshake && strstr(l->tls_detail, "certificate verify failed")) {
                snprintf(reason, sizeof(reason),
                         "the broker's certificate is not trusted by mqtt.tls.ca_file or does not name %s "
                         "(%s)",
                         l->host, l->tls_detail);
                key = "tls: broker certificate not trusted";
        } else if (handshake) {
                n = strlen(reason);
                if (l->tls_detail[0])
                        snprintf(reason + n, sizeof(reason) - n, " (%s)", l->tls_detail);
                n = strlen(reason);
                snprintf(reason + n, sizeof(reason) - n,
                         " before CONNACK: the broker dropped the connection; does it trust this client "
                         "certificate (mqtt.tls.cert_file)?");
                key = "tls: dropped before CONNACK";
        } else {
                key = reason;
                if (l->tls_detail[0]) {
                        n = strlen(reason);
                        snprintf(reason + n, sizeof(reason) - n, " (%s)", l->tls_detail);
                        key = what;
                }
        }
        plat_strlcpy(l->last_error, reason, sizeof(l->last_error));
        l->tls_detail[0] = l->refusal[0] = '\0';
        link_drop_io(l);
        if (l->state == LINK_CONNECTED) {
                log_warn("lost the MQTT connection to %s:%u: %s; reconnecting with backoff", l->host,
                         l->port, l->last_error);
                plat_strlcpy(l->logged_key, "lost", sizeof(l->logged_key));
        } else if (strcmp(key, l->logged_key) != 0) {
                log_warn("MQTT broker %s:%u: %s; reconnecting with backoff (0.5 s doubling to 60 s), "
                         "further failures for the same cause are logged at debug level",
                         l->host, l->port, l->last_error);
                plat_strlcpy(l->logged_key, key, sizeof(l->logged_key));
        } else
                log_debug("MQTT broker %s:%u: %s", l->host, l->port, l->last_error);
        schedule_retry(l);
}

static void on_log(struct mosquitto *m, void *ud, int level, const char *msg) {
        struct link *l = ud;

        (void)m;
        /* OpenSSL's reasons (certificate verify failed, unknown ca, ...) only arrive here. */
        if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING)) {
                if (!l->tls_detail[0])
                        plat_strlcpy(l->tls_detail, msg, sizeof(l->tls_detail));
        }
        log_debug("libmosquitto: %s", msg);
}

static void on_connect(struct mosquitto *m, void *ud, int rc, int flags, const mosquitto_property *props) {
        struct link *l = ud;
        char why[LINK_ERR_MAX];

        (void)m;
        (void)flags;
        (void)props;
        if (rc == MOSQ_ERR_SUCCESS) {
                bool was_failing = l->logged_key[0] != '\0';

                l->state = LINK_CONNECTED;
                l->attempt = 0;
                l->connects++;
                l->last_error[0] = l->logged_key[0] = l->tls_detail[0] = '\0';
                if (was_failing || l->connects == 1)
                        log_notice("connected to MQTT broker %s:%u (MQTT %s, %s)", l->host, l->port,
                                   l->protocol == MQTT_PROTOCOL_V5 ? "5" : "3.1.1",
                                   l->tls ? "TLS, mutual auth" : "no TLS");
                else
                        log_info("reconnected to MQTT broker %s:%u", l->host, l->port);
                if (l->on_connected)
                        l->on_connected(l, l->userdata);
                return;
        }
        /* A 3.1.1-only broker answers a v5 CONNECT with return code 1 (unacceptable protocol
         * version); v5 brokers may say 132. Fall back once, then stay on 3.1.1. */
        if (l->protocol == MQTT_PROTOCOL_V5 && (rc == 1 || rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION)) {
                log_notice("MQTT broker %s:%u does not speak MQTT 5; using 3.1.1", l->host, l->port);
                l->protocol = MQTT_PROTOCOL_V311;
                mosquitto_int_option(l->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
                l->attempt = 0;
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
                attempt_failed(l, "no answer to keepalive ping (broker hung, or the network is gone)",
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

        (void)s;
        /* libmosquitto 2.0 retries a TLS handshake on a socket whose connect failed instead of
         * reporting it, so a refused or reset connection is detected here, from the socket. */
        if (revents & (EPOLLERR | EPOLLHUP)) {
                err = socket_error(fd);
                if (err || l->tcp_pending) {
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
        attempt_failed(l, what, l->tls && l->state == LINK_CONNECTING && !l->tcp_pending);
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
        r = sd_event_add_io(l->event, &l->io, fd, ev, on_io, l);
        if (r < 0)
                return r;
        (void)sd_event_source_set_description(l->io, "mqtt-io");
        return 0;
}

static void connect_now(struct link *l) {
        int rc;

        l->state = LINK_CONNECTING;
        l->tcp_pending = true;
        l->tls_detail[0] = l->refusal[0] = '\0';
        rc = l->connects == 0 && l->attempt == 0
                     ? mosquitto_connect_async(l->mosq, l->host, (int)l->port, (int)l->keepalive_s)
                     : mosquitto_reconnect_async(l->mosq);
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
                attempt_failed(l, what, handshake);
                return;
        }
        if (update_io(l) < 0)
                attempt_failed(l, "cannot watch the MQTT socket", false);
}

static int on_retry(sd_event_source *s, uint64_t usec, void *ud) {
        (void)s;
        (void)usec;
        connect_now(ud);
        return 0;
}

static void schedule_retry(struct link *l) {
        uint64_t delay = link_backoff_usec(l->attempt, random_u32()), now;

        if (l->attempt < 64)
                l->attempt++;
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
        l->on_message(l, msg->topic, msg->payload, (size_t)msg->payloadlen, resp, corr, corr_len,
                      l->userdata);
        free(resp);
        free(corr);
}

static void on_publish(struct mosquitto *m, void *ud, int mid, int reason, const mosquitto_property *props) {
        struct link *l = ud;

        (void)m;
        (void)props;
        if (l->on_published)
                l->on_published(l, mid, reason < 0x80, l->userdata);
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
                        /* false: the broker's certificate must name mqtt.host. */
                        rc = mosquitto_tls_insecure_set(l->mosq, false);
                if (rc != MOSQ_ERR_SUCCESS)
                        return link_errno_from_mosq(rc);
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
        l->event = sd_event_ref(e);
        l->on_connected = on_connected;
        l->on_message = o->on_message;
        l->on_published = o->on_published;
        l->userdata = userdata;
        l->protocol = MQTT_PROTOCOL_V5;
        l->port = o->port;
        l->keepalive_s = o->keepalive_s;
        l->tls = o->tls;
        l->host = strdup(o->host);
        l->client_id = strdup(o->client_id);
        l->will_topic = strdup(o->will_topic);
        l->will_payload = strdup(o->will_payload);
        if (o->tls) {
                l->ca_file = strdup(o->ca_file);
                l->cert_file = strdup(o->cert_file);
                l->key_file = strdup(o->key_file);
        }
        if (!l->host || !l->client_id || !l->will_topic || !l->will_payload ||
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

        if (l->state != LINK_CONNECTED)
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

        if (l->state != LINK_CONNECTED)
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

int link_subscribe(struct link *l, const char *topic, int qos) {
        int rc;

        if (l->state != LINK_CONNECTED)
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
                if (topic && payload)
                        mosquitto_publish(l->mosq, NULL, topic, (int)strlen(payload), payload, 1, true);
                mosquitto_disconnect(l->mosq);
                for (int i = 0; i < 8 && mosquitto_socket(l->mosq) >= 0 && mosquitto_want_write(l->mosq);
                     i++)
                        if (mosquitto_loop_write(l->mosq, 1) != MOSQ_ERR_SUCCESS)
                                break;
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
        free(l->host);
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

int link_protocol_version(const struct link *l) {
        return l->protocol == MQTT_PROTOCOL_V5 ? 5 : 4;
}

uint64_t link_connects(const struct link *l) {
        return l ? l->connects : 0;
}
