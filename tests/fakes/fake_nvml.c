/* fake_nvml.c: a test double of libnvidia-ml.so.1: the NVML C entry points hal/gpu_nvml.c uses,
 * answering from a script file, loaded through the same dlopen path as the real library.
 *
 * FAKE_NVML_SCRIPT names the script; it is read by every nvmlInit_v2. One directive a line,
 * '#' starts a comment:
 *   init=ERR                    nvmlInit_v2 fails with NVML_ERROR_<ERR>
 *   err.count=ERR               nvmlDeviceGetCount_v2 fails
 *   gpu N key=value ...         describes GPU N (GPUs 0..N-1 exist; undescribed ones support nothing)
 *   mig G K key=value ...       describes MIG device K of GPU G (G < 8, K < 8)
 * GPU keys (a value runs up to the next key=, so names may hold spaces):
 *   name uuid pci=DDDD:BB:DD.F device=0xID vendor=0xID util memutil enc dec vram_total vram_used
 *   vram_reserved power_mw temp sm sm_max throttle procs gprocs encs fbcs migmode mig_max virt
 *   err.CALL=ERR
 *   encs: NVENC sessions, PID:CODEC:WxH:FPS:LATENCY_US,... (CODEC h264, hevc, av1 or a number),
 *   or "none"; session ids are 1, 2, ...
 *   fbcs: NvFBC capture sessions, PID:TYPE:WxH:FPS:LATENCY_US,... (TYPE unknown, tosys, cuda,
 *   vid, hwenc or a number), or "none"; session ids are 101, 102, ...
 *   util=A/B/...: each utilisation call answers the next value, round the list (at most 16).
 *   vram_used is what processes allocated; the driver's reserve (vram_reserved, default 0) is
 *   inside v1's "used" and _v2's "used", and apart in _v2's "reserved", as nvml.h says.
 *   procs/gprocs: PID:BYTES,... (BYTES '-' for not available), "none", or gen:N (N processes,
 *   pids 1000.., 1 MiB each times their rank). A metric not given answers NOT_SUPPORTED.
 *   migmode: 1 MIG enabled, 0 disabled; mig_max: nvmlDeviceGetMaxMigDeviceCount.
 *   virt: nvmlDeviceGetVirtualizationMode (0 bare metal, 1 pass-through, 2 vGPU guest, ...).
 * MIG device keys: the GPU keys (uuid vram_total vram_used procs gprocs util err.CALL ...) and
 *   gi, ci (its GPU and compute instance ids); an index not described answers NOT_FOUND, as NVML
 *   does for an empty one.
 * CALL: handle name uuid pci util memory encoder decoder power temp clock maxclock throttle
 *   procs gprocs memory_v2 temp_v encs fbcs migmode (mode and count) mighandle (the MIG device
 *   lookup) migids virt (memory_v2 and temp_v fail only the newer call; memory and temp fail both the
 *   old and the new one).
 * FAKE_NVML_LOG, when set, names a file that gets one line per init, shutdown and process-list
 * call ("procs CAP").
 * FAKE_NVML_HANG, when set, names a file: while it exists, nvmlInit_v2 and every device call block
 * in the library (as a driver stuck in an ioctl does), and return when it is removed.
 * Built twice: fake_nvml (a current driver) and fake_nvml_old (-DFAKE_NVML_OLD: no encoder,
 * decoder, clock-event/throttle reasons, graphics processes, nvmlErrorString, PciInfo_v3,
 * MemoryInfo_v2, TemperatureV, EncoderSessions, FBCSessions, MIG or virtualization calls). */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

typedef enum {
        NVML_SUCCESS = 0,
        NVML_ERROR_UNINITIALIZED = 1,
        NVML_ERROR_INVALID_ARGUMENT = 2,
        NVML_ERROR_NOT_SUPPORTED = 3,
        NVML_ERROR_INSUFFICIENT_SIZE = 7,
        NVML_ERROR_UNKNOWN = 999,
} nvmlReturn_t;

typedef struct {
        unsigned int gpu, memory;
} nvmlUtilization_t;

typedef struct {
        unsigned long long total, free, used;
} nvmlMemory_t;

