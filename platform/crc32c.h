/* crc32c.h: CRC-32C (Castagnoli), the checksum of the spool's records and the slot-state file's regions. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The CRC-32C of the len bytes at buf, continuing from crc (0 to start): crc32c(crc32c(0, a), b)
 * is the CRC of a followed by b. "123456789" gives 0xe3069283. Thread-safe once the first call
 * returned (its tables are built on that call). */
uint32_t plat_crc32c(uint32_t crc, const void *buf, size_t len);
