/* fuzz_sessions_fx.h: the real session service for fuzz targets: a scratch state dir on tmpfs, a pinned
 * clock, a fresh service per input, and the invariants every state must keep. */
#pragma once

#include "diag.h"
#include "sessions.h"

#include <stdbool.h>
#include <stdint.h>

/* Opens a fresh service (no state file: every slot FREE) on three slots s0..s2. cgroup_kill:
 * forced ends go through enforcement (cgroup.kill under an empty scratch root, so nothing is ever
 * killed), else none. The clock is pinned to the same instant for every input. Aborts when the
 * service cannot start: that is a bug here, not an input's fault. */
struct sessions *fxs_open(bool cgroup_kill);
/* Frees the service (writing what is pending); fxs_open may follow. */
void fxs_close(void);
/* Closes and reopens the service on its state file, as a restart does; aborts when what was
 * written is not what comes back (an expired reservation may come back free). */
struct sessions *fxs_restart(void);
/* Moves both pinned clocks on. */
void fxs_advance(uint64_t usec);
/* The group commits so far that failed (the state dir is tmpfs: none should). */
uint64_t fxs_commit_failures(void);

/* Aborts unless every slot is consistent: FREE and BLOCKED hold no user or session, the others
 * a well-formed user and a 32-hex-digit session; no user and no session is in two slots;
 * viewers within the cap. */
void fxs_check(const struct sessions *s);
/* Aborts unless slot `slot` holds `user` in RESERVED, ACTIVE or GRACE (an acknowledged reserve,
 * start or resume, after its commit). */
void fxs_check_holds(const struct sessions *s, const char *slot, const char *user);

/* The line handler the control socket would use: session ops to sessions_request as the daemon binds
 * them (agent_sessions_op), the slots and sessions lists, status as the sessions summary (in
 * "sessions"), anything else BAD_REQUEST. userdata: the struct sessions. */
cJSON *fxs_dispatch(const char *op, const cJSON *req, const struct plat_peer *peer, void *userdata,
                    bool *ret_held, const char **ret_code, char *msg, size_t msglen);
