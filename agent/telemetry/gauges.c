/* gauges: the telemetry document flattened into one object per host, slot and GPU (docs/topics.md,
 * "gauges"), since prometheus-mqtt-exporter reads members by path and labels only by topic: a slot
 * in an array can be neither found by id nor labelled with it. */
#include "gauges.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "config.h"
#include "slots.h"
#include "spec.h"
#include "telemetry.h"

#define GAUGES_TOPIC_MAX 512

/* Copies obj's number at `path` (members separated by '.') as `key`; absent stays absent. */
static void copy_num(cJSON *out, const char *key, const cJSON *obj, const char *path) {
        char buf[64];
        char *save = NULL;

        snprintf(buf, sizeof(buf), "%s", path);
        for (char *m = strtok_r(buf, ".", &save); m && obj; m = strtok_r(NULL, ".", &save))
                obj = cJSON_GetObjectItemCaseSensitive(obj, m);
        if (cJSON_IsNumber(obj))
                cJSON_AddNumberToObject(out, key, obj->valuedouble);
}

struct gauge_member {
        const char *key, *path;
};

static const struct gauge_member host_members[] = {
        { "seq", "seq" },
        { "cpu_cores", "cpu.cores" },
        { "cpu_util_pct", "cpu.util_pct" },
        { "memory_total_bytes", "memory.total_bytes" },
        { "memory_available_bytes", "memory.available_bytes" },
        { "memory_used_pct", "memory.used_pct" },
};

static const struct gauge_member slot_members[] = {
        { "cpu_cores_used", "cgroup.cores_used" },
        { "cpu_quota_cores", "cgroup.cpu_quota_cores" },
        { "memory_bytes", "cgroup.memory_bytes" },
        { "memory_max_bytes", "cgroup.memory_max_bytes" },
        { "pids", "cgroup.pids" },
        { "vram_used_bytes", "gpu.vram_used_bytes" },
        { "gpu_util_pct", "gpu.util_pct" },
        { "bandwidth_mbps", "bandwidth_mbps" },
        { "cpu_usage_pct", "usage_pct.cpu" },
        { "memory_usage_pct", "usage_pct.memory" },
        { "vram_usage_pct", "usage_pct.vram" },
        { "gpu_usage_pct", "usage_pct.gpu" },
        { "bandwidth_usage_pct", "usage_pct.bandwidth" },
};

static const struct gauge_member gpu_members[] = {
        { "util_pct", "util_pct" },
        { "mem_util_pct", "mem_util_pct" },
        { "vram_total_bytes", "vram_total_bytes" },
        { "vram_used_bytes", "vram_used_bytes" },
        { "power_w", "power_w" },
        { "temp_c", "temp_c" },
};

static void copy_all(cJSON *out, const cJSON *obj, const struct gauge_member *m, size_t n) {
        for (size_t i = 0; i < n; i++)
                copy_num(out, m[i].key, obj, m[i].path);
}

static int emit(const struct cfg *c, const char *leaf, cJSON *doc, gauges_publish_fn fn, void *userdata) {
        _cleanup_free_ char *payload = NULL;
        char topic[GAUGES_TOPIC_MAX];
        int r = tele_topic(c, leaf, topic, sizeof(topic));

        if (r < 0)
                return r;
        payload = cJSON_PrintUnformatted(doc);
        if (!payload)
                return -ENOMEM;
        return fn(userdata, topic, payload);
}

static bool state_held(enum slots_state s) {
        return s != SLOTS_FREE && s != SLOTS_BLOCKED;
}

static cJSON *host_doc(const cJSON *tele, const struct slots *slots) {
        cJSON *o = cJSON_CreateObject();

        if (!o)
                return NULL;
        copy_all(o, tele, host_members, sizeof(host_members) / sizeof(host_members[0]));
        if (slots) {
                size_t n = slots_count(slots), held = 0;

                for (size_t i = 0; i < n; i++) {
                        struct slots_info info;

                        slots_get(slots, i, &info);
                        held += state_held(info.state);
                }
                cJSON_AddNumberToObject(o, "slots", (double)n);
                cJSON_AddNumberToObject(o, "sessions_held", (double)held);
        }
        return o;
}

