#!/usr/bin/env bash
# test_acl.sh: the broker configuration docs/deploy.md recommends (packaging/examples/mosquitto-
# render.{conf,acl}) on a real mosquitto with TLS client certificates: each node is confined to its
# own topics by its certificate's CN, consumers read through shared subscriptions, a node's last
# will reaches only its own status, and a revoked certificate is refused.
# Usage: tests/package/test_acl.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/common.sh

fail() {
        echo "FAIL: $*" >&2
        exit 1
}
pass() { echo "ok: $*"; }

tmp=$(mktemp -d)
pids=()
cleanup() {
        local rc=$? p
        for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
        wait 2>/dev/null || true
        rm -rf "$tmp"
        exit $rc
}
trap cleanup EXIT

# The docs show the same ACL and listener as the files: a change to one must reach the other.
for f in mosquitto-render.acl mosquitto-render.conf; do
        grep -v '^#' "packaging/examples/$f" | grep -v '^$' >"$tmp/$f.lines"
        absent=$(grep -vxF -f <(sed 's/  */ /g' docs/deploy.md) <(sed 's/  */ /g' "$tmp/$f.lines") || true)
        [ -z "$absent" ] || fail "docs/deploy.md lacks these lines of packaging/examples/$f: $absent"
done

# A fleet CA with a CRL, the broker's certificate, and client certificates (CN = identity).
cd "$tmp"
cat >ca.cnf <<CNF
[ca]
default_ca = fleet
[fleet]
database = $tmp/index.txt
crlnumber = $tmp/crlnumber
default_md = sha256
default_crl_days = 1
CNF
: >index.txt
echo 01 >crlnumber
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
key ca
openssl req -x509 -new -key ca.key -days 2 -subj "/CN=fleet CA" -out ca.crt \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
issue() { # NAME CN EXTENSIONS
        key "$1"
        openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
        openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
                -extfile <(printf '%s\n' "$3") -out "$1.crt" 2>/dev/null
}
issue broker localhost "subjectAltName=DNS:localhost
extendedKeyUsage=serverAuth"
for who in render-eu-0001 render-eu-0002 render-eu-0003 metering-consumer telemetry-consumer fleet-control; do
        issue "$who" "$who" "extendedKeyUsage=clientAuth"
done
openssl ca -config ca.cnf -keyfile ca.key -cert ca.crt -revoke render-eu-0003.crt 2>/dev/null
openssl ca -config ca.cnf -keyfile ca.key -cert ca.crt -gencrl -out ca.crl 2>/dev/null
cd - >/dev/null

port=$(free_port)
sed -e "s|^listener 8883|listener $port 127.0.0.1|" -e "s|/etc/mosquitto/ca/fleet-ca.crt|$tmp/ca.crt|" \
        -e "s|/etc/mosquitto/ca/fleet-ca.crl|$tmp/ca.crl|" -e "s|/etc/mosquitto/certs/broker|$tmp/broker|" \
        -e "s|/etc/mosquitto/render.acl|$PWD/packaging/examples/mosquitto-render.acl|" \
        packaging/examples/mosquitto-render.conf >"$tmp/mosquitto.conf"
# As root, mosquitto drops to user "mosquitto", which cannot read the throwaway keys.
[ "$(id -u)" -ne 0 ] || echo "user root" >>"$tmp/mosquitto.conf"
mosquitto -c "$tmp/mosquitto.conf" >"$tmp/broker.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
        grep -q "running" "$tmp/broker.log" && break
        sleep 0.1
done
grep -q "running" "$tmp/broker.log" || { cat "$tmp/broker.log"; fail "mosquitto did not start"; }

# as WHO: mosquitto_pub/sub options for a client with WHO's certificate.
as() { echo "-V 5 -h localhost -p $port --cafile $tmp/ca.crt --cert $tmp/$1.crt --key $tmp/$1.key -i $1-$RANDOM"; }
# sub WHO OUT TOPIC...: a background subscriber printing "topic payload" lines to OUT.
sub() {
        local who=$1 out=$2 args=()
        shift 2
        for t in "$@"; do args+=(-t "$t"); done
        # shellcheck disable=SC2046
        mosquitto_sub $(as "$who") -q 1 -v "${args[@]}" >"$out" 2>&1 &
        pids+=($!)
}
# pub WHO TOPIC PAYLOAD: publishes at QoS 1; a refusal is not an error here, what arrives is checked.
pub() {
        # shellcheck disable=SC2046
        mosquitto_pub $(as "$1") -q 1 -t "$2" -m "$3" >/dev/null 2>&1 || true
}

