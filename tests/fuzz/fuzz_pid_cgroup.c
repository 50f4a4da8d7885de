/* fuzz_pid_cgroup.c: libFuzzer target for hal_cgroup_parse_pid_file() on arbitrary /proc/<pid>/cgroup text.
 */
#include "cgroup.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char path[64], before[64], err[256] = "";
        int r;

        memset(path, 0xa5, sizeof(path));
        memcpy(before, path, sizeof(path));
        r = hal_cgroup_parse_pid_file((const char *)data, size, path, sizeof(path), err, sizeof(err));
        if (r < 0) {
                /* A failure says why and leaves ret_path alone. */
                if (err[0] == '\0' || memcmp(path, before, sizeof(path)) != 0)
                        abort();
        } else {
                /* A relative path that fits, came from the input, and holds no newline. */
                size_t n = strnlen(path, sizeof(path));

                if (r != 0 || n == sizeof(path) || path[0] == '/' || memchr(path, '\n', n) ||
                    (n > 0 && !memmem(data, size, path, n)))
                        abort();
        }
        return 0;
}
