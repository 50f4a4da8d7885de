/* ops.c: the table of control ops (ops.h). */
#include "ops.h"

#include "cleanup.h"

#include <stdio.h>
#include <string.h>

#define TARGET_REASON "TARGET [--reason R]"

/* Indexed by id: the designated initializers keep each entry at its id whatever the order here. */
static const struct ops_entry table[] = {
        [OP_STATUS] = { OP_STATUS, "status", OPS_BY_AGENT, false, true, OPS_CTL_PLAIN, "status", "",
                        "version, uptime, broker link, sampling, sessions and slots" },
        [OP_SPEC] = { OP_SPEC, "spec", OPS_BY_AGENT, false, false, OPS_CTL_PLAIN, "spec", "",
                      "the scale catalog, and each slot's plan and usage" },
        [OP_TELEMETRY] = { OP_TELEMETRY, "telemetry", OPS_BY_AGENT, false, false, OPS_CTL_NONE, NULL, "",
                           "the last sample, as published (render-agentctl top's)" },
        [OP_EVENTS] = { OP_EVENTS, "events", OPS_BY_EVENTS, false, false, OPS_CTL_OWN, "events",
                        "[--since SECONDS|TIME] [--follow]",
                        "recent events (sessions, alarms, over-cap), then live ones" },
        [OP_SLOTS] = { OP_SLOTS, "slots", OPS_BY_SESSIONS, false, false, OPS_CTL_PLAIN, "slots", "",
                       "every slot: state, user, session, deadlines, viewers" },
        [OP_SESSIONS] = { OP_SESSIONS, "sessions", OPS_BY_SESSIONS, false, false, OPS_CTL_PLAIN, "sessions",
                          "", "every held session with its viewers and bytes" },
        [OP_RESERVE] = { OP_RESERVE, "reserve", OPS_BY_SESSIONS, true, false, OPS_CTL_USER, "reserve",
                         "USER [--slot SLOT] [--client-ip IP] [--project P] [--app A]",
                         "book a slot for USER; it lapses unless started in time" },
        [OP_START] = { OP_START, "start", OPS_BY_SESSIONS, true, false, OPS_CTL_TARGET, "start", "TARGET",
                       "the reserved session starts streaming" },
        [OP_HEARTBEAT] = { OP_HEARTBEAT, "heartbeat", OPS_BY_SESSIONS, true, false, OPS_CTL_TARGET,
                           "heartbeat", "TARGET [--input]",
                           "the session is alive (--input: its user is active)" },
        [OP_CLIENT_LOST] = { OP_CLIENT_LOST, "client_lost", OPS_BY_SESSIONS, true, false, OPS_CTL_TARGET,
                             "client-lost", "TARGET", "the client went away: the reconnect window opens" },
        [OP_END] = { OP_END, "end", OPS_BY_SESSIONS, true, false, OPS_CTL_TARGET, "end", TARGET_REASON,
                     "the session ends" },
        [OP_DISCONNECT] = { OP_DISCONNECT, "disconnect", OPS_BY_SESSIONS, true, true, OPS_CTL_TARGET,
                            "disconnect", TARGET_REASON, "an operator ends the session (enforced)" },
        [OP_RELEASE] = { OP_RELEASE, "release", OPS_BY_SESSIONS, true, false, OPS_CTL_TARGET, "release",
                         "TARGET", "give back an ending slot whose enforcement keeps failing" },
        [OP_VIEWER_JOIN] = { OP_VIEWER_JOIN, "viewer_join", OPS_BY_SESSIONS, true, false, OPS_CTL_TARGET,
                             "viewer-join", "TARGET --viewer V [--role R]",
                             "a viewer joins the session, or changes its role" },
        [OP_VIEWER_LEAVE] = { OP_VIEWER_LEAVE, "viewer_leave", OPS_BY_SESSIONS, true, false, OPS_CTL_TARGET,
                              "viewer-leave", "TARGET --viewer V", "a viewer leaves the session" },
        [OP_REPORT_BYTES] = { OP_REPORT_BYTES, "report_bytes", OPS_BY_SESSIONS, true, false, OPS_CTL_NONE,
                              NULL, "", "the streaming process's byte counters for its session" },
        [OP_DRAIN] = { OP_DRAIN, "drain", OPS_BY_SESSIONS, true, true, OPS_CTL_PLAIN, "drain", "",
                       "stop taking new users on this node" },
        [OP_UNDRAIN] = { OP_UNDRAIN, "undrain", OPS_BY_SESSIONS, true, true, OPS_CTL_PLAIN, "undrain", "",
                         "take new users again" },
        [OP_UNBLOCK] = { OP_UNBLOCK, "unblock", OPS_BY_SESSIONS, true, false, OPS_CTL_SLOT, "unblock",
                         "SLOT", "free a slot blocked after unreadable state (check it first)" },
};

_Static_assert(ELEMENTSOF(table) == OPS_COUNT, "ops.c: an op of enum ops_id has no entry");

const struct ops_entry *ops_find(const char *name) {
        for (size_t i = 0; name && i < ELEMENTSOF(table); i++)
                if (!strcmp(name, table[i].name))
                        return &table[i];
        return NULL;
}

const struct ops_entry *ops_get(enum ops_id id) {
        return (unsigned)id < ELEMENTSOF(table) ? &table[id] : NULL;
}

/* The names of the ops `mqtt_only` selects (every op, or those an MQTT command may send), in the
 * table's order, comma-separated into buf. */
static const char *names_into(char *buf, size_t size, bool mqtt_only) {
        if (!buf[0])
                for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                        size_t n = strlen(buf);

                        if (!mqtt_only || table[i].mqtt)
                                snprintf(buf + n, size - n, "%s%s", n ? ", " : "", table[i].name);
                }
        return buf;
}

const char *ops_names(void) {
        static char names[256];

        return names_into(names, sizeof(names), false);
}

const char *ops_mqtt_names(void) {
        static char names[128];

        return names_into(names, sizeof(names), true);
}