typedef struct {
        unsigned int version;
        unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;

typedef struct {
        unsigned int sessionId, pid, vgpuInstance;
        int codecType;
        unsigned int hResolution, vResolution, averageFps, averageLatency;
} nvmlEncoderSessionInfo_t;

typedef struct {
        unsigned int sessionId, pid, vgpuInstance, displayOrdinal;
        int sessionType;
        unsigned int sessionFlags, hMaxResolution, vMaxResolution, hResolution, vResolution;
        unsigned int averageFPS, averageLatency;
} nvmlFBCSessionInfo_t;

typedef struct {
        unsigned int version;
        int sensorType;
        int temperature;
} nvmlTemperature_v1_t;

typedef struct {
        char busIdLegacy[16];
        unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
        char busId[32];
} nvmlPciInfo_t;

typedef struct {
        unsigned int pid;
        unsigned long long usedGpuMemory;
} nvmlProcessInfo_v1_t;

enum call {
        CALL_HANDLE,
        CALL_NAME,
        CALL_UUID,
        CALL_PCI,
        CALL_UTIL,
        CALL_MEMORY,
        CALL_ENCODER,
        CALL_DECODER,
        CALL_POWER,
        CALL_TEMP,
        CALL_CLOCK,
        CALL_MAXCLOCK,
        CALL_THROTTLE,
        CALL_PROCS,
        CALL_GPROCS,
        CALL_MEMORY_V2,
        CALL_TEMP_V,
        CALL_ENCS,
        CALL_FBCS,
        CALL_MIGMODE,
        CALL_MIGHANDLE,
        CALL_MIGIDS,
        CALL_VIRT,
        CALL_MAX,
};

static const char *const call_names[CALL_MAX] = {
        "handle", "name", "uuid",  "pci",      "util",      "memory", "encoder", "decoder",
        "power",  "temp", "clock", "maxclock", "throttle",  "procs",  "gprocs",  "memory_v2",
        "temp_v", "encs", "fbcs",  "migmode",  "mighandle", "migids", "virt",
};

#define FAKE_STREAMS_MAX 16 /* encoder or FBC sessions a GPU of the script may have */

struct fake_list {
        unsigned n;
        nvmlProcessInfo_v1_t *v;
};

typedef struct nvmlDevice_st {
        unsigned have; /* 1 << call: the script gave a value */
        int err[CALL_MAX];
        char name[96], uuid[96];
        unsigned domain, bus, dev, vendor, device;
        unsigned util, memutil, enc, dec, power_mw, temp, sm, sm_max;
        unsigned util_seq[16], n_util_seq, util_calls;
        unsigned long long vram_total, vram_used, vram_reserved, throttle;
        struct fake_list procs, gprocs;
        unsigned n_encs, n_fbcs;
        nvmlEncoderSessionInfo_t encs[FAKE_STREAMS_MAX];
        nvmlFBCSessionInfo_t fbcs[FAKE_STREAMS_MAX];
        unsigned migmode, mig_max; /* a GPU: MIG mode, nvmlDeviceGetMaxMigDeviceCount */
        unsigned gi, ci;           /* a MIG device: its GPU and compute instance ids */
        unsigned virt;             /* nvmlGpuVirtualizationMode_t */
        int described;             /* a MIG device: the script has a line for it */
} * nvmlDevice_t;

#define FAKE_GPUS_MAX 64
#define FAKE_MIG_GPUS 8 /* GPUs that may have MIG devices (the first ones) */
#define FAKE_MIG_MAX 8  /* MIG devices per GPU */

static struct {
        int inits;
        unsigned count;
        int err_count;
        struct nvmlDevice_st gpus[FAKE_GPUS_MAX];
        struct nvmlDevice_st migs[FAKE_MIG_GPUS][FAKE_MIG_MAX];
} fake;

static const struct {
        const char *name;
        int code;
        const char *text;
} errors[] = {
        { "SUCCESS", 0, "Success" },
        { "UNINITIALIZED", 1, "Uninitialized" },
        { "INVALID_ARGUMENT", 2, "Invalid Argument" },
        { "NOT_SUPPORTED", 3, "Not Supported" },
        { "NO_PERMISSION", 4, "Insufficient Permissions" },
        { "NOT_FOUND", 6, "Not Found" },
        { "INSUFFICIENT_SIZE", 7, "Insufficient Size" },
        { "DRIVER_NOT_LOADED", 9, "Driver Not Loaded" },
        { "TIMEOUT", 10, "Timeout" },
        { "LIBRARY_NOT_FOUND", 12, "NVML Shared Library Not Found" },
        { "FUNCTION_NOT_FOUND", 13, "Function Not Found" },
        { "GPU_IS_LOST", 15, "GPU is lost" },
        { "LIB_RM_VERSION_MISMATCH", 18, "RM has detected an NVML/RM version mismatch." },
        { "ARGUMENT_VERSION_MISMATCH", 25, "Argument version mismatch" },
        { "UNKNOWN", 999, "Unknown Error" },
};

/* The prototypes of what this library exports (the project builds with -Wmissing-prototypes). */
nvmlReturn_t nvmlInit_v2(void);
nvmlReturn_t nvmlShutdown(void);
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count);
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *dev);
nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t dev, char *name, unsigned int len);
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t dev, char *uuid, unsigned int len);
nvmlReturn_t nvmlDeviceGetPciInfo_v2(nvmlDevice_t dev, nvmlPciInfo_t *pci);
nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t dev, nvmlUtilization_t *u);
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t dev, nvmlMemory_t *m);
nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t dev, unsigned int *mw);
nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t dev, int sensor, unsigned int *c);
nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t dev, int type, unsigned int *mhz);
nvmlReturn_t nvmlDeviceGetMaxClockInfo(nvmlDevice_t dev, int type, unsigned int *mhz);
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t dev, unsigned int *count,
                                                  nvmlProcessInfo_v1_t *infos);
