/* crypto.c: the node's P-256 device key and ES256 over mbedtls: SHA-256, keys, CSRs, signatures, kids. */
#include "crypto.h"

#include "base64.h"
#include "cleanup.h"
#include "fileio.h"
#include "strutil.h"

#include <mbedtls/asn1.h>
#include <mbedtls/base64.h>
#include <mbedtls/bignum.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crt.h>
#include <mbedtls/x509_csr.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <unistd.h>

struct plat_signer {
        mbedtls_pk_context pk; /* an ECKEY on P-256 with its private scalar */
        mbedtls_ctr_drbg_context drbg;
        char kid[PLAT_KID_LEN + 1];
};

struct plat_verifier {
        mbedtls_ecp_keypair ec; /* group and public point */
        char kid[PLAT_KID_LEN + 1];
        char key_kid[PLAT_KID_LEN + 1];
};

/* The one place mbedtls error codes become -errno. mbedtls adds a high-level module's code (PK,
 * X509, ECP, PEM: multiples of 0x80) to a low-level one (ASN1, MPI, CTR_DRBG: below 0x80); the
 * high-level part says more, so it decides when there is one. */
static int errno_from_mbedtls(int rc) {
        int high = -(-rc & 0xff80), low = -(-rc & 0x7f);

        switch (high) {
        case 0:
                break;
        case MBEDTLS_ERR_PK_ALLOC_FAILED:
        case MBEDTLS_ERR_X509_ALLOC_FAILED:
        case MBEDTLS_ERR_ECP_ALLOC_FAILED:
        case MBEDTLS_ERR_PEM_ALLOC_FAILED:
                return -ENOMEM;
        case MBEDTLS_ERR_ECP_VERIFY_FAILED:
        case MBEDTLS_ERR_ECP_SIG_LEN_MISMATCH:
        case MBEDTLS_ERR_PK_SIG_LEN_MISMATCH:
                return -EBADMSG;
        case MBEDTLS_ERR_PK_UNKNOWN_PK_ALG:
        case MBEDTLS_ERR_PK_UNKNOWN_NAMED_CURVE:
        case MBEDTLS_ERR_PK_FEATURE_UNAVAILABLE:
        case MBEDTLS_ERR_ECP_FEATURE_UNAVAILABLE:
        case MBEDTLS_ERR_X509_FEATURE_UNAVAILABLE:
        case MBEDTLS_ERR_X509_UNKNOWN_SIG_ALG:
        case MBEDTLS_ERR_PEM_FEATURE_UNAVAILABLE:
        case MBEDTLS_ERR_PEM_UNKNOWN_ENC_ALG:
        /* Encrypted keys: the agent starts unattended, with nobody to type a password. */
        case MBEDTLS_ERR_PK_PASSWORD_REQUIRED:
        case MBEDTLS_ERR_PK_PASSWORD_MISMATCH:
        case MBEDTLS_ERR_PEM_PASSWORD_REQUIRED:
        case MBEDTLS_ERR_PEM_PASSWORD_MISMATCH:
                return -EOPNOTSUPP;
        case MBEDTLS_ERR_PK_TYPE_MISMATCH:
                return -EKEYREJECTED;
        case MBEDTLS_ERR_ECP_BUFFER_TOO_SMALL:
        case MBEDTLS_ERR_X509_BUFFER_TOO_SMALL:
                return -ENOBUFS;
        case MBEDTLS_ERR_ECP_BAD_INPUT_DATA:
        case MBEDTLS_ERR_PK_BAD_INPUT_DATA:
        case MBEDTLS_ERR_X509_BAD_INPUT_DATA:
        case MBEDTLS_ERR_PEM_BAD_INPUT_DATA:
                return -EINVAL;
        case MBEDTLS_ERR_ECP_RANDOM_FAILED:
        case MBEDTLS_ERR_ECP_HW_ACCEL_FAILED:
        case MBEDTLS_ERR_PK_HW_ACCEL_FAILED:
        case MBEDTLS_ERR_PK_FILE_IO_ERROR:
        case MBEDTLS_ERR_X509_FILE_IO_ERROR:
        case MBEDTLS_ERR_X509_FATAL_ERROR:
                return -EIO;
        default:
                /* The rest of PK, X509, PEM and ECP_INVALID_KEY: the input is not what it claims. */
                return -EPROTO;
        }
        switch (low) {
        case 0:
                return 0;
        case MBEDTLS_ERR_MPI_ALLOC_FAILED:
        case MBEDTLS_ERR_ASN1_ALLOC_FAILED:
                return -ENOMEM;
        case MBEDTLS_ERR_MPI_BUFFER_TOO_SMALL:
        case MBEDTLS_ERR_ASN1_BUF_TOO_SMALL:
        case MBEDTLS_ERR_BASE64_BUFFER_TOO_SMALL:
                return -ENOBUFS;
        case MBEDTLS_ERR_ASN1_OUT_OF_DATA:
        case MBEDTLS_ERR_ASN1_UNEXPECTED_TAG:
        case MBEDTLS_ERR_ASN1_INVALID_LENGTH:
        case MBEDTLS_ERR_ASN1_LENGTH_MISMATCH:
        case MBEDTLS_ERR_ASN1_INVALID_DATA:
        case MBEDTLS_ERR_BASE64_INVALID_CHARACTER:
        case MBEDTLS_ERR_MPI_INVALID_CHARACTER:
                return -EPROTO;
        case MBEDTLS_ERR_MPI_BAD_INPUT_DATA:
                return -EINVAL;
        default:
                /* CTR_DRBG's entropy and reseed failures, hardware accelerators, the unforeseen. */
                return -EIO;
        }
}

