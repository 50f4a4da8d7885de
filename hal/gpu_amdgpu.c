/* gpu_amdgpu.c: AMD GPUs through the amdgpu driver's sysfs files (no library needed). */
#include "gpu.h"
#include "gpu_backends.h"
#include "gpu_sysfs.h"

#include "cleanup.h"
#include "fileio.h"
#include "strutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Metrics follow gpu_sysfs.h's per-metric policy: a missing file leaves its metric absent; a
 * malformed or unreadable one leaves it absent too and sets the sample's error naming the file,
 * while the GPU's other metrics are still reported. */

#define DRM_PATH "sys/class/drm" /* relative: openat() must stay under root_fd */
#define PCI_VENDOR_AMD 0x1002
#define PCI_BASE_CLASS_DISPLAY 0x03
/* DRM primary nodes are card0..card255; more directory entries than this are not looked at. */
#define CARDS_MAX 256

struct amd_gpu {
        int dev_fd;     /* O_PATH, card<N>/device */
        char label[48]; /* "/sys/class/drm/card<N>/device", for messages */
        char name[96];
        char uuid[80];
        char pci_bus_id[32];
        uint16_t pci_device;
};

struct amd_ctx {
        unsigned n;
        struct amd_gpu gpus[HAL_GPU_MAX];
};

static void amd_close(void *userdata) {
        struct amd_ctx *c = userdata;

        if (!c)
                return;
        for (unsigned i = 0; i < c->n; i++)
                if (c->gpus[i].dev_fd >= 0)
                        close(c->gpus[i].dev_fd);
        free(c);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct amd_ctx *, amd_close);

/* "card" and digits only: card0-DP-1 and friends are connectors of a card, renderD128 a second node
 * of the same device. */
static bool parse_card_name(const char *name, unsigned *ret) {
        uint64_t v;

        if (strncmp(name, "card", 4) != 0 || plat_parse_u64(name + 4, strlen(name + 4), &v) < 0 ||
            v > UINT_MAX)
                return false;
        *ret = (unsigned)v;
        return true;
}

static int cmp_unsigned(const void *a, const void *b) {
        unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

        return x < y ? -1 : x > y;
}

/* Lists card<N> numbers in ascending order, so that GPU numbering is stable across runs. */
static int list_cards(DIR *d, unsigned cards[static CARDS_MAX], unsigned *ret_n, char *err, size_t errlen) {
        unsigned n = 0;

        for (;;) {
                struct dirent *de;
                int r;

                errno = 0;
                de = readdir(d);
                if (!de) {
                        if (errno != 0) {
                                r = -errno;
                                plat_errf(err, errlen, "/" DRM_PATH ": %s", strerror(-r));
                                return r;
                        }
                        break;
                }
                if (n < CARDS_MAX && parse_card_name(de->d_name, &cards[n]))
                        n++;
        }
        qsort(cards, n, sizeof(cards[0]), cmp_unsigned);
        *ret_n = n;
        return 0;
}

#define SLOT_KEY "PCI_SLOT_NAME="

/* The PCI address: the basename of the card's device link ("../../../0000:03:00.0"), else
 * PCI_SLOT_NAME from the device's uevent. "" when neither says. */
static void read_bus_id(int drm_fd, const char *card, int dev_fd, char ret[static 32]) {
        _cleanup_free_ char *buf = NULL;
        char link[PATH_MAX], path[NAME_MAX + 16];
        const char *base;
        size_t len;
        ssize_t n;

        ret[0] = '\0';
        snprintf(path, sizeof(path), "%s/device", card);
        n = readlinkat(drm_fd, path, link, sizeof(link) - 1);
        if (n > 0) {
                link[n] = '\0';
                base = strrchr(link, '/');
                base = base ? base + 1 : link;
                hal_gpu_sysfs_copy_text(base, strlen(base), ret, 32);
                return;
        }
        if (plat_read_file_at(dev_fd, "uevent", HAL_GPU_SYSFS_MAX, &buf, &len) < 0)
                return;
        for (const char *p = buf; p < buf + len;) {
                const char *nl = memchr(p, '\n', (size_t)(buf + len - p)), *eol = nl ? nl : buf + len;

                if ((size_t)(eol - p) > strlen(SLOT_KEY) && strncmp(p, SLOT_KEY, strlen(SLOT_KEY)) == 0) {
                        hal_gpu_sysfs_copy_text(p + strlen(SLOT_KEY), (size_t)(eol - p) - strlen(SLOT_KEY),
                                                ret, 32);
                        return;
                }
                p = eol + (nl != NULL);
        }
}

