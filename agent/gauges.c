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
        copy_num(o, "seq", tele, "seq");
        copy_num(o, "cpu_cores", tele, "cpu.cores");
        copy_num(o, "cpu_util_pct", tele, "cpu.util_pct");
        copy_num(o, "memory_total_bytes", tele, "memory.total_bytes");
        copy_num(o, "memory_available_bytes", tele, "memory.available_bytes");
        copy_num(o, "memory_used_pct", tele, "memory.used_pct");
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
        copy_num(o, "cpu_cores_used", sl, "cgroup.cores_used");
        copy_num(o, "cpu_quota_cores", sl, "cgroup.cpu_quota_cores");
        copy_num(o, "memory_bytes", sl, "cgroup.memory_bytes");
        copy_num(o, "memory_max_bytes", sl, "cgroup.memory_max_bytes");
        copy_num(o, "pids", sl, "cgroup.pids");
        copy_num(o, "vram_used_bytes", sl, "gpu.vram_used_bytes");
        copy_num(o, "gpu_util_pct", sl, "gpu.util_pct");
        copy_num(o, "bandwidth_mbps", sl, "bandwidth_mbps");
        copy_num(o, "cpu_usage_pct", sl, "usage_pct.cpu");
        copy_num(o, "memory_usage_pct", sl, "usage_pct.memory");
        copy_num(o, "vram_usage_pct", sl, "usage_pct.vram");
        copy_num(o, "gpu_usage_pct", sl, "usage_pct.gpu");
        copy_num(o, "bandwidth_usage_pct", sl, "usage_pct.bandwidth");
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
        copy_num(o, "util_pct", g, "util_pct");
        copy_num(o, "mem_util_pct", g, "mem_util_pct");
        copy_num(o, "vram_total_bytes", g, "vram_total_bytes");
        copy_num(o, "vram_used_bytes", g, "vram_used_bytes");
        copy_num(o, "power_w", g, "power_w");
        copy_num(o, "temp_c", g, "temp_c");
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
