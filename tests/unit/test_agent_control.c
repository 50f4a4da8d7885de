/* test_agent_control.c: the daemon answers every op of the one table, each session op by its own
 * entry point of the session service. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent.h"
#include "ops.h"

static void test_every_op_in_the_table_has_a_handler(void **state) {
        (void)state;
        for (int id = 0; id < OPS_COUNT; id++) {
                if (!agent_answers((enum ops_id)id))
                        print_message("op %s has no handler in daemon/agent_control.c\n", ops_get(id)->name);
                assert_true(agent_answers((enum ops_id)id));
        }
        assert_false(agent_answers(OPS_COUNT));
        assert_false(agent_answers((enum ops_id) - 1));
}

/* The ops that change sessions are the session service's, each bound to an op of its own; the
 * reads are answered by the agent (its documents, the event history, the service's lists). */
static void test_each_session_change_is_bound_to_its_own_session_op(void **state) {
        bool taken[SESSIONS_OPS] = { false };

        (void)state;
        for (int id = 0; id < OPS_COUNT; id++) {
                const struct ops_entry *e = ops_get(id);
                enum sessions_op s = agent_sessions_op(e->id);

                if (e->owner == OPS_BY_SESSIONS && e->mutates) {
                        assert_int_not_equal(s, SESSIONS_OP_NONE);
                        assert_true(s < SESSIONS_OPS);
                        assert_false(taken[s]); /* two ops on one session op */
                        taken[s] = true;
                } else
                        assert_int_equal(s, SESSIONS_OP_NONE);
        }
        for (int s = SESSIONS_OP_NONE + 1; s < SESSIONS_OPS; s++)
                assert_true(taken[s]); /* a session op no control op reaches */
        assert_int_equal(agent_sessions_op(OPS_COUNT), SESSIONS_OP_NONE);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_every_op_in_the_table_has_a_handler),
                cmocka_unit_test(test_each_session_change_is_bound_to_its_own_session_op),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
