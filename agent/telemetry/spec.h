/* spec.h: the scale catalog (S/M/L, cpu-4/8/16, XL and ARM from config) and the host's capacity plan. */
#pragma once

#include "platform_class.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfg;

#define SPEC_GB UINT64_C(1000000000) /* catalog figures are decimal gigabytes, as published */
#define SPEC_NAME_MAX 65
#define SPEC_MAX_GPUS 16

struct spec_scale {
        char name[SPEC_NAME_MAX];
        enum hal_class cls;    /* x86-gpu, x86-cpu or arm */
        unsigned vcpu;         /* minimum vCPU */
        uint64_t ram_bytes;    /* minimum RAM */
        double fp32_tflops;    /* minimum GPU FP32; 0 = no GPU needed */
        uint64_t vram_bytes;   /* minimum VRAM; 0 = no GPU memory needed */
        double bandwidth_mbps; /* cap */
        bool builtin;          /* from the published table (possibly overridden by config) */
};

/* The published scales, in catalog order. */
const struct spec_scale *spec_builtin(size_t *ret_n);
const struct spec_scale *spec_builtin_find(const char *name);

/* A scale of the running config's catalog (built-ins merged with config `scales`); borrowed. */
const struct spec_scale *spec_find(const struct cfg *c, const char *name);

/* What the host offers, as measured. */
struct spec_host {
        enum hal_class cls;
        unsigned cores;
        uint64_t ram_bytes; /* MemTotal */
        unsigned n_gpus;
        struct {
                double fp32_tflops;  /* NAN when unknown */
                uint64_t vram_bytes; /* 0 when unknown */
                bool shared_memory;  /* ARM: no VRAM of its own; VRAM minimums do not apply */
        } gpus[SPEC_MAX_GPUS];
};

/* Dimensions a slot can fail on (bit mask). */
enum {
        SPEC_FAIL_CLASS =
                1u << 0, /* scale for another platform (ARM scale on x86, GPU scale without a GPU) */
        SPEC_FAIL_VCPU = 1u << 1,
        SPEC_FAIL_RAM = 1u << 2,
        SPEC_FAIL_GPU = 1u << 3, /* no GPU assigned, no such GPU, or its FP32 is unknown */
        SPEC_FAIL_FP32 = 1u << 4,
        SPEC_FAIL_VRAM = 1u << 5,
};

struct spec_verdict {
        bool meets;
        unsigned fails;   /* SPEC_FAIL_* */
        char reason[384]; /* "" when it meets; else each failing dimension and by how much */
};

/* Plans the slots in config order against the host: each slot that meets its scale takes its
 * share (vCPU, RAM, and FP32 and VRAM of its GPU); a slot that does not is judged on what is
 * left and takes nothing. ret has c->n_slots entries. */
void spec_plan(const struct cfg *c, const struct spec_host *h, struct spec_verdict *ret);

/* Percent of `used` against `limit` (NAN when limit is 0). */
double spec_pct(double used, double limit);
