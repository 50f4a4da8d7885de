/* fuzz_sessions_fx.c: the real session service for fuzz targets: a scratch state dir on tmpfs, a pinned
 * clock, a fresh service per input, and the invariants every state must keep. */
#include "fuzz_sessions_fx.h"

#include "agent.h"
#include "clock.h"
#include "config.h"
#include "fileio.h"
#include "ops.h"
#include "slot.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define T0_MONO (UINT64_C(1000) * USEC_PER_SEC)
#define T0_REAL (UINT64_C(1700000000) * USEC_PER_SEC)

static struct {
        char dir[80];        /* the scratch dir: state/ and an empty root/ */
        int dir_fd, root_fd; /* root_fd: the host root enforcement looks for cgroups under */
        struct cfg *cfg[2];  /* enforcement none, cgroup_kill */
        bool kill;
        sd_event *e;
        struct sessions *s;
        struct slot_table table; /* the slot objects, as the agent keeps them */
        uint64_t mono, real, failures;
} fx = { .dir_fd = -1, .root_fd = -1 };

static void on_event(const char *type, cJSON *fields, void *ud) {
        (void)type;
        (void)ud;
        cJSON_Delete(fields);
}

static void on_transition(const struct slots_event *ev, void *ud) {
        (void)ud;
        if (ev->slot != (size_t)-1 && ev->slot >= 3)
                abort();
}

static void on_committed(bool ok, const char *msg, void *ud) {
        (void)msg;
        (void)ud;
        fx.failures += !ok;
}

static const struct sessions_hooks hooks = { .event = on_event,
                                             .transition = on_transition,
                                             .committed = on_committed };

static struct cfg *parse(const char *state_dir, bool kill) {
        struct cfg_problems p = { 0 };
        struct cfg *c = NULL;
        char buf[1024];
        int n;

        n = snprintf(buf, sizeof(buf),
                     "{\"node\":{\"id\":\"fuzz-01\",\"region\":\"eu-west\"},"
                     "\"mqtt\":{\"host\":\"localhost\",\"tls\":false},\"state_dir\":\"%s\","
                     "\"sessions\":{\"enforcement\":\"%s\"},\"slots\":["
                     "{\"id\":\"s0\",\"scale\":\"S\",\"cgroup\":\"fuzz/s0\"},"
                     "{\"id\":\"s1\",\"scale\":\"S\",\"cgroup\":\"fuzz/s1\"},"
                     "{\"id\":\"s2\",\"scale\":\"S\",\"cgroup\":\"fuzz/s2\"}]}",
                     state_dir, kill ? "cgroup_kill" : "none");
        if (n <= 0 || (size_t)n >= sizeof(buf) || cfg_parse("/fuzz/agent.json", buf, (size_t)n, &c, &p) < 0)
                abort();
        cfg_problems_done(&p);
        return c;
}

static void rm_state(void) {
        (void)unlinkat(fx.dir_fd, "state/" SLOTS_STATE_FILE, 0);
}

static void cleanup(void) {
        fxs_close();
        for (int k = 0; k < 2; k++)
                cfg_free(fx.cfg[k]);
        sd_event_unref(fx.e);
        rm_state();
        (void)unlinkat(fx.dir_fd, "state", AT_REMOVEDIR);
        (void)unlinkat(fx.dir_fd, "root", AT_REMOVEDIR);
        close(fx.root_fd);
        close(fx.dir_fd);
        (void)rmdir(fx.dir);
}

