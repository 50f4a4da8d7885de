/* held.c: the one queue of control replies that wait for the session service's group commit, for
 * the control socket's clients and MQTT commands alike. */
#include "held.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct held_entry {
        struct held_dest *dest;
        cJSON *reply;
        bool needs_commit;
        char *topic; /* NULL: no route (a socket client) */
        void *corr;
        size_t corr_len;
        struct held_entry *next;
};

static void entry_free(struct held_entry *e) {
        cJSON_Delete(e->reply);
        free(e->topic);
        free(e->corr);
        free(e);
}

int held_push(struct held *q, struct held_dest *d, cJSON *reply, bool needs_commit,
              const struct held_route *route) {
        struct held_entry *e;

        if (d->n >= d->max) {
                cJSON_Delete(reply);
                return -ENOBUFS;
        }
        e = calloc(1, sizeof(*e));
        if (!e) {
                cJSON_Delete(reply);
                return -ENOMEM;
        }
        e->dest = d;
        e->reply = reply;
        e->needs_commit = needs_commit;
        if (route && route->topic) {
                e->topic = strdup(route->topic);
                if (route->corr_len && (e->corr = malloc(route->corr_len))) {
                        memcpy(e->corr, route->corr, route->corr_len);
                        e->corr_len = route->corr_len;
                }
                if (!e->topic || (route->corr_len && !e->corr)) {
                        entry_free(e);
                        return -ENOMEM;
                }
        }
        if (q->tail)
                q->tail->next = e;
        else
                q->head = e;
        q->tail = e;
        d->n++;
        return 0;
}

/* The reply a change that was undone gets instead of its acknowledgement: the same id, from the
 * tree (never from printed text). */
static cJSON *internal_error(cJSON *reply, const char *msg) {
        cJSON *id = cJSON_DetachItemFromObjectCaseSensitive(reply, "id");
        cJSON *r = cJSON_CreateObject(), *e;

        if (!r) {
                cJSON_Delete(id);
                return NULL;
        }
        cJSON_AddItemToObject(r, "id", id ? id : cJSON_CreateNull());
        cJSON_AddFalseToObject(r, "ok");
        e = cJSON_AddObjectToObject(r, "error");
        cJSON_AddStringToObject(e, "code", "INTERNAL");
        cJSON_AddStringToObject(e, "message", msg ? msg : "the change could not be written");
        return r;
}

void held_committed(struct held *q, bool ok, const char *msg) {
        struct held_entry *e;

        /* One entry at a time off the head: a sink may drop its destination (and the entries
         * behind this one) while sending. */
        while ((e = q->head)) {
                struct held_dest *d = e->dest;
                struct held_route route = { e->topic, e->corr, e->corr_len };

                q->head = e->next;
                if (!q->head)
                        q->tail = NULL;
                d->n--;
                if (e->needs_commit && !ok) {
                        cJSON *err;

                        if (d->sink->undone)
                                d->sink->undone(d, cJSON_GetObjectItemCaseSensitive(e->reply, "id"));
                        err = internal_error(e->reply, msg);
                        cJSON_Delete(e->reply);
                        e->reply = err;
                }
                d->sink->send(d, e->reply, &route); /* NULL: the INTERNAL reply could not be made */
                entry_free(e);
        }
}

void held_drop(struct held *q, struct held_dest *d) {
        struct held_entry **pp = &q->head, *e;

        if (d->n == 0)
                return;
        q->tail = NULL;
        while ((e = *pp)) {
                if (e->dest != d) {
                        q->tail = e;
                        pp = &e->next;
                        continue;
                }
                *pp = e->next;
                d->n--;
                entry_free(e);
        }
}

void held_clear(struct held *q) {
        struct held_entry *e;

        while ((e = q->head)) {
                q->head = e->next;
                e->dest->n--;
                entry_free(e);
        }
        q->tail = NULL;
}
