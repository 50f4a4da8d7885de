/* test_slots.c: the session state machine: transitions, error codes, takeover, persistence, recovery. */
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

#define SEC UINT64_C(1000000)

/* A node of three slots with a scratch state dir and a clock the test moves. */
struct fx {
        struct tu_scratch *dir;
        struct slots *s;
        struct slots_clock now;
        bool admissible[3];
        char msg[SLOTS_MSG_MAX];
        struct slots_event ev;
};

static const char *const ids[] = { "s0", "s1", "s2" };

static bool is_admissible(void *userdata, size_t i) {
        return ((struct fx *)userdata)->admissible[i];
}

static struct slots *make(struct fx *f, int dir_fd, const struct slots_limits *lim) {
        struct slots_config cfg = { .n_slots = 3,
                                    .slot_ids = ids,
                                    .state_dir_fd = dir_fd,
                                    .state_dir = "/var/lib/render-agent",
                                    .admissible = is_admissible,
                                    .userdata = f };
        struct slots *s = NULL;

        if (lim)
                cfg.limits = *lim;
        else
                slots_limits_default(&cfg.limits);
        assert_int_equal(slots_new(&cfg, &s, f->msg, sizeof(f->msg)), 0);
        return s;
}

static int setup(void **state) {
        struct fx *f = calloc(1, sizeof(*f));
        void *d = NULL;

        assert_non_null(f);
        tu_scratch_setup(&d);
        f->dir = d;
        f->now = (struct slots_clock){ .mono_usec = 1000 * SEC, .real_usec = 1700000000 * SEC };
        f->admissible[0] = f->admissible[1] = f->admissible[2] = true;
        f->s = make(f, f->dir->fd, NULL);
        assert_int_equal(slots_load(f->s, f->now, f->msg, sizeof(f->msg)), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fx *f = *state;
        void *d = f->dir;

        slots_free(f->s);
        free(f);
        return tu_scratch_teardown(&d);
}

static void advance(struct fx *f, uint64_t usec) {
        f->now.mono_usec += usec;
        f->now.real_usec += usec;
}

static enum slots_code reserve(struct fx *f, const char *user, const char *slot) {
        return slots_reserve(f->s, user, slot, "192.0.2.7", f->now, &f->ev, f->msg, sizeof(f->msg));
}

static struct slots_ref by_user(const char *u) {
        return (struct slots_ref){ .user = u };
}

static struct slots_ref by_session(const char *id) {
        return (struct slots_ref){ .session = id };
}

static enum slots_state state_of(struct fx *f, size_t i) {
        struct slots_info info;

        slots_get(f->s, i, &info);
        return info.state;
}

static const char *user_of(struct fx *f, size_t i) {
        struct slots_info info;

        slots_get(f->s, i, &info);
        return info.user;
}

/* Reserve + start; returns the session id (static storage, overwritten by the next call). */
static const char *play(struct fx *f, const char *user, const char *slot) {
        static char id[SLOTS_SESSION_LEN + 1];

        assert_int_equal(reserve(f, user, slot), SLOTS_OK);
        memcpy(id, f->ev.session, sizeof(id));
        assert_int_equal(slots_start(f->s, by_session(id), f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_OK);
        return id;
}

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

/* Takes the directory standing in for slots.state away again. */
static void tu_rm_rf_below(struct fx *f) {
        char p[128];

        snprintf(p, sizeof(p), "%s/%s", f->dir->path, SLOTS_STATE_FILE);
        tu_rm_rf(p);
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
        tu_rm_rf_below(f);
        assert_int_equal(slots_expire(f->s, f->now, evs, SLOTS_MAX), 1);
        assert_int_equal(state_of(f, 2), SLOTS_FREE);
}

/* A second agent on the same state dir, as after a restart. */
static struct slots *restart(struct fx *f, int expect) {
        struct slots *s = make(f, f->dir->fd, NULL);

        f->msg[0] = '\0';
        assert_int_equal(slots_load(s, f->now, f->msg, sizeof(f->msg)), expect);
        return s;
}

/* The generation of the newest copy in slots.state: each write adds one. */
static uint64_t state_gen(struct fx *f) {
        _cleanup_free_ char *buf = NULL;
        struct slots__frame fr;
        size_t len;

        assert_int_equal(plat_read_file_at(f->dir->fd, SLOTS_STATE_FILE, SLOTS__FILE_BYTES, &buf, &len), 0);
        assert_int_equal(slots__frame_pick(buf, len, &fr, f->msg, sizeof(f->msg)), 0);
        return fr.gen;
}

/* A slots.state as an agent that crashed would have left it: `json` as generation gen in region k,
 * the other region as it was (zeros for a new file). */
static void put_copy(struct fx *f, size_t k, uint64_t gen, const char *json) {
        _cleanup_close_ int fd = openat(f->dir->fd, SLOTS_STATE_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        uint8_t hdr[SLOTS__HDR_BYTES];
        off_t off = (off_t)(k * SLOTS__REGION_BYTES);

        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, SLOTS__FILE_BYTES), 0);
        slots__frame_header(hdr, gen, json, strlen(json));
        assert_int_equal(pwrite(fd, hdr, sizeof(hdr), off), (ssize_t)sizeof(hdr));
        assert_int_equal(pwrite(fd, json, strlen(json), off + SLOTS__HDR_BYTES), (ssize_t)strlen(json));
}

/* Only `json`, as the first write of a new file. */
static void put_state(struct fx *f, const char *json) {
        assert_int_equal(unlinkat(f->dir->fd, SLOTS_STATE_FILE, 0), 0);
        put_copy(f, 0, 1, json);
}

/* Overwrites one byte of slots.state, as a torn write or a bad sector would. */
static void poke(struct fx *f, off_t off, uint8_t byte) {
        _cleanup_close_ int fd = openat(f->dir->fd, SLOTS_STATE_FILE, O_WRONLY | O_CLOEXEC);

        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, &byte, 1, off), 1);
}

