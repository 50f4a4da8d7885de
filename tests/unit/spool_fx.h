/* spool_fx.h: the fixture test_spool and test_spool_prealloc share: a scratch state dir, the spool
 * under it, records whose bytes only their id makes, and helpers that reach into the files. */
#pragma once

#include "spool.h"
#include "testutil.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A state directory per test; the spool under it is opened and closed by the tests. */
struct fx {
        struct tu_scratch *dir;
        struct spool *s;
        struct spool_recovery rec;
        char msg[SPOOL_MSG_MAX];
        char path[PATH_MAX];
};

/* Each is described where it is defined, in spool_fx.c. */
int setup(void **state);
int teardown(void **state);
size_t payload(uint64_t id, char *buf);
const char *spath(struct fx *f, const char *name);
const char *segpath(struct fx *f, uint64_t id);
void open_with(struct fx *f, uint64_t max_bytes, uint64_t segment_bytes);
void reopen(struct fx *f);
void append_n(struct spool *s, uint64_t n);
void append_synced(struct spool *s, uint64_t n);
void expect_next(struct spool *s, uint64_t id);
void expect_none(struct spool *s);
void expect_only(struct spool *s, const uint64_t *ids, size_t n);
uint64_t file_size(const char *path);
size_t count_files(struct fx *f, const char *sub, const char *prefix);
uint64_t seg_ids(struct fx *f, uint64_t *ids, size_t max);
void flip_byte(const char *path, uint64_t off);
uint64_t offset_of(uint64_t id);
void write_file(const char *path, const void *buf, size_t len);
int fill(struct spool *s, uint64_t *ret_n);
int check_all(int dir_fd, const char *path, uint64_t n);
