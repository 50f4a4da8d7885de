/* test_crypto.c: SHA-256, ES256 (RFC 6979 vectors, tampering), key files, certificates, kids, CSRs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base64.h"
#include "crypto.h"
#include "testutil.h"

#include <mbedtls/pk.h>
#include <mbedtls/x509_csr.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* RFC 6979 A.2.5: the P-256 key, as a SEC1 PEM, and its public half and a certificate for it
 * (self-signed, made with openssl for these tests). */
static const char key_6979[] = "-----BEGIN EC PRIVATE KEY-----\n"
                               "MHcCAQEEIMmvqdhFunUWa1whV2ex1pNOUMPbNuibEnuKYisSD2choAoGCCqGSM49\n"
                               "AwEHoUQDQgAEYP7UuiVanTHJYet0xjVtaMBJuJI7Yfps5mliLmDyn7Z5A/4QCLi8\n"
                               "maQa6elWKLxk8vGyDC1+n1F3o8KU1EYimQ==\n"
                               "-----END EC PRIVATE KEY-----\n";
static const char key_6979_pkcs8[] = "-----BEGIN PRIVATE KEY-----\n"
                                     "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgya+p2EW6dRZrXCFX\n"
                                     "Z7HWk05Qw9s26JsSe4piKxIPZyGhRANCAARg/tS6JVqdMclh63TGNW1owEm4kjth\n"
                                     "+mzmaWIuYPKftnkD/hAIuLyZpBrp6VYovGTy8bIMLX6fUXejwpTURiKZ\n"
                                     "-----END PRIVATE KEY-----\n";
static const char pub_6979[] = "-----BEGIN PUBLIC KEY-----\n"
                               "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYP7UuiVanTHJYet0xjVtaMBJuJI7\n"
                               "Yfps5mliLmDyn7Z5A/4QCLi8maQa6elWKLxk8vGyDC1+n1F3o8KU1EYimQ==\n"
                               "-----END PUBLIC KEY-----\n";
static const char cert_6979[] = "-----BEGIN CERTIFICATE-----\n"
                                "MIIBczCCARigAwIBAgIBATAKBggqhkjOPQQDAjAXMRUwEwYDVQQDDAxyZmM2OTc5\n"
                                "LW5vZGUwIBcNMjYxMjAxMTM0NjUzWhgPMjEyNjExMDcxMzQ2NTNaMBcxFTATBgNV\n"
                                "BAMMDHJmYzY5Nzktbm9kZTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABGD+1Lol\n"
                                "Wp0xyWHrdMY1bWjASbiSO2H6bOZpYi5g8p+2eQP+EAi4vJmkGunpVii8ZPLxsgwt\n"
                                "fp9Rd6PClNRGIpmjUzBRMB0GA1UdDgQWBBQalWlXm84ympQtB2nJwLVkMVY3EDAf\n"
                                "BgNVHSMEGDAWgBQalWlXm84ympQtB2nJwLVkMVY3EDAPBgNVHRMBAf8EBTADAQH/\n"
                                "MAoGCCqGSM49BAMCA0kAMEYCIQCQnI0ivc+Om37Uv0DBsd05a7BNCuYFb3/U9JPN\n"
                                "en/z0QIhAN8qBjXf+BJ+gEQB2d5lMPio9S4ZImrmDNzugTpQWJDZ\n"
                                "-----END CERTIFICATE-----\n";
/* base64url SHA-256 of cert_6979's DER (openssl x509 -outform der | sha256), and of the point. */
#define CERT_6979_KID "dgyCXiElXnQaLFvepsk__SiPOyhk-kzWYg0tfP4y5eM"
#define KEY_6979_KID "sYuGzhOJ5G3oeqSlExzoPBFg-jPAh6sVuGNXTTHY_zw"

