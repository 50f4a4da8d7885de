/* test_slots.c: the session state machine: transitions, error codes, takeover, group commit, limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cleanup.h"
#include "crc32c.h"
#include "fileio.h"
#include "slots.h"
#include "slots_internal.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "slots_fx.h"

static void test_every_state_from_free_to_free(void **state) {
        struct fx *f = *state;
        char id[SLOTS_SESSION_LEN + 1];

        assert_int_equal(reserve(f, "alice", NULL), SLOTS_OK);
        assert_int_equal(f->ev.kind, SLOTS_EV_RESERVE);
        assert_int_equal(f->ev.slot, 0);
        assert_int_equal(f->ev.state, SLOTS_RESERVED);
        assert_string_equal(f->ev.user, "alice");
        assert_string_equal(f->ev.client_ip, "192.0.2.7");
        assert_int_equal(strlen(f->ev.session), SLOTS_SESSION_LEN);
        memcpy(id, f->ev.session, sizeof(id));
        assert_int_equal(slots_start(f->s, by_session(id), f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_OK);
        assert_int_equal(f->ev.kind, SLOTS_EV_START);
        assert_int_equal(state_of(f, 0), SLOTS_ACTIVE);
        /* A second start is a harmless repeat. */
        assert_int_equal(slots_start(f->s, by_user("alice"), f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_OK);
        assert_int_equal(f->ev.kind, SLOTS_EV_NONE);
        assert_int_equal(slots_heartbeat(f->s, by_session(id), true, f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_OK);
        assert_int_equal(f->ev.kind, SLOTS_EV_HEARTBEAT);
        assert_int_equal(slots_client_lost(f->s, by_session(id), f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_OK);
        assert_int_equal(f->ev.kind, SLOTS_EV_GRACE);
        assert_string_equal(f->ev.reason, "client_lost");
        assert_int_equal(state_of(f, 0), SLOTS_GRACE);
        /* Back within the window: the same session resumes. */
        advance(f, 60 * SEC);
        assert_int_equal(reserve(f, "alice", NULL), SLOTS_OK);
        assert_int_equal(f->ev.kind, SLOTS_EV_RESUME);
        assert_string_equal(f->ev.session, id);
        assert_int_equal(state_of(f, 0), SLOTS_ACTIVE);
        assert_int_equal(slots_end(f->s, by_user("alice"), "user", f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_OK);
        assert_int_equal(f->ev.kind, SLOTS_EV_ENDING);
        assert_string_equal(f->ev.reason, "user");
        assert_int_equal(state_of(f, 0), SLOTS_ENDING);
        assert_int_equal(slots_end(f->s, by_user("alice"), "evict", f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_OK);
        assert_int_equal(f->ev.kind, SLOTS_EV_NONE);
        assert_int_equal(slots_release(f->s, by_session(id), f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_OK);
        assert_int_equal(f->ev.kind, SLOTS_EV_FREED);
        assert_string_equal(f->ev.reason, "user");
        assert_string_equal(f->ev.user, "alice");
        assert_int_equal(f->ev.state, SLOTS_FREE);
        assert_int_equal(state_of(f, 0), SLOTS_FREE);
        /* A reservation ended before start is freed at once: nothing runs to enforce. */
        assert_int_equal(reserve(f, "bob", "s2"), SLOTS_OK);
        assert_int_equal(slots_end(f->s, by_user("bob"), "user", f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_OK);
        assert_int_equal(f->ev.kind, SLOTS_EV_FREED);
        assert_string_equal(f->ev.user, "bob");
        assert_int_equal(state_of(f, 2), SLOTS_FREE);
        /* Start from GRACE resumes too (the streaming process started again). */
        play(f, "carol", "s1");
        assert_int_equal(slots_client_lost(f->s, by_user("carol"), f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_OK);
        assert_int_equal(slots_start(f->s, by_user("carol"), f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_OK);
        assert_int_equal(f->ev.kind, SLOTS_EV_RESUME);
}

static void test_reserve_busy_slot_or_full_node_returns_no_idle(void **state) {
        struct fx *f = *state;

        play(f, "alice", "s0");
        assert_int_equal(reserve(f, "bob", "s0"), SLOTS_NO_IDLE);
        assert_non_null(strstr(f->msg, "s0 is busy with another user"));
        assert_int_equal(reserve(f, "bob", NULL), SLOTS_OK);
        assert_int_equal(f->ev.slot, 1);
        assert_int_equal(reserve(f, "carol", NULL), SLOTS_OK);
        assert_int_equal(reserve(f, "dave", NULL), SLOTS_NO_IDLE);
        assert_non_null(strstr(f->msg, "no free slot"));
        assert_string_equal(user_of(f, 0), "alice");
        assert_string_equal(user_of(f, 1), "bob");
        assert_string_equal(user_of(f, 2), "carol");
}

static void test_reserve_on_non_admissible_slot_returns_no_idle_naming_why(void **state) {
        struct fx *f = *state;

        f->admissible[0] = false;
        assert_int_equal(reserve(f, "alice", "s0"), SLOTS_NO_IDLE);
        assert_non_null(strstr(f->msg, "slot s0 is not admissible"));
        /* Picked for the user: the non-conformant slot is passed over. */
        assert_int_equal(reserve(f, "alice", NULL), SLOTS_OK);
        assert_int_equal(f->ev.slot, 1);
        f->admissible[1] = f->admissible[2] = false;
        assert_int_equal(reserve(f, "bob", NULL), SLOTS_NO_IDLE);
        assert_non_null(strstr(f->msg, "1 busy or blocked, 2 not admissible"));
        /* A user who holds a slot keeps it even when the slot falls out of conformance. */
        assert_int_equal(reserve(f, "alice", NULL), SLOTS_OK);
        assert_int_equal(f->ev.slot, 1);
}

static void test_same_user_again_renews_takes_over_or_resumes(void **state) {
        struct fx *f = *state;
        char id[SLOTS_SESSION_LEN + 1];
        struct slots_info info;

        assert_int_equal(reserve(f, "alice", "s1"), SLOTS_OK);
        memcpy(id, f->ev.session, sizeof(id));
        advance(f, 20 * SEC);
        /* Renewed: the lock runs 30 s from now, same session. */
        assert_int_equal(reserve(f, "alice", NULL), SLOTS_OK);
        assert_int_equal(f->ev.kind, SLOTS_EV_RESERVE);
        assert_string_equal(f->ev.session, id);
        slots_get(f->s, 1, &info);
        assert_int_equal(info.deadline_real_usec, f->now.real_usec + 30 * SEC);
        assert_int_equal(slots_start(f->s, by_session(id), f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_OK);
        /* Connected again while ACTIVE: a takeover, reported for the event; still one user, one slot. */
        assert_int_equal(
                slots_reserve(f->s, "alice", "s1", "2001:db8::1", f->now, &f->ev, f->msg, sizeof(f->msg)),
                SLOTS_OK);
        assert_int_equal(f->ev.kind, SLOTS_EV_TAKEOVER);
        assert_string_equal(f->ev.client_ip, "2001:db8::1");
        assert_string_equal(f->ev.session, id);
        assert_int_equal(state_of(f, 1), SLOTS_ACTIVE);
        assert_int_equal(state_of(f, 0), SLOTS_FREE);
        /* One slot per user: asking for another is a bad request, not a second booking. */
        assert_int_equal(reserve(f, "alice", "s2"), SLOTS_BAD_REQUEST);
        assert_non_null(strstr(f->msg, "holds slot s1"));
        assert_int_equal(state_of(f, 2), SLOTS_FREE);
}

static void test_op_while_session_ends_returns_slow_down(void **state) {
        struct fx *f = *state;

        play(f, "alice", NULL);
        assert_int_equal(slots_end(f->s, by_user("alice"), "evict", f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_OK);
        assert_int_equal(reserve(f, "alice", NULL), SLOTS_SLOW_DOWN);
        assert_int_equal(slots_start(f->s, by_user("alice"), f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_SLOW_DOWN);
        assert_int_equal(slots_viewer_join(f->s, by_user("alice"), "vic", "viewer", f->now, &f->ev, f->msg,
                                           sizeof(f->msg)),
                         SLOTS_SLOW_DOWN);
        /* Another user cannot have the slot until the end is enforced and released. */
        assert_int_equal(reserve(f, "bob", "s0"), SLOTS_NO_IDLE);
        assert_int_equal(slots_release(f->s, by_user("alice"), f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_OK);
        assert_int_equal(reserve(f, "alice", NULL), SLOTS_OK);
}

static void test_start_without_live_reservation_returns_lock_timeout(void **state) {
        struct fx *f = *state;
        struct slots_event evs[SLOTS_MAX];
        char id[SLOTS_SESSION_LEN + 1];

        assert_int_equal(slots_start(f->s, by_user("alice"), f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_LOCK_TIMEOUT);
        assert_int_equal(reserve(f, "alice", NULL), SLOTS_OK);
        memcpy(id, f->ev.session, sizeof(id));
        advance(f, 30 * SEC);
        /* Past the ttl, not yet swept: no start, and the slot is not handed to anyone else either. */
        assert_int_equal(slots_start(f->s, by_session(id), f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_LOCK_TIMEOUT);
        assert_non_null(strstr(f->msg, "expired"));
        assert_int_equal(reserve(f, "bob", "s0"), SLOTS_NO_IDLE);
        assert_int_equal(slots_expire(f->s, f->now, evs, SLOTS_MAX), 1);
        assert_int_equal(evs[0].kind, SLOTS_EV_FREED);
        assert_string_equal(evs[0].reason, "reserve_expired");
        assert_string_equal(evs[0].session, id);
        /* Swept: the late start still hears LOCK_TIMEOUT, by session or by user. */
        assert_int_equal(slots_start(f->s, by_session(id), f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_LOCK_TIMEOUT);
        assert_int_equal(slots_start(f->s, by_user("alice"), f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_LOCK_TIMEOUT);
}

static void test_unknown_session_is_not_found_and_another_users_is_forbidden(void **state) {
        struct fx *f = *state;
        const char *nobody = "0123456789abcdef0123456789abcdef";
        char id[SLOTS_SESSION_LEN + 1];

        memcpy(id, play(f, "alice", NULL), sizeof(id));
        assert_int_equal(
                slots_heartbeat(f->s, by_session(nobody), false, f->now, &f->ev, f->msg, sizeof(f->msg)),
                SLOTS_SESSION_NOT_FOUND);
        assert_int_equal(slots_start(f->s, by_session(nobody), f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_SESSION_NOT_FOUND);
        assert_int_equal(slots_client_lost(f->s, by_user("bob"), f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_SESSION_NOT_FOUND);
        assert_int_equal(slots_end(f->s, (struct slots_ref){ .session = id, .user = "bob" }, "user", f->now,
                                   &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_FORBIDDEN);
        assert_int_equal(state_of(f, 0), SLOTS_ACTIVE);
        assert_int_equal(slots_end(f->s, (struct slots_ref){ .session = id, .user = "alice" }, "user",
                                   f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_OK);
        /* Release only ends what is ending. */
        play(f, "bob", NULL);
        assert_int_equal(slots_release(f->s, by_user("bob"), f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_BAD_REQUEST);
}

static void test_viewers_join_started_sessions_up_to_the_cap(void **state) {
        struct fx *f = *state;
        struct slots_info info;

        assert_int_equal(reserve(f, "host", NULL), SLOTS_OK);
        assert_int_equal(slots_viewer_join(f->s, by_user("host"), "v0", "viewer", f->now, &f->ev, f->msg,
                                           sizeof(f->msg)),
                         SLOTS_BAD_REQUEST);
        assert_int_equal(slots_start(f->s, by_user("host"), f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_OK);
        for (int i = 0; i < 4; i++) {
                char v[8];

                snprintf(v, sizeof(v), "v%d", i);
                assert_int_equal(slots_viewer_join(f->s, by_user("host"), v, "viewer", f->now, &f->ev,
                                                   f->msg, sizeof(f->msg)),
                                 SLOTS_OK);
                assert_int_equal(f->ev.kind, SLOTS_EV_VIEWER_JOIN);
                assert_string_equal(f->ev.viewer, v);
        }
        assert_int_equal(slots_viewer_join(f->s, by_user("host"), "v4", "viewer", f->now, &f->ev, f->msg,
                                           sizeof(f->msg)),
                         SLOTS_ROLE_LIMIT);
        /* Joining again changes the role, not the count; the host is no viewer of its own. */
        assert_int_equal(slots_viewer_join(f->s, by_user("host"), "v1", "player", f->now, &f->ev, f->msg,
                                           sizeof(f->msg)),
                         SLOTS_OK);
        assert_int_equal(slots_viewer_join(f->s, by_user("host"), "v1", "player", f->now, &f->ev, f->msg,
                                           sizeof(f->msg)),
                         SLOTS_OK);
        assert_int_equal(f->ev.kind, SLOTS_EV_NONE);
        assert_int_equal(slots_viewer_join(f->s, by_user("host"), "host", "viewer", f->now, &f->ev, f->msg,
                                           sizeof(f->msg)),
                         SLOTS_BAD_REQUEST);
        slots_get(f->s, 0, &info);
        assert_int_equal(info.n_viewers, 4);
        /* Viewers hold no slot: the other slots stay free. */
        assert_int_equal(state_of(f, 1), SLOTS_FREE);
        assert_int_equal(
                slots_viewer_leave(f->s, by_user("host"), "v0", f->now, &f->ev, f->msg, sizeof(f->msg)),
                SLOTS_OK);
        assert_int_equal(f->ev.kind, SLOTS_EV_VIEWER_LEAVE);
        assert_int_equal(
                slots_viewer_leave(f->s, by_user("host"), "v0", f->now, &f->ev, f->msg, sizeof(f->msg)),
                SLOTS_SESSION_NOT_FOUND);
        assert_int_equal(slots_viewer_join(f->s, by_user("host"), "v4", "viewer", f->now, &f->ev, f->msg,
                                           sizeof(f->msg)),
                         SLOTS_OK);
        /* GRACE keeps viewers; the end takes them with it. */
        assert_int_equal(slots_client_lost(f->s, by_user("host"), f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_OK);
        assert_int_equal(slots_viewer_join(f->s, by_user("host"), "v0", "viewer", f->now, &f->ev, f->msg,
                                           sizeof(f->msg)),
                         SLOTS_ROLE_LIMIT);
        assert_int_equal(slots_end(f->s, by_user("host"), "user", f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_OK);
        slots_get(f->s, 0, &info);
        assert_int_equal(info.n_viewers, 0);
}

static void test_drain_refuses_new_users_and_stopping_refuses_all(void **state) {
        struct fx *f = *state;

        play(f, "alice", NULL);
        assert_int_equal(slots_drain(f->s, true, f->now, &f->ev, f->msg, sizeof(f->msg)), SLOTS_OK);
        assert_int_equal(f->ev.kind, SLOTS_EV_DRAIN);
        assert_true(slots_draining(f->s));
        assert_int_equal(reserve(f, "bob", NULL), SLOTS_DRAINING);
        /* A holder may reconnect while the node drains. */
        assert_int_equal(reserve(f, "alice", NULL), SLOTS_OK);
        assert_int_equal(f->ev.kind, SLOTS_EV_TAKEOVER);
        assert_int_equal(slots_drain(f->s, true, f->now, &f->ev, f->msg, sizeof(f->msg)), SLOTS_OK);
        assert_int_equal(f->ev.kind, SLOTS_EV_NONE);
        assert_int_equal(slots_drain(f->s, false, f->now, &f->ev, f->msg, sizeof(f->msg)), SLOTS_OK);
        assert_int_equal(f->ev.kind, SLOTS_EV_UNDRAIN);
        assert_int_equal(reserve(f, "bob", NULL), SLOTS_OK);
        slots_set_stopping(f->s);
        assert_int_equal(reserve(f, "carol", NULL), SLOTS_STOPPING);
        assert_int_equal(slots_start(f->s, by_user("bob"), f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_STOPPING);
        assert_int_equal(slots_viewer_join(f->s, by_user("alice"), "v", "viewer", f->now, &f->ev, f->msg,
                                           sizeof(f->msg)),
                         SLOTS_STOPPING);
        /* Ending still works while stopping. */
        assert_int_equal(
                slots_end(f->s, by_user("alice"), "shutdown", f->now, &f->ev, f->msg, sizeof(f->msg)),
                SLOTS_OK);
}

static void test_malformed_input_returns_bad_request(void **state) {
        struct fx *f = *state;
        char long_user[SLOTS_USER_MAX + 2];

        memset(long_user, 'u', sizeof(long_user) - 1);
        long_user[sizeof(long_user) - 1] = '\0';
        assert_int_equal(reserve(f, long_user, NULL), SLOTS_BAD_REQUEST);
        long_user[SLOTS_USER_MAX] = '\0'; /* exactly the limit is fine */
        assert_int_equal(reserve(f, long_user, NULL), SLOTS_OK);
        assert_int_equal(reserve(f, "", NULL), SLOTS_BAD_REQUEST);
        assert_int_equal(reserve(f, NULL, NULL), SLOTS_BAD_REQUEST);
        assert_int_equal(reserve(f, "a b", NULL), SLOTS_BAD_REQUEST);
        assert_int_equal(reserve(f, "a\"b", NULL), SLOTS_BAD_REQUEST);
        assert_int_equal(reserve(f, "ok", "s9"), SLOTS_BAD_REQUEST);
        assert_non_null(strstr(f->msg, "no slot \"s9\""));
        assert_int_equal(
                slots_reserve(f->s, "ok", NULL, "300.1.1.1", f->now, &f->ev, f->msg, sizeof(f->msg)),
                SLOTS_BAD_REQUEST);
        assert_int_equal(slots_start(f->s, (struct slots_ref){ 0 }, f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_BAD_REQUEST);
        assert_int_equal(slots_start(f->s, by_session("XYZ"), f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_BAD_REQUEST);
        assert_int_equal(
                slots_end(f->s, by_user(long_user), "Bad Reason", f->now, &f->ev, f->msg, sizeof(f->msg)),
                SLOTS_BAD_REQUEST);
        assert_int_equal(slots_unblock(f->s, "s1", f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_BAD_REQUEST);
        /* A NULL message buffer is fine. */
        assert_int_equal(slots_reserve(f->s, "", NULL, NULL, f->now, NULL, NULL, 0), SLOTS_BAD_REQUEST);
}

static void test_expire_applies_every_timeout(void **state) {
        struct fx *f = *state;
        struct slots_limits lim;
        struct slots_event evs[SLOTS_MAX];

        slots_free(f->s);
        slots_limits_default(&lim);
        lim.max_session_usec = 3600 * SEC;
        lim.idle_usec = 600 * SEC;
        lim.heartbeat_timeout_usec = 10 * SEC;
        f->s = make(f, -1, &lim);
        play(f, "a", "s0");
        play(f, "b", "s1");
        assert_int_equal(slots_expire(f->s, f->now, evs, SLOTS_MAX), 0);
        /* Heartbeats with no input: b goes idle; a is silent and loses its client. */
        for (int i = 0; i < 70; i++) {
                advance(f, 9 * SEC);
                assert_int_equal(slots_heartbeat(f->s, by_user("b"), false, f->now, NULL, NULL, 0),
                                 SLOTS_OK);
                if (i == 1)
                        assert_int_equal(slots_expire(f->s, f->now, evs, SLOTS_MAX), 1);
        }
        assert_int_equal(evs[0].kind, SLOTS_EV_GRACE);
        assert_string_equal(evs[0].reason, "heartbeat_timeout");
        assert_string_equal(evs[0].user, "a");
        assert_int_equal(slots_expire(f->s, f->now, evs, SLOTS_MAX), 2);
        /* a's window (120 s from 18 s) ran out long ago; b has had no input for 630 s. */
        assert_string_equal(evs[0].reason, "grace_expired");
        assert_int_equal(evs[0].state, SLOTS_ENDING);
        assert_string_equal(evs[1].reason, "idle");
        assert_int_equal(slots_release(f->s, by_user("a"), f->now, NULL, NULL, 0), SLOTS_OK);
        assert_int_equal(slots_release(f->s, by_user("b"), f->now, NULL, NULL, 0), SLOTS_OK);
        /* Max session length applies even to a busy user. */
        play(f, "c", "s2");
        for (int i = 0; i < 399; i++) {
                advance(f, 9 * SEC);
                assert_int_equal(slots_heartbeat(f->s, by_user("c"), true, f->now, NULL, NULL, 0), SLOTS_OK);
                assert_int_equal(slots_expire(f->s, f->now, evs, SLOTS_MAX), 0);
        }
        advance(f, 9 * SEC);
        assert_int_equal(slots_heartbeat(f->s, by_user("c"), true, f->now, NULL, NULL, 0), SLOTS_OK);
        assert_int_equal(slots_expire(f->s, f->now, evs, 1), 1);
        assert_string_equal(evs[0].reason, "max_length");
        /* Ending waits for the caller's release; the expiry never frees it. */
        advance(f, 3600 * SEC);
        assert_int_equal(slots_expire(f->s, f->now, evs, SLOTS_MAX), 0);
        assert_int_equal(state_of(f, 2), SLOTS_ENDING);
}

static void test_expire_cap_defers_the_rest(void **state) {
        struct fx *f = *state;
        struct slots_event evs[SLOTS_MAX];

        assert_int_equal(reserve(f, "a", NULL), SLOTS_OK);
        assert_int_equal(reserve(f, "b", NULL), SLOTS_OK);
        advance(f, 31 * SEC);
        assert_int_equal(slots_expire(f->s, f->now, evs, 1), 1);
        assert_string_equal(evs[0].user, "a");
        assert_int_equal(slots_expire(f->s, f->now, evs, 1), 1);
        assert_string_equal(evs[0].user, "b");
        assert_int_equal(slots_expire(f->s, f->now, evs, 1), 0);
}

static void test_failed_write_returns_internal_and_changes_nothing(void **state) {
        struct fx *f = *state;
        struct slots_event evs[SLOTS_MAX];

        play(f, "alice", "s0");
        assert_int_equal(reserve(f, "carol", "s2"), SLOTS_OK);
        /* slots.state turned into a non-empty directory: it cannot be opened for writing. */
        assert_int_equal(unlinkat(f->dir->fd, SLOTS_STATE_FILE, 0), 0);
        tu_put(f->dir->fd, SLOTS_STATE_FILE "/block", "x");
        assert_int_equal(reserve(f, "bob", NULL), SLOTS_INTERNAL);
        assert_non_null(strstr(f->msg, "/var/lib/render-agent/slots.state"));
        assert_non_null(strstr(f->msg, "nothing changed"));
        assert_int_equal(state_of(f, 1), SLOTS_FREE);
        assert_int_equal(slots_client_lost(f->s, by_user("alice"), f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_INTERNAL);
        assert_int_equal(state_of(f, 0), SLOTS_ACTIVE);
        assert_int_equal(slots_drain(f->s, true, f->now, &f->ev, f->msg, sizeof(f->msg)), SLOTS_INTERNAL);
        assert_false(slots_draining(f->s));
        assert_int_equal(slots_end(f->s, by_user("alice"), "user", f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_INTERNAL);
        assert_int_equal(state_of(f, 0), SLOTS_ACTIVE);
        /* A sweep that cannot be written changes nothing either, and is tried again next time. */
        advance(f, 31 * SEC);
        assert_int_equal(slots_expire(f->s, f->now, evs, SLOTS_MAX), -EISDIR);
        assert_int_equal(state_of(f, 2), SLOTS_RESERVED);
        fx_remove_state_dir(f);
        assert_int_equal(slots_expire(f->s, f->now, evs, SLOTS_MAX), 1);
        assert_int_equal(state_of(f, 2), SLOTS_FREE);
}

static void test_batch_writes_once_for_many_operations(void **state) {
        struct fx *f = *state;
        struct slots_event evs[SLOTS_MAX];
        uint64_t before = state_gen(f);

        slots_batch_begin(f->s);
        assert_true(slots_in_batch(f->s));
        assert_int_equal(reserve(f, "alice", "s0"), SLOTS_OK);
        assert_int_equal(slots_start(f->s, by_user("alice"), f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_OK);
        assert_int_equal(reserve(f, "bob", NULL), SLOTS_OK);
        /* Decisions inside the batch see its own changes: carol cannot take alice's slot. */
        assert_int_equal(reserve(f, "carol", "s0"), SLOTS_NO_IDLE);
        assert_int_equal(state_gen(f), before); /* nothing written yet */
        assert_int_equal(slots_batch_commit(f->s, f->msg, sizeof(f->msg)), 1);
        assert_false(slots_in_batch(f->s));
        assert_int_equal(state_gen(f), before + 1); /* one write for the four operations */
        /* A batch that changed nothing writes nothing. */
        before = state_gen(f);
        slots_batch_begin(f->s);
        assert_int_equal(reserve(f, "carol", "s0"), SLOTS_NO_IDLE);
        assert_int_equal(slots_expire(f->s, f->now, evs, SLOTS_MAX), 0);
        assert_int_equal(slots_batch_commit(f->s, f->msg, sizeof(f->msg)), 0);
        assert_int_equal(state_gen(f), before);
        /* What was committed is what a restart finds. */
        {
                struct slots *s2 = restart(f, 0);
                struct slots_info info;

                slots_get(s2, 0, &info);
                assert_int_equal(info.state, SLOTS_ACTIVE);
                assert_string_equal(info.user, "alice");
                slots_get(s2, 1, &info);
                assert_int_equal(info.state, SLOTS_RESERVED);
                slots_free(s2);
        }
}

static void test_failed_batch_commit_undoes_the_whole_batch(void **state) {
        struct fx *f = *state;
        struct slots_event evs[SLOTS_MAX];

        play(f, "alice", "s0");
        assert_int_equal(reserve(f, "carol", "s2"), SLOTS_OK);
        assert_int_equal(unlinkat(f->dir->fd, SLOTS_STATE_FILE, 0), 0);
        tu_put(f->dir->fd, SLOTS_STATE_FILE "/block", "x");
        slots_batch_begin(f->s);
        assert_int_equal(reserve(f, "bob", "s1"), SLOTS_OK);
        assert_int_equal(slots_end(f->s, by_user("alice"), "user", f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_OK);
        assert_int_equal(slots_drain(f->s, true, f->now, &f->ev, f->msg, sizeof(f->msg)), SLOTS_OK);
        advance(f, 31 * SEC);
        assert_int_equal(slots_expire(f->s, f->now, evs, SLOTS_MAX), 2); /* carol's and bob's locks */
        assert_int_equal(slots_batch_commit(f->s, f->msg, sizeof(f->msg)), -EISDIR);
        assert_non_null(strstr(f->msg, "/var/lib/render-agent/slots.state"));
        assert_non_null(strstr(f->msg, "undone"));
        assert_int_equal(state_of(f, 0), SLOTS_ACTIVE);
        assert_int_equal(state_of(f, 1), SLOTS_FREE);
        assert_int_equal(state_of(f, 2), SLOTS_RESERVED);
        assert_false(slots_draining(f->s));
        /* Outside a batch, operations write (and fail) one by one again. */
        assert_int_equal(reserve(f, "bob", "s1"), SLOTS_INTERNAL);
        fx_remove_state_dir(f);
        assert_int_equal(reserve(f, "bob", "s1"), SLOTS_OK);
}

static void test_limits_can_change_while_running(void **state) {
        struct fx *f = *state;
        struct slots_limits l;

        slots_limits_default(&l);
        l.lock_ttl_usec = 2 * SEC;
        assert_int_equal(slots_set_limits(f->s, &l, f->msg, sizeof(f->msg)), 0);
        assert_int_equal(reserve(f, "alice", NULL), SLOTS_OK);
        advance(f, 3 * SEC);
        assert_int_equal(slots_expire(f->s, f->now, NULL, SLOTS_MAX), 1);
        l.grace_usec = 10 * SEC; /* under the 40 s floor */
        assert_int_equal(slots_set_limits(f->s, &l, f->msg, sizeof(f->msg)), -EINVAL);
        assert_non_null(strstr(f->msg, "reconnect window"));
}

static void test_config_is_validated(void **state) {
        struct fx *f = *state;
        const char *dup[] = { "a", "a" }, *empty[] = { "" };
        struct slots_config cfg = { .n_slots = 2, .slot_ids = dup, .state_dir_fd = -1 };
        struct slots *s = NULL;

        slots_limits_default(&cfg.limits);
        assert_int_equal(slots_new(&cfg, &s, f->msg, sizeof(f->msg)), -EINVAL);
        assert_non_null(strstr(f->msg, "twice"));
        cfg.n_slots = 1;
        cfg.slot_ids = empty;
        assert_int_equal(slots_new(&cfg, &s, f->msg, sizeof(f->msg)), -EINVAL);
        cfg.slot_ids = dup;
        cfg.n_slots = 0;
        assert_int_equal(slots_new(&cfg, &s, f->msg, sizeof(f->msg)), -EINVAL);
        cfg.n_slots = 1;
        cfg.limits.grace_usec = 39 * SEC;
        assert_int_equal(slots_new(&cfg, &s, f->msg, sizeof(f->msg)), -EINVAL);
        assert_non_null(strstr(f->msg, "40..3600"));
        cfg.limits.grace_usec = 3601 * SEC;
        assert_int_equal(slots_new(&cfg, &s, f->msg, sizeof(f->msg)), -EINVAL);
        cfg.limits.grace_usec = 3600 * SEC;
        cfg.limits.viewers_max = SLOTS_VIEWERS_MAX + 1;
        assert_int_equal(slots_new(&cfg, &s, f->msg, sizeof(f->msg)), -EINVAL);
        cfg.limits.viewers_max = SLOTS_VIEWERS_MAX;
        assert_int_equal(slots_new(&cfg, &s, f->msg, sizeof(f->msg)), 0);
        assert_int_equal(slots_load(s, f->now, NULL, 0), 0); /* no state dir: nothing to load */
        slots_free(s);
        slots_free(NULL);
}

/* ---- billing dimensions: project and app ---- */

static enum slots_code reserve_for(struct fx *f, struct slots *s, const char *user, const char *project,
                                   const char *app, const char *slot) {
        struct slots_reserve_req req = { .user = user, .project = project, .app = app, .slot_id = slot };

        f->msg[0] = '\0';
        return slots_reserve_for(s, &req, f->now, &f->ev, f->msg, sizeof(f->msg));
}

static void test_a_session_keeps_its_project_and_app_through_a_restart(void **state) {
        struct fx *f = *state;
        struct slots_info info;
        struct slots *s2;

        assert_int_equal(reserve_for(f, f->s, "alice", "acme", "racer", "s1"), SLOTS_OK);
        assert_string_equal(f->ev.project, "acme");
        assert_string_equal(f->ev.app, "racer");
        assert_int_equal(slots_start(f->s, by_user("alice"), f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_OK);
        assert_string_equal(f->ev.project, "acme");
        slots_get(f->s, 1, &info);
        assert_string_equal(info.project, "acme");
        assert_string_equal(info.app, "racer");
        /* Without a project: none, and nothing in the file. */
        assert_int_equal(reserve(f, "bob", "s2"), SLOTS_OK);
        assert_string_equal(f->ev.project, "");
        assert_string_equal(f->ev.app, "");
        s2 = restart(f, 0);
        slots_get(s2, 1, &info);
        assert_int_equal(info.state, SLOTS_ACTIVE);
        assert_string_equal(info.project, "acme");
        assert_string_equal(info.app, "racer");
        slots_get(s2, 2, &info);
        assert_string_equal(info.project, "");
        /* The end carries them too. */
        assert_int_equal(slots_end(s2, by_user("alice"), "ended", f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_OK);
        assert_string_equal(f->ev.project, "acme");
        assert_string_equal(f->ev.app, "racer");
        slots_free(s2);
}

static void test_a_project_is_checked_and_stays_the_sessions(void **state) {
        struct fx *f = *state;
        char long_name[SLOTS_PROJECT_MAX + 2];

        memset(long_name, 'p', sizeof(long_name) - 1);
        long_name[sizeof(long_name) - 1] = '\0';
        assert_int_equal(reserve_for(f, f->s, "alice", "a b", NULL, NULL), SLOTS_BAD_REQUEST);
        assert_non_null(strstr(f->msg, "project must be 1..64 of [A-Za-z0-9._@:-]"));
        assert_int_equal(reserve_for(f, f->s, "alice", long_name, NULL, NULL), SLOTS_BAD_REQUEST);
        assert_int_equal(reserve_for(f, f->s, "alice", "", NULL, NULL), SLOTS_BAD_REQUEST);
        assert_int_equal(reserve_for(f, f->s, "alice", "acme", "x/y", NULL), SLOTS_BAD_REQUEST);
        assert_non_null(strstr(f->msg, "app must be"));
        assert_int_equal(state_of(f, 0), SLOTS_FREE);
        assert_int_equal(reserve_for(f, f->s, "alice", "acme", NULL, NULL), SLOTS_OK);
        /* The holder again: the same project, or none, renews; another is refused. */
        assert_int_equal(reserve_for(f, f->s, "alice", "acme", NULL, NULL), SLOTS_OK);
        assert_int_equal(f->ev.kind, SLOTS_EV_RESERVE);
        assert_int_equal(reserve_for(f, f->s, "alice", NULL, NULL, NULL), SLOTS_OK);
        assert_string_equal(f->ev.project, "acme");
        assert_int_equal(reserve_for(f, f->s, "alice", "zeta", NULL, NULL), SLOTS_BAD_REQUEST);
        assert_non_null(strstr(f->msg, "of project acme, app (none)"));
        assert_int_equal(reserve_for(f, f->s, "alice", NULL, "racer", NULL), SLOTS_BAD_REQUEST);
}

static void test_a_state_file_of_an_older_agent_without_project_loads(void **state) {
        struct fx *f = *state;
        char json[512];
        struct slots_info info;
        struct slots *s2;

        snprintf(json, sizeof(json),
                 "{\"v\":1,\"slots\":[{\"id\":\"s0\",\"state\":\"active\",\"user\":\"alice\",\"session\":"
                 "\"0123456789abcdef0123456789abcdef\",\"client_ip\":\"\",\"started\":%" PRIu64 "}]}",
                 f->now.real_usec);
        put_state(f, json);
        s2 = restart(f, 0);
        slots_get(s2, 0, &info);
        assert_int_equal(info.state, SLOTS_ACTIVE);
        assert_string_equal(info.user, "alice");
        assert_string_equal(info.project, "");
        assert_string_equal(info.app, "");
        slots_free(s2);
        /* A project that is not one is a corrupt file. */
        snprintf(json, sizeof(json),
                 "{\"v\":1,\"slots\":[{\"id\":\"s0\",\"state\":\"active\",\"user\":\"alice\",\"session\":"
                 "\"0123456789abcdef0123456789abcdef\",\"project\":\"a b\",\"started\":%" PRIu64 "}]}",
                 f->now.real_usec);
        put_state(f, json);
        s2 = restart(f, -EBADMSG);
        assert_non_null(strstr(f->msg, "slots[0].project: not a valid project"));
        slots_free(s2);
}

/* Three slots: s0 unbound, s1 bound to acme, s2 bound to zeta; nothing persisted. */
static struct slots *make_bound(struct fx *f) {
        static const char *const projects[] = { NULL, "acme", "zeta" };
        struct slots_config cfg = {
                .n_slots = 3, .slot_ids = ids, .slot_projects = projects, .state_dir_fd = -1
        };
        struct slots *s = NULL;

        slots_limits_default(&cfg.limits);
        assert_int_equal(slots_new(&cfg, &s, f->msg, sizeof(f->msg)), 0);
        return s;
}

static void test_a_bound_slot_takes_only_its_project(void **state) {
        struct fx *f = *state;
        struct slots *s = make_bound(f);
        struct slots_info info;

        slots_get(s, 1, &info);
        assert_string_equal(info.bound_project, "acme");
        /* Asked for by name: another project is refused, naming the slot's. */
        assert_int_equal(reserve_for(f, s, "ann", "acme", NULL, "s2"), SLOTS_FORBIDDEN);
        assert_string_equal(f->msg, "slot s2 is bound to project zeta; project acme cannot use it");
        /* Not named: the project's own slot first, then an unbound one, never another's. */
        assert_int_equal(reserve_for(f, s, "ann", "acme", NULL, NULL), SLOTS_OK);
        assert_int_equal(f->ev.slot, 1);
        assert_int_equal(reserve_for(f, s, "ben", "acme", NULL, NULL), SLOTS_OK);
        assert_int_equal(f->ev.slot, 0);
        assert_int_equal(reserve_for(f, s, "cat", "acme", NULL, NULL), SLOTS_NO_IDLE);
        assert_string_equal(f->msg, "no free slot for project acme: 2 busy or blocked, 0 not admissible, 1 "
                                    "bound to other projects");
        /* Without a project, a bound slot takes its project. */
        assert_int_equal(reserve_for(f, s, "dan", NULL, "racer", NULL), SLOTS_OK);
        assert_int_equal(f->ev.slot, 2);
        assert_string_equal(f->ev.project, "zeta");
        assert_string_equal(f->ev.app, "racer");
        slots_free(s);
}

static void test_without_a_project_unbound_slots_come_first_and_bindings_can_change(void **state) {
        static const char *const rebound[] = { "zeta", "acme", NULL }, *const bad[] = { "a b", NULL, NULL };
        struct fx *f = *state;
        struct slots *s = make_bound(f);
        struct slots_info info;

        assert_int_equal(reserve_for(f, s, "ann", NULL, NULL, NULL), SLOTS_OK);
        assert_int_equal(f->ev.slot, 0);
        assert_string_equal(f->ev.project, "");
        assert_int_equal(reserve_for(f, s, "ben", NULL, NULL, "s1"), SLOTS_OK);
        assert_string_equal(f->ev.project, "acme");
        /* A reload: bindings apply to new reservations; sessions keep their project. */
        assert_int_equal(slots_set_projects(s, bad, f->msg, sizeof(f->msg)), -EINVAL);
        assert_non_null(strstr(f->msg, "slot s0: project must be"));
        slots_get(s, 0, &info);
        assert_string_equal(info.bound_project, "");
        assert_int_equal(slots_set_projects(s, rebound, f->msg, sizeof(f->msg)), 0);
        slots_get(s, 0, &info);
        assert_string_equal(info.bound_project, "zeta");
        assert_string_equal(info.project, "");
        assert_int_equal(reserve_for(f, s, "cat", "zeta", NULL, "s2"), SLOTS_OK);
        assert_string_equal(f->ev.project, "zeta");
        assert_int_equal(slots_set_projects(s, NULL, f->msg, sizeof(f->msg)), 0);
        slots_get(s, 1, &info);
        assert_string_equal(info.bound_project, "");
        slots_free(s);
}

static void test_a_bad_binding_is_refused_at_construction(void **state) {
        static const char *const projects[] = { NULL, "no/slash", NULL };
        struct fx *f = *state;
        struct slots_config cfg = {
                .n_slots = 3, .slot_ids = ids, .slot_projects = projects, .state_dir_fd = -1
        };
        struct slots *s = NULL;

        slots_limits_default(&cfg.limits);
        assert_int_equal(slots_new(&cfg, &s, f->msg, sizeof(f->msg)), -EINVAL);
        assert_string_equal(f->msg, "slots: slot s1: project must be 1..64 of [A-Za-z0-9._@:-]");
        assert_null(s);
}

static void test_codes_have_stable_names(void **state) {
        static const char *const want[] = { "OK",           "NO_IDLE",           "SLOW_DOWN",
                                            "LOCK_TIMEOUT", "SESSION_NOT_FOUND", "ROLE_LIMIT",
                                            "STOPPING",     "DRAINING",          "BAD_REQUEST",
                                            "FORBIDDEN",    "INTERNAL" };

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(want); i++)
                assert_string_equal(slots_code_str((enum slots_code)i), want[i]);
        assert_string_equal(slots_code_str((enum slots_code)99), "INTERNAL");
        assert_string_equal(slots_state_str(SLOTS_GRACE), "grace");
        assert_string_equal(slots_event_str(SLOTS_EV_TAKEOVER), "takeover");
}

/* xorshift: the same sequence on every run, so a failure replays. */
static uint32_t rnd(uint32_t *x) {
        *x ^= *x << 13;
        *x ^= *x >> 17;
        *x ^= *x << 5;
        return *x;
}

/* Every slot's holder as seen from outside (events only), checked against what each success says. */
static void test_random_operations_never_put_two_users_on_one_slot(void **state) {
        struct fx *f = *state;
        char held[3][SLOTS_USER_MAX + 1] = { { 0 } };
        struct slots_event evs[SLOTS_MAX];
        uint32_t seed = 20261124;
        int ok = 0;

        for (int step = 0; step < 20000; step++) {
                char user[8];
                struct slots_event ev = { 0 };
                enum slots_code c = SLOTS_OK;
                struct slots_ref ref;
                unsigned op = rnd(&seed) % 10;

                snprintf(user, sizeof(user), "u%u", rnd(&seed) % 12);
                ref = by_user(user);
                advance(f, (rnd(&seed) % 20) * SEC);
                switch (op) {
                case 0:
                case 1:
                        c = slots_reserve(f->s, user, rnd(&seed) % 2 ? ids[rnd(&seed) % 3] : NULL, NULL,
                                          f->now, &ev, NULL, 0);
                        break;
                case 2:
                case 3:
                        c = slots_start(f->s, ref, f->now, &ev, NULL, 0);
                        break;
                case 4:
                        c = slots_client_lost(f->s, ref, f->now, &ev, NULL, 0);
                        break;
                case 5:
                        c = slots_end(f->s, ref, "user", f->now, &ev, NULL, 0);
                        break;
                case 6:
                        c = slots_release(f->s, ref, f->now, &ev, NULL, 0);
                        break;
                case 7:
                        c = slots_heartbeat(f->s, ref, true, f->now, &ev, NULL, 0);
                        break;
                case 8: {
                        int n = slots_expire(f->s, f->now, evs, SLOTS_MAX);

                        assert_true(n >= 0);
                        for (int k = 0; k < n; k++)
                                if (evs[k].kind == SLOTS_EV_FREED) {
                                        assert_string_equal(held[evs[k].slot], evs[k].user);
                                        held[evs[k].slot][0] = '\0';
                                }
                        break;
                }
                default:
                        /* A crash and restart in the middle of it all. */
                        slots_free(f->s);
                        f->s = make(f, f->dir->fd, NULL);
                        assert_int_equal(slots_load(f->s, f->now, f->msg, sizeof(f->msg)), 0);
                        for (size_t i = 0; i < 3; i++)
                                if (held[i][0] && state_of(f, i) == SLOTS_FREE)
                                        held[i][0] = '\0'; /* an expired reservation, freed on load */
                        break;
                }
                if (c != SLOTS_OK || op >= 8)
                        goto check;
                ok++;
                if (ev.kind == SLOTS_EV_RESERVE || ev.kind == SLOTS_EV_TAKEOVER ||
                    ev.kind == SLOTS_EV_RESUME || ev.kind == SLOTS_EV_START) {
                        /* Granted: the slot was free or already this user's. */
                        if (held[ev.slot][0] && strcmp(held[ev.slot], user) != 0)
                                fail_msg("step %d: %s got slot %zu held by %s", step, user, ev.slot,
                                         held[ev.slot]);
                        snprintf(held[ev.slot], sizeof(held[0]), "%s", user);
                } else if (ev.kind == SLOTS_EV_FREED) {
                        held[ev.slot][0] = '\0';
                }
        check:
                /* And the state agrees: a user in at most one slot, each held slot by its holder. */
                for (size_t i = 0; i < 3; i++) {
                        const char *u = user_of(f, i);

                        if (*u)
                                assert_string_equal(u, held[i]);
                        for (size_t j = 0; j < i; j++)
                                if (*u)
                                        assert_string_not_equal(u, user_of(f, j));
                }
        }
        assert_true(ok > 2000); /* the sequence exercised the machine, not only its refusals */
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_every_state_from_free_to_free, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reserve_busy_slot_or_full_node_returns_no_idle, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(
                        test_reserve_on_non_admissible_slot_returns_no_idle_naming_why, setup, teardown),
                cmocka_unit_test_setup_teardown(test_same_user_again_renews_takes_over_or_resumes, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_op_while_session_ends_returns_slow_down, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_start_without_live_reservation_returns_lock_timeout,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_unknown_session_is_not_found_and_another_users_is_forbidden, setup, teardown),
                cmocka_unit_test_setup_teardown(test_viewers_join_started_sessions_up_to_the_cap, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_drain_refuses_new_users_and_stopping_refuses_all, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_malformed_input_returns_bad_request, setup, teardown),
                cmocka_unit_test_setup_teardown(test_expire_applies_every_timeout, setup, teardown),
                cmocka_unit_test_setup_teardown(test_expire_cap_defers_the_rest, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failed_write_returns_internal_and_changes_nothing,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_batch_writes_once_for_many_operations, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failed_batch_commit_undoes_the_whole_batch, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_limits_can_change_while_running, setup, teardown),
                cmocka_unit_test_setup_teardown(test_config_is_validated, setup, teardown),
                cmocka_unit_test_setup_teardown(test_a_session_keeps_its_project_and_app_through_a_restart,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_a_project_is_checked_and_stays_the_sessions, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_a_state_file_of_an_older_agent_without_project_loads,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_a_bound_slot_takes_only_its_project, setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_without_a_project_unbound_slots_come_first_and_bindings_can_change, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(test_a_bad_binding_is_refused_at_construction, setup,
                                                teardown),
                cmocka_unit_test(test_codes_have_stable_names),
                cmocka_unit_test_setup_teardown(test_random_operations_never_put_two_users_on_one_slot,
                                                setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
