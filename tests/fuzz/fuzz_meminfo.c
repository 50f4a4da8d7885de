/* fuzz_meminfo.c: libFuzzer target for hal_mem_parse() on arbitrary /proc/meminfo text. */
#include "mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct hal_mem_sample s, before;
        char err[256] = "";
        int r;

        memset(&s, 0xa5, sizeof(s));
        memcpy(&before, &s, sizeof(s));
        r = hal_mem_parse((const char *)data, size, &s, err, sizeof(err));
        if (r < 0) {
                /* A failure names the file and leaves *ret alone. */
                if (strncmp(err, "/proc/meminfo", strlen("/proc/meminfo")) != 0 ||
                    memcmp(&s, &before, sizeof(s)) != 0)
                        abort();
        } else if (r != 0 || s.total_bytes % 1024 != 0 || s.available_bytes % 1024 != 0) {
                abort();
        }
        return 0;
}
