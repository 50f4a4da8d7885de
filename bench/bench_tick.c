/* bench_tick.c: the cost of one sampling tick on a host with 8 slots sharing 1 GPU, per phase. */
#include "clock.h"
#include "config.h"
#include "fileio.h"
#include "gpu.h"
#include "log.h"
#include "platform_class.h"
#include "sampler.h"
#include "tele_agg.h"
#include "slot.h"
#include "telemetry.h"
#include "usage.h"
#include "watch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 8

/* The host's own /proc files (real kernel work per read) are linked into a scratch root; the
 * slots' cgroups and GPU processes are files there, since this machine has no render slots. */
static void build_root(const char *root, const char *script) {
        static const char *const real_ifaces[] = { "lo", "eth0", "ifb0", "ifb1" };
        char p[512];
        FILE *f;

        snprintf(p, sizeof(p), "mkdir -p %s/proc/net %s/proc/sys/kernel %s/sys/fs/cgroup/render.slice", root,
                 root, root);
        if (system(p) != 0)
                exit(1);
        snprintf(p, sizeof(p),
                 "ln -s /proc/stat %1$s/proc/stat && ln -s /proc/meminfo %1$s/proc/meminfo && "
                 "ln -s /proc/net/dev %1$s/proc/net/dev && ln -s /proc/sys/kernel/arch "
                 "%1$s/proc/sys/kernel/arch && "
                 "touch %1$s/sys/fs/cgroup/cgroup.controllers",
                 root);
        if (system(p) != 0)
                exit(1);
        for (int i = 0; i < SLOTS; i++) {
                snprintf(
                        p, sizeof(p),
                        "d=%1$s/sys/fs/cgroup/render.slice/slot-%2$d.scope && mkdir -p $d %1$s/proc/%3$d && "
                        "printf 'usage_usec %4$d\\nuser_usec 1\\nsystem_usec 1\\nnr_periods 0\\n' > "
                        "$d/cpu.stat && "
                        "echo 4294967296 > $d/memory.current && echo 17179869184 > $d/memory.max && "
                        "echo 37 > $d/pids.current && echo '400000 100000' > $d/cpu.max && "
                        "echo 0::/render.slice/slot-%2$d.scope > %1$s/proc/%3$d/cgroup",
                        root, i, 1000 + i, 1000000 * (i + 1));
                if (system(p) != 0)
                        exit(1);
        }
        f = fopen(script, "w");
        if (!f)
                exit(1);
        fprintf(f,
                "gpu 0 name=NVIDIA L40S uuid=GPU-bench pci=0000:01:00.0 device=0x26b9 util=55 memutil=20 "
                "enc=10 "
                "dec=5 vram_total=48305799168 vram_used=25769803776 power_mw=250000 temp=60 sm=2520 "
                "sm_max=2520 "
                "throttle=0 procs=gen:%d\n",
                SLOTS);
        fclose(f);
        (void)real_ifaces;
}

static char *slots_json(void) {
        static const char *const ifaces[] = { "lo",      "eth0",    "ifb0",    "ifb1",
                                              "veth-s4", "veth-s5", "veth-s6", "veth-s7" };
        static char buf[4096];
        size_t n = 0;

        for (int i = 0; i < SLOTS; i++)
                n += (size_t)snprintf(
                        buf + n, sizeof(buf) - n,
                        "%s{\"id\":\"slot-%d\",\"scale\":\"M\",\"cgroup\":\"render.slice/slot-%d.scope\","
                        "\"iface\":\"%s\",\"gpu\":0}",
                        i ? "," : "", i, i, ifaces[i]);
        return buf;
}

