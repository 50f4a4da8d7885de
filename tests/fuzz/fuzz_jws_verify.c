/* fuzz_jws_verify.c: libFuzzer target for jws_parse_verify() and jws_parse_unverified() on arbitrary lines.
 */
#include "base64.h"
#include "jws.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* RFC 7515 A.3's key: the seed corpus holds its example, so the whole path up to a good signature
 * is reachable. */
static struct plat_verifier *key(void) {
        static struct plat_verifier *v;
        uint8_t x[32], y[32];
        size_t n;

        if (v)
                return v;
        if (plat_b64url_decode("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", 43, x, sizeof(x), &n) < 0 ||
            plat_b64url_decode("x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", 43, y, sizeof(y), &n) < 0 ||
            plat_verifier_from_point(x, y, &v, NULL, 0) < 0)
                abort();
        return v;
}

static void check(int r, const char *msg, char *payload, size_t len) {
        /* Contract: success with a NUL-terminated payload, or one of the documented errors with a message.
         */
        if (r == 0) {
                if (!payload || payload[len] != '\0')
                        abort();
                free(payload);
                return;
        }
        if (payload || !msg[0] ||
            (r != -EMSGSIZE && r != -EPROTO && r != -EOPNOTSUPP && r != -EKEYREJECTED && r != -EBADMSG))
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char msg[512] = "", *payload = NULL;
        size_t len = 0;
        char *buf;

        /* An unterminated copy: ASan catches a parser that reads past size. */
        buf = malloc(size ? size : 1);
        if (!buf)
                return 0;
        memcpy(buf, data, size);
        check(jws_parse_verify(buf, size, key(), &payload, &len, msg, sizeof(msg)), msg, payload, len);
        msg[0] = '\0';
        payload = NULL;
        check(jws_parse_unverified(buf, size, &payload, &len, msg, sizeof(msg)), msg, payload, len);
        free(buf);
        return 0;
}
