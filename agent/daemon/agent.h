/* agent.h: the daemon's entry point: runs the event loop until SIGTERM/SIGINT. */
#pragma once

struct agent_options {
        const char *config_path;
        const char *root; /* host root for /proc and /sys ("/" in production) */
};

/* Returns the process exit code: 0 after a clean stop, 1 when start-up failed. */
int agent_run(const struct agent_options *o);
