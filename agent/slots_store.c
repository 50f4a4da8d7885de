/* slots_store.c: the session state on disk: slots.json written before every ack, and read back after a
 * restart. */
#include "slots_internal.h"

#include "cleanup.h"
#include "fileio.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- persistence ---- */

static bool add_num(cJSON *o, const char *k, uint64_t v) {
        return cJSON_AddNumberToObject(o, k, (double)v) != NULL;
}

static cJSON *slot_json(const struct slot *sl) {
        cJSON *o = cJSON_CreateObject(), *vs;
        bool ok;

        if (!o)
                return NULL;
        ok = cJSON_AddStringToObject(o, "id", sl->id) &&
             cJSON_AddStringToObject(o, "state", slots__state_names[sl->state]);
        if (ok && sl->state != SLOTS_FREE && sl->state != SLOTS_BLOCKED)
                ok = cJSON_AddStringToObject(o, "user", sl->user) &&
                     cJSON_AddStringToObject(o, "session", sl->session) &&
                     cJSON_AddStringToObject(o, "client_ip", sl->client_ip);
        if (ok && (sl->state == SLOTS_RESERVED || sl->state == SLOTS_GRACE))
                ok = add_num(o, "deadline", sl->deadline_real);
        if (ok && (sl->state == SLOTS_ACTIVE || sl->state == SLOTS_GRACE || sl->state == SLOTS_ENDING))
                ok = add_num(o, "started", sl->started_real);
        if (ok && sl->state == SLOTS_ENDING)
                ok = cJSON_AddStringToObject(o, "reason", sl->end_reason) != NULL;
        if (ok && sl->n_viewers > 0) {
                vs = cJSON_AddArrayToObject(o, "viewers");
                ok = vs != NULL;
                for (size_t i = 0; ok && i < sl->n_viewers; i++) {
                        cJSON *v = cJSON_CreateObject();

                        ok = v && cJSON_AddItemToArray(vs, v) &&
                             cJSON_AddStringToObject(v, "user", sl->viewers[i].user) &&
                             cJSON_AddStringToObject(v, "role", sl->viewers[i].role);
                }
        }
        if (!ok) {
                cJSON_Delete(o);
                return NULL;
        }
        return o;
}

int slots__persist(struct slots *s) {
        _cleanup_free_ char *text = NULL;
        cJSON *root, *arr;
        bool ok;

        if (s->dir_fd < 0)
                return 0;
        root = cJSON_CreateObject();
        ok = root && cJSON_AddNumberToObject(root, "v", 1) &&
             cJSON_AddBoolToObject(root, "draining", s->draining) &&
             (arr = cJSON_AddArrayToObject(root, "slots"));
        for (size_t i = 0; ok && i < s->n; i++) {
                cJSON *o = slot_json(&s->slot[i]);

                ok = o && cJSON_AddItemToArray(arr, o);
                if (o && !ok)
                        cJSON_Delete(o);
        }
        if (ok)
                text = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        if (!text)
                return -ENOMEM;
        return plat_write_atomic_at(s->dir_fd, SLOTS_STATE_FILE, text, strlen(text), 0600);
}

/* ---- restore ---- */

/* 2^53: past it a JSON number is no longer an exact integer. */
#define MAX_EXACT 9007199254740992.0

static bool get_time(const cJSON *o, const char *k, uint64_t *ret) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= MAX_EXACT) ||
            floor(v->valuedouble) != v->valuedouble)
                return false;
        *ret = (uint64_t)v->valuedouble;
        return true;
}

static const char *get_str(const cJSON *o, const char *k) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

        return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A wall-clock deadline as a mono one; a deadline further away than `span` (the clock went back
 * while we were down) is cut to span, so that no slot stays booked for ever. */
static void restore_deadline(struct slot *sl, struct slots_clock now, uint64_t span) {
        uint64_t left = sl->deadline_real > now.real_usec ? sl->deadline_real - now.real_usec : 0;

        if (left > span) {
                left = span;
                sl->deadline_real = now.real_usec + span;
        }
        sl->deadline_mono = now.mono_usec + left;
}

#define BAD(...)                                       \
        do {                                           \
                slots__say(msg, msg_len, __VA_ARGS__); \
                r = -EBADMSG;                          \
                goto out;                              \
        } while (0)

