/* usage.c: what each slot uses right now: its cgroup (cores, memory, pids) and its GPU share. */
#include "usage.h"

#include "config.h"
#include "log.h"
#include "sampler.h"
#include "slot.h"
#include "strutil.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t n_slots(const struct usage *u) {
        return u->table ? u->table->n : 0;
}

const struct usage_slot *usage_slot_at(const struct usage *u, size_t i) {
        return u && i < n_slots(u) ? slot_at(u->table, i)->usage : NULL;
}

static void part_free(struct usage_slot *us) {
        if (!us)
                return;
        hal_cgroup_close(us->cg_handle);
        free(us->cg_path);
        free(us);
}

/* Whether another slot is configured on sl's GPU. */
static bool gpu_shared(const struct usage *u, const struct slot *sl) {
        for (size_t j = 0; sl->cfg->gpu >= 0 && j < n_slots(u); j++) {
                const struct slot *o = slot_at(u->table, j);

                if (o != sl && o->cfg->gpu == sl->cfg->gpu)
                        return true;
        }
        return false;
}

/* The slot's part of usage, made zeroed for its configured cgroup; NULL when out of memory (the
 * slot is left out of telemetry until there is some). */
static struct usage_slot *part(const struct usage *u, struct slot *sl) {
        struct usage_slot *us;

        if (sl->usage)
                return sl->usage;
        us = calloc(1, sizeof(*us));
        if (!us)
                return NULL;
        if (sl->cfg->cgroup && !(us->cg_path = strdup(sl->cfg->cgroup))) {
                free(us);
                return NULL;
        }
        us->gpu_shared = gpu_shared(u, sl);
        sl->usage = us;
        sl->usage_free = part_free;
        return us;
}

int usage_reload(struct usage *u) {
        int r = 0;

        for (size_t i = 0; i < n_slots(u); i++) {
                struct slot *sl = slot_at(u->table, i);

                /* Another cgroup: neither its handle nor its CPU baseline (nor its last error)
                 * belongs to the slot now. */
                if (sl->usage && !plat_streq_ptr(sl->usage->cg_path, sl->cfg->cgroup)) {
                        part_free(sl->usage);
                        sl->usage = NULL;
                }
                if (sl->usage)
                        sl->usage->gpu_shared = gpu_shared(u, sl);
                else if (!part(u, sl))
                        r = -ENOMEM;
        }
        return r;
}

int usage_init(struct usage *u, int root_fd, struct slot_table *table) {
        *u = (struct usage){ .root_fd = root_fd,
                             .cgroup_version = hal_cgroup_detect(root_fd),
                             .table = table };
        return usage_reload(u);
}

void usage_done(struct usage *u) {
        for (size_t i = 0; i < u->n_pids; i++) {
                free(u->pids[i].cgroup);
                free(u->pids[i].error_msg);
        }
        free(u->pids);
        u->table = NULL;
        u->pids = NULL;
        u->n_pids = u->cap_pids = 0;
}

bool usage_cgroup_contains(const char *slot_cg, const char *proc_cg) {
        size_t n;

        while (*slot_cg == '/')
                slot_cg++;
        while (*proc_cg == '/')
                proc_cg++;
        n = strlen(slot_cg);
        while (n && slot_cg[n - 1] == '/')
                n--;
        return n && strncmp(slot_cg, proc_cg, n) == 0 && (proc_cg[n] == '\0' || proc_cg[n] == '/');
}

/* Samples the slot's open cgroup, or opens it: -ENOENT when it does not exist. A slot without a
 * session costs one openat() per tick; one whose scope was removed since the last tick (session
 * over, maybe a new one started already) is closed and opened again at once. */
static int sample_cgroup(struct usage *u, const struct cfg_slot *sl, struct usage_slot *us, char *err,
                         size_t errlen) {
        int r;

        if (us->cg_handle) {
                r = hal_cgroup_sample(us->cg_handle, &us->cg, err, errlen);
                if (r != -ENOENT)
                        return r;
                hal_cgroup_close(us->cg_handle);
                us->cg_handle = NULL;
        }
        r = hal_cgroup_open(u->root_fd, u->cgroup_version, sl->cgroup, &us->cg_handle, err, errlen);
        if (r < 0)
                return r;
        /* Another cgroup than the last tick's: its CPU counter is no base for a rate. */
        us->has_prev = false;
        r = hal_cgroup_sample(us->cg_handle, &us->cg, err, errlen);
        if (r == -ENOENT) {
                hal_cgroup_close(us->cg_handle);
                us->cg_handle = NULL;
        }
        return r;
}

