/* fuzz_config.c: libFuzzer target for cfg_parse() on arbitrary configuration text. */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct cfg_problems p = { 0 };
        struct cfg *c = NULL;
        char *buf;
        int r;

        if (size > CFG_MAX_BYTES)
                return 0;
        buf = malloc(size + 1);
        if (!buf)
                return 0;
        memcpy(buf, data, size);
        buf[size] = '\0';
        r = cfg_parse("/fuzz/agent.json", buf, size, &c, &p);
        /* Contract: success has no problems and a config; failure has problems and none. */
        if ((r == 0) != (c != NULL) || (r == 0 && p.n != 0) || (r == -EINVAL && p.n == 0))
                abort();
        for (size_t i = 0; i < p.n; i++)
                if (strncmp(p.msgs[i], "/fuzz/agent.json", 16) != 0)
                        abort();
        cfg_free(c);
        cfg_problems_done(&p);
        free(buf);
        return 0;
}