/* Writes "<what>: <mbedtls' words>" to msg and returns the mapped -errno. */
__attribute__((format(printf, 4, 5))) static int fail_mbedtls(char *msg, size_t msg_len, int rc,
                                                              const char *fmt, ...) {
        char what[512], why[160];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        mbedtls_strerror(rc, why, sizeof(why));
        plat_errf(msg, msg_len, "%s: %s", what, why);
        return errno_from_mbedtls(rc);
}

/* A file's bytes that may be a private key: wiped before they are freed. */
struct secret {
        char *buf;
        size_t len;
};

static void secret_wipe(struct secret *s) {
        if (s->buf) {
                mbedtls_platform_zeroize(s->buf, s->len);
                free(s->buf);
                s->buf = NULL;
        }
}

/* Reads a PEM (or DER) file, bounded; the buffer is NUL-terminated, as mbedtls wants PEM. */
static int read_pem(const char *path, struct secret *ret, char *msg, size_t msg_len) {
        char *buf;
        size_t len;
        int r = plat_read_file_at(AT_FDCWD, path, PLAT_PEM_MAX, &buf, &len);

        if (r == -EFBIG) {
                plat_errf(msg, msg_len, "%s: larger than %d KiB: not a key or certificate", path,
                          PLAT_PEM_MAX / 1024);
                return r;
        }
        if (r < 0) {
                plat_errf(msg, msg_len, "%s: cannot read: %s", path, strerror(-r));
                return r;
        }
        *ret = (struct secret){ .buf = buf, .len = len + 1 };
        return 0;
}

int plat_sha256(const void *buf, size_t len, uint8_t ret_digest[static PLAT_SHA256_LEN]) {
        return errno_from_mbedtls(mbedtls_sha256_ret(buf, len, ret_digest, 0));
}

void plat_sha256_hex(const uint8_t digest[static PLAT_SHA256_LEN],
                     char ret_hex[static PLAT_SHA256_HEX_LEN + 1]) {
        static const char hex[] = "0123456789abcdef";

        for (size_t i = 0; i < PLAT_SHA256_LEN; i++) {
                ret_hex[2 * i] = hex[digest[i] >> 4];
                ret_hex[2 * i + 1] = hex[digest[i] & 15];
        }
        ret_hex[PLAT_SHA256_HEX_LEN] = '\0';
}

