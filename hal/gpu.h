/* gpu.h: GPUs behind backend ops tables (NVML via dlopen, amdgpu sysfs, Mali/devfreq sysfs). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define HAL_GPU_MAX 16           /* GPUs per host; more are ignored with an error */
#define HAL_GPU_MAX_PROCS 128    /* processes listed per GPU */
#define HAL_GPU_MAX_ENC 32       /* NVENC sessions listed per GPU */
#define HAL_GPU_MAX_FBC 32       /* NvFBC capture sessions listed per GPU */
#define HAL_GPU_MAX_MIG 8        /* MIG devices listed per GPU (an A100 or H100 has at most 7) */
#define HAL_GPU_MIG_MAX_PROCS 32 /* processes listed per MIG device */
#define HAL_GPU_ERR_MAX 160

/* Which members of a sample hold a value. A metric the GPU or driver does not offer is
 * absent (its bit clear), never 0. */
enum {
        HAL_GPU_UTIL = 1u << 0,           /* util_pct */
        HAL_GPU_MEM_UTIL = 1u << 1,       /* mem_util_pct (memory controller busy) */
        HAL_GPU_ENC = 1u << 2,            /* enc_pct */
        HAL_GPU_DEC = 1u << 3,            /* dec_pct */
        HAL_GPU_VRAM = 1u << 4,           /* vram_total_bytes, vram_used_bytes */
        HAL_GPU_POWER = 1u << 5,          /* power_w */
        HAL_GPU_TEMP = 1u << 6,           /* temp_c */
        HAL_GPU_CLOCK = 1u << 7,          /* clock_mhz */
        HAL_GPU_CLOCK_MAX = 1u << 8,      /* clock_max_mhz */
        HAL_GPU_THROTTLE = 1u << 9,       /* throttle_reasons */
        HAL_GPU_PROCS = 1u << 10,         /* procs[0..n_procs) */
        HAL_GPU_VRAM_RESERVED = 1u << 11, /* vram_reserved_bytes (NVML _v2: used then excludes it) */
        HAL_GPU_ENC_SESSIONS = 1u << 12,  /* enc[0..n_enc) */
        HAL_GPU_FBC_SESSIONS = 1u << 13,  /* fbc[0..n_fbc) */
        HAL_GPU_MIG = 1u << 14,           /* mig_enabled */
        HAL_GPU_MIG_DEVICES = 1u << 15,   /* mig[0..n_mig): the MIG devices of a MIG-enabled GPU */
        HAL_GPU_VIRT = 1u << 16,          /* virtualization */
};

/* Which members of a MIG device hold a value, as for the GPU. */
enum {
        HAL_GPU_MIG_IDS = 1u << 0,   /* gpu_instance_id, compute_instance_id */
        HAL_GPU_MIG_VRAM = 1u << 1,  /* vram_total_bytes, vram_used_bytes */
        HAL_GPU_MIG_PROCS = 1u << 2, /* procs[0..n_procs) */
        HAL_GPU_MIG_UTIL = 1u << 3,  /* util_pct */
};

struct hal_gpu_proc {
        int32_t pid;
        uint64_t vram_bytes; /* UINT64_MAX when the driver does not say */
};

/* One hardware encoder (NVENC) session, as the driver averages it. */
struct hal_gpu_enc_session {
        int32_t pid;
        uint32_t id;
        const char *codec; /* "h264", "hevc", "av1", "unknown": static */
        uint32_t width, height;
        uint32_t avg_fps;
        uint32_t avg_latency_us;
};

/* One frame-buffer capture (NvFBC) session, as the driver averages it: the capture half of a stream
 * (the encode half is an NVENC session of the same process). */
struct hal_gpu_fbc_session {
        int32_t pid;
        uint32_t id;
        const char *type;       /* "tosys", "cuda", "vid", "hwenc", "unknown": static */
        uint32_t width, height; /* what the caller asked to capture */
        uint32_t avg_fps;       /* new frames captured per second */
        uint32_t avg_latency_us;
};

/* One MIG device (a compute instance of a GPU instance) of a MIG-enabled GPU, with what NVML answers
 * for it on its own handle. */
struct hal_gpu_mig {
        unsigned index; /* NVML's MIG device index under the GPU */
        char uuid[96];  /* "MIG-..." ("" when not read) */
        uint32_t present;
        /* NVML said NOT_SUPPORTED to utilisation on it (what nvml.h documents for MIG): shown so,
         * not as 0 and not as merely unknown. */
        bool util_unsupported;
        unsigned gpu_instance_id, compute_instance_id;
        double util_pct;
        uint64_t vram_total_bytes, vram_used_bytes;
        size_t n_procs;
        struct hal_gpu_proc procs[HAL_GPU_MIG_MAX_PROCS];
};

