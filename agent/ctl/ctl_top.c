/* ctl_top.c: `render-agentctl top`: the host and each slot's usage against its scale, live. */
#include "cleanup.h"
#include "clock.h"
#include "ctl_cmds.h"
#include "ctl_conn.h"
#include "evhist.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define TOP_REFRESH_MS 1000
#define TOP_MAX_ROWS 256

enum top_sort { SORT_SLOT, SORT_CPU, SORT_MEMORY, SORT_VRAM, SORT_GPU, SORT_BANDWIDTH };

static const char *const sort_names[] = { "slot", "cpu", "memory", "vram", "gpu", "bandwidth" };
static const char *const sort_keys[] = { NULL, "cpu", "memory", "vram", "gpu", "bandwidth" };

/* What one refresh shows: the agent's replies (owned). */
struct top_view {
        cJSON *status, *spec, *tele;
};

static void view_done(struct top_view *v) {
        cJSON_Delete(v->status);
        cJSON_Delete(v->spec);
        cJSON_Delete(v->tele);
        *v = (struct top_view){ 0 };
}

/* The member named after the op in its reply (caller frees); an error reply is said on stderr. */
static int fetch(struct ctl_conn *c, const char *op, cJSON **ret) {
        cJSON *reply;
        int r = ctl_conn_query(c, op, &reply);

        if (r < 0)
                return r;
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok"))) {
                const cJSON *e = cJSON_GetObjectItemCaseSensitive(reply, "error");

                fprintf(stderr, "render-agentctl: top: %s: %s: %s\n", op, ctl_str(e, "code"),
                        ctl_str(e, "message"));
                cJSON_Delete(reply);
                return -EPROTO;
        }
        *ret = cJSON_DetachItemFromObjectCaseSensitive(reply, op);
        cJSON_Delete(reply);
        return *ret ? 0 : -EPROTO;
}

static int view_fetch(struct ctl_conn *c, struct top_view *v) {
        int r;

        view_done(v);
        r = fetch(c, "status", &v->status);
        if (r >= 0)
                r = fetch(c, "spec", &v->spec);
        if (r >= 0)
                r = fetch(c, "telemetry", &v->tele);
        return r;
}

static const cJSON *find_by_id(const cJSON *arr, const char *id) {
        const cJSON *e;

        cJSON_ArrayForEach(e, arr) if (!strcmp(ctl_str(e, "id"), id)) return e;
        return NULL;
}

static void cell(FILE *f, const cJSON *pct, const char *key) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(pct, key);
        char b[16];

        if (!cJSON_IsNumber(v)) {
                fprintf(f, " %-18s", "-");
                return;
        }
        ctl_bar(b, sizeof(b), v->valuedouble);
        fprintf(f, " %s%4.0f%%", b, v->valuedouble);
}

/* "1d02h", "2h05m", "4m07s", "-": how long the slot's session has run. */
static void age(char *buf, size_t len, const cJSON *slot, uint64_t now) {
        const cJSON *started = cJSON_GetObjectItemCaseSensitive(slot, "started");
        uint64_t t, s;
        char msg[8];

        if (!started || evhist_parse_since(started, now, &t, msg, sizeof(msg)) < 0 || t > now) {
                snprintf(buf, len, "-");
                return;
        }
        s = (now - t) / 1000000;
        if (s >= 86400)
                snprintf(buf, len, "%ud%02uh", (unsigned)(s / 86400), (unsigned)(s % 86400 / 3600));
        else if (s >= 3600)
                snprintf(buf, len, "%uh%02um", (unsigned)(s / 3600), (unsigned)(s % 3600 / 60));
        else
                snprintf(buf, len, "%um%02us", (unsigned)(s / 60), (unsigned)(s % 60));
}

static void host_lines(FILE *f, const cJSON *tele) {
        const cJSON *cpu = cJSON_GetObjectItemCaseSensitive(tele, "cpu");
        const cJSON *mem = cJSON_GetObjectItemCaseSensitive(tele, "memory"), *e;
        double rx = 0, tx = 0;
        char b[16];

        fprintf(f, "host  CPU ");
        if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(cpu, "util_pct"))) {
                ctl_bar(b, sizeof(b), ctl_num(cpu, "util_pct"));
                fprintf(f, "%s%4.0f%%", b, ctl_num(cpu, "util_pct"));
        } else {
                fprintf(f, "%-18s", "-");
        }
        fprintf(f, " of %.0f cores  MEM ", ctl_num(cpu, "cores"));
        ctl_bar(b, sizeof(b), ctl_num(mem, "used_pct"));
        fprintf(f, "%s%4.0f%% of %.1f GB", b, ctl_num(mem, "used_pct"), ctl_num(mem, "total_bytes") / 1e9);
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(tele, "net")) {
                if (!strcmp(ctl_str(e, "iface"), "lo"))
                        continue;
                rx += ctl_num(e, "rx_mbps");
                tx += ctl_num(e, "tx_mbps");
        }
        fprintf(f, "  NET rx %.1f tx %.1f Mbps\n", rx, tx);
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(tele, "gpus")) {
                fprintf(f, "gpu%-2.0f %-20.20s", ctl_num(e, "index"), ctl_str(e, "name"));
                if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(e, "util_pct"))) {
                        ctl_bar(b, sizeof(b), ctl_num(e, "util_pct"));
                        fprintf(f, " util %s%4.0f%%", b, ctl_num(e, "util_pct"));
                }
                if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(e, "vram_total_bytes")))
                        fprintf(f, "  VRAM %.1f/%.1f GB", ctl_num(e, "vram_used_bytes") / 1e9,
                                ctl_num(e, "vram_total_bytes") / 1e9);
                if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "error")))
                        fprintf(f, "  error: %s", ctl_str(e, "error"));
                fprintf(f, "\n");
        }
}

