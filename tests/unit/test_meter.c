/* test_meter.c: metering records from real slot transitions on a real sd-event loop and a scratch
 * state dir, read back from the spool: types and members, the hash chain across a restart, billing
 * windows and minutes, fail closed under a real file size limit and after a start on a full disk,
 * no key, meter_stop, and the bytes of open minutes across a kill. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cleanup.h"
#include "clock.h"
#include "clocksync.h"
#include "config.h"
#include "crypto.h"
#include "fileio.h"
#include "meter.h"
#include "mqtt_fx.h"
#include "slot.h"
#include "slots.h"
#include "spool.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timex.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SEC UINT64_C(1000000)
#define MSEC UINT64_C(1000)
/* The pinned wall clock at the start of each test: 2023-11-14T22:14:00Z, on a minute boundary, so
 * the first minute (and a 1 s window) is whole. */
#define T0 (UINT64_C(1700000040) * SEC)
#define SLOTS3 \
        "{\"id\":\"s0\",\"scale\":\"S\"},{\"id\":\"s1\",\"scale\":\"S\"},{\"id\":\"s2\",\"scale\":\"M\"}"
#define ZEROS64 "0000000000000000000000000000000000000000000000000000000000000000"
#define MAX_ALARMS 16
#define MAX_RECS 64
#define STR_(x) #x
#define STR(x) STR_(x)

/* A scratch state dir, a key, a pinned clock, real slots, and what the meter spooled. */
struct fx {
        struct tu_scratch *dir;
        char state_dir[96];
        int state_fd;
        bool manual_sync; /* fed() leaves meter_sync to the test */
        char key_path[96];
        char kid[PLAT_KID_LEN + 1];
        struct cfg *cfgs[4]; /* the meter borrows them only for meter_new; freed at teardown */
        size_t n_cfgs;
        sd_event *e;
        struct slots *slots;
        struct slot_table table; /* the slot objects, synced to each config a meter is made on */
        struct meter *m;
        uint64_t mono, real;
        size_t n_alarms;
        char alarm_what[MAX_ALARMS][32];
        char alarm_msg[MAX_ALARMS][METER_MSG_MAX];
        size_t n_cleared;
        char cleared_what[32];
        bool state_writes;       /* the meter has a write_journal hook (the agent's) */
        size_t n_write_requests; /* its calls */
        size_t n_recs;
        char *raw[MAX_RECS]; /* each record's payload bytes as spooled, NUL added */
        cJSON *rec[MAX_RECS];
};

/* No cmocka here: the hook also runs in forked children. */
static void on_alarm(const char *what, const char *msg, void *userdata) {
        struct fx *f = userdata;

        if (f->n_alarms < MAX_ALARMS) {
                snprintf(f->alarm_what[f->n_alarms], sizeof(f->alarm_what[0]), "%s", what);
                snprintf(f->alarm_msg[f->n_alarms], sizeof(f->alarm_msg[0]), "%s", msg);
        }
        f->n_alarms++;
}

/* The kernel's clock sync state as the fake adjtimex reports it: synchronised unless a test says. */
static struct {
        bool unsynced;
        long est;
} fake_clock;

static int fake_adjtimex(struct timex *t) {
        t->status = fake_clock.unsynced ? STA_UNSYNC : 0;
        t->esterror = fake_clock.est;
        t->maxerror = 2 * fake_clock.est;
        return fake_clock.unsynced ? TIME_ERROR : TIME_OK;
}

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

/* Moves the pinned clocks to T0 + usec. */
static void at(struct fx *f, uint64_t usec) {
        assert_true(T0 + usec >= f->real);
        advance(f, T0 + usec - f->real);
}

/* A config on the fixture's state dir with these slots, the key (metering.key_file) when `key`, and
 * these further "metering" members; kept until teardown. */
static struct cfg *make_cfg_slots(struct fx *f, bool key, const char *metering, const char *slots) {
        struct cfg_problems p = { 0 };
        struct cfg *c = NULL;
        char buf[2048], members[512];
        int n;

        snprintf(members, sizeof(members), "%s%s%s%s%s", key ? "\"key_file\":\"" : "",
                 key ? f->key_path : "", key ? "\"" : "", key && metering[0] ? "," : "", metering);
        n = snprintf(buf, sizeof(buf),
                     "{\"node\":{\"id\":\"render-01\",\"region\":\"eu-west\"},"
                     "\"mqtt\":{\"host\":\"localhost\",\"tls\":false},\"state_dir\":\"%s\","
                     "\"metering\":{%s},\"slots\":[%s]}",
                     f->state_dir, members, slots);
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

static struct cfg *make_cfg(struct fx *f, bool key, const char *metering) {
        return make_cfg_slots(f, key, metering, SLOTS3);
}

static void on_write_journal(void *userdata) {
        ((struct fx *)userdata)->n_write_requests++;
}

/* meter_new on f->e with no link; `slots` as the agent passes them after a restart, or NULL. Returns
 * meter_new's result (no cmocka: forked children use it). */
static int open_meter_with(struct fx *f, const struct cfg *c, const struct slots *slots) {
        const struct meter_hooks h = { .alarm = on_alarm,
                                       .write_journal = f->state_writes ? on_write_journal : NULL,
                                       .userdata = f };
        char msg[256] = "";
        int r = slot_table_sync(&f->table, c);

        if (r >= 0)
                r = meter_new(f->e, c, &f->table, slots, &h, &f->m, msg, sizeof(msg));
        if (r < 0)
                fprintf(stderr, "meter_new: %s\n", msg);
        else
                meter_set_link(f->m, NULL, NULL);
        return r;
}

static void open_meter(struct fx *f, const struct cfg *c) {
        assert_int_equal(open_meter_with(f, c, NULL), 0);
}

static void close_meter(struct fx *f) {
        meter_free(f->m);
        f->m = NULL;
}

static int setup(void **state) {
        struct fx *f = calloc(1, sizeof(*f));
        const char *ids[] = { "s0", "s1", "s2" };
        struct slots_config sc = { .n_slots = 3, .slot_ids = ids, .state_dir_fd = -1 };
        struct plat_signer *signer = NULL;
        char msg[256] = "";
        void *d = NULL;

        assert_non_null(f);
        tu_scratch_setup(&d);
        f->dir = d;
        snprintf(f->state_dir, sizeof(f->state_dir), "%s/state", f->dir->path);
        assert_int_equal(mkdirat(f->dir->fd, "state", 0700), 0);
        f->state_fd = plat_open_dir(f->state_dir);
        assert_true(f->state_fd >= 0);
        /* A real P-256 key and no certificate: the kid is the key's own thumbprint. */
        assert_int_equal(plat_signer_generate(&signer, msg, sizeof(msg)), 0);
        assert_int_equal(plat_signer_write_key_at(signer, f->dir->fd, "device.key", false, msg, sizeof(msg)),
                         0);
        snprintf(f->kid, sizeof(f->kid), "%s", plat_signer_kid(signer));
        plat_signer_free(signer);
        snprintf(f->key_path, sizeof(f->key_path), "%s/device.key", f->dir->path);
        f->mono = 1000 * SEC;
        f->real = T0;
        plat_clock_set_fake(f->mono, f->real);
        fake_clock.unsynced = false;
        fake_clock.est = 100;
        clocksync_set_adjtimex(fake_adjtimex);
        assert_true(sd_event_new(&f->e) >= 0);
        slots_limits_default(&sc.limits);
        assert_int_equal(slots_new(&sc, &f->slots, msg, sizeof(msg)), 0);
        *state = f;
        return 0;
}

static void drop_recs(struct fx *f) {
        for (size_t i = 0; i < f->n_recs; i++) {
                free(f->raw[i]);
                cJSON_Delete(f->rec[i]);
        }
        f->n_recs = 0;
}

static int teardown(void **state) {
        struct fx *f = *state;
        void *d = f->dir;

        meter_free(f->m);
        slot_table_done(&f->table);
        slots_free(f->slots);
        sd_event_unref(f->e);
        for (size_t i = 0; i < f->n_cfgs; i++)
                cfg_free(f->cfgs[i]);
        drop_recs(f);
        close(f->state_fd);
        free(f);
        plat_clock_set_fake(0, 0);
        clocksync_set_adjtimex(NULL);
        return tu_scratch_teardown(&d);
}

/* ---- driving the meter with real slot transitions ---- */

static struct slots_clock clk(const struct fx *f) {
        return (struct slots_clock){ .mono_usec = f->mono, .real_usec = f->real };
}

static struct slots_ref by_user(const char *user) {
        return (struct slots_ref){ .user = user };
}

/* What the session service's transition hook does after a successful op. */
/* What the session service does with each op (a batch of one): the transition's records are
 * made, written with the state (slots persists it in the call), then meter_sync spools them. */
static enum slots_code fed(struct fx *f, enum slots_code c, const struct slots_event *ev) {
        if (c == SLOTS_OK) {
                meter_transition(f->m, ev);
                if (!f->manual_sync)
                        (void)meter_sync_wait(f->m);
        }
        return c;
}

static enum slots_code reserve(struct fx *f, const char *user, const char *slot, const char *ip) {
        struct slots_event ev;

        return fed(f, slots_reserve(f->slots, user, slot, ip, clk(f), &ev, NULL, 0), &ev);
}

/* reserve + start: a session_start. */
static enum slots_code play(struct fx *f, const char *user, const char *slot, const char *ip) {
        struct slots_event ev;
        enum slots_code c = reserve(f, user, slot, ip);

        return c != SLOTS_OK ? c : fed(f, slots_start(f->slots, by_user(user), clk(f), &ev, NULL, 0), &ev);
}

static enum slots_code lose(struct fx *f, const char *user) {
        struct slots_event ev;

        return fed(f, slots_client_lost(f->slots, by_user(user), clk(f), &ev, NULL, 0), &ev);
}

/* slots_end then slots_release, as the service does once the end is enforced. */
static enum slots_code end(struct fx *f, const char *user, const char *reason) {
        struct slots_event ev;
        enum slots_code c = fed(f, slots_end(f->slots, by_user(user), reason, clk(f), &ev, NULL, 0), &ev);

        return c != SLOTS_OK ? c : fed(f, slots_release(f->slots, by_user(user), clk(f), &ev, NULL, 0), &ev);
}

static enum slots_code join(struct fx *f, const char *user, const char *viewer, const char *role) {
        struct slots_event ev;

        return fed(f, slots_viewer_join(f->slots, by_user(user), viewer, role, clk(f), &ev, NULL, 0), &ev);
}

static enum slots_code leave(struct fx *f, const char *user, const char *viewer) {
        struct slots_event ev;

        return fed(f, slots_viewer_leave(f->slots, by_user(user), viewer, clk(f), &ev, NULL, 0), &ev);
}

static void expire(struct fx *f) {
        struct slots_event evs[SLOTS_MAX];
        int n = slots_expire(f->slots, clk(f), evs, SLOTS_MAX);

        assert_true(n >= 0);
        for (int i = 0; i < n; i++)
                meter_transition(f->m, &evs[i]);
}

/* The session id on slot i now (SLOTS_SESSION_LEN + 1 bytes at ret). */
static void session_of(struct fx *f, size_t i, char *ret) {
        struct slots_info info;

        slots_get(f->slots, i, &info);
        snprintf(ret, SLOTS_SESSION_LEN + 1, "%s", info.session);
        assert_int_equal(strlen(ret), SLOTS_SESSION_LEN);
}

/* A member of meter_status_json (NaN when missing). No cmocka: forked children use it. */
static double status_num(const struct meter *m, const char *key) {
        cJSON *o = meter_status_json(m);
        double v = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, key));

        cJSON_Delete(o);
        return v;
}

