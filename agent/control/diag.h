/* diag.h: the local control socket: JSON lines in, JSON lines out, for render-agentctl. */
#pragma once

#include "unixsock.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

#define DIAG_MAX_LINE (64 * 1024)
#define DIAG_MAX_CLIENTS 64
/* Of DIAG_MAX_CLIENTS, the connections only peers that may change sessions may take: a read-only
 * peer (any socket-group member) can never fill the socket for the orchestrator. */
#define DIAG_RESERVED_CLIENTS 16
/* Connections one uid that may not change sessions holds at once, when the admit callback is NULL. */
#define DIAG_DEFAULT_PER_UID 8
#define DIAG_IDLE_TIMEOUT_USEC (60 * 1000 * 1000ULL)
/* A request line must be complete this long after its first byte came, however it trickles in. */
#define DIAG_LINE_TIMEOUT_USEC (5 * 1000 * 1000ULL)

struct diag;
struct held;

/* Answers one request. On success returns an object whose members are merged into the reply
 * next to "id" and "ok" (the diag module frees it), and sets *ret_held when the reply
 * acknowledges a change that is not on disk yet: it waits in the held queue (held.h) for the next
 * held_committed. On
 * failure returns NULL with *ret_code set to a stable code ("BAD_REQUEST", "FORBIDDEN", ...) and
 * msg filled. */
typedef cJSON *(*diag_handler_fn)(const char *op, const cJSON *req, const struct plat_peer *peer,
                                  void *userdata, bool *ret_held, const char **ret_code, char *msg,
                                  size_t msglen);

/* Asked once per connection, at accept, with the peer as the kernel recorded it: how many
 * connections that peer's uid may hold at once, or DIAG_ADMIT_PRIVILEGED for a peer that may
 * change sessions (no limit per uid, and the DIAG_RESERVED_CLIENTS are open to it). */
typedef unsigned (*diag_admit_fn)(const struct plat_peer *peer, void *userdata);
#define DIAG_ADMIT_PRIVILEGED UINT_MAX

/* Listens on `path` (mode 0660; the parent directory is created 0755 when missing). `admit` may
 * be NULL: every peer is then limited to DIAG_DEFAULT_PER_UID and kept out of the reserve. Held
 * replies wait in `held` (borrowed, required; the queue MQTT command replies share), each client a
 * destination of its own, released by held_committed; a client that closes drops its own. A
 * client that shuts its side down (shutdown(SHUT_WR)) still gets every reply to what it sent
 * before, held ones at the next held_committed, and is closed after the last. Request lines are
 * read strictly (agent/json/jsonstrict.h): a key twice, data after the object, bytes that are not UTF-8
 * or an "id" with control characters get BAD_REQUEST with a null id and reach no handler. */
int diag_new(sd_event *e, const char *path, diag_handler_fn fn, diag_admit_fn admit, struct held *held,
             void *userdata, struct diag **ret);
/* Serves an already listening socket fd (systemd socket activation; takes ownership of the fd);
 * its file is systemd's and is not unlinked at free. */
int diag_new_fd(sd_event *e, int fd, diag_handler_fn fn, diag_admit_fn admit, struct held *held,
                void *userdata, struct diag **ret);
void diag_free(struct diag *d);

/* Events not yet read by a follower, past which it is dropped (see diag_publish). */
#define DIAG_FOLLOW_MAX_OUT (64 * 1024)

/* How many connections follow events now. A reply whose members include "following": true turns
 * its connection into a follower (with "redacted": true as well, a redacted one): it is no longer
 * closed for sending nothing, and diag_publish streams to it. */
unsigned diag_followers(const struct diag *d);
/* Queues one line (no newline; copied) to every follower, `redacted` to redacted ones (NULL:
 * they miss it), and never waits: a follower with more than DIAG_FOLLOW_MAX_OUT unread gets a
 * last {"type":"dropped","message":...} line instead and is closed once it is sent, or after 1 s. */
void diag_publish(struct diag *d, const char *line, const char *redacted);

/* Answers one request line (no newline) as a reply tree (caller frees; NULL only when out of
 * memory). *ret_held (may be NULL): as diag_handler_fn's. */
cJSON *diag_handle_request(const char *line, size_t len, const struct plat_peer *peer, diag_handler_fn fn,
                           void *userdata, bool *ret_held);
/* diag_handle_request's reply printed as a line (caller frees, no newline); used by tests and the
 * fuzzer directly. */
char *diag_handle_line(const char *line, size_t len, const struct plat_peer *peer, diag_handler_fn fn,
                       void *userdata, bool *ret_held);
