/* selfstat.h: this process's own cost (CPU time, resident memory), so a fleet can watch the watcher. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Everything in /proc/<pid>/status is well under this; a larger file is refused, not cut. */
#define PLAT_PROC_STATUS_MAX (16 * 1024)

struct plat_self_usage {
        uint64_t cpu_usec;       /* user + system CPU time of the whole process since it started */
        uint64_t rss_bytes;      /* VmRSS: resident now */
        uint64_t peak_rss_bytes; /* VmHWM: the most that was ever resident at once */
};

/* Finds VmRSS and VmHWM ("VmRSS:\t  1616 kB") in the len bytes of /proc/<pid>/status text at buf
 * (need not be NUL-terminated) and writes them in bytes. -EPROTO with msg naming the line when
 * one is missing or malformed (a kernel thread has neither), -ERANGE when a figure overflows. */
int plat_parse_proc_status_mem(const char *buf, size_t len, uint64_t *ret_rss_bytes,
                               uint64_t *ret_peak_rss_bytes, char *msg, size_t msg_len);

/* This process's cost now: CPU time from getrusage() (microseconds, where /proc/self/stat counts
 * clock ticks of 10 ms), memory from /proc/self/status. Always the real /proc: it is the agent's
 * own cost, never a host tree given with --root. -errno with msg saying what could not be read. */
int plat_self_usage(struct plat_self_usage *ret, char *msg, size_t msg_len);
