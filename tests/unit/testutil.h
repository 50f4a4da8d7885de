/* testutil.h: helpers the unit tests share: fixture host roots, scratch host trees, unterminated copies. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Every helper here fails the running cmocka test (it does not return an error) when the
 * machine lets it down: a missing fixture, a full /tmp, no memory. */

/* Opens tests/fixtures/hosts/<host> as a root fd for the HAL. Caller closes it. */
int tu_open_host(const char *host);

/* A heap copy of the len bytes at s with no NUL after them, so that ASan catches a parser that
 * reads past len. Caller frees. */
char *tu_copy_unterminated(const char *s, size_t len);

/* A scratch host root, for hosts too small to be worth a fixture directory. */
struct tu_scratch {
        char path[64]; /* /tmp/<test program>.XXXXXX */
        int fd;        /* the root, open on path */
};

/* cmocka setup: makes an empty scratch root and sets *state to it. The test borrows it;
 * tu_scratch_teardown frees it. */
int tu_scratch_setup(void **state);

/* cmocka teardown for tu_scratch_setup: closes the root, removes the tree, frees *state. */
int tu_scratch_teardown(void **state);

/* Removes path and all below it, following no symlinks and crossing no mounts. Refuses, failing
 * the test, any path that is not strictly below /tmp/ or that holds a ".." component. */
void tu_rm_rf(const char *path);

/* Makes each directory on the way to root/path (not path itself); ones that exist are fine. */
void tu_mkparents(int root, const char *path);

/* Writes the string content to root/path (created or truncated), making its parents. */
void tu_put(int root, const char *path, const char *content);

/* Writes len bytes (NULs allowed: device-tree compatible lists) to root/path, making its parents. */
void tu_put_bytes(int root, const char *path, const char *content, size_t len);

/* Skipping, visibly. A skipped test is not a passed test: tu_skip says why on stderr and, when
 * the environment names a file in RA_SKIP_LOG (scripts/test does), appends a line
 * "unit.<suite>\t<test>\t<reason>" there, so the run's summary names every skip. Reasons that
 * begin "qemu-user:" name a limit of the emulator: scripts/test under CI=true accepts those in
 * the arm64 run (under qemu) and fails on any other skip. Never call cmocka's skip() directly
 * (scripts/test checks). */
#define tu_skip(...)                                 \
        do {                                         \
                tu_note_skip(__func__, __VA_ARGS__); \
                skip();                              \
        } while (0)

void tu_note_skip(const char *test, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* main's return value: failed (cmocka_run_group_tests's count) when a test failed, else 77
 * (ctest's SKIP_RETURN_CODE) when a test was skipped, else 0. */
int tu_exit_status(int failed);

/* xorshift64: the next number of the sequence *state holds (never 0), the same on every run, so a
 * failure can be replayed. */
uint64_t tu_xorshift64(uint64_t *state);

/* The entries of the directory at path, "." and ".." left out (/proc/self/fd, /proc/self/task). */
unsigned tu_dir_entries(const char *path);
