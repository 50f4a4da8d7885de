/* config_sessions.c: the config's "sessions" section: session limits and enforcement. */
#include "config_internal.h"

#include <stdlib.h>
#include <string.h>

static const char *const enforcement_names[] = { "none", "cgroup_kill", "exec", NULL };

/* sessions.enforcement_exec: an argv array, the command an absolute path. */
static void parse_exec(struct cfg_ctx *x, const cJSON *v, struct cfg_sessions *ss) {
        size_t n = 0;
        const cJSON *a;

        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1 || cJSON_GetArraySize(v) > CFG_EXEC_MAX_ARGS) {
                cfg__problem(x,
                             "sessions.enforcement_exec: must be an array of 1..%d strings, the command (an "
                             "absolute path) and its arguments",
                             CFG_EXEC_MAX_ARGS);
                return;
        }
        cJSON_ArrayForEach(a, v) {
                const char *why = NULL;

                if (!cJSON_IsString(a) || strlen(a->valuestring) > CFG_MAX_STRING) {
                        cfg__problem(x,
                                     "sessions.enforcement_exec[%zu]: must be a string of at most %d bytes",
                                     n, CFG_MAX_STRING);
                        return;
                }
                if (n == 0 && !cfg__check_abs_path(a->valuestring, &why)) {
                        cfg__problem(x, "sessions.enforcement_exec[0]: the command %s (got \"%s\")", why,
                                     a->valuestring);
                        return;
                }
                ss->exec_argv[n] = strdup(a->valuestring);
                if (!ss->exec_argv[n++]) {
                        x->oom = true;
                        return;
                }
        }
}

void cfg__parse_sessions(struct cfg_ctx *x, const cJSON *root, struct cfg *c) {
        static const char *const keys[] = {
                "lock_ttl_s",  "grace_s",     "max_session_s",    "heartbeat_timeout_s",   "idle_s",
                "viewers_max", "enforcement", "enforcement_exec", "enforcement_timeout_s", "max_flow_mbps",
                NULL
        };
        struct cfg_sessions *ss = &c->sessions;
        const cJSON *e = cfg__get_object(x, root, "sessions", false), *v;

        if (!e)
                return;
        cfg__check_keys(x, e, "sessions", keys);
        cfg__get_uint(x, e, "lock_ttl_s", "sessions.lock_ttl_s", 1, 3600, &ss->lock_ttl_s);
        cfg__get_uint(x, e, "grace_s", "sessions.grace_s", 40, 3600, &ss->grace_s);
        cfg__get_uint(x, e, "max_session_s", "sessions.max_session_s", 0, 30 * 86400, &ss->max_session_s);
        cfg__get_uint(x, e, "heartbeat_timeout_s", "sessions.heartbeat_timeout_s", 0, 3600,
                      &ss->heartbeat_timeout_s);
        cfg__get_uint(x, e, "idle_s", "sessions.idle_s", 0, 86400, &ss->idle_s);
        cfg__get_uint(x, e, "viewers_max", "sessions.viewers_max", 0, 16, &ss->viewers_max);
        cfg__get_uint(x, e, "max_flow_mbps", "sessions.max_flow_mbps", 1, CFG_MAX_FLOW_MBPS,
                      &ss->max_flow_mbps);
        cfg__get_uint(x, e, "enforcement_timeout_s", "sessions.enforcement_timeout_s", 1, 300,
                      &ss->enforcement_timeout_s);
        v = cJSON_GetObjectItemCaseSensitive(e, "enforcement");
        if (v) {
                size_t k;

                for (k = 0; cJSON_IsString(v) && enforcement_names[k]; k++)
                        if (!strcmp(v->valuestring, enforcement_names[k]))
                                break;
                if (!cJSON_IsString(v) || !enforcement_names[k])
                        cfg__problem(x,
                                     "sessions.enforcement: must be \"none\", \"cgroup_kill\" or \"exec\"");
                else
                        ss->enforcement = (enum cfg_enforcement)k;
        }
        v = cJSON_GetObjectItemCaseSensitive(e, "enforcement_exec");
        if (v && ss->enforcement != CFG_ENFORCE_EXEC)
                cfg__problem(x, "sessions.enforcement_exec: only used with \"enforcement\": \"exec\"");
        else if (v)
                parse_exec(x, v, ss);
        else if (ss->enforcement == CFG_ENFORCE_EXEC)
                cfg__problem(x, "sessions.enforcement_exec: required with \"enforcement\": \"exec\"");
}
