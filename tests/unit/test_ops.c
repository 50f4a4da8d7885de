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

/* Each id's entry is at its id, named and explained; render-agentctl's command is the wire name with
 * dashes, and present exactly when the entry gives it a shape. */
static void test_each_id_has_its_entry_with_help_and_a_ctl_shape(void **state) {
        size_t ctl = 0;

        (void)state;
        for (int id = 0; id < OPS_COUNT; id++) {
                const struct ops_entry *e = ops_get(id);
                char dashed[32];

                assert_non_null(e);
                assert_int_equal(e->id, id);
                assert_non_null(e->name);
                assert_ptr_equal(ops_find(e->name), e);
                assert_non_null(e->help);
                assert_true(e->help[0] != '\0' && strlen(e->help) <= 60); /* one --help line */
                assert_non_null(e->ctl_usage);
                assert_int_equal(e->ctl == NULL, e->ctl_args == OPS_CTL_NONE);
                if (!e->ctl)
                        continue;
                ctl++;
                assert_true(strlen(e->name) < sizeof(dashed));
                for (size_t i = 0; i <= strlen(e->name); i++)
                        dashed[i] = e->name[i] == '_' ? '-' : e->name[i];
                assert_string_equal(e->ctl, dashed);
        }
        assert_int_equal(ctl, 17); /* all but telemetry (top's) and report_bytes (the streamer's) */
        assert_null(ops_find("telemetry")->ctl);
        assert_null(ops_find("report_bytes")->ctl);
        assert_int_equal(ops_find("reserve")->ctl_args, OPS_CTL_USER);
        assert_int_equal(ops_find("unblock")->ctl_args, OPS_CTL_SLOT);
        assert_int_equal(ops_find("client_lost")->ctl_args, OPS_CTL_TARGET);
        assert_int_equal(ops_find("events")->ctl_args, OPS_CTL_OWN);
        assert_null(ops_get(OPS_COUNT));
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
        /* What the refusal of any other lists: the same ops, from the same table. */
        assert_string_equal(ops_mqtt_names(), "status, disconnect, drain, undrain");
}

static void test_reads_change_nothing_and_session_changes_are_marked(void **state) {
        (void)state;
        assert_false(ops_find("status")->mutates);
        assert_false(ops_find("events")->mutates);
        assert_false(ops_find("sessions")->mutates);
        assert_true(ops_find("reserve")->mutates);
        assert_true(ops_find("report_bytes")->mutates);
        assert_int_equal(ops_find("events")->owner, OPS_BY_EVENTS);
        assert_int_equal(ops_find("telemetry")->owner, OPS_BY_AGENT);
        assert_int_equal(ops_find("slots")->owner, OPS_BY_SESSIONS);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_every_op_is_found_once_and_named_in_the_list),
                cmocka_unit_test(test_each_id_has_its_entry_with_help_and_a_ctl_shape),
                cmocka_unit_test(test_mqtt_may_send_status_disconnect_drain_and_undrain_only),
                cmocka_unit_test(test_reads_change_nothing_and_session_changes_are_marked),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