/* Identity that does not change while the driver is bound: read once. */
static void read_identity(struct amd_gpu *g) {
        _cleanup_free_ char *buf = NULL;
        size_t len;

        g->name[0] = '\0';
        if (plat_read_file_at(g->dev_fd, "product_name", HAL_GPU_SYSFS_MAX, &buf, &len) >= 0)
                hal_gpu_sysfs_copy_text(buf, len, g->name, sizeof(g->name));
        if (g->name[0] == '\0') /* absent, or empty where the board has no FRU EEPROM */
                snprintf(g->name, sizeof(g->name), "AMD GPU 0x%04x", g->pci_device);
        free(buf);
        buf = NULL;
        /* Vega20 and later expose a 64-bit chip serial: the closest thing to NVIDIA's UUID. */
        g->uuid[0] = '\0';
        if (plat_read_file_at(g->dev_fd, "unique_id", HAL_GPU_SYSFS_MAX, &buf, &len) >= 0)
                hal_gpu_sysfs_copy_text(buf, len, g->uuid, sizeof(g->uuid));
}

/* Fills g and returns 1 when card<N> is an AMD display-class PCI device; 0 when it is something
 * else (not PCI, another vendor, another class). */
static int probe_card(int drm_fd, const char *card, struct amd_gpu *g, char *err, size_t errlen) {
        _cleanup_close_ int fd = -1;
        uint32_t vendor, class, device;
        char dev[32], label[sizeof(g->label)];
        int r;

        snprintf(dev, sizeof(dev), "%s/device", card);
        snprintf(label, sizeof(label), "/" DRM_PATH "/%s", dev);
        fd = openat(drm_fd, dev, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                if (r == -ENOENT || r == -ENOTDIR)
                        return 0; /* virtual DRM device (vkms, simpledrm) */
                plat_errf(err, errlen, "%s: %s", label, strerror(-r));
                return r;
        }
        r = hal_gpu_sysfs_pci_id(fd, label, "vendor", &vendor, err, errlen);
        if (r == -ENOENT)
                return 0; /* platform device: no PCI ids */
        if (r < 0)
                return r;
        if (vendor != PCI_VENDOR_AMD)
                return 0; /* NVIDIA (nvml's), Intel iGPU, BMC VGA */
        r = hal_gpu_sysfs_pci_id(fd, label, "class", &class, err, errlen);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        if (class >> 16 != PCI_BASE_CLASS_DISPLAY)
                return 0;
        r = hal_gpu_sysfs_pci_id(fd, label, "device", &device, err, errlen);
        if (r == -ENOENT)
                plat_errf(err, errlen, "%s/device: %s", label, strerror(-r));
        if (r < 0)
                return r;
        if (device > UINT16_MAX) {
                plat_errf(err, errlen, "%s/device: 0x%x is not a 16-bit PCI device id", label, device);
                return -EPROTO;
        }
        g->dev_fd = TAKE_FD(fd);
        plat_strlcpy(g->label, label, sizeof(g->label));
        g->pci_device = (uint16_t)device;
        return 1;
}

static int amd_open(int root_fd, const struct hal_gpu_options *o, void **ret_ctx, unsigned *ret_count,
                    char *err, size_t errlen) {
        _cleanup_(amd_closep) struct amd_ctx *c = NULL;
        _cleanup_closedir_ DIR *d = NULL;
        unsigned cards[CARDS_MAX], ncards = 0;
        int r;

        (void)o;
        r = plat_opendir_at(root_fd, DRM_PATH, &d);
        if (r == -ENOENT)
                return -ENODEV; /* no DRM driver loaded: a headless host */
        if (r < 0) {
                plat_errf(err, errlen, "/" DRM_PATH ": %s", strerror(-r));
                return r;
        }
        r = list_cards(d, cards, &ncards, err, errlen);
        if (r < 0)
                return r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        for (unsigned i = 0; i < ncards && c->n < HAL_GPU_MAX; i++) {
                struct amd_gpu *g = &c->gpus[c->n];
                char card[16];

                snprintf(card, sizeof(card), "card%u", cards[i]);
                r = probe_card(dirfd(d), card, g, err, errlen);
                if (r < 0)
                        return r;
                if (r == 0)
                        continue;
                c->n++; /* owns g->dev_fd from here on */
                read_identity(g);
                read_bus_id(dirfd(d), card, g->dev_fd, g->pci_bus_id);
        }
        if (c->n == 0)
                return -ENODEV;
        *ret_count = c->n;
        *ret_ctx = TAKE_PTR(c);
        return 0;
}

