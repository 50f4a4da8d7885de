/* ratelimit.c: at most `burst` events per `interval`, counting the rest. */
#include "ratelimit.h"

bool plat_ratelimit_pass(struct plat_ratelimit *rl, uint64_t now, uint64_t *suppressed) {
        *suppressed = 0;
        if (rl->begin == 0 || now < rl->begin || now - rl->begin >= rl->interval_usec) {
                rl->begin = now ? now : 1;
                rl->n = 0;
        }
        if (rl->n >= rl->burst) {
                rl->suppressed++;
                return false;
        }
        rl->n++;
        *suppressed = rl->suppressed;
        rl->suppressed = 0;
        return true;
}
