/* doctor_cgroup.c: the doctor's check of one slot's cgroup: present, cgroup.kill writable, and
 * delegated to the agent (systemd's Delegate=yes), read relative to the cgroup mount's fd. */
#include "doctor.h"

#include "cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define DELEGATE_FIX                                                                          \
        "give the slot's unit or slice Delegate=yes (systemd then marks the cgroup with the " \
        "trusted.delegate xattr and gives a non-root User= its cgroup.procs and "             \
        "cgroup.subtree_control), or chown those two files to the agent's user"

/* systemd (v251 and later) marks a cgroup it delegated with trusted.delegate, and with
 * user.delegate, which an unprivileged doctor can read too. */
static const char *delegate_mark(int dir_fd) {
        char v[16];

        if (fgetxattr(dir_fd, "trusted.delegate", v, sizeof(v)) >= 0)
                return "trusted.delegate";
        if (fgetxattr(dir_fd, "user.delegate", v, sizeof(v)) >= 0)
                return "user.delegate";
        return NULL;
}

/* Whether uid owns `file` in dir_fd with write permission: how systemd delegates a cgroup to a
 * non-root user. Otherwise why not, in why. */
static bool owned_writable(int dir_fd, const char *file, unsigned uid, char *why, size_t len) {
        struct stat st;

        if (fstatat(dir_fd, file, &st, 0) < 0) {
                snprintf(why, len, "%s: %s", file, strerror(errno));
                return false;
        }
        if (st.st_uid != uid || !(st.st_mode & S_IWUSR)) {
                snprintf(why, len, "%s belongs to uid %u, mode %04o", file, (unsigned)st.st_uid,
                         (unsigned)(st.st_mode & 07777));
                return false;
        }
        return true;
}

void doctor_cgroup(struct doctor *d, int root_fd, const char *root_path, const char *slot,
                   const char *cgroup, unsigned agent_uid) {
        _cleanup_close_ int fd = openat(root_fd, cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        char why[PATH_MAX + 64] = "";
        const char *mark;

        if (fd < 0) {
                doctor_add(d, DOCTOR_FAIL, "cgroup",
                           "create it and delegate it to the streaming service (systemd slice or unit with "
                           "Delegate=yes), or correct slots[].cgroup",
                           "slot %s: cgroup %s/%s is missing (%s): the slot is neither measured nor "
                           "enforceable",
                           slot, root_path, cgroup, strerror(errno));
                return;
        }
        if (faccessat(fd, "cgroup.kill", W_OK, 0) < 0) {
                doctor_add(d, DOCTOR_FAIL, "cgroup",
                           "run the agent as root or give its user the cgroup (Linux 5.14+ for cgroup.kill)",
                           "slot %s: %s/%s/cgroup.kill is not writable (%s): enforcement cannot end its "
                           "sessions",
                           slot, root_path, cgroup, strerror(errno));
                return;
        }
        mark = delegate_mark(fd);
        if (mark)
                doctor_add(d, DOCTOR_PASS, "cgroup", NULL,
                           "slot %s: %s/%s present, cgroup.kill writable, delegated (%s)", slot, root_path,
                           cgroup, mark);
        else if (agent_uid != 0 && owned_writable(fd, "cgroup.procs", agent_uid, why, sizeof(why)) &&
                 owned_writable(fd, "cgroup.subtree_control", agent_uid, why, sizeof(why)))
                doctor_add(d, DOCTOR_PASS, "cgroup", NULL,
                           "slot %s: %s/%s present, cgroup.kill writable, delegated (cgroup.procs and "
                           "cgroup.subtree_control belong to the agent's uid %u)",
                           slot, root_path, cgroup, agent_uid);
        else
                doctor_add(d, DOCTOR_WARN, "cgroup", DELEGATE_FIX,
                           "slot %s: %s/%s is not delegated to the agent (uid %u): no delegate xattr%s%s; "
                           "systemd may move its processes or change its controllers",
                           slot, root_path, cgroup, agent_uid, why[0] ? ", and " : "", why);
}
