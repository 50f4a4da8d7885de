/* agent_tick.c: the sampling tick: the host and the slots sampled, the scale watch, telemetry
 * folded into the interval's document and published when it is due, the gauges, the status when
 * its facts changed; and the GPUs opened on the sampler's worker. */
#include "agent_internal.h"

#include "cleanup.h"
#include "clock.h"
#include "config.h"
#include "gauges.h"
#include "log.h"
#include "meter.h"

#include <inttypes.h>
#include <string.h>

/* The plan needs what the host offers, so it is made on the first sample, and again at once
 * after a reload (from the last sample): until then no slot is admissible. */
void agent__plan(struct agent *a) {
        struct spec_host host;

        if (a->watch.planned || a->sampler.tick == 0)
                return;
        watch_host_from_sample(a->cfg, &a->platform, &a->sampler.cur, &host);
        watch_plan(&a->watch, a->cfg, &host);
}

/* The agent's own cost, for status and telemetry: a part that cannot be read is left out. */
void agent__self_cost(struct agent *a, struct tele_self *ret) {
        char why[128];
        uint64_t now = plat_now_mono_usec();

        *ret = (struct tele_self){ .has_tick = a->ticks.count > 0,
                                   .tick_usec = a->ticks.last_usec,
                                   .tick_max_usec = tele_ticks_max(&a->ticks, now) };
        ret->has_usage = plat_self_read(&a->self, &ret->usage, why, sizeof(why)) >= 0;
        ret->has_clock = clocksync_read(&ret->clock) >= 0;
        if (!ret->has_usage && !a->self_unreadable) {
                a->self_unreadable = true;
                log_warn("cannot read the agent's own cost: %s; status and telemetry go without it", why);
        }
        if (a->meter) {
                ret->has_spool = true;
                meter_backlog(a->meter, &ret->spool_records, &ret->spool_bytes);
        }
}

static int publish_gauge(void *userdata, const char *topic, const char *payload) {
        struct agent *a = userdata;

        return link_publish(a->link, topic, payload, strlen(payload), 0, false);
}

/* The gauges come from one sample, every sampling.gauges_every-th. */
static bool gauges_due(const struct agent *a) {
        return a->cfg->sampling_gauges_every && a->telemetry_seq % a->cfg->sampling_gauges_every == 0;
}

static void publish_gauges(struct agent *a, const struct tele_self *self) {
        _cleanup_free_ char *doc = NULL;

        if (!gauges_due(a))
                return;
        doc = tele_telemetry_json(a->cfg, &a->sampler, &a->usage, &a->watch, a->telemetry_seq, self);
        if (doc)
                (void)gauges_publish(a->cfg, doc, a->sessions ? sessions_slots(a->sessions) : NULL,
                                     publish_gauge, a);
}

static void sample(struct agent *a) {
        _cleanup_free_ char *doc = NULL;
        struct tele_self self;
        bool due;

        sampler_tick(&a->sampler);
        hal_platform_note_gpus(&a->platform, a->sampler.n_gpus); /* GPUs whose open ended late */
        usage_tick(&a->usage, &a->sampler, a->sampler.cur.mono_usec);
        for (size_t i = 0; a->meter && i < a->slots.n; i++) /* for each session_end's "streams" */
                if (slot_at(&a->slots, i)->usage)
                        meter_streams(a->meter, i, slot_at(&a->slots, i)->usage, a->sampler.cur.gpus_stale);
        agent__plan(a);
        watch_tick(&a->watch, a->cfg, &a->sampler, a->sampler.cur.mono_usec);
        a->telemetry_seq++;
        agent__announce(a, false);
        (void)tele_agg_add(&a->agg, &a->sampler); /* ENOMEM: a sample short */
        due = (uint64_t)a->agg.samples * a->cfg->sampling_interval_ms >= a->cfg->telemetry_interval_ms;
        if (link_get_state(a->link) != LINK_CONNECTED)
                goto next; /* telemetry is "latest wins": nothing is queued while offline */
        agent__status_refresh(a);
        /* ...nor behind a broker slower than the stream: libmosquitto would queue documents without
         * bound and metering would fall behind them. This one is skipped. */
        if (link_backlogged(a->link)) {
                a->telemetry_skipped += due;
                goto next;
        }
        /* The agent's own cost is read only for a document that carries it (the telemetry every
         * telemetry.interval_ms, the gauges every gauges_every-th sample): at the defaults one tick
         * in ten, not every tick. */
        if (!due && !gauges_due(a))
                return;
        agent__self_cost(a, &self);
        publish_gauges(a, &self);
        if (!due)
                return;
        doc = tele_agg_json(&a->agg, a->cfg, &a->sampler, a->telemetry_seq, &self);
        if (doc && link_publish(a->link, a->topic_telemetry, doc, strlen(doc), 0, false) >= 0)
                a->telemetry_published++;
next:
        if (due)
                tele_agg_next(&a->agg);
}

int agent__on_sample(sd_event_source *s, uint64_t usec, void *ud) {
        struct agent *a = ud;
        uint64_t interval = a->cfg->sampling_interval_ms * USEC_PER_MSEC, t0 = plat_now_mono_usec(), t1;

        /* Fixed cadence: the next tick is due one interval after this one was due, so the
         * schedule does not drift by the handler's own run time; after a stall, skip ahead. */
        a->next_sample_usec += interval;
        if (a->next_sample_usec <= usec)
                a->next_sample_usec = usec + interval;
        sd_event_source_set_time(s, a->next_sample_usec);
        sample(a);
        /* Its own cost, from the handler's start to its end: a telemetry document carries the
         * previous tick's, the one that has ended. */
        t1 = plat_now_mono_usec();
        tele_ticks_add(&a->ticks, t1, t1 - t0);
        return 0;
}

static void log_gpu_warning(const char *msg, void *ud) {
        (void)ud;
        log_warn("GPU: %s; other GPUs and metrics carry on", msg);
}

/* Opens the GPU backends that apply to this host on the sampler's GPU worker. NVML's init may hang in
 * the driver: past GPU_OPEN_TIMEOUT the agent goes on without GPUs, and they join when it returns. */
int agent__open_gpus(struct agent *a) {
        /* NVML describes this machine's driver, not a captured tree given with --root, unless
         * the config names a library on purpose. */
        struct hal_gpu_options o = { .nvml_path = a->cfg->gpu.nvml_library,
                                     .no_nvml = strcmp(a->root, "/") != 0 && !a->cfg->gpu.nvml_library };
        uint64_t deadline = a->cfg->sampling_interval_ms * USEC_PER_MSEC;
        int r;

        r = sampler_open_gpus(&a->sampler, &o, deadline > USEC_PER_SEC ? deadline : USEC_PER_SEC,
                              GPU_OPEN_TIMEOUT_USEC, log_gpu_warning, NULL);
        if (r == -ETIMEDOUT) {
                log_warn("GPU backends: still opening after %" PRIu64 " s (a driver stuck in nvmlInit?); "
                         "the agent starts without GPUs, they join when the driver answers",
                         GPU_OPEN_TIMEOUT_USEC / USEC_PER_SEC);
                return 0;
        }
        if (r < 0)
                return r;
        hal_platform_note_gpus(&a->platform, (unsigned)r);
        log_info("%d GPU%s found", r, r == 1 ? "" : "s");
        return 0;
}
