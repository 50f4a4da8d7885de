/* main.c: render-agent's command line: run the daemon, --check-config, --probe. */
#include "agent.h"
#include "cleanup.h"
#include "clock.h"
#include "config.h"
#include "fileio.h"
#include "log.h"
#include "platform_class.h"
#include "sampler.h"
#include "slot.h"
#include "startup_checks.h"
#include "telemetry.h"
#include "usage.h"
#include "watch.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
        fprintf(f, "Usage: render-agent [OPTIONS]\n"
                   "Host agent for cloud-rendering fleets: samples the host, publishes telemetry over TLS "
                   "MQTT.\n\n"
                   "  -c, --config FILE     configuration file (default " CFG_DEFAULT_PATH ")\n"
                   "      --check-config    validate the configuration and plan its slots on this host, "
                   "exit 0/1\n"
                   "      --probe           print one JSON sample of this host (and, with --config, its "
                   "slots)\n"
                   "      --root DIR        read /proc and /sys below DIR (default /)\n"
                   "      --log-level LVL   err, warning, notice, info (default) or debug\n"
                   "      --version         print the version\n"
                   "  -h, --help            this text\n");
}

#define ONESHOT_GPU_ERRORS 4
#define ONESHOT_GPU_TIMEOUT_USEC (5 * USEC_PER_SEC)

/* One sample of the host (and of the config's slots), for --probe and --check-config. */
struct oneshot {
        size_t n_gpu_errors; /* GPU backends that failed to open: errors of the probe too */
        char gpu_errors[ONESHOT_GPU_ERRORS][HAL_GPU_ERR_MAX];
        int root_fd;
        struct hal_platform platform;
        struct sampler sampler;  /* owns the GPU worker */
        struct slot_table slots; /* the config's slots, their usage */
        struct usage usage;
        const struct host_sample *h;
};

static void oneshot_done(struct oneshot *o) {
        sampler_done(&o->sampler);
        usage_done(&o->usage);
        slot_table_done(&o->slots);
        if (o->root_fd >= 0)
                close(o->root_fd);
}

static void print_gpu_warning(const char *msg, void *ud) {
        struct oneshot *o = ud;

        fprintf(stderr, "render-agent: GPU: %s\n", msg);
        if (o->n_gpu_errors < ONESHOT_GPU_ERRORS)
                snprintf(o->gpu_errors[o->n_gpu_errors++], HAL_GPU_ERR_MAX, "%s", msg);
}

static int oneshot_take(struct oneshot *o, const char *root, const struct cfg *c) {
        /* NVML describes this machine's driver, not a captured tree given with --root, unless
         * the config names a library on purpose (a test double). */
        struct hal_gpu_options go = { .nvml_path = c ? c->gpu.nvml_library : NULL,
                                      .no_nvml = strcmp(root, "/") != 0 && !(c && c->gpu.nvml_library) };
        char err[256];
        int r;

        *o = (struct oneshot){ .root_fd = plat_open_dir(root) };
        sampler_init(&o->sampler, o->root_fd);
        if (o->root_fd < 0) {
                fprintf(stderr, "render-agent: cannot open root %s: %s\n", root, strerror(-o->root_fd));
                return o->root_fd;
        }
        r = hal_platform_detect(o->root_fd, &o->platform, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "render-agent: %s\n", err);
                return r;
        }
        r = sampler_open_gpus(&o->sampler, &go, ONESHOT_GPU_TIMEOUT_USEC, ONESHOT_GPU_TIMEOUT_USEC,
                              print_gpu_warning, o);
        if (r == -ETIMEDOUT) {
                print_gpu_warning("the GPU backends did not open within 5 s (a driver stuck in nvmlInit?)",
                                  o);
                r = 0;
        }
        if (r >= 0 && c)
                r = slot_table_sync(&o->slots, c);
        if (r >= 0 && c)
                r = usage_init(&o->usage, o->root_fd, &o->slots);
        if (r < 0) {
                fprintf(stderr, "render-agent: %s\n", strerror(-r));
                return r;
        }
        hal_platform_note_gpus(&o->platform, o->sampler.n_gpus);
        o->h = sampler_tick(&o->sampler);
        if (c)
                usage_tick(&o->usage, &o->sampler, o->h->mono_usec);
        return 0;
}

