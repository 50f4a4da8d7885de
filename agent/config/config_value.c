/* config_value.c: typed readers and value checks shared by the config section parsers. */
#include "config_internal.h"

#include "cleanup.h"
#include "crypto.h"
#include "slots.h"
#include "strutil.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *cfg__type_name(const cJSON *v) {
        if (cJSON_IsObject(v))
                return "an object";
        if (cJSON_IsArray(v))
                return "an array";
        if (cJSON_IsString(v))
                return "a string";
        if (cJSON_IsNumber(v))
                return "a number";
        if (cJSON_IsBool(v))
                return "a boolean";
        return "null";
}

/* Unknown and duplicate keys are errors: a typo must not fall back to a default unseen. */
void cfg__check_keys(struct cfg_ctx *x, const cJSON *obj, const char *where, const char *const *allowed) {
        if (cJSON_GetArraySize(obj) > 64) {
                cfg__problem(x, "%s: more than 64 keys: not a config section", *where ? where : "top level");
                return;
        }
        for (const cJSON *k = obj->child; k; k = k->next) {
                bool known = false;

                for (size_t i = 0; allowed[i]; i++)
                        if (strcmp(k->string, allowed[i]) == 0)
                                known = true;
                if (!known)
                        cfg__problem(x, "%s%s%s: unknown key", where, *where ? "." : "", k->string);
                for (const cJSON *p = obj->child; p != k; p = p->next)
                        if (strcmp(p->string, k->string) == 0) {
                                cfg__problem(x, "%s%s%s: duplicate key", where, *where ? "." : "",
                                             k->string);
                                break;
                        }
        }
}

const cJSON *cfg__get_object(struct cfg_ctx *x, const cJSON *parent, const char *key, bool required) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(parent, key);

        if (!v) {
                if (required)
                        cfg__problem(x, "%s: required section is missing", key);
                return NULL;
        }
        if (!cJSON_IsObject(v)) {
                cfg__problem(x, "%s: must be an object (got %s)", key, cfg__type_name(v));
                return NULL;
        }
        return v;
}

/* Reads a string member into *out (replacing the default). `name` is the full dotted key. */
void cfg__get_string(struct cfg_ctx *x, const cJSON *obj, const char *key, const char *name, bool required,
                     cfg__string_check_fn check, char **out) {
        const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
        const char *why = NULL;
        char *s;

        if (!v) {
                if (required && !*out)
                        cfg__problem(x, "%s: required key is missing", name);
                return;
        }
        if (!cJSON_IsString(v)) {
                cfg__problem(x, "%s: must be a string (got %s)", name, cfg__type_name(v));
                return;
        }
        if (strlen(v->valuestring) > CFG_MAX_STRING) {
                cfg__problem(x, "%s: longer than %d characters", name, CFG_MAX_STRING);
                return;
        }
        if (v->valuestring[0] == '\0') {
                cfg__problem(x, "%s: must not be empty", name);
                return;
        }
        if (check && !check(v->valuestring, &why)) {
                cfg__problem(x, "%s: %s (got \"%s\")", name, why, v->valuestring);
                return;
        }
        s = strdup(v->valuestring);
        if (!s) {
                x->oom = true;
                return;
        }
        free(*out);
        *out = s;
}

void cfg__get_uint(struct cfg_ctx *x, const cJSON *obj, const char *key, const char *name, unsigned min,
                   unsigned max, unsigned *out) {
        const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;

        if (!v)
                return;
        if (!cJSON_IsNumber(v)) {
                cfg__problem(x, "%s: must be an integer %u..%u (got %s)", name, min, max, cfg__type_name(v));
                return;
        }
        if (v->valuedouble != floor(v->valuedouble) || v->valuedouble < min || v->valuedouble > max) {
                cfg__problem(x, "%s: must be %u..%u (got %.15g)", name, min, max, v->valuedouble);
                return;
        }
        *out = (unsigned)v->valuedouble;
}

