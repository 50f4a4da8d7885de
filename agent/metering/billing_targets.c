/* billing_targets.c: billing's push targets (each push stream's own figures beside the push flow's)
 * and what the open minutes hold, per flow and per target, to carry across a restart. */
#include "billing_internal.h"

#include "strutil.h"

#include <errno.h>
#include <string.h>

/* ---- the targets of a slot ---- */

int billing__check_target(const char *target, char *msg, size_t msg_len) {
        size_t n = target ? strnlen(target, BILLING_TARGET_MAX + 1) : 0;

        if (n > 0 && n <= BILLING_TARGET_MAX && plat_utf8_text(target, n))
                return 0;
        /* Not echoed: it may not be text. */
        plat_errf(msg, msg_len,
                  "billing: a push target must be 1..%d bytes of UTF-8 text without control "
                  "characters",
                  BILLING_TARGET_MAX);
        return -EINVAL;
}

static char *target_id(struct billing *b, size_t slot, size_t t) {
        return b->target_ids[slot * BILLING_TARGETS_MAX + t];
}

/* Whether an open minute holds bytes of slot's entry t. */
static bool target_held(const struct billing *b, size_t slot, size_t t) {
        for (size_t i = 0; i < b->n_ring; i++)
                if (b->ring[i].active && (b->ring[i].slots[slot].targets & (UINT32_C(1) << t)))
                        return true;
        return false;
}

/* The entry of `target` on slot, or a free one (an entry no open minute holds bytes of is free),
 * named `target`: 0, or -ENOSPC when none is free. */
static int target_find(struct billing *b, size_t slot, const char *target, size_t *ret) {
        size_t free_t = BILLING_TARGETS_MAX;

        for (size_t t = 0; t < BILLING_TARGETS_MAX; t++) {
                const char *id = target_id(b, slot, t);

                if (id[0] && !strcmp(id, target)) {
                        *ret = t;
                        return 0;
                }
                if (free_t == BILLING_TARGETS_MAX && (!id[0] || !target_held(b, slot, t)))
                        free_t = t;
        }
        if (free_t == BILLING_TARGETS_MAX)
                return -ENOSPC;
        plat_strlcpy(target_id(b, slot, free_t), target, BILLING_TARGET_MAX + 1);
        *ret = free_t;
        return 0;
}

size_t billing__target_get(struct billing *b, size_t slot, const char *target) {
        size_t t;

        if (target_find(b, slot, target, &t) == 0)
                return t;
        /* Every entry holds bytes: they become records now, and every entry is free. */
        billing__close_slot_minutes(b, slot, false);
        (void)target_find(b, slot, target, &t);
        return t;
}

struct flow_acc *billing__target_acc(struct minute *m, size_t slot, size_t t) {
        struct flow_acc *a = &m->targets[slot * BILLING_TARGETS_MAX + t];
        uint32_t bit = UINT32_C(1) << t;

        if (!(m->slots[slot].targets & bit)) {
                memset(a, 0, sizeof(*a));
                m->slots[slot].targets |= bit;
        }
        return a;
}

size_t billing__target_figures(struct billing *b, const struct minute *m, size_t slot) {
        size_t n = 0;

        for (size_t t = 0; t < BILLING_TARGETS_MAX; t++) {
                const struct flow_acc *a = &m->targets[slot * BILLING_TARGETS_MAX + t];

                if (!(m->slots[slot].targets & (UINT32_C(1) << t)))
                        continue;
                b->tfig[n++] = (struct billing_target_figures){
                        .target = target_id(b, slot, t),
                        .fig = { .bytes = a->bytes,
                                 .late_bytes = a->late,
                                 .peak_bytes_1s = billing__flow_peak(a),
                                 .sec_bytes = a->sec },
                };
        }
        return n;
}

void billing__targets_clear(struct billing *b, size_t slot) {
        for (size_t t = 0; t < BILLING_TARGETS_MAX; t++)
                target_id(b, slot, t)[0] = '\0';
}

/* ---- carrying counted bytes across a restart ---- */

/* The figures of slot's flow f in m, or of its push target t (NO_TARGET: the flow's); NULL when
 * the minute holds no bytes of that target. */
