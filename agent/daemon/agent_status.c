/* agent_status.c: the status document (socket, MQTT status topic) and the line systemd shows. */
#include "agent_internal.h"

#include "cleanup.h"
#include "clock.h"
#include "log.h"
#include "meter.h"
#include "sessions.h"

#include <string.h>
#include <systemd/sd-daemon.h>

/* Tells systemd what the agent is doing whenever the broker link changes state (or when forced,
 * after RELOADING=1 replaced the status line). */
void agent__announce(struct agent *a, bool force) {
        enum link_state st = link_get_state(a->link);

        if (st == a->announced && !force)
                return;
        a->announced = st;
        /* The broker of the current attempt: with mqtt.brokers it changes on failover. */
        if (st == LINK_CONNECTED)
                sd_notifyf(false, "STATUS=Connected to %s; sampling every %u ms, telemetry every %u ms",
                           link_broker(a->link), a->cfg->sampling_interval_ms,
                           a->cfg->telemetry_interval_ms);
        else if (st == LINK_BACKOFF)
                sd_notifyf(false, "STATUS=No broker reachable (last: %s); sampling goes on, retrying",
                           link_last_error(a->link));
        else
                sd_notifyf(false, "STATUS=Connecting to %s", link_broker(a->link));
}

static char *status_doc(struct agent *a, uint64_t real_usec) {
        return tele_status_json(a->cfg, &a->platform, &a->sampler, &a->usage, &a->watch, true, NULL,
                                real_usec);
}

void agent__publish_status(struct agent *a) {
        _cleanup_free_ char *doc = status_doc(a, plat_now_real_usec());
        int r;

        if (!doc)
                return;
        r = link_publish(a->link, a->topic_status, doc, strlen(doc), 1, true);
        if (r < 0 && r != -ENOTCONN)
                log_warn("cannot publish status on %s: %s", a->topic_status, strerror(-r));
        if (r >= 0) {
                free(a->status_facts);
                a->status_facts = status_doc(a, 0);
        }
}

/* The status holds the facts telemetry leaves out (interfaces, GPUs, cgroup limits, verdicts): it is
 * published again when one changed, and only then. */
void agent__status_refresh(struct agent *a) {
        _cleanup_free_ char *facts = status_doc(a, 0);

        if (facts && (!a->status_facts || strcmp(facts, a->status_facts) != 0))
                agent__publish_status(a);
}

cJSON *agent__status_json(struct agent *a) {
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
        cJSON_AddNumberToObject(m, "telemetry_interval_ms", a->cfg->telemetry_interval_ms);
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
        agent__self_cost(a, &self);
        cJSON_AddItemToObject(o, "self", tele_self_json(&self));
        if (self.has_clock)
                cJSON_AddItemToObject(o, "clock", clocksync_json(&self.clock));
        slots = a->sessions ? sessions_slots_json(a->sessions) : cJSON_CreateArray();
        cJSON_AddItemToObject(o, "slots", slots);
        for (size_t i = 0; i < a->cfg->n_slots; i++) {
                cJSON *j = cJSON_GetArrayItem(slots, (int)i);
                const struct watch_slot *ws = watch_slot_at(&a->watch, i);

                if (!j) {
                        j = cJSON_CreateObject();
                        cJSON_AddStringToObject(j, "id", a->cfg->slots[i].id);
                        cJSON_AddStringToObject(j, "scale", a->cfg->slots[i].scale);
                        cJSON_AddItemToArray(slots, j);
                }

                if (a->cfg->slots[i].iface)
                        cJSON_AddStringToObject(j, "iface", a->cfg->slots[i].iface);
                if (a->watch.planned && ws) {
                        cJSON_AddBoolToObject(j, "conformant", ws->verdict.meets);
                        if (!ws->verdict.meets)
                                cJSON_AddStringToObject(j, "nonconformant", ws->verdict.reason);
                }
        }
        return o;
}
