/* link_proto.c: which MQTT version the link speaks to each broker, and why (link_proto.h).
 * RabbitMQ 3.10's MQTT plugin answers an MQTT 5 CONNECT by closing the connection ("unparseable
 * payload"), with no CONNACK to say so: a drop is the only sign, and one a refused client
 * certificate can also give. So a drop is tried once with 3.1.1, and a 3.1.1 drop as well says
 * the version was not the cause. */
#include "link_proto.h"

#include "link.h"
#include "strutil.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <mqtt_protocol.h>
#include <stdio.h>
#include <string.h>

void link_proto_init(struct link_proto *p, enum link_proto_mode mode) {
        *p = (struct link_proto){ .mode = mode, .version = mode == LINK_PROTO_V311 ? 4 : 5 };
        if (mode == LINK_PROTO_AUTO)
                plat_strlcpy(p->why, "mqtt.protocol \"auto\": MQTT 5 first", sizeof(p->why));
        else
                snprintf(p->why, sizeof(p->why), "mqtt.protocol \"%s\"", link_proto_mode_to_string(mode));
}

enum link_proto_verdict link_proto_connack(struct link_proto *p, int version, bool accepted, int rc) {
        /* 1 is 3.1.1's "unacceptable protocol version", which a 3.1.1-only broker answers to
         * MQTT 5; an MQTT 5 broker may say 132 (unsupported protocol version). */
        bool version_refused = !accepted && (rc == 1 || rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION);

        p->probing = p->ruled_out = false;
        if (version_refused && version == 5 && p->mode == LINK_PROTO_AUTO && !p->known) {
                p->version = 4;
                snprintf(p->why, sizeof(p->why),
                         "mqtt.protocol \"auto\": the broker refused MQTT 5 (CONNACK code %d, unsupported "
                         "protocol version)",
                         rc);
                return LINK_PROTO_RETRY_V311;
        }
        if (version_refused)
                return LINK_PROTO_KEEP;
        if (p->mode == LINK_PROTO_AUTO && !p->known && version == 5)
                plat_strlcpy(p->why, "mqtt.protocol \"auto\": the broker answered MQTT 5", sizeof(p->why));
        p->known = true;
        return LINK_PROTO_KEEP;
}

enum link_proto_verdict link_proto_dropped(struct link_proto *p, bool transport_up) {
        if (p->mode != LINK_PROTO_AUTO || p->known || !transport_up)
                return LINK_PROTO_KEEP;
        if (p->probing) {
                /* 3.1.1 fared no better: back to 5, and the cause is for the caller to find. The
                 * next MQTT 5 drop probes again (a broker mid-restart drops both alike), quietly. */
                p->probing = false;
                p->ruled_out = true;
                p->version = 5;
                plat_strlcpy(
                        p->why,
                        "mqtt.protocol \"auto\": MQTT 5 first (3.1.1 was dropped as MQTT 5 was: not the "
                        "version)",
                        sizeof(p->why));
                return LINK_PROTO_NOT_VERSION;
        }
        if (p->version != 5)
                return LINK_PROTO_KEEP;
        p->probing = true;
        p->version = 4;
        plat_strlcpy(p->why,
                     "mqtt.protocol \"auto\": the broker closed the connection after an MQTT 5 CONNECT "
                     "without a CONNACK (as 3.1.1-only brokers such as RabbitMQ 3.10 do)",
                     sizeof(p->why));
        return LINK_PROTO_RETRY_V311;
}

int link_proto_mode_from_string(const char *s, enum link_proto_mode *ret) {
        static const enum link_proto_mode modes[] = { LINK_PROTO_AUTO, LINK_PROTO_V5, LINK_PROTO_V311 };

        for (size_t i = 0; s && i < sizeof(modes) / sizeof(modes[0]); i++)
                if (strcmp(s, link_proto_mode_to_string(modes[i])) == 0) {
                        *ret = modes[i];
                        return 0;
                }
        return -EINVAL;
}

const char *link_proto_mode_to_string(enum link_proto_mode m) {
        switch (m) {
        case LINK_PROTO_AUTO:
                return "auto";
        case LINK_PROTO_V5:
                return "5";
        case LINK_PROTO_V311:
                return "3.1.1";
        }
        return "?";
}

const char *link_proto_version_to_string(int version) {
        return version == 5 ? "5" : "3.1.1";
}

cJSON *link_proto_status_json(const struct link *l) {
        cJSON *o = cJSON_CreateObject(), *b;
        const struct link_proto *p;
        const char *name = NULL;

        for (size_t i = 0; o && (p = link_broker_proto(l, i, &name)); i++) {
                b = cJSON_AddObjectToObject(o, name);
                cJSON_AddStringToObject(b, "mqtt", link_proto_version_to_string(p->version));
                cJSON_AddBoolToObject(b, "known", p->known);
                cJSON_AddStringToObject(b, "why", p->why);
        }
        return o;
}
