/* diag.c: the local control socket: JSON lines in, JSON lines out, for render-agentctl. */
#include "diag.h"

#include "cleanup.h"
#include "log.h"

#include <errno.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define DIAG_MAX_OUT (1024 * 1024)

struct diag_client {
        struct diag *d;
        int fd;
        struct plat_peer peer;
        sd_event_source *io, *idle;
        char *in;
        size_t in_len;
        bool discarding; /* inside an oversized line: drop bytes up to its newline */
        char *out;
        size_t out_len, out_off;
        struct diag_client *next;
};

struct diag {
        sd_event *event;
        char *path;
        int fd;
        sd_event_source *listen_io;
        diag_handler_fn fn;
        void *userdata;
        struct diag_client *clients;
        unsigned n_clients;
};

static cJSON *error_reply(const cJSON *id, const char *code, const char *msg) {
        cJSON *r = cJSON_CreateObject(), *e;

        cJSON_AddItemToObject(r, "id", id ? cJSON_Duplicate(id, true) : cJSON_CreateNull());
        cJSON_AddFalseToObject(r, "ok");
        e = cJSON_AddObjectToObject(r, "error");
        cJSON_AddStringToObject(e, "code", code);
        cJSON_AddStringToObject(e, "message", msg);
        return r;
}

static char *print_reply(cJSON *r) {
        char *s = r ? cJSON_PrintUnformatted(r) : NULL;

        cJSON_Delete(r);
        return s;
}

char *diag_handle_line(const char *line, size_t len, const struct plat_peer *peer, diag_handler_fn fn,
                       void *userdata) {
        _cleanup_free_ char *copy = NULL;
        const cJSON *id, *op;
        const char *code = "INTERNAL";
        char msg[256] = "";
        cJSON *req, *res, *reply;

        if (len > DIAG_MAX_LINE)
                return print_reply(error_reply(NULL, "BAD_REQUEST", "request line longer than 65536 bytes"));
        if (memchr(line, '\0', len))
                return print_reply(error_reply(NULL, "BAD_REQUEST", "request contains a NUL byte"));
        copy = strndup(line, len);
        if (!copy)
                return NULL;
        req = cJSON_Parse(copy);
        if (!req || !cJSON_IsObject(req)) {
                cJSON_Delete(req);
                return print_reply(error_reply(NULL, "BAD_REQUEST", "request is not a JSON object"));
        }
        id = cJSON_GetObjectItemCaseSensitive(req, "id");
        op = cJSON_GetObjectItemCaseSensitive(req, "op");
        if (!cJSON_IsString(op)) {
                reply = error_reply(id, "BAD_REQUEST", "request has no \"op\" string");
                cJSON_Delete(req);
                return print_reply(reply);
        }
        res = fn(op->valuestring, req, peer, userdata, &code, msg, sizeof(msg));
        if (!res) {
                reply = error_reply(id, code, msg[0] ? msg : "request failed");
                cJSON_Delete(req);
                return print_reply(reply);
        }
        reply = cJSON_CreateObject();
        cJSON_AddItemToObject(reply, "id", id ? cJSON_Duplicate(id, true) : cJSON_CreateNull());
        cJSON_AddTrueToObject(reply, "ok");
        while (res->child) {
                cJSON *item = cJSON_DetachItemViaPointer(res, res->child);

                cJSON_AddItemToObject(reply, item->string, item);
        }
        cJSON_Delete(res);
        cJSON_Delete(req);
        return print_reply(reply);
}

static void client_free(struct diag_client *c) {
        struct diag_client **pp;

        for (pp = &c->d->clients; *pp; pp = &(*pp)->next)
                if (*pp == c) {
                        *pp = c->next;
                        break;
                }
        c->d->n_clients--;
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->idle);
        close(c->fd);
        free(c->in);
        free(c->out);
        free(c);
}

static int queue_out(struct diag_client *c, const char *s) {
        size_t n = strlen(s);
        char *nb;

        if (c->out_len - c->out_off + n + 1 > DIAG_MAX_OUT)
                return -ENOBUFS;
        if (c->out_off) {
                memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
                c->out_len -= c->out_off;
                c->out_off = 0;
        }
        nb = realloc(c->out, c->out_len + n + 1);
        if (!nb)
                return -ENOMEM;
        c->out = nb;
        memcpy(c->out + c->out_len, s, n);
        c->out[c->out_len + n] = '\n';
        c->out_len += n + 1;
        return 0;
}

static int flush_out(struct diag_client *c) {
        while (c->out_off < c->out_len) {
                ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);

                if (n < 0) {
                        if (errno == EAGAIN)
                                break;
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                c->out_off += (size_t)n;
        }
        return sd_event_source_set_io_events(c->io, EPOLLIN | (c->out_off < c->out_len ? EPOLLOUT : 0));
}

