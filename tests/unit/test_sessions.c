/* test_sessions.c: the admission service on a real sd-event loop and a scratch state dir: held replies
 * and group commit, SLOW_DOWN, events, enforcement, byte reports, refusals, reload and restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent.h"
#include "cleanup.h"
#include "clock.h"
#include "config.h"
#include "crc32c.h"
#include "fileio.h"
#include "ops.h"
#include "sessions.h"
#include "slot.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SEC UINT64_C(1000000)
#define T0 (UINT64_C(1700000000) * SEC) /* the pinned wall clock at the start of each test */
#define SLOTS3 \
        "{\"id\":\"s0\",\"scale\":\"S\"},{\"id\":\"s1\",\"scale\":\"S\"},{\"id\":\"s2\",\"scale\":\"S\"}"
#define MAX_EVENTS 64

struct event_rec {
        char type[32];
        cJSON *fields; /* owned */
};

struct bytes_rec {
        size_t slot;
        enum sessions_flow flow;
        char peer[SLOTS_USER_MAX + 1];
        uint64_t bytes, from, to;
};

/* The service on a loop, with a scratch state dir, a pinned clock and every hook recorded. */
struct fx {
        struct tu_scratch *dir;
        char state_dir[96];
        int state_fd;
        struct cfg *cfgs[4]; /* the service borrows them: freed at teardown */
        size_t n_cfgs;
        sd_event *e;
        struct sessions *s;
        struct slot_table table; /* the slot objects, as the agent keeps them */
        char warning[SLOTS_MSG_MAX];
        uint64_t mono, real;
        struct event_rec events[MAX_EVENTS];
        size_t n_events, n_transitions, n_bytes, n_push_started;
        char pushes[256]; /* "+target " per push_start, "-target " per push_stop, in order */
        unsigned n_ok, n_failed;
        char commit_msg[SLOTS_MSG_MAX];
        struct bytes_rec bytes[2 * SESSIONS_PEERS_MAX];
        const char *refuse;
        cJSON *reply; /* the last request's */
        bool held;
        const char *code;
        char msg[SLOTS_MSG_MAX];
};

static void on_event(const char *type, cJSON *fields, void *userdata) {
        struct fx *f = userdata;

        assert_true(f->n_events < MAX_EVENTS);
        snprintf(f->events[f->n_events].type, sizeof(f->events[0].type), "%s", type);
        f->events[f->n_events++].fields = fields;
}

static void on_transition(const struct slots_event *ev, void *userdata) {
        (void)ev;
        ((struct fx *)userdata)->n_transitions++;
}

static void on_bytes(size_t slot, enum sessions_flow flow, const char *peer, uint64_t bytes, uint64_t from,
                     uint64_t to, void *userdata) {
        struct fx *f = userdata;

        assert_true(f->n_bytes < ELEMENTSOF(f->bytes));
        f->bytes[f->n_bytes] =
                (struct bytes_rec){ .slot = slot, .flow = flow, .bytes = bytes, .from = from, .to = to };
        snprintf(f->bytes[f->n_bytes++].peer, sizeof(f->bytes[0].peer), "%s", peer);
}

static void on_push(size_t slot, const char *session, const char *target, bool started, void *userdata) {
        struct fx *f = userdata;
        size_t len = strlen(f->pushes);

        (void)slot;
        (void)session;
        f->n_push_started += started;
        snprintf(f->pushes + len, sizeof(f->pushes) - len, "%c%s ", started ? '+' : '-', target);
}

static void on_committed(bool ok, const char *msg, void *userdata) {
        struct fx *f = userdata;

        if (ok) {
                f->n_ok++;
                return;
        }
        f->n_failed++;
        snprintf(f->commit_msg, sizeof(f->commit_msg), "%s", msg);
}

static const char *refuse_new(void *userdata) {
        return ((struct fx *)userdata)->refuse;
}

static const struct sessions_hooks hooks = { .event = on_event,
                                             .transition = on_transition,
                                             .bytes = on_bytes,
                                             .push = on_push,
                                             .committed = on_committed,
                                             .refuse_new = refuse_new };

static uint64_t real_mono(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * SEC + (uint64_t)ts.tv_nsec / 1000;
}

static void advance(struct fx *f, uint64_t usec) {
        f->mono += usec;
        f->real += usec;
        plat_clock_set_fake(f->mono, f->real);
}

/* A config on the fixture's state dir with these "sessions" members and slots; kept until teardown. */
static struct cfg *make_cfg(struct fx *f, const char *sessions, const char *slots) {
        struct cfg_problems p = { 0 };
        struct cfg *c = NULL;
        char buf[4096];
        int n;

        n = snprintf(buf, sizeof(buf),
                     "{\"node\":{\"id\":\"render-01\",\"region\":\"eu-west\"},"
                     "\"mqtt\":{\"host\":\"localhost\",\"tls\":false},\"state_dir\":\"%s\","
                     "\"sessions\":{%s},\"slots\":[%s]}",
                     f->state_dir, sessions, slots);
        assert_true(n > 0 && (size_t)n < sizeof(buf));
        if (cfg_parse("/etc/render-agent/agent.json", buf, (size_t)n, &c, &p) < 0)
                for (size_t i = 0; i < p.n; i++)
                        print_message("config: %s\n", p.msgs[i]);
        cfg_problems_done(&p);
        assert_non_null(c);
        assert_true(f->n_cfgs < ELEMENTSOF(f->cfgs));
        f->cfgs[f->n_cfgs++] = c;
        return c;
}

/* Runs whatever is ready now (the commit, a due tick), without waiting. */
static void settle(struct fx *f) {
        for (int i = 0; sd_event_run(f->e, 0) > 0; i++)
                assert_true(i < 1000);
}

static void open_service(struct fx *f, const struct cfg *c) {
        struct sessions_hooks h = hooks;
        char msg[256] = "";

        h.userdata = f;
        /* A new service is a new process: its slot objects start clean. */
        slot_table_done(&f->table);
        assert_int_equal(
                sessions_new(f->e, c, &f->table, f->dir->fd, &h, &f->s, f->warning, msg, sizeof(msg)), 0);
        settle(f);
}

static int setup_with(void **state, const char *sessions) {
        struct fx *f = calloc(1, sizeof(*f));
        void *d = NULL;

        assert_non_null(f);
        tu_scratch_setup(&d);
        f->dir = d;
        snprintf(f->state_dir, sizeof(f->state_dir), "%s/state", f->dir->path);
        assert_int_equal(mkdirat(f->dir->fd, "state", 0700), 0);
        f->state_fd = plat_open_dir(f->state_dir);
        assert_true(f->state_fd >= 0);
        f->mono = 1000 * SEC;
        f->real = T0;
        plat_clock_set_fake(f->mono, f->real);
        assert_true(sd_event_new(&f->e) >= 0);
        open_service(f, make_cfg(f, sessions, SLOTS3));
        *state = f;
        return 0;
}

static int setup(void **state) {
        return setup_with(state, "");
}

static int setup_ttl1(void **state) {
        return setup_with(state, "\"lock_ttl_s\":1");
}

static int teardown(void **state) {
        struct fx *f = *state;
        void *d = f->dir;

        sessions_free(f->s);
        slot_table_done(&f->table);
        sd_event_unref(f->e);
        for (size_t i = 0; i < f->n_events; i++)
                cJSON_Delete(f->events[i].fields);
        for (size_t i = 0; i < f->n_cfgs; i++)
                cfg_free(f->cfgs[i]);
        cJSON_Delete(f->reply);
        close(f->state_fd);
        free(f);
        plat_clock_set_fake(0, 0);
        return tu_scratch_teardown(&d);
}

/* Op `op` by its wire name, as the daemon answers it: the lists, or the service's op it binds. */
static cJSON *request(struct fx *f, const char *op, const cJSON *req) {
        const struct ops_entry *e = ops_find(op);
        cJSON *r;

        assert_non_null(e);
        f->held = false;
        if (e->id == OP_SLOTS || e->id == OP_SESSIONS) {
                r = cJSON_CreateObject();
                cJSON_AddItemToObject(
                        r, op, e->id == OP_SLOTS ? sessions_slots_json(f->s) : sessions_list_json(f->s));
                return r;
        }
        assert_int_not_equal(agent_sessions_op(e->id), SESSIONS_OP_NONE);
        return sessions_request(f->s, agent_sessions_op(e->id), req, &f->held, &f->code, f->msg,
                                sizeof(f->msg));
}

/* One request (json NULL: {}); the reply stays in f->reply, the refusal in f->code and f->msg. */
static cJSON *call(struct fx *f, const char *op, const char *json) {
        cJSON *req = cJSON_Parse(json ? json : "{}");

        assert_non_null(req);
        cJSON_Delete(f->reply);
        f->reply = NULL; /* a hook's failed assertion jumps out of the request */
        f->code = NULL;
        f->msg[0] = '\0';
        f->reply = request(f, op, req);
        cJSON_Delete(req);
        return f->reply;
}

static cJSON *expect_ok(struct fx *f, const char *op, const char *json) {
        if (!call(f, op, json))
                print_message("%s %s: %s: %s\n", op, json, f->code, f->msg);
        assert_non_null(f->reply);
        return f->reply;
}

static void expect_refused(struct fx *f, const char *op, const char *json, const char *code) {
        assert_null(call(f, op, json));
        assert_non_null(f->code);
        if (strcmp(f->code, code))
                print_message("%s %s: %s: %s\n", op, json, f->code, f->msg);
        assert_string_equal(f->code, code);
        assert_false(f->held);
}

static const char *str(const cJSON *o, const char *key) {
        const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));

        return v ? v : "";
}

