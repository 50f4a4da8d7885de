/* fuzz_slots_state.c: libFuzzer target for slots_restore() on arbitrary state-file text. */
#include "slots.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const ids[] = { "s0", "s1", "s2", "s3" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct slots_config cfg = { .n_slots = 4, .slot_ids = ids, .state_dir_fd = -1 };
        struct slots_clock now = { .mono_usec = 1000000, .real_usec = UINT64_C(1700000000000000) };
        struct slots_event evs[SLOTS_MAX];
        char msg[SLOTS_MSG_MAX] = "";
        struct slots *s = NULL;
        struct slots_info a, b;
        char *buf;
        int r;

        /* An unterminated copy: ASan catches a parser that reads past size. */
        buf = malloc(size ? size : 1);
        if (!buf)
                return 0;
        memcpy(buf, data, size);
        slots_limits_default(&cfg.limits);
        if (slots_new(&cfg, &s, NULL, 0) < 0)
                abort();
        r = slots_restore(s, buf, size, now, msg, sizeof(msg));
        /* Contract: -EBADMSG with a message, or a state in which no user holds two slots. */
        if (r < 0 && (r != -EBADMSG || !msg[0]))
                abort();
        for (size_t i = 0; r == 0 && i < slots_count(s); i++) {
                slots_get(s, i, &a);
                if (a.state > SLOTS_BLOCKED || a.n_viewers > SLOTS_VIEWERS_MAX)
                        abort();
                for (size_t j = 0; *a.user && j < i; j++) {
                        slots_get(s, j, &b);
                        if (!strcmp(a.user, b.user))
                                abort();
                }
        }
        /* Whatever was restored, the machine goes on working on it. */
        if (slots_expire(s, now, evs, SLOTS_MAX) < 0)
                abort();
        (void)slots_reserve(s, "fuzz", NULL, NULL, now, NULL, NULL, 0);
        slots_free(s);
        free(buf);
        return 0;
}