static void slot_cgroup(struct usage *u, const struct cfg_slot *sl, struct usage_slot *us, uint64_t mono) {
        char err[USAGE_ERR_MAX] = "";
        int r;

        us->has_cg = us->has_cores = false;
        if (!sl->cgroup) {
                us->cg_state = NULL;
                return;
        }
        r = sample_cgroup(u, sl, us, err, sizeof(err));
        if (r == -ENOENT) {
                /* No session in the slot: its scope does not exist. Normal, not an error. */
                us->cg_state = "absent";
                us->has_prev = false;
                us->cg_error[0] = '\0';
                return;
        }
        if (r < 0) {
                const char *fields[] = { NULL, NULL };
                char f[96];

                if (!err[0])
                        snprintf(err, sizeof(err), "%s", strerror(-r));
                if (strcmp(err, us->cg_error) != 0) {
                        snprintf(f, sizeof(f), "SLOT=%s", sl->id);
                        fields[0] = f;
                        plat_log_fields(
                                LOG_WARNING, fields,
                                "slot %s: cannot read cgroup %s: %s; its usage is left out of telemetry",
                                sl->id, sl->cgroup, err);
                        snprintf(us->cg_error, sizeof(us->cg_error), "%s", err);
                }
                us->cg_state = "error";
                us->has_prev = false;
                return;
        }
        us->has_cg = true;
        us->cg_state = "ok";
        us->cg_error[0] = '\0';
        if (!(us->cg.present & HAL_CG_CPU)) {
                us->has_prev = false;
                return;
        }
        /* A cgroup recreated between ticks restarts its counter: no rate rather than a
         * negative one. */
        if (us->has_prev && mono > us->prev_mono_usec && us->cg.cpu_usage_usec >= us->prev_cpu_usec) {
                us->has_cores = true;
                us->cores_used = (double)(us->cg.cpu_usage_usec - us->prev_cpu_usec) /
                                 (double)(mono - us->prev_mono_usec);
        }
        us->has_prev = true;
        us->prev_cpu_usec = us->cg.cpu_usage_usec;
        us->prev_mono_usec = mono;
}

static int pid_cmp(const void *a, const void *b) {
        const struct usage_pid *x = a, *y = b;

        return (x->pid > y->pid) - (x->pid < y->pid);
}

/* The remembered entry of pid, or NULL: the first n_sorted entries are sorted, the rest are the
 * pids new this tick. */
static struct usage_pid *pid_find(struct usage *u, size_t n_sorted, int32_t pid) {
        struct usage_pid key = { .pid = pid }, *e = NULL;

        if (n_sorted > 0)
                e = bsearch(&key, u->pids, n_sorted, sizeof(key), pid_cmp);

        for (size_t i = n_sorted; !e && i < u->n_pids; i++)
                if (u->pids[i].pid == pid)
                        e = &u->pids[i];
        return e;
}

/* Reads where the process lives. One that exited between the GPU listing and now (or lives in
 * another pid namespace) is left unattributed until its next recheck; one whose file is there
 * but unreadable or malformed is an error, reported. */
static void pid_read(struct usage *u, struct usage_pid *e) {
        char path[PATH_MAX], err[USAGE_ERR_MAX] = "";
        int r;

        free(e->cgroup);
        free(e->error_msg);
        e->cgroup = e->error_msg = NULL;
        e->error = 0;
        r = hal_cgroup_of_pid(u->root_fd, e->pid, path, sizeof(path), err, sizeof(err));
        if (r >= 0)
                e->cgroup = strdup(path); /* out of memory: unattributed, like a process that is gone */
        else if (r != -ESRCH && r != -ENOENT) {
                e->error = r;
                e->error_msg = strdup(err[0] ? err : strerror(-r));
        }
        e->recheck_tick = u->tick + USAGE_PID_RECHECK_TICKS;
}

static struct usage_pid *pid_add(struct usage *u, int32_t pid) {
        struct usage_pid *e;

