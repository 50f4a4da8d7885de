/* agent.c: the daemon's lifecycle on one sd-event loop: start-up and shutdown, signals, events, the MQTT
 * link, the sampling tick and the GPUs. Its other concerns, one file each (agent_internal.h): the
 * control plane (agent_control.c), the status document (agent_status.c), the session service's and
 * meter's hooks (agent_hooks.c), reload (agent_reload.c). */
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
#include <string.h>
#include <systemd/sd-daemon.h>

/* Events go out at QoS 1 while connected. Offline, the last EVENTS_PENDING_MAX wait for the next
 * connection (older ones are dropped and counted: events are alarms, not billing records). */
static void publish_event(struct agent *a, char *doc) {
        if (a->link && link_publish(a->link, a->topic_events, doc, strlen(doc), 1, false) >= 0) {
                free(doc);
                return;
        }
        if (a->n_pending_events == EVENTS_PENDING_MAX) {
                free(a->pending_events[0]);
                memmove(a->pending_events, a->pending_events + 1, (EVENTS_PENDING_MAX - 1) * sizeof(char *));
                a->n_pending_events--;
                if (a->events_dropped++ == 0)
                        log_warn("more than %d events while the broker is unreachable; the oldest are "
                                 "dropped",
                                 EVENTS_PENDING_MAX);
        }
        a->pending_events[a->n_pending_events++] = doc;
}

static void flush_events(struct agent *a) {
        size_t sent = 0;

        while (sent < a->n_pending_events && link_publish(a->link, a->topic_events, a->pending_events[sent],
                                                          strlen(a->pending_events[sent]), 1, false) >= 0)
                free(a->pending_events[sent++]);
        memmove(a->pending_events, a->pending_events + sent, (a->n_pending_events - sent) * sizeof(char *));
        a->n_pending_events -= sent;
}

void agent__on_event(const char *type, cJSON *fields, void *ud) {
        struct agent *a = ud;
        cJSON *o = cJSON_CreateObject(), *f;
        char ts[32], *doc;

        cJSON_AddNumberToObject(o, "v", TELE_WIRE_VERSION);
        cJSON_AddStringToObject(o, "type", "event");
        cJSON_AddStringToObject(o, "event", type);
        cJSON_AddStringToObject(o, "node", a->cfg->node_id);
        cJSON_AddStringToObject(o, "region", a->cfg->node_region);
        cJSON_AddStringToObject(o, "ts", plat_format_rfc3339_ms(plat_now_real_usec(), ts, sizeof(ts)));
        while ((f = fields->child)) {
                cJSON_DetachItemViaPointer(fields, f);
                cJSON_AddItemToObject(o, f->string, f);
        }
        cJSON_Delete(fields);
        evhist_record(a->evhist, a->diag, o, plat_now_real_usec());
        doc = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (doc)
                publish_event(a, doc);
        log_limited(LOG_INFO, "event %s", type);
}

/* mqtt_connected / mqtt_lost: kept in the event history, and on .../events once connected. */
static void link_event(struct agent *a, const char *type, const char *broker, const char *reason) {
        cJSON *f = cJSON_CreateObject();

        if (f && cJSON_AddStringToObject(f, "broker", broker) &&
            (!reason || cJSON_AddStringToObject(f, "reason", reason)))
                agent__on_event(type, f, a);
        else
                cJSON_Delete(f);
}

static void on_link_lost(struct link *l, const char *broker, const char *reason, void *ud) {
        (void)l;
        link_event(ud, "mqtt_lost", broker, reason);
}

static void on_connected(struct link *l, void *ud) {
        struct agent *a = ud;
        /* QoS 0: the session is clean, so QoS 1 would save nothing across a lost connection, and
         * RabbitMQ makes a QoS 1 subscription a durable queue on one node, which pins the agent
         * to that node when it dies (docs/topics.md, cmd). */
        int r = link_subscribe(l, a->topic_cmd, 0);

        if (r < 0)
                log_warn("cannot subscribe to %s: %s; MQTT commands are not taken", a->topic_cmd,
                         strerror(-r));
        agent__publish_status(ud);
        flush_events(ud);
        link_event(a, "mqtt_connected", link_broker(l), NULL);
        meter_connected(a->meter);
        agent__announce(ud, false);
}

/* The plan needs what the host offers, so it is made on the first sample, and again at once
 * after a reload (from the last sample): until then no slot is admissible. */
void agent__plan(struct agent *a) {
        struct spec_host host;

        if (a->watch.planned || a->sampler.tick == 0)
                return;
        watch_host_from_sample(a->cfg, &a->platform, &a->sampler.cur, &host);
        watch_plan(&a->watch, a->cfg, &host);
}

