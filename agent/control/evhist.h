/* evhist.h: the agent's recent events in memory, for `render-agentctl events [--since] [--follow]`. */
#pragma once

#include "diag.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

/* The history keeps the last EVHIST_MAX events, and at most EVHIST_MAX_BYTES of them: the oldest
 * go first. It is memory only: a restart starts it empty (the events went out on MQTT). */
#define EVHIST_MAX 512
#define EVHIST_MAX_BYTES (256 * 1024)

struct evhist;

int evhist_new(struct evhist **ret);
void evhist_free(struct evhist *h);

/* Keeps a copy of `doc` (one event document, as published on .../events) made at real_usec. */
int evhist_add(struct evhist *h, const char *doc, uint64_t real_usec);

/* Adds to the array `arr`, oldest first, each kept event made at or after since_usec. */
int evhist_since(const struct evhist *h, uint64_t since_usec, cJSON *arr);

/* Reads a request's "since": absent (every kept event), a number of seconds before now_usec, or
 * an RFC 3339 UTC time ("2026-12-01T14:20:01Z", fraction optional). On a bad value returns
 * -EINVAL with msg saying what was wrong. */
int evhist_parse_since(const cJSON *v, uint64_t now_usec, uint64_t *ret_usec, char *msg, size_t len);

/* The "events" op: {"op":"events","since":..,"follow":true}. Returns the reply's members
 * ("events": the history since, "following": whether the connection now streams new events, see
 * diag_publish), or NULL with *ret_code and msg set. */
cJSON *evhist_op(const struct evhist *h, const cJSON *req, uint64_t now_usec, const char **ret_code,
                 char *msg, size_t msglen);

/* Keeps the event `o` (borrowed) and streams it to the followers of `d` (may be NULL): the
 * redacted copy (authz_redact) to those that may not read user ids and client addresses. */
void evhist_record(struct evhist *h, struct diag *d, const cJSON *o, uint64_t real_usec);
