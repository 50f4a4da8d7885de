/* slots_store.c: the session state on disk: slots.state, two checksummed copies written in turn, one
 * fdatasync before every ack, and read back after a restart. */
#include "slots_internal.h"

#include "cleanup.h"
#include "crc32c.h"
#include "fileio.h"
#include "jsonnum.h"

#include <cjson/cJSON.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* ---- persistence ---- */

static bool add_num(cJSON *o, const char *k, uint64_t v) {
        return cJSON_AddNumberToObject(o, k, (double)v) != NULL;
}

static cJSON *slot_json(const struct slots_entry *sl) {
        cJSON *o = cJSON_CreateObject(), *vs;
        bool ok;

        if (!o)
                return NULL;
        ok = cJSON_AddStringToObject(o, "id", sl->id) &&
             cJSON_AddStringToObject(o, "state", slots__state_names[sl->state]);
        if (ok && sl->state != SLOTS_FREE && sl->state != SLOTS_BLOCKED)
                ok = cJSON_AddStringToObject(o, "user", sl->user) &&
                     cJSON_AddStringToObject(o, "session", sl->session) &&
                     cJSON_AddStringToObject(o, "client_ip", sl->client_ip);
        /* Optional: absent when the session has none (and in files of older agents). */
        if (ok && slots__holds_session(sl) && sl->project[0])
                ok = cJSON_AddStringToObject(o, "project", sl->project) != NULL;
        if (ok && slots__holds_session(sl) && sl->app[0])
                ok = cJSON_AddStringToObject(o, "app", sl->app) != NULL;
        if (ok && (sl->state == SLOTS_RESERVED || sl->state == SLOTS_GRACE))
                ok = add_num(o, "deadline", sl->deadline_real);
        if (ok && (sl->state == SLOTS_ACTIVE || sl->state == SLOTS_GRACE || sl->state == SLOTS_ENDING))
                ok = add_num(o, "started", sl->started_real);
        if (ok && sl->state == SLOTS_ENDING)
                ok = cJSON_AddStringToObject(o, "reason", sl->end_reason) != NULL;
        if (ok && sl->n_viewers > 0) {
                vs = cJSON_AddArrayToObject(o, "viewers");
                ok = vs != NULL;
                for (size_t i = 0; ok && i < sl->n_viewers; i++) {
                        cJSON *v = cJSON_CreateObject();

                        ok = v && cJSON_AddItemToArray(vs, v) &&
                             cJSON_AddStringToObject(v, "user", sl->viewers[i].user) &&
                             cJSON_AddStringToObject(v, "role", sl->viewers[i].role);
                }
        }
        if (!ok) {
                cJSON_Delete(o);
                return NULL;
        }
        return o;
}

/* The members of slots_set_extra, and whether each is an array (else an object). */
static const char *const extra_names[SLOTS_EXTRAS] = { "journal", "counters", "open_minutes" };
static const bool extra_is_array[SLOTS_EXTRAS] = { true, false, false };

/* The state as one line of JSON (what slots_restore reads); NULL when out of memory. Caller frees. */
static char *state_json(const struct slots *s) {
        char *text = NULL;
        cJSON *root, *arr;
        bool ok;

        root = cJSON_CreateObject();
        ok = root && cJSON_AddNumberToObject(root, "v", 1) &&
             cJSON_AddBoolToObject(root, "draining", s->draining) &&
             (arr = cJSON_AddArrayToObject(root, "slots"));
        for (size_t i = 0; ok && i < s->n; i++) {
                cJSON *o = slot_json(&s->slot[i]);

                ok = o && cJSON_AddItemToArray(arr, o);
                if (o && !ok)
                        cJSON_Delete(o);
        }
        /* Copied in as they are: the journal's bytes are the records' own (their hash chain). */
        for (size_t k = 0; ok && k < SLOTS_EXTRAS; k++)
                if (s->extra[k])
                        ok = cJSON_AddRawToObject(root, extra_names[k], s->extra[k]) != NULL;
        if (ok)
                text = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        return text;
}

/* ---- slots.state: the region framing ---- */

static uint32_t get32(const uint8_t *p) {
        uint32_t v;

        memcpy(&v, p, sizeof(v));
        return le32toh(v);
}

static void set32(uint8_t *p, uint32_t v) {
        v = htole32(v);
        memcpy(p, &v, sizeof(v));
}

