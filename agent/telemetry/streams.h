/* streams.h: a slot's stream sessions as the GPU driver lists them (NVENC encode, NvFBC capture:
 * per-stream FPS and latency, what a cloud-rendering customer complains about), as JSON for
 * telemetry, --probe and the sessions op. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>

struct cfg;
struct jsonw;
struct usage;
struct usage_slot;

/* The open object of j gains "encoder_sessions" and "fbc_sessions" where the slot can tell them
 * (us->has_enc, us->has_fbc): an empty array is "none now", an absent one "not known here". Each
 * stream says what it is (pid, codec or capture type, size); with figures also its average FPS
 * and latency (the sessions op, the one-sample document; the status document lists streams
 * without them, telemetry carries their gauges). */
void streams_write(struct jsonw *j, const struct usage_slot *us, bool figures);

/* Each entry of the sessions op's list (borrowed; entries name their "slot") gains its slot's
 * stream sessions, as streams_write writes them. Out of memory leaves an entry without them. */
void streams_add_to_sessions(cJSON *list, const struct cfg *c, const struct usage *u);
