/* agent.h: the daemon's entry point: runs the event loop until SIGTERM/SIGINT. */
#pragma once

#include "ops.h"
#include "sessions.h"

#include <stdbool.h>

struct agent_options {
        const char *config_path;
        const char *root; /* host root for /proc and /sys ("/" in production) */
};

/* Returns the process exit code: 0 after a clean stop, 1 when start-up failed. Once per process
 * (the agent is static: a second call returns 1 at once). */
int agent_run(const struct agent_options *o);

/* Whether the daemon has a handler for op `id` of ops.h (test_agent_control asks it of every op). */
bool agent_answers(enum ops_id id);
/* The session service's op the daemon answers op `id` with; SESSIONS_OP_NONE for the agent's own
 * ops and the lists (tests and fuzz targets drive the service through it, as the daemon does). */
enum sessions_op agent_sessions_op(enum ops_id id);
