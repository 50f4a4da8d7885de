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
                   "  status      version, uptime, broker link, sampling health and slots\n"
                   "  spec        the scale catalog, and each slot's plan and usage against its limits\n\n"
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
        cJSON_ArrayForEach(e, slots) {
                printf("    %-12s scale %-6s iface %s\n", str(e, "id"), str(e, "scale"), str(e, "iface"));
                if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(e, "conformant")))
                        printf("    %-12s does not meet its scale: %s\n", "", str(e, "nonconformant"));
        }
}

/* "[#####-----]" for a percentage (clamped to the bar; over 100 shows as full and '!'). */
static void bar(char *buf, size_t len, double pct) {
        int n = 10, filled = (int)(pct / 10 + 0.5);

        if (len < 14)
                return;
        if (filled > n)
                filled = n;
        if (filled < 0)
                filled = 0;
        buf[0] = '[';
        for (int i = 0; i < n; i++)
                buf[1 + i] = i < filled ? '#' : '-';
        buf[n + 1] = ']';
        buf[n + 2] = pct > 100 ? '!' : ' ';
        buf[n + 3] = '\0';
}

static void print_usage_cell(const cJSON *pct, const char *key) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(pct, key);
        char b[16];

        if (!cJSON_IsNumber(v)) {
                printf("  %-19s", "-");
                return;
        }
        bar(b, sizeof(b), v->valuedouble);
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
        if (optind != argc - 1 ||
            (strcmp(argv[optind], "status") != 0 && strcmp(argv[optind], "spec") != 0)) {
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
        if (strcmp(argv[optind], "spec") == 0)
                print_spec(cJSON_GetObjectItemCaseSensitive(r, "spec"));
        else
                print_status(cJSON_GetObjectItemCaseSensitive(r, "status"));
        cJSON_Delete(r);
        return 0;
}
