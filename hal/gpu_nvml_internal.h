/* gpu_nvml_internal.h: the NVML backend's own declarations of the NVML C ABI and its state, shared
 * by gpu_nvml.c (open, identity, metrics) and gpu_nvml_mig.c (MIG instances). Nothing outside
 * hal/gpu_nvml*.c includes it. */
#pragma once

#include "gpu.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Our own declarations of the stable NVML C ABI, only what this file uses; the NVIDIA header
 * is not packaged in Debian. Checked against nvml.h of CUDA 12.2 (NVML API 12, as vendored in
 * NVIDIA/go-nvml) and the layouts older drivers export. */

typedef enum {
        NVML_SUCCESS = 0,
        NVML_ERROR_UNINITIALIZED = 1,
        NVML_ERROR_INVALID_ARGUMENT = 2,
        NVML_ERROR_NOT_SUPPORTED = 3,
        NVML_ERROR_NO_PERMISSION = 4,
        NVML_ERROR_ALREADY_INITIALIZED = 5,
        NVML_ERROR_NOT_FOUND = 6,
        NVML_ERROR_INSUFFICIENT_SIZE = 7,
        NVML_ERROR_INSUFFICIENT_POWER = 8,
        NVML_ERROR_DRIVER_NOT_LOADED = 9,
        NVML_ERROR_TIMEOUT = 10,
        NVML_ERROR_IRQ_ISSUE = 11,
        NVML_ERROR_LIBRARY_NOT_FOUND = 12,
        NVML_ERROR_FUNCTION_NOT_FOUND = 13,
        NVML_ERROR_CORRUPTED_INFOROM = 14,
        NVML_ERROR_GPU_IS_LOST = 15,
        NVML_ERROR_RESET_REQUIRED = 16,
        NVML_ERROR_OPERATING_SYSTEM = 17,
        NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18,
        NVML_ERROR_IN_USE = 19,
        NVML_ERROR_MEMORY = 20,
        NVML_ERROR_NO_DATA = 21,
        NVML_ERROR_VGPU_ECC_NOT_SUPPORTED = 22,
        NVML_ERROR_INSUFFICIENT_RESOURCES = 23,
        NVML_ERROR_FREQ_NOT_SUPPORTED = 24,
        NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
        NVML_ERROR_DEPRECATED = 26,
        NVML_ERROR_NOT_READY = 27,
        NVML_ERROR_GPU_NOT_FOUND = 28,
        NVML_ERROR_INVALID_STATE = 29,
        NVML_ERROR_UNKNOWN = 999,
} nvmlReturn_t;

typedef struct nvmlDevice_st *nvmlDevice_t;

enum { NVML_TEMPERATURE_GPU = 0 }; /* nvmlTemperatureSensors_t */
enum { NVML_CLOCK_SM = 1 };        /* nvmlClockType_t */

typedef struct {
        unsigned int gpu;    /* % of time a kernel ran */
        unsigned int memory; /* % of time device memory was read or written */
} nvmlUtilization_t;

/* v1, taken by nvmlDeviceGetMemoryInfo (the _v2 struct carries a version word in front). */
typedef struct {
        unsigned long long total, free, used;
} nvmlMemory_t;

/* Versioned structs carry their size and version in their first word (nvml.h's NVML_STRUCT_VERSION). */
#define NVML_STRUCT_VERSION(type, ver) ((unsigned int)(sizeof(type) | ((unsigned)(ver) << 24u)))