/* A certificate for some other P-256 key. */
static const char cert_other[] = "-----BEGIN CERTIFICATE-----\n"
                                 "MIIBZDCCAQqgAwIBAgIBAjAKBggqhkjOPQQDAjAQMQ4wDAYDVQQDDAVvdGhlcjAg\n"
                                 "Fw0yNjEyMDExMzQ2NTNaGA8yMTI2MTEwNzEzNDY1M1owEDEOMAwGA1UEAwwFb3Ro\n"
                                 "ZXIwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATcATL9QneheLgRj+VBBmrRMdz6\n"
                                 "g9P5VYIEPGO3KKGrZR/IozCBTAUutFpNdelNDNsq5TRAIIVuH1dVesmRfKgUo1Mw\n"
                                 "UTAdBgNVHQ4EFgQUczVHl9i2PastyJz9UykPYezUvMswHwYDVR0jBBgwFoAUczVH\n"
                                 "l9i2PastyJz9UykPYezUvMswDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNI\n"
                                 "ADBFAiEAqUNucc/xA8IsmjX8jEifzgpUN3vmnPYRsNrXQQRzMwYCIC0UqtJAH2oS\n"
                                 "D8sOAyeb7YqCEsurysI/EHNDQ4+F+ZhU\n"
                                 "-----END CERTIFICATE-----\n";

/* Self-signed (openssl req -x509) with subjects that name no node: "O=acme" (no CN), "CN=render 01"
 * (a space) and "CN=node-a, CN=node-b" (two CNs). */
static const char cert_no_cn[] = "-----BEGIN CERTIFICATE-----\n"
                                 "MIIBdTCCARugAwIBAgIUIOCFDEB1pNC+ri533CNSIyLiFYowCgYIKoZIzj0EAwIw\n"
                                 "DzENMAsGA1UECgwEYWNtZTAgFw0yNjEyMDQyMzMwMTRaGA8yMTI2MTExMDIzMzAx\n"
                                 "NFowDzENMAsGA1UECgwEYWNtZTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABEz9\n"
                                 "j4uIG+5k6de5VzGpXiv200d42fhCs8l+6Yek0KMIX/ei2pnKBYg8EoVxnoQy39vw\n"
                                 "LxzviI1SBWPAt5n6mlqjUzBRMB0GA1UdDgQWBBTW87zqhc4eamDW/J11WKMx/Xbd\n"
                                 "cjAfBgNVHSMEGDAWgBTW87zqhc4eamDW/J11WKMx/XbdcjAPBgNVHRMBAf8EBTAD\n"
                                 "AQH/MAoGCCqGSM49BAMCA0gAMEUCIC3/YjhHis7A9R66RMbiL6MNWaCnWXqmz7rh\n"
                                 "7OGevE6MAiEAsT8qnc2ypDOFe6MRMXJWL2SbwEbgpdaxcapcrJ0ekPc=\n"
                                 "-----END CERTIFICATE-----\n";
static const char cert_space_cn[] = "-----BEGIN CERTIFICATE-----\n"
                                    "MIIBfjCCASWgAwIBAgIUBp6ssRgm4cpC7bqOGUDfap3sgvowCgYIKoZIzj0EAwIw\n"
                                    "FDESMBAGA1UEAwwJcmVuZGVyIDAxMCAXDTI2MTIwNDIzMzAxNFoYDzIxMjYxMTEw\n"
                                    "MjMzMDE0WjAUMRIwEAYDVQQDDAlyZW5kZXIgMDEwWTATBgcqhkjOPQIBBggqhkjO\n"
                                    "PQMBBwNCAARM/Y+LiBvuZOnXuVcxqV4r9tNHeNn4QrPJfumHpNCjCF/3otqZygWI\n"
                                    "PBKFcZ6EMt/b8C8c74iNUgVjwLeZ+ppao1MwUTAdBgNVHQ4EFgQU1vO86oXOHmpg\n"
                                    "1vyddVijMf123XIwHwYDVR0jBBgwFoAU1vO86oXOHmpg1vyddVijMf123XIwDwYD\n"
                                    "VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiBj87IXvmfabi/EG2hsGKmy\n"
                                    "IMJORaox8oZJ/mAerMxigQIgbgt5fHxChFLcpjp7bxKY9O3GGP2HU8RyuliqvMQ/\n"
                                    "9/U=\n"
                                    "-----END CERTIFICATE-----\n";