static double num(const cJSON *o, const char *key) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        assert_true(cJSON_IsNumber(v));
        return v->valuedouble;
}

static struct slots_info info_of(struct fx *f, size_t i) {
        struct slots_info info;

        slots_get(sessions_slots(f->s), i, &info);
        return info;
}

static enum slots_state state_of(struct fx *f, size_t i) {
        return info_of(f, i).state;
}

/* A member of the summary; the summary is freed before this returns. */
static double summary_num(struct fx *f, const char *key) {
        cJSON *o = sessions_summary_json(f->s);
        double v = num(o, key);

        cJSON_Delete(o);
        return v;
}

/* reserve + start for user on slot, committed; the session id in ret (SLOTS_SESSION_LEN + 1). */
static void play(struct fx *f, const char *user, const char *slot, char *ret) {
        char req[160];

        snprintf(req, sizeof(req), "{\"user\":\"%s\",\"slot\":\"%s\"}", user, slot);
        expect_ok(f, "reserve", req);
        snprintf(ret, SLOTS_SESSION_LEN + 1, "%s", str(f->reply, "session"));
        assert_int_equal(strlen(ret), SLOTS_SESSION_LEN);
        settle(f);
        snprintf(req, sizeof(req), "{\"session\":\"%s\"}", ret);
        expect_ok(f, "start", req);
        settle(f);
}

/* Waits (real time, up to 5 s) for the periodic tick, then runs what it left (its batch's commit):
 * the next tick is a second away. Nothing else is due on the loop when this is called, so the
 * first source the loop runs is the tick. */
static void sync_tick(struct fx *f) {
        uint64_t deadline = real_mono() + 5 * SEC;
        int r;

        settle(f);
        while ((r = sd_event_run(f->e, 100 * 1000)) == 0)
                assert_true(real_mono() < deadline);
        assert_true(r > 0);
        settle(f);
}

static size_t count_events(const struct fx *f, const char *type) {
        size_t n = 0;

        for (size_t i = 0; i < f->n_events; i++)
                n += !strcmp(f->events[i].type, type);
        return n;
}

/* The last event of type, or NULL. */
static const cJSON *last_event(const struct fx *f, const char *type) {
        for (size_t i = f->n_events; i-- > 0;)
                if (!strcmp(f->events[i].type, type))
                        return f->events[i].fields;
        return NULL;
}

/* Runs the loop (real time, up to 5 s) until an event of type has come. */
static const cJSON *run_until_event(struct fx *f, const char *type) {
        uint64_t deadline = real_mono() + 5 * SEC;

        while (!count_events(f, type)) {
                assert_true(real_mono() < deadline);
                assert_true(sd_event_run(f->e, 100 * 1000) >= 0);
        }
        return last_event(f, type);
}

/* The types of the events from index `from` on, joined with spaces (static storage). */
static const char *types_since(const struct fx *f, size_t from) {
        static char buf[1024];
        size_t len = 0;

        buf[0] = '\0';
        for (size_t i = from; i < f->n_events && len < sizeof(buf); i++)
                len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", i > from ? " " : "",
                                        f->events[i].type);
        return buf;
}

/* A checksum of the whole state file: it changes with every write (each adds a generation). */
static uint32_t state_sum(struct fx *f) {
        _cleanup_free_ char *buf = NULL;
        size_t len;

        assert_int_equal(plat_read_file_at(f->state_fd, SLOTS_STATE_FILE, 1 << 20, &buf, &len), 0);
        return plat_crc32c(0, buf, len);
}

/* ---- group commit ---- */

static void test_replies_are_held_until_one_commit_writes_the_whole_batch(void **state) {
        struct fx *f = *state;
        uint32_t before;
        unsigned ok;

        sync_tick(f);
        before = state_sum(f);
        ok = f->n_ok;
        expect_ok(f, "reserve", "{\"user\":\"alice\"}");
        assert_true(f->held);
        expect_ok(f, "reserve", "{\"user\":\"bob\",\"slot\":\"s2\"}");
        assert_true(f->held);
        expect_ok(f, "slots", NULL);
        assert_false(f->held); /* a read acknowledges nothing */
        /* Nothing is on disk or announced yet. */
        assert_int_equal(f->n_ok, ok);
        assert_int_equal(f->n_events, 0);
        assert_int_equal(f->n_transitions, 0);
        assert_true(state_sum(f) == before);
        settle(f);
        assert_int_equal(f->n_ok, ok + 1);
        assert_int_equal(f->n_failed, 0);
        assert_true(state_sum(f) != before);
        assert_int_equal(summary_num(f, "commits"), 1);
        assert_string_equal(types_since(f, 0), "session_reserve session_reserve");
        assert_int_equal(f->n_transitions, 2);
        assert_int_equal(state_of(f, 0), SLOTS_RESERVED);
        assert_int_equal(state_of(f, 2), SLOTS_RESERVED);
}

static void test_failed_commit_fails_the_batch_undoes_it_and_emits_nothing(void **state) {
        struct fx *f = *state;
        char alice[SLOTS_SESSION_LEN + 1], path[160];
        size_t events, transitions;
        unsigned ok;
        cJSON *sum;

        play(f, "alice", "s0", alice);
        sync_tick(f);
        events = f->n_events;
        transitions = f->n_transitions;
        ok = f->n_ok;
        /* slots.state turned into a non-empty directory: it cannot be opened for writing. */
        assert_int_equal(unlinkat(f->state_fd, SLOTS_STATE_FILE, 0), 0);
        tu_put(f->state_fd, SLOTS_STATE_FILE "/block", "x");
        expect_ok(f, "reserve", "{\"user\":\"bob\"}");
        assert_true(f->held);
        expect_ok(f, "end", "{\"user\":\"alice\",\"reason\":\"user\"}");
        assert_true(f->held);
        settle(f);
        assert_int_equal(f->n_failed, 1);
        assert_int_equal(f->n_ok, ok);
        snprintf(path, sizeof(path), "%s/" SLOTS_STATE_FILE, f->state_dir);
        assert_non_null(strstr(f->commit_msg, path));
        assert_int_equal(f->n_events, events);
        /* The transitions went to the meter before the write (their records go with the state);
         * the failure tells it to drop them (committed false: meter_abort). */
        assert_int_equal(f->n_transitions,
                         transitions + 3); /* reserve; end, and release: nothing to enforce */
        /* Both ops are undone: alice still plays, bob holds nothing. */
        assert_int_equal(state_of(f, 0), SLOTS_ACTIVE);
        assert_string_equal(info_of(f, 0).session, alice);
        assert_int_equal(state_of(f, 1), SLOTS_FREE);
        sum = sessions_summary_json(f->s);
        assert_int_equal(num(sum, "commit_failures"), 1);
        assert_string_equal(str(sum, "last_error"), f->commit_msg);
        cJSON_Delete(sum);
        /* Once the file can be written the same ops go through (no user is left "in flight"). */
        tu_rm_rf(path);
        expect_ok(f, "reserve", "{\"user\":\"bob\"}");
        settle(f);
        assert_int_equal(f->n_failed, 1);
        assert_string_equal(types_since(f, events), "session_reserve");
        assert_int_equal(state_of(f, 1), SLOTS_RESERVED);
}

static void test_second_op_of_a_user_in_the_batch_gets_slow_down(void **state) {
        struct fx *f = *state;

        expect_ok(f, "reserve", "{\"user\":\"alice\"}");
        expect_refused(f, "reserve", "{\"user\":\"alice\"}", "SLOW_DOWN");
        assert_non_null(strstr(f->msg, "user alice is in flight"));
        expect_refused(f, "start", "{\"user\":\"alice\"}", "SLOW_DOWN");
        /* Another user is not held back by alice's op. */
        expect_ok(f, "reserve", "{\"user\":\"bob\"}");
        settle(f);
        expect_ok(f, "start", "{\"user\":\"alice\"}");
        assert_true(f->held);
        expect_refused(f, "client_lost", "{\"user\":\"alice\"}", "SLOW_DOWN");
        /* A heartbeat changes nothing on disk and is never held back. */
        expect_ok(f, "heartbeat", "{\"user\":\"alice\"}");
        assert_false(f->held);
        settle(f);
        expect_ok(f, "client_lost", "{\"user\":\"alice\"}");
        settle(f);
        assert_int_equal(state_of(f, 0), SLOTS_GRACE);
}

/* ---- events ---- */