/* nvmlDeviceGetMemoryInfo_v2 (driver 510+): memory the driver or firmware sets aside, apart. */
typedef struct {
        unsigned int version;
        unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;

/* nvmlDeviceGetEncoderSessions' entries. */
typedef struct {
        unsigned int sessionId, pid, vgpuInstance;
        int codecType; /* nvmlEncoderType_t: 0 H264, 1 HEVC, 2 AV1 */
        unsigned int hResolution, vResolution, averageFps, averageLatency;
} nvmlEncoderSessionInfo_t;

/* nvmlDeviceGetFBCSessions' entries (nvml.h's nvmlFBCSessionInfo_t). */
typedef struct {
        unsigned int sessionId, pid, vgpuInstance, displayOrdinal;
        int sessionType; /* nvmlFBCSessionType_t: 0 unknown, 1 ToSys, 2 Cuda, 3 Vid, 4 HwEnc */
        unsigned int sessionFlags, hMaxResolution, vMaxResolution, hResolution, vResolution;
        unsigned int averageFPS, averageLatency;
} nvmlFBCSessionInfo_t;
_Static_assert(sizeof(nvmlFBCSessionInfo_t) == 48, "nvmlFBCSessionInfo_t layout");

/* nvmlDeviceGetTemperatureV (API 13), the successor of the deprecated nvmlDeviceGetTemperature. */
typedef struct {
        unsigned int version;
        int sensorType; /* nvmlTemperatureSensors_t */
        int temperature;
} nvmlTemperature_v1_t;

/* The layout of nvmlDeviceGetPciInfo_v2 and _v3 (the v1 call had busId[16] and reserved words
 * where busId[32] is now). domain..pciDeviceId sit at the same offsets in all three. */
typedef struct {
        char busIdLegacy[16];
        unsigned int domain;
        unsigned int bus;
        unsigned int device;
        unsigned int pciDeviceId; /* device id << 16 | vendor id */
        unsigned int pciSubSystemId;
        char busId[32];
} nvmlPciInfo_t;
_Static_assert(sizeof(nvmlPciInfo_t) == 68, "nvmlPciInfo_t layout");

/* v1, taken by the unversioned nvmlDeviceGetComputeRunningProcesses and
 * nvmlDeviceGetGraphicsRunningProcesses, whose 16-byte layout has not changed since NVML 1.
 * _v2 takes 24 bytes (MIG instance ids added). _v3 changed its struct without a version bump:
 * 24 bytes from driver 510, 32 (usedGpuCcProtectedMemory) in the 535.43..535.86 headers, 24 again
 * after (nvitop #79, #89; go-nvml #75). We need neither MIG ids nor CC memory. */
typedef struct {
        unsigned int pid;
        unsigned long long usedGpuMemory; /* NVML_VALUE_NOT_AVAILABLE (all ones) when unknown */
} nvmlProcessInfo_v1_t;
_Static_assert(sizeof(void *) != 8 || sizeof(nvmlProcessInfo_v1_t) == 16, "nvmlProcessInfo_v1_t layout");

#define NVML_DEFAULT_PATH "libnvidia-ml.so.1"
/* NVML numbers GPUs densely from 0; a count past this is garbage, not a host. */
#define NVML_GPUS_MAX 1024
/* Process lists: a first buffer that fits a render host, and the most we fetch before keeping
 * the first HAL_GPU_MAX_PROCS. */
#define NVML_PROCS_FIRST 32
#define NVML_PROCS_FETCH_MAX 4096
#define NVML_PROCS_TRIES 4
/* Room per entry in the process buffer: the widest stride any driver has written (the 535.43
 * _v3 struct), so that a driver that gets the layout wrong cannot write past our buffer. */
#define NVML_PROC_STRIDE_MAX 32

struct nvml_gpu {
        nvmlDevice_t dev; /* NULL until nvmlDeviceGetHandleByIndex_v2 succeeds */
        bool have_ident;  /* name, uuid and PCI ids below were read (they never change) */
        char name[sizeof(((struct hal_gpu_sample *)NULL)->name)];
        char uuid[sizeof(((struct hal_gpu_sample *)NULL)->uuid)];
        char pci_bus_id[sizeof(((struct hal_gpu_sample *)NULL)->pci_bus_id)];
        uint16_t pci_vendor, pci_device;
};

struct nvml {
        void *dl;
        unsigned count;
        struct nvml_gpu *gpus;

        /* Required: the library is useless without them. */
        nvmlReturn_t (*sym_nvmlInit_v2)(void);
        nvmlReturn_t (*sym_nvmlShutdown)(void);
        nvmlReturn_t (*sym_nvmlDeviceGetCount_v2)(unsigned int *count);
        nvmlReturn_t (*sym_nvmlDeviceGetHandleByIndex_v2)(unsigned int index, nvmlDevice_t *dev);
        /* Optional: a driver without one lacks that metric (or the error text). */
        const char *(*sym_nvmlErrorString)(nvmlReturn_t r);
        nvmlReturn_t (*sym_nvmlDeviceGetName)(nvmlDevice_t dev, char *name, unsigned int len);
        nvmlReturn_t (*sym_nvmlDeviceGetUUID)(nvmlDevice_t dev, char *uuid, unsigned int len);
        nvmlReturn_t (*sym_nvmlDeviceGetPciInfo)(nvmlDevice_t dev, nvmlPciInfo_t *pci);
        nvmlReturn_t (*sym_nvmlDeviceGetUtilizationRates)(nvmlDevice_t dev, nvmlUtilization_t *u);
        nvmlReturn_t (*sym_nvmlDeviceGetEncoderUtilization)(nvmlDevice_t dev, unsigned int *pct,
                                                            unsigned int *period_us);
        nvmlReturn_t (*sym_nvmlDeviceGetDecoderUtilization)(nvmlDevice_t dev, unsigned int *pct,
                                                            unsigned int *period_us);
        nvmlReturn_t (*sym_nvmlDeviceGetMemoryInfo)(nvmlDevice_t dev, nvmlMemory_t *mem);
        nvmlReturn_t (*sym_nvmlDeviceGetMemoryInfo_v2)(nvmlDevice_t dev, nvmlMemory_v2_t *mem);
        nvmlReturn_t (*sym_nvmlDeviceGetPowerUsage)(nvmlDevice_t dev, unsigned int *mw);
        nvmlReturn_t (*sym_nvmlDeviceGetTemperature)(nvmlDevice_t dev, int sensor, unsigned int *c);
        nvmlReturn_t (*sym_nvmlDeviceGetTemperatureV)(nvmlDevice_t dev, nvmlTemperature_v1_t *t);
        nvmlReturn_t (*sym_nvmlDeviceGetEncoderSessions)(nvmlDevice_t dev, unsigned int *count,
                                                         nvmlEncoderSessionInfo_t *infos);
        nvmlReturn_t (*sym_nvmlDeviceGetFBCSessions)(nvmlDevice_t dev, unsigned int *count,
                                                     nvmlFBCSessionInfo_t *infos);
        nvmlReturn_t (*sym_nvmlDeviceGetClockInfo)(nvmlDevice_t dev, int type, unsigned int *mhz);
        nvmlReturn_t (*sym_nvmlDeviceGetMaxClockInfo)(nvmlDevice_t dev, int type, unsigned int *mhz);
        nvmlReturn_t (*sym_nvmlDeviceGetCurrentClocksEventReasons)(nvmlDevice_t dev, unsigned long long *r);
        nvmlReturn_t (*sym_nvmlDeviceGetComputeRunningProcesses)(nvmlDevice_t dev, unsigned int *count,
                                                                 nvmlProcessInfo_v1_t *infos);
        nvmlReturn_t (*sym_nvmlDeviceGetVirtualizationMode)(nvmlDevice_t dev, int *mode);
        nvmlReturn_t (*sym_nvmlDeviceGetMigMode)(nvmlDevice_t dev, unsigned int *current,
                                                 unsigned int *pending);
        nvmlReturn_t (*sym_nvmlDeviceGetMaxMigDeviceCount)(nvmlDevice_t dev, unsigned int *count);
        nvmlReturn_t (*sym_nvmlDeviceGetMigDeviceHandleByIndex)(nvmlDevice_t dev, unsigned int index,
                                                                nvmlDevice_t *mig);
        nvmlReturn_t (*sym_nvmlDeviceGetGpuInstanceId)(nvmlDevice_t dev, unsigned int *id);
        nvmlReturn_t (*sym_nvmlDeviceGetComputeInstanceId)(nvmlDevice_t dev, unsigned int *id);
        nvmlReturn_t (*sym_nvmlDeviceGetGraphicsRunningProcesses)(nvmlDevice_t dev, unsigned int *count,
                                                                  nvmlProcessInfo_v1_t *infos);
};

/* Where a process list goes: procs[0..*n), at most max (a GPU's, or a MIG instance's). */
struct nvml_procs {
        struct hal_gpu_proc *v;
        size_t *n;
        size_t max;
};

/* A metric the GPU or driver does not offer is absent, not an error. */
bool nvml__unsupported(nvmlReturn_t r);
/* Records a failed call for GPU i in s->error; the first failure wins (later calls usually fail
 * for the same reason). */
void nvml__fail(const struct nvml *n, unsigned i, const char *call, nvmlReturn_t r,
                struct hal_gpu_sample *s);
/* Classifies the result of one metric call: true when its value may be used. Unsupported is
 * false without an error; anything else is recorded by nvml__fail. */
bool nvml__ok(const struct nvml *n, unsigned i, const char *call, nvmlReturn_t r, struct hal_gpu_sample *s);

typedef nvmlReturn_t (*nvml_procs_fn)(nvmlDevice_t dev, unsigned int *count, nvmlProcessInfo_v1_t *infos);

/* Reads one process list of dev into t: 1 when read, 0 when the driver has none to give, -1 on
 * error (recorded in s). */
int nvml__read_proc_list(const struct nvml *n, unsigned i, nvmlDevice_t dev, nvml_procs_fn fn,
                         const char *call, const struct nvml_procs *t, struct hal_gpu_sample *s);

/* The compute and graphics process lists of dev into t: true when either was read. A list that fails
 * empties t (false): a short list would be read as the whole one. `what` (NULL for a GPU) follows the
 * call's name in an error ("for MIG device 2"). */
bool nvml__read_procs(const struct nvml *n, unsigned i, nvmlDevice_t dev, const struct nvml_procs *to,
                      const char *what, struct hal_gpu_sample *s);

/* Memory of dev, _v2 where exported (reserved apart, used without it), else v1. NVML_SUCCESS with
 * *ret_has_reserved telling which; else the failed call's result and name in *ret_call. */
nvmlReturn_t nvml__memory(const struct nvml *n, nvmlDevice_t dev, uint64_t *ret_total, uint64_t *ret_used,
                          uint64_t *ret_reserved, bool *ret_has_reserved, const char **ret_call);

/* MIG: whether GPU i runs in MIG mode, and its MIG devices with their own memory and processes
 * (gpu_nvml_mig.c). */
void nvml__read_mig(const struct nvml *n, unsigned i, nvmlDevice_t dev, struct hal_gpu_sample *s);
