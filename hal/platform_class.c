/* platform_class.c: machine architecture and platform class (x86-gpu, x86-cpu, arm). */
#include "platform_class.h"

#include "cleanup.h"
#include "fileio.h"
#include "strutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#define ARCH_PATH "/proc/sys/kernel/arch"
#define DRM_PATH "sys/class/drm" /* relative: openat() must stay under root_fd */
#define ARCH_MAX sizeof(((struct hal_platform *)NULL)->arch)
#define SMALL_FILE_MAX 4096 /* one sysfs page; these files hold a word */

#define PCI_VENDOR_NVIDIA 0x10de
#define PCI_VENDOR_AMD 0x1002
#define PCI_BASE_CLASS_DISPLAY 0x03

/* The arch name lands in telemetry and log lines: one short printable word. */
static int copy_arch(const char *s, size_t len, const char *source, char ret[static ARCH_MAX], char *err,
                     size_t errlen) {
        char q[PLAT_QUOTE_MAX];

        if (len == 0) {
                plat_errf(err, errlen, "%s: architecture name is empty", source);
                return -EPROTO;
        }
        if (len >= ARCH_MAX) {
                plat_errf(err, errlen, "%s: architecture name '%s' is %zu bytes, at most %zu", source,
                          plat_quote(s, len, q), len, ARCH_MAX - 1);
                return -EPROTO;
        }
        for (size_t i = 0; i < len; i++)
                if (s[i] <= 0x20 || s[i] >= 0x7f) {
                        plat_errf(err, errlen, "%s: architecture name '%s' holds byte 0x%02x", source,
                                  plat_quote(s, len, q), (unsigned char)s[i]);
                        return -EPROTO;
                }
        memcpy(ret, s, len);
        ret[len] = '\0';
        return 0;
}

static int read_arch(int root_fd, char ret[static ARCH_MAX], char *err, size_t errlen) {
        _cleanup_free_ char *buf = NULL;
        struct utsname u;
        size_t len;
        int r;

        r = plat_read_file_at(root_fd, ARCH_PATH, SMALL_FILE_MAX, &buf, &len);
        if (r == -ENOENT) {
                /* Older kernels lack the kernel.arch sysctl. uname() describes the running kernel,
                 * not root_fd's tree, so it is only a fallback for a missing file: any other
                 * failure is reported rather than papered over with the wrong machine's answer. */
                if (uname(&u) < 0) {
                        r = -errno;
                        plat_errf(err, errlen, ARCH_PATH " missing and uname() failed: %s", strerror(-r));
                        return r;
                }
                return copy_arch(u.machine, strlen(u.machine), "uname()", ret, err, errlen);
        }
        if (r == -EFBIG) {
                plat_errf(err, errlen, ARCH_PATH ": larger than %d bytes", SMALL_FILE_MAX);
                return r;
        }
        if (r < 0) {
                plat_errf(err, errlen, ARCH_PATH ": %s", strerror(-r));
                return r;
        }
        if (len > 0 && buf[len - 1] == '\n')
                len--;
        return copy_arch(buf, len, ARCH_PATH, ret, err, errlen);
}

/* Parses a sysfs PCI id such as "0x10de\n" (vendor) or "0x030000\n" (class). */
static int read_pci_id(int drm_fd, const char *card, const char *attr, uint32_t *ret, char *err,
                       size_t errlen) {
        _cleanup_free_ char *buf = NULL;
        char path[NAME_MAX + 32], q[PLAT_QUOTE_MAX];
        size_t len;
        int r;

        snprintf(path, sizeof(path), "%s/device/%s", card, attr);
        r = plat_read_file_at(drm_fd, path, SMALL_FILE_MAX, &buf, &len);
        if (r == -ENOENT)
                return r; /* not a PCI device (virtual or platform DRM): the caller skips it */
        if (r < 0) {
                plat_errf(err, errlen, "/" DRM_PATH "/%s: %s", path,
                          r == -EFBIG ? "larger than a sysfs page" : strerror(-r));
                return r;
        }
        if (len > 0 && buf[len - 1] == '\n')
                len--;
        if (plat_parse_hex_u32(buf, len, ret) == 0)
                return 0;
        plat_errf(err, errlen, "/" DRM_PATH "/%s: '%s' is not a hex PCI id like 0x10de", path,
                  plat_quote(buf, len, q));
        return -EPROTO;
}

