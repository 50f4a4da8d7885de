/* usage.c: what each slot uses right now: its cgroup (cores, memory, pids) and its GPU share. */
#include "usage.h"

#include "config.h"
#include "log.h"
#include "sampler.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int usage_init(struct usage *u, int root_fd, const struct cfg *c) {
        struct usage_slot *slots = calloc(c->n_slots ? c->n_slots : 1, sizeof(*slots));

        if (!slots)
                return -ENOMEM;
        free(u->slots);
        *u = (struct usage){ .root_fd = root_fd,
                             .cgroup_version = hal_cgroup_detect(root_fd),
                             .n = c->n_slots,
                             .slots = slots };
        for (size_t i = 0; i < c->n_slots; i++) {
                const struct cfg_slot *sl = &c->slots[i];

                for (size_t j = 0; j < c->n_slots; j++)
                        if (j != i && sl->gpu >= 0 && c->slots[j].gpu == sl->gpu)
                                u->slots[i].gpu_shared = true;
        }
        return 0;
}

void usage_done(struct usage *u) {
        free(u->slots);
        u->slots = NULL;
        u->n = 0;
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

static void slot_cgroup(struct usage *u, const struct cfg_slot *sl, struct usage_slot *us, uint64_t mono) {
        char err[USAGE_ERR_MAX] = "";
        int r;

        us->has_cg = us->has_cores = false;
        if (!sl->cgroup) {
                us->cg_state = NULL;
                return;
        }
        r = hal_cgroup_read(u->root_fd, u->cgroup_version, sl->cgroup, &us->cg, err, sizeof(err));
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

/* VRAM of a shared GPU's processes, summed per slot by cgroup. A process whose cgroup cannot
 * be read (it exited between the GPU listing and now) is skipped. */
static void attribute_gpu(struct usage *u, const struct cfg *c, const struct hal_gpu_sample *g, int index) {
        for (size_t i = 0; i < c->n_slots; i++)
                if (c->slots[i].gpu == index && u->slots[i].gpu_shared) {
                        u->slots[i].has_gpu_vram = c->slots[i].cgroup && (g->present & HAL_GPU_PROCS);
                        u->slots[i].gpu_vram_bytes = 0;
                }
        if (!(g->present & HAL_GPU_PROCS))
                return;
        for (size_t p = 0; p < g->n_procs; p++) {
                char path[PATH_MAX];

                if (g->procs[p].vram_bytes == UINT64_MAX ||
                    hal_cgroup_of_pid(u->root_fd, g->procs[p].pid, path, sizeof(path), NULL, 0) < 0)
                        continue;
                for (size_t i = 0; i < c->n_slots; i++)
                        if (c->slots[i].gpu == index && u->slots[i].gpu_shared && c->slots[i].cgroup &&
                            usage_cgroup_contains(c->slots[i].cgroup, path)) {
                                u->slots[i].gpu_vram_bytes += g->procs[p].vram_bytes;
                                break;
                        }
        }
}

void usage_tick(struct usage *u, const struct cfg *c, const struct sampler *s, uint64_t mono_usec) {
        const struct host_sample *h = &s->cur;

        for (size_t i = 0; i < u->n && i < c->n_slots; i++)
                slot_cgroup(u, &c->slots[i], &u->slots[i], mono_usec);
        for (unsigned g = 0; g < h->n_gpus; g++) {
                bool shared = false;

                for (size_t i = 0; i < u->n && i < c->n_slots; i++)
                        shared |= c->slots[i].gpu == (int)g && u->slots[i].gpu_shared;
                if (shared)
                        attribute_gpu(u, c, &h->gpus[g], (int)g);
        }
}
