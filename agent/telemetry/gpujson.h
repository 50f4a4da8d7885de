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

/* How much of a MIG device is written: what it is (the status document's facts: index, uuid,
 * instance ids, total memory, whether NVML gives utilisation), also its figures (used memory,
 * utilisation, process count), also its process list (--probe). */
enum gpujson_detail { GPUJSON_FACTS, GPUJSON_FIGURES, GPUJSON_PROCESSES };

/* How the GPU is shared, where it says: the open object of j gains "virtualization" (bare metal,
 * pass-through, a vGPU guest's...), and "mig" where the GPU says whether it runs in MIG mode:
 * "enabled", and when it does and its MIG devices could be listed, "devices", each as d says. */
void gpujson_sharing(struct jsonw *j, const struct hal_gpu_sample *g, enum gpujson_detail d);