static void test_events_follow_the_commit_with_their_type_names(void **state) {
        struct fx *f = *state;
        char sess[SLOTS_SESSION_LEN + 1], req[96];
        const cJSON *ev;

        expect_ok(f, "reserve", "{\"user\":\"alice\",\"slot\":\"s1\",\"client_ip\":\"192.0.2.7\"}");
        snprintf(sess, sizeof(sess), "%s", str(f->reply, "session"));
        assert_int_equal(f->n_events, 0);
        settle(f);
        assert_string_equal(types_since(f, 0), "session_reserve");
        ev = f->events[0].fields;
        assert_string_equal(str(ev, "slot"), "s1");
        assert_string_equal(str(ev, "state"), "reserved");
        assert_string_equal(str(ev, "user"), "alice");
        assert_string_equal(str(ev, "session"), sess);
        assert_string_equal(str(ev, "client_ip"), "192.0.2.7");
        snprintf(req, sizeof(req), "{\"session\":\"%s\"}", sess);
        advance(f, 5 * SEC);
        expect_ok(f, "start", req);
        settle(f);
        assert_string_equal(str(last_event(f, "session_start"), "started"), "2023-11-14T22:13:25.000Z");
        expect_ok(f, "reserve", "{\"user\":\"alice\",\"client_ip\":\"192.0.2.8\"}");
        settle(f);
        assert_string_equal(str(last_event(f, "session_takeover"), "client_ip"), "192.0.2.8");
        expect_ok(f, "viewer_join", "{\"user\":\"alice\",\"viewer\":\"v1\"}");
        settle(f);
        assert_string_equal(str(last_event(f, "viewer_join"), "viewer"), "v1");
        expect_ok(f, "viewer_leave", "{\"user\":\"alice\",\"viewer\":\"v1\"}");
        settle(f);
        expect_ok(f, "client_lost", req);
        settle(f);
        expect_ok(f, "reserve", "{\"user\":\"alice\"}");
        settle(f);
        expect_ok(f, "drain", NULL);
        settle(f);
        assert_null(cJSON_GetObjectItemCaseSensitive(last_event(f, "node_drain"), "slot"));
        expect_ok(f, "undrain", NULL);
        settle(f);
        expect_ok(f, "end", "{\"user\":\"alice\",\"reason\":\"evicted\"}");
        settle(f);
        assert_string_equal(types_since(f, 0), "session_reserve session_start session_takeover viewer_join "
                                               "viewer_leave session_grace session_resume node_drain "
                                               "node_undrain session_ending session_end");
        ev = last_event(f, "session_end");
        assert_string_equal(str(ev, "reason"), "evicted");
        assert_string_equal(str(ev, "state"), "free");
        assert_string_equal(str(ev, "session"), sess);
        assert_string_equal(str(last_event(f, "session_grace"), "reason"), "client_lost");
}

/* A node without sessions has nothing that can expire: its tick opens no batch, so nothing is
 * committed or written and the loop runs nothing more. With a reservation, the tick's batch commits. */
static void test_idle_tick_commits_nothing(void **state) {
        struct fx *f = *state;
        uint32_t before = state_sum(f);
        unsigned ok;

        sync_tick(f);
        ok = f->n_ok;
        sync_tick(f);
        sync_tick(f);
        assert_int_equal(f->n_ok, ok);
        assert_false(slots_in_batch(sessions_slots(f->s)));
        assert_true(state_sum(f) == before);
        expect_ok(f, "reserve", "{\"user\":\"bob\"}");
        settle(f);
        ok = f->n_ok;
        sync_tick(f);
        assert_int_equal(f->n_ok, ok + 1);
}

static void test_reserve_expires_on_the_timer_after_lock_ttl(void **state) {
        struct fx *f = *state;
        const cJSON *ev;

        expect_ok(f, "reserve", "{\"user\":\"bob\"}");
        settle(f);
        assert_int_equal(state_of(f, 0), SLOTS_RESERVED);
        advance(f, 2 * SEC);
        ev = run_until_event(f, "reserve_expired");
        assert_string_equal(str(ev, "user"), "bob");
        assert_string_equal(str(ev, "slot"), "s0");
        assert_string_equal(str(ev, "reason"), "reserve_expired");
        assert_int_equal(count_events(f, "session_end"), 0);
        assert_int_equal(state_of(f, 0), SLOTS_FREE);
}

/* ---- enforcement ---- */

static void test_enforcement_none_frees_in_the_same_batch(void **state) {
        struct fx *f = *state;
        char sess[SLOTS_SESSION_LEN + 1];
        size_t from;
        unsigned ok;

        play(f, "alice", "s0", sess);
        sync_tick(f);
        from = f->n_events;
        ok = f->n_ok;
        expect_ok(f, "end", "{\"user\":\"alice\",\"reason\":\"evicted\"}");
        assert_true(f->held);
        assert_string_equal(str(f->reply, "state"), "free");
        assert_string_equal(str(f->reply, "event"), "ending");
        settle(f);
        assert_int_equal(f->n_ok, ok + 1);
        assert_string_equal(types_since(f, from), "session_ending session_end");
        assert_int_equal(state_of(f, 0), SLOTS_FREE);
}

/* The "sessions" members of enforcement "exec" running a script (body) written to the scratch dir,
 * in ret (512 bytes). */
static void exec_hook_sessions(struct fx *f, const char *body, char *ret) {
        char text[512], cmd[128], out[128];

        snprintf(text, sizeof(text), "#!/bin/sh\n%s\n", body);
        tu_put(f->dir->fd, "hook.sh", text);
        assert_int_equal(fchmodat(f->dir->fd, "hook.sh", 0755, 0), 0);
        snprintf(cmd, sizeof(cmd), "%s/hook.sh", f->dir->path);
        snprintf(out, sizeof(out), "%s/hook.out", f->dir->path);
        snprintf(ret, 512, "\"enforcement\":\"exec\",\"enforcement_exec\":[\"%s\",\"%s\"]", cmd, out);
}

/* Reopens the service with enforcement "exec" running a script (body) written to the scratch dir. */
static void use_exec_hook(struct fx *f, const char *body) {
        char sessions[512];

        exec_hook_sessions(f, body, sessions);
        sessions_free(f->s);
        open_service(f, make_cfg(f, sessions, SLOTS3));
}

static const char *hook_out(struct fx *f) {
        static char buf[512];
        _cleanup_close_ int fd = openat(f->dir->fd, "hook.out", O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : 0;

        buf[n > 0 ? n : 0] = '\0';
        return buf;
}

static void test_exec_enforcement_runs_the_hook_then_frees(void **state) {
        struct fx *f = *state;
        char sess[SLOTS_SESSION_LEN + 1], want[160];
        size_t from;

        /* The hook waits for the test's go, so the test sees the slot while it runs. */
        use_exec_hook(f, "while [ ! -e \"$1.go\" ]; do sleep 0.05; done\n"
                         "echo \"$SLOT $USER_ID $SESSION $REASON $NODE\" >> \"$1\"");
        play(f, "alice", "s1", sess);
        from = f->n_events;
        expect_ok(f, "end", "{\"user\":\"alice\",\"reason\":\"evicted\"}");
        assert_string_equal(str(f->reply, "state"), "ending");
        settle(f);
        assert_string_equal(types_since(f, from), "session_ending");
        assert_int_equal(state_of(f, 1), SLOTS_ENDING);
        expect_refused(f, "reserve", "{\"user\":\"bob\",\"slot\":\"s1\"}", "NO_IDLE");
        tu_put(f->dir->fd, "hook.out.go", "");
        run_until_event(f, "session_end");
        assert_string_equal(types_since(f, from), "session_ending session_end");
        assert_int_equal(state_of(f, 1), SLOTS_FREE);
        snprintf(want, sizeof(want), "s1 alice %s evicted render-01\n", sess);
        assert_string_equal(hook_out(f), want);
}

/* Past the retry delay a hook that failed once ("run" in its output) runs again and fails again. */
static void retry_failed_hook(struct fx *f) {
        uint64_t deadline;

        advance(f, SESSIONS_RETRY_USEC + SEC);
        deadline = real_mono() + 5 * SEC;
        while (strcmp(hook_out(f), "run\nrun\n")) {
                assert_true(real_mono() < deadline);
                assert_true(sd_event_run(f->e, 100 * 1000) >= 0);
        }
        for (int i = 0; i < 5; i++)
                assert_true(sd_event_run(f->e, 100 * 1000) >= 0);
}

static void test_failed_enforcement_is_reported_once_and_release_frees(void **state) {
        struct fx *f = *state;
        char sess[SLOTS_SESSION_LEN + 1];
        const cJSON *ev;

        use_exec_hook(f, "echo run >> \"$1\"; exit 3");
        play(f, "alice", "s0", sess);
        expect_ok(f, "end", "{\"user\":\"alice\",\"reason\":\"idle\"}");
        settle(f);
        ev = run_until_event(f, "enforcement_failed");
        assert_string_equal(str(ev, "slot"), "s0");
        assert_string_equal(str(ev, "session"), sess);
        assert_non_null(strstr(str(ev, "error"), "hook.sh failed with exit status 3"));
        assert_int_equal(num(ev, "retry_s"), 10);
        assert_int_equal(state_of(f, 0), SLOTS_ENDING);
        /* Past the retry delay the hook runs again and fails again: no second event. */
        retry_failed_hook(f);
        assert_int_equal(count_events(f, "enforcement_failed"), 1);
        assert_int_equal(state_of(f, 0), SLOTS_ENDING);
        /* An operator who has ended the processes by hand frees the slot. */
        expect_ok(f, "release", "{\"user\":\"alice\"}");
        assert_true(f->held);
        settle(f);
        assert_string_equal(str(last_event(f, "session_end"), "reason"), "idle");
        assert_int_equal(state_of(f, 0), SLOTS_FREE);
}

/* A reload that moves a slot whose enforcement failed (s0 goes second): the slot keeps its retry
 * time and its one enforcement_failed event, by id (they followed positions: the reload retried at
 * once and reported the failure again). */
static void test_a_reload_keeps_a_failed_enforcement_with_its_slot(void **state) {
        struct fx *f = *state;
        char sess[SLOTS_SESSION_LEN + 1], sessions[512];
        uint64_t deadline;

        use_exec_hook(f, "echo run >> \"$1\"; exit 3");
        exec_hook_sessions(f, "echo run >> \"$1\"; exit 3", sessions);
        play(f, "alice", "s0", sess);
        expect_ok(f, "end", "{\"user\":\"alice\",\"reason\":\"idle\"}");
        settle(f);
        run_until_event(f, "enforcement_failed");
        assert_int_equal(sessions_reconfigure(f->s,
                                              make_cfg(f, sessions,
                                                       "{\"id\":\"s1\",\"scale\":\"S\"},{\"id\":\"s0\","
                                                       "\"scale\":\"S\"},{\"id\":\"s2\",\"scale\":\"S\"}"),
                                              f->msg, sizeof(f->msg)),
                         0);
        assert_string_equal(info_of(f, 1).id, "s0");
        assert_int_equal(state_of(f, 1), SLOTS_ENDING);
        /* A second of ticks: the retry is 10 s away, not due. */
        deadline = real_mono() + 1500 * 1000;
        while (real_mono() < deadline)
                assert_true(sd_event_run(f->e, 100 * 1000) >= 0);
        assert_string_equal(hook_out(f), "run\n");
        /* Past it the hook runs again and fails again: still one event. */
        retry_failed_hook(f);
        assert_int_equal(count_events(f, "enforcement_failed"), 1);
        assert_int_equal(state_of(f, 1), SLOTS_ENDING);
}

/* ---- report_bytes ---- */

static void expect_bytes(const struct fx *f, size_t k, enum sessions_flow flow, uint64_t bytes,
                         uint64_t from, uint64_t to) {
        assert_true(k < f->n_bytes);
        assert_int_equal(f->bytes[k].slot, 1);
        assert_int_equal(f->bytes[k].flow, flow);
        assert_int_equal(f->bytes[k].bytes, bytes);
        assert_int_equal(f->bytes[k].from, from);
        assert_int_equal(f->bytes[k].to, to);
}

static void test_report_bytes_turns_counters_into_deltas(void **state) {
        struct fx *f = *state;
        char sess[SLOTS_SESSION_LEN + 1];
        const cJSON *totals;

        play(f, "alice", "s1", sess);
        expect_ok(f, "viewer_join", "{\"user\":\"alice\",\"viewer\":\"v1\"}");
        settle(f);
        advance(f, 60 * SEC);
        expect_ok(f, "report_bytes",
                  "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":1000},"
                  "{\"flow\":\"viewer\",\"peer\":\"v1\",\"bytes\":500},"
                  "{\"flow\":\"push\",\"peer\":\"rtmp1\",\"bytes\":0}]}");
        assert_true(f->held);
        /* The first report counts from the session's start; a zero delta is not reported. */
        assert_int_equal(f->n_bytes, 2);
        expect_bytes(f, 0, SESSIONS_FLOW_PLAYER, 1000, T0, T0 + 60 * SEC);
        expect_bytes(f, 1, SESSIONS_FLOW_VIEWERS, 500, T0, T0 + 60 * SEC);
        expect_ok(f, "viewer_join", "{\"user\":\"alice\",\"viewer\":\"v2\"}");
        settle(f);
        advance(f, 60 * SEC);
        /* The viewer's process restarted: its counter went down and counts from zero. */
        expect_ok(f, "report_bytes",
                  "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":1500},"
                  "{\"flow\":\"viewer\",\"peer\":\"v1\",\"bytes\":400},"
                  "{\"flow\":\"viewer\",\"peer\":\"v2\",\"bytes\":7}]}");
        assert_int_equal(f->n_bytes, 5);
        expect_bytes(f, 2, SESSIONS_FLOW_PLAYER, 500, T0 + 60 * SEC, T0 + 120 * SEC);
        expect_bytes(f, 3, SESSIONS_FLOW_VIEWERS, 400, T0 + 60 * SEC, T0 + 120 * SEC);
        expect_bytes(f, 4, SESSIONS_FLOW_VIEWERS, 7, T0 + 60 * SEC, T0 + 120 * SEC);
        totals = cJSON_GetObjectItemCaseSensitive(f->reply, "bytes");
        assert_int_equal(num(totals, "player"), 1500);
        assert_int_equal(num(totals, "viewers"), 907);
        assert_int_equal(num(totals, "push"), 0);
        /* The same counters again moved nothing: nothing to wait for. */
        expect_ok(f, "report_bytes",
                  "{\"slot\":\"s1\",\"counters\":[{\"flow\":\"player\",\"bytes\":1500}]}");
        assert_int_equal(f->n_bytes, 5);
        assert_false(f->held);
        /* A new session of the same user starts every counter afresh. */
        expect_ok(f, "end", "{\"user\":\"alice\"}");
        settle(f);
        play(f, "alice", "s1", sess);
        advance(f, 10 * SEC);
        expect_ok(f, "report_bytes",
                  "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":2500}]}");
        assert_int_equal(f->n_bytes, 6);
        expect_bytes(f, 5, SESSIONS_FLOW_PLAYER, 2500, T0 + 120 * SEC, T0 + 130 * SEC);
        assert_int_equal(num(cJSON_GetObjectItemCaseSensitive(f->reply, "bytes"), "viewers"), 0);
}

