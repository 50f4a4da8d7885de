/* authz.h: who on the control socket may change sessions, and who may read who is using them. */
#pragma once

#include "config.h"
#include "unixsock.h"

#include <cjson/cJSON.h>
#include <stdbool.h>

/* Whether the peer's uid (user:, uid: entries), primary gid or one of its supplementary groups
 * (group:, gid: entries) is in `list`: the groups the kernel recorded when it connected, never
 * looked up by pid (a pid can be reused by another process). NULL peer: false. */
bool authz_listed(const struct cfg_allow *list, const struct plat_peer *p);

/* May change sessions: root, the agent's own user, or control.allow. NULL peer: false. */
bool authz_may_change(const struct cfg *c, const struct plat_peer *p);

/* May read user ids and client addresses: every peer while control.read is not set (the socket's
 * group and mode decide, as before control.read existed); else root, the agent's own user,
 * control.allow and control.read. NULL peer: false. */
bool authz_may_read_personal(const struct cfg *c, const struct plat_peer *p);

/* Takes what says who uses a slot out of a read's result, for a peer that may not read it: every
 * "user" and "client_ip" member at any depth (players, viewers, reservations), and adds
 * "redacted": true so that a missing user is never taken for a free slot. */
void authz_redact(cJSON *res);
