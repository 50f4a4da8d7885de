/* billing_carry.c: the bytes of billing's open minutes as slots.state keeps them ("open_minutes"),
 * and back into a new module after a restart, so that counted bytes reach a minute record once. */
#include "billing_internal.h"

#include "jsonnum.h"
#include "strutil.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* 2^53: past it a JSON number is no longer an exact integer. */

/* [bytes, from_us, to_us] */
static cJSON *triple(const struct billing_open *o) {
        cJSON *a = cJSON_CreateArray();
        double v[3] = { (double)o->bytes, (double)o->from_usec, (double)o->to_usec };

        for (size_t k = 0; a && k < 3; k++) {
                cJSON *n = cJSON_CreateNumber(v[k]);

                if (!n || !cJSON_AddItemToArray(a, n)) {
                        cJSON_Delete(n);
                        cJSON_Delete(a);
                        return NULL;
                }
        }
        return a;
}

/* "targets": {"<target>": [bytes, from_us, to_us]} into o, when a push target has open bytes. */
static bool targets_json(const struct billing *b, size_t i, cJSON *o) {
        cJSON *ts = NULL;

        for (size_t t = 0; t < BILLING_TARGETS_MAX; t++) {
                struct billing_open open;
                const char *target;
                cJSON *v;

                if (billing_open_target(b, i, t, &target, &open) < 0)
                        continue;
                if (!ts && !(ts = cJSON_AddObjectToObject(o, "targets")))
                        return false;
                v = triple(&open);
                if (!v || !cJSON_AddItemToObject(ts, target, v)) {
                        cJSON_Delete(v);
                        return false;
                }
        }
        return true;
}

/* slot i's entry, NULL when it holds no bytes; *ret_err -ENOMEM when out of memory. */
static cJSON *slot_json(const struct billing *b, size_t i, int *ret_err) {
        cJSON *o = NULL;

        for (int f = 0; f < BILLING_FLOWS; f++) {
                struct billing_open open;
                cJSON *t;

                if (billing_open_bytes(b, i, (enum billing_flow)f, &open) < 0 || open.bytes == 0)
                        continue;
                if (!o && (!(o = cJSON_CreateObject()) ||
                           !cJSON_AddStringToObject(o, "slot", billing_slot_id(b, i))))
                        goto oom;
                t = triple(&open);
                if (!t || !cJSON_AddItemToObject(o, billing_flow_str((enum billing_flow)f), t)) {
                        cJSON_Delete(t);
                        goto oom;
                }
        }
        if (o && !targets_json(b, i, o))
                goto oom;
        return o;
oom:
        cJSON_Delete(o);
        *ret_err = -ENOMEM;
        return NULL;
}

int billing_carry_json(const struct billing *b, char **ret_json) {
        cJSON *root = cJSON_CreateObject(), *arr = NULL;
        char *text = NULL;
        int r = 0;

        if (!root || !cJSON_AddNumberToObject(root, "v", 1) ||
            !(arr = cJSON_AddArrayToObject(root, "slots")))
                r = -ENOMEM;
        for (size_t i = 0; r == 0 && billing_slot_id(b, i); i++) {
                cJSON *o = slot_json(b, i, &r);

                if (o && !cJSON_AddItemToArray(arr, o)) {
                        cJSON_Delete(o);
                        r = -ENOMEM;
                }
        }
        if (r == 0 && cJSON_GetArraySize(arr) > 0 && !(text = cJSON_PrintUnformatted(root)))
                r = -ENOMEM;
        cJSON_Delete(root);
        if (r < 0)
                return r;
        *ret_json = text;
        return 0;
}

#define BAD(...)                                                    \
        do {                                                        \
                snprintf(msg, msg_len, "open_minutes" __VA_ARGS__); \
                return -EBADMSG;                                    \
        } while (0)

/* [bytes, from_us, to_us] of m into *ret; false when it is not that. */
static bool triple_of(const cJSON *m, struct billing_open *ret) {
        return cJSON_IsArray(m) && cJSON_GetArraySize(m) == 3 &&
               jsonnum_whole(cJSON_GetArrayItem(m, 0), &ret->bytes) &&
               jsonnum_whole(cJSON_GetArrayItem(m, 1), &ret->from_usec) &&
               jsonnum_whole(cJSON_GetArrayItem(m, 2), &ret->to_usec) && ret->from_usec <= ret->to_usec &&
               ret->to_usec <= BILLING_TIME_MAX_USEC;
}

/* open_minutes.slots[k].targets (ts): checked, their bytes summed into *ret_sum; with `apply`,
 * restored into slot i. */
static int targets_in(struct billing *b, const cJSON *ts, size_t k, size_t i, bool apply, uint64_t *ret_sum,
                      char *msg, size_t msg_len) {
        const cJSON *m;
        size_t n = 0;

        *ret_sum = 0;
        if (!cJSON_IsObject(ts) || cJSON_GetArraySize(ts) > BILLING_TARGETS_MAX)
                BAD(".slots[%zu].targets: not an object of at most %d push targets (a slot's open minutes "
                    "keep no more)",
                    k, BILLING_TARGETS_MAX);
        cJSON_ArrayForEach(m, ts) {
                struct billing_open v;

                if (billing__check_target(m->string, NULL, 0) < 0)
                        BAD(".slots[%zu].targets: member %zu: a push target must be 1..%d bytes of UTF-8 "
                            "text "
                            "without control characters",
                            k, n, BILLING_TARGET_MAX);
                for (const cJSON *p = ts->child; p != m; p = p->next)
                        if (!strcmp(p->string, m->string))
                                BAD(".slots[%zu].targets.%s: listed twice", k, m->string);
                if (!triple_of(m, &v))
                        BAD(".slots[%zu].targets.%s: want [bytes, from_us, to_us], whole numbers with "
                            "from_us "
                            "<= to_us",
                            k, m->string);
                *ret_sum += v.bytes; /* at most 32 numbers below 2^53 each: no overflow */
                if (apply && billing_restore_target(b, i, m->string, v.bytes, v.from_usec, v.to_usec) < 0)
                        BAD(".slots[%zu].targets.%s: the billing module took no bytes", k, m->string);
                n++;
        }
        return 0;
}

