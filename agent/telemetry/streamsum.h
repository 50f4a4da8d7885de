/* streamsum.h: a player session's stream quality, summed tick by tick from its slot's NVENC and
 * NvFBC sessions, for the session_end record: what a biller or support needs when a customer says
 * the stream was bad. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

struct usage_slot;

#define STREAMSUM_IDS_MAX 32 /* distinct driver sessions told apart per kind; more count as "more" */

/* One kind of stream session (encode or capture) over the player session. */
struct streamsum_kind {
        bool listed; /* the driver listed this kind for the slot at least once */
        uint32_t ids[STREAMSUM_IDS_MAX];
        uint8_t n_ids;
        bool more_ids;    /* more distinct sessions than ids[] holds */
        uint64_t samples; /* (tick, session) pairs summed */
        uint64_t sum_fps, sum_latency_us;
        uint32_t min_fps, max_latency_us;
};

/* Plain data: zeroed (or streamsum_reset) is empty; copied by assignment. */
struct streamsum {
        uint64_t ticks; /* ticks that added a fresh GPU sample */
        struct streamsum_kind enc, fbc;
};

void streamsum_reset(struct streamsum *s);

/* Adds one tick of the slot's stream sessions (us borrowed). A stale GPU sample (the driver stuck:
 * the same figures again) adds nothing. */
void streamsum_add(struct streamsum *s, const struct usage_slot *us, bool gpus_stale);

/* The summary as a record member: "ticks" summed, and "encoder" and "fbc" objects (each where the
 * driver listed that kind) with the distinct driver sessions seen and, when any, the (tick, session)
 * "samples" and the average and worst FPS and latency over them; or NULL when the driver never listed a
 * stream session for the slot (nothing known: not "no streams") or out of memory. Caller deletes. */
cJSON *streamsum_json(const struct streamsum *s);
