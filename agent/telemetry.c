/* telemetry.c: the JSON documents the agent publishes (status, telemetry) and prints (--probe). */
#include "telemetry.h"

#include "clock.h"
#include "config.h"
#include "platform_class.h"
#include "sampler.h"
#include "usage.h"
#include "watch.h"

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

/* FP32 peak of GPU `index`: the config's figure, else the built-in table; says which. */
static void add_fp32(cJSON *j, const struct hal_gpu_sample *g, unsigned index, const struct cfg *c) {
        double t = c && index < CFG_MAX_GPUS ? c->gpu.fp32_tflops[index] : 0;
        const char *source = "config";

        if (!(t > 0)) {
                t = hal_gpu_fp32_tflops(g->pci_vendor, g->pci_device, g->name);
                source = isnan(t) ? "unknown" : "table";
        }
        if (isnan(t))
                cJSON_AddNullToObject(j, "fp32_tflops");
        else
                add_fixed(j, "fp32_tflops", t, 1);
        cJSON_AddStringToObject(j, "fp32_source", source);
}

static cJSON *gpu_json(const struct hal_gpu_sample *g, unsigned index, const struct cfg *c,
                       bool with_procs) {
        cJSON *j = cJSON_CreateObject();

        cJSON_AddNumberToObject(j, "index", index);
        cJSON_AddStringToObject(j, "backend", g->backend ? g->backend : "?");
        cJSON_AddStringToObject(j, "name", g->name);
        if (g->uuid[0])
                cJSON_AddStringToObject(j, "uuid", g->uuid);
        if (g->pci_bus_id[0])
                cJSON_AddStringToObject(j, "pci_bus_id", g->pci_bus_id);
        if (g->shared_memory)
                cJSON_AddTrueToObject(j, "shared_memory");
        if (g->present & HAL_GPU_UTIL)
                add_fixed(j, "util_pct", g->util_pct, 1);
        if (g->present & HAL_GPU_MEM_UTIL)
                add_fixed(j, "mem_util_pct", g->mem_util_pct, 1);
        if (g->present & HAL_GPU_ENC)
                add_fixed(j, "enc_pct", g->enc_pct, 1);
        if (g->present & HAL_GPU_DEC)
                add_fixed(j, "dec_pct", g->dec_pct, 1);
        if (g->present & HAL_GPU_VRAM) {
                add_u64(j, "vram_total_bytes", g->vram_total_bytes);
                add_u64(j, "vram_used_bytes", g->vram_used_bytes);
        }
        if (g->present & HAL_GPU_POWER)
                add_fixed(j, "power_w", g->power_w, 1);
        if (g->present & HAL_GPU_TEMP)
                add_fixed(j, "temp_c", g->temp_c, 1);
        if (g->present & HAL_GPU_CLOCK)
                cJSON_AddNumberToObject(j, "clock_mhz", g->clock_mhz);
        if (g->present & HAL_GPU_CLOCK_MAX)
                cJSON_AddNumberToObject(j, "clock_max_mhz", g->clock_max_mhz);
        if (g->present & HAL_GPU_THROTTLE)
                add_u64(j, "throttle_reasons", g->throttle_reasons);
        add_fp32(j, g, index, c);
        if (g->present & HAL_GPU_PROCS) {
                cJSON_AddNumberToObject(j, "process_count", (double)g->n_procs);
                if (with_procs) {
                        cJSON *procs = cJSON_AddArrayToObject(j, "processes");

                        for (size_t i = 0; i < g->n_procs; i++) {
                                cJSON *p = cJSON_CreateObject();

                                cJSON_AddNumberToObject(p, "pid", g->procs[i].pid);
                                if (g->procs[i].vram_bytes != UINT64_MAX)
                                        add_u64(p, "vram_bytes", g->procs[i].vram_bytes);
                                cJSON_AddItemToArray(procs, p);
                        }
                }
        }
        if (g->error < 0)
                cJSON_AddStringToObject(j, "error", g->error_msg);
        return j;
}

