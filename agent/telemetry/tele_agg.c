/* tele_agg.c: telemetry sampled every sampling.interval_ms and published every
 * telemetry.interval_ms: each gauge as last, min, max and average of the interval's samples and each
 * byte counter as the total it grew by, so no peak between two documents is lost to averaging while
 * the node publishes a tenth as often (issue 20). Facts live in the status document instead. */
#include "tele_agg.h"

#include "config.h"
#include "jsonw.h"
#include "sampler.h"
#include "slot.h"
#include "telemetry.h"
#include "telemetry_internal.h"
#include "usage.h"
#include "watch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void tele_gauge_add(struct tele_gauge *g, double v) {
        if (g->n == 0 || v < g->min)
                g->min = v;
        if (g->n == 0 || v > g->max)
                g->max = v;
        g->last = v;
        g->sum += v;
        g->n++;
}

void tele_counter_add(struct tele_counter *k, uint64_t v) {
        if (k->has_last && v >= k->last) {
                k->total += v - k->last;
                k->has_total = true;
        }
        k->has_last = true;
        k->last = v;
}

void tele_agg_init(struct tele_agg *a, struct slot_table *table) {
        *a = (struct tele_agg){ .table = table };
}

void tele_agg_done(struct tele_agg *a) {
        free(a->ifaces);
        *a = (struct tele_agg){ 0 };
}

static size_t n_slots(const struct tele_agg *a) {
        return a->table ? a->table->n : 0;
}

/* The slot's part of the interval, made zeroed on first use; NULL when out of memory. */
static struct tele_agg_slot *part(struct slot *sl) {
        if (!sl->agg)
                sl->agg = calloc(1, sizeof(*sl->agg));
        return sl->agg;
}

static struct tele_agg_iface *find_iface(const struct tele_agg *a, const char *name) {
        for (size_t i = 0; i < a->n_ifaces; i++)
                if (strcmp(a->ifaces[i].name, name) == 0)
                        return &a->ifaces[i];
        return NULL;
}

static int add_ifaces(struct tele_agg *a, const struct host_sample *h) {
        for (size_t i = 0; h->has_net && i < h->net.n; i++) {
                const struct hal_net_iface *ni = &h->net.ifaces[i];
                struct tele_agg_iface *e = find_iface(a, ni->name);

                if (!e) {
                        if (a->n_ifaces == a->cap_ifaces) {
                                size_t cap = a->cap_ifaces ? 2 * a->cap_ifaces : 8;
                                struct tele_agg_iface *p = realloc(a->ifaces, cap * sizeof(*p));

                                if (!p)
                                        return -ENOMEM;
                                a->ifaces = p;
                                a->cap_ifaces = cap;
                        }
                        e = &a->ifaces[a->n_ifaces++];
                        *e = (struct tele_agg_iface){ 0 };
                        memcpy(e->name, ni->name, sizeof(e->name));
                }
                e->seen = true;
                tele_counter_add(&e->rx, ni->rx_bytes);
                tele_counter_add(&e->tx, ni->tx_bytes);
                if (h->net_rates && h->net_rates[i].valid) {
                        tele_gauge_add(&e->rx_mbps, h->net_rates[i].rx_mbps);
                        tele_gauge_add(&e->tx_mbps, h->net_rates[i].tx_mbps);
                }
        }
        return 0;
}

/* Bytes as KiB: memory is counted in pages (cgroups, /proc/meminfo's kB, NVML's MiB), so nothing is
 * lost, and the document is shorter by three digits a figure (issue 20's byte budget). */
static double kib(uint64_t bytes) {
        return (double)bytes / 1024.0;
}

/* One stream of a sample's (first: the sample's first, last: its last): its figures folded into
 * the sample's worst, which the gauges take at the last. */
static void worst_stream(struct tele_streams *t, bool first, uint32_t fps, uint32_t latency_us, bool last) {
        if (first || fps < t->cur_fps)
                t->cur_fps = fps;
        if (first || latency_us > t->cur_latency)
                t->cur_latency = latency_us;
        if (last) {
                tele_gauge_add(&t->fps, t->cur_fps);
                tele_gauge_add(&t->latency, t->cur_latency);
        }
}

