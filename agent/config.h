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
        char *cgroup; /* relative to the cgroup mount, NULL when not set */
        char *iface;  /* NULL when not set */
        int gpu;      /* GPU index, -1 when the slot has none */
};

struct cfg_mqtt {
        char *host;
        unsigned port;
        bool tls; /* false only when the file says "tls": false */
        char *ca_file;
        char *cert_file;
        char *key_file;
        unsigned keepalive_s;
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

struct cfg {
        char *path;
        char *node_id;
        char *node_region;
        unsigned sampling_interval_ms;
        struct cfg_mqtt mqtt;
        struct cfg_gpu gpu;
        struct cfg_events events;
        size_t n_scales;
        struct spec_scale *scales; /* the catalog: built-ins, overridden or extended by `scales` */
        char *state_dir;
        char *control_socket;
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

/* Slot by id (borrowed), or NULL. */
const struct cfg_slot *cfg_find_slot(const struct cfg *c, const char *id);

/* True when a and b connect to the broker as the same node the same way (node, mqtt, and the
 * same TLS files on disk: a rotated certificate makes them differ). */
bool cfg_link_equal(const struct cfg *a, const struct cfg *b);