/* The agent's own cost, for status and telemetry: a part that cannot be read is left out. */
void agent__self_cost(struct agent *a, struct tele_self *ret) {
        char why[128];
        uint64_t now = plat_now_mono_usec();

        *ret = (struct tele_self){ .has_tick = a->ticks.count > 0,
                                   .tick_usec = a->ticks.last_usec,
                                   .tick_max_usec = tele_ticks_max(&a->ticks, now) };
        ret->has_usage = plat_self_read(&a->self, &ret->usage, why, sizeof(why)) >= 0;
        ret->has_clock = clocksync_read(&ret->clock) >= 0;
        if (!ret->has_usage && !a->self_unreadable) {
                a->self_unreadable = true;
                log_warn("cannot read the agent's own cost: %s; status and telemetry go without it", why);
        }
        if (a->meter) {
                ret->has_spool = true;
                meter_backlog(a->meter, &ret->spool_records, &ret->spool_bytes);
        }
}

static int publish_gauge(void *userdata, const char *topic, const char *payload) {
        struct agent *a = userdata;

        return link_publish(a->link, topic, payload, strlen(payload), 0, false);
}

/* The gauges come from one sample, every sampling.gauges_every-th. */
static void publish_gauges(struct agent *a, const struct tele_self *self) {
        _cleanup_free_ char *doc = NULL;

        if (!a->cfg->sampling_gauges_every || a->telemetry_seq % a->cfg->sampling_gauges_every != 0)
                return;
        doc = tele_telemetry_json(a->cfg, &a->sampler, &a->usage, &a->watch, a->telemetry_seq, self);
        if (doc)
                (void)gauges_publish(a->cfg, doc, a->sessions ? sessions_slots(a->sessions) : NULL,
                                     publish_gauge, a);
}

static void sample(struct agent *a) {
        _cleanup_free_ char *doc = NULL;
        struct tele_self self;
        bool due;

        sampler_tick(&a->sampler);
        hal_platform_note_gpus(&a->platform, a->sampler.n_gpus); /* GPUs whose open ended late */
        usage_tick(&a->usage, a->cfg, &a->sampler, a->sampler.cur.mono_usec);
        for (size_t i = 0; a->meter && i < a->usage.n; i++) /* for each session_end's "streams" */
                meter_streams(a->meter, i, &a->usage.slots[i], a->sampler.cur.gpus_stale);
        agent__plan(a);
        watch_tick(&a->watch, a->cfg, &a->sampler, &a->usage, a->sampler.cur.mono_usec);
        a->telemetry_seq++;
        agent__announce(a, false);
        (void)tele_agg_add(&a->agg, a->cfg, &a->sampler, &a->usage, &a->watch); /* ENOMEM: a sample short */
        due = (uint64_t)a->agg.samples * a->cfg->sampling_interval_ms >= a->cfg->telemetry_interval_ms;
        if (link_get_state(a->link) != LINK_CONNECTED)
                goto next; /* telemetry is "latest wins": nothing is queued while offline */
        agent__status_refresh(a);
        /* ...nor behind a broker slower than the stream: libmosquitto would queue documents without
         * bound and metering would fall behind them. This one is skipped. */
        if (link_backlogged(a->link)) {
                a->telemetry_skipped += due;
                goto next;
        }
        agent__self_cost(a, &self);
        publish_gauges(a, &self);
        if (!due)
                return;
        doc = tele_agg_json(&a->agg, a->cfg, &a->sampler, a->telemetry_seq, &self);
        if (doc && link_publish(a->link, a->topic_telemetry, doc, strlen(doc), 0, false) >= 0)
                a->telemetry_published++;
next:
        if (due)
                tele_agg_next(&a->agg);
}

static int on_sample(sd_event_source *s, uint64_t usec, void *ud) {
        struct agent *a = ud;
        uint64_t interval = a->cfg->sampling_interval_ms * USEC_PER_MSEC, t0 = plat_now_mono_usec(), t1;

        /* Fixed cadence: the next tick is due one interval after this one was due, so the
         * schedule does not drift by the handler's own run time; after a stall, skip ahead. */
        a->next_sample_usec += interval;
        if (a->next_sample_usec <= usec)
                a->next_sample_usec = usec + interval;
        sd_event_source_set_time(s, a->next_sample_usec);
        sample(a);
        /* Its own cost, from the handler's start to its end: a telemetry document carries the
         * previous tick's, the one that has ended. */
        t1 = plat_now_mono_usec();
        tele_ticks_add(&a->ticks, t1, t1 - t0);
        return 0;
}

