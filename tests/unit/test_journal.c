/* test_journal.c: records owed to the spool, written with the state, appended byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cleanup.h"
#include "crypto.h"
#include "journal.h"
#include "spool.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define T0 UINT64_C(1700000000000000)
#define ZEROS "0000000000000000000000000000000000000000000000000000000000000000"

/* Makes a record of `type` with one member n. */
static void make(struct journal *j, const char *type, int n) {
        cJSON *o = cJSON_CreateObject(), *f = cJSON_CreateObject();

        cJSON_AddNumberToObject(o, "v", 1);
        cJSON_AddStringToObject(o, "type", type);
        cJSON_AddNumberToObject(f, "n", n);
        assert_int_equal(journal_make(j, o, f, T0 + (uint64_t)n * 1000, 4096), 0);
        cJSON_Delete(o);
        cJSON_Delete(f);
}

/* The owed payloads, from journal_json. Caller frees. */
static cJSON *owed(const struct journal *j) {
        int err;
        _cleanup_free_ char *text = journal_json(j, &err);

        assert_int_equal(err, 0);
        return text ? cJSON_Parse(text) : cJSON_CreateArray();
}

static cJSON *payload(const cJSON *arr, int k) {
        return cJSON_Parse(cJSON_GetArrayItem(arr, k)->valuestring);
}

static void sha_hex(const char *s, char out[PLAT_SHA256_HEX_LEN + 1]) {
        uint8_t d[PLAT_SHA256_LEN];

        plat_sha256(s, strlen(s), d);
        plat_sha256_hex(d, out);
}

static void test_records_get_seq_prev_ts_before_their_members_and_chain(void **state) {
        struct journal *j;
        char h[PLAT_SHA256_HEX_LEN + 1];
        cJSON *arr, *p0, *p1;

        (void)state;
        assert_int_equal(journal_new(&j), 0);
        journal_continue(j, 7, ZEROS);
        make(j, "a", 1);
        make(j, "b", 2);
        assert_int_equal(journal_owed(j), 2);
        assert_int_equal(journal_next_seq(j), 9);
        arr = owed(j);
        p0 = payload(arr, 0);
        p1 = payload(arr, 1);
        assert_string_equal(cJSON_GetArrayItem(arr, 0)->valuestring,
                            "{\"v\":1,\"type\":\"a\",\"seq\":7,\"prev\":\"" ZEROS
                            "\",\"ts\":\"2023-11-14T22:13:20.001Z\",\"n\":1}");
        sha_hex(cJSON_GetArrayItem(arr, 0)->valuestring, h);
        assert_string_equal(cJSON_GetObjectItem(p1, "prev")->valuestring, h);
        assert_int_equal(cJSON_GetObjectItem(p1, "seq")->valuedouble, 8);
        cJSON_Delete(p0);
        cJSON_Delete(p1);
        cJSON_Delete(arr);
        journal_free(j);
}

static void test_abort_drops_the_batch_and_gives_its_seqs_to_the_next(void **state) {
        struct journal *j;
        cJSON *arr, *p;
        int err;

        (void)state;
        assert_int_equal(journal_new(&j), 0);
        journal_continue(j, 1, ZEROS);
        make(j, "kept", 1);
        journal_mark(j);
        make(j, "dropped", 2);
        make(j, "dropped", 3);
        journal_abort(j);
        assert_int_equal(journal_owed(j), 1);
        assert_int_equal(journal_next_seq(j), 2);
        make(j, "next", 4);
        arr = owed(j);
        p = payload(arr, 1);
        assert_string_equal(cJSON_GetObjectItem(p, "type")->valuestring, "next");
        assert_int_equal(cJSON_GetObjectItem(p, "seq")->valuedouble, 2);
        cJSON_Delete(p);
        cJSON_Delete(arr);
        /* Nothing owed: no journal at all. */
        journal_synced(j, 2);
        assert_int_equal(journal_owed(j), 0);
        assert_int_equal(journal_bytes(j), 0);
        assert_null(journal_json(j, &err));
        assert_int_equal(err, 0);
        journal_free(j);
}

/* What a crash leaves: slots.state's journal holds records, the spool only the first of them. The
 * journal restored from it appends the rest, byte for byte, and the chain goes on after them. */
static void test_restore_appends_what_the_spool_lacks_byte_for_byte(void **state) {
        struct tu_scratch *sc = *state;
        _cleanup_free_ char *text = NULL, *again = NULL;
        struct journal *j, *k;
        struct spool *sp;
        char msg[256], h[PLAT_SHA256_HEX_LEN + 1];
        uint64_t id;
        cJSON *arr;
        void *buf;
        size_t len;
        int err;

        assert_int_equal(spool_open(sc->fd, sc->path, NULL, &sp, NULL, msg, sizeof(msg)), 0);
        assert_int_equal(journal_new(&j), 0);
        journal_continue(j, spool_next_id(sp), ZEROS);
        make(j, "session_start", 1);
        make(j, "session_end", 2);
        make(j, "session_start", 3);
        text = journal_json(j, &err);
        arr = cJSON_Parse(text);
        /* The first reached the spool before the crash. */
        assert_int_equal(spool_append(sp, cJSON_GetArrayItem(arr, 0)->valuestring,
                                      strlen(cJSON_GetArrayItem(arr, 0)->valuestring), &id),
                         0);
        assert_int_equal(spool_sync(sp), 1);

        assert_int_equal(journal_new(&k), 0);
        assert_int_equal(journal_restore(k, text, spool_next_id(sp), msg, sizeof(msg)), 2);
        assert_non_null(strstr(msg, "3 owed record(s), 2 of them not in the spool"));
        sha_hex(cJSON_GetArrayItem(arr, 0)->valuestring, h);
        journal_continue(k, spool_next_id(sp), h);
        assert_int_equal(journal_next_seq(k), 4);
        assert_int_equal(journal_to_spool(k, sp), 2);
        assert_int_equal(spool_sync(sp), 2);
        journal_synced(k, 3);
        assert_int_equal(journal_owed(k), 0);
        for (uint64_t want = 2; want <= 3; want++) {
                assert_int_equal(spool_read_next(sp, &buf, &len, &id), 0);
                if (id == 1) {
                        free(buf);
                        assert_int_equal(spool_read_next(sp, &buf, &len, &id), 0);
                }
                assert_int_equal(id, want);
                assert_int_equal(len, strlen(cJSON_GetArrayItem(arr, (int)want - 1)->valuestring));
                assert_memory_equal(buf, cJSON_GetArrayItem(arr, (int)want - 1)->valuestring, len);
                free(buf);
        }
        /* The chain goes on from the last owed record. */
        make(k, "next", 4);
        again = journal_json(k, &err);
        sha_hex(cJSON_GetArrayItem(arr, 2)->valuestring, h);
        assert_non_null(strstr(again, h));
        cJSON_Delete(arr);
        journal_free(j);
        journal_free(k);
        spool_close(sp);
}

