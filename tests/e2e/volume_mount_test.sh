#!/usr/bin/env bash
# End-to-end: a replica-3 volume served by three drfsd "hosts" (127.0.0.1-3), mounted through
# FUSE with `drfs mount` and with `mount -t drfs` (the /sbin/mount.drfs helper), used as a user
# would use it:
#   - the mount is type fuse.drfs with source HOST:PORT:/VOL, and stat(2) shows gfid-based
#     inode numbers;
#   - files written, read, renamed and listed through the mount appear on all three brick
#     directories with the same trusted.drfs.gfid;
#   - a 1 MiB write(2) reaches the bricks as one write; O_APPEND writers in two processes
#     never overwrite each other; a file unlinked while open stays usable until closed; a
#     second mount sees the first one's changes;
#   - umount, mount again: the data is there; -o ro refuses writes with EROFS;
#   - SIGTERM unmounts; bad arguments are usage errors (exit 2), a missing volume exit 1;
#   - a brick restarted on another port is followed by the mount (layout refresh);
#   - with TLS, the mount presents a 'client' certificate to drfsd and the bricks.
# Needs root and /dev/fuse (skipped with 77 otherwise). Installs scripts/mount.drfs as
# /sbin/mount.drfs, the documented install step.
set -euo pipefail
DRFS=${1:?usage: volume_mount_test.sh PATH_TO_DRFS}
DRFS=$(readlink -f "$DRFS")
SRC=$(cd "$(dirname "$0")/../.." && pwd)
if [ "$(id -u)" -ne 0 ] || [ ! -c /dev/fuse ]; then
  echo "SKIP: needs root and /dev/fuse"
  exit 77
