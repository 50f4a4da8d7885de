/* ctl.c: render-agentctl: field diagnostics over the agent's local control socket. */
#include "cleanup.h"
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
#define CTL_MAX_REPLY (4 * 1024 * 1024)

/* Exit codes: 0 ok, 1 the agent answered with an error, 2 usage, 3 agent unreachable. */
enum { EXIT_AGENT_ERROR = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

static void usage(FILE *f) {
        fprintf(f, "Usage: render-agentctl [--socket PATH] [--json] COMMAND\n"
                   "Field diagnostics for render-agent.\n\n"
                   "Commands:\n"
                   "  status      version, uptime, broker link, sampling health and slots\n\n"
                   "Options:\n"
                   "  -s, --socket PATH   control socket (default " CTL_DEFAULT_SOCKET ")\n"
                   "  -j, --json          print the agent's JSON reply as is\n"
                   "  -h, --help          this text\n\n"
                   "Exit status: 0 ok, 1 the agent refused the request, 2 usage, 3 agent unreachable.\n");
}

/* Sends one request line and reads one reply line. */
static int roundtrip(const char *path, const char *op, char **ret) {
        _cleanup_close_ int fd = plat_unix_connect(path);
        _cleanup_free_ char *buf = NULL;
        char req[128];
        size_t len = 0, cap = 0;
        int n;

        if (fd < 0)
                return fd;
        n = snprintf(req, sizeof(req), "{\"id\":1,\"op\":\"%s\"}\n", op);
        if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
                return -errno;
        for (;;) {
                ssize_t k;

                if (len + 4096 > cap) {
                        char *nb;

                        if (cap >= CTL_MAX_REPLY)
                                return -EMSGSIZE;
                        cap = cap ? cap * 2 : 8192;
                        nb = realloc(buf, cap + 1);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                }
                k = recv(fd, buf + len, cap - len, 0);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        return -ECONNRESET;
                len += (size_t)k;
                if (memchr(buf + len - (size_t)k, '\n', (size_t)k))
                        break;
        }
        buf[len] = '\0';
        *strchr(buf, '\n') = '\0';
        *ret = TAKE_PTR(buf);
        return 0;
}

static const char *str(const cJSON *o, const char *k) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
        return cJSON_IsString(v) ? v->valuestring : "-";
}

static double num(const cJSON *o, const char *k) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
        return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void print_status(const cJSON *s) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(s, "broker");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(s, "sampling");
        const cJSON *slots = cJSON_GetObjectItemCaseSensitive(s, "slots"), *e;
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
        if (*str(b, "last_error") && strcmp(str(b, "last_error"), "-") != 0)
                printf("  last err  %s\n", str(b, "last_error"));
        printf("  sampling  every %.0f ms, %.0f ticks, %.0f telemetry documents published\n",
               num(m, "interval_ms"), num(m, "ticks"), num(m, "telemetry_published"));
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(m, "errors"))
                printf("  read err  %s\n", e->valuestring);
        printf("  slots     %d\n", cJSON_GetArraySize(slots));
        cJSON_ArrayForEach(e, slots)
                printf("    %-12s scale %-6s iface %s\n", str(e, "id"), str(e, "scale"), str(e, "iface"));
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
        _cleanup_free_ char *reply = NULL;
        bool json = false;
        const cJSON *ok;
        cJSON *r;
        int c, rc;

        while ((c = getopt_long(argc, argv, "s:jh", opts, NULL)) >= 0) {
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
        if (optind != argc - 1 || strcmp(argv[optind], "status") != 0) {
                if (optind < argc)
                        fprintf(stderr, "render-agentctl: unknown command \"%s\"\n", argv[optind]);
                usage(stderr);
                return EXIT_USAGE;
        }
        rc = roundtrip(path, argv[optind], &reply);
        if (rc < 0) {
                fprintf(stderr, "render-agentctl: cannot talk to render-agent on %s: %s\n", path,
                        strerror(-rc));
                return EXIT_UNREACHABLE;
        }
        if (json) {
                printf("%s\n", reply);
                return 0;
        }
        r = cJSON_Parse(reply);
        ok = cJSON_GetObjectItemCaseSensitive(r, "ok");
        if (!cJSON_IsTrue(ok)) {
                const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "error");

                fprintf(stderr, "render-agentctl: %s: %s\n", str(e, "code"), str(e, "message"));
                cJSON_Delete(r);
                return EXIT_AGENT_ERROR;
        }
        print_status(cJSON_GetObjectItemCaseSensitive(r, "status"));
        cJSON_Delete(r);
        return 0;
}
