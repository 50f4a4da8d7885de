/* test_slot.c: the slot table follows the config by slot id: kept slots keep their state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"
#include "slot.h"
#include "watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct cfg *load(const char *slots) {
        struct cfg_problems p = { 0 };
        struct cfg *c = NULL;
        char json[1024];

        snprintf(json, sizeof(json),
                 "{\"node\":{\"id\":\"n\",\"region\":\"r\"},\"mqtt\":{\"host\":\"h\",\"tls\":false},"
                 "\"slots\":[%s]}",
                 slots);
        assert_int_equal(cfg_parse("/etc/agent.json", json, strlen(json), &c, &p), 0);
        return c;
}

static void test_sync_orders_slots_as_the_config(void **state) {
        struct cfg *c = load("{\"id\":\"a\",\"scale\":\"S\"},{\"id\":\"b\",\"scale\":\"M\"}");
        struct slot_table t = { 0 };

        (void)state;
        assert_int_equal(slot_table_sync(&t, c), 0);
        assert_int_equal(t.n, 2);
        assert_string_equal(slot_at(&t, 0)->id, "a");
        assert_string_equal(slot_at(&t, 1)->id, "b");
        assert_int_equal(slot_at(&t, 1)->index, 1);
        assert_ptr_equal(slot_at(&t, 1)->cfg, &c->slots[1]);
        assert_string_equal(slot_at(&t, 1)->cfg->scale, "M");
        assert_ptr_equal(slot_table_find(&t, "b"), slot_at(&t, 1));
        assert_null(slot_table_find(&t, "c"));
        slot_table_done(&t);
        assert_int_equal(t.n, 0);
        cfg_free(c);
}

/* A reload that reorders, drops and adds slots: a kept slot is the same object, with what it held
 * (hysteresis, counters, retries), at its new place; a new one starts clean. */
static void test_sync_keeps_kept_slots_by_id(void **state) {
        struct cfg *c = load("{\"id\":\"a\",\"scale\":\"S\"},{\"id\":\"b\",\"scale\":\"S\"},"
                             "{\"id\":\"c\",\"scale\":\"S\"}");
        struct cfg *n = load("{\"id\":\"d\",\"scale\":\"S\"},{\"id\":\"c\",\"scale\":\"M\"},"
                             "{\"id\":\"a\",\"scale\":\"S\"}");
        struct slot_table t = { 0 };
        struct slot *a, *c_;

        (void)state;
        assert_int_equal(slot_table_sync(&t, c), 0);
        a = slot_at(&t, 0);
        c_ = slot_at(&t, 2);
        a->retry_at = 42;
        a->failure_reported = true;
        c_->watch = calloc(1, sizeof(*c_->watch));
        assert_non_null(c_->watch);
        c_->watch->bandwidth.raised = true;
        snprintf(c_->bytes.session, sizeof(c_->bytes.session), "sess");
        assert_int_equal(slot_table_sync(&t, n), 0);
        assert_int_equal(t.n, 3);
        assert_string_equal(slot_at(&t, 0)->id, "d");
        assert_int_equal(slot_at(&t, 0)->retry_at, 0);
        assert_null(slot_at(&t, 0)->watch);
        assert_ptr_equal(slot_at(&t, 1), c_);
        assert_int_equal(c_->index, 1);
        assert_string_equal(c_->cfg->scale, "M");
        assert_true(c_->watch->bandwidth.raised);
        assert_string_equal(c_->bytes.session, "sess");
        assert_ptr_equal(slot_at(&t, 2), a);
        assert_int_equal(a->index, 2);
        assert_int_equal(a->retry_at, 42);
        assert_true(a->failure_reported);
        assert_null(slot_table_find(&t, "b"));
        /* b left the table but lives on until reaped: a meter made before the reload still reads it. */
        assert_int_equal(t.n_retired, 1);
        assert_string_equal(t.retired[0]->id, "b");
        slot_table_reap(&t);
        assert_int_equal(t.n_retired, 0);
        assert_null(t.retired[0]);
        slot_table_done(&t);
        cfg_free(c);
        cfg_free(n);
}

static void test_sync_to_no_slots_empties_the_table(void **state) {
        struct cfg *c = load("{\"id\":\"a\",\"scale\":\"S\"}");
        struct cfg *n = load("");
        struct slot_table t = { 0 };

        (void)state;
        assert_int_equal(slot_table_sync(&t, c), 0);
        assert_int_equal(slot_table_sync(&t, n), 0);
        assert_int_equal(t.n, 0);
        assert_null(t.slot[0]);
        assert_int_equal(t.n_retired, 1); /* freed by slot_table_done (LeakSanitizer checks) */
        slot_table_done(&t);
        cfg_free(c);
        cfg_free(n);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sync_orders_slots_as_the_config),
                cmocka_unit_test(test_sync_keeps_kept_slots_by_id),
                cmocka_unit_test(test_sync_to_no_slots_empties_the_table),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
