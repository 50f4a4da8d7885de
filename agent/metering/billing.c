/* billing.c: billing windows: peak concurrency per wall-clock window and bandwidth per minute, pure math. */
#include "billing_internal.h"

#include "strutil.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const flow_names[BILLING_FLOWS] = {
        [BILLING_PLAYER] = "player",
        [BILLING_VIEWERS] = "viewers",
        [BILLING_PUSH] = "push",
};

const char *billing_flow_str(enum billing_flow f) {
        return (unsigned)f < BILLING_FLOWS ? flow_names[f] : NULL;
}

void billing_config_default(struct billing_config *c) {
        c->window_usec = BILLING_WINDOW_DEFAULT_USEC;
        c->late_usec = BILLING_LATE_DEFAULT_USEC;
}

static uint64_t align_down(uint64_t t, uint64_t unit) {
        return t / unit * unit;
}

static bool valid_time(struct billing_time t) {
        return t.mono_usec <= BILLING_TIME_MAX_USEC && t.real_usec <= BILLING_TIME_MAX_USEC;
}

/* Where the monotonic instant `mono` lies on the wall-clock line, before holding. */
static uint64_t line_pos(const struct billing *b, uint64_t mono) {
        int64_t p = (int64_t)mono + b->off;

        return p > 0 ? (uint64_t)p : 0;
}

static void emit_record(struct billing *b, const struct billing_record *r) {
        b->busy = true;
        b->emit(b->userdata, r);
        b->busy = false;
        b->stats.records++;
}

/* ---- concurrency windows ---- */

/* The pair of (project, scale), or NULL. */
static struct pair *pair_find(struct billing *b, const char *project, size_t scale) {
        for (size_t i = 0; i < b->n_pairs; i++)
                if (b->pairs[i].scale == scale && !strcmp(b->pairs[i].project, project))
                        return &b->pairs[i];
        return NULL;
}

/* The pair of (project, scale), added when new; past the cap, BILLING_OTHER_PROJECT's. */
static struct pair *pair_get(struct billing *b, const char *project, size_t scale) {
        struct pair *p = pair_find(b, project, scale);

        if (p)
                return p;
        if (b->n_pairs >= BILLING_PROJECTS_MAX) {
                project = BILLING_OTHER_PROJECT;
                p = pair_find(b, project, scale);
                if (p)
                        return p;
        }
        /* Room: at most BILLING_PROJECTS_MAX named pairs, then one per scale. */
        p = &b->pairs[b->n_pairs++];
        *p = (struct pair){ .scale = scale };
        plat_strlcpy(p->project, project, sizeof(p->project));
        return p;
}

/* A window opens with the occupancy carried in: that is its peak until something starts. */
static void window_open(struct billing *b, uint64_t start) {
        size_t k = 0;

        b->win = (struct billing_window){
                .start_usec = start,
                .window_usec = b->window_usec,
                .n_windows = 1,
                .peak = b->count,
                .n_scales = b->n_scales,
                .scales = b->fig,
                .clock_synced = b->sync_now,
                .clock_est_error_us = b->err_now,
        };
        for (size_t i = 0; i < b->n_scales; i++)
                b->fig[i] =
                        (struct billing_scale_figures){ .scale = b->scales[i], .peak = b->scale_count[i] };
        /* Pairs no longer occupied are done: only those carried in start the new window. */
        for (size_t i = 0; i < b->n_pairs; i++) {
                if (b->pairs[i].count == 0)
                        continue;
                b->pairs[k] = b->pairs[i];
                b->pairs[k].peak = b->pairs[k].count;
                b->pairs[k++].slot_usec = 0;
        }
        b->n_pairs = k;
}

static void window_emit(struct billing *b) {
        struct billing_record r;

        for (size_t i = 0; i < b->n_pairs; i++)
                b->pfig[i] = (struct billing_project_figures){ .project = b->pairs[i].project,
                                                               .scale = b->scales[b->pairs[i].scale],
                                                               .peak = b->pairs[i].peak,
                                                               .slot_usec = b->pairs[i].slot_usec };
        b->win.n_projects = b->n_pairs;
        b->win.projects = b->pfig;
        r = (struct billing_record){ .kind = BILLING_WINDOW, .window = b->win };

        emit_record(b, &r);
}