/* A spool that takes one record of two and then refuses (here a file size limit, EFBIG, in a child
 * so that the limit binds nothing else): the refusal's cause comes back, not a count that would
 * read as "some went in, the rest for want of room"; the one that went in is the spool's. */
static void test_a_refusal_after_some_records_says_why(void **state) {
        struct tu_scratch *sc = *state;
        struct spool_stats st;
        struct journal *j;
        struct spool *sp;
        struct rlimit lim;
        char msg[256];
        int status, r;
        size_t first;
        cJSON *arr;
        pid_t pid;

        assert_int_equal(spool_open(sc->fd, sc->path, NULL, &sp, NULL, msg, sizeof(msg)), 0);
        assert_int_equal(journal_new(&j), 0);
        journal_continue(j, spool_next_id(sp), ZEROS);
        make(j, "session_start", 1);
        make(j, "session_end", 2);
        spool_stats(sp, &st);
        arr = owed(j);
        first = strlen(cJSON_GetArrayItem(arr, 0)->valuestring);
        cJSON_Delete(arr);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                signal(SIGXFSZ, SIG_IGN);
                /* Room for the first record and its header, not for the second. */
                if (getrlimit(RLIMIT_FSIZE, &lim) < 0)
                        _exit(10);
                lim.rlim_cur = (rlim_t)(st.used + first + 64);
                if (setrlimit(RLIMIT_FSIZE, &lim) < 0)
                        _exit(11);
                r = journal_to_spool(j, sp);
                if (r != -EFBIG)
                        _exit(r < 0 ? 100 + (-r % 100) : 50 + r % 50);
                _exit(spool_next_id(sp) == 2 ? 0 : 13);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        journal_free(j);
        spool_close(sp);
}

static void test_a_journal_that_is_not_records_is_refused_whole(void **state) {
        static const char *const bad[] = {
                "{}",
                "[1]",
                "[\"not json\"]",
                "[\"{\\\"seq\\\":0}\"]",
                "[\"{\\\"seq\\\":2}\",\"{\\\"seq\\\":2}\"]",
                "[\"{\\\"seq\\\":1.5}\"]",
        };
        struct journal *j;
        char msg[256];

        (void)state;
        assert_int_equal(journal_new(&j), 0);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                msg[0] = '\0';
                assert_int_equal(journal_restore(j, bad[i], 1, msg, sizeof(msg)), -EBADMSG);
                assert_true(msg[0] != '\0');
                assert_int_equal(journal_owed(j), 0);
        }
        assert_int_equal(journal_restore(j, NULL, 1, msg, sizeof(msg)), 0);
        assert_int_equal(journal_restore(j, "[\"{\\\"seq\\\":3}\"]", 5, msg, sizeof(msg)), 0);
        assert_int_equal(journal_owed(j), 0);
        journal_free(j);
}

static void test_a_record_too_large_or_too_many_is_refused(void **state) {
        struct journal *j;
        cJSON *o = cJSON_CreateObject(), *f = cJSON_CreateObject();

        (void)state;
        assert_int_equal(journal_new(&j), 0);
        cJSON_AddStringToObject(f, "big", "0123456789012345678901234567890123456789");
        assert_int_equal(journal_make(j, o, f, T0, 32), -EMSGSIZE);
        assert_int_equal(journal_owed(j), 0);
        assert_int_equal(journal_next_seq(j), 1);
        for (int n = 0; n < JOURNAL_MAX_RECORDS; n++)
                make(j, "x", n);
        cJSON_Delete(o);
        o = cJSON_CreateObject();
        assert_int_equal(journal_make(j, o, f, T0, 4096), -ENOSPC);
        assert_int_equal(journal_owed(j), JOURNAL_MAX_RECORDS);
        cJSON_Delete(o);
        cJSON_Delete(f);
        journal_free(j);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_records_get_seq_prev_ts_before_their_members_and_chain),
                cmocka_unit_test(test_abort_drops_the_batch_and_gives_its_seqs_to_the_next),
                cmocka_unit_test_setup_teardown(test_restore_appends_what_the_spool_lacks_byte_for_byte,
                                                tu_scratch_setup, tu_scratch_teardown),
                cmocka_unit_test_setup_teardown(test_a_refusal_after_some_records_says_why, tu_scratch_setup,
                                                tu_scratch_teardown),
                cmocka_unit_test(test_a_journal_that_is_not_records_is_refused_whole),
                cmocka_unit_test(test_a_record_too_large_or_too_many_is_refused),
        };

        return tu_exit_status(cmocka_run_group_tests(tests, NULL, NULL));
}
