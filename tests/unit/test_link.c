/* test_link.c: MQTT link pieces that need no real broker: backoff, failover order, error mapping,
 * PUBACK reason codes (from a scripted broker, mqtt_fx). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "link.h"
#include "link_tls.h"
#include "mqtt_fx.h"

#include <arpa/inet.h>
#include <errno.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* A link to 127.0.0.1:1, where nothing listens. */
static const struct link_options base_options = {
        .host = "127.0.0.1",
        .port = 1,
        .tls = false,
        .keepalive_s = 30,
        .client_id = "t",
        .will_topic = "a/b/status",
        .will_payload = "{}",
};

/* Tests that run a link get an event loop in *state, and libmosquitto initialised. */
static int loop_setup(void **state) {
        sd_event *e = NULL;

        mosquitto_lib_init();
        if (sd_event_new(&e) < 0)
                return -1;
        *state = e;
        return 0;
}

static int loop_teardown(void **state) {
        sd_event_unref(*state);
        mosquitto_lib_cleanup();
        return 0;
}

static void test_backoff_cap_doubles_from_half_a_second_to_a_minute(void **state) {
        (void)state;
        /* The largest draw at each attempt is the cap: 0.5 s, 1 s, 2 s ... then 60 s. */
        assert_int_equal(link_backoff_usec(0, UINT32_MAX) / 1000, 499);
        assert_int_equal(link_backoff_usec(1, UINT32_MAX) / 1000, 999);
        assert_int_equal(link_backoff_usec(2, UINT32_MAX) / 1000, 1999);
        assert_int_equal(link_backoff_usec(6, UINT32_MAX) / 1000, 31999);
        assert_int_equal(link_backoff_usec(7, UINT32_MAX) / 1000, 59999);
        assert_int_equal(link_backoff_usec(200, UINT32_MAX) / 1000, 59999);
}

static void test_backoff_is_full_jitter_with_a_floor(void **state) {
        (void)state;
        /* Full jitter: uniform over [0, cap), so the midpoint draw gives half the cap... */
        assert_int_equal(link_backoff_usec(7, UINT32_MAX / 2 + 1), 30000000);
        /* ...but never under 100 ms, so a dead broker is not hammered. */
        assert_int_equal(link_backoff_usec(0, 0), 100000);
        assert_int_equal(link_backoff_usec(30, 0), 100000);
}

static void test_mosquitto_errors_map_to_errno(void **state) {
        (void)state;
        assert_int_equal(link_errno_from_mosq(MOSQ_ERR_SUCCESS), 0);
        assert_int_equal(link_errno_from_mosq(MOSQ_ERR_NOMEM), -ENOMEM);
        assert_int_equal(link_errno_from_mosq(MOSQ_ERR_NO_CONN), -ENOTCONN);
        assert_int_equal(link_errno_from_mosq(MOSQ_ERR_TLS), -EPROTO);
        assert_int_equal(link_errno_from_mosq(MOSQ_ERR_AUTH), -ECONNREFUSED);
        assert_int_equal(link_errno_from_mosq(MOSQ_ERR_PAYLOAD_SIZE), -EMSGSIZE);
        assert_int_equal(link_errno_from_mosq(MOSQ_ERR_KEEPALIVE), -ETIMEDOUT);
        errno = EHOSTDOWN;
        assert_int_equal(link_errno_from_mosq(MOSQ_ERR_ERRNO), -EHOSTDOWN);
        assert_int_equal(link_errno_from_mosq(9999), -EIO);
}

static void test_unstarted_link_refuses_publish_and_reports_idle(void **state) {
        struct link_options o = base_options;
        sd_event *e = *state;
        struct link *l = NULL;

        assert_int_equal(link_new(e, &o, NULL, NULL, &l), 0);
        assert_int_equal(link_get_state(l), LINK_IDLE);
        assert_string_equal(link_state_to_string(link_get_state(l)), "idle");
        assert_int_equal(link_publish(l, "a/b/t", "x", 1, 0, false), -ENOTCONN);
        assert_int_equal(link_protocol_version(l), 5);
        assert_int_equal(link_connects(l), 0);
        link_stop(l, NULL, NULL);
        link_free(l);
        link_free(NULL);
}

