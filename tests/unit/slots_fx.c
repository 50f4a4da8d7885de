/* slots_fx.c: the fixture test_slots and test_slots_store share (see slots_fx.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "slots_fx.h"

#include "cleanup.h"
#include "fileio.h"
#include "slots_internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const ids[3] = { "s0", "s1", "s2" };

bool is_admissible(void *userdata, size_t i) {
        return ((struct fx *)userdata)->admissible[i];
}

struct slots *make(struct fx *f, int dir_fd, const struct slots_limits *lim) {
        struct slots_config cfg = { .n_slots = 3,
                                    .slot_ids = ids,
                                    .state_dir_fd = dir_fd,
                                    .state_dir = "/var/lib/render-agent",
                                    .admissible = is_admissible,
                                    .userdata = f };
        struct slots *s = NULL;

        if (lim)
                cfg.limits = *lim;
        else
                slots_limits_default(&cfg.limits);
        assert_int_equal(slots_new(&cfg, &s, f->msg, sizeof(f->msg)), 0);
        return s;
}

int setup(void **state) {
        struct fx *f = calloc(1, sizeof(*f));
        void *d = NULL;

        assert_non_null(f);
        tu_scratch_setup(&d);
        f->dir = d;
        f->now = (struct slots_clock){ .mono_usec = 1000 * SEC, .real_usec = 1700000000 * SEC };
        f->admissible[0] = f->admissible[1] = f->admissible[2] = true;
        f->s = make(f, f->dir->fd, NULL);
        assert_int_equal(slots_load(f->s, f->now, f->msg, sizeof(f->msg)), 0);
        *state = f;
        return 0;
}

int teardown(void **state) {
        struct fx *f = *state;
        void *d = f->dir;

        slots_free(f->s);
        free(f);
        return tu_scratch_teardown(&d);
}

void advance(struct fx *f, uint64_t usec) {
        f->now.mono_usec += usec;
        f->now.real_usec += usec;
}

enum slots_code reserve(struct fx *f, const char *user, const char *slot) {
        return slots_reserve(f->s, user, slot, "192.0.2.7", f->now, &f->ev, f->msg, sizeof(f->msg));
}

struct slots_ref by_user(const char *u) {
        return (struct slots_ref){ .user = u };
}

struct slots_ref by_session(const char *id) {
        return (struct slots_ref){ .session = id };
}

enum slots_state state_of(struct fx *f, size_t i) {
        struct slots_info info;

        slots_get(f->s, i, &info);
        return info.state;
}

const char *user_of(struct fx *f, size_t i) {
        struct slots_info info;

        slots_get(f->s, i, &info);
        return info.user;
}

/* Reserve + start; returns the session id (static storage, overwritten by the next call). */
const char *play(struct fx *f, const char *user, const char *slot) {
        static char id[SLOTS_SESSION_LEN + 1];

        assert_int_equal(reserve(f, user, slot), SLOTS_OK);
        memcpy(id, f->ev.session, sizeof(id));
        assert_int_equal(slots_start(f->s, by_session(id), f->now, &f->ev, f->msg, sizeof(f->msg)),
                         SLOTS_OK);
        return id;
}

/* Takes the directory standing in for slots.state away again. */
void fx_remove_state_dir(struct fx *f) {
        char p[128];

        snprintf(p, sizeof(p), "%s/%s", f->dir->path, SLOTS_STATE_FILE);
        tu_rm_rf(p);
}

/* A second agent on the same state dir, as after a restart. */
struct slots *restart(struct fx *f, int expect) {
        struct slots *s = make(f, f->dir->fd, NULL);

        f->msg[0] = '\0';
        assert_int_equal(slots_load(s, f->now, f->msg, sizeof(f->msg)), expect);
        return s;
}

/* The generation of the newest copy in slots.state: each write adds one. */
uint64_t state_gen(struct fx *f) {
        _cleanup_free_ char *buf = NULL;
        struct slots__frame fr;
        size_t len;

        assert_int_equal(plat_read_file_at(f->dir->fd, SLOTS_STATE_FILE, SLOTS__FILE_BYTES, &buf, &len), 0);
        assert_int_equal(slots__frame_pick(buf, len, &fr, f->msg, sizeof(f->msg)), 0);
        return fr.gen;
}

/* A slots.state as an agent that crashed would have left it: `json` as generation gen in region k,
 * the other region as it was (zeros for a new file). */
void put_copy(struct fx *f, size_t k, uint64_t gen, const char *json) {
        _cleanup_close_ int fd = openat(f->dir->fd, SLOTS_STATE_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        uint8_t hdr[SLOTS__HDR_BYTES];
        off_t off = (off_t)(k * SLOTS__REGION_BYTES);

        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, SLOTS__FILE_BYTES), 0);
        slots__frame_header(hdr, gen, json, strlen(json));
        assert_int_equal(pwrite(fd, hdr, sizeof(hdr), off), (ssize_t)sizeof(hdr));
        assert_int_equal(pwrite(fd, json, strlen(json), off + SLOTS__HDR_BYTES), (ssize_t)strlen(json));
}

/* Only `json`, as the first write of a new file. */
void put_state(struct fx *f, const char *json) {
        assert_int_equal(unlinkat(f->dir->fd, SLOTS_STATE_FILE, 0), 0);
        put_copy(f, 0, 1, json);
}

/* Overwrites one byte of slots.state, as a torn write or a bad sector would. */
void poke(struct fx *f, off_t off, uint8_t byte) {
        _cleanup_close_ int fd = openat(f->dir->fd, SLOTS_STATE_FILE, O_WRONLY | O_CLOEXEC);

        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, &byte, 1, off), 1);
}

bool exists(struct fx *f, const char *name) {
        struct stat st;

        return fstatat(f->dir->fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}