/* "card" and digits only: card0-DP-1 and friends are connectors of a card, renderD128 a second
 * node of the same device. */
static bool is_card_name(const char *name) {
        if (strncmp(name, "card", 4) != 0 || name[4] == '\0')
                return false;
        for (const char *p = name + 4; *p; p++)
                if (*p < '0' || *p > '9')
                        return false;
        return true;
}

static int count_gpus(int root_fd, unsigned *ret, char *err, size_t errlen) {
        _cleanup_closedir_ DIR *d = NULL;
        unsigned n = 0;
        int r;

        r = plat_opendir_at(root_fd, DRM_PATH, &d);
        if (r == -ENOENT) {
                *ret = 0; /* no DRM driver loaded: a headless host */
                return 0;
        }
        if (r < 0) {
                plat_errf(err, errlen, "/" DRM_PATH ": %s", strerror(-r));
                return r;
        }

        for (;;) {
                uint32_t vendor, class;
                struct dirent *de;

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
                if (!is_card_name(de->d_name))
                        continue;

                r = read_pci_id(dirfd(d), de->d_name, "vendor", &vendor, err, errlen);
                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        return r;
                if (vendor != PCI_VENDOR_NVIDIA && vendor != PCI_VENDOR_AMD)
                        continue; /* BMC VGA (ASPEED, Matrox), Intel iGPU: no render slots */
                r = read_pci_id(dirfd(d), de->d_name, "class", &class, err, errlen);
                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        return r;
                if (class >> 16 != PCI_BASE_CLASS_DISPLAY)
                        continue;
                n++;
        }
        *ret = n;
        return 0;
}

static bool arch_is_x86(const char *a) {
        /* x86_64 and the 32-bit names uname() and kernel.arch use: x86, i386 .. i686. */
        if (strcmp(a, "x86_64") == 0 || strcmp(a, "x86") == 0)
                return true;
        return strlen(a) == 4 && a[0] == 'i' && a[1] >= '3' && a[1] <= '6' && strcmp(a + 2, "86") == 0;
}

static enum hal_class classify(const char *arch, unsigned gpu_devices) {
        if (strcmp(arch, "aarch64") == 0 || strncmp(arch, "arm", 3) == 0)
                return HAL_CLASS_ARM;
        if (arch_is_x86(arch))
                return gpu_devices > 0 ? HAL_CLASS_X86_GPU : HAL_CLASS_X86_CPU;
        return HAL_CLASS_UNKNOWN;
}

int hal_platform_detect(int root_fd, struct hal_platform *ret, char *err, size_t errlen) {
        struct hal_platform p = { .cls = HAL_CLASS_UNKNOWN };
        int r;

        r = read_arch(root_fd, p.arch, err, errlen);
        if (r < 0)
                return r;
        r = count_gpus(root_fd, &p.gpu_devices, err, errlen);
        if (r < 0)
                return r;
        p.cls = classify(p.arch, p.gpu_devices);
        *ret = p;
        return 0;
}

const char *hal_class_to_string(enum hal_class c) {
        switch (c) {
        case HAL_CLASS_X86_GPU:
                return "x86-gpu";
        case HAL_CLASS_X86_CPU:
                return "x86-cpu";
        case HAL_CLASS_ARM:
                return "arm";
        case HAL_CLASS_UNKNOWN:
                break;
        }
        /* Out-of-range values too: callers print this, and NULL would crash them. */
        return "unknown";
}

void hal_platform_note_gpus(struct hal_platform *p, unsigned n) {
        if (n > p->gpu_devices)
                p->gpu_devices = n;
        if (p->cls == HAL_CLASS_X86_CPU && n > 0)
                p->cls = HAL_CLASS_X86_GPU;
}