static void add_slot(struct tele_agg_slot *as, const struct slot *slot, const struct host_sample *h) {
        const struct cfg_slot *sl = slot->cfg;
        const struct usage_slot *us = slot->usage;
        const struct watch_slot *ws = slot->watch;

        if (us && us->has_cores)
                tele_gauge_add(&as->cores, us->cores_used);
        if (us && us->has_cg && (us->cg.present & HAL_CG_MEM))
                tele_gauge_add(&as->memory, kib(us->cg.mem_current_bytes));
        if (us && us->has_cg && (us->cg.present & HAL_CG_PIDS))
                tele_gauge_add(&as->pids, (double)us->cg.pids_current);
        if (us && sl->gpu >= 0 && (unsigned)sl->gpu < h->n_gpus) {
                const struct hal_gpu_sample *g = &h->gpus[sl->gpu];

                if (us->gpu_shared && us->has_gpu_vram)
                        tele_gauge_add(&as->gpu_vram, kib(us->gpu_vram_bytes));
                if (!us->gpu_shared && (g->present & HAL_GPU_UTIL))
                        tele_gauge_add(&as->gpu_util, g->util_pct);
                if (!us->gpu_shared && (g->present & HAL_GPU_VRAM))
                        tele_gauge_add(&as->gpu_vram, kib(g->vram_used_bytes));
        }
        if (us && us->has_enc)
                for (size_t k = 0; k < us->n_enc; k++)
                        worst_stream(&as->enc, k == 0, us->enc[k].avg_fps, us->enc[k].avg_latency_us,
                                     k + 1 == us->n_enc);
        if (us && us->has_fbc)
                for (size_t k = 0; k < us->n_fbc; k++)
                        worst_stream(&as->fbc, k == 0, us->fbc[k].avg_fps, us->fbc[k].avg_latency_us,
                                     k + 1 == us->n_fbc);
        if (ws && ws->has_bandwidth)
                tele_gauge_add(&as->mbps, ws->bandwidth_mbps);
        if (ws && ws->bandwidth.raised)
                as->over_cap = true;
}

static void add_gpu(struct tele_agg_gpu *ag, const struct hal_gpu_sample *g, bool stale) {
        static const struct {
                uint32_t bit;
                size_t off;
        } pct[] = {
                { HAL_GPU_UTIL, offsetof(struct tele_agg_gpu, util) },
                { HAL_GPU_MEM_UTIL, offsetof(struct tele_agg_gpu, mem_util) },
                { HAL_GPU_ENC, offsetof(struct tele_agg_gpu, enc) },
                { HAL_GPU_DEC, offsetof(struct tele_agg_gpu, dec) },
        };
        const double v[] = { g->util_pct, g->mem_util_pct, g->enc_pct, g->dec_pct };

        for (size_t i = 0; i < sizeof(pct) / sizeof(pct[0]); i++)
                if (g->present & pct[i].bit)
                        tele_gauge_add((struct tele_gauge *)((char *)ag + pct[i].off), v[i]);
        if (g->present & HAL_GPU_VRAM)
                tele_gauge_add(&ag->vram_used, kib(g->vram_used_bytes));
        if (g->present & HAL_GPU_POWER)
                tele_gauge_add(&ag->power, g->power_w);
        if (g->present & HAL_GPU_TEMP)
                tele_gauge_add(&ag->temp, g->temp_c);
        if (g->present & HAL_GPU_CLOCK)
                tele_gauge_add(&ag->clock, g->clock_mhz);
        if (g->present & HAL_GPU_PROCS)
                tele_gauge_add(&ag->procs, (double)g->n_procs);
        if (g->present & HAL_GPU_THROTTLE) {
                ag->has_throttle = true;
                ag->throttle |= g->throttle_reasons;
        }
        ag->stale |= stale;
}

int tele_agg_add(struct tele_agg *a, const struct sampler *s) {
        const struct host_sample *h = &s->cur;
        int r = 0;

        a->samples++;
        if (h->has_cpu_util)
                tele_gauge_add(&a->cpu_util, h->cpu_util_pct);
        if (h->has_mem)
                tele_gauge_add(&a->mem_available, kib(h->mem.available_bytes));
        for (size_t i = 0; i < n_slots(a); i++) {
                struct slot *sl = slot_at(a->table, i);
                struct tele_agg_slot *as = part(sl);

                if (as)
                        add_slot(as, sl, h);
                else
                        r = -ENOMEM;
        }
        for (unsigned i = 0; i < h->n_gpus && i < HAL_GPU_MAX; i++)
                add_gpu(&a->gpus[i], &h->gpus[i], h->gpus_stale);
        if (h->n_gpus > a->n_gpus)
                a->n_gpus = h->n_gpus < HAL_GPU_MAX ? h->n_gpus : HAL_GPU_MAX;
        if (add_ifaces(a, h) < 0)
                r = -ENOMEM;
        return r;
}