/* dt microseconds pass at the current occupancy, inside the open window. */
static void accrue(struct billing *b, uint64_t dt) {
        if (dt == 0)
                return;
        b->win.covered_usec += dt;
        b->win.slot_usec += b->count * dt;
        for (size_t i = 0; i < b->n_scales; i++)
                b->fig[i].slot_usec += b->scale_count[i] * dt;
        for (size_t i = 0; i < b->n_pairs; i++)
                b->pairs[i].slot_usec += b->pairs[i].count * dt;
}

/* Time flows from pos to target: each window end passed closes that window. */
static void run_to(struct billing *b, uint64_t target) {
        for (;;) {
                uint64_t end = b->win.start_usec + b->window_usec;

                if (target < end)
                        break;
                accrue(b, end - b->pos);
                b->pos = end;
                window_emit(b);
                window_open(b, end);
        }
        accrue(b, target - b->pos);
        b->pos = target;
}

/* The wall clock stepped forward to target: no time passes. The open window closes at the step;
 * the windows it jumped over wholly go out as one record (n_windows of them, covered 0, the
 * occupancy carried through them as their peak), however far the step. */
static void jump_to(struct billing *b, uint64_t target) {
        uint64_t end = b->win.start_usec + b->window_usec;
        uint64_t start = align_down(target, b->window_usec);

        if (target >= end) {
                window_emit(b);
                if (start > end) {
                        window_open(b, end);
                        b->win.n_windows = (start - end) / b->window_usec;
                        b->win.clock_step = true;
                        window_emit(b);
                }
                window_open(b, start);
                b->win.clock_step = true;
        }
        b->pos = target;
}

/* ---- bandwidth minutes ---- */

/* The oldest minute still open: a minute closes once pos is late_usec past its end, and minutes
 * before the module started were never open. */
static uint64_t minute_lo(const struct billing *b) {
        uint64_t lim = BILLING_MINUTE_USEC + b->late_usec;
        uint64_t lo =
                b->pos >= lim ? align_down(b->pos - lim, BILLING_MINUTE_USEC) + BILLING_MINUTE_USEC : 0;

        return max_u64(lo, b->first_minute);
}

/* The ring entry of open minute `start` (minute_lo <= start <= pos). The ring has room for every
 * open minute, so an entry in use for another minute has been closed already. */
static struct minute *minute_get(struct billing *b, uint64_t start) {
        struct minute *m = &b->ring[start / BILLING_MINUTE_USEC % b->n_ring];

        if (m->active && m->start == start)
                return m;
        assert(!m->active);
        memset(m->slots, 0, b->n_slots * sizeof(*m->slots));
        m->active = true;
        m->start = start;
        m->clock_step = false;
        m->partial = start == b->first_minute && b->first_partial;
        m->clock_synced = b->sync_now;
        m->clock_err = b->err_now;
        return m;
}

static struct minute *minute_current(struct billing *b) {
        return minute_get(b, align_down(b->pos, BILLING_MINUTE_USEC));
}

uint64_t billing__flow_peak(const struct flow_acc *a) {
        uint64_t peak = a->late_peak;

        for (size_t i = 0; i < SECONDS_PER_MINUTE; i++)
                peak = max_u64(peak, a->sec[i]);
        return peak;
}

