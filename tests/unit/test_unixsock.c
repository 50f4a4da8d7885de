/* test_unixsock.c: listening sockets (stale replaced, other files kept) and peer credentials. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "unixsock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

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

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_listen_connect_and_peer_credentials),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