static const char cert_two_cn[] = "-----BEGIN CERTIFICATE-----\n"
                                  "MIIBmzCCAUGgAwIBAgIUXqsxu1C7HeBmY19WJVE9TBnHufAwCgYIKoZIzj0EAwIw\n"
                                  "IjEPMA0GA1UEAwwGbm9kZS1hMQ8wDQYDVQQDDAZub2RlLWIwIBcNMjYxMjA0MjMz\n"
                                  "MDE1WhgPMjEyNjExMTAyMzMwMTVaMCIxDzANBgNVBAMMBm5vZGUtYTEPMA0GA1UE\n"
                                  "AwwGbm9kZS1iMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAETP2Pi4gb7mTp17lX\n"
                                  "MaleK/bTR3jZ+EKzyX7ph6TQowhf96LamcoFiDwShXGehDLf2/AvHO+IjVIFY8C3\n"
                                  "mfqaWqNTMFEwHQYDVR0OBBYEFNbzvOqFzh5qYNb8nXVYozH9dt1yMB8GA1UdIwQY\n"
                                  "MBaAFNbzvOqFzh5qYNb8nXVYozH9dt1yMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZI\n"
                                  "zj0EAwIDSAAwRQIhAPN3nXTeD/e7YP1qxoaT9y/j+2nwSfgOJR265zA+NMS9AiB4\n"
                                  "j34E+o48jNqK+Bp8bVDNmKJ2zfoQl7G9JItz8zHpsg==\n"
                                  "-----END CERTIFICATE-----\n";

static const char key_p384[] = "-----BEGIN PRIVATE KEY-----\n"
                               "MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDC9UQYNghN9um6k7Mho\n"
                               "nNWPiF/7bH0JvIzs3uR8Fvz01Ssv8b1F3KUAWANBsjr/9CKhZANiAARsGyzK7W01\n"
                               "u39lhxhhcrgH342IRZC6U+NRFVl570m736b8kmf304CfwnhvWdhgIltDASKRfEVQ\n"
                               "29vsQoDJCEzU4ZID0Y+337Q5ckbbWk5IqBKuLrqVt5S3jvPe42xPyRw=\n"
                               "-----END PRIVATE KEY-----\n";

static const char key_rsa[] = "-----BEGIN PRIVATE KEY-----\n"
                              "MIICdgIBADANBgkqhkiG9w0BAQEFAASCAmAwggJcAgEAAoGBALwuaAbd/WGfHWjE\n"
                              "Dbcu75hAyH1K8f8lNdD/VyGEQbVnnCWd8GiipHyjWCJOvD6V5GhEFtWivTGuToWA\n"
                              "Rq922xSN/oiQW+5aOLW77UmwYrbKhbW1jR0JpAHmk9inXfWFx1IIuUyJXV1+D62J\n"
                              "B9U2yFhBro5UiyCkLkXE3zIlfvnrAgMBAAECgYAL2mBzDkiHfZ48mxzCDRLKZEo8\n"
                              "mhvkFlPtdifm1I3O/1e2htw9uwDhWOiUQKFaz9YzOxa1HisMlg4cGphZNQNXjDyN\n"
                              "mNETV5hZKujfbU25pEcBh/STcGSoJE0nPdRa1vedHzreuB/eONEFUxEnPdCY1Fl3\n"
                              "ygsl7pH4b9PAjBd+AQJBAPijPI8Gn5eyeeMf0pO9wYzrZhloHmElFiCateTaIAQ7\n"
                              "j9NeSmMwCZDyxQHYuOBZrIQezoWbBJ+1jqXmuX92BfkCQQDBwON8dE443n8eIihX\n"
                              "XRXcUoJHbLjkhVZhbYFVpApiolOk++E4IAj4ExnjD7YzN69nF+075y5EekPooh9b\n"
                              "HigDAkBKKYZ6suMPgHDSyj8pSkRdICnIEkJdf45mEz+GD3nVSV7RESLnCwEPdxpE\n"
                              "PryGTrkif33iZCaw7Jqr6XITDsUhAkEAsGM49mEvoSg1k6pHDZnJwAVBY2LARBJ7\n"
                              "XEED4IJxje/3tBg2phDL+YPyKjtwhNoqDfHDYKiK/35Lemq1nw8qHwJAfGNmqDnG\n"
                              "91f+JlWSw6wuuiV7Pf6ocxg2G7flwPHbQnc9TqhuJE/Ig4+DWty8z9RyCimf/2Ql\n"
                              "0Qy/1tDgg3lhKg==\n"
                              "-----END PRIVATE KEY-----\n";

