/* config_slots.c: the config's "slots" section: each slot's id, scale, cgroup, interface, GPU, project. */
#include "config_internal.h"

#include "cgroup.h"
#include "strutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void parse_slot(struct cfg_ctx *x, const cJSON *s, size_t i, struct cfg *c) {
        static const char *const keys[] = { "id", "scale", "cgroup", "iface", "gpu", "project", NULL };
        struct cfg_slot *slot = &c->slots[i];
        char where[32], name[64];
        const cJSON *gpu;

        snprintf(where, sizeof(where), "slots[%zu]", i);
        if (!cJSON_IsObject(s)) {
                cfg__problem(x, "%s: must be an object (got %s)", where, cfg__type_name(s));
                return;
        }
        cfg__check_keys(x, s, where, keys);
#define NAME(k) (snprintf(name, sizeof(name), "%s.%s", where, k), name)
        cfg__get_string(x, s, "id", NAME("id"), true, cfg__check_name, &slot->id);
        cfg__get_string(x, s, "scale", NAME("scale"), true, cfg__check_name, &slot->scale);
        if (slot->scale && !spec_find(c, slot->scale)) {
                if (strcmp(slot->scale, "XL") == 0 || strncmp(slot->scale, "arm-", 4) == 0)
                        cfg__problem(x,
                                     "%s: scale \"%s\" has no published figures; define it under \"scales\"",
                                     name, slot->scale);
                else
                        cfg__problem(
                                x,
                                "%s: unknown scale \"%s\" (the catalog has S, M, L, cpu-4, cpu-8, cpu-16 "
                                "and "
                                "what \"scales\" defines)",
                                name, slot->scale);
        }
        cfg__get_string(x, s, "cgroup", NAME("cgroup"), false, cfg__check_cgroup, &slot->cgroup);
        if (slot->cgroup) {
                char cg[256];

                /* Ending a session kills every process of the slot's cgroup: "." or "./" would be
                 * the whole host. Kept in canonical form, so that the same cgroup spelt twice is
                 * found below. */
                if (hal_cgroup_normalize(slot->cgroup, cg, sizeof(cg)) == 0)
                        cfg__problem(x,
                                     "%s: \"%s\" (slot %s) is the root of the cgroup mount itself; "
                                     "a slot's cgroup must be strictly below it, e.g. "
                                     "\"render.slice/slot-0.scope\"",
                                     NAME("cgroup"), slot->cgroup, slot->id ? slot->id : "?");
                else if (strcmp(cg, slot->cgroup) != 0)
                        strcpy(slot->cgroup, cg); /* never longer */
        }
        cfg__get_string(x, s, "iface", NAME("iface"), false, cfg__check_iface, &slot->iface);
        cfg__get_string(x, s, "project", NAME("project"), false, cfg__check_project, &slot->project);
        gpu = cJSON_GetObjectItemCaseSensitive(s, "gpu");
        if (gpu && !cJSON_IsNull(gpu)) {
                unsigned g = 0;

                if (!cJSON_IsNumber(gpu))
                        cfg__problem(x, "%s: must be a GPU index 0..63 or null (got %s)", NAME("gpu"),
                                     cfg__type_name(gpu));
                else {
                        cfg__get_uint(x, s, "gpu", NAME("gpu"), 0, 63, &g);
                        slot->gpu = (int)g;
                }
        }
#undef NAME
        /* A slot's interface and cgroup measure that slot alone; sharing one would bill twice. */
        for (size_t j = 0; j < i; j++) {
                const struct cfg_slot *o = &c->slots[j];

                if (slot->id && plat_streq_ptr(o->id, slot->id))
                        cfg__problem(x, "%s.id: \"%s\" is already the id of slots[%zu]", where, slot->id, j);
                if (slot->iface && plat_streq_ptr(o->iface, slot->iface))
                        cfg__problem(x, "%s.iface: \"%s\" is already used by slot \"%s\"", where,
                                     slot->iface, o->id ? o->id : "?");
                if (slot->cgroup && plat_streq_ptr(o->cgroup, slot->cgroup))
                        cfg__problem(x, "%s.cgroup: \"%s\" is already used by slot \"%s\"", where,
                                     slot->cgroup, o->id ? o->id : "?");
        }
}

void cfg__parse_slots(struct cfg_ctx *x, const cJSON *root, struct cfg *c) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "slots");
        size_t n, i = 0;
        const cJSON *s;

        if (!arr)
                return;
        if (!cJSON_IsArray(arr)) {
                cfg__problem(x, "slots: must be an array (got %s)", cfg__type_name(arr));
                return;
        }
        n = (size_t)cJSON_GetArraySize(arr);
        if (n > CFG_MAX_SLOTS) {
                cfg__problem(x, "slots: at most %d slots per host (got %zu)", CFG_MAX_SLOTS, n);
                return;
        }
        c->slots = calloc(n ? n : 1, sizeof(*c->slots));
        if (!c->slots) {
                x->oom = true;
                return;
        }
        c->n_slots = n;
        for (i = 0; i < n; i++)
                c->slots[i].gpu = -1;
        i = 0;
        cJSON_ArrayForEach(s, arr) parse_slot(x, s, i++, c);
}
