/* gpu_nvml_mig.c: MIG (Multi-Instance GPU) through NVML: whether a GPU runs in MIG mode, and each of
 * its MIG devices with what NVML answers on the device's own handle: memory, processes, and
 * utilisation where supported (nvml.h documents it as not supported on MIG). */
#include "gpu_nvml_internal.h"

#include <stdio.h>

enum { NVML_DEVICE_MIG_ENABLE = 1 };
/* nvmlDeviceGetMaxMigDeviceCount past this is garbage, not a GPU. */
#define NVML_MIG_COUNT_MAX 64

/* A call on MIG device k, named so in an error: "nvmlDeviceGetMemoryInfo_v2 for MIG device 2". */
static const char *mig_call(char *buf, size_t len, const char *call, unsigned k) {
        snprintf(buf, len, "%s for MIG device %u", call, k);
        return buf;
}

static void read_ids(const struct nvml *n, unsigned i, nvmlDevice_t mig, struct hal_gpu_mig *m,
                     struct hal_gpu_sample *s) {
        char call[96];
        unsigned gi = 0, ci = 0;

        if (!n->sym_nvmlDeviceGetGpuInstanceId || !n->sym_nvmlDeviceGetComputeInstanceId)
                return;
        if (nvml__ok(n, i, mig_call(call, sizeof(call), "nvmlDeviceGetGpuInstanceId", m->index),
                     n->sym_nvmlDeviceGetGpuInstanceId(mig, &gi), s) &&
            nvml__ok(n, i, mig_call(call, sizeof(call), "nvmlDeviceGetComputeInstanceId", m->index),
                     n->sym_nvmlDeviceGetComputeInstanceId(mig, &ci), s)) {
                m->gpu_instance_id = gi;
                m->compute_instance_id = ci;
                m->present |= HAL_GPU_MIG_IDS;
        }
}

static void read_util(const struct nvml *n, unsigned i, nvmlDevice_t mig, struct hal_gpu_mig *m,
                      struct hal_gpu_sample *s) {
        nvmlUtilization_t u = { 0 };
        nvmlReturn_t r;
        char call[96];

        if (!n->sym_nvmlDeviceGetUtilizationRates)
                return;
        r = n->sym_nvmlDeviceGetUtilizationRates(mig, &u);
        if (r == NVML_ERROR_NOT_SUPPORTED) {
                m->util_unsupported = true;
        } else if (nvml__ok(n, i, mig_call(call, sizeof(call), "nvmlDeviceGetUtilizationRates", m->index), r,
                            s)) {
                m->util_pct = u.gpu;
                m->present |= HAL_GPU_MIG_UTIL;
        }
}

static void read_memory(const struct nvml *n, unsigned i, nvmlDevice_t mig, struct hal_gpu_mig *m,
                        struct hal_gpu_sample *s) {
        uint64_t reserved = 0;
        bool has_reserved = false;
        const char *name = NULL;
        char call[96];
        nvmlReturn_t r = nvml__memory(n, mig, &m->vram_total_bytes, &m->vram_used_bytes, &reserved,
                                      &has_reserved, &name);

        if (nvml__ok(n, i, mig_call(call, sizeof(call), name, m->index), r, s))
                m->present |= HAL_GPU_MIG_VRAM;
}

/* MIG device k of GPU i: 1 when listed into s, 0 when there is none at k, -1 when it could not be
 * asked for (recorded in s). */
static int read_device(const struct nvml *n, unsigned i, nvmlDevice_t dev, unsigned k,
                       struct hal_gpu_sample *s) {
        struct hal_gpu_mig *m = &s->mig[s->n_mig];
        nvmlDevice_t mig = NULL;
        nvmlReturn_t r = n->sym_nvmlDeviceGetMigDeviceHandleByIndex(dev, k, &mig);
        char call[96];

        if (r == NVML_ERROR_NOT_FOUND)
                return 0; /* no MIG device at that index */
        if (r == NVML_SUCCESS && !mig)
                r = NVML_ERROR_UNKNOWN;
        if (r != NVML_SUCCESS) {
                nvml__fail(n, i, mig_call(call, sizeof(call), "nvmlDeviceGetMigDeviceHandleByIndex", k), r,
                           s);
                return -1;
        }
        *m = (struct hal_gpu_mig){ .index = k };
        if (n->sym_nvmlDeviceGetUUID &&
            !nvml__ok(n, i, mig_call(call, sizeof(call), "nvmlDeviceGetUUID", k),
                      n->sym_nvmlDeviceGetUUID(mig, m->uuid, sizeof(m->uuid)), s))
                m->uuid[0] = '\0';
        m->uuid[sizeof(m->uuid) - 1] = '\0';
        read_ids(n, i, mig, m, s);
        read_util(n, i, mig, m, s);
        read_memory(n, i, mig, m, s);
        snprintf(call, sizeof(call), "for MIG device %u", k);
        if (nvml__read_procs(n, i, mig, &(struct nvml_procs){ m->procs, &m->n_procs, HAL_GPU_MIG_MAX_PROCS },
                             call, s))
                m->present |= HAL_GPU_MIG_PROCS;
        s->n_mig++;
        return 1;
}

void nvml__read_mig(const struct nvml *n, unsigned i, nvmlDevice_t dev, struct hal_gpu_sample *s) {
        unsigned current = 0, pending = 0, max = 0;

        /* NOT_SUPPORTED: a GPU without MIG (before Ampere, or not a data-centre part): no member. */
        if (!n->sym_nvmlDeviceGetMigMode ||
            !nvml__ok(n, i, "nvmlDeviceGetMigMode", n->sym_nvmlDeviceGetMigMode(dev, &current, &pending), s))
                return;
        s->mig_enabled = current == NVML_DEVICE_MIG_ENABLE;
        s->present |= HAL_GPU_MIG;
        if (!s->mig_enabled || !n->sym_nvmlDeviceGetMaxMigDeviceCount ||
            !n->sym_nvmlDeviceGetMigDeviceHandleByIndex ||
            !nvml__ok(n, i, "nvmlDeviceGetMaxMigDeviceCount",
                      n->sym_nvmlDeviceGetMaxMigDeviceCount(dev, &max), s))
                return;
        for (unsigned k = 0; k < max && k < NVML_MIG_COUNT_MAX && s->n_mig < HAL_GPU_MAX_MIG; k++)
                if (read_device(n, i, dev, k, s) < 0) {
                        s->n_mig = 0; /* a list with holes would be read as the whole list */
                        return;
                }
        s->present |= HAL_GPU_MIG_DEVICES;
}
