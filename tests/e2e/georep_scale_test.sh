#!/usr/bin/env bash
# Geo-replication at the scale issue 6 names, too slow for the default suite (ctest label
# "soak"; run it with `ctest -L soak` in a build dir, or scripts/test with DRFS_TEST_SOAK=1):
#   - a rename storm of 10,000 renames: files over files and directories over empty
#     directories, within and across directories, the tree checked identical afterwards;
#   - a 256 MiB file, then 100 small random writes into it: only the written ranges are sent.
# Prints the time each part took.
set -euo pipefail
DRFS=${1:?usage: georep_scale_test.sh PATH_TO_DRFS}
HERE=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root for FUSE"; exit 77; }
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
T=$(mktemp -d /tmp/drfs-e2e-georep-scale-XXXXXX)
RENAMES=${DRFS_SCALE_RENAMES:-10000}
BIG_MIB=${DRFS_SCALE_BIG_MIB:-256}
# shellcheck source=lib/sites.sh
. "$HERE/lib/sites.sh"
trap sites_cleanup EXIT

sites_setup
session_start
synced "empty volume"

t0=$(date +%s)
python3 - "$PM" "$RENAMES" <<'PY'
import os, random, sys
root = os.path.join(sys.argv[1], "storm")
want = int(sys.argv[2])
rng = random.Random(11)
for i in range(8):
    os.makedirs(os.path.join(root, "d%d" % i, "sub"), exist_ok=True)
for i in range(200):
    with open(os.path.join(root, "d%d" % (i % 8), "f%d" % i), "w") as f:
        f.write("file %d\n" % i)
for i in range(20):
    os.makedirs(os.path.join(root, "d%d" % (i % 8), "e%d" % i), exist_ok=True)
n = files = dirs = made = 0
while n < want:
    d1, d2 = rng.randrange(8), rng.randrange(8)
    base = os.path.join(root, "d%d" % d1)
    try:
        names = [x for x in os.listdir(base) if x != "sub"]
        if not names:
            continue
        name = rng.choice(names)
        src = os.path.join(base, name)
        if name.startswith("e"):
            # An (empty) directory, over another empty directory's name or a new one.
            os.rename(src, os.path.join(root, "d%d" % d2, "e%d" % rng.randrange(20)))
            dirs += 1
        else:
            # Over an existing file about a third of the time (the name space is 3x the files).
            os.rename(src, os.path.join(root, "d%d" % d2, "f%d" % rng.randrange(600)))
            files += 1
        n += 1
        if n % 3 == 0:
            # Keep the population up: a replace destroys a file.
            made += 1
            with open(os.path.join(root, "d%d" % rng.randrange(8), "g%d" % made), "w") as f:
                f.write("made %d\n" % made)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, OSError) as e:
        if isinstance(e, OSError) and e.errno not in (2, 20, 21, 39):
            raise
print("rename storm: %d renames (%d of files, %d of directories), %d files made meanwhile" % (n, files, dirs, made))
PY
t1=$(date +%s)
synced "rename storm of $RENAMES" 900
t2=$(date +%s)
echo "time: renames $((t1 - t0)) s on the primary, caught up $((t2 - t1)) s later"

t0=$(date +%s)
dd if=/dev/urandom of="$PM/big" bs=1M count="$BIG_MIB" status=none
t1=$(date +%s)
synced "$BIG_MIB MiB file" 900
t2=$(date +%s)
echo "time: $BIG_MIB MiB written in $((t1 - t0)) s, caught up $((t2 - t1)) s later"
before=$(json p "sum(r.get('data_bytes', 0) for r in j['sessions'][0]['rows'])" georep status gs)
python3 - "$PM/big" "$BIG_MIB" <<'PY'
import random, sys
rng = random.Random(3)
with open(sys.argv[1], "r+b") as f:
    for _ in range(100):
        f.seek(rng.randrange(int(sys.argv[2]) << 20))
        f.write(rng.randbytes(4096))
PY
synced "100 small writes to the $BIG_MIB MiB file"
after=$(json p "sum(r.get('data_bytes', 0) for r in j['sessions'][0]['rows'])" georep status gs)
sent=$((after - before))
echo "ok: 100 x 4 KiB writes to a $BIG_MIB MiB file sent $sent bytes of file data"
[ "$sent" -lt $((8 << 20)) ] || fail "small writes to a large file sent $sent bytes (whole file re-sent?)"
echo "PASS"
