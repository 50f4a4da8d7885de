/* bench_spool.c: spool append rate with group commit at several batch sizes, fsyncs/s, the flush cost on a
 * preallocated segment against a growing one, and recovery cost. */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REC_MIN 400
#define REC_SPAN 200
#define RECOVERY_RECORDS 100000
#define FLUSH_SYNCS 2000
#define FLUSH_BATCH 2

static double now_s(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A JWS-like line of 400..599 bytes (the size of a signed metering record). */
static size_t record(uint64_t i, char *buf) {
        size_t len = REC_MIN + (size_t)(i * 37 % REC_SPAN);

        for (size_t k = 0; k < len; k++)
                buf[k] =
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[(i + k * 7) & 63];
        return len;
}

static void die(const char *what, int r, const char *msg) {
        fprintf(stderr, "bench_spool: %s: %s%s%s\n", what, strerror(-r), msg && *msg ? ": " : "",
                msg ? msg : "");
        exit(1);
}

static struct spool *open_spool(int fd, const char *path, struct spool_recovery *rec) {
        struct spool_options o = { .max_bytes = UINT64_C(1) << 30 };
        char msg[SPOOL_MSG_MAX] = "";
        struct spool *s = NULL;
        int r = spool_open(fd, path, &o, &s, rec, msg, sizeof(msg));

        if (r < 0)
                die("open", r, msg);
        return s;
}

/* A fresh state directory under parent. */
static int fresh_dir(const char *parent, const char *tag, char *path, size_t size) {
        int fd;

        snprintf(path, size, "%s/bench_spool.%s.XXXXXX", parent, tag);
        if (!mkdtemp(path))
                die("mkdtemp", -errno, path);
        fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                die("open", -errno, path);
        return fd;
}

static void remove_dir(const char *path) {
        char cmd[600];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
        if (system(cmd) != 0)
                fprintf(stderr, "bench_spool: could not remove %s\n", path);
}

/* Appends n records in batches of `batch`, one spool_sync per batch. */
static void append_rate(const char *parent, uint64_t batch, uint64_t n) {
        char path[512], buf[REC_MIN + REC_SPAN];
        int fd = fresh_dir(parent, "append", path, sizeof(path));
        struct spool *s = open_spool(fd, path, NULL);
        uint64_t bytes = 0, syncs = 0, id;
        double t0 = now_s(), dt;
        int r;

        for (uint64_t i = 0; i < n;) {
                for (uint64_t k = 0; k < batch && i < n; k++, i++) {
                        size_t len = record(i, buf);

                        r = spool_append(s, buf, len, &id);
                        if (r < 0)
                                die("append", r, NULL);
                        bytes += len + SPOOL_HDR_BYTES;
                }
                r = spool_sync(s);
                if (r < 0)
                        die("sync", r, NULL);
                syncs++;
        }
        dt = now_s() - t0;
        printf("batch %-6" PRIu64 " %8" PRIu64
               " records %10.0f records/s %7.1f MB/s %8.0f syncs/s %7.3f ms/sync\n",
               batch, n, (double)n / dt, (double)bytes / dt / 1e6, (double)syncs / dt,
               dt / (double)syncs * 1e3);
        spool_close(s);
        close(fd);
        remove_dir(path);
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;

        return x < y ? -1 : x > y;
}

static void print_ms(const char *what, double *t, size_t n) {
        double sum = 0;

        qsort(t, n, sizeof(*t), cmp_double);
        for (size_t i = 0; i < n; i++)
                sum += t[i];
        printf("  %-34s median %6.3f ms  p90 %6.3f ms  p99 %6.3f ms  mean %6.3f ms  max %6.3f ms\n", what,
               t[n / 2] * 1e3, t[n * 9 / 10] * 1e3, t[n * 99 / 100] * 1e3, sum / (double)n * 1e3,
               t[n - 1] * 1e3);
}

/* The time of spool_sync (one fdatasync) for batches of FLUSH_BATCH records: a preallocated segment
 * (appends overwrite zeros: data only) against one that grows with each append (the size and the
 * block allocation go to the journal too). The growing one is what an agent before preallocation
 * left: an empty segment file at open. The two alternate, sync by sync, so both see the same disk. */
static void flush_cost(const char *parent) {
        static double t[2][FLUSH_SYNCS];
        static const char *const what[2] = { "preallocated segment", "growing segment" };
        char path[2][512], seg[600], buf[REC_MIN + REC_SPAN];
        struct spool *s[2];
        int fd[2], r;
        uint64_t id;

        fd[0] = fresh_dir(parent, "prealloc", path[0], sizeof(path[0]));
        fd[1] = fresh_dir(parent, "grow", path[1], sizeof(path[1]));
        snprintf(seg, sizeof(seg), "%s/" SPOOL_DIR, path[1]);
        if (mkdir(seg, 0700) < 0)
                die("mkdir", -errno, seg);
        snprintf(seg, sizeof(seg), "%s/" SPOOL_DIR "/seg-%020d.log", path[1], 1);
        r = open(seg, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (r < 0)
                die("create", -errno, seg);
        close(r);
        for (int k = 0; k < 2; k++) {
                s[k] = open_spool(fd[k], path[k], NULL);
                /* The first sync also makes the segment's directory entry durable: not counted. */
                if ((r = spool_append(s[k], buf, record(0, buf), &id)) < 0 || (r = spool_sync(s[k])) < 0)
                        die("append", r, NULL);
        }
        for (int i = 0; i < FLUSH_SYNCS; i++)
                for (int k = 0; k < 2; k++) {
                        double t0;

                        for (int b = 0; b < FLUSH_BATCH; b++)
                                if ((r = spool_append(s[k], buf, record((uint64_t)i, buf), &id)) < 0)
                                        die("append", r, NULL);
                        t0 = now_s();
                        if ((r = spool_sync(s[k])) < 0)
                                die("sync", r, NULL);
                        t[k][i] = now_s() - t0;
                }
        printf("flush cost: %d syncs of %d records each, alternating, in %s\n", FLUSH_SYNCS, FLUSH_BATCH,
               parent);
        for (int k = 0; k < 2; k++) {
                print_ms(what[k], t[k], FLUSH_SYNCS);
                spool_close(s[k]);
                close(fd[k]);
                remove_dir(path[k]);
        }
}

/* What spool_prepare costs (a segment of zeros written and synced): off the append path when the
 * caller's timer calls it, inside the roll-over's append when nobody did. */
static void prepare_cost(const char *parent) {
        double t[5];

        for (int k = 0; k < 5; k++) {
                char path[512];
                int fd = fresh_dir(parent, "prepare", path, sizeof(path));
                struct spool *s = open_spool(fd, path, NULL);
                double t0 = now_s();
                int r = spool_prepare(s);

                if (r != 1)
                        die("prepare", r < 0 ? r : -EIO, NULL);
                t[k] = now_s() - t0;
                spool_close(s);
                close(fd);
                remove_dir(path);
        }
        print_ms("spool_prepare (4 MiB of zeros)", t, 5);
}

/* Drops the clean pages of every file in <path>/spool from the page cache. */
static void evict(const char *path) {
        char dir[600], file[900];
        struct dirent *de;
        DIR *d;

        snprintf(dir, sizeof(dir), "%s/" SPOOL_DIR, path);
        d = opendir(dir);
        if (!d)
                die("opendir", -errno, dir);
        while ((de = readdir(d))) {
                int f;

                snprintf(file, sizeof(file), "%s/%s", dir, de->d_name);
                f = open(file, O_RDONLY | O_CLOEXEC);
                if (f < 0)
                        continue;
                (void)fdatasync(f);
                (void)posix_fadvise(f, 0, 0, POSIX_FADV_DONTNEED);
                close(f);
        }
        closedir(d);
}

/* The cost of spool_open on a spool of RECOVERY_RECORDS unacked records (4 MiB segments). */
static void recovery_cost(const char *parent) {
        char path[512], buf[REC_MIN + REC_SPAN];
        int fd = fresh_dir(parent, "recover", path, sizeof(path));
        struct spool *s = open_spool(fd, path, NULL);
        struct spool_recovery rec;
        double best = 1e9, sum = 0;
        uint64_t id;
        int r;

        for (uint64_t i = 0; i < RECOVERY_RECORDS; i++) {
                r = spool_append(s, buf, record(i, buf), &id);
                if (r < 0)
                        die("append", r, NULL);
                if (i % 1000 == 999 && (r = spool_sync(s)) < 0)
                        die("sync", r, NULL);
        }
        if ((r = spool_sync(s)) < 0)
                die("sync", r, NULL);
        spool_close(s);
        /* Cold: this spool's pages dropped from the page cache (only its own: the machine is shared). */
        evict(path);
        {
                double t0 = now_s();

                s = open_spool(fd, path, &rec);
                printf("recovery of %d records in %" PRIu64 " segments (cold: read from disk): %.1f ms\n",
                       RECOVERY_RECORDS, rec.segments, (now_s() - t0) * 1e3);
                spool_close(s);
        }
        for (int k = 0; k < 5; k++) {
                double t0 = now_s(), dt;

                s = open_spool(fd, path, &rec);
                dt = now_s() - t0;
                if (rec.records != RECOVERY_RECORDS)
                        die("recovery", -EIO, "records missing");
                spool_close(s);
                sum += dt;
                if (dt < best)
                        best = dt;
        }
        printf("recovery of %d records in %" PRIu64
               " segments (page cache warm): best %.1f ms, mean %.1f ms "
               "(%.0f records/s)\n",
               RECOVERY_RECORDS, rec.segments, best * 1e3, sum / 5 * 1e3, RECOVERY_RECORDS / best);
        close(fd);
        remove_dir(path);
}

int main(int argc, char **argv) {
        const char *parent = argc > 1 ? argv[1] : "/var/tmp";
        /* The last: appends alone (one sync at the end), the CPU cost of an append. */
        static const uint64_t batches[] = { 1, 10, 50, 100, 1000, 100000 };

        if (argc > 2 || (argc > 1 && argv[1][0] != '/')) {
                fprintf(stderr, "usage: bench_spool [ABSOLUTE_DIR]   (default /var/tmp: a real disk)\n");
                return 2;
        }
        printf("spool append + group commit (fdatasync per batch), records of %d..%d bytes, in %s\n",
               REC_MIN, REC_MIN + REC_SPAN - 1, parent);
        for (size_t i = 0; i < sizeof(batches) / sizeof(batches[0]); i++) {
                /* Long enough to average over many syncs, short enough for a shared machine. */
                uint64_t n = batches[i] == 1 ? 2000 : batches[i] == 10 ? 20000 : 100000;

                append_rate(parent, batches[i], n);
        }
        flush_cost(parent);
        prepare_cost(parent);
        recovery_cost(parent);
        return 0;
}
