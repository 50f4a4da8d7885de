/* config_scales.c: the config's hardware figures: the "gpu" section and the "scales" catalog. */
#include "config_internal.h"

#include "cleanup.h"
#include "strutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cfg__parse_gpu(struct cfg_ctx *x, const cJSON *root, struct cfg *c) {
        const cJSON *g = cfg__get_object(x, root, "gpu", false), *t, *e;

        if (!g)
                return;
        cfg__check_keys(x, g, "gpu", (const char *const[]){ "nvml_library", "fp32_tflops", NULL });
        cfg__get_string(x, g, "nvml_library", "gpu.nvml_library", false, cfg__check_abs_path,
                        &c->gpu.nvml_library);
        t = cJSON_GetObjectItemCaseSensitive(g, "fp32_tflops");
        if (!t)
                return;
        if (!cJSON_IsObject(t)) {
                cfg__problem(x,
                             "gpu.fp32_tflops: must be an object of GPU index to TFLOPS, e.g. {\"0\": 31.2} "
                             "(got %s)",
                             cfg__type_name(t));
                return;
        }
        cJSON_ArrayForEach(e, t) {
                uint64_t idx;

                for (const cJSON *q = t->child; q != e; q = q->next)
                        if (strcmp(q->string, e->string) == 0) {
                                cfg__problem(x, "gpu.fp32_tflops.%s: duplicate key", e->string);
                                break;
                        }
                if (plat_parse_u64(e->string, strlen(e->string), &idx) < 0 || idx >= CFG_MAX_GPUS) {
                        cfg__problem(x, "gpu.fp32_tflops.%s: the key must be a GPU index 0..%d", e->string,
                                     CFG_MAX_GPUS - 1);
                        continue;
                }
                if (!cJSON_IsNumber(e) || !(e->valuedouble > 0 && e->valuedouble <= 10000)) {
                        cfg__problem(
                                x,
                                "gpu.fp32_tflops.%s: must be a number of TFLOPS above 0 and at most 10000",
                                e->string);
                        continue;
                }
                c->gpu.fp32_tflops[idx] = e->valuedouble;
        }
}

static int class_from_string(const char *s, enum hal_class *ret) {
        static const enum hal_class all[] = { HAL_CLASS_X86_GPU, HAL_CLASS_X86_CPU, HAL_CLASS_ARM };

        for (size_t i = 0; i < ELEMENTSOF(all); i++)
                if (strcmp(s, hal_class_to_string(all[i])) == 0) {
                        *ret = all[i];
                        return 0;
                }
        return -EINVAL;
}

/* One entry of `scales`: overrides a published scale (the keys given replace its figures) or
 * defines a new one (XL, arm-*...: class, vcpu, ram_gb and bandwidth_mbps required, and for
 * x86-gpu also gpu_fp32_tflops and vram_gb). */
