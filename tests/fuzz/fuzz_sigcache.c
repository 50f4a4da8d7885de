/* fuzz_sigcache.c: libFuzzer target for the signature cache opened on arbitrary file bytes. */
#include "crc32c.h"
#include "sigcache.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Input: the whole file `signatures`. The seeds (corpus/sigcache/) carry this kid. */
#define KID "fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuz"
#define HDR 64
#define ENTRY 84

static char dir[64];
static int dir_fd = -1;

static uint64_t le64(const uint8_t *p) {
        uint64_t v;

        memcpy(&v, p, sizeof(v));
        return le64toh(v);
}

static uint32_t le32(const uint8_t *p) {
        uint32_t v;

        memcpy(&v, p, sizeof(v));
        return le32toh(v);
}

static off_t file_size(void) {
        struct stat st;

        if (fstatat(dir_fd, SIGCACHE_FILE, &st, 0) < 0)
                abort();
        return st.st_size;
}

/* The entry for id in the input, as the documented format places it; NULL when the input has none
 * there (a get that hits anyway broke a promise). */
static const uint8_t *input_entry(const uint8_t *in, size_t len, uint64_t base, uint64_t id) {
        uint64_t off;

        if (base == 0 || id < base || id - base >= SIGCACHE_ENTRIES_MAX)
                return NULL;
        off = HDR + (id - base) * ENTRY;
        if (off + ENTRY > len)
                return NULL;
        return in + off;
}

/* A get of id with the digest prefix the input holds at id's place (so that hits can happen):
 * a hit must be a whole, valid entry of the input for id and that digest. */
static void check_get(struct sigcache *c, const uint8_t *in, size_t len, uint64_t base, bool reset,
                      uint64_t id) {
        const uint8_t *e = input_entry(in, len, base, id);
        uint8_t digest[PLAT_SHA256_LEN] = { 0 }, sig[PLAT_ES256_SIG_LEN];
        int r;

        if (e)
                memcpy(digest, e + 8, 8);
        r = sigcache_get(c, id, digest, sig);
        if (r == -ENOENT)
                return;
        if (r != 0 || reset || !e || le64(e) != id || le32(e + 80) != plat_crc32c(0, e, 80) ||
            memcmp(sig, e + 16, sizeof(sig)) != 0 || id > sigcache_high(c))
                abort();
}

static void cleanup(void) {
        (void)unlinkat(dir_fd, SIGCACHE_FILE, 0);
        (void)rmdir(dir);
}

/* The state directory, once: on tmpfs where there is one (the cache never syncs, but writes less
 * there); removed at exit. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void)argc;
        (void)argv;
        snprintf(dir, sizeof(dir), "%s/fuzz_sigcache.XXXXXX",
                 access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm");
        dir_fd = mkdtemp(dir) ? open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
        if (dir_fd < 0)
                abort();
        atexit(cleanup);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint8_t digest[PLAT_SHA256_LEN], sig[PLAT_ES256_SIG_LEN], got[PLAT_ES256_SIG_LEN];
        struct sigcache *c = NULL;
        char msg[512];
        /* Offsets from base (the first three) and from high (the rest) to get. */
        static const uint64_t probes[] = { UINT64_MAX, 0, 1, UINT64_MAX, 0, 1, 2 };
        uint64_t base = 0, high, id;
        bool reset = true;
        int fd, r;

        fd = openat(dir_fd, SIGCACHE_FILE, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
                abort();
        close(fd);

        r = sigcache_open(dir_fd, dir, KID, &c, &reset, msg, sizeof(msg));
        if (r < 0 || !c)
                abort(); /* a regular file in a writable dir always opens */
        /* A reset says why and where; an empty file or a valid header is no reset. */
        if (reset != (msg[0] != '\0') || (reset && !strstr(msg, dir)) || (size == 0 && reset))
                abort();
        if (!reset && size >= HDR)
                base = le64(data + 8);
        high = sigcache_high(c);
        if (reset && (high != 0 || file_size() != HDR))
                abort();
        if (high != 0 && (high < base || high - base >= SIGCACHE_ENTRIES_MAX))
                abort();

        if (!reset && size >= HDR + ENTRY && high != base + (size - HDR) / ENTRY - 1)
                abort();
        for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
                check_get(c, data, size, base, reset, probes[i] + (i < 3 ? base : high));

        /* The next id after the highest takes a put (1 into an empty file), and reads back, unless
         * it is past the window (or past UINT64_MAX: 0). */
        id = high ? high + 1 : 1;
        memset(digest, 0x5a, sizeof(digest));
        memset(sig, 0xa5, sizeof(sig));
        r = sigcache_put(c, id, digest, sig);
        if (id == 0 || (high && id - base >= SIGCACHE_ENTRIES_MAX)) {
                if (r != -ERANGE)
                        abort();
        } else if (r != 0 || sigcache_get(c, id, digest, got) != 0 || memcmp(got, sig, sizeof(sig)) != 0 ||
                   sigcache_high(c) != id) {
                abort();
        }
        if (sigcache_put(c, 0, digest, sig) != -ERANGE)
                abort();

        /* Trim below the highest keeps it; at the highest empties the file. */
        high = sigcache_high(c);
        if (sigcache_trim(c, high - 1) != 0 || sigcache_high(c) != high)
                abort();
        if (sigcache_trim(c, high) != 0 || sigcache_high(c) != 0 || file_size() != HDR)
                abort();
        sigcache_close(c);

        /* What trim left is a valid, empty cache. */
        r = sigcache_open(dir_fd, dir, KID, &c, &reset, msg, sizeof(msg));
        if (r < 0 || reset || sigcache_high(c) != 0)
                abort();
        sigcache_close(c);
        return 0;
}