/* Metering bills each push target apart (bandwidth_minute push.targets): every delta names its peer. */
static void test_report_bytes_names_the_peer_of_each_delta(void **state) {
        struct fx *f = *state;
        char sess[SLOTS_SESSION_LEN + 1];

        play(f, "alice", "s1", sess);
        expect_ok(f, "viewer_join", "{\"user\":\"alice\",\"viewer\":\"v1\"}");
        settle(f);
        advance(f, 10 * SEC);
        expect_ok(f, "report_bytes",
                  "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":1000},"
                  "{\"flow\":\"viewer\",\"peer\":\"v1\",\"bytes\":500},"
                  "{\"flow\":\"push\",\"peer\":\"rtmp-a\",\"bytes\":300},"
                  "{\"flow\":\"push\",\"peer\":\"rtmp-b\",\"bytes\":200}]}");
        assert_int_equal(f->n_bytes, 4);
        assert_string_equal(f->bytes[0].peer, "");
        assert_string_equal(f->bytes[1].peer, "v1");
        assert_string_equal(f->bytes[2].peer, "rtmp-a");
        assert_int_equal(f->bytes[2].bytes, 300);
        assert_string_equal(f->bytes[3].peer, "rtmp-b");
        assert_int_equal(f->bytes[3].bytes, 200);
        expect_bytes(f, 3, SESSIONS_FLOW_PUSH, 200, T0, T0 + 10 * SEC);
}

static void test_push_start_waits_for_the_targets_first_bytes(void **state) {
        struct fx *f = *state;
        char sess[SLOTS_SESSION_LEN + 1];

        play(f, "alice", "s1", sess);
        advance(f, 10 * SEC);
        /* Named at 0 bytes: the target has moved nothing yet, so nothing is billed for it. */
        expect_ok(f, "report_bytes",
                  "{\"user\":\"alice\",\"counters\":[{\"flow\":\"push\",\"peer\":\"rtmp1\",\"bytes\":0},"
                  "{\"flow\":\"push\",\"peer\":\"rtmp2\",\"bytes\":0}]}");
        assert_string_equal(f->pushes, "");
        advance(f, 10 * SEC);
        expect_ok(f, "report_bytes",
                  "{\"user\":\"alice\",\"counters\":[{\"flow\":\"push\",\"peer\":\"rtmp1\",\"bytes\":0}]}");
        assert_string_equal(f->pushes, "");
        /* Its first bytes start it, once; later reports do not start it again. */
        advance(f, 10 * SEC);
        expect_ok(
                f, "report_bytes",
                "{\"user\":\"alice\",\"counters\":[{\"flow\":\"push\",\"peer\":\"rtmp1\",\"bytes\":4000}]}");
        assert_string_equal(f->pushes, "+rtmp1 ");
        assert_int_equal(f->n_bytes, 1);
        expect_bytes(f, 0, SESSIONS_FLOW_PUSH, 4000, T0 + 20 * SEC, T0 + 30 * SEC);
        advance(f, 10 * SEC);
        expect_ok(f, "report_bytes",
                  "{\"user\":\"alice\",\"counters\":[{\"flow\":\"push\",\"peer\":\"rtmp1\",\"bytes\":9000},"
                  "{\"flow\":\"push\",\"peer\":\"rtmp2\",\"bytes\":0}]}");
        assert_string_equal(f->pushes, "+rtmp1 ");
        /* The end stops only the target that started: rtmp2 never moved a byte. */
        expect_ok(f, "end", "{\"user\":\"alice\"}");
        settle(f);
        assert_string_equal(f->pushes, "+rtmp1 -rtmp1 ");
}

static void test_report_bytes_refuses_bad_input_and_changes_nothing(void **state) {
        static const char *const bad[] = {
                "{\"user\":\"alice\",\"counters\":\"x\"}",
                "{\"user\":\"alice\"}",
                "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":9000},{\"flow\":\"audio\","
                "\"bytes\":1}]}",
                "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":9000},{\"flow\":"
                "\"viewer\","
                "\"bytes\":1}]}",
                "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":9000},{\"flow\":"
                "\"viewer\","
                "\"peer\":\"\",\"bytes\":1}]}",
                "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":-1}]}",
                "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":1.5}]}",
                "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":\"9000\"}]}",
                "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":1e300}]}",
                /* A push target's id reaches signed records (push_start): UTF-8 text only. */
                "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":9000},"
                "{\"flow\":\"push\",\"peer\":\"rtmp\xff\",\"bytes\":1}]}",
                "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":9000},"
                "{\"flow\":\"push\",\"peer\":\"rtmp\\u001b[2J\",\"bytes\":1}]}",
        };
        struct fx *f = *state;
        char sess[SLOTS_SESSION_LEN + 1], big[4096];
        size_t len;

        play(f, "alice", "s1", sess);
        expect_ok(f, "report_bytes",
                  "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":100}]}");
        assert_int_equal(f->n_bytes, 1);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                expect_refused(f, "report_bytes", bad[i], "BAD_REQUEST");
                assert_int_equal(f->n_bytes, 1);
        }
        assert_string_equal(f->pushes, "");
        expect_refused(f, "report_bytes", "{\"user\":\"bob\",\"counters\":[]}", "SESSION_NOT_FOUND");
        expect_refused(f, "report_bytes",
                       "{\"session\":\"00000000000000000000000000000000\",\"counters\":[]}",
                       "SESSION_NOT_FOUND");
        /* Nothing of the refused reports was counted: the player moved 9000 - 100 since the first. */
        expect_ok(f, "report_bytes",
                  "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":9000}]}");
        assert_int_equal(f->n_bytes, 2);
        assert_int_equal(f->bytes[1].bytes, 8900);
        /* More counters in one report than a slot may have. */
        len = (size_t)snprintf(big, sizeof(big), "{\"user\":\"alice\",\"counters\":[");
        for (int k = 0; k <= SESSIONS_PEERS_MAX; k++)
                len += (size_t)snprintf(big + len, sizeof(big) - len,
                                        "%s{\"flow\":\"viewer\",\"peer\":\"v%d\",\"bytes\":1}", k ? "," : "",
                                        k);
        snprintf(big + len, sizeof(big) - len, "]}");
        expect_refused(f, "report_bytes", big, "BAD_REQUEST");
        assert_non_null(strstr(f->msg, "at most 32"));
        assert_int_equal(f->n_bytes, 2);
}

