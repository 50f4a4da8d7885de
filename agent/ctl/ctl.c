/* ctl.c: render-agentctl: field diagnostics over the agent's local control socket. */
#include "cleanup.h"
#include "ctl_cmds.h"
#include "ctl_conn.h"
#include "unixsock.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define CTL_DEFAULT_SOCKET "/run/render-agent/agent.sock"

/* Exit codes: 0 ok, 1 the agent answered with an error, 2 usage, 3 agent unreachable. */
enum {
        EXIT_AGENT_ERROR = 1,
        EXIT_USAGE = 2,
        EXIT_UNREACHABLE = 3,
        EXIT_NO_CAPACITY = 4,
        EXIT_SLOW_DOWN = 5
};

static void usage(FILE *f) {
        fprintf(f, "Usage: render-agentctl [--socket PATH] [--json] COMMAND [ARGS]\n"
                   "Field diagnostics and session control for render-agent.\n\n"
                   "Diagnostics:\n"
                   "  status                 version, uptime, broker link, sampling, sessions and slots\n"
                   "  spec                   the scale catalog, and each slot's plan and usage\n"
                   "  slots                  every slot: state, user, session, deadlines, viewers\n"
                   "  sessions               every held session with its viewers and bytes\n"
                   "  events [--since SECONDS|TIME] [--follow]\n"
                   "                         recent events (sessions, alarms, over-cap), then live ones\n"
                   "  top                    live view of the host and each slot against its scale\n"
                   "                         (keys: c m g b s sort, q quits; a table once if not a tty)\n"
                   "  bundle [-o FILE] [--config PATH] [--journal-lines N] [--records N]\n"
                   "                         one tar.gz for a support ticket: no key, no secret\n"
                   "  doctor [--config PATH] [--warn-days N]\n"
                   "                         every check a technician would run: PASS / WARN / FAIL,\n"
                   "                         evidence and fix (exit 0 / 1 / 2); works without an agent\n\n"
                   "Sessions (TARGET: --session ID, --user USER or --slot SLOT; a bare word is a\n"
                   "session id when it is 32 hex digits, else a user):\n"
                   "  reserve USER [--slot SLOT] [--client-ip IP] [--project P] [--app A]\n"
                   "  start TARGET           the reserved session starts streaming\n"
                   "  heartbeat TARGET [--input]\n"
                   "  client-lost TARGET     the client went away: the reconnect window opens\n"
                   "  end TARGET [--reason R]\n"
                   "  disconnect TARGET [--reason R]   an operator ends the session (enforced)\n"
                   "  viewer-join TARGET --viewer V [--role R]\n"
                   "  viewer-leave TARGET --viewer V\n"
                   "  release --slot SLOT    give back an ending slot whose enforcement keeps failing\n"
                   "  drain | undrain        stop or resume taking new users on this node\n"
                   "  unblock SLOT           free a slot blocked after unreadable state (check it first)\n\n"
                   "Without an agent:\n"
                   "  enroll [--config PATH] [--node ID] [--dir DIR] [--force]\n"
                   "                         make the device key (0600) and a CSR (CN = node id)\n"
                   "  verify [--cert FILE | --key FILE] [--json] [FILE|-]\n"
                   "                         check metering records: signatures, seq gaps, duplicates, "
                   "chain\n\n"
                   "Options:\n"
                   "  -s, --socket PATH   control socket (default " CTL_DEFAULT_SOCKET
                   ", or $RENDER_AGENT_SOCKET)\n"
                   "  -j, --json          print the agent's JSON reply as is\n"
                   "  -h, --help          this text\n\n"
                   "Exit status: 0 ok, 1 the agent refused the request, 2 usage, 3 agent unreachable,\n"
                   "4 no capacity (NO_IDLE, DRAINING, STOPPING: try another node), 5 SLOW_DOWN (retry).\n");
}

static const char *str(const cJSON *o, const char *k) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
        return cJSON_IsString(v) ? v->valuestring : "-";
}

static double num(const cJSON *o, const char *k) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
        return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* The agent's own cost ("self"); a part the agent could not read is absent there and here. */
