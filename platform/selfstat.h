/* selfstat.h: this process's own cost (CPU time, resident memory), so a fleet can watch the watcher. */
#pragma once

#include "fileio.h"

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
 * own cost, never a host tree given with --root. -errno with msg saying what could not be read.
 * Opens and closes the file: for a caller that asks once. */
int plat_self_usage(struct plat_self_usage *ret, char *msg, size_t msg_len);

/* The same for a caller that asks on every tick: /proc/self/status stays open between reads, each a
 * single pread() (the kernel prints the file in one piece), so a read is two syscalls (getrusage()
 * and the pread()) where opening it each time was five. Members are private. */
struct plat_self {
        struct plat_file status;
};

/* Sets s up closed; nothing to fail. The first read opens the file. */
void plat_self_init(struct plat_self *s);
/* As plat_self_usage(). After a failed read the next one opens the file afresh. */
int plat_self_read(struct plat_self *s, struct plat_self_usage *ret, char *msg, size_t msg_len);
/* Closes the file and frees the buffer; s may be read again. */
void plat_self_done(struct plat_self *s);
