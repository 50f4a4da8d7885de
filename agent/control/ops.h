/* ops.h: the one list of control ops. Each op once, with all its users need: its id and wire name, the
 * module that answers it, whether it changes sessions (only root, the agent's user and control.allow
 * may send it on the socket), whether an MQTT command may carry it, and its render-agentctl command
 * (name, argument shape, one line of help). The socket, MQTT commands, the unknown-op message, the
 * daemon's dispatch (an array of handlers indexed by the id) and render-agentctl's commands and --help
 * read it; nothing else lists ops. */
#pragma once

#include <stdbool.h>

/* Every op, in the table's order (the unknown-op message and --help list them so). */
enum ops_id {
        OP_STATUS,
        OP_SPEC,
        OP_TELEMETRY,
        OP_EVENTS,
        OP_SLOTS,
        OP_SESSIONS,
        OP_RESERVE,
        OP_START,
        OP_HEARTBEAT,
        OP_CLIENT_LOST,
        OP_END,
        OP_DISCONNECT,
        OP_RELEASE,
        OP_VIEWER_JOIN,
        OP_VIEWER_LEAVE,
        OP_REPORT_BYTES,
        OP_DRAIN,
        OP_UNDRAIN,
        OP_UNBLOCK,
        OPS_COUNT,
};

/* Who answers an op (the daemon binds each id to its handler: daemon/agent_control.c). */
enum ops_owner {
        OPS_BY_AGENT,    /* status, spec, telemetry: the daemon's documents */
        OPS_BY_EVENTS,   /* events: evhist.c (socket only: it streams) */
        OPS_BY_SESSIONS, /* the session service: the slots and their sessions */
};

/* How render-agentctl takes an op's arguments (ctl/ctl.c). */
enum ops_ctl {
        OPS_CTL_NONE,   /* no render-agentctl command: telemetry is top's, report_bytes the streamer's */
        OPS_CTL_PLAIN,  /* options only */
        OPS_CTL_TARGET, /* TARGET: a bare session id (32 hex digits) or user, --session, --user, --slot */
        OPS_CTL_USER,   /* USER first (reserve) */
        OPS_CTL_SLOT,   /* SLOT first (unblock) */
        OPS_CTL_OWN,    /* a command of its own in render-agentctl (events: it streams) */
};

struct ops_entry {
        enum ops_id id;
        const char *name; /* on the wire */
        enum ops_owner owner;
        bool mutates; /* changes sessions */
        bool mqtt;    /* an MQTT command may send it */
        enum ops_ctl ctl_args;
        const char *ctl;       /* render-agentctl's command; NULL with OPS_CTL_NONE */
        const char *ctl_usage; /* its arguments as --help shows them, "" for none */
        const char *help;      /* what it does, one line */
};

/* The op named `name` (its wire name), or NULL. */
const struct ops_entry *ops_find(const char *name);
/* The op `id`; NULL past OPS_COUNT. */
const struct ops_entry *ops_get(enum ops_id id);

/* "status, spec, ...": every op, in the table's order, for messages. Static storage. */
const char *ops_names(void);
/* "status, disconnect, ...": the ops an MQTT command may send, in the table's order. Static storage. */
const char *ops_mqtt_names(void);
