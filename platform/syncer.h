/* syncer.h: fdatasync off the caller's thread: one worker, one request at a time, its end signalled
 * on an eventfd the caller's event loop watches. For a log whose records are already durable
 * elsewhere until this sync ends (the meter's journal), so that the loop never waits on it. */
#pragma once

#include <stdbool.h>

struct plat_syncer;

/* Starts the worker. Returns 0 or -errno (-ENOMEM, or what pthread_create or eventfd said). */
int plat_syncer_new(struct plat_syncer **ret);

/* Waits for a request in flight, stops the worker, frees. NULL is a no-op. */
void plat_syncer_free(struct plat_syncer *s);

/* Readable (EPOLLIN) when a request has ended; plat_syncer_collect then takes its result. Borrowed:
 * valid until plat_syncer_free. */
int plat_syncer_fd(const struct plat_syncer *s);

/* fdatasync(fd) on the worker. Takes ownership of fd (closed by the syncer once synced), also on
 * failure. Returns 0, or -EBUSY while a request is in flight (one at a time: the caller coalesces). */
int plat_syncer_start(struct plat_syncer *s, int fd);

/* Whether a request is in flight (started and not collected). */
bool plat_syncer_busy(const struct plat_syncer *s);

/* The ended request's result: returns 1 with *ret_err 0 or -errno (fdatasync's), 0 when it has not
 * ended yet (or none is in flight; *ret_err untouched). With wait, blocks until it has ended. */
int plat_syncer_collect(struct plat_syncer *s, bool wait, int *ret_err);
