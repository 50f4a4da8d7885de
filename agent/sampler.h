/* sampler.h: one host sample per tick (CPU, memory, interfaces) with rates against the last one. */
#pragma once

#include "cpu.h"
#include "gpu.h"
#include "mem.h"
#include "net.h"

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
        unsigned n_gpus;
        const struct hal_gpu_sample *gpus; /* n_gpus entries, borrowed from the sampler */
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
        struct hal_gpus *hal_gpus; /* borrowed, may be NULL */
        unsigned n_gpus;
        struct hal_gpu_sample *gpus;         /* n_gpus, owned; rewritten each tick */
        char (*gpu_errors)[HAL_GPU_ERR_MAX]; /* last error logged per GPU, "" when healthy */
};

/* root_fd is borrowed and must outlive the sampler. Opens nothing: each file is opened by the first
 * tick that reads it. */
void sampler_init(struct sampler *s, int root_fd);
/* Closes the files; also safe on a zeroed sampler that was never initialised. */
void sampler_done(struct sampler *s);

/* Samples these GPUs on every tick from now on (borrowed; NULL for none). */
int sampler_set_gpus(struct sampler *s, struct hal_gpus *g);

/* Takes a sample; the result stays valid until the next call (borrowed). */
const struct host_sample *sampler_tick(struct sampler *s);

/* Rate for an interface in the current sample (borrowed), or NULL when it is absent. */
const struct net_rate *sampler_iface_rate(const struct sampler *s, const char *iface,
                                          const struct hal_net_iface **ret_iface);
