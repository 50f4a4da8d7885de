/* test_signing.c: metering signatures made ahead on a real sd-event loop from a real spool in a
 * scratch dir: the lines equal tu_jws_sign's byte for byte whether they come from the cache or not,
 * delivered records are left alone, the cache outlives a restart and is dropped for another key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "crypto.h"
#include "jws.h"
#include "sigcache.h"
#include "signing.h"
#include "spool.h"
#include "testutil.h"
#include "testsign.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define N_RECS 12

struct fx {
        struct tu_scratch *dir;
        sd_event *e;
        struct spool *spool;
        struct plat_signer *signer;
        struct signing *g;
        char payload[N_RECS][96];
};

static int setup(void **state) {
        struct fx *f = calloc(1, sizeof(*f));
        void *d = NULL;
        char msg[256];
        uint64_t id;

        assert_non_null(f);
        tu_scratch_setup(&d);
        f->dir = d;
        assert_int_equal(sd_event_new(&f->e), 0);
        assert_int_equal(spool_open(f->dir->fd, f->dir->path, NULL, &f->spool, NULL, msg, sizeof(msg)), 0);
        for (unsigned i = 0; i < N_RECS; i++) {
                snprintf(f->payload[i], sizeof(f->payload[i]),
                         "{\"v\":1,\"type\":\"session_start\",\"seq\":%u}", i + 1);
                assert_int_equal(spool_append(f->spool, f->payload[i], strlen(f->payload[i]), &id), 0);
                assert_int_equal(id, i + 1);
        }
        assert_int_equal(spool_sync(f->spool), N_RECS);
        assert_int_equal(plat_signer_generate(&f->signer, msg, sizeof(msg)), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fx *f = *state;
        void *d = f->dir;

        signing_free(f->g);
        spool_close(f->spool);
        plat_signer_free(f->signer);
        sd_event_unref(f->e);
        free(f);
        return tu_scratch_teardown(&d);
}

static void start(struct fx *f, struct plat_signer *signer) {
        signing_free(f->g);
        assert_int_equal(signing_new(f->e, signer, f->dir->fd, f->dir->path, &f->g), 0);
        assert_int_equal(signing_set_spool(f->g, f->spool), 0);
}

static uint64_t stat_of(struct fx *f, const char *key) {
        cJSON *o = signing_status_json(f->g);
        uint64_t v = (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(o, key));

        cJSON_Delete(o);
        return v;
}

/* Runs the loop until the signer ahead has looked at every record (or 20 s pass: a failure). */
static void run_until_caught_up(struct fx *f) {
        time_t until = time(NULL) + 20;

        while (stat_of(f, "ahead_upto") < N_RECS && time(NULL) < until)
                assert_true(sd_event_run(f->e, 100 * 1000) >= 0);
        assert_int_equal(stat_of(f, "ahead_upto"), N_RECS);
        /* One more turn: the source turns itself off once there is nothing left. */
        assert_true(sd_event_run(f->e, 50 * 1000) >= 0);
}

/* Every record's line is what tu_jws_sign makes of its payload, byte for byte. */
static void assert_lines_are_jws_sign(struct fx *f, struct plat_signer *signer) {
        for (unsigned i = 0; i < N_RECS; i++) {
                char *line = NULL, *want = NULL;

                assert_int_equal(signing_line(f->g, i + 1, f->payload[i], strlen(f->payload[i]), &line), 0);
                assert_int_equal(tu_jws_sign(signer, f->payload[i], strlen(f->payload[i]), &want), 0);
                assert_string_equal(line, want);
                free(line);
                free(want);
        }
}

static void test_records_signed_ahead_publish_from_the_cache(void **state) {
        struct fx *f = *state;

        start(f, f->signer);
        signing_kick(f->g, 0);
        run_until_caught_up(f);
        assert_int_equal(stat_of(f, "ahead"), N_RECS);
        assert_lines_are_jws_sign(f, f->signer);
        assert_int_equal(stat_of(f, "from_cache"), N_RECS);
        assert_int_equal(stat_of(f, "at_publish"), 0);
}

static void test_delivered_records_are_not_signed_ahead(void **state) {
        struct fx *f = *state;

        start(f, f->signer);
        signing_kick(f->g, 5);
        run_until_caught_up(f);
        assert_int_equal(stat_of(f, "ahead"), N_RECS - 5);
        assert_lines_are_jws_sign(f, f->signer);
        assert_int_equal(stat_of(f, "from_cache"), N_RECS - 5);
        assert_int_equal(stat_of(f, "at_publish"), 5);
}