static const char key_encrypted[] = "-----BEGIN EC PRIVATE KEY-----\n"
                                    "Proc-Type: 4,ENCRYPTED\n"
                                    "DEK-Info: AES-128-CBC,9BB7EF3B014EE2691C3449B46BDCEE94\n"
                                    "\n"
                                    "5KdynWXoYfQSqWwbN2GXY6pN/cgAjvr6qQg44Nl6ZtkEDKnnsRik2xDkEGeWsDbr\n"
                                    "Ap4NR/7sPEd/hegReoqIAVeo1QUyn95ksbvMfKrjSVrICr/5GDabXn0XjwMgEBAK\n"
                                    "0upjaOcg2x6LymbhqH1u1fqoV0TPl2DfCWvtDuYP2k4=\n"
                                    "-----END EC PRIVATE KEY-----\n";

static void unhex(const char *hex, uint8_t *out, size_t n) {
        for (size_t i = 0; i < n; i++) {
                unsigned v;

                assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
                out[i] = (uint8_t)v;
        }
}

/* Writes content to the scratch dir under name and returns its path (static buffer per call site). */
static const char *put(struct tu_scratch *d, const char *name, const char *content, char *path,
                       size_t size) {
        tu_put(d->fd, name, content);
        snprintf(path, size, "%s/%s", d->path, name);
        return path;
}

static void test_sha256_matches_fips_180_vectors(void **state) {
        uint8_t d[PLAT_SHA256_LEN];
        char hex[PLAT_SHA256_HEX_LEN + 1];

        (void)state;
        assert_int_equal(plat_sha256("abc", 3, d), 0);
        plat_sha256_hex(d, hex);
        assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_int_equal(plat_sha256("", 0, d), 0);
        plat_sha256_hex(d, hex);
        assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* RFC 6979 A.2.5, SHA-256: deterministic ECDSA gives exactly these r and s. */
static void test_sign_gives_rfc6979_signatures(void **state) {
        static const struct {
                const char *msg, *r, *s;
        } v[] = {
                { "sample", "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716",
                  "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8" },
                { "test", "F1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367",
                  "019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083" },
        };
        struct tu_scratch *d = *state;
        struct plat_signer *s = NULL;
        char path[128], msg[256];
        uint8_t sig[PLAT_ES256_SIG_LEN], want[PLAT_ES256_SIG_LEN];

        assert_int_equal(
                plat_signer_load(put(d, "k.pem", key_6979, path, sizeof(path)), NULL, &s, msg, sizeof(msg)),
                0);
        for (size_t i = 0; i < 2; i++) {
                unhex(v[i].r, want, 32);
                unhex(v[i].s, want + 32, 32);
                assert_int_equal(plat_signer_sign(s, v[i].msg, strlen(v[i].msg), sig), 0);
                assert_memory_equal(sig, want, sizeof(sig));
        }
        assert_string_equal(plat_signer_kid(s), KEY_6979_KID);
        plat_signer_free(s);
}

static void test_tampered_data_or_signature_fails_verification(void **state) {
        static const char data[] = "eyJhbGciOiJFUzI1NiJ9.eyJ2IjoxfQ";
        struct plat_signer *s = NULL;
        struct plat_verifier *v = NULL;
        uint8_t sig[PLAT_ES256_SIG_LEN], bad[PLAT_ES256_SIG_LEN];
        char msg[256], tampered[sizeof(data)];

        (void)state;
        assert_int_equal(plat_signer_generate(&s, msg, sizeof(msg)), 0);
        assert_int_equal(plat_verifier_from_signer(s, &v, msg, sizeof(msg)), 0);
        assert_string_equal(plat_verifier_kid(v), plat_signer_kid(s));
        assert_int_equal(plat_signer_sign(s, data, strlen(data), sig), 0);
        assert_int_equal(plat_verifier_verify(v, data, strlen(data), sig), 0);

        memcpy(tampered, data, sizeof(data));
        tampered[25] ^= 1;
        assert_int_equal(plat_verifier_verify(v, tampered, strlen(tampered), sig), -EBADMSG);
        assert_int_equal(plat_verifier_verify(v, data, strlen(data) - 1, sig), -EBADMSG);
        for (size_t i = 0; i < sizeof(sig); i += 21) {
                memcpy(bad, sig, sizeof(sig));
                bad[i] ^= 0x80;
                assert_int_equal(plat_verifier_verify(v, data, strlen(data), bad), -EBADMSG);
        }
        /* r = 0, and r = s = 2^256 - 1 (beyond the group order): out of range, not a crash. */
        memcpy(bad, sig, sizeof(sig));
        memset(bad, 0, 32);
        assert_int_equal(plat_verifier_verify(v, data, strlen(data), bad), -EBADMSG);
        memset(bad, 0xff, sizeof(bad));
        assert_int_equal(plat_verifier_verify(v, data, strlen(data), bad), -EBADMSG);
        plat_verifier_free(v);
        plat_signer_free(s);
}

/* RFC 7515 A.3: the JWK's x and y, and the example's signature over its signing input. */
static void test_rfc7515_a3_key_from_point_verifies_its_example(void **state) {
        static const char x64[] = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
        static const char y64[] = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
        static const char input[] =
                "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0"
                "dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
        static const char sig64[] =
                "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqP"
                "P3-Kg6NU1Q";
        uint8_t x[32], y[32], sig[64];
        struct plat_verifier *v = NULL;
        char msg[256];
        size_t n;

        (void)state;
        assert_int_equal(plat_b64url_decode(x64, strlen(x64), x, sizeof(x), &n), 0);
        assert_int_equal(plat_b64url_decode(y64, strlen(y64), y, sizeof(y), &n), 0);
        assert_int_equal(plat_b64url_decode(sig64, strlen(sig64), sig, sizeof(sig), &n), 0);
        assert_int_equal(n, 64);
        assert_int_equal(plat_verifier_from_point(x, y, &v, msg, sizeof(msg)), 0);
        assert_int_equal(plat_verifier_verify(v, input, strlen(input), sig), 0);
        /* The verifier keeps no state that a second call could trip on. */
        assert_int_equal(plat_verifier_verify(v, input, strlen(input), sig), 0);
        assert_int_equal(plat_verifier_verify(v, input, strlen(input) - 1, sig), -EBADMSG);
        plat_verifier_free(v);

        /* A point off the curve is no key. */
        y[31] ^= 1;
        v = NULL;
        assert_int_equal(plat_verifier_from_point(x, y, &v, msg, sizeof(msg)), -EPROTO);
        assert_null(v);
}

static bool dir_holds_only(struct tu_scratch *d, const char *name) {
        DIR *dir = opendir(d->path);
        struct dirent *e;
        bool ok = true;

        assert_non_null(dir);
        while ((e = readdir(dir)))
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, name))
                        ok = false;
        closedir(dir);
        return ok;
}