/* Where the spool's next append goes: the bytes of its records (segments are longer: preallocated).
 * No cmocka: forked children use it. */
static double spool_used(const struct meter *m) {
        cJSON *o = meter_status_json(m);
        double v = cJSON_GetNumberValue(
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "spool"), "used"));

        cJSON_Delete(o);
        return v;
}

/* Runs the loop (real time: the meter's timer runs every second) until status member `key` reaches
 * `want`, for up to 5 s. No cmocka: forked children use it. */
static bool run_until(struct fx *f, const char *key, double want) {
        uint64_t deadline = real_mono() + 5 * SEC;

        while (status_num(f->m, key) != want) {
                if (real_mono() >= deadline || sd_event_run(f->e, 100 * MSEC) < 0)
                        return false;
        }
        return true;
}

/* Real time in which the meter's timer (every 1 s, 100 ms accuracy) runs at least once, with 400 ms
 * to spare for a late wake-up (a loaded machine, qemu-user). */
#define A_TICK (1500 * MSEC)

/* Runs the loop for usec of real time: long enough for the meter's timer to have run. */
static void run_for(struct fx *f, uint64_t usec) {
        uint64_t deadline = real_mono() + usec;

        while (real_mono() < deadline)
                assert_true(sd_event_run(f->e, 100 * MSEC) >= 0);
}

/* ---- reading back what was spooled ---- */

/* Every record in the spool (the meter must be closed: the spool is locked while open). */
static void read_spool(struct fx *f) {
        struct spool_recovery rec;
        struct spool *s = NULL;
        char msg[SPOOL_MSG_MAX] = "";
        void *buf;
        size_t len;
        uint64_t id;

        assert_null(f->m);
        drop_recs(f);
        if (spool_open(f->state_fd, f->state_dir, NULL, &s, &rec, msg, sizeof(msg)) < 0)
                print_message("spool_open: %s\n", msg);
        assert_non_null(s);
        assert_false(spool_recovery_alarm(&rec));
        while (spool_read_next(s, &buf, &len, &id) == 0) {
                assert_true(f->n_recs < MAX_RECS);
                f->raw[f->n_recs] = calloc(1, len + 1);
                assert_non_null(f->raw[f->n_recs]);
                memcpy(f->raw[f->n_recs], buf, len);
                free(buf);
                f->rec[f->n_recs] = cJSON_Parse(f->raw[f->n_recs]);
                assert_non_null(f->rec[f->n_recs]);
                f->n_recs++;
        }
        spool_close(s);
}

static const char *str(const cJSON *o, const char *key) {
        const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));

        if (!v)
                print_message("no string member %s\n", key);
        assert_non_null(v);
        return v;
}

static double num(const cJSON *o, const char *key) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        if (!cJSON_IsNumber(v))
                print_message("no number member %s\n", key);
        assert_true(cJSON_IsNumber(v));
        return v->valuedouble;
}

static const cJSON *obj(const cJSON *o, const char *key) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        assert_true(cJSON_IsObject(v));
        return v;
}

static bool flag(const cJSON *o, const char *key) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        assert_true(cJSON_IsBool(v));
        return cJSON_IsTrue(v);
}

static bool has(const cJSON *o, const char *key) {
        return cJSON_GetObjectItemCaseSensitive(o, key) != NULL;
}

/* The types of the records read, joined with spaces (static storage). */
static const char *types(const struct fx *f) {
        static char buf[1024];
        size_t len = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < f->n_recs && len < sizeof(buf); i++)
                len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", i ? " " : "",
                                        str(f->rec[i], "type"));
        return buf;
}

static void expect_types(const struct fx *f, const char *want) {
        if (strcmp(types(f), want))
                print_message("spooled: %s\nwanted:  %s\n", types(f), want);
        assert_string_equal(types(f), want);
}

/* seq 1, 2, 3, ... and each prev the SHA-256 of the payload before (zeros first). */
static void expect_chain(const struct fx *f) {
        char want[PLAT_SHA256_HEX_LEN + 1] = ZEROS64;
        uint8_t digest[PLAT_SHA256_LEN];

        for (size_t i = 0; i < f->n_recs; i++) {
                assert_int_equal(num(f->rec[i], "seq"), i + 1);
                assert_string_equal(str(f->rec[i], "prev"), want);
                plat_sha256(f->raw[i], strlen(f->raw[i]), digest);
                plat_sha256_hex(digest, want);
        }
}

/* The members every record has, and those of a session's records. */
static void expect_session(const cJSON *r, const char *slot, const char *scale, const char *user,
                           const char *session) {
        assert_int_equal(num(r, "v"), 1);
        assert_string_equal(str(r, "node"), "render-01");
        assert_string_equal(str(r, "region"), "eu-west");
        assert_string_equal(str(r, "slot"), slot);
        assert_string_equal(str(r, "scale"), scale);
        assert_string_equal(str(r, "user"), user);
        assert_string_equal(str(r, "session"), session);
}

static void expect_window(const cJSON *r, const char *start, double covered_s, double peak, double slot_s,
                          bool partial) {
        assert_string_equal(str(r, "type"), "concurrency_window");
        assert_string_equal(str(r, "window_start"), start);
        assert_int_equal(num(r, "window_s"), 1);
        assert_int_equal(num(r, "windows"), 1);
        assert_true(num(r, "covered_s") == covered_s);
        assert_true(num(r, "peak") == peak);
        assert_true(num(r, "slot_seconds") == slot_s);
        assert_false(flag(r, "clock_step"));
        assert_true(flag(r, "partial") == partial);
}

static void expect_flow(const cJSON *r, const char *flow, double bytes, double peak_mbps) {
        const cJSON *o = obj(r, flow);

        assert_true(num(o, "bytes") == bytes);
        assert_true(num(o, "peak_mbps") == peak_mbps);
        assert_int_equal(num(o, "late_bytes"), 0);
}

/* ---- forked children ---- */

/* A child's scenario: NULL when every check held, else what failed. cmocka must not run in a
 * child (a failed assertion would jump into the child's copy of the runner and go on with the
 * other tests there), so children check with CHILD_CHECK and report through a pipe. */
typedef const char *(*child_fn)(struct fx *f);

#define CHILD_CHECK(cond)                                        \
        do {                                                     \
                if (!(cond))                                     \
                        return "line " STR(__LINE__) ": " #cond; \
        } while (0)

/* A child that cannot set up its scenario here returns CHILD_SKIP_PREFIX and why: the test is
 * skipped, not failed. */
#define CHILD_SKIP_PREFIX "skip: "
#define CHILD_SKIP 77

/* Runs fn in a child with its own loop (an sd_event cannot cross fork) and fails the test with
 * the child's message (or skips it, CHILD_SKIP). The child ends with _exit: no meter_free unless fn
 * calls it. */
