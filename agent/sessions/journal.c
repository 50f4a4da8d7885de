/* journal.c: billing records owed to the spool, written with the state they go with (journal.h). */
#include "journal.h"

#include "cleanup.h"
#include "clock.h"
#include "crypto.h"
#include "jsonnum.h"
#include "log.h"
#include "strutil.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

DEFINE_TRIVIAL_CLEANUP_FUNC(cJSON *, cJSON_Delete);

struct owed {
        uint64_t seq;
        char *text; /* the payload, NUL-terminated */
        size_t len;
};

struct journal {
        struct owed *rec; /* oldest first, seq ascending */
        size_t n, cap, bytes;
        uint64_t next_seq;
        char prev[PLAT_SHA256_HEX_LEN + 1];
        /* journal_mark: what journal_abort goes back to */
        uint64_t mark_seq;
        char mark_prev[PLAT_SHA256_HEX_LEN + 1];
};

int journal_new(struct journal **ret) {
        struct journal *j = calloc(1, sizeof(*j));

        if (!j)
                return -ENOMEM;
        j->next_seq = 1;
        memset(j->prev, '0', PLAT_SHA256_HEX_LEN);
        journal_mark(j);
        *ret = j;
        return 0;
}

static void drop_from(struct journal *j, size_t k) {
        for (size_t i = k; i < j->n; i++) {
                j->bytes -= j->rec[i].len;
                free(j->rec[i].text);
        }
        j->n = k;
}

void journal_free(struct journal *j) {
        if (!j)
                return;
        drop_from(j, 0);
        free(j->rec);
        free(j);
}

static int push(struct journal *j, uint64_t seq, char *text) {
        if (j->n == JOURNAL_MAX_RECORDS)
                return -ENOSPC;
        if (j->n == j->cap) {
                size_t cap = j->cap ? 2 * j->cap : 64;
                struct owed *r = reallocarray(j->rec, cap, sizeof(*r));

                if (!r)
                        return -ENOMEM;
                j->rec = r;
                j->cap = cap;
        }
        j->rec[j->n++] = (struct owed){ .seq = seq, .text = text, .len = strlen(text) };
        j->bytes += strlen(text);
        return 0;
}

static void chain(struct journal *j, const char *text, size_t len) {
        uint8_t digest[PLAT_SHA256_LEN];

        plat_sha256(text, len, digest);
        plat_sha256_hex(digest, j->prev);
}

int journal_restore(struct journal *j, const char *json, uint64_t next_id, char *msg, size_t msg_len) {
        _cleanup_(cJSON_Deletep) cJSON *arr = NULL;
        const cJSON *e;
        size_t k = 0, kept = 0;
        uint64_t last = 0;
        int r;

        drop_from(j, 0);
        if (!json || !*json)
                return 0;
        arr = cJSON_Parse(json);
        if (!cJSON_IsArray(arr)) {
                snprintf(msg, msg_len, "the journal is not a JSON array");
                return -EBADMSG;
        }
        cJSON_ArrayForEach(e, arr) {
                _cleanup_(cJSON_Deletep) cJSON *o = NULL;
                const cJSON *seq;
                uint64_t n;
                char *text;

                o = cJSON_IsString(e) ? cJSON_Parse(e->valuestring) : NULL;
                seq = cJSON_GetObjectItemCaseSensitive(o, "seq");
                if (!jsonnum_whole(seq, &n) || n < 1 || n <= last) {
                        snprintf(msg, msg_len,
                                 "journal[%zu]: not a record with a whole seq above the one before", k);
                        drop_from(j, 0);
                        return -EBADMSG;
                }
                last = n;
                k++;
                if (last < next_id)
                        continue; /* the spool has it */
                text = strdup(e->valuestring);
                if (!text) {
                        drop_from(j, 0);
                        return -ENOMEM;
                }
                r = push(j, last, text);
                if (r < 0) {
                        free(text);
                        drop_from(j, 0);
                        return r;
                }
                kept++;
        }
        snprintf(msg, msg_len, "%zu owed record(s), %zu of them not in the spool", k, kept);
        return (int)kept;
}

