/* fuzz_slots_state.c: libFuzzer target for slots_restore() on arbitrary state-file text, and for
 * the parsers of its members (the byte counters, billing's open minutes with their push targets). */
#include "billing.h"
#include "counters.h"
#include "slot.h"
#include "slots.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const ids[] = { "s0", "s1", "s2", "s3" };

static void ignore(void *userdata, const struct billing_record *r) {
        (void)userdata;
        (void)r;
}

/* What billing took it writes back (push targets' parts within push's), and a new module reads
 * that whole. */
static void carry_again(const struct billing *bill) {
        struct billing_config bc = { .n_slots = 4, .slot_ids = ids, .slot_scales = ids, .emit = ignore };
        struct billing_time t = { .mono_usec = 2000000, .real_usec = UINT64_C(1700000001000000) };
        struct billing *again = NULL;
        char msg[BILLING_MSG_MAX] = "", *json = NULL;

        if (billing_carry_json(bill, &json) < 0)
                abort();
        billing_config_default(&bc);
        if (billing_new(&bc, t, &again, NULL, 0) < 0)
                abort();
        if (json && billing_carry_in(again, json, msg, sizeof(msg)) != 0)
                abort();
        billing_free(again);
        free(json);
}

/* n zeroed slot objects, as a service's table holds them for the slots of s. */
static void table_of(struct slot_table *t, const struct slots *s) {
        *t = (struct slot_table){ .n = slots_count(s) };
        for (size_t i = 0; i < t->n; i++)
                if (!(t->slot[i] = calloc(1, sizeof(*t->slot[i]))))
                        abort();
}

/* The members of a restored state, read by their owners: -EBADMSG with a message, or counters
 * within their limits that write themselves back to the same, and bytes billing takes. */
static void members(const struct slots *s) {
        static const char *const scales[] = { "S", "S", "M", "M" };
        struct billing_config bc = { .n_slots = 4, .slot_ids = ids, .slot_scales = scales, .emit = ignore };
        struct billing_time t = { .mono_usec = 1000000, .real_usec = UINT64_C(1700000000000000) };
        struct slot_table b, b2;
        struct billing *bill = NULL;
        char msg[SLOTS_MSG_MAX] = "", *json;
        int r;

        table_of(&b, s);
        table_of(&b2, s);
        r = counters_restore(&b, s, slots_extra(s, SLOTS_EXTRA_COUNTERS), msg, sizeof(msg));
        if (r < 0 && (r != -EBADMSG || !msg[0]))
                abort();
        for (size_t i = 0; i < slots_count(s); i++)
                if (slot_at(&b, i)->bytes.n > SESSIONS_PEERS_MAX)
                        abort();
        json = counters_json(&b, s);
        if (!json || counters_restore(&b2, s, json, msg, sizeof(msg)) < 0)
                abort();
        for (size_t i = 0; i < slots_count(s); i++) {
                const struct slot_bytes *x = &slot_at(&b, i)->bytes, *y = &slot_at(&b2, i)->bytes;

                if (counters_moved(x, y) || x->last_real != y->last_real)
                        abort();
        }
        free(json);
        billing_config_default(&bc);
        if (billing_new(&bc, t, &bill, NULL, 0) < 0)
                abort();
        msg[0] = '\0';
        r = slots_extra(s, SLOTS_EXTRA_OPEN_MINUTES)
                    ? billing_carry_in(bill, slots_extra(s, SLOTS_EXTRA_OPEN_MINUTES), msg, sizeof(msg))
                    : 0;
        if (r < 0 && (r != -EBADMSG || !msg[0]))
                abort();
        if (r >= 0)
                carry_again(bill);
        if (billing_flush(bill, t) < 0)
                abort();
        billing_free(bill);
        slot_table_done(&b);
        slot_table_done(&b2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct slots_config cfg = { .n_slots = 4, .slot_ids = ids, .state_dir_fd = -1 };
        struct slots_clock now = { .mono_usec = 1000000, .real_usec = UINT64_C(1700000000000000) };
        struct slots_event evs[SLOTS_MAX];
        char msg[SLOTS_MSG_MAX] = "";
        struct slots *s = NULL;
        struct slots_info a, b;
        char *buf;
        int r;

        /* An unterminated copy: ASan catches a parser that reads past size. */
        buf = malloc(size ? size : 1);
        if (!buf)
                return 0;
        memcpy(buf, data, size);
        slots_limits_default(&cfg.limits);
        if (slots_new(&cfg, &s, NULL, 0) < 0)
                abort();
        r = slots_restore(s, buf, size, now, msg, sizeof(msg));
        /* Contract: -EBADMSG with a message, or a state in which no user holds two slots. */
        if (r < 0 && (r != -EBADMSG || !msg[0]))
                abort();
        for (size_t i = 0; r == 0 && i < slots_count(s); i++) {
                slots_get(s, i, &a);
                if (a.state > SLOTS_BLOCKED || a.n_viewers > SLOTS_VIEWERS_MAX)
                        abort();
                for (size_t j = 0; *a.user && j < i; j++) {
                        slots_get(s, j, &b);
                        if (!strcmp(a.user, b.user))
                                abort();
                }
        }
        if (r == 0)
                members(s);
        /* Whatever was restored, the machine goes on working on it. */
        if (slots_expire(s, now, evs, SLOTS_MAX) < 0)
                abort();
        (void)slots_reserve(s, "fuzz", NULL, NULL, now, NULL, NULL, 0);
        slots_free(s);
        free(buf);
        return 0;
}
