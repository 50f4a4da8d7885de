#!/usr/bin/env bash
# test_sandbox.sh: the .deb under a real systemd, PID 1 of a systemd-nspawn container: the agent
# runs in its sandbox (no capabilities, seccomp, read-only system) and still connects to a TLS
# broker, answers on the socket-activated control socket (its group only), reloads, is restarted
# by the watchdog, ends a session with cgroup.kill once the slot's cgroup.kill is handed to group
# render-agent (and fails, saying why, before), and runs an exec hook.
# Usage: tests/package/test_sandbox.sh [DEB]   (default: builds one with scripts/package)
# Needs root and systemd-nspawn; the container's Debian tree is made once with debootstrap and kept
# in build/sandbox-rootfs-<hash> (read-only: each run writes to a throwaway overlay).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/common.sh

fail() {
        echo "FAIL: $*" >&2
        [ -z "${cpid:-}" ] || nsenter -a -t "$cpid" journalctl -u render-agent --no-pager -o cat -n 30 >&2 || true
        exit 1
}
pass() { echo "ok: $*"; }

[ "$(id -u)" -eq 0 ] || fail "run as root: the test boots a container"
ensure_packages "${RA_PACKAGE_TEST_PACKAGES[@]}"
# One run at a time builds or uses the container tree.
mkdir -p build
exec 8>build/.sandbox.lock
flock 8

deb=${1:-}
[ -n "$deb" ] || deb=$(scripts/package)
[ -f "$deb" ] || fail "no package at $deb"

# The container holds what the package depends on (from its own Depends), a broker and openssl.
mapfile -t deps < <(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/(.*)//; s/|.*//; s/ //g' | grep -v '^$')
include=$(printf '%s,' systemd systemd-sysv dbus procps mosquitto mosquitto-clients openssl "${deps[@]}" | sed 's/,$//')
rootfs=$PWD/build/sandbox-rootfs-$(echo "$include" | sha256sum | cut -c1-12)
if [ ! -f "$rootfs/.complete" ]; then
        echo "==> debootstrap bookworm into $rootfs (once; later runs reuse it)"
        rm -rf "$rootfs"
        mkdir -p build
        debootstrap --variant=minbase --include="$include" bookworm "$rootfs" http://deb.debian.org/debian \
                >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log"; fail "debootstrap (log: $rootfs.log)"; }
        printf '127.0.0.1 localhost\n::1 localhost ip6-localhost\n' >"$rootfs/etc/hosts"
        touch "$rootfs/.complete"
fi

tmp=$(mktemp -d)
cp "$deb" "$tmp/render-agent.deb"
cp scripts/dev-pki packaging/examples/mosquitto-render.conf packaging/examples/mosquitto-render.acl "$tmp/"
nspawn_pid=
cpid=
cleanup() {
        local rc=$?
        if [ -n "$cpid" ]; then
                nsenter -a -t "$cpid" systemctl poweroff >/dev/null 2>&1 || true
                for _ in $(seq 30); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.5; done
        fi
        [ -z "$nspawn_pid" ] || kill -9 "$nspawn_pid" 2>/dev/null || true
        rm -rf "$tmp"
        exit $rc
}
trap cleanup EXIT

echo "==> booting the container (systemd as PID 1)"
setsid systemd-nspawn -q --register=no --keep-unit --volatile=overlay -D "$rootfs" --bind-ro="$tmp:/mnt/t" \
        -b --console=read-only >"$tmp/boot.log" 2>&1 &
nspawn_pid=$!
for _ in $(seq 120); do
        cpid=$(ps -o pid= --ppid "$nspawn_pid" | tr -d ' ' | head -n 1 || true)
        if [ -n "$cpid" ]; then
                state=$(nsenter -a -t "$cpid" systemctl is-system-running 2>/dev/null || true)
                case "$state" in running | degraded) break ;; esac
        fi
        sleep 0.5
done
case "${state:-}" in running | degraded) ;; *) cat "$tmp/boot.log"; cpid=; fail "the container did not boot" ;; esac
ct() { nsenter -a -t "$cpid" "$@"; }
# shows PATTERN CMD...: whether CMD's output has PATTERN. The output is read whole before grep:
# `CMD | grep -q` under pipefail fails when grep's early exit leaves CMD a broken pipe (seen in CI,
# 87 times in 200 on the journal after the watchdog).
shows() {
        local pat=$1 out
        shift
        out=$("$@") || return 1
        grep -q -- "$pat" <<<"$out"
}
# in_journal PATTERN: whether render-agent's journal shows PATTERN within 20 s (a line reaches the
# journal on journald's time, which may be after what it tells is visible in systemctl).
in_journal() {
        for _ in $(seq 40); do
                shows "$1" ct journalctl -u render-agent --no-pager -o cat && return 0
                sleep 0.5
        done
        return 1
}
pass "container booted ($state)"

