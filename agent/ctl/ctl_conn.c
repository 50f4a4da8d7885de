/* ctl_conn.c: render-agentctl's connection to the agent's control socket: JSON lines both ways. */
#include "ctl_conn.h"

#include "cleanup.h"
#include "clock.h"
#include "unixsock.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int ctl_conn_open(const char *path, struct ctl_conn *ret) {
        int fd = plat_unix_connect(path);

        if (fd < 0)
                return fd;
        *ret = (struct ctl_conn){ .fd = fd };
        return 0;
}

void ctl_conn_close(struct ctl_conn *c) {
        if (c->fd >= 0)
                close(c->fd);
        free(c->buf);
        *c = (struct ctl_conn){ .fd = -1 };
}

int ctl_conn_send(struct ctl_conn *c, const char *line) {
        size_t n = strlen(line);

        if (send(c->fd, line, n, MSG_NOSIGNAL) != (ssize_t)n || send(c->fd, "\n", 1, MSG_NOSIGNAL) != 1)
                return -errno;
        return 0;
}

/* A complete line from the buffer, if there is one. */
static int take_line(struct ctl_conn *c, char **ret) {
        char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL, *line;
        size_t n;

        if (!nl)
                return 0;
        n = (size_t)(nl - c->buf);
        line = strndup(c->buf, n);
        if (!line)
                return -ENOMEM;
        memmove(c->buf, nl + 1, c->len - n - 1);
        c->len -= n + 1;
        *ret = line;
        return 1;
}

int ctl_conn_read_line(struct ctl_conn *c, int timeout_ms, char **ret) {
        uint64_t deadline = plat_now_mono_usec() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000;

        for (;;) {
                struct pollfd p = { .fd = c->fd, .events = POLLIN };
                int r = take_line(c, ret), wait_ms = -1;
                ssize_t k;

                if (r != 0)
                        return r < 0 ? r : 0;
                if (c->len + 65536 > c->cap) {
                        char *nb;

                        if (c->cap >= CTL_CONN_MAX_LINE)
                                return -EMSGSIZE;
                        nb = realloc(c->buf, c->cap ? c->cap * 2 : 65536);
                        if (!nb)
                                return -ENOMEM;
                        c->buf = nb;
                        c->cap = c->cap ? c->cap * 2 : 65536;
                }
                if (timeout_ms >= 0) {
                        uint64_t now = plat_now_mono_usec();

                        wait_ms = now >= deadline ? 0 : (int)((deadline - now + 999) / 1000);
                }
                r = poll(&p, 1, wait_ms);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r == 0)
                        return -ETIMEDOUT;
                k = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        return -ECONNRESET;
                c->len += (size_t)k;
        }
}

int ctl_conn_query(struct ctl_conn *c, const char *op, cJSON **ret) {
        _cleanup_free_ char *line = NULL;
        char req[128];
        cJSON *reply;
        int r;

        snprintf(req, sizeof(req), "{\"id\":1,\"op\":\"%s\"}", op);
        r = ctl_conn_send(c, req);
        if (r < 0)
                return r;
        r = ctl_conn_read_line(c, 10000, &line);
        if (r < 0)
                return r;
        reply = cJSON_Parse(line);
        if (!reply)
                return -EPROTO;
        *ret = reply;
        return 0;
}

int ctl_conn_roundtrip(const char *path, const char *req, char **ret) {
        struct ctl_conn c;
        int r = ctl_conn_open(path, &c);

        if (r < 0)
                return r;
        r = ctl_conn_send(&c, req);
        if (r >= 0)
                r = ctl_conn_read_line(&c, -1, ret);
        ctl_conn_close(&c);
        return r;
}

const char *ctl_str(const cJSON *o, const char *k) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

        return cJSON_IsString(v) ? v->valuestring : "-";
}

double ctl_num(const cJSON *o, const char *k) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

        return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

void ctl_bar(char *buf, size_t len, double pct) {
        int n = 10, filled = (int)(pct / 10 + 0.5);

        if (len < 14)
                return;
        if (filled > n)
                filled = n;
        if (filled < 0)
                filled = 0;
        buf[0] = '[';
        for (int i = 0; i < n; i++)
                buf[1 + i] = i < filled ? '#' : '-';
        buf[n + 1] = ']';
        buf[n + 2] = pct > 100 ? '!' : ' ';
        buf[n + 3] = '\0';
}