/* Slot i's part of open minute m as a record, when it has bytes. */
static void slot_minute_emit(struct billing *b, const struct minute *m, size_t i, bool early,
                             bool session_end) {
        const struct slot_minute *sm = &m->slots[i];
        struct billing_record r = { .kind = BILLING_MINUTE };

        if (!sm->any)
                return;
        r.minute = (struct billing_minute){
                .start_usec = m->start,
                .slot_id = b->ids[i],
                .slot = i,
                .clock_step = m->clock_step,
                .partial = m->partial || early,
                .session_end = session_end,
                .clock_synced = m->clock_synced,
                .clock_est_error_us = m->clock_err,
        };
        for (size_t f = 0; f < BILLING_FLOWS; f++)
                r.minute.flow[f] = (struct billing_flow_figures){
                        .bytes = sm->flow[f].bytes,
                        .late_bytes = sm->flow[f].late,
                        .peak_bytes_1s = billing__flow_peak(&sm->flow[f]),
                        .sec_bytes = sm->flow[f].sec,
                };
        r.minute.n_targets = billing__target_figures(b, m, i);
        r.minute.targets = b->tfig;
        emit_record(b, &r);
}

static void minute_emit(struct billing *b, struct minute *m) {
        for (size_t i = 0; i < b->n_slots; i++)
                slot_minute_emit(b, m, i, false, false);
        m->active = false;
}

/* Emits, oldest first, every open minute that starts before `before`. */
static void minutes_close(struct billing *b, uint64_t before) {
        for (;;) {
                struct minute *oldest = NULL;

                for (size_t i = 0; i < b->n_ring; i++) {
                        struct minute *m = &b->ring[i];

                        if (m->active && m->start < before && (!oldest || m->start < oldest->start))
                                oldest = m;
                }
                if (!oldest)
                        return;
                minute_emit(b, oldest);
        }
}

/* The figures of slot's flow f in m, and of its push target (NO_TARGET: none) in *ret_t, NULL then. */
static struct flow_acc *flow_at(struct minute *m, size_t slot, enum billing_flow f, size_t target,
                                struct flow_acc **ret_t) {
        m->slots[slot].any = true;
        *ret_t = target == NO_TARGET ? NULL : billing__target_acc(m, slot, target);
        return &m->slots[slot].flow[f];
}

/* amount bytes in the wall-clock second that holds t (an open minute). */
static void add_to_second(struct billing *b, size_t slot, enum billing_flow f, size_t target, uint64_t t,
                          uint64_t amount) {
        struct flow_acc *a, *ta;

        if (amount == 0)
                return;
        a = flow_at(minute_get(b, align_down(t, BILLING_MINUTE_USEC)), slot, f, target, &ta);
        for (; a; a = a == ta ? NULL : ta) {
                a->bytes += amount;
                a->sec[t % BILLING_MINUTE_USEC / SEC] += amount;
        }
}

/* amount bytes that moved over span_usec of closed minutes: they go to the current minute, and
 * count in its peak at their own average rate (over at least a second), not piled on one of its
 * seconds, which would make a peak nobody saw. */
static void add_late(struct billing *b, size_t slot, enum billing_flow f, size_t target, uint64_t amount,
                     uint64_t span_usec) {
        uint64_t rate = (uint64_t)((unsigned __int128)amount * SEC / max_u64(span_usec, SEC));
        struct flow_acc *a, *ta;

        if (amount == 0)
                return;
        a = flow_at(minute_current(b), slot, f, target, &ta);
        for (; a; a = a == ta ? NULL : ta) {
                a->bytes += amount;
                a->late += amount;
                a->late_peak = max_u64(a->late_peak, rate);
        }
        b->stats.late_bytes += amount;
}

/* The bytes of [start, start + span) up to start + part, rounded down: differences of these sum
 * to exactly `bytes` however the span is cut. */
static uint64_t share(uint64_t bytes, uint64_t part, uint64_t span) {
        return (uint64_t)((unsigned __int128)bytes * part / span);
}

