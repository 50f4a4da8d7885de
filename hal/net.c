/* net.c: per-interface byte counters from /proc/net/dev. */
#include "net.h"

#include "cleanup.h"
#include "fileio.h"
#include "strutil.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NETDEV_PATH "/proc/net/dev"
#define NETDEV_MAX_BYTES (1024 * 1024)
#define NETDEV_HEADER_LINES 2
#define NETDEV_COUNTERS 16
#define NETDEV_RX_BYTES 0
#define NETDEV_TX_BYTES 8

static const char *const counter_names[NETDEV_COUNTERS] = {
        "rx_bytes",      "rx_packets",   "rx_errs",    "rx_drop",       "rx_fifo", "rx_frame",
        "rx_compressed", "rx_multicast", "tx_bytes",   "tx_packets",    "tx_errs", "tx_drop",
        "tx_fifo",       "tx_colls",     "tx_carrier", "tx_compressed",
};

/* The kernel refuses names with '/', ':' or whitespace (dev_valid_name()); control bytes would
 * only come from a damaged file. Bytes past ASCII are allowed: the kernel allows them. */
static bool ifname_byte_ok(unsigned char c) {
        return c > 0x20 && c != 0x7f && c != '/' && c != ':';
}

/* Parses one "  name: <16 counters>" line. */
static int parse_iface(const char *p, const char *end, unsigned lineno, struct hal_net_iface *ret, char *err,
                       size_t errlen) {
        struct hal_net_iface iface = { .name = "" };
        const char *name, *colon, *tok;
        size_t namelen, toklen, n = 0;
        char q[PLAT_QUOTE_MAX];

        while (p < end && (*p == ' ' || *p == '\t'))
                p++;
        name = p;
        /* Names cannot hold ':', so the first one ends the name, even when a wide counter
         * follows it without a blank ("eth0:12345678901"). */
        colon = memchr(name, ':', (size_t)(end - name));
        if (!colon) {
                plat_errf(err, errlen, NETDEV_PATH ":%u: no ':' after the interface name in '%s'", lineno,
                          plat_quote(name, (size_t)(end - name), q));
                return -EPROTO;
        }
        namelen = (size_t)(colon - name);
        if (namelen == 0) {
                plat_errf(err, errlen, NETDEV_PATH ":%u: empty interface name", lineno);
                return -EPROTO;
        }
        if (namelen >= HAL_NET_IFNAME_MAX) {
                plat_errf(err, errlen, NETDEV_PATH ":%u: interface name '%s' is %zu bytes, at most %d",
                          lineno, plat_quote(name, namelen, q), namelen, HAL_NET_IFNAME_MAX - 1);
                return -EPROTO;
        }
        for (size_t i = 0; i < namelen; i++)
                if (!ifname_byte_ok((unsigned char)name[i])) {
                        plat_errf(err, errlen, NETDEV_PATH ":%u: interface name '%s' holds byte 0x%02x",
                                  lineno, plat_quote(name, namelen, q), (unsigned char)name[i]);
                        return -EPROTO;
                }
        memcpy(iface.name, name, namelen);
        iface.name[namelen] = '\0';

        p = colon + 1;
        while (plat_next_token(&p, end, &tok, &toklen)) {
                uint64_t v;
                int r;

                if (n == NETDEV_COUNTERS) {
                        plat_errf(err, errlen, NETDEV_PATH ":%u: %s has more than %d counters", lineno,
                                  iface.name, NETDEV_COUNTERS);
                        return -EPROTO;
                }
                r = plat_parse_u64(tok, toklen, &v);
                if (r < 0) {
                        plat_errf(err, errlen, NETDEV_PATH ":%u: %s counter %zu (%s) %s: '%s'", lineno,
                                  iface.name, n + 1, counter_names[n],
                                  r == -ERANGE ? "does not fit in 64 bits" : "is not a decimal number",
                                  plat_quote(tok, toklen, q));
                        return r;
                }
                if (n == NETDEV_RX_BYTES)
                        iface.rx_bytes = v;
                else if (n == NETDEV_TX_BYTES)
                        iface.tx_bytes = v;
                n++;
        }
        if (n < NETDEV_COUNTERS) {
                plat_errf(err, errlen, NETDEV_PATH ":%u: %s has %zu counters, expected %d", lineno,
                          iface.name, n, NETDEV_COUNTERS);
                return -EPROTO;
        }
        *ret = iface;
        return 0;
}

static int iface_ptr_cmp(const void *a, const void *b) {
        const struct hal_net_iface *const *x = a, *const *y = b;

        return strcmp((*x)->name, (*y)->name);
}

/* A name listed twice means a damaged file; hal_net_find() would silently pick one of them. */
static int check_unique(const struct hal_net_iface *ifaces, size_t n, char *err, size_t errlen) {
        _cleanup_free_ const struct hal_net_iface **sorted = NULL;

        if (n < 2)
                return 0;
        sorted = malloc(n * sizeof(*sorted));
        if (!sorted) {
                plat_errf(err, errlen, NETDEV_PATH ": out of memory");
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                sorted[i] = &ifaces[i];
        qsort(sorted, n, sizeof(*sorted), iface_ptr_cmp);
        for (size_t i = 1; i < n; i++)
                if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0) {
                        plat_errf(err, errlen, NETDEV_PATH ": interface %s is listed twice",
                                  sorted[i]->name);
                        return -EPROTO;
                }
        return 0;
}

