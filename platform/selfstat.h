/* selfstat.h: this process's own cost (CPU time, resident memory), so a fleet can watch the watcher. */
#pragma once

#include "fileio.h"

#include <stddef.h>
#include <stdint.h>

/* /proc/<pid>/statm is one line of seven figures; a larger file is refused, not cut. */
#define PLAT_PROC_STATM_MAX 256

struct plat_self_usage {
        uint64_t cpu_usec;       /* user + system CPU time of the whole process since it started */
        uint64_t rss_bytes;      /* resident now (statm's second figure: VmRSS) */
        uint64_t peak_rss_bytes; /* the most that was ever resident at once (ru_maxrss: VmHWM) */
};

/* The resident size from the len bytes of /proc/<pid>/statm text at buf ("size resident shared text
 * lib data dt", in pages; need not be NUL-terminated), in bytes of page_size. -EPROTO with msg
 * naming the file when it is not seven figures, -ERANGE when one overflows; *ret is left alone. */
int plat_parse_proc_statm(const char *buf, size_t len, uint64_t page_size, uint64_t *ret_rss_bytes,
                          char *msg, size_t msg_len);

/* This process's cost now: CPU time and the peak from getrusage() (microseconds, where
 * /proc/self/stat counts clock ticks of 10 ms), the resident size from /proc/self/statm (the kernel
 * prints it from three counters, where /proc/self/status formats some 55 lines: ~5 % of the agent's
 * CPU when it was read every second). Always the real /proc: it is the agent's
 * own cost, never a host tree given with --root. -errno with msg saying what could not be read.
 * Opens and closes the file: for a caller that asks once. */
int plat_self_usage(struct plat_self_usage *ret, char *msg, size_t msg_len);

/* The same for a caller that asks on every tick: /proc/self/statm stays open between reads, each a
 * single pread() (the kernel prints the file in one piece), so a read is two syscalls (getrusage()
 * and the pread()) where opening it each time was five. Members are private. */
struct plat_self {
        struct plat_file statm;
};

/* Sets s up closed; nothing to fail. The first read opens the file. */
void plat_self_init(struct plat_self *s);
/* As plat_self_usage(). After a failed read the next one opens the file afresh. */
int plat_self_read(struct plat_self *s, struct plat_self_usage *ret, char *msg, size_t msg_len);
/* Closes the file and frees the buffer; s may be read again. */
void plat_self_done(struct plat_self *s);