static void print_cost(const cJSON *self, double up) {
        const char *sep = "";

        if (!cJSON_IsObject(self))
                return;
        printf("  cost     ");
        if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(self, "cpu_usec"))) {
                double cpu = num(self, "cpu_usec") / 1e6;

                printf(" CPU %.2f s", cpu);
                if (up > 0)
                        printf(" (%.3f%% of a core)", 100 * cpu / up);
                printf(", RSS %.1f MiB (peak %.1f MiB)", num(self, "rss_bytes") / 1048576,
                       num(self, "peak_rss_bytes") / 1048576);
                sep = ";";
        }
        if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(self, "tick_usec"))) {
                printf("%s tick %.0f us (max %.0f us in the last minute)", sep, num(self, "tick_usec"),
                       num(self, "tick_max_usec"));
                sep = ";";
        }
        if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(self, "spool_records"))) {
                printf("%s spool %.0f unacked, %.0f bytes", sep, num(self, "spool_records"),
                       num(self, "spool_bytes"));
                sep = ";";
        }
        printf("%s\n", *sep ? "" : " unknown (not read yet)");
}

static void print_status(const cJSON *s) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(s, "broker");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(s, "sampling");
        const cJSON *slots = cJSON_GetObjectItemCaseSensitive(s, "slots"), *e;
        const cJSON *sess = cJSON_GetObjectItemCaseSensitive(s, "sessions");
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(s, "metering");
        double up = num(s, "uptime_s");

        printf("render-agent %s (pid %.0f), node %s in %s, %s/%s\n", str(s, "version"), num(s, "pid"),
               str(s, "node"), str(s, "region"), str(s, "arch"), str(s, "class"));
        printf("  up        %.0fd %02.0f:%02.0f:%02.0f since %s\n", up / 86400,
               (double)((long)up % 86400 / 3600), (double)((long)up % 3600 / 60), (double)((long)up % 60),
               str(s, "started"));
        printf("  config    %s\n", str(s, "config"));
        printf("  broker    %s:%.0f %s, %s", str(b, "host"), num(b, "port"),
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "tls")) ? "TLS" : "NO TLS", str(b, "state"));
        if (num(b, "connects") > 0)
                printf(" (MQTT %s, %.0f connects)", num(b, "mqtt_version") == 5 ? "5" : "3.1.1",
                       num(b, "connects"));
        printf("\n");
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(b, "protocols")) printf(
                "  mqtt      %s: MQTT %s%s (%s)\n", e->string, str(e, "mqtt"),
                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "known")) ? "" : ", not answered yet",
                str(e, "why"));
        if (*str(b, "last_error") && strcmp(str(b, "last_error"), "-") != 0)
                printf("  last err  %s\n", str(b, "last_error"));
        printf("  sampling  every %.0f ms, %.0f ticks, %.0f telemetry documents published\n",
               num(m, "interval_ms"), num(m, "ticks"), num(m, "telemetry_published"));
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(m, "errors"))
                printf("  read err  %s\n", e->valuestring);
        print_cost(cJSON_GetObjectItemCaseSensitive(s, "self"), up);
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(mt, "no_consumer")))
                printf("  metering  NO CONSUMER since %s: %.0f records held in the spool, next offer in "
                       "%.1f s\n",
                       str(mt, "no_consumer_since"),
                       num(cJSON_GetObjectItemCaseSensitive(mt, "spool"), "pending"),
                       num(mt, "next_offer_s"));
        if (sess) {
                const cJSON *n = cJSON_GetObjectItemCaseSensitive(sess, "slots");

                printf("  sessions  %.0f active, %.0f grace, %.0f reserved, %.0f ending, %.0f free, %.0f "
                       "blocked%s\n",
                       num(n, "active"), num(n, "grace"), num(n, "reserved"), num(n, "ending"),
                       num(n, "free"), num(n, "blocked"),
                       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sess, "draining")) ? "; DRAINING" : "");
                if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(sess, "last_error")))
                        printf("  last err  %s\n", str(sess, "last_error"));
        }
        printf("  slots     %d\n", cJSON_GetArraySize(slots));
        cJSON_ArrayForEach(e, slots) {
                printf("    %-12s scale %-6s %-9s %-16s iface %s\n", str(e, "id"), str(e, "scale"),
                       str(e, "state"), str(e, "user"), str(e, "iface"));
                if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(e, "conformant")))
                        printf("    %-12s does not meet its scale: %s\n", "", str(e, "nonconformant"));
        }
}

static void print_usage_cell(const cJSON *pct, const char *key) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(pct, key);
        char b[16];

        if (!cJSON_IsNumber(v)) {
                printf("  %-19s", "-");
                return;
        }
        ctl_bar(b, sizeof(b), v->valuedouble);
        printf("  %s%5.0f%%", b, v->valuedouble);
}