/* Names used in MQTT topics and journal fields: no '/', '+', '#', spaces or control characters. */
bool cfg__check_name(const char *s, const char **why) {
        *why = "must be 1..64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit";
        /* The same rule as a node's certificate CN, which must match node.id. */
        return plat_cn_ok(s);
}

bool cfg__check_topic_prefix(const char *s, const char **why) {
        *why = "must be a topic path without wildcards (+ #), empty levels, or a leading or trailing '/'";
        if (s[0] == '/' || s[strlen(s) - 1] == '/' || strstr(s, "//") || strlen(s) > 128)
                return false;
        for (const char *p = s; *p; p++)
                if (*p == '+' || *p == '#' || (unsigned char)*p < 0x20)
                        return false;
        return true;
}

bool cfg__check_host(const char *s, const char **why) {
        *why = "must be a host name or address of at most 253 characters, without spaces";
        if (strlen(s) > 253)
                return false;
        for (const char *p = s; *p; p++)
                if ((unsigned char)*p <= 0x20 || *p == '/')
                        return false;
        return true;
}

bool cfg__check_iface(const char *s, const char **why) {
        *why = "must be a network interface name of 1..15 characters without '/', ':' or spaces";
        if (strlen(s) > 15 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
                return false;
        for (const char *p = s; *p; p++)
                if ((unsigned char)*p <= 0x20 || *p == '/' || *p == ':')
                        return false;
        return true;
}

bool cfg__check_cgroup(const char *s, const char **why) {
        *why = "must be a path below the cgroup mount (e.g. \"render.slice/slot-0.scope\") without "
               "'..' components";
        if (strlen(s) > 255 || s[0] == '/')
                return false;
        for (const char *p = s; *p; p++)
                if ((unsigned char)*p < 0x20)
                        return false;
        for (const char *p = s; (p = strstr(p, "..")); p += 2)
                if ((p == s || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
                        return false;
        return true;
}

bool cfg__check_project(const char *s, const char **why) {
        *why = "must be 1..64 characters of A-Z a-z 0-9 . _ @ : -, as a user id";
        return slots_valid_project(s);
}

bool cfg__check_abs_path(const char *s, const char **why) {
        *why = "must be an absolute path";
        return s[0] == '/';
}

/* Resolves a file name against the config's directory and checks it can be opened. */
void cfg__get_file(struct cfg_ctx *x, const cJSON *obj, const char *key, const char *name, char **out,
                   uint64_t *stamp) {
        _cleanup_close_ int fd = -1;
        struct stat st;
        char *abs;

        cfg__get_string(x, obj, key, name, true, NULL, out);
        if (!*out)
                return;
        if ((*out)[0] != '/') {
                if (asprintf(&abs, "%s/%s", x->dir, *out) < 0) {
                        x->oom = true;
                        return;
                }
                free(*out);
                *out = abs;
        }
        fd = open(*out, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0) {
                cfg__problem(x, "%s: cannot read %s: %s", name, *out, strerror(errno));
                return;
        }
        if (!S_ISREG(st.st_mode)) {
                cfg__problem(x, "%s: %s is not a regular file", name, *out);
                return;
        }
        *stamp = *stamp * 1000003u ^ (uint64_t)st.st_ino ^ (uint64_t)st.st_size << 20 ^
                 (uint64_t)st.st_mtim.tv_sec * 1000000000u ^ (uint64_t)st.st_mtim.tv_nsec;
}

/* A number in [min, max]; false when absent or wrong (the latter reported). */
bool cfg__get_number(struct cfg_ctx *x, const cJSON *obj, const char *key, const char *name, double min,
                     double max, double *out) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

        if (!v)
                return false;
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= min && v->valuedouble <= max)) {
                if (cJSON_IsNumber(v))
                        cfg__problem(x, "%s: must be %g..%g (got %.15g)", name, min, max, v->valuedouble);
                else
                        cfg__problem(x, "%s: must be a number %g..%g (got %s)", name, min, max,
                                     cfg__type_name(v));
                return false;
        }
        *out = v->valuedouble;
        return true;
}
