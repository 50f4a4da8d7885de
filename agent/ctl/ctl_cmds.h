/* ctl_cmds.h: render-agentctl commands beyond a single request: enroll and verify (no agent needed),
 * doctor (with or without one), events, top and bundle (over the control socket). */
#pragma once

#include <stdbool.h>

/* render-agentctl's exit statuses (see its --help). */
enum {
        CTL_EXIT_AGENT_ERROR = 1,
        CTL_EXIT_USAGE = 2,
        CTL_EXIT_UNREACHABLE = 3,
};

/* Each takes the command's own arguments (argv[0] is the command's name) and returns the process's
 * exit status: 0 ok, 1 a failure found or the work refused, 2 usage. They print to stdout/stderr. */

/* enroll [--config PATH] [--node ID] [--dir DIR] [--force]: makes the device key DIR/device.key
 * (P-256, mode 0600; an existing key is kept unless --force) and DIR/device.csr (CN = node id). */
int ctl_enroll(int argc, char **argv);

/* verify [--cert FILE | --key FILE] [--json] [FILE|-]: checks a stream of metering records, one
 * JWS per line: signatures, per-node seq gaps and duplicates, and the hash chain. */
int ctl_verify(int argc, char **argv);

/* events [--since SECONDS|TIME] [--follow]: the agent's recent events (its in-memory history), then
 * with --follow each new one as it happens until the agent closes the stream. */
int ctl_events(const char *socket, bool json, int argc, char **argv);

/* top: a live view of the host and its slots, refreshed every second (q quits); a plain table
 * once when stdout is not a terminal. */
int ctl_top(const char *socket, int argc, char **argv);

/* bundle [-o FILE] [--config PATH] [--journal-lines N] [--records N]: one tar.gz for a support
 * ticket (no key, no secret, no record payload); prints its name. */
int ctl_bundle(const char *socket, int argc, char **argv);

/* Sends one request line to the agent's socket at path and reads one reply line (caller frees
 * *ret): ctl_conn_roundtrip. 0 or -errno. */
typedef int (*ctl_roundtrip_fn)(const char *path, const char *req, char **ret);

/* doctor [--config PATH] [--warn-days N] [--json]: every check a technician would run, each PASS,
 * WARN or FAIL with evidence and fix, using the agent on socket_path when it answers. Returns 0
 * all passed, 1 the worst is a warning, 2 a failure, 3 usage (the monitoring-plugin convention). */
int ctl_doctor(int argc, char **argv, const char *socket_path, bool json, ctl_roundtrip_fn rt);
