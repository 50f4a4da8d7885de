/* sigcache.h: ES256 signatures of metering records made ahead of publishing, kept in a file so
 * that a restart does not sign a spooled backlog again. A cache: never synced; a bad entry is a miss. */
#pragma once
#include "crypto.h" /* PLAT_KID_LEN, PLAT_ES256_SIG_LEN, PLAT_SHA256_LEN */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIGCACHE_FILE "signatures"               /* in the state directory */
#define SIGCACHE_ENTRIES_MAX (UINT64_C(1) << 21) /* ids past base + this are not cached */

/* The file format is in docs/metering.md ("Signature cache"). Entries are found by id and carry
 * their id, a digest prefix and a CRC, so whatever a crash or a stray write leaves in the file
 * reads as a miss, never as a wrong signature. Not for use from two threads at once. */
struct sigcache;

/* Opens (creating, mode 0600) <state_dir>/signatures for signatures made with the key named kid
 * (1..PLAT_KID_LEN characters, else -EINVAL). state_dir_fd may be an O_PATH fd; state_dir_path
 * (borrowed for the call) only names the file in messages.
 * A file that is not a valid cache for this kid (bad magic, bad header CRC, other kid, short
 * header, entries without a base id, entries past id 2^64 - 1, larger than the most
 * SIGCACHE_ENTRIES_MAX entries take) is emptied and started again: *ret_reset = true and msg
 * says why and where (the caller logs it at info: nothing is lost). An empty file (the one just
 * created) is not a reset. -errno only when the file cannot be opened/created/written at all (msg
 * names the path and the error): a directory named `signatures` is -EISDIR, a symlink -ELOOP, a
 * FIFO, socket or device -EBADFD; those are left alone (someone put them there), and the caller
 * signs without a cache. On success *ret (caller frees with sigcache_close) and *ret_reset are
 * written; msg is "" unless reset. */
int sigcache_open(int state_dir_fd, const char *state_dir_path, const char *kid, struct sigcache **ret,
                  bool *ret_reset, char *msg, size_t msg_len);
void sigcache_close(struct sigcache *c); /* NULL is a no-op */

/* Stores the signature of record id, whose JWS signing input has SHA-256 `digest`. -ERANGE
 * for id 0 (never a spool id), an id below the file's base or at/after base + SIGCACHE_ENTRIES_MAX;
 * -errno from pwrite (-ENOSPC, ...: the entry may be torn, which later reads as a miss). */
int sigcache_put(struct sigcache *c, uint64_t id, const uint8_t digest[PLAT_SHA256_LEN],
                 const uint8_t sig[PLAT_ES256_SIG_LEN]);

/* 0 and ret_sig when the file holds a valid entry for id made over the same digest; -ENOENT for
 * a miss of any kind (never stored, hole, torn or corrupt entry, other id, other digest);
 * other -errno for a read error (the caller treats it as a miss and says so once).
 * Only the first 8 bytes of the digest are kept: enough to tell the records a node makes apart,
 * not a defence against anyone who can write the file (who can read the key beside it anyway). */
int sigcache_get(struct sigcache *c, uint64_t id, const uint8_t digest[PLAT_SHA256_LEN],
                 uint8_t ret_sig[PLAT_ES256_SIG_LEN]);

/* Every id <= acked has been delivered: when that covers every id the file may hold, the file is
 * emptied (truncated to its header, base forgotten) so it never grows past one backlog. Below
 * that, nothing changes (0). -errno from ftruncate or pwrite: what is left still reads right
 * (hits and misses), and a later trim tries again. */
int sigcache_trim(struct sigcache *c, uint64_t acked);

/* The highest id the file may hold an entry for, 0 when empty (for status and tests). */
uint64_t sigcache_high(const struct sigcache *c);