/* The slowest stream's FPS and the worst latency of a session list; fps < 0 when none is listed. */
static void slowest(const cJSON *list, double *ret_fps, double *ret_lat) {
        const cJSON *e;
        double fps = -1, lat = -1;

        cJSON_ArrayForEach(e, list) {
                if (fps < 0 || ctl_num(e, "avg_fps") < fps)
                        fps = ctl_num(e, "avg_fps");
                if (ctl_num(e, "avg_latency_us") > lat)
                        lat = ctl_num(e, "avg_latency_us");
        }
        *ret_fps = fps;
        *ret_lat = lat;
}

/* The slot's streams (telemetry's slots[].gpu): the slowest NVENC stream's FPS and the worst encode
 * latency, then the slowest NvFBC capture's FPS; "-" where the driver lists none. */
static void stream_cells(FILE *f, const cJSON *tele_slot) {
        const cJSON *gpu = cJSON_GetObjectItemCaseSensitive(tele_slot, "gpu");
        double fps, lat, cap, cap_lat;

        slowest(cJSON_GetObjectItemCaseSensitive(gpu, "encoder_sessions"), &fps, &lat);
        slowest(cJSON_GetObjectItemCaseSensitive(gpu, "fbc_sessions"), &cap, &cap_lat);
        if (fps < 0)
                fprintf(f, " %5s %7s", "-", "-");
        else
                fprintf(f, " %5.0f %7.1f", fps, lat / 1000.0);
        if (cap < 0)
                fprintf(f, " %7s", "-");
        else
                fprintf(f, " %7.0f", cap);
}

static enum top_sort g_sort; /* qsort's comparator has no user data */

static double sort_value(const cJSON *spec_slot) {
        return ctl_num(cJSON_GetObjectItemCaseSensitive(spec_slot, "usage_pct"), sort_keys[g_sort]);
}

struct row {
        const cJSON *slot, *spec; /* the status slot and its spec entry (may be NULL) */
        const cJSON *tele;        /* its telemetry entry (may be NULL) */
        size_t order;
};

static int row_cmp(const void *pa, const void *pb) {
        const struct row *a = pa, *b = pb;
        double va, vb;

        if (g_sort == SORT_SLOT)
                return a->order < b->order ? -1 : a->order > b->order;
        va = sort_value(a->spec);
        vb = sort_value(b->spec);
        if (va != vb)
                return va > vb ? -1 : 1; /* the busiest first */
        return a->order < b->order ? -1 : a->order > b->order;
}

/* The whole view: a header, the host, one line per slot. */
static void render(FILE *f, const struct top_view *v, enum top_sort sort, bool live) {
        const cJSON *st = v->status, *slots = cJSON_GetObjectItemCaseSensitive(v->status, "slots"), *e;
        uint64_t now = plat_now_real_usec();
        struct row rows[TOP_MAX_ROWS];
        size_t n = 0;
        char ts[32];

        fprintf(f, "render-agent %s  node %s in %s, %s  %s%s\n", ctl_str(st, "version"), ctl_str(st, "node"),
                ctl_str(st, "region"), ctl_str(st, "class"), plat_format_rfc3339_ms(now, ts, sizeof(ts)),
                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
                        cJSON_GetObjectItemCaseSensitive(st, "sessions"), "draining"))
                        ? "  DRAINING"
                        : "");
        if (live)
                fprintf(f,
                        "sorted by %s; keys: c cpu, m memory, v vram, g gpu, b bandwidth, s slot, q quit\n",
                        sort_names[sort]);
        host_lines(f, v->tele);
        fprintf(f, "\n%-10s %-7s %-8s %-16s %-6s %-18s %-18s %-18s %-18s %-18s %5s %7s %7s %s\n", "SLOT",
                "SCALE", "STATE", "USER", "AGE", "CPU", "MEMORY", "VRAM", "GPU", "BANDWIDTH", "FPS",
                "LAT_MS", "CAP_FPS", "VIEWERS");
        cJSON_ArrayForEach(e, slots) {
                if (n == TOP_MAX_ROWS)
                        break;
                rows[n] = (struct row){
                        e, find_by_id(cJSON_GetObjectItemCaseSensitive(v->spec, "slots"), ctl_str(e, "id")),
                        find_by_id(cJSON_GetObjectItemCaseSensitive(v->tele, "slots"), ctl_str(e, "id")), n
                };
                n++;
        }
        g_sort = sort;
        qsort(rows, n, sizeof(rows[0]), row_cmp);
        for (size_t i = 0; i < n; i++) {
                const cJSON *pct = cJSON_GetObjectItemCaseSensitive(rows[i].spec, "usage_pct");
                char a[16];

                age(a, sizeof(a), rows[i].slot, now);
                fprintf(f, "%-10.10s %-7.7s %-8.8s %-16.16s %-6s", ctl_str(rows[i].slot, "id"),
                        ctl_str(rows[i].slot, "scale"), ctl_str(rows[i].slot, "state"),
                        ctl_str(rows[i].slot, "user"), a);
                cell(f, pct, "cpu");
                cell(f, pct, "memory");
                cell(f, pct, "vram");
                cell(f, pct, "gpu");
                cell(f, pct, "bandwidth");
                stream_cells(f, rows[i].tele);
                fprintf(f, " %d\n",
                        cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rows[i].slot, "viewers")));
        }
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "redacted")))
                fprintf(f, "(user ids hidden: this user is not in control.read)\n");
}

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
        (void)sig;
        g_stop = 1;
}

