/* agent.c: the daemon: one sd-event loop wiring config, sampling, telemetry, MQTT and the control socket. */
#include "agent.h"

#include "authz.h"
#include "cleanup.h"
#include "clock.h"
#include "cmd.h"
#include "config.h"
#include "crypto.h"
#include "diag.h"
#include "evhist.h"
#include "fileio.h"
#include "link.h"
#include "log.h"
#include "ops.h"
#include "meter.h"
#include "platform_class.h"
#include "sampler.h"
#include "selfstat.h"
#include "gauges.h"
#include "sessions.h"
#include "startup_checks.h"
#include "strutil.h"
#include "telemetry.h"
#include "usage.h"
#include "watch.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <mosquitto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <sys/socket.h>
#include <unistd.h>

#define TOPIC_MAX 256
#define EVENTS_PENDING_MAX 64
#define CMD_HELD_MAX 256
#define GPU_OPEN_TIMEOUT_USEC (5 * USEC_PER_SEC)

/* An MQTT command reply waiting for the group commit its command is part of. */
struct held_reply {
        char *topic;
        char *line;
        void *corr;
        size_t corr_len;
        bool needs_commit;
};

struct agent {
        sd_event *event;
        const char *config_path;
        const char *root;
        struct cfg *cfg;
        int root_fd;
        struct hal_platform platform;
        struct sampler sampler; /* owns the GPU worker */
        struct usage usage;
        struct watch watch;
        char *pending_events[EVENTS_PENDING_MAX]; /* events made while offline, oldest first */
        size_t n_pending_events;
        uint64_t events_dropped;
        struct evhist *evhist; /* recent events for the control socket's "events" op */
        struct link *link;
        struct diag *diag;
        bool control_activated; /* the control socket came from systemd (socket activation) */
        struct sessions *sessions;
        uint64_t cert_not_after; /* the client certificate's end of validity (wall usec); 0 unknown */
        struct meter *meter;
        struct held_reply held[CMD_HELD_MAX];
        size_t n_held;
        struct cmd_state cmd; /* ids of commands carried out, log limits */
        sd_event_source *sample_timer;
        uint64_t next_sample_usec;
        struct tele_ticks ticks; /* the sampling tick's own duration */
        struct plat_self self;   /* the agent's own CPU/RSS, /proc/self/status kept open */
        bool self_unreadable;    /* said once: the agent's own CPU/RSS cannot be read */
        uint64_t telemetry_seq, telemetry_published, telemetry_skipped;
        uint64_t started_real_usec, started_mono_usec;
        enum link_state announced;
        char topic_status[TOPIC_MAX], topic_telemetry[TOPIC_MAX], topic_events[TOPIC_MAX];
        char topic_cmd[TOPIC_MAX], topic_cmd_reply[TOPIC_MAX], topic_metering[TOPIC_MAX];
};

/* Tells systemd what the agent is doing whenever the broker link changes state (or when forced,
 * after RELOADING=1 replaced the status line). */
static void announce(struct agent *a, bool force) {
        enum link_state st = link_get_state(a->link);

        if (st == a->announced && !force)
                return;
        a->announced = st;
        /* The broker of the current attempt: with mqtt.brokers it changes on failover. */
        if (st == LINK_CONNECTED)
                sd_notifyf(false, "STATUS=Connected to %s; telemetry every %u ms", link_broker(a->link),
                           a->cfg->sampling_interval_ms);
        else if (st == LINK_BACKOFF)
                sd_notifyf(false, "STATUS=No broker reachable (last: %s); sampling goes on, retrying",
                           link_last_error(a->link));
        else
                sd_notifyf(false, "STATUS=Connecting to %s", link_broker(a->link));
}

static void publish_status(struct agent *a) {
        _cleanup_free_ char *doc = tele_status_json(a->cfg, &a->platform, true, NULL, plat_now_real_usec());
        int r;

        if (!doc)
                return;
        r = link_publish(a->link, a->topic_status, doc, strlen(doc), 1, true);
        if (r < 0 && r != -ENOTCONN)
                log_warn("cannot publish status on %s: %s", a->topic_status, strerror(-r));
}

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

