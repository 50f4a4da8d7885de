/* counters.c: a slot's byte counters and their form in slots.state (the "counters" member). */
#include "counters.h"

#include "cleanup.h"
#include "jsonnum.h"
#include "slot.h"
#include "strutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2^53: past it a JSON number is no longer an exact integer. */

/* A counter's flow as report_bytes names it (counters[].flow); the totals as its reply does. */
static const char *const peer_flows[SESSIONS_FLOWS] = { "player", "viewer", "push" };

static bool holds_session(const struct slots_info *info) {
        return info->session[0] && info->state != SLOTS_RESERVED;
}

/* ---- writing ---- */

static bool add_peer(cJSON *peers, const struct peer_counter *pc) {
        cJSON *o = cJSON_CreateObject();
        bool ok = o && cJSON_AddItemToArray(peers, o);

        if (o && !ok)
                cJSON_Delete(o);
        ok = ok && cJSON_AddStringToObject(o, "flow", peer_flows[pc->flow]) &&
             (pc->flow == SESSIONS_FLOW_PLAYER || cJSON_AddStringToObject(o, "peer", pc->id)) &&
             cJSON_AddNumberToObject(o, "bytes", (double)pc->last);
        /* Only what is true is written: most counters have neither. */
        if (ok && pc->announced)
                ok = cJSON_AddTrueToObject(o, "announced") != NULL;
        if (ok && pc->left)
                ok = cJSON_AddTrueToObject(o, "left") != NULL;
        return ok;
}

static cJSON *slot_json(const struct slot_bytes *b, const char *id) {
        cJSON *o = cJSON_CreateObject(), *t, *peers;
        bool ok = o && cJSON_AddStringToObject(o, "slot", id) &&
                  cJSON_AddStringToObject(o, "session", b->session) &&
                  cJSON_AddNumberToObject(o, "last_real", (double)b->last_real) &&
                  cJSON_AddBoolToObject(o, "baseline", b->baseline) &&
                  (t = cJSON_AddObjectToObject(o, "total")) && (peers = cJSON_AddArrayToObject(o, "peers"));

        for (int f = 0; ok && f < SESSIONS_FLOWS; f++)
                ok = cJSON_AddNumberToObject(t, sessions_flow_str((enum sessions_flow)f),
                                             (double)b->total[f]) != NULL;
        for (size_t k = 0; ok && k < b->n; k++)
                ok = add_peer(peers, &b->peers[k]);
        if (!ok) {
                cJSON_Delete(o);
                return NULL;
        }
        return o;
}

char *counters_json(const struct slot_table *t, const struct slots *slots) {
        cJSON *root = cJSON_CreateObject(), *arr;
        char *text = NULL;
        bool ok = root && cJSON_AddNumberToObject(root, "v", 1) &&
                  (arr = cJSON_AddArrayToObject(root, "slots"));

        for (size_t i = 0; ok && i < slots_count(slots) && i < t->n; i++) {
                const struct slot_bytes *b = &slot_at(t, i)->bytes;
                struct slots_info info;
                cJSON *o;

                slots_get(slots, i, &info);
                if (!holds_session(&info) || strcmp(b->session, info.session))
                        continue;
                o = slot_json(b, info.id);
                ok = o && cJSON_AddItemToArray(arr, o);
                if (o && !ok)
                        cJSON_Delete(o);
        }
        if (ok)
                text = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        return text;
}

/* The JSON of a string's escapes: cJSON writes '"' and '\' as two bytes, other text (checked:
 * no control characters) as it is. */
static size_t quoted_len(const char *s) {
        size_t n = 2;

        for (; *s; s++)
                n += (*s == '"' || *s == '\\') ? 2 : 1;
        return n;
}

size_t counters_size(const struct slot_table *t) {
        /* {"v":1,"slots":[]}, then per slot its members with every number at 16 digits, and per
         * peer {"flow":"viewer","peer":..,"bytes":..,"announced":true,"left":true}. */
        size_t size = 20;

        for (size_t i = 0; i < t->n; i++) {
                const struct slot_bytes *b = &slot_at(t, i)->bytes;

                if (!b->session[0])
                        continue;
                size += 200 + SLOTS_ID_MAX * 2;
                for (size_t k = 0; k < b->n; k++)
                        size += 80 + quoted_len(b->peers[k].id);
        }
        return size;
}

