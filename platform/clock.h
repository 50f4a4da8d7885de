/* clock.h: the one source of time for data (timestamps, rates); tests can pin it. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define USEC_PER_SEC UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)

uint64_t plat_now_mono_usec(void);
uint64_t plat_now_real_usec(void);

/* Tests: pin both clocks (0 = use the real one again). */
void plat_clock_set_fake(uint64_t mono_usec, uint64_t real_usec);

/* "2026-11-24T10:54:55.123Z" into buf (at least 32 bytes). Returns buf. */
char *plat_format_rfc3339_ms(uint64_t real_usec, char *buf, size_t len);
