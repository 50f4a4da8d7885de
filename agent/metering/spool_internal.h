/* spool_internal.h: what the spool's files share (record format, segment table, scanner); no other module.
 */
#pragma once

#include "spool.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Header, little-endian: magic u32 | len u32 | id u64 | crc u32, then len payload bytes. The CRC
 * is CRC-32C (Castagnoli) over the 12 bytes of len and id as stored, then the payload. The magic's
 * first byte, 0xf5, never occurs in UTF-8 text, so JWS payloads cannot fake a record start. */
#define SPOOL__MAGIC UINT32_C(0x314152f5) /* bytes f5 52 41 31 */
#define SPOOL__CURSOR "cursor"
#define SPOOL__CURSOR_MAX 128 /* bytes in the cursor file; more is corrupt */
/* The next segment, zero-filled and synced ahead of need (spool_prepare); roll-over renames it into
 * place. A leftover one is removed at open. */
#define SPOOL__PREP "next.tmp"
#define SPOOL__QDIR "quarantine"
#define SPOOL__SEG_FILE_MAX (UINT64_C(1) << 30) /* a bigger "segment" is not one of ours */
#define SPOOL__SCAN_BUF (256 * 1024)            /* recovery reads in pieces this size */
#define SPOOL__READ_BUF (SPOOL_HDR_BYTES + SPOOL_RECORD_MAX)
/* Ids, segment names and cursor values at or past 2^63 are corrupt: next_id can never wrap. */
#define SPOOL__ID_LIMIT (UINT64_C(1) << 63)

/* A byte range [start, end) of a segment. */
struct spool__range {
        uint64_t start, end;
};

struct spool__seg {
        uint64_t name_id;  /* from seg-<id>.log */
        uint64_t first_id; /* of its valid records; both 0 while it holds none */
        uint64_t last_id;
        uint64_t records;         /* valid records */
        uint64_t size;            /* bytes of records written (synced or not): the logical end */
        uint64_t durable;         /* bytes on stable storage: the reader stops here */
        uint64_t alloc;           /* the file's length: size, then zeros to the preallocated end
                                   * (== size in a grow-as-you-go segment) */
        struct spool__range *bad; /* quarantined regions, ascending; owned */
        size_t n_bad;
};

/* Buffered pread of one file, never past a caller-given end (bytes past the durable end may still
 * be cut back, so they must not linger in a buffer). */
struct spool__scanner {
        int fd; /* borrowed */
        uint8_t *buf;
        size_t cap;
        uint64_t base; /* file offset of buf[0] */
        size_t len;    /* valid bytes in buf */
};

struct spool__rec {
        uint64_t id;
        uint32_t len; /* payload bytes */
};

/* A record handed out for delivery; ids ascend from head to tail. */
struct spool__flight {
        uint64_t id;
        bool acked;
};

struct spool {
        int dir_fd;     /* spool/, O_RDONLY: fsync-able, flock-ed */
        char path[256]; /* <state dir>/spool, for messages */
        uint64_t max_bytes, segment_bytes;
        struct spool__seg *segs; /* ascending ids; the last one takes appends */
        size_t n_segs, cap_segs;
        int wfd;        /* the newest segment, read-write */
        uint64_t bytes; /* the cap's count: the segment files' lengths (alloc), and prep_bytes */
        int prep_fd;    /* SPOOL__PREP, zero-filled and synced, or -1 */
        uint64_t prep_bytes;
        unsigned prep_wait; /* spool_prepare calls to skip after a failure */
        uint64_t next_id;
        uint64_t synced_id;                 /* highest durable id */
        uint64_t sync_counted;              /* synced_id when spool_sync last returned */
        uint64_t acked;                     /* the cursor */
        uint64_t pending;                   /* valid records with id > acked */
        uint64_t cursor_acked, cursor_high; /* what spool/cursor holds */
        bool cursor_valid;                  /* ... and whether it holds a valid cursor at all */
        bool dir_dirty;                     /* a segment was created since the last directory fsync */
        bool full;
        int broken; /* sticky -errno after a failed fsync or truncate */
        uint64_t quarantined;

        /* The newest record; last_id 0: none. */
        size_t last_seg;
        uint64_t last_off, last_id;
        uint32_t last_len;