        if (u->n_pids == u->cap_pids) {
                size_t cap = u->cap_pids ? u->cap_pids * 2 : 16;
                struct usage_pid *a = realloc(u->pids, cap * sizeof(*a));

                if (!a)
                        return NULL;
                u->pids = a;
                u->cap_pids = cap;
        }
        e = &u->pids[u->n_pids++];
        *e = (struct usage_pid){ .pid = pid };
        pid_read(u, e);
        /* Spread the rechecks of pids that showed up together over the following ticks. */
        e->recheck_tick = u->tick + 1 + (uint32_t)pid % USAGE_PID_RECHECK_TICKS;
        return e;
}

static bool gpu_has_shared_slot(const struct usage *u, int index) {
        for (size_t i = 0; i < n_slots(u); i++) {
                const struct slot *sl = slot_at(u->table, i);

                if (sl->cfg->gpu == index && sl->usage && sl->usage->gpu_shared)
                        return true;
        }
        return false;
}

/* A pid this tick lists: read when new, rechecked when due. */
static void pid_note(struct usage *u, size_t n_sorted, int32_t pid) {
        struct usage_pid *e = pid_find(u, n_sorted, pid);

        if (!e)
                e = pid_add(u, pid);
        else if (!e->listed && u->tick >= e->recheck_tick)
                pid_read(u, e);
        if (e)
                e->listed = true;
}

/* Brings the remembered pids up to this tick's GPU process lists (and stream sessions): new pids are read,
 * due ones rechecked, unlisted ones forgotten. */
static void pids_update(struct usage *u, const struct host_sample *h) {
        size_t n_sorted = u->n_pids, kept = 0;

        for (size_t i = 0; i < u->n_pids; i++)
                u->pids[i].listed = false;
        for (unsigned g = 0; g < h->n_gpus; g++) {
                const struct hal_gpu_sample *gs = &h->gpus[g];

                if (!(gs->present & (HAL_GPU_PROCS | HAL_GPU_ENC_SESSIONS | HAL_GPU_FBC_SESSIONS)) ||
                    !gpu_has_shared_slot(u, (int)g))
                        continue;
                for (size_t p = 0; p < gs->n_procs; p++)
                        if (gs->procs[p].vram_bytes != UINT64_MAX)
                                pid_note(u, n_sorted, gs->procs[p].pid);
                for (size_t k = 0; (gs->present & HAL_GPU_ENC_SESSIONS) && k < gs->n_enc; k++)
                        pid_note(u, n_sorted, gs->enc[k].pid);
                for (size_t k = 0; (gs->present & HAL_GPU_FBC_SESSIONS) && k < gs->n_fbc; k++)
                        pid_note(u, n_sorted, gs->fbc[k].pid);
        }
        for (size_t i = 0; i < u->n_pids; i++) {
                if (!u->pids[i].listed) {
                        free(u->pids[i].cgroup);
                        free(u->pids[i].error_msg);
                        continue;
                }
                u->pids[kept++] = u->pids[i];
        }
        u->n_pids = kept;
        if (kept > 0)
                qsort(u->pids, kept, sizeof(*u->pids), pid_cmp);
}

/* Slot i's part when it is on GPU `index` and shares it with other slots, else NULL. */
static struct usage_slot *shared_on(const struct usage *u, size_t i, int index) {
        const struct slot *sl = slot_at(u->table, i);

        return sl->cfg->gpu == index && sl->usage && sl->usage->gpu_shared ? sl->usage : NULL;
}

/* VRAM of a shared GPU's processes, summed per slot by cgroup. */
static void attribute_gpu(struct usage *u, const struct hal_gpu_sample *g, int index) {
        struct usage_slot *us;

        for (size_t i = 0; i < n_slots(u); i++)
                if ((us = shared_on(u, i, index))) {
                        us->has_gpu_vram = slot_at(u->table, i)->cfg->cgroup && (g->present & HAL_GPU_PROCS);
                        us->gpu_vram_bytes = 0;
                }
        if (!(g->present & HAL_GPU_PROCS))
                return;
        for (size_t p = 0; p < g->n_procs; p++) {
                const struct usage_pid *e;

                if (g->procs[p].vram_bytes == UINT64_MAX)
                        continue;
                e = pid_find(u, u->n_pids, g->procs[p].pid);
                if (e && e->error < 0) {
                        /* Part of this GPU's VRAM belongs to an unknown slot: no slot's figure
                         * would be right. */
                        for (size_t i = 0; i < n_slots(u); i++)
                                if ((us = shared_on(u, i, index)))
                                        us->has_gpu_vram = false;
                        if (!u->attr_error[0])
                                snprintf(u->attr_error, sizeof(u->attr_error), "%s",
                                         e->error_msg ? e->error_msg : "?");
                        continue;
                }
                if (!e || !e->cgroup)
                        continue;
                for (size_t i = 0; i < n_slots(u); i++) {
                        const char *cg = slot_at(u->table, i)->cfg->cgroup;

                        if ((us = shared_on(u, i, index)) && cg && usage_cgroup_contains(cg, e->cgroup)) {
                                us->gpu_vram_bytes += g->procs[p].vram_bytes;
                                break;
                        }
                }
        }
}

