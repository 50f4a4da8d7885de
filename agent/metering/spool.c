/* spool.c: the spool at run time: preallocated segments, append, group commit, delivery reads, acks, the
 * cursor, segment deletion. */
#include "spool_internal.h"

#include "cleanup.h"
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

void spool_close(struct spool *s) {
        if (!s)
                return;
        for (size_t i = 0; i < s->n_segs; i++)
                free(s->segs[i].bad);
        free(s->segs);
        free(s->fl);
        spool__scanner_done(&s->rd_sc);
        plat_closep(&s->rd_fd);
        plat_closep(&s->wfd);
        plat_closep(&s->prep_fd); /* the file stays: the next open removes it */
        plat_closep(&s->dir_fd);  /* drops the lock */
        free(s);
}

int spool__seg_push(struct spool *s, uint64_t name_id) {
        if (s->n_segs == s->cap_segs) {
                size_t cap = s->cap_segs ? s->cap_segs * 2 : 16;
                struct spool__seg *ns = realloc(s->segs, cap * sizeof(*ns));

                if (!ns)
                        return -ENOMEM;
                s->segs = ns;
                s->cap_segs = cap;
        }
        s->segs[s->n_segs++] = (struct spool__seg){ .name_id = name_id };
        return 0;
}

uint64_t spool_next_id(const struct spool *s) {
        return s->next_id;
}

/* A failed fsync may have dropped the pages it could not write, and a retry would report success
 * over the hole: from here on only a reopen (which reads what is really on disk) is trusted. */
static int break_spool(struct spool *s, int r) {
        s->broken = r;
        return r;
}

int spool__write_cursor(struct spool *s) {
        char text[SPOOL__CURSOR_MAX];
        size_t len = spool__cursor_text(text, sizeof(text), s->acked, s->synced_id);
        int r = plat_write_atomic_at(s->dir_fd, SPOOL__CURSOR, text, len, 0600);

        if (r < 0)
                return r;
        s->cursor_acked = s->acked;
        s->cursor_high = s->synced_id;
        s->cursor_valid = true;
        return 0;
}

/* ---- append and group commit ---- */

static int sync_newest(struct spool *s) {
        struct spool__seg *g = s->n_segs ? &s->segs[s->n_segs - 1] : NULL;

        if (g && g->size > g->durable && fdatasync(s->wfd) < 0)
                return break_spool(s, -errno);
        if (s->dir_dirty && fsync(s->dir_fd) < 0)
                return break_spool(s, -errno);
        s->dir_dirty = false;
        if (g)
                g->durable = g->size;
        if (s->last_id > s->synced_id)
                s->synced_id = s->last_id;
        return 0;
}

int spool_sync(struct spool *s) {
        uint64_t n;
        int r;

        if (s->broken)
                return s->broken;
        r = sync_newest(s);
        if (r < 0)
                return r;
        /* Roll-overs sync too: count what they made durable since the last call as well. */
        n = s->synced_id > s->sync_counted ? s->synced_id - s->sync_counted : 0;
        s->sync_counted = s->synced_id;
        return n > INT_MAX ? INT_MAX : (int)n;
}

