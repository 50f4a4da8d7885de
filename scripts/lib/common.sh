# common.sh: helpers shared by scripts/test and scripts/demo (sourced, not run).

# The Debian packages the build, the tests and the demo need. scripts/test-fresh-build proves on a
# bare Debian root that RA_BUILD_PACKAGES and RA_ARM64_PACKAGES (with what apt pulls as Depends;
# ensure_packages installs no Recommends) build both trees: a package one of them lacks fails it.
# python3: CMake's configure looks for it (tests/integration), and the integration tests run on it.
RA_BUILD_PACKAGES=(build-essential cmake pkg-config python3 libmosquitto-dev libcjson-dev libsystemd-dev
                   libcmocka-dev libmbedtls-dev)
# tmux: tests/integration/test_ctl_top.py runs `render-agentctl top` in a real terminal.
RA_RUN_PACKAGES=(mosquitto mosquitto-clients openssl procps tmux)
RA_CHECK_PACKAGES=(clang libclang-rt-14-dev clang-format)
# Brokers beyond mosquitto that only the integration tests start (test_rabbitmq: rabbitmq_mqtt with
# TLS client-certificate login; test_ejabberd: mod_mqtt), installed by scripts/test alone: the demo
# and the bench need none of them. test_prometheus: the fleet recipe (docs/deploy.md) with the exporter
# and a real Prometheus. test_events: iproute2 for a veth pair of its own (ip netns, ip link).
RA_TEST_PACKAGES=(rabbitmq-server ejabberd prometheus-mqtt-exporter prometheus iproute2)
# scripts/package (dpkg-shlibdeps, dpkg-buildflags; CPack needs `file`), and its tests (tests/package/,
# scripts/test-arm64): systemd for systemd-analyze, systemd-container and debootstrap for the
# container test_sandbox.sh boots.
RA_PACKAGE_PACKAGES=(dpkg-dev file)
RA_PACKAGE_TEST_PACKAGES=(lintian man-db systemd systemd-container debootstrap)
# scripts/test-arm64: the cross compiler, qemu, and the arm64 dev packages (multiarch :arm64).
# The cross compiler only Recommends a target C library (libc6-dev-arm64-cross), which no install
# here brings: libc6-dev:arm64 (crt files, libc headers at the multiarch paths) is named instead.
RA_ARM64_PACKAGES=(gcc-aarch64-linux-gnu qemu-user libc6:arm64 libc6-dev:arm64 libmosquitto-dev:arm64
                   libcjson-dev:arm64 libsystemd-dev:arm64 libcmocka-dev:arm64 libmbedtls-dev:arm64)
# scripts/test-fresh-build: the bare Debian root it builds the lists' proof in, and the container.
RA_FRESH_TEST_PACKAGES=(debootstrap systemd-container)

# ensure_foreign_arch ARCH: lets dpkg install ARCH packages (refreshes the lists once, when added).
ensure_foreign_arch() {
        dpkg --print-foreign-architectures | grep -qx "$1" && return 0
        local sudo=()
        [ "$(id -u)" -eq 0 ] || sudo=(sudo)
        echo "==> adding dpkg architecture $1"
        "${sudo[@]}" dpkg --add-architecture "$1"
        "${sudo[@]}" apt-get update -qq
}

# ensure_packages PKG...: installs the ones that are missing, non-interactively; idempotent.
ensure_packages() {
        local missing=() p
        for p in "$@"; do
                dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
        done
        [ ${#missing[@]} -eq 0 ] && return 0
        echo "==> installing: ${missing[*]}"
        local sudo=()
        [ "$(id -u)" -eq 0 ] || sudo=(sudo)
        export DEBIAN_FRONTEND=noninteractive
        "${sudo[@]}" apt-get update -qq
        "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
}

# note_skip SUITE CHECK REASON: a check this run could not make, named and never passed off as a
# pass: said on stderr and, when RA_SKIP_LOG names a file (scripts/test), logged there for the
# run's summary. A script that noted a skip ends with `skip_status` (exit 77: ctest's "skipped").
ra_skipped=0
note_skip() {
        echo "SKIP: $1: $2: $3" >&2
        [ -z "${RA_SKIP_LOG:-}" ] || printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RA_SKIP_LOG"
        ra_skipped=$((ra_skipped + 1))
}
skip_status() {
        [ "$ra_skipped" -eq 0 ] || exit 77
}

# free_port: prints a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# mosquitto_tls_conf DIR PORT: a broker config with TLS mutual auth on 127.0.0.1:PORT using DIR's PKI.
mosquitto_tls_conf() {
        local dir=$1 port=$2
        cat <<CONF
per_listener_settings true
listener $port 127.0.0.1
cafile $dir/ca.crt
certfile $dir/server.crt
keyfile $dir/server.key
require_certificate true
use_identity_as_username true
tls_version tlsv1.2
allow_anonymous false
persistence false
CONF
        # As root, mosquitto drops to user "mosquitto", which cannot read the throwaway keys.
        [ "$(id -u)" -ne 0 ] || echo "user root"
}
