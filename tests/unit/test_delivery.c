/* test_delivery.c: what a PUBACK reason means for a metering record, the backoff while nobody
 * subscribes, the window that holds records back, and the status members. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "delivery.h"

#include <string.h>

#define SEC UINT64_C(1000000)
#define T_REAL (UINT64_C(1700000040) * SEC) /* 2023-11-14T22:14:00Z */

static void test_only_reason_zero_is_received(void **state) {
        (void)state;
        assert_int_equal(delivery_outcome(0), DELIVERY_RECEIVED);
        /* Taken and dropped: nobody subscribed. */
        assert_int_equal(delivery_outcome(0x10), DELIVERY_NO_CONSUMER);
        assert_int_equal(delivery_outcome(0x80), DELIVERY_REFUSED);
        assert_int_equal(delivery_outcome(0x87), DELIVERY_REFUSED);
        assert_int_equal(delivery_outcome(0x97), DELIVERY_REFUSED);
}

static void test_retry_doubles_from_a_second_to_a_minute_with_equal_jitter(void **state) {
        (void)state;
        /* The largest draw at each attempt is just under d, the smallest d/2. */
        assert_int_equal(delivery_retry_usec(0, UINT32_MAX) / 1000, 999);
        assert_int_equal(delivery_retry_usec(0, 0), SEC / 2);
        assert_int_equal(delivery_retry_usec(1, UINT32_MAX) / 1000, 1999);
        assert_int_equal(delivery_retry_usec(5, UINT32_MAX) / 1000, 31999);
        assert_int_equal(delivery_retry_usec(6, UINT32_MAX) / 1000, 59999);
        assert_int_equal(delivery_retry_usec(6, 0), 30 * SEC);
        assert_int_equal(delivery_retry_usec(200, UINT32_MAX) / 1000, 59999);
        /* The midpoint draw: three quarters of d. */
        assert_int_equal(delivery_retry_usec(2, UINT32_MAX / 2 + 1), 3 * SEC);
}

static void test_records_in_flight_together_back_off_once(void **state) {
        struct delivery d = { 0 };
        uint64_t t = 1000 * SEC;

        (void)state;
        assert_int_equal(delivery_window(&d, t, 64), 64);
        /* The first 0x10 begins it (the caller raises the alarm) and starts a wait of 0.5..1 s. */
        assert_true(delivery_no_consumer(&d, t, T_REAL, UINT32_MAX));
        assert_int_equal(d.next_usec, t + 999999);
        /* The other records of the same window come back refused within that wait: no more alarms,
         * no longer wait. */
        for (int i = 0; i < 63; i++)
                assert_false(delivery_no_consumer(&d, t + 1000 * (uint64_t)i, T_REAL, 0));
        assert_int_equal(d.next_usec, t + 999999);
        assert_int_equal(d.refused, 64);
        assert_int_equal(d.attempt, 1);
        /* Nothing is offered while it runs, then one record. */
        assert_int_equal(delivery_window(&d, t, 64), 0);
        assert_int_equal(delivery_window(&d, t + 999998, 64), 0);
        assert_int_equal(delivery_window(&d, t + 999999, 64), 1);
        /* That probe refused: the next wait is longer (1..2 s). */
        t += SEC;
        assert_false(delivery_no_consumer(&d, t, T_REAL, UINT32_MAX));
        assert_int_equal(d.next_usec - t, 1999999);
        assert_int_equal(d.attempt, 2);
}

static void test_a_received_record_ends_it_and_starts_the_backoff_over(void **state) {
        struct delivery d = { 0 };
        uint64_t t = 1000 * SEC;

        (void)state;
        /* Received while all is well: nothing to clear. */
        assert_false(delivery_received(&d));
        for (int i = 0; i < 8; i++, t += 60 * SEC)
                (void)delivery_no_consumer(&d, t, T_REAL, UINT32_MAX);
        assert_int_equal(d.attempt, 8);
        assert_true(delivery_received(&d));
        assert_false(d.no_consumer);
        assert_int_equal(delivery_window(&d, t, 64), 64);
        /* The next time begins again at the first step. */
        assert_true(delivery_no_consumer(&d, t, T_REAL, UINT32_MAX));
        assert_int_equal(d.next_usec - t, 999999);
}

static void test_status_says_since_when_and_the_next_offer(void **state) {
        struct delivery d = { 0 };
        uint64_t t = 1000 * SEC;
        cJSON *o = cJSON_CreateObject();

        (void)state;
        delivery_status_json(&d, t, o);
        assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "no_consumer")));
        assert_null(cJSON_GetObjectItemCaseSensitive(o, "no_consumer_since"));
        cJSON_Delete(o);

        (void)delivery_no_consumer(&d, t, T_REAL + 123000, UINT32_MAX);
        (void)delivery_no_consumer(&d, t, T_REAL + 123000, UINT32_MAX);
        o = cJSON_CreateObject();
        delivery_status_json(&d, t + SEC / 4, o);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "no_consumer")));
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "no_consumer_since")),
                            "2023-11-14T22:14:00.123Z");
        assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "no_consumer_refused")),
                         2);
        assert_true(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "next_offer_s")) == 0.749);
        cJSON_Delete(o);
        /* Due: 0, never negative. */
        o = cJSON_CreateObject();
        delivery_status_json(&d, t + 5 * SEC, o);
        assert_true(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "next_offer_s")) == 0);
        cJSON_Delete(o);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_only_reason_zero_is_received),
                cmocka_unit_test(test_retry_doubles_from_a_second_to_a_minute_with_equal_jitter),
                cmocka_unit_test(test_records_in_flight_together_back_off_once),
                cmocka_unit_test(test_a_received_record_ends_it_and_starts_the_backoff_over),
                cmocka_unit_test(test_status_says_since_when_and_the_next_offer),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
