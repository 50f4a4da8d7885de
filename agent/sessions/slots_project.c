/* slots_project.c: the customer's billing dimensions of a session (project, app) and the slots bound
 * to a project: which free slot a reservation may take. */
#include "slots_internal.h"

#include <errno.h>
#include <string.h>

bool slots_valid_project(const char *p) {
        return slots__valid_user(p);
}

int slots__check_projects(size_t n, const char *const *ids, const char *const *projects, char *msg,
                          size_t msg_len) {
        for (size_t i = 0; projects && i < n; i++)
                if (projects[i] && projects[i][0] && !slots_valid_project(projects[i]))
                        return FAIL(-EINVAL, "slots: slot %s: project must be 1..%d of [A-Za-z0-9._@:-]",
                                    ids[i], SLOTS_PROJECT_MAX);
        return 0;
}

int slots_set_projects(struct slots *s, const char *const *projects, char *msg, size_t msg_len) {
        const char *ids[SLOTS_MAX];
        int r;

        for (size_t i = 0; i < s->n; i++)
                ids[i] = s->slot[i].id;
        r = slots__check_projects(s->n, ids, projects, msg, msg_len);
        if (r < 0)
                return r;
        for (size_t i = 0; i < s->n; i++)
                slots__copy(s->bound[i], sizeof(s->bound[i]), projects ? projects[i] : NULL);
        return 0;
}

int slots__fit(const struct slots *s, size_t i, const char *project) {
        if (!project)
                return s->bound[i][0] ? 1 : 0;
        if (!s->bound[i][0])
                return 1;
        return strcmp(s->bound[i], project) ? -1 : 0;
}

int slots__pick(const struct slots *s, const char *project, char *msg, size_t msg_len) {
        size_t busy = 0, barred = 0, other = 0;
        int i = -1, rank = 2;

        /* The best fit, then the first: a project's own slots stay free for it. */
        for (size_t k = 0; k < s->n && rank > 0; k++) {
                int f = s->slot[k].state == SLOTS_FREE ? slots__fit(s, k, project) : 0;

                if (s->slot[k].state != SLOTS_FREE)
                        busy++;
                else if (f < 0)
                        other++;
                else if (f >= rank)
                        continue;
                else if (s->admissible && !s->admissible(s->userdata, k))
                        barred++;
                else {
                        i = (int)k;
                        rank = f;
                }
        }
        if (i < 0 && other > 0)
                return FAIL(
                        -1,
                        "no free slot for project %s: %zu busy or blocked, %zu not admissible, %zu bound to "
                        "other projects",
                        project, busy, barred, other);
        if (i < 0)
                return FAIL(-1, "no free slot: %zu busy or blocked, %zu not admissible", busy, barred);
        return i;
}
