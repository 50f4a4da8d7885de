/* config.c: the agent's JSON configuration: reading the file, problem messages, defaults, and each
 * section handed to its parser (config_<section>.c). */
#include "config_internal.h"

#include "cleanup.h"
#include "fileio.h"
#include "strutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CFG_MAX_PROBLEMS 64

/* Appends "FILE<sep>message" to the problem list. sep is ": " for key problems and ":" for
 * positions, so syntax errors read "FILE:LINE:COL: ..." like a compiler's and editors can jump. */
static void vproblem(struct cfg_ctx *x, const char *sep, const char *fmt, va_list ap)
        __attribute__((format(printf, 3, 0)));

static void vproblem(struct cfg_ctx *x, const char *sep, const char *fmt, va_list ap) {
        char line[1024];
        size_t off;
        char **n;

        if (x->problems->n >= CFG_MAX_PROBLEMS)
                return;
        off = (size_t)snprintf(line, sizeof(line), "%s%s", x->path, sep);
        if (off >= sizeof(line))
                off = sizeof(line) - 1;
        vsnprintf(line + off, sizeof(line) - off, fmt, ap);
        n = realloc(x->problems->msgs, (x->problems->n + 1) * sizeof(*n));
        if (!n) {
                x->oom = true;
                return;
        }
        x->problems->msgs = n;
        n[x->problems->n] = strdup(line);
        if (!n[x->problems->n]) {
                x->oom = true;
                return;
        }
        x->problems->n++;
}

void cfg__problem(struct cfg_ctx *x, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vproblem(x, ": ", fmt, ap);
        va_end(ap);
}

