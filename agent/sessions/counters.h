/* counters.h: the byte counters a slot's streaming process reported (report_bytes) for the session
 * the slot holds, and their form in slots.state (its "counters" member, docs/sessions.md): written
 * with the state before a report is acknowledged, so that after a restart the next report counts
 * from the last durable counter and a push target already announced is not announced again. */
#pragma once

#include "sessions.h"
#include "slots.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct slot_table;

/* What the counters of all slots may take of slots.state (an upper bound of their JSON, see
 * counters_size): a report that would add a peer past it is refused. Room for about 300 peers. */
#define COUNTERS_MAX_BYTES (48 * 1024)

struct peer_counter {
        enum sessions_flow flow;
        char id[SLOTS_USER_MAX + 1]; /* "" for the player */
        uint64_t last;
        /* push: push_start went out, once the target's counter was above 0 (a target that never
         * moved a byte is not billed: no push_start, and no push_stop). */
        bool announced;
        /* viewer: it left (viewer_leave) since it last reported; joined again, it reports again. */
        bool left;
};

/* What a slot's streaming process reported, for the session it holds now. */
struct slot_bytes {
        char session[SLOTS_SESSION_LEN + 1];
        uint64_t last_real; /* the previous report; 0: none yet */
        size_t n;
        struct peer_counter peers[SESSIONS_PEERS_MAX];
        uint64_t total[SESSIONS_FLOWS];
        /* The session's earlier counters are unknown (a state file of an agent that did not keep
         * them, or whose counters could not be read): its first report may hold bytes an earlier
         * run already counted, so it only sets the baseline. At most one report interval goes
         * uncounted; nothing is counted twice. */
        bool baseline;
};

/* The counters of each slot of t (in the order of slots) whose bytes.session is the session the slot
 * holds now, as the JSON object of slots.state's "counters" member: {"v":1,"slots":[...]}. NULL
 * when out of memory. Caller frees. */
char *counters_json(const struct slot_table *t, const struct slots *slots);

/* After a start: fills each slot's bytes in t (in the order of slots) from json, the "counters"
 * member slots.state held. A slot whose session the member lists gets its counters back; a held session it
 * does not list never had a report written, and counts from zero. json NULL (a file written before counters
 * were kept): every held session starts with a baseline. -EBADMSG with msg naming the entry and
 * what is wrong (counters.slots[k]...), and t as for json NULL: the content is checked whole
 * before anything is taken. Entries of slots the config lacks, or of sessions that are no longer
 * held, are dropped. */
int counters_restore(struct slot_table *t, const struct slots *slots, const char *json, char *msg,
                     size_t msg_len);

/* Whether a report changed what counters_json writes of a slot (before: as it was): a counter,
 * a peer added, a flag, the baseline. Its time alone is no change. */
bool counters_moved(const struct slot_bytes *before, const struct slot_bytes *after);

/* An upper bound of the bytes counters_json makes of t's slots. */
size_t counters_size(const struct slot_table *t);