static int parse_slot(const cJSON *o, size_t k, struct slot *sl, char *msg, size_t msg_len) {
        const char *st = get_str(o, "state"), *user, *session, *ip, *reason;
        const cJSON *vs, *v;
        int r = 0;

        sl->state = SLOTS_BLOCKED + 1;
        for (size_t j = 0; st && j < ELEMENTSOF(slots__state_names); j++)
                if (!strcmp(st, slots__state_names[j]))
                        sl->state = (enum slots_state)j;
        if (sl->state > SLOTS_BLOCKED)
                BAD("slots[%zu].state: want one of free, reserved, active, grace, ending, blocked", k);
        if (sl->state == SLOTS_FREE || sl->state == SLOTS_BLOCKED)
                goto out;
        user = get_str(o, "user");
        session = get_str(o, "session");
        ip = get_str(o, "client_ip");
        if (!slots__valid_user(user))
                BAD("slots[%zu].user: missing or not a valid user id", k);
        if (!slots__valid_session(session))
                BAD("slots[%zu].session: missing or not %d hex digits", k, SLOTS_SESSION_LEN);
        if (ip && *ip && !slots__valid_ip(ip))
                BAD("slots[%zu].client_ip: not an IP address", k);
        slots__copy(sl->user, sizeof(sl->user), user);
        slots__copy(sl->session, sizeof(sl->session), session);
        slots__copy(sl->client_ip, sizeof(sl->client_ip), ip);
        if ((sl->state == SLOTS_RESERVED || sl->state == SLOTS_GRACE) &&
            !get_time(o, "deadline", &sl->deadline_real))
                BAD("slots[%zu].deadline: missing or not a time in microseconds", k);
        if (sl->state != SLOTS_RESERVED && !get_time(o, "started", &sl->started_real))
                BAD("slots[%zu].started: missing or not a time in microseconds", k);
        if (sl->state == SLOTS_ENDING) {
                reason = get_str(o, "reason");
                if (!slots__valid_token(reason))
                        BAD("slots[%zu].reason: missing or not a reason token", k);
                slots__copy(sl->end_reason, sizeof(sl->end_reason), reason);
        }
        vs = cJSON_GetObjectItemCaseSensitive(o, "viewers");
        if (!vs)
                goto out;
        if (!cJSON_IsArray(vs) || cJSON_GetArraySize(vs) > SLOTS_VIEWERS_MAX)
                BAD("slots[%zu].viewers: not an array of at most %d viewers", k, SLOTS_VIEWERS_MAX);
        if (cJSON_GetArraySize(vs) > 0 && sl->state != SLOTS_ACTIVE && sl->state != SLOTS_GRACE)
                BAD("slots[%zu].viewers: a %s slot has no viewers", k, slots__state_names[sl->state]);
        cJSON_ArrayForEach(v, vs) {
                const char *vu = get_str(v, "user"), *role = get_str(v, "role");

                if (!slots__valid_user(vu) || !slots__valid_token(role) || !strcmp(vu, sl->user))
                        BAD("slots[%zu].viewers[%zu]: want a user id other than the host's and a role", k,
                            sl->n_viewers);
                for (size_t j = 0; j < sl->n_viewers; j++)
                        if (!strcmp(sl->viewers[j].user, vu))
                                BAD("slots[%zu].viewers[%zu]: viewer listed twice", k, sl->n_viewers);
                slots__copy(sl->viewers[sl->n_viewers].user, sizeof(sl->viewers[0].user), vu);
                slots__copy(sl->viewers[sl->n_viewers].role, sizeof(sl->viewers[0].role), role);
                sl->n_viewers++;
        }
out:
        return r;
}