static void test_report_bytes_refuses_peers_past_the_cap_whole(void **state) {
        struct fx *f = *state;
        char sess[SLOTS_SESSION_LEN + 1], req[4096];
        size_t len;

        play(f, "alice", "s1", sess);
        /* The player and 31 push targets: the slot's 32 counters. */
        len = (size_t)snprintf(req, sizeof(req),
                               "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":10}");
        for (int k = 1; k < SESSIONS_PEERS_MAX; k++)
                len += (size_t)snprintf(req + len, sizeof(req) - len,
                                        ",{\"flow\":\"push\",\"peer\":\"p%d\",\"bytes\":1}", k);
        snprintf(req + len, sizeof(req) - len, "]}");
        expect_ok(f, "report_bytes", req);
        assert_int_equal(f->n_bytes, SESSIONS_PEERS_MAX);
        /* A 33rd peer is refused, and the player's bytes in the same report are not counted. */
        expect_refused(f, "report_bytes",
                       "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":50},"
                       "{\"flow\":\"push\",\"peer\":\"p32\",\"bytes\":5}]}",
                       "ROLE_LIMIT");
        assert_non_null(strstr(f->msg, "more than 32 peers"));
        assert_int_equal(f->n_bytes, SESSIONS_PEERS_MAX);
        expect_ok(f, "report_bytes",
                  "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":50}]}");
        assert_int_equal(f->n_bytes, SESSIONS_PEERS_MAX + 1);
        assert_int_equal(f->bytes[SESSIONS_PEERS_MAX].bytes, 40);
}

/* Viewers are billed by bandwidth only while they watch: never the host (its stream is the
 * player's), never a peer that did not join, not after viewer_leave. */
static void test_viewer_bytes_are_billed_only_for_joined_viewers(void **state) {
        struct fx *f = *state;
        char sess[SLOTS_SESSION_LEN + 1];

        play(f, "alice", "s1", sess);
        expect_ok(f, "viewer_join", "{\"user\":\"alice\",\"viewer\":\"vic\"}");
        settle(f);
        advance(f, 10 * SEC);
        expect_refused(f, "report_bytes",
                       "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":100},"
                       "{\"flow\":\"viewer\",\"peer\":\"alice\",\"bytes\":1000}]}",
                       "BAD_REQUEST");
        assert_non_null(strstr(f->msg, "counters[1]: user alice hosts session"));
        assert_non_null(strstr(f->msg, "never a viewer"));
        expect_refused(
                f, "report_bytes",
                "{\"user\":\"alice\",\"counters\":[{\"flow\":\"viewer\",\"peer\":\"vic\",\"bytes\":10},"
                "{\"flow\":\"viewer\",\"peer\":\"eve\",\"bytes\":2000}]}",
                "SESSION_NOT_FOUND");
        assert_non_null(strstr(f->msg, "counters[1]: viewer eve is not in session"));
        /* Nothing of either refused report counted, not even the joined viewer's or the player's. */
        assert_int_equal(f->n_bytes, 0);
        expect_ok(
                f, "report_bytes",
                "{\"user\":\"alice\",\"counters\":[{\"flow\":\"viewer\",\"peer\":\"vic\",\"bytes\":300}]}");
        assert_int_equal(f->n_bytes, 1);
        expect_bytes(f, 0, SESSIONS_FLOW_VIEWERS, 300, T0, T0 + 10 * SEC);
        /* Its last bytes are reported before it leaves; after, its counter is closed. */
        expect_ok(f, "viewer_leave", "{\"user\":\"alice\",\"viewer\":\"vic\"}");
        settle(f);
        advance(f, 10 * SEC);
        expect_refused(
                f, "report_bytes",
                "{\"user\":\"alice\",\"counters\":[{\"flow\":\"viewer\",\"peer\":\"vic\",\"bytes\":500}]}",
                "SESSION_NOT_FOUND");
        assert_non_null(strstr(f->msg, "viewer vic is not in session"));
        assert_int_equal(f->n_bytes, 1);
        /* Joined again, its counter goes on from the last billed value. */
        expect_ok(f, "viewer_join", "{\"user\":\"alice\",\"viewer\":\"vic\"}");
        settle(f);
        expect_ok(
                f, "report_bytes",
                "{\"user\":\"alice\",\"counters\":[{\"flow\":\"viewer\",\"peer\":\"vic\",\"bytes\":700}]}");
        assert_int_equal(f->n_bytes, 2);
        assert_int_equal(f->bytes[1].bytes, 400);
        assert_int_equal(num(cJSON_GetObjectItemCaseSensitive(f->reply, "bytes"), "viewers"), 700);
}

/* While an end is enforced the session's viewers are gone from the slot, yet their last bytes
 * count: those of viewers that reported while joined and did not leave. */
static void test_an_ending_session_takes_the_last_bytes_of_its_viewers_only(void **state) {
        struct fx *f = *state;
        char sess[SLOTS_SESSION_LEN + 1];

        use_exec_hook(f, "while [ ! -e \"$1.go\" ]; do sleep 0.05; done");
        play(f, "alice", "s1", sess);
        expect_ok(f, "viewer_join", "{\"user\":\"alice\",\"viewer\":\"vic\"}");
        settle(f);
        expect_ok(f, "viewer_join", "{\"user\":\"alice\",\"viewer\":\"val\"}");
        settle(f);
        advance(f, 10 * SEC);
        expect_ok(f, "report_bytes",
                  "{\"user\":\"alice\",\"counters\":[{\"flow\":\"viewer\",\"peer\":\"vic\",\"bytes\":100},"
                  "{\"flow\":\"viewer\",\"peer\":\"val\",\"bytes\":100}]}");
        expect_ok(f, "viewer_leave", "{\"user\":\"alice\",\"viewer\":\"val\"}");
        settle(f);
        expect_ok(f, "end", "{\"user\":\"alice\"}");
        settle(f);
        assert_int_equal(state_of(f, 1), SLOTS_ENDING);
        assert_int_equal(info_of(f, 1).n_viewers, 0);
        advance(f, 10 * SEC);
        expect_ok(
                f, "report_bytes",
                "{\"user\":\"alice\",\"counters\":[{\"flow\":\"viewer\",\"peer\":\"vic\",\"bytes\":150}]}");
        assert_int_equal(f->n_bytes, 3);
        assert_int_equal(f->bytes[2].bytes, 50);
        expect_refused(
                f, "report_bytes",
                "{\"user\":\"alice\",\"counters\":[{\"flow\":\"viewer\",\"peer\":\"val\",\"bytes\":150}]}",
                "SESSION_NOT_FOUND");
        expect_refused(
                f, "report_bytes",
                "{\"user\":\"alice\",\"counters\":[{\"flow\":\"viewer\",\"peer\":\"eve\",\"bytes\":1}]}",
                "SESSION_NOT_FOUND");
        assert_int_equal(f->n_bytes, 3);
        tu_put(f->dir->fd, "hook.out.go", "");
        run_until_event(f, "session_end");
}

/* A broken counter (2^53 bytes) would make a signed record of an absurd peak: a delta faster
 * than sessions.max_flow_mbps is refused, whole, naming the counter and its rate. */
static void test_a_delta_faster_than_max_flow_mbps_is_refused_whole(void **state) {
        struct fx *f = *state;
        char sess[SLOTS_SESSION_LEN + 1];

        play(f, "alice", "s1", sess);
        advance(f, 10 * SEC);
        expect_refused(f, "report_bytes",
                       "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":1000},"
                       "{\"flow\":\"push\",\"peer\":\"rtmp1\",\"bytes\":9007199254740992}]}",
                       "BAD_REQUEST");
        assert_string_equal(f->msg, "counters[1] (push rtmp1): 9007199254740992 bytes in 10.0 s is "
                                    "7205759404 Mbit/s, faster than sessions.max_flow_mbps (1000); nothing "
                                    "in this report is counted");
        assert_int_equal(f->n_bytes, 0);
        assert_string_equal(f->pushes, "");
        /* 1000 Mbit/s over the 10 s since the start is 1.25 GB: that much is taken. */
        expect_ok(f, "report_bytes",
                  "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":1250000000}]}");
        assert_int_equal(f->n_bytes, 1);
        expect_bytes(f, 0, SESSIONS_FLOW_PLAYER, 1250000000, T0, T0 + 10 * SEC);
        /* The ceiling follows a reload. */
        assert_int_equal(sessions_reconfigure(f->s, make_cfg(f, "\"max_flow_mbps\":1", SLOTS3), f->msg,
                                              sizeof(f->msg)),
                         0);
        advance(f, 10 * SEC);
        expect_refused(f, "report_bytes",
                       "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":1251250001}]}",
                       "BAD_REQUEST");
        assert_non_null(strstr(f->msg, "counters[0] (player): 1250001 bytes in 10.0 s"));
        expect_ok(f, "report_bytes",
                  "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":1251250000}]}");
        assert_int_equal(f->bytes[1].bytes, 1250000);
}