/* A key: the sort it asks for, or -1 to quit; other keys change nothing. */
static int on_key(char k, enum top_sort *sort) {
        switch (k) {
        case 'q':
        case 'Q':
        case 3: /* ^C with ISIG off is not delivered as a signal */
                return -1;
        case 'c':
                *sort = SORT_CPU;
                break;
        case 'm':
                *sort = SORT_MEMORY;
                break;
        case 'v':
                *sort = SORT_VRAM;
                break;
        case 'g':
                *sort = SORT_GPU;
                break;
        case 'b':
                *sort = SORT_BANDWIDTH;
                break;
        case 's':
                *sort = SORT_SLOT;
                break;
        }
        return 0;
}

/* Full screen on the terminal until q: the alternate screen, keys without Enter, no echo. */
static int top_live(struct ctl_conn *c, struct top_view *v) {
        struct sigaction sa = { .sa_handler = on_signal };
        struct termios saved, raw;
        enum top_sort sort = SORT_SLOT;
        bool tty_in = tcgetattr(STDIN_FILENO, &saved) == 0;
        int r = 0;

        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        if (tty_in) {
                raw = saved;
                raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
                raw.c_cc[VMIN] = 1;
                raw.c_cc[VTIME] = 0;
                tcsetattr(STDIN_FILENO, TCSANOW, &raw);
        }
        printf("\033[?1049h\033[?25l");
        while (!g_stop) {
                uint64_t next = plat_now_mono_usec() + TOP_REFRESH_MS * 1000ULL;

                r = view_fetch(c, v);
                if (r < 0)
                        break;
                printf("\033[H\033[2J");
                render(stdout, v, sort, true);
                fflush(stdout);
                for (;;) {
                        struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
                        uint64_t now = plat_now_mono_usec();
                        int k;
                        char ch;

                        if (now >= next || g_stop)
                                break;
                        k = poll(&p, 1, (int)((next - now) / 1000) + 1);
                        if (k <= 0 || read(STDIN_FILENO, &ch, 1) != 1)
                                continue;
                        if (on_key(ch, &sort) < 0)
                                g_stop = 1;
                        break; /* redraw at once, in the new order */
                }
        }
        printf("\033[?25h\033[?1049l");
        fflush(stdout);
        if (tty_in)
                tcsetattr(STDIN_FILENO, TCSANOW, &saved);
        return r;
}

int ctl_top(const char *socket, int argc, char **argv) {
        struct top_view v = { 0 };
        struct ctl_conn c;
        int r;

        if (argc > 1) {
                fprintf(stderr,
                        "render-agentctl: top: unexpected argument \"%s\"\nUsage: render-agentctl top\n",
                        argv[1]);
                return CTL_EXIT_USAGE;
        }
        r = ctl_conn_open(socket, &c);
        if (r < 0) {
                fprintf(stderr, "render-agentctl: cannot talk to render-agent on %s: %s\n", socket,
                        strerror(-r));
                return CTL_EXIT_UNREACHABLE;
        }
        /* Not a terminal (a pipe, a file, a script): the table once, without the keys line. */
        if (!isatty(STDOUT_FILENO)) {
                r = view_fetch(&c, &v);
                if (r >= 0)
                        render(stdout, &v, SORT_SLOT, false);
        } else {
                r = top_live(&c, &v);
        }
        view_done(&v);
        ctl_conn_close(&c);
        if (r == -EPROTO)
                return CTL_EXIT_AGENT_ERROR;
        if (r < 0) {
                fprintf(stderr, "render-agentctl: top: lost render-agent on %s: %s\n", socket, strerror(-r));
                return CTL_EXIT_UNREACHABLE;
        }
        return 0;
}
