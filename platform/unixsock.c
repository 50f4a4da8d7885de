/* unixsock.c: Unix stream sockets for the local control channel, with peer credentials. */
#include "unixsock.h"

#include "cleanup.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

static int fill_addr(const char *path, struct sockaddr_un *sa) {
        memset(sa, 0, sizeof(*sa));
        sa->sun_family = AF_UNIX;
        if (strlen(path) >= sizeof(sa->sun_path))
                return -ENAMETOOLONG;
        strcpy(sa->sun_path, path);
        return 0;
}

int plat_unix_probe(const char *path, struct plat_peer *ret_peer) {
        _cleanup_close_ int fd = -1;
        struct sockaddr_un sa;
        struct stat st;
        int r;

        r = fill_addr(path, &sa);
        if (r < 0)
                return r;
        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode))
                return 0;
        /* Non-blocking: a listener whose backlog is full answers EAGAIN, and is live all the same. */
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                if (errno == ECONNREFUSED || errno == ENOENT)
                        return 0; /* stale: nobody listens */
                if (errno != EAGAIN)
                        return -errno;
                *ret_peer = (struct plat_peer){ .pid = 0, .uid = st.st_uid, .gid = st.st_gid };
                return 1;
        }
        r = plat_unix_peer(fd, ret_peer);
        return r < 0 ? r : 1;
}

int plat_unix_listen(const char *path, mode_t mode, int backlog) {
        _cleanup_close_ int fd = -1;
        struct sockaddr_un sa;
        struct plat_peer peer;
        struct stat st;
        int r;

        r = fill_addr(path, &sa);
        if (r < 0)
                return r;
        if (lstat(path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode))
                        return -EEXIST;
                /* Only a stale socket is replaced: a live one is another process's. */
                r = plat_unix_probe(path, &peer);
                if (r != 0)
                        return r > 0 ? -EADDRINUSE : r;
                if (unlink(path) < 0)
                        return -errno;
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return -errno;
        if (chmod(path, mode) < 0 || listen(fd, backlog) < 0) {
                r = -errno;
                unlink(path);
                return r;
        }
        return TAKE_FD(fd);
}

int plat_unix_connect(const char *path) {
        _cleanup_close_ int fd = -1;
        struct sockaddr_un sa;
        int r;

        r = fill_addr(path, &sa);
        if (r < 0)
                return r;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return -errno;
        return TAKE_FD(fd);
}

int plat_unix_peer(int fd, struct plat_peer *ret) {
        struct ucred uc;
        socklen_t len = sizeof(uc);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
                return -errno;
        *ret = (struct plat_peer){ .pid = uc.pid, .uid = uc.uid, .gid = uc.gid };
        return 0;
}

int plat_unix_peer_groups(int fd, gid_t **ret_groups, size_t *ret_n) {
        _cleanup_free_ gid_t *groups = NULL;
        socklen_t len = 64 * sizeof(gid_t);

        /* A first guess; ERANGE says how much is needed (the groups are fixed: one retry does). */
        for (int attempt = 0; attempt < 2; attempt++) {
                gid_t *g = realloc(groups, len ? len : sizeof(gid_t));

                if (!g)
                        return -ENOMEM;
                groups = g;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0) {
                        size_t n = len / sizeof(gid_t);

                        *ret_n = n;
                        *ret_groups = n ? TAKE_PTR(groups) : NULL;
                        return 0;
                }
                if (errno != ERANGE)
                        return -errno;
        }
        return -ERANGE;
}
