/* test_unixsock.c: listening sockets (stale replaced, live and other files kept) and peer credentials. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"
#include "unixsock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* plat_unix_peer_groups on a peer with several groups. qemu-user (the arm64 run, where
 * scripts/test-arm64 sets RA_QEMU_USER) passes SO_PEERGROUPS to the kernel with an int-sized
 * buffer and never the size back, so it always fails ERANGE there: a limit of the emulator, named
 * as a skip of the calling test. Anywhere else the call must work. */
#define PEER_GROUPS_OR_SKIP(fd, ret, ret_n)                                                       \
        do {                                                                                      \
                int r_ = plat_unix_peer_groups(fd, ret, ret_n);                                   \
                if (r_ == -ERANGE && getenv("RA_QEMU_USER"))                                      \
                        tu_skip("qemu-user: getsockopt(SO_PEERGROUPS) is not emulated (ERANGE)"); \
                assert_int_equal(r_, 0);                                                          \
        } while (0)

static void test_listen_connect_and_peer_credentials(void **state) {
        char dir[] = "/tmp/ra-test-sock-XXXXXX", path[128];
        struct plat_peer peer;
        struct stat st;
        int l, c, a;

        (void)state;
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/s.sock", dir);
        l = plat_unix_listen(path, 0660, 4);
        assert_true(l >= 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0660);
        c = plat_unix_connect(path);
        assert_true(c >= 0);
        a = accept(l, NULL, NULL);
        assert_true(a >= 0);
        assert_int_equal(plat_unix_peer(a, &peer), 0);
        assert_int_equal(peer.pid, getpid());
        assert_int_equal(peer.uid, getuid());
        close(a);
        close(c);
        close(l);
        /* A stale socket from a crashed run is replaced... */
        l = plat_unix_listen(path, 0600, 4);
        assert_true(l >= 0);
        close(l);
        /* ...but a regular file at that path is never deleted. */
        unlink(path);
        fclose(fopen(path, "w"));
        assert_int_equal(plat_unix_listen(path, 0600, 4), -EEXIST);
        assert_int_equal(access(path, F_OK), 0);
        unlink(path);
        assert_int_equal(plat_unix_connect(path), -ENOENT);
        memset(path, 'a', sizeof(path) - 1);
        path[0] = '/';
        path[sizeof(path) - 1] = '\0';
        assert_int_equal(plat_unix_listen(path, 0600, 4), -ENAMETOOLONG);
        rmdir(dir);
}

/* A socket another process still listens on is never unlinked and taken over; once nobody
 * listens (the file left by a crash), it may be replaced. */
static void test_listen_refuses_a_live_socket_and_replaces_a_stale_one(void **state) {
        char dir[] = "/tmp/ra-test-sock-XXXXXX", path[128];
        struct plat_peer peer;
        int live, l;

        (void)state;
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/s.sock", dir);
        assert_int_equal(plat_unix_probe(path, &peer), 0); /* no file */
        live = plat_unix_listen(path, 0660, 4);
        assert_true(live >= 0);
        assert_int_equal(plat_unix_probe(path, &peer), 1);
        assert_int_equal(peer.pid, getpid());
        assert_int_equal(peer.uid, geteuid());
        assert_int_equal(plat_unix_listen(path, 0660, 4), -EADDRINUSE);
        /* The live listener still has its socket: a client reaches it. */
        l = plat_unix_connect(path);
        assert_true(l >= 0);
        close(l);
        close(live);
        assert_int_equal(plat_unix_probe(path, &peer), 0); /* stale */
        l = plat_unix_listen(path, 0660, 4);
        assert_true(l >= 0);
        close(l);
        unlink(path);
        rmdir(dir);
}

/* The groups are those the peer had when it connected: a process that connects and then drops its
 * groups (or hands the fd to another and exits) is still known by the groups it connected with. */
