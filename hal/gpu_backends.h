/* gpu_backends.h: the GPU backend ops tables that gpu.c probes, one per file (gpu_<name>.c). */
#pragma once

#include "gpu.h"

/* NVIDIA through libnvidia-ml.so.1, loaded with dlopen (gpu_nvml.c). */
extern const struct hal_gpu_backend hal_gpu_backend_nvml;
/* AMD through the amdgpu driver's sysfs files (gpu_amdgpu.c). */
extern const struct hal_gpu_backend hal_gpu_backend_amdgpu;
/* ARM Mali through devfreq sysfs files (gpu_mali.c). */
extern const struct hal_gpu_backend hal_gpu_backend_mali;
