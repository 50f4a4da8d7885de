/* sessions_bytes.c: report_bytes, the byte counters for metering: each peer's cumulative counter
 * turned into deltas for the meter, checked whole before anything is counted, written with the state
 * before the report is acknowledged (counters.h); push targets started and stopped with them. */
#include "sessions_internal.h"

#include "flows.h"
#include "strutil.h"

#include <string.h>

static const char *const flow_names[SESSIONS_FLOWS] = { "player", "viewers", "push" };

const char *sessions_flow_str(enum sessions_flow f) {
        return f < SESSIONS_FLOWS ? flow_names[f] : "?";
}

void sessions__stop_pushes(struct sessions *s, const struct slots_event *ev) {
        const struct slot_bytes *b = &sessions__slot(s, ev->slot)->bytes;

        if (!s->hooks.push || strcmp(b->session, ev->session))
                return;
        for (size_t k = 0; k < b->n; k++)
                if (b->peers[k].flow == SESSIONS_FLOW_PUSH && b->peers[k].announced)
                        s->hooks.push(ev->slot, ev->session, b->peers[k].id, false, s->hooks.userdata);
}

/* The counter of (flow, id) in b, added when new; NULL when b is full. */
static struct peer_counter *counter(struct slot_bytes *b, enum sessions_flow flow, const char *id) {
        for (size_t k = 0; k < b->n; k++)
                if (b->peers[k].flow == flow && !strcmp(b->peers[k].id, id))
                        return &b->peers[k];
        if (b->n == SESSIONS_PEERS_MAX)
                return NULL;
        b->peers[b->n] = (struct peer_counter){ .flow = flow };
        plat_strlcpy(b->peers[b->n].id, id, sizeof(b->peers[0].id));
        return &b->peers[b->n++];
}

/* The counter a checked counters[] entry c reports, added when new; NULL when b is full. */
static struct peer_counter *counter_of(struct slot_bytes *b, const cJSON *c, enum sessions_flow *ret_flow) {
        const char *fl = cJSON_GetObjectItemCaseSensitive(c, "flow")->valuestring;
        const cJSON *peer = cJSON_GetObjectItemCaseSensitive(c, "peer");
        enum sessions_flow flow = !strcmp(fl, "player")   ? SESSIONS_FLOW_PLAYER
                                  : !strcmp(fl, "viewer") ? SESSIONS_FLOW_VIEWERS
                                                          : SESSIONS_FLOW_PUSH;

        *ret_flow = flow;
        return counter(b, flow, flow == SESSIONS_FLOW_PLAYER ? "" : peer->valuestring);
}

static uint64_t bytes_of(const cJSON *c) {
        return (uint64_t)cJSON_GetObjectItemCaseSensitive(c, "bytes")->valuedouble;
}

/* What counters[] entry c adds to pc. A counter that went down was restarted by its process: it
 * counts from zero. */
static uint64_t delta(const struct slot_bytes *b, const struct peer_counter *pc, const cJSON *c) {
        uint64_t v = bytes_of(c);

        return b->baseline ? 0 : v >= pc->last ? v - pc->last : v;
}

/* Whether counters[k] (c, checked) may be billed: a viewer's bytes only while it is the session's
 * viewer (never its host); once the session ends (its viewers go with it), those of a viewer that
 * reported while joined and did not leave. False with the refusal set. */
static bool billable(struct req_ctx *x, size_t i, const struct slots_info *info, const cJSON *c, size_t k) {
        const struct slot_bytes *b = &sessions__slot(x->s, i)->bytes;
        const char *viewer = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "peer"));

        if (strcmp(cJSON_GetObjectItemCaseSensitive(c, "flow")->valuestring, "viewer") ||
            sessions__is_viewer(x->s, i, info, viewer))
                return true;
        if (!strcmp(viewer, info->user)) {
                REFUSE(x, "BAD_REQUEST",
                       "counters[%zu]: user %s hosts session %s; a host's own stream is flow \"player\", "
                       "never a viewer",
                       k, viewer, info->session);
                return false;
        }
        for (size_t n = 0; info->state == SLOTS_ENDING && !strcmp(b->session, info->session) && n < b->n;
             n++)
                if (b->peers[n].flow == SESSIONS_FLOW_VIEWERS && !strcmp(b->peers[n].id, viewer)) {
                        if (!b->peers[n].left)
                                return true;
                        break;
                }
        REFUSE(x, "SESSION_NOT_FOUND",
               "counters[%zu]: viewer %s is not in session %s (it never joined, or it left); only joined "
               "viewers' bytes are billed",
               k, viewer, info->session);
        return false;
}

