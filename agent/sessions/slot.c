/* slot.c: the slot object: each configured slot's runtime state in one table keyed by slot id,
 * carried over a reload by id. */
#include "slot.h"

#include "config.h"
#include "strutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void slot_free(struct slot *sl) {
        free(sl->watch);
        free(sl->meter);
        free(sl->agg);
        if (sl->usage_free)
                sl->usage_free(sl->usage);
        free(sl);
}

struct slot *slot_table_find(const struct slot_table *t, const char *id) {
        for (size_t i = 0; i < t->n; i++)
                if (!strcmp(t->slot[i]->id, id))
                        return t->slot[i];
        return NULL;
}

int slot_table_sync(struct slot_table *t, const struct cfg *c) {
        struct slot *next[SLOTS_MAX] = { 0 };
        bool kept[SLOTS_MAX] = { false }, fresh[SLOTS_MAX] = { false };
        size_t n = c->n_slots < SLOTS_MAX ? c->n_slots : SLOTS_MAX, n_retired = 0;

        /* Everything that can fail first: t changes only once every new slot has its memory. */
        for (size_t i = 0; i < n; i++) {
                for (size_t j = 0; !next[i] && j < t->n; j++)
                        if (!kept[j] && !strcmp(t->slot[j]->id, c->slots[i].id)) {
                                next[i] = t->slot[j];
                                kept[j] = true;
                        }
                if (next[i])
                        continue;
                next[i] = calloc(1, sizeof(*next[i]));
                if (!next[i]) {
                        for (size_t k = 0; k < i; k++)
                                if (fresh[k])
                                        free(next[k]);
                        return -ENOMEM;
                }
                fresh[i] = true;
                plat_strlcpy(next[i]->id, c->slots[i].id, sizeof(next[i]->id));
        }
        slot_table_reap(t);
        for (size_t j = 0; j < t->n; j++)
                if (!kept[j])
                        t->retired[n_retired++] = t->slot[j];
        t->n_retired = n_retired;
        for (size_t i = 0; i < n; i++) {
                next[i]->index = i;
                next[i]->cfg = &c->slots[i];
                t->slot[i] = next[i];
        }
        for (size_t i = n; i < t->n; i++)
                t->slot[i] = NULL;
        t->n = n;
        return 0;
}

void slot_table_reap(struct slot_table *t) {
        for (size_t i = 0; i < t->n_retired; i++) {
                slot_free(t->retired[i]);
                t->retired[i] = NULL;
        }
        t->n_retired = 0;
}

void slot_table_done(struct slot_table *t) {
        slot_table_reap(t);
        for (size_t i = 0; i < t->n; i++)
                slot_free(t->slot[i]);
        *t = (struct slot_table){ 0 };
}
