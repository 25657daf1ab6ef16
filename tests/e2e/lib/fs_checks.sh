# File-system checks for end-to-end tests and benchmarks, each taking a directory: a drfs FUSE
# mount, a brick's backend directory, a GlusterFS mount or a plain local directory. Source it:
#
#   . tests/e2e/lib/fs_checks.sh
#   run_fio_verify /mnt/pvol            # fio writes with crc32c, reads back and checks
#   run_dbench /mnt/pvol 20             # dbench's NetBench load for 20 s; fails on any error
#   tree_digest /data/b1 > b1.txt       # one line per path, stable across bricks
#   diff <(tree_digest /data/b1) <(tree_digest /data/b2)
#
# Every function prints what it did and returns non-zero (never exits) when the check failed,
# so a caller under `set -e` stops there and one that is not can count failures.
# Needs fio, dbench and python3 (scripts/bootstrap installs them). Dropping the page cache
# between write and verify needs root; without it the verify pass may be served from cache,
# and the function says so.

# fio job sizes; the defaults take ~5 s on a local disk and ~20-40 s on a FUSE mount.
: "${FIO_SEQ_SIZE:=48m}"   # per job, 2 jobs, 128 KiB sequential writes
: "${FIO_RAND_SIZE:=16m}"  # per job, 2 jobs of 4 KiB random writes, 1 of 4-64 KiB
: "${DBENCH_CLIENTS:=4}"

_fs_checks_fail() {
  echo "FAIL: $*" >&2
  return 1
}

# Drops clean page cache, dentries and inodes, so that what follows reads from the file system
# (through FUSE: from the daemon). Returns 1 when it cannot (not root).
drop_caches() {
  sync
  if [ -w /proc/sys/vm/drop_caches ]; then
    echo 3 >/proc/sys/vm/drop_caches
  else
    return 1
  fi
}

# Writes a fio job file for DIR on stdout: sequential and random writers with crc32c verify
# headers in every block; verify_only=1 as $2 makes the same jobs read back and check instead.
_fio_jobfile() {
  local dir=$1 verify_only=${2:-0}
  cat <<EOF
[global]
directory=$dir
ioengine=psync
verify=crc32c
verify_fatal=1
do_verify=1
verify_only=$verify_only
verify_state_save=0
end_fsync=1
randrepeat=1
group_reporting=0

[seq]
rw=write
bs=128k
size=$FIO_SEQ_SIZE
numjobs=2

[rand4k]
rw=randwrite
bs=4k
size=$FIO_RAND_SIZE
numjobs=2

[randmix]
rw=randwrite
bsrange=4k-64k
size=$FIO_RAND_SIZE
numjobs=1
EOF
}

