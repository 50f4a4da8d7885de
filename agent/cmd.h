/* cmd.h: MQTT commands on .../cmd: which ops a central operator may send, and the reply to one payload. */
#pragma once

#include "diag.h"

#include <stdbool.h>
#include <stddef.h>

/* A command payload is one JSON request line (docs/protocol.md); a longer one is refused. */
#define CMD_PAYLOAD_MAX DIAG_MAX_LINE

/* Whether `op` is taken over MQTT: disconnect, drain, undrain, status. The broker's ACL decides
 * who may publish on .../cmd; everything else (reserve, start, end ...) is the control socket's. */
bool cmd_allowed(const char *op);

/* Answers one command payload (len bytes, no NUL needed) as a reply line (caller frees; NULL only
 * when out of memory). An op cmd_allowed() refuses gets FORBIDDEN and never reaches `dispatch`;
 * the others are handed to it with a NULL peer. *ret_held (may be NULL): the reply acknowledges a
 * change that is not on disk yet (see diag_handler_fn). */
char *cmd_handle_payload(const void *payload, size_t len, diag_handler_fn dispatch, void *userdata,
                         bool *ret_held);
