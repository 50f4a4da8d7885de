/* fuzz_zoneinfo.c: libFuzzer target for hal_mem_zoneinfo_low_pages() on arbitrary /proc/zoneinfo text. */
#include "mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint64_t pages = 0xa5a5, before = pages;
        char err[256] = "";
        int r;

        r = hal_mem_zoneinfo_low_pages((const char *)data, size, &pages, err, sizeof(err));
        /* A failure names the file and leaves *ret alone; success writes no error. */
        if (r < 0 && (strncmp(err, "/proc/zoneinfo", strlen("/proc/zoneinfo")) != 0 || pages != before))
                abort();
        if (r > 0 || (r == 0 && err[0]))
                abort();
        return 0;
}