static int load_or_print(const char *path, struct cfg **ret) {
        struct cfg_problems problems = { 0 };

        if (cfg_load(path, ret, &problems) >= 0)
                return 0;
        for (size_t i = 0; i < problems.n; i++)
                fprintf(stderr, "%s\n", problems.msgs[i]);
        fprintf(stderr, "%s: %zu problem%s\n", path, problems.n, problems.n == 1 ? "" : "s");
        cfg_problems_done(&problems);
        return -EINVAL;
}

static void print_refusal(const char *msg, void *userdata) {
        fprintf(stderr, "%s: %s\n", (const char *)userdata, msg);
}

/* Validates the file, then plans its slots against this host (or the --root tree). */
static int check_config(const char *path, const char *root) {
        struct spec_verdict *v = NULL;
        struct spec_host host;
        struct oneshot o;
        struct cfg *c = NULL;
        size_t failing = 0, wrong_platform = 0, refused;

        if (load_or_print(path, &c) < 0)
                return 1;
        /* What the agent would refuse at start-up, as the user this runs as. */
        refused =
                startup_check(c, STARTUP_FILES | STARTUP_SOCKET_DIR, geteuid(), print_refusal, (void *)path);
        if (refused) {
                fprintf(stderr, "%s: %zu problem%s\n", path, refused, refused == 1 ? "" : "s");
                cfg_free(c);
                return 1;
        }
        printf("%s: valid: node %s in region %s, %zu slot%s, broker %s:%u (%s)\n", path, c->node_id,
               c->node_region, c->n_slots, c->n_slots == 1 ? "" : "s", c->mqtt.host, c->mqtt.port,
               c->mqtt.tls ? "TLS, mutual auth" : "NO TLS");
        if (oneshot_take(&o, root, c) < 0) {
                oneshot_done(&o);
                cfg_free(c);
                return 1;
        }
        watch_host_from_sample(c, &o.platform, o.h, &host);
        v = calloc(c->n_slots ? c->n_slots : 1, sizeof(*v));
        if (!v) {
                oneshot_done(&o);
                cfg_free(c);
                return 1;
        }
        spec_plan(c, &host, v);
        printf("plan for this host (%s, %s, %u vCPU, %.1f GB RAM, %u GPU%s):\n", o.platform.arch,
               hal_class_to_string(host.cls), host.cores, (double)host.ram_bytes / (double)SPEC_GB,
               host.n_gpus, host.n_gpus == 1 ? "" : "s");
        for (size_t i = 0; i < c->n_slots; i++) {
                printf("  %-16s %-8s %s%s\n", c->slots[i].id, c->slots[i].scale,
                       v[i].meets ? "meets" : "FAILS: ", v[i].reason);
                failing += !v[i].meets;
                wrong_platform += (v[i].fails & SPEC_FAIL_CLASS) != 0;
        }
        if (failing)
                printf("%zu of %zu slots do not meet their scale on this host: they would take no "
                       "sessions\n",
                       failing, c->n_slots);
        /* A scale for another platform is a mistake in the file; too little capacity is a fact
         * about this host, reported but not a reason to refuse the file. */
        if (wrong_platform)
                fprintf(stderr, "%s: %zu slot%s with a scale for another platform (see above)\n", path,
                        wrong_platform, wrong_platform == 1 ? "" : "s");
        free(v);
        oneshot_done(&o);
        cfg_free(c);
        return wrong_platform ? 1 : 0;
}

/* One sample of raw counters, with GPUs and, given a config, each slot's counters. A file that
 * cannot be read is named in "errors" and on stderr, and the exit code says so. */
