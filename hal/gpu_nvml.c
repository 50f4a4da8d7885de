/* gpu_nvml.c: NVIDIA GPUs through NVML (libnvidia-ml.so.1), loaded with dlopen at run time. */
#include "gpu_backends.h"
#include "gpu_nvml_internal.h"

#include "cleanup.h"
#include "strutil.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct nvml_sym {
        const char *name;
        const char *alt; /* older name of the same call and signature, tried when name is missing */
        size_t offset;   /* of the sym_ pointer in struct nvml */
        bool required;
};

#define SYM(field, alt, required) \
        { #field, alt, offsetof(struct nvml, sym_##field), required }

static const struct nvml_sym nvml_syms[] = {
        SYM(nvmlInit_v2, NULL, true),
        SYM(nvmlShutdown, NULL, true),
        SYM(nvmlDeviceGetCount_v2, NULL, true),
        SYM(nvmlDeviceGetHandleByIndex_v2, NULL, true),
        SYM(nvmlErrorString, NULL, false),
        SYM(nvmlDeviceGetName, NULL, false),
        SYM(nvmlDeviceGetUUID, NULL, false),
        /* _v3 and _v2 differ only in how busId is written; we format the bus id ourselves. */
        { "nvmlDeviceGetPciInfo_v3", "nvmlDeviceGetPciInfo_v2",
          offsetof(struct nvml, sym_nvmlDeviceGetPciInfo), false },
        SYM(nvmlDeviceGetUtilizationRates, NULL, false),
        SYM(nvmlDeviceGetEncoderUtilization, NULL, false),
        SYM(nvmlDeviceGetDecoderUtilization, NULL, false),
        SYM(nvmlDeviceGetMemoryInfo, NULL, false),
        SYM(nvmlDeviceGetMemoryInfo_v2, NULL, false),
        SYM(nvmlDeviceGetPowerUsage, NULL, false),
        SYM(nvmlDeviceGetTemperature, NULL, false),
        SYM(nvmlDeviceGetTemperatureV, NULL, false),
        SYM(nvmlDeviceGetEncoderSessions, NULL, false),
        SYM(nvmlDeviceGetFBCSessions, NULL, false),
        SYM(nvmlDeviceGetClockInfo, NULL, false),
        SYM(nvmlDeviceGetMaxClockInfo, NULL, false),
        /* Renamed in driver 535; the old name stays exported as deprecated. */
        SYM(nvmlDeviceGetCurrentClocksEventReasons, "nvmlDeviceGetCurrentClocksThrottleReasons", false),
        SYM(nvmlDeviceGetComputeRunningProcesses, NULL, false),
        SYM(nvmlDeviceGetGraphicsRunningProcesses, NULL, false),
        SYM(nvmlDeviceGetVirtualizationMode, NULL, false),
        SYM(nvmlDeviceGetMigMode, NULL, false),
        SYM(nvmlDeviceGetMaxMigDeviceCount, NULL, false),
        SYM(nvmlDeviceGetMigDeviceHandleByIndex, NULL, false),
        SYM(nvmlDeviceGetGpuInstanceId, NULL, false),
        SYM(nvmlDeviceGetComputeInstanceId, NULL, false),
};

/* The one place nvmlReturn_t becomes an errno. */
static int nvml_errno(nvmlReturn_t r) {
        switch (r) {
        case NVML_SUCCESS:
                return 0;
        case NVML_ERROR_INVALID_ARGUMENT:
        case NVML_ERROR_ARGUMENT_VERSION_MISMATCH:
                return -EINVAL;
        case NVML_ERROR_NOT_SUPPORTED:
        case NVML_ERROR_VGPU_ECC_NOT_SUPPORTED:
        case NVML_ERROR_FREQ_NOT_SUPPORTED:
                return -EOPNOTSUPP;
        case NVML_ERROR_NO_PERMISSION:
                return -EACCES;
        case NVML_ERROR_OPERATING_SYSTEM: /* the OS blocked the GPU control device */
                return -EPERM;
        case NVML_ERROR_ALREADY_INITIALIZED:
                return -EALREADY;
        case NVML_ERROR_NOT_FOUND:
                return -ENOENT;
        case NVML_ERROR_INSUFFICIENT_SIZE:
                return -ENOBUFS;
        case NVML_ERROR_DRIVER_NOT_LOADED: /* no nvidia.ko: a CPU host with the userspace installed */
                return -ENODEV;
        case NVML_ERROR_GPU_IS_LOST: /* fell off the bus */
        case NVML_ERROR_GPU_NOT_FOUND:
                return -ENXIO;
        case NVML_ERROR_TIMEOUT:
                return -ETIMEDOUT;
        case NVML_ERROR_LIBRARY_NOT_FOUND:
                return -ELIBACC;
        case NVML_ERROR_LIB_RM_VERSION_MISMATCH: /* driver upgraded, module not reloaded */
                return -ELIBBAD;
        case NVML_ERROR_FUNCTION_NOT_FOUND:
        case NVML_ERROR_DEPRECATED:
                return -ENOSYS;
        case NVML_ERROR_IN_USE:
                return -EBUSY;
        case NVML_ERROR_MEMORY:
                return -ENOMEM;
        case NVML_ERROR_NO_DATA:
                return -ENODATA;
        case NVML_ERROR_INSUFFICIENT_RESOURCES:
        case NVML_ERROR_NOT_READY:
                return -EAGAIN;
        case NVML_ERROR_UNINITIALIZED:
        case NVML_ERROR_INSUFFICIENT_POWER:
        case NVML_ERROR_IRQ_ISSUE:
        case NVML_ERROR_CORRUPTED_INFOROM:
        case NVML_ERROR_RESET_REQUIRED:
        case NVML_ERROR_INVALID_STATE:
        case NVML_ERROR_UNKNOWN:
        default:
                return -EIO;
        }
}

/* "GPU is lost (NVML error 15)", or just the number when the driver has no nvmlErrorString. */
static const char *nvml_describe(const struct nvml *n, nvmlReturn_t r, char *buf, size_t len) {
        const char *s = n->sym_nvmlErrorString ? n->sym_nvmlErrorString(r) : NULL;

        if (s && *s)
                snprintf(buf, len, "%s (NVML error %d)", s, (int)r);
        else
                snprintf(buf, len, "NVML error %d", (int)r);
        return buf;
}

bool nvml__unsupported(nvmlReturn_t r) {
        return r == NVML_ERROR_NOT_SUPPORTED || r == NVML_ERROR_FUNCTION_NOT_FOUND;
}

void nvml__fail(const struct nvml *n, unsigned i, const char *call, nvmlReturn_t r,
                struct hal_gpu_sample *s) {
        char what[96];

        if (s->error < 0)
                return;
        s->error = nvml_errno(r);
        if (s->pci_bus_id[0])
                plat_errf(s->error_msg, sizeof(s->error_msg), "%s on GPU %u (%s): %s", call, i,
                          s->pci_bus_id, nvml_describe(n, r, what, sizeof(what)));
        else
                plat_errf(s->error_msg, sizeof(s->error_msg), "%s on GPU %u: %s", call, i,
                          nvml_describe(n, r, what, sizeof(what)));
}

bool nvml__ok(const struct nvml *n, unsigned i, const char *call, nvmlReturn_t r, struct hal_gpu_sample *s) {
        if (r == NVML_SUCCESS)
                return true;
        if (!nvml__unsupported(r))
                nvml__fail(n, i, call, r, s);
        return false;
}

static void nvml_close(void *ctx) {
        struct nvml *n = ctx;

        if (!n)
                return;
        if (n->sym_nvmlShutdown)
                (void)n->sym_nvmlShutdown();
        if (n->dl)
                dlclose(n->dl);
        free(n->gpus);
        free(n);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct nvml *, nvml_close);

static int nvml_load(struct nvml *n, const char *path, char *err, size_t errlen) {
        n->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!n->dl) {
                /* Not an error: most hosts without an NVIDIA GPU lack the library. */
                plat_errf(err, errlen, "%s", dlerror());
                return -ENODEV;
        }
        for (size_t k = 0; k < ELEMENTSOF(nvml_syms); k++) {
                const struct nvml_sym *y = &nvml_syms[k];
                void *p = dlsym(n->dl, y->name);

                if (!p && y->alt)
                        p = dlsym(n->dl, y->alt);
                if (!p && y->required) {
                        plat_errf(err, errlen,
                                  "%s: symbol %s missing; the NVIDIA driver is too old or this is "
                                  "not NVML, NVIDIA GPUs are not sampled",
                                  path, y->name);
                        return -ELIBBAD;
                }
                /* dlsym hands back functions as void *; POSIX makes the sizes equal. */
                memcpy((char *)n + y->offset, &p, sizeof(p));
        }
        return 0;
}

