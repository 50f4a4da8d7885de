/* link_tls.h: what the TLS layer saw of a failed MQTT connection attempt, told in words. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mosquitto;

/* Gathered during one connection attempt; reset with link_tls_seen_reset at each dial. */
struct link_tls_seen {
        bool probed;        /* TCP counters were read while the connection was up */
        bool tls_done;      /* the handshake had completed (our side of it, with TLS 1.3) */
        uint64_t bytes_in;  /* bytes the broker sent */
        uint64_t bytes_out; /* bytes of ours the broker acknowledged */
        char verify[128];   /* OpenSSL's reason the broker's certificate failed verification */
};

/* The key of a broker that hangs up during or after the handshake, before CONNACK. With TLS 1.3
 * it rejects a client certificate after the client's side of the handshake is done, and what the
 * client sees varies from one attempt to the next (reset, EOF, the alert): one cause, one key. */
#define LINK_TLS_KEY_DROPPED "tls: dropped before CONNACK"

void link_tls_seen_reset(struct link_tls_seen *s);

/* Before libmosquitto reads from its socket: how many bytes went each way (TCP_INFO), and whether
 * the TLS handshake had completed. */
void link_tls_observe(struct link_tls_seen *s, struct mosquitto *m);

/* From libmosquitto's log callback on an error, while its TLS session still exists: the result
 * of verifying the broker's certificate. OpenSSL is libmosquitto's, not ours: its functions are
 * looked up in the process at run time; without them (libmosquitto built on another TLS library)
 * the reason is not known and OpenSSL's error line stands alone. */
void link_tls_observe_error(struct link_tls_seen *s, struct mosquitto *m);

/* Says why an attempt with TLS on failed before CONNACK, from what was seen and libmosquitto's
 * first error line (`detail`, may be ""): writes the reason and returns a key that is the same
 * for the same cause, or returns NULL when nothing more specific than the caller's own text is
 * known. */
const char *link_tls_explain(const struct link_tls_seen *s, const char *detail, const char *host,
                             unsigned port, char *reason, size_t reason_len);
