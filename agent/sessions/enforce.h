/* enforce.h: ending a session's processes (cgroup.kill or an exec hook) before its slot is reused. */
#pragma once

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

#define ENFORCE_MSG_MAX 256

struct enforce;

/* How one enforcement ended: r = 0 done (the slot may be given out again), -errno failed, with a
 * message naming what failed (the hook's exit status, the cgroup file, the timeout). */
typedef void (*enforce_done_fn)(size_t slot, const char *session, int r, const char *msg, void *userdata);

/* SIGCHLD must be blocked (sd_event_add_child) before an exec hook can run. `root_fd` is the host
 * root the cgroup mount is found under (borrowed). */
int enforce_new(sd_event *e, int root_fd, enforce_done_fn done, void *userdata, struct enforce **ret);
/* Kills running hooks (SIGKILL to their process group) without calling done. NULL is a no-op. */
void enforce_free(struct enforce *f);

/* The mode, hook and timeout from cfg->sessions, and each slot's cgroup from cfg->slots; cfg is
 * borrowed until the next call or enforce_free. Hooks already running finish under the old one. */
void enforce_configure(struct enforce *f, const struct cfg *cfg);

/* Ends what runs in slot i for `session` of `user` because of `reason`. With "none" and
 * "cgroup_kill" the outcome is known at once and done() is called before this returns; an exec
 * hook runs in the background (its own process group, environment SLOT, USER_ID, SESSION,
 * REASON, NODE; stdin/stdout to /dev/null, stderr inherited) and done() is called from the loop
 * when it exits or is killed at the timeout. A second call for a slot whose hook still runs does
 * nothing. Returns 0, or -errno when nothing could be started (done() has then been called). */
int enforce_start(struct enforce *f, size_t slot, const char *user, const char *session, const char *reason);

bool enforce_running(const struct enforce *f, size_t slot);