int slots_restore(struct slots *s, const char *buf, size_t len, struct slots_clock now, char *msg,
                  size_t msg_len) {
        _cleanup_free_ struct slot *tmp = NULL;
        _cleanup_free_ bool *seen = NULL;
        const cJSON *v, *arr, *o, *dr;
        cJSON *root = NULL;
        size_t k = 0;
        int r = 0;

        if (len > SLOTS_STATE_MAX_BYTES)
                return FAIL(-EBADMSG, "%zu bytes, more than the %d a state file may hold", len,
                            SLOTS_STATE_MAX_BYTES);
        tmp = calloc(s->n, sizeof(*tmp));
        seen = calloc(s->n, sizeof(*seen));
        if (!tmp || !seen)
                return -ENOMEM;
        for (size_t i = 0; i < s->n; i++)
                slots__copy(tmp[i].id, sizeof(tmp[i].id), s->slot[i].id);
        if (len == 0)
                BAD("empty file");
        root = cJSON_ParseWithLength(buf, len);
        if (!root)
                BAD("not JSON (truncated or corrupt)");
        if (!cJSON_IsObject(root))
                BAD("not a JSON object");
        v = cJSON_GetObjectItemCaseSensitive(root, "v");
        if (!cJSON_IsNumber(v) || v->valuedouble != 1)
                BAD("\"v\": missing or not 1 (a state file of another version)");
        dr = cJSON_GetObjectItemCaseSensitive(root, "draining");
        if (dr && !cJSON_IsBool(dr))
                BAD("\"draining\": not true or false");
        arr = cJSON_GetObjectItemCaseSensitive(root, "slots");
        if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) > SLOTS_MAX)
                BAD("\"slots\": missing or not an array of at most %d slots", SLOTS_MAX);
        cJSON_ArrayForEach(o, arr) {
                struct slot one;
                const char *id;
                int i = -1;

                if (!cJSON_IsObject(o))
                        BAD("slots[%zu]: not an object", k);
                id = get_str(o, "id");
                if (!slots__valid_slot_id(id))
                        BAD("slots[%zu].id: missing or not 1..%d bytes", k, SLOTS_ID_MAX);
                memset(&one, 0, sizeof(one));
                r = parse_slot(o, k, &one, msg, msg_len);
                if (r < 0)
                        goto out;
                for (size_t j = 0; j < s->n; j++)
                        if (!strcmp(tmp[j].id, id))
                                i = (int)j;
                /* A slot the config no longer has can hold nobody here: dropped. */
                if (i >= 0) {
                        if (seen[i])
                                BAD("slots[%zu].id: slot \"%s\" listed twice", k, id);
                        seen[i] = true;
                        slots__copy(one.id, sizeof(one.id), id);
                        tmp[i] = one;
                }
                k++;
        }
        for (size_t i = 0; i < s->n; i++)
                for (size_t j = 0; j < i; j++)
                        if (slots__holds_session(&tmp[i]) && slots__holds_session(&tmp[j]) &&
                            (!strcmp(tmp[i].user, tmp[j].user) || !strcmp(tmp[i].session, tmp[j].session)))
                                BAD("slots %s and %s hold the same user or session", tmp[j].id, tmp[i].id);
        for (size_t i = 0; i < s->n; i++) {
                struct slot *sl = &tmp[i];
                uint64_t ago;

                if (sl->state == SLOTS_RESERVED) {
                        if (sl->deadline_real <= now.real_usec) {
                                slots__clear_session(sl);
                                continue;
                        }
                        restore_deadline(sl, now, s->lim.lock_ttl_usec);
                } else if (sl->state == SLOTS_GRACE) {
                        restore_deadline(sl, now, s->lim.grace_usec);
                }
                if (sl->state == SLOTS_ACTIVE || sl->state == SLOTS_GRACE || sl->state == SLOTS_ENDING) {
                        /* Started ago: a start in the future (the clock went back) counts as now. */
                        ago = sl->started_real < now.real_usec ? now.real_usec - sl->started_real : 0;
                        sl->started_mono = now.mono_usec - ago; /* may wrap: compared by difference */
                        /* Nobody could heartbeat while the agent was down. */
                        sl->last_hb_mono = sl->last_input_mono = now.mono_usec;
                }
        }
        memcpy(s->slot, tmp, s->n * sizeof(*tmp));
        s->draining = cJSON_IsTrue(dr);
out:
        cJSON_Delete(root);
        return r;
}

int slots_load(struct slots *s, struct slots_clock now, char *msg, size_t msg_len) {
        _cleanup_free_ char *buf = NULL;
        char why[SLOTS_MSG_MAX] = "", aside[64];
        size_t len = 0;
        int r, w;

        if (s->dir_fd < 0)
                return 0;
        r = plat_read_file_at(s->dir_fd, SLOTS_STATE_FILE, SLOTS_STATE_MAX_BYTES, &buf, &len);
        if (r == -ENOENT) {
                /* First start: every slot FREE, and the file exists from now on. */
                r = slots__persist(s);
                if (r < 0)
                        return FAIL(r, "%s/%s: cannot write: %s", s->state_dir, SLOTS_STATE_FILE,
                                    strerror(-r));
                return 0;
        }
        if (r == -EFBIG) {
                snprintf(why, sizeof(why), "more than %d bytes", SLOTS_STATE_MAX_BYTES);
                r = -EBADMSG;
        } else if (r < 0)
                snprintf(why, sizeof(why), "cannot read: %s", strerror(-r));
        else
                r = slots_restore(s, buf, len, now, why, sizeof(why));
        if (r == -ENOMEM)
                return FAIL(r, "%s/%s: out of memory", s->state_dir, SLOTS_STATE_FILE);
        if (r >= 0) {
                /* Written back at once: an expired reservation freed here stays freed. */
                r = slots__persist(s);
                if (r < 0)
                        return FAIL(r, "%s/%s: cannot write: %s", s->state_dir, SLOTS_STATE_FILE,
                                    strerror(-r));
                return 0;
        }
        /* Who plays where is unknown: block every slot rather than free one by accident. */
        for (size_t i = 0; i < s->n; i++) {
                slots__clear_session(&s->slot[i]);
                s->slot[i].state = SLOTS_BLOCKED;
        }
        snprintf(aside, sizeof(aside), "%s.corrupt-%" PRIu64, SLOTS_STATE_FILE, now.real_usec / 1000000);
        if (renameat(s->dir_fd, SLOTS_STATE_FILE, s->dir_fd, aside) < 0) {
                w = -errno;
                /* Not written over: the file may be all there is to go by. */
                return FAIL(r,
                            "%s/%s: %s; every slot is blocked until an operator unblocks it (could not "
                            "keep the file aside: %s)",
                            s->state_dir, SLOTS_STATE_FILE, why, strerror(-w));
        }
        w = slots__persist(s);
        return FAIL(r,
                    "%s/%s: %s; kept aside as %s, every slot is blocked until an operator unblocks it%s%s",
                    s->state_dir, SLOTS_STATE_FILE, why, aside,
                    w < 0 ? "; cannot write the new state: " : "", w < 0 ? strerror(-w) : "");
}
