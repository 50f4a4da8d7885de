/* syncer.c: one worker thread for fdatasync; mutex + condition variables inside, an eventfd out. */
#include "syncer.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct plat_syncer {
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t wake, done_cond;
        int efd;
        int fd;       /* the request's descriptor; -1 when none is queued */
        bool running; /* the worker holds a request */
        bool done;    /* the worker finished one that was not collected yet */
        bool busy;    /* started and not collected (the caller's view) */
        bool stop;
        int err;
};

static void *worker(void *arg) {
        struct plat_syncer *s = arg;

        pthread_mutex_lock(&s->lock);
        for (;;) {
                int fd, err = 0;
                uint64_t one = 1;

                while (s->fd < 0 && !s->stop)
                        pthread_cond_wait(&s->wake, &s->lock);
                if (s->fd < 0)
                        break;
                fd = s->fd;
                s->fd = -1;
                s->running = true;
                pthread_mutex_unlock(&s->lock);
                if (fdatasync(fd) < 0)
                        err = -errno;
                close(fd);
                pthread_mutex_lock(&s->lock);
                s->running = false;
                s->done = true;
                s->err = err;
                pthread_cond_broadcast(&s->done_cond);
                /* Cannot fail short of a counter at its limit, which one write per request never
                 * reaches: the reader resets it each time. */
                (void)!write(s->efd, &one, sizeof(one));
        }
        pthread_mutex_unlock(&s->lock);
        return NULL;
}

int plat_syncer_new(struct plat_syncer **ret) {
        struct plat_syncer *s = calloc(1, sizeof(*s));
        int r;

        if (!s)
                return -ENOMEM;
        s->fd = -1;
        s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->efd < 0) {
                r = -errno;
                free(s);
                return r;
        }
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->wake, NULL);
        pthread_cond_init(&s->done_cond, NULL);
        r = -pthread_create(&s->thread, NULL, worker, s);
        if (r < 0) {
                close(s->efd);
                pthread_mutex_destroy(&s->lock);
                pthread_cond_destroy(&s->wake);
                pthread_cond_destroy(&s->done_cond);
                free(s);
                return r;
        }
        *ret = s;
        return 0;
}

void plat_syncer_free(struct plat_syncer *s) {
        if (!s)
                return;
        pthread_mutex_lock(&s->lock);
        s->stop = true; /* a queued request still runs: the worker only stops when it has none */
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->thread, NULL);
        close(s->efd);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->wake);
        pthread_cond_destroy(&s->done_cond);
        free(s);
}

int plat_syncer_fd(const struct plat_syncer *s) {
        return s->efd;
}

bool plat_syncer_busy(const struct plat_syncer *s) {
        return s->busy;
}

int plat_syncer_start(struct plat_syncer *s, int fd) {
        if (s->busy) {
                close(fd);
                return -EBUSY;
        }
        pthread_mutex_lock(&s->lock);
        s->fd = fd;
        s->done = false;
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->lock);
        s->busy = true;
        return 0;
}

int plat_syncer_collect(struct plat_syncer *s, bool wait, int *ret_err) {
        uint64_t n;

        if (!s->busy)
                return 0;
        pthread_mutex_lock(&s->lock);
        while (wait && !s->done)
                pthread_cond_wait(&s->done_cond, &s->lock);
        if (!s->done) {
                pthread_mutex_unlock(&s->lock);
                return 0;
        }
        s->done = false;
        *ret_err = s->err;
        pthread_mutex_unlock(&s->lock);
        (void)!read(s->efd, &n, sizeof(n)); /* reset: the next request's end wakes the loop again */
        s->busy = false;
        return 1;
}
