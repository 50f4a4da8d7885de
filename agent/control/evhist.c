/* evhist.c: the agent's recent events in memory, for `render-agentctl events [--since] [--follow]`. */
#include "evhist.h"

#include "authz.h"
#include "cleanup.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct evhist_entry {
        char *doc;
        uint64_t real_usec;
};

/* A ring of the newest events, oldest at `first`. */
struct evhist {
        struct evhist_entry e[EVHIST_MAX];
        size_t first, n, bytes;
};

int evhist_new(struct evhist **ret) {
        struct evhist *h = calloc(1, sizeof(*h));

        if (!h)
                return -ENOMEM;
        *ret = h;
        return 0;
}

static void drop_oldest(struct evhist *h) {
        struct evhist_entry *e = &h->e[h->first];

        h->bytes -= strlen(e->doc);
        free(e->doc);
        e->doc = NULL;
        h->first = (h->first + 1) % EVHIST_MAX;
        h->n--;
}

void evhist_free(struct evhist *h) {
        if (!h)
                return;
        while (h->n)
                drop_oldest(h);
        free(h);
}

int evhist_add(struct evhist *h, const char *doc, uint64_t real_usec) {
        size_t len = strlen(doc);
        char *copy;

        if (len > EVHIST_MAX_BYTES)
                return -E2BIG;
        copy = strdup(doc);
        if (!copy)
                return -ENOMEM;
        while (h->n == EVHIST_MAX || (h->n && h->bytes + len > EVHIST_MAX_BYTES))
                drop_oldest(h);
        h->e[(h->first + h->n) % EVHIST_MAX] = (struct evhist_entry){ copy, real_usec };
        h->n++;
        h->bytes += len;
        return 0;
}

int evhist_since(const struct evhist *h, uint64_t since_usec, cJSON *arr) {
        for (size_t i = 0; i < h->n; i++) {
                const struct evhist_entry *e = &h->e[(h->first + i) % EVHIST_MAX];
                cJSON *doc;

                if (e->real_usec < since_usec)
                        continue;
                doc = cJSON_Parse(e->doc);
                if (!doc)
                        return -ENOMEM; /* the agent printed it: only memory can fail */
                cJSON_AddItemToArray(arr, doc);
        }
        return 0;
}

/* "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (or +00:00) as wall-clock usec. */
static int parse_rfc3339_utc(const char *s, uint64_t *ret) {
        struct tm tm = { 0 };
        const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        uint64_t frac = 0, scale = 1000000;
        time_t t;

        if (!p)
                return -EINVAL;
        if (*p == '.') {
                if (!('0' <= p[1] && p[1] <= '9'))
                        return -EINVAL;
                for (p++; '0' <= *p && *p <= '9'; p++)
                        if (scale > 1) {
                                scale /= 10;
                                frac += (uint64_t)(*p - '0') * scale;
                        }
        }
        if (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0)
                return -EINVAL;
        t = timegm(&tm);
        if (t < 0)
                return -EINVAL;
        *ret = (uint64_t)t * 1000000 + frac;
        return 0;
}

int evhist_parse_since(const cJSON *v, uint64_t now_usec, uint64_t *ret_usec, char *msg, size_t len) {
        uint64_t t;

        if (!v) {
                *ret_usec = 0;
                return 0;
        }
        if (cJSON_IsNumber(v)) {
                double s = v->valuedouble;

                if (!isfinite(s) || s < 0 || s > 10.0 * 365 * 86400) {
                        snprintf(msg, len,
                                 "\"since\" must be a number of seconds from 0 to 315360000 or "
                                 "an RFC 3339 UTC time");
                        return -EINVAL;
                }
                t = (uint64_t)(s * 1e6);
                *ret_usec = t > now_usec ? 0 : now_usec - t;
                return 0;
        }
        if (cJSON_IsString(v) && strlen(v->valuestring) <= 40 &&
            parse_rfc3339_utc(v->valuestring, &t) == 0) {
                *ret_usec = t;
                return 0;
        }
        snprintf(msg, len,
                 "\"since\" must be a number of seconds or an RFC 3339 UTC time such as "
                 "\"2026-12-01T14:20:01Z\"");
        return -EINVAL;
}

cJSON *evhist_op(const struct evhist *h, const cJSON *req, uint64_t now_usec, const char **ret_code,
                 char *msg, size_t msglen) {
        const cJSON *follow = cJSON_GetObjectItemCaseSensitive(req, "follow");
        uint64_t since;
        cJSON *res, *arr;

        if (follow && !cJSON_IsBool(follow)) {
                *ret_code = "BAD_REQUEST";
                snprintf(msg, msglen, "\"follow\" must be true or false");
                return NULL;
        }
        if (evhist_parse_since(cJSON_GetObjectItemCaseSensitive(req, "since"), now_usec, &since, msg,
                               msglen) < 0) {
                *ret_code = "BAD_REQUEST";
                return NULL;
        }
        res = cJSON_CreateObject();
        arr = cJSON_AddArrayToObject(res, "events");
        if (!arr || evhist_since(h, since, arr) < 0) {
                cJSON_Delete(res);
                *ret_code = "INTERNAL";
                snprintf(msg, msglen, "out of memory");
                return NULL;
        }
        cJSON_AddBoolToObject(res, "following", cJSON_IsTrue(follow));
        return res;
}

void evhist_record(struct evhist *h, struct diag *d, const cJSON *o, uint64_t real_usec) {
        _cleanup_free_ char *full = cJSON_PrintUnformatted(o), *redacted = NULL;
        cJSON *copy;

        if (!full)
                return;
        if (h)
                (void)evhist_add(h, full, real_usec);
        if (!d || !diag_followers(d))
                return;
        copy = cJSON_Duplicate(o, true);
        authz_redact(copy);
        redacted = copy ? cJSON_PrintUnformatted(copy) : NULL;
        cJSON_Delete(copy);
        diag_publish(d, full, redacted);
}
