/* agent_reload.c: SIGHUP: the new file replaces the running config only when it is valid as a whole. */
#include "agent_internal.h"

#include "cleanup.h"
#include "clock.h"
#include "config.h"
#include "diag.h"
#include "log.h"
#include "meter.h"
#include "sessions.h"
#include "strutil.h"

#include <string.h>
#include <systemd/sd-daemon.h>

void agent__log_problems(const struct cfg_problems *p) {
        for (size_t i = 0; i < p->n; i++)
                log_err("%s", p->msgs[i]);
}

/* Metering follows the node, its slots and the metering settings: when any of them changed, the
 * open windows are closed (partial) and the meter starts again on the same spool. */
static bool meter_config_equal(const struct cfg *a, const struct cfg *b) {
        if (!plat_streq_ptr(a->node_id, b->node_id) || !plat_streq_ptr(a->node_region, b->node_region) ||
            !plat_streq_ptr(a->state_dir, b->state_dir) || a->n_slots != b->n_slots ||
            a->metering.window_s != b->metering.window_s || a->metering.late_s != b->metering.late_s ||
            a->metering.spool_max_mb != b->metering.spool_max_mb ||
            a->metering.inflight != b->metering.inflight ||
            a->metering.redeliver_per_s != b->metering.redeliver_per_s ||
            !plat_streq_ptr(a->metering.key_file, b->metering.key_file) ||
            !plat_streq_ptr(a->metering.cert_file, b->metering.cert_file) ||
            !plat_streq_ptr(a->mqtt.key_file, b->mqtt.key_file) ||
            !plat_streq_ptr(a->mqtt.cert_file, b->mqtt.cert_file) || a->mqtt.tls_stamp != b->mqtt.tls_stamp)
                return false;
        for (size_t i = 0; i < a->n_slots; i++)
                if (strcmp(a->slots[i].id, b->slots[i].id) || strcmp(a->slots[i].scale, b->slots[i].scale))
                        return false;
        return true;
}

/* Sessions follow the new config (limits, enforcement, slots); a node that gets its first slots
 * starts taking sessions, one that loses them all must have none running. */
static int reload_sessions(struct agent *a, const struct cfg *n, char *why, size_t len) {
        char warning[SLOTS_MSG_MAX];
        struct sessions_hooks h = agent__session_hooks;
        int r;

        h.userdata = a;
        if (a->sessions && n->n_slots)
                return sessions_reconfigure(a->sessions, n, why, len);
        if (a->sessions) {
                if (sessions_busy(a->sessions))
                        return snprintf(why, len, "the new config has no slots while sessions are held"),
                               -EBUSY;
                sessions_free(a->sessions);
                a->sessions = NULL;
                /* Every slot goes (none holds a session): nothing to allocate, nothing can fail. */
                (void)slot_table_sync(&a->slots, n);
                return 0;
        }
        r = sessions_new(a->event, n, &a->slots, a->root_fd, &h, &a->sessions, warning, why, len);
        if (r >= 0 && warning[0])
                log_err("%s", warning);
        if (r < 0) /* the table follows the running config again (it had no slots: nothing to allocate) */
                (void)slot_table_sync(&a->slots, a->cfg);
        return r;
}

void agent__reload(struct agent *a) {
        struct cfg_problems problems = { 0 };
        struct diag *d = NULL;
        char why[256] = "";
        struct cfg *n = NULL, *old;
        bool relink;
        int r;

        sd_notifyf(false, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\nSTATUS=Reloading configuration",
                   plat_now_mono_usec());
        r = cfg_load(a->config_path, &n, &problems);
        if (r < 0) {
                agent__log_problems(&problems);
                log_err("reload of %s rejected (%zu problem%s); the running configuration stays in force",
                        a->config_path, problems.n, problems.n == 1 ? "" : "s");
                cfg_problems_done(&problems);
                sd_notify(false, "READY=1");
                agent__announce(a, true);
                return;
        }
        relink = !cfg_link_equal(a->cfg, n);
        /* Everything that can fail comes first, while the running config is still whole: the
         * session service takes pointers into n, so n is freed only if nothing took it. */
        if (a->control_activated && !plat_streq_ptr(a->cfg->control_socket, n->control_socket))
                log_warn("control.socket changed to %s, but the control socket comes from systemd "
                         "(render-agent.socket): change ListenStream= there",
                         n->control_socket);
        else if (!plat_streq_ptr(a->cfg->control_socket, n->control_socket)) {
                r = diag_new(a->event, n->control_socket, agent__on_request, agent__on_admit, &a->held, a,
                             &d);
                if (r < 0) {
                        snprintf(why, sizeof(why), "cannot listen on %s: %s", n->control_socket,
                                 strerror(-r));
                        goto reject;
                }
        }
        if (a->sessions || n->n_slots) {
                r = reload_sessions(a, n, why, sizeof(why));
                if (r < 0)
                        goto reject;
        }
        if (d) {
                diag_free(a->diag);
                a->diag = d;
        }
        /* The open batch is written first: its transitions belong to the meter that saw it. */
        if (a->sessions)
                (void)sessions_flush(a->sessions);
        /* The session service synced the table by id: each kept slot object keeps its usage (its open
         * cgroup and CPU baseline, unless its cgroup path changed) and what the watch raised (over
         * the cap, memory pressure), so it still clears. */
        if (usage_reload(&a->usage) < 0)
                log_err("out of memory making the new slots' usage; their figures are left out until "
                        "a tick has the memory");
        /* The interval so far is dropped, each kept slot's gauges with it: a slot's cgroup, GPU or
         * interface, and the intervals, may have changed (a dropped slot's went with its object). */
        tele_agg_next(&a->agg);
        watch_reload(&a->watch);
        if (relink)
                agent__stop_link(a, "reconfigured");
        if (!meter_config_equal(a->cfg, n)) {
                /* The open minutes become records; the state written next no longer holds their
                 * bytes as open, and only then are the records spooled (meter_open_minutes). */
                meter_stop(a->meter);
                if (a->sessions)
                        (void)sessions_flush(a->sessions);
                meter_free(a->meter);
                a->meter = NULL;
                if (agent__open_meter(a, n) < 0)
                        log_err("metering stopped after reload; new sessions are refused until it runs "
                                "again");
        }
        /* The old meter is gone: the slots the reload dropped go now. */
        slot_table_reap(&a->slots);
        old = a->cfg;
        a->cfg = n;
        if (!plat_streq_ptr(old->gpu.nvml_library, n->gpu.nvml_library) && agent__open_gpus(a) < 0)
                log_err("cannot reopen the GPU backends after reload; GPU figures keep coming from the "
                        "previous "
                        "ones");
        cfg_free(old);
        agent__plan(a);
        if (relink) {
                r = agent__start_link(a);
                if (r < 0)
                        log_err("cannot start the MQTT link after reload: %s; telemetry stops until the "
                                "next "
                                "reload",
                                strerror(-r));
        } else
                agent__publish_status(a); /* slots or sampling may have changed */
        log_notice("configuration reloaded from %s (%zu slots%s)", a->config_path, a->cfg->n_slots,
                   relink ? ", broker connection renewed" : "");
        sd_notify(false, "READY=1");
        agent__announce(a, true);
        return;
reject:
        log_err("reload of %s rejected: %s; the running configuration stays in force", a->config_path, why);
        diag_free(d);
        cfg_free(n);
        sd_notify(false, "READY=1");
        agent__announce(a, true);
}
