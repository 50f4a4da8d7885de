/* testsign.h: a record signed in one call, for the tests, the test tools and the bench (the agent
 * signs in steps, agent/metering/signing.c, to use signatures made ahead). */
#pragma once

#include "crypto.h"

#include <stddef.h>

/* Signs len payload bytes with s: *ret_line is the record line jws_input_line() makes (caller
 * frees). -EMSGSIZE when len > JWS_PAYLOAD_MAX, -ENOMEM, or the signer's error. */
int tu_jws_sign(struct plat_signer *s, const void *payload, size_t len, char **ret_line);