#ifndef FAKE_NVML_OLD
const char *nvmlErrorString(nvmlReturn_t r);
nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t dev, nvmlPciInfo_t *pci);
nvmlReturn_t nvmlDeviceGetEncoderUtilization(nvmlDevice_t dev, unsigned int *pct, unsigned int *period_us);
nvmlReturn_t nvmlDeviceGetDecoderUtilization(nvmlDevice_t dev, unsigned int *pct, unsigned int *period_us);
nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t dev, unsigned long long *r);
nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t dev, unsigned long long *r);
nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses(nvmlDevice_t dev, unsigned int *count,
                                                   nvmlProcessInfo_v1_t *infos);
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t dev, nvmlMemory_v2_t *m);
nvmlReturn_t nvmlDeviceGetTemperatureV(nvmlDevice_t dev, nvmlTemperature_v1_t *t);
nvmlReturn_t nvmlDeviceGetEncoderSessions(nvmlDevice_t dev, unsigned int *count,
                                          nvmlEncoderSessionInfo_t *infos);
nvmlReturn_t nvmlDeviceGetFBCSessions(nvmlDevice_t dev, unsigned int *count, nvmlFBCSessionInfo_t *infos);
nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t dev, unsigned int *current, unsigned int *pending);
nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t dev, unsigned int *count);
nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t dev, unsigned int index, nvmlDevice_t *mig);
nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t dev, unsigned int *id);
nvmlReturn_t nvmlDeviceGetComputeInstanceId(nvmlDevice_t dev, unsigned int *id);
nvmlReturn_t nvmlDeviceGetVirtualizationMode(nvmlDevice_t dev, int *mode);
#endif

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A broken script is a broken test: stop loudly. */
static void die(const char *fmt, ...) {
        va_list ap;

        fputs("fake_nvml: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        abort();
}

static void fake_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fake_log(const char *fmt, ...) {
        const char *path = getenv("FAKE_NVML_LOG");
        va_list ap;
        FILE *f;

        if (!path)
                return;
        f = fopen(path, "ae");
        if (!f)
                die("cannot open FAKE_NVML_LOG %s", path);
        va_start(ap, fmt);
        vfprintf(f, fmt, ap);
        va_end(ap);
        fputc('\n', f);
        fclose(f);
}

static int error_code(const char *name) {
        for (size_t k = 0; k < sizeof(errors) / sizeof(errors[0]); k++)
                if (strcmp(errors[k].name, name) == 0)
                        return errors[k].code;
        die("unknown NVML error name '%s'", name);
}

static unsigned long long number(const char *key, const char *v) {
        char *end;
        unsigned long long x = strtoull(v, &end, 0);

        if (!*v || *end)
                die("%s: '%s' is not a number", key, v);
        return x;
}

static void free_state(void) {
        for (unsigned k = 0; k < FAKE_GPUS_MAX; k++) {
                free(fake.gpus[k].procs.v);
                free(fake.gpus[k].gprocs.v);
        }
        for (unsigned k = 0; k < FAKE_MIG_GPUS; k++)
                for (unsigned m = 0; m < FAKE_MIG_MAX; m++) {
                        free(fake.migs[k][m].procs.v);
                        free(fake.migs[k][m].gprocs.v);
                }
        memset(&fake, 0, sizeof(fake));
}

static void parse_procs(struct fake_list *l, const char *v) {
        size_t cap = 0;

        if (strcmp(v, "none") == 0)
                return;
        if (strncmp(v, "gen:", 4) == 0) {
                unsigned n = (unsigned)number("procs", v + 4);

                l->v = calloc(n ? n : 1, sizeof(*l->v));
                if (!l->v)
                        die("out of memory");
                for (unsigned k = 0; k < n; k++)
                        l->v[k] = (nvmlProcessInfo_v1_t){ 1000 + k, (k + 1ull) << 20 };
                l->n = n;
                return;
        }
        while (*v) {
                char item[64], *colon;
                size_t len = strcspn(v, ",");

                if (len == 0 || len >= sizeof(item))
                        die("procs: bad item in '%s'", v);
                memcpy(item, v, len);
                item[len] = '\0';
                colon = strchr(item, ':');
                if (!colon)
                        die("procs: '%s' is not PID:BYTES", item);
                *colon = '\0';
                if (l->n == cap) {
                        cap = cap ? 2 * cap : 8;
                        l->v = realloc(l->v, cap * sizeof(*l->v));
                        if (!l->v)
                                die("out of memory");
                }
                l->v[l->n++] = (nvmlProcessInfo_v1_t){
                        (unsigned)number("pid", item),
                        strcmp(colon + 1, "-") == 0 ? ~0ull : number("bytes", colon + 1),
                };
                v += len;
                if (*v == ',')
                        v++;
        }
}

/* One stream session of a script: PID:KIND:WxH:FPS:LATENCY_US, KIND a name from names (its index is
 * the NVML enum value) or a number. */
struct fake_stream {
        unsigned pid, w, h, fps, lat;
        int kind;
};

static unsigned parse_streams(const char *key, const char *v, const char *const *names, int n_names,
                              struct fake_stream *out, unsigned max) {
        unsigned n = 0;

        if (strcmp(v, "none") == 0)
                return 0;
        while (*v) {
                char item[96], kind[16];
                size_t len = strcspn(v, ",");
                struct fake_stream *f = &out[n];

                if (len == 0 || len >= sizeof(item) || n == max)
                        die("%s: bad or too many items in '%s'", key, v);
                memcpy(item, v, len);
                item[len] = '\0';
                if (sscanf(item, "%u:%15[^:]:%ux%u:%u:%u", &f->pid, kind, &f->w, &f->h, &f->fps, &f->lat) !=
                    6)
                        die("%s: '%s' is not PID:KIND:WxH:FPS:LATENCY_US", key, item);
                f->kind = -1;
                for (int k = 0; k < n_names; k++)
                        if (strcmp(kind, names[k]) == 0)
                                f->kind = k;
                if (f->kind < 0)
                        f->kind = (int)number(key, kind);
                n++;
                v += len;
                if (*v == ',')
                        v++;
        }
        return n;
}

static void parse_encs(struct nvmlDevice_st *g, const char *v) {
        static const char *const codecs[] = { "h264", "hevc", "av1" };
        struct fake_stream f[FAKE_STREAMS_MAX];

        g->n_encs = parse_streams("encs", v, codecs, 3, f, FAKE_STREAMS_MAX);
        for (unsigned k = 0; k < g->n_encs; k++)
                g->encs[k] = (nvmlEncoderSessionInfo_t){ k + 1,  f[k].pid, 0,        f[k].kind,
                                                         f[k].w, f[k].h,   f[k].fps, f[k].lat };
}

/* FBC sessions are numbered from 101, so that a test can tell them from encoder sessions. */
static void parse_fbcs(struct nvmlDevice_st *g, const char *v) {
        static const char *const types[] = { "unknown", "tosys", "cuda", "vid", "hwenc" };
        struct fake_stream f[FAKE_STREAMS_MAX];

        g->n_fbcs = parse_streams("fbcs", v, types, 5, f, FAKE_STREAMS_MAX);
        for (unsigned k = 0; k < g->n_fbcs; k++)
                g->fbcs[k] = (nvmlFBCSessionInfo_t){ .sessionId = 101 + k,
                                                     .pid = f[k].pid,
                                                     .sessionType = f[k].kind,
                                                     .hMaxResolution = 4096,
                                                     .vMaxResolution = 4096,
                                                     .hResolution = f[k].w,
                                                     .vResolution = f[k].h,
                                                     .averageFPS = f[k].fps,
                                                     .averageLatency = f[k].lat };
}

static void set_gpu_key(struct nvmlDevice_st *g, const char *key, const char *v) {
        if (strncmp(key, "err.", 4) == 0) {
                for (int c = 0; c < CALL_MAX; c++)
                        if (strcmp(key + 4, call_names[c]) == 0) {
                                g->err[c] = error_code(v);
                                return;
                        }
                die("unknown call in '%s'", key);
        }
#define SET_UINT(k, field, c)                        \
        if (strcmp(key, k) == 0) {                   \
                g->field = (unsigned)number(key, v); \
                g->have |= 1u << (c);                \
                return;                              \
        }
#define SET_ULL(k, field, c)               \
        if (strcmp(key, k) == 0) {         \
                g->field = number(key, v); \
                g->have |= 1u << (c);      \
                return;                    \
        }
        if (strcmp(key, "util") == 0 && strchr(v, '/')) {
                char *end;

                g->n_util_seq = 0;
                for (const char *p = v; *p; p = end + (*end == '/')) {
                        if (g->n_util_seq == sizeof(g->util_seq) / sizeof(g->util_seq[0]))
                                die("util: more than 16 values in '%s'", v);
                        g->util_seq[g->n_util_seq++] = (unsigned)strtoul(p, &end, 10);
                        if (end == p || (*end && *end != '/'))
                                die("util: '%s' is not A/B/...", v);
                }
                g->have |= 1u << CALL_UTIL;
                return;
        }
        SET_UINT("util", util, CALL_UTIL);
        SET_UINT("memutil", memutil, CALL_UTIL);
        SET_UINT("enc", enc, CALL_ENCODER);
        SET_UINT("dec", dec, CALL_DECODER);
        SET_UINT("power_mw", power_mw, CALL_POWER);
        SET_UINT("temp", temp, CALL_TEMP);
        SET_UINT("sm", sm, CALL_CLOCK);
        SET_UINT("sm_max", sm_max, CALL_MAXCLOCK);
        SET_UINT("device", device, CALL_PCI);
        SET_UINT("vendor", vendor, CALL_PCI);
        SET_ULL("vram_total", vram_total, CALL_MEMORY);
        SET_ULL("vram_used", vram_used, CALL_MEMORY);
        SET_ULL("vram_reserved", vram_reserved, CALL_MEMORY);
        SET_ULL("throttle", throttle, CALL_THROTTLE);
        SET_UINT("migmode", migmode, CALL_MIGMODE);
        SET_UINT("mig_max", mig_max, CALL_MIGMODE);
        SET_UINT("gi", gi, CALL_MIGIDS);
        SET_UINT("virt", virt, CALL_VIRT);
        SET_UINT("ci", ci, CALL_MIGIDS);
#undef SET_UINT
#undef SET_ULL
        if (strcmp(key, "name") == 0) {
                snprintf(g->name, sizeof(g->name), "%s", v);
                g->have |= 1u << CALL_NAME;
        } else if (strcmp(key, "uuid") == 0) {
                snprintf(g->uuid, sizeof(g->uuid), "%s", v);
                g->have |= 1u << CALL_UUID;
        } else if (strcmp(key, "pci") == 0) {
                unsigned fn;

                if (sscanf(v, "%x:%x:%x.%x", &g->domain, &g->bus, &g->dev, &fn) != 4)
                        die("pci: '%s' is not DDDD:BB:DD.F", v);
                g->have |= 1u << CALL_PCI;
        } else if (strcmp(key, "procs") == 0) {
                parse_procs(&g->procs, v);
                g->have |= 1u << CALL_PROCS;
        } else if (strcmp(key, "encs") == 0) {
                parse_encs(g, v);
                g->have |= 1u << CALL_ENCS;
        } else if (strcmp(key, "fbcs") == 0) {
                parse_fbcs(g, v);
                g->have |= 1u << CALL_FBCS;
        } else if (strcmp(key, "gprocs") == 0) {
                parse_procs(&g->gprocs, v);
                g->have |= 1u << CALL_GPROCS;
        } else {
                die("unknown key '%s'", key);
        }
}

static void set_global_key(const char *key, const char *v, int *init_err) {
        if (strcmp(key, "init") == 0)
                *init_err = error_code(v);
        else if (strcmp(key, "err.count") == 0)
                fake.err_count = error_code(v);
        else
                die("unknown directive '%s'", key);
}

/* Splits "k1=v one k2=v2" into pairs; a token without '=' continues the previous value. */
static void parse_pairs(char *p, struct nvmlDevice_st *g, int *init_err) {
        char *key = NULL, val[512] = "";

        for (char *tok = strtok(p, " \t\n"); tok; tok = strtok(NULL, " \t\n")) {
                char *eq = strchr(tok, '=');

                if (!eq) {
                        if (!key)
                                die("'%s' is not key=value", tok);
                        strncat(val, " ", sizeof(val) - strlen(val) - 1);
                        strncat(val, tok, sizeof(val) - strlen(val) - 1);
                        continue;
                }
                if (key)
                        g ? set_gpu_key(g, key, val) : set_global_key(key, val, init_err);
                *eq = '\0';
                key = tok;
                snprintf(val, sizeof(val), "%s", eq + 1);
        }
        if (key)
                g ? set_gpu_key(g, key, val) : set_global_key(key, val, init_err);
}

static int load_script(void) {
        const char *path = getenv("FAKE_NVML_SCRIPT");
        int init_err = 0;
        char *line = NULL;
        size_t cap = 0;
        FILE *f;

        if (!path)
                die("FAKE_NVML_SCRIPT is not set");
        f = fopen(path, "re");
        if (!f)
                die("cannot open %s", path);
        free_state();
        while (getline(&line, &cap, f) > 0) {
                char *p = line + strspn(line, " \t");

                if (*p == '#' || *p == '\n' || *p == '\0')
                        continue;
                if (strncmp(p, "gpu ", 4) == 0) {
                        char *end;
                        unsigned long i = strtoul(p + 4, &end, 10);

                        if (end == p + 4 || i >= FAKE_GPUS_MAX)
                                die("bad gpu index in '%s'", p);
                        if (i + 1 > fake.count)
                                fake.count = (unsigned)i + 1;
                        fake.gpus[i].vendor = 0x10de;
                        parse_pairs(end, &fake.gpus[i], &init_err);
                } else if (strncmp(p, "mig ", 4) == 0) {
                        unsigned g, m;
                        int at = 0;

                        if (sscanf(p + 4, "%u %u %n", &g, &m, &at) != 2 || at == 0 || g >= FAKE_MIG_GPUS ||
                            m >= FAKE_MIG_MAX)
                                die("bad 'mig GPU INDEX' in '%s'", p);
                        fake.migs[g][m].described = 1;
                        parse_pairs(p + 4 + at, &fake.migs[g][m], &init_err);
                } else {
                        parse_pairs(p, NULL, &init_err);
                }
        }
        free(line);
        fclose(f);
        return init_err;
}

/* A stuck driver, for as long as the test wants one. */
static void hang_while_told(void) {
        const char *path = getenv("FAKE_NVML_HANG");
        struct timespec ts = { 0, 10 * 1000 * 1000 };

        while (path && access(path, F_OK) == 0)
                nanosleep(&ts, NULL);
}

/* A GPU's handle, or a MIG device's the library handed out. */
static int valid_handle(nvmlDevice_t dev) {
        const struct nvmlDevice_st *migs = &fake.migs[0][0];

        if (dev >= fake.gpus && dev < fake.gpus + fake.count)
                return 1;
        return dev >= migs && dev < migs + FAKE_MIG_GPUS * FAKE_MIG_MAX && dev->described;
}

static nvmlReturn_t enter(nvmlDevice_t dev, enum call c) {
        hang_while_told();
        if (fake.inits == 0)
                return NVML_ERROR_UNINITIALIZED;
        if (!valid_handle(dev))
                return NVML_ERROR_INVALID_ARGUMENT;
        if (dev->err[c])
                return (nvmlReturn_t)dev->err[c];
        if (!(dev->have & (1u << c)))
                return NVML_ERROR_NOT_SUPPORTED;
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlInit_v2(void) {
        int r;

        hang_while_told();
        r = load_script();

        fake_log("init");
        if (r != 0) {
                free_state();
                return (nvmlReturn_t)r;
        }
        fake.inits++;
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlShutdown(void) {
        if (fake.inits == 0)
                return NVML_ERROR_UNINITIALIZED;
        fake_log("shutdown");
        if (--fake.inits == 0)
                free_state();
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
        if (fake.inits == 0)
                return NVML_ERROR_UNINITIALIZED;
        if (fake.err_count)
                return (nvmlReturn_t)fake.err_count;
        *count = fake.count;
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *dev) {
        if (fake.inits == 0)
                return NVML_ERROR_UNINITIALIZED;
        if (index >= fake.count)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (fake.gpus[index].err[CALL_HANDLE])
                return (nvmlReturn_t)fake.gpus[index].err[CALL_HANDLE];
        *dev = &fake.gpus[index];
        return NVML_SUCCESS;
}

static nvmlReturn_t copy_string(const char *s, char *buf, unsigned int len) {
        if (strlen(s) + 1 > len)
                return NVML_ERROR_INSUFFICIENT_SIZE;
        memcpy(buf, s, strlen(s) + 1);
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t dev, char *name, unsigned int len) {
        nvmlReturn_t r = enter(dev, CALL_NAME);

        return r != NVML_SUCCESS ? r : copy_string(dev->name, name, len);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t dev, char *uuid, unsigned int len) {
        nvmlReturn_t r = enter(dev, CALL_UUID);

        return r != NVML_SUCCESS ? r : copy_string(dev->uuid, uuid, len);
}

/* _v2 pads the domain of busId to 4 digits, _v3 to 8, as the real ones do. */
static nvmlReturn_t pci_info(nvmlDevice_t dev, nvmlPciInfo_t *pci, int domain_digits) {
        nvmlReturn_t r = enter(dev, CALL_PCI);

        if (r != NVML_SUCCESS)
                return r;
        memset(pci, 0, sizeof(*pci));
        snprintf(pci->busIdLegacy, sizeof(pci->busIdLegacy), "%04X:%02X:%02X.0", dev->domain & 0xffff,
                 dev->bus, dev->dev);
        snprintf(pci->busId, sizeof(pci->busId), "%0*X:%02X:%02X.0", domain_digits, dev->domain, dev->bus,
                 dev->dev);
        pci->domain = dev->domain;
        pci->bus = dev->bus;
        pci->device = dev->dev;
        pci->pciDeviceId = dev->device << 16 | dev->vendor;
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v2(nvmlDevice_t dev, nvmlPciInfo_t *pci) {
        return pci_info(dev, pci, 4);
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t dev, nvmlUtilization_t *u) {
        nvmlReturn_t r = enter(dev, CALL_UTIL);

        if (r == NVML_SUCCESS)
                *u = (nvmlUtilization_t){ dev->n_util_seq
                                                  ? dev->util_seq[dev->util_calls++ % dev->n_util_seq]
                                                  : dev->util,
                                          dev->memutil };
        return r;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t dev, nvmlMemory_t *m) {
        nvmlReturn_t r = enter(dev, CALL_MEMORY);

        if (r == NVML_SUCCESS)
                *m = (nvmlMemory_t){ dev->vram_total, dev->vram_total - dev->vram_used - dev->vram_reserved,
                                     dev->vram_used + dev->vram_reserved };
        return r;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t dev, unsigned int *mw) {
        nvmlReturn_t r = enter(dev, CALL_POWER);

        if (r == NVML_SUCCESS)
                *mw = dev->power_mw;
        return r;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t dev, int sensor, unsigned int *c) {
        nvmlReturn_t r = enter(dev, CALL_TEMP);

        if (r == NVML_SUCCESS && sensor != 0) /* NVML_TEMPERATURE_GPU */
                return NVML_ERROR_INVALID_ARGUMENT;
        if (r == NVML_SUCCESS)
                *c = dev->temp;
        return r;
}

nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t dev, int type, unsigned int *mhz) {
        nvmlReturn_t r = enter(dev, CALL_CLOCK);

        if (r == NVML_SUCCESS && type != 1) /* NVML_CLOCK_SM: the fake knows no other clock */
                return NVML_ERROR_INVALID_ARGUMENT;
        if (r == NVML_SUCCESS)
                *mhz = dev->sm;
        return r;
}

nvmlReturn_t nvmlDeviceGetMaxClockInfo(nvmlDevice_t dev, int type, unsigned int *mhz) {
        nvmlReturn_t r = enter(dev, CALL_MAXCLOCK);

        if (r == NVML_SUCCESS && type != 1)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (r == NVML_SUCCESS)
                *mhz = dev->sm_max;
        return r;
}

/* As NVML: a buffer too small gets the count it needs and INSUFFICIENT_SIZE, and nothing in it. */
static nvmlReturn_t proc_list(nvmlDevice_t dev, enum call c, unsigned int *count,
                              nvmlProcessInfo_v1_t *infos) {
        nvmlReturn_t r = enter(dev, c);
        const struct fake_list *l;

        if (r != NVML_SUCCESS)
                return r;
        l = c == CALL_GPROCS ? &dev->gprocs : &dev->procs;
        fake_log("%s %u", call_names[c], *count);
        if (*count < l->n) {
                *count = l->n;
                return NVML_ERROR_INSUFFICIENT_SIZE;
        }
        if (l->n > 0)
                memcpy(infos, l->v, l->n * sizeof(*infos));
        *count = l->n;
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t dev, unsigned int *count,
                                                  nvmlProcessInfo_v1_t *infos) {
        return proc_list(dev, CALL_PROCS, count, infos);
}

#ifndef FAKE_NVML_OLD
const char *nvmlErrorString(nvmlReturn_t r) {
        for (size_t k = 0; k < sizeof(errors) / sizeof(errors[0]); k++)
                if (errors[k].code == (int)r)
                        return errors[k].text;
        return "Unknown Error";
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t dev, nvmlPciInfo_t *pci) {
        return pci_info(dev, pci, 8);
}

nvmlReturn_t nvmlDeviceGetEncoderUtilization(nvmlDevice_t dev, unsigned int *pct, unsigned int *period_us) {
        nvmlReturn_t r = enter(dev, CALL_ENCODER);

        if (r == NVML_SUCCESS) {
                *pct = dev->enc;
                *period_us = 167000;
        }
        return r;
}

nvmlReturn_t nvmlDeviceGetDecoderUtilization(nvmlDevice_t dev, unsigned int *pct, unsigned int *period_us) {
        nvmlReturn_t r = enter(dev, CALL_DECODER);

        if (r == NVML_SUCCESS) {
                *pct = dev->dec;
                *period_us = 167000;
        }
        return r;
}

nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t dev, unsigned long long *reasons) {
        nvmlReturn_t r = enter(dev, CALL_THROTTLE);

        if (r == NVML_SUCCESS)
                *reasons = dev->throttle;
        return r;
}

nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t dev, unsigned long long *reasons) {
        return nvmlDeviceGetCurrentClocksEventReasons(dev, reasons);
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses(nvmlDevice_t dev, unsigned int *count,
                                                   nvmlProcessInfo_v1_t *infos) {
        return proc_list(dev, CALL_GPROCS, count, infos);
}

/* Versioned calls check the version word as the real ones do (NVML_STRUCT_VERSION). */
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t dev, nvmlMemory_v2_t *m) {
        nvmlReturn_t r = enter(dev, CALL_MEMORY);

        if (r == NVML_SUCCESS && dev->err[CALL_MEMORY_V2])
                return (nvmlReturn_t)dev->err[CALL_MEMORY_V2];
        if (r == NVML_SUCCESS && m->version != (unsigned)(sizeof(*m) | 2u << 24))
                return (nvmlReturn_t)25; /* NVML_ERROR_ARGUMENT_VERSION_MISMATCH */
        if (r == NVML_SUCCESS)
                *m = (nvmlMemory_v2_t){ m->version, dev->vram_total, dev->vram_reserved,
                                        dev->vram_total - dev->vram_used - dev->vram_reserved,
                                        dev->vram_used + dev->vram_reserved };
        return r;
}

nvmlReturn_t nvmlDeviceGetTemperatureV(nvmlDevice_t dev, nvmlTemperature_v1_t *t) {
        nvmlReturn_t r = enter(dev, CALL_TEMP);

        if (r == NVML_SUCCESS && dev->err[CALL_TEMP_V])
                return (nvmlReturn_t)dev->err[CALL_TEMP_V];
        if (r == NVML_SUCCESS && t->version != (unsigned)(sizeof(*t) | 1u << 24))
                return (nvmlReturn_t)25;             /* NVML_ERROR_ARGUMENT_VERSION_MISMATCH */
        if (r == NVML_SUCCESS && t->sensorType != 0) /* NVML_TEMPERATURE_GPU */
                return NVML_ERROR_INVALID_ARGUMENT;
        if (r == NVML_SUCCESS)
                t->temperature = (int)dev->temp;
        return r;
}

/* As NVML: a buffer too small gets the count it needs and INSUFFICIENT_SIZE. */
static nvmlReturn_t session_list(const void *v, unsigned n, size_t size, unsigned int *count, void *infos) {
        if (*count < n) {
                *count = n;
                return NVML_ERROR_INSUFFICIENT_SIZE;
        }
        if (n)
                memcpy(infos, v, n * size);
        *count = n;
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEncoderSessions(nvmlDevice_t dev, unsigned int *count,
                                          nvmlEncoderSessionInfo_t *infos) {
        nvmlReturn_t r = enter(dev, CALL_ENCS);

        return r != NVML_SUCCESS ? r : session_list(dev->encs, dev->n_encs, sizeof(*infos), count, infos);
}

nvmlReturn_t nvmlDeviceGetFBCSessions(nvmlDevice_t dev, unsigned int *count, nvmlFBCSessionInfo_t *infos) {
        nvmlReturn_t r = enter(dev, CALL_FBCS);

        return r != NVML_SUCCESS ? r : session_list(dev->fbcs, dev->n_fbcs, sizeof(*infos), count, infos);
}

/* MIG: a GPU's mode and MIG devices (only the first FAKE_MIG_GPUS GPUs may have some). */
nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t dev, unsigned int *current, unsigned int *pending) {
        nvmlReturn_t r = enter(dev, CALL_MIGMODE);

        if (r == NVML_SUCCESS)
                *current = *pending = dev->migmode;
        return r;
}

nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t dev, unsigned int *count) {
        nvmlReturn_t r = enter(dev, CALL_MIGMODE);

        if (r == NVML_SUCCESS)
                *count = dev->mig_max;
        return r;
}