static void print_spec(const cJSON *s) {
        const cJSON *cat = cJSON_GetObjectItemCaseSensitive(s, "catalog");
        const cJSON *host = cJSON_GetObjectItemCaseSensitive(s, "host");
        const cJSON *slots = cJSON_GetObjectItemCaseSensitive(s, "slots"), *e;

        printf("catalog (minimums; bandwidth is a cap)\n");
        printf("  %-10s %-8s %5s %9s %11s %9s %9s\n", "scale", "class", "vCPU", "RAM GB", "FP32 TFLOPS",
               "VRAM GB", "Mbps");
        cJSON_ArrayForEach(e, cat) {
                printf("  %-10s %-8s %5.0f %9.1f", str(e, "name"), str(e, "class"), num(e, "vcpu"),
                       num(e, "ram_bytes") / 1e9);
                if (cJSON_GetObjectItemCaseSensitive(e, "gpu_fp32_tflops"))
                        printf(" %11.1f %9.1f", num(e, "gpu_fp32_tflops"), num(e, "vram_bytes") / 1e9);
                else
                        printf(" %11s %9s", "-", "-");
                printf(" %9.1f%s\n", num(e, "bandwidth_mbps"),
                       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "published")) ? "" : "  (config)");
        }
        if (host)
                printf("\nhost: %s, %.0f vCPU, %.1f GB RAM, %.0f GPU(s)\n", str(host, "class"),
                       num(host, "vcpu"), num(host, "ram_bytes") / 1e9, num(host, "gpus"));
        printf("\n  %-12s %-8s  %-19s  %-19s  %-19s  %-19s  %-19s\n", "slot", "scale", "cpu", "memory",
               "vram", "gpu", "bandwidth");
        cJSON_ArrayForEach(e, slots) {
                const cJSON *pct = cJSON_GetObjectItemCaseSensitive(e, "usage_pct");
                const cJSON *conf = cJSON_GetObjectItemCaseSensitive(e, "conformant");

                printf("  %-12s %-8s", str(e, "id"), str(e, "scale"));
                print_usage_cell(pct, "cpu");
                print_usage_cell(pct, "memory");
                print_usage_cell(pct, "vram");
                print_usage_cell(pct, "gpu");
                print_usage_cell(pct, "bandwidth");
                printf("\n");
                if (cJSON_IsFalse(conf))
                        printf("  %-21s does not meet its scale: %s\n", "", str(e, "nonconformant"));
                else if (!conf)
                        printf("  %-21s not planned yet (the first sample is still to come)\n", "");
                if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "bandwidth_over_cap")))
                        printf("  %-21s over its bandwidth cap (%.3f Mbps)\n", "", num(e, "bandwidth_mbps"));
        }
}

static void print_time_left(const cJSON *e, const char *key, const char *label) {
        if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, key)))
                printf(" %s %s", label, str(e, key));
}

/* One line per slot; `session_view`: the sessions listing (slot named "slot", bytes shown). */
static void print_slot_line(const cJSON *e, bool session_view) {
        const cJSON *v, *viewers = cJSON_GetObjectItemCaseSensitive(e, "viewers"), *b;

        printf("  %-10s %-7s %-9s %-16s %-32s", str(e, session_view ? "slot" : "id"), str(e, "scale"),
               str(e, "state"), str(e, "user"), str(e, "session"));
        print_time_left(e, "started", "since");
        print_time_left(e, "deadline", "until");
        if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "reason")))
                printf(" (%s)", str(e, "reason"));
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "enforcing")))
                printf(" enforcing");
        printf("\n");
        if (cJSON_GetArraySize(viewers) > 0) {
                printf("  %-10s viewers:", "");
                cJSON_ArrayForEach(v, viewers) printf(" %s (%s)", str(v, "user"), str(v, "role"));
                printf("\n");
        }
        b = cJSON_GetObjectItemCaseSensitive(e, "bytes");
        if (b)
                printf("  %-10s bytes: player %.0f, viewers %.0f, push %.0f\n", "", num(b, "player"),
                       num(b, "viewers"), num(b, "push"));
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(e, "encoder_sessions"))
                printf("  %-10s nvenc: pid %.0f %s %.0fx%.0f, %.0f fps, latency %.1f ms\n", "",
                       num(v, "pid"), str(v, "codec"), num(v, "width"), num(v, "height"), num(v, "avg_fps"),
                       num(v, "avg_latency_us") / 1000.0);
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(e, "fbc_sessions"))
                printf("  %-10s nvfbc: pid %.0f %s %.0fx%.0f, %.0f fps, latency %.1f ms\n", "",
                       num(v, "pid"), str(v, "type"), num(v, "width"), num(v, "height"), num(v, "avg_fps"),
                       num(v, "avg_latency_us") / 1000.0);
}