static cJSON *slot_doc(const struct cfg *c, const cJSON *sl, const struct slots *slots) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(sl, "id");
        const cJSON *scale = cJSON_GetObjectItemCaseSensitive(sl, "scale");
        const struct spec_scale *sc = cJSON_IsString(scale) ? spec_find(c, scale->valuestring) : NULL;
        cJSON *o = cJSON_CreateObject();

        if (!o)
                return NULL;
        copy_all(o, sl, slot_members, sizeof(slot_members) / sizeof(slot_members[0]));
        if (sc) { /* the scale's limits, so a query can compare without the catalog */
                cJSON_AddNumberToObject(o, "limit_vcpu", sc->vcpu);
                cJSON_AddNumberToObject(o, "limit_ram_bytes", (double)sc->ram_bytes);
                if (sc->vram_bytes > 0)
                        cJSON_AddNumberToObject(o, "limit_vram_bytes", (double)sc->vram_bytes);
                cJSON_AddNumberToObject(o, "limit_bandwidth_mbps", sc->bandwidth_mbps);
        }
        if (slots && cJSON_IsString(id)) {
                int i = slots_find(slots, id->valuestring);

                if (i >= 0) {
                        struct slots_info info;

                        slots_get(slots, (size_t)i, &info);
                        cJSON_AddNumberToObject(o, "held", state_held(info.state));
                }
        }
        return o;
}

static cJSON *gpu_doc(const cJSON *g) {
        cJSON *o = cJSON_CreateObject();

        if (!o)
                return NULL;
        copy_all(o, g, gpu_members, sizeof(gpu_members) / sizeof(gpu_members[0]));
        return o;
}

/* Emits doc (taken) under leaf; counts it into *n. */
static int emit_take(const struct cfg *c, const char *leaf, cJSON *doc, gauges_publish_fn fn, void *userdata,
                     int *n) {
        int r;

        if (!doc)
                return -ENOMEM;
        r = emit(c, leaf, doc, fn, userdata);
        cJSON_Delete(doc);
        if (r < 0)
                return r;
        (*n)++;
        return 0;
}

int gauges_publish(const struct cfg *c, const char *telemetry, const struct slots *slots,
                   gauges_publish_fn fn, void *userdata) {
        cJSON *tele = telemetry ? cJSON_Parse(telemetry) : NULL;
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(tele, "type"), *e;
        char leaf[GAUGES_TOPIC_MAX];
        int n = 0, r = 0;

        if (!cJSON_IsString(type) || strcmp(type->valuestring, "telemetry") != 0) {
                cJSON_Delete(tele);
                return -EPROTO;
        }
        r = emit_take(c, "gauges/host", host_doc(tele, slots), fn, userdata, &n);
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(tele, "slots")) {
                const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
                const cJSON *scale = cJSON_GetObjectItemCaseSensitive(e, "scale");

                if (r < 0)
                        break;
                if (!cJSON_IsString(id) || !cJSON_IsString(scale))
                        continue;
                snprintf(leaf, sizeof(leaf), "gauges/slot/%s/%s", id->valuestring, scale->valuestring);
                r = emit_take(c, leaf, slot_doc(c, e, slots), fn, userdata, &n);
        }
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(tele, "gpus")) {
                const cJSON *idx = cJSON_GetObjectItemCaseSensitive(e, "index");

                if (r < 0)
                        break;
                if (!cJSON_IsNumber(idx))
                        continue;
                snprintf(leaf, sizeof(leaf), "gauges/gpu/%d", idx->valueint);
                r = emit_take(c, leaf, gpu_doc(e), fn, userdata, &n);
        }
        cJSON_Delete(tele);
        return r < 0 ? r : n;
}