static void add_gpus(cJSON *o, const struct host_sample *h, const struct cfg *c, bool with_procs) {
        cJSON *gpus = cJSON_AddArrayToObject(o, "gpus");

        for (unsigned i = 0; i < h->n_gpus; i++)
                cJSON_AddItemToArray(gpus, gpu_json(&h->gpus[i], i, c, with_procs));
}

/* A slot's cgroup figures: rates in telemetry, raw counters in the probe. */
static void add_slot_cgroup(cJSON *j, const struct usage_slot *us) {
        cJSON *cg;

        if (!us->cg_state)
                return;
        if (!us->has_cg) {
                cJSON_AddStringToObject(j, "cgroup_state", us->cg_state);
                if (us->cg_error[0])
                        cJSON_AddStringToObject(j, "cgroup_error", us->cg_error);
                return;
        }
        cg = cJSON_AddObjectToObject(j, "cgroup");
        if (us->has_cores)
                add_fixed(cg, "cores_used", us->cores_used, 3);
        if (us->cg.present & HAL_CG_CPU)
                add_u64(cg, "cpu_usage_usec", us->cg.cpu_usage_usec);
        if (us->cg.present & HAL_CG_CPU_MAX)
                add_fixed(cg, "cpu_quota_cores", us->cg.cpu_quota_cores, 2);
        if (us->cg.present & HAL_CG_MEM)
                add_u64(cg, "memory_bytes", us->cg.mem_current_bytes);
        if ((us->cg.present & HAL_CG_MEM_MAX) && us->cg.mem_max_bytes != UINT64_MAX)
                add_u64(cg, "memory_max_bytes", us->cg.mem_max_bytes);
        if (us->cg.present & HAL_CG_PIDS)
                add_u64(cg, "pids", us->cg.pids_current);
}

/* The slot's GPU: a dedicated one reports its own figures; a shared one the VRAM of the
 * slot's processes. */
static void add_slot_gpu(cJSON *j, const struct cfg_slot *sl, const struct usage_slot *us,
                         const struct host_sample *h) {
        const struct hal_gpu_sample *g;
        cJSON *o;

        if (sl->gpu < 0)
                return;
        o = cJSON_AddObjectToObject(j, "gpu");
        cJSON_AddNumberToObject(o, "index", sl->gpu);
        if ((unsigned)sl->gpu >= h->n_gpus) {
                cJSON_AddStringToObject(o, "error", "no such GPU on this host");
                return;
        }
        g = &h->gpus[sl->gpu];
        cJSON_AddBoolToObject(o, "shared", us->gpu_shared);
        if (us->gpu_shared) {
                if (us->has_gpu_vram)
                        add_u64(o, "vram_used_bytes", us->gpu_vram_bytes);
                return;
        }
        if (g->present & HAL_GPU_UTIL)
                add_fixed(o, "util_pct", g->util_pct, 1);
        if (g->present & HAL_GPU_VRAM)
                add_u64(o, "vram_used_bytes", g->vram_used_bytes);
}

static cJSON *scale_json(const struct spec_scale *sc) {
        cJSON *j = cJSON_CreateObject();

        cJSON_AddStringToObject(j, "name", sc->name);
        cJSON_AddStringToObject(j, "class", hal_class_to_string(sc->cls));
        cJSON_AddNumberToObject(j, "vcpu", sc->vcpu);
        add_u64(j, "ram_bytes", sc->ram_bytes);
        if (sc->fp32_tflops > 0)
                add_fixed(j, "gpu_fp32_tflops", sc->fp32_tflops, 1);
        if (sc->vram_bytes > 0)
                add_u64(j, "vram_bytes", sc->vram_bytes);
        add_fixed(j, "bandwidth_mbps", sc->bandwidth_mbps, 1);
        cJSON_AddBoolToObject(j, "published", sc->builtin);
        return j;
}

