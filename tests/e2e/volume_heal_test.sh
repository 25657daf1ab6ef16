#!/usr/bin/env bash
# End-to-end: a replica-3 volume on three drfsd "hosts" (127.0.0.1-3), mounted with FUSE, keeps
# serving through brick failures and heals itself:
#   - the POSIX suite (tests/volume/posix_suite.cc) and dbench pass on the mount;
#   - kill -9 of a brick during an fio verify run: no I/O error reaches fio, verification passes,
#     heal info drains to empty and the three backends are identical;
#   - a brick kept down while files are created, renamed and deleted: the same;
#   - two bricks down: writes fail cleanly (EROFS), reads still work; after both return the
#     bricks converge;
#   - two mounts at once: concurrent creates, renames and writes end in one state both mounts
#     agree on, with identical bricks;
#   - the client killed mid-write: heal repairs whatever it left half-replicated.
set -euo pipefail
DRFS=${1:?usage: volume_heal_test.sh PATH_TO_DRFS}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/fs_checks.sh
. "$HERE/lib/fs_checks.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root for FUSE"; exit 77; }
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
T=$(mktemp -d /tmp/drfs-e2e-heal-XXXXXX)
PORT=$((20000 + $$ % 9000))
BP=$((43000 + ($$ % 400) * 40))
M1=$T/m1
M2=$T/m2
mkdir -p "$M1" "$M2"
cleanup() {
  for m in "$M1" "$M2"; do fusermount3 -u -z "$m" 2>/dev/null || true; done
  pkill -9 -f -- "drfs mount .*$T/" 2>/dev/null || true
  for n in 1 2 3; do
    [ -f "$T/n$n/drfsd.pid" ] && kill -9 "$(cat "$T/n$n/drfsd.pid")" 2>/dev/null || true
  done
  pkill -9 -f -- "--dir $T/" 2>/dev/null || true
  # A mount killed with -9 (on purpose, below) leaves its pid file.
  rm -f /run/drfs/mnt-*"$(basename "$T")"-*.pid
  rm -rf "$T"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for n in 1 2 3; do
    [ -f "$T/n$n/logs/drfsd.log" ] && { echo "--- node $n drfsd.log" >&2; tail -20 "$T/n$n/logs/drfsd.log" >&2; }
  done
  for f in "$T"/mnt*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
  exit 1
}
start_daemon() {
  "$DRFS" daemon --state-dir "$T/n$1" --listen "127.0.0.$1:$PORT" --brick-port-min $BP \
    --brick-port-max $((BP + 39)) --restart-backoff-ms 100 --restart-limit 50 >/dev/null ||
    fail "daemon $1 did not start"
}
d() {
  local n=$1
  shift
  "$DRFS" "$@" --daemon "127.0.0.$n:$PORT"
}
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
brick_pid() { json "$1" "j['volumes'][0]['bricks'][$(($1 - 1))]['pid']" volume status hvol; }
all_online() { [ "$(json 1 "j['volumes'][0]['bricks_online']" volume status hvol)" = 3 ]; }
healed() { [ "$(json 1 "j['total']" volume heal hvol info)" = 0 ]; }
wait_healed() {
  d 1 volume heal hvol >/dev/null || fail "volume heal refused"
  for _ in $(seq 1 1200); do
    if healed; then return 0; fi
    sleep 0.1
  done
  d 1 volume heal hvol info >&2 || true
  fail "heal info did not drain to empty: $1"
}
bricks_identical() {
  local a b c
  a=$(tree_digest "$T/b1") b=$(tree_digest "$T/b2") c=$(tree_digest "$T/b3")
  [ "$a" = "$b" ] && [ "$a" = "$c" ] && return 0
  diff <(echo "$a") <(echo "$b") | head -20 >&2 || true
  diff <(echo "$a") <(echo "$c") | head -20 >&2 || true
  fail "the three brick backends differ: $1"
}
mount_vol() {  # mountpoint, log
  "$DRFS" mount "127.0.0.1:$PORT:/hvol" "$1" -o "log-file=$2" || fail "mount of $1 failed"
}

for n in 1 2 3; do start_daemon $n; done
d 1 peer probe 127.0.0.2:$PORT >/dev/null
d 1 peer probe 127.0.0.3:$PORT >/dev/null
d 1 volume create hvol replica 3 127.0.0.1:"$T/b1" 127.0.0.2:"$T/b2" 127.0.0.3:"$T/b3" >/dev/null
d 1 volume start hvol >/dev/null
wait_for 20 "three bricks online" all_online
mount_vol "$M1" "$T/mnt1.log"
findmnt -n -o FSTYPE "$M1" | grep -qx fuse.drfs || fail "mount type is not fuse.drfs"

echo "== POSIX behaviour on the mount (tests/volume/posix_suite.cc), then dbench"
SUITE=$(dirname "$DRFS")/../tests/drfs_posix_suite
[ -x "$SUITE" ] || fail "no POSIX suite binary at $SUITE (build the drfs_posix_suite target)"
mkdir "$M1/posix"
chmod 755 "$M1/posix"
"$SUITE" "$M1/posix" --quiet >"$T/posix.log" 2>&1 || { grep -E "FAIL" "$T/posix.log" | head -20 >&2; fail "POSIX suite failed on the mount"; }
tail -1 "$T/posix.log"
rm -rf "$M1/posix"
mkdir "$M1/dbench"
run_dbench "$M1/dbench" 10 >"$T/dbench.log" 2>&1 || { tail -20 "$T/dbench.log" >&2; fail "dbench failed on the mount"; }
grep -E "Throughput" "$T/dbench.log" || true
rm -rf "$M1/dbench"