/* ---- byte counters across restarts ---- */

/* The service goes and comes back on the same state dir (and config). */
static void restart(struct fx *f) {
        sessions_free(f->s);
        f->s = NULL;
        open_service(f, f->cfgs[0]);
}

/* A kill -9 before the writes since `image` (the state file's bytes then): the service goes,
 * the file is put back as it was, and the service comes back on it. */
static void restart_from(struct fx *f, const char *image, size_t len) {
        sessions_free(f->s);
        f->s = NULL;
        tu_put_bytes(f->state_fd, SLOTS_STATE_FILE, image, len);
        open_service(f, f->cfgs[0]);
}

/* The state file's bytes now; caller frees. */
static char *state_image(struct fx *f, size_t *ret_len) {
        char *buf = NULL;

        assert_int_equal(plat_read_file_at(f->state_fd, SLOTS_STATE_FILE, 1 << 20, &buf, ret_len), 0);
        return buf;
}

/* An older agent's state (slots.json, no counters): alice plays session sess on s1 since T0;
 * `extra` adds members. */
static void put_legacy_state(struct fx *f, const char *sess, const char *extra) {
        char json[1024];

        snprintf(json, sizeof(json),
                 "{\"v\":1,\"slots\":[{\"id\":\"s1\",\"state\":\"active\",\"user\":\"alice\","
                 "\"session\":\"%s\",\"started\":%" PRIu64 "}]%s}",
                 sess, T0, extra);
        assert_int_equal(unlinkat(f->state_fd, SLOTS_STATE_FILE, 0), 0);
        tu_put(f->state_fd, "slots.json", json);
}

static void test_report_bytes_is_held_until_its_counters_are_written(void **state) {
        struct fx *f = *state;
        char sess[SLOTS_SESSION_LEN + 1];
        unsigned ok;
        uint32_t sum;

        play(f, "alice", "s1", sess);
        advance(f, 10 * SEC);
        sum = state_sum(f);
        ok = f->n_ok;
        expect_ok(f, "report_bytes",
                  "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":1000}]}");
        assert_true(f->held);
        assert_int_equal(state_sum(f), sum);
        settle(f);
        assert_int_equal(f->n_ok, ok + 1);
        assert_true(state_sum(f) != sum);
        /* Nothing moved: no write, no wait. */
        sum = state_sum(f);
        advance(f, 10 * SEC);
        expect_ok(f, "report_bytes",
                  "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":1000}]}");
        assert_false(f->held);
        settle(f);
        assert_int_equal(state_sum(f), sum);
}

static void test_after_a_restart_the_next_report_counts_from_the_last_written_counter(void **state) {
        struct fx *f = *state;
        char sess[SLOTS_SESSION_LEN + 1];
        const cJSON *totals;

        play(f, "alice", "s1", sess);
        expect_ok(f, "viewer_join", "{\"user\":\"alice\",\"viewer\":\"v1\"}");
        settle(f);
        advance(f, 60 * SEC);
        expect_ok(f, "report_bytes",
                  "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":1000},"
                  "{\"flow\":\"viewer\",\"peer\":\"v1\",\"bytes\":500},"
                  "{\"flow\":\"push\",\"peer\":\"rtmp1\",\"bytes\":100}]}");
        settle(f);
        assert_int_equal(f->n_push_started, 1);
        assert_int_equal(f->n_bytes, 3);
        restart(f);
        assert_string_equal(f->warning, "");
        advance(f, 60 * SEC);
        expect_ok(f, "report_bytes",
                  "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":1500},"
                  "{\"flow\":\"viewer\",\"peer\":\"v1\",\"bytes\":700},"
                  "{\"flow\":\"push\",\"peer\":\"rtmp1\",\"bytes\":300}]}");
        assert_true(f->held);
        /* Counted from the counters written before the restart, over the time since that report;
         * the push target announced then is not announced again. */
        assert_int_equal(f->n_bytes, 6);
        expect_bytes(f, 3, SESSIONS_FLOW_PLAYER, 500, T0 + 60 * SEC, T0 + 120 * SEC);
        expect_bytes(f, 4, SESSIONS_FLOW_VIEWERS, 200, T0 + 60 * SEC, T0 + 120 * SEC);
        expect_bytes(f, 5, SESSIONS_FLOW_PUSH, 200, T0 + 60 * SEC, T0 + 120 * SEC);
        assert_int_equal(f->n_push_started, 1);
        totals = cJSON_GetObjectItemCaseSensitive(f->reply, "bytes");
        assert_int_equal(num(totals, "player"), 1500);
        assert_int_equal(num(totals, "viewers"), 700);
        assert_int_equal(num(totals, "push"), 300);
        settle(f);
        assert_non_null(strstr(slots_extra(sessions_slots(f->s), SLOTS_EXTRA_COUNTERS), sess));
        /* It stops with the session: it is still known to have started. The freed slot's counters
         * leave the state file with it. */
        expect_ok(f, "end", "{\"user\":\"alice\"}");
        settle(f);
        assert_string_equal(f->pushes, "+rtmp1 -rtmp1 ");
        assert_null(strstr(slots_extra(sessions_slots(f->s), SLOTS_EXTRA_COUNTERS), sess));
}

/* A report whose write a kill -9 prevented was never acknowledged: the next one counts its bytes. */
static void test_a_report_lost_in_a_crash_is_counted_by_the_next_one(void **state) {
        struct fx *f = *state;
        char sess[SLOTS_SESSION_LEN + 1];
        _cleanup_free_ char *image = NULL;
        size_t len;

        play(f, "alice", "s1", sess);
        advance(f, 10 * SEC);
        expect_ok(f, "report_bytes",
                  "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":1000}]}");
        settle(f);
        image = state_image(f, &len);
        advance(f, 10 * SEC);
        expect_ok(f, "report_bytes",
                  "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":1800}]}");
        assert_true(f->held);
        restart_from(f, image, len);
        advance(f, 10 * SEC);
        expect_ok(f, "report_bytes",
                  "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":2500}]}");
        assert_int_equal(f->n_bytes, 3);
        expect_bytes(f, 2, SESSIONS_FLOW_PLAYER, 1500, T0 + 10 * SEC, T0 + 30 * SEC);
        assert_int_equal(num(cJSON_GetObjectItemCaseSensitive(f->reply, "bytes"), "player"), 2500);
}

/* A state file of an agent that kept no counters: a running session's first report may hold
 * bytes already billed, so it only sets the baseline (nothing counted twice). */
static void test_a_state_file_without_counters_gives_running_sessions_a_baseline(void **state) {
        struct fx *f = *state;
        char sess[SLOTS_SESSION_LEN + 1];

        play(f, "alice", "s1", sess);
        sessions_free(f->s);
        f->s = NULL;
        put_legacy_state(f, sess, "");
        open_service(f, f->cfgs[0]);
        assert_string_equal(f->warning, "");
        advance(f, 10 * SEC);
        expect_ok(f, "report_bytes",
                  "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":1800}]}");
        assert_true(f->held);
        assert_int_equal(f->n_bytes, 0);
        settle(f);
        /* The baseline is written: a restart does not set it again. */
        restart(f);
        advance(f, 10 * SEC);
        expect_ok(f, "report_bytes",
                  "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":2500}]}");
        assert_int_equal(f->n_bytes, 1);
        expect_bytes(f, 0, SESSIONS_FLOW_PLAYER, 700, T0 + 10 * SEC, T0 + 20 * SEC);
}

static void test_unreadable_counters_are_named_and_give_a_baseline(void **state) {
        struct fx *f = *state;
        char sess[SLOTS_SESSION_LEN + 1], extra[512];
        cJSON *sum;

        play(f, "alice", "s1", sess);
        sessions_free(f->s);
        f->s = NULL;
        snprintf(extra, sizeof(extra),
                 ",\"counters\":{\"v\":1,\"slots\":[{\"slot\":\"s1\",\"session\":\"%s\",\"last_real\":1,"
                 "\"baseline\":false,\"total\":{\"player\":0,\"viewers\":0,\"push\":0},"
                 "\"peers\":[{\"flow\":\"audio\",\"bytes\":1}]}]}",
                 sess);
        put_legacy_state(f, sess, extra);
        open_service(f, f->cfgs[0]);
        assert_string_equal(f->warning, "");
        sum = sessions_summary_json(f->s);
        assert_non_null(
                strstr(str(sum, "last_error"),
                       "slots.state: counters.slots[0].peers[0].flow: want \"player\", \"viewer\" or "
                       "\"push\"; the byte counters are not used"));
        cJSON_Delete(sum);
        advance(f, 10 * SEC);
        expect_ok(f, "report_bytes",
                  "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":1800}]}");
        assert_int_equal(f->n_bytes, 0);
}

