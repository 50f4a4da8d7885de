/* doctor_local.c: the doctor's checks of this host that need no agent: the clock's sync state, the
 * state directory, the TLS certificate and the signing key, the slots' cgroups and interfaces. */
#include "doctor.h"

#include "cleanup.h"
#include "clock.h"
#include "clocksync.h"
#include "config.h"
#include "crypto.h"
#include "startup_checks.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <net/if.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

DEFINE_TRIVIAL_CLEANUP_FUNC(struct plat_signer *, plat_signer_free);

/* An estimated error above this is worth a warning even on a synchronised clock: billing windows
 * are aligned to the second. */
#define CLOCK_WARN_ERROR_US (100 * 1000)
/* Free room under the state directory below this: the spool will refuse new sessions soon. */
#define ROOM_WARN_BYTES (64ULL * 1024 * 1024)
#define CGROUP_ROOT "/sys/fs/cgroup"

static void check_clock(struct doctor *d) {
        struct clocksync_state s;
        int r = clocksync_read(&s);

        if (r < 0)
                doctor_add(d, DOCTOR_WARN, "clock", "allow adjtimex(2) to the agent (seccomp, container)",
                           "cannot read the kernel's clock state: adjtimex: %s; billing records are marked "
                           "clock_synced false",
                           strerror(-r));
        else if (!s.synced)
                doctor_add(
                        d, DOCTOR_FAIL, "clock",
                        "start the NTP daemon and let it synchronise (timedatectl set-ntp true; chronyc "
                        "tracking)",
                        "the wall clock is %s; adjtimex %s, estimated error %" PRIu64 " us, at most %" PRIu64
                        " us: billing records made now are marked clock_synced false",
                        clocksync_reason(&s), clocksync_state_str(s.state), s.est_error_us, s.max_error_us);
        else if (s.est_error_us > CLOCK_WARN_ERROR_US)
                doctor_add(d, DOCTOR_WARN, "clock", "check the NTP sources (chronyc sources -v)",
                           "synchronised, but the estimated error is %" PRIu64 " us (at most %" PRIu64
                           " us)",
                           s.est_error_us, s.max_error_us);
        else
                doctor_add(d, DOCTOR_PASS, "clock", NULL,
                           "synchronised (%s, estimated error %" PRIu64 " us, at most %" PRIu64 " us)",
                           clocksync_state_str(s.state), s.est_error_us, s.max_error_us);
}

static void check_state_dir(struct doctor *d, const struct cfg *c, unsigned uid) {
        char msg[STARTUP_MSG_MAX];
        struct statvfs sv;
        uint64_t room;

        if (startup_check_state_dir(c->state_dir, uid, msg, sizeof(msg)) < 0) {
                doctor_add(d, DOCTOR_FAIL, "state_dir",
                           "give the directory to the agent's user and take write access from others "
                           "(chown, chmod 0700); the agent refuses to start as it is",
                           "%s", msg);
                return;
        }
        if (statvfs(c->state_dir, &sv) < 0) {
                doctor_add(d, DOCTOR_FAIL, "state_dir", "create it (the package makes it, mode 0700)",
                           "%s: %s", c->state_dir, strerror(errno));
                return;
        }
        room = (uint64_t)sv.f_bavail * sv.f_frsize;
        if (room < ROOM_WARN_BYTES)
                doctor_add(d, DOCTOR_WARN, "state_dir", "free room on that file system",
                           "%s: owner and modes safe; only %" PRIu64 " KiB free: the spool refuses new "
                           "sessions when it cannot write",
                           c->state_dir, room / 1024);
        else
                doctor_add(d, DOCTOR_PASS, "state_dir", NULL,
                           "%s: owner and modes safe, %" PRIu64 " MiB free", c->state_dir,
                           room / (1024 * 1024));
}

/* A warning, not a failure: a fleet may have the broker trust another CA for its clients than the one
 * that signed the broker (mqtt.tls.ca_file). */
static void check_chain(struct doctor *d, const struct cfg *c) {
        char msg[512];

        if (plat_cert_verify_chain(c->mqtt.cert_file, c->mqtt.ca_file, msg, sizeof(msg)) < 0)
                doctor_add(d, DOCTOR_WARN, "cert_chain",
                           "install the certificate the fleet CA issued for this node, its intermediates "
                           "after it "
                           "in the same file (when the broker trusts another CA for clients than "
                           "mqtt.tls.ca_file, "
                           "check against that one)",
                           "%s", msg);
        else
                doctor_add(d, DOCTOR_PASS, "cert_chain", NULL,
                           "%s chains to a CA in %s, every link valid now", c->mqtt.cert_file,
                           c->mqtt.ca_file);
}

