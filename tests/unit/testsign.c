/* testsign.c: a record signed in one call, for the tests, the test tools and the bench. */
#include "testsign.h"

#include "jws.h"

int tu_jws_sign(struct plat_signer *s, const void *payload, size_t len, char **ret_line) {
        uint8_t sig[PLAT_ES256_SIG_LEN];
        struct jws_input in;
        int r;

        r = jws_input_make(s, payload, len, &in);
        if (r < 0)
                return r;
        r = plat_signer_sign_digest(s, in.digest, sig);
        if (r >= 0)
                r = jws_input_line(&in, sig, ret_line);
        jws_input_done(&in);
        return r;
}
