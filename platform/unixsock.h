/* unixsock.h: Unix stream sockets for the local control channel, with peer credentials. */
#pragma once

#include <sys/types.h>

struct plat_peer {
        pid_t pid;
        uid_t uid;
        gid_t gid;
};

/* Binds and listens on `path` (non-blocking, CLOEXEC), replacing a stale socket left by a
 * previous run but never a file of another type. Returns the fd or -errno. */
int plat_unix_listen(const char *path, mode_t mode, int backlog);

/* Connects to `path` (blocking, CLOEXEC). Returns the fd or -errno. */
int plat_unix_connect(const char *path);

/* SO_PEERCRED of a connected socket. */
int plat_unix_peer(int fd, struct plat_peer *ret);
