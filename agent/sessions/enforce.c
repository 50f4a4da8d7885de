/* enforce.c: ending a session's processes (cgroup.kill or an exec hook) before its slot is reused. */
#include "enforce.h"

#include "cgroup.h"
#include "cleanup.h"
#include "slot.h"
#include "strutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define USEC_PER_SEC_U 1000000ULL

struct enforce {
        sd_event *event;
        int root_fd;
        const struct cfg *cfg;
        struct slot_table *table;
        enforce_done_fn done;
        void *userdata;
};

int enforce_new(sd_event *e, int root_fd, struct slot_table *table, enforce_done_fn done, void *userdata,
                struct enforce **ret) {
        struct enforce *f = calloc(1, sizeof(*f));

        if (!f)
                return -ENOMEM;
        f->event = sd_event_ref(e);
        f->root_fd = root_fd;
        f->table = table;
        f->done = done;
        f->userdata = userdata;
        *ret = f;
        return 0;
}

static void hook_clear(struct enforce_hook *h) {
        h->child = sd_event_source_disable_unref(h->child);
        h->timeout = sd_event_source_disable_unref(h->timeout);
        h->pid = 0;
        h->timed_out = false;
}

void enforce_free(struct enforce *f) {
        if (!f)
                return;
        for (size_t i = 0; i < f->table->n; i++) {
                struct enforce_hook *h = &slot_at(f->table, i)->hook;

                if (h->pid > 0) {
                        (void)kill(-h->pid, SIGKILL);
                        hook_clear(h);
                }
        }
        sd_event_unref(f->event);
        free(f);
}

void enforce_configure(struct enforce *f, const struct cfg *cfg) {
        f->cfg = cfg;
}

bool enforce_running(const struct slot *sl) {
        return sl && sl->hook.pid > 0;
}

static int on_hook_exit(sd_event_source *s, const siginfo_t *si, void *ud);
static int on_hook_timeout(sd_event_source *s, uint64_t usec, void *ud);

/* The hook gets stdin, stdout and stderr only. Our own descriptors are all O_CLOEXEC, but a
 * library's may not be (libmosquitto's socket pair, a future one's), and the broker connection or
 * the control socket in a hook's hands would let it speak for the agent. */
static void close_from(int first) {
        long max;

        if (close_range((unsigned)first, ~0U, 0) == 0)
                return;
        max = sysconf(_SC_OPEN_MAX); /* kernels before 5.9 */
        if (max < 0 || max > 65536)
                max = 65536;
        for (int fd = first; fd < max; fd++)
                (void)close(fd);
}

/* Runs cfg->sessions.exec_argv in a new process group with the session in its environment. */
static int spawn(struct enforce *f, const struct slot *sl, const char *user, const char *session,
                 const char *reason, pid_t *ret) {
        const struct cfg *c = f->cfg;
        pid_t pid = fork();

        if (pid < 0)
                return -errno;
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                sigset_t all;

                sigemptyset(&all);
                sigprocmask(SIG_SETMASK, &all, NULL); /* the agent blocks what sd-event handles */
                /* and ignores SIGPIPE and SIGXFSZ, which exec keeps: the hook gets the defaults. */
                for (int sig = 1; sig < NSIG; sig++)
                        (void)signal(sig, SIG_DFL);
                (void)setpgid(0, 0);
                if (null >= 0) {
                        dup2(null, STDIN_FILENO);
                        dup2(null, STDOUT_FILENO);
                }
                close_from(3);
                setenv("SLOT", sl->id, 1);
                setenv("USER_ID", user, 1);
                setenv("SESSION", session, 1);
                setenv("REASON", reason, 1);
                setenv("NODE", c->node_id, 1);
                execv(c->sessions.exec_argv[0], c->sessions.exec_argv);
                _exit(127);
        }
        (void)setpgid(pid, pid); /* also from here: no race with the kill at the timeout */
        *ret = pid;
        return 0;
}

static void finish(struct enforce *f, struct slot *sl, int r, const char *msg) {
        char session[64];

        plat_strlcpy(session, sl->hook.session, sizeof(session));
        hook_clear(&sl->hook);
        f->done(sl, session, r, msg, f->userdata);
}

