/* telemetry_internal.h: the writers telemetry.c shares with tele_agg.c; nothing else includes it. */
#pragma once

#include <stdint.h>

struct cfg;
struct jsonw;
struct tele_self;

/* "v" (version), "type", "node", "region" (with c) and "ts" (with real_usec). */
void tele__header(struct jsonw *j, unsigned version, const char *type, const struct cfg *c,
                  uint64_t real_usec);
/* The agent's own cost as the object `key`. */
void tele__self(struct jsonw *j, const char *key, const struct tele_self *self);
