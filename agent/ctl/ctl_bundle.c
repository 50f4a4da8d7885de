/* ctl_bundle.c: `render-agentctl bundle`: one tar.gz for a support ticket; never a key, never a secret. */
#include "base64.h"
#include "cleanup.h"
#include "clock.h"
#include "ctl_cmds.h"
#include "ctl_conn.h"
#include "spool.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BUNDLE_CMD_TIMEOUT_MS 20000
#define BUNDLE_CMD_MAX_OUT (8 * 1024 * 1024)
#define BUNDLE_DEFAULT_STATE_DIR "/var/lib/render-agent"

/* The bundle being made: a directory of files, listed in the manifest. */
struct bundle {
        char dir[PATH_MAX]; /* <tmp>/<name> */
        char tmp[PATH_MAX]; /* the mkdtemp directory */
        char name[128];     /* render-agent-bundle-<node>-<time> */
        cJSON *manifest, *files, *skipped;
};

static void skip(struct bundle *b, const char *file, const char *why) {
        cJSON *o = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "file", file);
        cJSON_AddStringToObject(o, "why", why);
        cJSON_AddItemToArray(b->skipped, o);
        fprintf(stderr, "render-agentctl: bundle: %s left out: %s\n", file, why);
}

/* Whether text holds a PEM private key or a secret: then it never goes in. */
static bool has_key_material(const char *s, size_t len) {
        return memmem(s, len, "PRIVATE KEY-----", 16) != NULL;
}

/* Writes one file of the bundle and lists it in the manifest. */
static void put(struct bundle *b, const char *file, const char *what, const char *data, size_t len) {
        char path[PATH_MAX + 64];
        _cleanup_close_ int fd = -1;
        cJSON *o;

        if (has_key_material(data, len)) {
                skip(b, file, "it holds a PEM private key");
                return;
        }
        snprintf(path, sizeof(path), "%s/%s", b->dir, file);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
                skip(b, file, strerror(errno));
                return;
        }
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", file);
        cJSON_AddStringToObject(o, "what", what);
        cJSON_AddNumberToObject(o, "bytes", (double)len);
        cJSON_AddItemToArray(b->files, o);
}

static void put_json(struct bundle *b, const char *file, const char *what, const cJSON *j) {
        _cleanup_free_ char *s = cJSON_Print(j);

        if (!s) {
                skip(b, file, "out of memory");
                return;
        }
        put(b, file, what, s, strlen(s));
}

/* Runs argv with stdin closed, collecting stdout and stderr together (caller frees *ret_out);
 * killed after BUNDLE_CMD_TIMEOUT_MS. *ret_status: its exit status, or -1 when killed. */
static int run_capture(char *const argv[], char **ret_out, size_t *ret_len, int *ret_status) {
        _cleanup_free_ char *out = malloc(BUNDLE_CMD_MAX_OUT + 1);
        uint64_t deadline = plat_now_mono_usec() + BUNDLE_CMD_TIMEOUT_MS * 1000ULL;
        size_t len = 0;
        int p[2], status = 0;
        bool killed = false;
        pid_t pid;

        if (!out || pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0) {
                close(p[0]);
                close(p[1]);
                return -errno;
        }
        if (pid == 0) {
                int null = open("/dev/null", O_RDONLY);

                dup2(null, 0);
                dup2(p[1], 1);
                dup2(p[1], 2);
                execvp(argv[0], argv);
                dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
                _exit(127);
        }
        close(p[1]);
        for (;;) {
                struct pollfd pf = { .fd = p[0], .events = POLLIN };
                uint64_t now = plat_now_mono_usec();
                ssize_t k;
                char sink[4096];

                if (now >= deadline) {
                        kill(pid, SIGKILL);
                        killed = true;
                        break;
                }
                if (poll(&pf, 1, (int)((deadline - now) / 1000) + 1) <= 0)
                        continue;
                k = len < BUNDLE_CMD_MAX_OUT ? read(p[0], out + len, BUNDLE_CMD_MAX_OUT - len)
                                             : read(p[0], sink, sizeof(sink));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                if (len < BUNDLE_CMD_MAX_OUT)
                        len += (size_t)k;
        }
        close(p[0]);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        out[len] = '\0';
        *ret_status = killed || !WIFEXITED(status) ? -1 : WEXITSTATUS(status);
        *ret_len = len;
        *ret_out = TAKE_PTR(out);
        return 0;
}