/* base64url of the SHA-256 of the len bytes at buf: a kid. */
static int kid_of(const void *buf, size_t len, char ret_kid[static PLAT_KID_LEN + 1]) {
        uint8_t d[PLAT_SHA256_LEN];
        int r = plat_sha256(buf, len, d);

        if (r < 0)
                return r;
        return plat_b64url_encode(d, sizeof(d), ret_kid, PLAT_KID_LEN + 1, NULL);
}

/* The key's own kid: base64url SHA-256 of its uncompressed point 0x04 || X || Y. */
static int point_kid(const mbedtls_ecp_keypair *ec, char ret_kid[static PLAT_KID_LEN + 1]) {
        uint8_t pt[1 + 2 * PLAT_P256_COORD_LEN];
        size_t n;
        int rc = mbedtls_ecp_point_write_binary(&ec->grp, &ec->Q, MBEDTLS_ECP_PF_UNCOMPRESSED, &n, pt,
                                                sizeof(pt));

        if (rc != 0)
                return errno_from_mbedtls(rc);
        return kid_of(pt, n, ret_kid);
}

/* ES256 is ECDSA on P-256 only: anything else is refused here, naming the file and the key. */
static int check_p256(const mbedtls_pk_context *pk, const char *path, char *msg, size_t msg_len) {
        const mbedtls_ecp_curve_info *ci;
        mbedtls_ecp_group_id id;

        if (mbedtls_pk_get_type(pk) != MBEDTLS_PK_ECKEY) {
                plat_errf(msg, msg_len, "%s: key type %s: ES256 needs an EC key on curve P-256 (prime256v1)",
                          path, mbedtls_pk_get_name(pk));
                return -EOPNOTSUPP;
        }
        id = mbedtls_pk_ec(*pk)->grp.id;
        if (id != MBEDTLS_ECP_DP_SECP256R1) {
                ci = mbedtls_ecp_curve_info_from_grp_id(id);
                plat_errf(msg, msg_len, "%s: EC key on curve %s: ES256 needs P-256 (prime256v1)", path,
                          ci ? ci->name : "(unknown)");
                return -EOPNOTSUPP;
        }
        return 0;
}

static int parse_cert(const char *path, mbedtls_x509_crt *crt, char *msg, size_t msg_len) {
        struct secret pem = { 0 };
        int r = read_pem(path, &pem, msg, msg_len), rc;

        if (r < 0)
                return r;
        rc = mbedtls_x509_crt_parse(crt, (const unsigned char *)pem.buf, pem.len);
        secret_wipe(&pem);
        /* A positive count means some certificates of a bundle did not parse: refuse the file. */
        if (rc > 0) {
                plat_errf(msg, msg_len, "%s: %d certificate(s) in the file cannot be parsed", path, rc);
                return -EPROTO;
        }
        if (rc < 0)
                return fail_mbedtls(msg, msg_len, rc, "%s: not a certificate", path);
        return 0;
}

int plat_cert_validity(const char *path, uint64_t *ret_not_before, uint64_t *ret_not_after, char *msg,
                       size_t msg_len) {
        mbedtls_x509_crt crt;
        int r;

        mbedtls_x509_crt_init(&crt);
        r = parse_cert(path, &crt, msg, msg_len);
        if (r >= 0) {
                const mbedtls_x509_time *t[2] = { &crt.valid_from, &crt.valid_to };
                uint64_t out[2];

                for (size_t i = 0; i < 2; i++) {
                        struct tm tm = { .tm_year = t[i]->year - 1900,
                                         .tm_mon = t[i]->mon - 1,
                                         .tm_mday = t[i]->day,
                                         .tm_hour = t[i]->hour,
                                         .tm_min = t[i]->min,
                                         .tm_sec = t[i]->sec };
                        time_t secs = timegm(&tm);

                        out[i] = secs > 0 ? (uint64_t)secs * 1000000u : 0;
                }
                *ret_not_before = out[0];
                *ret_not_after = out[1];
        }
        mbedtls_x509_crt_free(&crt);
        return r;
}

int plat_cert_thumbprint(const char *path, uint8_t ret_digest[static PLAT_SHA256_LEN], char *msg,
                         size_t msg_len) {
        mbedtls_x509_crt crt;
        int r;

        mbedtls_x509_crt_init(&crt);
        r = parse_cert(path, &crt, msg, msg_len);
        if (r >= 0)
                r = plat_sha256(crt.raw.p, crt.raw.len, ret_digest);
        mbedtls_x509_crt_free(&crt);
        return r;
}

