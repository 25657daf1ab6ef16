#!/usr/bin/env bash
# End-to-end: three drfsd processes, each a "host" on its own loopback address (127.0.0.1-3),
# form a pool; a replica-3 volume is created, started, inspected, configured, stopped and
# deleted through the drfs CLI, as an operator would. Along the way:
#   - kill -9 of a brick: drfsd restarts it and status counts the restart;
#   - a brick whose directory vanished keeps dying: it is marked failed with the reason, and
#     'volume start force' brings it back once the directory is there again;
#   - kill -9 of drfsd: the restarted daemon adopts the running bricks and its state is intact;
#   - kill -9 of drfsd half-way through a commit: its database holds the old or the new state,
#     never a mix, and the pool converges;
#   - bad input (unknown volume, duplicate brick, brick of another volume, bad replica count,
#     unknown option or value, a peer down during a change) fails with a clear message, exit 1,
#     and changes nothing on any node;
#   - every --json output parses and carries the documented fields.
set -euo pipefail
DRFS=${1:?usage: mgmt_lifecycle_test.sh PATH_TO_DRFS}
T=$(mktemp -d /tmp/drfs-e2e-mgmt-XXXXXX)
# Ports unique to this run, so parallel test runs do not collide.
PORT=$((20000 + $$ % 9000))
BP=$((42000 + ($$ % 400) * 40))
cleanup() {
  for n in 1 2 3; do
    [ -f "$T/n$n/drfsd.pid" ] && kill -9 "$(cat "$T/n$n/drfsd.pid")" 2>/dev/null || true
  done
  pkill -9 -f -- "--dir $T/" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for n in 1 2 3; do
    [ -f "$T/n$n/logs/drfsd.log" ] && { echo "--- node $n drfsd.log" >&2; tail -15 "$T/n$n/logs/drfsd.log" >&2; }
  done
  exit 1
}