/* Once: the scratch dirs (tmpfs where there is one: every commit fdatasyncs), configs, loop. */
static void init(void) {
        char state[128];

        if (fx.dir_fd >= 0)
                return;
        snprintf(fx.dir, sizeof(fx.dir), "%s/fuzz_sessions.XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(fx.dir))
                abort();
        fx.dir_fd = open(fx.dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fx.dir_fd < 0 || mkdirat(fx.dir_fd, "state", 0700) < 0 || mkdirat(fx.dir_fd, "root", 0700) < 0)
                abort();
        fx.root_fd = openat(fx.dir_fd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
        snprintf(state, sizeof(state), "%s/state", fx.dir);
        fx.cfg[0] = parse(state, false);
        fx.cfg[1] = parse(state, true);
        if (fx.root_fd < 0 || sd_event_new(&fx.e) < 0)
                abort();
        atexit(cleanup);
}

static struct sessions *open_service(void) {
        struct sessions_hooks h = hooks;
        char warning[SLOTS_MSG_MAX], msg[256];

        slot_table_done(&fx.table); /* a new service is a new process */
        if (sessions_new(fx.e, fx.cfg[fx.kill], &fx.table, fx.root_fd, &h, &fx.s, warning, msg,
                         sizeof(msg)) < 0 ||
            warning[0])
                abort();
        return fx.s;
}

struct sessions *fxs_open(bool cgroup_kill) {
        init();
        fxs_close();
        rm_state();
        fx.kill = cgroup_kill;
        fx.mono = T0_MONO;
        fx.real = T0_REAL;
        fx.failures = 0;
        plat_clock_set_fake(fx.mono, fx.real);
        return open_service();
}

void fxs_close(void) {
        sessions_free(fx.s);
        fx.s = NULL;
        slot_table_done(&fx.table);
}

void fxs_advance(uint64_t usec) {
        fx.mono += usec;
        fx.real += usec;
        plat_clock_set_fake(fx.mono, fx.real);
}

uint64_t fxs_commit_failures(void) {
        return fx.failures;
}

/* What a restart must bring back of one slot. */
struct snap {
        enum slots_state state;
        char user[SLOTS_USER_MAX + 1], session[SLOTS_SESSION_LEN + 1];
        uint64_t deadline;
        size_t n_viewers;
};

struct sessions *fxs_restart(void) {
        const struct slots *sl = sessions_slots(fx.s);
        struct snap before[3];
        struct slots_info info;

        /* What is pending is written at free, and what is written is what must come back. */
        if (sessions_flush(fx.s) < 0)
                abort();
        for (size_t i = 0; i < 3; i++) {
                slots_get(sl, i, &info);
                before[i] = (struct snap){ .state = info.state,
                                           .deadline = info.deadline_real_usec,
                                           .n_viewers = info.n_viewers };
                snprintf(before[i].user, sizeof(before[i].user), "%s", info.user);
                snprintf(before[i].session, sizeof(before[i].session), "%s", info.session);
        }
        fxs_close();
        sl = sessions_slots(open_service());
        for (size_t i = 0; i < 3; i++) {
                slots_get(sl, i, &info);
                if (before[i].state == SLOTS_RESERVED && info.state == SLOTS_FREE &&
                    before[i].deadline <= fx.real)
                        continue; /* its lock ran out while the agent was "down" */
                if (info.state != before[i].state || strcmp(info.user, before[i].user) ||
                    strcmp(info.session, before[i].session) || info.n_viewers != before[i].n_viewers)
                        abort();
        }
        return fx.s;
}

static bool well_formed_session(const char *s) {
        size_t n = strspn(s, "0123456789abcdef");

        return n == SLOTS_SESSION_LEN && !s[n];
}

void fxs_check(const struct sessions *s) {
        const struct slots *sl = sessions_slots(s);
        struct slots_info info[SLOTS_MAX];
        size_t n = slots_count(sl);

        if (n != 3)
                abort();
        for (size_t i = 0; i < n; i++) {
                slots_get(sl, i, &info[i]);
                if (info[i].state == SLOTS_FREE || info[i].state == SLOTS_BLOCKED) {
                        if (info[i].user[0] || info[i].session[0] || info[i].n_viewers)
                                abort();
                        continue;
                }
                if (!info[i].user[0] || strlen(info[i].user) > SLOTS_USER_MAX ||
                    !well_formed_session(info[i].session) || info[i].n_viewers > 4)
                        abort();
                for (size_t k = 0; k < i; k++)
                        if (info[k].user[0] && (!strcmp(info[k].user, info[i].user) ||
                                                !strcmp(info[k].session, info[i].session)))
                                abort(); /* one user in two slots, or one session twice */
        }
}

void fxs_check_holds(const struct sessions *s, const char *slot, const char *user) {
        const struct slots *sl = sessions_slots(s);
        int i = slots_find(sl, slot);
        struct slots_info info;

        if (i < 0)
                abort();
        slots_get(sl, (size_t)i, &info);
        if (strcmp(info.user, user) ||
            (info.state != SLOTS_RESERVED && info.state != SLOTS_ACTIVE && info.state != SLOTS_GRACE))
                abort();
}

cJSON *fxs_dispatch(const char *op, const cJSON *req, const struct plat_peer *peer, void *userdata,
                    bool *ret_held, const char **ret_code, char *msg, size_t msglen) {
        struct sessions *s = userdata;
        const struct ops_entry *e = ops_find(op);
        cJSON *r;

        (void)peer;
        *ret_held = false;
        if (e && (e->id == OP_STATUS || e->id == OP_SLOTS || e->id == OP_SESSIONS)) {
                r = cJSON_CreateObject();
                if (e->id == OP_STATUS)
                        cJSON_AddItemToObject(r, "sessions", sessions_summary_json(s));
                else
                        cJSON_AddItemToObject(
                                r, op, e->id == OP_SLOTS ? sessions_slots_json(s) : sessions_list_json(s));
                return r;
        }
        if (e && agent_sessions_op(e->id) != SESSIONS_OP_NONE)
                return sessions_request(s, agent_sessions_op(e->id), req, ret_held, ret_code, msg, msglen);
        *ret_code = "BAD_REQUEST";
        snprintf(msg, msglen, "unknown op \"%.64s\"", op);
        return NULL;
}
