/* gpu_worker.h: the host's GPUs opened and sampled on a worker thread, so that a driver stuck in a
 * call (NVML waiting on an ioctl for a GPU that fell off the bus) holds the worker, never the caller.
 * One request at a time; its end is signalled on an eventfd the caller may watch, or polled. */
#pragma once

#include "gpu.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hal_gpu_worker;

/* Starts the worker, which opens the GPU backends (hal_gpus_open) at once. o is copied; root_fd is
 * borrowed and must outlive the worker (or its abandoned thread: see hal_gpu_worker_free). Returns 0
 * or -errno (-ENOMEM, or what pthread_create or eventfd said). */
int hal_gpu_worker_new(int root_fd, const struct hal_gpu_options *o, struct hal_gpu_worker **ret);

/* Stops the worker and frees it and its GPUs. A worker still in a call is not waited for: it is
 * abandoned, and frees itself when (if ever) the call returns. NULL is a no-op. */
void hal_gpu_worker_free(struct hal_gpu_worker *w);

/* Readable (EPOLLIN) when the open or a sample has ended. Borrowed: valid until hal_gpu_worker_free. */
int hal_gpu_worker_fd(const struct hal_gpu_worker *w);

/* Waits up to timeout_usec (0: not at all) for the open to end. Returns 1 once it has, with
 * *ret_count GPUs; the backends' warnings are handed to warn (may be NULL) on the caller's thread,
 * the first time only. Returns 0 while the open is still under way (nothing written). */
int hal_gpu_worker_opened(struct hal_gpu_worker *w, uint64_t timeout_usec, unsigned *ret_count,
                          void (*warn)(const char *msg, void *ud), void *ud);

/* Starts a sample of every GPU. 0, or -EBUSY while the open or a sample is under way. */
int hal_gpu_worker_start(struct hal_gpu_worker *w);

/* Waits up to timeout_usec (0: not at all) for the sample started last to end. Returns 1 with the
 * samples in ret[0..count) (count as hal_gpu_worker_opened said) and *ret_ended_usec (monotonic,
 * plat_now_mono_usec) when the sample ended; 0 when none has ended (nothing written). */
int hal_gpu_worker_collect(struct hal_gpu_worker *w, uint64_t timeout_usec, struct hal_gpu_sample *ret,
                           uint64_t *ret_ended_usec);

/* While the worker is in a call: true, what it is doing ("opening the GPU backends", "sampling GPU 1
 * (NVIDIA L4)") into what, and since when (monotonic usec) into *ret_since_usec. False when idle. */
bool hal_gpu_worker_busy(struct hal_gpu_worker *w, char *what, size_t len, uint64_t *ret_since_usec);
