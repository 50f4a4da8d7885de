/* main.c: render-agent's command line: run the daemon, --check-config, --probe. */
#include "agent.h"
#include "cleanup.h"
#include "config.h"
#include "fileio.h"
#include "log.h"
#include "platform_class.h"
#include "sampler.h"
#include "telemetry.h"
#include "usage.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
        fprintf(f, "Usage: render-agent [OPTIONS]\n"
                   "Host agent for cloud-rendering fleets: samples the host, publishes telemetry over TLS "
                   "MQTT.\n\n"
                   "  -c, --config FILE     configuration file (default " CFG_DEFAULT_PATH ")\n"
                   "      --check-config    validate the configuration, print every problem, exit 0/1\n"
                   "      --probe           print one JSON sample of this host (and, with --config, its "
                   "slots)\n"
                   "      --root DIR        read /proc and /sys below DIR (default /)\n"
                   "      --log-level LVL   err, warning, notice, info (default) or debug\n"
                   "      --version         print the version\n"
                   "  -h, --help            this text\n");
}

static int check_config(const char *path) {
        struct cfg_problems problems = { 0 };
        struct cfg *c = NULL;
        int r = cfg_load(path, &c, &problems);

        if (r < 0) {
                for (size_t i = 0; i < problems.n; i++)
                        fprintf(stderr, "%s\n", problems.msgs[i]);
                fprintf(stderr, "%s: %zu problem%s\n", path, problems.n, problems.n == 1 ? "" : "s");
                cfg_problems_done(&problems);
                return 1;
        }
        printf("%s: valid: node %s in region %s, %zu slot%s, broker %s:%u (%s)\n", path, c->node_id,
               c->node_region, c->n_slots, c->n_slots == 1 ? "" : "s", c->mqtt.host, c->mqtt.port,
               c->mqtt.tls ? "TLS, mutual auth" : "NO TLS");
        cfg_free(c);
        return 0;
}

static void print_gpu_warning(const char *msg, void *ud) {
        (void)ud;
        fprintf(stderr, "render-agent: GPU: %s\n", msg);
}

/* One sample of raw counters, with GPUs and, given a config, each slot's counters. A file that
 * cannot be read is named in "errors" and on stderr, and the exit code says so. */
static int probe(const char *root, const char *config_path) {
        _cleanup_close_ int root_fd = plat_open_dir(root);
        _cleanup_free_ char *doc = NULL;
        struct cfg_problems problems = { 0 };
        struct hal_gpu_options go = { 0 };
        struct hal_gpus *gpus = NULL;
        struct usage u = { 0 };
        struct cfg *c = NULL;
        struct hal_platform p;
        struct sampler s;
        const struct host_sample *h;
        const char *errors[3 + HAL_GPU_MAX + CFG_MAX_SLOTS];
        size_t n_errors = 0;
        char err[256];
        int r;

        if (root_fd < 0) {
                fprintf(stderr, "render-agent: cannot open root %s: %s\n", root, strerror(-root_fd));
                return 1;
        }
        if (config_path && cfg_load(config_path, &c, &problems) < 0) {
                for (size_t i = 0; i < problems.n; i++)
                        fprintf(stderr, "%s\n", problems.msgs[i]);
                cfg_problems_done(&problems);
                return 1;
        }
        if (hal_platform_detect(root_fd, &p, err, sizeof(err)) < 0) {
                fprintf(stderr, "render-agent: %s\n", err);
                cfg_free(c);
                return 1;
        }
        go.nvml_path = c ? c->gpu.nvml_library : NULL;
        sampler_init(&s, root_fd);
        r = hal_gpus_open(root_fd, &go, &gpus, print_gpu_warning, NULL);
        if (r >= 0)
                r = sampler_set_gpus(&s, gpus);
        if (r >= 0 && c)
                r = usage_init(&u, root_fd, c);
        if (r < 0) {
                fprintf(stderr, "render-agent: %s\n", strerror(-r));
                goto out;
        }
        hal_platform_note_gpus(&p, hal_gpus_count(gpus));
        h = sampler_tick(&s);
        if (c)
                usage_tick(&u, c, &s, h->mono_usec);
        if (!h->has_cpu)
                errors[n_errors++] = s.cpu.error;
        if (!h->has_mem)
                errors[n_errors++] = s.mem.error;
        if (!h->has_net)
                errors[n_errors++] = s.net.error;
        for (unsigned i = 0; i < h->n_gpus; i++)
                if (h->gpus[i].error < 0)
                        errors[n_errors++] = h->gpus[i].error_msg;
        for (size_t i = 0; i < u.n; i++)
                if (u.slots[i].cg_error[0])
                        errors[n_errors++] = u.slots[i].cg_error;
        doc = tele_probe_json(&p, h, c, &s, c ? &u : NULL, errors, n_errors);
        if (doc)
                printf("%s\n", doc);
        r = doc ? 0 : -ENOMEM;
out:
        sampler_done(&s);
        usage_done(&u);
        hal_gpus_free(gpus);
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
                return check_config(o.config_path);
        if (do_probe)
                return probe(o.root, have_config ? o.config_path : NULL);
        return agent_run(&o);
}
