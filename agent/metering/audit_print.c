/* audit_print.c: the record-stream audit's reports: a human summary and one JSON document. */
#include "audit_internal.h"

#include "cleanup.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char *const problem_names[AUDIT_PROBLEM_COUNT] = {
        [AUDIT_NOT_JWS] = "not_jws",         [AUDIT_ALG_REFUSED] = "alg_refused",
        [AUDIT_WRONG_KEY] = "wrong_key",     [AUDIT_BAD_SIGNATURE] = "bad_signature",
        [AUDIT_BAD_PAYLOAD] = "bad_payload", [AUDIT_WRONG_NODE] = "wrong_node",
};

static const char *const problem_words[AUDIT_PROBLEM_COUNT] = {
        [AUDIT_NOT_JWS] = "not a JWS",
        [AUDIT_ALG_REFUSED] = "alg refused",
        [AUDIT_WRONG_KEY] = "signed with another key",
        [AUDIT_BAD_SIGNATURE] = "bad signature",
        [AUDIT_BAD_PAYLOAD] = "not a metering record",
        [AUDIT_WRONG_NODE] = "naming another node than the certificate's CN",
};

DEFINE_TRIVIAL_CLEANUP_FUNC(cJSON *, cJSON_Delete);

static const char *plural(uint64_t n, const char *one, const char *many) {
        return n == 1 ? one : many;
}

/* The types a node has records of, in name order, "(other)" last; returns how many. */
static size_t sorted_types(const struct audit *a, const struct node *n,
                           size_t out[static AUDIT_MAX_TYPES + 1]) {
        size_t m = 0;

        for (size_t t = 0; t < a->n_types; t++) {
                size_t k;

                if (!n->types[t])
                        continue;
                k = m++;
                for (; k > 0 && strcmp(a->types[out[k - 1]], a->types[t]) > 0; k--)
                        out[k] = out[k - 1];
                out[k] = t;
        }
        if (n->types[AUDIT_MAX_TYPES])
                out[m++] = AUDIT_MAX_TYPES;
        return m;
}

static const char *type_name(const struct audit *a, size_t t) {
        return t < AUDIT_MAX_TYPES ? a->types[t] : "(other)";
}

#define TEXT_LIST_MAX 20 /* entries of a list printed in the human summary */

static void print_node(const struct audit *a, const struct node *n, FILE *f) {
        size_t order[AUDIT_MAX_TYPES + 1], m = sorted_types(a, n, order);

        fprintf(f, "node %s (region %s): seq %" PRIu64 "..%" PRIu64 ": %" PRIu64 " unique, %" PRIu64 " %s\n",
                n->name, n->region, n->first_seq, n->last_seq, n->unique, n->duplicates,
                plural(n->duplicates, "duplicate", "duplicates"));
        fprintf(f, "  types:");
        for (size_t k = 0; k < m; k++)
                fprintf(f, "%s %s %" PRIu64, k ? "," : "", type_name(a, order[k]), n->types[order[k]]);
        fprintf(f, "\n");
        if (n->n_gaps) {
                fprintf(f, "  gaps: %" PRIu64 " (%" PRIu64 " seq missing):", n->n_gaps, n->missing);
                for (uint64_t k = 0; k < n->n_gaps && k < TEXT_LIST_MAX && k < AUDIT_LIST_MAX; k++) {
                        const struct gap *g = &n->gaps[k];

                        if (g->from == g->to)
                                fprintf(f, "%s %" PRIu64, k ? "," : "", g->from);
                        else
                                fprintf(f, "%s %" PRIu64 "..%" PRIu64, k ? "," : "", g->from, g->to);
                }
                fprintf(f, "%s\n", n->n_gaps > TEXT_LIST_MAX ? ", ..." : "");
        }
        if (n->n_conflicts) {
                fprintf(f, "  conflicts (same seq, different payload): %" PRIu64 "\n", n->n_conflicts);
                for (uint64_t k = 0; k < n->n_conflicts && k < TEXT_LIST_MAX && k < AUDIT_LIST_MAX; k++)
                        fprintf(f, "    seq %" PRIu64 ": lines %" PRIu64 " and %" PRIu64 "\n",
                                n->conflicts[k].seq, n->conflicts[k].line_a, n->conflicts[k].line_b);
        }
        if (n->n_breaks) {
                fprintf(f, "  chain breaks: %" PRIu64 "\n", n->n_breaks);
                for (uint64_t k = 0; k < n->n_breaks && k < TEXT_LIST_MAX && k < AUDIT_LIST_MAX; k++) {
                        const struct chain_break *b = &n->breaks[k];

                        if (b->prev_line)
                                fprintf(f,
                                        "    seq %" PRIu64 " (line %" PRIu64
                                        "): prev is not the SHA-256 of seq %" PRIu64 " (line %" PRIu64 ")\n",
                                        b->seq, b->line, b->seq - 1, b->prev_line);
                        else
                                fprintf(f,
                                        "    seq 1 (line %" PRIu64
                                        "): the first record's prev must be zeros\n",
                                        b->line);
                }
        }
        if (n->n_gaps > TEXT_LIST_MAX || n->n_conflicts > TEXT_LIST_MAX || n->n_breaks > TEXT_LIST_MAX)
                fprintf(f, "  (the first %d of each are listed; --json lists up to %d)\n", TEXT_LIST_MAX,
                        AUDIT_LIST_MAX);
}