fi
T=$(mktemp -d /tmp/drfs-e2e-mount-XXXXXX)
PORT=$((20000 + $$ % 9000))
BP=$((43000 + ($$ % 400) * 40))
MOUNTS=()
esc() { local p=${1#/}; echo "${p//\//-}"; }  # mount point -> its log and pid file name
mount_pid() { cat "/run/drfs/mnt-$(esc "$1").pid" 2>/dev/null || true; }

brick_pids() {  # volume status --json on stdin -> the pids of its running bricks
  python3 -c "import json,sys; print(' '.join(str(b['pid']) for b in json.load(sys.stdin)['volumes'][0]['bricks'] if b['pid']))" 2>/dev/null
}
cleanup() {
  set +e
  for m in "${MOUNTS[@]}"; do
    local pid
    pid=$(mount_pid "$m")
    umount -l "$m" 2>/dev/null
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    rm -f "/run/drfs/mnt-$(esc "$m").pid" "/var/log/drfs/mnt-$(esc "$m").log"
  done
  # Brick processes outlive drfsd by design: learn their pids, stop the daemons (which would
  # restart them), then end the bricks.
  local bricks
  bricks=$("$DRFS" volume status pvol --json --daemon "127.0.0.1:$PORT" 2>/dev/null | brick_pids)
  if [ -f "$T/ca/node4.crt" ]; then
    bricks+=" $("$DRFS" volume status tvol --json --daemon "127.0.0.4:$PORT" --tls-cert "$T/ca/node4.crt" \
      --tls-key "$T/ca/node4.key" --tls-ca "$T/ca/ca.crt" 2>/dev/null | brick_pids)"
  fi
  for n in 1 2 3 4; do
    [ -f "$T/n$n/drfsd.pid" ] && kill -9 "$(cat "$T/n$n/drfsd.pid")" 2>/dev/null
  done
  for pid in $bricks; do kill -9 "$pid" 2>/dev/null; done
  [ -n "${HOLDER:-}" ] && kill "$HOLDER" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$T"/*.log; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }
  done
  for n in 1 2 3; do
    [ -f "$T/n$n/logs/drfsd.log" ] && { echo "--- node $n drfsd.log" >&2; tail -8 "$T/n$n/logs/drfsd.log" >&2; }
  done
  exit 1
}
d() {
  local n=$1
  shift
  "$DRFS" "$@" --daemon "127.0.0.$n:$PORT"
}
json() {  # node, python expression over `j`, cli args...
  local n=$1 expr=$2
  shift 2
  d "$n" "$@" --json | python3 -c "import json,sys; j=json.load(sys.stdin); print($expr)"
}
wait_for() {  # seconds, description, command...
  local secs=$1 what=$2
  shift 2
  for _ in $(seq 1 $((secs * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  fail "timed out waiting for: $what"
}
all_online() { [ "$(json 1 "j['volumes'][0]['bricks_online']" volume status pvol)" = 3 ]; }
fstype() { findmnt -n -o FSTYPE --mountpoint "$1" 2>/dev/null || true; }
not_mounted() { [ -z "$(fstype "$1")" ]; }
# A process that has exited (a zombie not reaped yet by init counts as exited).
gone() { ! kill -0 "$1" 2>/dev/null || [ "$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null)" = Z ]; }
gfid_of() { getfattr --absolute-names -e hex -n trusted.drfs.gfid "$1" 2>/dev/null | sed -n 's/^trusted.drfs.gfid=0x//p'; }
new_mount() {
  mkdir -p "$T/$1"
  MOUNTS+=("$T/$1")
}

# Node 3 restarts a dead brick after 1.5 s: time for the test to take its port meanwhile.
start_daemon() {
  local n=$1
  "$DRFS" daemon --state-dir "$T/n$n" --listen "127.0.0.$n:$PORT" --brick-port-min $BP \
    --brick-port-max $((BP + 39)) --restart-backoff-ms $([ "$n" = 3 ] && echo 1500 || echo 100) \
    >/dev/null || fail "daemon $n did not start"
}
for n in 1 2 3; do start_daemon $n; done
d 1 peer probe "127.0.0.2:$PORT" >/dev/null || fail "probe 2"
d 1 peer probe "127.0.0.3:$PORT" >/dev/null || fail "probe 3"
d 1 volume create pvol replica 3 "127.0.0.1:$T/b1" "127.0.0.2:$T/b2" "127.0.0.3:$T/b3" >/dev/null || fail "create"

# --- before the volume is started, a mount fails and says why (exit 1)
new_mount m1
rc=0
out=$("$DRFS" mount "127.0.0.1:$PORT:/pvol" "$T/m1" 2>&1) || rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "is not started" || fail "mount of a stopped volume: rc $rc: $out"
not_mounted "$T/m1" || fail "a failed mount left a mount behind"
d 2 volume start pvol >/dev/null || fail "start"
wait_for 20 "3 bricks online" all_online

# --- usage errors (exit 2) and errors (exit 1), each naming what is wrong
expect_rc() {  # rc, pattern, args...
  local want=$1 pat=$2
  shift 2
  local out rc=0
  out=$("$DRFS" "$@" 2>&1) || rc=$?
  [ $rc -eq "$want" ] || fail "'drfs $*' exited $rc, expected $want: $out"
  echo "$out" | grep -q -- "$pat" || fail "'drfs $*' said '$out', expected '$pat'"
}
expect_rc 2 "unknown mount option 'bogus'" mount "127.0.0.1:$PORT:/pvol" "$T/m1" -o bogus
expect_rc 2 "attr_timeout=x: expected seconds" mount "127.0.0.1:$PORT:/pvol" "$T/m1" -o attr_timeout=x
expect_rc 2 "is not HOST\[:PORT\]:/VOLUME" mount "pvol" "$T/m1"
expect_rc 2 "mount takes HOST" mount "127.0.0.1:$PORT:/pvol"
expect_rc 1 "volume nosuch does not exist" mount "127.0.0.1:$PORT:/nosuch" "$T/m1"
expect_rc 1 "mount point $T/nodir" mount "127.0.0.1:$PORT:/pvol" "$T/nodir"
expect_rc 1 "is not a drfs mount" umount "$T/m1"

# --- drfs mount
"$DRFS" mount "127.0.0.1:$PORT:/pvol" "$T/m1" || fail "drfs mount"
[ "$(findmnt -n -o FSTYPE,SOURCE --mountpoint "$T/m1")" = "fuse.drfs 127.0.0.1:$PORT:/pvol" ] ||
  fail "findmnt: $(findmnt --mountpoint "$T/m1")"
findmnt -n -o OPTIONS --mountpoint "$T/m1" | grep -q "default_permissions,allow_other" ||
  fail "mount options: $(findmnt -n -o OPTIONS --mountpoint "$T/m1")"
[ -f "/var/log/drfs/mnt-$(esc "$T/m1").log" ] || fail "no log at /var/log/drfs/mnt-$(esc "$T/m1").log"
expect_rc 1 "already a drfs mount" mount "127.0.0.1:$PORT:/pvol" "$T/m1"
[ "$(stat -c %i "$T/m1")" = 1 ] || fail "the root's inode number is not 1"

M=$T/m1
echo "hello drfs" >"$M/a.txt"
[ "$(cat "$M/a.txt")" = "hello drfs" ] || fail "read back"
mkdir "$M/dir"
mv "$M/a.txt" "$M/dir/renamed.txt"
[ "$(ls "$M")" = "dir" ] || fail "ls of the root: $(ls "$M")"
[ "$(ls "$M/dir")" = "renamed.txt" ] || fail "ls of dir: $(ls "$M/dir")"
[ ! -e "$M/a.txt" ] || fail "the old name is still there"
ln -s renamed.txt "$M/dir/link"
[ "$(readlink "$M/dir/link")" = renamed.txt ] && [ "$(cat "$M/dir/link")" = "hello drfs" ] || fail "symlink"
ln "$M/dir/renamed.txt" "$M/hard"
[ "$(stat -c %h "$M/hard")" = 2 ] && [ "$(stat -c %i "$M/hard")" = "$(stat -c %i "$M/dir/renamed.txt")" ] ||
  fail "hard link: links $(stat -c %h "$M/hard")"
rm "$M/hard"
chmod 640 "$M/dir/renamed.txt"
[ "$(stat -c %a "$M/dir/renamed.txt")" = 640 ] || fail "chmod"
touch -d "2020-01-02 03:04:05" "$M/dir/renamed.txt"
[ "$(stat -c %Y "$M/dir/renamed.txt")" = "$(date -d "2020-01-02 03:04:05" +%s)" ] || fail "utimens"
setfattr -n user.color -v blue "$M/dir/renamed.txt" || fail "setxattr"
[ "$(getfattr --absolute-names --only-values -n user.color "$M/dir/renamed.txt")" = blue ] || fail "getxattr"
getfattr --absolute-names -d "$M/dir/renamed.txt" | grep -q 'user.color="blue"' || fail "listxattr"
# On every brick: the same file, the same gfid; stat on the mount shows the gfid's low 8 bytes.
g1=$(gfid_of "$T/b1/dir/renamed.txt")
[ ${#g1} -eq 32 ] || fail "no gfid on brick 1's copy"
for n in 1 2 3; do
  [ "$(cat "$T/b$n/dir/renamed.txt")" = "hello drfs" ] || fail "brick $n lacks dir/renamed.txt"
  [ "$(gfid_of "$T/b$n/dir/renamed.txt")" = "$g1" ] || fail "brick $n has another gfid"
  [ "$(gfid_of "$T/b$n/dir")" = "$(gfid_of "$T/b1/dir")" ] || fail "brick $n: dir has another gfid"
  [ ! -e "$T/b$n/a.txt" ] || fail "brick $n still has the old name"
  [ "$(getfattr --absolute-names --only-values -n user.color "$T/b$n/dir/renamed.txt")" = blue ] || fail "brick $n lacks the xattr"
done
[ "$(stat -c %i "$M/dir/renamed.txt")" = "$(python3 -c "print(int('${g1:16:16}', 16))")" ] ||
  fail "inode $(stat -c %i "$M/dir/renamed.txt") is not the gfid's low 8 bytes (${g1:16:16})"

# --- setgid directories pass their group on, and umask applies
mkdir "$M/shared"
chgrp 4242 "$M/shared"
chmod 2775 "$M/shared"
(umask 027 && mkdir "$M/shared/sub" && echo x >"$M/shared/f")
[ "$(stat -c %g "$M/shared/f")" = 4242 ] || fail "file in a setgid dir has gid $(stat -c %g "$M/shared/f")"
[ "$(stat -c %a "$M/shared/f")" = 640 ] || fail "umask not applied: $(stat -c %a "$M/shared/f")"
[ "$(stat -c %g:%a "$M/shared/sub")" = "4242:2750" ] || fail "subdir of a setgid dir: $(stat -c %g:%a "$M/shared/sub")"

# --- one write(2) of 1 MiB is one write on the bricks
python3 - "$M/big" <<'EOF' || fail "1 MiB write"
import os, sys
data = bytes(range(256)) * 4096
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
n = os.write(fd, data)
os.close(fd)
assert n == len(data) == 1 << 20, n
EOF
gbig=$(gfid_of "$T/b1/big")
gbig_dashed="${gbig:0:8}-${gbig:8:4}-${gbig:12:4}-${gbig:16:4}-${gbig:20:12}"
for n in 1 2 3; do
  cmp -s "$M/big" "$T/b$n/big" || fail "brick $n: big differs"
  "$DRFS" changelog dump "$T/b$n" | grep "WRITE gfid=$gbig_dashed " | grep -q "offset=0 length=1048576" ||
    fail "brick $n did not journal one 1 MiB write: $("$DRFS" changelog dump "$T/b$n" | grep "gfid=$gbig_dashed" | head -5)"
done

# --- O_APPEND from two processes at once: 2 x 300 whole lines, none lost or torn
python3 - "$M/log" <<'EOF' || fail "O_APPEND writers"
import os, sys, multiprocessing
path = sys.argv[1]
def writer(tag):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for i in range(300):
        os.write(fd, f"{tag} {i:04d} {'x' * 40}\n".encode())
    os.close(fd)
ps = [multiprocessing.Process(target=writer, args=(t,)) for t in "AB"]
for p in ps: p.start()
for p in ps: p.join()
lines = open(path).read().splitlines()
assert len(lines) == 600 and len(set(lines)) == 600, (len(lines), len(set(lines)))
for t in "AB":
    mine = [l for l in lines if l.startswith(t + " ")]
    assert mine == [f"{t} {i:04d} {'x' * 40}" for i in range(300)], t
EOF
for n in 1 2 3; do cmp -s "$M/log" "$T/b$n/log" || fail "brick $n: log differs"; done

# --- a file unlinked while open keeps working until its last close, then is gone everywhere
python3 - "$M" <<'EOF' || fail "unlinked open file"
import os, sys
m = sys.argv[1]
fd = os.open(m + "/scratch", os.O_CREAT | os.O_RDWR, 0o644)
os.write(fd, b"still here")
os.unlink(m + "/scratch")
assert not os.path.exists(m + "/scratch")
assert os.fstat(fd).st_nlink == 0, os.fstat(fd).st_nlink
os.pwrite(fd, b"!", 10)
assert os.pread(fd, 64, 0) == b"still here!"
os.close(fd)
# The kernel sends the release after close(2) has returned.
import time
for _ in range(50):
    if not [n for n in os.listdir(m) if n.startswith(".drfs-unlinked-")]:
        break
    time.sleep(0.1)
else:
    raise AssertionError("the hidden name outlived the last close: %s" % os.listdir(m))
EOF
for n in 1 2 3; do
  ! ls -a "$T/b$n" | grep -q -e "^scratch$" -e "^.drfs-unlinked-" || fail "brick $n kept the unlinked file"
done

# --- mount -t drfs through /sbin/mount.drfs, with fstab-only options dropped
install -m 0755 "$SRC/scripts/mount.drfs" /sbin/mount.drfs
new_mount m2
DRFS_BIN=$DRFS mount -t drfs -f "127.0.0.2:$PORT:/pvol" "$T/m2" -o defaults,_netdev || fail "mount -f"
not_mounted "$T/m2" || fail "mount -f (fake) mounted"
DRFS_BIN=$DRFS mount -t drfs "127.0.0.2:$PORT:/pvol" "$T/m2" \
  -o defaults,_netdev,nofail,x-systemd.automount,attr_timeout=0,entry_timeout=0,log-file="$T/m2.log" ||
  fail "mount -t drfs"
[ "$(fstype "$T/m2")" = fuse.drfs ] || fail "mount -t drfs: type $(fstype "$T/m2")"
[ -s "$T/m2.log" ] || fail "-o log-file was not used"
# Changes made through one mount are seen through the other.
[ "$(cat "$T/m2/dir/renamed.txt")" = "hello drfs" ] || fail "m2 does not see m1's file"
echo "from m2" >"$T/m2/other.txt"
[ "$(cat "$M/other.txt")" = "from m2" ] || fail "m1 does not see m2's file"
rm "$T/m2/other.txt"
wait_for 5 "m1 to see the removal" test ! -e "$M/other.txt"
pid2=$(mount_pid "$T/m2")
[ -n "$pid2" ] || fail "no pid file for m2"
umount "$T/m2" || fail "umount(8) of m2"
wait_for 10 "m2's mount process to exit" gone "$pid2"

# --- a brick restarted on another port: the mount follows it
brick_pid=$(json 1 "j['volumes'][0]['bricks'][2]['pid']" volume status pvol)
brick_port=$(json 1 "j['volumes'][0]['bricks'][2]['port']" volume status pvol)
kill -9 "$brick_pid"
# Hold the old port so drfsd has to give the brick another one.
python3 -c "
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.3', $brick_port)); s.listen(1); print('bound', flush=True); time.sleep(120)" >"$T/holder.out" &
HOLDER=$!
wait_for 2 "the test to hold the brick's old port" grep -q bound "$T/holder.out"
port_moved() {
  local p
  p=$(json 1 "j['volumes'][0]['bricks'][2]['port']" volume status pvol)
  [ "$p" != 0 ] && [ "$p" != "$brick_port" ] && all_online
}
wait_for 20 "brick 3 to come back on another port" port_moved
new_port=$(json 1 "j['volumes'][0]['bricks'][2]['port']" volume status pvol)
ls "$M" >/dev/null  # a call that meets the old port sooner
wait_for 20 "the mount to take the new port" grep -q "port $brick_port -> $new_port" "/var/log/drfs/mnt-$(esc "$M").log"
echo "after move" >"$M/moved.txt"
wait_for 10 "the moved brick to get new files" test -f "$T/b3/moved.txt"
kill "$HOLDER" 2>/dev/null || true
HOLDER=

# --- drfs umount, mount again: everything is still there
sum=$(md5sum <"$M/big")
pid1=$(mount_pid "$M")
"$DRFS" umount "$M" || fail "drfs umount"
not_mounted "$M" || fail "still mounted after drfs umount"
gone "$pid1" || fail "drfs umount returned before the mount process ended"
# ... through node 3 while its drfsd is down: the layout comes from a backup server, without
# brick 3's port (its node cannot say), and brick 3 joins once node 3's drfsd is back.
kill "$(cat "$T/n3/drfsd.pid")"
wait_for 10 "drfsd 3 to stop" test ! -e "$T/n3/drfsd.pid"
"$DRFS" mount "127.0.0.3:$PORT:/pvol" "$M" -o backup-volfile-servers=127.0.0.1:127.0.0.2 || fail "mount again"
[ "$(cat "$M/dir/renamed.txt")" = "hello drfs" ] || fail "data lost across remount"
[ "$(md5sum <"$M/big")" = "$sum" ] || fail "big changed across remount"
[ "$(wc -l <"$M/log")" = 600 ] || fail "log changed across remount"
echo "two of three" >"$M/two.txt" || fail "write with brick 3 unknown to the mount"
start_daemon 3
wait_for 20 "the mount to learn brick 3's port" grep -q "b3 port 0 -> $new_port" "/var/log/drfs/mnt-$(esc "$M").log"

# --- SIGTERM unmounts; a busy mount is detached and ends when its last user leaves
pid1=$(mount_pid "$M")
(cd "$M" && sleep 2) &
busy=$!
sleep 0.3
kill -TERM "$pid1"
wait_for 5 "SIGTERM to detach the mount" not_mounted "$M"
wait "$busy" || fail "the busy user's sleep failed"
wait_for 10 "the mount process to exit once unused" gone "$pid1"

# --- -o ro: reads work, every kind of write is EROFS
"$DRFS" mount "127.0.0.1:$PORT:/pvol" "$M" -o ro || fail "mount -o ro"
findmnt -n -o OPTIONS --mountpoint "$M" | grep -q "^ro," || fail "not a read-only mount"
[ "$(cat "$M/dir/renamed.txt")" = "hello drfs" ] || fail "read on a ro mount"
python3 - "$M" <<'EOF' || fail "writes on a ro mount"
import errno, os, sys
m = sys.argv[1]
for what, f in [
    ("create", lambda: os.open(m + "/new", os.O_WRONLY | os.O_CREAT, 0o644)),
    ("open for write", lambda: os.open(m + "/dir/renamed.txt", os.O_WRONLY)),
    ("mkdir", lambda: os.mkdir(m + "/newdir")),
    ("unlink", lambda: os.unlink(m + "/big")),
    ("rename", lambda: os.rename(m + "/big", m + "/big2")),
    ("chmod", lambda: os.chmod(m + "/big", 0o600)),
]:
    try:
        f()
    except OSError as e:
        assert e.errno == errno.EROFS, (what, e)
    else:
        raise AssertionError(what + " succeeded on a read-only mount")
EOF
"$DRFS" umount "$M" || fail "umount of the ro mount"

# --- TLS: a one-node pool on 127.0.0.4 whose drfsd and brick take only certificates from the
# site CA; the mount presents one of role 'client' (drfsd answers it the layout, nothing else).
"$DRFS" cert create-ca --dir "$T/ca" >/dev/null || fail "create-ca"
"$DRFS" cert issue --ca-dir "$T/ca" --name node4 --role daemon --san 127.0.0.4 >/dev/null || fail "issue daemon"
"$DRFS" cert issue --ca-dir "$T/ca" --name mnt --role client >/dev/null || fail "issue client"
DT=(--tls-cert "$T/ca/node4.crt" --tls-key "$T/ca/node4.key" --tls-ca "$T/ca/ca.crt")
"$DRFS" daemon --state-dir "$T/n4" --listen "127.0.0.4:$PORT" --brick-port-min $((BP + 30)) \
  --brick-port-max $((BP + 39)) "${DT[@]}" >/dev/null || fail "TLS daemon did not start"
"$DRFS" volume create tvol "127.0.0.4:$T/t1" --daemon "127.0.0.4:$PORT" "${DT[@]}" >/dev/null || fail "TLS create"
"$DRFS" volume start tvol --daemon "127.0.0.4:$PORT" "${DT[@]}" >/dev/null || fail "TLS start"
new_mount mt
rc=0
out=$("$DRFS" mount "127.0.0.4:$PORT:/tvol" "$T/mt" 2>&1) || rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "pass -o tls-cert=F,tls-key=F,tls-ca=F" || fail "plain mount of a TLS pool: rc $rc: $out"
"$DRFS" mount "127.0.0.4:$PORT:/tvol" "$T/mt" \
  -o "tls-cert=$T/ca/mnt.crt,tls-key=$T/ca/mnt.key,tls-ca=$T/ca/ca.crt" || fail "mount over TLS"
echo "over tls" >"$T/mt/f" && [ "$(cat "$T/t1/f")" = "over tls" ] || fail "write over TLS"
# A client certificate gets nothing else from drfsd.
rc=0
out=$("$DRFS" volume list --daemon "127.0.0.4:$PORT" --tls-cert "$T/ca/mnt.crt" --tls-key "$T/ca/mnt.key" \
  --tls-ca "$T/ca/ca.crt" 2>&1) || rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "only from certificates with role 'daemon'" || fail "client cert listed volumes: $out"
"$DRFS" umount "$T/mt" || fail "umount of the TLS mount"
tbricks=$("$DRFS" volume status tvol --json --daemon "127.0.0.4:$PORT" "${DT[@]}" | brick_pids)
kill "$(cat "$T/n4/drfsd.pid")"
wait_for 10 "drfsd 4 to stop" test ! -e "$T/n4/drfsd.pid"
for pid in $tbricks; do kill "$pid"; done
echo "PASS"
