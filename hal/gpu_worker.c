/* gpu_worker.c: one worker thread owning the host's GPUs; mutex + condition variables inside, an
 * eventfd out. The caller only ever waits on it with a bound it chose. */
#include "gpu_worker.h"

#include "clock.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define WARN_MAX 4
#define WARN_LEN (HAL_GPU_ERR_MAX + 128)
#define WHAT_LEN 160

struct hal_gpu_worker {
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t wake, done_cond;
        int efd;
        int root_fd; /* borrowed */
        struct hal_gpu_options opts;
        char *nvml_path; /* opts.nvml_path's copy, owned */

        /* Written by the worker only; read by the caller once `opened` is set. */
        struct hal_gpus *gpus;
        unsigned count;
        struct hal_gpu_sample *work; /* count entries, the worker's scratch */

        /* Under lock. */
        bool opened, open_taken;
        size_t n_warn;
        char warn[WARN_MAX][WARN_LEN];
        bool want;   /* a sample is requested and not begun */
        bool busy;   /* the worker is in the open or a sample */
        bool result; /* an ended sample waits in `out` */
        bool stop, abandoned;
        uint64_t ended_usec, since_usec;
        char what[WHAT_LEN];
        struct hal_gpu_sample *out; /* count entries */
};

static void destroy(struct hal_gpu_worker *w) {
        hal_gpus_free(w->gpus);
        close(w->efd);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->wake);
        pthread_cond_destroy(&w->done_cond);
        free(w->work);
        free(w->out);
        free(w->nvml_path);
        free(w);
}

static void take_warning(const char *msg, void *ud) {
        struct hal_gpu_worker *w = ud;

        pthread_mutex_lock(&w->lock);
        if (w->n_warn < WARN_MAX)
                snprintf(w->warn[w->n_warn++], WARN_LEN, "%s", msg);
        pthread_mutex_unlock(&w->lock);
}

/* Called with the lock held. */
static void signal_end(struct hal_gpu_worker *w) {
        uint64_t one = 1;

        w->busy = false;
        pthread_cond_broadcast(&w->done_cond);
        /* Cannot fail short of a counter at its limit, which one write per request never reaches:
         * the reader resets it each time. */
        (void)!write(w->efd, &one, sizeof(one));
}

static void set_what(struct hal_gpu_worker *w, unsigned i) {
        const char *name = w->out && w->out[i].name[0] ? w->out[i].name : NULL;

        pthread_mutex_lock(&w->lock);
        if (name)
                snprintf(w->what, sizeof(w->what), "sampling GPU %u (%s)", i, name);
        else
                snprintf(w->what, sizeof(w->what), "sampling GPU %u", i);
        w->since_usec = plat_now_mono_usec();
        pthread_mutex_unlock(&w->lock);
}

static void sample_all(struct hal_gpu_worker *w) {
        for (unsigned i = 0; i < w->count; i++) {
                struct hal_gpu_sample *g = &w->work[i];
                int r;

                set_what(w, i);
                hal_gpu_sample_clear(g);
                r = hal_gpus_sample(w->gpus, i, g);
                if (r < 0 && g->error == 0) {
                        g->error = r;
                        snprintf(g->error_msg, sizeof(g->error_msg), "backend failed: %s", strerror(-r));
                }
        }
}

static void *worker(void *arg) {
        struct hal_gpu_worker *w = arg;
        struct hal_gpus *g = NULL;
        bool abandoned;
        int r;

        r = hal_gpus_open(w->root_fd, &w->opts, &g, take_warning, w);
        w->gpus = r >= 0 ? g : NULL;
        w->count = hal_gpus_count(w->gpus);
        if (w->count) {
                w->work = calloc(w->count, sizeof(*w->work));
                w->out = calloc(w->count, sizeof(*w->out));
                if (!w->work || !w->out) {
                        take_warning("out of memory for the GPU samples; GPUs are not sampled", w);
                        w->count = 0;
                }
        }
        if (r < 0) {
                char msg[WARN_LEN];

                snprintf(msg, sizeof(msg), "cannot open the GPU backends: %s", strerror(-r));
                take_warning(msg, w);
        }

        pthread_mutex_lock(&w->lock);
        w->opened = true;
        signal_end(w);
        for (;;) {
                while (!w->want && !w->stop)
                        pthread_cond_wait(&w->wake, &w->lock);
                if (w->stop)
                        break;
                w->want = false;
                pthread_mutex_unlock(&w->lock);
                sample_all(w);
                pthread_mutex_lock(&w->lock);
                hal_gpu_samples_copy(w->out, w->work, w->count);
                w->ended_usec = plat_now_mono_usec();
                w->result = true;
                signal_end(w);
        }
        abandoned = w->abandoned;
        pthread_mutex_unlock(&w->lock);
        if (abandoned)
                destroy(w); /* the caller left while this thread was in a call: nobody else will */
        return NULL;
}