/* Every counter is kept in slots.state: past their room there, a report adds no peer. */
static void test_peers_past_the_counters_room_in_the_state_file_are_refused(void **state) {
        struct fx *f = *state;
        char slots[1024], user[16], sess[SLOTS_SESSION_LEN + 1], req[8192], id[SLOTS_USER_MAX + 1];
        size_t len = 0, k;

        for (k = 0; k < 10; k++)
                len += (size_t)snprintf(slots + len, sizeof(slots) - len,
                                        "%s{\"id\":\"s%zu\",\"scale\":\"S\"}", k ? "," : "", k);
        sessions_free(f->s);
        f->s = NULL;
        open_service(f, make_cfg(f, "", slots));
        memset(id, 'p', SLOTS_USER_MAX);
        id[SLOTS_USER_MAX] = '\0';
        for (k = 0; k < 10; k++) {
                snprintf(user, sizeof(user), "u%zu", k);
                snprintf(slots, sizeof(slots), "s%zu", k);
                play(f, user, slots, sess);
                len = (size_t)snprintf(req, sizeof(req), "{\"user\":\"%s\",\"counters\":[", user);
                for (size_t p = 0; p < SESSIONS_PEERS_MAX; p++) {
                        id[0] = (char)('0' + p / 10);
                        id[1] = (char)('0' + p % 10);
                        len += (size_t)snprintf(req + len, sizeof(req) - len,
                                                "%s{\"flow\":\"push\",\"peer\":\"%s\",\"bytes\":0}",
                                                p ? "," : "", id);
                }
                snprintf(req + len, sizeof(req) - len, "]}");
                if (!call(f, "report_bytes", req))
                        break;
                settle(f);
        }
        /* 32 peers with ids of 64 bytes take at most 5,000 bytes a slot: the tenth does not fit. */
        assert_int_equal(k, 9);
        assert_string_equal(f->code, "ROLE_LIMIT");
        assert_non_null(
                strstr(f->msg, "the node's byte counters would take more than 48 KiB of slots.state"));
        /* Nothing of it was counted: the same report is refused again. Counters already kept go on,
         * and every write so far held them all. */
        expect_refused(f, "report_bytes", req, "ROLE_LIMIT");
        expect_ok(f, "report_bytes", "{\"user\":\"u9\",\"counters\":[{\"flow\":\"player\",\"bytes\":5}]}");
        settle(f);
        snprintf(req, sizeof(req),
                 "{\"user\":\"u0\",\"counters\":[{\"flow\":\"push\",\"peer\":\"00%s\",\"bytes\":9}]}",
                 id + 2);
        expect_ok(f, "report_bytes", req);
        assert_true(f->held);
        settle(f);
        assert_int_equal(f->n_failed, 0);
}

/* ---- refusals, reload, restart ---- */

static void test_refuse_new_turns_new_users_away_but_not_holders(void **state) {
        struct fx *f = *state;
        char sess[SLOTS_SESSION_LEN + 1];

        play(f, "alice", "s0", sess);
        f->refuse = "the metering spool is full";
        expect_refused(f, "reserve", "{\"user\":\"bob\"}", "NO_IDLE");
        assert_string_equal(f->msg, "the node takes no new sessions: the metering spool is full");
        /* alice holds a slot: she may connect again (a takeover). */
        expect_ok(f, "reserve", "{\"user\":\"alice\"}");
        assert_string_equal(str(f->reply, "event"), "takeover");
        settle(f);
        f->refuse = NULL;
        expect_ok(f, "reserve", "{\"user\":\"bob\"}");
}

/* While metering cannot record (refuse_new), nothing that would open billing is acknowledged: a
 * reservation's start, a renewed reservation, a new viewer. What goes on or ends billing does. */
static void test_refuse_new_refuses_every_op_that_opens_billing(void **state) {
        struct fx *f = *state;
        char alice[SLOTS_SESSION_LEN + 1], bob[SLOTS_SESSION_LEN + 1], req[96], want[160];

        play(f, "alice", "s0", alice);
        expect_ok(f, "viewer_join", "{\"user\":\"alice\",\"viewer\":\"vic\"}");
        settle(f);
        expect_ok(f, "viewer_join", "{\"user\":\"alice\",\"viewer\":\"val\"}");
        settle(f);
        expect_ok(f, "reserve", "{\"user\":\"bob\",\"slot\":\"s1\"}");
        snprintf(bob, sizeof(bob), "%s", str(f->reply, "session"));
        settle(f);
        f->refuse = "the metering spool is full";
        snprintf(req, sizeof(req), "{\"session\":\"%s\"}", bob);
        expect_refused(f, "start", req, "NO_IDLE");
        snprintf(want, sizeof(want),
                 "the node takes no new sessions: the metering spool is full; session %s does not start",
                 bob);
        assert_string_equal(f->msg, want);
        expect_refused(f, "start", "{\"user\":\"bob\"}", "NO_IDLE");
        expect_refused(f, "reserve", "{\"user\":\"bob\"}", "NO_IDLE");
        assert_int_equal(state_of(f, 1), SLOTS_RESERVED);
        expect_refused(f, "viewer_join", "{\"user\":\"alice\",\"viewer\":\"eve\"}", "NO_IDLE");
        assert_string_equal(f->msg, "the node takes no new viewers: the metering spool is full");
        /* A joined viewer may change its role; viewers leave; the host comes back (a takeover),
         * loses the client and resumes; a repeated start is a repeat. */
        expect_ok(f, "viewer_join", "{\"user\":\"alice\",\"viewer\":\"vic\",\"role\":\"coach\"}");
        settle(f);
        expect_ok(f, "viewer_leave", "{\"user\":\"alice\",\"viewer\":\"val\"}");
        settle(f);
        expect_ok(f, "reserve", "{\"user\":\"alice\"}");
        assert_string_equal(str(f->reply, "event"), "takeover");
        settle(f);
        expect_ok(f, "start", "{\"user\":\"alice\"}");
        assert_string_equal(str(f->reply, "event"), "none");
        expect_ok(f, "client_lost", "{\"user\":\"alice\"}");
        settle(f);
        expect_ok(f, "start", "{\"user\":\"alice\"}");
        assert_string_equal(str(f->reply, "event"), "resume");
        settle(f);
        /* Ends go through: the held session's and the reservation's. */
        expect_ok(f, "end", "{\"user\":\"alice\"}");
        expect_ok(f, "end", "{\"user\":\"bob\"}");
        settle(f);
        assert_int_equal(state_of(f, 0), SLOTS_FREE);
        assert_int_equal(state_of(f, 1), SLOTS_FREE);
        /* Once metering records again, all of it is admitted. */
        f->refuse = NULL;
        play(f, "bob", "s1", bob);
        assert_int_equal(state_of(f, 1), SLOTS_ACTIVE);
}

static void test_reconfigure_sets_limits_and_refuses_to_drop_held_slots(void **state) {
        struct fx *f = *state;
        char sess[SLOTS_SESSION_LEN + 1], msg[256] = "";
        const struct cfg *two;
        cJSON *list;

        play(f, "alice", "s1", sess);
        /* The same slots: new limits apply at once. */
        assert_int_equal(
                sessions_reconfigure(f->s, make_cfg(f, "\"viewers_max\":1", SLOTS3), msg, sizeof(msg)), 0);
        expect_ok(f, "viewer_join", "{\"user\":\"alice\",\"viewer\":\"v1\"}");
        settle(f);
        expect_refused(f, "viewer_join", "{\"user\":\"alice\",\"viewer\":\"v2\"}", "ROLE_LIMIT");
        /* Dropping s1, which alice holds, is refused and changes nothing. */
        assert_int_equal(sessions_reconfigure(f->s,
                                              make_cfg(f, "",
                                                       "{\"id\":\"s0\",\"scale\":\"S\"},{\"id\":\"s2\","
                                                       "\"scale\":\"S\"}"),
                                              msg, sizeof(msg)),
                         -EBUSY);
        assert_non_null(
                strstr(msg, "slot s1 is active, user alice and the new config drops it; end its session"));
        assert_int_equal(slots_count(sessions_slots(f->s)), 3);
        /* Dropping the free s2 is fine; alice keeps her session. */
        two = make_cfg(f, "", "{\"id\":\"s0\",\"scale\":\"S\"},{\"id\":\"s1\",\"scale\":\"S\"}");
        assert_int_equal(sessions_reconfigure(f->s, two, msg, sizeof(msg)), 0);
        assert_int_equal(slots_count(sessions_slots(f->s)), 2);
        assert_int_equal(state_of(f, 1), SLOTS_ACTIVE);
        assert_string_equal(info_of(f, 1).session, sess);
        list = sessions_list_json(f->s);
        assert_int_equal(cJSON_GetArraySize(list), 1);
        cJSON_Delete(list);
        expect_refused(f, "reserve", "{\"user\":\"bob\",\"slot\":\"s2\"}", "BAD_REQUEST");
}

static void test_a_reload_keeps_byte_counters_and_known_push_targets(void **state) {
        struct fx *f = *state;
        char sess[SLOTS_SESSION_LEN + 1], msg[256] = "";

        play(f, "alice", "s1", sess);
        advance(f, 60 * SEC);
        expect_ok(f, "report_bytes",
                  "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":1000},"
                  "{\"flow\":\"push\",\"peer\":\"rtmp1\",\"bytes\":100}]}");
        assert_int_equal(f->n_push_started, 1);
        assert_int_equal(f->n_bytes, 2);
        /* Another slot table (s2 dropped): alice's s1 goes on, and so do its counters. */
        assert_int_equal(
                sessions_reconfigure(
                        f->s,
                        make_cfg(f, "", "{\"id\":\"s0\",\"scale\":\"S\"},{\"id\":\"s1\",\"scale\":\"S\"}"),
                        msg, sizeof(msg)),
                0);
        advance(f, 60 * SEC);
        expect_ok(f, "report_bytes",
                  "{\"user\":\"alice\",\"counters\":[{\"flow\":\"player\",\"bytes\":1500},"
                  "{\"flow\":\"push\",\"peer\":\"rtmp1\",\"bytes\":300}]}");
        /* No second push_start; the deltas count from the report before the reload. */
        assert_int_equal(f->n_push_started, 1);
        assert_int_equal(f->n_bytes, 4);
        expect_bytes(f, 2, SESSIONS_FLOW_PLAYER, 500, T0 + 60 * SEC, T0 + 120 * SEC);
        expect_bytes(f, 3, SESSIONS_FLOW_PUSH, 200, T0 + 60 * SEC, T0 + 120 * SEC);
}