static uint64_t cpu_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
        char root[] = "/tmp/ra-bench-XXXXXX", script[600], json[8192], cmd[600];
        struct cfg_problems problems = { 0 };
        struct hal_gpu_options go = { .nvml_path = FAKE_NVML_PATH };
        struct slot_table st = { 0 };
        struct usage u = { 0 };
        struct watch w = { 0 };
        struct hal_platform p = { .arch = "x86_64", .cls = HAL_CLASS_X86_GPU };
        struct spec_host host;
        struct cfg *c = NULL;
        struct sampler s;
        struct tele_agg agg = { 0 };
        char *last_facts = NULL;
        uint64_t t_sample = 0, t_usage = 0, t_watch = 0, t_json = 0, wall0, wall1;
        int ticks = argc > 1 ? atoi(argv[1]) : 2000, fd;
        bool quiet = argc > 2 && strcmp(argv[2], "--quiet") == 0;

        if (ticks <= 0 || !mkdtemp(root)) {
                fprintf(stderr, "usage: bench_tick [TICKS] [--quiet]\n");
                return 2;
        }
        snprintf(script, sizeof(script), "%s/nvml.script", root);
        build_root(root, script);
        setenv("FAKE_NVML_SCRIPT", script, 1);
        plat_log_setup("bench", LOG_ERR);
        snprintf(json, sizeof(json),
                 "{\"node\":{\"id\":\"bench\",\"region\":\"r\"},\"mqtt\":{\"host\":\"h\",\"tls\":false},"
                 "\"slots\":[%s]}",
                 slots_json());
        if (cfg_parse("bench.json", json, strlen(json), &c, &problems) < 0) {
                fprintf(stderr, "%s\n", problems.n ? problems.msgs[0] : "config");
                return 1;
        }
        fd = plat_open_dir(root);
        sampler_init(&s, fd);
        if (sampler_open_gpus(&s, &go, USEC_PER_SEC, 5 * USEC_PER_SEC, NULL, NULL) != 1 ||
            slot_table_sync(&st, c) < 0 || usage_init(&u, fd, &st) < 0) {
                fprintf(stderr, "bench: cannot set up the fake GPU or the slots\n");
                return 1;
        }
        tele_agg_init(&agg, &st);
        watch_init(&w, &st, NULL, NULL); /* the agent's emit publishes; events are dropped here */
        sampler_tick(&s);
        watch_host_from_sample(c, &p, &s.cur, &host);
        watch_plan(&w, c, &host);
        wall0 = plat_now_mono_usec();
        for (int i = 0; i < ticks; i++) {
                uint64_t a = cpu_ns(), b, d, d2, e;
                char *doc, *facts;

                sampler_tick(&s);
                b = cpu_ns();
                usage_tick(&u, &s, s.cur.mono_usec);
                d = cpu_ns();
                watch_tick(&w, c, &s, s.cur.mono_usec);
                d2 = cpu_ns();
                /* As the agent's tick does (daemon/agent_tick.c): the sample into the interval's
                 * aggregates, the status's facts made and compared with the last published, and
                 * every telemetry.interval_ms (10 samples at the defaults) the document. */
                (void)tele_agg_add(&agg, &s);
                facts = tele_status_json(c, &p, &s, &u, &w, true, NULL, 0);
                if (facts && (!last_facts || strcmp(facts, last_facts) != 0)) {
                        free(last_facts);
                        last_facts = facts;
                } else
                        free(facts);
                if ((i + 1) % 10 == 0) {
                        doc = tele_agg_json(&agg, c, &s, (uint64_t)i, NULL);
                        free(doc);
                        tele_agg_next(&agg);
                }
                e = cpu_ns();
                t_sample += b - a;
                t_usage += d - b;
                t_watch += d2 - d;
                t_json += e - d2;
        }
        wall1 = plat_now_mono_usec();
        if (!quiet) {
                double n = ticks;

                printf("one sampling tick, %d slots on 1 shared GPU (fake NVML), %d ticks\n", SLOTS, ticks);
                printf("%-34s %10s\n", "phase", "CPU us/tick");
                printf("%-34s %10.1f\n", "host sample (/proc, GPU)", (double)t_sample / n / 1000);
                printf("%-34s %10.1f\n", "slots (cgroups, GPU attribution)", (double)t_usage / n / 1000);
                printf("%-34s %10.1f\n", "scales (limits, hysteresis, events)", (double)t_watch / n / 1000);
                printf("%-34s %10.1f\n", "telemetry (aggregate, facts, doc/10)", (double)t_json / n / 1000);
                printf("%-34s %10.1f\n", "total",
                       (double)(t_sample + t_usage + t_watch + t_json) / n / 1000);
                printf("%-34s %10.1f\n", "wall time per tick", (double)(wall1 - wall0) / n);
        }
        free(last_facts);
        tele_agg_done(&agg);
        watch_done(&w);
        usage_done(&u);
        slot_table_done(&st);
        sampler_done(&s);
        cfg_free(c);
        close(fd);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
        return system(cmd) == 0 ? 0 : 1;
}
