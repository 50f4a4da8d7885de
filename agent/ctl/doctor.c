/* doctor.c: render-agentctl doctor's findings, their report and the exit status they make. */
#include "doctor.h"

#include "jsonw.h"

#include <stdarg.h>
#include <string.h>

void doctor_add(struct doctor *d, enum doctor_level level, const char *check, const char *fix,
                const char *evidence_fmt, ...) {
        struct doctor_finding *f;
        va_list ap;

        if (d->n == DOCTOR_CHECKS_MAX) {
                d->dropped++;
                return;
        }
        f = &d->f[d->n++];
        f->level = level;
        snprintf(f->check, sizeof(f->check), "%s", check);
        snprintf(f->fix, sizeof(f->fix), "%s", fix ? fix : "");
        va_start(ap, evidence_fmt);
        vsnprintf(f->evidence, sizeof(f->evidence), evidence_fmt, ap);
        va_end(ap);
}

enum doctor_level doctor_worst(const struct doctor *d) {
        enum doctor_level w = d->dropped ? DOCTOR_WARN : DOCTOR_PASS;

        for (size_t i = 0; i < d->n; i++)
                if (d->f[i].level > w)
                        w = d->f[i].level;
        return w;
}

int doctor_exit_status(const struct doctor *d) {
        return (int)doctor_worst(d);
}

const char *doctor_level_str(enum doctor_level l) {
        return l == DOCTOR_FAIL ? "FAIL" : l == DOCTOR_WARN ? "WARN" : "PASS";
}

void doctor_print(const struct doctor *d, FILE *f) {
        size_t n[3] = { 0 };

        for (size_t i = 0; i < d->n; i++) {
                const struct doctor_finding *x = &d->f[i];

                n[x->level]++;
                fprintf(f, "%s  %-12s %s\n", doctor_level_str(x->level), x->check, x->evidence);
                if (x->fix[0])
                        fprintf(f, "      %-12s fix: %s\n", "", x->fix);
        }
        if (d->dropped)
                fprintf(f, "WARN  %-12s %zu more findings were left out\n", "doctor", d->dropped);
        fprintf(f, "\n%s: %zu passed, %zu warnings, %zu failed\n", doctor_level_str(doctor_worst(d)),
                n[DOCTOR_PASS], n[DOCTOR_WARN], n[DOCTOR_FAIL]);
}

cJSON *doctor_json(const struct doctor *d, bool agent_running) {
        struct jsonw j;

        jsonw_init(&j, true);
        jsonw_object(&j, NULL);
        jsonw_number(&j, "v", 1);
        jsonw_string(&j, "result", doctor_level_str(doctor_worst(d)));
        jsonw_bool(&j, "agent_running", agent_running);
        jsonw_array(&j, "checks");
        for (size_t i = 0; i < d->n; i++) {
                jsonw_object(&j, NULL);
                jsonw_string(&j, "check", d->f[i].check);
                jsonw_string(&j, "result", doctor_level_str(d->f[i].level));
                jsonw_string(&j, "evidence", d->f[i].evidence);
                if (d->f[i].fix[0])
                        jsonw_string(&j, "fix", d->f[i].fix);
                jsonw_end(&j);
        }
        jsonw_end(&j);
        jsonw_u64(&j, "left_out", d->dropped);
        jsonw_end(&j);
        return jsonw_take_tree(&j);
}
