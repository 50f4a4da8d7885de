/* sampler_gpu.c: the sampler's GPUs, read on hal's GPU worker thread so that a stuck driver costs
 * the loop nothing: each tick publishes the last complete sample with its age, and names a stuck call. */
#include "sampler.h"
#include "sampler_internal.h"

#include "clock.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sampler__close_gpus(struct sampler *s) {
        hal_gpu_worker_free(s->gpu_worker);
        free(s->gpus);
        free(s->gpu_errors);
        s->gpu_worker = NULL;
        s->gpus = NULL;
        s->gpu_errors = NULL;
        s->n_gpus = 0;
        s->gpus_opened = s->gpus_sampled = false;
        s->gpu_stuck[0] = '\0';
}

void sampler_set_event(struct sampler *s, void (*event)(const char *type, cJSON *fields, void *ud),
                       void *ud) {
        s->event = event;
        s->event_ud = ud;
}

/* Takes the worker's ended open: the GPU arrays are sized by it. */
static int take_open(struct sampler *s, uint64_t timeout_usec, void (*warn)(const char *msg, void *ud),
                     void *ud) {
        unsigned n;

        if (hal_gpu_worker_opened(s->gpu_worker, timeout_usec, &n, warn, ud) == 0)
                return -ETIMEDOUT;
        if (n) {
                /* After a failed allocation the next tick tries again: nothing of this one stays. */
                free(s->gpus);
                free(s->gpu_errors);
                s->gpus = calloc(n, sizeof(*s->gpus));
                s->gpu_errors = calloc(n, sizeof(*s->gpu_errors));
                if (!s->gpus || !s->gpu_errors)
                        return -ENOMEM;
        }
        s->n_gpus = n;
        s->gpus_opened = true;
        if (!n) {
                /* No GPU: nothing will ever be asked of the worker, so its thread goes (its stack and
                 * malloc arena would stay in the agent's memory); a reload opens the backends anew. */
                hal_gpu_worker_free(s->gpu_worker);
                s->gpu_worker = NULL;
        }
        if (n && hal_gpu_worker_start(s->gpu_worker) < 0)
                return -EBUSY; /* unreachable: the open has ended and nothing else was asked */
        return (int)n;
}

/* One GPU failing (lost, forbidden, a malformed sysfs file) is logged once per distinct
 * reason; the other GPUs and the host metrics carry on. */
static void log_gpu_errors(struct sampler *s) {
        for (unsigned i = 0; i < s->n_gpus; i++) {
                const struct hal_gpu_sample *g = &s->gpus[i];

                if (g->error < 0 && strcmp(s->gpu_errors[i], g->error_msg) != 0) {
                        log_warn("GPU %u (%s): %s; %s", i, g->name[0] ? g->name : "?", g->error_msg,
                                 g->present ? "its other metrics are still reported"
                                            : "left out of telemetry");
                        snprintf(s->gpu_errors[i], sizeof(s->gpu_errors[i]), "%s", g->error_msg);
                } else if (g->error == 0 && s->gpu_errors[i][0]) {
                        log_notice("GPU %u (%s) reads again", i, g->name);
                        s->gpu_errors[i][0] = '\0';
                }
        }
}

static bool take_sample(struct sampler *s, uint64_t timeout_usec) {
        uint64_t ended;

        if (!s->gpus_opened || s->n_gpus == 0 ||
            hal_gpu_worker_collect(s->gpu_worker, timeout_usec, s->gpus, &ended) == 0)
                return false;
        s->gpus_sampled = true;
        s->gpu_sample_usec = ended;
        log_gpu_errors(s);
        return true;
}

static void emit(struct sampler *s, const char *type, const char *call, const char *key, uint64_t usec) {
        cJSON *f;

        if (!s->event)
                return;
        f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "call", call);
        cJSON_AddNumberToObject(f, key, (double)(usec / USEC_PER_MSEC));
        s->event(type, f, s->event_ud);
}

