/* startup_checks.c: file-system set-ups the agent refuses to run on, because another local user
 * could use them to capture the control socket, the state or the node's identity. The rules are
 * sshd's StrictModes, applied to the agent's own paths (docs/deploy.md, "Security model"). */
#include "startup_checks.h"

#include "config.h"
#include "strutil.h"
#include "unixsock.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* What another user could do with a directory it controls. */
struct chain {
        const char *key;    /* the config key: control.socket, state_dir */
        const char *target; /* the path the agent uses there */
        const char *harm;
};

static const char *user_name(uid_t uid, char *buf, size_t len) {
        struct passwd pw, *res = NULL;
        char tmp[1024];

        if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res)
                snprintf(buf, len, "%s, uid %u", res->pw_name, (unsigned)uid);
        else
                snprintf(buf, len, "uid %u", (unsigned)uid);
        return buf;
}

/* "/a/b" -> "/a"; "/a" -> "/"; false for "/". */
static bool strip_last(char *path) {
        char *slash = strrchr(path, '/');

        if (!slash || strcmp(path, "/") == 0)
                return false;
        if (slash == path)
                slash[1] = '\0';
        else
                *slash = '\0';
        return true;
}

static int judge(const struct chain *c, const char *path, const struct stat *st, bool holder, uid_t self,
                 char *msg, size_t msg_len) {
        const char *where = holder ? "" : " (above it)";
        char owner[300];

        if (!S_ISDIR(st->st_mode)) {
                snprintf(msg, msg_len, "%s: %s is not a directory", c->key, path);
                return -ENOTDIR;
        }
        if (st->st_uid != 0 && st->st_uid != self) {
                snprintf(msg, msg_len,
                         "%s: directory %s%s is owned by %s, not by root or the agent's user (uid %u): "
                         "that user could %s; refusing %s (chown it to root or to the agent's user)",
                         c->key, path, where, user_name(st->st_uid, owner, sizeof(owner)), (unsigned)self,
                         c->harm, c->target);
                return -EPERM;
        }
        /* Above the directory a sticky bit suffices (/tmp): others cannot rename what they do not
         * own. The directory itself must be closed: in a sticky one, another user could create the
         * names the agent uses while it is down. */
        if ((st->st_mode & (S_IWGRP | S_IWOTH)) && (holder || !(st->st_mode & S_ISVTX))) {
                snprintf(msg, msg_len,
                         "%s: directory %s%s is mode %04o, writable by %s%s: they could %s; refusing %s "
                         "(chmod go-w %s)",
                         c->key, path, where, (unsigned)(st->st_mode & 07777),
                         (st->st_mode & S_IWOTH) ? "every user" : "its group",
                         holder ? "" : " and not sticky", c->harm, c->target, path);
                return -EPERM;
        }
        return 0;
}

/* Judges `dir` (skipped while it does not exist: the agent makes it, its own and closed) and
 * every directory above it, symbolic links resolved. */
static int check_chain(const struct chain *c, const char *dir, uid_t self, char *msg, size_t msg_len) {
        char path[PATH_MAX], real[PATH_MAX];
        bool holder = true;

        if (plat_strlcpy(path, dir, sizeof(path)) >= sizeof(path)) {
                snprintf(msg, msg_len, "%s: %s: path too long", c->key, dir);
                return -ENAMETOOLONG;
        }
        while (!realpath(path, real)) {
                if (errno != ENOENT || !strip_last(path)) {
                        int r = -errno;

                        snprintf(msg, msg_len, "%s: cannot examine %s: %s", c->key, path, strerror(errno));
                        return r;
                }
                holder = false;
        }
        for (;;) {
                struct stat st;
                int r;

                if (stat(real, &st) < 0) {
                        r = -errno;
                        snprintf(msg, msg_len, "%s: cannot examine %s: %s", c->key, real, strerror(-r));
                        return r;
                }
                r = judge(c, real, &st, holder, self, msg, msg_len);
                if (r < 0)
                        return r;
                holder = false;
                if (!strip_last(real))
                        return 0;
        }
}