static void run_child(struct fx *f, child_fn fn) {
        char msg[512] = "";
        ssize_t n, got = 0;
        int p[2], status;
        pid_t pid;

        assert_null(f->m);
        assert_int_equal(pipe(p), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                const char *why = "sd_event_new failed";

                close(p[0]);
                if (sd_event_new(&f->e) >= 0)
                        why = fn(f);
                if (why)
                        (void)!write(p[1], why, strlen(why));
                _exit(!why                                                         ? 0
                      : strncmp(why, CHILD_SKIP_PREFIX, strlen(CHILD_SKIP_PREFIX)) ? 1
                                                                                   : CHILD_SKIP);
        }
        close(p[1]);
        while ((n = read(p[0], msg + got, sizeof(msg) - 1 - (size_t)got)) > 0)
                got += n;
        close(p[0]);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (WIFEXITED(status) && WEXITSTATUS(status) == CHILD_SKIP)
                tu_skip("%s", msg + strlen(CHILD_SKIP_PREFIX));
        if (msg[0])
                print_message("child: %s\n", msg);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- tests ---- */

static void test_transitions_make_their_records_in_order(void **state) {
        struct fx *f = *state;
        char s0[SLOTS_SESSION_LEN + 1], s1[SLOTS_SESSION_LEN + 1];
        const cJSON *r;

        open_meter(f, make_cfg(f, true, ""));
        at(f, 123456);
        assert_int_equal(play(f, "alice", "s0", "192.0.2.7"), SLOTS_OK);
        session_of(f, 0, s0);
        at(f, 1 * SEC);
        assert_int_equal(join(f, "alice", "bob", "player2"), SLOTS_OK);
        assert_int_equal(join(f, "alice", "carol", "spectator"), SLOTS_OK);
        assert_int_equal(join(f, "alice", "bob", "spectator"), SLOTS_OK); /* a new role: no record */
        assert_int_equal(leave(f, "alice", "carol"), SLOTS_OK);
        meter_push(f->m, 0, s0, "rtmp-1", true);
        at(f, 2 * SEC);
        assert_int_equal(lose(f, "alice"), SLOTS_OK);
        at(f, 3 * SEC);
        assert_int_equal(reserve(f, "alice", "s0", "192.0.2.8"), SLOTS_OK); /* RESUME */
        at(f, 4 * SEC);
        assert_int_equal(lose(f, "alice"), SLOTS_OK);
        meter_push(f->m, 0, s0, "rtmp-1", false);
        at(f, 6500 * MSEC);
        assert_int_equal(end(f, "alice", "user_end"), SLOTS_OK); /* ENDING in grace, then FREED */
        assert_int_equal(reserve(f, "dave", "s1", NULL), SLOTS_OK);
        session_of(f, 1, s1);
        at(f, 40 * SEC); /* past the 30 s lock */
        expire(f);
        close_meter(f);

        read_spool(f);
        expect_types(f,
                     "session_start viewer_join viewer_join viewer_leave push_start grace_start grace_end "
                     "grace_start push_stop grace_end viewer_leave session_end reserve_expired "
                     "concurrency_window");
        r = f->rec[0];
        expect_session(r, "s0", "S", "alice", s0);
        assert_string_equal(str(r, "client_ip"), "192.0.2.7");
        assert_string_equal(str(r, "started"), "2023-11-14T22:14:00.123Z");
        assert_string_equal(str(r, "ts"), "2023-11-14T22:14:00.123Z");
        r = f->rec[1];
        expect_session(r, "s0", "S", "alice", s0);
        assert_string_equal(str(r, "viewer"), "bob");
        assert_string_equal(str(r, "role"), "player2");
        assert_false(has(r, "reason"));
        assert_string_equal(str(r, "ts"), "2023-11-14T22:14:01.000Z");
        assert_string_equal(str(f->rec[2], "viewer"), "carol");
        r = f->rec[3];
        expect_session(r, "s0", "S", "alice", s0);
        assert_string_equal(str(r, "viewer"), "carol");
        assert_string_equal(str(r, "reason"), "left");
        r = f->rec[4];
        assert_string_equal(str(r, "slot"), "s0");
        assert_string_equal(str(r, "session"), s0);
        assert_string_equal(str(r, "target"), "rtmp-1");
        r = f->rec[5];
        expect_session(r, "s0", "S", "alice", s0);
        assert_string_equal(str(r, "reason"), "client_lost");
        r = f->rec[6];
        expect_session(r, "s0", "S", "alice", s0);
        assert_string_equal(str(r, "reason"), "resumed");
        assert_string_equal(str(r, "ts"), "2023-11-14T22:14:03.000Z");
        assert_string_equal(str(f->rec[8], "target"), "rtmp-1");
        r = f->rec[9]; /* the end in grace closes the grace first, with the end's reason */
        expect_session(r, "s0", "S", "alice", s0);
        assert_string_equal(str(r, "reason"), "user_end");
        r = f->rec[10]; /* bob was still watching */
        expect_session(r, "s0", "S", "alice", s0);
        assert_string_equal(str(r, "viewer"), "bob");
        assert_string_equal(str(r, "reason"), "session_end");
        r = f->rec[11];
        expect_session(r, "s0", "S", "alice", s0);
        assert_string_equal(str(r, "started"), "2023-11-14T22:14:00.123Z");
        assert_string_equal(str(r, "ended"), "2023-11-14T22:14:06.500Z");
        assert_true(num(r, "duration_s") == 6.376); /* 6.376544 s, in whole ms */
        assert_string_equal(str(r, "reason"), "user_end");
        r = f->rec[12];
        expect_session(r, "s1", "S", "dave", s1);
        assert_string_equal(str(r, "ts"), "2023-11-14T22:14:40.000Z");
        expect_chain(f);
}

/* reserve for a project and app, then start: a session_start. */
static enum slots_code play_for(struct fx *f, const char *user, const char *project, const char *app,
                                const char *slot) {
        struct slots_reserve_req req = { .user = user, .project = project, .app = app, .slot_id = slot };
        struct slots_event ev;
        enum slots_code c = fed(f, slots_reserve_for(f->slots, &req, clk(f), &ev, NULL, 0), &ev);

        return c != SLOTS_OK ? c : fed(f, slots_start(f->slots, by_user(user), clk(f), &ev, NULL, 0), &ev);
}

static void test_session_push_and_window_records_carry_the_project(void **state) {
        struct fx *f = *state;
        char s0[SLOTS_SESSION_LEN + 1];
        const cJSON *by_project;

        open_meter(f, make_cfg(f, true, ""));
        assert_int_equal(play_for(f, "alice", "acme", "racer", "s0"), SLOTS_OK);
        session_of(f, 0, s0);
        assert_int_equal(play(f, "bob", "s1", NULL), SLOTS_OK);
        meter_push(f->m, 0, s0, "rtmp-1", true);
        at(f, 5 * SEC);
        assert_int_equal(lose(f, "alice"), SLOTS_OK);
        assert_int_equal(end(f, "alice", "user_end"), SLOTS_OK);
        close_meter(f);

        read_spool(f);
        expect_types(f, "session_start session_start push_start grace_start grace_end session_end "
                        "concurrency_window");
        for (size_t i = 0; i < 6; i++) {
                bool alices = i != 1;

                assert_int_equal(has(f->rec[i], "project"), alices);
                assert_int_equal(has(f->rec[i], "app"), alices);
                if (alices) {
                        assert_string_equal(str(f->rec[i], "project"), "acme");
                        assert_string_equal(str(f->rec[i], "app"), "racer");
                }
        }
        /* bob had no project: in the totals only. */
        by_project = obj(f->rec[6], "by_project");
        assert_int_equal(cJSON_GetArraySize(by_project), 1);
        assert_true(num(obj(obj(by_project, "acme"), "S"), "peak") == 1);
        assert_true(num(obj(obj(by_project, "acme"), "S"), "slot_seconds") == 5);
        assert_true(num(f->rec[6], "peak") == 2);
        expect_chain(f);
}

static void test_session_start_leaves_out_an_unknown_client_ip(void **state) {
        struct fx *f = *state;

        open_meter(f, make_cfg(f, true, ""));
        assert_int_equal(play(f, "erin", "s2", NULL), SLOTS_OK);
        close_meter(f);

        read_spool(f);
        expect_types(f, "session_start concurrency_window");
        assert_string_equal(str(f->rec[0], "scale"), "M");
        assert_string_equal(str(f->rec[0], "started"), "2023-11-14T22:14:00.000Z");
        assert_false(has(f->rec[0], "client_ip"));
}

/* A node without slots has no session service to make state_dir: the meter makes it for its spool. */
static void test_a_missing_state_dir_is_made_for_the_spool(void **state) {
        struct fx *f = *state;
        const struct meter_hooks h = { .alarm = on_alarm, .userdata = f };
        struct meter *m = NULL;
        char msg[256] = "";
        struct stat st;

        snprintf(f->state_dir, sizeof(f->state_dir), "%s/fresh", f->dir->path);
        open_meter(f, make_cfg(f, true, ""));
        assert_int_equal(fstatat(f->dir->fd, "fresh", &st, 0), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0700);
        assert_int_equal(fstatat(f->dir->fd, "fresh/spool", &st, 0), 0);
        assert_true(S_ISDIR(st.st_mode));
        /* Its parent is not made: the error names the directory. */
        snprintf(f->state_dir, sizeof(f->state_dir), "%s/no/such", f->dir->path);
        assert_int_equal(slot_table_sync(&f->table, make_cfg(f, true, "")), 0);
        assert_int_equal(meter_new(f->e, f->cfgs[f->n_cfgs - 1], &f->table, NULL, &h, &m, msg, sizeof(msg)),
                         -ENOENT);
        assert_null(m);
        assert_non_null(strstr(msg, "cannot make the state dir "));
        assert_non_null(strstr(msg, "/no/such: No such file or directory"));
}

static void test_chain_and_seq_continue_after_a_restart(void **state) {
        struct fx *f = *state;
        struct cfg *c = make_cfg(f, true, "");
        char last[PLAT_SHA256_HEX_LEN + 1];
        uint8_t digest[PLAT_SHA256_LEN];

        open_meter(f, c);
        assert_int_equal(play(f, "alice", "s0", NULL), SLOTS_OK);
        at(f, 5 * SEC);
        assert_int_equal(end(f, "alice", "user_end"), SLOTS_OK);
        close_meter(f);
        read_spool(f);
        expect_types(f, "session_start session_end concurrency_window");
        expect_chain(f);
        plat_sha256(f->raw[2], strlen(f->raw[2]), digest);
        plat_sha256_hex(digest, last);

        at(f, 10 * SEC);
        open_meter(f, c);
        assert_true(status_num(f->m, "next_seq") == 4);
        assert_int_equal(play(f, "bob", "s1", NULL), SLOTS_OK);
        close_meter(f);
        read_spool(f);
        expect_types(f, "session_start session_end concurrency_window session_start concurrency_window");
        assert_int_equal(num(f->rec[3], "seq"), 4);
        assert_string_equal(str(f->rec[3], "prev"), last);
        expect_chain(f);
}

static void test_windows_carry_peak_and_slot_seconds_from_occupancy(void **state) {
        struct fx *f = *state;
        double made;

        open_meter(f, make_cfg(f, true, "\"window_s\":1"));
        at(f, 200 * MSEC);
        assert_int_equal(play(f, "alice", "s0", NULL), SLOTS_OK);
        at(f, 500 * MSEC);
        assert_int_equal(play(f, "bob", "s1", NULL), SLOTS_OK);
        at(f, 1500 * MSEC); /* closes [0, 1 s) before the end is recorded */
        assert_int_equal(end(f, "alice", "user_end"), SLOTS_OK);
        at(f, 2200 * MSEC);
        assert_int_equal(end(f, "bob", "user_end"), SLOTS_OK);
        /* Nothing happens but time: the meter's timer closes [2 s, 3 s). */
        at(f, 3100 * MSEC);
        made = status_num(f->m, "records_made");
        assert_true(made == 6);
        assert_true(run_until(f, "records_made", made + 1));
        close_meter(f);

        read_spool(f);
        expect_types(f, "session_start session_start concurrency_window session_end concurrency_window "
                        "session_end concurrency_window concurrency_window");
        expect_window(f->rec[2], "2023-11-14T22:14:00Z", 1, 2, 1.3, false);
        assert_true(num(obj(obj(f->rec[2], "by_scale"), "S"), "peak") == 2);
        assert_true(num(obj(obj(f->rec[2], "by_scale"), "S"), "slot_seconds") == 1.3);
        assert_true(num(obj(obj(f->rec[2], "by_scale"), "M"), "peak") == 0);
        expect_window(f->rec[4], "2023-11-14T22:14:01Z", 1, 2, 1.5, false);
        expect_window(f->rec[6], "2023-11-14T22:14:02Z", 1, 1, 0.2, false);
        expect_window(f->rec[7], "2023-11-14T22:14:03Z", 0.1, 0, 0, true);
        expect_chain(f);
}

static void test_bytes_become_minutes_once_late_s_has_passed(void **state) {
        struct fx *f = *state;

        open_meter(f, make_cfg(f, true, "\"late_s\":2"));
        assert_int_equal(play(f, "alice", "s0", NULL), SLOTS_OK);
        at(f, 10 * SEC);
        meter_bytes(f->m, 0, SESSIONS_FLOW_PLAYER, 1000, T0 + 9 * SEC);
        meter_bytes(f->m, 0, SESSIONS_FLOW_VIEWERS, 300, T0 + 9 * SEC);
        at(f, 30 * SEC);
        meter_bytes(f->m, 0, SESSIONS_FLOW_PLAYER, 2000, T0 + 28 * SEC);
        meter_bytes(f->m, 1, SESSIONS_FLOW_PUSH, 4444, T0 + 29 * SEC);
        at(f, 61 * SEC);
        meter_bytes(f->m, 0, SESSIONS_FLOW_PLAYER, 600, T0 + 60 * SEC);
        /* The minute waits late_s for late reports: a tick inside them closes nothing. */
        at(f, 61900 * MSEC);
        run_for(f, A_TICK);
        assert_true(status_num(f->m, "records_made") == 1);
        at(f, 62 * SEC);
        assert_true(run_until(f, "records_made", 3));
        close_meter(f);

        read_spool(f);
        expect_types(f,
                     "session_start bandwidth_minute bandwidth_minute concurrency_window bandwidth_minute");
        assert_string_equal(str(f->rec[1], "minute"), "2023-11-14T22:14:00Z");
        assert_string_equal(str(f->rec[1], "slot"), "s0");
        assert_string_equal(str(f->rec[1], "user"), "alice");
        assert_string_equal(str(f->rec[1], "scale"), "S");
        expect_flow(f->rec[1], "player", 3000, 0.008);
        expect_flow(f->rec[1], "viewers", 300, 0.0024);
        expect_flow(f->rec[1], "push", 0, 0);
        assert_false(flag(f->rec[1], "partial"));
        assert_false(flag(f->rec[1], "clock_step"));
        assert_string_equal(str(f->rec[2], "minute"), "2023-11-14T22:14:00Z");
        assert_string_equal(str(f->rec[2], "slot"), "s1");
        expect_flow(f->rec[2], "player", 0, 0);
        expect_flow(f->rec[2], "push", 4444, 0.035552);
        assert_false(flag(f->rec[2], "partial"));
        /* Bytes on a slot without a session: recorded, without session members. */
        assert_false(has(f->rec[2], "session") || has(f->rec[2], "user"));
        assert_string_equal(str(f->rec[2], "scale"), "S");
        /* The open minute goes out, partial, when the meter closes. */
        assert_string_equal(str(f->rec[4], "minute"), "2023-11-14T22:15:00Z");
        assert_string_equal(str(f->rec[4], "slot"), "s0");
        expect_flow(f->rec[4], "player", 600, 0.0048);
        assert_true(flag(f->rec[4], "partial"));
        expect_chain(f);
}

/* The agent's reload when the slots change: the session service syncs the table to the new config
 * first (s1 dropped, s2 moved to the front), then the old meter stops. Its last minutes still name
 * each slot and session as it knew them, and the dropped slot's part lives until reaped (ASan). */
static void test_a_meter_stopped_after_a_reload_moved_its_slots_names_its_own(void **state) {
        struct fx *f = *state;

        open_meter(f, make_cfg(f, true, ""));
        assert_int_equal(play(f, "alice", "s2", NULL), SLOTS_OK);
        at(f, 10 * SEC);
        meter_bytes(f->m, 2, SESSIONS_FLOW_PLAYER, 1000, T0 + 9 * SEC);
        meter_bytes(f->m, 1, SESSIONS_FLOW_PUSH, 4444, T0 + 9 * SEC);
        assert_int_equal(slot_table_sync(&f->table, make_cfg_slots(f, true, "",
                                                                   "{\"id\":\"s2\",\"scale\":\"M\"},"
                                                                   "{\"id\":\"s0\",\"scale\":\"S\"}")),
                         0);
        assert_int_equal(f->table.n_retired, 1);
        meter_stop(f->m);
        close_meter(f);
        slot_table_reap(&f->table);

        read_spool(f);
        expect_types(f, "session_start concurrency_window bandwidth_minute bandwidth_minute");
        assert_string_equal(str(f->rec[2], "slot"), "s1");
        assert_string_equal(str(f->rec[2], "scale"), "S");
        expect_flow(f->rec[2], "push", 4444, 0.035552);
        assert_false(has(f->rec[2], "session"));
        assert_string_equal(str(f->rec[3], "slot"), "s2");
        assert_string_equal(str(f->rec[3], "scale"), "M");
        assert_string_equal(str(f->rec[3], "user"), "alice");
        expect_flow(f->rec[3], "player", 1000, 0.008);
        assert_true(flag(f->rec[3], "partial"));
        expect_chain(f);
}

/* Under a real file size limit (RLIMIT_FSIZE, SIGXFSZ ignored: the append gets EFBIG), in a child
 * so that the limit binds nothing else. */
static const char *fail_closed_child(struct fx *f) {
        struct rlimit old, lim;
        const char *why;

        signal(SIGXFSZ, SIG_IGN);
        CHILD_CHECK(open_meter_with(f, f->cfgs[0], NULL) == 0);
        CHILD_CHECK(play(f, "alice", "s0", NULL) == SLOTS_OK);
        CHILD_CHECK(meter_sync_wait(f->m) >= 0);
        CHILD_CHECK(f->n_alarms == 0 && !meter_refusal(f->m));
        /* The records end here (the segment's zeros after them do not count): nothing more may be written.
         */
        CHILD_CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
        lim = (struct rlimit){ .rlim_cur = (rlim_t)spool_used(f->m), .rlim_max = old.rlim_max };
        CHILD_CHECK(lim.rlim_cur > SPOOL_HDR_BYTES && setrlimit(RLIMIT_FSIZE, &lim) == 0);

        at(f, 1 * SEC);
        CHILD_CHECK(lose(f, "alice") == SLOTS_OK);
        CHILD_CHECK(f->n_alarms == 1 && !strcmp(f->alarm_what[0], "spool_full"));
        CHILD_CHECK(strstr(f->alarm_msg[0], "1 record(s)") && strstr(f->alarm_msg[0], strerror(EFBIG)));
        why = meter_refusal(f->m);
        CHILD_CHECK(why && strstr(why, strerror(EFBIG)));
        at(f, 2 * SEC);
        CHILD_CHECK(reserve(f, "alice", "s0", NULL) == SLOTS_OK); /* RESUME: grace_end waits behind */
        CHILD_CHECK(join(f, "alice", "bob", "spectator") == SLOTS_OK);
        /* Made, and kept with the session state (slots.state), not in the spool. */
        CHILD_CHECK(status_num(f->m, "owed") == 3);
        CHILD_CHECK(status_num(f->m, "records_made") == 4);
        /* Still refused, for the same reason, and told once, while the timer retries. */
        why = meter_refusal(f->m);
        CHILD_CHECK(why && strstr(why, strerror(EFBIG)));
        for (uint64_t until = real_mono() + 1200 * MSEC; real_mono() < until;)
                CHILD_CHECK(sd_event_run(f->e, 100 * MSEC) >= 0);
        CHILD_CHECK(status_num(f->m, "owed") == 3 && meter_refusal(f->m));
        CHILD_CHECK(f->n_alarms == 1);

        /* Room again: the waiting records go in first, in order, and sessions are admitted. */
        CHILD_CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
        CHILD_CHECK(run_until(f, "owed", 0));
        CHILD_CHECK(status_num(f->m, "records_made") == 4);
        CHILD_CHECK(!meter_refusal(f->m));
        CHILD_CHECK(f->n_alarms == 1);
        at(f, 3 * SEC);
        CHILD_CHECK(end(f, "alice", "user_end") == SLOTS_OK);
        close_meter(f);
        return NULL;
}

static void test_full_spool_fails_closed_and_loses_nothing(void **state) {
        struct fx *f = *state;

        make_cfg(f, true, "");
        run_child(f, fail_closed_child);

        read_spool(f);
        expect_types(f, "session_start grace_start grace_end viewer_join viewer_leave session_end "
                        "concurrency_window");
        assert_string_equal(str(f->rec[1], "reason"), "client_lost");
        assert_string_equal(str(f->rec[2], "reason"), "resumed");
        assert_string_equal(str(f->rec[3], "viewer"), "bob");
        expect_chain(f);
}

/* The agent stopped with its disk (a private tmpfs in this child's mount namespace) all but full
 * and starts again: new sessions are refused from the start, ends are still spooled, and new
 * sessions are admitted once the disk has room. */
/* The worker's fdatasync held (below, at fdatasync). */
static bool hold_syncs;
static int hold_pipe[2];

static const char *full_disk_at_start_child(struct fx *f) {
        static char chunk[16384];
        char filler[160];
        uint64_t deadline;
        off_t size = 0;
        const char *why;
        int fd;

        if (unshare(CLONE_NEWNS) < 0 || mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount("tmpfs", f->state_dir, "tmpfs", 0, "size=1m,mode=0700") < 0)
                return CHILD_SKIP_PREFIX "no private tmpfs here (not root, or a container without mount "
                                         "namespaces)";
        CHILD_CHECK(open_meter_with(f, f->cfgs[0], NULL) == 0);
        CHILD_CHECK(!meter_refusal(f->m));
        CHILD_CHECK(play(f, "alice", "s0", NULL) == SLOTS_OK);
        CHILD_CHECK(meter_sync_wait(f->m) >= 0);
        close_meter(f);

        /* Meanwhile the disk filled up; what is left (64 KiB) is less than new sessions need. */
        snprintf(filler, sizeof(filler), "%s/filler", f->state_dir);
        fd = open(filler, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        CHILD_CHECK(fd >= 0);
        while (write(fd, chunk, sizeof(chunk)) == (ssize_t)sizeof(chunk))
                size += (off_t)sizeof(chunk);
        CHILD_CHECK(size > 64 * 1024 && ftruncate(fd, size - 64 * 1024) == 0 && close(fd) == 0);

        CHILD_CHECK(open_meter_with(f, f->cfgs[0], NULL) == 0);
        why = meter_refusal(f->m);
        CHILD_CHECK(why && strstr(why, strerror(ENOSPC)) && strstr(why, "new sessions need 256 KiB"));
        CHILD_CHECK(f->n_alarms == 1 && !strcmp(f->alarm_what[0], "spool_full"));
        CHILD_CHECK(strstr(f->alarm_msg[0], "at start"));
        /* A held session still ends, on the record; the refusal stays while the disk is full. Its
         * record's sync on the worker is slow (held): the record stays owed meanwhile. */
        CHILD_CHECK(pipe2(hold_pipe, O_CLOEXEC) == 0);
        __atomic_store_n(&hold_syncs, true, __ATOMIC_SEQ_CST);
        f->manual_sync = true;
        CHILD_CHECK(end(f, "alice", "user_end") == SLOTS_OK);
        CHILD_CHECK(meter_sync(f->m) >= 0);
        f->manual_sync = false;
        for (uint64_t until = real_mono() + 1200 * MSEC; real_mono() < until;)
                CHILD_CHECK(sd_event_run(f->e, 100 * MSEC) >= 0);
        CHILD_CHECK(meter_refusal(f->m));
        CHILD_CHECK(status_num(f->m, "owed") > 0);

        /* Room again while that record is still owed: the room is seen (each second), and the sync
         * that takes the record lifts the refusal. Admitted within a second or so, no restart. */
        CHILD_CHECK(unlink(filler) == 0);
        for (uint64_t until = real_mono() + 1500 * MSEC; real_mono() < until;)
                CHILD_CHECK(sd_event_run(f->e, 100 * MSEC) >= 0);
        __atomic_store_n(&hold_syncs, false, __ATOMIC_SEQ_CST);
        CHILD_CHECK(write(hold_pipe[1], "x", 1) == 1);
        deadline = real_mono() + 5 * SEC;
        while (meter_refusal(f->m)) {
                CHILD_CHECK(real_mono() < deadline);
                CHILD_CHECK(sd_event_run(f->e, 100 * MSEC) >= 0);
        }
        CHILD_CHECK(f->n_alarms == 1);
        close_meter(f);
        return NULL;
}

/* The spool's records in id order: their types in *types (space-separated) and whether seq runs
 * 1..n with each prev the SHA-256 of the payload before. NULL when fine, else what is wrong. */
static const char *spool_types(struct fx *f, int dir_fd, char *types, size_t len) {
        char prev[PLAT_SHA256_HEX_LEN + 1], msg[SPOOL_MSG_MAX];
        uint8_t d[PLAT_SHA256_LEN];
        struct spool *s = NULL;
        uint64_t id, want = 1;
        size_t len_rec;
        void *buf;

        memset(prev, '0', PLAT_SHA256_HEX_LEN);
        prev[PLAT_SHA256_HEX_LEN] = '\0';
        types[0] = '\0';
        CHILD_CHECK(spool_open(dir_fd, f->state_dir, NULL, &s, NULL, msg, sizeof(msg)) == 0);
        while (spool_read_next(s, &buf, &len_rec, &id) == 0) {
                cJSON *o = cJSON_ParseWithLength(buf, len_rec);
                bool ok = o && id == want++ && cJSON_GetObjectItem(o, "seq")->valuedouble == (double)id &&
                          !strcmp(cJSON_GetObjectItem(o, "prev")->valuestring, prev);

                if (ok)
                        snprintf(types + strlen(types), len - strlen(types), "%s%s", types[0] ? " " : "",
                                 cJSON_GetObjectItem(o, "type")->valuestring);
                plat_sha256(buf, len_rec, d);
                plat_sha256_hex(d, prev);
                cJSON_Delete(o);
                free(buf);
                if (!ok) {
                        spool_close(s);
                        return "a record out of seq or off the chain";
                }
        }
        spool_close(s);
        return NULL;
}

/* The agent is killed while its disk is full (a private tmpfs): the end of a session, acknowledged
 * meanwhile, is in no spool, but slots.state holds it (written in place, in room allocated when
 * the file was made). Started again with room, the agent appends it first, byte for byte, in the
 * chain: nothing acknowledged is lost. */
static const char *kill_on_a_full_disk_child(struct fx *f) {
        const char *ids[] = { "s0", "s1", "s2" };
        static char chunk[16384];
        char filler[160], types[32768], msg[SLOTS_MSG_MAX], *journal = NULL, *last = types - 1;
        double owed, made;
        unsigned requests;
        const char *why;
        struct slots_config sc = { .n_slots = 3, .slot_ids = ids };
        int fd, dir;

        if (unshare(CLONE_NEWNS) < 0 || mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount("tmpfs", f->state_dir, "tmpfs", 0, "size=1m,mode=0700") < 0)
                return CHILD_SKIP_PREFIX "no private tmpfs here (not root, or a container without mount "
                                         "namespaces)";
        dir = plat_open_dir(f->state_dir);
        CHILD_CHECK(dir >= 0);
        sc.state_dir_fd = dir;
        slots_limits_default(&sc.limits);
        slots_free(f->slots);
        CHILD_CHECK(slots_new(&sc, &f->slots, msg, sizeof(msg)) == 0 &&
                    slots_load(f->slots, clk(f), msg, sizeof(msg)) == 0);
        f->state_writes = true;
        CHILD_CHECK(open_meter_with(f, f->cfgs[0], f->slots) == 0);
        CHILD_CHECK(play(f, "alice", "s0", NULL) == SLOTS_OK);
        CHILD_CHECK(join(f, "alice", "bob", "spectator") == SLOTS_OK);
        CHILD_CHECK(status_num(f->m, "owed") == 0);

        /* The disk fills up to the last byte, and viewers come and go until the spool's last page
         * is full too: from then on records wait. */
        snprintf(filler, sizeof(filler), "%s/filler", f->state_dir);
        fd = open(filler, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        CHILD_CHECK(fd >= 0);
        while (write(fd, chunk, sizeof(chunk)) > 0)
                ;
        CHILD_CHECK(close(fd) == 0);
        for (int k = 0; k < 400 && status_num(f->m, "owed") == 0; k++) {
                char v[16];

                snprintf(v, sizeof(v), "v%d", k);
                CHILD_CHECK(join(f, "alice", v, "spectator") == SLOTS_OK &&
                            leave(f, "alice", v) == SLOTS_OK);
        }
        owed = status_num(f->m, "owed");
        CHILD_CHECK(owed > 0);

        /* Alice's end, as the session service does it: one batch, its records written with the
         * state, the reply, then the spool, which refuses them. */
        at(f, 1 * SEC);
        f->manual_sync = true;
        slots_batch_begin(f->slots);
        CHILD_CHECK(end(f, "alice", "user_end") == SLOTS_OK);
        CHILD_CHECK(meter_journal(f->m, &journal) == 0 && journal);
        slots_set_journal(f->slots, journal);
        CHILD_CHECK(slots_batch_commit(f->slots, msg, sizeof(msg)) == 1);
        (void)meter_sync_wait(f->m);
        CHILD_CHECK(status_num(f->m, "owed") == owed + 2); /* viewer_leave (bob), session_end */
        made = status_num(f->m, "records_made");
        why = meter_refusal(f->m);
        CHILD_CHECK(why && strstr(why, strerror(ENOSPC)));
        CHILD_CHECK(f->n_alarms == 1 && !strcmp(f->alarm_what[0], "spool_full"));
        /* Every owed record is in slots.state now: the spool's retries (each second) ask for no
         * further state write, or slots.state would be written in a loop while the disk is full. */
        requests = f->n_write_requests;
        for (uint64_t until = real_mono() + 1200 * MSEC; real_mono() < until;)
                CHILD_CHECK(sd_event_run(f->e, 100 * MSEC) >= 0);
        CHILD_CHECK(status_num(f->m, "owed") == owed + 2 && f->n_write_requests == requests);
        /* Killed: nothing more reaches the disk (the meter's last flush fails for want of room). */
        close_meter(f);
        slots_free(f->slots);
        f->slots = NULL;

        /* Started again, with room: slots.state's journal goes into the spool first. */
        CHILD_CHECK(unlink(filler) == 0);
        CHILD_CHECK(slots_new(&sc, &f->slots, msg, sizeof(msg)) == 0 &&
                    slots_load(f->slots, clk(f), msg, sizeof(msg)) == 0);
        CHILD_CHECK(slots_journal(f->slots));
        f->n_alarms = 0;
        CHILD_CHECK(open_meter_with(f, f->cfgs[0], f->slots) == 0);
        CHILD_CHECK(status_num(f->m, "owed") == 0 && !meter_refusal(f->m) && f->n_alarms == 0);
        close_meter(f);
        why = spool_types(f, dir, types, sizeof(types));
        if (why)
                return why;
        /* Every record made before the kill, in order, the last two alice's end; after them only the
         * windows the restarted meter closed. */
        CHILD_CHECK(!strncmp(types, "session_start viewer_join", 25));
        for (double k = 0; k < made; k++)
                last = strchr(last + 1, ' ') ? strchr(last + 1, ' ') : last + strlen(last);
        CHILD_CHECK((size_t)(last - types) >= strlen(" viewer_leave session_end") &&
                    !strncmp(last - strlen(" viewer_leave session_end"), " viewer_leave session_end", 25));
        close(dir);
        return NULL;
}

static void test_a_kill_while_the_disk_is_full_loses_no_acknowledged_record(void **state) {
        struct fx *f = *state;

        make_cfg(f, true, "");
        run_child(f, kill_on_a_full_disk_child);
}

static void test_a_start_on_a_full_disk_refuses_new_sessions_until_there_is_room(void **state) {
        struct fx *f = *state;

        make_cfg(f, true, "");
        run_child(f, full_disk_at_start_child);
}

/* A disk whose flush fails, here: fdatasync() of this test binary (the agent library is linked in,
 * so its calls come here) fails with EIO while fail_syncs > 0, like a device error would. */
static int fail_syncs;
/* While hold_syncs, each fdatasync waits for a byte on hold_pipe[0] first: a slow disk, under the
 * meter's worker thread (the loop would hang if it ever waited for one itself). */
static bool hold_syncs;
static int hold_pipe[2] = { -1, -1 };

int fdatasync(int fd) {
        char c;

        /* Only the meter's worker waits: the loop's own syncs (slots.state) never do. */
        if (__atomic_load_n(&hold_syncs, __ATOMIC_SEQ_CST) && syscall(SYS_gettid) != getpid() &&
            read(hold_pipe[0], &c, 1) != 1)
                abort();
        if (__atomic_load_n(&fail_syncs, __ATOMIC_SEQ_CST) > 0) {
                __atomic_fetch_sub(&fail_syncs, 1, __ATOMIC_SEQ_CST);
                errno = EIO;
                return -1;
        }
        return (int)syscall(SYS_fdatasync, fd);
}

/* Runs the loop until the journal owes nothing, for up to 5 s. */
static bool run_until_owed_none(struct fx *f) {
        return run_until(f, "owed", 0);
}

/* A meter whose spool has its first segment, then every fdatasync of the worker held until a byte
 * on hold_pipe (a slow disk), and meter_sync left to the test. */
static void open_meter_with_held_syncs(struct fx *f) {
        open_meter(f, make_cfg(f, true, ""));
        run_for(f, A_TICK); /* the first segment is made on the timer */
        assert_int_equal(meter_sync_wait(f->m), 0);
        assert_int_equal(pipe2(hold_pipe, O_CLOEXEC), 0);
        __atomic_store_n(&hold_syncs, true, __ATOMIC_SEQ_CST);
        f->manual_sync = true;
}

static void test_the_spool_sync_runs_off_the_loop_and_its_records_wait_in_the_journal(void **state) {
        struct fx *f = *state;

        open_meter_with_held_syncs(f);
        /* Alice's start: appended, and its fdatasync handed to the worker, which waits for the disk.
         * meter_sync is back at once; the record is still owed (in slots.state, not yet durable in
         * the spool) and not published. */
        assert_int_equal(play(f, "alice", "s0", NULL), SLOTS_OK);
        assert_int_equal(meter_sync(f->m), 1);
        assert_int_equal(status_num(f->m, "owed"), 1);
        /* Bob's start, while that sync runs: it waits in the journal for the next one. */
        assert_int_equal(play(f, "bob", "s1", NULL), SLOTS_OK);
        assert_int_equal(meter_sync(f->m), 0);
        assert_int_equal(status_num(f->m, "owed"), 2);
        /* The disk answers both syncs: the loop takes the first's end, appends bob's and syncs it. */
        assert_int_equal(write(hold_pipe[1], "xx", 2), 2);
        assert_true(run_until_owed_none(f));
        __atomic_store_n(&hold_syncs, false, __ATOMIC_SEQ_CST);
        assert_null(meter_refusal(f->m));
        close_meter(f);
        close(hold_pipe[0]);
        close(hold_pipe[1]);
        read_spool(f);
        expect_types(f, "session_start session_start concurrency_window");
        assert_string_equal(str(f->rec[0], "user"), "alice");
        assert_string_equal(str(f->rec[1], "user"), "bob");
        expect_chain(f);
}

/* stderr (where the log goes in tests) into a file until stderr_back; its text then. */
static int stderr_saved = -1;
static FILE *stderr_file;

static void stderr_capture(void) {
        stderr_file = tmpfile();
        assert_non_null(stderr_file);
        fflush(stderr);
        stderr_saved = dup(STDERR_FILENO);
        assert_true(stderr_saved >= 0 && dup2(fileno(stderr_file), STDERR_FILENO) >= 0);
}

static char *stderr_back(void) {
        char *text = calloc(1, 65536);
        size_t got;

        fflush(stderr);
        assert_true(dup2(stderr_saved, STDERR_FILENO) >= 0);
        close(stderr_saved);
        rewind(stderr_file);
        assert_non_null(text);
        got = fread(text, 1, 65535, stderr_file);
        text[got] = '\0';
        fclose(stderr_file);
        return text;
}

/* Records pile up while the spool's sync is slow (the disk holds it): past the journal's soft
 * limit new sessions are refused, for that reason; the sync that takes them admits again, and the
 * log says what ended (records that waited), not that a failed spool works again. */
static void test_records_waiting_past_the_soft_limit_refuse_until_their_sync_ends(void **state) {
        struct fx *f = *state;
        char *journal = NULL, msg[SLOTS_MSG_MAX], user[16], *log;
        const char *why = NULL;
        int n = 0;

        open_meter_with_held_syncs(f);
        stderr_capture();
        /* Sessions, each as the service runs it (one batch: records with the state, then the
         * spool), while the first sync waits for the disk. */
        while (!why && n < 1000) {
                snprintf(user, sizeof(user), "u%d", n++);
                slots_batch_begin(f->slots);
                assert_int_equal(play(f, user, "s0", NULL), SLOTS_OK);
                assert_int_equal(end(f, user, "user_end"), SLOTS_OK);
                assert_int_equal(meter_journal(f->m, &journal), 0);
                slots_set_journal(f->slots, journal);
                assert_int_equal(slots_batch_commit(f->slots, msg, sizeof(msg)), 1);
                (void)meter_sync(f->m);
                why = meter_refusal(f->m);
        }
        assert_non_null(why);
        assert_non_null(strstr(why, "KiB of billing records wait for the spool"));
        assert_true(n > 10); /* a pile, not the first session */
        /* The disk answers: the waiting records go in, and sessions are admitted. */
        __atomic_store_n(&hold_syncs, false, __ATOMIC_SEQ_CST);
        assert_int_equal(write(hold_pipe[1], "x", 1), 1);
        assert_true(run_until_owed_none(f));
        assert_null(meter_refusal(f->m));
        log = stderr_back();
        assert_non_null(
                strstr(log, "the billing records that waited are in the spool; new sessions are admitted"));
        assert_null(strstr(log, "the spool takes records again"));
        free(log);
        assert_int_equal(f->n_alarms, 0);
        /* Every start and end made, and in the spool (none owed, above). */
        assert_true(status_num(f->m, "records_made") >= 2 * n);
        close_meter(f);
        close(hold_pipe[0]);
        close(hold_pipe[1]);
}

static void test_a_failed_sync_on_the_worker_refuses_and_loses_nothing(void **state) {
        struct fx *f = *state;

        open_meter(f, make_cfg(f, true, ""));
        run_for(f, A_TICK);
        assert_int_equal(meter_sync_wait(f->m), 0);
        f->manual_sync = true;
        __atomic_store_n(&fail_syncs, 1, __ATOMIC_SEQ_CST);
        assert_int_equal(play(f, "alice", "s0", NULL), SLOTS_OK);
        assert_int_equal(meter_sync(f->m), 1);
        /* The worker's failure reaches the loop: the spool is broken, new sessions refused. */
        for (uint64_t until = real_mono() + 5 * SEC; !meter_refusal(f->m) && real_mono() < until;)
                assert_true(sd_event_run(f->e, 100 * MSEC) >= 0);
        assert_non_null(meter_refusal(f->m));
        assert_string_equal(f->alarm_what[0], "spool_broken");
        /* Opened again on the timer; alice's record is appended again from the journal. */
        assert_true(run_until_owed_none(f));
        assert_null(meter_refusal(f->m));
        close_meter(f);
        read_spool(f);
        expect_types(f, "session_start concurrency_window");
        expect_chain(f);
}

/* Zeros over [from, to) of the spool's first segment: what a device that failed the flush of those
 * pages leaves after the kernel dropped them. */
static void zero_segment(struct fx *f, uint64_t from, uint64_t to) {
        char zeros[4096] = { 0 };
        int fd = openat(f->state_fd, "spool/seg-00000000000000000001.log", O_WRONLY | O_CLOEXEC);

        assert_true(fd >= 0 && to - from <= sizeof(zeros));
        assert_int_equal(pwrite(fd, zeros, to - from, (off_t)from), (ssize_t)(to - from));
        close(fd);
}

/* The sync of alice's session_start fails; the spool is opened again a second later, then bob and
 * alice's end go in. lose_pages: the failed flush lost the record (its bytes are zero on disk). */
static void sync_fails(struct fx *f, bool lose_pages) {
        struct cfg *c = make_cfg(f, true, "");
        double used;

        open_meter(f, c);
        /* The first segment is made (and synced) on the timer, before the failure. */
        run_for(f, A_TICK);
        assert_int_equal(meter_sync_wait(f->m), 0);
        used = spool_used(f->m);
        f->manual_sync = true;
        assert_int_equal(play(f, "alice", "s0", NULL), SLOTS_OK);
        f->manual_sync = false;
        fail_syncs = 1;
        assert_true(meter_sync_wait(f->m) < 0);
        assert_int_equal(fail_syncs, 0);
        assert_int_equal(f->n_alarms, 1);
        assert_string_equal(f->alarm_what[0], "spool_broken");
        assert_non_null(meter_refusal(f->m));
        if (lose_pages)
                zero_segment(f, (uint64_t)used, (uint64_t)spool_used(f->m));
        /* The meter's timer opens the spool again and makes again what it lost. */
        run_for(f, A_TICK);
        assert_int_equal(status_num(f->m, "owed"), 0);
        assert_null(meter_refusal(f->m));
        assert_int_equal(play(f, "bob", "s1", NULL), SLOTS_OK);
        assert_int_equal(end(f, "alice", "user_end"), SLOTS_OK);
        assert_true(meter_sync_wait(f->m) >= 0);
        close_meter(f);
        read_spool(f);
        /* Exactly one session_start for alice: none lost, none twice under two seqs. */
        expect_types(f, "session_start session_start session_end concurrency_window");
        assert_string_equal(str(f->rec[0], "user"), "alice");
        assert_string_equal(str(f->rec[1], "user"), "bob");
        expect_chain(f);
}

static void test_a_failed_sync_whose_records_reached_the_disk_duplicates_nothing(void **state) {
        sync_fails(*state, false);
}

static void test_a_failed_sync_that_lost_records_makes_them_again(void **state) {
        struct fx *f = *state;

        sync_fails(f, true);
        /* Appended again from the journal, byte for byte: the same session as its end's. */
        expect_session(f->rec[0], "s0", "S", "alice", str(f->rec[2], "session"));
}

/* A billing call that fails (here: bytes for a slot billing does not have) is said once, as an
 * internal_error alarm naming the call, and again only after one worked in between. */
static void test_a_failed_billing_call_raises_one_internal_error_alarm(void **state) {
        struct fx *f = *state;
        uint64_t now = plat_now_real_usec();

        open_meter(f, make_cfg(f, true, ""));
        assert_int_equal(f->n_alarms, 0);
        meter_bytes(f->m, 99, SESSIONS_FLOW_PLAYER, 1000, now);
        meter_bytes(f->m, 99, SESSIONS_FLOW_PLAYER, 1000, now);
        assert_int_equal(f->n_alarms, 1);
        assert_string_equal(f->alarm_what[0], "internal_error");
        assert_non_null(strstr(f->alarm_msg[0], "billing_bytes failed"));
        meter_bytes(f->m, 0, SESSIONS_FLOW_PLAYER, 1000, now);
        meter_bytes(f->m, 99, SESSIONS_FLOW_PLAYER, 1000, now);
        assert_int_equal(f->n_alarms, 2);
        close_meter(f);
}

static void test_without_a_key_records_are_kept_unpublished(void **state) {
        struct fx *f = *state;
        cJSON *st;

        open_meter(f, make_cfg(f, false, ""));
        assert_int_equal(f->n_alarms, 1);
        assert_string_equal(f->alarm_what[0], "no_key");
        assert_non_null(strstr(f->alarm_msg[0], "no signing key"));
        assert_null(meter_refusal(f->m));
        st = meter_status_json(f->m);
        assert_false(has(st, "kid"));
        cJSON_Delete(st);
        assert_int_equal(play(f, "alice", "s0", NULL), SLOTS_OK); /* spooled: fed() synced */
        assert_int_equal(status_num(f->m, "owed"), 0);
        assert_null(meter_refusal(f->m));
        assert_int_equal(f->n_alarms, 1);
        close_meter(f);

        read_spool(f);
        expect_types(f, "session_start concurrency_window");
        expect_chain(f);
}

static void test_unusable_key_raises_no_key_and_keeps_records(void **state) {
        struct fx *f = *state;

        tu_put(f->dir->fd, "device.key",
               "-----BEGIN EC PRIVATE KEY-----\nbm90IGEga2V5\n-----END EC PRIVATE KEY-----\n");
        open_meter(f, make_cfg(f, true, ""));
        assert_int_equal(f->n_alarms, 1);
        assert_string_equal(f->alarm_what[0], "no_key");
        assert_null(meter_refusal(f->m));
        assert_int_equal(play(f, "alice", "s0", NULL), SLOTS_OK);
        close_meter(f);

        read_spool(f);
        expect_types(f, "session_start concurrency_window");
}

static void test_key_file_gives_the_kid_and_no_alarm(void **state) {
        struct fx *f = *state;
        cJSON *st;

        open_meter(f, make_cfg(f, true, ""));
        assert_int_equal(f->n_alarms, 0);
        st = meter_status_json(f->m);
        assert_string_equal(str(st, "kid"), f->kid);
        cJSON_Delete(st);
}

static void test_stop_flushes_the_open_window_and_minutes_as_partial(void **state) {
        struct fx *f = *state;

        open_meter(f, make_cfg(f, true, ""));
        assert_int_equal(play(f, "alice", "s0", NULL), SLOTS_OK);
        at(f, 5 * SEC);
        meter_bytes(f->m, 0, SESSIONS_FLOW_PLAYER, 500, T0 + 4 * SEC);
        at(f, 5500 * MSEC);
        assert_true(status_num(f->m, "records_made") == 1);
        meter_stop(f->m);
        assert_true(status_num(f->m, "records_made") == 3);
        assert_true(status_num(f->m, "owed") == 0);
        /* Session records still go out after the stop; the windows are done and stay done. */
        at(f, 6 * SEC);
        assert_int_equal(end(f, "alice", "shutdown"), SLOTS_OK);
        close_meter(f);

        read_spool(f);
        expect_types(f, "session_start concurrency_window bandwidth_minute session_end");
        assert_string_equal(str(f->rec[1], "window_start"), "2023-11-14T22:00:00Z");
        assert_true(num(f->rec[1], "covered_s") == 5.5);
        assert_true(num(f->rec[1], "peak") == 1);
        assert_true(num(f->rec[1], "slot_seconds") == 5.5);
        assert_true(flag(f->rec[1], "partial"));
        assert_string_equal(str(f->rec[2], "minute"), "2023-11-14T22:14:00Z");
        expect_flow(f->rec[2], "player", 500, 0.004);
        assert_true(flag(f->rec[2], "partial"));
        expect_chain(f);
}

/* A restart: the slots say who plays, who is in grace and who watches; the meter saw none of it. */
static void test_restart_takes_occupancy_grace_and_viewers_from_the_slots(void **state) {
        struct fx *f = *state;

        assert_int_equal(play(f, "alice", "s0", NULL), SLOTS_OK);
        assert_int_equal(join(f, "alice", "bob", "spectator"), SLOTS_OK);
        assert_int_equal(play(f, "carol", "s1", NULL), SLOTS_OK);
        assert_int_equal(lose(f, "carol"), SLOTS_OK);
        at(f, 10 * SEC);
        assert_int_equal(open_meter_with(f, make_cfg(f, true, "\"window_s\":1"), f->slots), 0);
        at(f, 10500 * MSEC);
        assert_int_equal(end(f, "carol", "grace_over"), SLOTS_OK);
        at(f, 11200 * MSEC);
        assert_int_equal(end(f, "alice", "user_end"), SLOTS_OK);
        close_meter(f);

        read_spool(f);
        expect_types(f,
                     "grace_end session_end concurrency_window viewer_leave session_end concurrency_window");
        assert_string_equal(str(f->rec[0], "user"), "carol");
        assert_string_equal(str(f->rec[0], "reason"), "grace_over");
        expect_window(f->rec[2], "2023-11-14T22:14:10Z", 1, 2, 1.5, false);
        assert_string_equal(str(f->rec[3], "viewer"), "bob");
        assert_string_equal(str(f->rec[3], "reason"), "session_end");
        assert_string_equal(str(f->rec[4], "user"), "alice");
        assert_true(num(f->rec[4], "duration_s") == 11.2);
        expect_window(f->rec[5], "2023-11-14T22:14:11Z", 0.2, 1, 0.2, true);
        expect_chain(f);
}

/* ---- counted bytes across a kill (slots.state's open_minutes) ---- */

/* f->slots kept in the state dir and loaded from it, as a start does. No cmocka: children use it. */
static int load_slots(struct fx *f) {
        const char *ids[] = { "s0", "s1", "s2" };
        struct slots_config sc = { .n_slots = 3, .slot_ids = ids, .state_dir_fd = f->state_fd };
        char msg[SLOTS_MSG_MAX];

        slots_limits_default(&sc.limits);
        slots_free(f->slots);
        f->slots = NULL;
        if (slots_new(&sc, &f->slots, msg, sizeof(msg)) < 0)
                return -1;
        return slots_load(f->slots, clk(f), msg, sizeof(msg));
}

/* A group commit as the session service makes it: the owed records and the open minutes written
 * with the state in one write, then the spool. No cmocka: children use it. */
static int write_state(struct fx *f) {
        char *json = NULL, msg[SLOTS_MSG_MAX];
        int r;

        slots_batch_begin(f->slots);
        if (meter_journal(f->m, &json) < 0)
                return -1;
        slots_set_journal(f->slots, json);
        json = NULL;
        r = meter_open_minutes(f->m, &json);
        if (r < 0)
                return -1;
        if (r > 0)
                slots_set_extra(f->slots, SLOTS_EXTRA_OPEN_MINUTES, json);
        if (slots_batch_commit(f->slots, msg, sizeof(msg)) < 0)
                return -1;
        return meter_sync_wait(f->m);
}

/* The bandwidth_minute records of slot s0 read back: their number, and the sum of their player
 * bytes. */
static size_t s0_minutes(const struct fx *f, double *ret_bytes) {
        size_t n = 0;

        *ret_bytes = 0;
        for (size_t i = 0; i < f->n_recs; i++)
                if (!strcmp(str(f->rec[i], "type"), "bandwidth_minute") &&
                    !strcmp(str(f->rec[i], "slot"), "s0")) {
                        n++;
                        *ret_bytes += num(obj(f->rec[i], "player"), "bytes");
                }
        return n;
}

/* Alice plays on s0 and her player moves 1000 B over [1 s, 10 s) and, when `more`, 2000 B over
 * [10 s, 28 s) (112 B in the busiest second); one state write holds them as open. */
static const char *count_bytes_and_write(struct fx *f, bool more) {
        CHILD_CHECK(load_slots(f) == 0);
        f->state_writes = true;
        CHILD_CHECK(open_meter_with(f, f->cfgs[0], f->slots) == 0);
        CHILD_CHECK(play(f, "alice", "s0", NULL) == SLOTS_OK);
        at(f, 10 * SEC);
        meter_bytes(f->m, 0, SESSIONS_FLOW_PLAYER, 1000, T0 + 1 * SEC);
        if (more) {
                at(f, 28 * SEC);
                meter_bytes(f->m, 0, SESSIONS_FLOW_PLAYER, 2000, T0 + 10 * SEC);
        }
        CHILD_CHECK(write_state(f) >= 0);
        CHILD_CHECK(slots_extra(f->slots, SLOTS_EXTRA_OPEN_MINUTES));
        return NULL;
}

static const char *killed_with_open_minutes_child(struct fx *f) {
        return count_bytes_and_write(f, true); /* then killed */
}

/* Bytes counted into a minute that was still open when the agent was killed come back after the
 * restart, into the records, every byte once, and no second faster than it was. */
static void test_bytes_of_open_minutes_survive_a_kill_into_the_minute_records(void **state) {
        struct fx *f = *state;
        double bytes;

        make_cfg(f, true, "");
        run_child(f, killed_with_open_minutes_child);
        at(f, 40 * SEC);
        assert_int_equal(load_slots(f), 0);
        assert_non_null(slots_extra(f->slots, SLOTS_EXTRA_OPEN_MINUTES));
        open_meter_with(f, f->cfgs[0], f->slots);
        at(f, 50 * SEC);
        meter_bytes(f->m, 0, SESSIONS_FLOW_PLAYER, 500, T0 + 28 * SEC);
        close_meter(f);
        read_spool(f);
        assert_int_equal(s0_minutes(f, &bytes), 1);
        assert_true(bytes == 3500);
        for (size_t i = 0; i < f->n_recs; i++)
                if (!strcmp(str(f->rec[i], "type"), "bandwidth_minute")) {
                        const cJSON *p = obj(f->rec[i], "player");

                        assert_string_equal(str(f->rec[i], "minute"), "2023-11-14T22:14:00Z");
                        assert_int_equal(num(p, "late_bytes"), 0);
                        assert_true(num(p, "peak_mbps") > 0 && num(p, "peak_mbps") <= 112 * 8 / 1e6);
                }
}

/* The minute closes after the write: its record waits for the next state write, which drops its
 * bytes from the open minutes; the agent is killed before that write. */
static const char *killed_before_the_minutes_write_child(struct fx *f) {
        const char *why = count_bytes_and_write(f, false);

        if (why)
                return why;
        at(f, 72 * SEC); /* minute 0 closes at 70 s (late_s 10) */
        CHILD_CHECK(run_until(f, "records_made", 2));
        for (uint64_t until = real_mono() + 300 * MSEC; real_mono() < until;)
                CHILD_CHECK(sd_event_run(f->e, 50 * MSEC) >= 0);
        CHILD_CHECK(f->n_write_requests > 0);
        CHILD_CHECK(status_num(f->m, "owed") == 1);
        return NULL;
}

static void test_a_minute_record_is_not_spooled_before_a_state_write_drops_its_bytes(void **state) {
        struct fx *f = *state;
        double bytes;

        make_cfg(f, true, "");
        run_child(f, killed_before_the_minutes_write_child);
        /* Nothing of it reached the spool; the open minute on disk still holds its bytes, which come
         * back as late bytes of the first minute after the restart: once. */
        at(f, 80 * SEC);
        assert_int_equal(load_slots(f), 0);
        open_meter_with(f, f->cfgs[0], f->slots);
        close_meter(f);
        read_spool(f);
        assert_int_equal(s0_minutes(f, &bytes), 1);
        assert_true(bytes == 1000);
        for (size_t i = 0; i < f->n_recs; i++)
                if (!strcmp(str(f->rec[i], "type"), "bandwidth_minute")) {
                        assert_string_equal(str(f->rec[i], "minute"), "2023-11-14T22:15:00Z");
                        assert_int_equal(num(obj(f->rec[i], "player"), "late_bytes"), 1000);
                }
}

static const char *killed_after_the_minutes_write_child(struct fx *f) {
        const char *why = killed_before_the_minutes_write_child(f);
        char *json = NULL;

        if (why)
                return why;
        /* The state written: the record goes to the spool, the open minutes on disk are none. */
        CHILD_CHECK(write_state(f) >= 0);
        CHILD_CHECK(status_num(f->m, "owed") == 0);
        CHILD_CHECK(!slots_extra(f->slots, SLOTS_EXTRA_OPEN_MINUTES));
        /* Nothing changed since: the next commit writes nothing for them. */
        CHILD_CHECK(meter_open_minutes(f->m, &json) == 0 && !json);
        return NULL;
}

static void test_a_minute_record_spooled_leaves_no_open_bytes_to_count_again(void **state) {
        struct fx *f = *state;
        double bytes;

        make_cfg(f, true, "");
        run_child(f, killed_after_the_minutes_write_child);
        at(f, 80 * SEC);
        assert_int_equal(load_slots(f), 0);
        assert_null(slots_extra(f->slots, SLOTS_EXTRA_OPEN_MINUTES));
        open_meter_with(f, f->cfgs[0], f->slots);
        close_meter(f);
        read_spool(f);
        assert_int_equal(s0_minutes(f, &bytes), 1);
        assert_true(bytes == 1000);
        for (size_t i = 0; i < f->n_recs; i++)
                if (!strcmp(str(f->rec[i], "type"), "bandwidth_minute"))
                        assert_string_equal(str(f->rec[i], "minute"), "2023-11-14T22:14:00Z");
}

/* The sum of a flow's per-second series (kbit/s) and, in *ret_nonzero, its seconds above 0;
 * checks that it is 60 integers summing to bytes * 8 / 1000 within rounding. */
static double series_sum(const cJSON *r, const char *flow, size_t *ret_nonzero) {
        const cJSON *kbps = cJSON_GetObjectItemCaseSensitive(obj(r, flow), "kbps");
        double sum = 0, bits = num(obj(r, flow), "bytes") * 8;
        const cJSON *v;

        assert_true(cJSON_IsArray(kbps));
        assert_int_equal(cJSON_GetArraySize(kbps), 60);
        *ret_nonzero = 0;
        cJSON_ArrayForEach(v, kbps) {
                assert_true(cJSON_IsNumber(v) && v->valuedouble == (double)(uint64_t)v->valuedouble);
                sum += v->valuedouble;
                *ret_nonzero += v->valuedouble > 0;
        }
        assert_true(sum * 1000 <= bits + 500 * 60 && bits <= sum * 1000 + 500 * 60);
        return sum;
}

/* Alice and then bob play on s0 within one minute: the end of alice's session closes her bytes
 * into a record of hers at once; bob's bytes of the same minute are a record of his. */
static void test_two_sessions_on_a_slot_in_one_minute_give_a_record_each(void **state) {
        struct fx *f = *state;
        char alice[SLOTS_SESSION_LEN + 1], bob[SLOTS_SESSION_LEN + 1];
        const cJSON *r;
        size_t nz;

        open_meter(f, make_cfg(f, true, ""));
        assert_int_equal(play_for(f, "alice", "acme", "racer", "s0"), SLOTS_OK);
        session_of(f, 0, alice);
        at(f, 10 * SEC);
        meter_bytes(f->m, 0, SESSIONS_FLOW_PLAYER, 6250, T0 + 5 * SEC); /* 1250 B/s: 10 kbit/s */
        at(f, 20 * SEC);
        assert_int_equal(end(f, "alice", "user_end"), SLOTS_OK);
        at(f, 25 * SEC);
        assert_int_equal(play(f, "bob", "s0", NULL), SLOTS_OK);
        session_of(f, 0, bob);
        at(f, 40 * SEC);
        meter_bytes(f->m, 0, SESSIONS_FLOW_PLAYER, 12500, T0 + 30 * SEC);
        meter_bytes(f->m, 0, SESSIONS_FLOW_VIEWERS, 2000, T0 + 40 * SEC);
        at(f, 50 * SEC);
        close_meter(f);

        read_spool(f);
        /* Her minute comes before her session_end: a biller has all her bytes when it sees the end. */
        expect_types(f, "session_start bandwidth_minute session_end session_start concurrency_window "
                        "bandwidth_minute");
        r = f->rec[1];
        expect_session(r, "s0", "S", "alice", alice);
        assert_string_equal(str(r, "project"), "acme");
        assert_string_equal(str(r, "app"), "racer");
        assert_string_equal(str(r, "minute"), "2023-11-14T22:14:00Z");
        expect_flow(r, "player", 6250, 0.01);
        assert_true(flag(r, "partial") && flag(r, "session_end"));
        assert_true(series_sum(r, "player", &nz) == 50 && nz == 5);
        assert_false(has(obj(r, "viewers"), "kbps"));
        r = f->rec[5];
        expect_session(r, "s0", "S", "bob", bob);
        assert_false(has(r, "project") || has(r, "app"));
        assert_string_equal(str(r, "minute"), "2023-11-14T22:14:00Z");
        expect_flow(r, "player", 12500, 0.01);
        expect_flow(r, "viewers", 2000, 0.016);
        assert_true(flag(r, "partial"));
        assert_false(flag(r, "session_end"));
        assert_true(series_sum(r, "player", &nz) == 100 && nz == 10);
        assert_true(series_sum(r, "viewers", &nz) == 16 && nz == 1);
        expect_chain(f);
}

/* The session ends in a batch whose state write holds alice's open bytes from an earlier write:
 * the forced close's record goes into that same write's journal, which holds no open bytes, so
 * after a kill her bytes are in the spool once, in her record. */
static const char *killed_after_an_end_child(struct fx *f) {
        const char *why = count_bytes_and_write(f, false);

        if (why)
                return why;
        at(f, 30 * SEC);
        f->manual_sync = true;
        slots_batch_begin(f->slots);
        CHILD_CHECK(end(f, "alice", "user_end") == SLOTS_OK);
        CHILD_CHECK(status_num(f->m, "owed") == 2); /* bandwidth_minute, session_end: not yet written */
        CHILD_CHECK(write_state(f) >= 0);
        CHILD_CHECK(!slots_extra(f->slots, SLOTS_EXTRA_OPEN_MINUTES));
        return NULL; /* killed: the spool has what the write's journal had, or gets it at the start */
}

static void test_a_close_at_session_end_is_written_with_the_end_and_counted_once(void **state) {
        struct fx *f = *state;
        double bytes;

        make_cfg(f, true, "");
        run_child(f, killed_after_an_end_child);
        at(f, 80 * SEC);
        assert_int_equal(load_slots(f), 0);
        assert_null(slots_extra(f->slots, SLOTS_EXTRA_OPEN_MINUTES));
        open_meter_with(f, f->cfgs[0], f->slots);
        close_meter(f);
        read_spool(f);
        assert_int_equal(s0_minutes(f, &bytes), 1);
        assert_true(bytes == 1000);
        for (size_t i = 0; i < f->n_recs; i++)
                if (!strcmp(str(f->rec[i], "type"), "bandwidth_minute")) {
                        assert_string_equal(str(f->rec[i], "user"), "alice");
                        assert_true(flag(f->rec[i], "session_end"));
                }
}

/* ---- delivery to a consumer (a scripted MQTT 5 broker, mqtt_fx) ---- */

static void on_cleared(const char *what, const char *msg, void *userdata) {
        struct fx *f = userdata;

        (void)msg;
        snprintf(f->cleared_what, sizeof(f->cleared_what), "%s", what);
        f->n_cleared++;
}

static void on_link_connected(struct link *l, void *ud) {
        struct fx *f = ud;

        (void)l;
        meter_connected(f->m);
}

static void on_link_published(struct link *l, int mid, int reason, void *ud) {
        struct fx *f = ud;

        (void)l;
        meter_published(f->m, mid, reason);
}

/* Runs the loop (real time) until the broker has had n publishes, for up to 5 s. */
static void run_until_published(struct fx *f, const struct mqtt_fx *b, size_t n) {
        uint64_t deadline = real_mono() + 5 * SEC;

        while (b->n_publishes < n && real_mono() < deadline)
                assert_true(sd_event_run(f->e, 100 * MSEC) >= 0);
        assert_int_equal(b->n_publishes, n);
}

static bool no_consumer(const struct meter *m) {
        cJSON *o = meter_status_json(m);
        bool v = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "no_consumer"));

        cJSON_Delete(o);
        return v;
}

/* The clock stops being synchronised inside window [1 s, 2 s): that window says so with its worst
 * error, the windows before and after do not; one alarm when it is lost, one clear when regained. */
static void test_an_unsynchronised_clock_marks_its_windows_and_raises_one_alarm(void **state) {
        struct fx *f = *state;
        const struct meter_hooks h = { .alarm = on_alarm, .cleared = on_cleared, .userdata = f };
        char msg[256] = "";

        assert_int_equal(slot_table_sync(&f->table, make_cfg(f, true, "\"window_s\":1")), 0);
        assert_int_equal(
                meter_new(f->e, f->cfgs[f->n_cfgs - 1], &f->table, NULL, &h, &f->m, msg, sizeof(msg)), 0);
        assert_int_equal(f->n_alarms, 0);
        at(f, 1200 * MSEC);
        run_for(f, A_TICK);
        fake_clock.unsynced = true;
        fake_clock.est = 250000;
        run_for(f, A_TICK);
        assert_int_equal(f->n_alarms, 1);
        assert_string_equal(f->alarm_what[0], "clock_unsynced");
        assert_non_null(strstr(f->alarm_msg[0], "STA_UNSYNC"));
        assert_non_null(strstr(f->alarm_msg[0], "250000 us"));
        run_for(f, A_TICK); /* still unsynchronised: no second alarm */
        assert_int_equal(f->n_alarms, 1);
        fake_clock.unsynced = false;
        fake_clock.est = 300;
        run_for(f, A_TICK);
        assert_int_equal(f->n_cleared, 1);
        assert_string_equal(f->cleared_what, "clock_unsynced");
        at(f, 2100 * MSEC);
        run_for(f, A_TICK);
        at(f, 3100 * MSEC);
        run_for(f, A_TICK);
        close_meter(f);

        read_spool(f);
        expect_types(f, "concurrency_window concurrency_window concurrency_window concurrency_window");
        assert_true(flag(f->rec[0], "clock_synced"));
        assert_int_equal(num(f->rec[0], "clock_est_error_us"), 100);
        assert_false(flag(f->rec[1], "clock_synced"));
        assert_int_equal(num(f->rec[1], "clock_est_error_us"), 250000);
        /* [2 s, 3 s) opened after the reading that found the clock synchronised again. */
        assert_true(flag(f->rec[2], "clock_synced"));
        assert_int_equal(num(f->rec[2], "clock_est_error_us"), 300);
        expect_chain(f);
}

/* MQTT 5: a broker answers a publish that no subscription matches with PUBACK 0x10. Nobody received
 * the record, so it stays in the spool (alarm no_consumer, status), is offered again one at a time
 * after a backoff, never at once; once a consumer takes one, all that was held goes out and the
 * alarm is cleared. The clock is pinned: the backoff ends only when the test moves it. */
static void test_a_record_nobody_subscribed_to_stays_spooled_and_is_offered_again(void **state) {
        struct fx *f = *state;
        const struct meter_hooks h = { .alarm = on_alarm, .cleared = on_cleared, .userdata = f };
        struct link_options o = { .host = "127.0.0.1",
                                  .keepalive_s = 60,
                                  .client_id = "render-01",
                                  .will_topic = "t/status",
                                  .will_payload = "{}",
                                  .on_published = on_link_published };
        struct mqtt_fx *b = NULL;
        struct link *l = NULL;
        char msg[256] = "";

        mosquitto_lib_init();
        assert_int_equal(mqtt_fx_start(f->e, &b), 0);
        b->puback_reason = 0x10;
        assert_int_equal(slot_table_sync(&f->table, make_cfg(f, true, "")), 0);
        assert_int_equal(
                meter_new(f->e, f->cfgs[f->n_cfgs - 1], &f->table, NULL, &h, &f->m, msg, sizeof(msg)), 0);
        o.port = b->port;
        assert_int_equal(link_new(f->e, &o, on_link_connected, f, &l), 0);
        meter_set_link(f->m, l, "render/v1/eu-west/render-01/metering");
        assert_int_equal(link_start(l), 0);
        for (uint64_t end = real_mono() + 5 * SEC; link_get_state(l) != LINK_CONNECTED && real_mono() < end;)
                assert_true(sd_event_run(f->e, 100 * MSEC) >= 0);
        assert_int_equal(link_get_state(l), LINK_CONNECTED);

        assert_int_equal(play(f, "alice", "s0", NULL), SLOTS_OK);
        assert_int_equal(play(f, "bob", "s1", NULL), SLOTS_OK);
        assert_true(meter_sync_wait(f->m) >= 0);
        run_until_published(f, b, 2);
        assert_string_equal(b->topic, "render/v1/eu-west/render-01/metering");
        /* Refused by nobody's absence: kept, and said once. */
        run_for(f, A_TICK);
        assert_int_equal(b->n_publishes, 2);
        assert_int_equal(status_num(f->m, "acked"), 0);
        assert_int_equal(status_num(f->m, "records_made"), 2);
        assert_true(no_consumer(f->m));
        assert_int_equal(f->n_alarms, 1);
        assert_string_equal(f->alarm_what[0], "no_consumer");
        assert_non_null(strstr(f->alarm_msg[0], "render/v1/eu-west/render-01/metering"));
        assert_non_null(strstr(f->alarm_msg[0], "0x10"));
        /* After the wait, one record is offered: the oldest, the same bytes. Refused again, it waits
         * again: no second record, no second alarm. */
        advance(f, 61 * SEC);
        run_until_published(f, b, 3);
        assert_string_equal(b->payload[2], b->payload[0]);
        run_for(f, A_TICK);
        assert_int_equal(b->n_publishes, 3);
        assert_int_equal(status_num(f->m, "acked"), 0);
        assert_int_equal(f->n_alarms, 1);
        /* A consumer subscribes: the next offer is received, the alarm cleared, the rest follows. */
        b->puback_reason = 0;
        advance(f, 61 * SEC);
        assert_true(run_until(f, "acked", 2));
        assert_int_equal(b->n_publishes, 5);
        assert_string_equal(b->payload[3], b->payload[0]);
        assert_string_equal(b->payload[4], b->payload[1]);
        assert_false(no_consumer(f->m));
        assert_int_equal(f->n_cleared, 1);
        assert_string_equal(f->cleared_what, "no_consumer");
        assert_int_equal(f->n_alarms, 1);

        meter_set_link(f->m, NULL, NULL);
        link_free(l);
        mqtt_fx_free(b);
        close_meter(f);
        mosquitto_lib_cleanup();
        /* Received: acked in the spool. What is left is the open window, flushed by meter_free. */
        read_spool(f);
        expect_types(f, "concurrency_window");
        assert_int_equal(num(f->rec[0], "seq"), 3);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_transitions_make_their_records_in_order, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_session_start_leaves_out_an_unknown_client_ip, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_session_push_and_window_records_carry_the_project,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_two_sessions_on_a_slot_in_one_minute_give_a_record_each,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_a_close_at_session_end_is_written_with_the_end_and_counted_once, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(test_a_missing_state_dir_is_made_for_the_spool, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_chain_and_seq_continue_after_a_restart, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_windows_carry_peak_and_slot_seconds_from_occupancy,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_a_meter_stopped_after_a_reload_moved_its_slots_names_its_own, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bytes_become_minutes_once_late_s_has_passed, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_full_spool_fails_closed_and_loses_nothing, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(
                        test_a_kill_while_the_disk_is_full_loses_no_acknowledged_record, setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_a_start_on_a_full_disk_refuses_new_sessions_until_there_is_room, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(
                        test_a_failed_sync_whose_records_reached_the_disk_duplicates_nothing, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(test_a_failed_sync_that_lost_records_makes_them_again, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(
                        test_the_spool_sync_runs_off_the_loop_and_its_records_wait_in_the_journal, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(
                        test_records_waiting_past_the_soft_limit_refuse_until_their_sync_ends, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(test_a_failed_sync_on_the_worker_refuses_and_loses_nothing,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_a_failed_billing_call_raises_one_internal_error_alarm,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_without_a_key_records_are_kept_unpublished, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_unusable_key_raises_no_key_and_keeps_records, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_key_file_gives_the_kid_and_no_alarm, setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_an_unsynchronised_clock_marks_its_windows_and_raises_one_alarm, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(test_stop_flushes_the_open_window_and_minutes_as_partial,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_restart_takes_occupancy_grace_and_viewers_from_the_slots, setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_bytes_of_open_minutes_survive_a_kill_into_the_minute_records, setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_a_minute_record_is_not_spooled_before_a_state_write_drops_its_bytes, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(
                        test_a_minute_record_spooled_leaves_no_open_bytes_to_count_again, setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_a_record_nobody_subscribed_to_stays_spooled_and_is_offered_again, setup,
                        teardown),
        };

        return tu_exit_status(cmocka_run_group_tests(tests, NULL, NULL));
}
