/* enforce.h: ending a session's processes (cgroup.kill or an exec hook) before its slot is reused. */
#pragma once

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#define ENFORCE_MSG_MAX 256

struct enforce;
struct slot;
struct slot_table;

/* A slot's exec hook while it runs: a member of its slot object (slot.h), owned by this module. */
struct enforce_hook {
        pid_t pid; /* 0: none running */
        sd_event_source *child, *timeout;
        char session[64];
        bool timed_out;
};

/* How one enforcement ended: r = 0 done (the slot may be given out again), -errno failed, with a
 * message naming what failed (the hook's exit status, the cgroup file, the timeout). */
typedef void (*enforce_done_fn)(struct slot *sl, const char *session, int r, const char *msg,
                                void *userdata);

/* SIGCHLD must be blocked (sd_event_add_child) before an exec hook can run. `root_fd` is the host
 * root the cgroup mount is found under, `table` the slots hooks run for (both borrowed until
 * enforce_free; a slot whose hook runs must stay in the table until it ends). */
int enforce_new(sd_event *e, int root_fd, struct slot_table *table, enforce_done_fn done, void *userdata,
                struct enforce **ret);
/* Kills running hooks (SIGKILL to their process group) without calling done. NULL is a no-op. */
void enforce_free(struct enforce *f);

/* The mode, hook and timeout from cfg->sessions; cfg is borrowed until the next call or
 * enforce_free. Hooks already running finish under the old one. Each slot's cgroup comes from its
 * slot object's config. */
void enforce_configure(struct enforce *f, const struct cfg *cfg);

/* Ends what runs in slot sl for `session` of `user` because of `reason`. With "none" and
 * "cgroup_kill" the outcome is known at once and done() is called before this returns; an exec
 * hook runs in the background (its own process group, environment SLOT, USER_ID, SESSION,
 * REASON, NODE; stdin/stdout to /dev/null, stderr inherited) and done() is called from the loop
 * when it exits or is killed at the timeout. A second call for a slot whose hook still runs does
 * nothing. Returns 0, or -errno when nothing could be started (done() has then been called); -EINVAL without
 * calling done() for a slot (NULL) the config lacks. */
int enforce_start(struct enforce *f, struct slot *sl, const char *user, const char *session,
                  const char *reason);

/* Whether sl's exec hook still runs. */
bool enforce_running(const struct slot *sl);
