/* cgroup.h: a slot's resource usage from its cgroup (v2 unified, v1 controllers as fallback). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum hal_cgroup_version {
        HAL_CGROUP_NONE,
        HAL_CGROUP_V1,
        HAL_CGROUP_V2,
};

/* Which members hold a value; an absent controller or file clears its bit (never 0). */
enum {
        HAL_CG_CPU = 1u << 0,     /* cpu_usage_usec */
        HAL_CG_MEM = 1u << 1,     /* mem_current_bytes */
        HAL_CG_MEM_MAX = 1u << 2, /* mem_max_bytes (UINT64_MAX = "max", no limit) */
        HAL_CG_PIDS = 1u << 3,    /* pids_current */
        HAL_CG_CPU_MAX = 1u << 4, /* cpu_quota_cores (cpu.max quota / period) */
};

struct hal_cgroup_sample {
        uint32_t present;
        uint64_t cpu_usage_usec;
        uint64_t mem_current_bytes;
        uint64_t mem_max_bytes;
        uint64_t pids_current;
        double cpu_quota_cores;
};

/* Which hierarchy the host runs: v2 when <root>/sys/fs/cgroup/cgroup.controllers exists, v1 when
 * <root>/sys/fs/cgroup/cpu,cpuacct (or cpuacct) exists, else none. */
enum hal_cgroup_version hal_cgroup_detect(int root_fd);

/* A cgroup kept open between samples: its directory (one per v1 hierarchy) and files stay open and
 * each sample is a pread() per file, into the stack. A file found missing (controller not enabled
 * there) is looked for again every HAL_CGROUP_REPROBE_SAMPLES samples, not on each; a v1 hierarchy
 * that lacked the cgroup at open is not looked at again (the next open does). */
struct hal_cgroup;

#define HAL_CGROUP_REPROBE_SAMPLES 64

/* Opens the cgroup at `path` (relative to the cgroup mount, e.g. "render.slice/slot-0.scope"; a
 * leading '/' is allowed, '..' is not: -EINVAL). -ENOENT when the cgroup does not exist (slot idle,
 * or not created yet), -EOPNOTSUPP for HAL_CGROUP_NONE. root_fd is only used here. On success
 * *ret is the caller's, to close with hal_cgroup_close(). */
int hal_cgroup_open(int root_fd, enum hal_cgroup_version v, const char *path, struct hal_cgroup **ret,
                    char *err, size_t errlen);

/* Reads every file of the cgroup. -ENOENT when the cgroup was removed since it was opened (a new
 * one at the same path is a new cgroup: close this handle and open again); -EPROTO with err naming
 * the file when a file is malformed; -errno naming it when it cannot be read. *ret is written only
 * on success. */
int hal_cgroup_sample(struct hal_cgroup *h, struct hal_cgroup_sample *ret, char *err, size_t errlen);

/* Closes every fd of the handle and frees it; NULL is a no-op. */
void hal_cgroup_close(struct hal_cgroup *h);

/* One sample of the cgroup at `path`: hal_cgroup_open(), hal_cgroup_sample(), hal_cgroup_close(),
 * with their errors. */
int hal_cgroup_read(int root_fd, enum hal_cgroup_version v, const char *path, struct hal_cgroup_sample *ret,
                    char *err, size_t errlen);

/* Maps /proc/<pid>/cgroup to the cgroup path (without the leading '/'), for attributing
 * GPU processes to slots. On v1 the path of the cpuacct (else the first) hierarchy is used.
 * -ESRCH when the process is gone, -EINVAL for pid <= 0, -ENAMETOOLONG when the path does not
 * fit in len. */
int hal_cgroup_of_pid(int root_fd, int32_t pid, char *ret_path, size_t len, char *err, size_t errlen);
/* The parsing half of hal_cgroup_of_pid() (public for the fuzz target). Picks the line whose
 * controllers include cpuacct, else the v2 line "0::/path", else the first v1 line: hybrid hosts
 * list both, and a v2 host may still list a named v1 hierarchy such as name=systemd. err gets a
 * message without the file name. */
int hal_cgroup_parse_pid_file(const char *buf, size_t len, char *ret_path, size_t pathlen, char *err,
                              size_t errlen);
/* Parses a v2 cpu.stat (flat-keyed "key value" lines) for usage_usec (public for the fuzz target).
 * -EPROTO with a message (without the file name) in err when a line is malformed or usage_usec is
 * missing or repeated. */
int hal_cgroup_parse_cpu_stat(const char *buf, size_t len, uint64_t *ret_usage_usec, char *err,
                              size_t errlen);

/* The canonical form of a cgroup path relative to the mount: its names joined by single '/', without
 * a leading or trailing '/' and without "." components ("./render.slice//s0/" is "render.slice/s0").
 * Returns the number of names, 0 for the root cgroup itself (".", "./", "/"), -EINVAL for a ".."
 * component, -ENAMETOOLONG when the result does not fit in len. ret is written only on success. */
int hal_cgroup_normalize(const char *path, char *ret, size_t len);

/* Kills every process of the cgroup at `path` (relative to the cgroup mount; not the root cgroup,
 * however it is spelt: hal_cgroup_normalize):
 * writes 1 to its cgroup.kill (v2, or the unified hierarchy of a hybrid host; Linux 5.14+), else
 * SIGKILLs each pid its cgroup.procs lists (v1, older kernels; a process forking meanwhile may
 * escape a pass: check hal_cgroup_populated and call again). Returns >= 0 (the pids signalled, 0
 * when the kernel killed), -ENOENT when no hierarchy has the cgroup (nothing runs there), or
 * -errno with err naming the file. */
int hal_cgroup_kill(int root_fd, const char *path, char *err, size_t errlen);

/* 1 when the cgroup at `path` has processes, 0 when it has none, -ENOENT when no hierarchy has it. */
int hal_cgroup_populated(int root_fd, const char *path);