struct hal_gpu_sample {
        /* Identity: filled by every sample. */
        const char *backend; /* "nvml", "amdgpu", "mali": static */
        char name[96];       /* marketing name, or the driver's id when there is none */
        char uuid[96];       /* "" when the backend has none; 96: nvml.h's NVML_DEVICE_UUID_V2_BUFFER_SIZE */
        char pci_bus_id[32]; /* "0000:01:00.0", "" for non-PCI GPUs */
        uint16_t pci_vendor; /* 0 when not PCI */
        uint16_t pci_device;
        bool shared_memory; /* VRAM figures are system RAM the GPU shares (ARM) */

        /* Metrics: valid where `present` has the bit. */
        uint32_t present;
        double util_pct, mem_util_pct, enc_pct, dec_pct;
        uint64_t vram_total_bytes, vram_used_bytes, vram_reserved_bytes;
        double power_w;
        double temp_c;
        unsigned clock_mhz, clock_max_mhz; /* SM (NVIDIA) or shader/core clock */
        uint64_t throttle_reasons;         /* NVML clocks-throttle-reason bits */
        /* How the GPU reaches this OS: "none" (bare metal), "passthrough", "vgpu" (a guest's virtual
         * GPU), "host_vgpu", "host_vsga" (a hypervisor's GPU), "unknown": static. */
        const char *virtualization;
        bool mig_enabled; /* with HAL_GPU_MIG: the GPU runs in MIG mode (current, not pending) */

        /* error < 0 with a message: something about this GPU could not be read this time.
         * With `present` bits still set it is a partial sample (one metric unreadable or
         * malformed); with none, the GPU is lost or forbidden. Other GPUs are unaffected. */
        int error;
        char error_msg[HAL_GPU_ERR_MAX];

        /* The lists, last: only entries [0, n_*) are ever read, so a sample is cleared up to them
         * (hal_gpu_sample_clear), not through their 9 KB. */
        size_t n_procs, n_enc, n_fbc, n_mig;
        struct hal_gpu_proc procs[HAL_GPU_MAX_PROCS];
        struct hal_gpu_enc_session enc[HAL_GPU_MAX_ENC];
        struct hal_gpu_fbc_session fbc[HAL_GPU_MAX_FBC];
        struct hal_gpu_mig mig[HAL_GPU_MAX_MIG];
};

/* Everything of s but its lists' entries zeroed (their counts are): a sample as new. */
static inline void hal_gpu_sample_clear(struct hal_gpu_sample *s) {
        memset(s, 0, offsetof(struct hal_gpu_sample, procs));
}

/* dst = src, the lists' entries [0, n_*) only (n GPUs). */
void hal_gpu_samples_copy(struct hal_gpu_sample *dst, const struct hal_gpu_sample *src, size_t n);

struct hal_gpu_options {
        const char *nvml_path; /* NULL: "libnvidia-ml.so.1" from the loader's path */
        bool no_nvml;          /* the root is a captured tree, not this machine: NVML (which
                                * talks to this machine's driver) would not describe it */
};

/* One backend. Backends are listed in a static array in gpu.c and opened in order. */
struct hal_gpu_backend {
        const char *name;
        /* Finds this backend's GPUs. -ENODEV when the backend does not apply here (no
         * library, no driver): not an error for the host. Other errors fill err. */
        int (*open)(int root_fd, const struct hal_gpu_options *o, void **ret_ctx, unsigned *ret_count,
                    char *err, size_t errlen);
        /* Samples GPU i (0..count-1). GPU-specific failures go into s->error, not the return;
         * a negative return means the whole backend failed. */
        int (*sample)(void *ctx, unsigned i, struct hal_gpu_sample *s);
        void (*close)(void *ctx);
};

struct hal_gpus;

/* Opens every backend that applies. Backends that fail are reported through `warn` (one
 * line each, may be NULL) and skipped; the others still count. */
int hal_gpus_open(int root_fd, const struct hal_gpu_options *o, struct hal_gpus **ret,
                  void (*warn)(const char *msg, void *ud), void *ud);
unsigned hal_gpus_count(const struct hal_gpus *g);
/* Samples GPU i of the host (numbered across backends in probe order) into ret, cleared first
 * (hal_gpu_sample_clear); a backend that fails leaves it cleared, an i out of range untouched. */
int hal_gpus_sample(struct hal_gpus *g, unsigned i, struct hal_gpu_sample *ret);
void hal_gpus_free(struct hal_gpus *g);

/* FP32 peak TFLOPS of common render GPUs by PCI id (or name when the id is unknown);
 * NAN when the GPU is not in the table. */
double hal_gpu_fp32_tflops(uint16_t pci_vendor, uint16_t pci_device, const char *name);
