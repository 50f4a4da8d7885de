/* config.c: the agent's JSON configuration: parsing, validation with precise messages, defaults. */
#include "config.h"

#include "cgroup.h"
#include "cleanup.h"
#include "crypto.h"
#include "fileio.h"
#include "link_proto.h"
#include "slots.h"
#include "strutil.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CFG_MAX_PROBLEMS 64
#define CFG_MAX_STRING 4096

struct ctx {
        const char *path;
        char *dir; /* the config file's directory, for relative file names */
        struct cfg_problems *problems;
        bool oom;
};

static void problem(struct ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends "FILE<sep>message" to the problem list. sep is ": " for key problems and ":" for
 * positions, so syntax errors read "FILE:LINE:COL: ..." like a compiler's and editors can jump. */
static void vproblem(struct ctx *x, const char *sep, const char *fmt, va_list ap)
        __attribute__((format(printf, 3, 0)));

static void vproblem(struct ctx *x, const char *sep, const char *fmt, va_list ap) {
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

static void problem(struct ctx *x, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vproblem(x, ": ", fmt, ap);
        va_end(ap);
}

static void problem_at(struct ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem_at(struct ctx *x, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vproblem(x, ":", fmt, ap);
        va_end(ap);
}

static const char *type_name(const cJSON *v) {
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
static void check_keys(struct ctx *x, const cJSON *obj, const char *where, const char *const *allowed) {
        if (cJSON_GetArraySize(obj) > 64) {
                problem(x, "%s: more than 64 keys: not a config section", *where ? where : "top level");
                return;
        }
        for (const cJSON *k = obj->child; k; k = k->next) {
                bool known = false;

                for (size_t i = 0; allowed[i]; i++)
                        if (strcmp(k->string, allowed[i]) == 0)
                                known = true;
                if (!known)
                        problem(x, "%s%s%s: unknown key", where, *where ? "." : "", k->string);
                for (const cJSON *p = obj->child; p != k; p = p->next)
                        if (strcmp(p->string, k->string) == 0) {
                                problem(x, "%s%s%s: duplicate key", where, *where ? "." : "", k->string);
                                break;
                        }
        }
}

static const cJSON *get_object(struct ctx *x, const cJSON *parent, const char *key, bool required) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(parent, key);

        if (!v) {
                if (required)
                        problem(x, "%s: required section is missing", key);
                return NULL;
        }
        if (!cJSON_IsObject(v)) {
                problem(x, "%s: must be an object (got %s)", key, type_name(v));
                return NULL;
        }
        return v;
}

typedef bool (*string_check_fn)(const char *s, const char **why);

/* Reads a string member into *out (replacing the default). `name` is the full dotted key. */
static void get_string(struct ctx *x, const cJSON *obj, const char *key, const char *name, bool required,
                       string_check_fn check, char **out) {
        const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
        const char *why = NULL;
        char *s;

        if (!v) {
                if (required && !*out)
                        problem(x, "%s: required key is missing", name);
                return;
        }
        if (!cJSON_IsString(v)) {
                problem(x, "%s: must be a string (got %s)", name, type_name(v));
                return;
        }
        if (strlen(v->valuestring) > CFG_MAX_STRING) {
                problem(x, "%s: longer than %d characters", name, CFG_MAX_STRING);
                return;
        }
        if (v->valuestring[0] == '\0') {
                problem(x, "%s: must not be empty", name);
                return;
        }
        if (check && !check(v->valuestring, &why)) {
                problem(x, "%s: %s (got \"%s\")", name, why, v->valuestring);
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

static void get_uint(struct ctx *x, const cJSON *obj, const char *key, const char *name, unsigned min,
                     unsigned max, unsigned *out) {
        const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;

        if (!v)
                return;
        if (!cJSON_IsNumber(v)) {
                problem(x, "%s: must be an integer %u..%u (got %s)", name, min, max, type_name(v));
                return;
        }
        if (v->valuedouble != floor(v->valuedouble) || v->valuedouble < min || v->valuedouble > max) {
                problem(x, "%s: must be %u..%u (got %.15g)", name, min, max, v->valuedouble);
                return;
        }
        *out = (unsigned)v->valuedouble;
}

/* Names used in MQTT topics and journal fields: no '/', '+', '#', spaces or control characters. */
static bool check_name(const char *s, const char **why) {
        *why = "must be 1..64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit";
        /* The same rule as a node's certificate CN, which must match node.id. */
        return plat_cn_ok(s);
}

static bool check_topic_prefix(const char *s, const char **why) {
        *why = "must be a topic path without wildcards (+ #), empty levels, or a leading or trailing '/'";
        if (s[0] == '/' || s[strlen(s) - 1] == '/' || strstr(s, "//") || strlen(s) > 128)
                return false;
        for (const char *p = s; *p; p++)
                if (*p == '+' || *p == '#' || (unsigned char)*p < 0x20)
                        return false;
        return true;
}

static bool check_host(const char *s, const char **why) {
        *why = "must be a host name or address of at most 253 characters, without spaces";
        if (strlen(s) > 253)
                return false;
        for (const char *p = s; *p; p++)
                if ((unsigned char)*p <= 0x20 || *p == '/')
                        return false;
        return true;
}

static bool check_iface(const char *s, const char **why) {
        *why = "must be a network interface name of 1..15 characters without '/', ':' or spaces";
        if (strlen(s) > 15 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
                return false;
        for (const char *p = s; *p; p++)
                if ((unsigned char)*p <= 0x20 || *p == '/' || *p == ':')
                        return false;
        return true;
}

static bool check_cgroup(const char *s, const char **why) {
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

static bool check_project(const char *s, const char **why) {
        *why = "must be 1..64 characters of A-Z a-z 0-9 . _ @ : -, as a user id";
        return slots_valid_project(s);
}

static bool check_abs_path(const char *s, const char **why) {
        *why = "must be an absolute path";
        return s[0] == '/';
}

/* Resolves a file name against the config's directory and checks it can be opened. */
static void get_file(struct ctx *x, const cJSON *obj, const char *key, const char *name, char **out,
                     uint64_t *stamp) {
        _cleanup_close_ int fd = -1;
        struct stat st;
        char *abs;

        get_string(x, obj, key, name, true, NULL, out);
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
                problem(x, "%s: cannot read %s: %s", name, *out, strerror(errno));
                return;
        }
        if (!S_ISREG(st.st_mode)) {
                problem(x, "%s: %s is not a regular file", name, *out);
                return;
        }
        *stamp = *stamp * 1000003u ^ (uint64_t)st.st_ino ^ (uint64_t)st.st_size << 20 ^
                 (uint64_t)st.st_mtim.tv_sec * 1000000000u ^ (uint64_t)st.st_mtim.tv_nsec;
}

#define BROKER_FORMS "\"host\", \"host:port\" or \"[IPv6]:port\""

/* One mqtt.brokers entry: "host", "host:port", "[IPv6]" or "[IPv6]:port"; the port defaults to
 * def_port. A bare IPv6 address is refused: its last group would read as a port. Returns 0 with
 * *ret_host (caller frees) and *ret_port, -EINVAL with *why, or -ENOMEM. */
static int split_broker(const char *s, unsigned def_port, char **ret_host, unsigned *ret_port,
                        const char **why) {
        const char *host = s, *port_s = NULL, *host_why = "";
        char v6[INET6_ADDRSTRLEN];
        struct in6_addr a6;
        uint64_t port = def_port;
        size_t host_len;
        char *h;

        if (strlen(s) > 253 + 2 + 6) {
                *why = "longer than a host name and a port can be (261 characters)";
                return -EINVAL;
        }
        if (s[0] == '[') {
                const char *close = strchr(s, ']');

                host = s + 1;
                host_len = close ? (size_t)(close - host) : 0;
                if (!close || host_len == 0 || host_len >= sizeof(v6)) {
                        *why = "must be an IPv6 address in brackets, e.g. \"[2001:db8::1]:8883\"";
                        return -EINVAL;
                }
                memcpy(v6, host, host_len);
                v6[host_len] = '\0';
                if (inet_pton(AF_INET6, v6, &a6) != 1) {
                        *why = "the brackets must hold an IPv6 address";
                        return -EINVAL;
                }
                if (close[1] == ':')
                        port_s = close + 2;
                else if (close[1] != '\0') {
                        *why = "only \":port\" may follow the ']'";
                        return -EINVAL;
                }
        } else {
                const char *colon = strchr(s, ':');

                if (colon && strchr(colon + 1, ':')) {
                        *why = "an IPv6 address must be in brackets, e.g. \"[2001:db8::1]:8883\"";
                        return -EINVAL;
                }
                host_len = colon ? (size_t)(colon - s) : strlen(s);
                port_s = colon ? colon + 1 : NULL;
                if (host_len == 0) {
                        *why = "the host is missing";
                        return -EINVAL;
                }
        }
        if (port_s && (plat_parse_u64(port_s, strlen(port_s), &port) < 0 || port < 1 || port > 65535)) {
                *why = "the port must be 1..65535";
                return -EINVAL;
        }
        h = strndup(host, host_len);
        if (!h)
                return -ENOMEM;
        if (!check_host(h, &host_why) || strpbrk(h, "[]")) {
                free(h);
                *why = strpbrk(s, "[]") && s[0] != '[' ? "'[' and ']' only go around an IPv6 address"
                                                       : host_why;
                return -EINVAL;
        }
        *ret_host = h;
        *ret_port = (unsigned)port;
        return 0;
}

/* mqtt.brokers: entry i goes to brokers[i], so messages and duplicates name the file's index.
 * The same host (names compare case-insensitively) and port twice is a mistake, not more
 * redundancy. */
static void parse_brokers(struct ctx *x, const cJSON *arr, struct cfg_mqtt *m) {
        const cJSON *e;
        size_t n, i = 0;

        if (!cJSON_IsArray(arr)) {
                problem(x, "mqtt.brokers: must be an array of 1..%d strings " BROKER_FORMS " (got %s)",
                        CFG_MAX_BROKERS, type_name(arr));
                return;
        }
        n = (size_t)cJSON_GetArraySize(arr);
        if (n == 0 || n > CFG_MAX_BROKERS) {
                problem(x, "mqtt.brokers: must list 1..%d brokers (got %zu)", CFG_MAX_BROKERS, n);
                return;
        }
        cJSON_ArrayForEach(e, arr) {
                struct cfg_broker *b = &m->brokers[i];
                const char *why = NULL;
                int r;

                if (!cJSON_IsString(e)) {
                        problem(x, "mqtt.brokers[%zu]: must be a string " BROKER_FORMS " (got %s)", i,
                                type_name(e));
                        i++;
                        continue;
                }
                r = split_broker(e->valuestring, m->port, &b->host, &b->port, &why);
                if (r == -ENOMEM) {
                        x->oom = true;
                        return;
                }
                if (r < 0)
                        problem(x, "mqtt.brokers[%zu]: %s (got \"%.270s\")", i, why, e->valuestring);
                for (size_t j = 0; r >= 0 && j < i; j++)
                        if (m->brokers[j].host && strcasecmp(m->brokers[j].host, b->host) == 0 &&
                            m->brokers[j].port == b->port) {
                                problem(x,
                                        "mqtt.brokers[%zu]: \"%s\" is the same broker as mqtt.brokers[%zu]",
                                        i, e->valuestring, j);
                                break;
                        }
                i++;
        }
        m->n_brokers = n;
}

static void parse_mqtt(struct ctx *x, const cJSON *root, struct cfg *c) {
        static const char *const keys[] = { "host",        "brokers",      "port",     "tls",
                                            "keepalive_s", "topic_prefix", "protocol", "reconnect_window_ms",
                                            NULL };
        static const char *const tls_keys[] = { "ca_file", "cert_file", "key_file", NULL };
        const cJSON *m = get_object(x, root, "mqtt", true), *tls, *brokers, *proto;
        _cleanup_free_ char *host = NULL;
        enum link_proto_mode mode;

        if (!m)
                return;
        check_keys(x, m, "mqtt", keys);
        brokers = cJSON_GetObjectItemCaseSensitive(m, "brokers");
        if (brokers && cJSON_GetObjectItemCaseSensitive(m, "host"))
                problem(x, "mqtt.brokers: give either mqtt.host (one broker) or mqtt.brokers (a list), not "
                           "both");
        else if (!brokers && !cJSON_GetObjectItemCaseSensitive(m, "host"))
                problem(x, "mqtt.host: required key is missing (or mqtt.brokers: a list of brokers tried "
                           "in order)");
        get_string(x, m, "host", "mqtt.host", false, check_host, &host);
        get_uint(x, m, "keepalive_s", "mqtt.keepalive_s", 5, 3600, &c->mqtt.keepalive_s);
        get_uint(x, m, "reconnect_window_ms", "mqtt.reconnect_window_ms", 0, 600000,
                 &c->mqtt.reconnect_window_ms);
        proto = cJSON_GetObjectItemCaseSensitive(m, "protocol");
        if (proto && !cJSON_IsString(proto))
                problem(x, "mqtt.protocol: must be a string (got %s)", type_name(proto));
        else if (proto && link_proto_mode_from_string(proto->valuestring, &mode) < 0)
                problem(x, "mqtt.protocol: must be \"auto\", \"5\" or \"3.1.1\" (got \"%.40s\")",
                        proto->valuestring);
        else if (proto)
                c->mqtt.protocol = (int)mode;
        get_string(x, m, "topic_prefix", "mqtt.topic_prefix", false, check_topic_prefix,
                   &c->mqtt.topic_prefix);

        tls = cJSON_GetObjectItemCaseSensitive(m, "tls");
        if (!tls) {
                problem(x, "mqtt.tls: required: an object with ca_file, cert_file and key_file "
                           "(or false to run without TLS, which is not for production)");
        } else if (cJSON_IsFalse(tls)) {
                c->mqtt.tls = false;
                c->mqtt.port = 1883;
        } else if (cJSON_IsObject(tls)) {
                c->mqtt.tls = true;
                check_keys(x, tls, "mqtt.tls", tls_keys);
                get_file(x, tls, "ca_file", "mqtt.tls.ca_file", &c->mqtt.ca_file, &c->mqtt.tls_stamp);
                get_file(x, tls, "cert_file", "mqtt.tls.cert_file", &c->mqtt.cert_file, &c->mqtt.tls_stamp);
                get_file(x, tls, "key_file", "mqtt.tls.key_file", &c->mqtt.key_file, &c->mqtt.tls_stamp);
        } else {
                problem(x, "mqtt.tls: must be an object or false (got %s)", type_name(tls));
        }
        /* mqtt.port is the port of mqtt.host, or the default of mqtt.brokers' entries. */
        get_uint(x, m, "port", "mqtt.port", 1, 65535, &c->mqtt.port);
        if (brokers)
                parse_brokers(x, brokers, &c->mqtt);
        else if (host) {
                c->mqtt.brokers[0] = (struct cfg_broker){ .host = TAKE_PTR(host), .port = c->mqtt.port };
                c->mqtt.n_brokers = 1;
        }
        c->mqtt.host = c->mqtt.brokers[0].host;
        if (c->mqtt.host)
                c->mqtt.port = c->mqtt.brokers[0].port;
}

static void parse_gpu(struct ctx *x, const cJSON *root, struct cfg *c) {
        const cJSON *g = get_object(x, root, "gpu", false), *t, *e;

        if (!g)
                return;
        check_keys(x, g, "gpu", (const char *const[]){ "nvml_library", "fp32_tflops", NULL });
        get_string(x, g, "nvml_library", "gpu.nvml_library", false, check_abs_path, &c->gpu.nvml_library);
        t = cJSON_GetObjectItemCaseSensitive(g, "fp32_tflops");
        if (!t)
                return;
        if (!cJSON_IsObject(t)) {
                problem(x,
                        "gpu.fp32_tflops: must be an object of GPU index to TFLOPS, e.g. {\"0\": 31.2} "
                        "(got %s)",
                        type_name(t));
                return;
        }
        cJSON_ArrayForEach(e, t) {
                uint64_t idx;

                for (const cJSON *q = t->child; q != e; q = q->next)
                        if (strcmp(q->string, e->string) == 0) {
                                problem(x, "gpu.fp32_tflops.%s: duplicate key", e->string);
                                break;
                        }
                if (plat_parse_u64(e->string, strlen(e->string), &idx) < 0 || idx >= CFG_MAX_GPUS) {
                        problem(x, "gpu.fp32_tflops.%s: the key must be a GPU index 0..%d", e->string,
                                CFG_MAX_GPUS - 1);
                        continue;
                }
                if (!cJSON_IsNumber(e) || !(e->valuedouble > 0 && e->valuedouble <= 10000)) {
                        problem(x,
                                "gpu.fp32_tflops.%s: must be a number of TFLOPS above 0 and at most 10000",
                                e->string);
                        continue;
                }
                c->gpu.fp32_tflops[idx] = e->valuedouble;
        }
}

/* A number in [min, max]; false when absent or wrong (the latter reported). */
static bool get_number(struct ctx *x, const cJSON *obj, const char *key, const char *name, double min,
                       double max, double *out) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

        if (!v)
                return false;
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= min && v->valuedouble <= max)) {
                if (cJSON_IsNumber(v))
                        problem(x, "%s: must be %g..%g (got %.15g)", name, min, max, v->valuedouble);
                else
                        problem(x, "%s: must be a number %g..%g (got %s)", name, min, max, type_name(v));
                return false;
        }
        *out = v->valuedouble;
        return true;
}

static int class_from_string(const char *s, enum hal_class *ret) {
        static const enum hal_class all[] = { HAL_CLASS_X86_GPU, HAL_CLASS_X86_CPU, HAL_CLASS_ARM };

        for (size_t i = 0; i < ELEMENTSOF(all); i++)
                if (strcmp(s, hal_class_to_string(all[i])) == 0) {
                        *ret = all[i];
                        return 0;
                }
        return -EINVAL;
}

/* One entry of `scales`: overrides a published scale (the keys given replace its figures) or
 * defines a new one (XL, arm-*...: class, vcpu, ram_gb and bandwidth_mbps required, and for
 * x86-gpu also gpu_fp32_tflops and vram_gb). */
static void parse_scale(struct ctx *x, const cJSON *e, struct cfg *c) {
        static const char *const keys[] = { "class",   "vcpu",           "ram_gb", "gpu_fp32_tflops",
                                            "vram_gb", "bandwidth_mbps", NULL };
        struct spec_scale *sc = (struct spec_scale *)spec_find(c, e->string), tmp = { 0 };
        char where[96], name[128];
        const cJSON *cls;
        bool is_new = !sc;
        double d;

        snprintf(where, sizeof(where), "scales.%.64s", e->string);
        if (!cJSON_IsObject(e)) {
                problem(x, "%s: must be an object (got %s)", where, type_name(e));
                return;
        }
        {
                const char *why;

                if (!check_name(e->string, &why)) {
                        problem(x, "%s: the scale name %s", where, why);
                        return;
                }
        }
        check_keys(x, e, where, keys);
        if (is_new) {
                sc = &tmp;
                snprintf(sc->name, sizeof(sc->name), "%s", e->string);
        }
#define NAME(k) (snprintf(name, sizeof(name), "%s.%s", where, k), name)
        cls = cJSON_GetObjectItemCaseSensitive(e, "class");
        if (cls && (!cJSON_IsString(cls) || class_from_string(cls->valuestring, &sc->cls) < 0))
                problem(x, "%s: must be \"x86-gpu\", \"x86-cpu\" or \"arm\"", NAME("class"));
        else if (!cls && is_new)
                problem(x, "%s: required for a scale that is not published", NAME("class"));
        if (get_number(x, e, "vcpu", NAME("vcpu"), 1, 1024, &d))
                sc->vcpu = (unsigned)d;
        else if (is_new && !cJSON_GetObjectItemCaseSensitive(e, "vcpu"))
                problem(x, "%s: required for a scale that is not published", NAME("vcpu"));
        if (get_number(x, e, "ram_gb", NAME("ram_gb"), 0.1, 65536, &d))
                sc->ram_bytes = (uint64_t)(d * (double)SPEC_GB);
        else if (is_new && !cJSON_GetObjectItemCaseSensitive(e, "ram_gb"))
                problem(x, "%s: required for a scale that is not published", NAME("ram_gb"));
        if (get_number(x, e, "gpu_fp32_tflops", NAME("gpu_fp32_tflops"), 0, 10000, &d))
                sc->fp32_tflops = d;
        else if (is_new && sc->cls == HAL_CLASS_X86_GPU &&
                 !cJSON_GetObjectItemCaseSensitive(e, "gpu_fp32_tflops"))
                problem(x, "%s: required for an x86-gpu scale", NAME("gpu_fp32_tflops"));
        if (get_number(x, e, "vram_gb", NAME("vram_gb"), 0, 65536, &d))
                sc->vram_bytes = (uint64_t)(d * (double)SPEC_GB);
        else if (is_new && sc->cls == HAL_CLASS_X86_GPU && !cJSON_GetObjectItemCaseSensitive(e, "vram_gb"))
                problem(x, "%s: required for an x86-gpu scale", NAME("vram_gb"));
        if (get_number(x, e, "bandwidth_mbps", NAME("bandwidth_mbps"), 0.1, 100000, &d))
                sc->bandwidth_mbps = d;
        else if (is_new && !cJSON_GetObjectItemCaseSensitive(e, "bandwidth_mbps"))
                problem(x, "%s: required for a scale that is not published", NAME("bandwidth_mbps"));
#undef NAME
        if (is_new) {
                struct spec_scale *n = realloc(c->scales, (c->n_scales + 1) * sizeof(*n));

                if (!n) {
                        x->oom = true;
                        return;
                }
                c->scales = n;
                c->scales[c->n_scales++] = tmp;
        }
}

/* The catalog: the published scales, then `scales` overriding or extending them. */
static void parse_scales(struct ctx *x, const cJSON *root, struct cfg *c) {
        const struct spec_scale *b;
        const cJSON *sect, *e;
        size_t n;

        b = spec_builtin(&n);
        c->scales = malloc(n * sizeof(*c->scales));
        if (!c->scales) {
                x->oom = true;
                return;
        }
        memcpy(c->scales, b, n * sizeof(*b));
        c->n_scales = n;
        sect = get_object(x, root, "scales", false);
        if (!sect)
                return;
        if (cJSON_GetArraySize(sect) > 64) {
                problem(x, "scales: at most 64 scales");
                return;
        }
        cJSON_ArrayForEach(e, sect) {
                bool dup = false;

                for (const cJSON *q = sect->child; q != e; q = q->next)
                        dup |= strcmp(q->string, e->string) == 0;
                if (dup)
                        problem(x, "scales.%s: duplicate key", e->string);
                else
                        parse_scale(x, e, c);
        }
}

static void parse_events(struct ctx *x, const cJSON *root, struct cfg *c) {
        const cJSON *e = get_object(x, root, "events", false);

        if (!e)
                return;
        check_keys(x, e, "events",
                   (const char *const[]){ "bandwidth_over_s", "bandwidth_under_s", "memory_pressure_pct",
                                          NULL });
        get_uint(x, e, "bandwidth_over_s", "events.bandwidth_over_s", 1, 3600, &c->events.bandwidth_over_s);
        get_uint(x, e, "bandwidth_under_s", "events.bandwidth_under_s", 1, 3600,
                 &c->events.bandwidth_under_s);
        get_uint(x, e, "memory_pressure_pct", "events.memory_pressure_pct", 50, 100,
                 &c->events.memory_pressure_pct);
}

static const char *const enforcement_names[] = { "none", "cgroup_kill", "exec", NULL };

/* sessions.enforcement_exec: an argv array, the command an absolute path. */
static void parse_exec(struct ctx *x, const cJSON *v, struct cfg_sessions *ss) {
        size_t n = 0;
        const cJSON *a;

        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1 || cJSON_GetArraySize(v) > CFG_EXEC_MAX_ARGS) {
                problem(x,
                        "sessions.enforcement_exec: must be an array of 1..%d strings, the command (an "
                        "absolute path) and its arguments",
                        CFG_EXEC_MAX_ARGS);
                return;
        }
        cJSON_ArrayForEach(a, v) {
                const char *why = NULL;

                if (!cJSON_IsString(a) || strlen(a->valuestring) > CFG_MAX_STRING) {
                        problem(x, "sessions.enforcement_exec[%zu]: must be a string of at most %d bytes", n,
                                CFG_MAX_STRING);
                        return;
                }
                if (n == 0 && !check_abs_path(a->valuestring, &why)) {
                        problem(x, "sessions.enforcement_exec[0]: the command %s (got \"%s\")", why,
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

static void parse_sessions(struct ctx *x, const cJSON *root, struct cfg *c) {
        static const char *const keys[] = {
                "lock_ttl_s",  "grace_s",     "max_session_s",    "heartbeat_timeout_s",   "idle_s",
                "viewers_max", "enforcement", "enforcement_exec", "enforcement_timeout_s", "max_flow_mbps",
                NULL
        };
        struct cfg_sessions *ss = &c->sessions;
        const cJSON *e = get_object(x, root, "sessions", false), *v;

        if (!e)
                return;
        check_keys(x, e, "sessions", keys);
        get_uint(x, e, "lock_ttl_s", "sessions.lock_ttl_s", 1, 3600, &ss->lock_ttl_s);
        get_uint(x, e, "grace_s", "sessions.grace_s", 40, 3600, &ss->grace_s);
        get_uint(x, e, "max_session_s", "sessions.max_session_s", 0, 30 * 86400, &ss->max_session_s);
        get_uint(x, e, "heartbeat_timeout_s", "sessions.heartbeat_timeout_s", 0, 3600,
                 &ss->heartbeat_timeout_s);
        get_uint(x, e, "idle_s", "sessions.idle_s", 0, 86400, &ss->idle_s);
        get_uint(x, e, "viewers_max", "sessions.viewers_max", 0, 16, &ss->viewers_max);
        get_uint(x, e, "max_flow_mbps", "sessions.max_flow_mbps", 1, CFG_MAX_FLOW_MBPS, &ss->max_flow_mbps);
        get_uint(x, e, "enforcement_timeout_s", "sessions.enforcement_timeout_s", 1, 300,
                 &ss->enforcement_timeout_s);
        v = cJSON_GetObjectItemCaseSensitive(e, "enforcement");
        if (v) {
                size_t k;

                for (k = 0; cJSON_IsString(v) && enforcement_names[k]; k++)
                        if (!strcmp(v->valuestring, enforcement_names[k]))
                                break;
                if (!cJSON_IsString(v) || !enforcement_names[k])
                        problem(x, "sessions.enforcement: must be \"none\", \"cgroup_kill\" or \"exec\"");
                else
                        ss->enforcement = (enum cfg_enforcement)k;
        }
        v = cJSON_GetObjectItemCaseSensitive(e, "enforcement_exec");
        if (v && ss->enforcement != CFG_ENFORCE_EXEC)
                problem(x, "sessions.enforcement_exec: only used with \"enforcement\": \"exec\"");
        else if (v)
                parse_exec(x, v, ss);
        else if (ss->enforcement == CFG_ENFORCE_EXEC)
                problem(x, "sessions.enforcement_exec: required with \"enforcement\": \"exec\"");
}

/* A resource pack deducts each hour's peak concurrency: that is the largest peak of the hour's
 * windows only when whole windows tile the hour. */
static void parse_window_s(struct ctx *x, const cJSON *e, struct cfg_metering *m) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "window_s");
        double got;

        /* A whole number of seconds that is too long gets the reason, not only the range. */
        if (cJSON_IsNumber(v) && v->valuedouble > 3600 && v->valuedouble == floor(v->valuedouble)) {
                got = v->valuedouble;
        } else {
                get_uint(x, e, "window_s", "metering.window_s", 1, 3600, &m->window_s);
                if (3600 % m->window_s == 0)
                        return;
                got = m->window_s;
        }
        problem(x,
                "metering.window_s: must divide an hour (3600 s) so each hour's peak concurrency can be "
                "computed (got %.15g)",
                got);
}

static void parse_metering(struct ctx *x, const cJSON *root, struct cfg *c) {
        static const char *const keys[] = { "window_s", "late_s",          "spool_max_mb", "inflight",
                                            "key_file", "redeliver_per_s", "cert_file",    NULL };
        struct cfg_metering *m = &c->metering;
        const cJSON *e = get_object(x, root, "metering", false);
        uint64_t unused = 0;

        if (!e)
                return;
        check_keys(x, e, "metering", keys);
        parse_window_s(x, e, m);
        get_uint(x, e, "late_s", "metering.late_s", 0, 120, &m->late_s);
        get_uint(x, e, "spool_max_mb", "metering.spool_max_mb", 1, 1024 * 1024, &m->spool_max_mb);
        get_uint(x, e, "inflight", "metering.inflight", 1, 1000, &m->inflight);
        get_uint(x, e, "redeliver_per_s", "metering.redeliver_per_s", 0, 100000, &m->redeliver_per_s);
        if (cJSON_GetObjectItemCaseSensitive(e, "key_file"))
                get_file(x, e, "key_file", "metering.key_file", &m->key_file, &unused);
        if (cJSON_GetObjectItemCaseSensitive(e, "cert_file"))
                get_file(x, e, "cert_file", "metering.cert_file", &m->cert_file, &unused);
}

/* control.allow, control.read (`key`): "user:NAME", "group:NAME", "uid:N" or "gid:N". */
static void parse_allow(struct ctx *x, const cJSON *v, const char *key, struct cfg_allow *al) {
        const cJSON *a;
        size_t i = 0;

        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > CFG_MAX_ALLOW) {
                problem(x, "%s: must be an array of at most %d entries", key, CFG_MAX_ALLOW);
                return;
        }
        cJSON_ArrayForEach(a, v) {
                const char *s = cJSON_IsString(a) ? a->valuestring : "";
                bool group = !strncmp(s, "group:", 6) || !strncmp(s, "gid:", 4);
                const char *arg = strchr(s, ':') ? strchr(s, ':') + 1 : "";
                uint64_t id = 0;
                bool ok = true;

                if (!strncmp(s, "uid:", 4) || !strncmp(s, "gid:", 4)) {
                        ok = plat_parse_u64(arg, strlen(arg), &id) >= 0 && id < UINT32_MAX;
                        if (!ok)
                                problem(x, "%s[%zu]: \"%s\" is not a numeric id", key, i, s);
                } else if (!strncmp(s, "user:", 5) && *arg && strlen(arg) < 256) {
                        struct passwd *pw = getpwnam(arg);

                        if (!pw) {
                                problem(x, "%s[%zu]: no user \"%s\" on this host", key, i, arg);
                                ok = false;
                        } else
                                id = pw->pw_uid;
                } else if (!strncmp(s, "group:", 6) && *arg && strlen(arg) < 256) {
                        struct group *gr = getgrnam(arg);

                        if (!gr) {
                                problem(x, "%s[%zu]: no group \"%s\" on this host", key, i, arg);
                                ok = false;
                        } else
                                id = gr->gr_gid;
                } else {
                        problem(x, "%s[%zu]: must be \"user:NAME\", \"group:NAME\", \"uid:N\" or \"gid:N\"",
                                key, i);
                        ok = false;
                }
                if (ok && group)
                        al->gids[al->n_gids++] = (uint32_t)id;
                else if (ok)
                        al->uids[al->n_uids++] = (uint32_t)id;
                i++;
        }
}

static void parse_slot(struct ctx *x, const cJSON *s, size_t i, struct cfg *c) {
        static const char *const keys[] = { "id", "scale", "cgroup", "iface", "gpu", "project", NULL };
        struct cfg_slot *slot = &c->slots[i];
        char where[32], name[64];
        const cJSON *gpu;

        snprintf(where, sizeof(where), "slots[%zu]", i);
        if (!cJSON_IsObject(s)) {
                problem(x, "%s: must be an object (got %s)", where, type_name(s));
                return;
        }
        check_keys(x, s, where, keys);
#define NAME(k) (snprintf(name, sizeof(name), "%s.%s", where, k), name)
        get_string(x, s, "id", NAME("id"), true, check_name, &slot->id);
        get_string(x, s, "scale", NAME("scale"), true, check_name, &slot->scale);
        if (slot->scale && !spec_find(c, slot->scale)) {
                if (strcmp(slot->scale, "XL") == 0 || strncmp(slot->scale, "arm-", 4) == 0)
                        problem(x, "%s: scale \"%s\" has no published figures; define it under \"scales\"",
                                name, slot->scale);
                else
                        problem(x,
                                "%s: unknown scale \"%s\" (the catalog has S, M, L, cpu-4, cpu-8, cpu-16 "
                                "and "
                                "what \"scales\" defines)",
                                name, slot->scale);
        }
        get_string(x, s, "cgroup", NAME("cgroup"), false, check_cgroup, &slot->cgroup);
        if (slot->cgroup) {
                char cg[256];

                /* Ending a session kills every process of the slot's cgroup: "." or "./" would be
                 * the whole host. Kept in canonical form, so that the same cgroup spelt twice is
                 * found below. */
                if (hal_cgroup_normalize(slot->cgroup, cg, sizeof(cg)) == 0)
                        problem(x,
                                "%s: \"%s\" (slot %s) is the root of the cgroup mount itself; "
                                "a slot's cgroup must be strictly below it, e.g. "
                                "\"render.slice/slot-0.scope\"",
                                NAME("cgroup"), slot->cgroup, slot->id ? slot->id : "?");
                else if (strcmp(cg, slot->cgroup) != 0)
                        strcpy(slot->cgroup, cg); /* never longer */
        }
        get_string(x, s, "iface", NAME("iface"), false, check_iface, &slot->iface);
        get_string(x, s, "project", NAME("project"), false, check_project, &slot->project);
        gpu = cJSON_GetObjectItemCaseSensitive(s, "gpu");
        if (gpu && !cJSON_IsNull(gpu)) {
                unsigned g = 0;

                if (!cJSON_IsNumber(gpu))
                        problem(x, "%s: must be a GPU index 0..63 or null (got %s)", NAME("gpu"),
                                type_name(gpu));
                else {
                        get_uint(x, s, "gpu", NAME("gpu"), 0, 63, &g);
                        slot->gpu = (int)g;
                }
        }
#undef NAME
        /* A slot's interface and cgroup measure that slot alone; sharing one would bill twice. */
        for (size_t j = 0; j < i; j++) {
                const struct cfg_slot *o = &c->slots[j];

                if (slot->id && plat_streq_ptr(o->id, slot->id))
                        problem(x, "%s.id: \"%s\" is already the id of slots[%zu]", where, slot->id, j);
                if (slot->iface && plat_streq_ptr(o->iface, slot->iface))
                        problem(x, "%s.iface: \"%s\" is already used by slot \"%s\"", where, slot->iface,
                                o->id ? o->id : "?");
                if (slot->cgroup && plat_streq_ptr(o->cgroup, slot->cgroup))
                        problem(x, "%s.cgroup: \"%s\" is already used by slot \"%s\"", where, slot->cgroup,
                                o->id ? o->id : "?");
        }
}

static void parse_slots(struct ctx *x, const cJSON *root, struct cfg *c) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "slots");
        size_t n, i = 0;
        const cJSON *s;

        if (!arr)
                return;
        if (!cJSON_IsArray(arr)) {
                problem(x, "slots: must be an array (got %s)", type_name(arr));
                return;
        }
        n = (size_t)cJSON_GetArraySize(arr);
        if (n > CFG_MAX_SLOTS) {
                problem(x, "slots: at most %d slots per host (got %zu)", CFG_MAX_SLOTS, n);
                return;
        }
        c->slots = calloc(n ? n : 1, sizeof(*c->slots));
        if (!c->slots) {
                x->oom = true;
                return;
        }
        c->n_slots = n;
        for (i = 0; i < n; i++)
                c->slots[i].gpu = -1;
        i = 0;
        cJSON_ArrayForEach(s, arr) parse_slot(x, s, i++, c);
}

/* cJSON reports where it stopped, which is sometimes one byte into the bad token (an unquoted
 * key, a stray '}' after a comma): when the byte before is part of a token rather than a
 * delimiter, the token began there. */
static void syntax_problem(struct ctx *x, const char *buf, size_t len, const char *at) {
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
        static const char *const top_keys[] = { "node",     "sampling", "mqtt",      "gpu",
                                                "scales",   "events",   "state_dir", "control",
                                                "sessions", "metering", "slots",     NULL };
        _cleanup_free_ char *pathcopy = strdup(path);
        struct ctx x = { .path = path, .problems = problems };
        const char *end = NULL;
        const cJSON *sect;
        struct cfg *c;
        cJSON *root;
        size_t before = problems->n;

        if (!pathcopy)
                return -ENOMEM;
        x.dir = dirname(pathcopy);
        if (memchr(buf, '\0', len)) {
                problem(&x, "contains a NUL byte at offset %zu: not a JSON text file",
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
                problem(&x, "the top level must be a JSON object (got %s)", type_name(root));
                cJSON_Delete(root);
                return -EINVAL;
        }
        c = calloc(1, sizeof(*c));
        if (!c || set_defaults(c, path) < 0) {
                cfg_free(c);
                cJSON_Delete(root);
                return -ENOMEM;
        }

        check_keys(&x, root, "", top_keys);
        sect = get_object(&x, root, "node", true);
        if (sect) {
                check_keys(&x, sect, "node", (const char *const[]){ "id", "region", NULL });
                get_string(&x, sect, "id", "node.id", true, check_name, &c->node_id);
                get_string(&x, sect, "region", "node.region", true, check_name, &c->node_region);
        }
        sect = get_object(&x, root, "sampling", false);
        if (sect) {
                check_keys(&x, sect, "sampling",
                           (const char *const[]){ "interval_ms", "gauges_every", NULL });
                get_uint(&x, sect, "interval_ms", "sampling.interval_ms", 100, 60000,
                         &c->sampling_interval_ms);
                get_uint(&x, sect, "gauges_every", "sampling.gauges_every", 0, 3600,
                         &c->sampling_gauges_every);
        }
        parse_mqtt(&x, root, c);
        parse_gpu(&x, root, c);
        get_string(&x, root, "state_dir", "state_dir", false, check_abs_path, &c->state_dir);
        sect = get_object(&x, root, "control", false);
        if (sect) {
                const cJSON *allow = cJSON_GetObjectItemCaseSensitive(sect, "allow");
                const cJSON *read = cJSON_GetObjectItemCaseSensitive(sect, "read");

                check_keys(&x, sect, "control",
                           (const char *const[]){ "socket", "allow", "read", "clients_per_user", NULL });
                get_string(&x, sect, "socket", "control.socket", false, check_abs_path, &c->control_socket);
                get_uint(&x, sect, "clients_per_user", "control.clients_per_user", 1,
                         CFG_CLIENTS_PER_USER_MAX, &c->control_clients_per_user);
                if (strlen(c->control_socket) >= 108)
                        problem(&x, "control.socket: longer than a Unix socket path may be (107 bytes)");
                if (allow)
                        parse_allow(&x, allow, "control.allow", &c->control_allow);
                c->control_read_set = read != NULL;
                if (read)
                        parse_allow(&x, read, "control.read", &c->control_read);
        }
        parse_sessions(&x, root, c);
        parse_metering(&x, root, c);
        parse_scales(&x, root, c);
        parse_events(&x, root, c);
        parse_slots(&x, root, c);
        if (c->sessions.enforcement == CFG_ENFORCE_CGROUP_KILL)
                for (size_t i = 0; i < c->n_slots; i++)
                        if (c->slots[i].id && !c->slots[i].cgroup)
                                problem(&x,
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
        struct ctx x = { .path = path, .problems = problems };
        size_t len;
        int r;

        r = plat_read_file_at(AT_FDCWD, path, CFG_MAX_BYTES, &buf, &len);
        if (r == -EFBIG) {
                problem(&x, "larger than %d bytes: not a config file", CFG_MAX_BYTES);
                return -EINVAL;
        }
        if (r < 0) {
                problem(&x, "cannot read: %s", strerror(-r));
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
