#!/usr/bin/env bash
# End-to-end: drfsd with TLS. The daemon and its bricks use the node's daemon certificate from
# 'drfs cert'; the CLI must present a certificate with role 'daemon' signed by the site CA.
# Without a certificate, with another role, or from another CA, it is refused, and the daemon
# keeps serving.
set -euo pipefail
DRFS=${1:?usage: mgmt_tls_test.sh PATH_TO_DRFS}
T=$(mktemp -d /tmp/drfs-e2e-mgmt-tls-XXXXXX)
PORT=$((29000 + $$ % 900))
BP=$((36000 + ($$ % 400) * 10))
cleanup() {
  [ -f "$T/n1/drfsd.pid" ] && kill -9 "$(cat "$T/n1/drfsd.pid")" 2>/dev/null || true
  pkill -9 -f -- "--dir $T/" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$T/n1/logs/drfsd.log" ] && tail -20 "$T/n1/logs/drfsd.log" >&2; exit 1; }

"$DRFS" cert create-ca --dir "$T/ca" >/dev/null
"$DRFS" cert issue --ca-dir "$T/ca" --name node1 --role daemon --san 127.0.0.1 >/dev/null
"$DRFS" cert issue --ca-dir "$T/ca" --name app --role client >/dev/null
"$DRFS" cert create-ca --dir "$T/other-ca" >/dev/null
"$DRFS" cert issue --ca-dir "$T/other-ca" --name node1 --role daemon >/dev/null
TLS=(--tls-cert "$T/ca/node1.crt" --tls-key "$T/ca/node1.key" --tls-ca "$T/ca/ca.crt")

"$DRFS" daemon --state-dir "$T/n1" --listen "127.0.0.1:$PORT" --brick-port-min $BP \
  --brick-port-max $((BP + 9)) "${TLS[@]}" >/dev/null || fail "daemon did not start"
d() { "$DRFS" "$@" --daemon "127.0.0.1:$PORT"; }

d volume create tvol "127.0.0.1:$T/b1" "${TLS[@]}" >/dev/null || fail "create over TLS"
d volume start tvol "${TLS[@]}" >/dev/null || fail "start over TLS"
# The bricks run with TLS too, and the daemon (as a TLS client) sees them online.
[ "$(d volume status tvol --json "${TLS[@]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["volumes"][0]["bricks_online"])')" = 1 ] ||
  fail "TLS brick not online: $(d volume status tvol "${TLS[@]}" 2>&1)"
pgrep -f -- "--dir $T/b1 .*--tls-cert $T/ca/node1.crt" >/dev/null || fail "brick started without TLS"

refused() {  # pattern, cli args...
  local pat=$1
  shift
  local out rc=0
  out=$(d volume list "$@" 2>&1) || rc=$?
  [ $rc -ne 0 ] || fail "volume list with '$*' was accepted"
  echo "$out" | grep -qi -- "$pat" || fail "volume list with '$*' said: $out"
  echo "refused as expected: $out"
}
refused "uses TLS"                                                 # plain TCP
refused "certificate required" --tls-ca "$T/ca/ca.crt"             # TLS, no certificate
refused "role 'daemon'" --tls-cert "$T/ca/app.crt" --tls-key "$T/ca/app.key" --tls-ca "$T/ca/ca.crt"
refused "unknown ca" --tls-cert "$T/other-ca/node1.crt" --tls-key "$T/other-ca/node1.key" \
  --tls-ca "$T/ca/ca.crt"
d volume list "${TLS[@]}" | grep -q "^tvol$" || fail "daemon stopped serving after refusals"
d volume stop tvol "${TLS[@]}" >/dev/null || fail "stop"
echo PASS
