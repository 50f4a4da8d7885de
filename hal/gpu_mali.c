/* gpu_mali.c: ARM Mali GPUs through the kbase driver's sysfs files and/or the GPU's devfreq device. */
#include "gpu.h"
#include "gpu_backends.h"
#include "gpu_sysfs.h"

#include "cleanup.h"
#include "fileio.h"
#include "strutil.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An SoC has one GPU. The vendor kbase driver describes it under misc/mali0; the kernel's devfreq
 * class (kbase, panfrost and panthor all register one) gives its clock and, on vendor kernels with
 * a "load" attribute, its busy share. Either is enough; both are combined when present. Metrics
 * follow gpu_sysfs.h's per-metric policy. The GPU uses system RAM: no VRAM figures. */

#define KBASE_PATH "sys/class/misc/mali0/device"
#define DEVFREQ_PATH "sys/class/devfreq"
/* devfreq devices on an SoC: GPU, NPU, memory controller, a few buses. */
#define DEVFREQ_MAX 64

struct mali_ctx {
        int kbase_fd;   /* O_PATH, or -1 without kbase */
        int devfreq_fd; /* O_PATH, or -1 without a GPU devfreq device */
        char devfreq_label[NAME_MAX + 32];
        char name[96];
};

static void mali_close(void *userdata) {
        struct mali_ctx *c = userdata;

        if (!c)
                return;
        if (c->kbase_fd >= 0)
                close(c->kbase_fd);
        if (c->devfreq_fd >= 0)
                close(c->devfreq_fd);
        free(c);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct mali_ctx *, mali_close);

/* Case-insensitive search in [s, s+len), which may hold NULs (of_node/compatible is a list). */
static bool mentions(const char *s, size_t len, const char *word) {
        size_t wl = strlen(word);

        for (size_t i = 0; i + wl <= len; i++) {
                size_t j = 0;

                while (j < wl && tolower((unsigned char)s[i + j]) == word[j])
                        j++;
                if (j == wl)
                        return true;
        }
        return false;
}

