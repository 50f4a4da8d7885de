/* mem.h: host memory from /proc/meminfo (MemTotal, MemAvailable, or its estimate before Linux 3.14). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hal_mem_sample {
        uint64_t total_bytes;
        uint64_t available_bytes;
        /* No MemAvailable (kernels before 3.14): available_bytes is estimated as the kernel did, MemFree
         * + Active(file) + Inactive(file) + SReclaimable, less the zones' low watermarks when
         * /proc/zoneinfo gives them. */
        bool available_estimated;
};

int hal_mem_parse(const char *buf, size_t len, struct hal_mem_sample *ret, char *err, size_t errlen);
/* The sum of every zone's "low" watermark in /proc/zoneinfo text, in pages. -EPROTO when malformed. */
int hal_mem_zoneinfo_low_pages(const char *buf, size_t len, uint64_t *ret_pages, char *err, size_t errlen);

/* <root>/proc/meminfo (and /proc/zoneinfo for an estimate) kept open between samples, for a caller
 * that reads them every tick: no open() and close() per read, and the buffer is kept. Created
 * closed; the first read opens them, and a read after a failed open or read opens them again.
 * -EPROTO when a field is malformed, or missing: MemTotal, or MemAvailable and what its estimate
 * needs (err names it). */
struct hal_mem_reader;

/* root_fd is borrowed and must outlive the reader. -ENOMEM only. Free with hal_mem_reader_free(). */
int hal_mem_reader_new(int root_fd, struct hal_mem_reader **ret);
int hal_mem_reader_read(struct hal_mem_reader *r, struct hal_mem_sample *ret, char *err, size_t errlen);
/* NULL is a no-op. */
void hal_mem_reader_free(struct hal_mem_reader *r);
