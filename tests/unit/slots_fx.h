/* slots_fx.h: the fixture test_slots and test_slots_store share: three slots, a scratch state dir, a
 * clock the test moves, and helpers that reach into slots.state. */
#pragma once

#include "slots.h"
#include "testutil.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define SEC UINT64_C(1000000)

/* The slot ids: "s0", "s1", "s2". */
extern const char *const ids[3];

/* A node of three slots with a scratch state dir and a clock the test moves. */
struct fx {
        struct tu_scratch *dir;
        struct slots *s;
        struct slots_clock now;
        bool admissible[3];
        char msg[SLOTS_MSG_MAX];
        struct slots_event ev;
};

/* Each is described where it is defined, in slots_fx.c. */
bool is_admissible(void *userdata, size_t i);
struct slots *make(struct fx *f, int dir_fd, const struct slots_limits *lim);
int setup(void **state);
int teardown(void **state);
void advance(struct fx *f, uint64_t usec);
enum slots_code reserve(struct fx *f, const char *user, const char *slot);
struct slots_ref by_user(const char *u);
struct slots_ref by_session(const char *id);
enum slots_state state_of(struct fx *f, size_t i);
const char *user_of(struct fx *f, size_t i);
const char *play(struct fx *f, const char *user, const char *slot);
void fx_remove_state_dir(struct fx *f);
struct slots *restart(struct fx *f, int expect);
uint64_t state_gen(struct fx *f);
void put_copy(struct fx *f, size_t k, uint64_t gen, const char *json);
void put_state(struct fx *f, const char *json);
void poke(struct fx *f, off_t off, uint8_t byte);
bool exists(struct fx *f, const char *name);
