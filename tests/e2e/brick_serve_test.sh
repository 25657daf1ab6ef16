#!/usr/bin/env bash
# End-to-end: `drfs brick serve` as a real process, driven over TCP with `drfs brick op`, then the
# journal checked with `drfs changelog dump`. Also: errors come back as errnos with messages,
# garbage on a raw socket does not disturb other clients, SIGTERM stops it cleanly, and a
# restarted brick still has everything; pending markers and the heal index through XATTROP and
# HEAL_INDEX (not journaled); an --arbiter brick keeps no data.
set -euo pipefail
DRFS=${1:?usage: brick_serve_test.sh PATH_TO_DRFS}
T=$(mktemp -d /tmp/drfs-e2e-brick-XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$T/brick.log" ] && tail -20 "$T/brick.log" >&2; exit 1; }
ROOT=00000000-0000-0000-0000-000000000001

start_brick() {  # [DIR [serve options...]]
  local dir=${1:-$T/b1}
  shift || true
  mkdir -p "$dir"
  : >"$T/brick.out"  # exists before the background process opens it, so sed never races it
  "$DRFS" brick serve --dir "$dir" --port 0 "$@" >"$T/brick.out" 2>"$T/brick.log" &
  PID=$!
  for _ in $(seq 1 200); do
    PORT=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$T/brick.out")
    [ -n "$PORT" ] && return 0
    kill -0 "$PID" 2>/dev/null || fail "brick exited: $(cat "$T/brick.log")"
    sleep 0.05
  done
  fail "brick did not start"
}
op() { "$DRFS" brick op "127.0.0.1:$PORT" "$@"; }

start_brick
D=00000000-0000-4000-8000-0000000000d1
F=00000000-0000-4000-8000-0000000000f1
op MKDIR --name docs --gfid $D --mode 0755 | grep -q "^ok lsn=1 gfid=$D mode=040755" || fail "mkdir"
op CREATE --parent $D --name a.txt --gfid $F --mode 0644 | grep -q "^ok lsn=2 gfid=$F" || fail "create"
op WRITE --gfid $F --offset 0 --data "hello over the network" | grep -q "written=22" || fail "write"
[ "$(op READ --gfid $F)" = "hello over the network" ] || fail "read back"
[ "$(cat "$T/b1/docs/a.txt")" = "hello over the network" ] || fail "the file is not a plain file on the brick"
op RENAME --parent $D --name a.txt --new-parent $ROOT --new-name b.txt >/dev/null || fail "rename"
op SETXATTR --gfid $F --xattr user.k --value v1 >/dev/null || fail "setxattr"
[ "$(op GETXATTR --gfid $F --xattr user.k)" = v1 ] || fail "getxattr"
op READDIR --gfid $ROOT | grep -q " b.txt$" || fail "readdir"
op READDIR --gfid $ROOT | grep -q "\.drfs" && fail "readdir shows the private .drfs folder"

# Errors: the errno a local file system gives, with a message; exit 1.
set +e
op MKDIR --name docs --mode 0755 2>"$T/err"; rc=$?
set -e
[ $rc = 1 ] && grep -q "errno 17" "$T/err" || fail "mkdir over an existing name: $(cat "$T/err")"
set +e; op RMDIR --name nosuch 2>"$T/err"; rc=$?; set -e
[ $rc = 1 ] && grep -q "errno 2)" "$T/err" || fail "rmdir missing: $(cat "$T/err")"
set +e; op CREATE --name "../escape" --mode 0644 2>"$T/err"; rc=$?; set -e
[ $rc = 1 ] && grep -q "errno 22" "$T/err" || fail "path escape not refused: $(cat "$T/err")"

# Garbage on a raw socket closes that connection only; the brick keeps serving.
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
printf 'GARBAGE\x00\x01\x02 this is not a drfs frame at all ..................' >&3
exec 3>&-
op GETATTR --gfid $F | grep -q "^ok gfid=$F" || fail "brick stopped serving after garbage"
kill -0 "$PID" || fail "brick died on garbage"

# Pending markers: XATTROP adds and prints them, lookups show them, HEAL_INDEX lists the marked
# gfid until they are back to zero; locks report them too. None of it is journaled.
op XATTROP --gfid $F --pending 1,0,0 | grep -q "^ok pending=1,0,0$" || fail "xattrop"
op GETATTR --gfid $F | grep -q "^ok gfid=$F .* pending=1,0,0$" || fail "getattr does not show the markers"
[ "$(op HEAL_INDEX)" = "$F" ] || fail "heal index: $(op HEAL_INDEX)"
[ -e "$T/b1/.drfs/heal/$F" ] || fail "no heal index entry on disk"
op INODELK --gfid $F --owner 9 | grep -q "^ok pending=1,0,0$" || fail "inodelk"
set +e; op GETXATTR --gfid $F --xattr trusted.drfs.pending 2>"$T/err"; rc=$?; set -e
[ $rc = 1 ] && grep -q "errno 61" "$T/err" || fail "the markers xattr is visible to clients: $(cat "$T/err")"
op XATTROP --gfid $F --pending -1 | grep -q "^ok$" || fail "xattrop back to zero"
[ -z "$(op HEAL_INDEX)" ] || fail "heal index not emptied"
[ ! -e "$T/b1/.drfs/heal/$F" ] || fail "heal index entry left on disk"

# The journal holds exactly the mutations, in order.
"$DRFS" changelog dump "$T/b1" >"$T/dump"
awk '{print $4}' "$T/dump" | tr '\n' ' ' | grep -q "^MKDIR CREATE WRITE RENAME SETXATTR $" \
  || fail "journal: $(cat "$T/dump")"
grep -q "RENAME gfid=$F parent=$D name=\"a.txt\" new_parent=$ROOT new_name=\"b.txt\"" "$T/dump" || fail "rename record"

# SIGTERM: clean stop; a restart serves the same tree and continues the LSNs.
kill -TERM "$PID"; wait "$PID" || fail "brick exit status after SIGTERM"
PID=
start_brick
op UNLINK --parent $ROOT --name b.txt | grep -q "^ok lsn=6" || fail "LSN after restart"
set +e; op GETATTR --gfid $F 2>/dev/null; rc=$?; set -e
[ $rc = 1 ] || fail "unlinked file still reachable by gfid"
kill -TERM "$PID"; wait "$PID" || true
PID=

# An arbiter acknowledges writes (and journals them) but keeps no data.
start_brick "$T/arb" --arbiter
A=00000000-0000-4000-8000-0000000000a1
op CREATE --name f --gfid $A --mode 0644 >/dev/null || fail "create on the arbiter"
op WRITE --gfid $A --offset 0 --data "not kept" | grep -q "written=8 .*size=0" || fail "arbiter write"
[ ! -s "$T/arb/f" ] || fail "the arbiter stored data"
set +e; op READ --gfid $A 2>"$T/err"; rc=$?; set -e
[ $rc = 1 ] && grep -q "arbiter" "$T/err" && grep -q "errno 5)" "$T/err" || fail "arbiter read: $(cat "$T/err")"
"$DRFS" changelog dump "$T/arb" | awk '{print $4}' | tr '\n' ' ' | grep -q "^CREATE WRITE $" \
  || fail "arbiter journal: $("$DRFS" changelog dump "$T/arb")"
grep -q "arbiter" "$T/brick.log" || fail "the brick does not say it is an arbiter"
kill -TERM "$PID"; wait "$PID" || true
PID=

# TLS with mutual authentication, and a read-only brick that only the applier role may change.
C=$T/certs
"$DRFS" cert create-ca --dir "$C" >/dev/null
"$DRFS" cert issue --ca-dir "$C" --name brick1 --role brick >/dev/null
"$DRFS" cert issue --ca-dir "$C" --name app1 --role client >/dev/null
"$DRFS" cert issue --ca-dir "$C" --name geo1 --role applier >/dev/null
"$DRFS" cert create-ca --dir "$T/other-ca" >/dev/null
"$DRFS" cert issue --ca-dir "$T/other-ca" --name rogue --role applier >/dev/null
mkdir -p "$T/b2"
: >"$T/brick.out"
"$DRFS" brick serve --dir "$T/b2" --port 0 --read-only --tls-cert "$C/brick1.crt" \
  --tls-key "$C/brick1.key" --tls-ca "$C/ca.crt" >"$T/brick.out" 2>"$T/brick.log" &
PID=$!
PORT=
for _ in $(seq 1 200); do
  PORT=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$T/brick.out"); [ -n "$PORT" ] && break; sleep 0.05
done
[ -n "$PORT" ] || fail "TLS brick did not start"
tls() { local who=$1 ca=$2; shift 2; "$DRFS" brick op "127.0.0.1:$PORT" "$@" --tls-cert "$ca/$who.crt" --tls-key "$ca/$who.key" --tls-ca "$C/ca.crt"; }
tls app1 "$C" GETATTR --gfid $ROOT | grep -q "^ok gfid=$ROOT" || fail "a valid TLS client is not served"
set +e; tls app1 "$C" MKDIR --name x --mode 0755 2>"$T/err"; rc=$?; set -e
[ $rc = 1 ] && grep -q "errno 30" "$T/err" || fail "read-only brick let a client role mutate: $(cat "$T/err")"
tls geo1 "$C" MKDIR --name from-applier --mode 0755 | grep -q "^ok lsn=1" || fail "the applier role may mutate a read-only brick"
set +e; "$DRFS" brick op "127.0.0.1:$PORT" GETATTR --gfid $ROOT 2>"$T/err"; rc=$?; set -e
[ $rc = 1 ] || fail "a plain-TCP client was served by a TLS brick"
set +e; "$DRFS" brick op "127.0.0.1:$PORT" GETATTR --gfid $ROOT --tls-ca "$C/ca.crt" 2>"$T/err"; rc=$?; set -e
[ $rc = 1 ] || fail "a client without a certificate was served"
set +e; tls rogue "$T/other-ca" MKDIR --name rogue --mode 0755 2>"$T/err"; rc=$?; set -e
[ $rc = 1 ] || fail "a certificate from another CA was accepted"
[ ! -e "$T/b2/rogue" ] || fail "the rogue client changed the brick"
grep -qi "handshake\|certificate" "$T/brick.log" || fail "refused TLS peers are not logged: $(cat "$T/brick.log")"
kill -TERM "$PID"; wait "$PID" || fail "TLS brick exit status after SIGTERM"
PID=
echo "brick serve e2e: all checks passed"
