#!/usr/bin/env bash
# Geo-replication soak: the initial sync of a pre-populated volume of 10,000 files (issue 6),
# with changes made while the crawl runs. Two sites on one machine (127.0.0.1 primary,
# 127.0.0.2 secondary), the embedded broker, a FUSE mount on the primary. It checks that:
#   - `georep status` shows the crawl ("Initial sync") with files and bytes done and total and
#     an ETA, in the table, in `detail` and in `--json`, while it runs;
#   - creates, writes, renames (of directories too) and deletes made during the crawl arrive;
#   - after a completed checkpoint, `georep verify` says identical, with no failures.
# It prints the crawl's throughput (files/s, MB/s). Not in the default suite (ctest label
# "soak"): DRFS_TEST_SOAK=1 scripts/test, or ctest --test-dir build/asan -L soak.
set -euo pipefail
DRFS=${1:?usage: georep_soak_test.sh PATH_TO_DRFS}
FILES=${DRFS_SOAK_FILES:-10000}
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root for FUSE"; exit 77; }
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
T=$(mktemp -d /tmp/drfs-e2e-georep-soak-XXXXXX)
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/sites.sh
. "$HERE/lib/sites.sh"
trap sites_cleanup EXIT
sites_setup

# The tree: FILES files of 1-16 KiB in 100 directories of 10 subdirectories, a few large files,
# hard links, symlinks and xattrs.
python3 - "$PM" "$FILES" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
dirs = []
for i in range(100):
    for j in range(10):
        p = os.path.join(root, "t%02d" % i, "s%d" % j)
        os.makedirs(p, exist_ok=True)
        dirs.append(p)
for k in range(n):
    p = os.path.join(dirs[k % len(dirs)], "f%05d" % k)
    with open(p, "wb") as f:
        f.write(rng.randbytes(rng.randrange(1024, 16384)))
    if k % 500 == 0:
        os.setxattr(p, "user.k", b"v%d" % k)
    if k % 700 == 0:
        os.link(p, os.path.join(dirs[(k + 3) % len(dirs)], "hl%05d" % k))
    if k % 900 == 0:
        os.symlink("f%05d" % k, os.path.join(dirs[k % len(dirs)], "ln%05d" % k))
for k in range(4):
    with open(os.path.join(root, "big%d" % k), "wb") as f:
        f.write(rng.randbytes(6 << 20))
print("populated: %d files" % n)
EOF
total_bytes=$(du -sb --apparent-size "$PM" | cut -f1)

d p georep create pvol "127.0.0.2:$PORT::svol" --name gs >/dev/null || fail "georep create"
start_ns=$(date +%s%N)
d p georep start gs >/dev/null || fail "georep start"

# While the crawl runs: status shows it, and the tree changes.
seen_json=0
seen_table=0
for _ in $(seq 1 600); do
  if d p georep status gs --json > "$T/st.json" 2>/dev/null &&
     python3 - "$T/st.json" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))["sessions"][0]["rows"]
r = [r for r in rows if r.get("crawl") == "Initial sync" and r.get("crawl_files_total", 0) > 0]
sys.exit(0 if r and r[0]["crawl_files_done"] > 0 and "crawl_eta_s" in r[0] and r[0]["crawl_bytes_total"] > 0 else 1)
EOF
  then
    seen_json=1
    d p georep status gs > "$T/st.txt" && grep -q "Initial sync [0-9]*%" "$T/st.txt" && seen_table=1
    d p georep status gs detail > "$T/st-detail.txt"
    grep -q "initial sync from journal LSN .* files, .* applied, ETA" "$T/st-detail.txt" ||
      fail "status detail does not show the crawl's progress: $(cat "$T/st-detail.txt")"
    break
  fi
  sleep 0.2
done
[ $seen_json = 1 ] || fail "status --json never showed the initial sync's progress"
[ $seen_table = 1 ] || fail "the status table never showed 'Initial sync NN%'"
grep "Initial sync" "$T/st-detail.txt" | head -3
grep "initial sync from" "$T/st-detail.txt"

python3 - "$PM" <<'EOF'
import os, random, sys
root = sys.argv[1]
rng = random.Random(2)
for k in range(300):
    a, b = rng.randrange(100), rng.randrange(10)
    d = os.path.join(root, "t%02d" % a, "s%d" % b)
    try:
        op = k % 6
        if op == 0:
            with open(os.path.join(d, "new%d" % k), "wb") as f:
                f.write(rng.randbytes(3000))
        elif op == 1:
            names = os.listdir(d)
            if names:
                with open(os.path.join(d, rng.choice(names)), "r+b") as f:
                    f.seek(100)
                    f.write(b"changed during the crawl")
        elif op == 2:
            names = [n for n in os.listdir(d) if n.startswith("f")]
            if names:
                os.unlink(os.path.join(d, rng.choice(names)))
        elif op == 3:
            names = [n for n in os.listdir(d) if n.startswith("f")]
            if names:
                dst = os.path.join(root, "t%02d" % rng.randrange(100), "s%d" % rng.randrange(10))
                os.rename(os.path.join(d, rng.choice(names)), os.path.join(dst, "mv%d" % k))
        elif op == 4:
            # A directory moves from one part of the tree to another.
            src = os.path.join(root, "t%02d" % a, "s%d" % b)
            os.rename(src, os.path.join(root, "t%02d" % rng.randrange(100), "moved%d" % k))
        else:
            os.makedirs(os.path.join(d, "nd%d" % k, "deeper"), exist_ok=True)
    except (FileNotFoundError, OSError):
        pass
print("changes during the crawl: done")
EOF

crawling() {
  d p georep status gs --json | python3 -c "
import json, sys
rows = json.load(sys.stdin)['sessions'][0]['rows']
sys.exit(0 if any(r.get('crawl') == 'Initial sync' for r in rows) else 1)"
}
for _ in $(seq 1 3000); do crawling || break; sleep 0.2; done
crawling && fail "the initial sync did not finish in 10 minutes"
end_ns=$(date +%s%N)
ms=$(((end_ns - start_ns) / 1000000))
python3 -c "
import sys
files, size, ms = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
print('initial sync: %d files, %.1f MB in %.1f s: %.0f files/s, %.1f MB/s' % (files, size / 1e6, ms / 1e3, files * 1000 / ms, size / 1e3 / ms))
" "$FILES" "$total_bytes" "$ms"

d p georep checkpoint gs set now >/dev/null || fail "checkpoint set"
d p georep checkpoint gs wait --timeout 600 || fail "checkpoint did not complete"
if ! d p georep verify gs > "$T/verify.out" 2>&1; then
  head -40 "$T/verify.out" >&2
  fail "verify found differences after the initial sync"
fi
echo "ok: $(tail -1 "$T/verify.out")"
d p georep status gs --json | python3 -c "
import json, sys
s = json.load(sys.stdin)['sessions'][0]
a = s['applier']
assert not a['failures'], a['failures']
assert all(p['crawl_done'] for p in a['positions']), a['positions']
" || fail "the applier reports failures, or a crawl that is not done"
echo "PASS"