/* The CRC of a header (its version, generation and length as stored) and the payload after it. */
static uint32_t frame_crc(const uint8_t *hdr, const void *payload, size_t len) {
        return plat_crc32c(plat_crc32c(0, hdr + 4, 16), payload, len);
}

void slots__frame_header(uint8_t hdr[SLOTS__HDR_BYTES], uint64_t gen, const void *payload, size_t len) {
        uint64_t g = htole64(gen);

        set32(hdr, SLOTS__MAGIC);
        set32(hdr + 4, SLOTS__VERSION);
        memcpy(hdr + 8, &g, sizeof(g));
        set32(hdr + 16, (uint32_t)len);
        set32(hdr + 20, frame_crc(hdr, payload, len));
}

/* Checks the region of `avail` bytes at p (NULL when avail is 0): NULL and *ret filled when it is
 * valid, else what is wrong with it. */
static const char *frame_fault(const uint8_t *p, size_t avail, struct slots__frame *ret) {
        static const uint8_t zero[SLOTS__HDR_BYTES];
        uint64_t gen;
        uint32_t len;

        if (avail < SLOTS__HDR_BYTES)
                return avail ? "cut short" : "missing";
        if (get32(p) != SLOTS__MAGIC)
                return memcmp(p, zero, sizeof(zero)) ? "no magic" : "never written";
        if (get32(p + 4) != SLOTS__VERSION)
                return "of another version";
        memcpy(&gen, p + 8, sizeof(gen));
        gen = le64toh(gen);
        len = get32(p + 16);
        if (gen == 0 || len > SLOTS_STATE_MAX_BYTES)
                return "a bad header";
        if (len > avail - SLOTS__HDR_BYTES)
                return "cut short";
        if (frame_crc(p, p + SLOTS__HDR_BYTES, len) != get32(p + 20))
                return "a bad CRC (a torn write)";
        ret->gen = gen;
        ret->payload = (const char *)p + SLOTS__HDR_BYTES;
        ret->len = len;
        return NULL;
}

int slots__frame_pick(const void *image, size_t len, struct slots__frame *ret, char *msg, size_t msg_len) {
        struct slots__frame f[2] = { { .region = 0 }, { .region = 1 } };
        const char *fault[2];
        size_t best = 2;

        for (size_t k = 0; k < 2; k++) {
                size_t off = k * SLOTS__REGION_BYTES, avail = len > off ? len - off : 0;

                if (avail > SLOTS__REGION_BYTES)
                        avail = SLOTS__REGION_BYTES;
                fault[k] = frame_fault(avail ? (const uint8_t *)image + off : NULL, avail, &f[k]);
                if (!fault[k] && (best == 2 || f[k].gen > f[best].gen))
                        best = k;
        }
        if (best == 2)
                return FAIL(-EBADMSG, "no valid copy: region 0 %s, region 1 %s", fault[0], fault[1]);
        *ret = f[best];
        return 0;
}

/* ---- slots.state: the writes ---- */

/* Writes all of iov at off, going on after a short write. */
static int pwritev_all(int fd, struct iovec *iov, int n_iov, off_t off) {
        while (n_iov > 0) {
                ssize_t n = pwritev(fd, iov, n_iov, off);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -EIO;
                off += n;
                for (; n_iov > 0 && (size_t)n >= iov->iov_len; iov++, n_iov--)
                        n -= (ssize_t)iov->iov_len;
                if (n_iov > 0) {
                        iov->iov_base = (char *)iov->iov_base + n;
                        iov->iov_len -= (size_t)n;
                }
        }
        return 0;
}

/* In place: the file has its full size and every block written since its creation, so fdatasync
 * flushes these data blocks and no metadata (no journal commit): one device flush. */
static int write_region(int fd, size_t k, uint8_t *hdr, char *payload, size_t len) {
        static const uint8_t zero[SLOTS__HDR_BYTES];
        struct iovec iov[2] = { { .iov_base = hdr, .iov_len = SLOTS__HDR_BYTES },
                                { .iov_base = payload, .iov_len = len } };
        off_t off = (off_t)(k * SLOTS__REGION_BYTES);
        ssize_t ignored;
        int r;

        r = pwritev_all(fd, iov, 2, off);
        if (r >= 0 && fdatasync(fd) < 0)
                r = -errno;
        if (r >= 0)
                return 0;
        /* The page cache may now hold a valid copy of a change the caller undoes, which an agent
         * restarted before the next write would take for the newest state: spoil its header. The
         * other region still holds the state before, whatever reached the disk. */
        ignored = pwrite(fd, zero, sizeof(zero), off);
        (void)ignored;
        return r;
}

