/* flows.c: what a report_bytes request may say: well-formed counters, peer ids that are text, and
 * byte deltas no faster than the configured ceiling (docs/protocol.md, report_bytes). */
#include "flows.h"

#include "jsonnum.h"

#include "sessions.h"
#include "slots.h"
#include "strutil.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static bool is_flow(const cJSON *flow) {
        return cJSON_IsString(flow) &&
               (!strcmp(flow->valuestring, "player") || !strcmp(flow->valuestring, "viewer") ||
                !strcmp(flow->valuestring, "push"));
}

static bool is_peer(const cJSON *peer) {
        size_t n;

        if (!cJSON_IsString(peer))
                return false;
        n = strlen(peer->valuestring);
        return n > 0 && n <= SLOTS_USER_MAX && plat_utf8_text(peer->valuestring, n);
}

int flows_check_counters(const cJSON *counters, char *msg, size_t msg_len) {
        const cJSON *c;
        size_t k = 0;

        if (!cJSON_IsArray(counters) || cJSON_GetArraySize(counters) > SESSIONS_PEERS_MAX)
                return plat_errf(msg, msg_len, "\"counters\" must be an array of at most %d objects",
                                 SESSIONS_PEERS_MAX),
                       -EPROTO;
        cJSON_ArrayForEach(c, counters) {
                const cJSON *flow = cJSON_GetObjectItemCaseSensitive(c, "flow");
                const cJSON *peer = cJSON_GetObjectItemCaseSensitive(c, "peer");
                const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(c, "bytes");
                bool player;

                if (!is_flow(flow))
                        return plat_errf(msg, msg_len,
                                         "counters[%zu].flow must be \"player\", \"viewer\" or \"push\"", k),
                               -EPROTO;
                player = !strcmp(flow->valuestring, "player");
                if (!player && !is_peer(peer))
                        return plat_errf(msg, msg_len,
                                         "counters[%zu].peer must name the viewer or push target: 1..%d "
                                         "bytes of UTF-8 text without control characters",
                                         k, SLOTS_USER_MAX),
                               -EPROTO;
                if (!jsonnum_whole(bytes, &(uint64_t){ 0 }))
                        return plat_errf(msg, msg_len,
                                         "counters[%zu].bytes must be a whole number of bytes, 0..2^53", k),
                               -EPROTO;
                /* One counter per peer: a second would be counted twice (or read as a restart). */
                for (const cJSON *p = counters->child; p != c; p = p->next) {
                        const cJSON *pf = cJSON_GetObjectItemCaseSensitive(p, "flow");
                        const cJSON *pp = cJSON_GetObjectItemCaseSensitive(p, "peer");

                        if (!strcmp(pf->valuestring, flow->valuestring) &&
                            (player || !strcmp(pp->valuestring, peer->valuestring)))
                                return plat_errf(msg, msg_len,
                                                 "counters[%zu] repeats an earlier counter's peer", k),
                                       -EPROTO;
                }
                k++;
        }
        return 0;
}

int flows_check_rate(const cJSON *c, size_t k, uint64_t bytes, uint64_t from_usec, uint64_t to_usec,
                     unsigned max_mbps, char *msg, size_t msg_len) {
        const char *flow = cJSON_GetObjectItemCaseSensitive(c, "flow")->valuestring;
        const cJSON *peer = cJSON_GetObjectItemCaseSensitive(c, "peer");
        uint64_t span = to_usec > from_usec ? to_usec - from_usec : 0, allowed;

        if (span < FLOWS_SPAN_MIN_USEC)
                span = FLOWS_SPAN_MIN_USEC;
        /* Mbit/s times microseconds is bits; bytes <= 2^53, so bytes * 8 fits. */
        if (__builtin_mul_overflow((uint64_t)max_mbps, span, &allowed) || bytes * 8 <= allowed)
                return 0;
        plat_errf(msg, msg_len,
                  "counters[%zu] (%s%s%s): %" PRIu64 " bytes in %.1f s is %.0f Mbit/s, faster than "
                  "sessions.max_flow_mbps (%u); nothing in this report is counted",
                  k, flow, strcmp(flow, "player") ? " " : "",
                  strcmp(flow, "player") ? peer->valuestring : "", bytes, (double)span / 1e6,
                  (double)bytes * 8 / (double)span, max_mbps);
        return -ERANGE;
}
