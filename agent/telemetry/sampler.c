/* sampler.c: one host sample per tick (CPU, memory, interfaces) with rates against the last one. */
#include "sampler.h"
#include "sampler_internal.h"

#include "clock.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_MAX_TICKS 64

void sampler_init(struct sampler *s, int root_fd) {
        *s = (struct sampler){ .root_fd = root_fd };
        s->cpu.name = "CPU";
        s->mem.name = "memory";
        s->net.name = "network interfaces";
}

static void sample_clear(struct host_sample *h) {
        hal_net_sample_done(&h->net);
        free(h->net_rates);
        *h = (struct host_sample){ 0 };
}

void sampler_done(struct sampler *s) {
        hal_cpu_reader_free(s->cpu_reader);
        hal_mem_reader_free(s->mem_reader);
        hal_net_reader_free(s->net_reader);
        s->cpu_reader = NULL;
        s->mem_reader = NULL;
        s->net_reader = NULL;
        sample_clear(&s->cur);
        sample_clear(&s->prev);
        sampler__close_gpus(s);
}

/* A failing read is retried after 1, 2, 4 ... 64 ticks, and logged only when its reason
 * changes, so a broken /proc file costs neither CPU nor journal space. */
static bool metric_due(const struct sampler *s, const struct metric_health *m) {
        return s->tick >= m->skip_until_tick;
}

static void metric_result(struct sampler *s, struct metric_health *m, int r, const char *err) {
        if (r >= 0) {
                if (m->error[0])
                        log_notice("reading %s again; it is back in telemetry", m->name);
                m->error[0] = '\0';
                m->failures = 0;
                m->skip_until_tick = 0;
                return;
        }
        if (strcmp(m->error, err) != 0) {
                log_warn("cannot read %s: %s; it is left out of telemetry and retried with backoff", m->name,
                         err);
                snprintf(m->error, sizeof(m->error), "%s", err);
        }
        if (m->failures < 7)
                m->failures++;
        m->skip_until_tick = s->tick + (1u << m->failures) / 2;
        if (m->skip_until_tick > s->tick + BACKOFF_MAX_TICKS)
                m->skip_until_tick = s->tick + BACKOFF_MAX_TICKS;
}

static double rate_mbps(uint64_t now, uint64_t before, uint64_t dt_usec) {
        /* bits per microsecond == megabits per second */
        return (double)(now - before) * 8.0 / (double)dt_usec;
}

static void compute_rates(struct host_sample *cur, const struct host_sample *prev) {
        uint64_t dt = cur->mono_usec - prev->mono_usec;

        if (cur->has_cpu && prev->has_cpu && cur->cpu.total_jiffies > prev->cpu.total_jiffies &&
            cur->cpu.idle_jiffies >= prev->cpu.idle_jiffies) {
                uint64_t dtot = cur->cpu.total_jiffies - prev->cpu.total_jiffies;
                uint64_t didle = cur->cpu.idle_jiffies - prev->cpu.idle_jiffies;

                if (didle <= dtot) {
                        cur->has_cpu_util = true;
                        cur->cpu_util_pct = 100.0 * (double)(dtot - didle) / (double)dtot;
                }
        }
        if (!cur->has_net || !prev->has_net || dt == 0)
                return;
        for (size_t i = 0; i < cur->net.n; i++) {
                const struct hal_net_iface *c = &cur->net.ifaces[i];
                const struct hal_net_iface *p = hal_net_find(&prev->net, c->name);

                /* A counter that went down means the interface was recreated: no rate this
                 * tick rather than a negative or absurd one. */
                if (!p || c->rx_bytes < p->rx_bytes || c->tx_bytes < p->tx_bytes)
                        continue;
                cur->net_rates[i] = (struct net_rate){ .valid = true,
                                                       .rx_mbps = rate_mbps(c->rx_bytes, p->rx_bytes, dt),
                                                       .tx_mbps = rate_mbps(c->tx_bytes, p->tx_bytes, dt) };
        }
}

const struct host_sample *sampler_tick(struct sampler *s) {
        struct host_sample *h;
        char err[SAMPLER_ERR_MAX];
        int r;

        sample_clear(&s->prev);
        s->prev = s->cur;
        s->cur = (struct host_sample){ 0 };
        h = &s->cur;
        h->mono_usec = plat_now_mono_usec();
        h->real_usec = plat_now_real_usec();

        /* Each reader is made by the first tick that needs it (sampler_init() cannot fail); only
         * memory can stop that, and the metric then fails as a read would, retried with backoff. */
        if (metric_due(s, &s->cpu)) {
                r = s->cpu_reader ? 0 : hal_cpu_reader_new(s->root_fd, &s->cpu_reader);
                if (r < 0)
                        snprintf(err, sizeof(err), "out of memory");
                else
                        r = hal_cpu_reader_read(s->cpu_reader, &h->cpu, err, sizeof(err));
                h->has_cpu = r >= 0;
                metric_result(s, &s->cpu, r, err);
        }
        if (metric_due(s, &s->mem)) {
                r = s->mem_reader ? 0 : hal_mem_reader_new(s->root_fd, &s->mem_reader);
                if (r < 0)
                        snprintf(err, sizeof(err), "out of memory");
                else
                        r = hal_mem_reader_read(s->mem_reader, &h->mem, err, sizeof(err));
                h->has_mem = r >= 0;
                metric_result(s, &s->mem, r, err);
        }
        if (metric_due(s, &s->net)) {
                r = s->net_reader ? 0 : hal_net_reader_new(s->root_fd, &s->net_reader);
                if (r < 0)
                        snprintf(err, sizeof(err), "out of memory");
                else
                        r = hal_net_reader_read(s->net_reader, &h->net, err, sizeof(err));
                if (r >= 0) {
                        h->net_rates = calloc(h->net.n ? h->net.n : 1, sizeof(*h->net_rates));
                        if (!h->net_rates) {
                                hal_net_sample_done(&h->net);
                                r = -ENOMEM;
                                snprintf(err, sizeof(err), "out of memory");
                        }
                }
                h->has_net = r >= 0;
                metric_result(s, &s->net, r, err);
        }
        sampler__tick_gpus(s, h);
        compute_rates(h, &s->prev);
        s->tick++;
        return h;
}

const struct net_rate *sampler_iface_rate(const struct sampler *s, const char *iface,
                                          const struct hal_net_iface **ret_iface) {
        const struct host_sample *h = &s->cur;

        if (!h->has_net)
                return NULL;
        for (size_t i = 0; i < h->net.n; i++)
                if (strcmp(h->net.ifaces[i].name, iface) == 0) {
                        if (ret_iface)
                                *ret_iface = &h->net.ifaces[i];
                        return &h->net_rates[i];
                }
        return NULL;
}
