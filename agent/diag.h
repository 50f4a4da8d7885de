/* diag.h: the local control socket: JSON lines in, JSON lines out, for render-agentctl. */
#pragma once

#include "unixsock.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <systemd/sd-event.h>

#define DIAG_MAX_LINE (64 * 1024)
#define DIAG_MAX_CLIENTS 64
#define DIAG_IDLE_TIMEOUT_USEC (60 * 1000 * 1000ULL)

struct diag;

/* Answers one request. On success returns an object whose members are merged into the reply
 * next to "id" and "ok" (the diag module frees it). On failure returns NULL with *ret_code set
 * to a stable code ("BAD_REQUEST", "FORBIDDEN", ...) and msg filled. */
typedef cJSON *(*diag_handler_fn)(const char *op, const cJSON *req, const struct plat_peer *peer,
                                  void *userdata, const char **ret_code, char *msg, size_t msglen);

/* Listens on `path` (mode 0660; the parent directory is created 0755 when missing). */
int diag_new(sd_event *e, const char *path, diag_handler_fn fn, void *userdata, struct diag **ret);
void diag_free(struct diag *d);

/* Answers one request line (no newline) as a reply line (caller frees, no newline); used by the
 * socket clients and by tests and the fuzzer directly. */
char *diag_handle_line(const char *line, size_t len, const struct plat_peer *peer, diag_handler_fn fn,
                       void *userdata);
