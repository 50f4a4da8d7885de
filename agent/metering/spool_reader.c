/* spool_reader.c: a second, read-only walk over the spool's durable records, in id order, apart from
 * delivery.
 */
#include "spool_internal.h"

#include "cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

/* The position is a segment's name, not its index: acked segments are deleted from the front of
 * the table between calls and the indexes shift, but names are never given twice in one open. */
struct spool_reader {
        struct spool *s; /* borrowed */
        uint64_t seg;    /* name_id of the segment read; 0 with off 0: before the first one */
        uint64_t off;    /* of the next record in it */
        uint64_t prev;   /* the last id returned, or the seek position: only ids above it come */
        int fd;          /* open on segment fd_seg, or -1 */
        uint64_t fd_seg;
        struct spool__scanner sc;
};

int spool_reader_new(struct spool *s, struct spool_reader **ret) {
        struct spool_reader *r = calloc(1, sizeof(*r));

        if (!r)
                return -ENOMEM;
        /* Room for the largest record, no more: a reader lives as long as the agent, and its walks
         * (during outages) are rare; recovery's larger buffer would stay resident for nothing. */
        if (spool__scanner_init(&r->sc, SPOOL__READ_BUF) < 0) {
                free(r);
                return -ENOMEM;
        }
        r->s = s;
        r->fd = -1;
        *ret = r;
        return 0;
}

void spool_reader_free(struct spool_reader *r) {
        if (!r)
                return;
        spool__scanner_done(&r->sc);
        plat_closep(&r->fd);
        free(r);
}

void spool_reader_seek(struct spool_reader *r, uint64_t after_id) {
        r->seg = 0;
        r->off = 0;
        r->prev = after_id;
}

/* The index of the first segment named id or later (segments ascend by name), or n_segs. */
static size_t find_seg(const struct spool *s, uint64_t id) {
        size_t lo = 0, hi = s->n_segs;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (s->segs[mid].name_id < id)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

static int open_seg(struct spool_reader *r, uint64_t name_id) {
        char name[SPOOL_NAME_MAX];

        if (r->fd >= 0 && r->fd_seg == name_id)
                return 0;
        plat_closep(&r->fd);
        spool__seg_name(name, sizeof(name), name_id);
        r->fd = openat(r->s->dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (r->fd < 0)
                return -errno;
        r->fd_seg = name_id;
        spool__scanner_reset(&r->sc, r->fd);
        return 0;
}

/* Nothing more for now. The file is closed: held open, a segment acked and deleted meanwhile would
 * keep its disk space, uncounted by the cap, for as long as the reader waits (on a connected node,
 * indefinitely). */
static int caught_up(struct spool_reader *r) {
        plat_closep(&r->fd);
        r->fd = -1;
        return -EAGAIN;
}

int spool_reader_next(struct spool_reader *r, const void **ret_buf, size_t *ret_len, uint64_t *ret_id) {
        const struct spool *s = r->s;

        for (;;) {
                size_t i = find_seg(s, r->seg);
                const struct spool__seg *g;
                struct spool__rec rec;
                const uint8_t *bytes;
                uint64_t bad_end = 0;
                int k;

                if (i >= s->n_segs)
                        return caught_up(r);
                g = &s->segs[i];
                if (g->name_id != r->seg) {
                        /* Ours was deleted (all acked) or replaced: go on at the start of the next. */
                        r->seg = g->name_id;
                        r->off = 0;
                }
                r->off = spool__skip_bad(g, r->off);
                /* Only a segment with a successor is complete. One whose ids all lie at or below prev
                 * (last_id is 0 when it holds none) is passed over unread: a seek costs no scan. */
                if (r->off >= g->durable || (r->off == 0 && g->last_id <= r->prev)) {
                        if (i + 1 >= s->n_segs)
                                return caught_up(r);
                        r->seg = s->segs[i + 1].name_id;
                        r->off = 0;
                        continue;
                }
                k = open_seg(r, g->name_id);
                if (k < 0)
                        return k;
                k = spool__next(&r->sc, r->off, g->durable, r->prev, &rec, &bad_end, NULL);
                if (k < 0)
                        return k;
                if (k != SPOOL__NEXT_REC) {
                        r->off = k == SPOOL__NEXT_BAD ? bad_end : g->durable;
                        continue;
                }
                k = spool__rec_at(&r->sc, r->off, g->durable, &rec, &bytes);
                if (k < 0)
                        return k;
                r->prev = rec.id;
                r->off += SPOOL_HDR_BYTES + rec.len;
                *ret_buf = bytes + SPOOL_HDR_BYTES;
                *ret_len = rec.len;
                *ret_id = rec.id;
                return 0;
        }
}
