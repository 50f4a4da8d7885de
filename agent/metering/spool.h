/* spool.h: the metering spool: durable, append-only, CRC-checked segments and an ack cursor (at least once).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The spool is a pure storage module: no logging, no MQTT, no clock. Records are opaque bytes;
 * the spool numbers them (ids 1, 2, 3, ... never reused once durable), keeps them on disk until
 * they are acked, and tells the caller what recovery found so that the caller raises the alarms.
 * Format, recovery rules and promises: docs/spool.md. Single-threaded: one caller, one loop. */

#define SPOOL_DIR "spool"            /* under the state directory */
#define SPOOL_RECORD_MAX (64 * 1024) /* payload bytes per record, at least 1 */
#define SPOOL_HDR_BYTES 20           /* on-disk header before each payload */
#define SPOOL_SEGMENTS_MAX 100000    /* segment files; more at open is refused */
#define SPOOL_INFLIGHT_MAX 65536     /* records handed out by spool_read_next and not yet acked */
#define SPOOL_QUARANTINE_MAX 1024    /* corrupt regions one open may quarantine before refusing */
#define SPOOL_MAX_BYTES_DEFAULT (UINT64_C(256) << 20)
#define SPOOL_MAX_BYTES_MIN (UINT64_C(1) << 20) /* for the config module; the spool takes smaller */
#define SPOOL_SEGMENT_BYTES_DEFAULT (UINT64_C(4) << 20)
#define SPOOL_SEGMENT_BYTES_MAX (UINT64_C(256) << 20)
#define SPOOL_NAME_MAX 64 /* room for any file name the spool makes */
#define SPOOL_MSG_MAX 512 /* room for any message the spool writes */
#define SPOOL_REC_NAMES 8 /* quarantine file names a recovery report lists */

struct spool;

struct spool_options {
        /* Cap on the bytes of all segment files, counted as their lengths (preallocated zeros and
         * the prepared next segment included): an append past it is refused (-ENOSPC). 0: the
         * default, 256 MiB. */
        uint64_t max_bytes;
        /* The length of a segment file, preallocated with zeros: a record that does not fit before
         * its end starts a new one. 0: the default, 4 MiB. The spool uses at most max_bytes / 4 (so
         * that a fully acked newest segment never fills the cap on its own) and at most
         * SPOOL_SEGMENT_BYTES_MAX. */
        uint64_t segment_bytes;
};

/* What spool_open found. Anything in `quarantined` or `lost_ids` is billing data the spool could
 * not deliver: the caller raises an alarm event and a status error (spool_recovery_alarm). */
struct spool_recovery {
        uint64_t segments;    /* segment files in use after recovery */
        uint64_t records;     /* valid records found */
        uint64_t pending;     /* of those, not acked */
        unsigned torn;        /* 1 when the newest segment ended in an incomplete record, cut off */
        uint64_t torn_bytes;  /* the bytes cut off */
        unsigned quarantined; /* corrupt regions found (and copied to spool/quarantine/) */
        char quarantine_files[SPOOL_REC_NAMES][SPOOL_NAME_MAX]; /* the first of them */
        uint64_t lost_ids;   /* ids not acked that existed and are gone (corrupt, cut, missing) */
        uint64_t lost_first; /* the lowest and highest of them; 0 when none */
        uint64_t lost_last;
        bool cursor_reset;       /* the cursor file was missing or corrupt: every record present is
                                  * delivered again (duplicates, no loss) */
        unsigned warnings;       /* anomalies that lose nothing: misnamed segments, ignored files,
                                  * a cursor ahead of the records, ids skipping forward */
        char msg[SPOOL_MSG_MAX]; /* each anomaly, naming file and offset; "" when clean */
};

/* True when the recovery found billing data that cannot be delivered. */
bool spool_recovery_alarm(const struct spool_recovery *r);

struct spool_stats {
        uint64_t bytes;          /* what the cap counts: the lengths of the segment files
                                  * (preallocated zeros and the prepared next one included) */
        uint64_t used;           /* of which records (and quarantined regions): where the next append
                                  * goes in the newest segment, summed over the segments */
        uint64_t max_bytes;      /* the cap */
        uint64_t pending;        /* records present and not acked */
        uint64_t oldest_unacked; /* lowest id above the cursor: the next one the broker has to ack
                                  * (0 when none); an id lost inside a segment may be named */
        uint64_t next_id;        /* the id the next append gets */
        uint64_t acked;          /* the cursor: every id <= it is acked */
        uint64_t synced_id;      /* the highest id on stable storage */
        uint64_t segments;
        uint64_t quarantined; /* corrupt regions since open, recovery included */
        bool full;            /* the last append was refused for lack of room (cap, disk,
                               * file size limit): the agent refuses new sessions */
        int broken;           /* 0, or the -errno that stopped the spool (a failed fsync):
                               * close it and open it again */
};