/* A command's output as a bundle file, or why not. */
static void put_command(struct bundle *b, const char *file, const char *what, char *const argv[]) {
        _cleanup_free_ char *out = NULL;
        char why[160];
        size_t len;
        int status;
        int r = run_capture(argv, &out, &len, &status);

        if (r < 0) {
                snprintf(why, sizeof(why), "cannot run %s: %s", argv[0], strerror(-r));
                skip(b, file, why);
                return;
        }
        if (status == 127) {
                snprintf(why, sizeof(why), "%s is not installed", argv[0]);
                skip(b, file, why);
                return;
        }
        if (status != 0) {
                /* The output says why (an error is evidence too); the manifest says it failed. */
                snprintf(why, sizeof(why), "%s (%s)", what,
                         status < 0 ? "killed after 20 s" : "exited non-zero");
                put(b, file, why, out, len);
                return;
        }
        put(b, file, what, out, len);
}

/* Takes what could be a secret out of a config tree: members named like one, and any string
 * that holds PEM material. File names (key_file, ...) stay: they say where things are. */
static void scrub(cJSON *j) {
        static const char *const secret_words[] = { "password", "secret", "token", "passphrase", "psk" };
        cJSON *e, *next;

        for (e = j ? j->child : NULL; e; e = next) {
                bool secret = false;

                next = e->next;
                for (size_t i = 0; e->string && i < ELEMENTSOF(secret_words); i++)
                        secret |= strcasestr(e->string, secret_words[i]) != NULL;
                if (secret || (cJSON_IsString(e) && strstr(e->valuestring, "-----BEGIN"))) {
                        if (e->string)
                                cJSON_ReplaceItemInObjectCaseSensitive(j, e->string,
                                                                       cJSON_CreateString("(removed)"));
                        else
                                cJSON_ReplaceItemViaPointer(j, e, cJSON_CreateString("(removed)"));
                        continue;
                }
                scrub(e);
        }
}

static void put_config(struct bundle *b, const char *path, cJSON **ret_cfg) {
        _cleanup_free_ char *text = NULL;
        char why[PATH_MAX + 64];
        FILE *f = fopen(path, "re");
        size_t len = 0;
        cJSON *cfg;

        if (f) {
                text = malloc(1024 * 1024 + 1);
                len = text ? fread(text, 1, 1024 * 1024, f) : 0;
                fclose(f);
        }
        if (!text) {
                snprintf(why, sizeof(why), "cannot read %s: %s", path, strerror(errno));
                skip(b, "config.json", why);
                return;
        }
        text[len] = '\0';
        cfg = cJSON_Parse(text);
        if (!cfg) {
                snprintf(why, sizeof(why), "%s is not JSON: left out rather than risk a secret", path);
                skip(b, "config.json", why);
                return;
        }
        scrub(cfg);
        put_json(b, "config.json", "the agent's configuration, secrets removed (file names kept)", cfg);
        *ret_cfg = cfg;
}

/* One op's reply as a file (the socket's read policy applies: the bundle holds what the caller
 * may read). */
static void put_op(struct bundle *b, struct ctl_conn *c, const char *op, const char *what, cJSON **ret) {
        char file[64], why[300];
        cJSON *reply = NULL;
        int r = c->fd >= 0 ? ctl_conn_query(c, op, &reply) : -ENOTCONN;

        snprintf(file, sizeof(file), "%s.json", op);
        if (r < 0) {
                snprintf(why, sizeof(why), "the agent did not answer: %s", strerror(-r));
                skip(b, file, why);
                return;
        }
        put_json(b, file, what, reply);
        if (ret)
                *ret = reply;
        else
                cJSON_Delete(reply);
}

