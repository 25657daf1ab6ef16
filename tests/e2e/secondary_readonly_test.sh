#!/usr/bin/env bash
# Guarantee 5 end to end, without TLS: while a site is secondary, nothing but its applier can
# change its volume. Two sites on one machine (127.0.0.1 primary, 127.0.0.2 secondary), each
# a drfsd with a replica-3 volume. Checks:
#   - `drfs georep create` turns the secondary volume's bricks read-only (drfsd restarts them
#     with --read-only --applier-secret-file STATE/georep/svol.secret, a 0600 file it makes);
#   - a FUSE mount of the secondary volume reads, but create, write, truncate, mkdir, rename,
#     unlink, rmdir, chmod, setxattr and removexattr fail with EROFS;
#   - the applier's writes still land: after `georep start`, writes on the primary reach the
#     secondary (checkpoint completed, `georep verify` exits 0) and the mount reads them;
#   - `georep delete` makes the bricks writable again.
set -euo pipefail
DRFS=${1:?usage: secondary_readonly_test.sh PATH_TO_DRFS}
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root for FUSE"; exit 77; }
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
T=$(mktemp -d /tmp/drfs-e2e-secro-XXXXXX)
PORT=$((20000 + ($$ + 4500) % 9000))
BP=$((43000 + (($$ + 200) % 400) * 40))
PM=$T/pm
SM=$T/sm
mkdir -p "$PM" "$SM"
ip_of() { [ "$1" = p ] && echo 127.0.0.1 || echo 127.0.0.2; }
d() {
  local n=$1
  shift
  "$DRFS" "$@" --daemon "$(ip_of "$n"):$PORT"
}
cleanup() {
  for m in "$PM" "$SM"; do fusermount3 -u -z "$m" 2>/dev/null || true; done
  # The daemons stop their bricks; then the daemons themselves, by pid.
  d p volume stop pvol >/dev/null 2>&1 || true
  d s volume stop svol >/dev/null 2>&1 || true
  for n in p s; do
    [ -f "$T/$n/drfsd.pid" ] && kill -9 "$(cat "$T/$n/drfsd.pid")" 2>/dev/null || true
  done
  # Anything of this run left behind (a brick whose stop failed): only processes naming $T.
  for pid in $(pgrep -f -- "$T/" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  rm -f /run/drfs/mnt-*"$(basename "$T")"-*.pid
  rm -rf "$T"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for n in p s; do
    [ -f "$T/$n/logs/drfsd.log" ] && { echo "--- $n drfsd.log" >&2; tail -30 "$T/$n/logs/drfsd.log" >&2; }
  done
  [ -f "$T/smnt.log" ] && { echo "--- secondary mount log" >&2; tail -20 "$T/smnt.log" >&2; }
  [ -n "${DRFS_E2E_KEEP:-}" ] && { trap - EXIT; echo "kept $T (daemons 127.0.0.{1,2}:$PORT)" >&2; }
  exit 1
}
start_daemon() {
  local bp=$BP
  [ "$1" = s ] && bp=$((BP + 20))
  "$DRFS" daemon --state-dir "$T/$1" --listen "$(ip_of "$1"):$PORT" --brick-port-min $bp \
    --brick-port-max $((bp + 19)) --restart-backoff-ms 100 --restart-limit 50 >/dev/null ||
    fail "daemon $1 did not start"
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
# The secondary's brick processes: how many run with --read-only.
ro_bricks() {
  local n=0 pid
  for pid in $(pgrep -f -- "brick serve --dir $T/sb" 2>/dev/null); do
    tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null | grep -qx -- --read-only && n=$((n + 1))
  done
  echo $n
}
# Every mutation through the secondary mount must fail with EROFS; reads must work.
check_refused() {
  python3 - "$SM" <<'EOF'
import errno, os, sys
m = sys.argv[1]
bad = []
def expect_erofs(what, fn):
    try:
        fn()
        bad.append("%s succeeded" % what)
    except OSError as e:
        if e.errno != errno.EROFS:
            bad.append("%s: %s (want EROFS)" % (what, os.strerror(e.errno)))
def write_existing():
    fd = os.open(os.path.join(m, "seed/hello"), os.O_WRONLY)
    try:
        os.write(fd, b"local edit")
        os.fsync(fd)
    finally:
        os.close(fd)
expect_erofs("create", lambda: os.close(os.open(os.path.join(m, "new"), os.O_CREAT | os.O_WRONLY, 0o644)))
expect_erofs("write", write_existing)
expect_erofs("truncate", lambda: os.truncate(os.path.join(m, "seed/hello"), 0))
expect_erofs("mkdir", lambda: os.mkdir(os.path.join(m, "newdir")))
expect_erofs("rename", lambda: os.rename(os.path.join(m, "seed/hello"), os.path.join(m, "seed/moved")))
expect_erofs("unlink", lambda: os.unlink(os.path.join(m, "seed/hello")))
expect_erofs("rmdir", lambda: os.rmdir(os.path.join(m, "seed/empty")))
expect_erofs("chmod", lambda: os.chmod(os.path.join(m, "seed/hello"), 0o600))
expect_erofs("setxattr", lambda: os.setxattr(os.path.join(m, "seed/hello"), "user.x", b"1"))
expect_erofs("removexattr", lambda: os.removexattr(os.path.join(m, "seed/hello"), "user.color"))
expect_erofs("symlink", lambda: os.symlink("seed/hello", os.path.join(m, "ln")))
with open(os.path.join(m, "seed/hello")) as f:
    if f.read() != "hello from the primary\n":
        bad.append("seed/hello does not read what the primary wrote")
if bad:
    print("\n".join(bad))
    sys.exit(1)
EOF
}

start_daemon p
start_daemon s
d p volume create pvol replica 3 "127.0.0.1:$T/pb1" "127.0.0.1:$T/pb2" "127.0.0.1:$T/pb3" force >/dev/null
d p volume start pvol >/dev/null
d s volume create svol replica 3 "127.0.0.2:$T/sb1" "127.0.0.2:$T/sb2" "127.0.0.2:$T/sb3" force >/dev/null
d s volume start svol >/dev/null
"$DRFS" mount "127.0.0.1:$PORT:/pvol" "$PM" -o "log-file=$T/pmnt.log" || fail "mount pvol"
mkdir -p "$PM/seed/empty"
echo "hello from the primary" > "$PM/seed/hello"
setfattr -n user.color -v blue "$PM/seed/hello"

[ "$(ro_bricks)" = 0 ] || fail "secondary bricks are read-only before any session"
d p georep create pvol "127.0.0.2:$PORT::svol" --name gs >/dev/null || fail "georep create"
# The create returns once the secondary committed the session, and that commit restarts its
# bricks before it answers: no wait.
n=$(ro_bricks)
[ "$n" = 3 ] || fail "$n of svol's 3 bricks run --read-only right after georep create"
secret=$T/s/georep/svol.secret
[ -f "$secret" ] || fail "no applier secret at $secret"
[ "$(stat -c %a "$secret")" = 600 ] || fail "applier secret $secret has mode $(stat -c %a "$secret"), want 600"
grep -qxE '[0-9a-f]{64}' "$secret" || fail "applier secret is not 32 random bytes in hex"
echo "ok: georep create made svol's bricks read-only (secret $secret, mode 600)"

d p georep start gs >/dev/null || fail "georep start"
d p georep checkpoint gs set now >/dev/null || fail "checkpoint set (initial)"
d p georep checkpoint gs wait --timeout 120 || fail "the initial sync did not complete"

"$DRFS" mount "127.0.0.2:$PORT:/svol" "$SM" -o "log-file=$T/smnt.log" || fail "mount svol"
wait_for 30 "seed/hello on the secondary mount" test -f "$SM/seed/hello"
cat "$SM/seed/hello" >/dev/null || fail "cat of a replicated file on the secondary mount"
if touch "$SM/touched" 2>"$T/err"; then fail "touch on the secondary mount succeeded"; fi
grep -q "Read-only file system" "$T/err" || fail "touch on the secondary mount: $(cat "$T/err") (want EROFS)"
check_refused || fail "a mutation through the secondary mount was not refused with EROFS"
echo "ok: the secondary mount reads; create/write/truncate/mkdir/rename/unlink/rmdir/chmod/xattrs/symlink get EROFS"

# The applier is not refused: writes on the primary still replicate, renames and removals too.
for i in $(seq 1 20); do echo "after $i" > "$PM/seed/f$i"; done
mkdir "$PM/later"
mv "$PM/seed/f1" "$PM/later/f1"
rm "$PM/seed/f2"
setfattr -n user.color -v green "$PM/seed/hello"
d p georep checkpoint gs set now >/dev/null || fail "checkpoint set"
d p georep checkpoint gs wait --timeout 120 || fail "checkpoint did not complete: the applier's writes were refused?"
d p georep verify gs > "$T/verify.out" 2>&1 || { head -40 "$T/verify.out" >&2; fail "verify found differences"; }
[ "$(cat "$SM/later/f1")" = "after 1" ] || fail "the secondary mount does not read what the applier wrote"
[ ! -e "$SM/seed/f2" ] || fail "a file removed on the primary is still on the secondary"
echo "ok: the applier's writes land (checkpoint completed, verify: $(tail -1 "$T/verify.out"))"
check_refused || fail "a mutation was not refused after replication"
grep -q "wrong applier secret" "$T"/s/logs/bricks/*.log 2>/dev/null &&
  fail "a brick refused the applier's secret"

# Deleting the session makes the volume writable again.
d p georep stop gs >/dev/null || fail "georep stop"
t0=$(date +%s%N)
d p georep delete gs >/dev/null || fail "georep delete"
wait_for 30 "svol's bricks writable" test "$(ro_bricks)" = 0
wait_for 30 "a write through the secondary mount" touch "$SM/touched"
echo "ok: georep delete made svol writable again ($(( ($(date +%s%N) - t0) / 1000000 )) ms from delete to a working write)"
echo "PASS"
