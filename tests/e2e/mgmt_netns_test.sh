#!/usr/bin/env bash
# End-to-end: three drfsd nodes as separate hosts, each in its own network namespace with its
# own address (10.x.y.1-3 on a bridge in a fourth namespace). A replica-3 volume runs across
# them; then one node's link is cut (not its process killed: a partition, where connections
# hang instead of being refused). A configuration change is refused within the peer timeout
# and changes nothing; status reports the node unreachable; when the link returns the pool
# takes changes again. Needs root; skipped (exit 77) where namespaces cannot be made.
set -euo pipefail
DRFS=${1:?usage: mgmt_netns_test.sh PATH_TO_DRFS}
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root for network namespaces"; exit 77; }
T=$(mktemp -d /tmp/drfs-e2e-netns-XXXXXX)
TAG=d$$
NET=10.$((200 + $$ % 50)).$(($$ % 250))
SW=${TAG}sw
cleanup() {
  for n in 1 2 3; do
    [ -f "$T/n$n/drfsd.pid" ] && kill -9 "$(cat "$T/n$n/drfsd.pid")" 2>/dev/null || true
  done
  pkill -9 -f -- "--dir $T/" 2>/dev/null || true
  for n in 1 2 3 sw; do ip netns del "${TAG}$n" 2>/dev/null || true; done
  rm -rf "$T"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for n in 1 2 3; do [ -f "$T/n$n/logs/drfsd.log" ] && tail -8 "$T/n$n/logs/drfsd.log" >&2; done
  exit 1
}

ip netns add "$SW" 2>/dev/null || { echo "SKIP: cannot create network namespaces"; exit 77; }
ip -n "$SW" link add br0 type bridge
ip -n "$SW" link set br0 up
for n in 1 2 3; do
  ip netns add "${TAG}$n"
  ip link add "${TAG}h$n" netns "${TAG}$n" type veth peer name "p$n" netns "$SW"
  ip -n "$SW" link set "p$n" master br0 up
  ip -n "${TAG}$n" addr add "$NET.$n/24" dev "${TAG}h$n"
  ip -n "${TAG}$n" link set "${TAG}h$n" up
  ip -n "${TAG}$n" link set lo up
done
on() { local n=$1; shift; ip netns exec "${TAG}$n" "$@"; }
d() { local n=$1; shift; on "$n" "$DRFS" "$@" --daemon "$NET.$n"; }

for n in 1 2 3; do
  on $n "$DRFS" daemon --state-dir "$T/n$n" --listen "$NET.$n" >/dev/null || fail "daemon $n"
done
d 1 peer probe "$NET.2" >/dev/null || fail "probe 2"
d 1 peer probe "$NET.3" >/dev/null || fail "probe 3"
d 1 volume create nvol replica 3 "$NET.1:$T/b1" "$NET.2:$T/b2" "$NET.3:$T/b3" >/dev/null || fail "create"
d 2 volume start nvol >/dev/null || fail "start"
online() { d "$1" volume status nvol --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["volumes"][0]["bricks_online"])'; }
[ "$(online 1)" = 3 ] || fail "not all bricks online: $(d 1 volume status nvol)"
# Each brick listens on its own host's address, on drfsd's default brick ports.
on 3 ss -ltn | grep -q "$NET.3:4915[0-9]" || fail "brick 3 not listening on its host's address"

# Partition node 3.
ip -n "$SW" link set p3 down
start=$(date +%s)
out=$(d 1 volume set nvol changelog.fsync never 2>&1) && fail "a change went through with a peer partitioned"
echo "$out" | grep -q "peer $NET.3:24100 is unreachable" || fail "unexpected refusal: $out"
[ $(( $(date +%s) - start )) -lt 30 ] || fail "refusal took more than 30 s"
[ "$(d 2 volume get nvol changelog.fsync --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["options"][0]["source"])')" = default ] ||
  fail "the refused change reached node 2"
d 1 volume status nvol --json | python3 -c '
import json,sys
b=json.load(sys.stdin)["volumes"][0]["bricks"]
assert [x["node_reachable"] for x in b]==[True,True,False], b' || fail "status does not show node 3 unreachable"

# Heal the partition: changes go through again, on every node.
ip -n "$SW" link set p3 up
for _ in $(seq 1 50); do d 1 volume set nvol changelog.fsync never >/dev/null 2>&1 && break; sleep 0.2; done
[ "$(d 3 volume get nvol changelog.fsync --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["options"][0]["value"])')" = never ] ||
  fail "node 3 does not have the change made after the partition healed"
d 1 volume stop nvol >/dev/null || fail "stop"
echo PASS
