/* fuzz_gpu_dpm_sclk.c: libFuzzer target for hal_gpu_parse_dpm_sclk() on arbitrary pp_dpm_sclk text. */
#include "gpu_sysfs.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        unsigned cur = 0xa5a5a5a5, max = 0xa5a5a5a5;
        char err[256] = "";
        int r;

        r = hal_gpu_parse_dpm_sclk((const char *)data, size, &cur, &max, err, sizeof(err));
        if (r < 0) {
                if (r != -EPROTO || err[0] == '\0' || cur != 0xa5a5a5a5 || max != 0xa5a5a5a5)
                        abort();
        } else if ((r & ~(HAL_GPU_CLOCK | HAL_GPU_CLOCK_MAX)) || !(r & HAL_GPU_CLOCK_MAX) ||
                   ((r & HAL_GPU_CLOCK) ? cur > max : cur != 0xa5a5a5a5)) {
                /* The maximum is the highest level, so the current one never exceeds it. */
                abort();
        }
        return 0;
}
