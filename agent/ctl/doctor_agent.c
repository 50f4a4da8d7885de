/* doctor_agent.c: the doctor's checks on what the running agent reports over its socket: the
 * broker link (with the TLS layer's reason), the slots' conformance, the spool and metering, GPUs;
 * and, without an agent, whether the brokers answer on TCP at all. */
#include "doctor.h"

#include "cleanup.h"
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Records waiting in the spool past this many are a warning even while the broker is connected. */
#define BACKLOG_WARN_RECORDS 1000
/* The oldest unacknowledged record waiting longer than this is a warning: a connected link
 * acknowledges records within seconds, so something holds them back (consumer, ACL, throughput). */
#define OLDEST_WARN_S 600

static const char *str(const cJSON *o, const char *k) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

        return cJSON_IsString(v) ? v->valuestring : "";
}

static double num(const cJSON *o, const char *k) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

        return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static bool is_true(const cJSON *o, const char *k) {
        return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

/* The fix for a broker link's last error, by what the link module said (agent/link/link.c). */
static const char *broker_fix(const char *err) {
        if (strstr(err, "failed verification") || strstr(err, "not trusted"))
                return "make mqtt.tls.ca_file the CA that signed the broker's certificate, and list the "
                       "broker "
                       "by a name its certificate has";
        if (strstr(err, "names another host") || strstr(err, "does not name"))
                return "list the broker by a name (or IP address) its certificate has (mqtt.host)";
        if (strstr(err, "client certificate"))
                return "install a certificate the broker's CA signed for this node (mqtt.tls.cert_file), "
                       "valid now";
        if (strstr(err, "refused the connection"))
                return "check the broker's ACL and this node's identity (the certificate's CN)";
        return "start the broker, or check mqtt.host / mqtt.port, DNS and the firewall from this host";
}

static void check_broker(struct doctor *d, const cJSON *status) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(status, "broker");
        const char *state = str(b, "state"), *err = str(b, "last_error");

        if (!strcmp(state, "connected"))
                doctor_add(d, DOCTOR_PASS, "broker", NULL, "connected to %s (MQTT %s, %s, %.0f connects)",
                           str(b, "current")[0] ? str(b, "current") : str(b, "host"),
                           num(b, "mqtt_version") == 5 ? "5" : "3.1.1", is_true(b, "tls") ? "TLS" : "no TLS",
                           num(b, "connects"));
        else
                doctor_add(d, DOCTOR_FAIL, "broker", broker_fix(err), "%s:%.0f %s: %s", str(b, "host"),
                           num(b, "port"), state[0] ? state : "unknown",
                           err[0] ? err : "no attempt has failed yet (still connecting)");
}

static void check_conformance(struct doctor *d, const cJSON *status) {
        const cJSON *slots = cJSON_GetObjectItemCaseSensitive(status, "slots"), *s;
        size_t n = 0, bad = 0;

        cJSON_ArrayForEach(s, slots) {
                n++;
                if (!cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(s, "conformant")))
                        continue;
                bad++;
                doctor_add(
                        d, DOCTOR_FAIL, "conformance",
                        "give the slot what its scale promises (CPU, memory, GPU share, cgroup limits), or "
                        "give it a smaller scale",
                        "slot %s (scale %s) does not meet its scale: %s", str(s, "id"), str(s, "scale"),
                        str(s, "nonconformant"));
        }
        if (!bad)
                doctor_add(d, DOCTOR_PASS, "conformance", NULL, "%zu slot(s), none below its scale", n);
}

static void check_spool(struct doctor *d, const cJSON *status) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(status, "metering");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(m, "spool");
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(status, "broker");
        double pending = num(sp, "pending"), used = num(sp, "used"), max = num(sp, "max_bytes");
        double oldest = num(sp, "oldest_pending_age_s");
        char figures[300];

        if (!m) {
                doctor_add(d, DOCTOR_FAIL, "spool", "see the agent's log (journalctl -u render-agent)",
                           "metering is not running");
                return;
        }
        snprintf(figures, sizeof(figures), "%.0f record(s) unacknowledged, %.1f of %.0f MiB used", pending,
                 used / 1048576, max / 1048576);
        if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(sp, "oldest_pending_age_s")))
                snprintf(figures + strlen(figures), sizeof(figures) - strlen(figures),
                         ", the oldest made %.0f s ago (%s)", oldest, str(sp, "oldest_pending_ts"));
        if (str(m, "refusing_sessions")[0] || is_true(sp, "full") || num(m, "lost") > 0)
                doctor_add(
                        d, DOCTOR_FAIL, "spool",
                        "free room under state_dir or raise metering.spool_max_mb; get records acknowledged "
                        "(broker check)",
                        "%s; %s%s%s", figures,
                        str(m, "refusing_sessions")[0] ? "new sessions refused: " : "",
                        str(m, "refusing_sessions"),
                        num(m, "lost") > 0 ? "; records were lost (see the log)" : "");
        else if (is_true(m, "no_consumer"))
                doctor_add(d, DOCTOR_WARN, "spool",
                           "subscribe the metering consumer to the node's metering topic",
                           "%s; no consumer receives the records since %s", figures,
                           str(m, "no_consumer_since"));
        else if (pending > 0 && strcmp(str(b, "state"), "connected") != 0)
                doctor_add(d, DOCTOR_WARN, "spool",
                           "the backlog leaves once the broker link is up (see the broker check)",
                           "backlog: %s, and the broker link is down", figures);
        else if (oldest > OLDEST_WARN_S)
                doctor_add(d, DOCTOR_WARN, "spool",
                           "find what holds the acknowledgements back: the broker's ACL for the metering "
                           "topic, the consumer's subscription and throughput (status.metering's "
                           "last_error)",
                           "backlog: %s: over %d min unacknowledged", figures, OLDEST_WARN_S / 60);
        else if (pending > BACKLOG_WARN_RECORDS)
                doctor_add(d, DOCTOR_WARN, "spool", "check the broker's and the consumer's throughput",
                           "backlog: %s", figures);
        else
                doctor_add(d, DOCTOR_PASS, "spool", NULL, "%s%s%s", figures,
                           str(m, "last_error")[0] ? "; last alarm: " : "", str(m, "last_error"));
}