echo "==> install, configure, enrol (throwaway PKI), start"
ct dpkg --install /mnt/t/render-agent.deb >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg --install"; }
ct /mnt/t/dev-pki /root/pki render-eu-0001 >/dev/null
ct bash -c 'cd /root/pki && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out tc.key 2>/dev/null &&
        openssl req -new -key tc.key -subj /CN=telemetry-consumer -out tc.csr &&
        openssl x509 -req -in tc.csr -CA ca.crt -CAkey ca.key -days 2 -out tc.crt \
                -extfile <(echo extendedKeyUsage=clientAuth) 2>/dev/null'
ct bash -c 'set -e
        install -D -m 0644 /root/pki/ca.crt /etc/mosquitto/ca/fleet-ca.crt
        install -D -m 0644 /root/pki/server.crt /etc/mosquitto/certs/broker.crt
        install -D -m 0600 -o mosquitto /root/pki/server.key /etc/mosquitto/certs/broker.key
        sed "/^crlfile/d" /mnt/t/mosquitto-render.conf >/etc/mosquitto/conf.d/render.conf
        cp /mnt/t/mosquitto-render.acl /etc/mosquitto/render.acl
        systemctl restart mosquitto
        install -m 0644 /root/pki/ca.crt /etc/render-agent/ca.crt
        install -m 0644 /root/pki/client.crt /etc/render-agent/device.crt
        install -m 0600 -o render-agent -g render-agent /root/pki/client.key /var/lib/render-agent/device.key
        mkdir -p /etc/systemd/system/render-agent.service.d
        # Only to keep the watchdog check short; everything else is the unit as shipped.
        printf "[Service]\nWatchdogSec=4s\n" >/etc/systemd/system/render-agent.service.d/test.conf
        systemctl daemon-reload'
# write_config ENFORCEMENT_JSON: the agent's config with one small slot in a cgroup of its own.
write_config() {
        ct tee /etc/render-agent/agent.json >/dev/null <<EOF
{
  "node": { "id": "render-eu-0001", "region": "eu-west" },
  "mqtt": { "host": "localhost", "port": 8883,
            "tls": { "ca_file": "/etc/render-agent/ca.crt", "cert_file": "/etc/render-agent/device.crt",
                     "key_file": "/var/lib/render-agent/device.key" } },
  "scales": { "tiny": { "class": "x86-cpu", "vcpu": 1, "ram_gb": 1, "bandwidth_mbps": 6 } },
  "slots": [ { "id": "slot-0", "scale": "tiny", "iface": "lo", "cgroup": "render.slice/slot-0.scope" } ],
  "sessions": $1
}
EOF
}
write_config '{ "enforcement": "cgroup_kill" }'
ct runuser -u render-agent -- render-agent --check-config >"$tmp/check.log" 2>&1 || { cat "$tmp/check.log"; fail "--check-config"; }
ct timeout 15 mosquitto_sub -h localhost -p 8883 --cafile /root/pki/ca.crt --cert /root/pki/tc.crt \
        --key /root/pki/tc.key -t 'render/v1/+/+/status' -t 'render/v1/+/+/telemetry' -C 2 -v >"$tmp/sub.out" 2>&1 &
sub_pid=$!
sleep 0.5
ct systemctl start render-agent.socket render-agent.service || fail "systemctl start"
wait "$sub_pid" || { cat "$tmp/sub.out"; fail "no status and telemetry from the sandboxed agent"; }
grep -q '^render/v1/eu-west/render-eu-0001/status .*"state":"online"' "$tmp/sub.out" || fail "no online status"
grep -q '^render/v1/eu-west/render-eu-0001/telemetry ' "$tmp/sub.out" || fail "no telemetry"
shows "^Connected to localhost:8883" ct systemctl show -p StatusText --value render-agent ||
        fail "STATUS= is not \"Connected\": $(ct systemctl show -p StatusText --value render-agent)"
pid=$(ct systemctl show -p MainPID --value render-agent)
ct grep -E '^(Uid|CapEff|CapBnd|NoNewPrivs|Seccomp):' "/proc/$pid/status" >"$tmp/proc"
uid=$(ct id -u render-agent)
grep -qP "^Uid:\t$uid\t" "$tmp/proc" && grep -qP '^CapEff:\t0+$' "$tmp/proc" && grep -qP '^CapBnd:\t0+$' "$tmp/proc" &&
        grep -qP '^NoNewPrivs:\t1$' "$tmp/proc" && grep -qP '^Seccomp:\t2$' "$tmp/proc" ||
        { cat "$tmp/proc"; fail "the agent does not run as render-agent without capabilities, under seccomp"; }
pass "sandboxed agent (user render-agent, no capabilities, no new privileges, seccomp) is ready, online, publishing"

echo "==> control socket: socket activation, group render-agent"
shows '^srw-rw---- 1 root render-agent ' ct ls -l /run/render-agent/agent.sock ||
        fail "socket is not root:render-agent 0660: $(ct ls -l /run/render-agent/agent.sock)"