/* The loop runs over open minutes only, a few hundred seconds at most, whatever the span. */
void billing__spread(struct billing *b, size_t slot, enum billing_flow f, size_t target, uint64_t bytes,
                     uint64_t span, uint64_t end) {
        uint64_t lo = minute_lo(b), start, x;

        span = span < end ? span : end;
        if (span == 0) {
                if (end < lo)
                        add_late(b, slot, f, target, bytes, 0);
                else
                        add_to_second(b, slot, f, target, end, bytes);
                return;
        }
        start = end - span;
        x = start;
        if (x < lo) {
                x = end < lo ? end : lo;
                add_late(b, slot, f, target, share(bytes, x - start, span), x - start);
        }
        while (x < end) {
                uint64_t next = align_down(x, SEC) + SEC;

                next = next < end ? next : end;
                add_to_second(b, slot, f, target, x,
                              share(bytes, next - start, span) - share(bytes, x - start, span));
                x = next;
        }
}

/* ---- the clock ---- */

/* Brings the module to `now`: time accrues, windows and minutes that ended close, and a wall-clock
 * step is detected and applied (docs/metering.md, "Clock steps"). */
static void sync_clock(struct billing *b, struct billing_time now) {
        uint64_t mono = max_u64(now.mono_usec, b->mono);
        uint64_t target = max_u64(line_pos(b, mono), b->pos);
        int64_t off, delta;

        /* Held after a backward step: the time passes where the module stands. */
        accrue(b, (mono - b->mono) - (target - b->pos));
        run_to(b, target);
        b->mono = mono;
        minutes_close(b, minute_lo(b));

        off = (int64_t)now.real_usec - (int64_t)now.mono_usec;
        delta = off - b->off;
        if (delta <= (int64_t)BILLING_STEP_TOLERANCE_USEC && delta >= -(int64_t)BILLING_STEP_TOLERANCE_USEC)
                return;
        b->off = off;
        if (delta > 0)
                b->stats.steps_forward++;
        else
                b->stats.steps_back++;
        b->stats.last_step_usec = now.real_usec;
        b->win.clock_step = true;
        minute_current(b)->clock_step = true;
        target = line_pos(b, mono);
        if (target <= b->pos)
                return; /* back (or forward, but not past a backward hold): wait for the wall clock */
        jump_to(b, target);
        minutes_close(b, minute_lo(b));
        minute_current(b)->clock_step = true;
}

/* ---- the calls ---- */

int billing__enter(const struct billing *b) {
        if (b->busy)
                return -EBUSY;
        if (b->closed)
                return -ESHUTDOWN;
        return 0;
}

static bool valid_name(const char *s, size_t max) {
        size_t n;

        if (!s)
                return false;
        n = strnlen(s, max + 1);
        if (n == 0 || n > max)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
                        return false;
        return true;
}

static const char *quoted(const char *s, char q[static PLAT_QUOTE_MAX]) {
        return s ? plat_quote(s, strnlen(s, PLAT_QUOTE_MAX), q) : "(null)";
}

static int check_slots(const struct billing_config *c, char *msg, size_t msg_len) {
        char q[PLAT_QUOTE_MAX];

        for (size_t i = 0; i < c->n_slots; i++) {
                if (!valid_name(c->slot_ids[i], BILLING_ID_MAX)) {
                        plat_errf(msg, msg_len, "billing: slot %zu: id '%s' is not 1..%d printable bytes", i,
                                  quoted(c->slot_ids[i], q), BILLING_ID_MAX);
                        return -EINVAL;
                }
                if (!valid_name(c->slot_scales[i], BILLING_SCALE_MAX)) {
                        plat_errf(msg, msg_len, "billing: slot %s: scale '%s' is not 1..%d printable bytes",
                                  c->slot_ids[i], quoted(c->slot_scales[i], q), BILLING_SCALE_MAX);
                        return -EINVAL;
                }
                for (size_t j = 0; j < i; j++)
                        if (strcmp(c->slot_ids[i], c->slot_ids[j]) == 0) {
                                plat_errf(msg, msg_len, "billing: slot id %s appears twice", c->slot_ids[i]);
                                return -EINVAL;
                        }
        }
        return 0;
}

