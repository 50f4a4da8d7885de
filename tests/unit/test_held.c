/* test_held.c: the one queue of replies waiting for the group commit: order per destination, the
 * INTERNAL reply of a failed commit (from the tree, or none when it cannot be made), MQTT routes,
 * the limit, a destination dropped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "held.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the sinks saw, in order: "<dest> <reply>[ @topic corr]" lines and "undone <dest> <id>". */
struct log {
        char text[4096];
        struct held *q;
        struct held_dest *drop_on_send; /* a sink that drops its destination when it sends to it */
};

static struct log lg;
/* cJSON's allocator fails while set, except inside the sinks (whose printing is the test's). */
static bool fail_alloc;

static void __attribute__((format(printf, 1, 2))) note(const char *fmt, ...) {
        size_t n = strlen(lg.text);
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(lg.text + n, sizeof(lg.text) - n, fmt, ap);
        va_end(ap);
}

/* o printed with cJSON's allocator working, whatever the test has made it do. */
static char *print_unfailing(const cJSON *o) {
        bool failing = fail_alloc;
        char *text;

        fail_alloc = false;
        text = cJSON_PrintUnformatted(o);
        fail_alloc = failing;
        return text;
}

static void record_send(struct held_dest *d, const cJSON *reply, const struct held_route *route) {
        char *text = print_unfailing(reply);

        note("%s %s", (const char *)d->userdata, reply ? text : "NO-REPLY");
        if (route->topic) {
                note(" @%s %.*s", route->topic, (int)route->corr_len,
                     route->corr ? (const char *)route->corr : "");
        }
        note("\n");
        free(text);
        if (d == lg.drop_on_send)
                held_drop(lg.q, d);
}

static void record_undone(struct held_dest *d, const cJSON *id) {
        char *text = print_unfailing(id);

        note("undone %s %s\n", (const char *)d->userdata, text);
        free(text);
}

static const struct held_sink socket_sink = { .send = record_send };
static const struct held_sink mqtt_sink = { .send = record_send, .undone = record_undone };

static cJSON *ack(const char *id_json) {
        cJSON *r = cJSON_CreateObject();

        cJSON_AddItemToObject(r, "id", cJSON_Parse(id_json));
        cJSON_AddTrueToObject(r, "ok");
        return r;
}

/* Pushes a reply to d the way a transport does: queued when it must wait, sent now otherwise. */
static void reply(struct held *q, struct held_dest *d, const char *id_json, bool needs_commit,
                  const struct held_route *route) {
        static const struct held_route none = { 0 };
        cJSON *r = ack(id_json);

        if (held_must_wait(d, needs_commit)) {
                assert_int_equal(held_push(q, d, r, needs_commit, route), 0);
                return;
        }
        d->sink->send(d, r, route ? route : &none);
        cJSON_Delete(r);
}

static int setup(void **state) {
        (void)state;
        memset(&lg, 0, sizeof(lg));
        return 0;
}

static void test_replies_wait_behind_a_held_one_in_order_per_destination(void **state) {
        struct held q = { 0 };
        struct held_dest a = { &socket_sink, "a", 8, 0 }, b = { &socket_sink, "b", 8, 0 };

        (void)state;
        lg.q = &q;
        reply(&q, &a, "1", true, NULL);
        reply(&q, &b, "2", false, NULL); /* b has nothing held: it goes at once */
        reply(&q, &a, "3", false, NULL); /* behind a's held one */
        reply(&q, &b, "4", true, NULL);
        reply(&q, &a, "5", true, NULL);
        reply(&q, &b, "6", false, NULL);
        assert_string_equal(lg.text, "b {\"id\":2,\"ok\":true}\n");
        assert_int_equal(a.n, 3);
        assert_int_equal(b.n, 2);
        held_committed(&q, true, NULL);
        assert_string_equal(lg.text, "b {\"id\":2,\"ok\":true}\n"
                                     "a {\"id\":1,\"ok\":true}\n"
                                     "a {\"id\":3,\"ok\":true}\n"
                                     "b {\"id\":4,\"ok\":true}\n"
                                     "a {\"id\":5,\"ok\":true}\n"
                                     "b {\"id\":6,\"ok\":true}\n");
        assert_int_equal(a.n + b.n, 0);
        assert_null(q.head);
        assert_null(q.tail);
}

static void test_failed_commit_turns_held_acks_into_internal_with_their_id(void **state) {
        struct held q = { 0 };
        struct held_dest sock = { &socket_sink, "sock", 8, 0 }, mqtt = { &mqtt_sink, "mqtt", 8, 0 };
        struct held_route r1 = { "r/n/cmd/reply/42", "corr-42", 7 }, r2 = { "r/n/cmd/reply", NULL, 0 };

        (void)state;
        lg.q = &q;
        reply(&q, &sock, "\"s1\"", true, NULL);
        reply(&q, &mqtt, "{\"k\":[1,\"x\"]}", true, &r1);
        reply(&q, &sock, "\"s2\"", false, NULL);
        reply(&q, &mqtt, "null", false, &r2);
        reply(&q, &mqtt, "\"m3\"", true, &r2);
        held_committed(&q, false, "cannot open slots.state: Is a directory");
        /* Only the replies that needed the commit change; MQTT's sink hears which ids were undone
         * (the command may come again) before their error goes out; routes are kept. */
        assert_string_equal(
                lg.text,
                "sock {\"id\":\"s1\",\"ok\":false,\"error\":{\"code\":\"INTERNAL\",\"message\":"
                "\"cannot open slots.state: Is a directory\"}}\n"
                "undone mqtt {\"k\":[1,\"x\"]}\n"
                "mqtt {\"id\":{\"k\":[1,\"x\"]},\"ok\":false,\"error\":{\"code\":\"INTERNAL\","
                "\"message\":\"cannot open slots.state: Is a directory\"}} @r/n/cmd/reply/42 corr-42\n"
                "sock {\"id\":\"s2\",\"ok\":true}\n"
                "mqtt {\"id\":null,\"ok\":true} @r/n/cmd/reply \n"
                "undone mqtt \"m3\"\n"
                "mqtt {\"id\":\"m3\",\"ok\":false,\"error\":{\"code\":\"INTERNAL\",\"message\":"
                "\"cannot open slots.state: Is a directory\"}} @r/n/cmd/reply \n");
}

