/* test_startup_checks.c: what the agent refuses to start on (and --check-config reports): a
 * control socket directory or state_dir another user owns or may write, a private key open to
 * group or others, a control.socket another process listens on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "startup_checks.h"
#include "testutil.h"
#include "unixsock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OTHER_UID 4242

struct scratch {
        char dir[64];
        uid_t self; /* the agent's user for the checks */
};

static int setup(void **state) {
        struct scratch *s = calloc(1, sizeof(*s));

        if (!s)
                return -1;
        strcpy(s->dir, "/tmp/ra-test-startup-XXXXXX");
        if (!mkdtemp(s->dir))
                return -1;
        s->self = geteuid();
        *state = s;
        return 0;
}

static int teardown(void **state) {
        struct scratch *s = *state;

        tu_rm_rf(s->dir);
        free(s);
        return 0;
}

static void path_in(const struct scratch *s, const char *name, char *buf, size_t len) {
        snprintf(buf, len, "%s/%s", s->dir, name);
}

/* Makes `path` belong to a user that is neither root nor the agent's: as root, by chown to
 * OTHER_UID; otherwise the test's own files stand for another user's, and the agent's user is
 * said to be someone else. Returns the uid the checks run as. */
static uid_t owned_by_another(const struct scratch *s, const char *path) {
        if (s->self == 0) {
                assert_int_equal(chown(path, OTHER_UID, OTHER_UID), 0);
                return 0;
        }
        return s->self + 1;
}

static void test_closed_directories_of_root_or_the_agent_pass(void **state) {
        struct scratch *s = *state;
        char sock[128], state_dir[128], msg[STARTUP_MSG_MAX] = "";

        path_in(s, "agent.sock", sock, sizeof(sock));
        path_in(s, "state", state_dir, sizeof(state_dir));
        assert_int_equal(startup_check_socket_dir(sock, s->self, msg, sizeof(msg)), 0);
        /* Not made yet: the agent makes it, closed; what is above it is judged. */
        assert_int_equal(startup_check_state_dir(state_dir, s->self, msg, sizeof(msg)), 0);
        assert_int_equal(mkdir(state_dir, 0750), 0);
        assert_int_equal(startup_check_state_dir(state_dir, s->self, msg, sizeof(msg)), 0);
        assert_string_equal(msg, "");
}

static void test_socket_directory_of_another_user_is_refused(void **state) {
        struct scratch *s = *state;
        char sock[128], msg[STARTUP_MSG_MAX], want[256];
        uid_t self;

        path_in(s, "agent.sock", sock, sizeof(sock));
        self = owned_by_another(s, s->dir);
        assert_int_equal(startup_check_socket_dir(sock, self, msg, sizeof(msg)), -EPERM);
        snprintf(want, sizeof(want), "control.socket: directory %s is owned by ", s->dir);
        assert_non_null(strstr(msg, want));
        snprintf(want, sizeof(want), "uid %u", s->self == 0 ? OTHER_UID : (unsigned)s->self);
        assert_non_null(strstr(msg, want));
        assert_non_null(strstr(msg, "replace the control socket"));
}

/* In a sticky directory others cannot remove the socket, but they can take its name while the
 * agent is down; so the socket's own directory must be closed, sticky or not. */
static void test_socket_directory_writable_by_its_group_is_refused_even_sticky(void **state) {
        struct scratch *s = *state;
        char sock[128], msg[STARTUP_MSG_MAX], want[256];

        path_in(s, "agent.sock", sock, sizeof(sock));
        assert_int_equal(chmod(s->dir, 01770), 0);
        assert_int_equal(startup_check_socket_dir(sock, s->self, msg, sizeof(msg)), -EPERM);
        snprintf(want, sizeof(want), "control.socket: directory %s is mode 1770, writable by its group",
                 s->dir);
        assert_non_null(strstr(msg, want));
        assert_non_null(strstr(msg, "chmod go-w"));
}

/* Above the socket's directory, a world-writable directory is fine when sticky (/tmp), and
 * refused when not: anyone could rename the agent's directory away and put their own there. */
