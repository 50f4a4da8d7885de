/* mem.h: host memory from /proc/meminfo (MemTotal, MemAvailable). */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct hal_mem_sample {
        uint64_t total_bytes;
        uint64_t available_bytes;
};

/* Reads <root>/proc/meminfo. -EPROTO when a field is malformed or missing (err names it). */
int hal_mem_read(int root_fd, struct hal_mem_sample *ret, char *err, size_t errlen);
int hal_mem_parse(const char *buf, size_t len, struct hal_mem_sample *ret, char *err, size_t errlen);
