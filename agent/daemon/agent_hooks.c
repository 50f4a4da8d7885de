/* agent_hooks.c: what the session service and the meter tell the daemon, and the meter it opens. */
#include "agent_internal.h"

#include "log.h"
#include "meter.h"
#include "sessions.h"

static bool slot_admissible(void *ud, size_t i) {
        struct agent *a = ud;

        return i < a->slots.n && watch_slot_admissible(&a->watch, slot_at(&a->slots, i));
}

/* SIGHUP: the new file replaces the running config only when it is valid as a whole. */
static void on_transition(const struct slots_event *ev, void *ud) {
        meter_transition(((struct agent *)ud)->meter, ev);
}

static int on_journal(void *ud, char **ret_json) {
        return meter_journal(((struct agent *)ud)->meter, ret_json);
}

static int on_open_minutes(void *ud, char **ret_json) {
        return meter_open_minutes(((struct agent *)ud)->meter, ret_json);
}

static void on_write_journal(void *ud) {
        struct agent *a = ud;

        if (a->sessions)
                sessions_touch(a->sessions);
}

static void on_bytes(size_t slot, enum sessions_flow flow, const char *peer, uint64_t bytes, uint64_t from,
                     uint64_t to, void *ud) {
        (void)to; /* reports are handled as they arrive: "to" is now */
        if (flow == SESSIONS_FLOW_PUSH)
                meter_push_bytes(((struct agent *)ud)->meter, slot, peer, bytes, from);
        else
                meter_bytes(((struct agent *)ud)->meter, slot, flow, bytes, from);
}

static void on_push(size_t slot, const char *session, const char *target, bool started, void *ud) {
        meter_push(((struct agent *)ud)->meter, slot, session, target, started);
}

static const char *refuse_new(void *ud) {
        struct agent *a = ud;

        return a->meter ? meter_admission(a->meter) : "metering is not running (see the log)";
}

static void on_meter_alarm(const char *what, const char *msg, void *ud) {
        cJSON *f = cJSON_CreateObject();

        log_err("%s", msg);
        cJSON_AddStringToObject(f, "alarm", what);
        cJSON_AddStringToObject(f, "message", msg);
        agent__on_event("metering_alarm", f, ud);
}

/* The meter logged it already. */
static void on_meter_cleared(const char *what, const char *msg, void *ud) {
        cJSON *f = cJSON_CreateObject();

        cJSON_AddStringToObject(f, "alarm", what);
        cJSON_AddStringToObject(f, "message", msg);
        agent__on_event("metering_alarm_cleared", f, ud);
}

const struct sessions_hooks agent__session_hooks = {
        .event = agent__on_event,
        .transition = on_transition,
        .journal = on_journal,
        .open_minutes = on_open_minutes,
        .bytes = on_bytes,
        .push = on_push,
        .committed = agent__on_committed,
        .admissible = slot_admissible,
        .refuse_new = refuse_new,
};

int agent__open_meter(struct agent *a, const struct cfg *c) {
        struct meter_hooks h = { .alarm = on_meter_alarm,
                                 .cleared = on_meter_cleared,
                                 .write_journal = on_write_journal,
                                 .userdata = a };
        char why[METER_MSG_MAX];
        int r;

        r = meter_new(a->event, c, &a->slots, a->sessions ? sessions_slots(a->sessions) : NULL, &h,
                      &a->meter, why, sizeof(why));
        if (r < 0) {
                log_err("cannot start metering: %s", why);
                return r;
        }
        if (a->link)
                meter_set_link(a->meter, a->link, a->topic_metering);
        if (meter_refusal(a->meter))
                log_err("metering: %s; new sessions are refused", meter_refusal(a->meter));
        return 0;
}