static void test_refused_connection_goes_to_backoff_with_reason(void **state) {
        struct link_options o = base_options;
        sd_event *e = *state;
        struct link *l = NULL;

        assert_int_equal(link_new(e, &o, NULL, NULL, &l), 0);
        assert_int_equal(link_start(l), 0);
        /* Nothing listens on port 1: the attempt fails without blocking the loop. */
        for (int i = 0; i < 20 && link_get_state(l) != LINK_BACKOFF; i++)
                sd_event_run(e, 100000);
        assert_int_equal(link_get_state(l), LINK_BACKOFF);
        assert_non_null(strstr(link_last_error(l), "refused"));
        link_free(l);
}

/* One step of the failover rule: from (n, current, home, lost) to (want, backoff). */
struct next_case {
        size_t n, current, home;
        bool lost;
        size_t want;
        bool backoff;
};

static void expect_next(const struct next_case *cases, size_t n_cases) {
        for (size_t i = 0; i < n_cases; i++) {
                const struct next_case *k = &cases[i];
                bool backoff = !k->backoff;

                print_message("case %zu: n=%zu current=%zu home=%zu lost=%d\n", i, k->n, k->current, k->home,
                              k->lost);
                assert_int_equal(link_next_broker(k->n, k->current, k->home, k->lost, &backoff), k->want);
                assert_int_equal(backoff, k->backoff);
        }
}