set +e
ct runuser -u nobody -- render-agentctl status >/dev/null 2>&1
rc=$?
set -e
[ $rc -eq 3 ] || fail "a user outside group render-agent reached the agent (exit $rc)"
ct usermod -aG render-agent nobody
shows "node render-eu-0001" ct runuser -u nobody -- render-agentctl status || fail "a group member cannot use render-agentctl"
ct systemctl stop render-agent.service 2>/dev/null
shows "node render-eu-0001" ct render-agentctl status || fail "a request did not start the stopped agent"
ct systemctl is-active -q render-agent.service || fail "socket activation did not start render-agent.service"
pass "only group render-agent reaches the socket; a request starts a stopped agent"

echo "==> reload"
ct systemctl reload render-agent || fail "systemctl reload"
in_journal "configuration reloaded from /etc/render-agent/agent.json" ||
        fail "reload did not re-read the configuration"
pass "systemctl reload re-reads the configuration"

echo "==> enforcement: cgroup.kill from inside the sandbox"
cg=
for base in /sys/fs/cgroup /sys/fs/cgroup/unified; do
        if ct test -f "$base/cgroup.kill"; then
                cg=$base/render.slice/slot-0.scope
                break
        fi
done
if [ -z "$cg" ]; then
        note_skip package.sandbox cgroup_kill "this kernel has no cgroup.kill (Linux 5.14 or newer has)"
else
        ct mkdir -p "$cg"
        ct bash -c "setsid sleep 600 >/dev/null 2>&1 & echo \$! >$cg/cgroup.procs"
        ct render-agentctl reserve --slot slot-0 alice >/dev/null
        ct render-agentctl start alice >/dev/null
        ct render-agentctl disconnect alice >/dev/null
        sleep 1
        shows "cgroup.kill: Permission denied" ct render-agentctl --json status ||
                fail "enforcement on a root-owned cgroup.kill did not fail with Permission denied"
        [ -n "$(ct cat "$cg/cgroup.procs")" ] || fail "the session's process is gone although cgroup.kill was not writable"
        # What docs/deploy.md tells the orchestrator to do when it creates a slot's scope.
        ct chgrp render-agent "$cg/cgroup.kill"
        ct chmod g+w "$cg/cgroup.kill"
        for _ in $(seq 40); do
                [ -z "$(ct cat "$cg/cgroup.procs")" ] && break
                sleep 0.5
        done
        [ -z "$(ct cat "$cg/cgroup.procs")" ] || fail "enforcement did not empty the slot's cgroup once cgroup.kill was writable"
        for _ in $(seq 20); do
                shows "slot-0 .* free" ct render-agentctl slots && break
                sleep 0.5
        done
        shows "slot-0 .* free" ct render-agentctl slots || fail "the slot was not freed after enforcement"
        ct rmdir "$cg"
        pass "cgroup.kill: refused while root's, then kills the session and frees the slot once handed to render-agent"
fi

echo "==> enforcement: exec hook inside the sandbox"
write_config '{ "enforcement": "exec", "enforcement_exec": ["/bin/sh", "-c",
    "echo \"$SLOT $USER_ID $REASON $(id -un)\" >/var/lib/render-agent/hook.out; touch /etc/x 2>>/var/lib/render-agent/hook.out; exit 0"] }'
ct systemctl reload render-agent
ct render-agentctl reserve --slot slot-0 bob >/dev/null
ct render-agentctl start bob >/dev/null
ct render-agentctl disconnect bob >/dev/null
# The hook writes its line, then the touch's error: wait for the second.
for _ in $(seq 20); do
        shows "Read-only file system" ct cat /var/lib/render-agent/hook.out 2>/dev/null && break
        sleep 0.5
done
ct cat /var/lib/render-agent/hook.out >"$tmp/hook.out" 2>/dev/null || fail "the exec hook did not run"
grep -qx "slot-0 bob disconnected render-agent" "$tmp/hook.out" || fail "hook saw: $(cat "$tmp/hook.out")"
grep -q "Read-only file system" "$tmp/hook.out" || fail "the hook could write /etc: $(cat "$tmp/hook.out")"
pass "the exec hook runs as render-agent with SLOT, USER_ID, REASON, inside the read-only sandbox"

echo "==> watchdog"
pid=$(ct systemctl show -p MainPID --value render-agent)
ct kill -STOP "$pid"
for _ in $(seq 40); do
        [ "$(ct systemctl show -p NRestarts --value render-agent)" -ge 1 ] &&
                ct systemctl is-active -q render-agent && break
        sleep 0.5
done
in_journal "Failed with result 'watchdog'" ||
        fail "a stopped loop was not caught by the watchdog"
ct systemctl is-active -q render-agent || fail "render-agent was not restarted after the watchdog"
pass "a stuck agent is killed by the watchdog and restarted (Restart=on-failure)"
skip_status