/* Only metering decides what a PUBACK reason means for its records: an event or status that no
 * one subscribed to (0x10) is fine, they are not tracked. */
static void on_published(struct link *l, int mid, int reason, void *ud) {
        struct agent *a = ud;

        (void)l;
        meter_published(a->meter, mid, reason);
}

#define CERT_WARN_USEC (14 * 86400 * USEC_PER_SEC)

/* A broker that refuses an expired client certificate says so nowhere the agent can read (TLS 1.3
 * ends the handshake before it could): the agent reads its own certificate and says it. */
static void check_certificate(struct agent *a) {
        uint64_t not_before, now = plat_now_real_usec();
        char msg[256], ts[40];

        a->cert_not_after = 0;
        if (!a->cfg->mqtt.tls || plat_cert_validity(a->cfg->mqtt.cert_file, &not_before, &a->cert_not_after,
                                                    msg, sizeof(msg)) < 0)
                return;
        if (a->cert_not_after <= now)
                log_err("mqtt.tls.cert_file %s expired on %s: the broker will refuse this node; install a "
                        "new "
                        "certificate (docs/deploy.md, enrolment) and reload",
                        a->cfg->mqtt.cert_file, plat_format_rfc3339_ms(a->cert_not_after, ts, sizeof(ts)));
        else if (not_before > now)
                log_err("mqtt.tls.cert_file %s is not valid before %s: is this host's clock right?",
                        a->cfg->mqtt.cert_file, plat_format_rfc3339_ms(not_before, ts, sizeof(ts)));
        else if (a->cert_not_after - now < CERT_WARN_USEC)
                log_warn("mqtt.tls.cert_file %s expires on %s; renew it before then (docs/deploy.md)",
                         a->cfg->mqtt.cert_file, plat_format_rfc3339_ms(a->cert_not_after, ts, sizeof(ts)));
}

int agent__start_link(struct agent *a) {
        _cleanup_free_ char *will =
                tele_status_json(a->cfg, NULL, NULL, NULL, NULL, false, "connection lost", 0);
        struct link_options o = {
                .host = a->cfg->mqtt.host,
                .port = a->cfg->mqtt.port,
                .tls = a->cfg->mqtt.tls,
                .ca_file = a->cfg->mqtt.ca_file,
                .cert_file = a->cfg->mqtt.cert_file,
                .key_file = a->cfg->mqtt.key_file,
                .keepalive_s = a->cfg->mqtt.keepalive_s,
                .reconnect_window_ms = a->cfg->mqtt.reconnect_window_ms,
                .protocol = (enum link_proto_mode)a->cfg->mqtt.protocol,
                .client_id = a->cfg->node_id,
                .will_topic = a->topic_status,
                .will_payload = will,
                .on_message = agent__on_message,
                .on_published = on_published,
                .on_lost = on_link_lost,
        };
        struct link_broker brokers[CFG_MAX_BROKERS];
        int r;

        for (size_t i = 0; i < a->cfg->mqtt.n_brokers; i++)
                brokers[i] =
                        (struct link_broker){ a->cfg->mqtt.brokers[i].host, a->cfg->mqtt.brokers[i].port };
        o.brokers = brokers;
        o.n_brokers = a->cfg->mqtt.n_brokers;

        if (!will)
                return -ENOMEM;
        if (tele_topic(a->cfg, "status", a->topic_status, sizeof(a->topic_status)) < 0 ||
            tele_topic(a->cfg, "telemetry", a->topic_telemetry, sizeof(a->topic_telemetry)) < 0 ||
            tele_topic(a->cfg, "events", a->topic_events, sizeof(a->topic_events)) < 0 ||
            tele_topic(a->cfg, "cmd", a->topic_cmd, sizeof(a->topic_cmd)) < 0 ||
            tele_topic(a->cfg, "cmd/reply", a->topic_cmd_reply, sizeof(a->topic_cmd_reply)) < 0 ||
            tele_topic(a->cfg, "metering", a->topic_metering, sizeof(a->topic_metering)) < 0)
                return -ENAMETOOLONG;
        check_certificate(a);
        if (!a->cfg->mqtt.tls)
                log_warn("mqtt.tls is false: telemetry goes to %s:%u in clear text and the broker is not "
                         "authenticated; use this for local tests only",
                         a->cfg->mqtt.host, a->cfg->mqtt.port);
        r = link_new(a->event, &o, on_connected, a, &a->link);
        if (r < 0)
                return r;
        meter_set_link(a->meter, a->link, a->topic_metering);
        a->announced = LINK_IDLE;
        return link_start(a->link);
}