static void test_written_key_is_private_exclusive_and_loads_back(void **state) {
        struct tu_scratch *d = *state;
        struct plat_signer *s = NULL, *s2 = NULL, *back = NULL;
        struct plat_verifier *v = NULL;
        uint8_t sig[PLAT_ES256_SIG_LEN];
        char msg[256], path[128];
        struct stat st;
        mode_t old = umask(0);

        assert_int_equal(plat_signer_generate(&s, msg, sizeof(msg)), 0);
        assert_int_equal(plat_signer_write_key_at(s, d->fd, "device.key", false, msg, sizeof(msg)), 0);
        umask(old);
        snprintf(path, sizeof(path), "%s/device.key", d->path);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_true(dir_holds_only(d, "device.key"));

        /* A second key does not replace the first unless forced. */
        assert_int_equal(plat_signer_generate(&s2, msg, sizeof(msg)), 0);
        assert_int_equal(plat_signer_write_key_at(s2, d->fd, "device.key", false, msg, sizeof(msg)),
                         -EEXIST);
        assert_non_null(strstr(msg, "device.key: exists"));
        assert_true(dir_holds_only(d, "device.key"));
        assert_int_equal(plat_signer_load(path, NULL, &back, msg, sizeof(msg)), 0);
        assert_string_equal(plat_signer_kid(back), plat_signer_kid(s));

        /* What was written signs what the original key verifies. */
        assert_int_equal(plat_verifier_from_signer(s, &v, msg, sizeof(msg)), 0);
        assert_int_equal(plat_signer_sign(back, "x", 1, sig), 0);
        assert_int_equal(plat_verifier_verify(v, "x", 1, sig), 0);
        plat_signer_free(back);
        back = NULL;

        assert_int_equal(plat_signer_write_key_at(s2, d->fd, "device.key", true, msg, sizeof(msg)), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(plat_signer_load(path, NULL, &back, msg, sizeof(msg)), 0);
        assert_string_equal(plat_signer_kid(back), plat_signer_kid(s2));
        assert_true(dir_holds_only(d, "device.key"));
        plat_signer_free(back);
        plat_verifier_free(v);
        plat_signer_free(s2);
        plat_signer_free(s);
}

static void test_load_refuses_what_is_not_a_p256_key_naming_the_file(void **state) {
        static const struct {
                const char *name, *content;
                int err;
                const char *says;
        } cases[] = {
                { "p384.pem", key_p384, -EOPNOTSUPP, "p384.pem: EC key on curve secp384r1" },
                { "rsa.pem", key_rsa, -EOPNOTSUPP,
                  "rsa.pem: key type RSA: ES256 needs an EC key on curve P-256" },
                { "enc.pem", key_encrypted, -EOPNOTSUPP, "enc.pem: not an unencrypted private key PEM" },
                { "pub.pem", pub_6979, -EPROTO, "pub.pem: not an unencrypted private key PEM" },
                { "junk.pem", "hello\n", -EPROTO, "junk.pem: not an unencrypted private key PEM" },
                { "empty.pem", "", -EPROTO, "empty.pem: not an unencrypted private key PEM" },
        };
        struct tu_scratch *d = *state;
        struct plat_signer *s = NULL;
        char msg[512], path[128];
        char *big;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                put(d, cases[i].name, cases[i].content, path, sizeof(path));
                msg[0] = '\0';
                assert_int_equal(plat_signer_load(path, NULL, &s, msg, sizeof(msg)), cases[i].err);
                assert_null(s);
                if (!strstr(msg, cases[i].says))
                        fail_msg("%s: got \"%s\", want \"%s\"", cases[i].name, msg, cases[i].says);
                assert_non_null(strstr(msg, d->path));
        }
        snprintf(path, sizeof(path), "%s/missing.pem", d->path);
        assert_int_equal(plat_signer_load(path, NULL, &s, msg, sizeof(msg)), -ENOENT);
        assert_non_null(strstr(msg, "missing.pem: cannot read"));

        big = calloc(1, PLAT_PEM_MAX + 2);
        assert_non_null(big);
        memset(big, 'A', PLAT_PEM_MAX + 1);
        put(d, "big.pem", big, path, sizeof(path));
        free(big);
        assert_int_equal(plat_signer_load(path, NULL, &s, msg, sizeof(msg)), -EFBIG);
        assert_non_null(strstr(msg, "big.pem: larger than 64 KiB"));
}

