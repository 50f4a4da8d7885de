/* net.h: per-interface byte counters from /proc/net/dev. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define HAL_NET_IFNAME_MAX 16   /* IFNAMSIZ, NUL included */
#define HAL_NET_MAX_IFACES 4096 /* more is treated as malformed input */

struct hal_net_iface {
        char name[HAL_NET_IFNAME_MAX];
        uint64_t rx_bytes;
        uint64_t tx_bytes;
};

struct hal_net_sample {
        size_t n;
        struct hal_net_iface *ifaces; /* owned; release with hal_net_sample_done() */
};

int hal_net_parse(const char *buf, size_t len, struct hal_net_sample *ret, char *err, size_t errlen);
void hal_net_sample_done(struct hal_net_sample *s);

/* Borrowed pointer into s, or NULL. */
const struct hal_net_iface *hal_net_find(const struct hal_net_sample *s, const char *name);

/* <root>/proc/net/dev kept open between samples, for a caller that reads it every tick: no open() and
 * close() per read, and the buffer is kept. Created closed; the first read opens it, and a read after
 * a failed open or read opens it again. On success *ret owns a new array (caller calls
 * hal_net_sample_done). */
struct hal_net_reader;

/* root_fd is borrowed and must outlive the reader. -ENOMEM only. Free with hal_net_reader_free(). */
int hal_net_reader_new(int root_fd, struct hal_net_reader **ret);
int hal_net_reader_read(struct hal_net_reader *r, struct hal_net_sample *ret, char *err, size_t errlen);
/* NULL is a no-op. */
void hal_net_reader_free(struct hal_net_reader *r);
