#!/usr/bin/env bash
# End-to-end planned failover and failback on two sites on loopback (tests/e2e/lib/sites.sh):
#   - failover under a write load: the primary is fenced (its mount gets EROFS), drained, the
#     secondary promoted; every write the old primary acknowledged is on the new primary;
#   - the new primary is written through its own mount, and shipped back to the old one;
#   - failback the same way; verify identical after each switch;
#   - three round trips in a row;
#   - the CLI killed -9 mid-failback, and each site's drfsd killed -9 at several steps of failover
#     and failback: running the command again finishes the job.
set -euo pipefail
DRFS=${1:?usage: georep_failover_test.sh PATH_TO_DRFS}
HERE=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root for FUSE"; exit 77; }
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
T=$(mktemp -d /tmp/drfs-e2e-failover-XXXXXX)
# shellcheck source=lib/sites.sh
. "$HERE/lib/sites.sh"
SM=$T/sm
cleanup() {
  fusermount3 -u -z "$SM" 2>/dev/null || true
  sites_cleanup
}
trap cleanup EXIT
sites_setup
mkdir -p "$SM"
"$DRFS" mount "127.0.0.2:$PORT:/svol" "$SM" -o "log-file=$T/smnt.log" || fail "mount svol"
session_start

# verified SITE WHAT: a checkpoint at the current primary SITE, then verify from there.
verified() {
  local site=$1 what=$2
  d "$site" georep checkpoint gs set now >/dev/null || fail "checkpoint set ($what)"
  d "$site" georep checkpoint gs wait --timeout 180 || fail "checkpoint did not complete ($what)"
  d "$site" georep verify gs > "$T/verify.out" 2>&1 || { head -40 "$T/verify.out" >&2; fail "verify found differences ($what)"; }
  echo "ok: $what: $(tail -1 "$T/verify.out")"
}
role() { json "$1" "j['sessions'][0]['role'] + ('/fenced' if j['sessions'][0]['fenced'] else '') + '/' + str(j['sessions'][0]['epoch'])" georep status gs; }

# A writer that records each file whose write and close succeeded (acknowledged), and stops at
# the first error (EROFS once the site is fenced).
writer() {
  python3 - "$1" "$2" <<'EOF'
import os, sys, time
root, log = sys.argv[1], sys.argv[2]
os.makedirs(root, exist_ok=True)
n = 0
with open(log, "w") as out:
    while n < 100000:
        p = os.path.join(root, "f%06d" % n)
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, ("write %d\n" % n).encode() * 20)
            os.close(fd)
        except OSError as e:
            out.write("stopped: %s\n" % e.strerror)
            break
        out.write("%d\n" % n)
        out.flush()
        n += 1
        time.sleep(0.002)
EOF
}
# check_acked LOG DIR: every acknowledged file of LOG is in DIR with its content.
check_acked() {
  python3 - "$1" "$2" <<'EOF' || fail "acknowledged writes missing after the switch"
import os, sys
log, root = sys.argv[1], sys.argv[2]
lines = open(log).read().split("\n")
acked = [int(l) for l in lines if l.isdigit()]
stop = [l for l in lines if l.startswith("stopped")]
bad = 0
for n in acked:
    p = os.path.join(root, "f%06d" % n)
    try:
        if open(p).read() != ("write %d\n" % n) * 20:
            bad += 1
            print("wrong content: %s" % p)
    except OSError as e:
        bad += 1
        print("cannot read %s: %s" % (p, e.strerror))
print("acknowledged writes: %d, missing or wrong on the new primary: %d, writer %s" % (len(acked), bad, stop[0] if stop else "did not stop"))
sys.exit(1 if bad or not acked else 0)
EOF
}

# interrupt VICTIM STEP COORDINATOR KIND: runs `georep KIND` at COORDINATOR, and when that site
# records STEP, kills -9 VICTIM's drfsd (and the CLI), then starts that drfsd again.
interrupt() {
  local victim=$1 step=$2 at=$3 kind=$4
  "$DRFS" georep "$kind" gs --daemon "$(ip_of "$at"):$PORT" > "$T/int.out" 2>&1 &
  local cli=$!
  for _ in $(seq 1 600); do
    [ "$(json "$at" "j['sessions'][0]['switch_step']" georep status gs 2>/dev/null)" = "$step" ] && break
    sleep 0.05
  done
  kill -9 "$(cat "$T/$victim/drfsd.pid")"
  kill -9 "$cli" 2>/dev/null || true
  wait "$cli" 2>/dev/null || true
  echo "killed -9 the drfsd of site $victim with the $kind at step $step"
  start_daemon "$victim"
}

