/* cpu.h: host CPU counters from /proc/stat (aggregate jiffies, online core count). */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct hal_cpu_sample {
        uint64_t total_jiffies; /* user+nice+system+idle+iowait+irq+softirq+steal (guest is inside user) */
        uint64_t idle_jiffies;  /* idle+iowait */
        unsigned cores;         /* "cpuN" lines: online logical CPUs */
};

/* Reads <root>/proc/stat. Errors: -errno from the read, -EPROTO for malformed content; err names
 * the file, the line and what was wrong. *ret is written only on success. */
int hal_cpu_read(int root_fd, struct hal_cpu_sample *ret, char *err, size_t errlen);

/* The parser behind hal_cpu_read, for tests and fuzzing. buf need not be NUL-terminated. */
int hal_cpu_parse(const char *buf, size_t len, struct hal_cpu_sample *ret, char *err, size_t errlen);
