/* spool_peek.c: the spool's newest records, read without opening (or locking) the spool: for support
 * bundles, while the agent holds it. Only durable-looking, CRC-valid records are returned. */
#include "spool.h"
#include "spool_internal.h"

#include "cleanup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int id_desc(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x > y ? -1 : x < y;
}

/* The ids of the seg-<id>.log files in dir, newest first (caller frees). */
static int list_segments(int dir_fd, uint64_t **ret, size_t *ret_n) {
        _cleanup_free_ uint64_t *ids = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        int fd = dup(dir_fd);
        DIR *d;

        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -errno;
        }
        rewinddir(d);
        while ((de = readdir(d))) {
                char name[64];
                uint64_t id;
                int used = 0;

                if (sscanf(de->d_name, "seg-%20" SCNu64 ".log%n", &id, &used) != 1 ||
                    (size_t)used != strlen(de->d_name))
                        continue;
                spool__seg_name(name, sizeof(name), id);
                if (strcmp(name, de->d_name) != 0)
                        continue;
                if (n == cap) {
                        uint64_t *nb = realloc(ids, (cap = cap ? cap * 2 : 16) * sizeof(*ids));

                        if (!nb) {
                                closedir(d);
                                return -ENOMEM;
                        }
                        ids = nb;
                }
                ids[n++] = id;
        }
        closedir(d);
        if (n)
                qsort(ids, n, sizeof(*ids), id_desc);
        *ret = TAKE_PTR(ids);
        *ret_n = n;
        return 0;
}

struct peeked {
        uint64_t id;
        uint8_t *payload;
        uint32_t len;
};

/* The last `want` records of one segment, oldest first, into out (*n_out of them). */
static int peek_segment(int fd, size_t want, struct peeked *out, size_t *n_out) {
        struct spool__scanner sc;
        struct stat st;
        uint64_t pos = 0, prev = 0, end;
        size_t n = 0, first = 0;
        int r;

        if (fstat(fd, &st) < 0)
                return -errno;
        r = spool__scanner_init(&sc, SPOOL__SCAN_BUF);
        if (r < 0)
                return r;
        spool__scanner_reset(&sc, fd);
        r = spool__data_end(&sc, (uint64_t)st.st_size, &end);
        spool__scanner_reset(&sc, fd);
        while (r >= 0) {
                struct spool__rec rec;
                const uint8_t *bytes;
                uint64_t bad_end;
                struct peeked *slot;

                r = spool__next(&sc, pos, end, prev, &rec, &bad_end, NULL);
                if (r == SPOOL__NEXT_END || r < 0)
                        break;
                if (r == SPOOL__NEXT_BAD) {
                        pos = bad_end;
                        r = 0;
                        continue;
                }
                r = spool__rec_at(&sc, pos, end, &rec, &bytes);
                if (r < 0)
                        break;
                /* A ring of the last `want`: the oldest kept is overwritten. */
                slot = &out[(first + n) % want];
                if (n == want) {
                        free(out[first].payload);
                        slot = &out[first];
                        first = (first + 1) % want;
                } else {
                        n++;
                }
                slot->payload = malloc(rec.len);
                if (!slot->payload) {
                        r = -ENOMEM;
                        break;
                }
                memcpy(slot->payload, bytes + SPOOL_HDR_BYTES, rec.len);
                slot->id = rec.id;
                slot->len = rec.len;
                prev = rec.id;
                pos += SPOOL_HDR_BYTES + rec.len;
        }
        spool__scanner_done(&sc);
        /* Oldest first at out[0]. */
        if (first) {
                struct peeked *tmp = malloc(n * sizeof(*tmp));

                if (!tmp) {
                        r = -ENOMEM;
                } else {
                        for (size_t i = 0; i < n; i++)
                                tmp[i] = out[(first + i) % want];
                        memcpy(out, tmp, n * sizeof(*tmp));
                        free(tmp);
                }
        }
        *n_out = n;
        return r < 0 ? r : 0;
}

int spool_peek_last(int spool_dir_fd, size_t n, spool_peek_fn fn, void *userdata) {
        _cleanup_free_ uint64_t *ids = NULL;
        _cleanup_free_ struct peeked *all = NULL;
        size_t n_ids = 0, have = 0;
        int r;

        if (n == 0)
                return 0;
        r = list_segments(spool_dir_fd, &ids, &n_ids);
        if (r < 0)
                return r;
        all = calloc(n, sizeof(*all));
        if (!all)
                return -ENOMEM;
        /* Newest segment first; each one's records go before those already taken. */
        for (size_t i = 0; i < n_ids && have < n && r >= 0; i++) {
                _cleanup_free_ struct peeked *seg = calloc(n - have, sizeof(*seg));
                char name[64];
                size_t got = 0;
                int fd;

                if (!seg) {
                        r = -ENOMEM;
                        break;
                }
                spool__seg_name(name, sizeof(name), ids[i]);
                fd = openat(spool_dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (fd < 0)
                        continue; /* deleted since the listing: acked meanwhile */
                r = peek_segment(fd, n - have, seg, &got);
                close(fd);
                memmove(all + got, all, have * sizeof(*all));
                memcpy(all, seg, got * sizeof(*all));
                have += got;
        }
        for (size_t i = 0; i < have; i++) {
                if (r >= 0)
                        r = fn(all[i].id, all[i].payload, all[i].len, userdata);
                free(all[i].payload);
        }
        return r < 0 ? r : (int)have;
}
