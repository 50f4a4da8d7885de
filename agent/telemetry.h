/* telemetry.h: the JSON documents the agent publishes (status, telemetry) and prints (--probe). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct cfg;
struct hal_platform;
struct host_sample;
struct sampler;
struct usage;
struct watch;

#define TELE_WIRE_VERSION 1

/* "<prefix>/<region>/<node>/<leaf>" into buf; -ENAMETOOLONG if it does not fit. */
int tele_topic(const struct cfg *c, const char *leaf, char *buf, size_t len);

/* Each returns a caller-freed NUL-terminated JSON string, or NULL when out of memory. */

/* Retained status: state "online" (with platform and slots) or "offline" with a reason
 * ("will" for the broker-published last will, "stopped" on a clean shutdown). */
char *tele_status_json(const struct cfg *c, const struct hal_platform *p, bool online, const char *reason,
                       uint64_t real_usec);

/* One telemetry document for the current sample of `s`, the slots' usage `u` and, when w is not
 * NULL, each slot's scale, conformance and usage against its limits. */
char *tele_telemetry_json(const struct cfg *c, const struct sampler *s, const struct usage *u,
                          const struct watch *w, uint64_t seq);

/* The catalog, and each slot's plan and usage against its scale (render-agentctl spec). */
cJSON *tele_spec_json(const struct cfg *c, const struct sampler *s, const struct usage *u,
                      const struct watch *w);

/* The --probe document: raw counters of one sample (GPUs with their processes); with a config
 * (c and u not NULL) also each slot's measured counters. `errors` lists what could not be read. */
char *tele_probe_json(const struct hal_platform *p, const struct host_sample *h, const struct cfg *c,
                      const struct sampler *s, const struct usage *u, const char *const *errors,
                      size_t n_errors);
