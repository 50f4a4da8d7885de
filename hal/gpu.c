/* gpu.c: the host's GPUs across backends (NVML, amdgpu, Mali), probed in order, numbered in order. */
#include "gpu.h"
#include "gpu_backends.h"

#include "cleanup.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Probe order: NVML first, as it sees NVIDIA GPUs whatever their PCI class; amdgpu takes only
 * AMD display-class cards, so no GPU is counted twice; Mali (SoC, not PCI) last. */
static const struct hal_gpu_backend *const backends[] = {
        &hal_gpu_backend_nvml,
        &hal_gpu_backend_amdgpu,
        &hal_gpu_backend_mali,
};

#define BACKEND_ERR_MAX 256

struct gpu_backend_open {
        const struct hal_gpu_backend *backend;
        void *ctx;
        unsigned first; /* host-wide number of this backend's GPU 0 */
        unsigned count;
};

struct hal_gpus {
        size_t n_open;
        struct gpu_backend_open open[ELEMENTSOF(backends)];
        unsigned count;
};

static void warnf(void (*warn)(const char *msg, void *ud), void *ud, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void warnf(void (*warn)(const char *msg, void *ud), void *ud, const char *fmt, ...) {
        char msg[BACKEND_ERR_MAX + 128];
        va_list ap;

        if (!warn)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        warn(msg, ud);
}

void hal_gpus_free(struct hal_gpus *g) {
        if (!g)
                return;
        for (size_t k = 0; k < g->n_open; k++)
                g->open[k].backend->close(g->open[k].ctx);
        free(g);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct hal_gpus *, hal_gpus_free);

int hal_gpus_open(int root_fd, const struct hal_gpu_options *o, struct hal_gpus **ret,
                  void (*warn)(const char *msg, void *ud), void *ud) {
        _cleanup_(hal_gpus_freep) struct hal_gpus *g = calloc(1, sizeof(*g));

        if (!g)
                return -ENOMEM;

        for (size_t k = 0; k < ELEMENTSOF(backends); k++) {
                const struct hal_gpu_backend *b = backends[k];
                char err[BACKEND_ERR_MAX] = "";
                unsigned count = 0;
                void *ctx = NULL;
                int r;

                r = b->open(root_fd, o, &ctx, &count, err, sizeof(err));
                if (r == -ENODEV)
                        continue; /* not this host's kind of GPU */
                if (r < 0) {
                        warnf(warn, ud, "GPU backend %s: %s", b->name, err[0] ? err : strerror(-r));
                        continue;
                }
                if (count > HAL_GPU_MAX - g->count) {
                        warnf(warn, ud,
                              "GPU backend %s: %u GPUs, more than the %d a host may have; GPUs past %d "
                              "are not sampled",
                              b->name, g->count + count, HAL_GPU_MAX, HAL_GPU_MAX);
                        count = HAL_GPU_MAX - g->count;
                }
                if (count == 0) {
                        b->close(ctx);
                        continue;
                }
                g->open[g->n_open++] = (struct gpu_backend_open){
                        .backend = b,
                        .ctx = ctx,
                        .first = g->count,
                        .count = count,
                };
                g->count += count;
        }

        *ret = TAKE_PTR(g);
        return 0;
}

unsigned hal_gpus_count(const struct hal_gpus *g) {
        return g ? g->count : 0;
}

void hal_gpu_samples_copy(struct hal_gpu_sample *dst, const struct hal_gpu_sample *src, size_t n) {
        for (size_t k = 0; k < n; k++) {
                const struct hal_gpu_sample *s = &src[k];
                struct hal_gpu_sample *d = &dst[k];

                memcpy(d, s, offsetof(struct hal_gpu_sample, procs));
                memcpy(d->procs, s->procs, s->n_procs * sizeof(s->procs[0]));
                memcpy(d->enc, s->enc, s->n_enc * sizeof(s->enc[0]));
                memcpy(d->fbc, s->fbc, s->n_fbc * sizeof(s->fbc[0]));
                memcpy(d->mig, s->mig, s->n_mig * sizeof(s->mig[0]));
        }
}

int hal_gpus_sample(struct hal_gpus *g, unsigned i, struct hal_gpu_sample *ret) {
        if (!g || i >= g->count)
                return -EINVAL;
        hal_gpu_sample_clear(ret);
        for (size_t k = 0; k < g->n_open; k++) {
                const struct gpu_backend_open *b = &g->open[k];
                int r;

                if (i - b->first >= b->count)
                        continue;
                r = b->backend->sample(b->ctx, i - b->first, ret);
                if (r < 0) {
                        hal_gpu_sample_clear(ret); /* nothing of a failed backend's half-read sample */
                        return r;
                }
                ret->backend = b->backend->name;
                return 0;
        }
        return -EINVAL; /* unreachable: the backends cover 0..count-1 */
}
