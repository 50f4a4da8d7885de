/* usage.h: what each slot uses right now: its cgroup (cores, memory, pids) and its GPU share. */
#pragma once

#include "cgroup.h"
#include "gpu.h"

#include <stdbool.h>
#include <stdint.h>

struct sampler;
struct slot;
struct slot_table;

#define USAGE_ERR_MAX 256
#define USAGE_SLOT_ENC_MAX 8 /* NVENC sessions listed per slot (one user: a stream or two) */
#define USAGE_SLOT_FBC_MAX 8 /* NvFBC capture sessions listed per slot */

/* A slot's usage: it lives in its slot object (slot.h, its `usage` member), so that a reload that keeps
 * the slot keeps its open cgroup and its CPU baseline. */
struct usage_slot {
        /* cgroup: has_cg false with cg_state "absent" when the slot has no cgroup right now
         * (no session), or with cg_error when it could not be read. */
        bool has_cg;
        struct hal_cgroup_sample cg;
        bool has_cores;
        double cores_used;    /* CPU time per wall time since the previous tick */
        const char *cg_state; /* "ok", "absent", "error", or NULL when no cgroup is configured */
        char cg_error[USAGE_ERR_MAX];

        /* GPU: the slot's configured GPU, dedicated or shared with other slots. For a shared
         * GPU, VRAM is attributed from the GPU's processes whose cgroup is inside the slot's. */
        bool gpu_shared;
        bool has_gpu_vram;
        uint64_t gpu_vram_bytes;
        /* NVENC sessions of the slot (has_enc: the driver lists them and the slot's can be told: a
         * dedicated GPU's are all the slot's, a shared GPU's go by the process's cgroup). */
        bool has_enc;
        uint8_t n_enc;
        struct hal_gpu_enc_session enc[USAGE_SLOT_ENC_MAX];
        /* NvFBC capture sessions of the slot, told apart the same way. */
        bool has_fbc;
        uint8_t n_fbc;
        struct hal_gpu_fbc_session fbc[USAGE_SLOT_FBC_MAX];

        /* previous tick, for rates */
        bool has_prev;
        uint64_t prev_cpu_usec, prev_mono_usec;

        /* The slot's cgroup, kept open from the tick that finds it until one finds it removed
         * (owned; NULL meanwhile), and the configured path it was opened from (owned; a reload that
         * moves the slot to another path closes it). */
        struct hal_cgroup *cg_handle;
        char *cg_path;
};

/* Where a GPU process lives, remembered between ticks: /proc/<pid>/cgroup is read when the pid
 * first shows up in a GPU's process list, then again every USAGE_PID_RECHECK_TICKS ticks in case
 * the pid was reused, and forgotten on the first tick it is not listed. */
struct usage_pid {
        int32_t pid;
        bool listed;           /* by some GPU this tick */
        uint64_t recheck_tick; /* read again from this tick on */
        char *cgroup;          /* owned; NULL when it could not be read */
        int error;             /* < 0 when /proc/<pid>/cgroup was there but unreadable or malformed */
        char *error_msg;       /* owned, with error */
};

#define USAGE_PID_RECHECK_TICKS 16

struct usage {
        int root_fd; /* borrowed */
        enum hal_cgroup_version cgroup_version;
        struct slot_table *table; /* borrowed: the slots, in cfg's order; NULL: none */
        uint64_t tick;
        size_t n_pids, cap_pids;
        struct usage_pid *pids; /* sorted by pid between ticks; owned */
        /* A GPU process whose cgroup could not be read (not one that exited): its VRAM cannot
         * be attributed, so the shared slots of its GPU report none this tick. "" when none. */
        char attr_error[USAGE_ERR_MAX];
        char attr_logged[USAGE_ERR_MAX];
};

/* The usage of the slots of table (borrowed until usage_done, NULL: none; each slot's part is its
 * `usage` member, made here for each slot; -ENOMEM: a slot left without one is made on a later tick).
 * root_fd is borrowed. u is overwritten. */
int usage_init(struct usage *u, int root_fd, struct slot_table *table);
/* After a reload: the table followed the new config by id (slot_table_sync), so a slot kept keeps its
 * open cgroup and its CPU baseline (its first tick after reports cores_used); one whose cgroup path
 * changed closes it and starts over, as a new slot does. Which slots share a GPU is worked out again.
 * -ENOMEM: a slot left without its part is made on a later tick. */
int usage_reload(struct usage *u);
/* Forgets the GPU processes; the slots' parts go with their slots (slot_table_done). Safe on a zeroed
 * or done usage. */
void usage_done(struct usage *u);

/* Measures every slot of the table; uses the sampler's current sample for GPU processes. */
void usage_tick(struct usage *u, const struct sampler *s, uint64_t mono_usec);

/* Slot i's usage (in cfg's order), or NULL when u is NULL, there is no slot i, or its part could not
 * be made (out of memory). */
const struct usage_slot *usage_slot_at(const struct usage *u, size_t i);

/* True when the cgroup path `proc_cg` is `slot_cg` or below it. */
bool usage_cgroup_contains(const char *slot_cg, const char *proc_cg);