void tele_agg_next(struct tele_agg *a) {
        size_t k = 0;

        /* An interface no sample of the interval had is gone: a new one of that name starts afresh. */
        for (size_t i = 0; i < a->n_ifaces; i++) {
                struct tele_agg_iface e = a->ifaces[i];

                if (!e.seen)
                        continue;
                a->ifaces[k++] = (struct tele_agg_iface){ .rx = { .has_last = true, .last = e.rx.last },
                                                          .tx = { .has_last = true, .last = e.tx.last } };
                memcpy(a->ifaces[k - 1].name, e.name, sizeof(e.name));
        }
        a->n_ifaces = k;
        for (size_t i = 0; i < n_slots(a); i++) {
                struct slot *sl = slot_at(a->table, i);

                if (sl->agg)
                        *sl->agg = (struct tele_agg_slot){ 0 };
        }
        memset(a->gpus, 0, sizeof(a->gpus));
        a->n_gpus = 0;
        a->samples = 0;
        a->cpu_util = a->mem_available = (struct tele_gauge){ 0 };
}

/* A gauge as `key`: one number when every sample printed the same at `decimals`, else
 * [last, min, max, average]; absent when no sample had it. */
static void put_gauge(struct jsonw *j, const char *key, const struct tele_gauge *g, int decimals) {
        char lo[JSONW_NUM_MAX], hi[JSONW_NUM_MAX];

        if (!g->n)
                return;
        jsonw_fmt_fixed(lo, g->min, decimals);
        jsonw_fmt_fixed(hi, g->max, decimals);
        if (strcmp(lo, hi) == 0) {
                jsonw_fixed(j, key, g->last, decimals);
                return;
        }
        jsonw_array(j, key);
        jsonw_fixed(j, NULL, g->last, decimals);
        jsonw_fixed(j, NULL, g->min, decimals);
        jsonw_fixed(j, NULL, g->max, decimals);
        jsonw_fixed(j, NULL, g->sum / g->n, decimals);
        jsonw_end(j);
}

/* A kind of stream as the object key: {"fps", "latency_us"}; nothing when no sample had one. */
static void put_streams(struct jsonw *j, const char *key, const struct tele_streams *t) {
        if (!t->fps.n)
                return;
        jsonw_object(j, key);
        put_gauge(j, "fps", &t->fps, 0);
        put_gauge(j, "latency_us", &t->latency, 0);
        jsonw_end(j);
}

static void put_counters(struct jsonw *j, const struct tele_agg_iface *e) {
        if (e->rx.has_total)
                jsonw_u64(j, "rx_bytes", e->rx.total);
        if (e->tx.has_total)
                jsonw_u64(j, "tx_bytes", e->tx.total);
}

static bool is_slot_iface(const struct tele_agg *a, const char *name) {
        for (size_t i = 0; i < n_slots(a); i++) {
                const char *iface = slot_at(a->table, i)->cfg->iface;

                if (iface && strcmp(iface, name) == 0)
                        return true;
        }
        return false;
}

static void put_slot(struct jsonw *j, const struct tele_agg *a, const struct slot *slot,
                     const struct host_sample *h) {
        static const struct tele_agg_slot none; /* a slot whose part could not be made */
        const struct cfg_slot *sl = slot->cfg;
        const struct tele_agg_slot *as = slot->agg ? slot->agg : &none;
        const struct tele_agg_iface *e = sl->iface ? find_iface(a, sl->iface) : NULL;

        jsonw_object(j, NULL);
        jsonw_string(j, "id", sl->id);
        if (as->cores.n || as->memory.n || as->pids.n) {
                jsonw_object(j, "cgroup");
                put_gauge(j, "cores_used", &as->cores, 2);
                put_gauge(j, "memory_kib", &as->memory, 0);
                put_gauge(j, "pids", &as->pids, 0);
                jsonw_end(j);
        }
        if (e && e->seen) { /* whether the cgroup and the interface are there: status */
                jsonw_object(j, "net");
                put_counters(j, e);
                put_gauge(j, "mbps", &as->mbps, 2);
                jsonw_end(j);
        }
        if (as->over_cap)
                jsonw_bool(j, "bandwidth_over_cap", true);
        if (sl->gpu >= 0 && (unsigned)sl->gpu >= h->n_gpus) {
                jsonw_object(j, "gpu");
                jsonw_string(j, "error", "no such GPU on this host");
                jsonw_end(j);
        } else if (sl->gpu >= 0 && (as->gpu_util.n || as->gpu_vram.n || as->enc.fps.n || as->fbc.fps.n)) {
                jsonw_object(j, "gpu");
                put_gauge(j, "util_pct", &as->gpu_util, 1);
                put_gauge(j, "vram_used_kib", &as->gpu_vram, 0);
                put_streams(j, "encoder", &as->enc); /* which streams: status */
                put_streams(j, "capture", &as->fbc);
                jsonw_end(j);
        }
        jsonw_end(j);
}