void journal_continue(struct journal *j, uint64_t spool_next_id, const char *prev_hex) {
        if (j->n) {
                const struct owed *last = &j->rec[j->n - 1];

                j->next_seq = last->seq + 1;
                chain(j, last->text, last->len);
        } else {
                j->next_seq = spool_next_id;
                plat_strlcpy(j->prev, prev_hex, sizeof(j->prev));
        }
        journal_mark(j);
}

int journal_make(struct journal *j, cJSON *o, const cJSON *fields, uint64_t now_real_usec, size_t max_len) {
        char ts[40], *text;
        const cJSON *f;
        int r;

        if (!cJSON_AddNumberToObject(o, "seq", (double)j->next_seq) ||
            !cJSON_AddStringToObject(o, "prev", j->prev) ||
            !cJSON_AddStringToObject(o, "ts", plat_format_rfc3339_ms(now_real_usec, ts, sizeof(ts))))
                return -ENOMEM;
        cJSON_ArrayForEach(f, fields) {
                cJSON *c = cJSON_Duplicate(f, true);

                if (!c)
                        return -ENOMEM;
                cJSON_AddItemToObject(o, f->string, c);
        }
        text = cJSON_PrintUnformatted(o);
        if (!text)
                return -ENOMEM;
        if (strlen(text) > max_len) {
                free(text);
                return -EMSGSIZE;
        }
        r = push(j, j->next_seq, text);
        if (r < 0) {
                free(text);
                return r;
        }
        chain(j, text, strlen(text));
        j->next_seq++;
        return 0;
}

void journal_mark(struct journal *j) {
        j->mark_seq = j->next_seq;
        memcpy(j->mark_prev, j->prev, sizeof(j->prev));
}

void journal_abort(struct journal *j) {
        /* Records synced meanwhile left from the front: what is above the mark is what remains
         * of the records made since it, at the back. */
        size_t keep = j->n;

        while (keep > 0 && j->rec[keep - 1].seq >= j->mark_seq)
                keep--;
        drop_from(j, keep);
        j->next_seq = j->mark_seq;
        memcpy(j->prev, j->mark_prev, sizeof(j->prev));
        journal_mark(j);
}

char *journal_json(const struct journal *j, int *ret_err) {
        _cleanup_(cJSON_Deletep) cJSON *arr = NULL;
        char *text;

        *ret_err = 0;
        if (!j->n)
                return NULL;
        arr = cJSON_CreateArray();
        for (size_t k = 0; arr && k < j->n; k++) {
                cJSON *s = cJSON_CreateString(j->rec[k].text);

                if (!s || !cJSON_AddItemToArray(arr, s)) {
                        cJSON_Delete(s);
                        *ret_err = -ENOMEM;
                        return NULL;
                }
        }
        text = arr ? cJSON_PrintUnformatted(arr) : NULL;
        if (!text)
                *ret_err = -ENOMEM;
        return text;
}

int journal_to_spool(struct journal *j, struct spool *sp) {
        uint64_t next = spool_next_id(sp), id;
        int appended = 0, r;

        for (size_t k = 0; k < j->n; k++) {
                const struct owed *e = &j->rec[k];

                if (e->seq < next)
                        continue;
                r = spool_append(sp, e->text, e->len, &id);
                if (r < 0)
                        return r; /* why it stopped; what went in before is the spool's */
                /* Only when the spool lost ids that it reported at open (spool_recovery). */
                if (id != e->seq)
                        log_err("metering: the spool gave id %" PRIu64 " to record seq %" PRIu64
                                " (it lost records before it)",
                                id, e->seq);
                next = id + 1;
                appended++;
        }
        return appended;
}

void journal_synced(struct journal *j, uint64_t synced_id) {
        size_t k = 0;

        while (k < j->n && j->rec[k].seq <= synced_id)
                k++;
        if (!k)
                return;
        for (size_t i = 0; i < k; i++) {
                j->bytes -= j->rec[i].len;
                free(j->rec[i].text);
        }
        memmove(j->rec, j->rec + k, (j->n - k) * sizeof(*j->rec));
        j->n -= k;
}

size_t journal_owed(const struct journal *j) {
        return j->n;
}

size_t journal_bytes(const struct journal *j) {
        return j->bytes;
}

uint64_t journal_next_seq(const struct journal *j) {
        return j->next_seq;
}
