/* fuzz_netdev.c: libFuzzer target for hal_net_parse() on arbitrary /proc/net/dev text. */
#include "net.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct hal_net_sample s, before;
        char err[256] = "";
        int r;

        memset(&s, 0xa5, sizeof(s));
        memcpy(&before, &s, sizeof(s));
        r = hal_net_parse((const char *)data, size, &s, err, sizeof(err));
        if (r < 0) {
                /* A failure names the file and leaves *ret alone. */
                if (strncmp(err, "/proc/net/dev", strlen("/proc/net/dev")) != 0 ||
                    memcmp(&s, &before, sizeof(s)) != 0)
                        abort();
                return 0;
        }
        if (r != 0 || s.n == 0 || s.n > HAL_NET_MAX_IFACES || !s.ifaces)
                abort();
        /* Every entry is a NUL-terminated name that hal_net_find() gets back to. */
        for (size_t i = 0; i < s.n; i++) {
                size_t len = strnlen(s.ifaces[i].name, HAL_NET_IFNAME_MAX);

                if (len == 0 || len >= HAL_NET_IFNAME_MAX ||
                    hal_net_find(&s, s.ifaces[i].name) != &s.ifaces[i])
                        abort();
        }
        hal_net_sample_done(&s);
        if (s.n != 0 || s.ifaces)
                abort();
        return 0;
}