/* The first hwmon<N> directory of the device, or -ENOENT when the driver registered none. */
static int open_hwmon(const struct amd_gpu *g, struct hal_gpu_sample *s, char ret_label[static 96]) {
        _cleanup_closedir_ DIR *d = NULL;
        _cleanup_close_ int fd = -1;
        uint64_t best = UINT64_MAX;
        char name[32];
        int r;

        r = plat_opendir_at(g->dev_fd, "hwmon", &d);
        if (r < 0) {
                if (r != -ENOENT)
                        hal_gpu_sysfs_note(s, r, "%s/hwmon: %s", g->label, strerror(-r));
                return r;
        }
        for (struct dirent *de; (de = readdir(d));) {
                uint64_t v;

                if (strncmp(de->d_name, "hwmon", 5) == 0 &&
                    plat_parse_u64(de->d_name + 5, strlen(de->d_name + 5), &v) == 0 && v < best)
                        best = v;
        }
        if (best == UINT64_MAX)
                return -ENOENT;
        snprintf(name, sizeof(name), "hwmon%" PRIu64, best);
        snprintf(ret_label, 96, "%s/hwmon/%s", g->label, name);
        fd = openat(dirfd(d), name, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                hal_gpu_sysfs_note(s, r, "%s: %s", ret_label, strerror(-r));
                return r;
        }
        return TAKE_FD(fd);
}

static void sample_hwmon(const struct amd_gpu *g, struct hal_gpu_sample *s) {
        _cleanup_close_ int fd = -1;
        char label[96];
        uint64_t uw;
        int64_t mc;

        fd = open_hwmon(g, s, label);
        if (fd < 0)
                return;
        /* Average power over the SMU's window; kernels from 6.x on some chips offer only the
         * instantaneous power1_input. */
        if (hal_gpu_sysfs_u64(fd, label, "power1_average", s, &uw) ||
            hal_gpu_sysfs_u64(fd, label, "power1_input", s, &uw)) {
                s->power_w = (double)uw / 1e6;
                s->present |= HAL_GPU_POWER;
        }
        /* temp1 is the edge sensor, the one every amdgpu generation has. */
        if (hal_gpu_sysfs_s64(fd, label, "temp1_input", s, &mc)) {
                s->temp_c = (double)mc / 1000.0;
                s->present |= HAL_GPU_TEMP;
        }
}

static void sample_clock(const struct amd_gpu *g, struct hal_gpu_sample *s) {
        _cleanup_free_ char *buf = NULL;
        char msg[HAL_GPU_ERR_MAX];
        unsigned cur, max;
        size_t len;
        int r;

        if (!hal_gpu_sysfs_read(g->dev_fd, g->label, "pp_dpm_sclk", s, &buf, &len))
                return;
        r = hal_gpu_parse_dpm_sclk(buf, len, &cur, &max, msg, sizeof(msg));
        if (r < 0) {
                hal_gpu_sysfs_note(s, r, "%s/pp_dpm_sclk: %s", g->label, msg);
                return;
        }
        if (r & HAL_GPU_CLOCK)
                s->clock_mhz = cur;
        s->clock_max_mhz = max;
        s->present |= (uint32_t)r;
}

static int amd_sample(void *userdata, unsigned i, struct hal_gpu_sample *ret) {
        struct amd_ctx *c = userdata;
        struct hal_gpu_sample s = { .backend = "amdgpu", .pci_vendor = PCI_VENDOR_AMD };
        const struct amd_gpu *g;
        uint64_t total, used;
        struct stat st;

        if (i >= c->n)
                return -EINVAL;
        g = &c->gpus[i];
        plat_strlcpy(s.name, g->name, sizeof(s.name));
        plat_strlcpy(s.uuid, g->uuid, sizeof(s.uuid));
        plat_strlcpy(s.pci_bus_id, g->pci_bus_id, sizeof(s.pci_bus_id));
        s.pci_device = g->pci_device;

        /* A device that went away (hot unplug, driver unbound) keeps its directory fd but loses
         * its files: say so once rather than report every metric as absent. */
        if (fstatat(g->dev_fd, "vendor", &st, 0) < 0) {
                int r = -errno;

                hal_gpu_sysfs_note(&s, r == -ENOENT ? -ENODEV : r, "%s: %s", g->label,
                                   r == -ENOENT ? "device is gone" : strerror(-r));
                *ret = s;
                return 0;
        }

        if (hal_gpu_sysfs_pct(g->dev_fd, g->label, "gpu_busy_percent", &s, &s.util_pct))
                s.present |= HAL_GPU_UTIL;
        if (hal_gpu_sysfs_pct(g->dev_fd, g->label, "mem_busy_percent", &s, &s.mem_util_pct))
                s.present |= HAL_GPU_MEM_UTIL;
        if (hal_gpu_sysfs_u64(g->dev_fd, g->label, "mem_info_vram_total", &s, &total) &&
            hal_gpu_sysfs_u64(g->dev_fd, g->label, "mem_info_vram_used", &s, &used)) {
                s.vram_total_bytes = total;
                s.vram_used_bytes = used;
                s.present |= HAL_GPU_VRAM;
        }
        sample_hwmon(g, &s);
        sample_clock(g, &s);
        *ret = s;
        return 0;
}

const struct hal_gpu_backend hal_gpu_backend_amdgpu = {
        .name = "amdgpu",
        .open = amd_open,
        .sample = amd_sample,
        .close = amd_close,
};