/* Opens <state_dir>/spool (creating it, mode 0700, if missing), takes an exclusive lock on it, and
 * recovers: cuts a torn tail, quarantines corrupt regions, reads the cursor. state_dir_fd is
 * borrowed (an O_PATH fd works); state_dir_path only names it in messages; o may be NULL for the
 * defaults. On success *ret (free with spool_close) and, if ret_rec is not NULL, *ret_rec. On
 * failure -errno and msg says what and where: -EBUSY another process holds the spool, -E2BIG too
 * many segment files, -EFBIG a segment file too large to be one of ours, -EBADMSG more corrupt
 * regions than SPOOL_QUARANTINE_MAX, or the error of a file operation (a corrupt region that
 * could not be copied out fails the open: nothing is ever skipped without its copy). */
int spool_open(int state_dir_fd, const char *state_dir_path, const struct spool_options *o,
               struct spool **ret, struct spool_recovery *ret_rec, char *msg, size_t msg_len);

/* Closes the files and frees s; NULL is a no-op. It neither syncs nor writes the cursor: call
 * spool_sync and spool_flush_cursor first on a clean shutdown. */
void spool_close(struct spool *s);

/* Appends len bytes (1..SPOOL_RECORD_MAX; copied) as the next record and gives its id. Written,
 * not yet durable, not yet readable: spool_sync makes it both. Errors leave no trace of the
 * record on disk: -EMSGSIZE bad size; -ENOSPC the cap would be exceeded, or the disk is full;
 * -EFBIG the file size limit; -EIO and others from the filesystem; the spool's sticky error once
 * broken. After -ENOSPC/-EFBIG the caller keeps the record, refuses new sessions, raises an
 * alarm, and appends again later (acks free room). */
int spool_append(struct spool *s, const void *rec, size_t len, uint64_t *ret_id);

/* Group commit: one fdatasync for every append since the last sync (and a directory fsync when a
 * segment was created). Returns the number of records it made durable, or -errno; a failed sync
 * breaks the spool (the kernel may have dropped the pages: only a reopen tells what is on disk). */
int spool_sync(struct spool *s);

/* spool_sync in two halves, for a caller that fdatasyncs off its event loop (plat_syncer): the
 * records appended so far become durable and readable only at spool_sync_end, and appends may go
 * on in between. A new segment's directory entry is synced in spool_sync_begin itself (once a
 * segment). */
struct spool_sync_ticket {
        int fd;           /* a duplicate of the newest segment's descriptor: the caller owns it */
        uint64_t name_id; /* that segment */
        uint64_t size;    /* its bytes appended when the ticket was taken */
        uint64_t last_id; /* the highest id among them */
};

/* 1 and *ret a ticket, 0 when every appended record is durable already, or -errno (the spool's
 * sticky error, a failed directory sync, dup). */
int spool_sync_begin(struct spool *s, struct spool_sync_ticket *ret);

/* The ticket's fdatasync ended with err (0 or -errno): on success its records are durable (a
 * roll-over or a spool_sync in between may have done so already: no harm); a failure breaks the
 * spool as spool_sync's would. Returns what spool_sync does: the records made durable since the
 * last call, or the spool's error. */
int spool_sync_end(struct spool *s, const struct spool_sync_ticket *t, int err);

/* Does the slow part of the next roll-over ahead of it, so that appends never wait for it: when the
 * newest segment is past half full (or there is none) and no next segment is prepared, writes a
 * file of segment_bytes zeros (spool/next.tmp) and syncs it; the roll-over renames it into place.
 * Segments are preallocated so that the fdatasync of spool_sync flushes data only, never the size
 * or the block allocation. Call about once a second (a timer): a no-op costs nothing, a preparation
 * one segment of writes and one fdatasync. 1 prepared, 0 nothing to do (also: no room under the
 * cap, or waiting about a minute after a failure), or -errno (the disk or the file size limit is
 * full: -ENOSPC, -EDQUOT, -EFBIG; the spool goes on with segments that grow as records come).
 * Without it each roll-over prepares its segment itself, in the append that needs it. */
int spool_prepare(struct spool *s);