start_daemon() {  # node number, extra args
  local n=$1
  shift
  "$DRFS" daemon --state-dir "$T/n$n" --listen "127.0.0.$n:$PORT" --brick-port-min $BP \
    --brick-port-max $((BP + 39)) --restart-backoff-ms 100 --restart-limit 3 "$@" >/dev/null ||
    fail "daemon $n did not start"
}
# drfs CLI against node N
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
expect_fail() {  # message pattern, cli args (node 1)...
  local pat=$1
  shift
  local out rc=0
  out=$(d 1 "$@" 2>&1) || rc=$?
  [ $rc -eq 1 ] || fail "'drfs $*' exited $rc, expected 1: $out"
  echo "$out" | grep -q -- "$pat" || fail "'drfs $*' said '$out', expected '$pat'"
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
brick_field() {  # node, brick index, field
  json "$1" "j['volumes'][0]['bricks'][$2]['$3']" volume status pvol
}
all_online() { [ "$(json 1 "j['volumes'][0]['bricks_online']" volume status pvol)" = 3 ]; }

for n in 1 2 3; do start_daemon $n; done

# --- a second daemon on the same state dir is refused
out=$("$DRFS" daemon --state-dir "$T/n1" --listen "127.0.0.1:$((PORT + 1))" --foreground 2>&1) && fail "second daemon started"
echo "$out" | grep -q "another drfsd (pid [0-9]*) is using state directory" || fail "second daemon: $out"

# --- the pool
d 1 peer probe "127.0.0.2:$PORT" | grep -q "peer probe: success" || fail "probe 2"
d 1 peer probe "127.0.0.3:$PORT" | grep -q "peer probe: success" || fail "probe 3"
d 1 peer probe "127.0.0.3:$PORT" | grep -q "already in the pool" || fail "probe again"
expect_fail "is this node" peer probe "127.0.0.1:$PORT"
[ "$(json 3 "len(j['peers'])" peer status)" = 2 ] || fail "node 3 does not see 2 peers"
[ "$(json 2 "sorted(p['state'] for p in j['peers'])" peer status)" = "['Connected', 'Connected']" ] ||
  fail "node 2 peer states"
json 1 "[p['uuid'] and p['host'] and p['port'] and p['generation'] for p in j['peers']] and j['self']['uuid']" \
  peer status >/dev/null || fail "peer status json fields"
d 2 peer status | grep -q "^Hostname  *Port  *Uuid  *State" || fail "peer status table header"
[ "$(json 3 "all(p['config_in_sync'] for p in j['peers'])" peer status)" = True ] ||
  fail "nodes do not hold the same configuration after the probes"

# --- create, with every validation first (none may change anything)
before=$(d 2 volume info --json)
expect_fail "not a multiple of the replica count 3" volume create pvol replica 3 \
  "127.0.0.1:$T/b1" "127.0.0.2:$T/b2"
expect_fail "listed twice" volume create pvol replica 3 "127.0.0.1:$T/b1" "127.0.0.2:$T/b2" "127.0.0.2:$T/b2"
expect_fail "two bricks on host 127.0.0.2" volume create pvol replica 3 "127.0.0.1:$T/b1" \
  "127.0.0.2:$T/b2" "127.0.0.2:$T/b2x"
expect_fail "not in the pool" volume create pvol replica 3 "127.0.0.1:$T/b1" "127.0.0.2:$T/b2" "127.0.0.9:$T/b3"
expect_fail "nested" volume create pvol replica 3 "127.0.0.1:$T/b1" "127.0.0.2:$T/b2" "127.0.0.2:$T/b2/sub" force
rc=0; d 1 volume create pvol replica 1 "127.0.0.1:$T/b1" >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "replica 1 should be a usage error (exit 2), got $rc"
rc=0; d 1 volume create >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "create without arguments should exit 2, got $rc"
[ "$(d 2 volume info --json)" = "$before" ] || fail "a refused create changed the configuration"
[ ! -e "$T/b1" ] || fail "a refused create made a brick directory"
# refused by one node's stage (its directory cannot be made): no node makes anything
touch "$T/afile"
expect_fail "peer 127.0.0.2 refused the change: brick directory 127.0.0.2:$T/afile/b2 cannot be created" \
  volume create pvol replica 3 "127.0.0.1:$T/s1" "127.0.0.2:$T/afile/b2" "127.0.0.3:$T/s3"
[ ! -e "$T/s1" ] && [ ! -e "$T/s3" ] || fail "a create refused at stage made brick directories"
[ "$(d 2 volume info --json)" = "$before" ] || fail "a create refused at stage changed the configuration"

d 1 volume create pvol replica 3 "127.0.0.1:$T/b1" "127.0.0.2:$T/b2" "127.0.0.3:$T/b3" |
  grep -q "volume create: pvol: success" || fail "create"
for n in 1 2 3; do
  [ "$(json $n "j['volumes'][0]['state']" volume info pvol)" = Created ] || fail "node $n: state after create"
done
expect_fail "already exists" volume create pvol replica 3 "127.0.0.1:$T/c1" "127.0.0.2:$T/c2" "127.0.0.3:$T/c3"
expect_fail "already used by volume pvol" volume create other "127.0.0.2:$T/b2"
expect_fail "overlaps brick" volume create other "127.0.0.2:$T/b2/inner"
[ "$(json 3 "j['volumes']" volume list)" = "['pvol']" ] || fail "volume list"
# info: the documented fields, the same on every node
for n in 1 2 3; do
  json $n "(v:=j['volumes'][0]) and (v['name'],v['type'],v['replica'],v['brick_count'],len(v['uuid']),[b['name'] for b in v['bricks']])" \
    volume info pvol >"$T/info$n" || fail "info json on node $n"
done
cmp -s "$T/info1" "$T/info2" && cmp -s "$T/info1" "$T/info3" || fail "nodes disagree on volume info"
grep -q "('pvol', 'Replicate', 3, 3, 36, \['127.0.0.1:$T/b1', '127.0.0.2:$T/b2', '127.0.0.3:$T/b3'\])" "$T/info1" ||
  fail "info fields: $(cat "$T/info1")"
d 1 volume info pvol | grep -q "Number of Bricks: 1 x 3 = 3" || fail "info human output"

# --- start; every brick online
d 2 volume start pvol | grep -q "volume start: pvol: success" || fail "start"
wait_for 20 "3 bricks online" all_online
json 1 "all(b['online'] and b['port']>0 and b['pid']>0 and b['disk']['free_bytes']>0 and b['inodes']['total']>0 and 'backlog_records' in b['changelog'] for b in j['volumes'][0]['bricks'])" \
  volume status pvol | grep -q True || fail "status json fields"
d 3 volume status pvol | grep -q "^Brick  *Port  *Online  *Pid  *Restarts" || fail "status table"
d 1 volume status pvol detail | grep -q "Changelog backlog" || fail "status detail"
expect_fail "already started" volume start pvol
expect_fail "is started; stop it first" volume delete pvol

# --- options
d 1 volume set pvol changelog.fsync interval | grep -q "changelog.fsync = interval" || fail "set"
d 1 volume set pvol changelog.rollover-size 8m | grep -q "= 8MiB" || fail "set size normalized"
[ "$(json 3 "[(o['value'],o['source']) for o in j['options']]" volume get pvol changelog.fsync)" = "[('interval', 'set')]" ] ||
  fail "node 3 does not see the option"
before=$(d 2 volume info --json)
expect_fail "unknown option 'no.such'" volume set pvol no.such 1
expect_fail "is not one of always, interval, never" volume set pvol changelog.fsync sometimes
expect_fail "is outside" volume set pvol changelog.rollover-size 1k
expect_fail "more than volume pvol's replica count" volume set pvol cluster.quorum-count 4
expect_fail "volume nope does not exist" volume set nope changelog.fsync never
expect_fail "volume nope does not exist" volume start nope
expect_fail "volume nope does not exist" volume status nope
[ "$(d 2 volume info --json)" = "$before" ] || fail "a refused set changed the configuration"
d 1 volume set help | grep -q "^Option: changelog.fsync" || fail "set help"
json 1 "all(o['key'] and o['default'] and o['help'] for o in j['options'])" volume set help | grep -q True ||
  fail "set help json"
d 1 volume reset pvol changelog.fsync >/dev/null || fail "reset"
[ "$(json 2 "[o['source'] for o in j['options']]" volume get pvol changelog.fsync)" = "['default']" ] || fail "reset did not apply"

# --- kill -9 of a brick: restarted, and the restart is counted
old=$(brick_field 1 1 pid)
kill -9 "$old"
restarted() { p=$(brick_field 1 1 pid); [ "$p" != "$old" ] && [ "$p" != 0 ] && [ "$(brick_field 1 1 restarts)" = 1 ] && all_online; }
wait_for 20 "brick 2 restarted" restarted

# --- a brick that keeps dying is marked failed, with the reason; start force revives it
pid3=$(brick_field 1 2 pid)
mv "$T/b3" "$T/b3.away"
kill -9 "$pid3"
failed() { [ "$(brick_field 1 2 state)" = failed ]; }
wait_for 30 "brick 3 marked failed" failed
json 1 "j['volumes'][0]['bricks'][2]['failure_reason']" volume status pvol | grep -q "$T/b3" ||
  fail "failure reason does not name the brick directory: $(json 1 "j['volumes'][0]['bricks'][2]['failure_reason']" volume status pvol)"
d 1 volume status pvol | grep -q "failed:" || fail "human status does not show the failure"
mv "$T/b3.away" "$T/b3"
d 1 volume start pvol force >/dev/null || fail "start force"
wait_for 20 "brick 3 back after start force" all_online
# A brick directory that lost its volume-id mark (its disk not mounted, say) is not served.
python3 -c "import os; os.removexattr('$T/b3', 'trusted.drfs.volume-id')"
kill -9 "$(brick_field 1 2 pid)"
wait_for 30 "brick 3 marked failed without its mark" failed
json 1 "j['volumes'][0]['bricks'][2]['failure_reason']" volume status pvol | grep -q "lacks its volume id mark" ||
  fail "no mark: $(json 1 "j['volumes'][0]['bricks'][2]['failure_reason']" volume status pvol)"
vid=$(json 1 "j['volumes'][0]['uuid']" volume info pvol)
python3 -c "import os; os.setxattr('$T/b3', 'trusted.drfs.volume-id', b'$vid')"
d 1 volume start pvol force >/dev/null || fail "start force after restoring the mark"
wait_for 20 "brick 3 back after its mark is restored" all_online

# --- kill -9 of drfsd: adopts its running bricks, state intact
pid1=$(brick_field 1 0 pid)
info_before=$(d 1 volume info --json)
kill -9 "$(cat "$T/n1/drfsd.pid")"
start_daemon 1
[ "$(d 1 volume info --json)" = "$info_before" ] || fail "volume info changed across a drfsd kill -9"
[ "$(brick_field 1 0 pid)" = "$pid1" ] || fail "drfsd started a new brick instead of adopting pid $pid1"
all_online || fail "bricks not online after drfsd restart"
grep -q "adopted brick 127.0.0.1:$T/b1 of pvol (pid $pid1" "$T/n1/logs/drfsd.log" || fail "no adoption in the log"
# ... and when drfsd and a brick both die, the brick is restarted at the next start
pid2=$(brick_field 2 1 pid)
kill -9 "$(cat "$T/n2/drfsd.pid")" "$pid2"
start_daemon 2
wait_for 20 "brick 2 restarted by the new drfsd" all_online
[ "$(brick_field 2 1 pid)" != "$pid2" ] || fail "dead brick not replaced"

# --- a peer down during a configuration change: refused everywhere, nothing changes
kill -9 "$(cat "$T/n3/drfsd.pid")"
before=$(d 1 volume info --json)
expect_fail "peer 127.0.0.3:$PORT is unreachable" volume set pvol changelog.fsync never
[ "$(d 1 volume info --json)" = "$before" ] && [ "$(d 2 volume info --json)" = "$before" ] ||
  fail "a refused change (peer down) changed the configuration"
[ "$(json 1 "[p['state'] for p in j['peers'] if p['host']=='127.0.0.3']" peer status)" = "['Disconnected']" ] ||
  fail "peer status does not show node 3 down"
# status still answers, and says which bricks cannot be reached
[ "$(json 1 "j['volumes'][0]['bricks'][2]['node_reachable']" volume status pvol)" = False ] || fail "status with node down"
start_daemon 3
wait_for 20 "all online after node 3 returns" all_online

# --- kill -9 of drfsd half-way through a commit (between the old rows' delete and the new
# rows' insert): its database still holds the old state, and it pulls the new one from a peer.
kill -9 "$(cat "$T/n3/drfsd.pid")"
DRFS_FAILPOINTS="mgmt.store.save_config=crash" start_daemon 3
rc=0; d 1 volume set pvol changelog.fsync never >/dev/null 2>&1 || rc=$?
sleep 0.5
# (not kill -0: in a container whose init does not reap, the crashed daemon stays a zombie)
d 3 peer status >/dev/null 2>&1 && fail "node 3 did not crash at the failure probe"
grep -q "failpoint mgmt.store.save_config: crashing" "$T/n3/logs/drfsd.log" || fail "node 3 crashed elsewhere"
start_daemon 3
converged() { [ "$(json 3 "[o['value'] for o in j['options']]" volume get pvol changelog.fsync)" = "['never']" ]; }
for _ in $(seq 1 200); do converged && break; sleep 0.1; done
converged || fail "node 3 did not pull the committed change: node 3 says $(d 3 volume get pvol changelog.fsync 2>&1), node 1 says $(d 1 volume get pvol changelog.fsync 2>&1)"
[ "$(json 3 "j['volumes'][0]['state']" volume info pvol)" = Started ] || fail "node 3 lost state"

# --- stop, delete; bricks stop, data stays, directories are reusable
d 1 volume stop pvol | grep -q "volume stop: pvol: success" || fail "stop"
[ "$(json 2 "j['volumes'][0]['bricks_online']" volume status pvol)" = 0 ] || fail "bricks still online after stop"
pgrep -f -- "--dir $T/b" >/dev/null && fail "brick processes left after stop"
d 3 volume delete pvol | grep -q "volume delete: pvol: success" || fail "delete"
for n in 1 2 3; do [ "$(json $n "j['volumes']" volume list)" = "[]" ] || fail "node $n still lists pvol"; done
[ -d "$T/b1/.drfs" ] || fail "delete removed brick data"
d 1 volume create again replica 3 "127.0.0.1:$T/b1" "127.0.0.2:$T/b2" "127.0.0.3:$T/b3" >/dev/null ||
  fail "a deleted volume's brick directories cannot be reused"
d 1 volume delete again >/dev/null

# --- detach
expect_fail "is this node" peer detach 127.0.0.1
d 1 peer detach 127.0.0.3 | grep -q "peer detach: success" || fail "detach"
[ "$(json 1 "len(j['peers'])" peer status)" = 1 ] || fail "node 1 still has 2 peers"
[ "$(json 3 "len(j['peers'])" peer status)" = 0 ] || fail "node 3 does not know it was detached"

# --- a probe whose commit never reaches the new node (it dies at the store): once it is back,
# the pool pushes it the configuration it missed.
kill -9 "$(cat "$T/n3/drfsd.pid")"
DRFS_FAILPOINTS="mgmt.store.save_config=crash" start_daemon 3
d 1 peer probe "127.0.0.3:$PORT" >/dev/null 2>&1 || true
d 3 peer status >/dev/null 2>&1 && fail "node 3 did not crash at the failure probe during the probe"
start_daemon 3
joined() { [ "$(json 3 "len(j['peers'])" peer status)" = 2 ]; }
wait_for 20 "node 3 receives the pool configuration it missed" joined
[ "$(json 3 "j['generation']" peer status)" = "$(json 1 "j['generation']" peer status)" ] ||
  fail "node 3 and node 1 disagree on the generation"
echo "PASS"