int plat_cert_verify_chain(const char *cert_path, const char *ca_path, char *msg, size_t msg_len) {
        mbedtls_x509_crt crt, ca;
        uint32_t flags = 0;
        int r;

        mbedtls_x509_crt_init(&crt);
        mbedtls_x509_crt_init(&ca);
        r = parse_cert(cert_path, &crt, msg, msg_len);
        if (r >= 0)
                r = parse_cert(ca_path, &ca, msg, msg_len);
        if (r >= 0 && mbedtls_x509_crt_verify(&crt, &ca, NULL, NULL, &flags, NULL, NULL) != 0) {
                char info[300] = "", issuer[256] = "";

                mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags);
                /* One line: mbedtls ends each reason with a newline. */
                for (char *nl; (nl = strchr(info, '\n'));)
                        *nl = nl[1] ? ';' : '\0';
                if (mbedtls_x509_dn_gets(issuer, sizeof(issuer), &crt.issuer) < 0)
                        snprintf(issuer, sizeof(issuer), "?");
                plat_errf(msg, msg_len, "%s (issued by %s) does not verify against %s: %s", cert_path,
                          issuer, ca_path, info);
                r = -EKEYREJECTED;
        }
        mbedtls_x509_crt_free(&ca);
        mbedtls_x509_crt_free(&crt);
        return r;
}

int plat_cert_cn(const char *path, char ret_cn[static PLAT_CN_MAX + 1], char *msg, size_t msg_len) {
        char cn[PLAT_CN_MAX + 1] = "";
        mbedtls_x509_crt crt;
        size_t n_cn = 0;
        int r;

        mbedtls_x509_crt_init(&crt);
        r = parse_cert(path, &crt, msg, msg_len);
        for (const mbedtls_x509_name *a = r >= 0 ? &crt.subject : NULL; a; a = a->next) {
                if (!a->oid.p || MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &a->oid) != 0)
                        continue;
                /* A CN that is too long or holds a NUL stays "", which no node name is. */
                if (n_cn++ == 0 && a->val.len <= PLAT_CN_MAX && !memchr(a->val.p, '\0', a->val.len)) {
                        memcpy(cn, a->val.p, a->val.len);
                        cn[a->val.len] = '\0';
                }
        }
        if (r >= 0 && n_cn != 1) {
                plat_errf(msg, msg_len, "%s: the certificate's subject has %s CN", path,
                          n_cn ? "more than one" : "no");
                r = -EPROTO;
        } else if (r >= 0 && !plat_cn_ok(cn)) {
                plat_errf(msg, msg_len,
                          "%s: the certificate's CN is not a node name (1..%d characters of "
                          "A-Z a-z 0-9 . _ -, a letter or digit first)",
                          path, PLAT_CN_MAX);
                r = -EPROTO;
        }
        if (r >= 0)
                memcpy(ret_cn, cn, sizeof(cn));
        mbedtls_x509_crt_free(&crt);
        return r;
}

/* mbedtls_ctr_drbg's entropy source: the kernel's, and nothing else. */
static int getrandom_entropy(void *ctx, unsigned char *buf, size_t len) {
        (void)ctx;
        while (len > 0) {
                ssize_t n = getrandom(buf, len, 0);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED;
                }
                buf += n;
                len -= (size_t)n;
        }
        return 0;
}

void plat_signer_free(struct plat_signer *s) {
        if (!s)
                return;
        mbedtls_pk_free(&s->pk);
        mbedtls_ctr_drbg_free(&s->drbg);
        free(s);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct plat_signer *, plat_signer_free);

