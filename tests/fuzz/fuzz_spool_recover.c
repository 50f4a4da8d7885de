/* fuzz_spool_recover.c: libFuzzer target for spool recovery on arbitrary segment and cursor bytes. */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Input: flags byte; [cursor length byte, cursor bytes] if flags & 1; [first-name byte, second-name
 * byte, split u16 LE] if flags & 2 (two segments: the bytes after the header, cut at split); the
 * rest is the segment bytes. Names: seg-<first-name + 1>, seg-<first + second-name + 1>. */
#define F_CURSOR 1
#define F_TWO 2
#define MAX_IDS 4096

static char dir[64];
static int dir_fd = -1;

/* A bitwise CRC-32C, independent of the spool's table-driven one: the oracle. */
static uint32_t crc32c_ref(uint32_t crc, const uint8_t *p, size_t len) {
        crc = ~crc;
        while (len--) {
                crc ^= *p++;
                for (int k = 0; k < 8; k++)
                        crc = crc & 1 ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
        }
        return ~crc;
}

/* True when the input holds this record, header and payload, with a CRC that matches. */
static bool in_input(const uint8_t *seg, size_t seg_len, uint64_t id, const uint8_t *buf, size_t len) {
        uint8_t h[20] = { 0xf5, 0x52, 0x41, 0x31 };
        uint32_t crc;

        for (int i = 0; i < 4; i++)
                h[4 + i] = (uint8_t)(len >> (8 * i));
        for (int i = 0; i < 8; i++)
                h[8 + i] = (uint8_t)(id >> (8 * i));
        crc = crc32c_ref(crc32c_ref(0, h + 4, 12), buf, len);
        for (int i = 0; i < 4; i++)
                h[16 + i] = (uint8_t)(crc >> (8 * i));
        for (size_t off = 0; off + 20 + len <= seg_len; off++)
                if (!memcmp(seg + off, h, 20) && !memcmp(seg + off + 20, buf, len))
                        return true;
        return false;
}

static void put(const char *name, const uint8_t *buf, size_t len) {
        char path[128];
        int fd;

        snprintf(path, sizeof(path), "%s/spool/%s", dir, name);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || (len && write(fd, buf, len) != (ssize_t)len))
                abort();
        close(fd);
}

static void empty(const char *sub) {
        char path[128];
        struct dirent *de;
        DIR *d;

        snprintf(path, sizeof(path), "%s/%s", dir, sub);
        d = opendir(path);
        if (!d)
                return;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        (void)unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
}

/* Opens the spool and reads every record; returns how many ids it got (into ids), or -1 when the
 * open failed. Aborts on a broken promise. */
static int open_and_read(const uint8_t *seg, size_t seg_len, uint64_t *ids) {
        struct spool_recovery rec;
        struct spool *s = NULL;
        char msg[SPOOL_MSG_MAX] = "";
        void *buf;
        size_t len;
        uint64_t id;
        int n = 0, r;

        r = spool_open(dir_fd, dir, NULL, &s, &rec, msg, sizeof(msg));
        if (r < 0) {
                if (!msg[0] || s)
                        abort();
                return -1;
        }
        while ((r = spool_read_next(s, &buf, &len, &id)) == 0) {
                /* Never a record whose CRC does not match, never an id twice or going back. */
                if (len == 0 || len > SPOOL_RECORD_MAX || !in_input(seg, seg_len, id, buf, len) ||
                    (n > 0 && id <= ids[n - 1]) || id >= spool_next_id(s))
                        abort();
                free(buf);
                if (n < MAX_IDS)
                        ids[n++] = id;
        }
        if (r != -EAGAIN)
                abort();
        if (spool_last(s, &buf, &len, &id) == 0) {
                if (id >= spool_next_id(s))
                        abort();
                free(buf);
        }
        spool_close(s);
        return n;
}

/* At exit: leave no scratch tree behind. */
static void cleanup(void) {
        char path[128];

        empty("spool/quarantine");
        empty("spool");
        snprintf(path, sizeof(path), "%s/spool/quarantine", dir);
        (void)rmdir(path);
        snprintf(path, sizeof(path), "%s/spool", dir);
        (void)rmdir(path);
        (void)rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static uint64_t ids1[MAX_IDS], ids2[MAX_IDS];
        size_t pos = 1, split;
        uint64_t name1 = 1, name2 = 0;
        char name[SPOOL_NAME_MAX];
        uint8_t flags;
        int n1, n2;

        if (dir_fd < 0) {
                /* tmpfs where there is one: the spool fsyncs, and there it costs nothing. */
                snprintf(dir, sizeof(dir), "%s/fuzz_spool.XXXXXX",
                         access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
                if (!mkdtemp(dir))
                        abort();
                dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (dir_fd < 0 || mkdirat(dir_fd, "spool", 0700) < 0)
                        abort();
                atexit(cleanup);
        }
        if (size < 1)
                return 0;
        flags = data[0];
        empty("spool/quarantine");
        empty("spool");
        if (flags & F_CURSOR) {
                size_t n;

                if (pos >= size)
                        return 0;
                n = data[pos++] & 0x7f;
                if (n > size - pos)
                        n = size - pos;
                put("cursor", data + pos, n);
                pos += n;
        }
        split = size - pos;
        if (flags & F_TWO) {
                if (size - pos < 4)
                        return 0;
                name1 = (uint64_t)data[pos] + 1;
                name2 = name1 + data[pos + 1] + 1;
                split = (size_t)(data[pos + 2] | data[pos + 3] << 8);
                pos += 4;
                if (split > size - pos)
                        split = size - pos;
        }
        snprintf(name, sizeof(name), "seg-%020" PRIu64 ".log", name1);
        put(name, data + pos, split);
        if (name2) {
                snprintf(name, sizeof(name), "seg-%020" PRIu64 ".log", name2);
                put(name, data + pos + split, size - pos - split);
        }

        n1 = open_and_read(data + pos, size - pos, ids1);
        if (n1 < 0)
                return 0;
        /* Recovery is idempotent: a second start finds what the first left, the same records. */
        n2 = open_and_read(data + pos, size - pos, ids2);
        if (n2 != n1 || memcmp(ids1, ids2, (size_t)n1 * sizeof(*ids1)) != 0)
                abort();
        return 0;
}
