/* audit.h: checks a stream of metering records: signatures, seq gaps, duplicates, conflicts, the chain. */
#pragma once

#include "crypto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define AUDIT_MAX_RECORDS 10000000 /* records kept; about 90 bytes each */
#define AUDIT_MAX_NODES 1024
#define AUDIT_MAX_TYPES 64     /* distinct record types counted by name; more are counted as "(other)" */
#define AUDIT_LIST_MAX 100     /* gaps, conflicts, chain breaks listed per node (all are counted) */
#define AUDIT_PROBLEMS_MAX 100 /* bad lines listed with their reason (all are counted) */

/* What a line that is not a good record is. */
enum audit_problem {
        AUDIT_NOT_JWS,       /* not a flattened JWS, or too long */
        AUDIT_ALG_REFUSED,   /* alg is not ES256 ("none" included) */
        AUDIT_WRONG_KEY,     /* kid names another key or certificate */
        AUDIT_BAD_SIGNATURE, /* the signature does not verify */
        AUDIT_BAD_PAYLOAD,   /* signed, but not a metering record (docs/metering.md) */
        AUDIT_WRONG_NODE,    /* signed, but its node is not the one the certificate names */
        AUDIT_PROBLEM_COUNT
};

struct audit;

/* key (borrowed; must outlive the audit) checks every signature; NULL reads the records without
 * checking them, and the audit can then never pass. */
int audit_new(struct plat_verifier *key, struct audit **ret);

/* Every record must name node cn (copied; a plat_cn_ok() name, -EINVAL otherwise): the CN of the
 * certificate whose key checks the signatures. A record that names another node is a bad line
 * (AUDIT_WRONG_NODE). Call before the first line; without it the node is not checked. */
int audit_expect_node(struct audit *a, const char *cn);

/* Takes one line (len bytes, without its newline; no NUL needed) that was line number lineno of
 * the input. Blank lines are skipped; a bad line is recorded as a problem, not an error. Returns 0,
 * -E2BIG when AUDIT_MAX_RECORDS records are already held (the line is not taken), or -ENOMEM. */
int audit_line(struct audit *a, const char *line, size_t len, uint64_t lineno);

/* Records that line lineno was longer than the reader's limit (and was not read). */
void audit_line_too_long(struct audit *a, uint64_t lineno, size_t limit);

/* Sorts what was read and finds gaps, duplicates, conflicts and chain breaks. Call once, after
 * the last line and before printing. */
int audit_finish(struct audit *a);

/* True when the signatures were checked and every line was a good record (of the expected node,
 * when one was set), with no gap, no conflict and no chain break. Duplicates of identical records
 * (redeliveries) are fine. */
bool audit_ok(const struct audit *a);

/* A human summary; or one JSON document. Both need audit_finish() first. */
void audit_print_text(const struct audit *a, FILE *f);
int audit_print_json(const struct audit *a, FILE *f);

void audit_free(struct audit *a);
