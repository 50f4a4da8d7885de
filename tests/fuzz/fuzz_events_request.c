/* fuzz_events_request.c: libFuzzer target for the "events" op's members ("since", "follow"). */
#include "evhist.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static struct evhist *h;
        const char *code = NULL;
        char msg[256];
        cJSON *req, *res;

        if (!h) {
                if (evhist_new(&h) < 0)
                        abort();
                (void)evhist_add(h, "{\"event\":\"node_drain\"}", 1764598801950000ULL);
        }
        req = cJSON_ParseWithLength((const char *)data, size);
        if (!req)
                return 0;
        res = evhist_op(h, req, 1764598801950000ULL, &code, msg, sizeof(msg));
        /* Either a reply with the history and "following", or a code and a message saying why. */
        if (res) {
                if (!cJSON_IsArray(cJSON_GetObjectItem(res, "events")) ||
                    !cJSON_IsBool(cJSON_GetObjectItem(res, "following")))
                        abort();
        } else if (!code || !msg[0] || !memchr(msg, '\0', sizeof(msg))) {
                abort();
        }
        cJSON_Delete(res);
        cJSON_Delete(req);
        return 0;
}