echo seed > "$PM/seed"
verified p "before the first failover"
[ "$(role s)" = "secondary/1" ] || fail "secondary site is $(role s)"
if echo x > "$SM/nope" 2>/dev/null; then fail "the secondary's mount took a write"; fi

for cycle in 1 2 3; do
  # Failover, planned, under load on the primary's mount.
  writer "$PM/load$cycle" "$T/w$cycle.log" &
  W=$!
  sleep 1
  # drfsd killed mid-way: the promoted site's at drain (cycle 2), the old primary's at promote
  # (cycle 3).
  [ "$cycle" = 2 ] && interrupt s drain s failover
  [ "$cycle" = 3 ] && interrupt p promote s failover
  d s georep failover gs > "$T/fo$cycle.out" 2>&1 || { cat "$T/fo$cycle.out" >&2; fail "failover $cycle"; }
  cat "$T/fo$cycle.out"
  wait "$W" || true
  grep -q "stopped: Read-only file system" "$T/w$cycle.log" || fail "the writer on the fenced primary did not get EROFS: $(tail -2 "$T/w$cycle.log")"
  [ "$(role s)" = "primary/$((cycle * 2))" ] || fail "after failover $cycle the new primary is $(role s)"
  [ "$(role p)" = "secondary/$((cycle * 2))" ] || fail "after failover $cycle the old primary is $(role p)"
  check_acked "$T/w$cycle.log" "$SM/load$cycle"
  if echo x > "$PM/after-failover" 2>/dev/null; then fail "the old primary's mount took a write after failover"; fi
  # Running it again changes nothing.
  d s georep failover gs > "$T/again.out" 2>&1 || fail "a second failover failed: $(cat "$T/again.out")"
  grep -q "nothing to do" "$T/again.out" || fail "a second failover was not a no-op: $(cat "$T/again.out")"
  # The new primary takes writes and ships them back.
  mkdir -p "$SM/new$cycle"
  for i in $(seq 1 30); do echo "new $cycle $i" > "$SM/new$cycle/g$i"; done
  mv "$SM/new$cycle/g1" "$SM/new$cycle/renamed"
  rm "$SM/new$cycle/g2"
  verified s "after failover $cycle, written on the new primary"

  # Failback, with the CLI killed -9 in the middle the first time.
  writer "$SM/back$cycle" "$T/b$cycle.log" &
  W=$!
  sleep 1
  if [ "$cycle" = 1 ]; then
    "$DRFS" georep failback gs --daemon "127.0.0.1:$PORT" > "$T/fb-killed.out" 2>&1 &
    K=$!
    sleep 1.5
    kill -9 "$K" 2>/dev/null || true
    wait "$K" 2>/dev/null || true
    echo "failback CLI killed -9 after: $(tail -1 "$T/fb-killed.out")"
    d p georep status gs | grep -E "in progress|This site" || true
  fi
  [ "$cycle" = 2 ] && interrupt s fence p failback
  [ "$cycle" = 3 ] && interrupt p demote-peer p failback
  d p georep failback gs > "$T/fb$cycle.out" 2>&1 || { cat "$T/fb$cycle.out" >&2; fail "failback $cycle"; }
  cat "$T/fb$cycle.out"
  wait "$W" || true
  grep -q "stopped: Read-only file system" "$T/b$cycle.log" || fail "the writer on the fenced new primary did not get EROFS"
  [ "$(role p)" = "primary/$((cycle * 2 + 1))" ] || fail "after failback $cycle the primary is $(role p)"
  [ "$(role s)" = "secondary/$((cycle * 2 + 1))" ] || fail "after failback $cycle the secondary is $(role s)"
  check_acked "$T/b$cycle.log" "$PM/back$cycle"
  echo "after failback $cycle" > "$PM/after$cycle"
  verified p "after failback $cycle"
done
echo "PASS: three planned failover/failback round trips, no acknowledged write lost"