/* The members of a record's document that say what it is, not whom it bills. */
static void keep_header_members(cJSON *o, const cJSON *doc) {
        static const char *const keep[] = { "v", "type", "node", "seq", "prev", "ts" };
        const cJSON *m;

        for (size_t i = 0; i < ELEMENTSOF(keep); i++)
                if ((m = cJSON_GetObjectItemCaseSensitive(doc, keep[i])))
                        cJSON_AddItemToObject(o, keep[i], cJSON_Duplicate(m, false));
}

/* What a metering record says about itself, without its payload: the spool holds the record
 * documents (signed at publish); a JWS one gives its protected header too. */
static int record_header(uint64_t id, const void *p, size_t len, void *ud) {
        cJSON *arr = ud, *o = cJSON_CreateObject(), *doc = cJSON_ParseWithLength(p, len);
        const cJSON *prot = cJSON_GetObjectItemCaseSensitive(doc, "protected");
        const cJSON *payload = cJSON_GetObjectItemCaseSensitive(doc, "payload");

        cJSON_AddNumberToObject(o, "id", (double)id);
        cJSON_AddNumberToObject(o, "bytes", (double)len);
        if (cJSON_IsString(prot) && cJSON_IsString(payload)) {
                const cJSON *const parts[] = { prot, payload };

                for (int i = 0; i < 2; i++) {
                        size_t n = strlen(parts[i]->valuestring), dl = 0;
                        _cleanup_free_ uint8_t *dec = malloc(PLAT_B64URL_DECODED_MAX(n) + 1);
                        cJSON *d;

                        if (!dec || plat_b64url_decode(parts[i]->valuestring, n, dec,
                                                       PLAT_B64URL_DECODED_MAX(n) + 1, &dl) < 0)
                                continue;
                        d = cJSON_ParseWithLength((const char *)dec, dl);
                        if (i == 0 && d)
                                cJSON_AddItemToObject(o, "protected", cJSON_Duplicate(d, true));
                        else
                                keep_header_members(o, d);
                        cJSON_Delete(d);
                }
        } else if (cJSON_IsObject(doc)) {
                keep_header_members(o, doc);
        } else {
                cJSON_AddStringToObject(o, "note", "not a JSON record");
        }
        cJSON_Delete(doc);
        cJSON_AddItemToArray(arr, o);
        return 0;
}

static void put_spool(struct bundle *b, const cJSON *cfg, const cJSON *status, unsigned n_records) {
        const cJSON *sd = cJSON_GetObjectItemCaseSensitive(cfg, "state_dir");
        char path[PATH_MAX], why[PATH_MAX + 64];
        cJSON *o = cJSON_CreateObject(), *recs;
        _cleanup_close_ int fd = -1;
        int r;

        snprintf(path, sizeof(path), "%s/" SPOOL_DIR,
                 cJSON_IsString(sd) ? sd->valuestring : BUNDLE_DEFAULT_STATE_DIR);
        cJSON_AddStringToObject(o, "dir", path);
        cJSON_AddItemToObject(
                o, "stats",
                cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(
                                        cJSON_GetObjectItemCaseSensitive(status, "status"), "metering"),
                                true));
        recs = cJSON_AddArrayToObject(o, "last_records");
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        r = fd < 0 ? -errno : spool_peek_last(fd, n_records, record_header, recs);
        if (r < 0) {
                snprintf(why, sizeof(why), "cannot read %s: %s", path, strerror(-r));
                cJSON_AddStringToObject(o, "last_records_error", why);
        }
        put_json(b, "spool.json",
                 "the spool's figures (from status) and its newest records' headers: no payload", o);
        cJSON_Delete(o);
}