static void check_certificate(struct doctor *d, const struct cfg *c, unsigned warn_days) {
        uint64_t not_before, not_after, now = plat_now_real_usec();
        char msg[256], cn[PLAT_CN_MAX + 1], until[40];
        int64_t days;

        if (!c->mqtt.tls) {
                doctor_add(d, DOCTOR_WARN, "certificate", "set mqtt.tls (the default) and enrol the node",
                           "mqtt.tls is false: the broker link is not encrypted and the node not "
                           "authenticated");
                return;
        }
        if (plat_cert_validity(c->mqtt.cert_file, &not_before, &not_after, msg, sizeof(msg)) < 0) {
                doctor_add(d, DOCTOR_FAIL, "certificate",
                           "install the node's certificate (docs/deploy.md, enrolment)", "%s", msg);
                return;
        }
        plat_format_rfc3339_ms(not_after, until, sizeof(until));
        days = ((int64_t)not_after - (int64_t)now) / (int64_t)(86400 * USEC_PER_SEC);
        if (not_after <= now)
                doctor_add(d, DOCTOR_FAIL, "certificate",
                           "install a new certificate (docs/deploy.md, enrolment) and reload the agent",
                           "%s expired on %s: the broker refuses this node", c->mqtt.cert_file, until);
        else if (not_before > now)
                doctor_add(d, DOCTOR_FAIL, "certificate", "check this host's clock (see the clock check)",
                           "%s is not valid before %s", c->mqtt.cert_file,
                           plat_format_rfc3339_ms(not_before, until, sizeof(until)));
        else if (days < (int64_t)warn_days)
                doctor_add(d, DOCTOR_WARN, "certificate",
                           "renew it before then (render-agentctl enroll makes a new CSR; docs/deploy.md)",
                           "%s expires in %" PRId64 " days (%s), within the %u days warned of",
                           c->mqtt.cert_file, days, until, warn_days);
        else
                doctor_add(d, DOCTOR_PASS, "certificate", NULL,
                           "%s valid for %" PRId64 " more days (until %s)", c->mqtt.cert_file, days, until);
        check_chain(d, c);
        if (plat_cert_cn(c->mqtt.cert_file, cn, msg, sizeof(msg)) < 0)
                doctor_add(d, DOCTOR_WARN, "cert_name", "enrol with render-agentctl enroll (CN = node.id)",
                           "%s", msg);
        else if (strcmp(cn, c->node_id) != 0)
                doctor_add(d, DOCTOR_FAIL, "cert_name",
                           "install the certificate made for this node, or correct node.id",
                           "%s names node \"%s\" but node.id is \"%s\": the broker's ACL and the records' "
                           "kid belong to another node",
                           c->mqtt.cert_file, cn, c->node_id);
        else
                doctor_add(d, DOCTOR_PASS, "cert_name", NULL,
                           "the certificate's CN is node.id \"%s\"; the broker is "
                           "verified as \"%s\"",
                           cn, c->mqtt.host);
}

/* The signing key: private to its owner, loadable, and the certificate's own. */
static void check_key(struct doctor *d, const struct cfg *c) {
        const char *key = c->metering.key_file ? c->metering.key_file : c->mqtt.key_file;
        const char *cert = c->metering.key_file ? c->metering.cert_file : c->mqtt.cert_file;
        const char *name = c->metering.key_file ? "metering.key_file" : "mqtt.tls.key_file";
        _cleanup_(plat_signer_freep) struct plat_signer *s = NULL;
        char msg[STARTUP_MSG_MAX];
        int r;

        if (!key) {
                doctor_add(d, DOCTOR_FAIL, "signing_key", "set metering.key_file or mqtt.tls.key_file",
                           "no signing key is configured: records are kept unpublished");
                return;
        }
        if (startup_check_key_file(name, key, msg, sizeof(msg)) < 0) {
                doctor_add(d, DOCTOR_FAIL, "signing_key",
                           "chmod 600 the key (and chown it to the agent's user)", "%s", msg);
                return;
        }
        r = plat_signer_load(key, cert, &s, msg, sizeof(msg));
        if (r == -EACCES)
                doctor_add(
                        d, DOCTOR_WARN, "signing_key",
                        "run doctor as root or as the agent's user to check it",
                        "%s: mode is private to its owner, but this user (uid %u) may not read it to check "
                        "that it loads",
                        key, (unsigned)geteuid());
        else if (r < 0)
                doctor_add(d, DOCTOR_FAIL, "signing_key",
                           r == -EKEYREJECTED
                                   ? "install the certificate issued for this key"
                                   : "restore the node's key, or enrol again (render-agentctl enroll)",
                           "%s", msg);
        else
                doctor_add(d, DOCTOR_PASS, "signing_key", NULL, "%s: private to its owner, loads, kid %s",
                           key, plat_signer_kid(s));
}

static void check_slots(struct doctor *d, const struct cfg *c, unsigned uid) {
        _cleanup_close_ int root_fd = open(CGROUP_ROOT, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int root_err = errno;
        size_t cgroups = 0, ifaces = 0;

        for (size_t i = 0; i < c->n_slots; i++) {
                const struct cfg_slot *sl = &c->slots[i];

                if (sl->cgroup && root_fd < 0)
                        doctor_add(d, DOCTOR_FAIL, "cgroup", "mount the cgroup v2 hierarchy there",
                                   "slot %s: cannot open %s: %s", sl->id, CGROUP_ROOT, strerror(root_err));
                else if (sl->cgroup)
                        doctor_cgroup(d, root_fd, CGROUP_ROOT, sl->id, sl->cgroup, uid);
                cgroups += sl->cgroup != NULL;
                if (sl->iface) {
                        ifaces++;
                        if (if_nametoindex(sl->iface) == 0)
                                doctor_add(
                                        d, DOCTOR_FAIL, "interface",
                                        "bring the interface up under that name, or correct slots[].iface",
                                        "slot %s: interface %s is not present: its bandwidth is not "
                                        "measured",
                                        sl->id, sl->iface);
                        else
                                doctor_add(d, DOCTOR_PASS, "interface", NULL,
                                           "slot %s: interface %s present", sl->id, sl->iface);
                }
        }
        if (c->n_slots && !cgroups)
                doctor_add(d, DOCTOR_PASS, "cgroup", NULL, "no slot names a cgroup: nothing to check");
        if (c->n_slots && !ifaces)
                doctor_add(d, DOCTOR_PASS, "interface", NULL,
                           "no slot names an interface: nothing to check");
}

void doctor_local(struct doctor *d, const struct cfg *c, unsigned agent_uid, unsigned warn_days) {
        check_clock(d);
        if (!c)
                return;
        check_state_dir(d, c, agent_uid);
        check_certificate(d, c, warn_days);
        check_key(d, c);
        check_slots(d, c, agent_uid);
}