static void test_peer_groups_are_those_at_connect(void **state) {
        char dir[] = "/tmp/ra-test-sock-XXXXXX", path[128];
        int l, a, sync[2];
        gid_t *groups = NULL;
        size_t n = 99;
        pid_t child;
        char byte;

        (void)state;
        if (geteuid() != 0)
                tu_skip("setgroups needs root");
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/s.sock", dir);
        l = plat_unix_listen(path, 0666, 4);
        assert_true(l >= 0);
        assert_int_equal(pipe(sync), 0);
        child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                static const gid_t at_connect[] = { 4242, 4343, 4444 };
                int c;

                if (setgroups(3, at_connect) < 0 || (c = plat_unix_connect(path)) < 0)
                        _exit(1);
                /* After connecting: other groups, and gone before the agent side looks. */
                if (setgroups(0, NULL) < 0 || write(sync[1], "x", 1) != 1)
                        _exit(1);
                _exit(0);
        }
        assert_int_equal(read(sync[0], &byte, 1), 1);
        assert_int_equal(waitpid(child, NULL, 0), child);
        a = accept(l, NULL, NULL);
        assert_true(a >= 0);
        PEER_GROUPS_OR_SKIP(a, &groups, &n);
        assert_int_equal(n, 3);
        assert_int_equal(groups[0], 4242);
        assert_int_equal(groups[1], 4343);
        assert_int_equal(groups[2], 4444);
        free(groups);
        close(a);
        /* None at all: NULL and 0. */
        child = fork();
        assert_true(child >= 0);
        if (child == 0)
                _exit(setgroups(0, NULL) < 0 || plat_unix_connect(path) < 0 || write(sync[1], "x", 1) != 1);
        assert_int_equal(read(sync[0], &byte, 1), 1);
        assert_int_equal(waitpid(child, NULL, 0), child);
        a = accept(l, NULL, NULL);
        assert_true(a >= 0);
        groups = (gid_t *)&n;
        assert_int_equal(plat_unix_peer_groups(a, &groups, &n), 0);
        assert_int_equal(n, 0);
        assert_null(groups);
        close(a);
        close(sync[0]);
        close(sync[1]);
        close(l);
        unlink(path);
        rmdir(dir);
}

/* More groups than the first guess (64): the helper asks again with the room the kernel names. */
static void test_peer_groups_beyond_the_first_guess(void **state) {
        char dir[] = "/tmp/ra-test-sock-XXXXXX", path[128];
        gid_t *groups = NULL;
        int l, a, sync[2];
        size_t n = 0;
        pid_t child;
        char byte;

        (void)state;
        if (geteuid() != 0)
                tu_skip("setgroups needs root");
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/s.sock", dir);
        l = plat_unix_listen(path, 0666, 4);
        assert_true(l >= 0);
        assert_int_equal(pipe(sync), 0);
        child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                gid_t many[300];

                for (size_t i = 0; i < 300; i++)
                        many[i] = (gid_t)(10000 + i);
                _exit(setgroups(300, many) < 0 || plat_unix_connect(path) < 0 ||
                      write(sync[1], "x", 1) != 1);
        }
        assert_int_equal(read(sync[0], &byte, 1), 1);
        assert_int_equal(waitpid(child, NULL, 0), child);
        a = accept(l, NULL, NULL);
        assert_true(a >= 0);
        PEER_GROUPS_OR_SKIP(a, &groups, &n);
        assert_int_equal(n, 300);
        assert_int_equal(groups[299], 10299);
        free(groups);
        close(a);
        close(sync[0]);
        close(sync[1]);
        close(l);
        unlink(path);
        rmdir(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_listen_connect_and_peer_credentials),
                cmocka_unit_test(test_listen_refuses_a_live_socket_and_replaces_a_stale_one),
                cmocka_unit_test(test_peer_groups_are_those_at_connect),
                cmocka_unit_test(test_peer_groups_beyond_the_first_guess),
        };
        return tu_exit_status(cmocka_run_group_tests(tests, NULL, NULL));
}
