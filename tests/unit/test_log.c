/* test_log.c: level names, filtering, and the stderr format with structured fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_level_names_parse(void **state) {
        (void)state;
        assert_int_equal(plat_log_level_from_string("debug"), LOG_DEBUG);
        assert_int_equal(plat_log_level_from_string("warning"), LOG_WARNING);
        assert_int_equal(plat_log_level_from_string("warn"), LOG_WARNING);
        assert_int_equal(plat_log_level_from_string("err"), LOG_ERR);
        assert_int_equal(plat_log_level_from_string("6"), LOG_INFO);
        assert_int_equal(plat_log_level_from_string("loud"), -EINVAL);
        assert_int_equal(plat_log_level_from_string(NULL), -EINVAL);
}

/* Captures what one call writes to stderr. */
static void capture(char *out, size_t len, int prio, const char *const *fields, const char *msg) {
        FILE *tmp = tmpfile();
        int saved = dup(STDERR_FILENO);
        size_t n;

        fflush(stderr);
        dup2(fileno(tmp), STDERR_FILENO);
        plat_log_fields(prio, fields, "%s", msg);
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
        rewind(tmp);
        n = fread(out, 1, len - 1, tmp);
        out[n] = '\0';
        fclose(tmp);
}

static void test_stderr_lines_carry_level_and_fields_and_respect_max(void **state) {
        const char *fields[] = { "SLOT=s0", "USER_ID=u1", NULL };
        char out[256];

        (void)state;
        unsetenv("JOURNAL_STREAM");
        plat_log_setup("ra-test", LOG_INFO);
        assert_int_equal(plat_log_get_max(), LOG_INFO);
        capture(out, sizeof(out), LOG_WARNING, fields, "slot over cap");
        assert_string_equal(out, "ra-test: warning: slot over cap SLOT=s0 USER_ID=u1\n");
        capture(out, sizeof(out), LOG_DEBUG, NULL, "hidden");
        assert_string_equal(out, "");
        /* JOURNAL_STREAM naming another file is not our stderr: stay on stderr. */
        setenv("JOURNAL_STREAM", "1:1", 1);
        plat_log_setup(NULL, LOG_DEBUG);
        capture(out, sizeof(out), LOG_DEBUG, NULL, "shown");
        assert_string_equal(out, "ra-test: debug: shown\n");
        unsetenv("JOURNAL_STREAM");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_level_names_parse),
                cmocka_unit_test(test_stderr_lines_carry_level_and_fields_and_respect_max),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
