/* ctl_conn.h: render-agentctl's connection to the agent's control socket: JSON lines both ways. */
#pragma once

#include <cjson/cJSON.h>
#include <stddef.h>

/* The longest line render-agentctl takes from the agent. */
#define CTL_CONN_MAX_LINE (4 * 1024 * 1024)

struct ctl_conn {
        int fd;
        char *buf; /* what was received and not returned as a line yet */
        size_t len, cap;
};

int ctl_conn_open(const char *path, struct ctl_conn *ret);
void ctl_conn_close(struct ctl_conn *c);

/* Sends `line` and a newline. */
int ctl_conn_send(struct ctl_conn *c, const char *line);

/* The next line without its newline (caller frees). timeout_ms < 0 waits as long as it takes;
 * -ETIMEDOUT when none came in time, -ECONNRESET when the agent closed the connection, -EMSGSIZE
 * for a line past CTL_CONN_MAX_LINE. */
int ctl_conn_read_line(struct ctl_conn *c, int timeout_ms, char **ret);

/* Sends {"id":1,"op":op} and returns the parsed reply (caller frees), whether ok or not. */
int ctl_conn_query(struct ctl_conn *c, const char *op, cJSON **ret);

/* Connects, sends one request line and returns the reply line (caller frees). */
int ctl_conn_roundtrip(const char *path, const char *req, char **ret);

/* Member k of o: the string, or "-" when absent or not a string. */
const char *ctl_str(const cJSON *o, const char *k);
/* Member k of o: the number, or 0 when absent or not a number. */
double ctl_num(const cJSON *o, const char *k);

/* "[#####-----]" and a last character for a percentage: ' ', or '!' past 100 (the bar is full
 * then). buf needs 14 bytes; a shorter one is left as it is. */
void ctl_bar(char *buf, size_t len, double pct);