        /* Delivery: the position of the next record to read and the records in flight. */
        size_t rd_seg;
        uint64_t rd_off, rd_prev; /* rd_prev: the id of the record before rd_off */
        int rd_fd;                /* open on rd_seg, or -1 */
        struct spool__scanner rd_sc;
        struct spool__flight *fl; /* ring */
        size_t fl_head, fl_len, fl_cap;
        uint64_t fl_acked; /* acked entries in the ring */
};

/* off, moved past the regions of g known to be bad. */
uint64_t spool__skip_bad(const struct spool__seg *g, uint64_t off);
/* The header of a record with this id and payload. */
void spool__header(uint8_t hdr[SPOOL_HDR_BYTES], uint64_t id, const void *payload, uint32_t len);
/* Adds an empty segment entry at the end of the table; -ENOMEM. */
int spool__seg_push(struct spool *s, uint64_t name_id);
/* "seg-<20 digits>.log" */
void spool__seg_name(char *buf, size_t size, uint64_t id);

int spool__scanner_init(struct spool__scanner *sc, size_t cap);
void spool__scanner_reset(struct spool__scanner *sc, int fd);
void spool__scanner_done(struct spool__scanner *sc);

/* Writes all of v (cnt pieces, changed on the way) at off, going on after a short write. *done, set
 * also on failure, says how many bytes went in: a failure may leave a part written. */
int spool__pwritev_all(int fd, struct iovec *v, int cnt, uint64_t off, uint64_t *done);

/* Writes zeros over [start, end) of fd with plain writes (what a segment's unused end holds). */
int spool__zero(int fd, uint64_t start, uint64_t end);

/* The offset just past the last byte of sc's file that is not zero, looking at its first size
 * bytes: what lies after it is a segment's zero-filled end. Uses sc's buffer (and resets it). */
int spool__data_end(struct spool__scanner *sc, uint64_t size, uint64_t *ret);

/* Reads and checks the record at off, reading nothing at or past end: 0 and *ret; -EBADMSG not a
 * valid record there (magic, length, id 0, CRC); -ENODATA it would run past end; -errno. When
 * ret_bytes is not NULL it gets a pointer to the whole record (valid until the next read). */
int spool__rec_at(struct spool__scanner *sc, uint64_t off, uint64_t end, struct spool__rec *ret,
                  const uint8_t **ret_bytes);

#define SPOOL__NEXT_END 0
#define SPOOL__NEXT_REC 1
#define SPOOL__NEXT_BAD 2
/* What lies at pos of a file whose bytes end at end, for a reader whose last record was prev_id.
 * NEXT_REC: a valid record with an id above prev_id starts at pos (*ret). NEXT_END: pos == end.
 * NEXT_BAD: [pos, *ret_bad_end) holds no such record start: *ret_bad_end is the next one (found
 * by scanning for the magic with a valid CRC; valid records with ids <= prev_id, repeats or ids
 * going backwards, are part of the region; *ret_stale, if not NULL, says whether there were any)
 * or end. -errno on a read error. */
int spool__next(struct spool__scanner *sc, uint64_t pos, uint64_t end, uint64_t prev_id,
                struct spool__rec *ret, uint64_t *ret_bad_end, bool *ret_stale);

/* Copies [start, end) of segment g (open as fd) to spool/quarantine/seg-<id>-<start>.bad, which is
 * never overwritten: an existing file with the same bytes is the same region seen again (0), one
 * with other bytes gets a sibling name (.2.bad, ...). Adds the region to g's bad list. *ret_name
 * gets the file name. */
int spool__quarantine(struct spool *s, struct spool__seg *g, int fd, uint64_t start, uint64_t end,
                      char ret_name[SPOOL_NAME_MAX]);

/* The cursor file's one line: "v1 acked=<id> high=<id> crc=<8 hex>\n", the CRC-32C over the text
 * before " crc=". Returns its length (< size). */
size_t spool__cursor_text(char *buf, size_t size, uint64_t acked, uint64_t high);

/* Writes spool/cursor (atomic replace) with the cursor and synced id of now. */
int spool__write_cursor(struct spool *s);

/* Appends a sentence to msg ("; " between sentences), as much as fits. */
void spool__say(char *msg, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
