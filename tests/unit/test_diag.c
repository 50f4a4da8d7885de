/* test_diag.c: control-socket protocol: replies, error codes, limits, and a real socket round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "diag.h"
#include "held.h"
#include "jsonstrict.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static cJSON *handler(const char *op, const cJSON *req, const struct plat_peer *peer, void *ud,
                      bool *ret_held, const char **ret_code, char *msg, size_t msglen) {
        cJSON *r;

        (void)req;
        (void)ud;
        if (strcmp(op, "hold") == 0) {
                *ret_held = true;
                return cJSON_CreateObject();
        }
        if (strcmp(op, "echo") == 0) {
                r = cJSON_CreateObject();
                cJSON_AddNumberToObject(r, "uid", peer ? (double)peer->uid : -1);
                return r;
        }
        *ret_code = "BAD_REQUEST";
        snprintf(msg, msglen, "unknown op \"%s\"", op);
        return NULL;
}

static void expect_reply(const char *line, const char *want) {
        char *got = diag_handle_line(line, strlen(line), NULL, handler, NULL, NULL);

        assert_non_null(got);
        assert_string_equal(got, want);
        free(got);
}

static void test_reply_keeps_id_and_merges_result(void **state) {
        (void)state;
        expect_reply("{\"id\":7,\"op\":\"echo\"}", "{\"id\":7,\"ok\":true,\"uid\":-1}");
        expect_reply("{\"id\":\"abc\",\"op\":\"echo\"}", "{\"id\":\"abc\",\"ok\":true,\"uid\":-1}");
        expect_reply("{\"op\":\"echo\"}", "{\"id\":null,\"ok\":true,\"uid\":-1}");
}

static void test_bad_requests_get_stable_error_codes(void **state) {
        (void)state;
        expect_reply("not json",
                     "{\"id\":null,\"ok\":false,\"error\":{\"code\":\"BAD_REQUEST\",\"message\":\"request "
                     "is not a JSON object\"}}");
        expect_reply(
                "[1]",
                "{\"id\":null,\"ok\":false,\"error\":{\"code\":\"BAD_REQUEST\",\"message\":\"request is "
                "not a JSON object\"}}");
        expect_reply("{\"id\":1}",
                     "{\"id\":1,\"ok\":false,\"error\":{\"code\":\"BAD_REQUEST\",\"message\":\"request "
                     "has no \\\"op\\\" string\"}}");
        expect_reply("{\"id\":2,\"op\":\"nope\"}",
                     "{\"id\":2,\"ok\":false,\"error\":{\"code\":\"BAD_REQUEST\","
                     "\"message\":\"unknown op \\\"nope\\\"\"}}");
}

static void test_oversized_and_nul_lines_are_refused(void **state) {
        char *big = malloc(DIAG_MAX_LINE + 2), *got;

        (void)state;
        memset(big, ' ', DIAG_MAX_LINE + 1);
        big[DIAG_MAX_LINE + 1] = '\0';
        got = diag_handle_line(big, DIAG_MAX_LINE + 1, NULL, handler, NULL, NULL);
        assert_non_null(strstr(got, "longer than 65536 bytes"));
        free(got);
        got = diag_handle_line("{\"op\":\0}", 8, NULL, handler, NULL, NULL);
        assert_non_null(strstr(got, "NUL byte"));
        free(got);
        free(big);
}

/* Runs the loop until `fd` has a full line to read, then returns it (one line per call). */
static char *read_line(sd_event *e, int fd) {
        static char buf[512], line[512];
        static size_t len;

        for (int i = 0; i < 300; i++) {
                char *nl = memchr(buf, '\n', len);
                ssize_t n;

                if (nl) {
                        size_t k = (size_t)(nl - buf);

                        memcpy(line, buf, k);
                        line[k] = '\0';
                        memmove(buf, nl + 1, len - k - 1);
                        len -= k + 1;
                        return line;
                }
                sd_event_run(e, 10000);
                n = recv(fd, buf + len, sizeof(buf) - 1 - len, MSG_DONTWAIT);
                if (n > 0)
                        len += (size_t)n;
        }
        fail_msg("no reply from the control socket");
        return NULL;
}

