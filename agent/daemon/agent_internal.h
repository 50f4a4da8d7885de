/* agent_internal.h: the daemon's state (struct agent) and the calls between the agent*.c files, one
 * file per concern: agent.c (lifecycle, events, link, sampling), agent_control.c, agent_status.c,
 * agent_hooks.c, agent_reload.c. Nothing else includes it. */
#pragma once

#include "agent.h"
#include "cmd.h"
#include "held.h"
#include "link.h"
#include "platform_class.h"
#include "sampler.h"
#include "selfstat.h"
#include "tele_agg.h"
#include "slot.h"
#include "telemetry.h"
#include "usage.h"
#include "watch.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

struct cfg;
struct cfg_problems;
struct diag;
struct evhist;
struct meter;
struct plat_peer;
struct sessions;
struct sessions_hooks;

#define TOPIC_MAX 256
#define EVENTS_PENDING_MAX 64
#define CMD_HELD_MAX 256
#define GPU_OPEN_TIMEOUT_USEC (5 * USEC_PER_SEC)

struct agent {
        sd_event *event;
        const char *config_path;
        const char *root;
        struct cfg *cfg;
        int root_fd;
        struct hal_platform platform;
        struct slot_table slots; /* each slot's runtime state, following a->cfg's slots by id */
        struct sampler sampler;  /* owns the GPU worker */
        struct usage usage;
        struct watch watch;
        char *pending_events[EVENTS_PENDING_MAX]; /* events made while offline, oldest first */
        size_t n_pending_events;
        uint64_t events_dropped;
        struct evhist *evhist; /* recent events for the control socket's "events" op */
        struct link *link;
        struct diag *diag;
        bool control_activated; /* the control socket came from systemd (socket activation) */
        struct sessions *sessions;
        uint64_t cert_not_after; /* the client certificate's end of validity (wall usec); 0 unknown */
        struct meter *meter;
        struct held held;              /* replies waiting for the group commit: socket and MQTT */
        struct held_dest mqtt_replies; /* MQTT command replies in it (at most CMD_HELD_MAX) */
        struct cmd_state cmd;          /* ids of commands carried out, log limits */
        sd_event_source *sample_timer;
        uint64_t next_sample_usec;
        struct tele_ticks ticks; /* the sampling tick's own duration */
        struct plat_self self;   /* the agent's own CPU/RSS, /proc/self/statm kept open */
        bool self_unreadable;    /* said once: the agent's own CPU/RSS cannot be read */
        uint64_t telemetry_seq, telemetry_published, telemetry_skipped; /* seq counts samples */
        struct tele_agg agg; /* the telemetry interval's samples */
        char *status_facts;  /* the online status last published, without its ts (owned) */
        uint64_t started_real_usec, started_mono_usec;
        enum link_state announced;
        char topic_status[TOPIC_MAX], topic_telemetry[TOPIC_MAX], topic_events[TOPIC_MAX];
        char topic_cmd[TOPIC_MAX], topic_cmd_reply[TOPIC_MAX], topic_metering[TOPIC_MAX];
};

/* agent_link.c: events, the MQTT link and what it says. */
void agent__on_event(const char *type, cJSON *fields, void *ud);
int agent__start_link(struct agent *a);
void agent__stop_link(struct agent *a, const char *reason);

/* agent_tick.c: the sampling tick (the sample timer's handler), the plan, the agent's own cost, the
 * GPUs. */
int agent__on_sample(sd_event_source *s, uint64_t usec, void *ud);
int agent__open_gpus(struct agent *a);
void agent__plan(struct agent *a);
void agent__self_cost(struct agent *a, struct tele_self *ret);

/* agent_control.c: ops from the socket and from MQTT commands, replies held until the commit. */
void agent__control_init(struct agent *a);
unsigned agent__on_admit(const struct plat_peer *peer, void *ud);
cJSON *agent__on_request(const char *op, const cJSON *req, const struct plat_peer *peer, void *ud,
                         bool *ret_held, const char **ret_code, char *msg, size_t msglen);
void agent__on_message(struct link *l, const char *topic, const void *payload, size_t len, bool retain,
                       const char *response_topic, const void *corr, size_t corr_len, void *ud);
void agent__on_committed(bool ok, const char *msg, void *ud);

/* agent_status.c: the status document, on the socket and the retained status topic. */
void agent__announce(struct agent *a, bool force);
void agent__publish_status(struct agent *a);
void agent__status_refresh(struct agent *a);
cJSON *agent__status_json(struct agent *a);

/* agent_hooks.c: the session service's hooks (userdata: the agent) and the meter. */
extern const struct sessions_hooks agent__session_hooks;
int agent__open_meter(struct agent *a, const struct cfg *c);

/* agent_reload.c */
void agent__log_problems(const struct cfg_problems *p);
void agent__reload(struct agent *a);