static void test_a_destination_at_its_limit_is_refused_and_the_reply_freed(void **state) {
        struct held q = { 0 };
        struct held_dest a = { &socket_sink, "a", 2, 0 }, b = { &socket_sink, "b", 2, 0 };

        (void)state;
        lg.q = &q;
        assert_int_equal(held_push(&q, &a, ack("1"), true, NULL), 0);
        assert_int_equal(held_push(&q, &a, ack("2"), false, NULL), 0);
        assert_int_equal(held_push(&q, &a, ack("3"), false, NULL), -ENOBUFS); /* freed: LSan */
        assert_int_equal(held_push(&q, &b, ack("4"), true, NULL), 0);         /* the limit is a's alone */
        assert_int_equal(a.n, 2);
        held_committed(&q, true, NULL);
        assert_string_equal(
                lg.text, "a {\"id\":1,\"ok\":true}\na {\"id\":2,\"ok\":true}\nb {\"id\":4,\"ok\":true}\n");
}

static void test_a_dropped_destination_loses_its_replies_and_no_other(void **state) {
        struct held q = { 0 };
        struct held_dest a = { &socket_sink, "a", 8, 0 }, b = { &socket_sink, "b", 8, 0 },
                         c = { &socket_sink, "c", 8, 0 };

        (void)state;
        lg.q = &q;
        reply(&q, &a, "1", true, NULL);
        reply(&q, &b, "2", true, NULL);
        reply(&q, &a, "3", true, NULL);
        held_drop(&q, &a); /* the client closed: its entries go, the last one among them */
        assert_int_equal(a.n, 0);
        reply(&q, &c, "4", true, NULL); /* appended behind what is left */
        held_committed(&q, true, NULL);
        assert_string_equal(lg.text, "b {\"id\":2,\"ok\":true}\nc {\"id\":4,\"ok\":true}\n");
        /* A sink may drop its destination while sending (a client that cannot be written to): the
         * rest of that destination's replies go with it, the others still go out. */
        memset(lg.text, 0, sizeof(lg.text));
        lg.drop_on_send = &a;
        reply(&q, &a, "5", true, NULL);
        reply(&q, &b, "6", true, NULL);
        reply(&q, &a, "7", false, NULL);
        reply(&q, &b, "8", false, NULL);
        held_committed(&q, true, NULL);
        assert_string_equal(
                lg.text, "a {\"id\":5,\"ok\":true}\nb {\"id\":6,\"ok\":true}\nb {\"id\":8,\"ok\":true}\n");
        assert_int_equal(a.n + b.n, 0);
        /* Shutdown drops whatever is left, unsent. */
        memset(lg.text, 0, sizeof(lg.text));
        reply(&q, &b, "9", true, NULL);
        held_clear(&q);
        assert_int_equal(b.n, 0);
        held_committed(&q, true, NULL);
        assert_string_equal(lg.text, "");
}

static void *failing_malloc(size_t n) {
        return fail_alloc ? NULL : malloc(n);
}

static void test_an_internal_reply_that_cannot_be_made_still_reaches_the_sink(void **state) {
        struct held q = { 0 };
        struct held_dest sock = { &socket_sink, "sock", 8, 0 }, mqtt = { &mqtt_sink, "mqtt", 8, 0 };
        struct held_route r = { "r/n/cmd/reply", NULL, 0 };
        cJSON_Hooks hooks = { failing_malloc, free };

        (void)state;
        lg.q = &q;
        reply(&q, &sock, "1", true, NULL);
        reply(&q, &mqtt, "\"m2\"", true, &r);
        cJSON_InitHooks(&hooks);
        fail_alloc = true;
        held_committed(&q, false, "cannot write slots.state: No space left on device");
        fail_alloc = false;
        cJSON_InitHooks(NULL);
        /* Each destination is told no answer comes (NULL), so that a socket client is closed
         * rather than left waiting; the undone command may still come again. */
        assert_string_equal(lg.text, "sock NO-REPLY\nundone mqtt \"m2\"\nmqtt NO-REPLY @r/n/cmd/reply \n");
        assert_int_equal(sock.n + mqtt.n, 0);
        assert_null(q.head);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup(test_replies_wait_behind_a_held_one_in_order_per_destination, setup),
                cmocka_unit_test_setup(test_failed_commit_turns_held_acks_into_internal_with_their_id,
                                       setup),
                cmocka_unit_test_setup(test_a_destination_at_its_limit_is_refused_and_the_reply_freed,
                                       setup),
                cmocka_unit_test_setup(test_a_dropped_destination_loses_its_replies_and_no_other, setup),
                cmocka_unit_test_setup(test_an_internal_reply_that_cannot_be_made_still_reaches_the_sink,
                                       setup),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