/* The render-agent next to this render-agentctl (they are installed together), else on PATH. */
static void agent_binary(char *buf, size_t len) {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        char *slash;

        snprintf(buf, len, "render-agent");
        if (n <= 0)
                return;
        self[n] = '\0';
        slash = strrchr(self, '/');
        if (!slash)
                return;
        *slash = '\0';
        snprintf(buf, len, "%s/render-agent", self);
        if (access(buf, X_OK) != 0)
                snprintf(buf, len, "render-agent");
}

static int make_tar(struct bundle *b, const char *out) {
        char *argv[] = { "tar", "-C", b->tmp, "-czf", (char *)out, b->name, NULL };
        _cleanup_free_ char *msg = NULL;
        size_t len;
        int status, r = run_capture(argv, &msg, &len, &status);

        if (r < 0 || status != 0) {
                fprintf(stderr, "render-agentctl: bundle: cannot write %s: %s\n", out,
                        r < 0 ? strerror(-r) : msg);
                return -EIO;
        }
        return 0;
}

static void remove_tree(struct bundle *b) {
        const cJSON *e;
        char path[PATH_MAX + 64];

        cJSON_ArrayForEach(e, b->files) {
                snprintf(path, sizeof(path), "%s/%s", b->dir,
                         cJSON_GetStringValue(cJSON_GetObjectItem(e, "file")));
                unlink(path);
        }
        snprintf(path, sizeof(path), "%s/manifest.json", b->dir);
        unlink(path);
        rmdir(b->dir);
        rmdir(b->tmp);
}

static void collect(struct bundle *b, const char *socket, const char *config, unsigned journal_lines,
                    unsigned n_records) {
        char agent[PATH_MAX], lines[16], version[64];
        cJSON *status = NULL, *cfg = NULL;
        struct ctl_conn c = { .fd = -1 };
        int r = ctl_conn_open(socket, &c);

        snprintf(version, sizeof(version), "render-agentctl %s\n", RA_VERSION);
        put(b, "version.txt", "render-agentctl's version (the agent's is in status.json)", version,
            strlen(version));
        if (r < 0)
                fprintf(stderr,
                        "render-agentctl: bundle: cannot talk to render-agent on %s: %s; the bundle "
                        "has what can be read without it\n",
                        socket, strerror(-r));
        put_op(b, &c, "status", "status: version, broker link, sampling, sessions, slots", &status);
        put_op(b, &c, "spec", "spec: the catalog, the host plan, each slot's usage against its scale", NULL);
        put_op(b, &c, "slots", "slots", NULL);
        put_op(b, &c, "sessions", "sessions", NULL);
        put_op(b, &c, "telemetry", "the last sample", NULL);
        put_op(b, &c, "events", "the agent's recent events", NULL);
        ctl_conn_close(&c);
        if (!config)
                config = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                        cJSON_GetObjectItemCaseSensitive(status, "status"), "config"));
        if (config)
                put_config(b, config, &cfg);
        else
                skip(b, "config.json",
                     "no config path: the agent did not answer and --config was not given");
        agent_binary(agent, sizeof(agent));
        {
                char *argv[] = { agent, "--probe", config ? "--config" : NULL, (char *)config, NULL };

                put_command(b, "probe.json", "render-agent --probe: one sample of this host", argv);
        }
        put_spool(b, cfg, status, n_records);
        snprintf(lines, sizeof(lines), "%u", journal_lines);
        {
                char *argv[] = { "journalctl", "--no-pager", "-o", "short-iso-precise", "-u", "render-agent",
                                 "-n",         lines,        NULL };

                put_command(b, "journal.txt", "the unit's journal, the last lines", argv);
        }
        skip(b, "doctor.json", "render-agentctl doctor is not in this build");
        cJSON_Delete(status);
        cJSON_Delete(cfg);
}

