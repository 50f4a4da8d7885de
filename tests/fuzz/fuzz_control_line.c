/* fuzz_control_line.c: libFuzzer target for one control-socket request line (diag_handle_line). */
#include "diag.h"
#include "jsonstrict.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static cJSON *handler(const char *op, const cJSON *req, const struct plat_peer *peer, void *ud,
                      bool *ret_held, const char **ret_code, char *msg, size_t msglen) {
        (void)ret_held;
        (void)req;
        (void)peer;
        (void)ud;
        if (strcmp(op, "status") == 0)
                return cJSON_CreateObject();
        *ret_code = "BAD_REQUEST";
        strncpy(msg, "unknown op", msglen - 1);
        return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct plat_peer peer = { .pid = 1, .uid = 0, .gid = 0 };
        char *reply = diag_handle_line((const char *)data, size, &peer, handler, NULL, NULL);
        char why[256];
        cJSON *j = NULL;

        /* Every line gets exactly one reply that is itself a JSON object with "ok", and one the
         * agent would take as strictly as it takes requests: whatever bytes the request had, none
         * that is not UTF-8, no control character, no key twice goes back. */
        if (!reply)
                abort();
        if (jsonstrict_parse_object(reply, strlen(reply), "reply", &j, why, sizeof(why)) < 0 ||
            !cJSON_IsBool(cJSON_GetObjectItem(j, "ok")))
                abort();
        if (!jsonstrict_printable(cJSON_GetObjectItem(j, "id"), "\"id\"", why, sizeof(why)))
                abort();
        cJSON_Delete(j);
        free(reply);
        return 0;
}