/* The file as a whole, atomically (temporary file, fsync, rename, fsync of the directory): a crash
 * leaves no file or a complete one, never one with neither region valid. Every block is written
 * (zeros, not a sparse hole or fallocate's unwritten extents) so that no later write in place
 * allocates or converts anything: later fdatasyncs carry no metadata. */
static int create_file(struct slots *s, size_t k, const uint8_t *hdr, const char *payload, size_t len) {
        _cleanup_free_ uint8_t *image = calloc(1, SLOTS__FILE_BYTES);
        uint8_t *region;

        if (!image)
                return -ENOMEM;
        region = image + k * SLOTS__REGION_BYTES;
        memcpy(region, hdr, SLOTS__HDR_BYTES);
        memcpy(region + SLOTS__HDR_BYTES, payload, len);
        return plat_write_atomic_at(s->dir_fd, SLOTS_STATE_FILE, image, SLOTS__FILE_BYTES, 0600);
}

int slots__persist(struct slots *s) {
        _cleanup_free_ char *text = NULL;
        _cleanup_close_ int fd = -1;
        uint8_t hdr[SLOTS__HDR_BYTES];
        uint64_t gen = s->store_gen + 1;
        size_t k = s->store_next, len;
        int r;

        if (s->dir_fd < 0)
                return 0;
        text = state_json(s);
        if (!text)
                return -ENOMEM;
        len = strlen(text);
        if (len > SLOTS_STATE_MAX_BYTES)
                return -EFBIG;
        slots__frame_header(hdr, gen, text, len);
        /* Opened for each write, not kept open: a file removed or replaced meanwhile is noticed
         * (and made again), never written through a stale descriptor. The open costs microseconds,
         * the flush a hundred. */
        fd = openat(s->dir_fd, SLOTS_STATE_FILE, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
        if (fd >= 0)
                r = write_region(fd, k, hdr, text, len);
        else if (errno == ENOENT)
                r = create_file(s, k, hdr, text, len);
        else
                r = -errno;
        if (r < 0)
                return r;
        s->store_gen = gen;
        s->store_next = 1 - k;
        return 0;
}

/* ---- restore ---- */

static bool get_time(const cJSON *o, const char *k, uint64_t *ret) {
        return jsonnum_whole(cJSON_GetObjectItemCaseSensitive(o, k), ret);
}

static const char *get_str(const cJSON *o, const char *k) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

        return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A wall-clock deadline as a mono one; a deadline further away than `span` (the clock went back
 * while we were down) is cut to span, so that no slot stays booked for ever. */
static void restore_deadline(struct slots_entry *sl, struct slots_clock now, uint64_t span) {
        uint64_t left = sl->deadline_real > now.real_usec ? sl->deadline_real - now.real_usec : 0;

        if (left > span) {
                left = span;
                sl->deadline_real = now.real_usec + span;
        }
        sl->deadline_mono = now.mono_usec + left;
}

#define BAD(...)                                       \
        do {                                           \
                slots__say(msg, msg_len, __VA_ARGS__); \
                r = -EBADMSG;                          \
                goto out;                              \
        } while (0)

static int parse_slot(const cJSON *o, size_t k, struct slots_entry *sl, char *msg, size_t msg_len) {
        const char *st = get_str(o, "state"), *user, *session, *ip, *reason, *project, *app;
        const cJSON *vs, *v;
        int r = 0;

        sl->state = SLOTS_BLOCKED + 1;
        for (size_t j = 0; st && j < ELEMENTSOF(slots__state_names); j++)
                if (!strcmp(st, slots__state_names[j]))
                        sl->state = (enum slots_state)j;
        if (sl->state > SLOTS_BLOCKED)
                BAD("slots[%zu].state: want one of free, reserved, active, grace, ending, blocked", k);
        if (sl->state == SLOTS_FREE || sl->state == SLOTS_BLOCKED)
                goto out;
        user = get_str(o, "user");
        session = get_str(o, "session");
        ip = get_str(o, "client_ip");
        if (!slots__valid_user(user))
                BAD("slots[%zu].user: missing or not a valid user id", k);
        if (!slots__valid_session(session))
                BAD("slots[%zu].session: missing or not %d hex digits", k, SLOTS_SESSION_LEN);
        if (ip && *ip && !slots__valid_ip(ip))
                BAD("slots[%zu].client_ip: not an IP address", k);
        project = get_str(o, "project");
        app = get_str(o, "app");
        if (cJSON_GetObjectItemCaseSensitive(o, "project") && !slots_valid_project(project))
                BAD("slots[%zu].project: not a valid project (1..%d of [A-Za-z0-9._@:-])", k,
                    SLOTS_PROJECT_MAX);
        if (cJSON_GetObjectItemCaseSensitive(o, "app") && !slots_valid_project(app))
                BAD("slots[%zu].app: not a valid app (1..%d of [A-Za-z0-9._@:-])", k, SLOTS_APP_MAX);
        slots__copy(sl->project, sizeof(sl->project), project);
        slots__copy(sl->app, sizeof(sl->app), app);
        slots__copy(sl->user, sizeof(sl->user), user);
        slots__copy(sl->session, sizeof(sl->session), session);
        slots__copy(sl->client_ip, sizeof(sl->client_ip), ip);
        if ((sl->state == SLOTS_RESERVED || sl->state == SLOTS_GRACE) &&
            !get_time(o, "deadline", &sl->deadline_real))
                BAD("slots[%zu].deadline: missing or not a time in microseconds", k);
        if (sl->state != SLOTS_RESERVED && !get_time(o, "started", &sl->started_real))
                BAD("slots[%zu].started: missing or not a time in microseconds", k);
        if (sl->state == SLOTS_ENDING) {
                reason = get_str(o, "reason");
                if (!slots__valid_token(reason))
                        BAD("slots[%zu].reason: missing or not a reason token", k);
                slots__copy(sl->end_reason, sizeof(sl->end_reason), reason);
        }
        vs = cJSON_GetObjectItemCaseSensitive(o, "viewers");
        if (!vs)
                goto out;
        if (!cJSON_IsArray(vs) || cJSON_GetArraySize(vs) > SLOTS_VIEWERS_MAX)
                BAD("slots[%zu].viewers: not an array of at most %d viewers", k, SLOTS_VIEWERS_MAX);
        if (cJSON_GetArraySize(vs) > 0 && sl->state != SLOTS_ACTIVE && sl->state != SLOTS_GRACE)
                BAD("slots[%zu].viewers: a %s slot has no viewers", k, slots__state_names[sl->state]);
        cJSON_ArrayForEach(v, vs) {
                const char *vu = get_str(v, "user"), *role = get_str(v, "role");

                if (!slots__valid_user(vu) || !slots__valid_token(role) || !strcmp(vu, sl->user))
                        BAD("slots[%zu].viewers[%zu]: want a user id other than the host's and a role", k,
                            sl->n_viewers);
                for (size_t j = 0; j < sl->n_viewers; j++)
                        if (!strcmp(sl->viewers[j].user, vu))
                                BAD("slots[%zu].viewers[%zu]: viewer listed twice", k, sl->n_viewers);
                slots__copy(sl->viewers[sl->n_viewers].user, sizeof(sl->viewers[0].user), vu);
                slots__copy(sl->viewers[sl->n_viewers].role, sizeof(sl->viewers[0].role), role);
                sl->n_viewers++;
        }
out:
        return r;
}

int slots_restore(struct slots *s, const char *buf, size_t len, struct slots_clock now, char *msg,
                  size_t msg_len) {
        _cleanup_free_ struct slots_entry *tmp = NULL;
        _cleanup_free_ bool *seen = NULL;
        char *extra[SLOTS_EXTRAS] = { NULL };
        const cJSON *v, *arr, *o, *dr;
        cJSON *root = NULL;
        size_t k = 0;
        int r = 0;

        if (len > SLOTS_STATE_MAX_BYTES)
                return FAIL(-EBADMSG, "%zu bytes, more than the %d a state file may hold", len,
                            SLOTS_STATE_MAX_BYTES);
        tmp = calloc(s->n, sizeof(*tmp));
        seen = calloc(s->n, sizeof(*seen));
        if (!tmp || !seen)
                return -ENOMEM;
        for (size_t i = 0; i < s->n; i++)
                slots__copy(tmp[i].id, sizeof(tmp[i].id), s->slot[i].id);
        if (len == 0)
                BAD("empty file");
        root = cJSON_ParseWithLength(buf, len);
        if (!root)
                BAD("not JSON (truncated or corrupt)");
        if (!cJSON_IsObject(root))
                BAD("not a JSON object");
        v = cJSON_GetObjectItemCaseSensitive(root, "v");
        if (!cJSON_IsNumber(v) || v->valuedouble != 1)
                BAD("\"v\": missing or not 1 (a state file of another version)");
        dr = cJSON_GetObjectItemCaseSensitive(root, "draining");
        if (dr && !cJSON_IsBool(dr))
                BAD("\"draining\": not true or false");
        for (size_t x = 0; x < SLOTS_EXTRAS; x++) {
                const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, extra_names[x]);

                if (m && (extra_is_array[x] ? !cJSON_IsArray(m) : !cJSON_IsObject(m)))
                        BAD("\"%s\": not an %s", extra_names[x], extra_is_array[x] ? "array" : "object");
                if (m && !(extra[x] = cJSON_PrintUnformatted(m))) {
                        r = -ENOMEM;
                        goto out;
                }
        }
        arr = cJSON_GetObjectItemCaseSensitive(root, "slots");
        if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) > SLOTS_MAX)
                BAD("\"slots\": missing or not an array of at most %d slots", SLOTS_MAX);
        cJSON_ArrayForEach(o, arr) {
                struct slots_entry one;
                const char *id;
                int i = -1;

                if (!cJSON_IsObject(o))
                        BAD("slots[%zu]: not an object", k);
                id = get_str(o, "id");
                if (!slots__valid_slot_id(id))
                        BAD("slots[%zu].id: missing or not 1..%d bytes", k, SLOTS_ID_MAX);
                memset(&one, 0, sizeof(one));
                r = parse_slot(o, k, &one, msg, msg_len);
                if (r < 0)
                        goto out;
                for (size_t j = 0; j < s->n; j++)
                        if (!strcmp(tmp[j].id, id))
                                i = (int)j;
                /* A slot the config no longer has can hold nobody here: dropped. */
                if (i >= 0) {
                        if (seen[i])
                                BAD("slots[%zu].id: slot \"%s\" listed twice", k, id);
                        seen[i] = true;
                        slots__copy(one.id, sizeof(one.id), id);
                        tmp[i] = one;
                }
                k++;
        }
        for (size_t i = 0; i < s->n; i++)
                for (size_t j = 0; j < i; j++)
                        if (slots__holds_session(&tmp[i]) && slots__holds_session(&tmp[j]) &&
                            (!strcmp(tmp[i].user, tmp[j].user) || !strcmp(tmp[i].session, tmp[j].session)))
                                BAD("slots %s and %s hold the same user or session", tmp[j].id, tmp[i].id);
        for (size_t i = 0; i < s->n; i++) {
                struct slots_entry *sl = &tmp[i];
                uint64_t ago;

                if (sl->state == SLOTS_RESERVED) {
                        if (sl->deadline_real <= now.real_usec) {
                                slots__clear_session(sl);
                                continue;
                        }
                        restore_deadline(sl, now, s->lim.lock_ttl_usec);
                } else if (sl->state == SLOTS_GRACE) {
                        restore_deadline(sl, now, s->lim.grace_usec);
                }
                if (sl->state == SLOTS_ACTIVE || sl->state == SLOTS_GRACE || sl->state == SLOTS_ENDING) {
                        /* Started ago: a start in the future (the clock went back) counts as now. */
                        ago = sl->started_real < now.real_usec ? now.real_usec - sl->started_real : 0;
                        sl->started_mono = now.mono_usec - ago; /* may wrap: compared by difference */
                        /* Nobody could heartbeat while the agent was down. */
                        sl->last_hb_mono = sl->last_input_mono = now.mono_usec;
                }
        }
        memcpy(s->slot, tmp, s->n * sizeof(*tmp));
        s->draining = cJSON_IsTrue(dr);
        for (size_t x = 0; x < SLOTS_EXTRAS; x++) {
                free(s->extra[x]);
                s->extra[x] = TAKE_PTR(extra[x]);
        }
