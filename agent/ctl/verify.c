/* verify.c: render-agentctl verify: checks a stream of signed metering records and prints a summary. */
#include "ctl_cmds.h"

#include "audit.h"
#include "cleanup.h"
#include "crypto.h"
#include "jws.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EXIT_FAILED = 1, EXIT_USAGE = 2 };

static void usage(FILE *f) {
        fprintf(f,
                "Usage: render-agentctl verify [--cert FILE | --key FILE] [--json] [FILE|-]\n"
                "Checks metering records, one JWS per line (FILE, or standard input): every signature,\n"
                "each node's seq (gaps; duplicates: identical = redelivered, different = conflict) and\n"
                "the hash chain (each record's prev is the SHA-256 of the previous record's payload).\n\n"
                "  -c, --cert FILE   the node's certificate (PEM): the key, the kid records carry and,\n"
                "                    as its CN, the node every record must name\n"
                "  -k, --key FILE    the node's public or private key (PEM), when there is no certificate\n"
                "  -j, --json        one JSON document instead of the summary\n"
                "  -h, --help        this text\n\n"
                "Without --cert or --key the records are read but their signatures cannot be checked,\n"
                "which is a failure.\n"
                "Exit status: 0 everything checks, 1 a problem was found, 2 usage.\n");
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct plat_verifier *, plat_verifier_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct audit *, audit_free);

/* Reads the next line into buf (cap bytes, for lines of up to cap - 1 bytes) without its newline.
 * 1 with *ret_len set; 0 at the end; -EMSGSIZE for a longer line, which is skipped through its
 * newline; -EIO when the stream fails. A NUL is a byte like any other. */
static int read_line(FILE *f, char *buf, size_t cap, size_t *ret_len) {
        size_t len = 0;
        bool too_long = false;
        int c;

        while ((c = getc_unlocked(f)) != EOF && c != '\n') {
                if (len < cap - 1)
                        buf[len++] = (char)c;
                else
                        too_long = true;
        }
        if (ferror(f))
                return -EIO;
        if (c == EOF && len == 0 && !too_long)
                return 0;
        if (too_long)
                return -EMSGSIZE;
        *ret_len = len;
        return 1;
}

/* Feeds every line of f to the audit; returns 0, or -E2BIG / -EIO / -ENOMEM (said on stderr). */
static int read_all(FILE *f, const char *name, struct audit *a) {
        _cleanup_free_ char *buf = malloc(JWS_LINE_MAX + 1);
        uint64_t lineno = 0;
        size_t len;
        int r;

        if (!buf)
                return -ENOMEM;
        for (;;) {
                r = read_line(f, buf, JWS_LINE_MAX + 1, &len);
                if (r == 0)
                        return 0;
                lineno++;
                if (r == -EMSGSIZE) {
                        audit_line_too_long(a, lineno, JWS_LINE_MAX);
                        continue;
                }
                if (r < 0) {
                        fprintf(stderr, "render-agentctl verify: cannot read %s at line %" PRIu64 ": %m\n",
                                name, lineno);
                        return r;
                }
                r = audit_line(a, buf, len, lineno);
                if (r == -E2BIG) {
                        fprintf(stderr,
                                "render-agentctl verify: %s: stopped at line %" PRIu64
                                ": more than %d records; "
                                "split the input\n",
                                name, lineno, AUDIT_MAX_RECORDS);
                        return r;
                }
                if (r < 0) {
                        fprintf(stderr, "render-agentctl verify: %s: line %" PRIu64 ": %s\n", name, lineno,
                                strerror(-r));
                        return r;
                }
        }
}

/* The verification key from --cert (a certificate, nothing else) or --key (a public or private key);
 * with --cert, also the node its records must name (its CN) into ret_cn, else "". */
static int load_key(const char *cert, const char *key, char ret_cn[static PLAT_CN_MAX + 1],
                    struct plat_verifier **ret) {
        uint8_t thumb[PLAT_SHA256_LEN];
        char msg[512], cn[PLAT_CN_MAX + 1] = "";
        int r = 0;

        if (cert)
                r = plat_cert_thumbprint(cert, thumb, msg, sizeof(msg));
        if (cert && r >= 0)
                r = plat_cert_cn(cert, cn, msg, sizeof(msg));
        if (r >= 0)
                r = plat_verifier_load(cert ? cert : key, ret, msg, sizeof(msg));
        if (r < 0)
                fprintf(stderr, "render-agentctl verify: %s\n", msg);
        else
                memcpy(ret_cn, cn, sizeof(cn));
        return r;
}

int ctl_verify(int argc, char **argv) {
        static const struct option opts[] = {
                { "cert", required_argument, NULL, 'c' },
                { "key", required_argument, NULL, 'k' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_(plat_verifier_freep) struct plat_verifier *key = NULL;
        _cleanup_(audit_freep) struct audit *a = NULL;
        _cleanup_fclose_ FILE *in = NULL;
        const char *cert_path = NULL, *key_path = NULL, *name = "-";
        char cn[PLAT_CN_MAX + 1] = "";
        bool json = false;
        int c, r;

        optind = 0; /* glibc: start afresh, whatever parsed argv before */
        while ((c = getopt_long(argc, argv, "c:k:jh", opts, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        cert_path = optarg;
                        break;
                case 'k':
                        key_path = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return EXIT_USAGE;
                }
        }
        if ((cert_path && key_path) || argc - optind > 1) {
                fprintf(stderr, "render-agentctl verify: %s\n",
                        cert_path && key_path ? "--cert and --key exclude each other"
                                              : "one input file at most");
                usage(stderr);
                return EXIT_USAGE;
        }
        if (optind < argc)
                name = argv[optind];
        if ((cert_path || key_path) && load_key(cert_path, key_path, cn, &key) < 0)
                return EXIT_FAILED;
        if (!key)
                fprintf(stderr, "render-agentctl verify: no --cert or --key: signatures cannot be checked; "
                                "reading the records anyway\n");
        if (strcmp(name, "-") != 0) {
                in = fopen(name, "re");
                if (!in) {
                        fprintf(stderr, "render-agentctl verify: cannot open %s: %m\n", name);
                        return EXIT_FAILED;
                }
        }
        if (audit_new(key, &a) < 0 || (cn[0] && audit_expect_node(a, cn) < 0))
                return EXIT_FAILED;
        r = read_all(in ? in : stdin, name, a);
        if (r < 0 && r != -E2BIG)
                return EXIT_FAILED;
        audit_finish(a);
        if (json)
                audit_print_json(a, stdout);
        else
                audit_print_text(a, stdout);
        return r == 0 && audit_ok(a) ? 0 : EXIT_FAILED;
}
