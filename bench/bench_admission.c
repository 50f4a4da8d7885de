/* bench_admission.c: admission cycles (reserve + start + end) per second and op latency, over the
 * control socket of a real render-agent whose state is flushed to disk (fdatasync) on every group commit. */
#include "cleanup.h"
#include "unixsock.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 64
#define MAX_SAMPLES (4 * 1024 * 1024)

struct client {
        int fd;
        int step; /* 0 reserve, 1 start, 2 end */
        char session[40];
        uint64_t sent_ns, cycle_start_ns;
        char buf[4096];
        size_t len;
};

static uint64_t now_ns(void) {
        struct timespec t;

        clock_gettime(CLOCK_MONOTONIC, &t);
        return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static void put(const char *dir, const char *rel, const char *text) {
        char path[512], tmp[512];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, rel);
        for (char *p = strchr(path + strlen(dir) + 1, '/'); p; p = strchr(p + 1, '/')) {
                *p = '\0';
                mkdir(path, 0755);
                *p = '/';
        }
        snprintf(tmp, sizeof(tmp), "%s", path);
        f = fopen(tmp, "w");
        if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
                fprintf(stderr, "bench_admission: cannot write %s: %s\n", path, strerror(errno));
                exit(1);
        }
}

/* A host of 64 CPUs and 256 GB, so that every slot meets its scale whatever runs the bench. */
static void make_root(const char *dir) {
        char stat[8192], *p = stat;

        p += sprintf(p, "cpu  1000 0 1000 100000 0 0 0 0 0 0\n");
        for (int i = 0; i < 64; i++)
                p += sprintf(p, "cpu%d 10 0 10 1000 0 0 0 0 0 0\n", i);
        sprintf(p, "ctxt 1\nbtime 1700000000\nprocesses 1\n");
        put(dir, "root/proc/stat", stat);
        put(dir, "root/proc/meminfo",
            "MemTotal:       268435456 kB\nMemFree:        200000000 kB\n"
            "MemAvailable:   260000000 kB\n");
        put(dir, "root/proc/net/dev",
            "Inter-|   Receive                                                |  Transmit\n"
            " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop "
            "fifo "
            "colls carrier compressed\n    lo: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n");
        put(dir, "root/proc/sys/kernel/arch", "x86_64\n");
}

static void make_config(const char *dir, const char *state_dir, int slots) {
        char *cfg = malloc(64 * 1024), *p = cfg;

        p += sprintf(
                p,
                "{\"node\":{\"id\":\"bench\",\"region\":\"local\"},\"sampling\":{\"interval_ms\":1000},"
                "\"mqtt\":{\"host\":\"127.0.0.1\",\"port\":1,\"tls\":false},"
                "\"scales\":{\"b\":{\"class\":\"x86-cpu\",\"vcpu\":1,\"ram_gb\":1,\"bandwidth_mbps\":6}},"
                "\"state_dir\":\"%s\",\"control\":{\"socket\":\"%s/agent.sock\"},\"slots\":[",
                state_dir, dir);
        for (int i = 0; i < slots; i++)
                p += sprintf(p, "%s{\"id\":\"s%d\",\"scale\":\"b\"}", i ? "," : "", i);
        sprintf(p, "]}\n");
        put(dir, "agent.json", cfg);
        free(cfg);
}

/* One blocking request/reply on a fresh connection (setup and figures only). */
static cJSON *ask(const char *sock, const char *req) {
        _cleanup_close_ int fd = plat_unix_connect(sock);
        char buf[1 << 16];
        size_t len = 0;

        if (fd < 0 || send(fd, req, strlen(req), MSG_NOSIGNAL) < 0)
                return NULL;
        while (len < sizeof(buf) - 1) {
                ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);

                if (n <= 0)
                        return NULL;
                len += (size_t)n;
                if (memchr(buf, '\n', len))
                        break;
        }
        buf[len] = '\0';
        return cJSON_Parse(buf);
}

static bool all_admissible(const char *sock, int slots) {
        cJSON *r = ask(sock, "{\"id\":1,\"op\":\"status\"}\n"), *s;
        int n = 0;

        cJSON_ArrayForEach(s, cJSON_GetObjectItem(cJSON_GetObjectItem(r, "status"), "slots")) n +=
                cJSON_IsTrue(cJSON_GetObjectItem(s, "conformant"));
        cJSON_Delete(r);
        return n == slots;
}

