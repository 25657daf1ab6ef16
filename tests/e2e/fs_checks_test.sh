#!/usr/bin/env bash
# Tests tests/e2e/lib/fs_checks.sh on local directories, so that the checks the mount tests
# rely on are known to pass on a correct file system and to fail on a broken one:
#   - tree_digest: a copy (cp -a) digests the same; each change that matters between bricks
#     (a byte of content, mode, owner, symlink target, user or trusted xattr, gfid, a new name,
#     an odd name) changes the digest; what must not matter (.drfs at the top, the pending
#     xattr, times, a directory's size) does not;
#   - run_fio_verify passes; a flipped byte in a file fio wrote fails its verify pass;
#   - run_dbench passes, and fails on a read-only file system.
# Needs root (trusted.* xattrs, chown, drop_caches, a tmpfs mount); exit 77 (skip) otherwise.
# The first argument (the drfs binary, as for every e2e test) is not used.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: fs_checks_test.sh needs root"
  exit 77
fi
for tool in fio dbench python3; do
  command -v $tool >/dev/null || { echo "SKIP: $tool is not installed (scripts/bootstrap)"; exit 77; }
done
HERE=$(cd "$(dirname "$0")" && pwd)
umask 022
. "$HERE/lib/fs_checks.sh"

T=$(mktemp -d /tmp/drfs-e2e-fschecks-XXXXXX)
cleanup() {
  umount "$T/ro" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# --- tree_digest
A=$T/a
mkdir -p "$A/dir/sub" "$A/.drfs/gfid" "$A/empty"
printf 'hello\n' >"$A/file"
head -c 300000 /dev/urandom >"$A/dir/big"
printf 'x' >"$A/dir/sub/deep"
printf 'odd' >"$A/dir/name with space"
printf 'nl' >"$A/dir/new"$'\n'"line"
ln -s ../file "$A/dir/link"
ln -s missing "$A/dangling"
ln "$A/file" "$A/dir/hardlink"
mkfifo "$A/fifo"
mknod "$A/null" c 1 3
chmod 0640 "$A/dir/big"
chmod 2755 "$A/dir/sub"
chown 1000:1000 "$A/dir/sub/deep"
setfattr() { python3 -c 'import os,sys; os.setxattr(sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]), follow_symlinks=False)' "$@"; }
setfattr "$A/file" user.note 61206e6f7465
setfattr "$A/file" trusted.drfs.gfid 00112233445566778899aabbccddeeff
setfattr "$A/file" trusted.drfs.pending 000000000000000000000001
setfattr "$A/dir" trusted.other 01ff
printf 'junk' >"$A/.drfs/gfid/x"

B=$T/b
cp -a "$A" "$B"
tree_digest "$A" >"$T/a.txt"
[ "$(tree_digest_sum "$A")" = "$(tree_digest_sum "$B")" ] ||
  { diff "$T/a.txt" <(tree_digest "$B") >&2 || true; fail "a cp -a copy digests differently"; }
[ "$(wc -l <"$T/a.txt")" -eq 14 ] || { cat "$T/a.txt" >&2; fail "expected 14 paths (not .drfs)"; }
grep -q '^file f 0644 0 0 6 [0-9a-f]\{64\} trusted.drfs.gfid=0x00112233445566778899aabbccddeeff,user.note=a\\x20note$' "$T/a.txt" ||
  { grep '^file ' "$T/a.txt" >&2; fail "line of 'file' is not as documented"; }
grep -q '^dir/link l 0777 0 0 7 ../file -$' "$T/a.txt" || fail "symlink line"
grep -q '^dir d 0755 0 0 - - trusted.other=0x01ff$' "$T/a.txt" || fail "directory line"
grep -q '^null c 0644 0 0 0 1:3 -$' "$T/a.txt" || fail "device line"
grep -q '^dir/new\\x0aline f ' "$T/a.txt" || fail "a newline in a name is escaped"
grep -q 'pending' "$T/a.txt" && fail "trusted.drfs.pending is in the digest"
grep -q '^\.drfs' "$T/a.txt" && fail ".drfs is in the digest"

same() {  # description: B must still digest as A
  [ "$(tree_digest_sum "$B")" = "$(tree_digest_sum "$A")" ] || fail "digest changed after: $1"
}
differs() {  # description, undo command...: B must digest differently; then undo
  local what=$1
  shift
  [ "$(tree_digest_sum "$B")" != "$(tree_digest_sum "$A")" ] || fail "digest did not change after: $what"
  "$@"
  same "undo of $what"
}
printf 'x' | dd of="$B/dir/big" bs=1 seek=150000 conv=notrunc status=none
differs "one byte of content" cp -a "$A/dir/big" "$B/dir/big"
chmod 0644 "$B/dir/big"
differs "chmod" chmod 0640 "$B/dir/big"
chown 1000 "$B/file"
differs "chown" chown 0 "$B/file"
chgrp 1000 "$B/file"
differs "chgrp" chgrp 0 "$B/file"
ln -sfn ../dir "$B/dir/link"
differs "symlink target" ln -sfn ../file "$B/dir/link"
setfattr "$B/file" user.note 61206e6f7065
differs "user xattr value" setfattr "$B/file" user.note 61206e6f7465
setfattr "$B/dir/sub" user.new 00
differs "new user xattr" python3 -c 'import os; os.removexattr("'"$B/dir/sub"'", "user.new")'
setfattr "$B/file" trusted.drfs.gfid 00112233445566778899aabbccddeefe
differs "gfid" setfattr "$B/file" trusted.drfs.gfid 00112233445566778899aabbccddeeff
touch "$B/empty/new"
differs "new file" rm "$B/empty/new"
mkdir "$B/empty/newdir"
differs "new directory" rmdir "$B/empty/newdir"
mv "$B/dir/name with space" "$B/dir/name with  space"
differs "rename" mv "$B/dir/name with  space" "$B/dir/name with space"
rm "$B/fifo" && mkfifo -m 0600 "$B/fifo"
differs "fifo mode" chmod 0644 "$B/fifo"
: >"$B/dir/sub/deep"
differs "truncate to 0" bash -c "printf x >'$B/dir/sub/deep'"
# What does not matter between bricks:
setfattr "$B/file" trusted.drfs.pending 000000000000000000000002
same "a different trusted.drfs.pending"
printf 'other junk' >"$B/.drfs/gfid/y"
same "a change under the top-level .drfs"
touch -d '2001-01-01' "$B/file" "$B/dir"
same "times"
for i in $(seq 1 500); do : >"$B/empty/f$i"; done
rm -f "$B/empty"/f*
[ "$(stat -c %s "$B/empty")" -gt "$(stat -c %s "$A/empty")" ] || echo "(note: the directory did not grow)"
same "a directory that grew and shrank"
echo "tree_digest: ok"

# --- fio: passes on a local directory; a flipped byte fails the verify pass
F=$T/fio
mkdir -p "$F"
run_fio_verify "$F"
[ -z "$(ls -A "$F")" ] || fail "run_fio_verify left files behind: $(ls "$F")"
FIO_SEQ_SIZE=4m FIO_RAND_SIZE=2m fio_write "$F"
victim=$F/fio/rand4k.1.0
[ -f "$victim" ] || fail "fio did not write $victim: $(ls "$F/fio")"
printf '\xff' | dd of="$victim" bs=1 seek=1000000 conv=notrunc status=none
drop_caches
if FIO_SEQ_SIZE=4m FIO_RAND_SIZE=2m fio_verify_only "$F" 2>"$T/fio.err"; then
  fail "fio_verify_only passed over a corrupted file"
fi
grep -qi "verify\|crc32c\|bad" "$T/fio.err" || { cat "$T/fio.err" >&2; fail "fio's failure did not name the verify"; }
echo "fio: ok (a corrupted block is caught)"

# --- dbench: passes on a local directory; fails on a read-only one
D=$T/dbench
mkdir -p "$D"
run_dbench "$D" 3
[ -z "$(ls -A "$D")" ] || fail "run_dbench left files behind"
mkdir -p "$T/ro"
mount -t tmpfs -o ro,size=16m tmpfs "$T/ro"
if run_dbench "$T/ro" 2 2>"$T/dbench.err"; then
  fail "run_dbench passed on a read-only file system"
fi
echo "dbench: ok (a read-only file system fails)"
echo "PASS"
