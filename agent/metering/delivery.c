/* delivery.c: whether a published metering record reached a consumer (the PUBACK's reason code),
 * and the backoff that offers records again, one at a time, while none does. */
#include "delivery.h"

#include "clock.h"

enum delivery_outcome delivery_outcome(int reason) {
        if (reason >= 0x80)
                return DELIVERY_REFUSED;
        if (reason == DELIVERY_NO_SUBSCRIBERS)
                return DELIVERY_NO_CONSUMER;
        /* 0 is the only other PUBACK reason below 0x80 (MQTT 5, 3.4.2.1). */
        return DELIVERY_RECEIVED;
}

uint64_t delivery_retry_usec(unsigned attempt, uint32_t rnd) {
        uint64_t d = DELIVERY_RETRY_CAP_USEC;

        if (attempt < 32 && (DELIVERY_RETRY_FIRST_USEC << attempt) < d)
                d = DELIVERY_RETRY_FIRST_USEC << attempt;
        return d / 2 + (uint64_t)((double)rnd / 4294967296.0 * (double)(d / 2));
}

bool delivery_no_consumer(struct delivery *d, uint64_t now_mono, uint64_t now_real, uint32_t rnd) {
        bool began = !d->no_consumer;

        if (began) {
                d->no_consumer = true;
                d->since_real_usec = now_real;
                d->attempt = 0;
                d->refused = 0;
                d->next_usec = 0;
        }
        d->refused++;
        if (now_mono >= d->next_usec) {
                d->next_usec = now_mono + delivery_retry_usec(d->attempt, rnd);
                if (d->attempt < 64)
                        d->attempt++;
        }
        return began;
}

bool delivery_received(struct delivery *d) {
        bool ended = d->no_consumer;

        *d = (struct delivery){ 0 };
        return ended;
}

unsigned delivery_window(const struct delivery *d, uint64_t now_mono, unsigned max) {
        if (!d->no_consumer)
                return max;
        if (now_mono < d->next_usec)
                return 0;
        return max ? 1 : 0;
}

void delivery_status_json(const struct delivery *d, uint64_t now_mono, cJSON *o) {
        char ts[40];

        cJSON_AddBoolToObject(o, "no_consumer", d->no_consumer);
        if (!d->no_consumer)
                return;
        cJSON_AddStringToObject(o, "no_consumer_since",
                                plat_format_rfc3339_ms(d->since_real_usec, ts, sizeof(ts)));
        cJSON_AddNumberToObject(o, "no_consumer_refused", (double)d->refused);
        cJSON_AddNumberToObject(o, "next_offer_s",
                                d->next_usec > now_mono ? (double)((d->next_usec - now_mono) / 1000) / 1e3
                                                        : 0.0);
}
