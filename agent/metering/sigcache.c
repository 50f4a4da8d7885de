/* sigcache.c: the signature cache file: a checksummed header, then one fixed-size entry per record id,
 * written with pwrite and never synced. */
#include "sigcache.h"

#include "cleanup.h"
#include "crc32c.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Why nothing here is synced: every signature can be made again from the spooled record (ES256 is
 * deterministic here, RFC 6979), and every entry carries its id, a digest prefix and a CRC, so what
 * a crash or power loss leaves (a torn entry, a header older than its entries, a file cut short)
 * reads as a miss and costs one signature. An fdatasync would cost more than the signing it saves. */

/* The file's two records, little-endian on disk (docs/metering.md, "Signature cache"). */
struct header {
        char magic[8]; /* MAGIC */
        uint64_t base; /* the id of the first entry; 0: no entries yet */
        char kid[44];  /* PLAT_KID_LEN characters, NUL-padded */
        uint32_t crc;  /* CRC-32C of the bytes before it */
} __attribute__((packed));

struct entry {
        uint64_t id;
        uint8_t digest[8]; /* the first bytes of the SHA-256 of the JWS signing input */
        uint8_t sig[PLAT_ES256_SIG_LEN];
        uint32_t crc; /* CRC-32C of the bytes before it */
} __attribute__((packed));

#define MAGIC "RASIGC1\n"
#define HDR_BYTES ((uint64_t)sizeof(struct header))
#define ENTRY_BYTES ((uint64_t)sizeof(struct entry))
#define FILE_MAX (HDR_BYTES + ENTRY_BYTES * SIGCACHE_ENTRIES_MAX)

_Static_assert(sizeof(struct header) == 64 && offsetof(struct header, crc) == 60, "header layout");
_Static_assert(sizeof(struct entry) == 84 && offsetof(struct entry, crc) == 80, "entry layout");
_Static_assert(PLAT_KID_LEN < sizeof(((struct header *)0)->kid), "a kid and at least one NUL fit");

struct sigcache {
        int fd;
        uint64_t base; /* the id of the first entry; 0 while the file holds none */
        uint64_t size; /* bytes the file may hold, as far as this process knows */
        char kid[sizeof(((struct header *)0)->kid)]; /* as in the header */
};

/* pread or pwrite of exactly len bytes at off; -ENODATA for a file that ends before them (kept
 * apart from -EIO, a device that failed). */
static int pio_full(int fd, void *buf, size_t len, uint64_t off, bool writing) {
        size_t done = 0;

        while (done < len) {
                uint8_t *p = (uint8_t *)buf + done;
                ssize_t n = writing ? pwrite(fd, p, len - done, (off_t)(off + done))
                                    : pread(fd, p, len - done, (off_t)(off + done));

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -ENODATA;
                done += (size_t)n;
        }
        return 0;
}

/* Whole entries the file may hold (a partial trailing one does not count). */
static uint64_t entries(const struct sigcache *c) {
        return c->size < HDR_BYTES ? 0 : (c->size - HDR_BYTES) / ENTRY_BYTES;
}

static int write_header(struct sigcache *c, uint64_t base) {
        struct header h = { .base = htole64(base) };

        memcpy(h.magic, MAGIC, sizeof(h.magic));
        memcpy(h.kid, c->kid, sizeof(h.kid));
        h.crc = htole32(plat_crc32c(0, &h, offsetof(struct header, crc)));
        return pio_full(c->fd, &h, sizeof(h), 0, true);
}

/* What makes the file of `size` bytes starting with header h (NULL when shorter) no cache for c;
 * NULL when it is one, with *ret_base. why has room for a sentence. */