static void print_slot_header(bool session_view) {
        printf("  %-10s %-7s %-9s %-16s %-32s\n", session_view ? "slot" : "id", "scale", "state", "user",
               "session");
}

static void print_list(const cJSON *list, bool session_view) {
        const cJSON *e;

        if (session_view && cJSON_GetArraySize(list) == 0) {
                printf("no sessions\n");
                return;
        }
        print_slot_header(session_view);
        cJSON_ArrayForEach(e, list) print_slot_line(e, session_view);
}

/* The reply to a session op: what the slot is now. */
static void print_op_reply(const char *op, const cJSON *r) {
        if (cJSON_GetObjectItemCaseSensitive(r, "draining")) {
                printf("node is %s\n", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "draining"))
                                               ? "draining: new users are refused"
                                               : "taking new users");
                return;
        }
        printf("%s: slot %s is %s", op, str(r, "slot"), str(r, "state"));
        if (strcmp(str(r, "user"), "-"))
                printf(", user %s", str(r, "user"));
        if (strcmp(str(r, "session"), "-"))
                printf(", session %s", str(r, "session"));
        if (strcmp(str(r, "project"), "-"))
                printf(", project %s", str(r, "project"));
        if (strcmp(str(r, "app"), "-"))
                printf(", app %s", str(r, "app"));
        print_time_left(r, "deadline", "until");
        printf("\n");
}

static int exit_code_for(const char *code) {
        if (!strcmp(code, "NO_IDLE") || !strcmp(code, "DRAINING") || !strcmp(code, "STOPPING"))
                return EXIT_NO_CAPACITY;
        if (!strcmp(code, "SLOW_DOWN"))
                return EXIT_SLOW_DOWN;
        return EXIT_AGENT_ERROR;
}

/* A session id is 32 lower-case hex digits; anything else given bare names a user. */
static bool looks_like_session(const char *s) {
        return strlen(s) == 32 && strspn(s, "0123456789abcdef") == 32;
}

struct command {
        const char *name; /* as typed */
        const char *op;   /* on the wire */
        bool target;      /* takes TARGET */
        bool user_arg;    /* reserve: USER first */
        bool slot_arg;    /* unblock: SLOT first */
};

static const struct command commands[] = {
        { "status", "status", false, false, false },
        { "spec", "spec", false, false, false },
        { "slots", "slots", false, false, false },
        { "sessions", "sessions", false, false, false },
        { "reserve", "reserve", false, true, false },
        { "start", "start", true, false, false },
        { "heartbeat", "heartbeat", true, false, false },
        { "client-lost", "client_lost", true, false, false },
        { "end", "end", true, false, false },
        { "disconnect", "disconnect", true, false, false },
        { "viewer-join", "viewer_join", true, false, false },
        { "viewer-leave", "viewer_leave", true, false, false },
        { "release", "release", true, false, false },
        { "drain", "drain", false, false, false },
        { "undrain", "undrain", false, false, false },
        { "unblock", "unblock", false, false, true },
};