static int check_config(const struct billing_config *c, char *msg, size_t msg_len) {
        uint64_t w = c->window_usec;

        if (!c->emit) {
                plat_errf(msg, msg_len, "billing: no emit callback");
                return -EINVAL;
        }
        if (c->n_slots == 0 || c->n_slots > BILLING_SLOTS_MAX || !c->slot_ids || !c->slot_scales) {
                plat_errf(msg, msg_len, "billing: %zu slots%s; 1..%d with ids and scales are allowed",
                          c->n_slots, c->slot_ids && c->slot_scales ? "" : " without ids or scales",
                          BILLING_SLOTS_MAX);
                return -EINVAL;
        }
        /* Windows must tile every UTC hour alike: window starts are then the same on every node, and
         * an hour's peak concurrency (what a resource pack deducts) is the largest of its windows'. */
        if (w % SEC != 0 || w < SEC || w > BILLING_HOUR_USEC || BILLING_HOUR_USEC % w != 0) {
                plat_errf(msg, msg_len,
                          "billing: window of %" PRIu64
                          " us: must be whole seconds that divide an hour (3600 s)",
                          w);
                return -EINVAL;
        }
        if (c->late_usec > BILLING_LATE_MAX_USEC) {
                plat_errf(msg, msg_len,
                          "billing: lateness of %" PRIu64 " us is over the limit of %" PRIu64 " s",
                          c->late_usec, BILLING_LATE_MAX_USEC / SEC);
                return -EINVAL;
        }
        return check_slots(c, msg, msg_len);
}

void billing_free(struct billing *b) {
        if (!b)
                return;
        free(b->ids);
        free(b->scales);
        free(b->scale_of);
        free(b->occupied);
        free(b->scale_count);
        free(b->project);
        free(b->pairs);
        free(b->pfig);
        free(b->fig);
        free(b->ring);
        free(b->minute_mem);
        free(b->target_mem);
        free(b->target_ids);
        free(b->tfig);
        free(b);
}

int billing_new(const struct billing_config *c, struct billing_time now, struct billing **ret, char *msg,
                size_t msg_len) {
        struct billing *b;
        size_t n;
        int r;

        if (!c || !ret)
                return -EINVAL;
        r = check_config(c, msg, msg_len);
        if (r < 0)
                return r;
        if (!valid_time(now)) {
                plat_errf(msg, msg_len, "billing: a time past the year 9999");
                return -EINVAL;
        }

        n = c->n_slots;
        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        /* An open minute is at most 60 s + late old, so this many minutes are ever open at once. */
        b->n_ring = 2 + c->late_usec / BILLING_MINUTE_USEC;
        b->ids = calloc(n, sizeof(*b->ids));
        b->scales = calloc(n, sizeof(*b->scales));
        b->scale_of = calloc(n, sizeof(*b->scale_of));
        b->occupied = calloc(n, sizeof(*b->occupied));
        b->scale_count = calloc(n, sizeof(*b->scale_count));
        b->fig = calloc(n, sizeof(*b->fig));
        b->project = calloc(n, sizeof(*b->project));
        /* Named pairs, then one BILLING_OTHER_PROJECT per scale: there are at most n scales. */
        b->pairs = calloc(BILLING_PROJECTS_MAX + n, sizeof(*b->pairs));
        b->pfig = calloc(BILLING_PROJECTS_MAX + n, sizeof(*b->pfig));
        b->ring = calloc(b->n_ring, sizeof(*b->ring));
        b->minute_mem = calloc(b->n_ring * n, sizeof(*b->minute_mem));
        /* Push targets' figures: large, but calloc'd (mmap'd) pages cost memory only once used. */
        b->target_mem = calloc(b->n_ring * n * BILLING_TARGETS_MAX, sizeof(*b->target_mem));
        b->target_ids = calloc(n * BILLING_TARGETS_MAX, sizeof(*b->target_ids));
        b->tfig = calloc(BILLING_TARGETS_MAX, sizeof(*b->tfig));
        if (!b->ids || !b->scales || !b->scale_of || !b->occupied || !b->scale_count || !b->fig ||
            !b->project || !b->pairs || !b->pfig || !b->ring || !b->minute_mem || !b->target_mem ||
            !b->target_ids || !b->tfig) {
                billing_free(b);
                return -ENOMEM;
        }
        b->n_slots = n;
        for (size_t i = 0; i < n; i++) {
                size_t s = 0;

                plat_strlcpy(b->ids[i], c->slot_ids[i], sizeof(b->ids[i]));
                while (s < b->n_scales && strcmp(b->scales[s], c->slot_scales[i]) != 0)
                        s++;
                if (s == b->n_scales)
                        plat_strlcpy(b->scales[b->n_scales++], c->slot_scales[i], sizeof(b->scales[s]));
                b->scale_of[i] = s;
        }
        for (size_t i = 0; i < b->n_ring; i++) {
                b->ring[i].slots = b->minute_mem + i * n;
                b->ring[i].targets = b->target_mem + i * n * BILLING_TARGETS_MAX;
        }
        b->window_usec = c->window_usec;
        b->late_usec = c->late_usec;
        b->emit = c->emit;
        b->userdata = c->userdata;

        b->mono = now.mono_usec;
        b->pos = now.real_usec;
        b->off = (int64_t)now.real_usec - (int64_t)now.mono_usec;
        b->sync_now = true;
        window_open(b, align_down(b->pos, b->window_usec));
        b->win.partial = b->pos != b->win.start_usec;
        b->first_minute = align_down(b->pos, BILLING_MINUTE_USEC);
        b->first_partial = b->pos != b->first_minute;
        *ret = b;
        return 0;
}