static void test_certificate_gives_the_kid_and_must_hold_the_key(void **state) {
        struct tu_scratch *d = *state;
        struct plat_signer *s = NULL;
        char msg[512], kpath[128], cpath[128], opath[128];
        uint8_t thumb[PLAT_SHA256_LEN];
        char kid[PLAT_KID_LEN + 1];

        put(d, "k.pem", key_6979_pkcs8, kpath, sizeof(kpath));
        put(d, "c.pem", cert_6979, cpath, sizeof(cpath));
        put(d, "o.pem", cert_other, opath, sizeof(opath));
        assert_int_equal(plat_cert_thumbprint(cpath, thumb, msg, sizeof(msg)), 0);
        assert_int_equal(plat_b64url_encode(thumb, sizeof(thumb), kid, sizeof(kid), NULL), 0);
        assert_string_equal(kid, CERT_6979_KID);

        assert_int_equal(plat_signer_load(kpath, cpath, &s, msg, sizeof(msg)), 0);
        assert_string_equal(plat_signer_kid(s), CERT_6979_KID);
        plat_signer_free(s);
        s = NULL;

        assert_int_equal(plat_signer_load(kpath, opath, &s, msg, sizeof(msg)), -EKEYREJECTED);
        assert_null(s);
        assert_non_null(strstr(msg, "o.pem: the certificate is not for the key in"));
        /* A key where the certificate should be. */
        assert_int_equal(plat_signer_load(kpath, kpath, &s, msg, sizeof(msg)), -EPROTO);
        assert_non_null(strstr(msg, "k.pem: not a certificate"));
        assert_int_equal(plat_cert_thumbprint(kpath, thumb, msg, sizeof(msg)), -EPROTO);
        /* Its validity (openssl x509 -dates): Dec 1 13:46:53 2026 .. Nov 7 13:46:53 2126 GMT. */
        {
                uint64_t nb = 0, na = 0;

                assert_int_equal(plat_cert_validity(cpath, &nb, &na, msg, sizeof(msg)), 0);
                assert_int_equal(nb, UINT64_C(1796132813) * 1000000);
                assert_int_equal(na, UINT64_C(4949732813) * 1000000);
                assert_int_equal(plat_cert_validity(kpath, &nb, &na, msg, sizeof(msg)), -EPROTO);
        }
}