/* report_bytes: cumulative byte counters per peer since it joined; deltas go to metering. */
cJSON *sessions__op_report_bytes(struct req_ctx *x) {
        struct sessions *s = x->s;
        struct slots_ref ref = { 0 };
        const cJSON *counters, *c;
        struct slots_info info;
        struct slot_bytes *b, saved;
        uint64_t now = plat_now_real_usec(), from;
        size_t i, k = 0;
        cJSON *o;
        int r;

        if (!sessions__ref_of(x, &ref))
                return NULL;
        r = sessions__slot_of(s, ref, &info);
        if (r < 0)
                return REFUSE(x, "SESSION_NOT_FOUND", "no session %s", ref.session ? ref.session : ref.user);
        i = (size_t)r;
        if (ref.session && ref.user && strcmp(info.user, ref.user))
                return REFUSE(x, "FORBIDDEN", "session %s is not user %s's", info.session, ref.user);
        if (info.state == SLOTS_RESERVED)
                return REFUSE(x, "LOCK_TIMEOUT", "session %s has not started", info.session);
        /* Checked whole before anything is counted: a bad report changes nothing. */
        counters = cJSON_GetObjectItemCaseSensitive(x->req, "counters");
        if (flows_check_counters(counters, x->msg, x->msg_len) < 0) {
                *x->code = "BAD_REQUEST";
                return NULL;
        }
        cJSON_ArrayForEach(c, counters) {
                if (!billable(x, i, &info, c, k++))
                        return NULL;
        }
        b = &sessions__slot(s, i)->bytes;
        if (strcmp(b->session, info.session)) {
                /* Its first report here: none was written before (counters_restore), count from 0. */
                memset(b, 0, sizeof(*b));
                plat_strlcpy(b->session, info.session, sizeof(b->session));
        }
        from = b->last_real ? b->last_real : info.started_real_usec ? info.started_real_usec : now;
        /* Every peer gets its counter, and every delta is checked, before any is counted: a report
         * past the cap or the rate ceiling counts nothing. */
        saved = *b;
        k = 0;
        cJSON_ArrayForEach(c, counters) {
                enum sessions_flow flow;
                struct peer_counter *pc = counter_of(b, c, &flow);

                if (!pc) {
                        *b = saved;
                        return REFUSE(x, "ROLE_LIMIT", "session %s reports more than %d peers", info.session,
                                      SESSIONS_PEERS_MAX);
                }
                if (flows_check_rate(c, k++, delta(b, pc, c), from, now, s->cfg->sessions.max_flow_mbps,
                                     x->msg, x->msg_len) < 0) {
                        *b = saved;
                        *x->code = "BAD_REQUEST";
                        return NULL;
                }
        }
        /* slots.state keeps every counter: their room there is bounded. */
        if (b->n > saved.n && counters_size(s->table) > COUNTERS_MAX_BYTES) {
                *b = saved;
                return REFUSE(x, "ROLE_LIMIT",
                              "the node's byte counters would take more than %d KiB of %s; session %s "
                              "reports no new peer until sessions end",
                              COUNTERS_MAX_BYTES / 1024, SLOTS_STATE_FILE, info.session);
        }
        cJSON_ArrayForEach(c, counters) {
                enum sessions_flow flow;
                struct peer_counter *pc = counter_of(b, c, &flow);
                uint64_t v = bytes_of(c), d = delta(b, pc, c);

                /* A push target starts with its first bytes, before they are counted. */
                if (flow == SESSIONS_FLOW_PUSH && v > 0 && !pc->announced) {
                        pc->announced = true;
                        if (s->hooks.push)
                                s->hooks.push(i, info.session, pc->id, true, s->hooks.userdata);
                }
                pc->last = v;
                pc->left = false; /* billable: joined (again) */
                b->total[flow] += d;
                if (d && s->hooks.bytes)
                        s->hooks.bytes(i, flow, pc->id, d, from, now, s->hooks.userdata);
        }
        b->last_real = now;
        b->baseline = false;
        /* The reply waits for the state write that holds what it moved (and the bytes the meter
         * counted): a report acknowledged is never counted again, nor lost, after a crash. */
        if (counters_moved(&saved, b)) {
                s->counters_dirty = true;
                x->held = true;
        }
        o = sessions__slot_reply(s, i, NULL, "slot");
        sessions__add_totals(s, i, o);
        return o;
}

void sessions__viewer_left(struct sessions *s, const struct slots_event *ev, const char *viewer) {
        struct slot_bytes *b = &sessions__slot(s, ev->slot)->bytes;

        for (size_t k = 0; !strcmp(b->session, ev->session) && k < b->n; k++)
                if (b->peers[k].flow == SESSIONS_FLOW_VIEWERS && !strcmp(b->peers[k].id, viewer)) {
                        b->peers[k].left = true;
                        s->counters_dirty = true;
                }
}

void sessions__add_totals(const struct sessions *s, size_t i, cJSON *o) {
        cJSON *t = cJSON_AddObjectToObject(o, "bytes");

        for (int f = 0; f < SESSIONS_FLOWS; f++)
                cJSON_AddNumberToObject(t, flow_names[f], (double)sessions__slot(s, i)->bytes.total[f]);
}
