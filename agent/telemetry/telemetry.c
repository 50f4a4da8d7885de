/* telemetry.c: the JSON documents the agent publishes (status, telemetry) and prints (--probe). */
#include "telemetry.h"

#include "cleanup.h"
#include "clock.h"
#include "config.h"
#include "gpujson.h"
#include "jsonw.h"
#include "platform_class.h"
#include "sampler.h"
#include "streams.h"
#include "telemetry_internal.h"
#include "usage.h"
#include "watch.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Every document is written with jsonw: as text for what is published or printed (no tree built
 * and freed on every tick), as a cJSON tree for what goes into a control reply. Counters are raw
 * digits (exact past 2^53, where cJSON's doubles are not); rates and percentages are fixed-point
 * with a set number of decimals, so documents stay short and diffable. */

int tele_topic(const struct cfg *c, const char *leaf, char *buf, size_t len) {
        int n = snprintf(buf, len, "%s/%s/%s/%s", c->mqtt.topic_prefix, c->node_region, c->node_id, leaf);

        return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

void tele__header(struct jsonw *j, unsigned version, const char *type, const struct cfg *c,
                  uint64_t real_usec) {
        char ts[32];

        jsonw_number(j, "v", version);
        jsonw_string(j, "type", type);
        if (c) {
                jsonw_string(j, "node", c->node_id);
                jsonw_string(j, "region", c->node_region);
        }
        if (real_usec)
                jsonw_string(j, "ts", plat_format_rfc3339_ms(real_usec, ts, sizeof(ts)));
}

static void add_platform(struct jsonw *j, const struct hal_platform *p) {
        jsonw_object(j, "platform");
        jsonw_string(j, "arch", p->arch);
        jsonw_string(j, "class", hal_class_to_string(p->cls));
        jsonw_end(j);
}

static void add_fp32(struct jsonw *j, const struct hal_gpu_sample *g, unsigned index, const struct cfg *c);

/* Which GPU it is: in the status's facts and in the one-sample document. */
static void add_gpu_identity(struct jsonw *j, const struct hal_gpu_sample *g) {
        jsonw_string(j, "backend", g->backend ? g->backend : "?");
        jsonw_string(j, "name", g->name);
        if (g->uuid[0])
                jsonw_string(j, "uuid", g->uuid);
        if (g->pci_bus_id[0])
                jsonw_string(j, "pci_bus_id", g->pci_bus_id);
        if (g->shared_memory)
                jsonw_bool(j, "shared_memory", true);
}

/* Facts of a GPU: what it is, not what it does (that is telemetry). */
static void add_gpu_facts(struct jsonw *j, const struct hal_gpu_sample *g, unsigned index,
                          const struct cfg *c) {
        jsonw_object(j, NULL);
        jsonw_number(j, "index", index);
        add_gpu_identity(j, g);
        if (g->present & HAL_GPU_VRAM)
                jsonw_u64(j, "vram_total_bytes", g->vram_total_bytes);
        if (g->present & HAL_GPU_VRAM_RESERVED)
                jsonw_u64(j, "vram_reserved_bytes", g->vram_reserved_bytes);
        if (g->present & HAL_GPU_CLOCK_MAX)
                jsonw_number(j, "clock_max_mhz", g->clock_max_mhz);
        add_fp32(j, g, index, c);
        gpujson_sharing(j, g, GPUJSON_FACTS);
        jsonw_end(j);
}

/* The host's facts as measured (s not NULL): cores, memory, interfaces, GPUs. */
static void add_host_facts(struct jsonw *j, const struct cfg *c, const struct sampler *s) {
        const struct host_sample *h = &s->cur;

        jsonw_object(j, "host");
        if (h->has_cpu)
                jsonw_number(j, "cores", h->cpu.cores);
        if (h->has_mem) {
                jsonw_u64(j, "memory_total_bytes", h->mem.total_bytes);
                if (h->mem.available_estimated)
                        jsonw_bool(j, "memory_available_estimated", true);
        }
        jsonw_end(j);
        if (h->has_net) {
                jsonw_array(j, "interfaces");
                for (size_t i = 0; i < h->net.n; i++)
                        jsonw_string(j, NULL, h->net.ifaces[i].name);
                jsonw_end(j);
        }
        jsonw_array(j, "gpus");
        for (unsigned i = 0; i < h->n_gpus; i++)
                add_gpu_facts(j, &h->gpus[i], i, c);
        jsonw_end(j);
}

/* A slot's facts: its config; whether its cgroup and interface are there (a session's come and go
 * with it), the cgroup's limits, its stream sessions; the plan's verdict. */
static void add_slot_facts(struct jsonw *j, const struct cfg *c, size_t i, const struct sampler *s,
                           const struct usage *u, const struct watch *w) {
        const struct cfg_slot *sl = &c->slots[i];
        const struct usage_slot *us = usage_slot_at(u, i);
        const struct watch_slot *ws;
        const struct hal_net_iface *ni;

        jsonw_object(j, NULL);
        jsonw_string(j, "id", sl->id);
        jsonw_string(j, "scale", sl->scale);
        jsonw_string(j, "cgroup", sl->cgroup);
        jsonw_string(j, "iface", sl->iface);
        if (sl->gpu >= 0)
                jsonw_number(j, "gpu", sl->gpu);
        if (us && sl->gpu >= 0)
                jsonw_bool(j, "gpu_shared", us->gpu_shared);
        if (us && us->has_cg && (us->cg.present & HAL_CG_CPU_MAX))
                jsonw_fixed(j, "cpu_quota_cores", us->cg.cpu_quota_cores, 2);
        if (us && us->has_cg && (us->cg.present & HAL_CG_MEM_MAX) && us->cg.mem_max_bytes != UINT64_MAX)
                jsonw_u64(j, "memory_max_bytes", us->cg.mem_max_bytes);
        if (us && us->cg_state) {
                jsonw_string(j, "cgroup_state", us->cg_state);
                if (!us->has_cg && us->cg_error[0])
                        jsonw_string(j, "cgroup_error", us->cg_error);
        }
        if (sl->iface && s && s->cur.has_net)
                jsonw_bool(j, "iface_found", sampler_iface_rate(s, sl->iface, &ni) != NULL);
        if (us)
                streams_write(j, us, false);
        if (w && w->planned && (ws = watch_slot_at(w, i))) {
                jsonw_bool(j, "conformant", ws->verdict.meets);
                if (!ws->verdict.meets)
                        jsonw_string(j, "nonconformant", ws->verdict.reason);
        }
        jsonw_end(j);
}

static void add_scale(struct jsonw *j, const char *key, const struct spec_scale *sc);

char *tele_status_json(const struct cfg *c, const struct hal_platform *p, const struct sampler *s,
                       const struct usage *u, const struct watch *w, bool online, const char *reason,
                       uint64_t real_usec) {
        struct jsonw j;

        jsonw_init(&j, false);
        jsonw_object(&j, NULL);
        tele__header(&j, TELE_WIRE_VERSION, "status", c, real_usec);
        jsonw_string(&j, "state", online ? "online" : "offline");
        jsonw_string(&j, "reason", reason);
        jsonw_string(&j, "version", RA_VERSION);
        if (online) {
                add_platform(&j, p);
                jsonw_number(&j, "sampling_interval_ms", c->sampling_interval_ms);
                jsonw_number(&j, "telemetry_interval_ms", c->telemetry_interval_ms);
                if (s)
                        add_host_facts(&j, c, s);
                jsonw_array(&j, "slots");
                for (size_t i = 0; i < c->n_slots; i++)
                        add_slot_facts(&j, c, i, s, u, w);
                jsonw_end(&j);
                jsonw_array(&j, "catalog");
                for (size_t i = 0; i < c->n_scales; i++)
                        add_scale(&j, NULL, &c->scales[i]);
                jsonw_end(&j);
        }
        jsonw_end(&j);
        return jsonw_take_text(&j);
}

/* An interface's counters (and, with r, its rates) as the object `key` (NULL: an array element). */
static void add_iface(struct jsonw *j, const char *key, const struct hal_net_iface *i,
                      const struct net_rate *r) {
        jsonw_object(j, key);
        jsonw_string(j, "iface", i->name);
        jsonw_u64(j, "rx_bytes", i->rx_bytes);
        jsonw_u64(j, "tx_bytes", i->tx_bytes);
        if (r && r->valid) {
                jsonw_fixed(j, "rx_mbps", r->rx_mbps, 3);
                jsonw_fixed(j, "tx_mbps", r->tx_mbps, 3);
        }
        jsonw_end(j);
}

/* FP32 peak of GPU `index`: the config's figure, else the built-in table; says which. */
static void add_fp32(struct jsonw *j, const struct hal_gpu_sample *g, unsigned index, const struct cfg *c) {
        double t = c && index < CFG_MAX_GPUS ? c->gpu.fp32_tflops[index] : 0;
        const char *source = "config";

        if (!(t > 0)) {
                t = hal_gpu_fp32_tflops(g->pci_vendor, g->pci_device, g->name);
                source = isnan(t) ? "unknown" : "table";
        }
        if (isnan(t))
                jsonw_null(j, "fp32_tflops");
        else
                jsonw_fixed(j, "fp32_tflops", t, 1);
        jsonw_string(j, "fp32_source", source);
}

/* The host's memory, in bytes; with used_pct its share in use (the one-sample document). */
static void add_memory(struct jsonw *j, const struct hal_mem_sample *m, bool used_pct) {
        jsonw_object(j, "memory");
        jsonw_u64(j, "total_bytes", m->total_bytes);
        jsonw_u64(j, "available_bytes", m->available_bytes);
        if (m->available_estimated)
                jsonw_bool(j, "available_estimated", true);
        if (used_pct && m->total_bytes && m->available_bytes <= m->total_bytes)
                jsonw_fixed(j, "used_pct",
                            100.0 * (double)(m->total_bytes - m->available_bytes) / (double)m->total_bytes,
                            2);
        jsonw_end(j);
}

static void add_gpu(struct jsonw *j, const struct host_sample *h, unsigned index, const struct cfg *c,
                    bool with_procs) {
        const struct hal_gpu_sample *g = &h->gpus[index];

        jsonw_object(j, NULL);
        jsonw_number(j, "index", index);
        /* The sample is the GPU worker's last complete one: how old, and whether the worker is stuck. */
        jsonw_u64(j, "age_ms", h->gpu_age_usec / USEC_PER_MSEC);
        if (h->gpus_stale)
                jsonw_bool(j, "stale", true);
        add_gpu_identity(j, g);
        if (g->present & HAL_GPU_UTIL)
                jsonw_fixed(j, "util_pct", g->util_pct, 1);
        if (g->present & HAL_GPU_MEM_UTIL)
                jsonw_fixed(j, "mem_util_pct", g->mem_util_pct, 1);
        if (g->present & HAL_GPU_ENC)
                jsonw_fixed(j, "enc_pct", g->enc_pct, 1);
        if (g->present & HAL_GPU_DEC)
                jsonw_fixed(j, "dec_pct", g->dec_pct, 1);
        if (g->present & HAL_GPU_VRAM) {
                jsonw_u64(j, "vram_total_bytes", g->vram_total_bytes);
                jsonw_u64(j, "vram_used_bytes", g->vram_used_bytes);
        }
        if (g->present & HAL_GPU_VRAM_RESERVED)
                jsonw_u64(j, "vram_reserved_bytes", g->vram_reserved_bytes);
        if (g->present & HAL_GPU_POWER)
                jsonw_fixed(j, "power_w", g->power_w, 1);
        if (g->present & HAL_GPU_TEMP)
                jsonw_fixed(j, "temp_c", g->temp_c, 1);
        if (g->present & HAL_GPU_CLOCK)
                jsonw_number(j, "clock_mhz", g->clock_mhz);
        if (g->present & HAL_GPU_CLOCK_MAX)
                jsonw_number(j, "clock_max_mhz", g->clock_max_mhz);
        if (g->present & HAL_GPU_THROTTLE)
                jsonw_u64(j, "throttle_reasons", g->throttle_reasons);
        add_fp32(j, g, index, c);
        if (g->present & HAL_GPU_PROCS) {
                jsonw_number(j, "process_count", (double)g->n_procs);
                if (with_procs)
                        gpujson_procs(j, g->procs, g->n_procs);
        }
        gpujson_sharing(j, g, with_procs ? GPUJSON_PROCESSES : GPUJSON_FIGURES);
        if (g->error < 0)
                jsonw_string(j, "error", g->error_msg);
        jsonw_end(j);
}

static void add_gpus(struct jsonw *j, const struct host_sample *h, const struct cfg *c, bool with_procs) {
        jsonw_array(j, "gpus");
        for (unsigned i = 0; i < h->n_gpus; i++)
                add_gpu(j, h, i, c, with_procs);
        jsonw_end(j);
}

/* A slot's cgroup figures: rates in telemetry, raw counters in the probe. */
static void add_slot_cgroup(struct jsonw *j, const struct usage_slot *us) {
        if (!us->cg_state)
                return;
        if (!us->has_cg) {
                jsonw_string(j, "cgroup_state", us->cg_state);
                if (us->cg_error[0])
                        jsonw_string(j, "cgroup_error", us->cg_error);
                return;
        }
        jsonw_object(j, "cgroup");
        if (us->has_cores)
                jsonw_fixed(j, "cores_used", us->cores_used, 3);
        if (us->cg.present & HAL_CG_CPU)
                jsonw_u64(j, "cpu_usage_usec", us->cg.cpu_usage_usec);
        if (us->cg.present & HAL_CG_CPU_MAX)
                jsonw_fixed(j, "cpu_quota_cores", us->cg.cpu_quota_cores, 2);
        if (us->cg.present & HAL_CG_MEM)
                jsonw_u64(j, "memory_bytes", us->cg.mem_current_bytes);
        if ((us->cg.present & HAL_CG_MEM_MAX) && us->cg.mem_max_bytes != UINT64_MAX)
                jsonw_u64(j, "memory_max_bytes", us->cg.mem_max_bytes);
        if (us->cg.present & HAL_CG_PIDS)
                jsonw_u64(j, "pids", us->cg.pids_current);
        jsonw_end(j);
}

/* The slot's GPU: a dedicated one reports its own figures; a shared one the VRAM of the
 * slot's processes. Both list the slot's stream sessions. */
static void add_slot_gpu(struct jsonw *j, const struct cfg_slot *sl, const struct usage_slot *us,
                         const struct host_sample *h) {
        const struct hal_gpu_sample *g;

        if (sl->gpu < 0)
                return;
        jsonw_object(j, "gpu");
        jsonw_number(j, "index", sl->gpu);
        if ((unsigned)sl->gpu >= h->n_gpus) {
                jsonw_string(j, "error", "no such GPU on this host");
                jsonw_end(j);
                return;
        }
        g = &h->gpus[sl->gpu];
        jsonw_bool(j, "shared", us->gpu_shared);
        if (us->gpu_shared) {
                if (us->has_gpu_vram)
                        jsonw_u64(j, "vram_used_bytes", us->gpu_vram_bytes);
        } else {
                if (g->present & HAL_GPU_UTIL)
                        jsonw_fixed(j, "util_pct", g->util_pct, 1);
                if (g->present & HAL_GPU_VRAM)
                        jsonw_u64(j, "vram_used_bytes", g->vram_used_bytes);
        }
        streams_write(j, us, true);
        jsonw_end(j);
}

static void add_scale(struct jsonw *j, const char *key, const struct spec_scale *sc) {
        jsonw_object(j, key);
        jsonw_string(j, "name", sc->name);
        jsonw_string(j, "class", hal_class_to_string(sc->cls));
        jsonw_number(j, "vcpu", sc->vcpu);
        jsonw_u64(j, "ram_bytes", sc->ram_bytes);
        if (sc->fp32_tflops > 0)
                jsonw_fixed(j, "gpu_fp32_tflops", sc->fp32_tflops, 1);
        if (sc->vram_bytes > 0)
                jsonw_u64(j, "vram_bytes", sc->vram_bytes);
        jsonw_fixed(j, "bandwidth_mbps", sc->bandwidth_mbps, 1);
        jsonw_bool(j, "published", sc->builtin);
        jsonw_end(j);
}

/* The slot's usage as a share of each limit of its scale (members of "usage_pct"). */
static void add_usage_pct(struct jsonw *j, const struct spec_scale *sc, const struct cfg_slot *sl,
                          const struct usage_slot *us, const struct watch_slot *ws,
                          const struct host_sample *h) {
        jsonw_object(j, "usage_pct");
        if (us && us->has_cores)
                jsonw_fixed(j, "cpu", spec_pct(us->cores_used, sc->vcpu), 1);
        if (us && us->has_cg && (us->cg.present & HAL_CG_MEM)) {
                uint64_t limit = (us->cg.present & HAL_CG_MEM_MAX) && us->cg.mem_max_bytes != UINT64_MAX
                                         ? us->cg.mem_max_bytes
                                         : sc->ram_bytes;

                jsonw_fixed(j, "memory", spec_pct((double)us->cg.mem_current_bytes, (double)limit), 1);
        }
        if (sl->gpu >= 0 && (unsigned)sl->gpu < h->n_gpus && sc->vram_bytes > 0) {
                const struct hal_gpu_sample *g = &h->gpus[sl->gpu];

                if (us && us->gpu_shared && us->has_gpu_vram)
                        jsonw_fixed(j, "vram", spec_pct((double)us->gpu_vram_bytes, (double)sc->vram_bytes),
                                    1);
                else if (us && !us->gpu_shared && (g->present & HAL_GPU_VRAM))
                        jsonw_fixed(j, "vram", spec_pct((double)g->vram_used_bytes, (double)sc->vram_bytes),
                                    1);
                if (us && !us->gpu_shared && (g->present & HAL_GPU_UTIL))
                        jsonw_fixed(j, "gpu", g->util_pct, 1);
        }
        if (ws->has_bandwidth)
                jsonw_fixed(j, "bandwidth", spec_pct(ws->bandwidth_mbps, sc->bandwidth_mbps), 1);
        jsonw_end(j);
}

/* The slot against its scale: the plan's verdict, and usage as a share of each limit. The slot's
 * own bandwidth comes after "usage_pct" (whose last member is its share). */
static void add_slot_spec(struct jsonw *j, const struct cfg *c, size_t i, const struct usage_slot *us,
                          const struct watch *w, const struct host_sample *h) {
        const struct cfg_slot *sl = &c->slots[i];
        const struct spec_scale *sc = spec_find(c, sl->scale);
        const struct watch_slot *ws = watch_slot_at(w, i);

        if (!sc || !ws)
                return;
        if (w->planned) {
                jsonw_bool(j, "conformant", ws->verdict.meets);
                if (!ws->verdict.meets)
                        jsonw_string(j, "nonconformant", ws->verdict.reason);
        }
        add_usage_pct(j, sc, sl, us, ws, h);
        if (ws->has_bandwidth)
                jsonw_fixed(j, "bandwidth_mbps", ws->bandwidth_mbps, 3);
        jsonw_bool(j, "bandwidth_over_cap", ws->bandwidth.raised);
}

/* Slot i as an array element; with_limits adds its scale as "limits" (the spec document). */
static void add_slot(struct jsonw *j, const struct cfg *c, size_t i, const struct usage *u,
                     const struct watch *w, const struct sampler *s, bool with_limits) {
        const struct cfg_slot *sl = &c->slots[i];
        const struct usage_slot *us = usage_slot_at(u, i);
        const struct host_sample *h = &s->cur;
        const struct spec_scale *sc;

        jsonw_object(j, NULL);
        jsonw_string(j, "id", sl->id);
        jsonw_string(j, "scale", sl->scale);
        if (us)
                add_slot_cgroup(j, us);
        if (sl->iface && h->has_net) {
                const struct hal_net_iface *ni = NULL;
                const struct net_rate *r = sampler_iface_rate(s, sl->iface, &ni);

                /* An interface that is gone (session ended, veth deleted) is said so, not
                 * reported as idle. */
                if (!r)
                        jsonw_string(j, "iface_error", "interface not found");
                else
                        add_iface(j, "net", ni, r);
        }
        if (us)
                add_slot_gpu(j, sl, us, h);
        if (w)
                add_slot_spec(j, c, i, us, w, h);
        if (with_limits && (sc = spec_find(c, sl->scale)))
                add_scale(j, "limits", sc);
        jsonw_end(j);
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

void tele__self(struct jsonw *j, const char *key, const struct tele_self *self) {
        jsonw_object(j, key);
        if (self->has_usage) {
                jsonw_u64(j, "cpu_usec", self->usage.cpu_usec);
                jsonw_u64(j, "rss_bytes", self->usage.rss_bytes);
                jsonw_u64(j, "peak_rss_bytes", self->usage.peak_rss_bytes);
        }
        if (self->has_tick) {
                jsonw_u64(j, "tick_usec", self->tick_usec);
                jsonw_u64(j, "tick_max_usec", self->tick_max_usec);
        }
        if (self->has_spool) {
                jsonw_u64(j, "spool_records", self->spool_records);
                jsonw_u64(j, "spool_bytes", self->spool_bytes);
        }
        jsonw_end(j);
}

cJSON *tele_self_json(const struct tele_self *self) {
        struct jsonw j;

        jsonw_init(&j, true);
        tele__self(&j, NULL, self);
        return jsonw_take_tree(&j);
}

char *tele_telemetry_json(const struct cfg *c, const struct sampler *s, const struct usage *u,
                          const struct watch *w, uint64_t seq, const struct tele_self *self) {
        const struct host_sample *h = &s->cur;
        struct jsonw j;

        jsonw_init(&j, false);
        jsonw_object(&j, NULL);
        tele__header(&j, TELE_WIRE_VERSION, "telemetry", c, h->real_usec);
        jsonw_u64(&j, "seq", seq);
        jsonw_number(&j, "interval_ms", c->sampling_interval_ms);
        if (h->has_cpu) {
                jsonw_object(&j, "cpu");
                jsonw_number(&j, "cores", h->cpu.cores);
                if (h->has_cpu_util)
                        jsonw_fixed(&j, "util_pct", h->cpu_util_pct, 2);
                jsonw_end(&j);
        }
        if (h->has_mem)
                add_memory(&j, &h->mem, true);
        if (h->has_net) {
                jsonw_array(&j, "net");
                for (size_t i = 0; i < h->net.n; i++)
                        add_iface(&j, NULL, &h->net.ifaces[i], &h->net_rates[i]);
                jsonw_end(&j);
        }
        jsonw_array(&j, "slots");
        for (size_t i = 0; i < c->n_slots; i++)
                add_slot(&j, c, i, u, w, s, false);
        jsonw_end(&j);
        add_gpus(&j, h, c, false);
        if (self)
                tele__self(&j, "self", self);
        if (self && self->has_clock)
                clocksync_jsonw(&j, "clock", &self->clock);
        jsonw_end(&j);
        return jsonw_take_text(&j);
}

char *tele_probe_json(const struct hal_platform *p, const struct host_sample *h, const struct cfg *c,
                      const struct sampler *s, const struct usage *u, const char *const *errors,
                      size_t n_errors) {
        struct jsonw j;

        jsonw_init(&j, false);
        jsonw_object(&j, NULL);
        jsonw_number(&j, "v", TELE_WIRE_VERSION);
        add_platform(&j, p);
        if (h->has_cpu) {
                jsonw_object(&j, "cpu");
                jsonw_number(&j, "cores", h->cpu.cores);
                jsonw_u64(&j, "total_jiffies", h->cpu.total_jiffies);
                jsonw_u64(&j, "idle_jiffies", h->cpu.idle_jiffies);
                jsonw_end(&j);
        }
        if (h->has_mem)
                add_memory(&j, &h->mem, false);
        if (h->has_net) {
                jsonw_array(&j, "net");
                for (size_t i = 0; i < h->net.n; i++)
                        add_iface(&j, NULL, &h->net.ifaces[i], NULL);
                jsonw_end(&j);
        }
        add_gpus(&j, h, c, true);
        if (c && u) {
                jsonw_array(&j, "slots");
                for (size_t i = 0; i < c->n_slots; i++)
                        add_slot(&j, c, i, u, NULL, s, false);
                jsonw_end(&j);
        }
        if (n_errors) {
                jsonw_array(&j, "errors");
                for (size_t i = 0; i < n_errors; i++)
                        jsonw_string(&j, NULL, errors[i]);
                jsonw_end(&j);
        }
        jsonw_end(&j);
        return jsonw_take_text(&j);
}

cJSON *tele_telemetry_reply(const struct cfg *c, const struct sampler *s, const struct usage *u,
                            const struct watch *w, uint64_t seq) {
        _cleanup_free_ char *doc = tele_telemetry_json(c, s, u, w, seq, NULL);
        cJSON *res = cJSON_CreateObject();

        cJSON_AddItemToObject(res, "telemetry", doc ? cJSON_Parse(doc) : cJSON_CreateNull());
        return res;
}

cJSON *tele_spec_json(const struct cfg *c, const struct sampler *s, const struct usage *u,
                      const struct watch *w) {
        struct jsonw j;

        jsonw_init(&j, true);
        jsonw_object(&j, NULL);
        jsonw_array(&j, "catalog");
        for (size_t i = 0; i < c->n_scales; i++)
                add_scale(&j, NULL, &c->scales[i]);
        jsonw_end(&j);
        if (w->planned) {
                jsonw_object(&j, "host");
                jsonw_string(&j, "class", hal_class_to_string(w->host.cls));
                jsonw_number(&j, "vcpu", w->host.cores);
                jsonw_u64(&j, "ram_bytes", w->host.ram_bytes);
                jsonw_number(&j, "gpus", w->host.n_gpus);
                jsonw_end(&j);
        }
        jsonw_array(&j, "slots");
        for (size_t i = 0; i < c->n_slots; i++)
                add_slot(&j, c, i, u, w, s, true);
        jsonw_end(&j);
        jsonw_end(&j);
        return jsonw_take_tree(&j);
}
