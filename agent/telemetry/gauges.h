/* gauges: flat documents, one per host, slot and GPU, that an exporter mapping one JSON object per
 * topic (Debian's prometheus-mqtt-exporter) turns into labelled series without code. */
#pragma once

#include <stddef.h>

struct cfg;
struct slots;

/* Called once per document: topic and payload are borrowed for the call only. A negative return
 * stops the round and is returned by gauges_publish. */
typedef int (*gauges_publish_fn)(void *userdata, const char *topic, const char *payload);

/* Derives the gauges from `telemetry` (a telemetry document as published, borrowed) and the slots'
 * states (`slots` may be NULL: no `held` members) and hands each to `fn`: `gauges/host`,
 * `gauges/slot/<id>/<scale>` and `gauges/gpu/<index>` below the node's topic. Returns the number
 * of documents, -EPROTO when `telemetry` is not a telemetry document, -ENAMETOOLONG, -ENOMEM, or
 * what `fn` returned. */
int gauges_publish(const struct cfg *c, const char *telemetry, const struct slots *slots,
                   gauges_publish_fn fn, void *userdata);
