/* spool_recover.c: spool_open: the spool directory and its lock, then recovery (torn tails, quarantine,
 * cursor). */
#include "spool_internal.h"

#include "cleanup.h"
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

enum cursor_state {
        CURSOR_MISSING,
        CURSOR_OK,
        CURSOR_CORRUPT,
};

/* One recovery pass over the segments, in id order. */
struct recovery {
        struct spool *s;
        struct spool_recovery *rep;
        enum cursor_state cur;
        uint64_t cur_acked, cur_high; /* when CURSOR_OK */
        uint64_t prev;                /* the last valid id so far; 0 before the first */
        uint64_t first;               /* the first valid id; 0 before it */
        uint64_t above;               /* valid records with an id above cur_acked */
};

/* Says why, and returns r_ (evaluated first: the message may use errno too). */
#define FAIL(r_, ...)                                  \
        do {                                           \
                int fail_r_ = (r_);                    \
                spool__say(msg, msg_len, __VA_ARGS__); \
                return fail_r_;                        \
        } while (0)

bool spool_recovery_alarm(const struct spool_recovery *r) {
        return r->quarantined > 0 || r->lost_ids > 0;
}

/* Creates spool/ if missing (and makes its entry durable), opens it and locks it: two agents
 * appending to one spool would interleave ids. */
