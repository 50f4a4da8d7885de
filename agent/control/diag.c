/* diag.c: the local control socket: JSON lines in, JSON lines out, for render-agentctl. */
#include "diag.h"

#include "cleanup.h"
#include "held.h"
#include "jsonstrict.h"
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

/* Replies one client may have waiting for the group commit (or behind one that is); past it the
 * client is dropped. */
#define DIAG_MAX_HELD 1024

/* How a connection takes streamed events (diag_publish). */
enum follow { FOLLOW_NONE, FOLLOW_FULL, FOLLOW_REDACTED };

struct diag_client {
        struct diag *d;
        int fd;
        struct plat_peer peer;
        gid_t *groups;       /* peer.groups, owned */
        bool privileged;     /* may change sessions: not limited per uid, may use the reserve */
        uint64_t line_since; /* when the incomplete line now buffered began (monotonic); 0: none */
        sd_event_source *io, *idle;
        char *in;
        size_t in_len;
        bool discarding; /* inside an oversized line: drop bytes up to its newline */
        bool eof;        /* the peer shut down its side: nothing more is read; closed when answered */
        enum follow follow;
        bool dropped; /* a follower too slow: its last line is queued, closed when sent or in 1 s */
        char *out;
        size_t out_len, out_off;
        struct held_dest dest; /* its replies in the agent's held queue */
        struct diag_client *next;
};

struct diag {
        sd_event *event;
        char *path;
        int fd;
        sd_event_source *listen_io;
        diag_handler_fn fn;
        diag_admit_fn admit;
        struct held *held; /* borrowed: the queue shared with MQTT commands */
        void *userdata;
        struct diag_client *clients;
        unsigned n_clients;
        bool owns_path; /* bound here (unlinked at free), not passed by systemd */
};

static cJSON *error_reply(const cJSON *id, const char *code, const char *msg) {
        cJSON *r = cJSON_CreateObject(), *e;
        /* A bounded format ("%.64s") may have cut a character of the request in two. */
        _cleanup_free_ char *text = strndup(msg, jsonstrict_utf8_prefix(msg, strlen(msg)));

        cJSON_AddItemToObject(r, "id", id ? cJSON_Duplicate(id, true) : cJSON_CreateNull());
        cJSON_AddFalseToObject(r, "ok");
        e = cJSON_AddObjectToObject(r, "error");
        cJSON_AddStringToObject(e, "code", code);
        cJSON_AddStringToObject(e, "message", text ? text : "");
        return r;
}

static char *print_reply(cJSON *r) {
        char *s = r ? cJSON_PrintUnformatted(r) : NULL;

        cJSON_Delete(r);
        return s;
}