int hal_net_parse(const char *buf, size_t len, struct hal_net_sample *ret, char *err, size_t errlen) {
        _cleanup_free_ struct hal_net_iface *ifaces = NULL;
        size_t n = 0, cap = 0;
        unsigned lineno = 0;
        const char *p = buf, *end;
        int r;

        if (len == 0) {
                plat_errf(err, errlen, NETDEV_PATH ": file is empty");
                return -EPROTO;
        }
        end = buf + len;

        while (p < end) {
                const char *line = p, *nl;
                char q[PLAT_QUOTE_MAX];

                if (lineno == UINT_MAX) {
                        plat_errf(err, errlen, NETDEV_PATH ": more than %u lines", UINT_MAX);
                        return -EPROTO;
                }
                lineno++;
                /* The kernel ends every line with '\n'; a last line without one was cut off. */
                nl = memchr(line, '\n', (size_t)(end - line));
                if (!nl) {
                        plat_errf(err, errlen,
                                  NETDEV_PATH ":%u: line is cut short (no newline at end of file)", lineno);
                        return -EPROTO;
                }
                p = nl + 1;

                if (lineno <= NETDEV_HEADER_LINES) {
                        /* Both header lines split receive from transmit with '|'; a counter line in
                         * their place would otherwise be skipped without a word. */
                        if (!memchr(line, '|', (size_t)(nl - line))) {
                                plat_errf(err, errlen, NETDEV_PATH ":%u: expected a header line, got '%s'",
                                          lineno, plat_quote(line, (size_t)(nl - line), q));
                                return -EPROTO;
                        }
                        continue;
                }

                if (n == HAL_NET_MAX_IFACES) {
                        plat_errf(err, errlen, NETDEV_PATH ":%u: more than %d interfaces", lineno,
                                  HAL_NET_MAX_IFACES);
                        return -EPROTO;
                }
                if (n == cap) {
                        size_t ncap = cap == 0 ? 16 : cap * 2;
                        struct hal_net_iface *a;

                        if (ncap > HAL_NET_MAX_IFACES)
                                ncap = HAL_NET_MAX_IFACES;
                        a = realloc(ifaces, ncap * sizeof(*a));
                        if (!a) {
                                plat_errf(err, errlen, NETDEV_PATH ": out of memory");
                                return -ENOMEM;
                        }
                        ifaces = a;
                        cap = ncap;
                }
                r = parse_iface(line, nl, lineno, &ifaces[n], err, errlen);
                if (r < 0)
                        return r;
                n++;
        }

        if (lineno < NETDEV_HEADER_LINES) {
                plat_errf(err, errlen, NETDEV_PATH ": only %u of %d header lines", lineno,
                          NETDEV_HEADER_LINES);
                return -EPROTO;
        }
        /* Every network namespace has lo: a list without a single interface was cut short. */
        if (n == 0) {
                plat_errf(err, errlen, NETDEV_PATH ": no interfaces listed, not even lo");
                return -EPROTO;
        }
        r = check_unique(ifaces, n, err, errlen);
        if (r < 0)
                return r;

        *ret = (struct hal_net_sample){
                .n = n,
                .ifaces = TAKE_PTR(ifaces),
        };
        return 0;
}

struct hal_net_reader {
        struct plat_file file;
};

static int read_through(struct plat_file *f, struct hal_net_sample *ret, char *err, size_t errlen) {
        const char *buf;
        size_t len;
        int r;

        r = plat_file_read(f, &buf, &len);
        if (r == -EFBIG) {
                plat_errf(err, errlen, NETDEV_PATH ": larger than %d bytes", NETDEV_MAX_BYTES);
                return r;
        }
        if (r < 0) {
                plat_errf(err, errlen, NETDEV_PATH ": %s", strerror(-r));
                return r;
        }
        return hal_net_parse(buf, len, ret, err, errlen);
}

int hal_net_reader_new(int root_fd, struct hal_net_reader **ret) {
        struct hal_net_reader *r = malloc(sizeof(*r));

        if (!r)
                return -ENOMEM;
        /* /proc/net/dev is a seq file with a record per interface: it comes a page or so per read,
         * so it is read to EOF, never in one pread(). */
        plat_file_init(&r->file, root_fd, NETDEV_PATH, NETDEV_MAX_BYTES, false);
        *ret = r;
        return 0;
}

int hal_net_reader_read(struct hal_net_reader *r, struct hal_net_sample *ret, char *err, size_t errlen) {
        return read_through(&r->file, ret, err, errlen);
}

void hal_net_reader_free(struct hal_net_reader *r) {
        if (!r)
                return;
        plat_file_done(&r->file);
        free(r);
}

void hal_net_sample_done(struct hal_net_sample *s) {
        if (!s)
                return;
        free(s->ifaces);
        *s = (struct hal_net_sample){ .n = 0 };
}

const struct hal_net_iface *hal_net_find(const struct hal_net_sample *s, const char *name) {
        if (!s || !name)
                return NULL;
        for (size_t i = 0; i < s->n; i++)
                if (strcmp(s->ifaces[i].name, name) == 0)
                        return &s->ifaces[i];
        return NULL;
}