/* The slot against its scale: the plan's verdict, and usage as a share of each limit. */
static void add_slot_spec(cJSON *j, const struct cfg *c, size_t i, const struct usage_slot *us,
                          const struct watch *w, const struct host_sample *h) {
        const struct cfg_slot *sl = &c->slots[i];
        const struct spec_scale *sc = spec_find(c, sl->scale);
        const struct watch_slot *ws = i < w->n ? &w->slots[i] : NULL;
        cJSON *pct;

        if (!sc || !ws)
                return;
        if (w->planned) {
                cJSON_AddBoolToObject(j, "conformant", ws->verdict.meets);
                if (!ws->verdict.meets)
                        cJSON_AddStringToObject(j, "nonconformant", ws->verdict.reason);
        }
        pct = cJSON_AddObjectToObject(j, "usage_pct");
        if (us && us->has_cores)
                add_fixed(pct, "cpu", spec_pct(us->cores_used, sc->vcpu), 1);
        if (us && us->has_cg && (us->cg.present & HAL_CG_MEM)) {
                uint64_t limit = (us->cg.present & HAL_CG_MEM_MAX) && us->cg.mem_max_bytes != UINT64_MAX
                                         ? us->cg.mem_max_bytes
                                         : sc->ram_bytes;

                add_fixed(pct, "memory", spec_pct((double)us->cg.mem_current_bytes, (double)limit), 1);
        }
        if (sl->gpu >= 0 && (unsigned)sl->gpu < h->n_gpus && sc->vram_bytes > 0) {
                const struct hal_gpu_sample *g = &h->gpus[sl->gpu];

                if (us && us->gpu_shared && us->has_gpu_vram)
                        add_fixed(pct, "vram", spec_pct((double)us->gpu_vram_bytes, (double)sc->vram_bytes),
                                  1);
                else if (us && !us->gpu_shared && (g->present & HAL_GPU_VRAM))
                        add_fixed(pct, "vram", spec_pct((double)g->vram_used_bytes, (double)sc->vram_bytes),
                                  1);
                if (us && !us->gpu_shared && (g->present & HAL_GPU_UTIL))
                        add_fixed(pct, "gpu", g->util_pct, 1);
        }
        if (ws->has_bandwidth) {
                add_fixed(j, "bandwidth_mbps", ws->bandwidth_mbps, 3);
                add_fixed(pct, "bandwidth", spec_pct(ws->bandwidth_mbps, sc->bandwidth_mbps), 1);
        }
        cJSON_AddBoolToObject(j, "bandwidth_over_cap", ws->bandwidth.raised);
}

static cJSON *slot_json(const struct cfg *c, size_t i, const struct usage *u, const struct watch *w,
                        const struct sampler *s) {
        const struct cfg_slot *sl = &c->slots[i];
        const struct usage_slot *us = u && i < u->n ? &u->slots[i] : NULL;
        const struct host_sample *h = &s->cur;
        cJSON *j = cJSON_CreateObject();

        cJSON_AddStringToObject(j, "id", sl->id);
        cJSON_AddStringToObject(j, "scale", sl->scale);
        if (us)
                add_slot_cgroup(j, us);
        if (sl->iface && h->has_net) {
                const struct hal_net_iface *ni = NULL;
                const struct net_rate *r = sampler_iface_rate(s, sl->iface, &ni);

                /* An interface that is gone (session ended, veth deleted) is said so, not
                 * reported as idle. */
                if (!r)
                        cJSON_AddStringToObject(j, "iface_error", "interface not found");
                else
                        cJSON_AddItemToObject(j, "net", iface_json(ni, r));
        }
        if (us)
                add_slot_gpu(j, sl, us, h);
        if (w)
                add_slot_spec(j, c, i, us, w, h);
        return j;
}

void tele_ticks_add(struct tele_ticks *t, uint64_t now_usec, uint64_t took_usec) {
        uint64_t sec = now_usec / USEC_PER_SEC + 1;
        size_t i = sec % TELE_TICK_WINDOW_S;

        t->count++;
        t->last_usec = took_usec;
        if (t->second[i] != sec) {
                t->second[i] = sec;
                t->max_usec[i] = 0;
        }
        if (took_usec > t->max_usec[i])
                t->max_usec[i] = took_usec;
}