bool counters_moved(const struct slot_bytes *before, const struct slot_bytes *after) {
        if (before->n != after->n || before->baseline != after->baseline ||
            strcmp(before->session, after->session))
                return true;
        for (size_t k = 0; k < after->n; k++) {
                const struct peer_counter *a = &before->peers[k], *b = &after->peers[k];

                if (a->last != b->last || a->announced != b->announced || a->left != b->left)
                        return true;
        }
        return false;
}

/* ---- reading ---- */

#define BAD(...)                                                \
        do {                                                    \
                snprintf(msg, msg_len, "counters" __VA_ARGS__); \
                return -EBADMSG;                                \
        } while (0)

/* An optional flag: absent is false. */
static bool flag(const cJSON *o, const char *key, bool *ret) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        *ret = cJSON_IsTrue(v);
        return !v || cJSON_IsBool(v);
}

static int parse_peer(const cJSON *p, size_t k, size_t j, struct slot_bytes *b, char *msg, size_t msg_len) {
        const char *fl = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "flow"));
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "peer"));
        struct peer_counter *pc = &b->peers[b->n];
        int f = SESSIONS_FLOWS;

        if (!cJSON_IsObject(p))
                BAD(".slots[%zu].peers[%zu]: not an object", k, j);
        for (int x = 0; fl && x < SESSIONS_FLOWS; x++)
                if (!strcmp(fl, peer_flows[x]))
                        f = x;
        if (f == SESSIONS_FLOWS)
                BAD(".slots[%zu].peers[%zu].flow: want \"player\", \"viewer\" or \"push\"", k, j);
        *pc = (struct peer_counter){ .flow = (enum sessions_flow)f };
        if (f != SESSIONS_FLOW_PLAYER &&
            (!id || !id[0] || strlen(id) > SLOTS_USER_MAX || !plat_utf8_text(id, strlen(id))))
                BAD(".slots[%zu].peers[%zu].peer: want 1..%d bytes of UTF-8 text", k, j, SLOTS_USER_MAX);
        if (f != SESSIONS_FLOW_PLAYER)
                plat_strlcpy(pc->id, id, sizeof(pc->id));
        if (!jsonnum_whole(cJSON_GetObjectItemCaseSensitive(p, "bytes"), &pc->last))
                BAD(".slots[%zu].peers[%zu].bytes: missing or not a whole number 0..2^53", k, j);
        if (!flag(p, "announced", &pc->announced) || (pc->announced && f != SESSIONS_FLOW_PUSH))
                BAD(".slots[%zu].peers[%zu].announced: only a push target's, true or false", k, j);
        if (!flag(p, "left", &pc->left) || (pc->left && f != SESSIONS_FLOW_VIEWERS))
                BAD(".slots[%zu].peers[%zu].left: only a viewer's, true or false", k, j);
        for (size_t x = 0; x < b->n; x++)
                if (b->peers[x].flow == pc->flow && !strcmp(b->peers[x].id, pc->id))
                        BAD(".slots[%zu].peers[%zu]: %s %s listed twice", k, j, fl, pc->id);
        b->n++;
        return 0;
}

