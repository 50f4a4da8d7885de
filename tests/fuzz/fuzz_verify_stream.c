/* fuzz_verify_stream.c: libFuzzer target for the record-stream audit (render-agentctl verify) on arbitrary
 * input. */
#include "audit.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Without a key: signatures are fuzzed by fuzz_jws_verify; here every well-formed JWS reaches the
 * payload parser, the node check, the grouping, the chain and both printers. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static FILE *null;
        struct audit *a = NULL;
        uint64_t lineno = 0;
        size_t start = 0;

        if (!null && !(null = fopen("/dev/null", "w")))
                abort();
        if (audit_new(NULL, &a) < 0)
                return 0;
        /* Inputs of odd length (mutations reach both kinds) as if a certificate with CN n1 was
         * given: records of other nodes are then bad lines instead of nodes of their own. */
        if (size % 2 && audit_expect_node(a, "n1") < 0)
                abort();
        while (start <= size) {
                const uint8_t *nl = memchr(data + start, '\n', size - start);
                size_t end = nl ? (size_t)(nl - data) : size;
                /* Each line an unterminated copy, as the reader hands them over. */
                char *line = malloc(end - start ? end - start : 1);

                if (!line)
                        break;
                memcpy(line, data + start, end - start);
                if (audit_line(a, line, end - start, ++lineno) < 0)
                        abort(); /* neither -E2BIG nor -ENOMEM can happen at fuzzing sizes */
                free(line);
                start = end + 1;
        }
        audit_finish(a);
        if (audit_ok(a)) /* no key: never */
                abort();
        audit_print_text(a, null);
        audit_print_json(a, null);
        audit_free(a);
        return 0;
}