/* The reply tree for one request line; *held as the handler set it. */
static cJSON *handle(const char *line, size_t len, const struct plat_peer *peer, diag_handler_fn fn,
                     void *userdata, bool *held) {
        const cJSON *id, *op;
        const char *code = "INTERNAL";
        char msg[256] = "";
        cJSON *req = NULL, *res, *reply;
        int r;

        *held = false;
        if (len == 0)
                line = ""; /* an empty MQTT payload comes as NULL */
        if (len > DIAG_MAX_LINE)
                return error_reply(NULL, "BAD_REQUEST", "request line longer than 65536 bytes");
        /* One object, UTF-8, each key once, nothing after it: what two readers could take for two
         * different requests is neither. */
        r = jsonstrict_parse_object(line, len, "request", &req, msg, sizeof(msg));
        if (r == -ENOMEM)
                return NULL;
        if (r < 0)
                return error_reply(NULL, "BAD_REQUEST", msg);
        id = cJSON_GetObjectItemCaseSensitive(req, "id");
        /* The id goes back in the reply (and into logs): never with control characters. */
        if (!jsonstrict_printable(id, "\"id\"", msg, sizeof(msg))) {
                cJSON_Delete(req);
                return error_reply(NULL, "BAD_REQUEST", msg);
        }
        op = cJSON_GetObjectItemCaseSensitive(req, "op");
        if (!cJSON_IsString(op)) {
                reply = error_reply(id, "BAD_REQUEST", "request has no \"op\" string");
                cJSON_Delete(req);
                return reply;
        }
        res = fn(op->valuestring, req, peer, userdata, held, &code, msg, sizeof(msg));
        if (!res) {
                *held = false;
                reply = error_reply(id, code, msg[0] ? msg : "request failed");
                cJSON_Delete(req);
                return reply;
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
        return reply;
}

cJSON *diag_handle_request(const char *line, size_t len, const struct plat_peer *peer, diag_handler_fn fn,
                           void *userdata, bool *ret_held) {
        bool held;
        cJSON *reply = handle(line, len, peer, fn, userdata, &held);

        if (ret_held)
                *ret_held = reply && held;
        return reply;
}

char *diag_handle_line(const char *line, size_t len, const struct plat_peer *peer, diag_handler_fn fn,
                       void *userdata, bool *ret_held) {
        return print_reply(diag_handle_request(line, len, peer, fn, userdata, ret_held));
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
        held_drop(c->d->held, &c->dest);
        free(c->in);
        free(c->out);
        free(c->groups);
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
        return sd_event_source_set_io_events(c->io, (c->eof ? 0 : EPOLLIN) |
                                                            (c->out_off < c->out_len ? EPOLLOUT : 0));
}

/* Everything the client asked for has been sent. */
static bool answered(const struct diag_client *c) {
        return c->dest.n == 0 && c->out_off == c->out_len;
}

static int answer(struct diag_client *c, const char *line, size_t len) {
        _cleanup_free_ char *text = NULL;
        bool held;
        cJSON *reply = handle(line, len, &c->peer, c->d->fn, c->d->userdata, &held);

        if (!reply)
                return -ENOMEM;
        if (held_must_wait(&c->dest, held))
                return held_push(c->d->held, &c->dest, reply, held, NULL); /* -ENOBUFS: dropped */
        /* A reply saying "following" turns the connection into a follower: it is not closed for
         * sending nothing, and diag_publish streams to it as the handler's read policy decided. */
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "following")))
                c->follow = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "redacted"))
                                    ? FOLLOW_REDACTED
                                    : FOLLOW_FULL;
        text = print_reply(reply);
        return text ? queue_out(c, text) : -ENOMEM;
}

/* The held queue releases one of this client's replies (in request order); after its last one the
 * client is written to, and closed when it had shut its side down. A reply that could not be made
 * or printed (NULL, out of memory) closes the client: it hears that no answer comes. */
static void held_send(struct held_dest *dest, const cJSON *reply, const struct held_route *route) {
        struct diag_client *c = dest->userdata;
        _cleanup_free_ char *text = reply ? cJSON_PrintUnformatted(reply) : NULL;
        int r = text ? queue_out(c, text) : -ENOMEM;

        (void)route;
        if (r >= 0 && c->dest.n > 0)
                return;
        if (r >= 0)
                r = flush_out(c);
        if (r < 0 || (c->eof && answered(c)))
                client_free(c);
}

static const struct held_sink diag_sink = { .send = held_send };

