/* ctl_doctor.c: render-agentctl doctor: every check a technician would run on a render host, with
 * the agent's own view over its socket when it runs, and this host's files and kernel either way. */
#include "ctl_cmds.h"

#include "cleanup.h"
#include "config.h"
#include "doctor.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WARN_DAYS_DEFAULT 14
#define BROKER_TIMEOUT_MS 3000

static void usage(FILE *f) {
        fprintf(f,
                "Usage: render-agentctl [--socket PATH] doctor [--config PATH] [--warn-days N] [--json]\n"
                "Runs every check a technician would: the agent, its config, the broker link and TLS,\n"
                "the certificate and its expiry, the clock's sync state, the spool, the signing key,\n"
                "slot cgroups and interfaces, GPUs and the state directory. Each check says PASS,\n"
                "WARN or FAIL with the evidence and the fix. Without a running agent it says so and\n"
                "runs the checks that need none.\n\n"
                "  -c, --config PATH   the config to check (default: the running agent's, "
                "else " CFG_DEFAULT_PATH ")\n"
                "  -w, --warn-days N   warn of a certificate expiring within N days (default %d)\n"
                "  -j, --json          the findings as one JSON object\n"
                "  -h, --help          this text\n\n"
                "Exit status: 0 every check passed, 1 the worst is a warning, 2 a check failed,\n"
                "3 doctor could not run (usage).\n",
                WARN_DAYS_DEFAULT);
}

/* The member `key` of the agent's reply to {"op":op}, detached (caller frees); NULL when the agent
 * does not answer (why in err) or refused. */
static cJSON *ask(ctl_roundtrip_fn rt, const char *path, const char *op, const char *key, char *err,
                  size_t err_len) {
        _cleanup_free_ char *reply = NULL;
        char req[64];
        cJSON *r, *v;
        int rc;

        snprintf(req, sizeof(req), "{\"id\":1,\"op\":\"%s\"}", op);
        rc = rt(path, req, &reply);
        if (rc < 0) {
                snprintf(err, err_len, "%s", strerror(-rc));
                return NULL;
        }
        r = cJSON_Parse(reply);
        v = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok")) ? cJSON_DetachItemFromObject(r, key)
                                                                    : NULL;
        if (!v)
                snprintf(err, err_len, "the agent did not answer \"%s\": %.200s", op, reply);
        cJSON_Delete(r);
        return v;
}

static void check_agent(struct doctor *d, const char *path, const cJSON *status, const char *err) {
        if (status)
                doctor_add(d, DOCTOR_PASS, "agent", NULL,
                           "render-agent %s (pid %.0f) answers on %s, up %.0f s",
                           cJSON_GetStringValue(cJSON_GetObjectItem(status, "version")),
                           cJSON_GetNumberValue(cJSON_GetObjectItem(status, "pid")), path,
                           cJSON_GetNumberValue(cJSON_GetObjectItem(status, "uptime_s")));
        else
                doctor_add(d, DOCTOR_FAIL, "agent",
                           "start it (systemctl start render-agent) and read why it stopped (journalctl -u "
                           "render-agent -e)",
                           "the agent is not running or not answering on %s (%s): only the checks that need "
                           "no agent were run",
                           path, err);
}

static struct cfg *check_config(struct doctor *d, const char *path) {
        struct cfg_problems p = { 0 };
        struct cfg *c = NULL;

        if (cfg_load(path, &c, &p) < 0) {
                doctor_add(d, DOCTOR_FAIL, "config",
                           "correct it (render-agent --check-config shows each problem)", "%s%s%s%s",
                           p.n ? p.msgs[0] : path, p.n > 1 ? "; " : "", p.n > 1 ? p.msgs[1] : "",
                           p.n > 2 ? "; ..." : "");
                cfg_problems_done(&p);
                return NULL;
        }
        doctor_add(d, DOCTOR_PASS, "config", NULL, "%s: valid, node %s, %zu slot(s)", path, c->node_id,
                   c->n_slots);
        cfg_problems_done(&p);
        return c;
}

/* The agent's user: the owner of its process, else ours. */
static unsigned agent_uid(const cJSON *status) {
        const cJSON *pid = cJSON_GetObjectItemCaseSensitive(status, "pid");
        char proc[64];
        struct stat st;

        if (!cJSON_IsNumber(pid))
                return geteuid();
        snprintf(proc, sizeof(proc), "/proc/%.0f", pid->valuedouble);
        return stat(proc, &st) == 0 ? st.st_uid : geteuid();
}

int ctl_doctor(int argc, char **argv, const char *socket_path, bool json, ctl_roundtrip_fn rt) {
        static const struct option opts[] = {
                { "config", required_argument, NULL, 'c' },
                { "warn-days", required_argument, NULL, 'w' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_free_ struct doctor *d = calloc(1, sizeof(*d));
        const char *config = NULL;
        unsigned long warn_days = WARN_DAYS_DEFAULT;
        cJSON *status, *spec;
        struct cfg *c;
        char err[300] = "", end;
        int o, rc;

        if (!d)
                return 3;
        optind = 0;
        while ((o = getopt_long(argc, argv, "c:w:jh", opts, NULL)) >= 0) {
                switch (o) {
                case 'c':
                        config = optarg;
                        break;
                case 'w':
                        if (sscanf(optarg, "%lu%c", &warn_days, &end) != 1 || warn_days > 3650) {
                                fprintf(stderr,
                                        "render-agentctl doctor: --warn-days \"%s\": not a number of days "
                                        "(0..3650)\n",
                                        optarg);
                                return 3;
                        }
                        break;
                case 'j':
                        json = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 3;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "render-agentctl doctor: unexpected argument \"%s\"\n", argv[optind]);
                usage(stderr);
                return 3;
        }
        status = ask(rt, socket_path, "status", "status", err, sizeof(err));
        spec = status ? ask(rt, socket_path, "spec", "spec", err, sizeof(err)) : NULL;
        check_agent(d, socket_path, status, err);
        if (!config)
                config = cJSON_GetStringValue(cJSON_GetObjectItem(status, "config"));
        if (!config)
                config = CFG_DEFAULT_PATH;
        c = check_config(d, config);
        doctor_local(d, c, agent_uid(status), (unsigned)warn_days);
        if (status)
                doctor_agent(d, status, spec);
        else if (c)
                doctor_broker_reach(d, c, BROKER_TIMEOUT_MS);
        if (json) {
                cJSON *j = doctor_json(d, status != NULL);
                _cleanup_free_ char *text = j ? cJSON_PrintUnformatted(j) : NULL;

                cJSON_Delete(j);
                if (text)
                        printf("%s\n", text);
        } else {
                doctor_print(d, stdout);
        }
        rc = doctor_exit_status(d);
        cJSON_Delete(status);
        cJSON_Delete(spec);
        cfg_free(c);
        return rc;
}
