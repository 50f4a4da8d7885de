/* test_slots_store.c: slots.state: two checksummed copies, recovery, the corrupt-file policy, migration. */
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

/* The journal (the meter's records owed to the spool) is written in the same copy as the batch it
 * goes with, as it was given, and read back; a batch that writes nothing else writes for it. */
static void test_journal_is_written_with_the_batch_and_read_back(void **state) {
        static const char journal[] = "[\"{\\\"seq\\\":1,\\\"type\\\":\\\"session_start\\\"}\"]";
        struct fx *f = *state;
        uint64_t gen = state_gen(f);
        struct slots *s2;

        assert_null(slots_journal(f->s));
        slots_batch_begin(f->s);
        slots_set_journal(f->s, strdup(journal));
        assert_int_equal(slots_batch_commit(f->s, f->msg, sizeof(f->msg)), 1);
        assert_int_equal(state_gen(f), gen + 1);
        s2 = restart(f, 0);
        assert_non_null(slots_journal(s2));
        assert_string_equal(slots_journal(s2), journal);
        slots_free(s2);
        /* None: a batch without changes writes nothing, and the copy on disk keeps the old one. */
        slots_batch_begin(f->s);
        slots_set_journal(f->s, NULL);
        assert_int_equal(slots_batch_commit(f->s, f->msg, sizeof(f->msg)), 0);
        /* A state file without a journal (an older agent's) has none. */
        play(f, "alice", "s0");
        s2 = restart(f, 0);
        assert_null(slots_journal(s2));
        slots_free(s2);
        /* A journal that is not an array makes the file unreadable, like any bad member. */
        put_state(f, "{\"v\":1,\"slots\":[],\"journal\":{}}");
        s2 = make(f, f->dir->fd, NULL);
        assert_int_equal(slots_load(s2, f->now, f->msg, sizeof(f->msg)), -EBADMSG);
        assert_non_null(strstr(f->msg, "\"journal\": not an array"));
        slots_free(s2);
}

/* The byte counters and billing's open minutes go into the copy of the batch they are set in, as
 * they were given, and are read back; set again unchanged they are no change (no write). */
static void test_counters_and_open_minutes_are_written_with_the_batch_and_read_back(void **state) {
        static const char counters[] = "{\"v\":1,\"slots\":[{\"slot\":\"s1\",\"peers\":[]}]}";
        static const char open[] = "{\"v\":1,\"slots\":[{\"slot\":\"s1\",\"player\":[3,1,2]}]}";
        struct fx *f = *state;
        uint64_t gen = state_gen(f);
        struct slots *s2;

        assert_null(slots_extra(f->s, SLOTS_EXTRA_COUNTERS));
        slots_batch_begin(f->s);
        slots_set_extra(f->s, SLOTS_EXTRA_COUNTERS, strdup(counters));
        slots_set_extra(f->s, SLOTS_EXTRA_OPEN_MINUTES, strdup(open));
        assert_int_equal(slots_batch_commit(f->s, f->msg, sizeof(f->msg)), 1);
        assert_int_equal(state_gen(f), gen + 1);
        s2 = restart(f, 0);
        assert_string_equal(slots_extra(s2, SLOTS_EXTRA_COUNTERS), counters);
        assert_string_equal(slots_extra(s2, SLOTS_EXTRA_OPEN_MINUTES), open);
        assert_null(slots_journal(s2));
        slots_free(s2);
        slots_batch_begin(f->s);
        slots_set_extra(f->s, SLOTS_EXTRA_COUNTERS, strdup(counters));
        assert_int_equal(slots_batch_commit(f->s, f->msg, sizeof(f->msg)), 0);
        /* None any more is a change: the copy on disk must not keep open bytes that are gone. */
        slots_batch_begin(f->s);
        slots_set_extra(f->s, SLOTS_EXTRA_OPEN_MINUTES, NULL);
        assert_int_equal(slots_batch_commit(f->s, f->msg, sizeof(f->msg)), 1);
        s2 = restart(f, 0);
        assert_null(slots_extra(s2, SLOTS_EXTRA_OPEN_MINUTES));
        assert_string_equal(slots_extra(s2, SLOTS_EXTRA_COUNTERS), counters);
        slots_free(s2);
        /* Members of the wrong JSON type make the file unreadable, like any bad member. */
        put_state(f, "{\"v\":1,\"slots\":[],\"counters\":[]}");
        s2 = make(f, f->dir->fd, NULL);
        assert_int_equal(slots_load(s2, f->now, f->msg, sizeof(f->msg)), -EBADMSG);
        assert_non_null(strstr(f->msg, "\"counters\": not an object"));
        slots_free(s2);
        put_state(f, "{\"v\":1,\"slots\":[],\"open_minutes\":7}");
        s2 = make(f, f->dir->fd, NULL);
        assert_int_equal(slots_load(s2, f->now, f->msg, sizeof(f->msg)), -EBADMSG);
        assert_non_null(strstr(f->msg, "\"open_minutes\": not an object"));
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

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_state_round_trips_through_the_file, setup, teardown),
                cmocka_unit_test_setup_teardown(test_journal_is_written_with_the_batch_and_read_back, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(
                        test_counters_and_open_minutes_are_written_with_the_batch_and_read_back, setup,
                        teardown),
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
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
