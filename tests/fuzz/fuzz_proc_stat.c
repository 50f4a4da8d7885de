/* fuzz_proc_stat.c: libFuzzer target for hal_cpu_parse() on arbitrary /proc/stat text. */
#include "cpu.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct hal_cpu_sample s, before;
        char err[256] = "";
        int r;

        memset(&s, 0xa5, sizeof(s));
        memcpy(&before, &s, sizeof(s));
        r = hal_cpu_parse((const char *)data, size, &s, err, sizeof(err));
        if (r < 0) {
                /* A failure names the file and leaves *ret alone. */
                if (strncmp(err, "/proc/stat", strlen("/proc/stat")) != 0 ||
                    memcmp(&s, &before, sizeof(s)) != 0)
                        abort();
        } else if (r != 0 || s.cores == 0 || s.idle_jiffies > s.total_jiffies) {
                abort();
        }
        return 0;
}
