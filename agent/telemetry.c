/* telemetry.c: the JSON documents the agent publishes (status, telemetry) and prints (--probe). */
#include "telemetry.h"

#include "clock.h"
#include "config.h"
#include "platform_class.h"
#include "sampler.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

int tele_topic(const struct cfg *c, const char *leaf, char *buf, size_t len) {
        int n = snprintf(buf, len, "%s/%s/%s/%s", c->mqtt.topic_prefix, c->node_region, c->node_id, leaf);

        return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Counters are 64-bit; cJSON numbers are doubles. Raw digits keep them exact past 2^53. */
static void add_u64(cJSON *o, const char *key, uint64_t v) {
        char buf[24];

        snprintf(buf, sizeof(buf), "%" PRIu64, v);
        cJSON_AddRawToObject(o, key, buf);
}

/* Rates and percentages with a fixed precision, so documents stay short and diffable. */
static void add_fixed(cJSON *o, const char *key, double v, int decimals) {
        char buf[48];

        if (!isfinite(v))
                return;
        snprintf(buf, sizeof(buf), "%.*f", decimals, v);
        cJSON_AddRawToObject(o, key, buf);
}

static void add_header(cJSON *o, const char *type, const struct cfg *c, uint64_t real_usec) {
        char ts[32];

        cJSON_AddNumberToObject(o, "v", TELE_WIRE_VERSION);
        cJSON_AddStringToObject(o, "type", type);
        if (c) {
                cJSON_AddStringToObject(o, "node", c->node_id);
                cJSON_AddStringToObject(o, "region", c->node_region);
        }
        if (real_usec)
                cJSON_AddStringToObject(o, "ts", plat_format_rfc3339_ms(real_usec, ts, sizeof(ts)));
}

static void add_platform(cJSON *o, const struct hal_platform *p) {
        cJSON *pl = cJSON_AddObjectToObject(o, "platform");

        cJSON_AddStringToObject(pl, "arch", p->arch);
        cJSON_AddStringToObject(pl, "class", hal_class_to_string(p->cls));
}

static char *finish(cJSON *o) {
        char *s = cJSON_PrintUnformatted(o);

        cJSON_Delete(o);
        return s;
}

char *tele_status_json(const struct cfg *c, const struct hal_platform *p, bool online, const char *reason,
                       uint64_t real_usec) {
        cJSON *o = cJSON_CreateObject(), *slots;

        if (!o)
                return NULL;
        add_header(o, "status", c, real_usec);
        cJSON_AddStringToObject(o, "state", online ? "online" : "offline");
        if (reason)
                cJSON_AddStringToObject(o, "reason", reason);
        cJSON_AddStringToObject(o, "version", RA_VERSION);
        if (!online)
                return finish(o);
        add_platform(o, p);
        cJSON_AddNumberToObject(o, "sampling_interval_ms", c->sampling_interval_ms);
        slots = cJSON_AddArrayToObject(o, "slots");
        for (size_t i = 0; i < c->n_slots; i++) {
                const struct cfg_slot *s = &c->slots[i];
                cJSON *j = cJSON_CreateObject();

                cJSON_AddItemToArray(slots, j);
                cJSON_AddStringToObject(j, "id", s->id);
                cJSON_AddStringToObject(j, "scale", s->scale);
                if (s->cgroup)
                        cJSON_AddStringToObject(j, "cgroup", s->cgroup);
                if (s->iface)
                        cJSON_AddStringToObject(j, "iface", s->iface);
                if (s->gpu >= 0)
                        cJSON_AddNumberToObject(j, "gpu", s->gpu);
        }
        return finish(o);
}

static cJSON *iface_json(const struct hal_net_iface *i, const struct net_rate *r) {
        cJSON *j = cJSON_CreateObject();

        cJSON_AddStringToObject(j, "iface", i->name);
        add_u64(j, "rx_bytes", i->rx_bytes);
        add_u64(j, "tx_bytes", i->tx_bytes);
        if (r && r->valid) {
                add_fixed(j, "rx_mbps", r->rx_mbps, 3);
                add_fixed(j, "tx_mbps", r->tx_mbps, 3);
        }
        return j;
}

char *tele_telemetry_json(const struct cfg *c, const struct sampler *s, uint64_t seq) {
        const struct host_sample *h = &s->cur;
        cJSON *o = cJSON_CreateObject(), *slots;

        if (!o)
                return NULL;
        add_header(o, "telemetry", c, h->real_usec);
        add_u64(o, "seq", seq);
        cJSON_AddNumberToObject(o, "interval_ms", c->sampling_interval_ms);
        if (h->has_cpu) {
                cJSON *cpu = cJSON_AddObjectToObject(o, "cpu");

                cJSON_AddNumberToObject(cpu, "cores", h->cpu.cores);
                if (h->has_cpu_util)
                        add_fixed(cpu, "util_pct", h->cpu_util_pct, 2);
        }
        if (h->has_mem) {
                cJSON *mem = cJSON_AddObjectToObject(o, "memory");

                add_u64(mem, "total_bytes", h->mem.total_bytes);
                add_u64(mem, "available_bytes", h->mem.available_bytes);
                if (h->mem.total_bytes && h->mem.available_bytes <= h->mem.total_bytes)
                        add_fixed(mem, "used_pct",
                                  100.0 * (double)(h->mem.total_bytes - h->mem.available_bytes) /
                                          (double)h->mem.total_bytes,
                                  2);
        }
        if (h->has_net) {
                cJSON *net = cJSON_AddArrayToObject(o, "net");

                for (size_t i = 0; i < h->net.n; i++)
                        cJSON_AddItemToArray(net, iface_json(&h->net.ifaces[i], &h->net_rates[i]));
        }
        slots = cJSON_AddArrayToObject(o, "slots");
        for (size_t i = 0; i < c->n_slots; i++) {
                const struct cfg_slot *sl = &c->slots[i];
                cJSON *j = cJSON_CreateObject();

                cJSON_AddItemToArray(slots, j);
                cJSON_AddStringToObject(j, "id", sl->id);
                cJSON_AddStringToObject(j, "scale", sl->scale);
                if (sl->iface && h->has_net) {
                        const struct hal_net_iface *ni = NULL;
                        const struct net_rate *r = sampler_iface_rate(s, sl->iface, &ni);

                        /* An interface that is gone (session ended, veth deleted) is said so,
                         * not reported as idle. */
                        if (!r)
                                cJSON_AddStringToObject(j, "iface_error", "interface not found");
                        else
                                cJSON_AddItemToObject(j, "net", iface_json(ni, r));
                }
        }
        cJSON_AddArrayToObject(o, "gpus");
        return finish(o);
}

char *tele_probe_json(const struct hal_platform *p, const struct host_sample *h, const char *const *errors,
                      size_t n_errors) {
        cJSON *o = cJSON_CreateObject();

        if (!o)
                return NULL;
        cJSON_AddNumberToObject(o, "v", TELE_WIRE_VERSION);
        add_platform(o, p);
        if (h->has_cpu) {
                cJSON *cpu = cJSON_AddObjectToObject(o, "cpu");

                cJSON_AddNumberToObject(cpu, "cores", h->cpu.cores);
                add_u64(cpu, "total_jiffies", h->cpu.total_jiffies);
                add_u64(cpu, "idle_jiffies", h->cpu.idle_jiffies);
        }
        if (h->has_mem) {
                cJSON *mem = cJSON_AddObjectToObject(o, "memory");

                add_u64(mem, "total_bytes", h->mem.total_bytes);
                add_u64(mem, "available_bytes", h->mem.available_bytes);
        }
        if (h->has_net) {
                cJSON *net = cJSON_AddArrayToObject(o, "net");

                for (size_t i = 0; i < h->net.n; i++)
                        cJSON_AddItemToArray(net, iface_json(&h->net.ifaces[i], NULL));
        }
        cJSON_AddArrayToObject(o, "gpus");
        if (n_errors) {
                cJSON *errs = cJSON_AddArrayToObject(o, "errors");

                for (size_t i = 0; i < n_errors; i++)
                        cJSON_AddItemToArray(errs, cJSON_CreateString(errors[i]));
        }
        return finish(o);
}