echo "== kill -9 of a brick during fio verify"
mkdir "$M1/fio"
(run_fio_verify "$M1/fio" >"$T/fio.log" 2>&1; echo "EXIT $?" >>"$T/fio.log") &
sleep 4
old=$(brick_pid 2)
kill -9 "$old"
wait_for 20 "brick 2 restarted" bash -c "[ \"\$($DRFS volume status hvol --json --daemon 127.0.0.2:$PORT | python3 -c 'import json,sys; b=json.load(sys.stdin)[\"volumes\"][0][\"bricks\"][1]; print(b[\"online\"] and b[\"pid\"] != $old)')\" = True ]"
wait
grep -q "EXIT 0" "$T/fio.log" || { tail -30 "$T/fio.log" >&2; fail "fio verify failed with a brick killed mid-run"; }
wait_healed "after the fio run"
bricks_identical "after the fio run"

echo "== a brick down while files are created, renamed and deleted"
mkdir -p "$M1/tree/a/b" "$M1/tree/gone/deep"
for i in $(seq 1 20); do echo "old $i" >"$M1/tree/a/f$i"; echo x >"$M1/tree/gone/deep/g$i"; done
# Its drfsd first, so nothing restarts the brick.
b3=$(brick_pid 3)
kill -9 "$(cat "$T/n3/drfsd.pid")"
kill -9 "$b3"
sleep 0.5
for i in $(seq 1 20); do echo "new $i" >"$M1/tree/a/b/n$i"; done
for i in $(seq 1 10); do mv "$M1/tree/a/f$i" "$M1/tree/a/b/moved$i"; done
mv "$M1/tree/a/b" "$M1/tree/b-renamed"
rm -rf "$M1/tree/gone"
echo appended >>"$M1/tree/a/f15"
chmod 600 "$M1/tree/a/f16"
setfattr -n user.color -v green "$M1/tree/a/f17"
ln "$M1/tree/a/f18" "$M1/tree/hardlink"
ln -s a/f19 "$M1/tree/symlink"
start_daemon 3
wait_for 30 "brick 3 back" all_online
wait_healed "after brick 3 was down"
bricks_identical "after brick 3 was down"
[ "$(cat "$M1/tree/a/f15")" = "$(printf 'old 15\nappended')" ] || fail "f15 content wrong after heal"

echo "== two bricks down: writes fail cleanly, reads work"
echo "readable" >"$M1/keep"
b2=$(brick_pid 2)
b3=$(brick_pid 3)
for n in 2 3; do kill -9 "$(cat "$T/n$n/drfsd.pid")"; done
kill -9 "$b2" "$b3"
sleep 0.5
out=$(echo x 2>&1 >"$M1/not-written") && fail "a write without quorum succeeded"
echo "$out" | grep -qi "read-only\|input/output" || fail "write without quorum failed with '$out'"
[ "$(cat "$M1/keep")" = readable ] || fail "read without quorum failed"
ls "$M1/tree" >/dev/null || fail "readdir without quorum failed"
for n in 2 3; do start_daemon $n; done
wait_for 30 "bricks back" all_online
wait_healed "after two bricks were down"
bricks_identical "after two bricks were down"

echo "== two mounts at once"
mount_vol "$M2" "$T/mnt2.log"
mkdir "$M1/both"
writer() {  # mount, tag
  for i in $(seq 1 40); do
    echo "$2 $i" >"$1/both/f$((i % 9))" || return 1
    mv "$1/both/f$((i % 9))" "$1/both/r$((i % 5))" 2>/dev/null || true
    dd if=/dev/urandom of="$1/both/shared" bs=4k count=1 seek=$((i % 8)) conv=notrunc status=none || return 1
    if [ $((i % 7)) = 0 ]; then rm -f "$1/both/r$((i % 5))"; fi
  done
}
writer "$M1" one & p1=$!
writer "$M2" two & p2=$!
wait $p1 || fail "writer on mount 1 failed"
wait $p2 || fail "writer on mount 2 failed"
sleep 1.5  # both mounts' attribute caches expire
l1=$(cd "$M1/both" && ls -l --time-style=+ | sort && md5sum -- * | sort)
l2=$(cd "$M2/both" && ls -l --time-style=+ | sort && md5sum -- * | sort)
[ "$l1" = "$l2" ] || { diff <(echo "$l1") <(echo "$l2") >&2; fail "the two mounts disagree"; }
wait_healed "after two mounts"
bricks_identical "after two mounts"

echo "== the client killed mid-write"
(dd if=/dev/urandom of="$M2/big" bs=1M count=200 status=none || true) &
sleep 1.5
pkill -9 -f -- "drfs mount .*$M2" || fail "no mount process to kill"
wait || true
fusermount3 -u -z "$M2" 2>/dev/null || true
wait_healed "after the client died mid-write"
bricks_identical "after the client died mid-write"

fusermount3 -u "$M1" || fail "unmount failed"
echo "PASS volume_heal_test"
