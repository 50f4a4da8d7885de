/* cpu.h: host CPU counters from /proc/stat (aggregate jiffies, online core count). */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct hal_cpu_sample {
        uint64_t total_jiffies; /* user+nice+system+idle+iowait+irq+softirq+steal (guest is inside user) */
        uint64_t idle_jiffies;  /* idle+iowait */
        unsigned cores;         /* "cpuN" lines: online logical CPUs */
};

/* The parser behind hal_cpu_reader_read, for tests and fuzzing. buf need not be NUL-terminated. */
int hal_cpu_parse(const char *buf, size_t len, struct hal_cpu_sample *ret, char *err, size_t errlen);

/* <root>/proc/stat kept open between samples, for a caller that reads it every tick: no open() and
 * close() per read, and the buffer is kept. Created closed; the first read opens it, and a read after
 * a failed open or read opens it again. Errors: -errno from the read, -EPROTO for malformed content;
 * err names the file, the line and what was wrong. *ret is written only on success. */
struct hal_cpu_reader;

/* root_fd is borrowed and must outlive the reader. -ENOMEM only. Free with hal_cpu_reader_free(). */
int hal_cpu_reader_new(int root_fd, struct hal_cpu_reader **ret);
int hal_cpu_reader_read(struct hal_cpu_reader *r, struct hal_cpu_sample *ret, char *err, size_t errlen);
/* NULL is a no-op. */
void hal_cpu_reader_free(struct hal_cpu_reader *r);