int enforce_start(struct enforce *f, struct slot *sl, const char *user, const char *session,
                  const char *reason) {
        const struct cfg *c = f->cfg;
        const struct cfg_slot *cs;
        struct enforce_hook *h;
        char msg[ENFORCE_MSG_MAX] = "", cg[PATH_MAX];
        uint64_t now;
        int r;

        if (!sl || sl->index >= c->n_slots)
                return -EINVAL;
        cs = sl->cfg;
        h = &sl->hook;
        if (h->pid > 0)
                return 0;
        plat_strlcpy(h->session, session, sizeof(h->session));
        switch (c->sessions.enforcement) {
        case CFG_ENFORCE_NONE:
                finish(f, sl, 0, "");
                return 0;
        case CFG_ENFORCE_CGROUP_KILL:
                /* The config refuses these; a path that got here anyway is never killed: "." would
                 * be every process on the host. */
                if (!cs->cgroup || hal_cgroup_normalize(cs->cgroup, cg, sizeof(cg)) <= 0) {
                        snprintf(msg, sizeof(msg),
                                 "slot %s: cgroup \"%.128s\" is not a cgroup below the cgroup mount; "
                                 "refusing to kill it",
                                 cs->id, cs->cgroup ? cs->cgroup : "");
                        finish(f, sl, -EINVAL, msg);
                        return -EINVAL;
                }
                r = hal_cgroup_kill(f->root_fd, cg, msg, sizeof(msg));
                if (r == -ENOENT)
                        r = 0; /* no such cgroup: nothing runs there */
                /* Without cgroup.kill (v1, old kernels) pids were signalled one by one: one that
                 * forked meanwhile escapes; then this is a failure and is tried again. */
                if (r > 0 && hal_cgroup_populated(f->root_fd, cg) == 1) {
                        snprintf(msg, sizeof(msg), "cgroup %s still has processes after %d were killed",
                                 cs->cgroup, r);
                        r = -EAGAIN;
                }
                if (r < 0 && !msg[0])
                        snprintf(msg, sizeof(msg), "cgroup %s: %s", cs->cgroup, strerror(-r));
                finish(f, sl, r < 0 ? r : 0, msg);
                return r < 0 ? r : 0;
        case CFG_ENFORCE_EXEC:
                break;
        }
        r = spawn(f, sl, user, session, reason, &h->pid);
        if (r >= 0) {
                r = sd_event_add_child(f->event, &h->child, h->pid, WEXITED, on_hook_exit, f);
                if (r >= 0) {
                        sd_event_now(f->event, CLOCK_MONOTONIC, &now);
                        r = sd_event_add_time(f->event, &h->timeout, CLOCK_MONOTONIC,
                                              now + c->sessions.enforcement_timeout_s * USEC_PER_SEC_U,
                                              100000, on_hook_timeout, f);
                }
                if (r >= 0) {
                        sd_event_source_set_description(h->child, cs->id);
                        return 0;
                }
                (void)kill(-h->pid, SIGKILL);
                (void)waitpid(h->pid, NULL, 0);
        }
        snprintf(msg, sizeof(msg), "cannot run %s: %s", c->sessions.exec_argv[0], strerror(-r));
        finish(f, sl, r, msg);
        return r;
}

/* The slot whose hook owns source s, or NULL. */
static struct slot *slot_of_source(struct enforce *f, sd_event_source *s) {
        for (size_t i = 0; i < f->table->n; i++) {
                struct slot *sl = slot_at(f->table, i);

                if (sl->hook.child == s || sl->hook.timeout == s)
                        return sl;
        }
        return NULL;
}

static int on_hook_exit(sd_event_source *s, const siginfo_t *si, void *ud) {
        struct enforce *f = ud;
        struct slot *sl = slot_of_source(f, s);
        const char *cmd = f->cfg->sessions.exec_argv[0];
        char msg[ENFORCE_MSG_MAX];

        if (!sl)
                return 0;
        if (si->si_code == CLD_EXITED && si->si_status == 0) {
                finish(f, sl, 0, "");
                return 0;
        }
        if (sl->hook.timed_out)
                snprintf(msg, sizeof(msg), "%s did not finish within %u s and was killed", cmd,
                         f->cfg->sessions.enforcement_timeout_s);
        else if (si->si_code == CLD_EXITED && si->si_status == 127)
                snprintf(msg, sizeof(msg), "%s could not be run (exit status 127)", cmd);
        else if (si->si_code == CLD_EXITED)
                snprintf(msg, sizeof(msg), "%s failed with exit status %d", cmd, si->si_status);
        else
                snprintf(msg, sizeof(msg), "%s was killed by signal %d", cmd, si->si_status);
        finish(f, sl, sl->hook.timed_out ? -ETIMEDOUT : -EIO, msg);
        return 0;
}

static int on_hook_timeout(sd_event_source *s, uint64_t usec, void *ud) {
        struct slot *sl = slot_of_source(ud, s);

        (void)usec;
        if (!sl)
                return 0;
        sl->hook.timed_out = true;
        (void)kill(-sl->hook.pid, SIGKILL); /* the exit is reported by on_hook_exit */
        return 0;
}