out:
        for (size_t x = 0; x < SLOTS_EXTRAS; x++)
                free(extra[x]);
        cJSON_Delete(root);
        return r;
}

/* The state in the len bytes at buf: slots.state's newest copy, or (legacy) the JSON of an older
 * agent's slots.json. */
static int restore_file(struct slots *s, bool legacy, const char *buf, size_t len, struct slots_clock now,
                        char *msg, size_t msg_len) {
        struct slots__frame fr;
        int r;

        if (legacy)
                return slots_restore(s, buf, len, now, msg, msg_len);
        r = slots__frame_pick(buf, len, &fr, msg, msg_len);
        if (r < 0)
                return r;
        /* Written after this copy from now on, even when its JSON turns out bad: what is written
         * next must outrank it. */
        s->store_gen = fr.gen;
        s->store_next = 1 - fr.region;
        return slots_restore(s, fr.payload, fr.len, now, msg, msg_len);
}

int slots_load(struct slots *s, struct slots_clock now, char *msg, size_t msg_len) {
        _cleanup_free_ char *buf = NULL;
        char why[SLOTS_MSG_MAX] = "", aside[64];
        const char *name = SLOTS_STATE_FILE;
        size_t len = 0, max = SLOTS__FILE_BYTES;
        bool legacy = false;
        int r, w;

        if (s->dir_fd < 0)
                return 0;
        r = plat_read_file_at(s->dir_fd, name, max, &buf, &len);
        if (r == -ENOENT) {
                /* An agent from before slots.state: its file is migrated once it has been read. */
                legacy = true;
                name = SLOTS__LEGACY_FILE;
                max = SLOTS_STATE_MAX_BYTES;
                r = plat_read_file_at(s->dir_fd, name, max, &buf, &len);
        }
        if (r == -ENOENT) {
                /* First start: every slot FREE, and the file exists from now on. */
                r = slots__persist(s);
                if (r < 0)
                        return FAIL(r, "%s/%s: cannot write: %s", s->state_dir, SLOTS_STATE_FILE,
                                    strerror(-r));
                return 0;
        }
        if (r == -EFBIG) {
                snprintf(why, sizeof(why), "more than %zu bytes", max);
                r = -EBADMSG;
        } else if (r < 0)
                snprintf(why, sizeof(why), "cannot read: %s", strerror(-r));
        else
                r = restore_file(s, legacy, buf, len, now, why, sizeof(why));
        if (r == -ENOMEM)
                return FAIL(r, "%s/%s: out of memory", s->state_dir, name);
        if (r >= 0) {
                /* Written back at once: an expired reservation freed here stays freed. */
                r = slots__persist(s);
                if (r < 0)
                        return FAIL(r, "%s/%s: cannot write: %s", s->state_dir, SLOTS_STATE_FILE,
                                    strerror(-r));
                /* slots.state is durable now and read first: a slots.json that could not be
                 * renamed is never read again, so a failure here changes nothing. */
                if (legacy)
                        (void)renameat(s->dir_fd, name, s->dir_fd, SLOTS__LEGACY_FILE ".migrated");
                return 0;
        }
        /* Who plays where is unknown: block every slot rather than free one by accident. */
        for (size_t i = 0; i < s->n; i++) {
                slots__clear_session(&s->slot[i]);
                s->slot[i].state = SLOTS_BLOCKED;
        }
        snprintf(aside, sizeof(aside), "%s.corrupt-%" PRIu64, name, now.real_usec / 1000000);
        if (renameat(s->dir_fd, name, s->dir_fd, aside) < 0) {
                w = -errno;
                /* Not written over: the file may be all there is to go by. */
                return FAIL(r,
                            "%s/%s: %s; every slot is blocked until an operator unblocks it (could not "
                            "keep the file aside: %s)",
                            s->state_dir, name, why, strerror(-w));
        }
        w = slots__persist(s);
        return FAIL(r,
                    "%s/%s: %s; kept aside as %s, every slot is blocked until an operator unblocks it%s%s",
                    s->state_dir, name, why, aside, w < 0 ? "; cannot write the new state: " : "",
                    w < 0 ? strerror(-w) : "");
}