/* Delivery. The next durable record not yet handed out and not acked: *ret_buf (caller frees),
 * *ret_len, *ret_id. -EAGAIN when there is none yet, or when SPOOL_INFLIGHT_MAX records are out
 * unacked. A record whose bytes went bad on disk since it was checked is quarantined on the way
 * (spool_stats counts it) and never returned. */
int spool_read_next(struct spool *s, void **ret_buf, size_t *ret_len, uint64_t *ret_id);

/* After a reconnect: the next spool_read_next starts again at the oldest unacked record, so every
 * record still unacked is handed out again (acks already received stay counted). */
void spool_rewind(struct spool *s);

/* Marks a handed-out record as acked (PUBACK); acks may come in any order, repeated acks are
 * fine. The cursor moves to the highest id below which every handed-out record is acked.
 * -ERANGE for an id that spool_read_next never handed out. Nothing is written here. */
int spool_ack(struct spool *s, uint64_t id);

/* Persists the cursor (spool/cursor, atomic replace) if it moved, then deletes the segments whose
 * records are all acked, except the one holding the newest record. Call about once a second:
 * losing the last updates only causes redelivery. 0 or -errno. */
int spool_flush_cursor(struct spool *s);

/* The id the next append will get (the caller's `seq`). */
uint64_t spool_next_id(const struct spool *s);

/* The newest record (after spool_open: the newest durable one), to continue a hash chain after a
 * restart: *ret_buf (caller frees), *ret_len, *ret_id. -ENOENT when the spool never held one.
 * If *ret_id != spool_next_id() - 1, records after it were lost (spool_open reported them). */
int spool_last(struct spool *s, void **ret_buf, size_t *ret_len, uint64_t *ret_id);

/* Figures for status and telemetry. */
void spool_stats(const struct spool *s, struct spool_stats *ret);

/* The bytes of records the spool can still take, measured on the disk now: what is left of the
 * newest segment's preallocated zeros and of a prepared next segment, plus what both the cap and
 * the file system (f_bavail of the spool's directory) allow files to grow by. Not exact (a record
 * that does not fit the end of a segment starts the next one), but never more than there is:
 * what the caller decides admission with after a restart, when nothing in memory says whether
 * the last append failed. 0 and *ret_bytes, or -errno (statvfs failed; the broken spool's error). */
int spool_room(const struct spool *s, uint64_t *ret_bytes);
/* Whether spool_room is at least `need`, without asking the file system when the preallocated
 * zeros alone have it (the common case: a check before every op that opens billing is cheap).
 * 1 yes, 0 no (*ret_bytes the room), -errno as spool_room. */
int spool_room_at_least(const struct spool *s, uint64_t need, uint64_t *ret_bytes);

/* A second reader of the spool's durable records, for work done ahead of delivery (signing while
 * the broker is away): it hands nothing out, acks nothing and quarantines nothing
 * (spool_read_next does all three), so delivery's state and the reader's never touch. It starts
 * before the first record. Free it before spool_close. */
struct spool_reader;

/* s is borrowed and must outlive the reader. -ENOMEM. */
int spool_reader_new(struct spool *s, struct spool_reader **ret);

/* NULL is a no-op. */
void spool_reader_free(struct spool_reader *r);

/* The next record returned will be the first durable one with an id above after_id (0: from the
 * start). */
void spool_reader_seek(struct spool_reader *r, uint64_t after_id);

/* The next durable record in id order: 0, *ret_buf (borrowed: valid until the next call or
 * spool_reader_free), *ret_len, *ret_id. -EAGAIN when there is none yet (not synced, or nothing
 * more). Regions known bad, and bytes that fail their CRC, are skipped without a word (delivery
 * quarantines them when it gets there). Segments deleted under the reader (acked, then
 * spool_flush_cursor) are skipped: it goes on at the first record above the last it returned, or
 * above the seek position. -errno for a read or open error (the position stays). */
int spool_reader_next(struct spool_reader *r, const void **ret_buf, size_t *ret_len, uint64_t *ret_id);

/* Called with each record spool_peek_last found, oldest first (payload borrowed for the call);
 * a negative return stops the walk and is returned. */
typedef int (*spool_peek_fn)(uint64_t id, const void *payload, size_t len, void *userdata);
/* The newest n CRC-valid records in the segments of the spool directory spool_dir_fd, read
 * without opening or locking the spool (the agent may be appending: a record being written is
 * not seen yet). Returns how many were passed to fn, or -errno. */
int spool_peek_last(int spool_dir_fd, size_t n, spool_peek_fn fn, void *userdata);
