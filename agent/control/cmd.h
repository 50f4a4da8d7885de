/* cmd.h: MQTT commands on .../cmd: which ops a central operator may send, and the reply to one payload. */
#pragma once

#include "diag.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A command payload is one JSON request line (docs/protocol.md); a longer one is refused. */
#define CMD_PAYLOAD_MAX DIAG_MAX_LINE

/* A command's "id", as JSON text, is remembered after the command was carried out so that a
 * repeat of it is not run again: the last CMD_SEEN_MAX ids, each at most CMD_ID_MAX bytes. */
#define CMD_ID_MAX 128
#define CMD_SEEN_MAX 256

/* Messages that get no reply (retained, or a response topic the agent does not publish on) are
 * logged at most CMD_LOG_BURST times per CMD_LOG_WINDOW_USEC; the rest are counted and said. */
#define CMD_LOG_BURST 5
#define CMD_LOG_WINDOW_USEC (60 * 1000 * 1000ULL)

struct cmd_log_limit {
        uint64_t window_start; /* monotonic usec */
        unsigned n;            /* lines logged in this window */
        uint64_t suppressed;   /* lines not logged since the last one that was */
};

/* What the command channel remembers between messages. Zero-initialised: nothing seen. */
struct cmd_state {
        char seen[CMD_SEEN_MAX][CMD_ID_MAX + 1]; /* ids carried out; the oldest is overwritten */
        size_t n_seen, next_seen;
        struct cmd_log_limit dropped;
};

/* One message as it arrived on the node's cmd topic (everything borrowed). */
struct cmd_message {
        const void *payload; /* may be NULL when len is 0 (libmosquitto gives an empty payload so) */
        size_t len;
        bool retain;                /* the broker kept it: it is not a command sent now */
        const char *response_topic; /* MQTT 5; NULL when none */
};

/* Whether `op` is taken over MQTT (the ops table's mqtt: status, disconnect, drain, undrain). The broker's
 * ACL decides who may publish on .../cmd; everything else (reserve, start, end ...) is the control socket's.
 */
bool cmd_allowed(const char *op);

/* Answers one command payload (len bytes, no NUL needed; payload may be NULL when len is 0) as a
 * reply line (caller frees; NULL only when out of memory). An op cmd_allowed() refuses gets
 * FORBIDDEN and never reaches `dispatch`; the others are handed to it with a NULL peer. With a
 * state (may be NULL): a command whose "id" was carried out before gets DUPLICATE and one past its
 * "expires" (unix seconds) gets EXPIRED, neither reaching `dispatch`. *ret_held (may be NULL): the
 * reply acknowledges a change that is not on disk yet (see diag_handler_fn). */
char *cmd_handle_payload(struct cmd_state *state, const void *payload, size_t len, diag_handler_fn dispatch,
                         void *userdata, bool *ret_held);

/* Whether the agent replies on `topic`: the node's reply topic `reply_base` (.../cmd/reply) or a
 * topic below it; never one of its own other topics (metering, status, events, telemetry). */
bool cmd_reply_topic_ok(const char *reply_base, const char *topic);

/* One message on the cmd topic. Returns 1 with *ret_reply (the reply tree, caller frees) and
 * *ret_topic (where to publish it: m->response_topic, else reply_base; borrowed from those); 0 when
 * the message is dropped without a reply and without running anything (retained, or a response
 * topic that is not below reply_base: logged, rate-limited); -ENOMEM. *ret_held as
 * cmd_handle_payload's. */
int cmd_handle_message(struct cmd_state *state, const struct cmd_message *m, const char *reply_base,
                       diag_handler_fn dispatch, void *userdata, cJSON **ret_reply, const char **ret_topic,
                       bool *ret_held);

/* Forgets that the command with this "id" was carried out: its change was undone (the state could
 * not be written), so the same command may be sent again. NULL or an unknown id: nothing. */
void cmd_forget(struct cmd_state *state, const cJSON *id);
