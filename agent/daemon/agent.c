/* agent.c: the daemon's lifecycle on one sd-event loop: start-up and shutdown, signals, the control
 * socket. Its other concerns, one file each (agent_internal.h): events and the MQTT link
 * (agent_link.c), the sampling tick and the GPUs (agent_tick.c), the control plane
 * (agent_control.c), the status document (agent_status.c), the session service's and meter's hooks
 * (agent_hooks.c), reload (agent_reload.c). */
#include "agent_internal.h"

#include "cleanup.h"
#include "clock.h"
#include "config.h"
#include "crypto.h"
#include "diag.h"
#include "evhist.h"
#include "log.h"
#include "meter.h"
#include "gauges.h"
#include "sessions.h"
#include "startup_checks.h"

#include <mosquitto.h>
#include <stdbool.h>
#include <string.h>
#include <systemd/sd-daemon.h>

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *ud) {
        struct agent *a = ud;

        (void)s;
        if (si->ssi_signo == SIGHUP) {
                agent__reload(a);
                return 0;
        }
        log_notice("received %s; stopping", strsignal((int)si->ssi_signo));
        sd_notify(false, "STOPPING=1\nSTATUS=Stopping");
        if (a->sessions)
                sessions_stop(a->sessions);
        meter_stop(a->meter);
        /* Records of the last windows the spool could not take go into slots.state. */
        if (a->sessions)
                (void)sessions_flush(a->sessions);
        agent__stop_link(a, "stopped");
        return sd_event_exit(a->event, 0);
}

static void log_refusal(const char *msg, void *userdata) {
        (void)userdata;
        log_err("cannot start: %s", msg);
}

/* The control socket: the one systemd passes (named "control", else the first Unix stream
 * socket), or control.socket bound here. */
static int open_control(struct agent *a) {
        char **names = NULL;
        int n = sd_listen_fds_with_names(true, &names), fd = -1, r;

        for (int i = 0; i < n; i++) {
                int cand = SD_LISTEN_FDS_START + i;

                if (sd_is_socket_unix(cand, SOCK_STREAM, 1, NULL, 0) <= 0)
                        continue;
                if (fd < 0 || (names && names[i] && !strcmp(names[i], "control")))
                        fd = cand;
        }
        for (int i = 0; names && names[i]; i++)
                free(names[i]);
        free(names);
        if (fd >= 0) {
                r = diag_new_fd(a->event, fd, agent__on_request, agent__on_admit, &a->held, a, &a->diag);
                if (r < 0) {
                        log_err("cannot serve the control socket passed by systemd: %s", strerror(-r));
                        return r;
                }
                a->control_activated = true;
                log_info("control socket passed by systemd (socket activation); control.socket is not used");
                return 0;
        }
        if (startup_check(a->cfg, STARTUP_SOCKET_DIR | STARTUP_SOCKET_FREE, geteuid(), log_refusal, NULL))
                return -EPERM;
        r = diag_new(a->event, a->cfg->control_socket, agent__on_request, agent__on_admit, &a->held, a,
                     &a->diag);
        if (r < 0)
                log_err("cannot listen on the control socket %s: %s", a->cfg->control_socket, strerror(-r));
        return r;
}

