/* ctl_cmds.h: render-agentctl commands that work without a running agent: enroll and verify. */
#pragma once

/* Each takes the command's own arguments (argv[0] is the command's name) and returns the process's
 * exit status: 0 ok, 1 a failure found or the work refused, 2 usage. They print to stdout/stderr. */

/* enroll [--config PATH] [--node ID] [--dir DIR] [--force]: makes the device key DIR/device.key
 * (P-256, mode 0600; an existing key is kept unless --force) and DIR/device.csr (CN = node id). */
int ctl_enroll(int argc, char **argv);

/* verify [--cert FILE | --key FILE] [--json] [FILE|-]: checks a stream of metering records, one
 * JWS per line: signatures, per-node seq gaps and duplicates, and the hash chain. */
int ctl_verify(int argc, char **argv);
