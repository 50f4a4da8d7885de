/* flows.h: what a report_bytes request may say: well-formed counters, peer ids that are text, and
 * byte deltas no faster than the configured ceiling (docs/protocol.md, report_bytes). */
#pragma once

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

/* The shortest span a delta's rate is taken over: a burst of reports cannot make a small delta
 * look fast, and a clock step backwards cannot make the span 0. */
#define FLOWS_SPAN_MIN_USEC 1000000ULL

/* Checks a report's `counters` whole, before anything is counted: an array of at most
 * SESSIONS_PEERS_MAX objects, each a flow ("player", "viewer", "push"), for viewer and push a peer
 * (1..SLOTS_USER_MAX bytes of UTF-8 text without control characters: it reaches signed records),
 * bytes a whole number in 0..2^53, and no peer twice. 0, or -EPROTO with msg naming the entry
 * (counters[k]) and what is wrong; a peer that is not text is not echoed. */
int flows_check_counters(const cJSON *counters, char *msg, size_t msg_len);

/* Whether counters[k] (c, checked) moving `bytes` between from_usec and to_usec (wall clock) stays
 * within max_mbps: the span counts as at least FLOWS_SPAN_MIN_USEC. 0, or -ERANGE with msg naming
 * the entry, its flow and peer, the bytes, the span and the rate. */
int flows_check_rate(const cJSON *c, size_t k, uint64_t bytes, uint64_t from_usec, uint64_t to_usec,
                     unsigned max_mbps, char *msg, size_t msg_len);