/* As NVML: NOT_FOUND where no MIG device is at the index. */
nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t dev, unsigned int index, nvmlDevice_t *mig) {
        nvmlReturn_t r = enter(dev, CALL_MIGMODE);
        size_t g;

        if (r == NVML_SUCCESS && dev->err[CALL_MIGHANDLE])
                return (nvmlReturn_t)dev->err[CALL_MIGHANDLE];
        if (r != NVML_SUCCESS)
                return r;
        g = (size_t)(dev - fake.gpus);
        if (!dev->migmode)
                return NVML_ERROR_NOT_SUPPORTED;
        if (index >= dev->mig_max || g >= FAKE_MIG_GPUS || index >= FAKE_MIG_MAX)
                return NVML_ERROR_INVALID_ARGUMENT;
        if (!fake.migs[g][index].described)
                return (nvmlReturn_t)6; /* NVML_ERROR_NOT_FOUND */
        *mig = &fake.migs[g][index];
        return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t dev, unsigned int *id) {
        nvmlReturn_t r = enter(dev, CALL_MIGIDS);

        if (r == NVML_SUCCESS)
                *id = dev->gi;
        return r;
}

nvmlReturn_t nvmlDeviceGetComputeInstanceId(nvmlDevice_t dev, unsigned int *id) {
        nvmlReturn_t r = enter(dev, CALL_MIGIDS);

        if (r == NVML_SUCCESS)
                *id = dev->ci;
        return r;
}

nvmlReturn_t nvmlDeviceGetVirtualizationMode(nvmlDevice_t dev, int *mode) {
        nvmlReturn_t r = enter(dev, CALL_VIRT);

        if (r == NVML_SUCCESS)
                *mode = (int)dev->virt;
        return r;
}
#endif