/* The slot part a stream session (NVENC, NvFBC) of GPU `index` belongs to, or NULL: a dedicated
 * GPU's are its slot's; a shared GPU's go to the slot whose cgroup holds the session's process (one
 * the agent cannot place is listed in no slot). */
static struct usage_slot *stream_slot(struct usage *u, int index, int32_t pid) {
        const struct usage_pid *e = pid_find(u, u->n_pids, pid);

        for (size_t i = 0; i < n_slots(u); i++) {
                const struct slot *sl = slot_at(u->table, i);

                if (sl->cfg->gpu != index || !sl->usage)
                        continue;
                if (!sl->usage->gpu_shared)
                        return sl->usage;
                if (sl->cfg->cgroup && e && e->cgroup && usage_cgroup_contains(sl->cfg->cgroup, e->cgroup))
                        return sl->usage;
        }
        return NULL;
}

static void attribute_streams(struct usage *u, const struct hal_gpu_sample *g, int index) {
        struct usage_slot *us;

        for (size_t i = 0; i < n_slots(u); i++) {
                const struct slot *sl = slot_at(u->table, i);

                /* Only a slot that can tell its stream sessions on a GPU that lists them. */
                if (sl->cfg->gpu != index || !sl->usage || (sl->usage->gpu_shared && !sl->cfg->cgroup))
                        continue;
                sl->usage->has_enc = g->present & HAL_GPU_ENC_SESSIONS;
                sl->usage->has_fbc = g->present & HAL_GPU_FBC_SESSIONS;
        }
        for (size_t k = 0; (g->present & HAL_GPU_ENC_SESSIONS) && k < g->n_enc; k++)
                if ((us = stream_slot(u, index, g->enc[k].pid)) && us->n_enc < USAGE_SLOT_ENC_MAX)
                        us->enc[us->n_enc++] = g->enc[k];
        for (size_t k = 0; (g->present & HAL_GPU_FBC_SESSIONS) && k < g->n_fbc; k++)
                if ((us = stream_slot(u, index, g->fbc[k].pid)) && us->n_fbc < USAGE_SLOT_FBC_MAX)
                        us->fbc[us->n_fbc++] = g->fbc[k];
}

void usage_tick(struct usage *u, const struct sampler *s, uint64_t mono_usec) {
        const struct host_sample *h = &s->cur;

        for (size_t i = 0; i < n_slots(u); i++) {
                struct slot *sl = slot_at(u->table, i);
                struct usage_slot *us = part(u, sl);

                if (us)
                        slot_cgroup(u, sl->cfg, us, mono_usec);
        }
        pids_update(u, h);
        u->attr_error[0] = '\0';
        for (size_t i = 0; i < n_slots(u); i++) {
                struct usage_slot *us = slot_at(u->table, i)->usage;

                if (us) {
                        us->has_enc = us->has_fbc = false;
                        us->n_enc = us->n_fbc = 0;
                }
        }
        for (unsigned g = 0; g < h->n_gpus; g++) {
                if (gpu_has_shared_slot(u, (int)g))
                        attribute_gpu(u, &h->gpus[g], (int)g);
                attribute_streams(u, &h->gpus[g], (int)g);
        }
        if (u->attr_error[0] && strcmp(u->attr_error, u->attr_logged) != 0)
                log_warn("cannot tell which slot a GPU process belongs to: %s; the shared GPU's slots "
                         "report no "
                         "VRAM figure until it reads again",
                         u->attr_error);
        snprintf(u->attr_logged, sizeof(u->attr_logged), "%s", u->attr_error);
        u->tick++;
}
