/* fuzz_slots_frame.c: libFuzzer target for slots__frame_pick(), the region framing of slots.state, and
 * slots_restore() on the copy it picks. */
#include "slots_internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const ids[] = { "s0", "s1", "s2", "s3" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct slots_config cfg = { .n_slots = 4, .slot_ids = ids, .state_dir_fd = -1 };
        struct slots_clock now = { .mono_usec = 1000000, .real_usec = UINT64_C(1700000000000000) };
        size_t half = size / 2, len = SLOTS__REGION_BYTES + (size - half);
        char msg[SLOTS_MSG_MAX] = "";
        struct slots__frame fr;
        struct slots *s = NULL;
        uint8_t *image;
        int r;

        /* Inputs are small and the regions large: the first half of the input opens region 0, the
         * second half is all of region 1 and ends the image, so ASan catches a read past its end. */
        image = calloc(1, len);
        if (!image)
                return 0;
        memcpy(image, data, half);
        memcpy(image + SLOTS__REGION_BYTES, data + half, size - half);
        r = slots__frame_pick(image, len, &fr, msg, sizeof(msg));
        /* Contract: -EBADMSG with a message, or a copy inside the image within the payload limit. */
        if (r < 0 && (r != -EBADMSG || !msg[0]))
                abort();
        if (r == 0 &&
            (fr.region > 1 || fr.gen == 0 || fr.len > SLOTS_STATE_MAX_BYTES ||
             (const uint8_t *)fr.payload < image || (const uint8_t *)fr.payload + fr.len > image + len))
                abort();
        if (r == 0) {
                slots_limits_default(&cfg.limits);
                if (slots_new(&cfg, &s, NULL, 0) < 0)
                        abort();
                r = slots_restore(s, fr.payload, fr.len, now, msg, sizeof(msg));
                if (r < 0 && r != -EBADMSG)
                        abort();
                slots_free(s);
        }
        free(image);
        return 0;
}
