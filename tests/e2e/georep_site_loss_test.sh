#!/usr/bin/env bash
# End-to-end unplanned failover: two sites (tests/e2e/lib/sites.sh), the primary site lost.
#   0. A planned failover whose primary is lost after the fence: --force finishes it; failback.
#   1. After a completed checkpoint, the whole site is lost; `failover --force` on the secondary
#      promotes it at once (its time is the unplanned RTO); the new primary takes writes through
#      its own mount. The site comes back: the old primary sees the newer epoch and fences itself
#      (its mount gets EROFS). `failback` brings it back as the secondary, catches it up on what
#      changed during the failover (no full copy), and switches back; verify: identical.
#   2. The primary's drfsd (its syncers and the broker) is lost during writes while its bricks
#      still serve its mount: the old primary acknowledges writes that never reach the other
#      site. Right after `failover --force` and the site's return, `failback` fences it (it had
#      not noticed the newer epoch yet), refuses to overwrite those writes (keeping them aside
#      is not built yet) and changes nothing else: every acknowledged write is still readable
#      on the old primary.
# On one machine, the primary "site" is lost by stopping its processes (SIGSTOP: connections
# to it hang, as in a partition, instead of being refused), and comes back with SIGCONT. (The
# embedded Kafka broker listens on 127.0.0.1 only, so the two sites share loopback here; a
# real deployment points the session at a Kafka cluster both sites reach.)
# Needs root; skipped (77) without FUSE.
set -euo pipefail
DRFS=${1:?usage: georep_site_loss_test.sh PATH_TO_DRFS}
HERE=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root for FUSE"; exit 77; }
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
T=$(mktemp -d /tmp/drfs-e2e-siteloss-XXXXXX)
# shellcheck source=lib/sites.sh
. "$HERE/lib/sites.sh"
SM=$T/sm
STOPPED=""
cleanup() {
  [ -n "$STOPPED" ] && kill -CONT $STOPPED 2>/dev/null || true
  fusermount3 -u -z "$SM" 2>/dev/null || true
  sites_cleanup
}
trap cleanup EXIT
# The primary site's processes: its drfsd, and with "all" its bricks too.
site_pids() {
  local pids
  pids=$(cat "$T/p/drfsd.pid")
  [ "${1:-}" = all ] && pids="$pids $(pgrep -f -- "--dir $T/pb" | tr '\n' ' ')"
  echo "$pids"
}
lose() { STOPPED=$(site_pids "${1:-}"); kill -STOP $STOPPED; }
back() { kill -CONT $STOPPED; STOPPED=""; }
role() { json "$1" "j['sessions'][0]['role'] + ('/fenced' if j['sessions'][0]['fenced'] else '') + '/' + str(j['sessions'][0]['epoch'])" georep status gs; }
is_role() { [ "$(role "$1")" = "$2" ]; }
bricks_read_only() {
  local pid n=0
  for pid in $(pgrep -f -- "--dir $T/pb"); do
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "--read-only" || return 1
    n=$((n + 1))
  done
  [ "$n" = 3 ]
}
verified() {
  local site=$1 what=$2
  d "$site" georep checkpoint gs set now >/dev/null || fail "checkpoint set ($what)"
  d "$site" georep checkpoint gs wait --timeout 180 >/dev/null || fail "checkpoint did not complete ($what)"
  d "$site" georep verify gs > "$T/verify.out" 2>&1 || { head -40 "$T/verify.out" >&2; fail "verify found differences ($what)"; }
  echo "ok: $what: $(tail -1 "$T/verify.out")"
}
sites_setup
mkdir -p "$SM"
"$DRFS" mount "127.0.0.2:$PORT:/svol" "$SM" -o "log-file=$T/smnt.log" || fail "mount svol"
session_start
mkdir -p "$PM/before"
for i in $(seq 1 40); do echo "before $i" > "$PM/before/f$i"; done
verified p "before the site loss"

# 0. A planned failover loses its primary half-way (after the fence, before the promotion): the
#    planned steps cannot go on; --force finishes the switch. The old primary was fenced and
#    drained of nothing new, so failback then brings it back.
"$DRFS" georep failover gs --daemon "127.0.0.2:$PORT" > "$T/half.out" 2>&1 &
CLI=$!
for _ in $(seq 1 600); do
  [ "$(json s "j['sessions'][0]['switch_step']" georep status gs 2>/dev/null)" = drain ] && break
  sleep 0.05
