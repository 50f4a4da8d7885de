/* test_ctl_ops.c: render-agentctl's op commands and its --help come from the ops table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cleanup.h"
#include "ctl_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --help as render-agentctl prints it (caller frees). */
static char *help_text(void) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        assert_non_null(f);
        ctl_ops_usage(f);
        assert_int_equal(fclose(f), 0);
        return text;
}

/* The line of --help that starts with "  <cmd> " or is "  <cmd>" and nothing more, or NULL. */
static const char *line_of(const char *text, const char *cmd) {
        size_t n = strlen(cmd);

        for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
                if (!strncmp(p, "  ", 2) && !strncmp(p + 2, cmd, n) && (p[2 + n] == ' ' || p[2 + n] == '\n'))
                        return p;
        return NULL;
}

static void test_help_lists_every_ctl_op_with_its_arguments_and_help(void **state) {
        _cleanup_free_ char *text = help_text();
        size_t listed = 0;

        (void)state;
        for (int id = 0; id < OPS_COUNT; id++) {
                const struct ops_entry *e = ops_get(id);
                const char *line;

                if (!e->ctl) {
                        assert_null(line_of(text, e->name)); /* telemetry, report_bytes: no command */
                        continue;
                }
                line = line_of(text, e->ctl);
                if (!line)
                        print_message("--help does not list %s\n", e->ctl);
                assert_non_null(line);
                assert_int_equal(strncmp(line + 2 + strlen(e->ctl) + (*e->ctl_usage ? 1 : 0), e->ctl_usage,
                                         strlen(e->ctl_usage)),
                                 0);
                /* its help on the same line, or on the next one */
                assert_non_null(strstr(line, e->help));
                assert_true(strstr(line, e->help) - line < 200);
                listed++;
        }
        assert_int_equal(listed, 17);
        /* the commands that are not ops are still there */
        assert_non_null(line_of(text, "top"));
        assert_non_null(line_of(text, "doctor"));
        assert_non_null(line_of(text, "enroll"));
        assert_non_null(strstr(text, "Exit status"));
}

#define START_LINE "  start TARGET           the reserved session starts streaming\n"

/* Reads before "Sessions", session changes after it, each in the table's order. */
static void test_help_groups_reads_and_session_changes(void **state) {
        _cleanup_free_ char *text = help_text();
        const char *sessions = strstr(text, "\nSessions (TARGET");

        (void)state;
        assert_non_null(sessions);
        assert_true(line_of(text, "status") < sessions && line_of(text, "events") < sessions &&
                    line_of(text, "sessions") < sessions);
        assert_true(line_of(text, "reserve") > sessions && line_of(text, "undrain") > sessions);
        assert_true(line_of(text, "start") < line_of(text, "client-lost"));
        /* a short command has its help on its line, at the help column */
        assert_int_equal(strncmp(line_of(text, "start"), START_LINE, strlen(START_LINE)), 0);
}

static void test_commands_are_found_by_their_dashed_name_only(void **state) {
        (void)state;
        assert_int_equal(ctl_ops_find("client-lost")->id, OP_CLIENT_LOST);
        assert_int_equal(ctl_ops_find("viewer-join")->id, OP_VIEWER_JOIN);
        assert_int_equal(ctl_ops_find("events")->id, OP_EVENTS);
        assert_null(ctl_ops_find("client_lost"));
        assert_null(ctl_ops_find("telemetry"));
        assert_null(ctl_ops_find("report-bytes"));
        assert_null(ctl_ops_find("top"));
        assert_null(ctl_ops_find(""));
        assert_null(ctl_ops_find(NULL));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_help_lists_every_ctl_op_with_its_arguments_and_help),
                cmocka_unit_test(test_help_groups_reads_and_session_changes),
                cmocka_unit_test(test_commands_are_found_by_their_dashed_name_only),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