/* The chain is checked against the CA bundle given: a self-signed certificate verifies against
 * itself and against a bundle holding it, not against another CA; the reason names the issuer. */
static void test_certificate_chain_verifies_against_its_ca_only(void **state) {
        struct tu_scratch *d = *state;
        char msg[512] = "", cpath[128], opath[128], bpath[128], kpath[128];
        char bundle[sizeof(cert_other) + sizeof(cert_6979)];

        put(d, "c.pem", cert_6979, cpath, sizeof(cpath));
        put(d, "o.pem", cert_other, opath, sizeof(opath));
        snprintf(bundle, sizeof(bundle), "%s%s", cert_other, cert_6979);
        put(d, "b.pem", bundle, bpath, sizeof(bpath));
        put(d, "k.pem", key_6979_pkcs8, kpath, sizeof(kpath));
        assert_int_equal(plat_cert_verify_chain(cpath, cpath, msg, sizeof(msg)), 0);
        assert_int_equal(plat_cert_verify_chain(cpath, bpath, msg, sizeof(msg)), 0);
        assert_int_equal(plat_cert_verify_chain(cpath, opath, msg, sizeof(msg)), -EKEYREJECTED);
        assert_non_null(strstr(msg, "c.pem (issued by "));
        assert_non_null(strstr(msg, "does not verify against"));
        assert_non_null(strstr(msg, "o.pem: "));
        assert_null(strchr(msg, '\n'));
        assert_int_equal(plat_cert_verify_chain(cpath, kpath, msg, sizeof(msg)), -EPROTO);
        assert_non_null(strstr(msg, "k.pem: not a certificate"));
}

/* verify matches each record's node against it, so only a node name will do. */
static void test_certificate_cn_is_read_and_must_be_a_node_name(void **state) {
        struct tu_scratch *d = *state;
        char msg[512], path[128], cn[PLAT_CN_MAX + 1] = "unchanged";

        assert_int_equal(plat_cert_cn(put(d, "c.pem", cert_6979, path, sizeof(path)), cn, msg, sizeof(msg)),
                         0);
        assert_string_equal(cn, "rfc6979-node");
        assert_int_equal(plat_cert_cn(put(d, "o.pem", cert_other, path, sizeof(path)), cn, msg, sizeof(msg)),
                         0);
        assert_string_equal(cn, "other");

        strcpy(cn, "unchanged");
        assert_int_equal(plat_cert_cn(put(d, "n.pem", cert_no_cn, path, sizeof(path)), cn, msg, sizeof(msg)),
                         -EPROTO);
        assert_non_null(strstr(msg, "n.pem: the certificate's subject has no CN"));
        assert_int_equal(
                plat_cert_cn(put(d, "t.pem", cert_two_cn, path, sizeof(path)), cn, msg, sizeof(msg)),
                -EPROTO);
        assert_non_null(strstr(msg, "t.pem: the certificate's subject has more than one CN"));
        assert_int_equal(
                plat_cert_cn(put(d, "s.pem", cert_space_cn, path, sizeof(path)), cn, msg, sizeof(msg)),
                -EPROTO);
        assert_non_null(strstr(msg, "s.pem: the certificate's CN is not a node name"));
        assert_int_equal(plat_cert_cn(put(d, "k.pem", key_6979, path, sizeof(path)), cn, msg, sizeof(msg)),
                         -EPROTO);
        assert_non_null(strstr(msg, "k.pem: not a certificate"));
        assert_string_equal(cn, "unchanged");
}