done
lose all
kill -9 "$CLI" 2>/dev/null || true
wait "$CLI" 2>/dev/null || true
d s georep status gs | grep "in progress" || fail "no switch in progress after the primary was lost half-way"
d s georep failover gs --force > "$T/half-force.out" 2>&1 || { cat "$T/half-force.out" >&2; fail "failover --force after a planned failover lost its primary"; }
cat "$T/half-force.out"
[ "$(role s)" = "primary/2" ] || fail "--force did not finish the planned failover: $(role s)"
back
d p georep failback gs > "$T/half-back.out" 2>&1 || { cat "$T/half-back.out" >&2; fail "failback after a half-way failover"; }
[ "$(role p)" = "primary/3" ] || fail "after failback the primary is $(role p)"
verified p "after a planned failover finished with --force, and failback"

# 1. The primary site is lost after a checkpoint: nothing unshipped.
lose all
start=$(date +%s.%N)
d s georep failover gs --force > "$T/force1.out" 2>&1 || { cat "$T/force1.out" >&2; fail "failover --force"; }
cat "$T/force1.out"
echo "unplanned RTO (failover --force): $(python3 -c "print('%.2f s' % ($(date +%s.%N) - $start))")"
[ "$(role s)" = "primary/4" ] || fail "the secondary was not promoted: $(role s)"
for i in $(seq 1 20); do echo "during $i" > "$SM/during-$i"; done
mkdir "$SM/newdir" && echo x > "$SM/newdir/x"
rm "$SM/before/f1"
back
wait_for 30 "the old primary fencing itself" is_role p primary/fenced/3
# Its bricks restart read-only one by one (until then its mount still takes writes: they would
# count as unshipped below); then its mount refuses writes.
wait_for 30 "the old primary's bricks running read-only" bricks_read_only
if echo nope > "$PM/after-heal" 2>/dev/null; then fail "the fenced old primary's mount took a write"; fi
d p georep status gs | grep -q FENCED || fail "status does not show the fence"
d p georep failback gs > "$T/back1.out" 2>&1 || { cat "$T/back1.out" >&2; fail "failback after a clean site loss"; }
cat "$T/back1.out"
[ "$(role p)" = "primary/5" ] || fail "after failback the primary is $(role p)"
[ "$(role s)" = "secondary/5" ] || fail "after failback the secondary is $(role s)"
[ "$(cat "$PM/during-7")" = "during 7" ] || fail "a write made during the failover is missing after failback"
[ ! -e "$PM/before/f1" ] || fail "a delete made during the failover did not reach the old primary"
verified p "after failback from a clean site loss"

# 2. The primary's drfsd is lost during writes: its bricks acknowledge writes the other site never gets.
python3 - "$PM/unshipped" "$T/w.log" <<'EOF' &
import os, sys, time
root, log = sys.argv[1], sys.argv[2]
os.makedirs(root, exist_ok=True)
with open(log, "w") as out:
    for n in range(600):
        p = os.path.join(root, "u%04d" % n)
        try:
            with open(p, "w") as f:
                f.write("unshipped %d\n" % n)
        except OSError as e:
            out.write("stopped: %s\n" % e.strerror)
            break
        out.write("%d\n" % n)
        out.flush()
        time.sleep(0.005)
EOF
W=$!
sleep 1
lose
sleep 1
d s georep failover gs --force > "$T/force2.out" 2>&1 || { cat "$T/force2.out" >&2; fail "second failover --force"; }
cat "$T/force2.out"
grep -q "may not be here" "$T/force2.out" || fail "failover --force did not say what may be lost"
wait "$W" || true
back
# failback at once, before the old primary's watcher has noticed the newer epoch: failback
# asks, fences it, waits for its bricks to be read-only, then counts what never left it.
if d p georep failback gs > "$T/back2.out" 2>&1; then fail "failback overwrote writes that never left the old primary"; fi
cat "$T/back2.out"
grep -q "never reached it" "$T/back2.out" || fail "failback refused without saying why"
python3 - "$T/w.log" "$PM/unshipped" <<'EOF' || fail "an acknowledged write of the old primary is gone"
import os, sys
acked = [int(l) for l in open(sys.argv[1]) if l.strip().isdigit()]
missing = [n for n in acked if open(os.path.join(sys.argv[2], "u%04d" % n)).read() != "unshipped %d\n" % n]
print("old primary: %d acknowledged writes, all still readable: %s" % (len(acked), not missing))
sys.exit(1 if missing or not acked else 0)
EOF
[ "$(role p)" = "primary/fenced/5" ] || fail "the refused failback changed the old primary: $(role p)"
echo "PASS: unplanned failover, self-fencing on return, failback; unshipped writes kept"