/* The start of every call but billing_new: refuses what it must, notes the record count (the
 * call returns how many it emitted), and with `sync` brings the module to `now`. */
static int begin(struct billing *b, struct billing_time now, bool sync, uint64_t *ret_before) {
        int r;

        if (!b || !valid_time(now))
                return -EINVAL;
        r = billing__enter(b);
        if (r < 0)
                return r;
        *ret_before = b->stats.records;
        if (sync)
                sync_clock(b, now);
        return 0;
}

static int emitted_since(const struct billing *b, uint64_t before) {
        return (int)(b->stats.records - before);
}

int billing_occupancy(struct billing *b, size_t slot, bool occupied, const char *project,
                      struct billing_time now) {
        struct pair *p = NULL;
        uint64_t before;
        size_t s;
        int r;

        if ((b && slot >= b->n_slots) ||
            (project && project[0] && !valid_name(project, BILLING_PROJECT_MAX)))
                return -EINVAL;
        r = begin(b, now, true, &before);
        if (r < 0)
                return r;
        if (b->occupied[slot] == occupied)
                return emitted_since(b, before);
        b->occupied[slot] = occupied;
        s = b->scale_of[slot];
        if (occupied) {
                b->count++;
                b->scale_count[s]++;
                b->win.peak = b->win.peak > b->count ? b->win.peak : b->count;
                b->fig[s].peak = b->fig[s].peak > b->scale_count[s] ? b->fig[s].peak : b->scale_count[s];
                if (project && project[0]) {
                        p = pair_get(b, project, s);
                        plat_strlcpy(b->project[slot], p->project, sizeof(b->project[slot]));
                        p->count++;
                        p->peak = p->peak > p->count ? p->peak : p->count;
                }
        } else {
                b->count--;
                b->scale_count[s]--;
                p = b->project[slot][0] ? pair_find(b, b->project[slot], s) : NULL;
                if (p)
                        p->count--;
                b->project[slot][0] = '\0';
        }
        return emitted_since(b, before);
}

bool billing_occupied(const struct billing *b, size_t slot, const char **ret_project) {
        *ret_project = b->project[slot];
        return b->occupied[slot];
}

