/* sampler.h: one host sample per tick (CPU, memory, interfaces) with rates against the last one. */
#pragma once

#include "cpu.h"
#include "gpu.h"
#include "gpu_worker.h"
#include "mem.h"
#include "net.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#define SAMPLER_ERR_MAX 256

struct net_rate {
        bool valid; /* false on the first sample and after a counter went backwards */
        double rx_mbps;
        double tx_mbps;
};

/* What a tick measured. A metric whose read failed has its has_* false and is left out of
 * telemetry, never reported as 0. */
struct host_sample {
        uint64_t mono_usec;
        uint64_t real_usec;
        bool has_cpu, has_cpu_util;
        struct hal_cpu_sample cpu;
        double cpu_util_pct;
        bool has_mem;
        struct hal_mem_sample mem;
        bool has_net;
        struct hal_net_sample net;  /* owned by the sampler */
        struct net_rate *net_rates; /* net.n entries, owned by the sampler */
        /* The last complete GPU sample, taken on the GPU worker: 0 GPUs until one has ended. */
        unsigned n_gpus;
        const struct hal_gpu_sample *gpus; /* n_gpus entries, borrowed from the sampler */
        uint64_t gpu_age_usec;             /* how old it is (since it ended) */
        bool gpus_stale;                   /* older than two deadlines: the worker is stuck */
};

/* One metric's read state, to log a failure once and back off while it persists. */
struct metric_health {
        const char *name;
        char error[SAMPLER_ERR_MAX]; /* "" while healthy */
        unsigned failures;
        uint64_t skip_until_tick;
};

struct sampler {
        int root_fd; /* borrowed */
        uint64_t tick;
        /* /proc/stat, meminfo and net/dev, kept open between ticks (owned; NULL until the first
         * tick that reads them) */
        struct hal_cpu_reader *cpu_reader;
        struct hal_mem_reader *mem_reader;
        struct hal_net_reader *net_reader;
        struct host_sample cur, prev;
        struct metric_health cpu, mem, net;
        struct hal_gpu_worker *gpu_worker; /* owned, NULL for none */
        bool gpus_opened;                  /* the worker's open has ended and was taken */
        bool gpus_sampled;                 /* gpus holds a complete sample */
        uint64_t gpu_deadline_usec;        /* a call running longer is stuck */
        uint64_t gpu_sample_usec;          /* when the sample in gpus ended */
        unsigned n_gpus;
        struct hal_gpu_sample *gpus;         /* n_gpus, owned; rewritten by each complete sample */
        char (*gpu_errors)[HAL_GPU_ERR_MAX]; /* last error logged per GPU, "" when healthy */
        char gpu_stuck[160];                 /* the call the worker is stuck in, "" when it is not */
        uint64_t gpu_stuck_since;
        void (*event)(const char *type, cJSON *fields, void *ud); /* may be NULL */
        void *event_ud;
};

/* root_fd is borrowed and must outlive the sampler. Opens nothing: each file is opened by the first
 * tick that reads it. */
void sampler_init(struct sampler *s, int root_fd);
/* Closes the files; also safe on a zeroed sampler that was never initialised. */
void sampler_done(struct sampler *s);

/* Opens the GPU backends on a worker thread (replacing any the sampler had: a worker stuck in a call
 * is abandoned, not waited for) and waits up to timeout_usec for the open and a first sample. From
 * then on each tick takes the sample the worker ended since the last one and asks for the next, never
 * waiting; a call running past deadline_usec is stuck: logged, raised through `event` (may be NULL:
 * "gpu_driver_stuck", then "gpu_driver_recovered"; fields taken by it) and named in
 * sampler_gpu_status_json. Backend warnings go to warn (may be NULL) on this thread. Returns the
 * number of GPUs, -ETIMEDOUT when the open has not ended in time (the GPUs join when it does), or
 * -errno. */
int sampler_open_gpus(struct sampler *s, const struct hal_gpu_options *o, uint64_t deadline_usec,
                      uint64_t timeout_usec, void (*warn)(const char *msg, void *ud), void *ud);
void sampler_set_event(struct sampler *s, void (*event)(const char *type, cJSON *fields, void *ud),
                       void *ud);

/* {"count","age_ms","stale","stuck","stuck_ms"}: the GPU worker's state for status (caller frees). */
cJSON *sampler_gpu_status_json(const struct sampler *s);

/* Takes a sample; the result stays valid until the next call (borrowed). */
const struct host_sample *sampler_tick(struct sampler *s);

/* Rate for an interface in the current sample (borrowed), or NULL when it is absent. */
const struct net_rate *sampler_iface_rate(const struct sampler *s, const char *iface,
                                          const struct hal_net_iface **ret_iface);
