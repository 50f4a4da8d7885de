/* fuzz_cgroup_cpu_stat.c: libFuzzer target for hal_cgroup_parse_cpu_stat() on arbitrary cpu.stat text. */
#include "cgroup.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint64_t usage = 0xa5a5a5a5a5a5a5a5;
        char err[256] = "";
        int r;

        r = hal_cgroup_parse_cpu_stat((const char *)data, size, &usage, err, sizeof(err));
        if (r < 0) {
                if (err[0] == '\0' || usage != 0xa5a5a5a5a5a5a5a5)
                        abort();
        } else if (r != 0 || !memmem(data, size, "usage_usec", strlen("usage_usec"))) {
                abort();
        }
        return 0;
}
