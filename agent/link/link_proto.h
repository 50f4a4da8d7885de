/* link_proto.h: which MQTT version the link speaks to each broker (mqtt.protocol), and what an
 * attempt's end says about it. Pure decisions: link.c dials and logs. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>

struct link;

/* mqtt.protocol. The values of the explicit ones are MQTT's protocol levels. */
enum link_proto_mode {
        LINK_PROTO_AUTO = 0, /* MQTT 5, falling back to 3.1.1 when the broker does not take it */
        LINK_PROTO_V311 = 4,
        LINK_PROTO_V5 = 5,
};

#define LINK_PROTO_WHY_MAX 200

/* One broker's version: kept for the run (the life of the link), per broker. */
struct link_proto {
        enum link_proto_mode mode;
        int version;                  /* 5 or 4 (3.1.1): what the next attempt to this broker speaks */
        bool known;                   /* the broker answered this version with a CONNACK */
        bool probing;                 /* auto: this 3.1.1 attempt follows a dropped MQTT 5 CONNECT */
        bool ruled_out;               /* auto: 3.1.1 was dropped as 5 was: the drops are not the version's */
        char why[LINK_PROTO_WHY_MAX]; /* why this version, in words, for the log and status */
};

/* What the link does after an attempt. */
enum link_proto_verdict {
        LINK_PROTO_KEEP,        /* nothing to do with the version */
        LINK_PROTO_RETRY_V311,  /* dial the same broker again, with MQTT 3.1.1 */
        LINK_PROTO_NOT_VERSION, /* a 3.1.1 retry failed as MQTT 5 did: the cause is elsewhere */
};

void link_proto_init(struct link_proto *p, enum link_proto_mode mode);

/* A CONNACK came for `version`: accepted, or refused with MQTT reason `rc` (3.1.1 return code
 * or MQTT 5 reason code). A broker that answers a version speaks it. */
enum link_proto_verdict link_proto_connack(struct link_proto *p, int version, bool accepted, int rc);

/* The connection closed before any CONNACK. `transport_up`: TCP connected and, with TLS, the
 * handshake completed with no alert or other TLS-level cause known: only then can the CONNECT
 * itself be what the broker refused. */
enum link_proto_verdict link_proto_dropped(struct link_proto *p, bool transport_up);

/* "auto", "5", "3.1.1" (mqtt.protocol's spelling); -EINVAL for anything else. */
int link_proto_mode_from_string(const char *s, enum link_proto_mode *ret);
const char *link_proto_mode_to_string(enum link_proto_mode m);
/* "5" or "3.1.1". */
const char *link_proto_version_to_string(int version);

/* For status: {"host:port": {"mqtt": "5" | "3.1.1", "known": answered with a CONNACK, "why"}} for
 * every broker of l (an empty object for NULL); caller frees; NULL without memory. */
cJSON *link_proto_status_json(const struct link *l);
