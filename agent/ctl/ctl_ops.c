/* ctl_ops.c: render-agentctl's commands that are control ops, and its --help (ctl_ops.h). */
#include "ctl_ops.h"

#include <string.h>

/* The column of a command's help in --help; a command with longer arguments has it on the next line. */
#define HELP_COLUMN 25

const struct ops_entry *ctl_ops_find(const char *name) {
        for (int id = 0; name && id < OPS_COUNT; id++) {
                const struct ops_entry *e = ops_get(id);

                if (e->ctl && !strcmp(e->ctl, name))
                        return e;
        }
        return NULL;
}

/* The commands of the ops that change sessions (`mutates`), or of those that do not. */
static void print_ops(FILE *f, bool mutates) {
        for (int id = 0; id < OPS_COUNT; id++) {
                const struct ops_entry *e = ops_get(id);
                int n;

                if (!e->ctl || e->mutates != mutates)
                        continue;
                n = fprintf(f, "  %s%s%s", e->ctl, *e->ctl_usage ? " " : "", e->ctl_usage);
                if (n >= HELP_COLUMN) {
                        fputc('\n', f);
                        n = 0;
                }
                fprintf(f, "%*s%s\n", HELP_COLUMN - n, "", e->help);
        }
}

void ctl_ops_usage(FILE *f) {
        fprintf(f, "Usage: render-agentctl [--socket PATH] [--json] COMMAND [ARGS]\n"
                   "Field diagnostics and session control for render-agent.\n\n"
                   "Diagnostics:\n");
        print_ops(f, false);
        fprintf(f, "  top                    live view of the host and each slot against its scale\n"
                   "                         (keys: c m g b s sort, q quits; a table once if not a tty)\n"
                   "  bundle [-o FILE] [--config PATH] [--journal-lines N] [--records N]\n"
                   "                         one tar.gz for a support ticket: no key, no secret\n"
                   "  doctor [--config PATH] [--warn-days N]\n"
                   "                         every check a technician would run: PASS / WARN / FAIL,\n"
                   "                         evidence and fix (exit 0 / 1 / 2); works without an agent\n\n"
                   "Sessions (TARGET: --session ID, --user USER or --slot SLOT; a bare word is a\n"
                   "session id when it is 32 hex digits, else a user):\n");
        print_ops(f, true);
        fprintf(f, "\nWithout an agent:\n"
                   "  enroll [--config PATH] [--node ID] [--dir DIR] [--force]\n"
                   "                         make the device key (0600) and a CSR (CN = node id)\n"
                   "  verify [--cert FILE | --key FILE] [--json] [FILE|-]\n"
                   "                         check metering records: signatures, seq gaps, duplicates, "
                   "chain\n\n"
                   "Options:\n"
                   "  -s, --socket PATH   control socket (default " CTL_DEFAULT_SOCKET
                   ", or $RENDER_AGENT_SOCKET)\n"
                   "  -j, --json          print the agent's JSON reply as is\n"
                   "  -h, --help          this text\n\n"
                   "Exit status: 0 ok, 1 the agent refused the request, 2 usage, 3 agent unreachable,\n"
                   "4 no capacity (NO_IDLE, DRAINING, STOPPING: try another node), 5 SLOW_DOWN (retry).\n");
}