static int signer_new(struct plat_signer **ret, char *msg, size_t msg_len) {
        static const char personal[] = "render-agent plat_signer";
        struct plat_signer *s = calloc(1, sizeof(*s));
        int rc;

        if (!s)
                return -ENOMEM;
        mbedtls_pk_init(&s->pk);
        mbedtls_ctr_drbg_init(&s->drbg);
        rc = mbedtls_ctr_drbg_seed(&s->drbg, getrandom_entropy, NULL, (const unsigned char *)personal,
                                   sizeof(personal) - 1);
        if (rc != 0) {
                plat_signer_free(s);
                return fail_mbedtls(msg, msg_len, rc, "cannot seed the random generator from getrandom()");
        }
        *ret = s;
        return 0;
}

int plat_signer_generate(struct plat_signer **ret, char *msg, size_t msg_len) {
        _cleanup_(plat_signer_freep) struct plat_signer *s = NULL;
        int r, rc;

        r = signer_new(&s, msg, msg_len);
        if (r < 0)
                return r;
        rc = mbedtls_pk_setup(&s->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
        if (rc == 0)
                rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(s->pk),
                                         mbedtls_ctr_drbg_random, &s->drbg);
        if (rc != 0)
                return fail_mbedtls(msg, msg_len, rc, "cannot generate a P-256 key");
        r = point_kid(mbedtls_pk_ec(s->pk), s->kid);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

int plat_signer_load(const char *key_path, const char *cert_path, struct plat_signer **ret, char *msg,
                     size_t msg_len) {
        _cleanup_(plat_signer_freep) struct plat_signer *s = NULL;
        struct secret pem = { 0 };
        mbedtls_x509_crt crt;
        int r, rc;

        r = signer_new(&s, msg, msg_len);
        if (r < 0)
                return r;
        r = read_pem(key_path, &pem, msg, msg_len);
        if (r < 0)
                return r;
        rc = mbedtls_pk_parse_key(&s->pk, (const unsigned char *)pem.buf, pem.len, NULL, 0);
        secret_wipe(&pem);
        if (rc != 0)
                return fail_mbedtls(msg, msg_len, rc, "%s: not an unencrypted private key PEM", key_path);
        r = check_p256(&s->pk, key_path, msg, msg_len);
        if (r < 0)
                return r;
        if (!cert_path) {
                r = point_kid(mbedtls_pk_ec(s->pk), s->kid);
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(s);
                return 0;
        }
        mbedtls_x509_crt_init(&crt);
        r = parse_cert(cert_path, &crt, msg, msg_len);
        if (r >= 0 && mbedtls_pk_check_pair(&crt.pk, &s->pk) != 0) {
                plat_errf(msg, msg_len, "%s: the certificate is not for the key in %s", cert_path, key_path);
                r = -EKEYREJECTED;
        }
        if (r >= 0)
                r = kid_of(crt.raw.p, crt.raw.len, s->kid);
        mbedtls_x509_crt_free(&crt);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

int plat_signer_sign(struct plat_signer *s, const void *data, size_t len,
                     uint8_t ret_sig[static PLAT_ES256_SIG_LEN]) {
        uint8_t h[PLAT_SHA256_LEN];
        int rc;

        rc = plat_sha256(data, len, h);
        if (rc < 0)
                return rc;
        return plat_signer_sign_digest(s, h, ret_sig);
}

int plat_signer_sign_digest(struct plat_signer *s, const uint8_t digest[static PLAT_SHA256_LEN],
                            uint8_t ret_sig[static PLAT_ES256_SIG_LEN]) {
        mbedtls_ecp_keypair *ec = mbedtls_pk_ec(s->pk);
        uint8_t sig[PLAT_ES256_SIG_LEN];
        mbedtls_mpi r, sv;
        int rc;

        mbedtls_mpi_init(&r);
        mbedtls_mpi_init(&sv);
        rc = mbedtls_ecdsa_sign_det_ext(&ec->grp, &r, &sv, &ec->d, digest, PLAT_SHA256_LEN,
                                        MBEDTLS_MD_SHA256, mbedtls_ctr_drbg_random, &s->drbg);
        /* Fixed-width big-endian halves: mbedtls pads with leading zeros, as JWA 3.4 wants. */
        if (rc == 0)
                rc = mbedtls_mpi_write_binary(&r, sig, PLAT_P256_COORD_LEN);
        if (rc == 0)
                rc = mbedtls_mpi_write_binary(&sv, sig + PLAT_P256_COORD_LEN, PLAT_P256_COORD_LEN);
        mbedtls_mpi_free(&r);
        mbedtls_mpi_free(&sv);
        if (rc != 0)
                return errno_from_mbedtls(rc);
        memcpy(ret_sig, sig, sizeof(sig));
        return 0;
}

const char *plat_signer_kid(const struct plat_signer *s) {
        return s->kid;
}

/* Makes dir_fd/tmp the name `name`, failing with -EEXIST when name exists. renameat2's
 * RENAME_NOREPLACE does it in one step; file systems without it get link() + unlink(), which is
 * as exclusive. */
static int rename_noreplace(int dir_fd, const char *tmp, const char *name) {
        if (renameat2(dir_fd, tmp, dir_fd, name, RENAME_NOREPLACE) == 0)
                return 0;
        if (errno != EINVAL && errno != ENOSYS)
                return -errno;
        if (linkat(dir_fd, tmp, dir_fd, name, 0) < 0)
                return -errno;
        (void)unlinkat(dir_fd, tmp, 0);
        return 0;
}

int plat_signer_write_key_at(struct plat_signer *s, int dir_fd, const char *name, bool force, char *msg,
                             size_t msg_len) {
        _cleanup_close_ int dfd = -1;
        unsigned char pem[1024];
        char tmp[256];
        size_t len;
        int r, rc;

        rc = mbedtls_pk_write_key_pem(&s->pk, pem, sizeof(pem));
        if (rc != 0)
                return fail_mbedtls(msg, msg_len, rc, "%s: cannot encode the key as PEM", name);
        len = strlen((const char *)pem);
        if (force) {
                r = plat_write_atomic_at(dir_fd, name, pem, len, 0600);
                mbedtls_platform_zeroize(pem, sizeof(pem));
                if (r < 0)
                        plat_errf(msg, msg_len, "%s: cannot write: %s", name, strerror(-r));
                return r;
        }
        /* Whole under a private name first, then given its name only if that is free. */
        if ((size_t)snprintf(tmp, sizeof(tmp), "%s.new.%d", name, (int)getpid()) >= sizeof(tmp)) {
                mbedtls_platform_zeroize(pem, sizeof(pem));
                plat_errf(msg, msg_len, "%s: file name too long", name);
                return -ENAMETOOLONG;
        }
        r = plat_write_atomic_at(dir_fd, tmp, pem, len, 0600);
        mbedtls_platform_zeroize(pem, sizeof(pem));
        if (r < 0) {
                plat_errf(msg, msg_len, "%s: cannot write: %s", tmp, strerror(-r));
                return r;
        }
        /* The directory fd to fsync: an O_PATH fd has no fsync, so open it for reading. */
        dfd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        r = dfd < 0 ? -errno : rename_noreplace(dfd, tmp, name);
        if (r < 0) {
                (void)unlinkat(dfd < 0 ? dir_fd : dfd, tmp, 0);
                if (r == -EEXIST)
                        plat_errf(msg, msg_len, "%s: exists", name);
                else
                        plat_errf(msg, msg_len, "%s: cannot create: %s", name, strerror(-r));
                return r;
        }
        if (fsync(dfd) < 0) {
                r = -errno;
                plat_errf(msg, msg_len, "%s: cannot fsync its directory: %s", name, strerror(-r));
                return r;
        }
        return 0;
}

bool plat_cn_ok(const char *cn) {
        size_t n = strlen(cn);

        if (n == 0 || n > PLAT_CN_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = cn[i];
                bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

                /* No , + = " \ < > ; #: nothing needs escaping in the X.500 name string. */
                if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
                        return false;
        }
        return true;
}

int plat_signer_csr_pem(struct plat_signer *s, const char *common_name, char **ret_pem, char *msg,
                        size_t msg_len) {
        mbedtls_x509write_csr req;
        char subject[sizeof("CN=") + PLAT_CN_MAX];
        unsigned char pem[4096];
        char *out;
        int rc;

        if (!plat_cn_ok(common_name)) {
                plat_errf(msg, msg_len,
                          "common name \"%.*s\": must be 1..%d characters of A-Z a-z 0-9 . _ -, a letter or "
                          "digit first",
                          PLAT_CN_MAX, common_name, PLAT_CN_MAX);
                return -EINVAL;
        }
        snprintf(subject, sizeof(subject), "CN=%s", common_name);
        mbedtls_x509write_csr_init(&req);
        mbedtls_x509write_csr_set_md_alg(&req, MBEDTLS_MD_SHA256);
        mbedtls_x509write_csr_set_key(&req, &s->pk);
        rc = mbedtls_x509write_csr_set_subject_name(&req, subject);
        if (rc == 0)
                rc = mbedtls_x509write_csr_pem(&req, pem, sizeof(pem), mbedtls_ctr_drbg_random, &s->drbg);
        mbedtls_x509write_csr_free(&req);
        if (rc != 0)
                return fail_mbedtls(msg, msg_len, rc, "cannot make a CSR for %s", subject);
        out = strdup((const char *)pem);
        if (!out)
                return -ENOMEM;
        *ret_pem = out;
        return 0;
}

void plat_verifier_free(struct plat_verifier *v) {
        if (!v)
                return;
        mbedtls_ecp_keypair_free(&v->ec);
        free(v);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct plat_verifier *, plat_verifier_free);

/* A verifier on P-256 with a copy of Q; cert_kid, when not NULL, becomes its kid. */
static int verifier_new(const mbedtls_ecp_point *q, const char *cert_kid, struct plat_verifier **ret,
                        char *msg, size_t msg_len) {
        _cleanup_(plat_verifier_freep) struct plat_verifier *v = calloc(1, sizeof(*v));
        int r, rc;

        if (!v)
                return -ENOMEM;
        mbedtls_ecp_keypair_init(&v->ec);
        rc = mbedtls_ecp_group_load(&v->ec.grp, MBEDTLS_ECP_DP_SECP256R1);
        if (rc == 0)
                rc = mbedtls_ecp_copy(&v->ec.Q, q);
        if (rc == 0)
                rc = mbedtls_ecp_check_pubkey(&v->ec.grp, &v->ec.Q);
        if (rc != 0)
                return fail_mbedtls(msg, msg_len, rc, "not a public key on P-256");
        r = point_kid(&v->ec, v->key_kid);
        if (r < 0)
                return r;
        plat_strlcpy(v->kid, cert_kid ? cert_kid : v->key_kid, sizeof(v->kid));
        *ret = TAKE_PTR(v);
        return 0;
}

/* The file is a private or public key PEM: the public point of it, checked to be on P-256. */
static int verifier_from_key_pem(const char *path, const struct secret *pem, struct plat_verifier **ret,
                                 char *msg, size_t msg_len) {
        mbedtls_pk_context pk;
        int r, rc;

        mbedtls_pk_init(&pk);
        rc = mbedtls_pk_parse_public_key(&pk, (const unsigned char *)pem->buf, pem->len);
        if (rc != 0) {
                mbedtls_pk_free(&pk);
                mbedtls_pk_init(&pk);
                rc = mbedtls_pk_parse_key(&pk, (const unsigned char *)pem->buf, pem->len, NULL, 0);
        }
        if (rc != 0)
                r = fail_mbedtls(msg, msg_len, rc,
                                 "%s: neither a certificate, a public key nor a private key", path);
        else
                r = check_p256(&pk, path, msg, msg_len);
        if (r >= 0)
                r = verifier_new(&mbedtls_pk_ec(pk)->Q, NULL, ret, msg, msg_len);
        mbedtls_pk_free(&pk);
        return r;
}

int plat_verifier_load(const char *path, struct plat_verifier **ret, char *msg, size_t msg_len) {
        struct secret pem = { 0 };
        mbedtls_x509_crt crt;
        char kid[PLAT_KID_LEN + 1];
        int r;

        r = read_pem(path, &pem, msg, msg_len);
        if (r < 0)
                return r;
        if (!strstr(pem.buf, "-----BEGIN CERTIFICATE-----")) {
                r = verifier_from_key_pem(path, &pem, ret, msg, msg_len);
                secret_wipe(&pem);
                return r;
        }
        secret_wipe(&pem);
        mbedtls_x509_crt_init(&crt);
        r = parse_cert(path, &crt, msg, msg_len);
        if (r >= 0)
                r = check_p256(&crt.pk, path, msg, msg_len);
        if (r >= 0)
                r = kid_of(crt.raw.p, crt.raw.len, kid);
        if (r >= 0)
                r = verifier_new(&mbedtls_pk_ec(crt.pk)->Q, kid, ret, msg, msg_len);
        mbedtls_x509_crt_free(&crt);
        return r;
}

int plat_verifier_from_point(const uint8_t x[static PLAT_P256_COORD_LEN],
                             const uint8_t y[static PLAT_P256_COORD_LEN], struct plat_verifier **ret,
                             char *msg, size_t msg_len) {
        uint8_t pt[1 + 2 * PLAT_P256_COORD_LEN] = { 0x04 };
        mbedtls_ecp_group grp;
        mbedtls_ecp_point q;
        int r, rc;

        memcpy(pt + 1, x, PLAT_P256_COORD_LEN);
        memcpy(pt + 1 + PLAT_P256_COORD_LEN, y, PLAT_P256_COORD_LEN);
        mbedtls_ecp_group_init(&grp);
        mbedtls_ecp_point_init(&q);
        rc = mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1);
        if (rc == 0)
                rc = mbedtls_ecp_point_read_binary(&grp, &q, pt, sizeof(pt));
        r = rc != 0 ? fail_mbedtls(msg, msg_len, rc, "not a P-256 point")
                    : verifier_new(&q, NULL, ret, msg, msg_len);
        mbedtls_ecp_point_free(&q);
        mbedtls_ecp_group_free(&grp);
        return r;
}

int plat_verifier_from_signer(const struct plat_signer *s, struct plat_verifier **ret, char *msg,
                              size_t msg_len) {
        struct plat_verifier *v;
        int r = verifier_new(&mbedtls_pk_ec(s->pk)->Q, s->kid, &v, msg, msg_len);

        if (r < 0)
                return r;
        *ret = v;
        return 0;
}

int plat_verifier_verify(struct plat_verifier *v, const void *data, size_t len,
                         const uint8_t sig[static PLAT_ES256_SIG_LEN]) {
        uint8_t h[PLAT_SHA256_LEN];
        mbedtls_mpi r, s;
        int rc;

        rc = plat_sha256(data, len, h);
        if (rc < 0)
                return rc;
        mbedtls_mpi_init(&r);
        mbedtls_mpi_init(&s);
        rc = mbedtls_mpi_read_binary(&r, sig, PLAT_P256_COORD_LEN);
        if (rc == 0)
                rc = mbedtls_mpi_read_binary(&s, sig + PLAT_P256_COORD_LEN, PLAT_P256_COORD_LEN);
        /* r and s outside 1..n-1 are no signature; mbedtls would call that bad input, not a failed
         * verification, and the caller needs to hear the latter. */
        if (rc == 0 && (mbedtls_mpi_cmp_int(&r, 1) < 0 || mbedtls_mpi_cmp_mpi(&r, &v->ec.grp.N) >= 0 ||
                        mbedtls_mpi_cmp_int(&s, 1) < 0 || mbedtls_mpi_cmp_mpi(&s, &v->ec.grp.N) >= 0))
                rc = MBEDTLS_ERR_ECP_VERIFY_FAILED;
        if (rc == 0)
                rc = mbedtls_ecdsa_verify(&v->ec.grp, h, sizeof(h), &v->ec.Q, &r, &s);
        mbedtls_mpi_free(&r);
        mbedtls_mpi_free(&s);
        return errno_from_mbedtls(rc);
}

const char *plat_verifier_kid(const struct plat_verifier *v) {
        return v->kid;
}

bool plat_verifier_has_kid(const struct plat_verifier *v, const char *kid, size_t len) {
        return len == PLAT_KID_LEN && (memcmp(kid, v->kid, len) == 0 || memcmp(kid, v->key_kid, len) == 0);
}
