/* fuzz_gpu_devfreq_load.c: libFuzzer target for hal_gpu_parse_devfreq_load() on arbitrary devfreq load text.
 */
#include "gpu_sysfs.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        unsigned pct = 0xa5a5a5a5;
        uint64_t hz = 0xa5a5a5a5a5a5a5a5;
        char err[256] = "";
        int r;

        r = hal_gpu_parse_devfreq_load((const char *)data, size, &pct, &hz, err, sizeof(err));
        if (r < 0) {
                if (err[0] == '\0' || pct != 0xa5a5a5a5 || hz != 0xa5a5a5a5a5a5a5a5)
                        abort();
        } else if (r != 0 || pct > 100) {
                abort();
        }
        return 0;
}
