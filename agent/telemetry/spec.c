/* spec.c: the scale catalog (S/M/L, cpu-4/8/16, XL and ARM from config) and the host's capacity plan. */
#include "spec.h"

#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The product catalog's published minimums and caps. XL and ARM scales have none: config. */
static const struct spec_scale builtin[] = {
        { "S", HAL_CLASS_X86_GPU, 4, 8 * SPEC_GB, 2.0, 4 * SPEC_GB, 6, true },
        { "M", HAL_CLASS_X86_GPU, 4, 16 * SPEC_GB, 4.0, 6 * SPEC_GB, 8, true },
        { "L", HAL_CLASS_X86_GPU, 10, 32 * SPEC_GB, 8.1, 12 * SPEC_GB, 8, true },
        { "cpu-4", HAL_CLASS_X86_CPU, 4, 8 * SPEC_GB, 0, 0, 6, true },
        { "cpu-8", HAL_CLASS_X86_CPU, 8, 16 * SPEC_GB, 0, 0, 8, true },
        { "cpu-16", HAL_CLASS_X86_CPU, 16, 32 * SPEC_GB, 0, 0, 8, true },
};

const struct spec_scale *spec_builtin(size_t *ret_n) {
        *ret_n = sizeof(builtin) / sizeof(builtin[0]);
        return builtin;
}

const struct spec_scale *spec_builtin_find(const char *name) {
        for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
                if (strcmp(builtin[i].name, name) == 0)
                        return &builtin[i];
        return NULL;
}

const struct spec_scale *spec_find(const struct cfg *c, const char *name) {
        for (size_t i = 0; i < c->n_scales; i++)
                if (strcmp(c->scales[i].name, name) == 0)
                        return &c->scales[i];
        return NULL;
}

double spec_pct(double used, double limit) {
        return limit > 0 ? 100.0 * used / limit : NAN;
}

static bool is_x86(enum hal_class c) {
        return c == HAL_CLASS_X86_GPU || c == HAL_CLASS_X86_CPU;
}

/* Appends "; "-separated text to the verdict's reason. */
static void say(struct spec_verdict *v, unsigned dim, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void say(struct spec_verdict *v, unsigned dim, const char *fmt, ...) {
        size_t n = strlen(v->reason);
        va_list ap;

        v->meets = false;
        v->fails |= dim;
        if (n && n + 2 < sizeof(v->reason)) {
                strcpy(v->reason + n, "; ");
                n += 2;
        }
        va_start(ap, fmt);
        vsnprintf(v->reason + n, sizeof(v->reason) - n, fmt, ap);
        va_end(ap);
}

static double gb(uint64_t bytes) {
        return (double)bytes / (double)SPEC_GB;
}

void spec_plan(const struct cfg *c, const struct spec_host *h, struct spec_verdict *ret) {
        double fp32_left[SPEC_MAX_GPUS];
        uint64_t vram_left[SPEC_MAX_GPUS];
        unsigned cores_left = h->cores;
        uint64_t ram_left = h->ram_bytes;

        for (unsigned g = 0; g < SPEC_MAX_GPUS; g++) {
                fp32_left[g] = g < h->n_gpus ? h->gpus[g].fp32_tflops : NAN;
                vram_left[g] = g < h->n_gpus ? h->gpus[g].vram_bytes : 0;
        }
        for (size_t i = 0; i < c->n_slots; i++) {
                const struct cfg_slot *sl = &c->slots[i];
                const struct spec_scale *sc = spec_find(c, sl->scale);
                struct spec_verdict *v = &ret[i];
                bool wants_gpu;
                int g = sl->gpu;

                *v = (struct spec_verdict){ .meets = true };
                if (!sc) { /* config validation prevents this; stay safe */
                        say(v, SPEC_FAIL_CLASS, "scale %s is not in the catalog", sl->scale);
                        continue;
                }
                wants_gpu = sc->fp32_tflops > 0 || sc->vram_bytes > 0;
                if (sc->cls == HAL_CLASS_ARM && h->cls != HAL_CLASS_ARM)
                        say(v, SPEC_FAIL_CLASS, "ARM scale %s on a %s host", sc->name,
                            hal_class_to_string(h->cls));
                else if (is_x86(sc->cls) && !is_x86(h->cls))
                        say(v, SPEC_FAIL_CLASS, "x86 scale %s on a %s host", sc->name,
                            hal_class_to_string(h->cls));
                if (wants_gpu && h->n_gpus == 0)
                        say(v, SPEC_FAIL_CLASS, "GPU scale %s on a host without a GPU", sc->name);
                if (sc->vcpu > cores_left)
                        say(v, SPEC_FAIL_VCPU, "vcpu: needs %u, %u left of %u (short by %u)", sc->vcpu,
                            cores_left, h->cores, sc->vcpu - cores_left);
                if (sc->ram_bytes > ram_left)
                        say(v, SPEC_FAIL_RAM, "ram: needs %.1f GB, %.1f left of %.1f (short by %.1f GB)",
                            gb(sc->ram_bytes), gb(ram_left), gb(h->ram_bytes), gb(sc->ram_bytes - ram_left));
                if (wants_gpu && h->n_gpus > 0) {
                        if (g < 0)
                                say(v, SPEC_FAIL_GPU,
                                    "gpu: scale %s needs a GPU and the slot has none (slots[].gpu)",
                                    sc->name);
                        else if ((unsigned)g >= h->n_gpus)
                                say(v, SPEC_FAIL_GPU, "gpu: GPU %d does not exist (%u found)", g, h->n_gpus);
                        else {
                                if (isnan(fp32_left[g]))
                                        say(v, SPEC_FAIL_GPU,
                                            "fp32: GPU %d's FP32 is unknown; set gpu.fp32_tflops.\"%d\"", g,
                                            g);
                                else if (sc->fp32_tflops > fp32_left[g] + 1e-9)
                                        say(v, SPEC_FAIL_FP32,
                                            "fp32: needs %.1f TFLOPS, %.1f left on GPU %d of %.1f (short by "
                                            "%.1f)",
                                            sc->fp32_tflops, fp32_left[g], g, h->gpus[g].fp32_tflops,
                                            sc->fp32_tflops - fp32_left[g]);
                                if (h->gpus[g].shared_memory || sc->vram_bytes == 0)
                                        ; /* system memory: the RAM check covers it */
                                else if (h->gpus[g].vram_bytes == 0)
                                        say(v, SPEC_FAIL_GPU, "vram: GPU %d's VRAM is unknown", g);
                                else if (sc->vram_bytes > vram_left[g])
                                        say(v, SPEC_FAIL_VRAM,
                                            "vram: needs %.1f GB, %.1f left on GPU %d of %.1f (short by "
                                            "%.1f GB)",
                                            gb(sc->vram_bytes), gb(vram_left[g]), g,
                                            gb(h->gpus[g].vram_bytes), gb(sc->vram_bytes - vram_left[g]));
                        }
                }
                if (!v->meets)
                        continue;
                cores_left -= sc->vcpu;
                ram_left -= sc->ram_bytes;
                if (wants_gpu && g >= 0 && (unsigned)g < h->n_gpus) {
                        fp32_left[g] -= sc->fp32_tflops;
                        if (!h->gpus[g].shared_memory)
                                vram_left[g] -= sc->vram_bytes;
                }
        }
}