static int open_dir(struct spool *s, int state_dir_fd, char *msg, size_t msg_len) {
        bool made = mkdirat(state_dir_fd, SPOOL_DIR, 0700) == 0;

        if (!made && errno != EEXIST)
                FAIL(-errno, "cannot create %s: %s", s->path, strerror(errno));
        s->dir_fd = openat(state_dir_fd, SPOOL_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (s->dir_fd < 0)
                FAIL(-errno, "cannot open %s: %s", s->path, strerror(errno));
        if (flock(s->dir_fd, LOCK_EX | LOCK_NB) < 0)
                FAIL(errno == EWOULDBLOCK ? -EBUSY : -errno, "cannot lock %s: %s", s->path,
                     errno == EWOULDBLOCK ? "another process has it open" : strerror(errno));
        if (made) {
                _cleanup_close_ int parent = openat(state_dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

                if (parent < 0 || fsync(parent) < 0)
                        FAIL(-errno, "cannot sync the directory above %s: %s", s->path, strerror(errno));
        }
        return 0;
}

/* "seg-" 20 digits ".log", the id 1..2^63-1. */
static bool parse_seg_name(const char *name, uint64_t *ret) {
        uint64_t v = 0;

        if (strlen(name) != 28 || strncmp(name, "seg-", 4) != 0 || strcmp(name + 24, ".log") != 0)
                return false;
        for (int i = 4; i < 24; i++) {
                if (name[i] < '0' || name[i] > '9')
                        return false;
                if (v > (SPOOL__ID_LIMIT - 1 - (uint64_t)(name[i] - '0')) / 10)
                        return false;
                v = v * 10 + (uint64_t)(name[i] - '0');
        }
        if (v == 0)
                return false;
        *ret = v;
        return true;
}

static int cmp_seg(const void *a, const void *b) {
        const struct spool__seg *x = a, *y = b;

        return x->name_id < y->name_id ? -1 : x->name_id > y->name_id;
}

static int list_segments(struct spool *s, struct spool_recovery *rep, char *msg, size_t msg_len) {
        _cleanup_closedir_ DIR *d = NULL;
        struct dirent *de;
        int r;

        r = plat_opendir_at(s->dir_fd, ".", &d);
        if (r < 0)
                FAIL(r, "cannot list %s: %s", s->path, strerror(-r));
        while ((errno = 0, de = readdir(d))) {
                struct stat st;
                uint64_t id;

                /* What an atomic replace interrupted by a crash leaves behind, and a prepared
                 * segment (maybe half filled: it is made again when needed). */
                if (!strncmp(de->d_name, SPOOL__CURSOR ".tmp.", strlen(SPOOL__CURSOR ".tmp.")) ||
                    !strcmp(de->d_name, SPOOL__PREP)) {
                        (void)unlinkat(s->dir_fd, de->d_name, 0);
                        continue;
                }
                if (strncmp(de->d_name, "seg-", 4) != 0)
                        continue;
                if (!parse_seg_name(de->d_name, &id) ||
                    fstatat(s->dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) {
                        rep->warnings++;
                        spool__say(rep->msg, sizeof(rep->msg), "ignored %s/%s: not a segment file", s->path,
                                   de->d_name);
                        continue;
                }
                if (s->n_segs == SPOOL_SEGMENTS_MAX)
                        FAIL(-E2BIG, "%s holds more than %d segment files: refusing to start", s->path,
                             SPOOL_SEGMENTS_MAX);
                if (spool__seg_push(s, id) < 0)
                        return -ENOMEM;
        }
        if (errno != 0)
                FAIL(-errno, "cannot list %s: %s", s->path, strerror(errno));
        if (s->n_segs > 1)
                qsort(s->segs, s->n_segs, sizeof(*s->segs), cmp_seg);
        return 0;
}

/* The cursor file, checked byte for byte against the text spool__cursor_text would make of it. */
static int read_cursor(struct recovery *rc, char *msg, size_t msg_len) {
        struct spool *s = rc->s;
        _cleanup_free_ char *buf = NULL;
        char acked[24], high[24], canon[SPOOL__CURSOR_MAX];
        unsigned crc;
        size_t len;
        int r;

        r = plat_read_file_at(s->dir_fd, SPOOL__CURSOR, SPOOL__CURSOR_MAX, &buf, &len);
        if (r == -ENOENT) {
                rc->cur = CURSOR_MISSING;
                return 0;
        }
        if (r == -EFBIG) {
                rc->cur = CURSOR_CORRUPT;
                return 0;
        }
        if (r < 0)
                FAIL(r, "cannot read %s/%s: %s", s->path, SPOOL__CURSOR, strerror(-r));
        rc->cur = CURSOR_CORRUPT;
        if (sscanf(buf, "v1 acked=%20[0-9] high=%20[0-9] crc=%8x", acked, high, &crc) != 3)
                return 0;
        errno = 0;
        rc->cur_acked = strtoull(acked, NULL, 10);
        rc->cur_high = strtoull(high, NULL, 10);
        if (errno != 0 || rc->cur_acked > rc->cur_high || rc->cur_high >= SPOOL__ID_LIMIT)
                return 0;
        if (spool__cursor_text(canon, sizeof(canon), rc->cur_acked, rc->cur_high) != len ||
            memcmp(canon, buf, len) != 0)
                return 0;
        rc->cur = CURSOR_OK;
        return 0;
}

static void lose(struct recovery *rc, uint64_t lo, uint64_t hi) {
        struct spool_recovery *rep = rc->rep;

        rep->lost_ids += hi - lo + 1;
        if (!rep->lost_first || lo < rep->lost_first)
                rep->lost_first = lo;
        if (hi > rep->lost_last)
                rep->lost_last = hi;
}

/* Ids lo..hi are missing before `where`: lost if not acked. Before the first record they are what
 * deleting acked segments leaves, unless the cursor says they were never acked. */
static void note_gap(struct recovery *rc, uint64_t lo, uint64_t hi, const char *where, uint64_t off) {
        uint64_t acked = rc->cur == CURSOR_OK ? rc->cur_acked : 0;
        struct spool_recovery *rep = rc->rep;

        if (!rc->first && rc->cur != CURSOR_OK)
                return;
        if (hi <= acked) {
                if (rc->first) {
                        rep->warnings++;
                        spool__say(rep->msg, sizeof(rep->msg),
                                   "ids %" PRIu64 "..%" PRIu64 " missing before %s/%s offset %" PRIu64
                                   " (all acked)",
                                   lo, hi, rc->s->path, where, off);
                }
                return;
        }
        if (lo <= acked)
                lo = acked + 1;
        lose(rc, lo, hi);
        spool__say(rep->msg, sizeof(rep->msg),
                   "ids %" PRIu64 "..%" PRIu64 " missing before %s/%s offset %" PRIu64 ": lost", lo, hi,
                   rc->s->path, where, off);
}

static int take_record(struct recovery *rc, size_t i, uint64_t off, const struct spool__rec *rec,
                       const char *name) {
        struct spool *s = rc->s;
        struct spool__seg *g = &s->segs[i];

        if (g->records == 0) {
                g->first_id = rec->id;
                if (rec->id != g->name_id) {
                        rc->rep->warnings++;
                        spool__say(rc->rep->msg, sizeof(rc->rep->msg),
                                   "%s/%s starts with id %" PRIu64 ", not the id its name says", s->path,
                                   name, rec->id);
                }
        }
        if (rec->id > rc->prev + 1)
                note_gap(rc, rc->prev + 1, rec->id - 1, name, off);
        if (!rc->first)
                rc->first = rec->id;
        g->last_id = rc->prev = rec->id;
        g->records++;
        if (rc->cur != CURSOR_OK || rec->id > rc->cur_acked)
                rc->above++;
        s->last_seg = i;
        s->last_off = off;
        s->last_len = rec->len;
        s->last_id = rec->id;
        return 0;
}

/* Cuts a torn tail, [at, data_end), off the newest segment: an append that never completed (or was
 * never synced). A preallocated segment (a full segment's length) gets zeros over it and keeps its
 * length, so that its syncs stay data-only and the cap's count does not move; a shorter one, grown
 * as it went, is truncated (*size becomes at). */
static int cut_tail(struct recovery *rc, int fd, const char *name, uint64_t at, uint64_t data_end,
                    uint64_t *size, char *msg, size_t msg_len) {
        struct spool_recovery *rep = rc->rep;
        bool zero = *size >= rc->s->segment_bytes;
        int r = zero ? spool__zero(fd, at, data_end) : ftruncate(fd, (off_t)at) < 0 ? -errno : 0;

        if (r < 0)
                FAIL(r, "cannot cut the torn tail off %s/%s at offset %" PRIu64 ": %s", rc->s->path, name,
                     at, strerror(-r));
        rep->torn = 1;
        rep->torn_bytes = (zero ? data_end : *size) - at;
        spool__say(rep->msg, sizeof(rep->msg),
                   "cut %" PRIu64 " bytes of an incomplete record off %s/%s at offset %" PRIu64 "%s",
                   rep->torn_bytes, rc->s->path, name, at, zero ? " (zeroed in place)" : "");
        if (!zero)
                *size = at;
        return 0;
}

static int scan_segment(struct recovery *rc, size_t i, struct spool__scanner *sc, char *msg,
                        size_t msg_len) {
        struct spool *s = rc->s;
        struct spool__seg *g = &s->segs[i];
        struct spool_recovery *rep = rc->rep;
        bool newest = i + 1 == s->n_segs;
        _cleanup_close_ int fd = -1;
        char name[SPOOL_NAME_MAX];
        uint64_t pos = 0, size, data_end, scan_end;
        struct stat st;
        int r;

        spool__seg_name(name, sizeof(name), g->name_id);
        fd = openat(s->dir_fd, name, (newest ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 || fstat(fd, &st) < 0)
                FAIL(-errno, "cannot open %s/%s: %s", s->path, name, strerror(errno));
        size = (uint64_t)st.st_size;
        if (size > SPOOL__SEG_FILE_MAX)
                FAIL(-EFBIG,
                     "%s/%s holds %" PRIu64
                     " bytes, more than any segment the spool writes: refusing to start",
                     s->path, name, size);
        spool__scanner_reset(sc, fd);
        r = spool__data_end(sc, size, &data_end);
        if (r < 0)
                FAIL(r, "cannot read %s/%s: %s", s->path, name, strerror(-r));
        /* Zeros from data_end on are the segment's clean end: no record starts there (a magic is
         * not zero), but the last one may end in zero bytes, so records are read that far. */
        scan_end = size - data_end > SPOOL__READ_BUF ? data_end + SPOOL__READ_BUF : size;
        while (pos < data_end) {
                struct spool__rec rec;
                char qname[SPOOL_NAME_MAX];
                uint64_t bad_end = 0;
                bool stale = false;
                int k = spool__next(sc, pos, scan_end, rc->prev, &rec, &bad_end, &stale);

                if (k < 0)
                        FAIL(k, "cannot read %s/%s at offset %" PRIu64 ": %s", s->path, name, pos,
                             strerror(-k));
                if (k == SPOOL__NEXT_END)
                        break;
                if (k == SPOOL__NEXT_REC) {
                        take_record(rc, i, pos, &rec, name);
                        pos += SPOOL_HDR_BYTES + rec.len;
                        continue;
                }
                if (bad_end > data_end)
                        bad_end = data_end; /* the zeros after it are the clean end */
                /* A torn append leaves part of one record; whole records with old ids are not
                 * what a crash leaves, and are quarantined like any corruption. */
                if (newest && bad_end == data_end && !stale) {
                        r = cut_tail(rc, fd, name, pos, data_end, &size, msg, msg_len);
                        if (r < 0)
                                return r;
                        break;
                }
                if (rep->quarantined >= SPOOL_QUARANTINE_MAX)
                        FAIL(-EBADMSG,
                             "%s: more than %d corrupt regions (the latest in %s at offset %" PRIu64
                             "): refusing to start",
                             s->path, SPOOL_QUARANTINE_MAX, name, pos);
                r = spool__quarantine(s, g, fd, pos, bad_end, qname);
                if (r < 0)
                        FAIL(r, "cannot copy corrupt bytes %" PRIu64 "..%" PRIu64 " of %s/%s to %s/%s: %s",
                             pos, bad_end, s->path, name, s->path, SPOOL__QDIR, strerror(-r));
                if (rep->quarantined < SPOOL_REC_NAMES)
                        memcpy(rep->quarantine_files[rep->quarantined], qname, SPOOL_NAME_MAX);
                rep->quarantined++;
                spool__say(rep->msg, sizeof(rep->msg),
                           "bytes %" PRIu64 "..%" PRIu64 " of %s/%s are corrupt: copied to %s/%s/%s", pos,
                           bad_end, s->path, name, s->path, SPOOL__QDIR, qname);
                pos = bad_end;
        }
        g->size = g->durable = pos;
        g->alloc = size;
        s->bytes += size;
        if (newest) {
                /* Whatever a crashed predecessor wrote and never synced is read back as valid:
                 * make it as durable as it now looks. Older segments were synced when closed. */
                if (fdatasync(fd) < 0)
                        FAIL(-errno, "cannot sync %s/%s: %s", s->path, name, strerror(errno));
                s->wfd = TAKE_FD(fd);
        }
        return 0;
}

/* The cursor against the records: acked, next id, pending, and ids the cursor or the newest
 * segment's name says were on disk and are gone. */
static void settle(struct recovery *rc) {
        struct spool *s = rc->s;
        struct spool_recovery *rep = rc->rep;
        struct spool__seg *newest = s->n_segs ? &s->segs[s->n_segs - 1] : NULL;
        uint64_t last = s->last_id, high = 0, acked, next;

        if (rc->cur == CURSOR_OK) {
                acked = rc->cur_acked;
                high = rc->cur_high;
        } else {
                /* Redeliver everything present: duplicates, never a loss. */
                acked = rc->first ? rc->first - 1 : 0;
                if (rc->cur == CURSOR_CORRUPT || s->n_segs > 0) {
                        rep->cursor_reset = true;
                        spool__say(rep->msg, sizeof(rep->msg),
                                   "%s/%s is %s: delivering every record again from id %" PRIu64, s->path,
                                   SPOOL__CURSOR, rc->cur == CURSOR_CORRUPT ? "corrupt" : "missing",
                                   acked + 1);
                }
        }
        /* An empty newest segment was created after every id below its name was synced. */
        if (newest && newest->size == 0 && newest->name_id - 1 > high)
                high = newest->name_id - 1;
        if (high > last && high > acked) {
                uint64_t lo = (last > acked ? last : acked) + 1;

                lose(rc, lo, high);
                spool__say(rep->msg, sizeof(rep->msg),
                           "ids %" PRIu64 "..%" PRIu64 " were synced and are gone from the end of %s: lost",
                           lo, high, s->path);
        }
        if (rc->cur == CURSOR_OK && acked > last && last > 0) {
                rep->warnings++;
                spool__say(rep->msg, sizeof(rep->msg),
                           "%s/%s says id %" PRIu64 " is acked, beyond the newest record %" PRIu64
                           ": every record present counts as acked",
                           s->path, SPOOL__CURSOR, acked, last);
        }
        next = last + 1;
        if (high + 1 > next)
                next = high + 1;
        if (acked + 1 > next)
                next = acked + 1;
        if (newest && newest->name_id + (newest->size > 0) > next)
                next = newest->name_id + (newest->size > 0);
        s->acked = acked;
        s->next_id = next;
        s->synced_id = next - 1;
        s->sync_counted = s->synced_id;
        s->pending = rc->above;
        s->cursor_valid = rc->cur == CURSOR_OK;
        s->cursor_acked = rc->cur_acked;
        s->cursor_high = rc->cur_high;
        rep->segments = s->n_segs;
        rep->pending = rc->above;
}

static int recover(struct spool *s, struct spool_recovery *rep, char *msg, size_t msg_len) {
        struct recovery rc = { .s = s, .rep = rep };
        struct spool__scanner sc;
        int r;

        r = list_segments(s, rep, msg, msg_len);
        if (r >= 0)
                r = read_cursor(&rc, msg, msg_len);
        if (r < 0)
                return r;
        r = spool__scanner_init(&sc, SPOOL__SCAN_BUF);
        for (size_t i = 0; r >= 0 && i < s->n_segs; i++)
                r = scan_segment(&rc, i, &sc, msg, msg_len);
        spool__scanner_done(&sc);
        if (r < 0)
                return r;
        for (size_t i = 0; i < s->n_segs; i++)
                rep->records += s->segs[i].records;
        settle(&rc);
        /* A truncation, a first segment or a quarantine directory: make the directory durable. */
        if (fsync(s->dir_fd) < 0)
                FAIL(-errno, "cannot sync %s: %s", s->path, strerror(errno));
        if (!s->cursor_valid) {
                r = spool__write_cursor(s);
                if (r < 0)
                        FAIL(r, "cannot write %s/%s: %s", s->path, SPOOL__CURSOR, strerror(-r));
        }
        return 0;
}

int spool_open(int state_dir_fd, const char *state_dir_path, const struct spool_options *o,
               struct spool **ret, struct spool_recovery *ret_rec, char *msg, size_t msg_len) {
        struct spool_recovery rep = { 0 };
        struct spool *s;
        uint64_t seg_bytes;
        int r;

        if (msg && msg_len)
                msg[0] = '\0';
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->dir_fd = s->wfd = s->rd_fd = s->prep_fd = -1;
        s->max_bytes = o && o->max_bytes ? o->max_bytes : SPOOL_MAX_BYTES_DEFAULT;
        seg_bytes = o && o->segment_bytes ? o->segment_bytes : SPOOL_SEGMENT_BYTES_DEFAULT;
        if (seg_bytes > SPOOL_SEGMENT_BYTES_MAX)
                seg_bytes = SPOOL_SEGMENT_BYTES_MAX;
        if (seg_bytes > s->max_bytes / 4)
                seg_bytes = s->max_bytes / 4 ? s->max_bytes / 4 : 1;
        s->segment_bytes = seg_bytes;
        snprintf(s->path, sizeof(s->path), "%s/%s", state_dir_path ? state_dir_path : ".", SPOOL_DIR);
        r = spool__scanner_init(&s->rd_sc, SPOOL__SCAN_BUF);
        if (r < 0)
                goto fail;
        r = open_dir(s, state_dir_fd, msg, msg_len);
        if (r >= 0)
                r = recover(s, &rep, msg, msg_len);
        if (r < 0)
                goto fail;
        spool_rewind(s);
        *ret = s;
        if (ret_rec)
                *ret_rec = rep;
        return 0;
fail:
        if (r == -ENOMEM && msg && msg_len && !msg[0])
                spool__say(msg, msg_len, "out of memory opening %s", s->path);
        spool_close(s);
        return r;
}
