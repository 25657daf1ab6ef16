# Two drfs sites on one machine for geo-replication tests: sourced by tests/e2e scripts.
# The primary's drfsd listens on 127.0.0.1, the secondary's on 127.0.0.2, each with a replica-3
# volume (pvol, svol) whose bricks live under $T. The caller sets DRFS and T, and calls
# sites_setup; `fail` prints both daemons' logs and the session status, and exits 1
# (DRFS_E2E_KEEP=1 keeps everything for a look instead of cleaning up).
: "${DRFS:?}" "${T:?}"
PORT=${PORT:-$((20000 + $$ % 9000))}
BP=${BP:-$((43000 + ($$ % 400) * 40))}
PM=$T/pm

sites_cleanup() {
  fusermount3 -u -z "$PM" 2>/dev/null || true
  pkill -9 -f -- "drfs mount .*$T/" 2>/dev/null || true
  for n in p s; do
    [ -f "$T/$n/drfsd.pid" ] && kill -9 "$(cat "$T/$n/drfsd.pid")" 2>/dev/null || true
  done
  pkill -9 -f -- "--dir $T/" 2>/dev/null || true
  rm -f /run/drfs/mnt-*"$(basename "$T")"-*.pid
  rm -rf "$T"
}
fail() {
  echo "FAIL: $*" >&2
  for n in p s; do
    [ -f "$T/$n/logs/drfsd.log" ] && { echo "--- $n drfsd.log" >&2; tail -40 "$T/$n/logs/drfsd.log" >&2; }
  done
  "$DRFS" georep status gs detail --daemon "127.0.0.1:$PORT" >&2 2>&1 || true
  [ -n "${DRFS_E2E_KEEP:-}" ] && { trap - EXIT; echo "kept $T (primary daemon 127.0.0.1:$PORT)" >&2; }
  exit 1
}
ip_of() { [ "$1" = p ] && echo 127.0.0.1 || echo 127.0.0.2; }
start_daemon() {
  local bp=$BP
  [ "$1" = s ] && bp=$((BP + 20))
  "$DRFS" daemon --state-dir "$T/$1" --listen "$(ip_of "$1"):$PORT" --brick-port-min $bp \
    --brick-port-max $((bp + 19)) --restart-backoff-ms 100 --restart-limit 50 >/dev/null ||
    fail "daemon $1 did not start"
}
# d SITE ARGS...: a drfs command against that site's drfsd.
d() {
  local n=$1
  shift
  "$DRFS" "$@" --daemon "$(ip_of "$n"):$PORT"
}
# json SITE PYTHON_EXPR ARGS...: evaluates the expression over the command's --json output (j).
json() {
  local n=$1 expr=$2
  shift 2
  d "$n" "$@" --json | python3 -c "import json,sys; j=json.load(sys.stdin); print($expr)"
}
wait_for() {
  local secs=$1 what=$2
  shift 2
  for _ in $(seq 1 $((secs * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  fail "timed out waiting for: $what"
}
# A checkpoint of session gs now, waited for, then verify must say identical.
synced() {
  local what=$1 timeout=${2:-180}
  d p georep checkpoint gs set now >/dev/null || fail "checkpoint set ($what)"
  d p georep checkpoint gs wait --timeout "$timeout" || fail "checkpoint did not complete ($what)"
  if ! d p georep verify gs > "$T/verify.out" 2>&1; then
    head -40 "$T/verify.out" >&2
    fail "verify found differences ($what)"
  fi
  echo "ok: $what: $(tail -1 "$T/verify.out")"
}
# Both daemons, both volumes, the primary mounted on $PM.
sites_setup() {
  mkdir -p "$PM"
  start_daemon p
  start_daemon s
  d p volume create pvol replica 3 "127.0.0.1:$T/pb1" "127.0.0.1:$T/pb2" "127.0.0.1:$T/pb3" force >/dev/null
  d p volume start pvol >/dev/null
  d s volume create svol replica 3 "127.0.0.2:$T/sb1" "127.0.0.2:$T/sb2" "127.0.0.2:$T/sb3" force >/dev/null
  d s volume start svol >/dev/null
  "$DRFS" mount "127.0.0.1:$PORT:/pvol" "$PM" -o "log-file=$T/mnt.log" || fail "mount"
}
# Session gs from pvol to svol, started, with an Active syncer.
session_start() {
  d p georep create pvol "127.0.0.2:$PORT::svol" --name gs >/dev/null 2>&1 || fail "georep create"
  d p georep config gs linger-ms 10 >/dev/null || fail "config linger-ms"
  d p georep start gs >/dev/null || fail "georep start"
  wait_for 30 "an Active syncer" bash -c "'$DRFS' georep status gs --daemon 127.0.0.1:$PORT | grep -q Active"
}