static const struct flow_acc *acc_of(const struct minute *m, size_t slot, enum billing_flow f, size_t t) {
        if (t == NO_TARGET)
                return &m->slots[slot].flow[f];
        if (!(m->slots[slot].targets & (UINT32_C(1) << t)))
                return NULL;
        return &m->targets[slot * BILLING_TARGETS_MAX + t];
}

static void open_of(const struct billing *b, size_t slot, enum billing_flow f, size_t t,
                    struct billing_open *ret) {
        uint64_t bytes = 0, peak = 1, first = UINT64_MAX, end = 0, late_start = UINT64_MAX, to, span;

        for (size_t i = 0; i < b->n_ring; i++) {
                const struct minute *m = &b->ring[i];
                const struct flow_acc *a = m->active ? acc_of(m, slot, f, t) : NULL;

                if (!a || a->bytes == 0)
                        continue;
                bytes += a->bytes;
                peak = max_u64(peak, billing__flow_peak(a));
                if (a->late)
                        late_start = late_start < m->start ? late_start : m->start;
                for (uint64_t k = 0; k < SECONDS_PER_MINUTE; k++) {
                        if (!a->sec[k])
                                continue;
                        first = first < m->start + k * SEC ? first : m->start + k * SEC;
                        end = max_u64(end, m->start + (k + 1) * SEC);
                }
        }
        *ret = (struct billing_open){ 0 };
        if (bytes == 0)
                return;
        to = end ? end : late_start;
        /* At most `peak` bytes in any second: bytes / peak seconds at least, rounded up. */
        span = (uint64_t)(((unsigned __int128)bytes * SEC + peak - 1) / peak);
        span = max_u64(span, end ? to - first : 0);
        *ret = (struct billing_open){ .bytes = bytes,
                                      .from_usec = to > span ? to - span : 0,
                                      .to_usec = to };
}

int billing_open_bytes(const struct billing *b, size_t slot, enum billing_flow f, struct billing_open *ret) {
        if (!b || slot >= b->n_slots || (unsigned)f >= BILLING_FLOWS || !ret)
                return -EINVAL;
        open_of(b, slot, f, NO_TARGET, ret);
        return 0;
}

int billing_open_target(const struct billing *b, size_t slot, size_t t, const char **ret_target,
                        struct billing_open *ret) {
        struct billing_open o;

        if (!b || slot >= b->n_slots || t >= BILLING_TARGETS_MAX || !ret_target || !ret)
                return -EINVAL;
        open_of(b, slot, BILLING_PUSH, t, &o);
        if (o.bytes == 0)
                return -ENOENT;
        *ret_target = b->target_ids[slot * BILLING_TARGETS_MAX + t];
        *ret = o;
        return 0;
}

static int restore(struct billing *b, size_t slot, enum billing_flow f, const char *target, uint64_t bytes,
                   uint64_t from_usec, uint64_t to_usec) {
        size_t t = NO_TARGET;
        int r;

        if (!b || slot >= b->n_slots || (unsigned)f >= BILLING_FLOWS || from_usec > to_usec ||
            to_usec > BILLING_TIME_MAX_USEC || (target && billing__check_target(target, NULL, 0) < 0))
                return -EINVAL;
        r = billing__enter(b);
        if (r < 0)
                return r;
        if (bytes == 0)
                return 0;
        if (target && target_find(b, slot, target, &t) < 0)
                return -ENOSPC;
        /* Spreading closes no minute: nothing is emitted. */
        billing__spread(b, slot, f, t, bytes, to_usec - from_usec, to_usec < b->pos ? to_usec : b->pos);
        return 0;
}

int billing_restore_bytes(struct billing *b, size_t slot, enum billing_flow f, uint64_t bytes,
                          uint64_t from_usec, uint64_t to_usec) {
        return restore(b, slot, f, NULL, bytes, from_usec, to_usec);
}

int billing_restore_target(struct billing *b, size_t slot, const char *target, uint64_t bytes,
                           uint64_t from_usec, uint64_t to_usec) {
        if (!target)
                return -EINVAL;
        return restore(b, slot, BILLING_PUSH, target, bytes, from_usec, to_usec);
}
