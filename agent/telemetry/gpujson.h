/* gpujson.h: members of a GPU in the telemetry and --probe documents beyond its flat metrics:
 * process lists, virtualization and MIG devices. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct hal_gpu_proc;
struct hal_gpu_sample;
struct jsonw;

/* The open object of j gains "processes": procs[0..n) (borrowed), pid and, when known, vram_bytes. */
void gpujson_procs(struct jsonw *j, const struct hal_gpu_proc *procs, size_t n);

/* How the GPU is shared, where it says: the open object of j gains "virtualization" (bare metal,
 * pass-through, a vGPU guest's...), and "mig" where the GPU says whether it runs in MIG mode:
 * "enabled", and when it does and its MIG devices could be listed, "devices" with each one's own
 * figures (their "processes" too when with_procs). */
void gpujson_sharing(struct jsonw *j, const struct hal_gpu_sample *g, bool with_procs);
