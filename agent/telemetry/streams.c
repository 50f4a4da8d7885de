/* streams.c: a slot's stream sessions (NVENC encode, NvFBC capture) as JSON: one writer for the
 * telemetry document and the sessions op. */
#include "streams.h"

#include "config.h"
#include "jsonw.h"
#include "usage.h"

#include <stdbool.h>
#include <string.h>

/* One stream: what it is, and with figures its FPS and latency as the driver averages them. */
static void write_stream(struct jsonw *j, bool figures, int32_t pid, const char *kind_key, const char *kind,
                         uint32_t width, uint32_t height, uint32_t avg_fps, uint32_t avg_latency_us) {
        jsonw_object(j, NULL);
        jsonw_number(j, "pid", pid);
        jsonw_string(j, kind_key, kind);
        jsonw_number(j, "width", width);
        jsonw_number(j, "height", height);
        if (figures) {
                jsonw_number(j, "avg_fps", avg_fps);
                jsonw_number(j, "avg_latency_us", avg_latency_us);
        }
        jsonw_end(j);
}

void streams_write(struct jsonw *j, const struct usage_slot *us, bool figures) {
        if (us->has_enc) {
                jsonw_array(j, "encoder_sessions");
                for (size_t k = 0; k < us->n_enc; k++) {
                        const struct hal_gpu_enc_session *e = &us->enc[k];

                        write_stream(j, figures, e->pid, "codec", e->codec, e->width, e->height, e->avg_fps,
                                     e->avg_latency_us);
                }
                jsonw_end(j);
        }
        if (us->has_fbc) {
                jsonw_array(j, "fbc_sessions");
                for (size_t k = 0; k < us->n_fbc; k++) {
                        const struct hal_gpu_fbc_session *f = &us->fbc[k];

                        write_stream(j, figures, f->pid, "type", f->type, f->width, f->height, f->avg_fps,
                                     f->avg_latency_us);
                }
                jsonw_end(j);
        }
}

/* The members streams_write writes for the slot, moved into the sessions op's entry e. */
static void add_to_entry(cJSON *e, const struct usage_slot *us) {
        struct jsonw j;
        cJSON *tree, *m;

        jsonw_init(&j, true);
        jsonw_object(&j, NULL);
        streams_write(&j, us, true);
        jsonw_end(&j);
        tree = jsonw_take_tree(&j);
        while (tree && (m = tree->child)) {
                cJSON_DetachItemViaPointer(tree, m);
                if (!cJSON_AddItemToObject(e, m->string, m)) /* its name is copied */
                        cJSON_Delete(m);
        }
        cJSON_Delete(tree);
}

void streams_add_to_sessions(cJSON *list, const struct cfg *c, const struct usage *u) {
        cJSON *e;

        cJSON_ArrayForEach(e, list) {
                const cJSON *slot = cJSON_GetObjectItemCaseSensitive(e, "slot");

                for (size_t i = 0; cJSON_IsString(slot) && i < c->n_slots; i++)
                        if (strcmp(c->slots[i].id, slot->valuestring) == 0 && usage_slot_at(u, i))
                                add_to_entry(e, usage_slot_at(u, i));
        }
}
