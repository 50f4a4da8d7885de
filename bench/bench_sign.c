/* bench_sign.c: what signing and checking metering records costs: ES256 sign and verify, whole JWS records.
 */
#include "crypto.h"
#include "jws.h"
#include "testsign.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A typical record payload: the common members and a bandwidth minute's. */
static const char payload[] =
        "{\"v\":1,\"type\":\"bandwidth_minute\",\"node\":\"render-eu-0001\",\"region\":\"eu-west\",\"seq\":"
        "123456,"
        "\"prev\":\"5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef\","
        "\"ts\":\"2026-12-01T13:00:00.123Z\",\"slot\":\"slot-0\",\"session\":\"7d3c1f0e9b2a4c58\","
        "\"user\":\"u-1234567\",\"minute\":\"2026-12-01T12:59:00Z\",\"player_bytes\":61234567,"
        "\"viewer_bytes\":0,\"push_bytes\":1234567,\"viewers\":0}";

static double cpu_now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(const char *what, unsigned n, double seconds) {
        printf("%-44s %9.1f us   %9.0f /s\n", what, seconds / n * 1e6, n / seconds);
}

static void die(const char *what, const char *msg) {
        fprintf(stderr, "bench_sign: %s: %s\n", what, msg);
        exit(1);
}

int main(int argc, char **argv) {
        unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 1000;
        struct plat_signer *s = NULL;
        struct plat_verifier *v = NULL;
        uint8_t sig[PLAT_ES256_SIG_LEN], d[PLAT_SHA256_LEN];
        char msg[512], *line = NULL, *out = NULL;
        size_t len;
        double t;

        if (n == 0) {
                fprintf(stderr, "usage: bench_sign [N]\n");
                return 2;
        }
        if (plat_signer_generate(&s, msg, sizeof(msg)) < 0 ||
            plat_verifier_from_signer(s, &v, msg, sizeof(msg)) < 0)
                die("key", msg);
        printf("%u operations each, CPU time per operation (payload %zu bytes)\n", n, strlen(payload));

        t = cpu_now();
        for (unsigned i = 0; i < n * 100; i++)
                plat_sha256(payload, strlen(payload), d);
        report("SHA-256 of the payload (prev)", n * 100, cpu_now() - t);

        t = cpu_now();
        for (unsigned i = 0; i < n; i++)
                if (plat_signer_sign(s, payload, strlen(payload), sig) < 0)
                        die("sign", "failed");
        report("ES256 sign (plat_signer_sign)", n, cpu_now() - t);

        t = cpu_now();
        for (unsigned i = 0; i < n; i++) {
                free(line);
                if (tu_jws_sign(s, payload, strlen(payload), &line) < 0)
                        die("tu_jws_sign", "failed");
        }
        report("record: tu_jws_sign (b64, header, sign, line)", n, cpu_now() - t);

        t = cpu_now();
        for (unsigned i = 0; i < n; i++)
                if (plat_verifier_verify(v, payload, strlen(payload), sig) < 0)
                        die("verify", "failed");
        report("ES256 verify (plat_verifier_verify)", n, cpu_now() - t);

        t = cpu_now();
        for (unsigned i = 0; i < n; i++) {
                if (jws_parse_verify(line, strlen(line), v, &out, &len, msg, sizeof(msg)) < 0)
                        die("jws_parse_verify", msg);
                free(out);
        }
        report("record: jws_parse_verify (parse, verify)", n, cpu_now() - t);

        free(line);
        plat_verifier_free(v);
        plat_signer_free(s);
        return 0;
}
