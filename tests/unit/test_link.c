/* test_link.c: MQTT link pieces that need no broker: backoff, error mapping, offline behaviour. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "link.h"

#include <errno.h>
#include <mosquitto.h>
#include <string.h>

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
        struct link_options o = {
                .host = "127.0.0.1",
                .port = 1,
                .tls = false,
                .keepalive_s = 30,
                .client_id = "t",
                .will_topic = "a/b/status",
                .will_payload = "{}",
        };
        sd_event *e = NULL;
        struct link *l = NULL;

        (void)state;
        mosquitto_lib_init();
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(link_new(e, &o, NULL, NULL, &l), 0);
        assert_int_equal(link_get_state(l), LINK_IDLE);
        assert_string_equal(link_state_to_string(link_get_state(l)), "idle");
        assert_int_equal(link_publish(l, "a/b/t", "x", 1, 0, false), -ENOTCONN);
        assert_int_equal(link_protocol_version(l), 5);
        assert_int_equal(link_connects(l), 0);
        link_stop(l, NULL, NULL);
        link_free(l);
        link_free(NULL);
        sd_event_unref(e);
        mosquitto_lib_cleanup();
}

static void test_refused_connection_goes_to_backoff_with_reason(void **state) {
        struct link_options o = {
                .host = "127.0.0.1",
                .port = 1,
                .tls = false,
                .keepalive_s = 30,
                .client_id = "t",
                .will_topic = "a/b/status",
                .will_payload = "{}",
        };
        sd_event *e = NULL;
        struct link *l = NULL;

        (void)state;
        mosquitto_lib_init();
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(link_new(e, &o, NULL, NULL, &l), 0);
        assert_int_equal(link_start(l), 0);
        /* Nothing listens on port 1: the attempt fails without blocking the loop. */
        for (int i = 0; i < 20 && link_get_state(l) != LINK_BACKOFF; i++)
                sd_event_run(e, 100000);
        assert_int_equal(link_get_state(l), LINK_BACKOFF);
        assert_non_null(strstr(link_last_error(l), "refused"));
        link_free(l);
        sd_event_unref(e);
        mosquitto_lib_cleanup();
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_backoff_cap_doubles_from_half_a_second_to_a_minute),
                cmocka_unit_test(test_backoff_is_full_jitter_with_a_floor),
                cmocka_unit_test(test_mosquitto_errors_map_to_errno),
                cmocka_unit_test(test_unstarted_link_refuses_publish_and_reports_idle),
                cmocka_unit_test(test_refused_connection_goes_to_backoff_with_reason),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