static const char *header_fault(const struct sigcache *c, const struct header *h, uint64_t size, char *why,
                                size_t why_len, uint64_t *ret_base) {
        uint64_t base, n;

        if (size < HDR_BYTES) {
                snprintf(why, why_len, "header cut short (%llu bytes)", (unsigned long long)size);
                return why;
        }
        if (size > FILE_MAX) {
                snprintf(why, why_len, "larger than %llu entries (%llu bytes)",
                         (unsigned long long)SIGCACHE_ENTRIES_MAX, (unsigned long long)size);
                return why;
        }
        if (memcmp(h->magic, MAGIC, sizeof(h->magic)) != 0)
                return "not a signature cache (bad magic)";
        if (le32toh(h->crc) != plat_crc32c(0, h, offsetof(struct header, crc)))
                return "header checksum mismatch";
        if (memcmp(h->kid, c->kid, sizeof(h->kid)) != 0) {
                char other[sizeof(h->kid)];
                size_t i;

                /* The stored kid may be any bytes: show only the base64url characters of it. */
                for (i = 0; i < PLAT_KID_LEN && h->kid[i]; i++)
                        other[i] = strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                                          h->kid[i])
                                           ? h->kid[i]
                                           : '?';
                other[i] = '\0';
                snprintf(why, why_len, "made with another key (kid %s)", other);
                return why;
        }
        base = le64toh(h->base);
        n = (size - HDR_BYTES) / ENTRY_BYTES;
        if (base == 0 && n > 0)
                return "entries without a base id";
        if (n > 0 && n - 1 > UINT64_MAX - base)
                return "entries past the largest id";
        *ret_base = base;
        return NULL;
}

/* For the message about a `signatures` that is no regular file. */
static const char *type_name(mode_t mode) {
        switch (mode & S_IFMT) {
        case S_IFIFO:
                return "a FIFO";
        case S_IFSOCK:
                return "a socket";
        case S_IFCHR:
        case S_IFBLK:
                return "a device";
        default:
                return "something else";
        }
}

int sigcache_open(int state_dir_fd, const char *state_dir_path, const char *kid, struct sigcache **ret,
                  bool *ret_reset, char *msg, size_t msg_len) {
        _cleanup_free_ struct sigcache *c = NULL;
        _cleanup_close_ int fd = -1;
        struct header h;
        const char *fault = NULL, *op;
        char why[128];
        uint64_t base = 0;
        size_t kid_len;
        struct stat st;
        int r;

        if (msg && msg_len)
                msg[0] = '\0';
        kid_len = kid ? strnlen(kid, PLAT_KID_LEN + 1) : 0;
        if (kid_len == 0 || kid_len > PLAT_KID_LEN) {
                if (msg && msg_len)
                        snprintf(msg, msg_len, "%s/%s: a kid of 1..%d characters is needed", state_dir_path,
                                 SIGCACHE_FILE, PLAT_KID_LEN);
                return -EINVAL;
        }
        op = "open";
        c = calloc(1, sizeof(*c));
        if (!c) {
                r = -ENOMEM;
                goto fail;
        }
        memcpy(c->kid, kid, kid_len);
        /* O_NOFOLLOW: a link planted in the state dir must not aim our writes elsewhere. O_NONBLOCK
         * and O_NOCTTY: a FIFO or device put there must not hang or grab the open; fstat turns it
         * away next. Neither changes anything for the regular file. */
        fd = openat(state_dir_fd, SIGCACHE_FILE,
                    O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK, 0600);
        if (fd < 0 || fstat(fd, &st) < 0)
                goto fail_errno;
        if (!S_ISREG(st.st_mode)) {
                if (msg && msg_len)
                        snprintf(msg, msg_len, "%s/%s: %s, not a regular file; left alone", state_dir_path,
                                 SIGCACHE_FILE, type_name(st.st_mode));
                return -EBADFD;
        }
        c->fd = fd;
        c->size = (uint64_t)st.st_size;
        if (c->size > 0) {
                r = c->size >= HDR_BYTES ? pio_full(fd, &h, sizeof(h), 0, false) : 0;
                if (r == -ENODATA)
                        fault = "cut short while being read";
                else if (r < 0) {
                        op = "read";
                        goto fail;
                } else
                        fault = header_fault(c, &h, c->size, why, sizeof(why), &base);
        }
        if (c->size == 0 || fault) {
                /* A fresh file, or a reset: nothing from before is kept. */
                op = "write";
                if (ftruncate(fd, 0) < 0)
                        goto fail_errno;
                r = write_header(c, 0);
                if (r < 0)
                        goto fail;
                c->size = HDR_BYTES;
                if (fault && msg && msg_len)
                        snprintf(msg, msg_len, "%s/%s: %s; emptied, signatures will be made again",
                                 state_dir_path, SIGCACHE_FILE, fault);
        }
        c->base = entries(c) > 0 ? base : 0;
        TAKE_FD(fd);
        *ret_reset = fault != NULL;
        *ret = TAKE_PTR(c);
        return 0;

fail_errno:
        r = -errno;
fail:
        if (msg && msg_len)
                snprintf(msg, msg_len, "%s/%s: cannot %s: %s", state_dir_path, SIGCACHE_FILE, op,
                         strerror(-r));
        return r;
}