static int probe(const char *root, const char *config_path) {
        const char *errors[4 + ONESHOT_GPU_ERRORS + HAL_GPU_MAX + CFG_MAX_SLOTS];
        _cleanup_free_ char *doc = NULL;
        struct cfg *c = NULL;
        size_t n_errors = 0;
        struct oneshot o;
        int r;

        if (config_path && load_or_print(config_path, &c) < 0)
                return 1;
        r = oneshot_take(&o, root, c);
        if (r >= 0) {
                const struct host_sample *h = o.h;

                if (!h->has_cpu)
                        errors[n_errors++] = o.sampler.cpu.error;
                if (!h->has_mem)
                        errors[n_errors++] = o.sampler.mem.error;
                if (!h->has_net)
                        errors[n_errors++] = o.sampler.net.error;
                for (size_t i = 0; i < o.n_gpu_errors; i++)
                        errors[n_errors++] = o.gpu_errors[i];
                for (unsigned i = 0; i < h->n_gpus; i++)
                        if (h->gpus[i].error < 0)
                                errors[n_errors++] = h->gpus[i].error_msg;
                for (size_t i = 0; i < o.slots.n; i++)
                        if (usage_slot_at(&o.usage, i) && usage_slot_at(&o.usage, i)->cg_error[0])
                                errors[n_errors++] = usage_slot_at(&o.usage, i)->cg_error;
                if (o.usage.attr_error[0])
                        errors[n_errors++] = o.usage.attr_error;
                doc = tele_probe_json(&o.platform, h, c, &o.sampler, c ? &o.usage : NULL, errors, n_errors);
                if (doc)
                        printf("%s\n", doc);
                else
                        r = -ENOMEM;
        }
        oneshot_done(&o);
        cfg_free(c);
        return r < 0 || n_errors ? 1 : 0;
}

int main(int argc, char **argv) {
        enum { OPT_CHECK = 256, OPT_PROBE, OPT_ROOT, OPT_LOG_LEVEL, OPT_VERSION };
        static const struct option opts[] = {
                { "config", required_argument, NULL, 'c' },
                { "check-config", no_argument, NULL, OPT_CHECK },
                { "probe", no_argument, NULL, OPT_PROBE },
                { "root", required_argument, NULL, OPT_ROOT },
                { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
                { "version", no_argument, NULL, OPT_VERSION },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct agent_options o = { .config_path = CFG_DEFAULT_PATH, .root = "/" };

        /* What the agent costs the host is its private pages (USS). glibc's mmap threshold grows
         * to the largest block freed (the spool's recovery buffer, 256 KiB), after which large
         * long-lived blocks come from the heap, whole pages dirtied whether used or not, and freed
         * ones stay in it. Fixed at 64 KiB: large blocks are mappings of their own, only their used
         * pages resident, and returned when freed (scripts/bench: USS 2.3 -> 2.0 MiB). */
        (void)mallopt(M_MMAP_THRESHOLD, 64 * 1024);
        (void)mallopt(M_TRIM_THRESHOLD, 64 * 1024);
        bool do_check = false, do_probe = false, have_config = false;
        int level = LOG_INFO, c;

        while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        o.config_path = optarg;
                        have_config = true;
                        break;
                case OPT_CHECK:
                        do_check = true;
                        break;
                case OPT_PROBE:
                        do_probe = true;
                        break;
                case OPT_ROOT:
                        o.root = optarg;
                        break;
                case OPT_LOG_LEVEL:
                        level = plat_log_level_from_string(optarg);
                        if (level < 0) {
                                fprintf(stderr,
                                        "render-agent: --log-level: unknown level \"%s\" (err, warning, "
                                        "notice, info, debug)\n",
                                        optarg);
                                return 2;
                        }
                        break;
                case OPT_VERSION:
                        printf("render-agent %s\n", RA_VERSION);
                        return 0;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "render-agent: unexpected argument \"%s\"\n", argv[optind]);
                usage(stderr);
                return 2;
        }
        plat_log_setup("render-agent", level);
        if (do_check)
                return check_config(o.config_path, o.root);
        if (do_probe)
                return probe(o.root, have_config ? o.config_path : NULL);
        return agent_run(&o);
}
