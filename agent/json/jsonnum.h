/* jsonnum.h: whole numbers read from JSON (state files, requests): cJSON keeps numbers as
 * doubles, exact only up to 2^53. */
#pragma once

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

/* 2^53: past it a JSON number is no longer an exact integer. */
#define JSONNUM_MAX_EXACT 9007199254740992.0

/* True, and *ret, when v is a number that is a whole 0..2^53; false (ret untouched) otherwise,
 * NULL included. */
static inline bool jsonnum_whole(const cJSON *v, uint64_t *ret) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= JSONNUM_MAX_EXACT) ||
            floor(v->valuedouble) != v->valuedouble)
                return false;
        *ret = (uint64_t)v->valuedouble;
        return true;
}
