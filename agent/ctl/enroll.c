/* enroll.c: render-agentctl enroll: the node's device key (P-256, 0600) and a CSR for the fleet CA. */
#include "ctl_cmds.h"

#include "cleanup.h"
#include "config.h"
#include "crypto.h"
#include "fileio.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ENROLL_DEFAULT_DIR "/var/lib/render-agent"
#define KEY_NAME "device.key"
#define CSR_NAME "device.csr"

enum { EXIT_FAILED = 1, EXIT_USAGE = 2 };

DEFINE_TRIVIAL_CLEANUP_FUNC(struct plat_signer *, plat_signer_free);

static void usage(FILE *f) {
        fprintf(f,
                "Usage: render-agentctl enroll [--config PATH] [--node ID] [--dir DIR] [--force]\n"
                "Makes this node's device key and a certificate signing request for the fleet CA.\n\n"
                "  -c, --config PATH   the agent's config, for node.id (default " CFG_DEFAULT_PATH ")\n"
                "  -n, --node ID       the node id (the CSR's CN) instead of the config's node.id\n"
                "  -d, --dir DIR       where device.key and device.csr go (default " ENROLL_DEFAULT_DIR ")\n"
                "  -f, --force         replace an existing device.key (its certificate stops working)\n"
                "  -h, --help          this text\n\n"
                "Exit status: 0 written, 1 refused or failed, 2 usage.\n");
}

/* node.id from the config. Not cfg_load(): before enrolment the config names TLS files that do
 * not exist yet, which cfg_load rightly refuses; only node.id matters here. */
static int node_from_config(const char *path, char **ret) {
        _cleanup_free_ char *buf = NULL;
        const cJSON *node, *id;
        cJSON *root;
        size_t len;
        int r;

        r = plat_read_file_at(AT_FDCWD, path, CFG_MAX_BYTES, &buf, &len);
        if (r < 0) {
                fprintf(stderr,
                        "render-agentctl enroll: cannot read %s: %s (give the node id with --node)\n", path,
                        r == -EFBIG ? "larger than 1 MiB" : strerror(-r));
                return r;
        }
        root = cJSON_ParseWithLength(buf, len);
        node = cJSON_GetObjectItemCaseSensitive(root, "node");
        id = cJSON_GetObjectItemCaseSensitive(node, "id");
        if (!cJSON_IsString(id)) {
                fprintf(stderr, "render-agentctl enroll: %s: %s (give the node id with --node)\n", path,
                        root ? "no string node.id" : "not JSON");
                cJSON_Delete(root);
                return -EINVAL;
        }
        *ret = strdup(id->valuestring);
        cJSON_Delete(root);
        return *ret ? 0 : -ENOMEM;
}

/* The directory, made (0700, one level) when it is missing. */
static int open_dir(const char *dir) {
        int fd = plat_open_dir(dir);

        if (fd == -ENOENT) {
                if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
                        fprintf(stderr, "render-agentctl enroll: cannot create %s: %m\n", dir);
                        return -errno;
                }
                fd = plat_open_dir(dir);
        }
        if (fd < 0)
                fprintf(stderr, "render-agentctl enroll: cannot open %s: %s\n", dir, strerror(-fd));
        return fd;
}

static void print_next_steps(const char *dir, const char *node, const char *kid) {
        printf("wrote %s/" KEY_NAME " (P-256 private key, mode 0600; key kid %s)\n", dir, kid);
        printf("wrote %s/" CSR_NAME " (certificate signing request, CN=%s)\n\n", dir, node);
        printf("Next:\n"
               "  1. have %s/" CSR_NAME " signed by the fleet CA (the certificate must be for TLS client\n"
               "     authentication: extendedKeyUsage=clientAuth);\n"
               "  2. install the certificate, e.g. as %s/device.crt;\n"
               "  3. point mqtt.tls.cert_file at the certificate and mqtt.tls.key_file at %s/" KEY_NAME "\n"
               "     in the agent's config, then restart render-agent.\n"
               "Metering records are then signed with this key; their kid is the certificate's SHA-256\n"
               "thumbprint, and `render-agentctl verify --cert CERT` checks them.\n",
               dir, dir, dir);
}

int ctl_enroll(int argc, char **argv) {
        static const struct option opts[] = {
                { "config", required_argument, NULL, 'c' }, { "node", required_argument, NULL, 'n' },
                { "dir", required_argument, NULL, 'd' },    { "force", no_argument, NULL, 'f' },
                { "help", no_argument, NULL, 'h' },         {},
        };
        const char *config = CFG_DEFAULT_PATH, *dir = ENROLL_DEFAULT_DIR, *node_arg = NULL;
        _cleanup_free_ char *node = NULL, *csr = NULL;
        _cleanup_close_ int dfd = -1;
        _cleanup_(plat_signer_freep) struct plat_signer *s = NULL;
        char msg[512];
        bool force = false;
        int c, r;

        optind = 0; /* glibc: start afresh, whatever parsed argv before */
        while ((c = getopt_long(argc, argv, "c:n:d:fh", opts, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        config = optarg;
                        break;
                case 'n':
                        node_arg = optarg;
                        break;
                case 'd':
                        dir = optarg;
                        break;
                case 'f':
                        force = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return EXIT_USAGE;
                }
        }
        if (optind != argc) {
                fprintf(stderr, "render-agentctl enroll: unexpected argument \"%s\"\n", argv[optind]);
                usage(stderr);
                return EXIT_USAGE;
        }
        node = node_arg ? strdup(node_arg) : NULL;
        if (!node && (node_arg || node_from_config(config, &node) < 0))
                return EXIT_FAILED;

        r = plat_signer_generate(&s, msg, sizeof(msg));
        /* Key and CSR in memory first: when the CSR cannot be made (a node id that is no common name),
         * nothing is written, not even the directory. */
        if (r >= 0)
                r = plat_signer_csr_pem(s, node, &csr, msg, sizeof(msg));
        if (r < 0) {
                fprintf(stderr, "render-agentctl enroll: %s%s\n", r == -EINVAL ? "node id: " : "", msg);
                return EXIT_FAILED;
        }
        dfd = open_dir(dir);
        if (dfd < 0)
                return EXIT_FAILED;
        /* A fast, friendly refusal; the write below is exclusive anyway, should a key appear meanwhile. */
        if (!force && faccessat(dfd, KEY_NAME, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
                fprintf(stderr,
                        "render-agentctl enroll: %s/" KEY_NAME
                        " exists: not replacing a device key (the certificate "
                        "issued for it would stop working); --force makes a new one\n",
                        dir);
                return EXIT_FAILED;
        }
        r = plat_signer_write_key_at(s, dfd, KEY_NAME, force, msg, sizeof(msg));
        if (r < 0) {
                fprintf(stderr, "render-agentctl enroll: %s/%s\n", dir, msg);
                return EXIT_FAILED;
        }
        r = plat_write_atomic_at(dfd, CSR_NAME, csr, strlen(csr), 0644);
        if (r < 0) {
                fprintf(stderr,
                        "render-agentctl enroll: wrote %s/" KEY_NAME " but cannot write %s/" CSR_NAME
                        ": %s\n",
                        dir, dir, strerror(-r));
                return EXIT_FAILED;
        }
        print_next_steps(dir, node, plat_signer_kid(s));
        return 0;
}
