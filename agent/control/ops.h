/* ops.h: the one list of control ops. Each op's name, the module that answers it, whether it changes
 * sessions (only root, the agent's user and control.allow may send it on the socket) and whether an
 * MQTT command may carry it. The socket, MQTT commands and the unknown-op message read it; nothing
 * else lists ops. */
#pragma once

#include <stdbool.h>

enum ops_owner {
        OPS_AGENT,    /* status, spec, telemetry: agent.c */
        OPS_EVENTS,   /* events: evhist.c (socket only: it streams) */
        OPS_SESSIONS, /* sessions.c: the slots and their sessions */
};

struct ops_entry {
        const char *name;
        enum ops_owner owner;
        bool mutates; /* changes sessions */
        bool mqtt;    /* an MQTT command may send it */
};

/* The op named `name`, or NULL. */
const struct ops_entry *ops_find(const char *name);

/* "status, spec, ...": every op, in the table's order, for messages. Static storage. */
const char *ops_names(void);
