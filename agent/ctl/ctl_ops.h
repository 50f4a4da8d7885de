/* ctl_ops.h: render-agentctl's commands that are control ops, and its --help, both read from the ops
 * table (control/ops.h): a command for each op that names one, with that op's argument shape and help. */
#pragma once

#include "ops.h"

#include <stdio.h>

#define CTL_DEFAULT_SOCKET "/run/render-agent/agent.sock"

/* The op whose render-agentctl command is `name` ("client-lost"), or NULL (not an op's command:
 * top, doctor, ... or nothing at all). */
const struct ops_entry *ctl_ops_find(const char *name);

/* render-agentctl's --help: every op's command with its arguments and help, grouped as reads and
 * session changes, and the commands of its own. */
void ctl_ops_usage(FILE *f);
