/* fuzz_statm.c: libFuzzer target for plat_parse_proc_statm() on arbitrary /proc/self/statm text. */
#include "selfstat.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint64_t rss = 0xa5a5a5a5a5a5a5a5ULL;
        char err[256] = "";
        int r = plat_parse_proc_statm((const char *)data, size, 4096, &rss, err, sizeof(err));

        if (r < 0) {
                /* A failure names the file and leaves *ret alone. */
                if ((r != -EPROTO && r != -ERANGE) || strncmp(err, "/proc/self/statm", 16) != 0 ||
                    rss != 0xa5a5a5a5a5a5a5a5ULL)
                        abort();
        } else if (r != 0 || rss % 4096 != 0) {
                abort();
        }
        return 0;
}