int hal_gpu_worker_new(int root_fd, const struct hal_gpu_options *o, struct hal_gpu_worker **ret) {
        struct hal_gpu_worker *w = calloc(1, sizeof(*w));
        pthread_condattr_t ca;
        sigset_t all, old;
        int r;

        if (!w)
                return -ENOMEM;
        w->root_fd = root_fd;
        w->opts = *o;
        if (o->nvml_path) {
                w->nvml_path = strdup(o->nvml_path);
                if (!w->nvml_path) {
                        free(w);
                        return -ENOMEM;
                }
                w->opts.nvml_path = w->nvml_path;
        }
        w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->efd < 0) {
                r = -errno;
                free(w->nvml_path);
                free(w);
                return r;
        }
        pthread_mutex_init(&w->lock, NULL);
        /* Waits are bounded on the monotonic clock: a wall-clock step must not stretch them. */
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&w->wake, NULL);
        pthread_cond_init(&w->done_cond, &ca);
        pthread_condattr_destroy(&ca);
        w->busy = true;
        snprintf(w->what, sizeof(w->what), "opening the GPU backends");
        w->since_usec = plat_now_mono_usec();
        /* The worker takes no signals: the caller's loop handles them (sd-event blocks them in its own
         * thread only, and a worker created before that would otherwise get the default action). */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        r = -pthread_create(&w->thread, NULL, worker, w);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r < 0) {
                destroy(w);
                return r;
        }
        *ret = w;
        return 0;
}

void hal_gpu_worker_free(struct hal_gpu_worker *w) {
        bool busy;

        if (!w)
                return;
        pthread_mutex_lock(&w->lock);
        w->stop = true;
        busy = w->busy;
        w->abandoned = busy;
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
        if (busy) {
                pthread_detach(w->thread);
                return;
        }
        pthread_join(w->thread, NULL);
        destroy(w);
}

int hal_gpu_worker_fd(const struct hal_gpu_worker *w) {
        return w->efd;
}

/* Waits on done_cond, with the lock held, until done() or the deadline. */
static void wait_until(struct hal_gpu_worker *w, uint64_t timeout_usec,
                       bool (*done)(const struct hal_gpu_worker *)) {
        struct timespec ts;

        if (timeout_usec == 0)
                return;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)(timeout_usec / USEC_PER_SEC);
        ts.tv_nsec += (long)(timeout_usec % USEC_PER_SEC) * 1000;
        if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
        }
        while (!done(w))
                if (pthread_cond_timedwait(&w->done_cond, &w->lock, &ts) == ETIMEDOUT)
                        break;
}

static bool is_opened(const struct hal_gpu_worker *w) {
        return w->opened;
}

static bool has_result(const struct hal_gpu_worker *w) {
        return w->result;
}

static void drain(struct hal_gpu_worker *w) {
        uint64_t n;

        (void)!read(w->efd, &n, sizeof(n)); /* reset: the next end wakes the caller's loop again */
}

int hal_gpu_worker_opened(struct hal_gpu_worker *w, uint64_t timeout_usec, unsigned *ret_count,
                          void (*warn)(const char *msg, void *ud), void *ud) {
        char msgs[WARN_MAX][WARN_LEN];
        size_t n = 0;
        bool first;

        pthread_mutex_lock(&w->lock);
        wait_until(w, timeout_usec, is_opened);
        if (!w->opened) {
                pthread_mutex_unlock(&w->lock);
                return 0;
        }
        first = !w->open_taken;
        w->open_taken = true;
        if (first) {
                n = w->n_warn;
                memcpy(msgs, w->warn, n * sizeof(msgs[0]));
        }
        pthread_mutex_unlock(&w->lock);
        if (first)
                drain(w);
        for (size_t k = 0; warn && k < n; k++)
                warn(msgs[k], ud);
        *ret_count = w->count;
        return 1;
}

int hal_gpu_worker_start(struct hal_gpu_worker *w) {
        pthread_mutex_lock(&w->lock);
        if (w->busy || !w->opened) {
                pthread_mutex_unlock(&w->lock);
                return -EBUSY;
        }
        w->want = true;
        w->busy = true;
        w->result = false;
        w->since_usec = plat_now_mono_usec();
        snprintf(w->what, sizeof(w->what), "sampling the GPUs");
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
        return 0;
}

int hal_gpu_worker_collect(struct hal_gpu_worker *w, uint64_t timeout_usec, struct hal_gpu_sample *ret,
                           uint64_t *ret_ended_usec) {
        pthread_mutex_lock(&w->lock);
        wait_until(w, timeout_usec, has_result);
        if (!w->result) {
                pthread_mutex_unlock(&w->lock);
                return 0;
        }
        w->result = false;
        hal_gpu_samples_copy(ret, w->out, w->count);
        *ret_ended_usec = w->ended_usec;
        pthread_mutex_unlock(&w->lock);
        drain(w);
        return 1;
}

bool hal_gpu_worker_busy(struct hal_gpu_worker *w, char *what, size_t len, uint64_t *ret_since_usec) {
        bool busy;

        pthread_mutex_lock(&w->lock);
        busy = w->busy;
        if (busy) {
                snprintf(what, len, "%s", w->what);
                *ret_since_usec = w->since_usec;
        }
        pthread_mutex_unlock(&w->lock);
        return busy;
}
