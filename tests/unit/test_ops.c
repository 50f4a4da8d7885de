/* test_ops.c: the one list of control ops. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "cmd.h"
#include "ops.h"

static void test_every_op_is_found_once_and_named_in_the_list(void **state) {
        const struct ops_entry *seen[32];
        char copy[256], *save = NULL;
        size_t n = 0;

        (void)state;
        strncpy(copy, ops_names(), sizeof(copy) - 1);
        copy[sizeof(copy) - 1] = '\0';
        for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
                const struct ops_entry *e = ops_find(t);

                assert_non_null(e);
                assert_string_equal(e->name, t);
                for (size_t i = 0; i < n; i++)
                        assert_ptr_not_equal(seen[i], e); /* each op once in the list */
                assert_true(n < 32);
                seen[n++] = e;
        }
        assert_int_equal(n, 19);
        assert_null(ops_find("nope"));
        assert_null(ops_find(""));
        assert_null(ops_find(NULL));
}

static void test_mqtt_may_send_status_disconnect_drain_and_undrain_only(void **state) {
        const char *names = ops_names();
        char copy[256], *save = NULL;
        size_t n = 0;

        (void)state;
        strncpy(copy, names, sizeof(copy) - 1);
        copy[sizeof(copy) - 1] = '\0';
        for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
                if (cmd_allowed(t))
                        n++;
        assert_int_equal(n, 4);
        assert_true(cmd_allowed("status") && cmd_allowed("disconnect") && cmd_allowed("drain") &&
                    cmd_allowed("undrain"));
        assert_false(cmd_allowed("end") || cmd_allowed("events") || cmd_allowed("reserve"));
}

static void test_reads_change_nothing_and_session_changes_are_marked(void **state) {
        (void)state;
        assert_false(ops_find("status")->mutates);
        assert_false(ops_find("events")->mutates);
        assert_false(ops_find("sessions")->mutates);
        assert_true(ops_find("reserve")->mutates);
        assert_true(ops_find("report_bytes")->mutates);
        assert_int_equal(ops_find("events")->owner, OPS_EVENTS);
        assert_int_equal(ops_find("telemetry")->owner, OPS_AGENT);
        assert_int_equal(ops_find("slots")->owner, OPS_SESSIONS);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_every_op_is_found_once_and_named_in_the_list),
                cmocka_unit_test(test_mqtt_may_send_status_disconnect_drain_and_undrain_only),
                cmocka_unit_test(test_reads_change_nothing_and_session_changes_are_marked),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