static void test_nothing_runs_without_a_kick(void **state) {
        struct fx *f = *state;

        start(f, f->signer);
        for (int i = 0; i < 3; i++)
                assert_true(sd_event_run(f->e, 20 * 1000) >= 0);
        assert_int_equal(stat_of(f, "ahead"), 0);
}

static void test_the_cache_outlives_a_restart(void **state) {
        struct fx *f = *state;
        char msg[256];

        start(f, f->signer);
        signing_kick(f->g, 0);
        run_until_caught_up(f);
        /* A new agent: the spool opened again, a new signing on the same state dir and key. */
        signing_free(f->g);
        f->g = NULL;
        spool_close(f->spool);
        assert_int_equal(spool_open(f->dir->fd, f->dir->path, NULL, &f->spool, NULL, msg, sizeof(msg)), 0);
        start(f, f->signer);
        assert_lines_are_jws_sign(f, f->signer);
        assert_int_equal(stat_of(f, "from_cache"), N_RECS);
        assert_int_equal(stat_of(f, "at_publish"), 0);
}

static void test_another_key_does_not_use_the_cache(void **state) {
        struct fx *f = *state;
        struct plat_signer *other = NULL;
        char msg[256];

        start(f, f->signer);
        signing_kick(f->g, 0);
        run_until_caught_up(f);
        assert_int_equal(plat_signer_generate(&other, msg, sizeof(msg)), 0);
        start(f, other);
        assert_lines_are_jws_sign(f, other);
        assert_int_equal(stat_of(f, "from_cache"), 0);
        assert_int_equal(stat_of(f, "at_publish"), N_RECS);
        signing_free(f->g); /* it borrows other */
        f->g = NULL;
        plat_signer_free(other);
}

static void test_a_damaged_entry_is_signed_again_to_the_same_bytes(void **state) {
        struct fx *f = *state;
        int fd;

        start(f, f->signer);
        signing_kick(f->g, 0);
        run_until_caught_up(f);
        /* A byte of the third entry's signature (84-byte entries after a 64-byte header). */
        fd = openat(f->dir->fd, SIGCACHE_FILE, O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, "\xff", 1, 64 + 2 * 84 + 20), 1);
        close(fd);
        assert_lines_are_jws_sign(f, f->signer);
        assert_int_equal(stat_of(f, "from_cache"), N_RECS - 1);
        assert_int_equal(stat_of(f, "at_publish"), 1);
}

static void test_without_a_key_nothing_is_signed(void **state) {
        struct fx *f = *state;
        char *line = NULL;

        start(f, NULL);
        signing_kick(f->g, 0);
        for (int i = 0; i < 3; i++)
                assert_true(sd_event_run(f->e, 20 * 1000) >= 0);
        assert_int_equal(stat_of(f, "ahead"), 0);
        assert_int_equal(signing_line(f->g, 1, f->payload[0], strlen(f->payload[0]), &line), -ENOKEY);
        assert_null(line);
}

static void test_acked_records_empty_the_cache(void **state) {
        struct fx *f = *state;
        struct stat st;

        start(f, f->signer);
        signing_kick(f->g, 0);
        run_until_caught_up(f);
        signing_acked(f->g, N_RECS - 1);
        assert_int_equal(fstatat(f->dir->fd, SIGCACHE_FILE, &st, 0), 0);
        assert_true(st.st_size > 64);
        signing_acked(f->g, N_RECS);
        assert_int_equal(fstatat(f->dir->fd, SIGCACHE_FILE, &st, 0), 0);
        assert_int_equal(st.st_size, 64);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_records_signed_ahead_publish_from_the_cache, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_delivered_records_are_not_signed_ahead, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_nothing_runs_without_a_kick, setup, teardown),
                cmocka_unit_test_setup_teardown(test_the_cache_outlives_a_restart, setup, teardown),
                cmocka_unit_test_setup_teardown(test_another_key_does_not_use_the_cache, setup, teardown),
                cmocka_unit_test_setup_teardown(test_a_damaged_entry_is_signed_again_to_the_same_bytes,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_without_a_key_nothing_is_signed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_acked_records_empty_the_cache, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