void audit_print_text(const struct audit *a, FILE *f) {
        struct audit__totals t = audit__totals(a);
        uint64_t bad = audit__bad_lines(a);

        fprintf(f, "records: %" PRIu64 " good of %" PRIu64 " %s; %" PRIu64 " unique, %" PRIu64 " %s\n",
                t.records, a->lines, plural(a->lines, "line", "lines"), t.unique, t.duplicates,
                plural(t.duplicates, "duplicate (redelivered, identical)",
                       "duplicates (redelivered, identical)"));
        if (a->key)
                fprintf(f, "signatures: checked against kid %s\n", plat_verifier_kid(a->key));
        else
                fprintf(f, "signatures: NOT CHECKED (no --cert or --key given)\n");
        if (a->node[0])
                fprintf(f, "node: every record must name %s, the certificate's CN\n", a->node);
        for (size_t i = 0; i < a->n_nodes; i++)
                print_node(a, a->nodes[i], f);
        if (bad) {
                fprintf(f, "bad lines: %" PRIu64 " (", bad);
                for (size_t k = 0, c = 0; k < AUDIT_PROBLEM_COUNT; k++)
                        if (a->problems[k])
                                fprintf(f, "%s%" PRIu64 " %s", c++ ? ", " : "", a->problems[k],
                                        problem_words[k]);
                fprintf(f, ")\n");
                for (size_t k = 0; k < a->n_kept && k < TEXT_LIST_MAX; k++)
                        fprintf(f, "  line %" PRIu64 ": %s\n", a->kept[k].line, a->kept[k].msg);
                if (bad > TEXT_LIST_MAX)
                        fprintf(f, "  ...\n");
        }
        if (audit_ok(a)) {
                fprintf(f, "result: OK: every signature verifies, no seq is missing or conflicting, and the "
                           "chain "
                           "holds\n");
                return;
        }
        fprintf(f, "result: FAILED:");
        if (!a->key)
                fprintf(f, " signatures not checked;");
        if (t.gaps)
                fprintf(f, " %" PRIu64 " %s;", t.gaps, plural(t.gaps, "gap", "gaps"));
        if (t.conflicts)
                fprintf(f, " %" PRIu64 " %s;", t.conflicts, plural(t.conflicts, "conflict", "conflicts"));
        if (t.breaks)
                fprintf(f, " %" PRIu64 " chain %s;", t.breaks, plural(t.breaks, "break", "breaks"));
        if (bad)
                fprintf(f, " %" PRIu64 " bad %s;", bad, plural(bad, "line", "lines"));
        fprintf(f, "\n");
}

