/* config.h: the agent's JSON configuration: parsing, validation with precise messages, defaults. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spec.h"

#define CFG_DEFAULT_PATH "/etc/render-agent/agent.json"
#define CFG_MAX_BYTES (1024 * 1024)
#define CFG_MAX_SLOTS 64

struct cfg_slot {
        char *id;
        char *scale;
        char *cgroup;  /* relative to the cgroup mount, NULL when not set */
        char *iface;   /* NULL when not set */
        int gpu;       /* GPU index, -1 when the slot has none */
        char *project; /* the only project whose sessions the slot takes; NULL: any */
};

#define CFG_MAX_BROKERS 8

struct cfg_broker {
        char *host; /* name or address; an IPv6 address without its brackets */
        unsigned port;
};

struct cfg_mqtt {
        /* The brokers in the order they are tried: mqtt.brokers, or mqtt.host and mqtt.port as
         * the only one. Each owns its host. */
        size_t n_brokers;
        struct cfg_broker brokers[CFG_MAX_BROKERS];
        char *host;    /* borrowed: brokers[0].host, for what names one broker */
        unsigned port; /* brokers[0].port */
        bool tls;      /* false only when the file says "tls": false */
        char *ca_file;
        char *cert_file;
        char *key_file;
        unsigned keepalive_s;
        unsigned reconnect_window_ms; /* the first reconnect after a loss: drawn over it; default 5000 */
        int protocol;                 /* mqtt.protocol: an enum link_proto_mode (0 auto, 5, 4 = 3.1.1) */
        char *topic_prefix;
        uint64_t tls_stamp; /* folds the TLS files' inode, size and mtime: a rotation changes it */
};

#define CFG_MAX_GPUS 16

struct cfg_gpu {
        char *nvml_library;               /* NULL: the loader finds libnvidia-ml.so.1 */
        double fp32_tflops[CFG_MAX_GPUS]; /* per GPU index; 0 = use the built-in table */
};

struct cfg_events {
        unsigned bandwidth_over_s;    /* over the cap this long before bandwidth_over_cap */
        unsigned bandwidth_under_s;   /* back under this long before bandwidth_normal */
        unsigned memory_pressure_pct; /* slot memory at this share of its limit */
};

/* What happens to a session's processes when the agent ends it (evict, expiry, disconnect). */
enum cfg_enforcement {
        CFG_ENFORCE_NONE,        /* nothing: the streaming service ends the session itself */
        CFG_ENFORCE_CGROUP_KILL, /* write 1 to the slot cgroup's cgroup.kill */
        CFG_ENFORCE_EXEC,        /* run enforcement_exec with SLOT, USER_ID, SESSION, REASON */
};

#define CFG_EXEC_MAX_ARGS 16
/* sessions.max_flow_mbps at most: 100 Gbit/s, past any NIC a render host has. */
#define CFG_MAX_FLOW_MBPS 100000

struct cfg_sessions {
        unsigned lock_ttl_s;          /* RESERVED without start is freed after this */
        unsigned grace_s;             /* reconnect window, 40..3600 */
        unsigned max_session_s;       /* 0: no limit */
        unsigned heartbeat_timeout_s; /* 0: heartbeats not required */
        unsigned idle_s;              /* 0: no idle limit */
        unsigned viewers_max;
        unsigned max_flow_mbps; /* report_bytes: the fastest a counter may move; default 1000 */
        enum cfg_enforcement enforcement;
        char *exec_argv[CFG_EXEC_MAX_ARGS + 1]; /* NULL-terminated; exec only */
        unsigned enforcement_timeout_s;
};

/* Billing-grade records (docs/metering.md). */
struct cfg_metering {
        unsigned window_s;        /* concurrency window, divides an hour; default 3600 */
        unsigned late_s;          /* how long a minute waits for late byte reports; default 10 */
        unsigned spool_max_mb;    /* cap on the spool's bytes; default 256 */
        unsigned inflight;        /* records published and not yet acknowledged; default 64 */
        unsigned redeliver_per_s; /* records published a second at most; 0 no cap; default 50 */
        char *key_file;           /* the signing key; NULL: mqtt.tls.key_file */
        char *cert_file;          /* its certificate (kid); NULL: mqtt.tls.cert_file */
};

#define CFG_MAX_ALLOW 32
/* control.clients_per_user: the default, and at most the connections open to peers that may not
 * change sessions (64 less the 16 kept for those that may: agent/control/diag.h). */
#define CFG_CLIENTS_PER_USER_DEFAULT 8
#define CFG_CLIENTS_PER_USER_MAX 48

/* A list of users and groups on the control socket (control.allow: who may change sessions,
 * besides root and the agent's user; control.read: who may read user ids and client addresses).
 * Names resolved at load. */
struct cfg_allow {
        size_t n_uids, n_gids;
        uint32_t uids[CFG_MAX_ALLOW];
        uint32_t gids[CFG_MAX_ALLOW];
};

struct cfg {
        char *path;
        char *node_id;
        char *node_region;
        unsigned sampling_interval_ms;
        unsigned sampling_gauges_every; /* publish gauges every Nth sample; 0: never */
        unsigned telemetry_interval_ms; /* a multiple of sampling_interval_ms (cfg_telemetry_interval) */
        struct cfg_mqtt mqtt;
        struct cfg_gpu gpu;
        struct cfg_events events;
        size_t n_scales;
        struct spec_scale *scales; /* the catalog: built-ins, overridden or extended by `scales` */
        char *state_dir;
        char *control_socket;
        struct cfg_allow control_allow;
        struct cfg_allow control_read;     /* used only when control_read_set */
        bool control_read_set;             /* control.read given: reads of others are redacted (authz.h) */
        unsigned control_clients_per_user; /* connections at once per uid not in control.allow */
        struct cfg_sessions sessions;
        struct cfg_metering metering;
        size_t n_slots;
        struct cfg_slot *slots;
};

/* Every problem found, each a full line ready to print ("FILE: key: what is wrong"). */
struct cfg_problems {
        size_t n;
        char **msgs;
};

/* Loads and validates `path`. Returns 0 and *ret (caller frees with cfg_free), or a negative
 * errno: -EINVAL when the file has problems (all of them listed in *problems), -errno when
 * it cannot be read (also listed). Relative file names in the config resolve against the
 * config file's directory. */
int cfg_load(const char *path, struct cfg **ret, struct cfg_problems *problems);

/* As cfg_load, from a buffer that must be NUL-terminated at buf[len]; `path` names the
 * source in messages and anchors relative file names. */
int cfg_parse(const char *path, const char *buf, size_t len, struct cfg **ret,
              struct cfg_problems *problems);

void cfg_free(struct cfg *c);
void cfg_problems_done(struct cfg_problems *p);

/* telemetry.interval_ms (config_telemetry.c): when not given, the smallest multiple of
 * sampling.interval_ms that is at least CFG_TELEMETRY_DEFAULT_MS; a given one must be a multiple
 * of it and no shorter, else -EINVAL with why in msg. */
#define CFG_TELEMETRY_DEFAULT_MS 10000
#define CFG_TELEMETRY_MIN_MS 100
#define CFG_TELEMETRY_MAX_MS 3600000
int cfg_telemetry_interval(struct cfg *c, char *msg, size_t len);

/* Slot by id (borrowed), or NULL. */
const struct cfg_slot *cfg_find_slot(const struct cfg *c, const char *id);

/* True when a and b connect to the broker as the same node the same way (node, mqtt, and the
 * same TLS files on disk: a rotated certificate makes them differ). */
bool cfg_link_equal(const struct cfg *a, const struct cfg *b);
