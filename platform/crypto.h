/* crypto.h: the node's P-256 device key and ES256 over mbedtls: SHA-256, keys, CSRs, signatures, kids. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PLAT_SHA256_LEN 32
#define PLAT_SHA256_HEX_LEN 64 /* lower-case hex, without the NUL */
#define PLAT_ES256_SIG_LEN 64  /* r || s, 32 bytes each, big-endian (RFC 7518 3.4) */
#define PLAT_KID_LEN 43        /* base64url of a SHA-256, no padding, without the NUL */
#define PLAT_P256_COORD_LEN 32
#define PLAT_PEM_MAX (64 * 1024) /* the most read from a key or certificate file */
#define PLAT_CN_MAX 64           /* the longest common name a CSR takes */

/* Errors: -errno; msg (may be NULL) names what failed and on which file, with mbedtls' own words
 * where it said something. -ENOENT, -EACCES, ... when a file cannot be read; -EFBIG when it is
 * larger than PLAT_PEM_MAX; -EPROTO when it is not the PEM (or DER) expected; -EOPNOTSUPP for a
 * key that is not EC P-256; -EKEYREJECTED for a certificate that does not belong to the key;
 * -ENOMEM; -EIO when the system's random source failed. */

/* SHA-256 of the len bytes at buf. */
int plat_sha256(const void *buf, size_t len, uint8_t ret_digest[static PLAT_SHA256_LEN]);

/* Lower-case hex of a SHA-256 digest, NUL-terminated. */
void plat_sha256_hex(const uint8_t digest[static PLAT_SHA256_LEN],
                     char ret_hex[static PLAT_SHA256_HEX_LEN + 1]);

/* The validity of the first certificate in the PEM file at path, as wall-clock microseconds (UTC). */
int plat_cert_validity(const char *path, uint64_t *ret_not_before, uint64_t *ret_not_after, char *msg,
                       size_t msg_len);

/* SHA-256 of the DER of the first certificate in the PEM file at path: its x5t#S256 thumbprint
 * (RFC 7515 4.1.8). */
int plat_cert_thumbprint(const char *path, uint8_t ret_digest[static PLAT_SHA256_LEN], char *msg,
                         size_t msg_len);

/* The common name of the first certificate in the PEM file at path, which must be a node name
 * (plat_cn_ok(); -EPROTO when it is not, or when the subject has no CN or more than one). A node's
 * certificate carries its node id as CN (render-agentctl enroll). */
int plat_cert_cn(const char *path, char ret_cn[static PLAT_CN_MAX + 1], char *msg, size_t msg_len);

/* Whether the first certificate in the PEM file cert_path chains to a CA of the bundle ca_path, the
 * file's further certificates serving as intermediates, every one valid now (signatures, validity
 * dates, CA flags: mbedtls' checks; no name is checked). 0 when it does; -EKEYREJECTED when not, msg
 * naming the issuer and mbedtls' reasons on one line; else the errors of reading either file. */
int plat_cert_verify_chain(const char *cert_path, const char *ca_path, char *msg, size_t msg_len);

/* A private P-256 key, ready to sign, with its kid and a random generator seeded from getrandom().
 * The kid is the base64url SHA-256 of the certificate's DER when the signer was loaded with one,
 * else the base64url SHA-256 of the public key as an uncompressed point (0x04 || X || Y).
 * Not for use from two threads at once (the generator has state). */
struct plat_signer;

/* A fresh P-256 key, only in memory until plat_signer_write_key_at(); kid from the point. */
int plat_signer_generate(struct plat_signer **ret, char *msg, size_t msg_len);

/* Loads the private key PEM (SEC1 "EC PRIVATE KEY" or PKCS#8 "PRIVATE KEY", unencrypted) at
 * key_path, and the certificate PEM at cert_path when not NULL: the certificate must carry this
 * key's public half (-EKEYREJECTED otherwise) and gives the kid. Caller frees *ret. */
