/* unixsock.h: Unix stream sockets for the local control channel, with peer credentials. */
#pragma once

#include <sys/types.h>

/* Who is on the other end of a connection, as the kernel recorded it when the peer connected:
 * these never change afterwards, whatever the process that connected does or whoever later holds
 * its pid (pid is for logs only: never look a peer up by it). */
struct plat_peer {
        pid_t pid;
        uid_t uid;
        gid_t gid;
        const gid_t *groups; /* supplementary groups (SO_PEERGROUPS); borrowed; NULL when n_groups is 0 */
        size_t n_groups;
};

/* Whether a process listens on the socket at `path`: 1 (its credentials in *ret_peer; pid 0 when
 * its backlog is full and the socket file's owner stands for it), 0 when there is no socket there
 * or a stale one nobody listens on, or -errno when it cannot be told (EACCES). */
int plat_unix_probe(const char *path, struct plat_peer *ret_peer);

/* Binds and listens on `path` (non-blocking, CLOEXEC), replacing a stale socket left by a
 * previous run but never a live one (-EADDRINUSE: another process listens there) nor a file of
 * another type (-EEXIST). Returns the fd or -errno. */
int plat_unix_listen(const char *path, mode_t mode, int backlog);

/* Connects to `path` (blocking, CLOEXEC). Returns the fd or -errno. */
int plat_unix_connect(const char *path);

/* SO_PEERCRED of a connected socket (pid, uid, primary gid; groups left empty). */
int plat_unix_peer(int fd, struct plat_peer *ret);

/* SO_PEERGROUPS of a connected socket: the supplementary groups the peer had when it connected
 * (Linux 4.13+; -ENOPROTOOPT before). *ret_groups is the caller's to free (NULL when there are
 * none); both out-params are written only on success. */
int plat_unix_peer_groups(int fd, gid_t **ret_groups, size_t *ret_n);
