/* jsonnum.h: whole numbers read from JSON (state files, requests): cJSON keeps numbers as
 * doubles, exact only up to 2^53; and figures rounded for the documents. */
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

/* round(v): to the nearest whole number, halves away from zero, the sign kept (-0.2 gives -0.0);
 * NaN and infinities as they are. The same result as libm's round() for every double, so that
 * render-agent links no libm for this one function: libm costs every agent a written page and its
 * share of the library's code (docs/performance.md). Below 2^52 the cut to an integer and the
 * difference are exact; from 2^52 up every double is whole. */
static inline double jsonnum_round(double v) {
        double t;

        if (!(__builtin_fabs(v) < 4503599627370496.0))
                return v;
        t = (double)(int64_t)v;
        if (__builtin_fabs(v - t) >= 0.5)
                t += v > 0 ? 1.0 : -1.0;
        return __builtin_copysign(t, v);
}