static void test_socket_serves_lines_and_survives_garbage(void **state) {
        char dir[] = "/tmp/ra-test-diag-XXXXXX", path[128], want[64], *big;
        struct held q = { 0 };
        struct diag *d = NULL;
        sd_event *e = NULL;
        int fd;

        (void)state;
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/run/agent.sock", dir);
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(diag_new(e, path, handler, NULL, &q, NULL, &d), 0);
        fd = plat_unix_connect(path);
        assert_true(fd >= 0);

        assert_int_equal(send(fd, "garbage\n{\"id\":1,\"op\":\"echo\"}\n", 30, 0), 30);
        assert_non_null(strstr(read_line(e, fd), "BAD_REQUEST"));
        snprintf(want, sizeof(want), "{\"id\":1,\"ok\":true,\"uid\":%u}", (unsigned)getuid());
        assert_string_equal(read_line(e, fd), want);
        /* An oversized line gets one error; the next line is served normally. */
        big = malloc(DIAG_MAX_LINE + 100);
        memset(big, 'x', DIAG_MAX_LINE + 99);
        big[DIAG_MAX_LINE + 99] = '\n';
        for (size_t off = 0; off < DIAG_MAX_LINE + 100;) {
                ssize_t n = send(fd, big + off, DIAG_MAX_LINE + 100 - off, MSG_DONTWAIT);

                if (n > 0)
                        off += (size_t)n;
                sd_event_run(e, 1000);
        }
        free(big);
        assert_non_null(strstr(read_line(e, fd), "longer than 65536 bytes"));
        assert_int_equal(send(fd, "{\"id\":2,\"op\":\"echo\"}\n", 21, 0), 21);
        assert_non_null(strstr(read_line(e, fd), "\"id\":2,\"ok\":true"));

        close(fd);
        diag_free(d);
        assert_int_equal(access(path, F_OK), -1); /* the socket file is removed */
        sd_event_unref(e);
        snprintf(path, sizeof(path), "rm -rf %s", dir);
        assert_int_equal(system(path), 0);
}

/* Nothing arrives within a few loop turns. */
static void expect_silence(sd_event *e, int fd) {
        char c;

        for (int i = 0; i < 20; i++)
                sd_event_run(e, 1000);
        assert_int_equal(recv(fd, &c, 1, MSG_DONTWAIT), -1);
        assert_int_equal(errno, EAGAIN);
}

static void test_held_replies_wait_for_the_commit_in_request_order(void **state) {
        char dir[] = "/tmp/ra-test-diag-XXXXXX", path[128];
        struct held q = { 0 };
        struct diag *d = NULL;
        sd_event *e = NULL;
        int lfd, fd;

        (void)state;
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/agent.sock", dir);
        assert_int_equal(sd_event_new(&e), 0);
        /* As systemd passes it: a socket already listening. */
        lfd = plat_unix_listen(path, 0660, 16);
        assert_true(lfd >= 0);
        assert_int_equal(diag_new_fd(e, lfd, handler, NULL, &q, NULL, &d), 0);
        fd = plat_unix_connect(path);
        assert_true(fd >= 0);

        assert_int_equal(send(fd, "{\"id\":1,\"op\":\"hold\"}\n{\"id\":2,\"op\":\"echo\"}\n", 42, 0), 42);
        expect_silence(e, fd); /* the echo waits behind the held reply */
        held_committed(&q, true, NULL);
        assert_string_equal(read_line(e, fd), "{\"id\":1,\"ok\":true}");
        assert_non_null(strstr(read_line(e, fd), "\"id\":2,\"ok\":true"));
        /* A failed commit turns the held acknowledgement into INTERNAL, and only that one. */
        assert_int_equal(send(fd, "{\"id\":3,\"op\":\"hold\"}\n{\"id\":4,\"op\":\"echo\"}\n", 42, 0), 42);
        expect_silence(e, fd);
        held_committed(&q, false, "cannot write slots.json: No space left on device");
        assert_string_equal(read_line(e, fd),
                            "{\"id\":3,\"ok\":false,\"error\":{\"code\":\"INTERNAL\","
                            "\"message\":\"cannot write slots.json: No space left on device\"}}");
        assert_non_null(strstr(read_line(e, fd), "\"id\":4,\"ok\":true"));

        close(fd);
        diag_free(d);
        assert_int_equal(access(path, F_OK), 0); /* a passed socket is systemd's to remove */
        sd_event_unref(e);
        snprintf(path, sizeof(path), "rm -rf %s", dir);
        assert_int_equal(system(path), 0);
}

