/* link_tls.c: what the TLS layer saw of a failed MQTT connection attempt, told in words. Without
 * it a plaintext port, an expired broker certificate and a refused client certificate all read
 * alike ("connection reset", "certificate verify failed"). */
#include "link_tls.h"

#include "strutil.h"

#include <dlfcn.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/tcp.h>

/* OpenSSL 1.1 and 3 share these signatures. */
static struct {
        bool looked_up;
        long (*get_verify_result)(const void *ssl);
        const char *(*verify_error_string)(long n);
        int (*is_init_finished)(const void *ssl);
} sym;

static void look_up(void) {
        if (sym.looked_up)
                return;
        sym.looked_up = true;
        *(void **)&sym.get_verify_result = dlsym(RTLD_DEFAULT, "SSL_get_verify_result");
        *(void **)&sym.verify_error_string = dlsym(RTLD_DEFAULT, "X509_verify_cert_error_string");
        *(void **)&sym.is_init_finished = dlsym(RTLD_DEFAULT, "SSL_is_init_finished");
}

void link_tls_seen_reset(struct link_tls_seen *s) {
        *s = (struct link_tls_seen){ 0 };
}

void link_tls_observe(struct link_tls_seen *s, struct mosquitto *m) {
        struct tcp_info ti;
        socklen_t len = sizeof(ti);
        int fd = mosquitto_socket(m);
        void *ssl = mosquitto_ssl_get(m);

        if (fd < 0)
                return;
        look_up();
        if (ssl && sym.is_init_finished && sym.is_init_finished(ssl))
                s->tls_done = true;
        memset(&ti, 0, sizeof(ti));
        /* Linux 4.1 has bytes_received; older kernels answer a shorter struct. */
        if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
            len >= offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received)) {
                s->probed = true;
                s->bytes_in = ti.tcpi_bytes_received;
                s->bytes_out = ti.tcpi_bytes_acked > 1 ? ti.tcpi_bytes_acked - 1 : 0; /* less the SYN */
        }
}

void link_tls_observe_error(struct link_tls_seen *s, struct mosquitto *m) {
        void *ssl = mosquitto_ssl_get(m);
        long v;

        look_up();
        if (!ssl || !sym.get_verify_result || !sym.verify_error_string || s->verify[0])
                return;
        v = sym.get_verify_result(ssl);
        if (v != 0) /* X509_V_OK */
                plat_strlcpy(s->verify, sym.verify_error_string(v), sizeof(s->verify));
}

/* Anything a TLS server says starts with a 5-byte record header; a FIN may count as one byte. */
#define TLS_RECORD_HEADER 5

static bool has(const char *s, const char *word) {
        return strcasestr(s, word) != NULL;
}

const char *link_tls_explain(const struct link_tls_seen *s, const char *detail, const char *host,
                             unsigned port, char *reason, size_t reason_len) {
        char quoted[300] = "";

        /* libmosquitto's own name check, after OpenSSL trusted the chain (OpenSSL's result then
         * says nothing useful): link.c names the host. */
        if (detail && has(detail, "host name verification failed"))
                return NULL;
        if (detail && detail[0])
                snprintf(quoted, sizeof(quoted), " (%s)", detail);
        if (s->verify[0]) {
                const char *hint = "";

                if (has(s->verify, "expired") || has(s->verify, "not yet valid"))
                        hint = ": check its validity dates, and this host's clock";
                else if (has(s->verify, "issuer") || has(s->verify, "self-signed") ||
                         has(s->verify, "self signed"))
                        hint = ": it is not signed by a CA in mqtt.tls.ca_file";
                else if (has(s->verify, "hostname") || has(s->verify, "host name"))
                        hint = ": it does not name the host the agent dials; list the broker by a name "
                               "(or IP address) its certificate has";
                snprintf(reason, reason_len, "the broker's certificate failed verification: %s%s%s",
                         s->verify, hint, quoted);
                return "tls: broker certificate failed verification";
        }
        /* An alert names the broker's reason; those about certificates are about ours (the
         * broker's own would have failed verification above). */
        if (detail && has(detail, "alert")) {
                if (has(detail, "certificate") || has(detail, "unknown ca")) {
                        snprintf(reason, reason_len,
                                 "the broker refused this node's client certificate (mqtt.tls.cert_file)%s",
                                 quoted);
                        return LINK_TLS_KEY_DROPPED;
                }
                snprintf(reason, reason_len, "the broker ended the TLS handshake with an alert%s", quoted);
                return "tls: handshake alert";
        }
        /* Our ClientHello reached the broker and not one byte came back before it hung up: a
         * listener that does not speak TLS (a plaintext MQTT port closes on what it cannot parse). */
        if (s->probed && s->bytes_out > 0 && s->bytes_in < TLS_RECORD_HEADER) {
                snprintf(
                        reason, reason_len,
                        "the broker closed the connection without answering the TLS handshake (not one byte "
                        "came back): is %s:%u a TLS listener? A plaintext MQTT port does this%s",
                        host, port, quoted);
                return "tls: no TLS answer";
        }
        return NULL;
}
