/* audit_internal.h: what audit.c (checking) and audit_print.c (reports) share; no other module uses it. */
#pragma once

#include "audit.h"

struct rec {
        uint64_t seq;
        uint64_t line;
        uint8_t hash[PLAT_SHA256_LEN]; /* of this record's payload */
        uint8_t prev[PLAT_SHA256_LEN]; /* its prev member */
        uint32_t node;
        uint16_t type; /* index into types[], AUDIT_MAX_TYPES for "(other)" */
};

struct gap {
        uint64_t from, to;
};

struct conflict {
        uint64_t seq, line_a, line_b;
};

struct chain_break {
        uint64_t seq, line, prev_line; /* prev_line 0: seq 1, whose prev must be zeros */
};

struct node {
        char *name, *region;
        uint64_t records, unique, duplicates, first_seq, last_seq;
        uint64_t n_gaps, missing, n_conflicts, n_breaks;
        struct gap gaps[AUDIT_LIST_MAX];
        struct conflict conflicts[AUDIT_LIST_MAX];
        struct chain_break breaks[AUDIT_LIST_MAX];
        uint64_t types[AUDIT_MAX_TYPES + 1];
};

struct problem {
        uint64_t line;
        enum audit_problem kind;
        char *msg;
};

struct audit {
        struct plat_verifier *key;  /* borrowed; NULL: signatures not checked */
        char node[PLAT_CN_MAX + 1]; /* the node every record must name; "": not checked */
        struct rec *recs;
        size_t n_recs, cap;
        struct node *nodes[AUDIT_MAX_NODES];
        size_t n_nodes, last_node;
        char *types[AUDIT_MAX_TYPES];
        size_t n_types;
        uint64_t lines; /* lines that were not blank */
        uint64_t problems[AUDIT_PROBLEM_COUNT];
        struct problem kept[AUDIT_PROBLEMS_MAX];
        size_t n_kept;
        bool finished;
};

struct audit__totals {
        uint64_t records, unique, duplicates, gaps, missing, conflicts, breaks;
};

/* Sums over the nodes, and the bad lines of every kind. */
struct audit__totals audit__totals(const struct audit *a);
uint64_t audit__bad_lines(const struct audit *a);