int startup_check_socket_dir(const char *socket_path, uid_t self, char *msg, size_t msg_len) {
        const struct chain c = { "control.socket", socket_path,
                                 "replace the control socket and answer render-agentctl (root's too) in "
                                 "the agent's place" };
        char dir[PATH_MAX];

        plat_strlcpy(dir, socket_path, sizeof(dir));
        if (!strip_last(dir))
                return 0;
        return check_chain(&c, dir, self, msg, msg_len);
}

int startup_check_state_dir(const char *dir, uid_t self, char *msg, size_t msg_len) {
        const struct chain c = { "state_dir", dir,
                                 "replace or remove slots.state and the spool (block every slot, lose "
                                 "metering records)" };

        return check_chain(&c, dir, self, msg, msg_len);
}

int startup_check_key_file(const char *key, const char *path, char *msg, size_t msg_len) {
        struct stat st;

        if (stat(path, &st) < 0) {
                int r = -errno;

                snprintf(msg, msg_len, "%s: cannot examine %s: %s", key, path, strerror(-r));
                return r;
        }
        if (st.st_mode & (S_IRWXG | S_IRWXO)) {
                snprintf(msg, msg_len,
                         "%s: %s is mode %04o, open to %s: a private key must be readable by its owner "
                         "only, as ssh requires of its keys (chmod 600 %s)",
                         key, path, (unsigned)(st.st_mode & 07777),
                         (st.st_mode & S_IRWXO) ? "every user" : "its group", path);
                return -EPERM;
        }
        return 0;
}

int startup_check_socket_free(const char *socket_path, char *msg, size_t msg_len) {
        struct plat_peer peer;
        char owner[300];
        int r = plat_unix_probe(socket_path, &peer);

        if (r == 0)
                return 0;
        if (r < 0) {
                snprintf(msg, msg_len,
                         "control.socket: cannot tell whether a process listens on %s (%s); refusing to "
                         "replace it",
                         socket_path, strerror(-r));
                return r;
        }
        snprintf(msg, msg_len,
                 "control.socket: %s is a live socket: %s %d (%s) listens on it; refusing to take it "
                 "over (stop that process, or choose another control.socket)",
                 socket_path, peer.pid > 0 ? "process" : "a process with a full backlog, pid", (int)peer.pid,
                 user_name(peer.uid, owner, sizeof(owner)));
        return -EADDRINUSE;
}

/* Counts a refusal and reports it. */
static size_t refused(int r, const char *msg, startup_report_fn report, void *userdata) {
        if (r >= 0)
                return 0;
        report(msg, userdata);
        return 1;
}

size_t startup_check(const struct cfg *c, unsigned flags, uid_t self, startup_report_fn report,
                     void *userdata) {
        char msg[STARTUP_MSG_MAX];
        size_t n = 0;

        if ((flags & STARTUP_SOCKET_DIR) && c->control_socket)
                n += refused(startup_check_socket_dir(c->control_socket, self, msg, sizeof(msg)), msg,
                             report, userdata);
        if ((flags & STARTUP_SOCKET_FREE) && c->control_socket)
                n += refused(startup_check_socket_free(c->control_socket, msg, sizeof(msg)), msg, report,
                             userdata);
        if (!(flags & STARTUP_FILES))
                return n;
        if (c->state_dir)
                n += refused(startup_check_state_dir(c->state_dir, self, msg, sizeof(msg)), msg, report,
                             userdata);
        if (c->mqtt.tls && c->mqtt.key_file)
                n += refused(startup_check_key_file("mqtt.tls.key_file", c->mqtt.key_file, msg, sizeof(msg)),
                             msg, report, userdata);
        if (c->metering.key_file)
                n += refused(
                        startup_check_key_file("metering.key_file", c->metering.key_file, msg, sizeof(msg)),
                        msg, report, userdata);
        return n;
}