static void test_verifier_loads_certificate_public_or_private_pem(void **state) {
        static const char data[] = "signed bytes";
        struct tu_scratch *d = *state;
        struct plat_signer *s = NULL;
        struct plat_verifier *v = NULL;
        uint8_t sig[PLAT_ES256_SIG_LEN];
        char msg[512], path[128];
        const struct {
                const char *name, *content, *kid;
        } cases[] = {
                { "c.pem", cert_6979, CERT_6979_KID },
                { "pub.pem", pub_6979, KEY_6979_KID },
                { "k.pem", key_6979, KEY_6979_KID },
                { "k8.pem", key_6979_pkcs8, KEY_6979_KID },
        };

        assert_int_equal(
                plat_signer_load(put(d, "sk.pem", key_6979, path, sizeof(path)), NULL, &s, msg, sizeof(msg)),
                0);
        assert_int_equal(plat_signer_sign(s, data, strlen(data), sig), 0);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                assert_int_equal(
                        plat_verifier_load(put(d, cases[i].name, cases[i].content, path, sizeof(path)), &v,
                                           msg, sizeof(msg)),
                        0);
                assert_string_equal(plat_verifier_kid(v), cases[i].kid);
                /* The key's own kid names it whatever the file was. */
                assert_true(plat_verifier_has_kid(v, KEY_6979_KID, PLAT_KID_LEN));
                assert_int_equal(plat_verifier_has_kid(v, CERT_6979_KID, PLAT_KID_LEN),
                                 strcmp(cases[i].kid, CERT_6979_KID) == 0);
                assert_false(plat_verifier_has_kid(v, KEY_6979_KID, PLAT_KID_LEN - 1));
                assert_int_equal(plat_verifier_verify(v, data, strlen(data), sig), 0);
                plat_verifier_free(v);
                v = NULL;
        }
        assert_int_equal(
                plat_verifier_load(put(d, "p384.pem", key_p384, path, sizeof(path)), &v, msg, sizeof(msg)),
                -EOPNOTSUPP);
        assert_non_null(strstr(msg, "p384.pem: EC key on curve secp384r1"));
        assert_int_equal(
                plat_verifier_load(put(d, "junk.pem", "junk", path, sizeof(path)), &v, msg, sizeof(msg)),
                -EPROTO);
        assert_non_null(strstr(msg, "junk.pem: neither a certificate, a public key nor a private key"));
        assert_null(v);
        plat_signer_free(s);
}

static void test_csr_names_the_node_and_carries_the_key(void **state) {
        struct plat_signer *s = NULL;
        mbedtls_x509_csr csr;
        char msg[256], subject[128];
        char *pem = NULL;

        (void)state;
        assert_int_equal(plat_signer_generate(&s, msg, sizeof(msg)), 0);
        assert_int_equal(plat_signer_csr_pem(s, "render-eu-0001", &pem, msg, sizeof(msg)), 0);
        assert_non_null(strstr(pem, "-----BEGIN CERTIFICATE REQUEST-----"));
        mbedtls_x509_csr_init(&csr);
        assert_int_equal(mbedtls_x509_csr_parse(&csr, (const unsigned char *)pem, strlen(pem) + 1), 0);
        assert_true(mbedtls_x509_dn_gets(subject, sizeof(subject), &csr.subject) > 0);
        assert_string_equal(subject, "CN=render-eu-0001");
        assert_int_equal(csr.sig_md, MBEDTLS_MD_SHA256);
        mbedtls_x509_csr_free(&csr);
        free(pem);

        pem = NULL;
        assert_int_equal(plat_signer_csr_pem(s, "a,O=evil", &pem, msg, sizeof(msg)), -EINVAL);
        assert_non_null(strstr(msg, "common name \"a,O=evil\""));
        assert_int_equal(plat_signer_csr_pem(s, "", &pem, msg, sizeof(msg)), -EINVAL);
        assert_null(pem);
        plat_signer_free(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sha256_matches_fips_180_vectors),
                cmocka_unit_test_setup_teardown(test_sign_gives_rfc6979_signatures, tu_scratch_setup,
                                                tu_scratch_teardown),
                cmocka_unit_test(test_tampered_data_or_signature_fails_verification),
                cmocka_unit_test(test_rfc7515_a3_key_from_point_verifies_its_example),
                cmocka_unit_test_setup_teardown(test_written_key_is_private_exclusive_and_loads_back,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_load_refuses_what_is_not_a_p256_key_naming_the_file,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_certificate_gives_the_kid_and_must_hold_the_key,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_certificate_chain_verifies_against_its_ca_only,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_certificate_cn_is_read_and_must_be_a_node_name,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_verifier_loads_certificate_public_or_private_pem,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test(test_csr_names_the_node_and_carries_the_key),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