/* counters.slots[k] into *ret; its slot's index in *ret_slot (-1: the config lacks it). */
static int parse_slot(const cJSON *o, size_t k, const struct slots *slots, struct slot_bytes *ret,
                      int *ret_slot, char *msg, size_t msg_len) {
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "slot"));
        const char *session = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "session"));
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "total");
        const cJSON *peers = cJSON_GetObjectItemCaseSensitive(o, "peers"), *p;
        const cJSON *base = cJSON_GetObjectItemCaseSensitive(o, "baseline");
        size_t j = 0;
        int r;

        if (!cJSON_IsObject(o))
                BAD(".slots[%zu]: not an object", k);
        if (!id || !id[0] || strlen(id) > SLOTS_ID_MAX)
                BAD(".slots[%zu].slot: missing or not 1..%d bytes", k, SLOTS_ID_MAX);
        if (!session || strlen(session) != SLOTS_SESSION_LEN)
                BAD(".slots[%zu].session: missing or not %d hex digits", k, SLOTS_SESSION_LEN);
        memset(ret, 0, sizeof(*ret));
        plat_strlcpy(ret->session, session, sizeof(ret->session));
        if (!jsonnum_whole(cJSON_GetObjectItemCaseSensitive(o, "last_real"), &ret->last_real))
                BAD(".slots[%zu].last_real: missing or not a time in microseconds", k);
        if (!cJSON_IsBool(base))
                BAD(".slots[%zu].baseline: missing or not true or false", k);
        ret->baseline = cJSON_IsTrue(base);
        for (int f = 0; f < SESSIONS_FLOWS; f++)
                if (!jsonnum_whole(
                            cJSON_GetObjectItemCaseSensitive(t, sessions_flow_str((enum sessions_flow)f)),
                            &ret->total[f]))
                        BAD(".slots[%zu].total.%s: missing or not a whole number 0..2^53", k,
                            sessions_flow_str((enum sessions_flow)f));
        if (!cJSON_IsArray(peers) || cJSON_GetArraySize(peers) > SESSIONS_PEERS_MAX)
                BAD(".slots[%zu].peers: missing or not an array of at most %d counters", k,
                    SESSIONS_PEERS_MAX);
        cJSON_ArrayForEach(p, peers) {
                r = parse_peer(p, k, j++, ret, msg, msg_len);
                if (r < 0)
                        return r;
        }
        *ret_slot = slots_find(slots, id);
        return 0;
}

/* Every held session without counters of its own starts with a baseline. */
static void baselines(struct slot_table *t, const struct slots *slots) {
        for (size_t i = 0; i < slots_count(slots) && i < t->n; i++) {
                struct slot_bytes *b = &slot_at(t, i)->bytes;
                struct slots_info info;

                slots_get(slots, i, &info);
                memset(b, 0, sizeof(*b));
                if (!holds_session(&info))
                        continue;
                plat_strlcpy(b->session, info.session, sizeof(b->session));
                b->baseline = true;
        }
}

static int parse(struct slot_bytes *tmp, const struct slots *slots, const cJSON *root, char *msg,
                 size_t msg_len) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "v"), *arr, *o;
        bool seen[SLOTS_MAX] = { false };
        size_t k = 0;
        int r;

        if (!cJSON_IsObject(root))
                BAD(": not a JSON object");
        if (!cJSON_IsNumber(v) || v->valuedouble != 1)
                BAD(".v: missing or not 1 (counters of another version)");
        arr = cJSON_GetObjectItemCaseSensitive(root, "slots");
        if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) > SLOTS_MAX)
                BAD(".slots: missing or not an array of at most %d slots", SLOTS_MAX);
        cJSON_ArrayForEach(o, arr) {
                struct slot_bytes one;
                struct slots_info info;
                int i;

                r = parse_slot(o, k, slots, &one, &i, msg, msg_len);
                if (r < 0)
                        return r;
                if (i >= 0 && seen[i])
                        BAD(".slots[%zu].slot: slot %s listed twice", k,
                            cJSON_GetObjectItem(o, "slot")->valuestring);
                k++;
                if (i < 0)
                        continue; /* a slot the config no longer has holds nobody here */
                seen[i] = true;
                slots_get(slots, (size_t)i, &info);
                /* Counters of a session that is no longer held count nothing more. */
                if (holds_session(&info) && !strcmp(info.session, one.session))
                        tmp[i] = one;
        }
        return 0;
}

int counters_restore(struct slot_table *t, const struct slots *slots, const char *json, char *msg,
                     size_t msg_len) {
        _cleanup_free_ struct slot_bytes *tmp = NULL;
        cJSON *root;
        int r;

        baselines(t, slots);
        if (!json)
                return 0;
        tmp = calloc(SLOTS_MAX, sizeof(*tmp));
        if (!tmp)
                return -ENOMEM;
        root = cJSON_Parse(json);
        if (!root) {
                snprintf(msg, msg_len, "counters: not JSON");
                return -EBADMSG;
        }
        r = parse(tmp, slots, root, msg, msg_len);
        cJSON_Delete(root);
        if (r < 0)
                return r;
        for (size_t i = 0; i < slots_count(slots) && i < t->n; i++)
                slot_at(t, i)->bytes = tmp[i];
        return 0;
}
