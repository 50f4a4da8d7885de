/* doctor.h: render-agentctl doctor's findings: each check's result (PASS, WARN, FAIL), its
 * evidence and its fix, printed for a technician or as JSON, and the exit status they make. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct cfg;

enum doctor_level {
        DOCTOR_PASS,
        DOCTOR_WARN,
        DOCTOR_FAIL,
};

#define DOCTOR_CHECKS_MAX 128
#define DOCTOR_TEXT_MAX 512

struct doctor_finding {
        enum doctor_level level;
        char check[32];                 /* a stable name: "config", "broker", "clock", ... */
        char evidence[DOCTOR_TEXT_MAX]; /* what was seen, with the figures */
        char fix[DOCTOR_TEXT_MAX];      /* what to do; "" for a pass */
};

struct doctor {
        struct doctor_finding f[DOCTOR_CHECKS_MAX];
        size_t n;
        size_t dropped; /* findings past DOCTOR_CHECKS_MAX (counted as a warning) */
};

/* Adds a finding. fix may be NULL (a pass needs none); evidence is printf-style. */
void doctor_add(struct doctor *d, enum doctor_level level, const char *check, const char *fix,
                const char *evidence_fmt, ...) __attribute__((format(printf, 5, 6)));

/* The worst level found (DOCTOR_PASS when none). */
enum doctor_level doctor_worst(const struct doctor *d);

/* The process exit status (the monitoring-plugin convention): 0 all pass, 1 the worst is a warning,
 * 2 a failure. */
int doctor_exit_status(const struct doctor *d);

/* "PASS", "WARN", "FAIL". Static. */
const char *doctor_level_str(enum doctor_level l);

/* The report for people: one line per check, its fix under it. */
void doctor_print(const struct doctor *d, FILE *f);

/* The report for scripts: {"v":1,"result":"WARN","agent_running":true,"checks":[{"check":..,
 * "result":..,"evidence":..,"fix":..},..]} (caller frees; NULL when out of memory). */
cJSON *doctor_json(const struct doctor *d, bool agent_running);

/* ---- the checks (doctor_local.c: this host's files and kernel; doctor_agent.c: the agent's view) */

/* Checks that need no agent: the clock, the state directory, the TLS files and the signing key,
 * the slots' cgroups and interfaces. `agent_uid` is the agent's user (the owner of its process;
 * this process's when it is not running). c may be NULL (the config did not load): only the clock
 * is checked. `warn_days`: a certificate expiring sooner is a warning. */
void doctor_local(struct doctor *d, const struct cfg *c, unsigned agent_uid, unsigned warn_days);

/* Checks on the agent's own status and spec replies (the "status" and "spec" members of its
 * answers; spec may be NULL): the broker link with the TLS layer's reason, the slots' conformance,
 * the spool and metering, the wall-clock steps, each slot's GPU. */
void doctor_agent(struct doctor *d, const cJSON *status, const cJSON *spec);

/* One slot's cgroup `cgroup` under the cgroup v2 mount root_fd (borrowed; named root_path in the
 * evidence): FAIL when missing or its cgroup.kill is not writable, WARN when it is not delegated to
 * agent_uid (no trusted.delegate / user.delegate xattr, and, for a non-root agent, cgroup.procs and
 * cgroup.subtree_control not its own), else PASS (doctor_cgroup.c). */
void doctor_cgroup(struct doctor *d, int root_fd, const char *root_path, const char *slot,
                   const char *cgroup, unsigned agent_uid);

/* When the agent is not running: can this host open a TCP connection to each broker (timeout_ms
 * each)? The TLS handshake is the agent's to report. */
void doctor_broker_reach(struct doctor *d, const struct cfg *c, int timeout_ms);