int ctl_bundle(const char *socket, int argc, char **argv) {
        static const struct option opts[] = {
                { "output", required_argument, NULL, 'o' },
                { "config", required_argument, NULL, 'c' },
                { "journal-lines", required_argument, NULL, 'J' },
                { "records", required_argument, NULL, 'R' },
                {},
        };
        struct bundle b = { 0 };
        const char *out = NULL, *config = NULL;
        char host[64] = "host", ts[32], out_buf[PATH_MAX], *end;
        unsigned journal_lines = 2000, n_records = 20;
        time_t now = time(NULL);
        struct tm tm;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "o:c:", opts, NULL)) >= 0) {
                unsigned long v = 0;

                if (c == 'J' || c == 'R') {
                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (errno || *end || v > 100000) {
                                fprintf(stderr,
                                        "render-agentctl: bundle: --%s takes 0..100000 (got \"%s\")\n",
                                        c == 'J' ? "journal-lines" : "records", optarg);
                                return CTL_EXIT_USAGE;
                        }
                }
                if (c == 'o')
                        out = optarg;
                else if (c == 'c')
                        config = optarg;
                else if (c == 'J')
                        journal_lines = (unsigned)v;
                else if (c == 'R')
                        n_records = (unsigned)v;
                else
                        goto usage;
        }
        if (optind < argc)
                goto usage;
        gethostname(host, sizeof(host) - 1);
        host[strcspn(host, "/ ")] = '\0';
        gmtime_r(&now, &tm);
        strftime(ts, sizeof(ts), "%Y%m%dT%H%M%SZ", &tm);
        snprintf(b.name, sizeof(b.name), "render-agent-bundle-%.40s-%s", host, ts);
        if (!out) {
                snprintf(out_buf, sizeof(out_buf), "%s.tar.gz", b.name);
                out = out_buf;
        }
        snprintf(b.tmp, sizeof(b.tmp), "%s/render-agent-bundle.XXXXXX", getenv("TMPDIR") ?: "/tmp");
        if (!mkdtemp(b.tmp)) {
                fprintf(stderr, "render-agentctl: bundle: cannot make a directory in %s: %s\n",
                        getenv("TMPDIR") ?: "/tmp", strerror(errno));
                return CTL_EXIT_AGENT_ERROR;
        }
        snprintf(b.dir, sizeof(b.dir), "%s/%s", b.tmp, b.name);
        if (mkdir(b.dir, 0700) < 0) {
                fprintf(stderr, "render-agentctl: bundle: cannot make %s: %s\n", b.dir, strerror(errno));
                rmdir(b.tmp);
                return CTL_EXIT_AGENT_ERROR;
        }
        b.manifest = cJSON_CreateObject();
        cJSON_AddNumberToObject(b.manifest, "bundle_version", 1);
        cJSON_AddStringToObject(b.manifest, "made",
                                plat_format_rfc3339_ms(plat_now_real_usec(), ts, sizeof(ts)));
        cJSON_AddStringToObject(b.manifest, "host", host);
        cJSON_AddStringToObject(b.manifest, "render_agentctl", RA_VERSION);
        cJSON_AddStringToObject(b.manifest, "policy",
                                "no private key, no secret, no record payload; user ids only where the "
                                "caller may read them (control.read)");
        b.files = cJSON_AddArrayToObject(b.manifest, "files");
        b.skipped = cJSON_AddArrayToObject(b.manifest, "left_out");
        collect(&b, socket, config, journal_lines, n_records);
        {
                _cleanup_free_ char *m = cJSON_Print(b.manifest);
                char path[PATH_MAX + 64];
                FILE *f;

                snprintf(path, sizeof(path), "%s/manifest.json", b.dir);
                f = fopen(path, "wxe");
                if (f) {
                        fputs(m ? m : "{}", f);
                        fclose(f);
                }
        }
        r = make_tar(&b, out);
        remove_tree(&b);
        cJSON_Delete(b.manifest);
        if (r < 0)
                return CTL_EXIT_AGENT_ERROR;
        printf("%s\n", out);
        return 0;
usage:
        fprintf(stderr, "Usage: render-agentctl bundle [-o FILE] [--config PATH] [--journal-lines N] "
                        "[--records N]\n");
        return CTL_EXIT_USAGE;
}