/* Splits what arrived into lines; an oversized line gets an error reply and is skipped. */
static int process_input(struct diag_client *c) {
        size_t start = 0;
        int r;

        for (size_t i = 0; i < c->in_len; i++) {
                if (c->in[i] != '\n')
                        continue;
                c->line_since = 0;
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
        /* After the end of its input only a hang-up or an error is reported: the peer closed its
         * end as well, and nobody is left to read the replies. */
        if (c->eof && (revents & (EPOLLHUP | EPOLLERR))) {
                client_free(c);
                return 0;
        }
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t n = recv(fd, c->in + c->in_len, DIAG_MAX_LINE + 1 - c->in_len, MSG_DONTWAIT);

                if (n < 0 && errno != EAGAIN && errno != EINTR) {
                        client_free(c);
                        return 0;
                }
                /* The end of the input (shutdown(SHUT_WR), or a close): what was asked before it is
                 * still answered, held replies included, and the connection closed after that. */
                if (n == 0)
                        c->eof = true;
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
        if (c->eof && answered(c)) {
                client_free(c);
                return 0;
        }
        /* Idle for a minute, or a line started and not finished in time, closes the connection:
         * bytes trickled into a line do not keep it open. */
        sd_event_now(c->d->event, CLOCK_MONOTONIC, &now);
        if (c->in_len == 0 && !c->discarding)
                c->line_since = 0;
        else if (!c->line_since)
                c->line_since = now;
        if (c->dropped)
                return 0; /* its deadline to take the last line stands */
        /* A follower waits for events: only an unfinished line times it out. */
        sd_event_source_set_enabled(c->idle, c->follow && !c->line_since ? SD_EVENT_OFF : SD_EVENT_ONESHOT);
        sd_event_source_set_time(c->idle, c->line_since ? c->line_since + DIAG_LINE_TIMEOUT_USEC
                                                        : now + DIAG_IDLE_TIMEOUT_USEC);
        return 0;
}

static int on_client_idle(sd_event_source *s, uint64_t usec, void *ud) {
        static const char late[] = "{\"id\":null,\"ok\":false,\"error\":{\"code\":\"BAD_REQUEST\","
                                   "\"message\":\"request line not complete within 5 s; connection "
                                   "closed\"}}\n";
        struct diag_client *c = ud;

        (void)s;
        (void)usec;
        if (c->line_since) {
                log_debug("control client (uid %u, pid %d) closed: a request line took longer than 5 s",
                          (unsigned)c->peer.uid, (int)c->peer.pid);
                (void)!send(c->fd, late, sizeof(late) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        client_free(c);
        return 0;
}

unsigned diag_followers(const struct diag *d) {
        unsigned n = 0;

        for (const struct diag_client *c = d->clients; c; c = c->next)
                n += c->follow != FOLLOW_NONE;
        return n;
}

/* A follower that left DIAG_FOLLOW_MAX_OUT unread gets one last line and 1 s to read it. */
static int drop_follower(struct diag_client *c) {
        static const char last[] = "{\"type\":\"dropped\",\"message\":\"events: this follower left "
                                   "more than 65536 bytes unread; connection closed\"}";
        uint64_t now;

        log_info("control client (uid %u, pid %d) following events dropped: it left more than %d bytes "
                 "unread; it may connect again",
                 (unsigned)c->peer.uid, (int)c->peer.pid, DIAG_FOLLOW_MAX_OUT);
        c->follow = FOLLOW_NONE;
        c->dropped = true;
        c->eof = true; /* nothing more is read from it */
        sd_event_now(c->d->event, CLOCK_MONOTONIC, &now);
        sd_event_source_set_time(c->idle, now + 1000000);
        sd_event_source_set_enabled(c->idle, SD_EVENT_ONESHOT);
        return queue_out(c, last);
}

void diag_publish(struct diag *d, const char *line, const char *redacted) {
        struct diag_client *c, *next;

        for (c = d->clients; c; c = next) {
                const char *s = c->follow == FOLLOW_REDACTED ? redacted : line;
                int r;

                next = c->next;
                /* Behind a held reply an event would overtake it: the follower misses it. */
                if (c->follow == FOLLOW_NONE || !s || c->dest.n)
                        continue;
                if (c->out_len - c->out_off + strlen(s) + 1 > DIAG_FOLLOW_MAX_OUT)
                        r = drop_follower(c);
                else
                        r = queue_out(c, s);
                if (r >= 0)
                        r = flush_out(c);
                if (r < 0 || (c->eof && answered(c)))
                        client_free(c);
        }
}

/* Refuses a connection with one SLOW_DOWN line saying why. */
static void refuse(int fd, const char *why) {
        char line[256];
        int n = snprintf(
                line, sizeof(line),
                "{\"id\":null,\"ok\":false,\"error\":{\"code\":\"SLOW_DOWN\",\"message\":\"%s\"}}\n", why);

        (void)!send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
        close(fd);
}

/* Whether the peer gets a connection: the reserve is for privileged peers, and an unprivileged
 * uid holds at most `limit` connections. why gets the reason when not. */
static bool admissible(const struct diag *d, const struct plat_peer *peer, unsigned limit, char *why,
                       size_t len) {
        unsigned unprivileged = 0, same_uid = 0;

        if (d->n_clients >= DIAG_MAX_CLIENTS) {
                snprintf(why, len, "too many control clients");
                return false;
        }
        if (limit == DIAG_ADMIT_PRIVILEGED)
                return true;
        for (const struct diag_client *c = d->clients; c; c = c->next)
                if (!c->privileged) {
                        unprivileged++;
                        same_uid += c->peer.uid == peer->uid;
                }
        if (unprivileged >= DIAG_MAX_CLIENTS - DIAG_RESERVED_CLIENTS) {
                snprintf(why, len, "too many control clients");
                return false;
        }
        if (same_uid >= limit) {
                snprintf(why, len, "too many control connections for uid %u (at most %u at once)",
                         (unsigned)peer->uid, limit);
                return false;
        }
        return true;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *ud) {
        struct diag *d = ud;
        struct plat_peer peer = { .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
        _cleanup_free_ gid_t *groups = NULL;
        struct diag_client *c;
        char why[128];
        unsigned limit;
        uint64_t now;
        int cfd;

        (void)s;
        (void)revents;
        cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
                return 0;
        /* Who connected, once, as the kernel recorded it at connect: never looked up again (a pid
         * can be reused by anyone; the fd can be handed to anyone). Without SO_PEERGROUPS (Linux
         * before 4.13) only the primary group counts. */
        (void)plat_unix_peer(cfd, &peer);
        if (plat_unix_peer_groups(cfd, &groups, &peer.n_groups) < 0)
                peer.n_groups = 0;
        peer.groups = groups;
        limit = d->admit ? d->admit(&peer, d->userdata) : DIAG_DEFAULT_PER_UID;
        if (!admissible(d, &peer, limit, why, sizeof(why))) {
                refuse(cfd, why);
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
        c->peer = peer;
        c->groups = TAKE_PTR(groups);
        c->privileged = limit == DIAG_ADMIT_PRIVILEGED;
        c->dest = (struct held_dest){ .sink = &diag_sink, .userdata = c, .max = DIAG_MAX_HELD };
        c->next = d->clients;
        d->clients = c;
        d->n_clients++;
        sd_event_now(d->event, CLOCK_MONOTONIC, &now);
        if (sd_event_add_io(d->event, &c->io, cfd, EPOLLIN, on_client_io, c) < 0 ||
            sd_event_add_time(d->event, &c->idle, CLOCK_MONOTONIC, now + DIAG_IDLE_TIMEOUT_USEC, 100000,
                              on_client_idle, c) < 0)
                client_free(c);
        return 0;
}

static int diag_alloc(sd_event *e, diag_handler_fn fn, diag_admit_fn admit, struct held *held,
                      void *userdata, struct diag **ret) {
        struct diag *d = calloc(1, sizeof(*d));

        if (!d)
                return -ENOMEM;
        d->event = sd_event_ref(e);
        d->fn = fn;
        d->admit = admit;
        d->held = held;
        d->userdata = userdata;
        d->fd = -1;
        *ret = d;
        return 0;
}

static int diag_listen(struct diag *d, int fd, struct diag **ret) {
        int r;

        d->fd = fd;
        r = sd_event_add_io(d->event, &d->listen_io, d->fd, EPOLLIN, on_accept, d);
        if (r < 0) {
                diag_free(d);
                return r;
        }
        *ret = d;
        return 0;
}

int diag_new(sd_event *e, const char *path, diag_handler_fn fn, diag_admit_fn admit, struct held *held,
             void *userdata, struct diag **ret) {
        _cleanup_free_ char *dir = strdup(path);
        struct diag *d;
        int r;

        if (!dir)
                return -ENOMEM;
        if (mkdir(dirname(dir), 0755) < 0 && errno != EEXIST)
                return -errno;
        r = diag_alloc(e, fn, admit, held, userdata, &d);
        if (r < 0)
                return r;
        d->path = strdup(path);
        if (!d->path) {
                diag_free(d);
                return -ENOMEM;
        }
        r = plat_unix_listen(path, 0660, DIAG_MAX_CLIENTS);
        if (r < 0) {
                diag_free(d);
                return r;
        }
        d->owns_path = true;
        return diag_listen(d, r, ret);
}

int diag_new_fd(sd_event *e, int fd, diag_handler_fn fn, diag_admit_fn admit, struct held *held,
                void *userdata, struct diag **ret) {
        struct diag *d;
        int r = diag_alloc(e, fn, admit, held, userdata, &d);

        if (r < 0)
                return r;
        return diag_listen(d, fd, ret);
}

void diag_free(struct diag *d) {
        if (!d)
                return;
        while (d->clients)
                client_free(d->clients);
        sd_event_source_disable_unref(d->listen_io);
        if (d->fd >= 0)
                close(d->fd);
        if (d->fd >= 0 && d->owns_path)
                unlink(d->path);
        sd_event_unref(d->event);
        free(d->path);
        free(d);
}