int spool_sync_begin(struct spool *s, struct spool_sync_ticket *ret) {
        const struct spool__seg *g = s->n_segs ? &s->segs[s->n_segs - 1] : NULL;
        int fd;

        if (s->broken)
                return s->broken;
        if (s->dir_dirty && fsync(s->dir_fd) < 0)
                return break_spool(s, -errno);
        s->dir_dirty = false;
        if (!g || g->size <= g->durable)
                return 0;
        fd = fcntl(s->wfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return -errno;
        *ret = (struct spool_sync_ticket){
                .fd = fd, .name_id = g->name_id, .size = g->size, .last_id = g->last_id
        };
        return 1;
}

int spool_sync_end(struct spool *s, const struct spool_sync_ticket *t, int err) {
        uint64_t n;

        if (s->broken)
                return s->broken;
        if (err < 0)
                return break_spool(s, err);
        for (size_t i = 0; i < s->n_segs; i++) {
                struct spool__seg *g = &s->segs[i];

                if (g->name_id == t->name_id && t->size > g->durable && t->size <= g->size)
                        g->durable = t->size;
        }
        if (t->last_id > s->synced_id)
                s->synced_id = t->last_id;
        n = s->synced_id > s->sync_counted ? s->synced_id - s->sync_counted : 0;
        s->sync_counted = s->synced_id;
        return n > INT_MAX ? INT_MAX : (int)n;
}

/* ---- preallocated segments ---- */

/* spool_prepare calls (about seconds) skipped after a failure: on a full disk each try writes up to
 * a segment of zeros before it fails. */
#define PREPARE_BACKOFF 60

static bool no_room(int r) {
        return r == -ENOSPC || r == -EFBIG || r == -EDQUOT;
}

/* Where the newest segment g ends: its preallocated length, or segment_bytes for a shorter one
 * (grown as it went, or made before preallocation), which appends extend. */
static uint64_t seg_limit(const struct spool *s, const struct spool__seg *g) {
        return g->alloc > s->segment_bytes ? g->alloc : s->segment_bytes;
}

/* Makes SPOOL__PREP: segment_bytes of zeros written with plain writes (fallocate's unwritten
 * extents would still need a metadata update at the first write into each) and synced, so that
 * the fdatasync after an append into it flushes data only: no size, no block allocation. On
 * failure nothing is left of it. */
static int prepare_file(struct spool *s) {
        _cleanup_close_ int fd = -1;
        struct statvfs fs;
        int r;

        /* Less than two segments free: the zeros would take the disk's last bytes from everything
         * else on it (if only for a moment, when they fail); a growing segment takes what it needs. */
        if (fstatvfs(s->dir_fd, &fs) == 0 && (uint64_t)fs.f_bavail * fs.f_frsize < 2 * s->segment_bytes)
                return -ENOSPC;
        /* Whatever has the name goes first, and the file is new (O_EXCL): a name left behind by
         * take_prepared's link() fallback is a second name of a live segment, never to be zeroed. */
        if (unlinkat(s->dir_fd, SPOOL__PREP, 0) < 0 && errno != ENOENT)
                return -errno;
        fd = openat(s->dir_fd, SPOOL__PREP, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        r = spool__zero(fd, 0, s->segment_bytes);
        if (r >= 0 && fdatasync(fd) < 0)
                r = -errno;
        if (r < 0) {
                (void)unlinkat(s->dir_fd, SPOOL__PREP, 0);
                return r;
        }
        s->prep_fd = TAKE_FD(fd);
        s->prep_bytes = s->segment_bytes;
        s->bytes += s->prep_bytes;
        return 0;
}

int spool_prepare(struct spool *s) {
        const struct spool__seg *g = s->n_segs ? &s->segs[s->n_segs - 1] : NULL;
        int r;

        if (s->broken)
                return s->broken;
        if (s->prep_fd >= 0 || (g && g->size <= seg_limit(s, g) / 2))
                return 0;
        if (s->prep_wait > 0) {
                s->prep_wait--;
                return 0;
        }
        /* No room under the cap: the roll-over makes what fits. */
        if (s->bytes + s->segment_bytes > s->max_bytes)
                return 0;
        r = prepare_file(s);
        if (r < 0) {
                s->prep_wait = PREPARE_BACKOFF;
                return r;
        }
        return 1;
}

/* Gives SPOOL__PREP the name `name`, which must not exist. */
static int take_prepared(struct spool *s, const char *name) {
        if (renameat2(s->dir_fd, SPOOL__PREP, s->dir_fd, name, RENAME_NOREPLACE) < 0) {
                /* A file system (or a seccomp filter) without the flag: link() is as exclusive. The
                 * old name may stay if its unlink fails: prepare_file removes it before making one. */
                if ((errno != EINVAL && errno != ENOSYS && errno != EPERM) ||
                    linkat(s->dir_fd, SPOOL__PREP, s->dir_fd, name, 0) < 0)
                        return -errno;
                (void)unlinkat(s->dir_fd, SPOOL__PREP, 0);
        }
        return 0;
}

/* Opens the file of a new segment `name`, *ret_alloc bytes long: the prepared one, else one made
 * now the same way, else (no room for a segment of zeros: the cap, the disk, the file size limit)
 * an empty one that grows as records are appended, as a nearly full disk still takes records. */
static int new_segment_file(struct spool *s, const char *name, uint64_t need, int *ret_fd,
                            uint64_t *ret_alloc) {
        int fd, r;

        if (s->prep_fd < 0 &&
            s->bytes + (need > s->segment_bytes ? need : s->segment_bytes) <= s->max_bytes) {
                r = prepare_file(s);
                if (r < 0 && !no_room(r))
                        return r;
        }
        if (s->prep_fd >= 0) {
                r = take_prepared(s, name);
                if (r < 0)
                        return r;
                *ret_fd = TAKE_FD(s->prep_fd);
                *ret_alloc = s->prep_bytes;
                s->prep_bytes = 0;
                return 0;
        }
        fd = openat(s->dir_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        *ret_fd = fd;
        *ret_alloc = 0;
        return 0;
}

/* Starts segment seg-<next id>.log for a record of need bytes. The old one is synced first, so that
 * a segment which has a successor always ends on a complete record: recovery then treats a bad end
 * there as corruption, not as a torn tail. An empty newest segment named for another id (recovery
 * moved next_id past it) is replaced rather than kept: names always match first records. */
static int roll(struct spool *s, uint64_t need) {
        struct spool__seg *g = s->n_segs ? &s->segs[s->n_segs - 1] : NULL;
        bool replace = g && g->size == 0;
        char name[SPOOL_NAME_MAX], old[SPOOL_NAME_MAX];
        uint64_t alloc = 0;
        int fd = -1, r;

        if (!replace && s->n_segs >= SPOOL_SEGMENTS_MAX)
                return -ENOSPC;
        r = sync_newest(s);
        if (r < 0)
                return r;
        spool__seg_name(name, sizeof(name), s->next_id);
        r = new_segment_file(s, name, need, &fd, &alloc);
        if (r < 0)
                return r;
        if (replace) {
                spool__seg_name(old, sizeof(old), g->name_id);
                (void)unlinkat(s->dir_fd, old, 0);
                s->bytes -= g->alloc;
                free(g->bad);
                if (s->rd_seg == s->n_segs - 1) {
                        plat_closep(&s->rd_fd);
                        s->rd_fd = -1;
                        s->rd_off = 0;
                }
                *g = (struct spool__seg){ .name_id = s->next_id };
        } else if (spool__seg_push(s, s->next_id) < 0) {
                (void)unlinkat(s->dir_fd, name, 0);
                s->bytes -= alloc;
                close(fd);
                return -ENOMEM;
        }
        s->segs[s->n_segs - 1].alloc = alloc;
        plat_closep(&s->wfd);
        s->wfd = fd;
        s->dir_dirty = true;
        return 0;
}

/* Undoes the partial write of [off, at) into g's file: bytes past its preallocated end are cut off,
 * bytes inside it are zeros again (the preallocation stays). */
static int undo_write(struct spool *s, const struct spool__seg *g, uint64_t off, uint64_t at) {
        if (at > g->alloc && ftruncate(s->wfd, (off_t)(off > g->alloc ? off : g->alloc)) < 0)
                return -errno;
        if (off < g->alloc)
                return spool__zero(s->wfd, off, at < g->alloc ? at : g->alloc);
        return 0;
}

/* Writes both pieces at g's logical end, all or nothing: a short write is undone. */
static int write_record(struct spool *s, const struct spool__seg *g, const uint8_t *hdr, const void *rec,
                        size_t len) {
        struct iovec iov[2] = { { (void *)hdr, SPOOL_HDR_BYTES }, { (void *)rec, len } };
        uint64_t done;
        int r = spool__pwritev_all(s->wfd, iov, 2, g->size, &done);

        /* A partial record must not stay: the next append starts at g->size. If the undo fails, a
         * recovery would see the rest as a torn or corrupt region. */
        if (r < 0 && done > 0 && undo_write(s, g, g->size, g->size + done) < 0)
                return break_spool(s, -EIO);
        return r;
}

static int delete_acked(struct spool *s);

/* Whether a record of need bytes with this id goes to a new segment: there is none, it does not fit
 * before the newest one's end (a record longer than a whole segment goes alone into one), or the
 * newest is an empty one named for another id. */
static bool must_roll(const struct spool *s, uint64_t need, uint64_t id) {
        const struct spool__seg *g = s->n_segs ? &s->segs[s->n_segs - 1] : NULL;

        if (!g)
                return true;
        if (g->size == 0)
                return g->name_id != id;
        return g->size + need > seg_limit(s, g);
}

/* The bytes a file alloc bytes long grows by when need bytes are written at off. */
static uint64_t growth(uint64_t off, uint64_t need, uint64_t alloc) {
        return off + need > alloc ? off + need - alloc : 0;
}

int spool_append(struct spool *s, const void *rec, size_t len, uint64_t *ret_id) {
        uint8_t hdr[SPOOL_HDR_BYTES];
        struct spool__seg *g;
        uint64_t need = SPOOL_HDR_BYTES + (uint64_t)len, id = s->next_id, grow, want;
        bool roll_over;
        int r;

        if (s->broken)
                return s->broken;
        if (!rec || len == 0 || len > SPOOL_RECORD_MAX)
                return -EMSGSIZE;
        if (id >= SPOOL__ID_LIMIT)
                return -EOVERFLOW;
        /* The cap counts file lengths: an append into a preallocated segment costs nothing, a new
         * segment costs its zeros (want), or at the least its record (grow: grown as it goes). */
        roll_over = must_roll(s, need, id);
        if (roll_over) {
                grow = s->prep_fd >= 0 ? growth(0, need, s->prep_bytes) : need;
                want = s->prep_fd >= 0 ? grow : need > s->segment_bytes ? need : s->segment_bytes;
        } else {
                g = &s->segs[s->n_segs - 1];
                grow = want = growth(g->size, need, g->alloc);
        }
        if (s->bytes + want > s->max_bytes) {
                /* Acked segments may still be on disk, waiting for the next cursor flush. */
                (void)spool_flush_cursor(s);
                if (s->bytes + grow > s->max_bytes) {
                        s->full = true;
                        return -ENOSPC;
                }
        }
        if (roll_over) {
                r = roll(s, need);
                if (r < 0) {
                        s->full = s->full || no_room(r);
                        return r;
                }
        }
        g = &s->segs[s->n_segs - 1];
        spool__header(hdr, id, rec, (uint32_t)len);
        r = write_record(s, g, hdr, rec, len);
        if (r < 0) {
                s->full = s->full || no_room(r);
                return r;
        }
        if (g->records == 0)
                g->first_id = id;
        g->last_id = id;
        g->records++;
        s->last_seg = s->n_segs - 1;
        s->last_off = g->size;
        s->last_len = (uint32_t)len;
        s->last_id = id;
        grow = growth(g->size, need, g->alloc);
        g->size += need;
        g->alloc += grow;
        s->bytes += grow;
        s->next_id++;
        s->pending++;
        s->full = false;
        *ret_id = id;
        return 0;
}

/* ---- delivery ---- */

static struct spool__flight *flight(struct spool *s, size_t i) {
        return &s->fl[(s->fl_head + i) & (s->fl_cap - 1)];
}

/* The in-flight entry for id (ids ascend along the ring), or NULL. */
static struct spool__flight *flight_find(struct spool *s, uint64_t id) {
        size_t lo = 0, hi = s->fl_len;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                struct spool__flight *f = flight(s, mid);

                if (f->id == id)
                        return f;
                if (f->id < id)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

static int flight_push(struct spool *s, uint64_t id) {
        if (s->fl_len == s->fl_cap) {
                size_t cap = s->fl_cap ? s->fl_cap * 2 : 64;
                struct spool__flight *nf = malloc(cap * sizeof(*nf));

                if (!nf)
                        return -ENOMEM;
                for (size_t i = 0; i < s->fl_len; i++)
                        nf[i] = *flight(s, i);
                free(s->fl);
                s->fl = nf;
                s->fl_cap = cap;
                s->fl_head = 0;
        }
        *flight(s, s->fl_len++) = (struct spool__flight){ .id = id };
        return 0;
}

void spool_rewind(struct spool *s) {
        uint64_t prev = 0;
        size_t i = 0;

        while (i + 1 < s->n_segs && (s->segs[i].records == 0 || s->segs[i].last_id <= s->acked)) {
                if (s->segs[i].last_id > prev)
                        prev = s->segs[i].last_id;
                i++;
        }
        if (s->rd_seg != i) {
                plat_closep(&s->rd_fd);
                s->rd_fd = -1;
        }
        s->rd_seg = i;
        s->rd_off = 0;
        s->rd_prev = prev;
}

uint64_t spool__skip_bad(const struct spool__seg *g, uint64_t off) {
        for (bool moved = true; moved;) {
                moved = false;
                for (size_t i = 0; i < g->n_bad; i++)
                        if (g->bad[i].start <= off && off < g->bad[i].end) {
                                off = g->bad[i].end;
                                moved = true;
                        }
        }
        return off;
}

/* The bytes at the reader's position went bad after they were checked: copy them out and count
 * the records they held (ids were contiguous when written) as neither pending nor present. */
static int quarantine_at_reader(struct spool *s, struct spool__seg *g, uint64_t end) {
        char name[SPOOL_NAME_MAX];
        struct spool__rec next;
        uint64_t upto, gone;
        int r = spool__quarantine(s, g, s->rd_fd, s->rd_off, end, name);

        if (r < 0)
                return r;
        if (end < g->durable && spool__rec_at(&s->rd_sc, end, g->durable, &next, NULL) == 0)
                upto = next.id;
        else
                upto = g->last_id + 1;
        gone = upto > s->rd_prev + 1 ? upto - s->rd_prev - 1 : 0;
        g->records -= gone < g->records ? gone : g->records;
        s->pending -= gone < s->pending ? gone : s->pending;
        s->rd_off = end;
        return 0;
}

int spool_read_next(struct spool *s, void **ret_buf, size_t *ret_len, uint64_t *ret_id) {
        for (;;) {
                struct spool__seg *g;
                struct spool__flight *f;
                struct spool__rec rec;
                const uint8_t *bytes;
                uint64_t bad_end = 0;
                bool fresh;
                int k;

                if (s->rd_seg >= s->n_segs)
                        return -EAGAIN;
                g = &s->segs[s->rd_seg];
                s->rd_off = spool__skip_bad(g, s->rd_off);
                if (s->rd_off >= g->durable) {
                        /* Only a segment with a successor is complete. */
                        if (s->rd_seg + 1 >= s->n_segs)
                                return -EAGAIN;
                        plat_closep(&s->rd_fd);
                        s->rd_fd = -1;
                        s->rd_seg++;
                        s->rd_off = 0;
                        continue;
                }
                if (s->rd_fd < 0) {
                        char name[SPOOL_NAME_MAX];

                        spool__seg_name(name, sizeof(name), g->name_id);
                        s->rd_fd = openat(s->dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                        if (s->rd_fd < 0)
                                return -errno;
                        spool__scanner_reset(&s->rd_sc, s->rd_fd);
                }
                k = spool__next(&s->rd_sc, s->rd_off, g->durable, s->rd_prev, &rec, &bad_end, NULL);
                if (k < 0)
                        return k;
                if (k == SPOOL__NEXT_END) {
                        s->rd_off = g->durable;
                        continue;
                }
                if (k == SPOOL__NEXT_BAD) {
                        k = quarantine_at_reader(s, g, bad_end);
                        if (k < 0)
                                return k;
                        continue;
                }
                f = s->fl_len ? flight(s, s->fl_len - 1) : NULL;
                fresh = !f || rec.id > f->id;
                f = fresh ? NULL : flight_find(s, rec.id);
                if (rec.id <= s->acked || (f && f->acked)) {
                        s->rd_prev = rec.id;
                        s->rd_off += SPOOL_HDR_BYTES + rec.len;
                        continue;
                }
                if (fresh && s->fl_len >= SPOOL_INFLIGHT_MAX)
                        return -EAGAIN;
                k = spool__rec_at(&s->rd_sc, s->rd_off, g->durable, &rec, &bytes);
                if (k < 0)
                        return k;
                *ret_buf = malloc(rec.len);
                if (!*ret_buf)
                        return -ENOMEM;
                if (fresh && flight_push(s, rec.id) < 0) {
                        free(*ret_buf);
                        return -ENOMEM;
                }
                memcpy(*ret_buf, bytes + SPOOL_HDR_BYTES, rec.len);
                *ret_len = rec.len;
                *ret_id = rec.id;
                s->rd_prev = rec.id;
                s->rd_off += SPOOL_HDR_BYTES + rec.len;
                return 0;
        }
}

int spool_ack(struct spool *s, uint64_t id) {
        struct spool__flight *f;

        if (id <= s->acked)
                return 0;
        f = flight_find(s, id);
        if (!f)
                return -ERANGE;
        if (!f->acked) {
                f->acked = true;
                s->fl_acked++;
        }
        /* The cursor covers the acked prefix of the ring: every record up to it was handed out
         * (the reader hands them out in id order), and ids between them do not exist. */
        while (s->fl_len > 0 && flight(s, 0)->acked) {
                s->acked = flight(s, 0)->id;
                s->fl_head = (s->fl_head + 1) & (s->fl_cap - 1);
                s->fl_len--;
                s->fl_acked--;
                if (s->pending > 0)
                        s->pending--;
        }
        return 0;
}

/* ---- cursor and deletion ---- */

/* Deletes, oldest first, the segments whose records are all acked by the cursor on disk (never
 * only in memory: a crash must not find records gone that its cursor calls unacked), except the
 * newest segment and the one holding the newest record. */
static int delete_acked(struct spool *s) {
        size_t k = 0;
        int r = 0;

        while (k + 1 < s->n_segs && (s->last_id == 0 || k < s->last_seg) &&
               (s->segs[k].records == 0 || s->segs[k].last_id <= s->cursor_acked)) {
                char name[SPOOL_NAME_MAX];

                spool__seg_name(name, sizeof(name), s->segs[k].name_id);
                if (unlinkat(s->dir_fd, name, 0) < 0 && errno != ENOENT) {
                        r = -errno;
                        break;
                }
                s->bytes -= s->segs[k].alloc;
                free(s->segs[k].bad);
                k++;
        }
        if (k == 0)
                return r;
        memmove(s->segs, s->segs + k, (s->n_segs - k) * sizeof(*s->segs));
        s->n_segs -= k;
        s->last_seg -= s->last_id ? k : 0;
        if (s->rd_seg < k) {
                plat_closep(&s->rd_fd);
                s->rd_fd = -1;
                s->rd_seg = 0;
                s->rd_off = 0;
        } else {
                s->rd_seg -= k;
        }
        return r;
}

int spool_flush_cursor(struct spool *s) {
        int r = 0, d;

        if (!s->cursor_valid || s->acked != s->cursor_acked || s->synced_id != s->cursor_high)
                r = spool__write_cursor(s);
        /* Even when the write failed (a full disk): what the old cursor covers may go, and on a
         * full disk that is what gives room back. */
        d = delete_acked(s);
        return r < 0 ? r : d;
}

/* ---- the newest record, figures ---- */

int spool_last(struct spool *s, void **ret_buf, size_t *ret_len, uint64_t *ret_id) {
        _cleanup_close_ int own = -1;
        _cleanup_free_ uint8_t *buf = NULL;
        uint8_t hdr[SPOOL_HDR_BYTES];
        size_t len = s->last_len, total = SPOOL_HDR_BYTES + len;
        int fd = s->wfd;
        ssize_t n;

        if (s->last_id == 0)
                return -ENOENT;
        if (s->last_seg + 1 != s->n_segs) {
                char name[SPOOL_NAME_MAX];

                spool__seg_name(name, sizeof(name), s->segs[s->last_seg].name_id);
                fd = own = openat(s->dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (fd < 0)
                        return -errno;
        }
        buf = malloc(total);
        if (!buf)
                return -ENOMEM;
        do
                n = pread(fd, buf, total, (off_t)s->last_off);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        if ((size_t)n != total)
                return -EIO;
        /* Checked when read at open or written here, and checked again: a chain continued from
         * bytes that changed would break every record after it. */
        spool__header(hdr, s->last_id, buf + SPOOL_HDR_BYTES, (uint32_t)len);
        if (memcmp(hdr, buf, SPOOL_HDR_BYTES) != 0)
                return -EBADMSG;
        memmove(buf, buf + SPOOL_HDR_BYTES, len);
        *ret_buf = TAKE_PTR(buf);
        *ret_len = len;
        *ret_id = s->last_id;
        return 0;
}

int spool_room(const struct spool *s, uint64_t *ret_bytes) {
        const struct spool__seg *g = s->n_segs ? &s->segs[s->n_segs - 1] : NULL;
        uint64_t ready = s->prep_fd >= 0 ? s->prep_bytes : 0, grow, disk;
        struct statvfs fs;

        if (s->broken)
                return s->broken;
        if (fstatvfs(s->dir_fd, &fs) < 0)
                return -errno;
        if (g && g->alloc > g->size)
                ready += g->alloc - g->size;
        grow = s->max_bytes > s->bytes ? s->max_bytes - s->bytes : 0;
        disk = (uint64_t)fs.f_bavail * fs.f_frsize;
        *ret_bytes = ready + (disk < grow ? disk : grow);
        return 0;
}

int spool_room_at_least(const struct spool *s, uint64_t need, uint64_t *ret_bytes) {
        const struct spool__seg *g = s->n_segs ? &s->segs[s->n_segs - 1] : NULL;
        uint64_t ready =
                (s->prep_fd >= 0 ? s->prep_bytes : 0) + (g && g->alloc > g->size ? g->alloc - g->size : 0);
        int r;

        if (!s->broken && ready >= need) {
                *ret_bytes = ready;
                return 1;
        }
        r = spool_room(s, ret_bytes);
        return r < 0 ? r : *ret_bytes >= need;
}

void spool_stats(const struct spool *s, struct spool_stats *ret) {
        uint64_t oldest = 0, pending = s->pending - s->fl_acked, used = 0;

        if (s->fl_len > 0) {
                oldest = s->fl[s->fl_head].id; /* the head is never acked: acked heads are popped */
        } else if (pending > 0) {
                for (size_t i = 0; i < s->n_segs; i++)
                        if (s->segs[i].records > 0 && s->segs[i].last_id > s->acked) {
                                oldest = s->segs[i].first_id > s->acked ? s->segs[i].first_id : s->acked + 1;
                                break;
                        }
        }
        for (size_t i = 0; i < s->n_segs; i++)
                used += s->segs[i].size;
        *ret = (struct spool_stats){
                .bytes = s->bytes,
                .used = used,
                .max_bytes = s->max_bytes,
                .pending = pending,
                .oldest_unacked = oldest,
                .next_id = s->next_id,
                .acked = s->acked,
                .synced_id = s->synced_id,
                .segments = s->n_segs,
                .quarantined = s->quarantined,
                .full = s->full,
                .broken = s->broken,
        };
}