static int answer(struct diag_client *c, const char *line, size_t len) {
        _cleanup_free_ char *reply = diag_handle_line(line, len, &c->peer, c->d->fn, c->d->userdata);

        if (!reply)
                return -ENOMEM;
        return queue_out(c, reply);
}

/* Splits what arrived into lines; an oversized line gets an error reply and is skipped. */
static int process_input(struct diag_client *c) {
        size_t start = 0;
        int r;

        for (size_t i = 0; i < c->in_len; i++) {
                if (c->in[i] != '\n')
                        continue;
                if (!c->discarding && i > start) {
                        r = answer(c, c->in + start, i - start);
                        if (r < 0)
                                return r;
                }
                c->discarding = false;
                start = i + 1;
        }
        memmove(c->in, c->in + start, c->in_len - start);
        c->in_len -= start;
        if (c->in_len > DIAG_MAX_LINE) {
                if (!c->discarding) {
                        r = answer(c, c->in, c->in_len); /* yields the "too long" error */
                        if (r < 0)
                                return r;
                }
                c->discarding = true;
                c->in_len = 0;
        }
        return 0;
}

static int on_client_io(sd_event_source *s, int fd, uint32_t revents, void *ud) {
        struct diag_client *c = ud;
        uint64_t now;
        int r = 0;

        (void)s;
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t n = recv(fd, c->in + c->in_len, DIAG_MAX_LINE + 1 - c->in_len, MSG_DONTWAIT);

                if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                        client_free(c);
                        return 0;
                }
                if (n > 0) {
                        c->in_len += (size_t)n;
                        r = process_input(c);
                }
        }
        if (r >= 0)
                r = flush_out(c);
        if (r < 0) {
                log_debug("control client (pid %d) dropped: %s", (int)c->peer.pid, strerror(-r));
                client_free(c);
                return 0;
        }
        sd_event_now(c->d->event, CLOCK_MONOTONIC, &now);
        sd_event_source_set_time(c->idle, now + DIAG_IDLE_TIMEOUT_USEC);
        return 0;
}

static int on_client_idle(sd_event_source *s, uint64_t usec, void *ud) {
        (void)s;
        (void)usec;
        client_free(ud);
        return 0;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *ud) {
        struct diag *d = ud;
        struct diag_client *c;
        uint64_t now;
        int cfd;

        (void)s;
        (void)revents;
        cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
                return 0;
        if (d->n_clients >= DIAG_MAX_CLIENTS) {
                static const char busy[] = "{\"id\":null,\"ok\":false,\"error\":{\"code\":\"SLOW_DOWN\","
                                           "\"message\":\"too many control clients\"}}\n";
                (void)!send(cfd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
                close(cfd);
                return 0;
        }
        c = calloc(1, sizeof(*c));
        if (!c || !(c->in = malloc(DIAG_MAX_LINE + 1))) {
                free(c);
                close(cfd);
                return 0;
        }
        c->d = d;
        c->fd = cfd;
        (void)plat_unix_peer(cfd, &c->peer);
        c->next = d->clients;
        d->clients = c;
        d->n_clients++;
        sd_event_now(d->event, CLOCK_MONOTONIC, &now);
        if (sd_event_add_io(d->event, &c->io, cfd, EPOLLIN, on_client_io, c) < 0 ||
            sd_event_add_time(d->event, &c->idle, CLOCK_MONOTONIC, now + DIAG_IDLE_TIMEOUT_USEC, 1000000,
                              on_client_idle, c) < 0)
                client_free(c);
        return 0;
}

int diag_new(sd_event *e, const char *path, diag_handler_fn fn, void *userdata, struct diag **ret) {
        _cleanup_free_ char *dir = strdup(path);
        struct diag *d;
        int r;

        if (!dir)
                return -ENOMEM;
        if (mkdir(dirname(dir), 0755) < 0 && errno != EEXIST)
                return -errno;
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->event = sd_event_ref(e);
        d->fn = fn;
        d->userdata = userdata;
        d->fd = -1;
        d->path = strdup(path);
        if (!d->path) {
                diag_free(d);
                return -ENOMEM;
        }
        r = plat_unix_listen(path, 0660, 16);
        if (r < 0) {
                diag_free(d);
                return r;
        }
        d->fd = r;
        r = sd_event_add_io(e, &d->listen_io, d->fd, EPOLLIN, on_accept, d);
        if (r < 0) {
                diag_free(d);
                return r;
        }
        *ret = d;
        return 0;
}

void diag_free(struct diag *d) {
        if (!d)
                return;
        while (d->clients)
                client_free(d->clients);
        sd_event_source_disable_unref(d->listen_io);
        if (d->fd >= 0) {
                close(d->fd);
                unlink(d->path);
        }
        sd_event_unref(d->event);
        free(d->path);
        free(d);
}
