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

/* Reads <root>/proc/net/dev. On success *ret owns a new array (caller calls hal_net_sample_done). */
int hal_net_read(int root_fd, struct hal_net_sample *ret, char *err, size_t errlen);
int hal_net_parse(const char *buf, size_t len, struct hal_net_sample *ret, char *err, size_t errlen);
void hal_net_sample_done(struct hal_net_sample *s);

/* Borrowed pointer into s, or NULL. */
const struct hal_net_iface *hal_net_find(const struct hal_net_sample *s, const char *name);
