/* cmd.c: MQTT commands on .../cmd: which ops a central operator may send, and the reply to one payload. */
#include "cmd.h"

#include "cleanup.h"

#include <stdio.h>
#include <string.h>

static const char *const allowed[] = { "disconnect", "drain", "undrain", "status" };

bool cmd_allowed(const char *op) {
        for (size_t i = 0; i < ELEMENTSOF(allowed); i++)
                if (!strcmp(op, allowed[i]))
                        return true;
        return false;
}

/* The handler and its userdata, carried through diag_handle_line's one userdata pointer. */
struct filter {
        diag_handler_fn dispatch;
        void *userdata;
};

static cJSON *filter_op(const char *op, const cJSON *req, const struct plat_peer *peer, void *ud,
                        bool *ret_held, const char **ret_code, char *msg, size_t msglen) {
        const struct filter *f = ud;

        (void)peer; /* the broker authenticated the sender; there is no local peer */
        if (cmd_allowed(op))
                return f->dispatch(op, req, NULL, f->userdata, ret_held, ret_code, msg, msglen);
        *ret_code = "FORBIDDEN";
        snprintf(msg, msglen,
                 "op \"%.64s\" is not taken over MQTT (commands: disconnect, drain, undrain, status)", op);
        return NULL;
}

char *cmd_handle_payload(const void *payload, size_t len, diag_handler_fn dispatch, void *userdata,
                         bool *ret_held) {
        struct filter f = { dispatch, userdata };

        /* The line handler refuses anything over its limit as too long without reading it: a
         * payload past ours is cut to one byte more than that, never copied whole. */
        if (len > CMD_PAYLOAD_MAX)
                len = CMD_PAYLOAD_MAX + 1;
        return diag_handle_line(payload, len, NULL, filter_op, &f, ret_held);
}