/* Sends `req` (a line) on fd and returns the reply line, or "EOF" when the agent closed the
 * connection (static storage; one connection at a time). */
static const char *exchange(sd_event *e, int fd, const char *req) {
        static char buf[1024];
        size_t len = 0;

        if (req)
                assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
        for (int i = 0; i < 300; i++) {
                char *nl = memchr(buf, '\n', len);
                ssize_t n;

                if (nl) {
                        *nl = '\0';
                        return buf;
                }
                sd_event_run(e, 10000);
                n = recv(fd, buf + len, sizeof(buf) - 1 - len, MSG_DONTWAIT);
                if (n == 0)
                        return "EOF";
                if (n > 0)
                        len += (size_t)n;
        }
        fail_msg("no reply from the control socket");
        return NULL;
}

/* What admit() answers. */
struct admit_fx {
        unsigned limit;
};

static unsigned admit(const struct plat_peer *peer, void *ud) {
        (void)peer;
        return ((struct admit_fx *)ud)->limit;
}

/* Connects and expects to be served (an echo answered). */
static int served(sd_event *e, const char *path) {
        int fd = plat_unix_connect(path);

        assert_true(fd >= 0);
        assert_non_null(strstr(exchange(e, fd, "{\"op\":\"echo\"}\n"), "\"ok\":true"));
        return fd;
}

/* Connects and expects one SLOW_DOWN line with `why`, then the connection closed. */
static void refused(sd_event *e, const char *path, const char *why) {
        int fd = plat_unix_connect(path);
        char want[256];

        assert_true(fd >= 0);
        snprintf(want, sizeof(want),
                 "{\"id\":null,\"ok\":false,\"error\":{\"code\":\"SLOW_DOWN\",\"message\":\"%s\"}}", why);
        assert_string_equal(exchange(e, fd, NULL), want);
        assert_string_equal(exchange(e, fd, NULL), "EOF");
        close(fd);
}