static void send_op(struct client *c, int i) {
        char req[256];
        int n;

        if (c->step == 0)
                n = snprintf(req, sizeof(req),
                             "{\"id\":1,\"op\":\"reserve\",\"user\":\"u%d\",\"slot\":\"s%d\"}\n", i, i);
        else
                n = snprintf(req, sizeof(req), "{\"id\":1,\"op\":\"%s\",\"session\":\"%s\"}\n",
                             c->step == 1 ? "start" : "end", c->session);
        c->sent_ns = now_ns();
        if (send(c->fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
                perror("bench_admission: send");
                exit(1);
        }
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, size_t n, double p) {
        return n ? (double)v[(size_t)(p * (double)(n - 1))] / 1000.0 : 0;
}

int main(int argc, char **argv) {
        const char *agent = argc > 1 ? argv[1] : RA_AGENT_PATH;
        int clients = argc > 2 ? atoi(argv[2]) : 32;
        double seconds = argc > 3 ? atof(argv[3]) : 5;
        const char *state_base = argc > 4 ? argv[4] : "/var/tmp";
        char dir[] = "/tmp/ra-bench-adm-XXXXXX", state[256], sock[300], cfg[300], root[300];
        static uint64_t op_lat[MAX_SAMPLES], cycle_lat[MAX_SAMPLES];
        size_t n_op = 0, n_cycle = 0;
        struct client cl[MAX_CLIENTS];
        struct pollfd pfd[MAX_CLIENTS];
        uint64_t t0, end, cycles = 0, errors = 0;
        double commits = 0;
        cJSON *st;
        pid_t pid;
        int status;

        if (clients < 1 || clients > MAX_CLIENTS || seconds <= 0) {
                fprintf(stderr,
                        "usage: bench_admission [AGENT] [CLIENTS 1..64] [SECONDS] [STATE_DIR_BASE]\n");
                return 2;
        }
        if (!mkdtemp(dir))
                return 1;
        snprintf(state, sizeof(state), "%s/ra-bench-state-%d", state_base, (int)getpid());
        snprintf(sock, sizeof(sock), "%s/agent.sock", dir);
        snprintf(cfg, sizeof(cfg), "%s/agent.json", dir);
        snprintf(root, sizeof(root), "%s/root", dir);
        make_root(dir);
        make_config(dir, state, clients);

        pid = fork();
        if (pid == 0) {
                int null = open("/dev/null", O_WRONLY);

                dup2(null, STDOUT_FILENO);
                execl(agent, agent, "--config", cfg, "--root", root, "--log-level", "err", (char *)NULL);
                _exit(127);
        }
        for (int i = 0; i < 200 && !all_admissible(sock, clients); i++)
                usleep(50000);
        if (!all_admissible(sock, clients)) {
                fprintf(stderr, "bench_admission: the agent did not come up with %d admissible slots\n",
                        clients);
                kill(pid, SIGKILL);
                return 1;
        }
        st = ask(sock, "{\"id\":1,\"op\":\"status\"}\n");
        commits = -cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(st, "status"), "sessions"),
                                       "commits")
                           ->valuedouble;
        cJSON_Delete(st);

        for (int i = 0; i < clients; i++) {
                cl[i] = (struct client){ .fd = plat_unix_connect(sock) };
                if (cl[i].fd < 0) {
                        fprintf(stderr, "bench_admission: connect: %s\n", strerror(-cl[i].fd));
                        return 1;
                }
                pfd[i] = (struct pollfd){ .fd = cl[i].fd, .events = POLLIN };
        }
        t0 = now_ns();
        end = t0 + (uint64_t)(seconds * 1e9);
        for (int i = 0; i < clients; i++) {
                cl[i].cycle_start_ns = now_ns();
                send_op(&cl[i], i);
        }
        while (now_ns() < end) {
                if (poll(pfd, (nfds_t)clients, 100) < 0)
                        break;
                for (int i = 0; i < clients; i++) {
                        struct client *c = &cl[i];
                        ssize_t n;
                        char *nl;
                        uint64_t t;

                        if (!(pfd[i].revents & POLLIN))
                                continue;
                        n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, MSG_DONTWAIT);
                        if (n <= 0) {
                                fprintf(stderr, "bench_admission: the agent closed client %d\n", i);
                                return 1;
                        }
                        c->len += (size_t)n;
                        c->buf[c->len] = '\0';
                        if (!(nl = strchr(c->buf, '\n')))
                                continue;
                        t = now_ns();
                        if (n_op < MAX_SAMPLES)
                                op_lat[n_op++] = t - c->sent_ns;
                        if (!strstr(c->buf, "\"ok\":true")) {
                                errors++;
                                c->step = 0; /* start over: a refused op ends the cycle */
                        } else if (c->step == 0) {
                                char *s = strstr(c->buf, "\"session\":\"");

                                snprintf(c->session, sizeof(c->session), "%.32s", s ? s + 11 : "");
                                c->step = 1;
                        } else if (c->step == 1) {
                                c->step = 2;
                        } else {
                                c->step = 0;
                                cycles++;
                                if (n_cycle < MAX_SAMPLES)
                                        cycle_lat[n_cycle++] = t - c->cycle_start_ns;
                                c->cycle_start_ns = t;
                        }
                        c->len = 0;
                        send_op(c, i);
                }
        }
        seconds = (double)(now_ns() - t0) / 1e9;
        for (int i = 0; i < clients; i++)
                close(cl[i].fd);
        st = ask(sock, "{\"id\":1,\"op\":\"status\"}\n");
        commits += cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(st, "status"), "sessions"),
                                       "commits")
                           ->valuedouble;
        cJSON_Delete(st);
        kill(pid, SIGTERM);
        waitpid(pid, &status, 0);
        qsort(op_lat, n_op, sizeof(op_lat[0]), cmp_u64);
        qsort(cycle_lat, n_cycle, sizeof(cycle_lat[0]), cmp_u64);
        printf("clients (one slot each)         %d\n", clients);
        printf("state dir                       %s (fdatasync on every group commit)\n", state_base);
        printf("seconds                         %.2f\n", seconds);
        printf("cycles (reserve+start+end)      %llu\n", (unsigned long long)cycles);
        printf("cycles/s                        %.0f\n", (double)cycles / seconds);
        printf("ops/s                           %.0f\n", (double)n_op / seconds);
        printf("refused ops                     %llu\n", (unsigned long long)errors);
        printf("slots.state writes              %.0f (%.1f ops per write)\n", commits,
               commits > 0 ? (double)n_op / commits : 0);
        printf("op latency us p50/p99/max       %.0f / %.0f / %.0f\n", pct(op_lat, n_op, 0.5),
               pct(op_lat, n_op, 0.99), pct(op_lat, n_op, 1.0));
        printf("cycle latency us p50/p99        %.0f / %.0f\n", pct(cycle_lat, n_cycle, 0.5),
               pct(cycle_lat, n_cycle, 0.99));
        snprintf(root, sizeof(root), "rm -rf %s %s", dir, state);
        return system(root) == 0 && errors == 0 ? 0 : 1;
}
