/* audit.c: checks a stream of metering records: signatures, seq gaps, duplicates, conflicts, the chain. */
#include "audit_internal.h"

#include "cleanup.h"
#include "jws.h"
#include "strutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* JSON numbers are doubles: seq stays exact up to 2^53 - 1. */
#define SEQ_MAX UINT64_C(9007199254740991)
#define NAME_MAX_LEN 64

DEFINE_TRIVIAL_CLEANUP_FUNC(cJSON *, cJSON_Delete);

int audit_new(struct plat_verifier *key, struct audit **ret) {
        struct audit *a = calloc(1, sizeof(*a));

        if (!a)
                return -ENOMEM;
        a->key = key;
        *ret = a;
        return 0;
}

int audit_expect_node(struct audit *a, const char *cn) {
        if (!plat_cn_ok(cn))
                return -EINVAL;
        snprintf(a->node, sizeof(a->node), "%s", cn);
        return 0;
}

void audit_free(struct audit *a) {
        if (!a)
                return;
        for (size_t i = 0; i < a->n_nodes; i++) {
                free(a->nodes[i]->name);
                free(a->nodes[i]->region);
                free(a->nodes[i]);
        }
        for (size_t i = 0; i < a->n_types; i++)
                free(a->types[i]);
        for (size_t i = 0; i < a->n_kept; i++)
                free(a->kept[i].msg);
        free(a->recs);
        free(a);
}

static int problem(struct audit *a, uint64_t line, enum audit_problem kind, const char *msg) {
        a->problems[kind]++;
        if (a->n_kept == AUDIT_PROBLEMS_MAX)
                return 0;
        a->kept[a->n_kept] = (struct problem){ .line = line, .kind = kind, .msg = strdup(msg) };
        if (!a->kept[a->n_kept].msg)
                return -ENOMEM;
        a->n_kept++;
        return 0;
}

void audit_line_too_long(struct audit *a, uint64_t lineno, size_t limit) {
        char msg[96];

        a->lines++;
        snprintf(msg, sizeof(msg), "not a record: longer than %zu bytes", limit);
        (void)problem(a, lineno, AUDIT_NOT_JWS, msg);
}

/* Record types: session_start, bandwidth_minute, ...: a-z 0-9 _. */
static bool type_ok(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > NAME_MAX_LEN)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
                        return false;
        return true;
}

/* RFC 3339 UTC with milliseconds, the one form records use: 2026-12-01T13:00:00.123Z. */
static bool ts_ok(const char *s) {
        static const char form[] = "dddd-dd-ddTdd:dd:dd.dddZ";
        unsigned mo, d, h, mi, sec;

        if (strlen(s) != sizeof(form) - 1)
                return false;
        for (size_t i = 0; form[i]; i++)
                if (form[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != form[i])
                        return false;
        if (sscanf(s + 5, "%2u-%2uT%2u:%2u:%2u", &mo, &d, &h, &mi, &sec) != 5)
                return false;
        return mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h <= 23 && mi <= 59 && sec <= 60;
}

static bool hex64(const char *s, uint8_t out[static PLAT_SHA256_LEN]) {
        if (strlen(s) != PLAT_SHA256_HEX_LEN)
                return false;
        for (size_t i = 0; i < PLAT_SHA256_HEX_LEN; i++) {
                char c = s[i];
                unsigned v = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                             : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                                                    : 16;

                if (v == 16)
                        return false;
                out[i / 2] = (uint8_t)(i % 2 ? out[i / 2] | v : v << 4);
        }
        return true;
}

static const char *str_member(const cJSON *o, const char *k, bool (*ok)(const char *)) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

        return cJSON_IsString(v) && ok(v->valuestring) ? v->valuestring : NULL;
}

struct fields {
        const char *node, *region, *type;
        uint64_t seq;
        uint8_t prev[PLAT_SHA256_LEN];
};