static void test_half_closed_connection_gets_its_held_replies_then_is_closed(void **state) {
        char dir[] = "/tmp/ra-test-diag-XXXXXX", path[128];
        struct admit_fx a = { .limit = 1 };
        struct held q = { 0 };
        struct diag *d = NULL;
        sd_event *e = NULL;
        int fd;

        (void)state;
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/agent.sock", dir);
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(diag_new(e, path, handler, admit, &q, &a, &d), 0);
        /* A client sends a change and shuts its side down at once (`... | nc -N`): the change is
         * acknowledged once written, and only then is the connection closed. */
        fd = plat_unix_connect(path);
        assert_true(fd >= 0);
        assert_int_equal(send(fd, "{\"id\":1,\"op\":\"hold\"}\n{\"id\":2,\"op\":\"echo\"}\n", 42, 0), 42);
        assert_int_equal(shutdown(fd, SHUT_WR), 0);
        expect_silence(e, fd); /* held, and the connection still open */
        held_committed(&q, true, NULL);
        assert_string_equal(read_line(e, fd), "{\"id\":1,\"ok\":true}");
        assert_non_null(strstr(read_line(e, fd), "\"id\":2,\"ok\":true"));
        assert_string_equal(exchange(e, fd, NULL), "EOF");
        close(fd);
        /* Replies not held are sent before the close too. */
        fd = plat_unix_connect(path);
        assert_true(fd >= 0);
        assert_int_equal(send(fd, "{\"id\":3,\"op\":\"echo\"}\n", 21, 0), 21);
        assert_int_equal(shutdown(fd, SHUT_WR), 0);
        assert_non_null(strstr(exchange(e, fd, NULL), "\"id\":3,\"ok\":true"));
        assert_string_equal(exchange(e, fd, NULL), "EOF");
        close(fd);
        /* A client gone entirely while its reply is held is let go at once: its one connection
         * (the limit is 1) is free again before any commit. */
        fd = plat_unix_connect(path);
        assert_true(fd >= 0);
        assert_int_equal(send(fd, "{\"id\":4,\"op\":\"hold\"}\n", 21, 0), 21);
        for (int i = 0; i < 5; i++)
                sd_event_run(e, 1000);
        close(fd);
        for (int i = 0; i < 5; i++)
                sd_event_run(e, 1000);
        fd = served(e, path);
        close(fd);
        held_committed(&q, true, NULL);
        diag_free(d);
        sd_event_unref(e);
        snprintf(path, sizeof(path), "rm -rf %s", dir);
        assert_int_equal(system(path), 0);
}

static void test_one_uid_holds_a_few_connections_and_never_the_reserve(void **state) {
        char dir[] = "/tmp/ra-test-diag-XXXXXX", path[128], why[128];
        struct admit_fx a = { .limit = 2 };
        int fds[DIAG_MAX_CLIENTS];
        struct held q = { 0 };
        struct diag *d = NULL;
        sd_event *e = NULL;
        size_t n = 0;

        (void)state;
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/agent.sock", dir);
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(diag_new(e, path, handler, admit, &q, &a, &d), 0);
        /* Two connections for this uid, not a third; one closed makes room again. */
        fds[n++] = served(e, path);
        fds[n++] = served(e, path);
        snprintf(why, sizeof(why), "too many control connections for uid %u (at most 2 at once)",
                 (unsigned)getuid());
        refused(e, path, why);
        close(fds[--n]);
        fds[n++] = served(e, path);
        /* Without a limit per uid, peers that may not change sessions still stop short of the
         * reserve... */
        a.limit = 1000;
        while (n < DIAG_MAX_CLIENTS - DIAG_RESERVED_CLIENTS)
                fds[n++] = served(e, path);
        refused(e, path, "too many control clients");
        /* ...which is open to those that may, up to the socket's limit. */
        a.limit = DIAG_ADMIT_PRIVILEGED;
        while (n < DIAG_MAX_CLIENTS)
                fds[n++] = served(e, path);
        refused(e, path, "too many control clients");
        while (n)
                close(fds[--n]);
        diag_free(d);
        sd_event_unref(e);
        snprintf(path, sizeof(path), "rm -rf %s", dir);
        assert_int_equal(system(path), 0);
}

/* Whether `s` is whole UTF-8 (what a reply must be, whatever the request had in it). */
static bool utf8(const char *s) {
        return jsonstrict_utf8_prefix(s, strlen(s)) == strlen(s);
}

static void test_ambiguous_requests_are_refused_without_their_id(void **state) {
        (void)state;
        /* Which "op" a reader takes differs between readers: neither is run. */
        expect_reply("{\"id\":1,\"op\":\"echo\",\"op\":\"hold\"}",
                     "{\"id\":null,\"ok\":false,\"error\":{\"code\":\"BAD_REQUEST\",\"message\":"
                     "\"request has the key \\\"op\\\" twice in the top-level object\"}}");
        expect_reply("{\"id\":1,\"op\":\"echo\",\"args\":{\"user\":\"a\",\"user\":\"b\"}}",
                     "{\"id\":null,\"ok\":false,\"error\":{\"code\":\"BAD_REQUEST\",\"message\":"
                     "\"request has the key \\\"user\\\" twice in the object at .args\"}}");
        /* A second request glued to the first is not quietly dropped. */
        expect_reply("{\"id\":1,\"op\":\"echo\"}{\"id\":2,\"op\":\"hold\"}",
                     "{\"id\":null,\"ok\":false,\"error\":{\"code\":\"BAD_REQUEST\",\"message\":"
                     "\"request has data after its JSON object, at byte 20 (one object per line)\"}}");
        expect_reply("{\"id\":1,\"op\":\"echo\"} \r", "{\"id\":1,\"ok\":true,\"uid\":-1}");
}