static bool mentions_gpu(const char *s, size_t len) {
        return mentions(s, len, "mali") || mentions(s, len, "gpu");
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Opens the first devfreq device (by name) that is a GPU: its name says so ("fb000000.gpu"),
 * or its device tree node's compatible does ("arm,mali-bifrost"). -ENOENT when there is none. */
static int open_devfreq(int root_fd, struct mali_ctx *c, char *err, size_t errlen) {
        _cleanup_closedir_ DIR *d = NULL;
        char *names[DEVFREQ_MAX];
        size_t n = 0;
        int r = -ENOENT;

        r = plat_opendir_at(root_fd, DEVFREQ_PATH, &d);
        if (r < 0) {
                if (r != -ENOENT)
                        plat_errf(err, errlen, "/" DEVFREQ_PATH ": %s", strerror(-r));
                return r;
        }
        for (struct dirent *de; n < DEVFREQ_MAX && (de = readdir(d));) {
                if (de->d_name[0] == '.')
                        continue;
                names[n] = strdup(de->d_name);
                if (!names[n]) {
                        r = -ENOMEM;
                        goto out;
                }
                n++;
        }
        qsort(names, n, sizeof(names[0]), cmp_str);

        r = -ENOENT;
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *compat = NULL;
                _cleanup_close_ int dev = -1;
                char path[NAME_MAX + 32];
                size_t len;

                snprintf(path, sizeof(path), "%s/device/of_node/compatible", names[i]);
                if (!mentions_gpu(names[i], strlen(names[i])) &&
                    !(plat_read_file_at(dirfd(d), path, HAL_GPU_SYSFS_MAX, &compat, &len) >= 0 &&
                      mentions_gpu(compat, len)))
                        continue;
                dev = openat(dirfd(d), names[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (dev < 0)
                        continue; /* a stray file, or it went away */
                c->devfreq_fd = TAKE_FD(dev);
                snprintf(c->devfreq_label, sizeof(c->devfreq_label), "/" DEVFREQ_PATH "/%s", names[i]);
                /* Without kbase's gpuinfo, the device tree's first compatible names the GPU. */
                if (compat)
                        hal_gpu_sysfs_copy_text(compat, strnlen(compat, len), c->name, sizeof(c->name));
                if (c->name[0] == '\0')
                        plat_strlcpy(c->name, names[i], sizeof(c->name));
                r = 0;
                break;
        }
out:
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        return r;
}

static int mali_open(int root_fd, const struct hal_gpu_options *o, void **ret_ctx, unsigned *ret_count,
                     char *err, size_t errlen) {
        _cleanup_(mali_closep) struct mali_ctx *c = NULL;
        int r;

        (void)o;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->kbase_fd = c->devfreq_fd = -1;

        c->kbase_fd = openat(root_fd, KBASE_PATH, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (c->kbase_fd < 0 && errno != ENOENT) {
                r = -errno;
                plat_errf(err, errlen, "/" KBASE_PATH ": %s", strerror(-r));
                return r;
        }
        r = open_devfreq(root_fd, c, err, errlen);
        if (r < 0 && r != -ENOENT)
                return r;
        if (c->kbase_fd < 0 && c->devfreq_fd < 0)
                return -ENODEV;

        if (c->kbase_fd >= 0) {
                _cleanup_free_ char *buf = NULL;
                size_t len;

                /* "Mali-G610 MP4 4 cores r0p0 0xA867": model, cores, revision, product id. */
                if (plat_read_file_at(c->kbase_fd, "gpuinfo", HAL_GPU_SYSFS_MAX, &buf, &len) >= 0) {
                        char name[sizeof(c->name)];

                        hal_gpu_sysfs_copy_text(buf, len, name, sizeof(name));
                        if (name[0] != '\0')
                                memcpy(c->name, name, sizeof(name));
                }
                if (c->name[0] == '\0')
                        plat_strlcpy(c->name, "Mali GPU", sizeof(c->name));
        }
        *ret_count = 1;
        *ret_ctx = TAKE_PTR(c);
        return 0;
}

/* devfreq counts in Hz; telemetry in MHz, rounded. */
static unsigned hz_to_mhz(uint64_t hz) {
        uint64_t mhz = hz / 1000000 + (hz % 1000000 >= 500000);

        return mhz > UINT_MAX ? UINT_MAX : (unsigned)mhz;
}

static void sample_devfreq(const struct mali_ctx *c, struct hal_gpu_sample *s) {
        _cleanup_free_ char *buf = NULL;
        char msg[HAL_GPU_ERR_MAX];
        unsigned pct;
        uint64_t hz;
        size_t len;

        if (hal_gpu_sysfs_u64(c->devfreq_fd, c->devfreq_label, "cur_freq", s, &hz)) {
                s->clock_mhz = hz_to_mhz(hz);
                s->present |= HAL_GPU_CLOCK;
        }
        /* The policy ceiling (user or thermal limits apply): what the GPU may run at now. */
        if (hal_gpu_sysfs_u64(c->devfreq_fd, c->devfreq_label, "max_freq", s, &hz)) {
                s->clock_max_mhz = hz_to_mhz(hz);
                s->present |= HAL_GPU_CLOCK_MAX;
        }
        if (s->present & HAL_GPU_UTIL)
                return; /* kbase's own figure is finer than the governor's last window */
        if (!hal_gpu_sysfs_read(c->devfreq_fd, c->devfreq_label, "load", s, &buf, &len))
                return;
        if (hal_gpu_parse_devfreq_load(buf, len, &pct, &hz, msg, sizeof(msg)) < 0) {
                hal_gpu_sysfs_note(s, -EPROTO, "%s/load: %s", c->devfreq_label, msg);
                return;
        }
        s->util_pct = pct;
        s->present |= HAL_GPU_UTIL;
}

static int mali_sample(void *userdata, unsigned i, struct hal_gpu_sample *ret) {
        const struct mali_ctx *c = userdata;
        struct hal_gpu_sample s = { .backend = "mali", .shared_memory = true };

        if (i != 0)
                return -EINVAL;
        plat_strlcpy(s.name, c->name, sizeof(s.name));
        if (c->kbase_fd >= 0 &&
            (hal_gpu_sysfs_pct(c->kbase_fd, "/" KBASE_PATH, "utilization", &s, &s.util_pct) ||
             hal_gpu_sysfs_pct(c->kbase_fd, "/" KBASE_PATH, "gpu_utilization", &s, &s.util_pct)))
                s.present |= HAL_GPU_UTIL;
        if (c->devfreq_fd >= 0)
                sample_devfreq(c, &s);
        *ret = s;
        return 0;
}

const struct hal_gpu_backend hal_gpu_backend_mali = {
        .name = "mali",
        .open = mali_open,
        .sample = mali_sample,
        .close = mali_close,
};