uint64_t tele_ticks_max(const struct tele_ticks *t, uint64_t now_usec) {
        uint64_t sec = now_usec / USEC_PER_SEC + 1, max = 0;

        for (size_t i = 0; i < TELE_TICK_WINDOW_S; i++)
                if (t->second[i] && t->second[i] <= sec && sec - t->second[i] < TELE_TICK_WINDOW_S &&
                    t->max_usec[i] > max)
                        max = t->max_usec[i];
        return max;
}

cJSON *tele_self_json(const struct tele_self *self) {
        cJSON *o = cJSON_CreateObject();

        if (!o)
                return NULL;
        if (self->has_usage) {
                add_u64(o, "cpu_usec", self->usage.cpu_usec);
                add_u64(o, "rss_bytes", self->usage.rss_bytes);
                add_u64(o, "peak_rss_bytes", self->usage.peak_rss_bytes);
        }
        if (self->has_tick) {
                add_u64(o, "tick_usec", self->tick_usec);
                add_u64(o, "tick_max_usec", self->tick_max_usec);
        }
        if (self->has_spool) {
                add_u64(o, "spool_records", self->spool_records);
                add_u64(o, "spool_bytes", self->spool_bytes);
        }
        return o;
}

char *tele_telemetry_json(const struct cfg *c, const struct sampler *s, const struct usage *u,
                          const struct watch *w, uint64_t seq) {
        return tele_telemetry_json_ex(c, s, u, w, seq, NULL);
}

char *tele_telemetry_json_ex(const struct cfg *c, const struct sampler *s, const struct usage *u,
                             const struct watch *w, uint64_t seq, const struct tele_self *self) {
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
        for (size_t i = 0; i < c->n_slots; i++)
                cJSON_AddItemToArray(slots, slot_json(c, i, u, w, s));
        add_gpus(o, h, c, false);
        if (self)
                cJSON_AddItemToObject(o, "self", tele_self_json(self));
        return finish(o);
}

char *tele_probe_json(const struct hal_platform *p, const struct host_sample *h, const struct cfg *c,
                      const struct sampler *s, const struct usage *u, const char *const *errors,
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
        add_gpus(o, h, c, true);
        if (c && u) {
                cJSON *slots = cJSON_AddArrayToObject(o, "slots");

                for (size_t i = 0; i < c->n_slots; i++)
                        cJSON_AddItemToArray(slots, slot_json(c, i, u, NULL, s));
        }
        if (n_errors) {
                cJSON *errs = cJSON_AddArrayToObject(o, "errors");

                for (size_t i = 0; i < n_errors; i++)
                        cJSON_AddItemToArray(errs, cJSON_CreateString(errors[i]));
        }
        return finish(o);
}

cJSON *tele_spec_json(const struct cfg *c, const struct sampler *s, const struct usage *u,
                      const struct watch *w) {
        cJSON *o = cJSON_CreateObject(), *cat, *slots, *host;

        cat = cJSON_AddArrayToObject(o, "catalog");
        for (size_t i = 0; i < c->n_scales; i++)
                cJSON_AddItemToArray(cat, scale_json(&c->scales[i]));
        if (w->planned) {
                host = cJSON_AddObjectToObject(o, "host");
                cJSON_AddStringToObject(host, "class", hal_class_to_string(w->host.cls));
                cJSON_AddNumberToObject(host, "vcpu", w->host.cores);
                add_u64(host, "ram_bytes", w->host.ram_bytes);
                cJSON_AddNumberToObject(host, "gpus", w->host.n_gpus);
        }
        slots = cJSON_AddArrayToObject(o, "slots");
        for (size_t i = 0; i < c->n_slots; i++) {
                cJSON *j = slot_json(c, i, u, w, s);
                const struct spec_scale *sc = spec_find(c, c->slots[i].scale);

                if (sc)
                        cJSON_AddItemToObject(j, "limits", scale_json(sc));
                cJSON_AddItemToArray(slots, j);
        }
        return o;
}