int billing_bytes(struct billing *b, size_t slot, enum billing_flow f, uint64_t bytes,
                  struct billing_time from, struct billing_time to) {
        uint64_t before;
        int r;

        if ((b && slot >= b->n_slots) || (unsigned)f >= BILLING_FLOWS || !valid_time(from) ||
            from.mono_usec > to.mono_usec)
                return -EINVAL;
        /* A report that ended before the latest call brings no news of the clock: its wall time
         * was read before whatever step the module has seen since. */
        r = begin(b, to, b && to.mono_usec >= b->mono, &before);
        if (r < 0)
                return r;
        if (bytes > 0)
                billing__spread(b, slot, f, NO_TARGET, bytes, to.mono_usec - from.mono_usec,
                                line_pos(b, to.mono_usec));
        return emitted_since(b, before);
}

int billing_push_bytes(struct billing *b, size_t slot, const char *target, uint64_t bytes,
                       struct billing_time from, struct billing_time to, char *msg, size_t msg_len) {
        uint64_t before;
        int r;

        if ((b && slot >= b->n_slots) || !valid_time(from) || from.mono_usec > to.mono_usec)
                return -EINVAL;
        r = billing__check_target(target, msg, msg_len);
        if (r < 0)
                return r;
        r = begin(b, to, b && to.mono_usec >= b->mono, &before);
        if (r < 0)
                return r;
        if (bytes > 0)
                billing__spread(b, slot, BILLING_PUSH, billing__target_get(b, slot, target), bytes,
                                to.mono_usec - from.mono_usec, line_pos(b, to.mono_usec));
        return emitted_since(b, before);
}

int billing_tick(struct billing *b, struct billing_time now) {
        uint64_t before;
        int r = begin(b, now, true, &before);

        return r < 0 ? r : emitted_since(b, before);
}

void billing__close_slot_minutes(struct billing *b, size_t slot, bool session_end) {
        uint64_t last = 0;
        bool first = true;

        /* Oldest first, as they would have closed; the ring is a few minutes long. */
        for (;;) {
                struct minute *next = NULL;

                for (size_t i = 0; i < b->n_ring; i++) {
                        struct minute *m = &b->ring[i];

                        if (m->active && (first || m->start > last) && (!next || m->start < next->start))
                                next = m;
                }
                if (!next)
                        break;
                first = false;
                last = next->start;
                slot_minute_emit(b, next, slot, true, session_end);
                memset(&next->slots[slot], 0, sizeof(next->slots[slot]));
        }
        billing__targets_clear(b, slot);
}

int billing_close_slot(struct billing *b, size_t slot, struct billing_time now) {
        uint64_t before;
        int r;

        if (b && slot >= b->n_slots)
                return -EINVAL;
        r = begin(b, now, true, &before);
        if (r < 0)
                return r;
        billing__close_slot_minutes(b, slot, true);
        return emitted_since(b, before);
}

int billing_clock_sync(struct billing *b, bool synced, uint64_t est_error_us) {
        struct minute *m;
        int r = b ? billing__enter(b) : -EINVAL;

        if (r < 0)
                return r;
        /* The current minute, opened now if need be, opened under the state that held until now. */
        m = minute_current(b);
        b->sync_now = synced;
        b->err_now = est_error_us;
        b->win.clock_synced &= synced;
        b->win.clock_est_error_us = max_u64(b->win.clock_est_error_us, est_error_us);
        m->clock_synced &= synced;
        m->clock_err = max_u64(m->clock_err, est_error_us);
        return 0;
}

int billing_flush(struct billing *b, struct billing_time now) {
        uint64_t before;
        int r = begin(b, now, true, &before);

        if (r < 0)
                return r;
        b->win.partial = true;
        window_emit(b);
        for (size_t i = 0; i < b->n_ring; i++)
                if (b->ring[i].active && b->ring[i].start + BILLING_MINUTE_USEC > b->pos)
                        b->ring[i].partial = true;
        minutes_close(b, UINT64_MAX);
        b->closed = true;
        return emitted_since(b, before);
}

const char *billing_slot_id(const struct billing *b, size_t i) {
        return b && i < b->n_slots ? b->ids[i] : NULL;
}

void billing_get_stats(const struct billing *b, struct billing_stats *ret) {
        *ret = b->stats;
}