/* open_minutes.slots[k] (o): checked; with `apply`, its bytes restored into slot i: push targets'
 * with their names, the rest of "push" (bytes counted without a target) after them. */
static int entry(struct billing *b, const cJSON *o, size_t k, size_t i, bool apply, char *msg,
                 size_t msg_len) {
        bool seen[BILLING_FLOWS] = { false };
        struct billing_open push = { 0 };
        const cJSON *m, *ts = NULL;
        uint64_t in_targets = 0;
        int r;

        cJSON_ArrayForEach(m, o) {
                struct billing_open v;
                int f = BILLING_FLOWS;

                if (!strcmp(m->string, "slot"))
                        continue;
                if (!strcmp(m->string, "targets")) {
                        if (ts)
                                BAD(".slots[%zu].targets: listed twice", k);
                        ts = m;
                        continue;
                }
                for (int x = 0; x < BILLING_FLOWS; x++)
                        if (!strcmp(m->string, billing_flow_str((enum billing_flow)x)))
                                f = x;
                if (f == BILLING_FLOWS)
                        BAD(".slots[%zu]: unknown member \"%.32s\" (want slot, player, viewers, push, "
                            "targets)",
                            k, m->string);
                if (seen[f])
                        BAD(".slots[%zu].%s: listed twice", k, m->string);
                seen[f] = true;
                if (!triple_of(m, &v))
                        BAD(".slots[%zu].%s: want [bytes, from_us, to_us], whole numbers with from_us <= "
                            "to_us",
                            k, m->string);
                if (f == BILLING_PUSH) {
                        push = v;
                        continue;
                }
                if (apply &&
                    billing_restore_bytes(b, i, (enum billing_flow)f, v.bytes, v.from_usec, v.to_usec) < 0)
                        BAD(".slots[%zu].%s: the billing module took no bytes", k, m->string);
        }
        if (ts) {
                r = targets_in(b, ts, k, i, apply, &in_targets, msg, msg_len);
                if (r < 0)
                        return r;
        }
        if (in_targets > push.bytes)
                BAD(".slots[%zu].targets: %" PRIu64 " bytes, more than push's %" PRIu64
                    " (push is every target's bytes together)",
                    k, in_targets, push.bytes);
        if (apply && billing_restore_bytes(b, i, BILLING_PUSH, push.bytes - in_targets, push.from_usec,
                                           push.to_usec) < 0)
                BAD(".slots[%zu].push: the billing module took no bytes", k);
        return 0;
}

/* Checks every entry (apply false), or restores them (apply true); the entries of unknown slots
 * are counted, the first named in msg. */
static int walk(struct billing *b, const cJSON *arr, bool apply, char *msg, size_t msg_len) {
        const cJSON *o;
        size_t k = 0;
        int unknown = 0, r;

        cJSON_ArrayForEach(o, arr) {
                const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "slot"));
                size_t i = 0;

                if (!cJSON_IsObject(o) || !id || !id[0] || strlen(id) > BILLING_ID_MAX)
                        BAD(".slots[%zu]: not an object with a slot id of 1..%d bytes", k, BILLING_ID_MAX);
                while (billing_slot_id(b, i) && strcmp(billing_slot_id(b, i), id))
                        i++;
                for (const cJSON *p = arr->child; p != o; p = p->next)
                        if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "slot")), id))
                                BAD(".slots[%zu]: slot %s listed twice", k, id);
                r = entry(b, o, k, i, apply && billing_slot_id(b, i), msg, msg_len);
                if (r < 0)
                        return r;
                if (!billing_slot_id(b, i) && unknown++ == 0 && apply)
                        snprintf(msg, msg_len, "slot %s is not configured: its open bytes are dropped", id);
                k++;
        }
        return unknown;
}

int billing_carry_in(struct billing *b, const char *json, char *msg, size_t msg_len) {
        cJSON *root = json ? cJSON_Parse(json) : NULL;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "v");
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "slots");
        int r;

        if (!b)
                r = -EINVAL;
        else if (!cJSON_IsObject(root)) {
                snprintf(msg, msg_len, "open_minutes: not a JSON object");
                r = -EBADMSG;
        } else if (!cJSON_IsNumber(v) || v->valuedouble != 1) {
                snprintf(msg, msg_len, "open_minutes.v: missing or not 1 (of another version)");
                r = -EBADMSG;
        } else if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) > BILLING_SLOTS_MAX) {
                snprintf(msg, msg_len, "open_minutes.slots: missing or not an array of at most %d slots",
                         BILLING_SLOTS_MAX);
                r = -EBADMSG;
        } else {
                r = walk(b, arr, false, msg, msg_len);
                if (r >= 0)
                        r = walk(b, arr, true, msg, msg_len);
        }
        cJSON_Delete(root);
        return r;
}