void agent__stop_link(struct agent *a, const char *reason) {
        _cleanup_free_ char *off = NULL;

        if (!a->link)
                return;
        off = tele_status_json(a->cfg, NULL, NULL, NULL, NULL, false, reason, plat_now_real_usec());
        meter_set_link(a->meter, NULL, NULL);
        link_stop(a->link, a->topic_status, off);
        link_free(a->link);
        a->link = NULL;
}

static void log_gpu_warning(const char *msg, void *ud) {
        (void)ud;
        log_warn("GPU: %s; other GPUs and metrics carry on", msg);
}

/* Opens the GPU backends that apply to this host on the sampler's GPU worker. NVML's init may hang in
 * the driver: past GPU_OPEN_TIMEOUT the agent goes on without GPUs, and they join when it returns. */
int agent__open_gpus(struct agent *a) {
        /* NVML describes this machine's driver, not a captured tree given with --root, unless
         * the config names a library on purpose. */
        struct hal_gpu_options o = { .nvml_path = a->cfg->gpu.nvml_library,
                                     .no_nvml = strcmp(a->root, "/") != 0 && !a->cfg->gpu.nvml_library };
        uint64_t deadline = a->cfg->sampling_interval_ms * USEC_PER_MSEC;
        int r;

        r = sampler_open_gpus(&a->sampler, &o, deadline > USEC_PER_SEC ? deadline : USEC_PER_SEC,
                              GPU_OPEN_TIMEOUT_USEC, log_gpu_warning, NULL);
        if (r == -ETIMEDOUT) {
                log_warn("GPU backends: still opening after %" PRIu64 " s (a driver stuck in nvmlInit?); "
                         "the agent starts without GPUs, they join when the driver answers",
                         GPU_OPEN_TIMEOUT_USEC / USEC_PER_SEC);
                return 0;
        }
        if (r < 0)
                return r;
        hal_platform_note_gpus(&a->platform, (unsigned)r);
        log_info("%d GPU%s found", r, r == 1 ? "" : "s");
        return 0;
}

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
                r = diag_new_fd(a->event, fd, agent__on_request, agent__on_admit, a, &a->diag);
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
        r = diag_new(a->event, a->cfg->control_socket, agent__on_request, agent__on_admit, a, &a->diag);
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
        r = usage_init(&a->usage, a->root_fd, a->cfg);
        if (r < 0)
                return r;
        r = slot_table_sync(&a->slots, a->cfg);
        if (r < 0)
                return r;
        watch_init(&a->watch, &a->slots, agent__on_event, a);

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
                              on_sample, a);
        if (r < 0)
                return r;
        sd_event_source_set_enabled(a->sample_timer, SD_EVENT_ON);
        return 0;
}

int agent_run(const struct agent_options *o) {
        struct agent a = { .config_path = o->config_path, .root = o->root, .root_fd = -1 };
        int r;

        a.started_real_usec = plat_now_real_usec();
        a.started_mono_usec = plat_now_mono_usec();
        plat_self_init(&a.self);
        mosquitto_lib_init();
        r = setup(&a, o);
        if (r >= 0) {
                log_notice("render-agent %s started: node %s in %s, %s, %zu slots, control socket %s",
                           RA_VERSION, a.cfg->node_id, a.cfg->node_region,
                           hal_class_to_string(a.platform.cls), a.cfg->n_slots, a.cfg->control_socket);
                r = agent__start_link(&a);
                if (r < 0)
                        log_err("cannot set up the MQTT link: %s", strerror(-r));
        }
        if (r >= 0) {
                sd_notifyf(false, "READY=1\nSTATUS=Connecting to %s:%u", a.cfg->mqtt.host, a.cfg->mqtt.port);
                r = sd_event_loop(a.event);
                if (r < 0)
                        log_err("event loop failed: %s", strerror(-r));
        }
        sessions_free(a.sessions); /* writes what is pending, before the link goes */
        meter_free(a.meter);       /* the open windows as partial records, all synced */
        agent__stop_link(&a, "stopped");
        diag_free(a.diag);
        evhist_free(a.evhist);
        sd_event_source_disable_unref(a.sample_timer);
        sampler_done(&a.sampler);
        plat_self_done(&a.self);
        usage_done(&a.usage);
        watch_done(&a.watch);
        tele_agg_done(&a.agg);
        free(a.status_facts);
        slot_table_done(&a.slots);
        for (size_t i = 0; i < a.n_pending_events; i++)
                free(a.pending_events[i]);
        if (a.root_fd >= 0)
                close(a.root_fd);
        cfg_free(a.cfg);
        sd_event_unref(a.event);
        mosquitto_lib_cleanup();
        return r < 0 ? 1 : 0;
}
