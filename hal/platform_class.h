/* platform_class.h: machine architecture and platform class (x86-gpu, x86-cpu, arm). */
#pragma once

#include <stddef.h>

enum hal_class {
        HAL_CLASS_X86_GPU,
        HAL_CLASS_X86_CPU,
        HAL_CLASS_ARM,
        HAL_CLASS_UNKNOWN, /* an architecture the product catalog has no class for */
};

struct hal_platform {
        char arch[32]; /* kernel's name: x86_64, aarch64, ... */
        enum hal_class cls;
        unsigned gpu_devices; /* display-class PCI devices from NVIDIA or AMD under class/drm */
};

/* Arch from <root>/proc/sys/kernel/arch (uname() when the file is absent), GPUs from
 * <root>/sys/class/drm/card<N>/device/{vendor,class}. */
int hal_platform_detect(int root_fd, struct hal_platform *ret, char *err, size_t errlen);

const char *hal_class_to_string(enum hal_class c);

/* A host whose GPUs only a userspace library sees (NVIDIA without nvidia-drm loaded has no
 * class/drm card) is still a GPU host: upgrades x86-cpu to x86-gpu when n > 0. */
void hal_platform_note_gpus(struct hal_platform *p, unsigned n);
