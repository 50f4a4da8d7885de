/* held.h: the one queue of control replies that wait for the session service's group commit, for
 * the control socket's clients and MQTT commands alike. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

struct held_dest;

/* Where an MQTT reply is published: the topic and the command's correlation data (none for a
 * socket client). Borrowed by held_push, which copies it. */
struct held_route {
        const char *topic;
        const void *corr;
        size_t corr_len;
};

/* How one kind of destination takes its replies. */
struct held_sink {
        /* Sends one reply (borrowed: the queue frees it after). `route` is the one given to
         * held_push (topic NULL when none was). It may drop the destination (held_drop), its
         * queued replies with it. `reply` is NULL when a failed commit's INTERNAL reply could not
         * be made (out of memory): the sink tells its destination, as it can, that no answer
         * comes (a socket client is closed), so that nobody waits for it. */
        void (*send)(struct held_dest *d, const cJSON *reply, const struct held_route *route);
        /* A reply that needed the commit is about to go out as INTERNAL: the change it
         * acknowledged was undone. `id` is the request's (borrowed; may be a cJSON null). NULL:
         * nothing to do. */
        void (*undone)(struct held_dest *d, const cJSON *id);
};

/* One destination: a socket client, or the MQTT command channel. Replies to it leave in the order
 * they were made. Owned by its transport (embedded in its client or state), which sets sink,
 * userdata and max, and drops it from the queue (held_drop) before freeing it. */
struct held_dest {
        const struct held_sink *sink;
        void *userdata; /* the sink's (a socket client, the agent) */
        size_t max;     /* replies it may have queued; held_push says -ENOBUFS past it */
        size_t n;       /* replies queued for it now */
};

struct held_entry;

/* Every reply held, in the order they were made. Zero-initialised: empty. */
struct held {
        struct held_entry *head, *tail;
};

/* Whether a reply to `d` must be queued rather than sent now: it acknowledges a change not yet
 * written (`needs_commit`), or a reply made before it to the same destination waits. */
static inline bool held_must_wait(const struct held_dest *d, bool needs_commit) {
        return needs_commit || d->n > 0;
}

/* Queues `reply` (takes ownership, also on failure) for `d`, until the next held_committed.
 * `route` may be NULL (a socket client). -ENOBUFS when d has d->max replies queued; -ENOMEM. */
int held_push(struct held *q, struct held_dest *d, cJSON *reply, bool needs_commit,
              const struct held_route *route);

/* The group commit is done: every queued reply goes out in order, a reply that needed the commit
 * replaced, when !ok, by {"id":<its id>,"ok":false,"error":{"code":"INTERNAL","message":msg}}
 * after its sink's `undone`. The queue is empty after. */
void held_committed(struct held *q, bool ok, const char *msg);

/* Drops what is queued for `d` unsent (a client that went away). */
void held_drop(struct held *q, struct held_dest *d);

/* Drops everything queued (shutdown). */
void held_clear(struct held *q);