static void test_ids_that_are_not_utf8_or_hold_control_characters_are_not_echoed(void **state) {
        (void)state;
        expect_reply("{\"id\":\"\xff\xfe\",\"op\":\"echo\"}",
                     "{\"id\":null,\"ok\":false,\"error\":{\"code\":\"BAD_REQUEST\",\"message\":"
                     "\"request is not valid UTF-8: byte 0xFF at byte 7\"}}");
        expect_reply("{\"id\":\"a\\u001b[2Jb\",\"op\":\"echo\"}",
                     "{\"id\":null,\"ok\":false,\"error\":{\"code\":\"BAD_REQUEST\",\"message\":"
                     "\"\\\"id\\\" has a control character (U+001B)\"}}");
        expect_reply("{\"id\":{\"k\":[\"\\n\"]},\"op\":\"echo\"}",
                     "{\"id\":null,\"ok\":false,\"error\":{\"code\":\"BAD_REQUEST\",\"message\":"
                     "\"\\\"id\\\" has a control character (U+000A)\"}}");
        expect_reply("{\"id\":\"\xc3\xa9t\xc3\xa9\",\"op\":\"echo\"}",
                     "{\"id\":\"\xc3\xa9t\xc3\xa9\",\"ok\":true,\"uid\":-1}");
}

static void test_error_message_cut_inside_a_character_stays_utf8(void **state) {
        char line[1024], *got;
        size_t n;

        (void)state;
        /* The handler's message holds 255 bytes: "unknown op \"" (12) and then two-byte
         * characters, the last of which is cut in two. */
        n = (size_t)snprintf(line, sizeof(line), "{\"op\":\"");
        for (int i = 0; i < 200; i++)
                n += (size_t)snprintf(line + n, sizeof(line) - n, "\xc3\xa9");
        snprintf(line + n, sizeof(line) - n, "\"}");
        got = diag_handle_line(line, strlen(line), NULL, handler, NULL, NULL);
        assert_non_null(strstr(got, "\"code\":\"BAD_REQUEST\""));
        assert_true(utf8(got));
        free(got);
}

static void test_empty_line_from_nowhere_is_a_bad_request(void **state) {
        char *got;

        (void)state;
        /* An empty MQTT payload comes as (NULL, 0). */
        got = diag_handle_line(NULL, 0, NULL, handler, NULL, NULL);
        assert_non_null(got);
        assert_non_null(strstr(got, "\"code\":\"BAD_REQUEST\""));
        free(got);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_reply_keeps_id_and_merges_result),
                cmocka_unit_test(test_bad_requests_get_stable_error_codes),
                cmocka_unit_test(test_oversized_and_nul_lines_are_refused),
                cmocka_unit_test(test_socket_serves_lines_and_survives_garbage),
                cmocka_unit_test(test_held_replies_wait_for_the_commit_in_request_order),
                cmocka_unit_test(test_one_uid_holds_a_few_connections_and_never_the_reserve),
                cmocka_unit_test(test_empty_line_from_nowhere_is_a_bad_request),
                cmocka_unit_test(test_ambiguous_requests_are_refused_without_their_id),
                cmocka_unit_test(test_ids_that_are_not_utf8_or_hold_control_characters_are_not_echoed),
                cmocka_unit_test(test_error_message_cut_inside_a_character_stays_utf8),
                cmocka_unit_test(test_half_closed_connection_gets_its_held_replies_then_is_closed),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
