/* ops.c: the table of control ops (ops.h). */
#include "ops.h"

#include "cleanup.h"

#include <stdio.h>
#include <string.h>

static const struct ops_entry table[] = {
        { "status", OPS_AGENT, false, true },          { "spec", OPS_AGENT, false, false },
        { "telemetry", OPS_AGENT, false, false },      { "events", OPS_EVENTS, false, false },
        { "slots", OPS_SESSIONS, false, false },       { "sessions", OPS_SESSIONS, false, false },
        { "reserve", OPS_SESSIONS, true, false },      { "start", OPS_SESSIONS, true, false },
        { "heartbeat", OPS_SESSIONS, true, false },    { "client_lost", OPS_SESSIONS, true, false },
        { "end", OPS_SESSIONS, true, false },          { "disconnect", OPS_SESSIONS, true, true },
        { "release", OPS_SESSIONS, true, false },      { "viewer_join", OPS_SESSIONS, true, false },
        { "viewer_leave", OPS_SESSIONS, true, false }, { "report_bytes", OPS_SESSIONS, true, false },
        { "drain", OPS_SESSIONS, true, true },         { "undrain", OPS_SESSIONS, true, true },
        { "unblock", OPS_SESSIONS, true, false },
};

const struct ops_entry *ops_find(const char *name) {
        for (size_t i = 0; name && i < ELEMENTSOF(table); i++)
                if (!strcmp(name, table[i].name))
                        return &table[i];
        return NULL;
}

const char *ops_names(void) {
        static char names[256];

        if (!names[0])
                for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                        size_t n = strlen(names);

                        snprintf(names + n, sizeof(names) - n, "%s%s", i ? ", " : "", table[i].name);
                }
        return names;
}