static int nvml_open(int root_fd, const struct hal_gpu_options *o, void **ret_ctx, unsigned *ret_count,
                     char *err, size_t errlen) {
        _cleanup_(nvml_closep) struct nvml *n = NULL;
        const char *path = o && o->nvml_path ? o->nvml_path : NVML_DEFAULT_PATH;
        char what[96];
        unsigned count = 0;
        nvmlReturn_t r;
        int k;

        (void)root_fd; /* NVML talks to the driver, not to files under the root */
        if (o && o->no_nvml)
                return -ENODEV;

        n = calloc(1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        k = nvml_load(n, path, err, errlen);
        if (k < 0)
                return k;

        r = n->sym_nvmlInit_v2();
        if (r != NVML_SUCCESS) {
                /* Nothing to shut down after a failed init. */
                n->sym_nvmlShutdown = NULL;
                plat_errf(err, errlen, "nvmlInit_v2 (%s): %s; NVIDIA GPUs are not sampled", path,
                          nvml_describe(n, r, what, sizeof(what)));
                return nvml_errno(r);
        }

        r = n->sym_nvmlDeviceGetCount_v2(&count);
        if (r != NVML_SUCCESS) {
                plat_errf(err, errlen, "nvmlDeviceGetCount_v2: %s; NVIDIA GPUs are not sampled",
                          nvml_describe(n, r, what, sizeof(what)));
                return nvml_errno(r);
        }
        if (count == 0) {
                plat_errf(err, errlen, "NVML sees no NVIDIA GPU");
                return -ENODEV;
        }
        if (count > NVML_GPUS_MAX) {
                plat_errf(err, errlen,
                          "nvmlDeviceGetCount_v2 says %u GPUs, more than %d; NVIDIA GPUs are not "
                          "sampled",
                          count, NVML_GPUS_MAX);
                return -EPROTO;
        }
        n->gpus = calloc(count, sizeof(*n->gpus));
        if (!n->gpus)
                return -ENOMEM;
        n->count = count;

        *ret_ctx = TAKE_PTR(n);
        *ret_count = count;
        return 0;
}

/* A lost GPU answers nothing more, and every call to it may take the driver a while. */
static bool nvml_lost(const struct hal_gpu_sample *s) {
        return s->error == nvml_errno(NVML_ERROR_GPU_IS_LOST);
}

static bool nvml_answered(nvmlReturn_t r) {
        return r == NVML_SUCCESS || nvml__unsupported(r);
}

/* Name, UUID and PCI ids never change: they are read until every call has answered, then kept,
 * so that a GPU that is lost later still says which one it was. */
static void nvml_read_ident(const struct nvml *n, unsigned i, struct nvml_gpu *g, struct hal_gpu_sample *s) {
        bool done = true;
        nvmlReturn_t r;

        if (n->sym_nvmlDeviceGetPciInfo) {
                nvmlPciInfo_t pci = { 0 };

                r = n->sym_nvmlDeviceGetPciInfo(g->dev, &pci);
                if (nvml__ok(n, i, "nvmlDeviceGetPciInfo", r, s)) {
                        /* sysfs spelling; NVML's own busId pads the domain to 8 digits (v3) or 4 (v2). */
                        snprintf(g->pci_bus_id, sizeof(g->pci_bus_id), "%04x:%02x:%02x.0", pci.domain,
                                 pci.bus, pci.device);
                        g->pci_vendor = (uint16_t)(pci.pciDeviceId & 0xffff);
                        g->pci_device = (uint16_t)(pci.pciDeviceId >> 16);
                        /* Errors from here on name the GPU by its bus id. */
                        plat_strlcpy(s->pci_bus_id, g->pci_bus_id, sizeof(s->pci_bus_id));
                }
                done = done && nvml_answered(r);
        }
        if (n->sym_nvmlDeviceGetName && !nvml_lost(s)) {
                r = n->sym_nvmlDeviceGetName(g->dev, g->name, sizeof(g->name));
                g->name[sizeof(g->name) - 1] = '\0';
                if (!nvml__ok(n, i, "nvmlDeviceGetName", r, s))
                        g->name[0] = '\0';
                done = done && nvml_answered(r);
        }
        if (n->sym_nvmlDeviceGetUUID && !nvml_lost(s)) {
                r = n->sym_nvmlDeviceGetUUID(g->dev, g->uuid, sizeof(g->uuid));
                g->uuid[sizeof(g->uuid) - 1] = '\0';
                if (!nvml__ok(n, i, "nvmlDeviceGetUUID", r, s))
                        g->uuid[0] = '\0';
                done = done && nvml_answered(r);
        }
        if (!g->name[0] && g->pci_device)
                snprintf(g->name, sizeof(g->name), "%04x:%04x", g->pci_vendor, g->pci_device);
        g->have_ident = done;
}

static void nvml_copy_ident(const struct nvml_gpu *g, struct hal_gpu_sample *s) {
        plat_strlcpy(s->name, g->name, sizeof(s->name));
        plat_strlcpy(s->uuid, g->uuid, sizeof(s->uuid));
        plat_strlcpy(s->pci_bus_id, g->pci_bus_id, sizeof(s->pci_bus_id));
        s->pci_vendor = g->pci_vendor;
        s->pci_device = g->pci_device;
}

static void nvml_read_util(const struct nvml *n, unsigned i, nvmlDevice_t dev, struct hal_gpu_sample *s) {
        nvmlUtilization_t u = { 0 };

        if (n->sym_nvmlDeviceGetUtilizationRates &&
            nvml__ok(n, i, "nvmlDeviceGetUtilizationRates", n->sym_nvmlDeviceGetUtilizationRates(dev, &u),
                     s)) {
                s->util_pct = u.gpu;
                s->mem_util_pct = u.memory;
                s->present |= HAL_GPU_UTIL | HAL_GPU_MEM_UTIL;
        }
}

static void nvml_read_codec(const struct nvml *n, unsigned i, nvmlDevice_t dev, struct hal_gpu_sample *s) {
        unsigned pct = 0, period_us = 0;

        if (n->sym_nvmlDeviceGetEncoderUtilization &&
            nvml__ok(n, i, "nvmlDeviceGetEncoderUtilization",
                     n->sym_nvmlDeviceGetEncoderUtilization(dev, &pct, &period_us), s)) {
                s->enc_pct = pct;
                s->present |= HAL_GPU_ENC;
        }
        if (n->sym_nvmlDeviceGetDecoderUtilization &&
            nvml__ok(n, i, "nvmlDeviceGetDecoderUtilization",
                     n->sym_nvmlDeviceGetDecoderUtilization(dev, &pct, &period_us), s)) {
                s->dec_pct = pct;
                s->present |= HAL_GPU_DEC;
        }
}

/* A versioned call the driver has but does not take (a struct version it does not know): the
 * older call is asked instead. */
static bool nvml_try_older(nvmlReturn_t r) {
        return nvml__unsupported(r) || r == NVML_ERROR_ARGUMENT_VERSION_MISMATCH ||
               r == NVML_ERROR_INVALID_ARGUMENT;
}

nvmlReturn_t nvml__memory(const struct nvml *n, nvmlDevice_t dev, uint64_t *ret_total, uint64_t *ret_used,
                          uint64_t *ret_reserved, bool *ret_has_reserved, const char **ret_call) {
        nvmlMemory_v2_t m2 = { .version = NVML_STRUCT_VERSION(nvmlMemory_v2_t, 2) };
        nvmlMemory_t m = { 0 };
        nvmlReturn_t r = NVML_ERROR_FUNCTION_NOT_FOUND;

        *ret_call = "nvmlDeviceGetMemoryInfo_v2";
        if (n->sym_nvmlDeviceGetMemoryInfo_v2)
                r = n->sym_nvmlDeviceGetMemoryInfo_v2(dev, &m2);
        if (r == NVML_SUCCESS) {
                uint64_t set_aside = m2.free + m2.reserved;

                *ret_total = m2.total;
                *ret_used = set_aside < m2.free || set_aside > m2.total ? 0 : m2.total - set_aside;
                *ret_reserved = m2.reserved;
                *ret_has_reserved = true;
                return r;
        }
        if (!nvml_try_older(r))
                return r;
        *ret_call = "nvmlDeviceGetMemoryInfo";
        r = n->sym_nvmlDeviceGetMemoryInfo ? n->sym_nvmlDeviceGetMemoryInfo(dev, &m)
                                           : NVML_ERROR_FUNCTION_NOT_FOUND;
        if (r == NVML_SUCCESS) {
                *ret_total = m.total;
                *ret_used = m.used;
                *ret_has_reserved = false;
        }
        return r;
}

/* _v2 where exported: its reserved memory is shown apart, and "used" is what is allocated (total less
 * free less reserved), so that an idle GPU is near 0 and a slot's share is not overstated. */
static void nvml_read_memory(const struct nvml *n, unsigned i, nvmlDevice_t dev, struct hal_gpu_sample *s) {
        const char *call;
        bool has_reserved = false;
        nvmlReturn_t r = nvml__memory(n, dev, &s->vram_total_bytes, &s->vram_used_bytes,
                                      &s->vram_reserved_bytes, &has_reserved, &call);

        if (nvml__ok(n, i, call, r, s))
                s->present |= HAL_GPU_VRAM | (has_reserved ? HAL_GPU_VRAM_RESERVED : 0);
}

/* nvmlDeviceGetTemperatureV where exported (the old call is deprecated in API 13), else the old one. */
static void nvml_read_temp(const struct nvml *n, unsigned i, nvmlDevice_t dev, struct hal_gpu_sample *s) {
        nvmlTemperature_v1_t t = { .version = NVML_STRUCT_VERSION(nvmlTemperature_v1_t, 1),
                                   .sensorType = NVML_TEMPERATURE_GPU };
        nvmlReturn_t r = NVML_ERROR_FUNCTION_NOT_FOUND;
        unsigned c = 0;

        if (n->sym_nvmlDeviceGetTemperatureV)
                r = n->sym_nvmlDeviceGetTemperatureV(dev, &t);
        if (r == NVML_SUCCESS) {
                s->temp_c = t.temperature;
                s->present |= HAL_GPU_TEMP;
                return;
        }
        if (!nvml_try_older(r)) {
                nvml__fail(n, i, "nvmlDeviceGetTemperatureV", r, s);
                return;
        }
        if (n->sym_nvmlDeviceGetTemperature &&
            nvml__ok(n, i, "nvmlDeviceGetTemperature",
                     n->sym_nvmlDeviceGetTemperature(dev, NVML_TEMPERATURE_GPU, &c), s)) {
                s->temp_c = c;
                s->present |= HAL_GPU_TEMP;
        }
}

static void nvml_read_power(const struct nvml *n, unsigned i, nvmlDevice_t dev, struct hal_gpu_sample *s) {
        unsigned mw = 0;

        if (n->sym_nvmlDeviceGetPowerUsage &&
            nvml__ok(n, i, "nvmlDeviceGetPowerUsage", n->sym_nvmlDeviceGetPowerUsage(dev, &mw), s)) {
                s->power_w = mw / 1000.0;
                s->present |= HAL_GPU_POWER;
        }
        nvml_read_temp(n, i, dev, s);
}

static void nvml_read_clocks(const struct nvml *n, unsigned i, nvmlDevice_t dev, struct hal_gpu_sample *s) {
        unsigned long long reasons = 0;
        unsigned mhz = 0;

        if (n->sym_nvmlDeviceGetClockInfo &&
            nvml__ok(n, i, "nvmlDeviceGetClockInfo", n->sym_nvmlDeviceGetClockInfo(dev, NVML_CLOCK_SM, &mhz),
                     s)) {
                s->clock_mhz = mhz;
                s->present |= HAL_GPU_CLOCK;
        }
        if (n->sym_nvmlDeviceGetMaxClockInfo &&
            nvml__ok(n, i, "nvmlDeviceGetMaxClockInfo",
                     n->sym_nvmlDeviceGetMaxClockInfo(dev, NVML_CLOCK_SM, &mhz), s)) {
                s->clock_max_mhz = mhz;
                s->present |= HAL_GPU_CLOCK_MAX;
        }
        if (n->sym_nvmlDeviceGetCurrentClocksEventReasons &&
            nvml__ok(n, i, "nvmlDeviceGetCurrentClocksEventReasons",
                     n->sym_nvmlDeviceGetCurrentClocksEventReasons(dev, &reasons), s)) {
                s->throttle_reasons = reasons;
                s->present |= HAL_GPU_THROTTLE;
        }
}

/* One process, one entry: a process that renders and runs CUDA is in both lists, with the same
 * memory figure when the driver knows it. */
static void nvml_add_proc(const struct nvml_procs *t, unsigned pid, unsigned long long used) {
        uint64_t vram = used; /* NVML_VALUE_NOT_AVAILABLE is all ones: UINT64_MAX, "unknown" */

        for (size_t k = 0; k < *t->n; k++) {
                struct hal_gpu_proc *p = &t->v[k];

                if (p->pid != (int32_t)pid)
                        continue;
                if (p->vram_bytes == UINT64_MAX || (vram != UINT64_MAX && vram > p->vram_bytes))
                        p->vram_bytes = vram;
                return;
        }
        if (*t->n < t->max)
                t->v[(*t->n)++] = (struct hal_gpu_proc){ .pid = (int32_t)pid, .vram_bytes = vram };
}

/* NVML answers INSUFFICIENT_SIZE with the count it needs and fills nothing, so the whole list
 * is fetched (up to NVML_PROCS_FETCH_MAX) and the first to->max are kept. */
int nvml__read_proc_list(const struct nvml *n, unsigned i, nvmlDevice_t dev, nvml_procs_fn fn,
                         const char *call, const struct nvml_procs *to, struct hal_gpu_sample *s) {
        unsigned cap = NVML_PROCS_FIRST;

        for (unsigned t = 0; t < NVML_PROCS_TRIES; t++) {
                _cleanup_free_ nvmlProcessInfo_v1_t *buf = calloc(cap, NVML_PROC_STRIDE_MAX);
                unsigned got = cap;
                nvmlReturn_t r;

                if (!buf) {
                        if (s->error == 0) {
                                s->error = -ENOMEM;
                                plat_errf(s->error_msg, sizeof(s->error_msg), "%s on GPU %u: out of memory",
                                          call, i);
                        }
                        return -1;
                }
                r = fn(dev, &got, buf);
                if (r == NVML_ERROR_INSUFFICIENT_SIZE) {
                        if (cap >= NVML_PROCS_FETCH_MAX)
                                return 0; /* thousands of processes: no list rather than a wrong one */
                        /* Processes come and go between calls: ask for some room to spare. */
                        if (got <= cap)
                                got = cap * 2;
                        cap = got > NVML_PROCS_FETCH_MAX - 16 ? NVML_PROCS_FETCH_MAX : got + 16;
                        continue;
                }
                if (!nvml__ok(n, i, call, r, s))
                        return nvml__unsupported(r) ? 0 : -1;
                if (got > cap)
                        got = cap;
                for (unsigned k = 0; k < got; k++)
                        nvml_add_proc(to, buf[k].pid, buf[k].usedGpuMemory);
                return 1;
        }
        return 0; /* the list kept growing faster than we asked */
}

/* Compute and graphics processes: a render host runs both kinds. A list that fails makes the
 * whole process list absent, not silently short. */
bool nvml__read_procs(const struct nvml *n, unsigned i, nvmlDevice_t dev, const struct nvml_procs *to,
                      const char *what, struct hal_gpu_sample *s) {
        const struct {
                nvml_procs_fn fn;
                const char *call;
        } lists[] = {
                { n->sym_nvmlDeviceGetComputeRunningProcesses, "nvmlDeviceGetComputeRunningProcesses" },
                { n->sym_nvmlDeviceGetGraphicsRunningProcesses, "nvmlDeviceGetGraphicsRunningProcesses" },
        };
        bool any = false;

        for (size_t k = 0; k < ELEMENTSOF(lists); k++) {
                char call[96];
                int r;

                if (!lists[k].fn)
                        continue;
                snprintf(call, sizeof(call), "%s%s%s", lists[k].call, what ? " " : "", what ? what : "");
                r = nvml__read_proc_list(n, i, dev, lists[k].fn, call, to, s);
                if (r < 0) {
                        *to->n = 0;
                        return false;
                }
                any = any || r > 0;
        }
        return any;
}

static void nvml_read_procs(const struct nvml *n, unsigned i, nvmlDevice_t dev, struct hal_gpu_sample *s) {
        const struct nvml_procs t = { s->procs, &s->n_procs, HAL_GPU_MAX_PROCS };

        if (nvml__read_procs(n, i, dev, &t, NULL, s))
                s->present |= HAL_GPU_PROCS;
}

/* NVENC sessions: per-session FPS and encode latency, what a streaming customer complains about. The
 * driver caps sessions far below NVML_ENC_FETCH_MAX; a longer list is left out rather than cut. The
 * buffers are not zeroed: only the `got` entries the driver wrote are read (each tick, 10-12 KB of
 * zeroing a list that holds a few sessions). */
#define NVML_ENC_FETCH_MAX 256

static void nvml_read_enc(const struct nvml *n, unsigned i, nvmlDevice_t dev, struct hal_gpu_sample *s) {
        static const char *const codecs[] = { "h264", "hevc", "av1" };
        _cleanup_free_ nvmlEncoderSessionInfo_t *buf = NULL;
        unsigned got = NVML_ENC_FETCH_MAX;

        if (!n->sym_nvmlDeviceGetEncoderSessions)
                return;
        buf = malloc(NVML_ENC_FETCH_MAX * sizeof(*buf));
        if (!buf || !nvml__ok(n, i, "nvmlDeviceGetEncoderSessions",
                              n->sym_nvmlDeviceGetEncoderSessions(dev, &got, buf), s))
                return;
        for (unsigned k = 0; k < got && k < NVML_ENC_FETCH_MAX && s->n_enc < HAL_GPU_MAX_ENC; k++) {
                const nvmlEncoderSessionInfo_t *e = &buf[k];

                s->enc[s->n_enc++] = (struct hal_gpu_enc_session){
                        .pid = (int32_t)e->pid,
                        .id = e->sessionId,
                        .codec = e->codecType >= 0 && e->codecType < (int)ELEMENTSOF(codecs)
                                         ? codecs[e->codecType]
                                         : "unknown",
                        .width = e->hResolution,
                        .height = e->vResolution,
                        .avg_fps = e->averageFps,
                        .avg_latency_us = e->averageLatency,
                };
        }
        s->present |= HAL_GPU_ENC_SESSIONS;
}

/* NvFBC capture sessions: the capture half of a stream, with its own FPS and latency. Read like the
 * NVENC sessions. */
static void nvml_read_fbc(const struct nvml *n, unsigned i, nvmlDevice_t dev, struct hal_gpu_sample *s) {
        static const char *const types[] = { "unknown", "tosys", "cuda", "vid", "hwenc" };
        _cleanup_free_ nvmlFBCSessionInfo_t *buf = NULL;
        unsigned got = NVML_ENC_FETCH_MAX;

        if (!n->sym_nvmlDeviceGetFBCSessions)
                return;
        buf = malloc(NVML_ENC_FETCH_MAX * sizeof(*buf));
        if (!buf ||
            !nvml__ok(n, i, "nvmlDeviceGetFBCSessions", n->sym_nvmlDeviceGetFBCSessions(dev, &got, buf), s))
                return;
        for (unsigned k = 0; k < got && k < NVML_ENC_FETCH_MAX && s->n_fbc < HAL_GPU_MAX_FBC; k++) {
                const nvmlFBCSessionInfo_t *e = &buf[k];

                s->fbc[s->n_fbc++] = (struct hal_gpu_fbc_session){
                        .pid = (int32_t)e->pid,
                        .id = e->sessionId,
                        .type = e->sessionType >= 0 && e->sessionType < (int)ELEMENTSOF(types)
                                        ? types[e->sessionType]
                                        : "unknown",
                        .width = e->hResolution,
                        .height = e->vResolution,
                        .avg_fps = e->averageFPS,
                        .avg_latency_us = e->averageLatency,
                };
        }
        s->present |= HAL_GPU_FBC_SESSIONS;
}

/* Bare metal, pass-through, or a vGPU guest's virtual GPU (whose engine figures are shares of the
 * vGPU's capacity, and some of whose properties do not apply). */
static void nvml_read_virt(const struct nvml *n, unsigned i, nvmlDevice_t dev, struct hal_gpu_sample *s) {
        static const char *const modes[] = { "none", "passthrough", "vgpu", "host_vgpu", "host_vsga" };
        int mode = 0;

        if (n->sym_nvmlDeviceGetVirtualizationMode &&
            nvml__ok(n, i, "nvmlDeviceGetVirtualizationMode",
                     n->sym_nvmlDeviceGetVirtualizationMode(dev, &mode), s)) {
                s->virtualization = mode >= 0 && mode < (int)ELEMENTSOF(modes) ? modes[mode] : "unknown";
                s->present |= HAL_GPU_VIRT;
        }
}

typedef void (*nvml_read_fn)(const struct nvml *n, unsigned i, nvmlDevice_t dev, struct hal_gpu_sample *s);

static const nvml_read_fn nvml_reads[] = {
        nvml_read_util,  nvml_read_codec, nvml_read_memory, nvml_read_power, nvml_read_clocks,
        nvml_read_procs, nvml_read_enc,   nvml_read_fbc,    nvml_read_virt,  nvml__read_mig,
};

static int nvml_sample(void *ctx, unsigned i, struct hal_gpu_sample *s) {
        struct nvml *n = ctx;
        struct nvml_gpu *g;

        if (i >= n->count)
                return -EINVAL;
        g = &n->gpus[i];
        *s = (struct hal_gpu_sample){ .backend = hal_gpu_backend_nvml.name };

        if (!g->dev) {
                nvmlDevice_t dev = NULL;
                nvmlReturn_t r = n->sym_nvmlDeviceGetHandleByIndex_v2(i, &dev);

                if (r != NVML_SUCCESS || !dev) {
                        nvml__fail(n, i, "nvmlDeviceGetHandleByIndex_v2",
                                   r != NVML_SUCCESS ? r : NVML_ERROR_UNKNOWN, s);
                        return 0;
                }
                g->dev = dev;
        }
        if (!g->have_ident)
                nvml_read_ident(n, i, g, s);
        nvml_copy_ident(g, s);

        /* Other failures leave the remaining metrics worth reading. */
        for (size_t k = 0; k < ELEMENTSOF(nvml_reads) && !nvml_lost(s); k++)
                nvml_reads[k](n, i, g->dev, s);
        return 0;
}

const struct hal_gpu_backend hal_gpu_backend_nvml = {
        .name = "nvml",
        .open = nvml_open,
        .sample = nvml_sample,
        .close = nvml_close,
};