void sigcache_close(struct sigcache *c) {
        if (!c)
                return;
        plat_closep(&c->fd);
        free(c);
}

int sigcache_put(struct sigcache *c, uint64_t id, const uint8_t digest[PLAT_SHA256_LEN],
                 const uint8_t sig[PLAT_ES256_SIG_LEN]) {
        struct entry e = { .id = htole64(id) };
        uint64_t off;
        int r;

        if (id == 0)
                return -ERANGE;
        if (entries(c) == 0 && id != c->base) {
                /* The first entry names the base: the header goes first, so that an entry is never
                 * on disk under a header that places it at another id (it would only miss, but
                 * the next open would count it in). */
                r = write_header(c, id);
                if (r < 0)
                        return r;
                c->base = id;
        }
        if (id < c->base || id - c->base >= SIGCACHE_ENTRIES_MAX)
                return -ERANGE;
        memcpy(e.digest, digest, sizeof(e.digest));
        memcpy(e.sig, sig, sizeof(e.sig));
        e.crc = htole32(plat_crc32c(0, &e, offsetof(struct entry, crc)));
        off = HDR_BYTES + (id - c->base) * ENTRY_BYTES;
        r = pio_full(c->fd, &e, sizeof(e), off, true);
        if (r < 0)
                return r; /* what it left, a torn entry or a hole, reads as a miss */
        if (c->size < off + ENTRY_BYTES)
                c->size = off + ENTRY_BYTES;
        return 0;
}

int sigcache_get(struct sigcache *c, uint64_t id, const uint8_t digest[PLAT_SHA256_LEN],
                 uint8_t ret_sig[PLAT_ES256_SIG_LEN]) {
        struct entry e;
        int r;

        if (entries(c) == 0 || id < c->base || id - c->base >= entries(c))
                return -ENOENT;
        r = pio_full(c->fd, &e, sizeof(e), HDR_BYTES + (id - c->base) * ENTRY_BYTES, false);
        if (r == -ENODATA)
                return -ENOENT; /* cut short under us */
        if (r < 0)
                return r;
        /* A hole reads as zeros: its id (0) never matches, and neither would its CRC. */
        if (le64toh(e.id) != id || memcmp(e.digest, digest, sizeof(e.digest)) != 0 ||
            le32toh(e.crc) != plat_crc32c(0, &e, offsetof(struct entry, crc)))
                return -ENOENT;
        memcpy(ret_sig, e.sig, sizeof(e.sig));
        return 0;
}

int sigcache_trim(struct sigcache *c, uint64_t acked) {
        if (c->size <= HDR_BYTES)
                return 0; /* no entries: the common case, no syscall */
        if (acked < sigcache_high(c))
                return 0;
        /* Truncate first: a crash before the header is rewritten leaves an old base over no entries,
         * which reads as empty. The header the other way round would leave entries without a base. */
        if (ftruncate(c->fd, HDR_BYTES) < 0)
                return -errno;
        c->size = HDR_BYTES;
        c->base = 0;
        return write_header(c, 0);
}

uint64_t sigcache_high(const struct sigcache *c) {
        uint64_t n = entries(c);

        return n > 0 ? c->base + n - 1 : 0;
}