static void test_next_broker_follows_the_failover_rule(void **state) {
        static const struct next_case cases[] = {
                /* First round, from broker 0: 0 -> 1 -> 2 at once, then 0 after the backoff. */
                { 3, 0, 0, false, 1, false },
                { 3, 1, 0, false, 2, false },
                { 3, 2, 0, false, 0, true },
                /* A round that starts at broker 1 (the last that worked) wraps round to it. */
                { 3, 1, 1, false, 2, false },
                { 3, 2, 1, false, 0, false },
                { 3, 0, 1, false, 1, true },
                /* A lost connection: the same broker after the backoff; if it fails, the others
                 * follow at once. */
                { 3, 2, 2, true, 2, true },
                { 3, 2, 2, false, 0, false },
                /* One broker: always it, always after the backoff. */
                { 1, 0, 0, false, 0, true },
                { 1, 0, 0, true, 0, true },
                /* Out of range: start over. */
                { 2, 5, 0, false, 0, true },
        };

        (void)state;
        expect_next(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_broker_list_is_checked_and_named(void **state) {
        struct link_broker many[LINK_MAX_BROKERS + 1];
        struct link_options o = base_options;
        const struct link_broker v6[] = { { "::1", 8883 }, { "mqtt-2", 1 } };
        const struct link_broker bad_port[] = { { "a", 0 } }, no_host[] = { { NULL, 1 } };
        sd_event *e = *state;
        struct link *l = NULL;

        /* Without a list, host and port are the one broker. */
        assert_int_equal(link_new(e, &o, NULL, NULL, &l), 0);
        assert_string_equal(link_broker(l), "127.0.0.1:1");
        link_free(l);
        o.brokers = v6;
        o.n_brokers = 2;
        assert_int_equal(link_new(e, &o, NULL, NULL, &l), 0);
        assert_string_equal(link_broker(l), "[::1]:8883");
        link_free(l);
        l = NULL;
        for (size_t i = 0; i < LINK_MAX_BROKERS + 1; i++)
                many[i] = (struct link_broker){ "h", (unsigned)i + 1 };
        o.brokers = many;
        o.n_brokers = LINK_MAX_BROKERS + 1;
        assert_int_equal(link_new(e, &o, NULL, NULL, &l), -EINVAL);
        o.brokers = bad_port;
        o.n_brokers = 1;
        assert_int_equal(link_new(e, &o, NULL, NULL, &l), -EINVAL);
        o.brokers = no_host;
        assert_int_equal(link_new(e, &o, NULL, NULL, &l), -EINVAL);
        assert_null(l);
        assert_string_equal(link_broker(NULL), "");
}

/* A loopback TCP socket bound to a free port: connections to it are refused until it listens. */
static int bound_socket(unsigned *ret_port) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
        *ret_port = ntohs(a.sin_port);
        return fd;
}

/* A broker just good enough for the link: accepts one client and answers CONNACK (MQTT 5,
 * success, no properties) without reading what the client sends. */
struct fake_broker {
        int listen_fd, conn_fd;
        sd_event_source *src;
};

static int fake_broker_accept(sd_event_source *s, int fd, uint32_t revents, void *ud) {
        static const unsigned char connack[] = { 0x20, 0x03, 0x00, 0x00, 0x00 };
        struct fake_broker *f = ud;

        (void)s;
        (void)revents;
        f->conn_fd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        assert_true(f->conn_fd >= 0);
        assert_int_equal(write(f->conn_fd, connack, sizeof(connack)), (ssize_t)sizeof(connack));
        return 0;
}

static void fake_broker_listen(sd_event *e, struct fake_broker *f, int fd) {
        *f = (struct fake_broker){ .listen_fd = fd, .conn_fd = -1 };
        assert_int_equal(listen(fd, 4), 0);
        assert_int_equal(sd_event_add_io(e, &f->src, fd, EPOLLIN, fake_broker_accept, f), 0);
}

/* Gone: the connection reset, the port refusing. */
static void fake_broker_close(struct fake_broker *f) {
        f->src = sd_event_source_disable_unref(f->src);
        if (f->conn_fd >= 0)
                close(f->conn_fd);
        close(f->listen_fd);
        f->conn_fd = f->listen_fd = -1;
}

/* Runs the loop until the link is connected (true) or `ms` pass (false), appending the broker
 * of each failed attempt that differs from the one before to seen ("name|" each). */
static bool run_until_connected(sd_event *e, struct link *l, int ms, char *seen, size_t seen_len) {
        char last[600] = "";

        for (int i = 0; i < ms / 5; i++) {
                const char *err = link_last_error(l);

                if (link_get_state(l) == LINK_CONNECTED)
                        return true;
                if (*err && strcmp(err, last) != 0) {
                        size_t n = strlen(seen);

                        snprintf(last, sizeof(last), "%s", err);
                        snprintf(seen + n, seen_len - n, "%.*s|", (int)strcspn(err, " ") - 1, err);
                }
                sd_event_run(e, 5000);
        }
        return link_get_state(l) == LINK_CONNECTED;
}

static void test_failover_tries_in_order_stays_and_restarts_from_the_working_broker(void **state) {
        struct link_options o = base_options;
        struct link_broker list[2];
        struct fake_broker fb = { .listen_fd = -1, .conn_fd = -1 }, fa = { .listen_fd = -1, .conn_fd = -1 };
        unsigned pa, pb;
        int sa = bound_socket(&pa), sb = bound_socket(&pb);
        char a[32], b[32], seen[512] = "", want[128];
        sd_event *e = *state;
        struct link *l = NULL;

        snprintf(a, sizeof(a), "127.0.0.1:%u", pa);
        snprintf(b, sizeof(b), "127.0.0.1:%u", pb);
        list[0] = (struct link_broker){ "127.0.0.1", pa };
        list[1] = (struct link_broker){ "127.0.0.1", pb };
        o.brokers = list;
        o.n_brokers = 2;
        assert_int_equal(link_new(e, &o, NULL, NULL, &l), 0);

        /* A refuses, B answers: the link moves on to B. */
        fake_broker_listen(e, &fb, sb);
        assert_int_equal(link_start(l), 0);
        assert_true(run_until_connected(e, l, 3000, seen, sizeof(seen)));
        assert_string_equal(link_broker(l), b);
        snprintf(want, sizeof(want), "%s|", a);
        assert_string_equal(seen, want);
        assert_string_equal(link_last_error(l), "");

        /* A comes up: the link stays on B. */
        fake_broker_listen(e, &fa, sa);
        for (int i = 0; i < 20; i++)
                sd_event_run(e, 5000);
        assert_int_equal(link_get_state(l), LINK_CONNECTED);
        assert_string_equal(link_broker(l), b);
        assert_int_equal(link_connects(l), 1);

        /* B goes: the link tries B again first, then A, and lands on A. */
        fake_broker_close(&fb);
        seen[0] = '\0';
        for (int i = 0; i < 100 && link_get_state(l) == LINK_CONNECTED; i++)
                sd_event_run(e, 5000);
        assert_true(run_until_connected(e, l, 3000, seen, sizeof(seen)));
        assert_string_equal(link_broker(l), a);
        assert_int_equal(link_connects(l), 2);
        /* B's loss, then B refusing (another message, the same broker), then A. */
        snprintf(want, sizeof(want), "%s|%s|", b, b);
        assert_string_equal(seen, want);

        link_free(l);
        fake_broker_close(&fa);
}

static void test_refused_brokers_are_retried_in_order_with_backoff_between_rounds(void **state) {
        struct link_options o = base_options;
        struct link_broker list[2];
        unsigned pa, pb;
        int sa = bound_socket(&pa), sb = bound_socket(&pb);
        char last[600] = "", seen[512] = "", want[256];
        uint64_t t_b = 0, gap = 0;
        int attempts = 0;
        sd_event *e = *state;
        struct link *l = NULL;

        list[0] = (struct link_broker){ "127.0.0.1", pa };
        list[1] = (struct link_broker){ "127.0.0.1", pb };
        o.brokers = list;
        o.n_brokers = 2;
        assert_int_equal(link_new(e, &o, NULL, NULL, &l), 0);
        assert_int_equal(link_start(l), 0);
        /* Two rounds: A, B, (backoff), A, B. */
        for (int i = 0; i < 600 && attempts < 4; i++) {
                const char *err = link_last_error(l);
                uint64_t now;

                sd_event_now(e, CLOCK_MONOTONIC, &now);
                if (*err && strcmp(err, last) != 0) {
                        size_t n = strlen(seen);

                        snprintf(last, sizeof(last), "%s", err);
                        snprintf(seen + n, sizeof(seen) - n, "%.*s|", (int)strcspn(err, " ") - 1, err);
                        attempts++;
                        if ((unsigned)atoi(strchr(err, ':') + 1) == pb && !t_b)
                                t_b = now;
                        else if (t_b && !gap)
                                gap = now - t_b;
                }
                sd_event_run(e, 5000);
        }
        snprintf(want, sizeof(want), "127.0.0.1:%u|127.0.0.1:%u|127.0.0.1:%u|127.0.0.1:%u|", pa, pb, pa, pb);
        assert_string_equal(seen, want);
        /* Between rounds the backoff waits at least its 100 ms floor. */
        assert_true(gap >= 100000);
        assert_int_equal(link_connects(l), 0);
        link_free(l);
        close(sa);
        close(sb);
}

/* What on_published reported, in order. */
struct acks {
        size_t n;
        int mid[8], reason[8];
};

static void record_ack(struct link *l, int mid, int reason, void *ud) {
        struct acks *a = ud;

        (void)l;
        if (a->n < sizeof(a->mid) / sizeof(a->mid[0])) {
                a->mid[a->n] = mid;
                a->reason[a->n] = reason;
        }
        a->n++;
}

/* Publishes at QoS 1 with the broker answering `reason`; returns the mid once its PUBACK came. */
static int publish_answered(sd_event *e, struct link *l, struct mqtt_fx *b, struct acks *a, int reason) {
        size_t before = a->n;
        int mid = -1;

        b->puback_reason = reason;
        assert_int_equal(link_publish_ex(l, "a/b/metering", "{}", 2, 1, NULL, 0, &mid), 0);
        for (int i = 0; i < 400 && a->n == before; i++)
                sd_event_run(e, 5000);
        assert_int_equal(a->n, before + 1);
        return mid;
}

/* The link passes the reason code up as it came: 0x10 (no matching subscribers) is not "ok" for
 * every caller; metering must not take it for a delivery (delivery.h). */
static void test_puback_reason_codes_reach_on_published(void **state) {
        struct link_options o = base_options;
        struct acks acks = { 0 };
        struct mqtt_fx *b = NULL;
        sd_event *e = *state;
        struct link *l = NULL;
        int mids[3];

        assert_int_equal(mqtt_fx_start(e, &b), 0);
        o.port = b->port;
        o.on_published = record_ack;
        assert_int_equal(link_new(e, &o, NULL, &acks, &l), 0);
        assert_int_equal(link_start(l), 0);
        for (int i = 0; i < 400 && link_get_state(l) != LINK_CONNECTED; i++)
                sd_event_run(e, 5000);
        assert_int_equal(link_get_state(l), LINK_CONNECTED);
        assert_int_equal(link_protocol_version(l), 5);
        mids[0] = publish_answered(e, l, b, &acks, 0x10);
        mids[1] = publish_answered(e, l, b, &acks, 0);
        mids[2] = publish_answered(e, l, b, &acks, 0x87);
        for (size_t i = 0; i < 3; i++)
                assert_int_equal(acks.mid[i], mids[i]);
        assert_int_equal(acks.reason[0], 0x10);
        assert_int_equal(acks.reason[1], 0);
        assert_int_equal(acks.reason[2], 0x87);
        assert_int_equal(b->n_publishes, 3);
        assert_string_equal(b->topic, "a/b/metering");
        link_free(l);
        mqtt_fx_free(b);
}

/* Runs the loop until the link connects or the broker has seen `connects` CONNECTs. */
static void run_until(sd_event *e, struct link *l, struct mqtt_fx *b, size_t connects) {
        for (int i = 0; i < 1000 && link_get_state(l) != LINK_CONNECTED && b->n_connects < connects; i++)
                sd_event_run(e, 5000);
}

/* Runs the loop until the broker has seen `connects` CONNECTs and the link waits to retry. */
static void run_until_backoff(sd_event *e, struct link *l, struct mqtt_fx *b, size_t connects) {
        run_until(e, l, b, connects);
        for (int i = 0; i < 100 && link_get_state(l) != LINK_BACKOFF; i++)
                sd_event_run(e, 5000);
}

static struct link *proto_link(sd_event *e, struct mqtt_fx *b, enum link_proto_mode mode,
                               struct acks *acks) {
        struct link_options o = base_options;
        struct link *l = NULL;

        o.port = b->port;
        o.protocol = mode;
        o.on_published = record_ack;
        assert_int_equal(link_new(e, &o, NULL, acks, &l), 0);
        assert_int_equal(link_start(l), 0);
        return l;
}

/* RabbitMQ 3.10 closes the connection on an MQTT 5 CONNECT, with no CONNACK: "auto" tries 3.1.1
 * on the same broker, says why, and keeps 3.1.1 for that broker when it comes back. */
static void test_auto_falls_back_to_3_1_1_when_mqtt5_connect_is_dropped(void **state) {
        const struct link_proto *p;
        struct acks acks = { 0 };
        struct mqtt_fx *b = NULL;
        sd_event *e = *state;
        const char *name;
        struct link *l;
        int mid;

        assert_int_equal(mqtt_fx_start(e, &b), 0);
        b->drop_v5 = true;
        l = proto_link(e, b, LINK_PROTO_AUTO, &acks);
        run_until(e, l, b, 99);
        assert_int_equal(link_get_state(l), LINK_CONNECTED);
        assert_int_equal(link_protocol_version(l), 4);
        assert_int_equal(b->n_connects, 2);
        assert_int_equal(b->levels[0], 5);
        assert_int_equal(b->levels[1], 4);
        p = link_broker_proto(l, 0, &name);
        assert_non_null(p);
        assert_true(p->known);
        assert_non_null(strstr(p->why, "without a CONNACK"));
        assert_null(link_broker_proto(l, 1, &name));
        /* 3.1.1 works: QoS 1 is acknowledged (no reason code in 3.1.1). */
        mid = publish_answered(e, l, b, &acks, 0x10);
        assert_int_equal(acks.mid[0], mid);
        assert_int_equal(acks.reason[0], 0);

        /* The broker goes and comes back: the next CONNECT is 3.1.1 at once. */
        mqtt_fx_drop(b);
        for (int i = 0; i < 100 && link_get_state(l) == LINK_CONNECTED; i++)
                sd_event_run(e, 5000);
        run_until(e, l, b, 99);
        assert_int_equal(link_get_state(l), LINK_CONNECTED);
        assert_int_equal(b->n_connects, 3);
        assert_int_equal(b->levels[2], 4);
        link_free(l);
        mqtt_fx_free(b);
}

/* A broker that drops every CONNECT: 3.1.1 does no better, so the version is not the cause, and
 * the link says so and goes back to MQTT 5. */
static void test_auto_says_the_cause_is_not_the_version_when_3_1_1_is_dropped_too(void **state) {
        struct mqtt_fx *b = NULL;
        sd_event *e = *state;
        struct link *l;

        assert_int_equal(mqtt_fx_start(e, &b), 0);
        b->drop_all = true;
        l = proto_link(e, b, LINK_PROTO_AUTO, NULL);
        run_until_backoff(e, l, b, 2);
        assert_int_equal(b->levels[0], 5);
        assert_int_equal(b->levels[1], 4);
        assert_non_null(strstr(link_last_error(l), "MQTT 3.1.1 was dropped as MQTT 5 was: the cause is not "
                                                   "the MQTT version"));
        run_until(e, l, b, 3);
        assert_int_equal(b->levels[2], 5);
        assert_int_equal(link_connects(l), 0);
        link_free(l);
        mqtt_fx_free(b);
}

/* mqtt.protocol "5" never falls back, and says a 3.1.1-only broker would do this; "3.1.1" never
 * speaks 5. */
static void test_explicit_protocol_is_the_only_one_spoken(void **state) {
        struct mqtt_fx *b = NULL;
        sd_event *e = *state;
        struct link *l;

        assert_int_equal(mqtt_fx_start(e, &b), 0);
        b->drop_v5 = true;
        l = proto_link(e, b, LINK_PROTO_V5, NULL);
        run_until_backoff(e, l, b, 2);
        assert_int_equal(b->levels[0], 5);
        assert_int_equal(b->levels[1], 5);
        assert_non_null(strstr(link_last_error(l), "a broker that speaks only MQTT 3.1.1 does this too"));
        link_free(l);

        b->n_connects = 0;
        l = proto_link(e, b, LINK_PROTO_V311, NULL);
        run_until(e, l, b, 99);
        assert_int_equal(link_get_state(l), LINK_CONNECTED);
        assert_int_equal(link_protocol_version(l), 4);
        assert_int_equal(b->n_connects, 1);
        assert_int_equal(b->levels[0], 4);
        link_free(l);
        mqtt_fx_free(b);
}

/* The decisions alone: a drop before the transport was up (a refused client certificate) or
 * from a broker whose version is known says nothing about the version; CONNACK code 1 does. */
static void test_proto_falls_back_only_on_what_is_the_versions_doing(void **state) {
        struct link_proto p;
        enum link_proto_mode m;

        (void)state;
        link_proto_init(&p, LINK_PROTO_AUTO);
        assert_int_equal(p.version, 5);
        assert_int_equal(link_proto_dropped(&p, false), LINK_PROTO_KEEP);
        assert_int_equal(p.version, 5);
        assert_int_equal(link_proto_connack(&p, 5, false, 1), LINK_PROTO_RETRY_V311);
        assert_int_equal(p.version, 4);
        assert_non_null(strstr(p.why, "refused MQTT 5 (CONNACK code 1"));
        assert_int_equal(link_proto_connack(&p, 4, true, 0), LINK_PROTO_KEEP);
        assert_true(p.known);
        assert_int_equal(link_proto_dropped(&p, true), LINK_PROTO_KEEP); /* remembered */
        assert_int_equal(p.version, 4);

        link_proto_init(&p, LINK_PROTO_AUTO);
        assert_int_equal(link_proto_connack(&p, 5, true, 0), LINK_PROTO_KEEP);
        assert_int_equal(link_proto_dropped(&p, true), LINK_PROTO_KEEP);
        assert_int_equal(p.version, 5);
        /* Explicit modes never change. */
        link_proto_init(&p, LINK_PROTO_V5);
        assert_int_equal(link_proto_connack(&p, 5, false, 132), LINK_PROTO_KEEP);
        assert_int_equal(link_proto_dropped(&p, true), LINK_PROTO_KEEP);
        assert_int_equal(p.version, 5);
        assert_string_equal(p.why, "mqtt.protocol \"5\"");

        assert_int_equal(link_proto_mode_from_string("3.1.1", &m), 0);
        assert_int_equal(m, LINK_PROTO_V311);
        assert_int_equal(link_proto_mode_from_string("auto", &m), 0);
        assert_int_equal(m, LINK_PROTO_AUTO);
        assert_int_equal(link_proto_mode_from_string("5", &m), 0);
        assert_int_equal(m, LINK_PROTO_V5);
        assert_int_equal(link_proto_mode_from_string("3", &m), -EINVAL);
        assert_int_equal(link_proto_mode_from_string(NULL, &m), -EINVAL);
}

/* What a failed TLS attempt is called: each cause by its own name, never the client certificate
 * for a port that does not speak TLS. */
static void test_tls_failures_are_named_by_what_the_tls_layer_saw(void **state) {
        struct link_tls_seen s;
        char reason[512];
        const char *key;

        (void)state;
        /* A plaintext port: our ClientHello was taken, nothing came back (a FIN counts one). */
        link_tls_seen_reset(&s);
        s.probed = true;
        s.bytes_out = 517;
        s.bytes_in = 1;
        key = link_tls_explain(&s, "", "broker.example", 1883, reason, sizeof(reason));
        assert_string_equal(key, "tls: no TLS answer");
        assert_non_null(
                strstr(reason, "is broker.example:1883 a TLS listener? A plaintext MQTT port does this"));
        assert_null(strstr(reason, "client certificate"));
        /* A TLS server said something: not that. */
        s.bytes_in = 1200;
        assert_null(link_tls_explain(&s, "", "broker.example", 8883, reason, sizeof(reason)));
        /* Nothing sent (the TCP connect failed): not that either. */
        link_tls_seen_reset(&s);
        s.probed = true;
        assert_null(link_tls_explain(&s, "", "broker.example", 8883, reason, sizeof(reason)));

        /* The broker's certificate: OpenSSL's verify reason, with what to check. */
        link_tls_seen_reset(&s);
        strcpy(s.verify, "certificate has expired");
        key = link_tls_explain(&s,
                               "OpenSSL Error[0]: error:0A000086:SSL routines::certificate verify failed",
                               "broker.example", 8883, reason, sizeof(reason));
        assert_string_equal(key, "tls: broker certificate failed verification");
        assert_non_null(strstr(reason,
                               "failed verification: certificate has expired: check its validity dates, "
                               "and this host's clock (OpenSSL Error[0]:"));
        strcpy(s.verify, "unable to get local issuer certificate");
        link_tls_explain(&s, "", "broker.example", 8883, reason, sizeof(reason));
        assert_non_null(strstr(reason, "not signed by a CA in mqtt.tls.ca_file"));

        /* An alert about a certificate is the broker refusing ours; another alert is quoted. */
        link_tls_seen_reset(&s);
        key = link_tls_explain(&s, "OpenSSL Error[0]: error:0A000418:SSL routines::tlsv1 alert unknown ca",
                               "broker.example", 8883, reason, sizeof(reason));
        assert_string_equal(key, LINK_TLS_KEY_DROPPED); /* as a reset or EOF at that point */
        assert_non_null(strstr(reason, "refused this node's client certificate (mqtt.tls.cert_file)"));
        key = link_tls_explain(&s,
                               "OpenSSL Error[0]: error:0A00042E:SSL routines::tlsv1 alert protocol version",
                               "broker.example", 8883, reason, sizeof(reason));
        assert_string_equal(key, "tls: handshake alert");
        assert_non_null(strstr(reason, "alert protocol version"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_backoff_cap_doubles_from_half_a_second_to_a_minute),
                cmocka_unit_test(test_backoff_is_full_jitter_with_a_floor),
                cmocka_unit_test(test_mosquitto_errors_map_to_errno),
                cmocka_unit_test(test_tls_failures_are_named_by_what_the_tls_layer_saw),
                cmocka_unit_test(test_proto_falls_back_only_on_what_is_the_versions_doing),
                cmocka_unit_test_setup_teardown(test_auto_falls_back_to_3_1_1_when_mqtt5_connect_is_dropped,
                                                loop_setup, loop_teardown),
                cmocka_unit_test_setup_teardown(
                        test_auto_says_the_cause_is_not_the_version_when_3_1_1_is_dropped_too, loop_setup,
                        loop_teardown),
                cmocka_unit_test_setup_teardown(test_explicit_protocol_is_the_only_one_spoken, loop_setup,
                                                loop_teardown),
                cmocka_unit_test_setup_teardown(test_unstarted_link_refuses_publish_and_reports_idle,
                                                loop_setup, loop_teardown),
                cmocka_unit_test_setup_teardown(test_refused_connection_goes_to_backoff_with_reason,
                                                loop_setup, loop_teardown),
                cmocka_unit_test(test_next_broker_follows_the_failover_rule),
                cmocka_unit_test_setup_teardown(test_broker_list_is_checked_and_named, loop_setup,
                                                loop_teardown),
                cmocka_unit_test_setup_teardown(
                        test_failover_tries_in_order_stays_and_restarts_from_the_working_broker, loop_setup,
                        loop_teardown),
                cmocka_unit_test_setup_teardown(
                        test_refused_brokers_are_retried_in_order_with_backoff_between_rounds, loop_setup,
                        loop_teardown),
                cmocka_unit_test_setup_teardown(test_puback_reason_codes_reach_on_published, loop_setup,
                                                loop_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
