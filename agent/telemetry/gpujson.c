/* gpujson.c: a GPU's process lists, virtualization and MIG devices as JSON, for telemetry.c's
 * documents. */
#include "gpujson.h"

#include "gpu.h"
#include "jsonw.h"

#include <stdint.h>

void gpujson_procs(struct jsonw *j, const struct hal_gpu_proc *procs, size_t n) {
        jsonw_array(j, "processes");
        for (size_t i = 0; i < n; i++) {
                jsonw_object(j, NULL);
                jsonw_number(j, "pid", procs[i].pid);
                if (procs[i].vram_bytes != UINT64_MAX)
                        jsonw_u64(j, "vram_bytes", procs[i].vram_bytes);
                jsonw_end(j);
        }
        jsonw_end(j);
}

static void mig_device(struct jsonw *j, const struct hal_gpu_mig *m, enum gpujson_detail d) {
        jsonw_object(j, NULL);
        jsonw_number(j, "index", m->index);
        if (m->uuid[0])
                jsonw_string(j, "uuid", m->uuid);
        if (m->present & HAL_GPU_MIG_IDS) {
                jsonw_number(j, "gpu_instance_id", m->gpu_instance_id);
                jsonw_number(j, "compute_instance_id", m->compute_instance_id);
        }
        if (m->present & HAL_GPU_MIG_UTIL) {
                if (d != GPUJSON_FACTS)
                        jsonw_fixed(j, "util_pct", m->util_pct, 1);
        } else if (m->util_unsupported)
                jsonw_string(j, "util", "unsupported"); /* NVML's answer on a MIG device: not 0 */
        if (m->present & HAL_GPU_MIG_VRAM) {
                jsonw_u64(j, "vram_total_bytes", m->vram_total_bytes);
                if (d != GPUJSON_FACTS)
                        jsonw_u64(j, "vram_used_bytes", m->vram_used_bytes);
        }
        if ((m->present & HAL_GPU_MIG_PROCS) && d != GPUJSON_FACTS) {
                jsonw_number(j, "process_count", (double)m->n_procs);
                if (d == GPUJSON_PROCESSES)
                        gpujson_procs(j, m->procs, m->n_procs);
        }
        jsonw_end(j);
}

void gpujson_sharing(struct jsonw *j, const struct hal_gpu_sample *g, enum gpujson_detail d) {
        if (g->present & HAL_GPU_VIRT)
                jsonw_string(j, "virtualization", g->virtualization);
        if (!(g->present & HAL_GPU_MIG))
                return;
        jsonw_object(j, "mig");
        jsonw_bool(j, "enabled", g->mig_enabled);
        if (g->present & HAL_GPU_MIG_DEVICES) {
                jsonw_array(j, "devices");
                for (size_t k = 0; k < g->n_mig; k++)
                        mig_device(j, &g->mig[k], d);
                jsonw_end(j);
        }
        jsonw_end(j);
}
