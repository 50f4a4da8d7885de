/* startup_checks.h: file-system set-ups the agent refuses to run on, because another local user
 * could use them to capture the control socket, the state or the node's identity. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct cfg;

#define STARTUP_MSG_MAX 512

/* The directory that will hold control.socket must be owned by root or `self` and writable by
 * nobody else (a sticky bit does not help: another user could create the socket's name while the
 * agent is down). Every directory above it must be owned by root or `self` and, when group- or
 * world-writable, sticky (as /tmp is). Directories that do not exist yet are skipped: the agent
 * makes them. Returns 0 when safe, -EPERM when not (msg names the path, its owner and mode), or
 * another -errno when a directory cannot be examined. */
int startup_check_socket_dir(const char *socket_path, uid_t self, char *msg, size_t msg_len);

/* The same rules for state_dir itself and the directories above it. */
int startup_check_state_dir(const char *dir, uid_t self, char *msg, size_t msg_len);

/* A private key file: no permission for group or others (ssh's rule). `key` names the config key
 * (mqtt.tls.key_file). Returns 0, -EPERM (msg says the mode and the chmod), or -errno. */
int startup_check_key_file(const char *key, const char *path, char *msg, size_t msg_len);

/* Refuses a control.socket path where a live socket answers: another process listens there and
 * would be robbed of its socket. A stale socket (nobody listening) or no file is fine. Returns 0,
 * -EADDRINUSE (msg names the listener's pid and uid), or another -errno. */
int startup_check_socket_free(const char *socket_path, char *msg, size_t msg_len);

enum {
        STARTUP_FILES = 1 << 0,       /* state_dir and the private key files */
        STARTUP_SOCKET_DIR = 1 << 1,  /* control.socket's directories (the agent makes the socket) */
        STARTUP_SOCKET_FREE = 1 << 2, /* no live socket at control.socket (start-up only: --check-config
                                       * runs while the agent it checks for serves that socket) */
};

typedef void (*startup_report_fn)(const char *msg, void *userdata);

/* Runs every check that applies to c (flags: STARTUP_*) as user `self`; calls report for each
 * refusal and returns how many there were. */
size_t startup_check(const struct cfg *c, unsigned flags, uid_t self, startup_report_fn report,
                     void *userdata);