/* A call past the deadline is said once, when it is found, and once when the worker is back. */
static void check_stuck(struct sampler *s, uint64_t now) {
        char what[sizeof(s->gpu_stuck)];
        uint64_t since = 0;
        bool stuck = hal_gpu_worker_busy(s->gpu_worker, what, sizeof(what), &since) && now > since &&
                     now - since > s->gpu_deadline_usec;

        if (stuck && !s->gpu_stuck[0]) {
                snprintf(s->gpu_stuck, sizeof(s->gpu_stuck), "%s", what);
                s->gpu_stuck_since = since;
                log_warn("GPU driver stuck: %s has not returned for %" PRIu64 " ms; GPU figures stay those "
                         "of the last complete sample, marked stale; admission and telemetry go on",
                         what, (now - since) / USEC_PER_MSEC);
                emit(s, "gpu_driver_stuck", what, "for_ms", now - since);
        } else if (!stuck && s->gpu_stuck[0]) {
                log_notice("GPU driver back: %s returned after %" PRIu64 " ms", s->gpu_stuck,
                           (now - s->gpu_stuck_since) / USEC_PER_MSEC);
                emit(s, "gpu_driver_recovered", s->gpu_stuck, "stuck_ms", now - s->gpu_stuck_since);
                s->gpu_stuck[0] = '\0';
        }
}

int sampler_open_gpus(struct sampler *s, const struct hal_gpu_options *o, uint64_t deadline_usec,
                      uint64_t timeout_usec, void (*warn)(const char *msg, void *ud), void *ud) {
        uint64_t t0 = plat_now_mono_usec(), spent;
        int r, n;

        sampler__close_gpus(s);
        s->gpu_deadline_usec = deadline_usec;
        r = hal_gpu_worker_new(s->root_fd, o, &s->gpu_worker);
        if (r < 0)
                return r;
        n = take_open(s, timeout_usec, warn, ud);
        if (n <= 0)
                return n;
        spent = plat_now_mono_usec() - t0;
        take_sample(s, spent < timeout_usec ? timeout_usec - spent : 1);
        return n;
}

void sampler__tick_gpus(struct sampler *s, struct host_sample *h) {
        uint64_t now = h->mono_usec;

        if (!s->gpu_worker)
                return;
        if (!s->gpus_opened) {
                int r = take_open(s, 0, NULL, NULL);

                if (r > 0)
                        log_notice("the GPU backends opened late: %d GPU%s found", r, r == 1 ? "" : "s");
                else if (r == -ENOMEM)
                        log_err("out of memory for the GPU samples; GPUs are not sampled");
                if (!s->gpu_worker)
                        return; /* the open ended late with no GPU: the worker is gone */
        }
        take_sample(s, 0);
        if (s->gpus_opened && s->n_gpus)
                (void)hal_gpu_worker_start(s->gpu_worker); /* -EBUSY: the last request is still on */
        check_stuck(s, now);
        if (!s->gpus_sampled)
                return;
        h->n_gpus = s->n_gpus;
        h->gpus = s->gpus;
        h->gpu_age_usec = now > s->gpu_sample_usec ? now - s->gpu_sample_usec : 0;
        h->gpus_stale = h->gpu_age_usec > 2 * s->gpu_deadline_usec;
}

cJSON *sampler_gpu_status_json(const struct sampler *s) {
        cJSON *o = cJSON_CreateObject();
        uint64_t now = plat_now_mono_usec();

        cJSON_AddNumberToObject(o, "count", s->n_gpus);
        cJSON_AddBoolToObject(o, "opened", s->gpus_opened || !s->gpu_worker);
        if (s->gpus_sampled) {
                cJSON_AddNumberToObject(o, "age_ms", (double)((now - s->gpu_sample_usec) / USEC_PER_MSEC));
                cJSON_AddBoolToObject(o, "stale", s->cur.gpus_stale);
        }
        if (s->gpu_stuck[0]) {
                cJSON_AddStringToObject(o, "stuck", s->gpu_stuck);
                cJSON_AddNumberToObject(o, "stuck_ms", (double)((now - s->gpu_stuck_since) / USEC_PER_MSEC));
        }
        return o;
}
