/* config_mqtt.c: the config's "mqtt" section: brokers, ports, TLS files, protocol, topic prefix. */
#include "config_internal.h"

#include "cleanup.h"
#include "link_proto.h"
#include "strutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
        if (!cfg__check_host(h, &host_why) || strpbrk(h, "[]")) {
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
static void parse_brokers(struct cfg_ctx *x, const cJSON *arr, struct cfg_mqtt *m) {
        const cJSON *e;
        size_t n, i = 0;

        if (!cJSON_IsArray(arr)) {
                cfg__problem(x, "mqtt.brokers: must be an array of 1..%d strings " BROKER_FORMS " (got %s)",
                             CFG_MAX_BROKERS, cfg__type_name(arr));
                return;
        }
        n = (size_t)cJSON_GetArraySize(arr);
        if (n == 0 || n > CFG_MAX_BROKERS) {
                cfg__problem(x, "mqtt.brokers: must list 1..%d brokers (got %zu)", CFG_MAX_BROKERS, n);
                return;
        }
        cJSON_ArrayForEach(e, arr) {
                struct cfg_broker *b = &m->brokers[i];
                const char *why = NULL;
                int r;

                if (!cJSON_IsString(e)) {
                        cfg__problem(x, "mqtt.brokers[%zu]: must be a string " BROKER_FORMS " (got %s)", i,
                                     cfg__type_name(e));
                        i++;
                        continue;
                }
                r = split_broker(e->valuestring, m->port, &b->host, &b->port, &why);
                if (r == -ENOMEM) {
                        x->oom = true;
                        return;
                }
                if (r < 0)
                        cfg__problem(x, "mqtt.brokers[%zu]: %s (got \"%.270s\")", i, why, e->valuestring);
                for (size_t j = 0; r >= 0 && j < i; j++)
                        if (m->brokers[j].host && strcasecmp(m->brokers[j].host, b->host) == 0 &&
                            m->brokers[j].port == b->port) {
                                cfg__problem(
                                        x,
                                        "mqtt.brokers[%zu]: \"%s\" is the same broker as mqtt.brokers[%zu]",
                                        i, e->valuestring, j);
                                break;
                        }
                i++;
        }
        m->n_brokers = n;
}

void cfg__parse_mqtt(struct cfg_ctx *x, const cJSON *root, struct cfg *c) {
        static const char *const keys[] = { "host",        "brokers",      "port",     "tls",
                                            "keepalive_s", "topic_prefix", "protocol", "reconnect_window_ms",
                                            NULL };
        static const char *const tls_keys[] = { "ca_file", "cert_file", "key_file", NULL };
        const cJSON *m = cfg__get_object(x, root, "mqtt", true), *tls, *brokers, *proto;
        _cleanup_free_ char *host = NULL;
        enum link_proto_mode mode;

        if (!m)
                return;
        cfg__check_keys(x, m, "mqtt", keys);
        brokers = cJSON_GetObjectItemCaseSensitive(m, "brokers");
        if (brokers && cJSON_GetObjectItemCaseSensitive(m, "host"))
                cfg__problem(
                        x, "mqtt.brokers: give either mqtt.host (one broker) or mqtt.brokers (a list), not "
                           "both");
        else if (!brokers && !cJSON_GetObjectItemCaseSensitive(m, "host"))
                cfg__problem(x,
                             "mqtt.host: required key is missing (or mqtt.brokers: a list of brokers tried "
                             "in order)");
        cfg__get_string(x, m, "host", "mqtt.host", false, cfg__check_host, &host);
        cfg__get_uint(x, m, "keepalive_s", "mqtt.keepalive_s", 5, 3600, &c->mqtt.keepalive_s);
        cfg__get_uint(x, m, "reconnect_window_ms", "mqtt.reconnect_window_ms", 0, 600000,
                      &c->mqtt.reconnect_window_ms);
        proto = cJSON_GetObjectItemCaseSensitive(m, "protocol");
        if (proto && !cJSON_IsString(proto))
                cfg__problem(x, "mqtt.protocol: must be a string (got %s)", cfg__type_name(proto));
        else if (proto && link_proto_mode_from_string(proto->valuestring, &mode) < 0)
                cfg__problem(x, "mqtt.protocol: must be \"auto\", \"5\" or \"3.1.1\" (got \"%.40s\")",
                             proto->valuestring);
        else if (proto)
                c->mqtt.protocol = (int)mode;
        cfg__get_string(x, m, "topic_prefix", "mqtt.topic_prefix", false, cfg__check_topic_prefix,
                        &c->mqtt.topic_prefix);

        tls = cJSON_GetObjectItemCaseSensitive(m, "tls");
        if (!tls) {
                cfg__problem(x, "mqtt.tls: required: an object with ca_file, cert_file and key_file "
                                "(or false to run without TLS, which is not for production)");
        } else if (cJSON_IsFalse(tls)) {
                c->mqtt.tls = false;
                c->mqtt.port = 1883;
        } else if (cJSON_IsObject(tls)) {
                c->mqtt.tls = true;
                cfg__check_keys(x, tls, "mqtt.tls", tls_keys);
                cfg__get_file(x, tls, "ca_file", "mqtt.tls.ca_file", &c->mqtt.ca_file, &c->mqtt.tls_stamp);
                cfg__get_file(x, tls, "cert_file", "mqtt.tls.cert_file", &c->mqtt.cert_file,
                              &c->mqtt.tls_stamp);
                cfg__get_file(x, tls, "key_file", "mqtt.tls.key_file", &c->mqtt.key_file,
                              &c->mqtt.tls_stamp);
        } else {
                cfg__problem(x, "mqtt.tls: must be an object or false (got %s)", cfg__type_name(tls));
        }
        /* mqtt.port is the port of mqtt.host, or the default of mqtt.brokers' entries. */
        cfg__get_uint(x, m, "port", "mqtt.port", 1, 65535, &c->mqtt.port);
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