/* The members every record carries (docs/metering.md); type-specific ones are not checked here. */
static int parse_fields(const cJSON *o, struct fields *f, char *msg, size_t msg_len) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "v"), *seq, *prev, *ts;

        if (!cJSON_IsObject(o)) {
                plat_errf(msg, msg_len, "payload: not a JSON object");
                return -EPROTO;
        }
        if (!cJSON_IsNumber(v) || v->valuedouble != 1) {
                plat_errf(msg, msg_len, "payload: \"v\" must be 1");
                return -EPROTO;
        }
        f->type = str_member(o, "type", type_ok);
        f->node = str_member(o, "node", plat_cn_ok);
        f->region = str_member(o, "region", plat_cn_ok);
        if (!f->type || !f->node || !f->region) {
                plat_errf(msg, msg_len, "payload: \"%s\" missing or malformed",
                          !f->type   ? "type"
                          : !f->node ? "node"
                                     : "region");
                return -EPROTO;
        }
        seq = cJSON_GetObjectItemCaseSensitive(o, "seq");
        if (!cJSON_IsNumber(seq) || seq->valuedouble < 1 || seq->valuedouble > (double)SEQ_MAX ||
            seq->valuedouble != floor(seq->valuedouble)) {
                plat_errf(msg, msg_len, "payload: \"seq\" must be an integer 1..2^53-1");
                return -EPROTO;
        }
        f->seq = (uint64_t)seq->valuedouble;
        prev = cJSON_GetObjectItemCaseSensitive(o, "prev");
        if (!cJSON_IsString(prev) || !hex64(prev->valuestring, f->prev)) {
                plat_errf(msg, msg_len, "payload: \"prev\" must be 64 lower-case hex digits");
                return -EPROTO;
        }
        ts = cJSON_GetObjectItemCaseSensitive(o, "ts");
        if (!cJSON_IsString(ts) || !ts_ok(ts->valuestring)) {
                plat_errf(msg, msg_len,
                          "payload: \"ts\" must be RFC 3339 UTC with milliseconds "
                          "(2026-12-01T13:00:00.123Z)");
                return -EPROTO;
        }
        return 0;
}

