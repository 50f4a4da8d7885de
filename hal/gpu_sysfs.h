/* gpu_sysfs.h: sysfs attribute reads shared by the amdgpu and Mali/devfreq GPU backends, and their parsers.
 */
#pragma once

#include "gpu.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A GPU attribute holds one value or a short table: one sysfs page is all the kernel hands out. */
#define HAL_GPU_SYSFS_MAX 4096

/* Per-metric tolerance of the sysfs backends (collectd's rule, plus visibility):
 *  - a file that does not exist, or that the driver declines to answer (ENODATA, EOPNOTSUPP),
 *    leaves its metric absent, silently: this GPU or driver does not offer it;
 *  - a file that exists but is malformed or unreadable leaves its metric absent as well, and
 *    sets s->error / s->error_msg naming the file (the first such problem of the sample wins),
 *    so that telemetry says why; the GPU's other metrics are still reported.
 * So error < 0 together with `present` bits means a partial sample, not a lost GPU. */

/* Notes a problem of sample s, unless an earlier one of the same sample is already noted. */
void hal_gpu_sysfs_note(struct hal_gpu_sample *s, int error, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Reads attribute `file` under dir_fd, shown in messages as "<label>/<file>". 1 with *ret_buf
 * (NUL-terminated, caller frees) and *ret_len; 0 when absent, or unreadable (noted in s). */
int hal_gpu_sysfs_read(int dir_fd, const char *label, const char *file, struct hal_gpu_sample *s,
                       char **ret_buf, size_t *ret_len);

/* One decimal attribute ("1234\n"). 1 with *ret set; 0 when absent, malformed or unreadable (the
 * last two noted in s). The _pct variant also requires 0..100. */
int hal_gpu_sysfs_u64(int dir_fd, const char *label, const char *file, struct hal_gpu_sample *s,
                      uint64_t *ret);
int hal_gpu_sysfs_s64(int dir_fd, const char *label, const char *file, struct hal_gpu_sample *s,
                      int64_t *ret);
int hal_gpu_sysfs_pct(int dir_fd, const char *label, const char *file, struct hal_gpu_sample *s,
                      double *ret);

/* Reads a PCI id attribute such as "0x1002\n" (vendor, device) or "0x030000\n" (class).
 * -ENOENT when the file is missing (not a PCI device), -EPROTO or -errno with err naming it. */
int hal_gpu_sysfs_pci_id(int dir_fd, const char *label, const char *file, uint32_t *ret, char *err,
                         size_t errlen);

/* Copies the first line of free text (product name, gpuinfo) into dst for display: trailing blanks
 * dropped, bytes outside printable ASCII shown as '?', cut to dstlen - 1. */
void hal_gpu_sysfs_copy_text(const char *buf, size_t len, char *dst, size_t dstlen);

/* Parses amdgpu's pp_dpm_sclk ("0: 500Mhz\n1: 1800Mhz *\n2: 2100Mhz\n"; newer kernels add a
 * deep-sleep level "S: 19Mhz *"). The level marked '*' is the current clock, the highest level the
 * maximum. Returns the HAL_GPU_CLOCK / HAL_GPU_CLOCK_MAX bits it found (no '*': CLOCK absent) and
 * writes only the matching out-params; -EPROTO with a message (without the file name) in err. */
int hal_gpu_parse_dpm_sclk(const char *buf, size_t len, unsigned *ret_cur_mhz, unsigned *ret_max_mhz,
                           char *err, size_t errlen);

/* Parses a devfreq "load" attribute ("45@800000000Hz\n": busy percent at the current frequency).
 * 0 with both out-params; -EPROTO with a message (without the file name) in err. */
int hal_gpu_parse_devfreq_load(const char *buf, size_t len, unsigned *ret_pct, uint64_t *ret_hz, char *err,
                               size_t errlen);