static void on_event(const char *type, cJSON *fields, void *ud) {
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
                on_event(type, f, a);
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
        publish_status(ud);
        flush_events(ud);
        link_event(a, "mqtt_connected", link_broker(l), NULL);
        meter_connected(a->meter);
        announce(ud, false);
}

/* The plan needs what the host offers, so it is made on the first sample, and again at once
 * after a reload (from the last sample): until then no slot is admissible. */
static void plan(struct agent *a) {
        struct spec_host host;

        if (a->watch.planned || a->sampler.tick == 0)
                return;
        watch_host_from_sample(a->cfg, &a->platform, &a->sampler.cur, &host);
        watch_plan(&a->watch, a->cfg, &host);
}

/* The agent's own cost, for status and telemetry: a part that cannot be read is left out. */
static void self_cost(struct agent *a, struct tele_self *ret) {
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

static void sample(struct agent *a) {
        _cleanup_free_ char *doc = NULL;
        struct tele_self self;

        sampler_tick(&a->sampler);
        hal_platform_note_gpus(&a->platform, a->sampler.n_gpus); /* GPUs whose open ended late */
        usage_tick(&a->usage, a->cfg, &a->sampler, a->sampler.cur.mono_usec);
        plan(a);
        watch_tick(&a->watch, a->cfg, &a->sampler, &a->usage, a->sampler.cur.mono_usec);
        a->telemetry_seq++;
        announce(a, false);
        if (link_get_state(a->link) != LINK_CONNECTED)
                return; /* telemetry is "latest wins": nothing is queued while offline */
        /* ...nor behind a broker slower than the stream: libmosquitto would queue samples without
         * bound and metering would fall behind them. This one is skipped. */
        if (link_backlogged(a->link)) {
                a->telemetry_skipped++;
                return;
        }
        self_cost(a, &self);
        doc = tele_telemetry_json_ex(a->cfg, &a->sampler, &a->usage, &a->watch, a->telemetry_seq, &self);
        if (doc && link_publish(a->link, a->topic_telemetry, doc, strlen(doc), 0, false) >= 0)
                a->telemetry_published++;
        if (doc && a->cfg->sampling_gauges_every && a->telemetry_seq % a->cfg->sampling_gauges_every == 0)
                (void)gauges_publish(a->cfg, doc, a->sessions ? sessions_slots(a->sessions) : NULL,
                                     publish_gauge, a);
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

static void on_message(struct link *l, const char *topic, const void *payload, size_t len, bool retain,
                       const char *response_topic, const void *corr, size_t corr_len, void *ud);

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

static int start_link(struct agent *a) {
        _cleanup_free_ char *will = tele_status_json(a->cfg, NULL, false, "connection lost", 0);
        struct link_options o = {
                .host = a->cfg->mqtt.host,
                .port = a->cfg->mqtt.port,
                .tls = a->cfg->mqtt.tls,
                .ca_file = a->cfg->mqtt.ca_file,
                .cert_file = a->cfg->mqtt.cert_file,
                .key_file = a->cfg->mqtt.key_file,
                .keepalive_s = a->cfg->mqtt.keepalive_s,
                .protocol = (enum link_proto_mode)a->cfg->mqtt.protocol,
                .client_id = a->cfg->node_id,
                .will_topic = a->topic_status,
                .will_payload = will,
                .on_message = on_message,
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

static void stop_link(struct agent *a, const char *reason) {
        _cleanup_free_ char *off = NULL;

        if (!a->link)
                return;
        off = tele_status_json(a->cfg, NULL, false, reason, plat_now_real_usec());
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
static int open_gpus(struct agent *a) {
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

static cJSON *status_json(struct agent *a) {
        cJSON *o = cJSON_CreateObject(), *l, *m, *slots;
        const struct metric_health *mh[] = { &a->sampler.cpu, &a->sampler.mem, &a->sampler.net };
        struct tele_self self;
        char ts[32];

        cJSON_AddStringToObject(o, "version", RA_VERSION);
        cJSON_AddNumberToObject(o, "pid", getpid());
        cJSON_AddStringToObject(o, "node", a->cfg->node_id);
        cJSON_AddStringToObject(o, "region", a->cfg->node_region);
        cJSON_AddStringToObject(o, "config", a->cfg->path);
        cJSON_AddStringToObject(o, "started", plat_format_rfc3339_ms(a->started_real_usec, ts, sizeof(ts)));
        cJSON_AddNumberToObject(o, "uptime_s",
                                (double)((plat_now_mono_usec() - a->started_mono_usec) / USEC_PER_SEC));
        cJSON_AddStringToObject(o, "arch", a->platform.arch);
        cJSON_AddStringToObject(o, "class", hal_class_to_string(a->platform.cls));
        l = cJSON_AddObjectToObject(o, "broker");
        cJSON_AddStringToObject(l, "host", a->cfg->mqtt.host);
        cJSON_AddNumberToObject(l, "port", a->cfg->mqtt.port);
        cJSON_AddBoolToObject(l, "tls", a->cfg->mqtt.tls);
        cJSON_AddStringToObject(l, "state", link_state_to_string(link_get_state(a->link)));
        cJSON_AddNumberToObject(l, "mqtt_version", a->link ? link_protocol_version(a->link) : 0);
        cJSON_AddNumberToObject(l, "connects", (double)link_connects(a->link));
        cJSON_AddStringToObject(l, "last_error", link_last_error(a->link));
        if (a->link)
                cJSON_AddStringToObject(l, "current", link_broker(a->link));
        cJSON_AddItemToObject(l, "protocols", link_proto_status_json(a->link));
        if (a->cert_not_after) {
                cJSON_AddStringToObject(l, "cert_not_after",
                                        plat_format_rfc3339_ms(a->cert_not_after, ts, sizeof(ts)));
                cJSON_AddBoolToObject(l, "cert_expired", a->cert_not_after <= plat_now_real_usec());
        }
        m = cJSON_AddObjectToObject(o, "sampling");
        cJSON_AddNumberToObject(m, "interval_ms", a->cfg->sampling_interval_ms);
        cJSON_AddNumberToObject(m, "ticks", (double)a->sampler.tick);
        cJSON_AddNumberToObject(m, "telemetry_published", (double)a->telemetry_published);
        cJSON_AddNumberToObject(m, "telemetry_skipped", (double)a->telemetry_skipped);
        cJSON_AddItemToObject(m, "gpus", sampler_gpu_status_json(&a->sampler));
        for (size_t i = 0; i < ELEMENTSOF(mh); i++)
                if (mh[i]->error[0]) {
                        cJSON *errs = cJSON_GetObjectItem(m, "errors");

                        if (!errs)
                                errs = cJSON_AddArrayToObject(m, "errors");
                        cJSON_AddItemToArray(errs, cJSON_CreateString(mh[i]->error));
                }
        if (a->sessions)
                cJSON_AddItemToObject(o, "sessions", sessions_summary_json(a->sessions));
        if (a->meter)
                cJSON_AddItemToObject(o, "metering", meter_status_json(a->meter));
        self_cost(a, &self);
        cJSON_AddItemToObject(o, "self", tele_self_json(&self));
        if (self.has_clock)
                cJSON_AddItemToObject(o, "clock", clocksync_json(&self.clock));
        slots = a->sessions ? sessions_slots_json(a->sessions) : cJSON_CreateArray();
        cJSON_AddItemToObject(o, "slots", slots);
        for (size_t i = 0; i < a->cfg->n_slots; i++) {
                cJSON *j = cJSON_GetArrayItem(slots, (int)i);

                if (!j) {
                        j = cJSON_CreateObject();
                        cJSON_AddStringToObject(j, "id", a->cfg->slots[i].id);
                        cJSON_AddStringToObject(j, "scale", a->cfg->slots[i].scale);
                        cJSON_AddItemToArray(slots, j);
                }

                if (a->cfg->slots[i].iface)
                        cJSON_AddStringToObject(j, "iface", a->cfg->slots[i].iface);
                if (a->watch.planned && i < a->watch.n) {
                        cJSON_AddBoolToObject(j, "conformant", a->watch.slots[i].verdict.meets);
                        if (!a->watch.slots[i].verdict.meets)
                                cJSON_AddStringToObject(j, "nonconformant",
                                                        a->watch.slots[i].verdict.reason);
                }
        }
        return o;
}

/* At accept: a peer that may change sessions is not limited per uid and may use the reserve. */
static unsigned on_admit(const struct plat_peer *peer, void *ud) {
        struct agent *a = ud;

        return authz_may_change(a->cfg, peer) ? DIAG_ADMIT_PRIVILEGED : a->cfg->control_clients_per_user;
}

static cJSON *status_json(struct agent *a);

/* Every op, whoever asks: the socket and MQTT handlers check who may before calling this. */
static cJSON *dispatch(struct agent *a, const char *op, const cJSON *req, bool *ret_held,
                       const char **ret_code, char *msg, size_t msglen) {
        const struct ops_entry *e = ops_find(op);
        cJSON *res;

        if (!e) {
                *ret_code = "BAD_REQUEST";
                snprintf(msg, msglen, "unknown op \"%.64s\" (known: %s)", op, ops_names());
                return NULL;
        }
        if (e->owner == OPS_EVENTS)
                return evhist_op(a->evhist, req, plat_now_real_usec(), ret_code, msg, msglen);
        if (strcmp(op, "status") == 0) {
                res = cJSON_CreateObject();
                cJSON_AddItemToObject(res, "status", status_json(a));
                return res;
        }
        if (strcmp(op, "spec") == 0) {
                res = cJSON_CreateObject();
                cJSON_AddItemToObject(res, "spec",
                                      tele_spec_json(a->cfg, &a->sampler, &a->usage, &a->watch));
                return res;
        }
        if (strcmp(op, "telemetry") == 0) /* the last sample, as published: for render-agentctl top */
                return tele_telemetry_reply(a->cfg, &a->sampler, &a->usage, &a->watch, a->telemetry_seq);
        if (e->owner == OPS_SESSIONS) {
                if (!a->sessions) {
                        *ret_code = "NO_IDLE";
                        snprintf(msg, msglen, "this node has no slots configured");
                        return NULL;
                }
                res = sessions_request(a->sessions, op, req, ret_held, ret_code, msg, msglen);
                if (res && strcmp(op, "sessions") == 0) /* each stream's FPS and encode latency */
                        tele_sessions_add_encoders(cJSON_GetObjectItem(res, "sessions"), a->cfg, &a->usage);
                return res;
        }
        /* OPS_AGENT: status, spec and telemetry above; a new one in ops.c needs its answer here. */
        *ret_code = "INTERNAL";
        snprintf(msg, msglen, "op %s has no handler", op);
        return NULL;
}

static cJSON *on_request(const char *op, const cJSON *req, const struct plat_peer *peer, void *ud,
                         bool *ret_held, const char **ret_code, char *msg, size_t msglen) {
        const struct ops_entry *e = ops_find(op);
        struct agent *a = ud;
        cJSON *res;

        if (e && e->mutates && !authz_may_change(a->cfg, peer)) {
                *ret_code = "FORBIDDEN";
                snprintf(msg, msglen,
                         "op %s changes sessions: uid %u is not root, the agent's user, or in control.allow",
                         op, peer ? (unsigned)peer->uid : 0U);
                return NULL;
        }
        /* Reads are open to whoever can connect; with control.read set, who uses a slot is not. */
        res = dispatch(a, op, req, ret_held, ret_code, msg, msglen);
        if (res && !authz_may_read_personal(a->cfg, peer))
                authz_redact(res);
        return res;
}

/* MQTT commands that agent/cmd.c lets through: the broker authenticated the sender (its ACL
 * decides who may publish on cmd). */
static cJSON *on_mqtt_op(const char *op, const cJSON *req, const struct plat_peer *peer, void *ud,
                         bool *ret_held, const char **ret_code, char *msg, size_t msglen) {
        (void)peer;
        return dispatch(ud, op, req, ret_held, ret_code, msg, msglen);
}

static void send_reply(struct agent *a, struct held_reply *h) {
        int r = link_publish_ex(a->link, h->topic, h->line, strlen(h->line), 1, h->corr, h->corr_len, NULL);

        if (r < 0)
                log_warn("cannot publish the reply on %s: %s; the command's sender will not hear back",
                         h->topic, strerror(-r));
        free(h->topic);
        free(h->line);
        free(h->corr);
}

static void on_message(struct link *l, const char *topic, const void *payload, size_t len, bool retain,
                       const char *response_topic, const void *corr, size_t corr_len, void *ud) {
        struct agent *a = ud;
        struct cmd_message m = { payload, len, retain, response_topic };
        struct held_reply h = { 0 };
        bool held = false;
        int r;

        (void)l;
        if (strcmp(topic, a->topic_cmd))
                return;
        /* No room to hold one more reply: write the open batch (its replies go out) first. */
        if (a->n_held == CMD_HELD_MAX && a->sessions)
                (void)sessions_flush(a->sessions);
        r = cmd_handle_message(&a->cmd, &m, a->topic_cmd_reply, on_mqtt_op, a, &h.line, &h.topic, &held);
        if (r <= 0)
                return; /* dropped (the log says why), or out of memory */
        if (corr_len && (h.corr = malloc(corr_len)))
                memcpy(h.corr, corr, corr_len);
        h.corr_len = h.corr ? corr_len : 0;
        h.needs_commit = held;
        log_limited(LOG_INFO, "MQTT command on %s answered: %.200s", topic, h.line);
        if ((held || a->n_held) && a->n_held < CMD_HELD_MAX) {
                a->held[a->n_held++] = h;
                return;
        }
        send_reply(a, &h);
}

/* The group commit is done: held replies go out on both channels, or fail with INTERNAL. */
static void on_committed(bool ok, const char *msg, void *ud) {
        struct agent *a = ud;

        if (!ok) {
                log_err("session state not written: %s; the operations of this batch are refused", msg);
                meter_abort(a->meter);
        }
        /* The batch's records (session_start, session_end...) were written with its state, in
         * one fdatasync, before any reply says the transition happened. The spool takes them
         * after the replies (meter_sync, below). */
        if (a->diag)
                diag_committed(a->diag, ok, msg);
        for (size_t i = 0; i < a->n_held; i++) {
                struct held_reply *h = &a->held[i];

                if (h->needs_commit && !ok) {
                        cJSON *r = cJSON_Parse(h->line), *e = cJSON_CreateObject(), *err;

                        cmd_forget(&a->cmd, cJSON_GetObjectItem(r, "id")); /* undone: may come again */
                        cJSON_AddItemToObject(e, "id", cJSON_DetachItemFromObject(r, "id"));
                        cJSON_AddFalseToObject(e, "ok");
                        err = cJSON_AddObjectToObject(e, "error");
                        cJSON_AddStringToObject(err, "code", "INTERNAL");
                        cJSON_AddStringToObject(err, "message", msg);
                        free(h->line);
                        h->line = cJSON_PrintUnformatted(e);
                        cJSON_Delete(r);
                        cJSON_Delete(e);
                        if (!h->line)
                                h->line = strdup("{\"ok\":false}");
                }
                send_reply(a, h);
        }
        a->n_held = 0;
        if (ok && a->meter)
                (void)meter_sync(a->meter);
}

static bool slot_admissible(void *ud, size_t i) {
        struct agent *a = ud;

        return watch_slot_admissible(&a->watch, i);
}

static void log_problems(const struct cfg_problems *p) {
        for (size_t i = 0; i < p->n; i++)
                log_err("%s", p->msgs[i]);
}

/* SIGHUP: the new file replaces the running config only when it is valid as a whole. */
static void on_transition(const struct slots_event *ev, void *ud) {
        meter_transition(((struct agent *)ud)->meter, ev);
}

static int on_journal(void *ud, char **ret_json) {
        return meter_journal(((struct agent *)ud)->meter, ret_json);
}

static int on_open_minutes(void *ud, char **ret_json) {
        return meter_open_minutes(((struct agent *)ud)->meter, ret_json);
}

static void on_write_journal(void *ud) {
        struct agent *a = ud;

        if (a->sessions)
                sessions_touch(a->sessions);
}

static void on_bytes(size_t slot, enum sessions_flow flow, const char *peer, uint64_t bytes, uint64_t from,
                     uint64_t to, void *ud) {
        (void)to; /* reports are handled as they arrive: "to" is now */
        if (flow == SESSIONS_FLOW_PUSH)
                meter_push_bytes(((struct agent *)ud)->meter, slot, peer, bytes, from);
        else
                meter_bytes(((struct agent *)ud)->meter, slot, flow, bytes, from);
}

static void on_push(size_t slot, const char *session, const char *target, bool started, void *ud) {
        meter_push(((struct agent *)ud)->meter, slot, session, target, started);
}

static const char *refuse_new(void *ud) {
        struct agent *a = ud;

        return a->meter ? meter_admission(a->meter) : "metering is not running (see the log)";
}

static void on_meter_alarm(const char *what, const char *msg, void *ud) {
        cJSON *f = cJSON_CreateObject();

        log_err("%s", msg);
        cJSON_AddStringToObject(f, "alarm", what);
        cJSON_AddStringToObject(f, "message", msg);
        on_event("metering_alarm", f, ud);
}

/* The meter logged it already. */
static void on_meter_cleared(const char *what, const char *msg, void *ud) {
        cJSON *f = cJSON_CreateObject();

        cJSON_AddStringToObject(f, "alarm", what);
        cJSON_AddStringToObject(f, "message", msg);
        on_event("metering_alarm_cleared", f, ud);
}

static const struct sessions_hooks session_hooks = {
        .event = on_event,
        .transition = on_transition,
        .journal = on_journal,
        .open_minutes = on_open_minutes,
        .bytes = on_bytes,
        .push = on_push,
        .committed = on_committed,
        .admissible = slot_admissible,
        .refuse_new = refuse_new,
};

/* Metering follows the node, its slots and the metering settings: when any of them changed, the
 * open windows are closed (partial) and the meter starts again on the same spool. */
static bool meter_config_equal(const struct cfg *a, const struct cfg *b) {
        if (!plat_streq_ptr(a->node_id, b->node_id) || !plat_streq_ptr(a->node_region, b->node_region) ||
            !plat_streq_ptr(a->state_dir, b->state_dir) || a->n_slots != b->n_slots ||
            a->metering.window_s != b->metering.window_s || a->metering.late_s != b->metering.late_s ||
            a->metering.spool_max_mb != b->metering.spool_max_mb ||
            a->metering.inflight != b->metering.inflight ||
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

static int open_meter(struct agent *a, const struct cfg *c) {
        struct meter_hooks h = { .alarm = on_meter_alarm,
                                 .cleared = on_meter_cleared,
                                 .write_journal = on_write_journal,
                                 .userdata = a };
        char why[METER_MSG_MAX];
        int r;

        r = meter_new(a->event, c, a->sessions ? sessions_slots(a->sessions) : NULL, &h, &a->meter, why,
                      sizeof(why));
        if (r < 0) {
                log_err("cannot start metering: %s", why);
                return r;
        }
        if (a->link)
                meter_set_link(a->meter, a->link, a->topic_metering);
        if (meter_refusal(a->meter))
                log_err("metering: %s; new sessions are refused", meter_refusal(a->meter));
        return 0;
}

/* Sessions follow the new config (limits, enforcement, slots); a node that gets its first slots
 * starts taking sessions, one that loses them all must have none running. */
static int reload_sessions(struct agent *a, const struct cfg *n, char *why, size_t len) {
        char warning[SLOTS_MSG_MAX];
        struct sessions_hooks h = session_hooks;
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
                return 0;
        }
        r = sessions_new(a->event, n, a->root_fd, &h, &a->sessions, warning, why, len);
        if (r >= 0 && warning[0])
                log_err("%s", warning);
        return r;
}

static void reload(struct agent *a) {
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
                log_problems(&problems);
                log_err("reload of %s rejected (%zu problem%s); the running configuration stays in force",
                        a->config_path, problems.n, problems.n == 1 ? "" : "s");
                cfg_problems_done(&problems);
                sd_notify(false, "READY=1");
                announce(a, true);
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
                r = diag_new(a->event, n->control_socket, on_request, on_admit, a, &d);
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
        /* Slots may have moved: their usage figures start over with the new list; what the watch
         * raised (over the cap, memory pressure) stays with each kept slot, so it still clears. */
        if (usage_init(&a->usage, a->root_fd, n) < 0 || watch_reload(&a->watch, a->cfg, n) < 0)
                log_err("out of memory resetting slot usage; slot figures stay empty until the next reload");
        if (relink)
                stop_link(a, "reconfigured");
        if (!meter_config_equal(a->cfg, n)) {
                /* The open minutes become records; the state written next no longer holds their
                 * bytes as open, and only then are the records spooled (meter_open_minutes). */
                meter_stop(a->meter);
                if (a->sessions)
                        (void)sessions_flush(a->sessions);
                meter_free(a->meter);
                a->meter = NULL;
                if (open_meter(a, n) < 0)
                        log_err("metering stopped after reload; new sessions are refused until it runs "
                                "again");
        }
        old = a->cfg;
        a->cfg = n;
        if (!plat_streq_ptr(old->gpu.nvml_library, n->gpu.nvml_library) && open_gpus(a) < 0)
                log_err("cannot reopen the GPU backends after reload; GPU figures keep coming from the "
                        "previous "
                        "ones");
        cfg_free(old);
        plan(a);
        if (relink) {
                r = start_link(a);
                if (r < 0)
                        log_err("cannot start the MQTT link after reload: %s; telemetry stops until the "
                                "next "
                                "reload",
                                strerror(-r));
        } else
                publish_status(a); /* slots or sampling may have changed */
        log_notice("configuration reloaded from %s (%zu slots%s)", a->config_path, a->cfg->n_slots,
                   relink ? ", broker connection renewed" : "");
        sd_notify(false, "READY=1");
        announce(a, true);
        return;
reject:
        log_err("reload of %s rejected: %s; the running configuration stays in force", a->config_path, why);
        diag_free(d);
        cfg_free(n);
        sd_notify(false, "READY=1");
        announce(a, true);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *ud) {
        struct agent *a = ud;

        (void)s;
        if (si->ssi_signo == SIGHUP) {
                reload(a);
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
        stop_link(a, "stopped");
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
                r = diag_new_fd(a->event, fd, on_request, on_admit, a, &a->diag);
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
        r = diag_new(a->event, a->cfg->control_socket, on_request, on_admit, a, &a->diag);
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
                log_problems(&problems);
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
        sampler_set_event(&a->sampler, on_event, a);
        r = open_gpus(a);
        if (r < 0) {
                log_err("cannot open the GPU backends: %s", strerror(-r));
                return r;
        }
        r = usage_init(&a->usage, a->root_fd, a->cfg);
        if (r < 0)
                return r;
        r = watch_init(&a->watch, a->cfg, on_event, a);
        if (r < 0)
                return r;

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
                struct sessions_hooks h = session_hooks;

                h.userdata = a;
                r = sessions_new(a->event, a->cfg, a->root_fd, &h, &a->sessions, warning, why, sizeof(why));
                if (r < 0) {
                        log_err("cannot start sessions: %s", why);
                        return r;
                }
                if (warning[0])
                        log_err("%s", warning);
        }
        r = open_meter(a, a->cfg);
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
                r = start_link(&a);
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
        stop_link(&a, "stopped");
        diag_free(a.diag);
        evhist_free(a.evhist);
        sd_event_source_disable_unref(a.sample_timer);
        sampler_done(&a.sampler);
        plat_self_done(&a.self);
        usage_done(&a.usage);
        watch_done(&a.watch);
        for (size_t i = 0; i < a.n_pending_events; i++)
                free(a.pending_events[i]);
        if (a.root_fd >= 0)
                close(a.root_fd);
        cfg_free(a.cfg);
        sd_event_unref(a.event);
        mosquitto_lib_cleanup();
        return r < 0 ? 1 : 0;
}