static int setup(struct agent *a, const struct agent_options *o) {
        struct cfg_problems problems = { 0 };
        char err[256];
        sigset_t mask;
        int r;

        r = cfg_load(a->config_path, &a->cfg, &problems);
        if (r < 0) {
                agent__log_problems(&problems);
                log_err("cannot start: %s has %zu problem%s", a->config_path, problems.n,
                        problems.n == 1 ? "" : "s");
                cfg_problems_done(&problems);
                return r;
        }
        /* Paths another local user controls are refused before anything is read from them. */
        if (startup_check(a->cfg, STARTUP_FILES, geteuid(), log_refusal, NULL))
                return -EPERM;
        a->root_fd = plat_open_dir(o->root);
        if (a->root_fd < 0) {
                log_err("cannot open the host root %s: %s", o->root, strerror(-a->root_fd));
                return a->root_fd;
        }
        r = hal_platform_detect(a->root_fd, &a->platform, err, sizeof(err));
        if (r < 0) {
                log_err("cannot tell the platform: %s", err);
                return r;
        }
        sampler_init(&a->sampler, a->root_fd);
        sampler_set_event(&a->sampler, agent__on_event, a);
        r = agent__open_gpus(a);
        if (r < 0) {
                log_err("cannot open the GPU backends: %s", strerror(-r));
                return r;
        }
        r = slot_table_sync(&a->slots, a->cfg);
        if (r < 0)
                return r;
        r = usage_init(&a->usage, a->root_fd, &a->slots);
        if (r < 0)
                return r;
        watch_init(&a->watch, &a->slots, agent__on_event, a);
        tele_agg_init(&a->agg, &a->slots);

        r = sd_event_default(&a->event);
        if (r < 0)
                return r;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGCHLD); /* enforcement hooks are reaped by sd-event child sources */
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);
        /* A file size limit must fail the write (EFBIG: the spool fails closed), not kill us. */
        signal(SIGXFSZ, SIG_IGN);
        if ((r = sd_event_add_signal(a->event, NULL, SIGTERM, on_signal, a)) < 0 ||
            (r = sd_event_add_signal(a->event, NULL, SIGINT, on_signal, a)) < 0 ||
            (r = sd_event_add_signal(a->event, NULL, SIGHUP, on_signal, a)) < 0)
                return r;
        /* WATCHDOG=1 at half of WATCHDOG_USEC, from the loop itself: a stuck loop stops it. */
        r = sd_event_set_watchdog(a->event, true);
        if (r < 0)
                return r;

        r = evhist_new(&a->evhist);
        if (r < 0)
                return r;
        if (a->cfg->n_slots) {
                char warning[SLOTS_MSG_MAX], why[256];
                struct sessions_hooks h = agent__session_hooks;

                h.userdata = a;
                r = sessions_new(a->event, a->cfg, &a->slots, a->root_fd, &h, &a->sessions, warning, why,
                                 sizeof(why));
                if (r < 0) {
                        log_err("cannot start sessions: %s", why);
                        return r;
                }
                if (warning[0])
                        log_err("%s", warning);
        }
        r = agent__open_meter(a, a->cfg);
        if (r < 0)
                return r;
        r = open_control(a);
        if (r < 0)
                return r;
        sd_event_now(a->event, CLOCK_MONOTONIC, &a->next_sample_usec);
        r = sd_event_add_time(a->event, &a->sample_timer, CLOCK_MONOTONIC, a->next_sample_usec, 1000,
                              agent__on_sample, a);
        if (r < 0)
                return r;
        sd_event_source_set_enabled(a->sample_timer, SD_EVENT_ON);
        return 0;
}

/* The one agent of the process. Static, so that its 55 KB start as zero pages nobody is charged for
 * (.bss) and cost memory only where written: the ids of commands carried out and the held replies
 * (43 KB of it) fill as they are used. On the stack its initialiser wrote all of it, and those
 * pages stayed in every agent's USS. */
static struct agent the_agent;
static bool the_agent_ran;

int agent_run(const struct agent_options *o) {
        struct agent *a = &the_agent;
        int r;

        if (the_agent_ran)
                return 1; /* once per process: nothing resets the agent's state */
        the_agent_ran = true;
        a->config_path = o->config_path;
        a->root = o->root;
        a->root_fd = -1;

        a->started_real_usec = plat_now_real_usec();
        a->started_mono_usec = plat_now_mono_usec();
        plat_self_init(&a->self);
        agent__control_init(a);
        mosquitto_lib_init();
        r = setup(a, o);
        if (r >= 0) {
                log_notice("render-agent %s started: node %s in %s, %s, %zu slots, control socket %s",
                           RA_VERSION, a->cfg->node_id, a->cfg->node_region,
                           hal_class_to_string(a->platform.cls), a->cfg->n_slots, a->cfg->control_socket);
                r = agent__start_link(a);
                if (r < 0)
                        log_err("cannot set up the MQTT link: %s", strerror(-r));
        }
        if (r >= 0) {
                sd_notifyf(false, "READY=1\nSTATUS=Connecting to %s:%u", a->cfg->mqtt.host,
                           a->cfg->mqtt.port);
                r = sd_event_loop(a->event);
                if (r < 0)
                        log_err("event loop failed: %s", strerror(-r));
        }
        sessions_free(a->sessions); /* writes what is pending, before the link goes */
        meter_free(a->meter);       /* the open windows as partial records, all synced */
        agent__stop_link(a, "stopped");
        diag_free(a->diag);
        held_clear(&a->held); /* MQTT replies of a batch never written: the link is gone */
        evhist_free(a->evhist);
        sd_event_source_disable_unref(a->sample_timer);
        sampler_done(&a->sampler);
        plat_self_done(&a->self);
        usage_done(&a->usage);
        watch_done(&a->watch);
        tele_agg_done(&a->agg);
        free(a->status_facts);
        slot_table_done(&a->slots);
        for (size_t i = 0; i < a->n_pending_events; i++)
                free(a->pending_events[i]);
        if (a->root_fd >= 0)
                close(a->root_fd);
        cfg_free(a->cfg);
        sd_event_unref(a->event);
        mosquitto_lib_cleanup();
        /* Nothing of it stays reachable: LeakSanitizer reports what the lines above did not free, as
         * it did when the agent lived on the stack. */
        *a = (struct agent){ 0 };
        return r < 0 ? 1 : 0;
}