/* A step this recent is worth a look: the records open then carry clock_step true. */
#define STEP_RECENT_S 3600

static void check_clock_steps(struct doctor *d, const cJSON *status) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(status, "metering"), "clock_steps");
        double ago = num(st, "last_s_ago");

        if (!cJSON_IsObject(st))
                return;
        if (!str(st, "last")[0])
                doctor_add(d, DOCTOR_PASS, "clock_steps", NULL,
                           "no wall-clock step since the agent started");
        else if (ago < STEP_RECENT_S)
                doctor_add(
                        d, DOCTOR_WARN, "clock_steps",
                        "find what sets the clock: one step at boot while NTP first synchronises is normal, "
                        "repeated ones are not (chronyc tracking; journalctl -u chrony -u "
                        "systemd-timesyncd)",
                        "the wall clock stepped %.0f s ago (%s; %.0f forward, %.0f back since the agent "
                        "started): the billing records open then carry clock_step true",
                        ago, str(st, "last"), num(st, "forward"), num(st, "back"));
        else
                doctor_add(d, DOCTOR_PASS, "clock_steps", NULL,
                           "the last wall-clock step was %.0f s ago (%s; %.0f forward, %.0f back since the "
                           "agent "
                           "started)",
                           ago, str(st, "last"), num(st, "forward"), num(st, "back"));
}

/* Each slot's GPU as the agent's last sample saw it (the spec reply's slots[].gpu). */
static void check_gpus(struct doctor *d, const cJSON *spec) {
        const char *fix =
                "check the driver (nvidia-smi; dmesg for Xid errors) and gpu.nvml_library, or correct "
                "slots[].gpu";
        const cJSON *s;

        cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(spec, "slots")) {
                const cJSON *g = cJSON_GetObjectItemCaseSensitive(s, "gpu");

                if (!cJSON_IsObject(g))
                        continue;
                if (str(g, "error")[0])
                        doctor_add(d, DOCTOR_FAIL, "gpu", fix, "slot %s: GPU %.0f: %s", str(s, "id"),
                                   num(g, "index"), str(g, "error"));
                else if (!is_true(g, "shared") && !cJSON_GetObjectItemCaseSensitive(g, "util_pct") &&
                         !cJSON_GetObjectItemCaseSensitive(g, "vram_used_bytes"))
                        doctor_add(d, DOCTOR_FAIL, "gpu", fix,
                                   "slot %s: GPU %.0f answered none of its metrics in the agent's last "
                                   "sample (lost "
                                   "from the bus, or the driver hangs)",
                                   str(s, "id"), num(g, "index"));
                else
                        doctor_add(d, DOCTOR_PASS, "gpu", NULL, "slot %s: GPU %.0f answers", str(s, "id"),
                                   num(g, "index"));
        }
}

void doctor_agent(struct doctor *d, const cJSON *status, const cJSON *spec) {
        check_broker(d, status);
        check_conformance(d, status);
        check_spool(d, status);
        check_clock_steps(d, status);
        check_gpus(d, spec);
}
/* One TCP connect with a deadline: 0, or -errno. */
static int tcp_reach(const char *host, unsigned port, int timeout_ms) {
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
        char service[16];
        int r = -EHOSTUNREACH;

        snprintf(service, sizeof(service), "%u", port);
        if (getaddrinfo(host, service, &hints, &res) != 0)
                return -ENXIO;
        for (struct addrinfo *a = res; a; a = a->ai_next) {
                _cleanup_close_ int fd =
                        socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                struct pollfd p = { .fd = fd, .events = POLLOUT };
                int err = 0;
                socklen_t len = sizeof(err);

                if (fd < 0)
                        continue;
                if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
                        r = -errno;
                        continue;
                }
                if (poll(&p, 1, timeout_ms) <= 0) {
                        r = -ETIMEDOUT;
                        continue;
                }
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
                        r = -(err ? err : errno);
                        continue;
                }
                r = 0;
                break;
        }
        freeaddrinfo(res);
        return r;
}

void doctor_broker_reach(struct doctor *d, const struct cfg *c, int timeout_ms) {
        for (size_t i = 0; i < c->mqtt.n_brokers; i++) {
                const struct cfg_broker *b = &c->mqtt.brokers[i];
                int r = tcp_reach(b->host, b->port, timeout_ms);

                if (r < 0)
                        doctor_add(d, DOCTOR_FAIL, "broker", broker_fix(""),
                                   "%s:%u does not answer on TCP: %s", b->host, b->port,
                                   r == -ENXIO ? "the name does not resolve" : strerror(-r));
                else
                        doctor_add(d, DOCTOR_PASS, "broker", NULL,
                                   "%s:%u answers on TCP (the TLS handshake is the agent's to report: start "
                                   "it)",
                                   b->host, b->port);
        }
}