static void parse_scale(struct cfg_ctx *x, const cJSON *e, struct cfg *c) {
        static const char *const keys[] = { "class",   "vcpu",           "ram_gb", "gpu_fp32_tflops",
                                            "vram_gb", "bandwidth_mbps", NULL };
        struct spec_scale *sc = (struct spec_scale *)spec_find(c, e->string), tmp = { 0 };
        char where[96], name[128];
        const cJSON *cls;
        bool is_new = !sc;
        double d;

        snprintf(where, sizeof(where), "scales.%.64s", e->string);
        if (!cJSON_IsObject(e)) {
                cfg__problem(x, "%s: must be an object (got %s)", where, cfg__type_name(e));
                return;
        }
        {
                const char *why;

                if (!cfg__check_name(e->string, &why)) {
                        cfg__problem(x, "%s: the scale name %s", where, why);
                        return;
                }
        }
        cfg__check_keys(x, e, where, keys);
        if (is_new) {
                sc = &tmp;
                snprintf(sc->name, sizeof(sc->name), "%s", e->string);
        }
#define NAME(k) (snprintf(name, sizeof(name), "%s.%s", where, k), name)
        cls = cJSON_GetObjectItemCaseSensitive(e, "class");
        if (cls && (!cJSON_IsString(cls) || class_from_string(cls->valuestring, &sc->cls) < 0))
                cfg__problem(x, "%s: must be \"x86-gpu\", \"x86-cpu\" or \"arm\"", NAME("class"));
        else if (!cls && is_new)
                cfg__problem(x, "%s: required for a scale that is not published", NAME("class"));
        if (cfg__get_number(x, e, "vcpu", NAME("vcpu"), 1, 1024, &d))
                sc->vcpu = (unsigned)d;
        else if (is_new && !cJSON_GetObjectItemCaseSensitive(e, "vcpu"))
                cfg__problem(x, "%s: required for a scale that is not published", NAME("vcpu"));
        if (cfg__get_number(x, e, "ram_gb", NAME("ram_gb"), 0.1, 65536, &d))
                sc->ram_bytes = (uint64_t)(d * (double)SPEC_GB);
        else if (is_new && !cJSON_GetObjectItemCaseSensitive(e, "ram_gb"))
                cfg__problem(x, "%s: required for a scale that is not published", NAME("ram_gb"));
        if (cfg__get_number(x, e, "gpu_fp32_tflops", NAME("gpu_fp32_tflops"), 0, 10000, &d))
                sc->fp32_tflops = d;
        else if (is_new && sc->cls == HAL_CLASS_X86_GPU &&
                 !cJSON_GetObjectItemCaseSensitive(e, "gpu_fp32_tflops"))
                cfg__problem(x, "%s: required for an x86-gpu scale", NAME("gpu_fp32_tflops"));
        if (cfg__get_number(x, e, "vram_gb", NAME("vram_gb"), 0, 65536, &d))
                sc->vram_bytes = (uint64_t)(d * (double)SPEC_GB);
        else if (is_new && sc->cls == HAL_CLASS_X86_GPU && !cJSON_GetObjectItemCaseSensitive(e, "vram_gb"))
                cfg__problem(x, "%s: required for an x86-gpu scale", NAME("vram_gb"));
        if (cfg__get_number(x, e, "bandwidth_mbps", NAME("bandwidth_mbps"), 0.1, 100000, &d))
                sc->bandwidth_mbps = d;
        else if (is_new && !cJSON_GetObjectItemCaseSensitive(e, "bandwidth_mbps"))
                cfg__problem(x, "%s: required for a scale that is not published", NAME("bandwidth_mbps"));
#undef NAME
        if (is_new) {
                struct spec_scale *n = realloc(c->scales, (c->n_scales + 1) * sizeof(*n));

                if (!n) {
                        x->oom = true;
                        return;
                }
                c->scales = n;
                c->scales[c->n_scales++] = tmp;
        }
}

/* The catalog: the published scales, then `scales` overriding or extending them. */
void cfg__parse_scales(struct cfg_ctx *x, const cJSON *root, struct cfg *c) {
        const struct spec_scale *b;
        const cJSON *sect, *e;
        size_t n;

        b = spec_builtin(&n);
        c->scales = malloc(n * sizeof(*c->scales));
        if (!c->scales) {
                x->oom = true;
                return;
        }
        memcpy(c->scales, b, n * sizeof(*b));
        c->n_scales = n;
        sect = cfg__get_object(x, root, "scales", false);
        if (!sect)
                return;
        if (cJSON_GetArraySize(sect) > 64) {
                cfg__problem(x, "scales: at most 64 scales");
                return;
        }
        cJSON_ArrayForEach(e, sect) {
                bool dup = false;

                for (const cJSON *q = sect->child; q != e; q = q->next)
                        dup |= strcmp(q->string, e->string) == 0;
                if (dup)
                        cfg__problem(x, "scales.%s: duplicate key", e->string);
                else
                        parse_scale(x, e, c);
        }
}