static void test_restart_keeps_an_active_session(void **state) {
        struct fx *f = *state;
        char sess[SLOTS_SESSION_LEN + 1];

        play(f, "alice", "s2", sess);
        sessions_free(f->s);
        f->s = NULL;
        open_service(f, f->cfgs[0]);
        assert_string_equal(f->warning, "");
        assert_int_equal(state_of(f, 2), SLOTS_ACTIVE);
        assert_string_equal(info_of(f, 2).session, sess);
        assert_string_equal(info_of(f, 2).user, "alice");
        expect_refused(f, "reserve", "{\"user\":\"bob\",\"slot\":\"s2\"}", "NO_IDLE");
}

static void test_corrupt_state_blocks_every_slot_until_unblocked(void **state) {
        struct fx *f = *state;
        char sess[SLOTS_SESSION_LEN + 1];

        play(f, "alice", "s0", sess);
        sessions_free(f->s);
        f->s = NULL;
        tu_put(f->state_fd, SLOTS_STATE_FILE, "{\"v\":1,\"slots\":[{\"id\":");
        open_service(f, f->cfgs[0]);
        assert_non_null(strstr(f->warning, "slots.state: no valid copy"));
        assert_non_null(strstr(f->warning, "every slot is blocked"));
        for (size_t i = 0; i < 3; i++)
                assert_int_equal(state_of(f, i), SLOTS_BLOCKED);
        expect_refused(f, "reserve", "{\"user\":\"bob\"}", "NO_IDLE");
        assert_non_null(strstr(f->msg, "blocked"));
        expect_refused(f, "unblock", NULL, "BAD_REQUEST");
        expect_ok(f, "unblock", "{\"slot\":\"s1\"}");
        assert_true(f->held);
        settle(f);
        assert_string_equal(str(last_event(f, "slot_unblock"), "slot"), "s1");
        assert_int_equal(state_of(f, 1), SLOTS_FREE);
        assert_int_equal(state_of(f, 0), SLOTS_BLOCKED);
        expect_ok(f, "reserve", "{\"user\":\"bob\"}");
        assert_string_equal(str(f->reply, "slot"), "s1");
}

static void test_reserve_takes_project_and_app_into_replies_events_and_views(void **state) {
        struct fx *f = *state;
        const cJSON *ev;
        cJSON *list;

        expect_refused(f, "reserve", "{\"user\":\"bob\",\"project\":\"a b\"}", "BAD_REQUEST");
        assert_non_null(strstr(f->msg, "project must be 1..64 of [A-Za-z0-9._@:-]"));
        expect_refused(f, "reserve", "{\"user\":\"bob\",\"app\":7}", "BAD_REQUEST");
        assert_string_equal(f->msg, "\"app\" must be a string");
        expect_ok(f, "reserve",
                  "{\"user\":\"alice\",\"project\":\"acme\",\"app\":\"racer\",\"slot\":\"s1\"}");
        assert_string_equal(str(f->reply, "project"), "acme");
        assert_string_equal(str(f->reply, "app"), "racer");
        settle(f);
        ev = last_event(f, "session_reserve");
        assert_string_equal(str(ev, "project"), "acme");
        assert_string_equal(str(ev, "app"), "racer");
        expect_ok(f, "start", "{\"user\":\"alice\"}");
        settle(f);
        assert_string_equal(str(last_event(f, "session_start"), "project"), "acme");
        list = sessions_list_json(f->s);
        assert_string_equal(str(cJSON_GetArrayItem(list, 0), "project"), "acme");
        assert_string_equal(str(cJSON_GetArrayItem(list, 0), "app"), "racer");
        cJSON_Delete(list);
        /* Without them, no members. */
        expect_ok(f, "reserve", "{\"user\":\"bob\"}");
        assert_null(cJSON_GetObjectItemCaseSensitive(f->reply, "project"));
        assert_null(cJSON_GetObjectItemCaseSensitive(f->reply, "app"));
        settle(f);
        /* The holder may not switch projects. */
        expect_refused(f, "reserve", "{\"user\":\"alice\",\"project\":\"zeta\"}", "BAD_REQUEST");
        assert_non_null(strstr(f->msg, "of project acme, app racer"));
}

#define SLOTS_BOUND                                                                                        \
        "{\"id\":\"s0\",\"scale\":\"S\",\"project\":\"acme\"},{\"id\":\"s1\",\"scale\":\"S\",\"project\":" \
        "\"acme\"},{\"id\":\"s2\",\"scale\":\"S\",\"project\":\"zeta\"}"

static void test_a_bound_slot_refuses_sessions_of_other_projects(void **state) {
        struct fx *f = *state;
        char msg[256] = "";
        cJSON *slots;

        /* A reload binds the slots (the same ids: no reopening). */
        assert_int_equal(sessions_reconfigure(f->s, make_cfg(f, "", SLOTS_BOUND), msg, sizeof(msg)), 0);
        slots = sessions_slots_json(f->s);
        assert_string_equal(str(cJSON_GetArrayItem(slots, 2), "bound_project"), "zeta");
        cJSON_Delete(slots);
        expect_refused(f, "reserve", "{\"user\":\"zed\",\"project\":\"zeta\",\"slot\":\"s1\"}", "FORBIDDEN");
        assert_string_equal(f->msg, "slot s1 is bound to project acme; project zeta cannot use it");
        expect_ok(f, "reserve", "{\"user\":\"ann\",\"project\":\"acme\"}");
        assert_string_equal(str(f->reply, "slot"), "s0");
        expect_ok(f, "reserve", "{\"user\":\"ben\",\"project\":\"acme\"}");
        assert_string_equal(str(f->reply, "slot"), "s1");
        settle(f);
        expect_refused(f, "reserve", "{\"user\":\"cat\",\"project\":\"acme\"}", "NO_IDLE");
        assert_string_equal(f->msg, "no free slot for project acme: 2 busy or blocked, 0 not admissible, 1 "
                                    "bound to other projects");
        /* A reservation without a project takes the slot's. */
        expect_ok(f, "reserve", "{\"user\":\"dan\"}");
        assert_string_equal(str(f->reply, "slot"), "s2");
        assert_string_equal(str(f->reply, "project"), "zeta");
        settle(f);
        /* After a restart the bindings come from the config again. */
        sessions_free(f->s);
        f->s = NULL;
        open_service(f, f->cfgs[f->n_cfgs - 1]);
        assert_string_equal(info_of(f, 2).bound_project, "zeta");
        assert_string_equal(info_of(f, 2).project, "zeta");
        expect_refused(f, "reserve", "{\"user\":\"eve\",\"project\":\"zeta\",\"slot\":\"s0\"}", "FORBIDDEN");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(
                        test_replies_are_held_until_one_commit_writes_the_whole_batch, setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_failed_commit_fails_the_batch_undoes_it_and_emits_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_second_op_of_a_user_in_the_batch_gets_slow_down, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_events_follow_the_commit_with_their_type_names, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_idle_tick_commits_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reserve_expires_on_the_timer_after_lock_ttl, setup_ttl1,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_enforcement_none_frees_in_the_same_batch, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_exec_enforcement_runs_the_hook_then_frees, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_failed_enforcement_is_reported_once_and_release_frees,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_a_reload_keeps_a_failed_enforcement_with_its_slot,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_report_bytes_turns_counters_into_deltas, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_report_bytes_names_the_peer_of_each_delta, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_push_start_waits_for_the_targets_first_bytes, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_report_bytes_refuses_bad_input_and_changes_nothing,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_report_bytes_refuses_peers_past_the_cap_whole, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_viewer_bytes_are_billed_only_for_joined_viewers, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(
                        test_an_ending_session_takes_the_last_bytes_of_its_viewers_only, setup, teardown),
                cmocka_unit_test_setup_teardown(test_a_delta_faster_than_max_flow_mbps_is_refused_whole,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_report_bytes_is_held_until_its_counters_are_written,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_after_a_restart_the_next_report_counts_from_the_last_written_counter, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(test_a_report_lost_in_a_crash_is_counted_by_the_next_one,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_a_state_file_without_counters_gives_running_sessions_a_baseline, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(test_unreadable_counters_are_named_and_give_a_baseline,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_peers_past_the_counters_room_in_the_state_file_are_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refuse_new_turns_new_users_away_but_not_holders, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_refuse_new_refuses_every_op_that_opens_billing, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_a_reload_keeps_byte_counters_and_known_push_targets,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_reconfigure_sets_limits_and_refuses_to_drop_held_slots,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_restart_keeps_an_active_session, setup, teardown),
                cmocka_unit_test_setup_teardown(test_corrupt_state_blocks_every_slot_until_unblocked, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(
                        test_reserve_takes_project_and_app_into_replies_events_and_views, setup, teardown),
                cmocka_unit_test_setup_teardown(test_a_bound_slot_refuses_sessions_of_other_projects, setup,
                                                teardown),
        };
        sigset_t chld;

        /* sd_event_add_child (the exec hooks) needs SIGCHLD blocked, as the agent does at start. */
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        sigprocmask(SIG_BLOCK, &chld, NULL);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