static bool exists(struct fx *f, const char *name) {
        struct stat st;

        return fstatat(f->dir->fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
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
        tu_rm_rf_below(f);
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

static void test_state_round_trips_through_the_file(void **state) {
        struct fx *f = *state;
        struct slots_info a, b;
        struct slots *s2;
        char id[SLOTS_SESSION_LEN + 1];

        memcpy(id, play(f, "alice", "s1"), sizeof(id));
        assert_int_equal(slots_viewer_join(f->s, by_user("alice"), "vic", "viewer", f->now, NULL, NULL, 0),
                         SLOTS_OK);
        play(f, "bob", "s2");
        assert_int_equal(slots_client_lost(f->s, by_user("bob"), f->now, NULL, NULL, 0), SLOTS_OK);
        assert_int_equal(slots_drain(f->s, true, f->now, NULL, NULL, 0), SLOTS_OK);
        s2 = restart(f, 0);
        assert_true(slots_draining(s2));
        for (size_t i = 0; i < 3; i++) {
                slots_get(f->s, i, &a);
                slots_get(s2, i, &b);
                assert_int_equal(a.state, b.state);
                assert_string_equal(a.user, b.user);
                assert_string_equal(a.session, b.session);
                assert_string_equal(a.client_ip, b.client_ip);
                assert_int_equal(a.deadline_real_usec, b.deadline_real_usec);
                assert_int_equal(a.started_real_usec, b.started_real_usec);
                assert_int_equal(a.n_viewers, b.n_viewers);
        }
        /* The restored machine carries on: the session id still works, viewers are still counted. */
        assert_int_equal(slots_heartbeat(s2, by_session(id), true, f->now, &f->ev, NULL, 0), SLOTS_OK);
        assert_int_equal(f->ev.kind, SLOTS_EV_HEARTBEAT);
        assert_int_equal(slots_viewer_leave(s2, by_session(id), "vic", f->now, NULL, NULL, 0), SLOTS_OK);
        slots_free(s2);
}

static void test_recovery_keeps_active_and_grace_deadline_and_frees_expired_reservation(void **state) {
        struct fx *f = *state;
        struct slots_event evs[SLOTS_MAX];
        struct slots_info info;
        struct slots *s2;
        char json[2048];
        uint64_t t = f->now.real_usec;

        /* Written mid-state by an agent that then crashed: s0 ACTIVE for an hour, s1 in GRACE with
         * 50 s left, s2 RESERVED with a lock that ran out while the agent was down. */
        snprintf(json, sizeof(json),
                 "{\"v\":1,\"draining\":false,\"slots\":["
                 "{\"id\":\"s0\",\"state\":\"active\",\"user\":\"alice\",\"session\":"
                 "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"client_ip\":\"192.0.2.1\",\"started\":%" PRIu64 "},"
                 "{\"id\":\"s1\",\"state\":\"grace\",\"user\":\"bob\",\"session\":"
                 "\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\",\"client_ip\":\"\",\"started\":%" PRIu64
                 ",\"deadline\":%" PRIu64 "},"
                 "{\"id\":\"s2\",\"state\":\"reserved\",\"user\":\"carol\",\"session\":"
                 "\"cccccccccccccccccccccccccccccccc\",\"client_ip\":\"\",\"deadline\":%" PRIu64 "},"
                 "{\"id\":\"gone\",\"state\":\"active\",\"user\":\"dave\",\"session\":"
                 "\"dddddddddddddddddddddddddddddddd\",\"started\":1}]}",
                 t - 3600 * SEC, t - 600 * SEC, t + 50 * SEC, t - 1);
        put_state(f, json);
        /* A restart after a reboot: the monotonic clock starts again near zero. */
        f->now.mono_usec = 5 * SEC;
        s2 = restart(f, 0);
        slots_get(s2, 0, &info);
        assert_int_equal(info.state, SLOTS_ACTIVE);
        assert_string_equal(info.user, "alice");
        assert_int_equal(info.started_real_usec, t - 3600 * SEC);
        slots_get(s2, 1, &info);
        assert_int_equal(info.state, SLOTS_GRACE);
        assert_int_equal(info.deadline_real_usec, t + 50 * SEC);
        slots_get(s2, 2, &info);
        assert_int_equal(info.state, SLOTS_FREE);
        /* The freed reservation was written back at once. */
        slots_free(s2);
        s2 = restart(f, 0);
        assert_int_equal(state_of(&(struct fx){ .s = s2 }, 2), SLOTS_FREE);
        /* Bob cannot be pushed out by another user; he may come back for 50 s by the wall clock. */
        assert_int_equal(slots_reserve(s2, "eve", "s1", NULL, f->now, NULL, NULL, 0), SLOTS_NO_IDLE);
        f->now.mono_usec += 49 * SEC;
        f->now.real_usec += 49 * SEC;
        assert_int_equal(slots_expire(s2, f->now, evs, SLOTS_MAX), 0);
        f->now.mono_usec += 1 * SEC;
        f->now.real_usec += 1 * SEC;
        assert_int_equal(slots_expire(s2, f->now, evs, SLOTS_MAX), 1);
        assert_string_equal(evs[0].user, "bob");
        assert_string_equal(evs[0].reason, "grace_expired");
        /* Alice's hour counts towards max length across the restart. */
        slots_free(s2);
        {
                struct slots_limits lim;

                slots_limits_default(&lim);
                lim.max_session_usec = 3600 * SEC + 60 * SEC;
                s2 = make(f, f->dir->fd, &lim);
        }
        assert_int_equal(slots_load(s2, f->now, f->msg, sizeof(f->msg)), 0);
        assert_int_equal(slots_expire(s2, f->now, evs, SLOTS_MAX), 0);
        f->now.mono_usec += 10 * SEC;
        f->now.real_usec += 10 * SEC;
        assert_int_equal(slots_expire(s2, f->now, evs, SLOTS_MAX), 1);
        assert_string_equal(evs[0].user, "alice");
        assert_string_equal(evs[0].reason, "max_length");
        slots_free(s2);
}

static void test_grace_deadline_in_the_far_future_is_cut_to_the_window(void **state) {
        struct fx *f = *state;
        struct slots_info info;
        char json[512];

        /* The wall clock went back a day while the agent was down: the window is not a day long. */
        snprintf(json, sizeof(json),
                 "{\"v\":1,\"slots\":[{\"id\":\"s1\",\"state\":\"grace\",\"user\":\"bob\",\"session\":"
                 "\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\",\"started\":%" PRIu64 ",\"deadline\":%" PRIu64 "}]}",
                 f->now.real_usec + 86400 * SEC, f->now.real_usec + 86400 * SEC);
        assert_int_equal(slots_restore(f->s, json, strlen(json), f->now, f->msg, sizeof(f->msg)), 0);
        slots_get(f->s, 1, &info);
        assert_int_equal(info.deadline_real_usec, f->now.real_usec + 120 * SEC);
}

static void test_corrupt_state_is_refused_with_a_message_and_changes_nothing(void **state) {
        struct fx *f = *state;
        static const struct {
                const char *text, *says;
        } bad[] = {
                { "", "empty file" },
                { "{\"v\":1,\"slots\":[{\"id\":\"s0\",\"state\":\"act", "not JSON" },
                { "[]", "not a JSON object" },
                { "{\"v\":2,\"slots\":[]}", "\"v\"" },
                { "{\"v\":1}", "\"slots\"" },
                { "{\"v\":1,\"draining\":1,\"slots\":[]}", "draining" },
                { "{\"v\":1,\"slots\":[1]}", "slots[0]: not an object" },
                { "{\"v\":1,\"slots\":[{\"state\":\"free\"}]}", "slots[0].id" },
                { "{\"v\":1,\"slots\":[{\"id\":\"s0\",\"state\":\"busy\"}]}", "slots[0].state" },
                { "{\"v\":1,\"slots\":[{\"id\":\"s0\",\"state\":\"active\",\"user\":\"a b\"}]}",
                  "slots[0].user" },
                { "{\"v\":1,\"slots\":[{\"id\":\"s0\",\"state\":\"active\",\"user\":\"a\",\"session\":\"x\"}"
                  "]}",
                  "slots[0].session" },
                { "{\"v\":1,\"slots\":[{\"id\":\"s0\",\"state\":\"active\",\"user\":\"a\",\"session\":"
                  "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"started\":-1}]}",
                  "slots[0].started" },
                { "{\"v\":1,\"slots\":[{\"id\":\"s0\",\"state\":\"grace\",\"user\":\"a\",\"session\":"
                  "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"started\":1}]}",
                  "slots[0].deadline" },
                { "{\"v\":1,\"slots\":[{\"id\":\"s0\",\"state\":\"ending\",\"user\":\"a\",\"session\":"
                  "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"started\":1}]}",
                  "slots[0].reason" },
                { "{\"v\":1,\"slots\":[{\"id\":\"s0\",\"state\":\"active\",\"user\":\"a\",\"session\":"
                  "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"client_ip\":\"x\",\"started\":1}]}",
                  "slots[0].client_ip" },
                { "{\"v\":1,\"slots\":[{\"id\":\"s0\",\"state\":\"free\"},{\"id\":\"s0\",\"state\":\"free\"}"
                  "]}",
                  "listed twice" },
                { "{\"v\":1,\"slots\":[{\"id\":\"s0\",\"state\":\"active\",\"user\":\"a\",\"session\":"
                  "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"started\":1},{\"id\":\"s1\",\"state\":\"active\","
                  "\"user\":\"a\",\"session\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\",\"started\":1}]}",
                  "same user or session" },
                { "{\"v\":1,\"slots\":[{\"id\":\"s0\",\"state\":\"active\",\"user\":\"a\",\"session\":"
                  "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"started\":1,\"viewers\":[{\"user\":\"a\",\"role\":"
                  "\"viewer\"}]}]}",
                  "viewers[0]" },
        };

        play(f, "alice", "s0");
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                f->msg[0] = '\0';
                assert_int_equal(slots_restore(f->s, bad[i].text, strlen(bad[i].text), f->now, f->msg,
                                               sizeof(f->msg)),
                                 -EBADMSG);
                if (!strstr(f->msg, bad[i].says))
                        fail_msg("case %zu: \"%s\" does not say \"%s\"", i, f->msg, bad[i].says);
                /* All or nothing: the state in memory is untouched. */
                assert_int_equal(state_of(f, 0), SLOTS_ACTIVE);
                assert_string_equal(user_of(f, 0), "alice");
        }
}

static uint32_t le32_at(const uint8_t *p) {
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The format docs/sessions.md gives (and tests/integration/test_sessions.py reads), decoded by hand:
 * a preallocated file of two regions, written in turn, each write one generation more. */
static void test_state_file_holds_two_checksummed_copies_written_in_turn(void **state) {
        struct fx *f = *state;

        for (uint64_t gen = 1; gen <= 4; gen++) {
                _cleanup_free_ char *buf = NULL;
                const uint8_t *r;
                size_t len;
                uint32_t n;

                assert_int_equal(plat_read_file_at(f->dir->fd, SLOTS_STATE_FILE, 1 << 20, &buf, &len), 0);
                assert_int_equal(len, SLOTS__FILE_BYTES);
                assert_int_equal(SLOTS__FILE_BYTES, 2 * (256 * 1024 + 4096));
                /* Generation 1 (first start) in region 0, 2 in region 1, 3 in region 0... */
                r = (const uint8_t *)buf + ((gen - 1) % 2) * SLOTS__REGION_BYTES;
                assert_memory_equal(r, "RAST", 4);
                assert_int_equal(le32_at(r + 4), 1);
                assert_int_equal(le32_at(r + 8), gen);
                assert_int_equal(le32_at(r + 12), 0);
                n = le32_at(r + 16);
                assert_int_equal(le32_at(r + 20), plat_crc32c(plat_crc32c(0, r + 4, 16), r + 24, n));
                assert_memory_equal(r + 24, "{\"v\":1,", 7);
                assert_int_equal(r[24 + n - 1], '}');
                if (gen == 4)
                        break;
                /* The next write leaves this copy alone: the other region gets the next state. */
                assert_int_equal(reserve(f, gen == 2 ? "bob" : "alice", NULL), SLOTS_OK);
                {
                        _cleanup_free_ char *after = NULL;

                        assert_int_equal(
                                plat_read_file_at(f->dir->fd, SLOTS_STATE_FILE, 1 << 20, &after, &len), 0);
                        assert_memory_equal(after + (r - (const uint8_t *)buf), r, 24 + n);
                }
        }
        assert_false(exists(f, SLOTS__LEGACY_FILE));
}

static void test_torn_newest_copy_restores_the_one_before_without_error(void **state) {
        struct fx *f = *state;
        struct slots *s2;
        char id[SLOTS_SESSION_LEN + 1];
        uint64_t gen;

        memcpy(id, play(f, "alice", "s0"), sizeof(id));
        assert_int_equal(reserve(f, "bob", "s1"), SLOTS_OK);
        gen = state_gen(f);
        /* Bob's reservation is the newest copy; a crash mid-write tore its payload. */
        poke(f, (off_t)(((gen - 1) % 2) * SLOTS__REGION_BYTES + SLOTS__HDR_BYTES + 10), 'x');
        s2 = restart(f, 0);
        assert_string_equal(f->msg, "");
        assert_int_equal(state_of(&(struct fx){ .s = s2 }, 0), SLOTS_ACTIVE);
        assert_string_equal(user_of(&(struct fx){ .s = s2 }, 0), "alice");
        assert_int_equal(state_of(&(struct fx){ .s = s2 }, 1), SLOTS_FREE); /* never acknowledged */
        /* Nothing kept aside; the state read was written again, over the torn copy, outranking it. */
        assert_false(exists(f, "slots.state.corrupt-1700000000"));
        assert_int_equal(state_gen(f), gen);
        slots_free(s2);
        /* A torn header (the magic gone) is the same. */
        poke(f, (off_t)(((gen - 1) % 2) * SLOTS__REGION_BYTES), 0);
        s2 = restart(f, 0);
        assert_int_equal(state_of(&(struct fx){ .s = s2 }, 0), SLOTS_ACTIVE);
        assert_int_equal(state_gen(f), gen);
        assert_int_equal(slots_heartbeat(s2, by_session(id), true, f->now, NULL, NULL, 0), SLOTS_OK);
        slots_free(s2);
}

/* A write the kernel cuts short (RLIMIT_FSIZE: EFBIG past the limit, a full disk would be ENOSPC)
 * fails the operation and leaves the copy before as the newest. */
static void test_write_cut_short_leaves_the_state_before(void **state) {
        struct fx *f = *state;
        struct rlimit old, lim;
        struct slots *s2;
        uint64_t gen;

        play(f, "alice", "s0");
        gen = state_gen(f);
        if (gen % 2 == 0) /* the next write must go to region 1, which the limit cuts */
                assert_int_equal(reserve(f, "carol", "s2"), SLOTS_OK);
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
        lim = old;
        lim.rlim_cur = SLOTS__REGION_BYTES + 100;
        signal(SIGXFSZ, SIG_IGN);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        assert_int_equal(reserve(f, "bob", "s1"), SLOTS_INTERNAL);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        signal(SIGXFSZ, SIG_DFL);
        assert_non_null(strstr(f->msg, "/var/lib/render-agent/slots.state"));
        assert_non_null(strstr(f->msg, "File too large"));
        assert_int_equal(state_of(f, 1), SLOTS_FREE);
        s2 = restart(f, 0);
        assert_string_equal(user_of(&(struct fx){ .s = s2 }, 0), "alice");
        assert_int_equal(state_of(&(struct fx){ .s = s2 }, 1), SLOTS_FREE);
        slots_free(s2);
        /* The failed write is tried again by the next operation, in the same region. */
        assert_int_equal(reserve(f, "bob", "s1"), SLOTS_OK);
        s2 = restart(f, 0);
        assert_string_equal(user_of(&(struct fx){ .s = s2 }, 1), "bob");
        slots_free(s2);
}

static void test_both_copies_invalid_block_every_slot_keep_the_file_aside_until_unblocked(void **state) {
        struct fx *f = *state;
        _cleanup_free_ char *big = NULL;
        struct slots *s2;
        struct stat st;

        play(f, "alice", "s0");
        /* Both copies damaged, as a disk that lied about its flushes could leave them. */
        poke(f, SLOTS__HDR_BYTES + 3, '#');
        poke(f, SLOTS__REGION_BYTES + SLOTS__HDR_BYTES + 3, '#');
        s2 = restart(f, -EBADMSG);
        assert_non_null(strstr(f->msg, "/var/lib/render-agent/slots.state: no valid copy: region 0 a bad "
                                       "CRC (a torn write), region 1 a bad CRC (a torn write)"));
        assert_non_null(strstr(f->msg, "kept aside as slots.state.corrupt-1700000000"));
        for (size_t i = 0; i < 3; i++)
                assert_int_equal(state_of(&(struct fx){ .s = s2 }, i), SLOTS_BLOCKED);
        assert_int_equal(fstatat(f->dir->fd, "slots.state.corrupt-1700000000", &st, 0), 0);
        assert_int_equal((size_t)st.st_size, SLOTS__FILE_BYTES);
        /* The blocked state went to a new file (its first write: no generation in the old one
         * could be trusted). */
        assert_int_equal(state_gen(f), 1);
        /* Nobody gets a blocked slot, not even the user who was in it. */
        assert_int_equal(slots_reserve(s2, "bob", "s0", NULL, f->now, NULL, f->msg, sizeof(f->msg)),
                         SLOTS_NO_IDLE);
        assert_non_null(strstr(f->msg, "blocked"));
        assert_int_equal(slots_reserve(s2, "alice", NULL, NULL, f->now, NULL, f->msg, sizeof(f->msg)),
                         SLOTS_NO_IDLE);
        slots_free(s2);
        /* Blocked survives a restart: the new file says so. */
        s2 = restart(f, 0);
        assert_int_equal(state_of(&(struct fx){ .s = s2 }, 1), SLOTS_BLOCKED);
        assert_int_equal(slots_unblock(s2, "s1", f->now, &f->ev, NULL, 0), SLOTS_OK);
        assert_int_equal(f->ev.kind, SLOTS_EV_UNBLOCK);
        assert_int_equal(slots_reserve(s2, "bob", NULL, NULL, f->now, &f->ev, NULL, 0), SLOTS_OK);
        assert_int_equal(f->ev.slot, 1);
        slots_free(s2);
        /* A copy that checks but whose JSON does not (another version) is no better: the copy before
         * is not taken instead, it may free a slot that is busy now. */
        put_copy(f, 1, 99, "{\"v\":2,\"slots\":[]}");
        advance(f, 1 * SEC);
        s2 = restart(f, -EBADMSG);
        assert_non_null(strstr(f->msg, "slots.state: \"v\": missing or not 1"));
        assert_int_equal(state_of(&(struct fx){ .s = s2 }, 1), SLOTS_BLOCKED);
        assert_int_equal(state_gen(f), 100);
        slots_free(s2);
        /* Garbage that is not even a header, and a file too large, go the same way. */
        tu_put_bytes(f->dir->fd, SLOTS_STATE_FILE, "\x00\xff\x01", 3);
        advance(f, 1 * SEC);
        s2 = restart(f, -EBADMSG);
        assert_non_null(strstr(f->msg, "no valid copy: region 0 cut short, region 1 missing"));
        assert_int_equal(state_of(&(struct fx){ .s = s2 }, 1), SLOTS_BLOCKED);
        slots_free(s2);
        big = calloc(1, SLOTS__FILE_BYTES + 10);
        assert_non_null(big);
        memset(big, ' ', SLOTS__FILE_BYTES + 9);
        tu_put(f->dir->fd, SLOTS_STATE_FILE, big);
        advance(f, 1 * SEC);
        s2 = restart(f, -EBADMSG);
        assert_non_null(strstr(f->msg, "more than 532480 bytes"));
        slots_free(s2);
}

static void test_slots_json_of_an_older_agent_is_migrated_once(void **state) {
        struct fx *f = *state;
        struct slots *s2;

        assert_int_equal(unlinkat(f->dir->fd, SLOTS_STATE_FILE, 0), 0);
        tu_put(f->dir->fd, SLOTS__LEGACY_FILE,
               "{\"v\":1,\"draining\":true,\"slots\":[{\"id\":\"s1\",\"state\":\"active\",\"user\":"
               "\"alice\",\"session\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"started\":1}]}");
        s2 = restart(f, 0);
        assert_string_equal(f->msg, "");
        assert_string_equal(user_of(&(struct fx){ .s = s2 }, 1), "alice");
        assert_true(slots_draining(s2));
        assert_false(exists(f, SLOTS__LEGACY_FILE));
        assert_true(exists(f, SLOTS__LEGACY_FILE ".migrated"));
        assert_int_equal(state_gen(f), 1);
        slots_free(s2);
        /* From now on slots.state is the state, even with a slots.json beside it. */
        tu_put(f->dir->fd, SLOTS__LEGACY_FILE, "{\"v\":1,\"slots\":[]}");
        s2 = restart(f, 0);
        assert_string_equal(user_of(&(struct fx){ .s = s2 }, 1), "alice");
        slots_free(s2);
        /* A corrupt slots.json is kept aside under its own name, like a corrupt slots.state. */
        assert_int_equal(unlinkat(f->dir->fd, SLOTS_STATE_FILE, 0), 0);
        tu_put(f->dir->fd, SLOTS__LEGACY_FILE, "{\"v\":1,\"slots\":[{\"id\":");
        s2 = restart(f, -EBADMSG);
        assert_non_null(strstr(f->msg, "/var/lib/render-agent/slots.json: not JSON (truncated or corrupt); "
                                       "kept aside as slots.json.corrupt-1700000000"));
        assert_int_equal(state_of(&(struct fx){ .s = s2 }, 1), SLOTS_BLOCKED);
        assert_false(exists(f, SLOTS__LEGACY_FILE));
        slots_free(s2);
        s2 = restart(f, 0);
        assert_int_equal(state_of(&(struct fx){ .s = s2 }, 0), SLOTS_BLOCKED);
        slots_free(s2);
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
                cmocka_unit_test_setup_teardown(test_state_round_trips_through_the_file, setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_recovery_keeps_active_and_grace_deadline_and_frees_expired_reservation, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(test_grace_deadline_in_the_far_future_is_cut_to_the_window,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_corrupt_state_is_refused_with_a_message_and_changes_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_state_file_holds_two_checksummed_copies_written_in_turn,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_torn_newest_copy_restores_the_one_before_without_error,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_write_cut_short_leaves_the_state_before, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(
                        test_both_copies_invalid_block_every_slot_keep_the_file_aside_until_unblocked, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(test_slots_json_of_an_older_agent_is_migrated_once, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_config_is_validated, setup, teardown),
                cmocka_unit_test(test_codes_have_stable_names),
                cmocka_unit_test_setup_teardown(test_random_operations_never_put_two_users_on_one_slot,
                                                setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
