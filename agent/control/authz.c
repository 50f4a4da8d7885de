/* authz.c: who on the control socket may change sessions, and who may read who is using them. */
#include "authz.h"

#include "cleanup.h"

#include <string.h>
#include <unistd.h>

/* The members of a read's result that say who a user is or where one connects from. */
static const char *const personal[] = { "user", "client_ip" };

bool authz_listed(const struct cfg_allow *list, const struct plat_peer *p) {
        if (!p)
                return false;
        for (size_t i = 0; i < list->n_uids; i++)
                if (list->uids[i] == p->uid)
                        return true;
        for (size_t i = 0; i < list->n_gids; i++) {
                if (list->gids[i] == p->gid)
                        return true;
                for (size_t g = 0; g < p->n_groups; g++)
                        if (list->gids[i] == p->groups[g])
                                return true;
        }
        return false;
}

bool authz_may_change(const struct cfg *c, const struct plat_peer *p) {
        if (!p)
                return false;
        return p->uid == 0 || p->uid == geteuid() || authz_listed(&c->control_allow, p);
}

bool authz_may_read_personal(const struct cfg *c, const struct plat_peer *p) {
        if (!p)
                return false;
        return !c->control_read_set || authz_may_change(c, p) || authz_listed(&c->control_read, p);
}

static void strip(cJSON *v) {
        cJSON *c, *next;

        for (c = v ? v->child : NULL; c; c = next) {
                bool drop = false;

                next = c->next;
                for (size_t i = 0; c->string && i < ELEMENTSOF(personal); i++)
                        drop |= !strcmp(c->string, personal[i]);
                if (drop)
                        cJSON_Delete(cJSON_DetachItemViaPointer(v, c));
                else
                        strip(c);
        }
}

void authz_redact(cJSON *res) {
        if (!res)
                return;
        strip(res);
        cJSON_AddTrueToObject(res, "redacted");
}