static int node_index(struct audit *a, const char *name, const char *region, uint32_t *ret) {
        struct node *n;

        if (a->n_nodes > 0 && !strcmp(a->nodes[a->last_node]->name, name)) {
                *ret = (uint32_t)a->last_node;
                return 0;
        }
        for (size_t i = 0; i < a->n_nodes; i++)
                if (!strcmp(a->nodes[i]->name, name)) {
                        a->last_node = i;
                        *ret = (uint32_t)i;
                        return 0;
                }
        if (a->n_nodes == AUDIT_MAX_NODES)
                return -E2BIG;
        n = calloc(1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        n->name = strdup(name);
        n->region = strdup(region);
        if (!n->name || !n->region) {
                free(n->name);
                free(n->region);
                free(n);
                return -ENOMEM;
        }
        a->last_node = a->n_nodes;
        a->nodes[a->n_nodes++] = n;
        *ret = (uint32_t)a->last_node;
        return 0;
}

static int type_index(struct audit *a, const char *type, uint16_t *ret) {
        for (size_t i = 0; i < a->n_types; i++)
                if (!strcmp(a->types[i], type)) {
                        *ret = (uint16_t)i;
                        return 0;
                }
        if (a->n_types == AUDIT_MAX_TYPES) {
                *ret = AUDIT_MAX_TYPES;
                return 0;
        }
        a->types[a->n_types] = strdup(type);
        if (!a->types[a->n_types])
                return -ENOMEM;
        *ret = (uint16_t)a->n_types++;
        return 0;
}

static bool blank(const char *s, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
                        return false;
        return true;
}

static enum audit_problem kind_of(int r) {
        switch (r) {
        case -EOPNOTSUPP:
                return AUDIT_ALG_REFUSED;
        case -EKEYREJECTED:
                return AUDIT_WRONG_KEY;
        case -EBADMSG:
                return AUDIT_BAD_SIGNATURE;
        default:
                return AUDIT_NOT_JWS;
        }
}

/* Makes room for one more record, growing by half: a 10-million-record stream should not need
 * twice its size at the last doubling. */
static int grow(struct audit *a) {
        size_t cap;
        struct rec *nr;

        if (a->n_recs < a->cap)
                return 0;
        cap = a->cap < 1024 ? 1024 : a->cap + a->cap / 2;
        if (cap > AUDIT_MAX_RECORDS)
                cap = AUDIT_MAX_RECORDS;
        nr = realloc(a->recs, cap * sizeof(*nr));
        if (!nr)
                return -ENOMEM;
        a->recs = nr;
        a->cap = cap;
        return 0;
}

int audit_line(struct audit *a, const char *line, size_t len, uint64_t lineno) {
        _cleanup_free_ char *payload = NULL;
        _cleanup_(cJSON_Deletep) cJSON *o = NULL;
        struct fields f;
        struct rec *rec;
        char msg[512];
        size_t plen;
        int r;

        if (blank(line, len))
                return 0;
        if (a->n_recs == AUDIT_MAX_RECORDS)
                return -E2BIG;
        a->lines++;
        r = a->key ? jws_parse_verify(line, len, a->key, &payload, &plen, msg, sizeof(msg))
                   : jws_parse_unverified(line, len, &payload, &plen, msg, sizeof(msg));
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return problem(a, lineno, kind_of(r), msg);
        o = cJSON_ParseWithLength(payload, plen);
        r = parse_fields(o, &f, msg, sizeof(msg));
        if (r < 0)
                return problem(a, lineno, AUDIT_BAD_PAYLOAD, msg);
        /* A valid signature says which key signed, not for which node: the certificate binds the
         * key to its CN, so a record naming another node was not this node's to make. */
        if (a->node[0] && strcmp(f.node, a->node) != 0) {
                snprintf(msg, sizeof(msg), "seq %" PRIu64 ": node \"%s\" is not the certificate's CN \"%s\"",
                         f.seq, f.node, a->node);
                return problem(a, lineno, AUDIT_WRONG_NODE, msg);
        }
        r = grow(a);
        if (r < 0)
                return r;
        rec = &a->recs[a->n_recs];
        *rec = (struct rec){ .seq = f.seq, .line = lineno };
        memcpy(rec->prev, f.prev, sizeof(rec->prev));
        r = plat_sha256(payload, plen, rec->hash);
        if (r < 0)
                return r;
        r = node_index(a, f.node, f.region, &rec->node);
        if (r == -E2BIG) {
                snprintf(msg, sizeof(msg), "node \"%s\": more than %d nodes in one stream", f.node,
                         AUDIT_MAX_NODES);
                return problem(a, lineno, AUDIT_BAD_PAYLOAD, msg);
        }
        if (r < 0)
                return r;
        r = type_index(a, f.type, &rec->type);
        if (r < 0)
                return r;
        a->n_recs++;
        return 0;
}

/* By node, then seq, then payload hash (identical payloads side by side), then line. */
static int rec_cmp(const void *x, const void *y) {
        const struct rec *p = x, *q = y;
        int c;

        if (p->node != q->node)
                return p->node < q->node ? -1 : 1;
        if (p->seq != q->seq)
                return p->seq < q->seq ? -1 : 1;
        c = memcmp(p->hash, q->hash, sizeof(p->hash));
        if (c)
                return c;
        return p->line < q->line ? -1 : p->line > q->line;
}

/* Is h the hash of a record in recs[from, to)? They are sorted by hash. */
static bool group_has_hash(const struct rec *recs, size_t from, size_t to,
                           const uint8_t h[static PLAT_SHA256_LEN]) {
        while (from < to) {
                size_t mid = from + (to - from) / 2;
                int c = memcmp(recs[mid].hash, h, PLAT_SHA256_LEN);

                if (c == 0)
                        return true;
                if (c < 0)
                        from = mid + 1;
                else
                        to = mid;
        }
        return false;
}

static void add_break(struct node *n, uint64_t seq, uint64_t line, uint64_t prev_line) {
        if (n->n_breaks < AUDIT_LIST_MAX)
                n->breaks[n->n_breaks] =
                        (struct chain_break){ .seq = seq, .line = line, .prev_line = prev_line };
        n->n_breaks++;
}

/* One seq of one node: recs[i, j), sorted by hash; the previous seq's group is recs[pi, pj) (pi == pj
 * when there is none). */
static void check_group(struct audit *a, size_t i, size_t j, size_t pi, size_t pj) {
        static const uint8_t zeros[PLAT_SHA256_LEN];
        const struct rec *r = &a->recs[i];
        struct node *n = a->nodes[r->node];
        bool first = n->unique == 0;

        n->records += j - i;
        n->unique++;
        n->types[r->type]++;
        if (first)
                n->first_seq = r->seq;
        else if (r->seq > n->last_seq + 1) {
                if (n->n_gaps < AUDIT_LIST_MAX)
                        n->gaps[n->n_gaps] = (struct gap){ .from = n->last_seq + 1, .to = r->seq - 1 };
                n->n_gaps++;
                n->missing += r->seq - n->last_seq - 1;
        }
        n->last_seq = r->seq;
        for (size_t k = i; k < j; k++) {
                const struct rec *x = &a->recs[k];
                bool same_as_before = k > i && !memcmp(x->hash, a->recs[k - 1].hash, PLAT_SHA256_LEN);

                if (same_as_before) {
                        n->duplicates++; /* an at-least-once redelivery */
                        continue;
                }
                if (k > i) {
                        if (n->n_conflicts < AUDIT_LIST_MAX)
                                n->conflicts[n->n_conflicts] = (struct conflict){ .seq = x->seq,
                                                                                  .line_a = r->line,
                                                                                  .line_b = x->line };
                        n->n_conflicts++;
                }
                if (x->seq == 1 && memcmp(x->prev, zeros, sizeof(zeros)) != 0)
                        add_break(n, x->seq, x->line, 0);
                else if (pi < pj && a->recs[pi].seq + 1 == x->seq &&
                         !group_has_hash(a->recs, pi, pj, x->prev))
                        add_break(n, x->seq, x->line, a->recs[pi].line);
        }
}

int audit_finish(struct audit *a) {
        size_t pi = 0, pj = 0;

        if (a->finished)
                return 0;
        a->finished = true;
        if (a->n_recs > 0)
                qsort(a->recs, a->n_recs, sizeof(*a->recs), rec_cmp);
        for (size_t i = 0, j; i < a->n_recs; i = j) {
                for (j = i + 1;
                     j < a->n_recs && a->recs[j].node == a->recs[i].node && a->recs[j].seq == a->recs[i].seq;
                     j++)
                        ;
                /* A new node has no previous group. */
                if (pi < pj && a->recs[pi].node != a->recs[i].node)
                        pi = pj = i;
                check_group(a, i, j, pi, pj);
                pi = i;
                pj = j;
        }
        return 0;
}

uint64_t audit__bad_lines(const struct audit *a) {
        uint64_t n = 0;

        for (size_t k = 0; k < AUDIT_PROBLEM_COUNT; k++)
                n += a->problems[k];
        return n;
}

struct audit__totals audit__totals(const struct audit *a) {
        struct audit__totals t = { 0 };

        for (size_t i = 0; i < a->n_nodes; i++) {
                const struct node *n = a->nodes[i];

                t.records += n->records;
                t.unique += n->unique;
                t.duplicates += n->duplicates;
                t.gaps += n->n_gaps;
                t.missing += n->missing;
                t.conflicts += n->n_conflicts;
                t.breaks += n->n_breaks;
        }
        return t;
}

bool audit_ok(const struct audit *a) {
        struct audit__totals t = audit__totals(a);

        return a->key && a->finished && audit__bad_lines(a) == 0 && t.gaps == 0 && t.conflicts == 0 &&
               t.breaks == 0;
}