static void problem_at(struct cfg_ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem_at(struct cfg_ctx *x, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vproblem(x, ":", fmt, ap);
        va_end(ap);
}

static void parse_events(struct cfg_ctx *x, const cJSON *root, struct cfg *c) {
        const cJSON *e = cfg__get_object(x, root, "events", false);

        if (!e)
                return;
        cfg__check_keys(x, e, "events",
                        (const char *const[]){ "bandwidth_over_s", "bandwidth_under_s",
                                               "memory_pressure_pct", NULL });
        cfg__get_uint(x, e, "bandwidth_over_s", "events.bandwidth_over_s", 1, 3600,
                      &c->events.bandwidth_over_s);
        cfg__get_uint(x, e, "bandwidth_under_s", "events.bandwidth_under_s", 1, 3600,
                      &c->events.bandwidth_under_s);
        cfg__get_uint(x, e, "memory_pressure_pct", "events.memory_pressure_pct", 50, 100,
                      &c->events.memory_pressure_pct);
}

/* cJSON reports where it stopped, which is sometimes one byte into the bad token (an unquoted
 * key, a stray '}' after a comma): when the byte before is part of a token rather than a
 * delimiter, the token began there. */
static void syntax_problem(struct cfg_ctx *x, const char *buf, size_t len, const char *at) {
        unsigned line = 1, col = 1;
        char near[24] = "";
        size_t k = 0;

        if (at < buf || at > buf + len)
                at = buf + len;
        if (at < buf + len && at > buf && !strchr(" \t\r\n{[,:", at[-1]))
                at--;
        for (const char *p = buf; p < at; p++) {
                if (*p == '\n') {
                        line++;
                        col = 1;
                } else
                        col++;
        }
        for (const char *p = at; p < buf + len && *p != '\n' && k < sizeof(near) - 1; p++)
                near[k++] = (unsigned char)*p < 0x20 ? ' ' : *p;
        near[k] = '\0';
        if (at == buf + len)
                problem_at(x, "%u:%u: syntax error: unexpected end of file", line, col);
        else if (k == 0)
                problem_at(x, "%u:%u: syntax error at the end of the line", line, col);
        else
                problem_at(x, "%u:%u: syntax error near '%s'", line, col, near);
}

static int set_defaults(struct cfg *c, const char *path) {
        c->path = strdup(path);
        c->sampling_interval_ms = 1000;
        c->mqtt.port = 8883;
        c->mqtt.tls = true;
        c->mqtt.keepalive_s = 30;
        c->mqtt.reconnect_window_ms = 5000;
        c->mqtt.topic_prefix = strdup("render/v1");
        c->events = (struct cfg_events){ .bandwidth_over_s = 5,
                                         .bandwidth_under_s = 5,
                                         .memory_pressure_pct = 90 };
        c->state_dir = strdup("/var/lib/render-agent");
        c->control_socket = strdup("/run/render-agent/agent.sock");
        c->control_clients_per_user = CFG_CLIENTS_PER_USER_DEFAULT;
        c->metering =
                (struct cfg_metering){ .window_s = 3600, .late_s = 10, .spool_max_mb = 256, .inflight = 64 };
        c->metering.redeliver_per_s = 50;
        c->sessions = (struct cfg_sessions){ .lock_ttl_s = 30,
                                             .grace_s = 120,
                                             .viewers_max = 4,
                                             .max_flow_mbps = 1000,
                                             .enforcement_timeout_s = 10 };
        if (!c->path || !c->mqtt.topic_prefix || !c->state_dir || !c->control_socket)
                return -ENOMEM;
        return 0;
}

int cfg_parse(const char *path, const char *buf, size_t len, struct cfg **ret,
              struct cfg_problems *problems) {
        static const char *const top_keys[] = { "node",   "sampling",  "mqtt",    "gpu",      "scales",
                                                "events", "state_dir", "control", "sessions", "metering",
                                                "slots",  "telemetry", NULL };
        _cleanup_free_ char *pathcopy = strdup(path);
        struct cfg_ctx x = { .path = path, .problems = problems };
        const char *end = NULL;
        const cJSON *sect;
        struct cfg *c;
        cJSON *root;
        size_t before = problems->n, n_sampling;
        char why[256];

        if (!pathcopy)
                return -ENOMEM;
        x.dir = dirname(pathcopy);
        if (memchr(buf, '\0', len)) {
                cfg__problem(&x, "contains a NUL byte at offset %zu: not a JSON text file",
                             (size_t)((const char *)memchr(buf, '\0', len) - buf));
                return -EINVAL;
        }
        /* The buffer is a NUL-terminated copy of the file (plat_read_file_at, or the caller). */
        root = cJSON_ParseWithOpts(buf, &end, true);
        if (!root) {
                syntax_problem(&x, buf, len, end ? end : buf);
                return -EINVAL;
        }
        if (!cJSON_IsObject(root)) {
                cfg__problem(&x, "the top level must be a JSON object (got %s)", cfg__type_name(root));
                cJSON_Delete(root);
                return -EINVAL;
        }
        c = calloc(1, sizeof(*c));
        if (!c || set_defaults(c, path) < 0) {
                cfg_free(c);
                cJSON_Delete(root);
                return -ENOMEM;
        }

        cfg__check_keys(&x, root, "", top_keys);
        sect = cfg__get_object(&x, root, "node", true);
        if (sect) {
                cfg__check_keys(&x, sect, "node", (const char *const[]){ "id", "region", NULL });
                cfg__get_string(&x, sect, "id", "node.id", true, cfg__check_name, &c->node_id);
                cfg__get_string(&x, sect, "region", "node.region", true, cfg__check_name, &c->node_region);
        }
        n_sampling = problems->n;
        sect = cfg__get_object(&x, root, "sampling", false);
        if (sect) {
                cfg__check_keys(&x, sect, "sampling",
                                (const char *const[]){ "interval_ms", "gauges_every", NULL });
                cfg__get_uint(&x, sect, "interval_ms", "sampling.interval_ms", 100, 60000,
                              &c->sampling_interval_ms);
                cfg__get_uint(&x, sect, "gauges_every", "sampling.gauges_every", 0, 3600,
                              &c->sampling_gauges_every);
        }
        if ((sect = cfg__get_object(&x, root, "telemetry", false))) {
                cfg__check_keys(&x, sect, "telemetry", (const char *const[]){ "interval_ms", NULL });
                cfg__get_uint(&x, sect, "interval_ms", "telemetry.interval_ms", CFG_TELEMETRY_MIN_MS,
                              CFG_TELEMETRY_MAX_MS, &c->telemetry_interval_ms);
        }
        /* Checked against sampling.interval_ms only when that one was fine: one mistake, one problem. */
        if (problems->n == n_sampling && cfg_telemetry_interval(c, why, sizeof(why)) < 0)
                cfg__problem(&x, "%s", why);
        cfg__parse_mqtt(&x, root, c);
        cfg__parse_gpu(&x, root, c);
        cfg__get_string(&x, root, "state_dir", "state_dir", false, cfg__check_abs_path, &c->state_dir);
        cfg__parse_control(&x, root, c);
        cfg__parse_sessions(&x, root, c);
        cfg__parse_metering(&x, root, c);
        cfg__parse_scales(&x, root, c);
        parse_events(&x, root, c);
        cfg__parse_slots(&x, root, c);
        if (c->sessions.enforcement == CFG_ENFORCE_CGROUP_KILL)
                for (size_t i = 0; i < c->n_slots; i++)
                        if (c->slots[i].id && !c->slots[i].cgroup)
                                cfg__problem(&x,
                                             "slots[%zu].cgroup: required with sessions.enforcement "
                                             "\"cgroup_kill\" (slot %s has none to kill)",
                                             i, c->slots[i].id);
        cJSON_Delete(root);

        if (x.oom) {
                cfg_free(c);
                return -ENOMEM;
        }
        if (problems->n > before) {
                cfg_free(c);
                return -EINVAL;
        }
        *ret = c;
        return 0;
}

int cfg_load(const char *path, struct cfg **ret, struct cfg_problems *problems) {
        _cleanup_free_ char *buf = NULL;
        struct cfg_ctx x = { .path = path, .problems = problems };
        size_t len;
        int r;

        r = plat_read_file_at(AT_FDCWD, path, CFG_MAX_BYTES, &buf, &len);
        if (r == -EFBIG) {
                cfg__problem(&x, "larger than %d bytes: not a config file", CFG_MAX_BYTES);
                return -EINVAL;
        }
        if (r < 0) {
                cfg__problem(&x, "cannot read: %s", strerror(-r));
                return r;
        }
        return cfg_parse(path, buf, len, ret, problems);
}

void cfg_free(struct cfg *c) {
        if (!c)
                return;
        for (size_t i = 0; i < c->n_slots; i++) {
                free(c->slots[i].id);
                free(c->slots[i].scale);
                free(c->slots[i].cgroup);
                free(c->slots[i].iface);
                free(c->slots[i].project);
        }
        free(c->slots);
        free(c->path);
        free(c->node_id);
        free(c->node_region);
        for (size_t i = 0; i < CFG_MAX_BROKERS; i++) /* mqtt.host is brokers[0]'s */
                free(c->mqtt.brokers[i].host);
        free(c->mqtt.ca_file);
        free(c->mqtt.cert_file);
        free(c->mqtt.key_file);
        free(c->mqtt.topic_prefix);
        free(c->gpu.nvml_library);
        free(c->scales);
        free(c->state_dir);
        free(c->control_socket);
        free(c->metering.key_file);
        free(c->metering.cert_file);
        for (size_t i = 0; c->sessions.exec_argv[i]; i++)
                free(c->sessions.exec_argv[i]);
        free(c);
}

void cfg_problems_done(struct cfg_problems *p) {
        for (size_t i = 0; i < p->n; i++)
                free(p->msgs[i]);
        free(p->msgs);
        *p = (struct cfg_problems){ 0 };
}

const struct cfg_slot *cfg_find_slot(const struct cfg *c, const char *id) {
        for (size_t i = 0; i < c->n_slots; i++)
                if (plat_streq_ptr(c->slots[i].id, id))
                        return &c->slots[i];
        return NULL;
}

bool cfg_link_equal(const struct cfg *a, const struct cfg *b) {
        if (a->mqtt.n_brokers != b->mqtt.n_brokers)
                return false;
        /* The order matters too: it is the order of failover. */
        for (size_t i = 0; i < a->mqtt.n_brokers; i++)
                if (!plat_streq_ptr(a->mqtt.brokers[i].host, b->mqtt.brokers[i].host) ||
                    a->mqtt.brokers[i].port != b->mqtt.brokers[i].port)
                        return false;
        return plat_streq_ptr(a->node_id, b->node_id) && plat_streq_ptr(a->node_region, b->node_region) &&
               a->mqtt.tls == b->mqtt.tls && plat_streq_ptr(a->mqtt.ca_file, b->mqtt.ca_file) &&
               plat_streq_ptr(a->mqtt.cert_file, b->mqtt.cert_file) &&
               plat_streq_ptr(a->mqtt.key_file, b->mqtt.key_file) &&
               a->mqtt.keepalive_s == b->mqtt.keepalive_s && a->mqtt.protocol == b->mqtt.protocol &&
               a->mqtt.reconnect_window_ms == b->mqtt.reconnect_window_ms &&
               plat_streq_ptr(a->mqtt.topic_prefix, b->mqtt.topic_prefix) &&
               a->mqtt.tls_stamp == b->mqtt.tls_stamp;
}