# Runs the jobs and checks fio's exit status and every job's error field; prints one line per
# job. $1 DIR, $2 verify_only (0/1), $3 label.
_fio_run() {
  local dir=$1 verify_only=$2 label=$3 tmp rc=0
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/fs-checks-fio.XXXXXX")
  _fio_jobfile "$dir" "$verify_only" >"$tmp/jobs.fio"
  # from $tmp: whatever fio leaves in its working directory goes with it
  (cd "$tmp" && fio --output-format=json --output="$tmp/out.json" "$tmp/jobs.fio") \
    >"$tmp/stdout" 2>&1 || rc=$?
  if [ ! -s "$tmp/out.json" ] || ! python3 - "$tmp/out.json" "$label" <<'PY'; then
import json, sys
text = open(sys.argv[1]).read()
# fio may print notes before the JSON document
doc = json.loads(text[text.index("{"):])
bad = 0
for j in doc["jobs"]:
    w, r = j["write"], j["read"]
    wrote = "" if sys.argv[2] == "verify-only" else "write %7.1f MiB/s %5d MiB, " % (
        w["bw"] / 1024, w["io_kbytes"] // 1024)
    print("  fio %-11s %-8s err=%-3d %sread %7.1f MiB/s %5d MiB" % (
        sys.argv[2], j["jobname"], j["error"], wrote, r["bw"] / 1024, r["io_kbytes"] // 1024))
    if j["error"] != 0:
        bad += 1
    # every job must have moved data: a verify pass reads, a write pass writes and reads back
    if r["io_kbytes"] == 0:
        print("  fio %s %s read nothing back" % (sys.argv[2], j["jobname"]))
        bad += 1
sys.exit(1 if bad else 0)
PY
    rc=1
  fi
  if [ $rc -ne 0 ]; then
    echo "fio ($label) failed in $dir; its output:" >&2
    grep -v '^$' "$tmp/stdout" | tail -20 >&2
    rm -rf "$tmp"
    return 1
  fi
  rm -rf "$tmp"
}

# fio_write DIR: the write pass (each job writes its file, then reads it back and checks it);
# leaves the files in DIR/fio.
fio_write() {
  local dir=${1:?usage: fio_write DIR}
  mkdir -p "$dir/fio" || return 1
  _fio_run "$dir/fio" 0 write+verify
}

# fio_verify_only DIR: reads back the files fio_write left and checks every block's crc32c.
fio_verify_only() {
  local dir=${1:?usage: fio_verify_only DIR}
  _fio_run "$dir/fio" 1 verify-only
}

# run_fio_verify DIR: fio_write, drop the page cache, fio_verify_only, remove the files.
run_fio_verify() {
  local dir=${1:?usage: run_fio_verify DIR} start=$SECONDS
  echo "run_fio_verify $dir: 2x$FIO_SEQ_SIZE sequential, 2x$FIO_RAND_SIZE 4k random," \
    "$FIO_RAND_SIZE 4k-64k random; crc32c"
  fio_write "$dir" || { rm -rf "$dir/fio"; _fs_checks_fail "run_fio_verify: write pass in $dir"; return 1; }
  drop_caches || echo "  (not root: the page cache was not dropped; the verify pass may read cached pages)"
  fio_verify_only "$dir" || { rm -rf "$dir/fio"; _fs_checks_fail "run_fio_verify: verify pass in $dir"; return 1; }
  rm -rf "$dir/fio" || return 1
  echo "run_fio_verify $dir: ok ($((SECONDS - start)) s)"
}

# run_dbench DIR SECONDS: dbench's NetBench load (client.txt) with DBENCH_CLIENTS clients.
# Fails when dbench exits non-zero, prints an error, or prints no throughput.
run_dbench() {
  local dir=${1:?usage: run_dbench DIR SECONDS} secs=${2:?usage: run_dbench DIR SECONDS}
  local loadfile out rc=0
  for loadfile in /usr/share/dbench/client.txt /usr/share/doc/dbench/loadfiles/client.txt ""; do
    [ -f "$loadfile" ] && break
  done
  [ -n "$loadfile" ] || { _fs_checks_fail "run_dbench: no dbench loadfile (apt-get install dbench)"; return 1; }
  out=$(mktemp "${TMPDIR:-/tmp}/fs-checks-dbench.XXXXXX")
  echo "run_dbench $dir: $DBENCH_CLIENTS clients, ${secs} s, $loadfile"
  (cd "$dir" && dbench -D "$dir" -t "$secs" -c "$loadfile" "$DBENCH_CLIENTS") >"$out" 2>&1 || rc=$?
  if [ $rc -ne 0 ] || grep -qiE 'error|failed' "$out" || ! grep -q '^Throughput' "$out"; then
    echo "dbench in $dir failed (exit $rc); its output:" >&2
    grep -iE 'error|failed' "$out" | head -20 >&2
    tail -5 "$out" >&2
    rm -f "$out"
    rm -rf "$dir/clients"
    return 1
  fi
  echo "  $(grep '^Throughput' "$out")"
  rm -f "$out"
  rm -rf "$dir/clients"
}

# tree_digest DIR: one line per path under DIR (DIR itself is "."), sorted by path bytes, the
# top-level .drfs directory (a brick's own state) left out:
#   PATH TYPE MODE UID GID SIZE CONTENT XATTRS
# TYPE f d l p s c b; MODE octal permission bits; SIZE "-" for directories (their size depends
# on history, not content); CONTENT the sha256 of a file, the target of a symlink, major:minor
# of a device, "-" otherwise; XATTRS the sorted user.* and trusted.* attributes but
# trusted.drfs.pending (name=value; trusted.drfs.gfid and any non-printable value in hex).
# Bytes outside printable ASCII, spaces and backslashes in names and values are \xNN escaped.
# Times and link counts are not compared. trusted.* are only visible to root.
tree_digest() {
  local dir=${1:?usage: tree_digest DIR}
  [ -d "$dir" ] || { _fs_checks_fail "tree_digest: $dir is not a directory"; return 1; }
  python3 - "$dir" <<'PY'
import hashlib, os, stat, sys

root = os.fsencode(sys.argv[1])
HEX_ALWAYS = {b"trusted.drfs.gfid"}
SKIP = {b"trusted.drfs.pending"}

def esc(b):
    out = []
    for ch in b:
        if 0x21 <= ch < 0x7f and ch != 0x5c:
            out.append(chr(ch))
        else:
            out.append("\\x%02x" % ch)
    return "".join(out)

def value(name, v):
    if name in HEX_ALWAYS or any(not (0x20 <= ch < 0x7f) for ch in v):
        return "0x" + v.hex()
    return esc(v)

def xattrs(path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return "-"
    parts = []
    for n in sorted(os.fsencode(n) for n in names):
        if not (n.startswith(b"user.") or n.startswith(b"trusted.")) or n in SKIP:
            continue
        v = os.getxattr(path, n, follow_symlinks=False)
        parts.append(esc(n) + "=" + value(n, v))
    return ",".join(parts) if parts else "-"

def describe(rel, path):
    st = os.lstat(path)
    m = st.st_mode
    size, content = str(st.st_size), "-"
    if stat.S_ISREG(m):
        kind = "f"
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        content = h.hexdigest()
    elif stat.S_ISDIR(m):
        kind, size = "d", "-"
    elif stat.S_ISLNK(m):
        kind, content = "l", esc(os.readlink(path))
    elif stat.S_ISFIFO(m):
        kind = "p"
    elif stat.S_ISSOCK(m):
        kind = "s"
    elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
        kind = "c" if stat.S_ISCHR(m) else "b"
        content = "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
    else:
        kind = "?"
    return " ".join([esc(rel), kind, "%04o" % stat.S_IMODE(m), str(st.st_uid), str(st.st_gid),
                     size, content, xattrs(path)])

lines = []
def walk(rel):
    path = root if rel == b"." else root + b"/" + rel
    lines.append((rel, describe(rel, path)))
    if os.path.isdir(path) and not os.path.islink(path):
        for name in os.listdir(path):
            if rel == b"." and name == b".drfs":
                continue
            walk(name if rel == b"." else rel + b"/" + name)

walk(b".")
for _, line in sorted(lines):
    sys.stdout.write(line + "\n")
PY
}

# tree_digest_sum DIR: the sha256 of tree_digest's output, one word.
tree_digest_sum() {
  local d
  d=$(tree_digest "$@") || return 1
  printf '%s\n' "$d" | sha256sum | cut -d' ' -f1
}