static void test_directory_above_may_be_world_writable_only_when_sticky(void **state) {
        struct scratch *s = *state;
        char sub[128], sock[160], msg[STARTUP_MSG_MAX], want[256];

        path_in(s, "run", sub, sizeof(sub));
        assert_int_equal(mkdir(sub, 0755), 0);
        snprintf(sock, sizeof(sock), "%s/agent.sock", sub);
        assert_int_equal(chmod(s->dir, 01777), 0);
        assert_int_equal(startup_check_socket_dir(sock, s->self, msg, sizeof(msg)), 0);
        assert_int_equal(chmod(s->dir, 0777), 0);
        assert_int_equal(startup_check_socket_dir(sock, s->self, msg, sizeof(msg)), -EPERM);
        snprintf(want, sizeof(want),
                 "directory %s (above it) is mode 0777, writable by every user and not sticky", s->dir);
        assert_non_null(strstr(msg, want));
}

static void test_state_dir_writable_by_others_or_owned_by_another_is_refused(void **state) {
        struct scratch *s = *state;
        char state_dir[128], msg[STARTUP_MSG_MAX], want[256];
        uid_t self;

        path_in(s, "state", state_dir, sizeof(state_dir));
        assert_int_equal(mkdir(state_dir, 0700), 0);
        assert_int_equal(chmod(state_dir, 0777), 0);
        assert_int_equal(startup_check_state_dir(state_dir, s->self, msg, sizeof(msg)), -EPERM);
        snprintf(want, sizeof(want), "state_dir: directory %s is mode 0777, writable by every user",
                 state_dir);
        assert_non_null(strstr(msg, want));
        assert_non_null(strstr(msg, "slots.state and the spool"));

        assert_int_equal(chmod(state_dir, 0700), 0);
        self = owned_by_another(s, state_dir);
        assert_int_equal(startup_check_state_dir(state_dir, self, msg, sizeof(msg)), -EPERM);
        snprintf(want, sizeof(want), "state_dir: directory %s is owned by ", state_dir);
        assert_non_null(strstr(msg, want));
}

static void test_key_open_to_group_or_others_is_refused(void **state) {
        struct scratch *s = *state;
        char key[128], msg[STARTUP_MSG_MAX], want[256];
        int fd;

        path_in(s, "device.key", key, sizeof(key));
        fd = open(key, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(startup_check_key_file("mqtt.tls.key_file", key, msg, sizeof(msg)), 0);
        assert_int_equal(chmod(key, 0400), 0);
        assert_int_equal(startup_check_key_file("mqtt.tls.key_file", key, msg, sizeof(msg)), 0);
        assert_int_equal(chmod(key, 0640), 0);
        assert_int_equal(startup_check_key_file("mqtt.tls.key_file", key, msg, sizeof(msg)), -EPERM);
        snprintf(want, sizeof(want), "mqtt.tls.key_file: %s is mode 0640, open to its group", key);
        assert_non_null(strstr(msg, want));
        snprintf(want, sizeof(want), "(chmod 600 %s)", key);
        assert_non_null(strstr(msg, want));
        assert_int_equal(chmod(key, 0604), 0);
        assert_int_equal(startup_check_key_file("metering.key_file", key, msg, sizeof(msg)), -EPERM);
        assert_non_null(strstr(msg, "open to every user"));
}

static void test_live_control_socket_is_refused_stale_one_is_not(void **state) {
        struct scratch *s = *state;
        char sock[128], msg[STARTUP_MSG_MAX], want[256];
        int fd;

        path_in(s, "agent.sock", sock, sizeof(sock));
        assert_int_equal(startup_check_socket_free(sock, msg, sizeof(msg)), 0);
        fd = plat_unix_listen(sock, 0600, 4);
        assert_true(fd >= 0);
        assert_int_equal(startup_check_socket_free(sock, msg, sizeof(msg)), -EADDRINUSE);
        snprintf(want, sizeof(want), "control.socket: %s is a live socket: process %d (", sock,
                 (int)getpid());
        assert_non_null(strstr(msg, want));
        assert_non_null(strstr(msg, "refusing to take it over"));
        close(fd);
        assert_int_equal(startup_check_socket_free(sock, msg, sizeof(msg)), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_closed_directories_of_root_or_the_agent_pass, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_socket_directory_of_another_user_is_refused, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(
                        test_socket_directory_writable_by_its_group_is_refused_even_sticky, setup, teardown),
                cmocka_unit_test_setup_teardown(test_directory_above_may_be_world_writable_only_when_sticky,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_state_dir_writable_by_others_or_owned_by_another_is_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_key_open_to_group_or_others_is_refused, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_live_control_socket_is_refused_stale_one_is_not, setup,
                                                teardown),
        };
        return tu_exit_status(cmocka_run_group_tests(tests, NULL, NULL));
}