static cJSON *node_json(const struct audit *a, const struct node *n) {
        size_t order[AUDIT_MAX_TYPES + 1], m = sorted_types(a, n, order);
        cJSON *o = cJSON_CreateObject(), *types, *list;

        cJSON_AddStringToObject(o, "node", n->name);
        cJSON_AddStringToObject(o, "region", n->region);
        cJSON_AddNumberToObject(o, "records", (double)n->records);
        cJSON_AddNumberToObject(o, "unique", (double)n->unique);
        cJSON_AddNumberToObject(o, "duplicates", (double)n->duplicates);
        cJSON_AddNumberToObject(o, "first_seq", (double)n->first_seq);
        cJSON_AddNumberToObject(o, "last_seq", (double)n->last_seq);
        types = cJSON_AddObjectToObject(o, "types");
        for (size_t k = 0; k < m && types; k++)
                cJSON_AddNumberToObject(types, type_name(a, order[k]), (double)n->types[order[k]]);
        cJSON_AddNumberToObject(o, "gap_count", (double)n->n_gaps);
        cJSON_AddNumberToObject(o, "missing", (double)n->missing);
        list = cJSON_AddArrayToObject(o, "gaps");
        for (uint64_t k = 0; k < n->n_gaps && k < AUDIT_LIST_MAX && list; k++) {
                cJSON *g = cJSON_CreateObject();

                cJSON_AddNumberToObject(g, "from", (double)n->gaps[k].from);
                cJSON_AddNumberToObject(g, "to", (double)n->gaps[k].to);
                cJSON_AddItemToArray(list, g);
        }
        cJSON_AddNumberToObject(o, "conflict_count", (double)n->n_conflicts);
        list = cJSON_AddArrayToObject(o, "conflicts");
        for (uint64_t k = 0; k < n->n_conflicts && k < AUDIT_LIST_MAX && list; k++) {
                cJSON *c = cJSON_CreateObject();

                cJSON_AddNumberToObject(c, "seq", (double)n->conflicts[k].seq);
                cJSON_AddNumberToObject(c, "line", (double)n->conflicts[k].line_a);
                cJSON_AddNumberToObject(c, "other_line", (double)n->conflicts[k].line_b);
                cJSON_AddItemToArray(list, c);
        }
        cJSON_AddNumberToObject(o, "chain_break_count", (double)n->n_breaks);
        list = cJSON_AddArrayToObject(o, "chain_breaks");
        for (uint64_t k = 0; k < n->n_breaks && k < AUDIT_LIST_MAX && list; k++) {
                cJSON *b = cJSON_CreateObject();

                cJSON_AddNumberToObject(b, "seq", (double)n->breaks[k].seq);
                cJSON_AddNumberToObject(b, "line", (double)n->breaks[k].line);
                if (n->breaks[k].prev_line)
                        cJSON_AddNumberToObject(b, "prev_line", (double)n->breaks[k].prev_line);
                cJSON_AddItemToArray(list, b);
        }
        return o;
}

int audit_print_json(const struct audit *a, FILE *f) {
        _cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
        _cleanup_free_ char *text = NULL;
        struct audit__totals t = audit__totals(a);
        cJSON *nodes, *problems, *lines;

        cJSON_AddBoolToObject(o, "ok", audit_ok(a));
        cJSON_AddBoolToObject(o, "signatures_checked", a->key != NULL);
        if (a->key)
                cJSON_AddStringToObject(o, "kid", plat_verifier_kid(a->key));
        if (a->node[0])
                cJSON_AddStringToObject(o, "cert_cn", a->node);
        cJSON_AddNumberToObject(o, "lines", (double)a->lines);
        cJSON_AddNumberToObject(o, "records", (double)t.records);
        cJSON_AddNumberToObject(o, "unique", (double)t.unique);
        cJSON_AddNumberToObject(o, "duplicates", (double)t.duplicates);
        cJSON_AddNumberToObject(o, "gaps", (double)t.gaps);
        cJSON_AddNumberToObject(o, "missing", (double)t.missing);
        cJSON_AddNumberToObject(o, "conflicts", (double)t.conflicts);
        cJSON_AddNumberToObject(o, "chain_breaks", (double)t.breaks);
        nodes = cJSON_AddArrayToObject(o, "nodes");
        for (size_t i = 0; i < a->n_nodes && nodes; i++)
                cJSON_AddItemToArray(nodes, node_json(a, a->nodes[i]));
        problems = cJSON_AddObjectToObject(o, "bad_lines");
        for (size_t k = 0; k < AUDIT_PROBLEM_COUNT && problems; k++)
                cJSON_AddNumberToObject(problems, problem_names[k], (double)a->problems[k]);
        lines = cJSON_AddArrayToObject(o, "bad_line_list");
        for (size_t k = 0; k < a->n_kept && lines; k++) {
                cJSON *p = cJSON_CreateObject();

                cJSON_AddNumberToObject(p, "line", (double)a->kept[k].line);
                cJSON_AddStringToObject(p, "kind", problem_names[a->kept[k].kind]);
                cJSON_AddStringToObject(p, "message", a->kept[k].msg);
                cJSON_AddItemToArray(lines, p);
        }
        text = cJSON_PrintUnformatted(o);
        if (!text)
                return -ENOMEM;
        fprintf(f, "%s\n", text);
        return 0;
}