/* The request for a command and its arguments (argv[0] is the command); NULL after a usage error. */
static cJSON *build_request(const struct command *cmd, int argc, char **argv) {
        static const struct option opts[] = {
                { "session", required_argument, NULL, 'S' },
                { "user", required_argument, NULL, 'u' },
                { "slot", required_argument, NULL, 'l' },
                { "client-ip", required_argument, NULL, 'c' },
                { "reason", required_argument, NULL, 'r' },
                { "viewer", required_argument, NULL, 'v' },
                { "role", required_argument, NULL, 'R' },
                { "input", no_argument, NULL, 'i' },
                { "project", required_argument, NULL, 'P' },
                { "app", required_argument, NULL, 'a' },
                {},
        };
        cJSON *req = cJSON_CreateObject();
        int c;

        cJSON_AddNumberToObject(req, "id", 1);
        cJSON_AddStringToObject(req, "op", cmd->op);
        optind = 0; /* 0, not 1: glibc then forgets the "+" scan of main's options */
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                const char *key = c == 'S'   ? "session"
                                  : c == 'u' ? "user"
                                  : c == 'l' ? "slot"
                                  : c == 'c' ? "client_ip"
                                  : c == 'r' ? "reason"
                                  : c == 'v' ? "viewer"
                                  : c == 'R' ? "role"
                                  : c == 'P' ? "project"
                                  : c == 'a' ? "app"
                                             : NULL;

                if (c == 'i') {
                        cJSON_AddTrueToObject(req, "input");
                        continue;
                }
                if (!key) {
                        cJSON_Delete(req);
                        return NULL;
                }
                cJSON_DeleteItemFromObject(req, key);
                cJSON_AddStringToObject(req, key, optarg);
        }
        for (; optind < argc; optind++) {
                const char *a = argv[optind];
                const char *key = cmd->user_arg   ? "user"
                                  : cmd->slot_arg ? "slot"
                                  : cmd->target   ? (looks_like_session(a) ? "session" : "user")
                                                  : NULL;

                if (!key || cJSON_GetObjectItemCaseSensitive(req, key)) {
                        fprintf(stderr, "render-agentctl: %s: unexpected argument \"%s\"\n", cmd->name, a);
                        cJSON_Delete(req);
                        return NULL;
                }
                cJSON_AddStringToObject(req, key, a);
        }
        return req;
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "socket", required_argument, NULL, 's' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *path =
                getenv("RENDER_AGENT_SOCKET") ? getenv("RENDER_AGENT_SOCKET") : CTL_DEFAULT_SOCKET;
        _cleanup_free_ char *reply = NULL, *text = NULL;
        const struct command *cmd = NULL;
        bool json = false;
        const cJSON *ok;
        cJSON *r, *req;
        int c, rc;

        /* "+": options after the command are the command's. */
        while ((c = getopt_long(argc, argv, "+s:jh", opts, NULL)) >= 0) {
                switch (c) {
                case 's':
                        path = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return EXIT_USAGE;
                }
        }
        /* These two work without an agent: key enrolment and checking published records. */
        if (optind < argc && !strcmp(argv[optind], "enroll"))
                return ctl_enroll(argc - optind, argv + optind);
        if (optind < argc && !strcmp(argv[optind], "verify"))
                return ctl_verify(argc - optind, argv + optind);
        if (optind < argc && !strcmp(argv[optind], "events"))
                return ctl_events(path, json, argc - optind, argv + optind);
        if (optind < argc && !strcmp(argv[optind], "top"))
                return ctl_top(path, argc - optind, argv + optind);
        if (optind < argc && !strcmp(argv[optind], "bundle"))
                return ctl_bundle(path, argc - optind, argv + optind);
        if (optind < argc && !strcmp(argv[optind], "doctor"))
                return ctl_doctor(argc - optind, argv + optind, path, json, ctl_conn_roundtrip);
        for (size_t i = 0; optind < argc && i < ELEMENTSOF(commands); i++)
                if (!strcmp(argv[optind], commands[i].name))
                        cmd = &commands[i];
        if (!cmd) {
                if (optind < argc)
                        fprintf(stderr, "render-agentctl: unknown command \"%s\"\n", argv[optind]);
                usage(stderr);
                return EXIT_USAGE;
        }
        req = build_request(cmd, argc - optind, argv + optind);
        if (!req) {
                usage(stderr);
                return EXIT_USAGE;
        }
        text = cJSON_PrintUnformatted(req);
        cJSON_Delete(req);
        if (!text)
                return EXIT_AGENT_ERROR;
        rc = ctl_conn_roundtrip(path, text, &reply);
        if (rc < 0) {
                fprintf(stderr, "render-agentctl: cannot talk to render-agent on %s: %s\n", path,
                        strerror(-rc));
                return EXIT_UNREACHABLE;
        }
        r = cJSON_Parse(reply);
        ok = cJSON_GetObjectItemCaseSensitive(r, "ok");
        if (!cJSON_IsTrue(ok)) {
                const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "error");

                rc = exit_code_for(str(e, "code"));
                if (json)
                        printf("%s\n", reply);
                else
                        fprintf(stderr, "render-agentctl: %s: %s\n", str(e, "code"), str(e, "message"));
                cJSON_Delete(r);
                return rc;
        }
        if (json)
                printf("%s\n", reply);
        else if (!strcmp(cmd->op, "spec"))
                print_spec(cJSON_GetObjectItemCaseSensitive(r, "spec"));
        else if (!strcmp(cmd->op, "status"))
                print_status(cJSON_GetObjectItemCaseSensitive(r, "status"));
        else if (!strcmp(cmd->op, "slots") || !strcmp(cmd->op, "sessions"))
                print_list(cJSON_GetObjectItemCaseSensitive(r, cmd->op), !strcmp(cmd->op, "sessions"));
        else
                print_op_reply(cmd->name, r);
        cJSON_Delete(r);
        return 0;
}
