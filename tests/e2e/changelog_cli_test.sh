#!/usr/bin/env bash
# End-to-end test of `drfs changelog` as an operator uses it: append, dump (text and JSON),
# status, cursors, purge, a torn tail, corruption, and bad arguments with their exit codes.
set -euo pipefail
DRFS=${1:?usage: changelog_cli_test.sh PATH_TO_DRFS}
T=$(mktemp -d /tmp/drfs-e2e-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_exit() {  # expect_exit CODE CMD... : runs CMD, checks its exit code, keeps stderr
  local want=$1; shift
  set +e; "$@" >"$T/out" 2>"$T/err"; local got=$?; set -e
  [ "$got" = "$want" ] || fail "'$*' exited $got, want $want: $(cat "$T/err")"
}
ROOT=00000000-0000-0000-0000-000000000001
B=$T/brick1

# A scripted set of mutations on a brick directory.
D=$("$DRFS" changelog append "$B" MKDIR --parent $ROOT --name docs --mode 0755 | awk '{print $3}')
F=$("$DRFS" changelog append "$B" CREATE --parent "$D" --name "report.txt" --mode 0644 --uid 1000 --gid 1000 | awk '{print $3}')
"$DRFS" changelog append "$B" WRITE --gfid "$F" --offset 0 --length 65536 >/dev/null
"$DRFS" changelog append "$B" SETXATTR --gfid "$F" --xattr user.tag >/dev/null
"$DRFS" changelog append "$B" RENAME --gfid "$F" --parent "$D" --name report.txt --new-parent $ROOT --new-name final.txt >/dev/null
"$DRFS" changelog append "$B" SETATTR --gfid "$F" --mode 0600 --mtime-ns 1700000000000000000 >/dev/null
"$DRFS" changelog append "$B" UNLINK --gfid "$F" --parent $ROOT --name final.txt >/dev/null
"$DRFS" changelog append "$B" RMDIR --gfid "$D" --parent $ROOT --name docs >/dev/null

J=$B/.drfs/changelog
[ -d "$J" ] || fail "journal not created in the brick's .drfs/changelog"

"$DRFS" changelog dump "$B" >"$T/dump"
[ "$(wc -l <"$T/dump")" = 8 ] || fail "dump should show 8 records: $(cat "$T/dump")"
grep -q '^1 .* MKDIR .*name="docs" mode=0755' "$T/dump" || fail "MKDIR line: $(head -1 "$T/dump")"
grep -q "^5 .* RENAME gfid=$F parent=$D name=\"report.txt\" new_parent=$ROOT new_name=\"final.txt\" replaced=-" "$T/dump" \
  || fail "RENAME line wrong: $(sed -n 5p "$T/dump")"
grep -q '^6 .* SETATTR .*mode=0600 mtime_ns=1700000000000000000$' "$T/dump" || fail "SETATTR line: $(sed -n 6p "$T/dump")"

"$DRFS" changelog dump "$B" --from-lsn 7 --json >"$T/json"
[ "$(wc -l <"$T/json")" = 2 ] || fail "--from-lsn 7 should give 2 records"
grep -q '"lsn":7,.*"op":"UNLINK",.*"name":"final.txt"' "$T/json" || fail "JSON: $(cat "$T/json")"
"$DRFS" changelog dump "$B" --json >"$T/alljson"
python3 - "$T/alljson" <<'PY' || fail "dump --json is not valid JSON Lines with unique keys"
import json, sys
def unique(pairs):
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), keys
    return dict(pairs)
rows = [json.loads(l, object_pairs_hook=unique) for l in open(sys.argv[1])]
assert [r["lsn"] for r in rows] == list(range(1, 9)), rows
w = rows[2]
assert w["op"] == "WRITE" and w["offset"] == 0 and w["length"] == 65536, w
assert w["segment"].endswith(".clog") and w["segment_offset"] > 64, w
PY

"$DRFS" changelog status "$B" >"$T/status"
grep -q 'LSN 1 .. 8 (8 kept)' "$T/status" || fail "status: $(cat "$T/status")"
grep -q 'none registered' "$T/status" || fail "status should say no cursors"

# Cursors and retention.
"$DRFS" changelog cursor register "$B" syncer-0 3
"$DRFS" changelog status "$B" --json >"$T/sj"
grep -q '"cursors":\[{"name":"syncer-0","lsn":3,"behind":5' "$T/sj" || fail "status --json cursors: $(cat "$T/sj")"
expect_exit 1 "$DRFS" changelog cursor advance "$B" syncer-0 2
grep -q "cannot move back" "$T/err" || fail "backwards cursor message: $(cat "$T/err")"
"$DRFS" changelog purge "$B" | grep -q 'Deleted 0 segment' || fail "purge with one segment deletes nothing"

# A torn tail: dump still shows the complete records and says what it found.
SEG=$(ls "$J"/*.clog | tail -1)
SIZE=$(stat -c %s "$SEG")
truncate -s $((SIZE - 3)) "$SEG"
"$DRFS" changelog dump "$B" >"$T/dump2" 2>"$T/err2"
[ "$(wc -l <"$T/dump2")" = 7 ] || fail "torn tail: want 7 complete records"
grep -q "incomplete record" "$T/err2" || fail "torn tail not reported: $(cat "$T/err2")"
# The next writer cuts it off and continues at LSN 8.
"$DRFS" changelog append "$B" MKDIR --parent $ROOT --name again --mode 0755 | grep -q '^8 MKDIR' || fail "LSN after torn tail"

# Corruption in the middle: a clear DataLoss naming the segment, exit 1, no crash.
printf '\xff' | dd of="$SEG" bs=1 seek=100 conv=notrunc status=none
expect_exit 1 "$DRFS" changelog dump "$B"
grep -q "corrupt at offset" "$T/err" && grep -q "$(basename "$SEG")" "$T/err" || fail "corruption message: $(cat "$T/err")"
expect_exit 1 "$DRFS" changelog append "$B" MKDIR --parent $ROOT --name x --mode 0755
grep -q "last good LSN" "$T/err" || fail "writer corruption message: $(cat "$T/err")"

# Bad arguments: exit 2 with a message that names the problem.
expect_exit 2 "$DRFS" changelog dump
expect_exit 2 "$DRFS" changelog dump "$B" --from-lsn abc
grep -q "'abc' is not a valid" "$T/err" || fail "bad --from-lsn message: $(cat "$T/err")"
expect_exit 2 "$DRFS" changelog dump "$B" --bogus
expect_exit 2 "$DRFS" changelog append "$B" CREATE --parent $ROOT --name "a/b" --mode 0644
grep -q "not a valid entry name" "$T/err" || fail "bad name message: $(cat "$T/err")"
expect_exit 2 "$DRFS" changelog append "$B" FROBNICATE
expect_exit 2 "$DRFS" nosuchgroup
expect_exit 1 "$DRFS" changelog status "$T/does-not-exist"
grep -q "no changelog at" "$T/err" || fail "missing dir message: $(cat "$T/err")"
expect_exit 0 "$DRFS" --help
echo "changelog CLI e2e: all checks passed"
