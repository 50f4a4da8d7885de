/* journal.h: billing records between their making and the spool. A record is made whole at once
 * (seq, prev, ts: the bytes it keeps forever) and is owed until the spool has synced it. The
 * owed records are written into slots.state with the state they go with, so one fdatasync makes
 * a transition and its records durable together before any reply; then they are appended to the
 * spool and synced. After a crash, the owed records of the newest slots.state that the spool
 * lacks are appended first, byte for byte. A full disk never loses one: slots.state is
 * preallocated, so the records of every end fit there while the spool has no room. */
#pragma once

#include "spool.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the owed records may take of slots.state; past it new sessions are refused (the rest of
 * the file is the state itself and the records of the ends still to come). */
#define JOURNAL_SOFT_MAX_BYTES (32 * 1024)
#define JOURNAL_MAX_RECORDS 4096

struct journal;

/* Empty; continues a hash chain from zero (journal_continue says otherwise). -ENOMEM. */
int journal_new(struct journal **ret);
/* NULL is a no-op. */
void journal_free(struct journal *j);

/* After a start: the records a slots.state owed (json: the journal member's text, a JSON array
 * of payload strings; NULL or "" for none). Those with seq below next_id are in the spool
 * already and dropped; the others stay owed, in order, for journal_to_spool. -EBADMSG (msg says
 * what) for a journal that is not an array of records with a whole seq: nothing is kept. */
int journal_restore(struct journal *j, const char *json, uint64_t next_id, char *msg, size_t msg_len);

/* Where the chain goes on: the spool's next id and the SHA-256 (hex) of its newest payload (all
 * '0' when it never held one), unless owed records come after them. */
void journal_continue(struct journal *j, uint64_t spool_next_id, const char *prev_hex);

/* Makes a record: `o` (borrowed) holds the members before seq ("v", "type", "node", "region");
 * seq, prev and ts (RFC 3339, ms, from now_real_usec) are added to it, then the caller's
 * `fields` are copied in after them. The payload is owed from now on. -ENOMEM, -EMSGSIZE
 * (larger than max_len), -ENOSPC (JOURNAL_MAX_RECORDS owed). */
int journal_make(struct journal *j, cJSON *o, const cJSON *fields, uint64_t now_real_usec, size_t max_len);

/* Group commit: journal_mark before a batch's records are made, journal_abort when the state
 * they go with could not be written (they are dropped; seq and prev are as at the mark). */
void journal_mark(struct journal *j);
void journal_abort(struct journal *j);

/* The owed records as a JSON array of strings, for slots.state; NULL when none (or out of
 * memory: then *ret_err is -ENOMEM). Caller frees. */
char *journal_json(const struct journal *j, int *ret_err);

/* Appends the owed records the spool does not hold yet (seq from its next id on: a spool opened
 * again after a failed sync may have lost some it had), oldest first, stopping at the first it
 * refuses: the number appended, or the refusal's -errno (-ENOSPC: full, -EFBIG: a file size
 * limit), also when some were appended before it (the spool's next id says how many). */
int journal_to_spool(struct journal *j, struct spool *sp);
/* The spool made every id up to synced_id durable: those records are no longer owed. */
void journal_synced(struct journal *j, uint64_t synced_id);

size_t journal_owed(const struct journal *j);       /* records owed */
size_t journal_bytes(const struct journal *j);      /* their payload bytes */
uint64_t journal_next_seq(const struct journal *j); /* the seq the next record gets */
