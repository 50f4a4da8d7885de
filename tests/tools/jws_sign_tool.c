/* jws_sign_tool.c: test tool: signs payload lines from stdin with our JWS code, one record per line. */
#include "cleanup.h"
#include "crypto.h"
#include "jws.h"
#include "testsign.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f) {
        fprintf(f,
                "Usage: jws_sign_tool --key KEY [--cert CERT] [--chain --node ID --region R [--seq N] "
                "[--prev HEX]]\n"
                "Reads one payload per line on stdin and prints one signed record (flattened JWS) per "
                "line.\n"
                "--chain: each line is a JSON object of the type-specific members and \"type\"; the tool\n"
                "makes the record around it (v, type, node, region, seq, prev, ts, then the rest), seq\n"
                "counting up from N (default 1) and prev chaining from HEX (default 64 zeros).\n");
}

/* RFC 3339 UTC with milliseconds, now. */
static void now_ts(char out[32]) {
        struct timespec ts;
        struct tm tm;

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

/* The record around the members of one input line, in the documented member order. */
static char *chain_payload(const char *line, const char *node, const char *region, uint64_t seq,
                           const char *prev) {
        cJSON *in = cJSON_Parse(line), *out = cJSON_CreateObject();
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(in, "type");
        char ts[32], *text = NULL;

        if (!cJSON_IsString(type)) {
                fprintf(stderr,
                        "jws_sign_tool: --chain input lines are JSON objects with a string \"type\"\n");
                goto done;
        }
        now_ts(ts);
        cJSON_AddNumberToObject(out, "v", 1);
        cJSON_AddStringToObject(out, "type", type->valuestring);
        cJSON_AddStringToObject(out, "node", node);
        cJSON_AddStringToObject(out, "region", region);
        cJSON_AddNumberToObject(out, "seq", (double)seq);
        cJSON_AddStringToObject(out, "prev", prev);
        cJSON_AddStringToObject(out, "ts", ts);
        for (const cJSON *c = in->child; c; c = c->next)
                if (strcmp(c->string, "type") != 0)
                        cJSON_AddItemToObject(out, c->string, cJSON_Duplicate(c, true));
        text = cJSON_PrintUnformatted(out);
done:
        cJSON_Delete(in);
        cJSON_Delete(out);
        return text;
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "key", required_argument, NULL, 'k' },    { "cert", required_argument, NULL, 'c' },
                { "chain", no_argument, NULL, 'C' },        { "node", required_argument, NULL, 'n' },
                { "region", required_argument, NULL, 'r' }, { "seq", required_argument, NULL, 's' },
                { "prev", required_argument, NULL, 'p' },   {},
        };
        const char *key = NULL, *cert = NULL, *node = NULL, *region = NULL;
        char prev[PLAT_SHA256_HEX_LEN + 1], msg[512];
        _cleanup_free_ char *line = NULL;
        struct plat_signer *s = NULL;
        uint64_t seq = 1;
        size_t cap = 0;
        bool chain = false;
        ssize_t n;
        int c, rc = 0;

        memset(prev, '0', PLAT_SHA256_HEX_LEN);
        prev[PLAT_SHA256_HEX_LEN] = '\0';
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                switch (c) {
                case 'k':
                        key = optarg;
                        break;
                case 'c':
                        cert = optarg;
                        break;
                case 'C':
                        chain = true;
                        break;
                case 'n':
                        node = optarg;
                        break;
                case 'r':
                        region = optarg;
                        break;
                case 's':
                        seq = strtoull(optarg, NULL, 10);
                        break;
                case 'p':
                        snprintf(prev, sizeof(prev), "%s", optarg);
                        break;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (!key || (chain && (!node || !region))) {
                usage(stderr);
                return 2;
        }
        if (plat_signer_load(key, cert, &s, msg, sizeof(msg)) < 0) {
                fprintf(stderr, "jws_sign_tool: %s\n", msg);
                return 1;
        }
        while ((n = getline(&line, &cap, stdin)) >= 0) {
                _cleanup_free_ char *payload = NULL, *out = NULL;
                uint8_t d[PLAT_SHA256_LEN];

                if (n > 0 && line[n - 1] == '\n')
                        line[--n] = '\0';
                payload = chain ? chain_payload(line, node, region, seq, prev) : strdup(line);
                if (!payload || tu_jws_sign(s, payload, strlen(payload), &out) < 0) {
                        fprintf(stderr, "jws_sign_tool: cannot sign \"%s\"\n", line);
                        rc = 1;
                        break;
                }
                printf("%s\n", out);
                plat_sha256(payload, strlen(payload), d);
                plat_sha256_hex(d, prev);
                seq++;
        }
        plat_signer_free(s);
        return rc;
}
