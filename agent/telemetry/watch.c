/* watch.c: each slot against its scale: the capacity plan's verdicts, and events when usage crosses limits.
 */
#include "watch.h"

#include "config.h"
#include "jsonnum.h"
#include "log.h"
#include "platform_class.h"
#include "sampler.h"
#include "slot.h"
#include "usage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void watch_init(struct watch *w, struct slot_table *table, watch_emit_fn emit, void *userdata) {
        *w = (struct watch){ .table = table, .emit = emit, .userdata = userdata };
}

void watch_reload(struct watch *w) {
        w->planned = false;
}

void watch_done(struct watch *w) {
        w->table = NULL;
}

static size_t n_slots(const struct watch *w) {
        return w->table ? w->table->n : 0;
}

const struct watch_slot *watch_slot_at(const struct watch *w, size_t i) {
        return i < n_slots(w) ? slot_at(w->table, i)->watch : NULL;
}

/* The slot's part of the watch, made zeroed on first use; NULL when out of memory (the slot is
 * skipped until there is some). */
static struct watch_slot *part(struct slot *sl) {
        if (!sl->watch)
                sl->watch = calloc(1, sizeof(*sl->watch));
        return sl->watch;
}

void watch_host_from_sample(const struct cfg *c, const struct hal_platform *p, const struct host_sample *h,
                            struct spec_host *ret) {
        struct spec_host s = { .cls = p->cls };

        s.cores = h->has_cpu ? h->cpu.cores : 0;
        s.ram_bytes = h->has_mem ? h->mem.total_bytes : 0;
        s.n_gpus = h->n_gpus < SPEC_MAX_GPUS ? h->n_gpus : SPEC_MAX_GPUS;
        for (unsigned i = 0; i < s.n_gpus; i++) {
                const struct hal_gpu_sample *g = &h->gpus[i];
                double t = i < CFG_MAX_GPUS ? c->gpu.fp32_tflops[i] : 0;

                s.gpus[i].fp32_tflops =
                        t > 0 ? t : hal_gpu_fp32_tflops(g->pci_vendor, g->pci_device, g->name);
                s.gpus[i].vram_bytes = (g->present & HAL_GPU_VRAM) ? g->vram_total_bytes : 0;
                s.gpus[i].shared_memory = g->shared_memory;
        }
        *ret = s;
}

static void emit(struct watch *w, const char *type, cJSON *fields) {
        if (w->emit)
                w->emit(type, fields, w->userdata);
        else
                cJSON_Delete(fields);
}

static cJSON *slot_fields(const struct cfg_slot *sl) {
        cJSON *f = cJSON_CreateObject();

        cJSON_AddStringToObject(f, "slot", sl->id);
        cJSON_AddStringToObject(f, "scale", sl->scale);
        return f;
}

void watch_plan(struct watch *w, const struct cfg *c, const struct spec_host *host) {
        struct spec_verdict *v = calloc(c->n_slots ? c->n_slots : 1, sizeof(*v));

        if (!v || n_slots(w) != c->n_slots) {
                free(v);
                return;
        }
        w->host = *host;
        spec_plan(c, host, v);
        for (size_t i = 0; i < c->n_slots; i++) {
                const struct cfg_slot *sl = &c->slots[i];
                struct watch_slot *ws = part(slot_at(w->table, i));

                if (ws)
                        ws->verdict = v[i];
                if (!v[i].meets) {
                        const char *fields[] = { NULL, NULL };
                        char f[96];
                        cJSON *j = slot_fields(sl);

                        snprintf(f, sizeof(f), "SLOT=%s", sl->id);
                        fields[0] = f;
                        plat_log_fields(
                                LOG_WARNING, fields,
                                "slot %s does not meet scale %s on this host (%s); it takes no sessions",
                                sl->id, sl->scale, v[i].reason);
                        cJSON_AddStringToObject(j, "reason", v[i].reason);
                        emit(w, "slot_nonconformant", j);
                }
        }
        w->planned = true;
        free(v);
}

bool watch_slot_admissible(const struct watch *w, const struct slot *sl) {
        return w->planned && sl && sl->watch && sl->watch->verdict.meets;
}

