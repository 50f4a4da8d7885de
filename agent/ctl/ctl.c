/* ctl.c: render-agentctl: field diagnostics over the agent's local control socket. */
#include "cleanup.h"
#include "ctl_cmds.h"
#include "ctl_conn.h"
#include "ctl_ops.h"
#include "unixsock.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Exit codes: 0 ok, 1 the agent answered with an error, 2 usage, 3 agent unreachable. */
enum {
        EXIT_AGENT_ERROR = 1,
        EXIT_USAGE = 2,
        EXIT_UNREACHABLE = 3,
        EXIT_NO_CAPACITY = 4,
        EXIT_SLOW_DOWN = 5
};

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

/* The request for a command and its arguments (argv[0] is the command); NULL after a usage error. */
static cJSON *build_request(const struct ops_entry *cmd, int argc, char **argv) {
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
        cJSON_AddStringToObject(req, "op", cmd->name);
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
                const char *key = cmd->ctl_args == OPS_CTL_USER   ? "user"
                                  : cmd->ctl_args == OPS_CTL_SLOT ? "slot"
                                  : cmd->ctl_args == OPS_CTL_TARGET
                                          ? (looks_like_session(a) ? "session" : "user")
                                          : NULL;

                if (!key || cJSON_GetObjectItemCaseSensitive(req, key)) {
                        fprintf(stderr, "render-agentctl: %s: unexpected argument \"%s\"\n", cmd->ctl, a);
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
        const struct ops_entry *cmd = NULL;
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
                        ctl_ops_usage(stdout);
                        return 0;
                default:
                        ctl_ops_usage(stderr);
                        return EXIT_USAGE;
                }
        }
        /* These two work without an agent: key enrolment and checking published records. */
        if (optind < argc && !strcmp(argv[optind], "enroll"))
                return ctl_enroll(argc - optind, argv + optind);
        if (optind < argc && !strcmp(argv[optind], "verify"))
                return ctl_verify(argc - optind, argv + optind);
        if (optind < argc && !strcmp(argv[optind], "top"))
                return ctl_top(path, argc - optind, argv + optind);
        if (optind < argc && !strcmp(argv[optind], "bundle"))
                return ctl_bundle(path, argc - optind, argv + optind);
        if (optind < argc && !strcmp(argv[optind], "doctor"))
                return ctl_doctor(argc - optind, argv + optind, path, json, ctl_conn_roundtrip);
        if (optind < argc)
                cmd = ctl_ops_find(argv[optind]);
        if (cmd && cmd->id == OP_EVENTS) /* it streams: a command of its own */
                return ctl_events(path, json, argc - optind, argv + optind);
        if (!cmd) {
                if (optind < argc)
                        fprintf(stderr, "render-agentctl: unknown command \"%s\"\n", argv[optind]);
                ctl_ops_usage(stderr);
                return EXIT_USAGE;
        }
        req = build_request(cmd, argc - optind, argv + optind);
        if (!req) {
                ctl_ops_usage(stderr);
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
        else if (cmd->id == OP_SPEC)
                print_spec(cJSON_GetObjectItemCaseSensitive(r, "spec"));
        else if (cmd->id == OP_STATUS)
                print_status(cJSON_GetObjectItemCaseSensitive(r, "status"));
        else if (cmd->id == OP_SLOTS || cmd->id == OP_SESSIONS)
                print_list(cJSON_GetObjectItemCaseSensitive(r, cmd->name), cmd->id == OP_SESSIONS);
        else
                print_op_reply(cmd->ctl, r);
        cJSON_Delete(r);
        return 0;
}