static void put_gpu(struct jsonw *j, const struct tele_agg_gpu *ag, unsigned index,
                    const struct host_sample *h) {
        jsonw_object(j, NULL);
        jsonw_number(j, "index", index);
        jsonw_u64(j, "age_ms", h->gpu_age_usec / 1000);
        if (ag->stale)
                jsonw_bool(j, "stale", true);
        put_gauge(j, "util_pct", &ag->util, 1);
        put_gauge(j, "mem_util_pct", &ag->mem_util, 1);
        put_gauge(j, "enc_pct", &ag->enc, 1);
        put_gauge(j, "dec_pct", &ag->dec, 1);
        put_gauge(j, "vram_used_kib", &ag->vram_used, 0);
        put_gauge(j, "power_w", &ag->power, 1);
        put_gauge(j, "temp_c", &ag->temp, 1);
        put_gauge(j, "clock_mhz", &ag->clock, 0);
        if (ag->has_throttle)
                jsonw_u64(j, "throttle_reasons", ag->throttle);
        put_gauge(j, "process_count", &ag->procs, 0);
        if (index < h->n_gpus && h->gpus[index].error < 0)
                jsonw_string(j, "error", h->gpus[index].error_msg);
        jsonw_end(j);
}

char *tele_agg_json(const struct tele_agg *a, const struct cfg *c, const struct sampler *s, uint64_t seq,
                    const struct tele_self *self) {
        const struct host_sample *h = &s->cur;
        struct jsonw j;

        jsonw_init(&j, false);
        jsonw_object(&j, NULL);
        tele__header(&j, TELE_AGG_WIRE_VERSION, "telemetry", c, h->real_usec);
        jsonw_u64(&j, "seq", seq);
        jsonw_number(&j, "interval_ms", c->telemetry_interval_ms);
        jsonw_number(&j, "samples", a->samples);
        if (a->cpu_util.n) {
                jsonw_object(&j, "cpu");
                put_gauge(&j, "util_pct", &a->cpu_util, 2);
                jsonw_end(&j);
        }
        if (a->mem_available.n) {
                jsonw_object(&j, "memory");
                put_gauge(&j, "available_kib", &a->mem_available, 0); /* of status's total */
                jsonw_end(&j);
        }
        jsonw_array(&j, "net"); /* the slots' interfaces are under their slots */
        for (size_t i = 0; i < a->n_ifaces; i++) {
                const struct tele_agg_iface *e = &a->ifaces[i];

                /* One that moved nothing is left out: status lists every interface. */
                if (!e->seen || is_slot_iface(a, e->name) || (!e->rx.total && !e->tx.total))
                        continue;
                jsonw_object(&j, NULL);
                jsonw_string(&j, "iface", e->name);
                put_counters(&j, e);
                put_gauge(&j, "rx_mbps", &e->rx_mbps, 2);
                put_gauge(&j, "tx_mbps", &e->tx_mbps, 2);
                jsonw_end(&j);
        }
        jsonw_end(&j);
        jsonw_array(&j, "slots");
        for (size_t i = 0; i < n_slots(a); i++)
                put_slot(&j, a, slot_at(a->table, i), h);
        jsonw_end(&j);
        jsonw_array(&j, "gpus");
        for (unsigned i = 0; i < a->n_gpus; i++)
                put_gpu(&j, &a->gpus[i], i, h);
        jsonw_end(&j);
        if (self) {
                tele__self(&j, "self", self);
                /* The kernel's state name and max error: in status and the one-sample document. */
                if (self->has_clock) {
                        jsonw_object(&j, "clock");
                        jsonw_bool(&j, "synced", self->clock.synced);
                        jsonw_u64(&j, "est_error_us", self->clock.est_error_us);
                        jsonw_end(&j);
                }
        }
        jsonw_end(&j);
        return jsonw_take_text(&j);
}