static void bandwidth(struct watch *w, const struct cfg *c, struct slot *slot, const struct sampler *s,
                      uint64_t now) {
        const struct cfg_slot *sl = slot->cfg;
        const struct spec_scale *sc = spec_find(c, sl->scale);
        struct watch_slot *ws = part(slot);
        const struct net_rate *r;
        cJSON *j;
        int e;

        if (!ws)
                return;
        ws->has_bandwidth = false;
        if (!sl->iface || !sc || !(r = sampler_iface_rate(s, sl->iface, NULL)) || !r->valid)
                return; /* no observation: the hysteresis waits */
        /* The stream's direction depends on which end of the veth the slot's interface is:
         * the larger direction is the stream. */
        ws->has_bandwidth = true;
        ws->bandwidth_mbps = r->rx_mbps > r->tx_mbps ? r->rx_mbps : r->tx_mbps;
        e = hyst_update(&ws->bandwidth, ws->bandwidth_mbps > sc->bandwidth_mbps, now,
                        c->events.bandwidth_over_s * 1000000ULL, c->events.bandwidth_under_s * 1000000ULL);
        if (e == HYST_NONE)
                return;
        j = slot_fields(sl);
        cJSON_AddNumberToObject(j, "mbps", jsonnum_round(ws->bandwidth_mbps * 1000) / 1000);
        cJSON_AddNumberToObject(j, "cap_mbps", sc->bandwidth_mbps);
        cJSON_AddNumberToObject(j, "for_s",
                                e == HYST_RAISED ? c->events.bandwidth_over_s : c->events.bandwidth_under_s);
        emit(w, e == HYST_RAISED ? "bandwidth_over_cap" : "bandwidth_normal", j);
}

/* The slot's memory limit: its cgroup's memory.max when set, else its scale's RAM. */
static void memory(struct watch *w, const struct cfg *c, struct slot *slot, uint64_t now) {
        const struct cfg_slot *sl = slot->cfg;
        const struct spec_scale *sc = spec_find(c, sl->scale);
        const struct usage_slot *us = slot->usage;
        struct watch_slot *ws = part(slot);
        uint64_t limit;
        double pct;
        cJSON *j;
        int e;

        if (!ws || !us || !us->has_cg || !(us->cg.present & HAL_CG_MEM) || !sc)
                return;
        limit = (us->cg.present & HAL_CG_MEM_MAX) && us->cg.mem_max_bytes != UINT64_MAX
                        ? us->cg.mem_max_bytes
                        : sc->ram_bytes;
        pct = spec_pct((double)us->cg.mem_current_bytes, (double)limit);
        e = hyst_update(&ws->memory, pct >= c->events.memory_pressure_pct, now, WATCH_MEMORY_DELAY_USEC,
                        WATCH_MEMORY_DELAY_USEC);
        if (e == HYST_NONE)
                return;
        j = slot_fields(sl);
        cJSON_AddNumberToObject(j, "memory_bytes", (double)us->cg.mem_current_bytes);
        cJSON_AddNumberToObject(j, "limit_bytes", (double)limit);
        cJSON_AddNumberToObject(j, "pct", jsonnum_round(pct * 10) / 10);
        emit(w, e == HYST_RAISED ? "memory_pressure" : "memory_normal", j);
}

static void host_memory(struct watch *w, const struct cfg *c, const struct host_sample *h, uint64_t now) {
        double used_pct;
        cJSON *j;
        int e;

        if (!h->has_mem || !h->mem.total_bytes)
                return;
        used_pct =
                spec_pct((double)(h->mem.total_bytes - h->mem.available_bytes), (double)h->mem.total_bytes);
        e = hyst_update(&w->host_memory, used_pct >= c->events.memory_pressure_pct, now,
                        WATCH_MEMORY_DELAY_USEC, WATCH_MEMORY_DELAY_USEC);
        if (e == HYST_NONE)
                return;
        j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "available_bytes", (double)h->mem.available_bytes);
        cJSON_AddNumberToObject(j, "total_bytes", (double)h->mem.total_bytes);
        cJSON_AddNumberToObject(j, "pct", jsonnum_round(used_pct * 10) / 10);
        emit(w, e == HYST_RAISED ? "memory_pressure" : "memory_normal", j);
}

/* A GPU with an error and no metric at all is gone (lost, or no longer allowed). */
static void gpus(struct watch *w, const struct host_sample *h) {
        for (unsigned i = 0; i < h->n_gpus && i < HAL_GPU_MAX; i++) {
                const struct hal_gpu_sample *g = &h->gpus[i];
                bool lost = g->error < 0 && g->present == 0;
                cJSON *j;

                if (lost == w->gpu_lost[i])
                        continue;
                w->gpu_lost[i] = lost;
                j = cJSON_CreateObject();
                cJSON_AddNumberToObject(j, "gpu", i);
                cJSON_AddStringToObject(j, "name", g->name);
                if (lost)
                        cJSON_AddStringToObject(j, "reason", g->error_msg);
                emit(w, lost ? "gpu_lost" : "gpu_recovered", j);
        }
}

void watch_tick(struct watch *w, const struct cfg *c, const struct sampler *s, uint64_t now_usec) {
        for (size_t i = 0; i < n_slots(w) && i < c->n_slots; i++) {
                bandwidth(w, c, slot_at(w->table, i), s, now_usec);
                memory(w, c, slot_at(w->table, i), now_usec);
        }
        host_memory(w, c, &s->cur, now_usec);
        gpus(w, &s->cur);
}