int plat_signer_load(const char *key_path, const char *cert_path, struct plat_signer **ret, char *msg,
                     size_t msg_len);

/* ES256: the raw r || s signature over SHA-256 of the len bytes at data. Deterministic (RFC 6979),
 * so the same key and data always give the same signature; the generator only blinds the
 * computation against timing side channels. */
int plat_signer_sign(struct plat_signer *s, const void *data, size_t len,
                     uint8_t ret_sig[static PLAT_ES256_SIG_LEN]);

/* The same over a SHA-256 digest already computed (plat_sha256 of the data). */
int plat_signer_sign_digest(struct plat_signer *s, const uint8_t digest[static PLAT_SHA256_LEN],
                            uint8_t ret_sig[static PLAT_ES256_SIG_LEN]);

/* The signer's kid (borrowed, valid until plat_signer_free), PLAT_KID_LEN characters. */
const char *plat_signer_kid(const struct plat_signer *s);

/* Writes the private key as a SEC1 PEM to dir_fd/name with mode 0600, atomically: the name holds
 * the whole key or does not exist. Unless force, an existing name is left alone and the call fails
 * with -EEXIST (checked and created in one step: two writers cannot both succeed); with force it
 * is replaced. `name` is a plain file name. */
int plat_signer_write_key_at(struct plat_signer *s, int dir_fd, const char *name, bool force, char *msg,
                             size_t msg_len);

/* The names the agent gives nodes (and regions): 1..PLAT_CN_MAX characters of A-Z a-z 0-9 . _ -,
 * a letter or digit first. Such a name is a common name that needs no escaping. */
bool plat_cn_ok(const char *cn);

/* A PKCS#10 certificate signing request PEM for the key, subject CN=common_name, signed with
 * ECDSA-SHA256. common_name must pass plat_cn_ok() (-EINVAL otherwise).
 * Caller frees *ret_pem (NUL-terminated). */
int plat_signer_csr_pem(struct plat_signer *s, const char *common_name, char **ret_pem, char *msg,
                        size_t msg_len);

void plat_signer_free(struct plat_signer *s);

/* A P-256 public key to check ES256 signatures with, and the kids that name it: the key's own
 * (base64url SHA-256 of its uncompressed point) always, and a certificate's thumbprint when it
 * came from a certificate. */
struct plat_verifier;

/* From a PEM file holding a certificate, a public key ("PUBLIC KEY", SubjectPublicKeyInfo) or a
 * private key (its public half is used), whichever it is. */
int plat_verifier_load(const char *path, struct plat_verifier **ret, char *msg, size_t msg_len);

/* From a JWK's coordinates (big-endian, 32 bytes each); -EPROTO when the point is not on P-256. */
int plat_verifier_from_point(const uint8_t x[static PLAT_P256_COORD_LEN],
                             const uint8_t y[static PLAT_P256_COORD_LEN], struct plat_verifier **ret,
                             char *msg, size_t msg_len);

/* The public half of a signer, with the signer's kid. */
int plat_verifier_from_signer(const struct plat_signer *s, struct plat_verifier **ret, char *msg,
                              size_t msg_len);

/* 0 when sig is a valid ES256 signature (raw r || s) of the len bytes at data; -EBADMSG when it is
 * not (including r or s out of range). Not const because mbedtls' group is not (it may keep
 * precomputed multiples of the generator there). */
int plat_verifier_verify(struct plat_verifier *v, const void *data, size_t len,
                         const uint8_t sig[static PLAT_ES256_SIG_LEN]);

/* The kid records signed with this key carry: the certificate's thumbprint when there is one,
 * else the key's own (borrowed). */
const char *plat_verifier_kid(const struct plat_verifier *v);

/* True when kid (len characters, no NUL needed) names this key: the certificate's thumbprint or
 * the key's own kid. Both identify the same public key. */
bool plat_verifier_has_kid(const struct plat_verifier *v, const char *kid, size_t len);

void plat_verifier_free(struct plat_verifier *v);