sub metering-consumer "$tmp/metering.a" '$share/metering/render/v1/+/+/metering'
sub metering-consumer "$tmp/metering.b" '$share/metering/render/v1/+/+/metering'
sub telemetry-consumer "$tmp/telemetry" 'render/v1/+/+/telemetry' 'render/v1/+/+/status'
sub render-eu-0001 "$tmp/cmd.0001" 'render/v1/eu-west/render-eu-0001/cmd' 'render/v1/eu-west/render-eu-0002/cmd'
sub fleet-control "$tmp/replies" 'render/v1/+/+/cmd/reply'
# MQTT 5 response topics below cmd/reply (the agent answers only there: docs/deploy.md).
sub fleet-control "$tmp/replies.below" 'render/v1/+/+/cmd/reply/+'
sleep 1

pub render-eu-0001 render/v1/eu-west/render-eu-0001/telemetry own-telemetry
pub render-eu-0001 render/v1/eu-west/render-eu-0002/telemetry forged-telemetry
pub render-eu-0001 render/v1/eu-west/render-eu-0002/status forged-status
for i in 1 2 3 4; do pub render-eu-0001 render/v1/eu-west/render-eu-0001/metering "record-$i"; done
pub render-eu-0001 render/v1/eu-west/render-eu-0002/metering forged-record
pub fleet-control render/v1/eu-west/render-eu-0001/cmd cmd-for-0001
pub fleet-control render/v1/eu-west/render-eu-0002/cmd cmd-for-0002
pub render-eu-0001 render/v1/eu-west/render-eu-0001/cmd/reply own-reply
pub render-eu-0002 render/v1/eu-west/render-eu-0001/cmd/reply forged-reply
pub render-eu-0001 render/v1/eu-west/render-eu-0001/cmd/reply/ops-7 own-response
pub render-eu-0002 render/v1/eu-west/render-eu-0001/cmd/reply/ops-7 forged-response
pub render-eu-0003 render/v1/eu-west/render-eu-0003/telemetry revoked-telemetry
# A node's last will on its own status, and one on another node's status; both die without DISCONNECT.
# shellcheck disable=SC2046
mosquitto_sub $(as render-eu-0002) -t x --will-topic render/v1/eu-west/render-eu-0002/status \
        --will-payload own-will >/dev/null 2>&1 &
w1=$!
pids+=("$w1")
# shellcheck disable=SC2046
mosquitto_sub $(as render-eu-0002) -t x --will-topic render/v1/eu-west/render-eu-0001/status \
        --will-payload forged-will >/dev/null 2>&1 &
w2=$!
pids+=("$w2")
sleep 1
{ kill -9 $w1 $w2 && wait $w1 $w2; } 2>/dev/null || true
sleep 1.5

grep -qx "render/v1/eu-west/render-eu-0001/telemetry own-telemetry" "$tmp/telemetry" ||
        fail "a node's own telemetry did not arrive: $(cat "$tmp/telemetry")"
! grep -q forged "$tmp/telemetry" || fail "a node wrote another node's topics: $(grep forged "$tmp/telemetry")"
pass "a node publishes below its own node id only (CN = node.id)"

grep -qx "render/v1/eu-west/render-eu-0002/status own-will" "$tmp/telemetry" ||
        fail "a node's last will did not reach its own status"
pass "a node's last will reaches its own status, not another's"

cat "$tmp/metering.a" "$tmp/metering.b" | sort >"$tmp/metering"
[ "$(grep -c record- "$tmp/metering")" -eq 4 ] || fail "metering records lost or doubled: $(cat "$tmp/metering")"
! grep -q forged "$tmp/metering" || fail "a forged metering record was delivered"
[ -s "$tmp/metering.a" ] && [ -s "$tmp/metering.b" ] || fail "the shared subscription did not split the records"
pass "metering consumers share the records (\$share/metering/...): each exactly once, split across both"

grep -qx "render/v1/eu-west/render-eu-0001/cmd cmd-for-0001" "$tmp/cmd.0001" || fail "a node did not get its own command"
! grep -q cmd-for-0002 "$tmp/cmd.0001" || fail "a node read another node's commands"
grep -qx "render/v1/eu-west/render-eu-0001/cmd/reply own-reply" "$tmp/replies" || fail "a node's reply did not arrive"
! grep -q forged-reply "$tmp/replies" || fail "a node replied for another node"
grep -qx "render/v1/eu-west/render-eu-0001/cmd/reply/ops-7 own-response" "$tmp/replies.below" ||
        fail "a reply on a response topic below cmd/reply did not arrive: $(cat "$tmp/replies.below")"
! grep -q forged-response "$tmp/replies.below" || fail "a node answered on another node's response topic"
pass "a node reads only its own commands and replies only for itself (also below cmd/reply)"

! grep -q revoked "$tmp/telemetry" || fail "a revoked certificate was accepted"
pass "a revoked certificate (crlfile) is refused"
