/* mqtt_fx.c: a scripted MQTT 5 broker for unit tests (mqtt_fx.h). */
#include "mqtt_fx.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static int send_all(int fd, const uint8_t *p, size_t n) {
        while (n) {
                ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        return -errno;
                p += w;
                n -= (size_t)w;
        }
        return 0;
}

void mqtt_fx_drop(struct mqtt_fx *b) {
        b->client_src = sd_event_source_disable_unref(b->client_src);
        if (b->client_fd >= 0)
                close(b->client_fd);
        b->client_fd = -1;
        b->in_len = 0;
}

/* The remaining length (a variable byte integer) at p[1..]: its value and the header's size; 0
 * when more bytes are needed, -1 when malformed. */
static int fixed_header(const uint8_t *p, size_t n, size_t *ret_len, size_t *ret_hdr) {
        size_t v = 0;

        for (size_t i = 1; i < 5; i++) {
                if (i >= n)
                        return 0;
                v |= (size_t)(p[i] & 0x7f) << (7 * (i - 1));
                if (!(p[i] & 0x80)) {
                        *ret_len = v;
                        *ret_hdr = i + 1;
                        return 1;
                }
        }
        return -1;
}

/* One whole packet: type byte p0, body of len bytes. */
static int serve(struct mqtt_fx *b, uint8_t p0, const uint8_t *body, size_t len) {
        switch (p0 >> 4) {
        case 1: { /* CONNECT: CONNACK, no session present, success, no properties */
                static const uint8_t connack5[] = { 0x20, 3, 0, 0, 0 }, connack4[] = { 0x20, 2, 0, 0 };

                if (len < 7)
                        return -EBADMSG;
                b->level = body[6]; /* after the protocol name, "\0\4MQTT" */
                if (b->n_connects < sizeof(b->levels) / sizeof(b->levels[0]))
                        b->levels[b->n_connects] = b->level;
                b->n_connects++;
                if (b->drop_all || (b->drop_v5 && b->level == 5))
                        return -EPROTO;
                if (b->level == 5)
                        return send_all(b->client_fd, connack5, sizeof(connack5));
                return send_all(b->client_fd, connack4, sizeof(connack4));
        }
        case 3: { /* PUBLISH */
                int qos = (p0 >> 1) & 3;
                size_t tlen, off, plen = 0, shift = 0;
                uint8_t puback[] = { 0x40, 4, 0, 0, (uint8_t)b->puback_reason, 0 };

                if (len < 2)
                        return -EBADMSG;
                tlen = (size_t)body[0] << 8 | body[1];
                off = 2 + tlen;
                if (off + (qos ? 2 : 0) > len)
                        return -EBADMSG;
                memcpy(b->topic, body + 2, tlen < sizeof(b->topic) ? tlen : sizeof(b->topic) - 1);
                b->topic[tlen < sizeof(b->topic) ? tlen : sizeof(b->topic) - 1] = '\0';
                if (qos) {
                        puback[2] = body[off];
                        puback[3] = body[off + 1];
                        off += 2;
                }
                do { /* the properties' length, then the properties (MQTT 5 only) */
                        if (b->level != 5)
                                break;
                        if (off >= len)
                                return -EBADMSG;
                        plen |= (size_t)(body[off] & 0x7f) << shift;
                        shift += 7;
                } while (body[off++] & 0x80);
                off += plen;
                if (off > len)
                        return -EBADMSG;
                if (qos != 1)
                        return 0;
                if (b->n_publishes < MQTT_FX_KEEP) {
                        char *s = calloc(1, len - off + 1);

                        if (!s)
                                return -ENOMEM;
                        memcpy(s, body + off, len - off);
                        b->payload[b->n_publishes] = s;
                }
                b->n_publishes++;
                if (b->level != 5)
                        puback[1] = 2; /* 3.1.1: no reason code */
                return send_all(b->client_fd, puback, b->level == 5 ? sizeof(puback) : 4);
        }
        case 12: { /* PINGREQ */
                static const uint8_t pingresp[] = { 0xd0, 0 };

                return send_all(b->client_fd, pingresp, sizeof(pingresp));
        }
        case 14: /* DISCONNECT */
                return -ECONNRESET;
        default: /* nothing else is needed: ignored */
                return 0;
        }
}

static int on_client(sd_event_source *s, int fd, uint32_t revents, void *ud) {
        struct mqtt_fx *b = ud;
        ssize_t n;

        (void)s;
        (void)revents;
        n = recv(fd, b->in + b->in_len, sizeof(b->in) - b->in_len, 0);
        if (n <= 0) {
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        return 0;
                mqtt_fx_drop(b);
                return 0;
        }
        b->in_len += (size_t)n;
        for (;;) {
                size_t len, hdr;
                int k = fixed_header(b->in, b->in_len, &len, &hdr);

                if (k == 0 || (k > 0 && hdr + len > b->in_len)) {
                        if (b->in_len == sizeof(b->in))
                                mqtt_fx_drop(b); /* a packet larger than the buffer */
                        return 0;
                }
                if (k < 0 || serve(b, b->in[0], b->in + hdr, len) < 0) {
                        mqtt_fx_drop(b);
                        return 0;
                }
                memmove(b->in, b->in + hdr + len, b->in_len - hdr - len);
                b->in_len -= hdr + len;
        }
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *ud) {
        struct mqtt_fx *b = ud;
        int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        (void)s;
        (void)revents;
        if (c < 0)
                return 0;
        mqtt_fx_drop(b); /* one client at a time: a new one replaces the old */
        b->client_fd = c;
        if (sd_event_add_io(sd_event_source_get_event(s), &b->client_src, c, EPOLLIN, on_client, b) < 0)
                mqtt_fx_drop(b);
        return 0;
}

int mqtt_fx_start(sd_event *e, struct mqtt_fx **ret) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t alen = sizeof(a);
        struct mqtt_fx *b = calloc(1, sizeof(*b));
        int r;

        if (!b)
                return -ENOMEM;
        b->client_fd = -1;
        b->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (b->listen_fd < 0 || bind(b->listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
            listen(b->listen_fd, 4) < 0 || getsockname(b->listen_fd, (struct sockaddr *)&a, &alen) < 0) {
                r = -errno;
                mqtt_fx_free(b);
                return r;
        }
        b->port = ntohs(a.sin_port);
        r = sd_event_add_io(e, &b->listen_src, b->listen_fd, EPOLLIN, on_accept, b);
        if (r < 0) {
                mqtt_fx_free(b);
                return r;
        }
        *ret = b;
        return 0;
}

void mqtt_fx_free(struct mqtt_fx *b) {
        if (!b)
                return;
        mqtt_fx_drop(b);
        sd_event_source_disable_unref(b->listen_src);
        if (b->listen_fd >= 0)
                close(b->listen_fd);
        for (size_t i = 0; i < MQTT_FX_KEEP; i++)
                free(b->payload[i]);
        free(b);
}
