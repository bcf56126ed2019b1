#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The blkv tool: help on every command, clear errors and exit codes on bad
# input, binary/text round trips, and replay of clean and failing traces.
# Usage: test_cli.sh BLKV TRACES_DIR
set -u
BLKV=$1
TRACES=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# expect CODE PATTERN -- CMD...: exit code CODE and output matching PATTERN
expect() {
    local code=$1 pat=$2 out rc
    shift 3
    out=$("$@" 2>&1)
    rc=$?
    if [ "$rc" != "$code" ]; then
        fail "$* exited $rc, wanted $code; output: $(echo "$out" | head -5)"
    elif [ -n "$pat" ] && ! grep -qE -- "$pat" <<<"$out"; then
        fail "$* output lacks /$pat/: $(echo "$out" | head -5)"
    else
        echo "ok   $*"
    fi
}

for c in run decode encode gen prop drivers; do
    expect 0 "usage: blkv $c" -- "$BLKV" "$c" --help
done
expect 0 "commands:" -- "$BLKV" --help
expect 2 "unknown command" -- "$BLKV" frobnicate
expect 2 "usage" -- "$BLKV"

# drivers lists the registry with capabilities
expect 0 "^raw" -- "$BLKV" drivers
expect 0 "capabilities: align" -- "$BLKV" drivers raw
expect 2 "unknown driver 'nope'" -- "$BLKV" drivers nope
expect 0 "fault events: data_read data_write flush cow_read .* l2_alloc .* header_update" -- "$BLKV" drivers qcow2
expect 0 "after a crash: the check may find leaked space" -- "$BLKV" drivers qcow2
expect 0 "fault events \\(where its options allow, not the default ones\\): data_read .* l2_update .* cluster_alloc \\(event-13\\)" -- "$BLKV" drivers nbd
expect 0 "crash ops: kill its server where its options allow" -- "$BLKV" drivers nbd
expect 0 "fault events: none \\(crash and fault ops need an in-process driver\\)" -- "$BLKV" drivers file

# prop draws qcow2's image options per program unless --fixed; options given stay fixed
expect 0 "^prop: varying image options per program \(--fixed to keep 'qcow2' for every program\)" -- \
    "$BLKV" prop -d qcow2 -r 3 -q -s "$T"
expect 0 "varying image options per program; fixed: version=2 cluster-size=4096" -- \
    "$BLKV" prop -d "qcow2 version=2 cluster-size=4096" -r 3 -q -s "$T"
expect 0 "^prop: driver 'qcow2', seed 0" -- "$BLKV" prop -d qcow2 --fixed -r 3 -q -s "$T"
expect 0 "^prop: driver 'raw', seed 0" -- "$BLKV" prop -d raw -r 3 -q -s "$T"

# bad traces: one-line errors naming file and line, exit 2
printf 'size 1M\nwrite 0 512\nwrtie 0 512\n' >"$T/typo.trace"
expect 2 "typo.trace:3:" -- "$BLKV" run "$T/typo.trace"
printf 'write 0\n' >"$T/trunc.trace"
expect 2 "trunc.trace:1:" -- "$BLKV" run "$T/trunc.trace"
printf 'write 0 512\ncancel #7\n' >"$T/cancel.trace"
expect 2 "cancel.trace:2:" -- "$BLKV" run "$T/cancel.trace"
printf 'driver nosuch\nwrite 0 512\n' >"$T/drv.trace"
expect 2 "unknown driver 'nosuch'" -- "$BLKV" run "$T/drv.trace"
printf 'driver raw colour=blue\nwrite 0 512\n' >"$T/opt.trace"
expect 2 "no option 'colour'" -- "$BLKV" run "$T/opt.trace"
expect 2 "no option 'colour'" -- "$BLKV" run --driver "raw colour=blue" "$T/typo.trace"
expect 2 "No such file" -- "$BLKV" run "$T/missing.trace"
expect 2 "no input files" -- "$BLKV" run
expect 2 "not a number" -- "$BLKV" gen --seed banana

# a clean trace replays clean
printf 'size 1M\nwrite 0 4096\nread 0 4096\n' >"$T/clean.trace"
expect 0 "ok \(" -- "$BLKV" run "$T/clean.trace"

# round trips: gen -> encode -> decode -> encode gives the same bytes
for seed in 1 2 3 42 1000; do
    "$BLKV" gen --seed $seed --ops 200 >"$T/g.trace" || fail "gen --seed $seed"
    "$BLKV" encode "$T/g.trace" -o "$T/g.bin" || fail "encode seed $seed"
    "$BLKV" decode "$T/g.bin" >"$T/g2.trace" || fail "decode seed $seed"
    "$BLKV" encode "$T/g2.trace" -o "$T/g2.bin" || fail "re-encode seed $seed"
    cmp -s "$T/g.bin" "$T/g2.bin" || fail "binary round trip differs for seed $seed"
    grep -v '^#' "$T/g.trace" >"$T/a" ; grep -v '^#' "$T/g2.trace" >"$T/b"
    cmp -s "$T/a" "$T/b" || fail "text round trip differs for seed $seed"
    # and the generated program runs clean on raw
    expect 0 "ok \(" -- "$BLKV" run "$T/g.trace"
done

# a user's raw image as initial content (blkverify's raw + test pair): the raw
# driver opened on the image itself must read back exactly the image, with
# overlapping requests serialized; a driver losing writes on top of it fails
head -c 1048576 /dev/urandom >"$T/raw.img"
cat >"$T/pair.trace" <<EOT
driver raw
size 1M
init image raw.img
lower raw.img
serialize on
read 0 1048576
write 4096 8192
read 0 65536
wzero 0 512
read 0 8192
EOT
expect 0 "ok \(" -- "$BLKV" run "$T/pair.trace"
sed 's/^lower raw.img$//' "$T/pair.trace" >"$T/fill.trace"   # the core writes the image first
expect 0 "ok \(" -- "$BLKV" run "$T/fill.trace"
head -c 1048576 /dev/urandom >"$T/other.img"
sed 's/^lower raw.img$/lower other.img/' "$T/pair.trace" >"$T/wrong.trace"
expect 1 "contents mismatch at offset 0" -- "$BLKV" run "$T/wrong.trace"
sed 's/^driver raw$/driver buggy mode=lost-write every=1/' "$T/pair.trace" >"$T/lost.trace"
# (the image is random: its first byte at 4096 equals the lost write's one
# time in 256, and then the mismatch starts a byte or few later)
expect 1 "contents mismatch at offset (409[6-9]|410[0-3])$" -- "$BLKV" run "$T/lost.trace"
printf 'init image nonexistent.img\nread 0 512\n' >"$T/noimg.trace"
expect 2 "nonexistent.img" -- "$BLKV" run "$T/noimg.trace"

# garbage binary input never crashes the tool
head -c 3000 /dev/urandom >"$T/garbage.bin"
"$BLKV" run --binary "$T/garbage.bin" >"$T/out" 2>&1
rc=$?
[ $rc -le 2 ] || fail "garbage input: exit $rc: $(head -3 "$T/out")"

# a failing trace: exit 1, blkverify first line, reproducer saved and replayable
if [ -f "$TRACES/buggy-lost-write.trace" ]; then
    expect 1 "^blkverify: read offset=" -- "$BLKV" run --save "$T/repro" "$TRACES/buggy-lost-write.trace"
    r=$(ls "$T"/repro/*.trace 2>/dev/null | head -1)
    if [ -n "$r" ]; then
        expect 1 "blkverify:" -- "$BLKV" run "$r"
        expect 0 "ok \(" -- "$BLKV" run --driver raw "$r"
    else
        fail "no reproducer saved"
    fi
fi

# after a power loss the report says so, and what the found data was: here
# the lost write's older data, durable once but replaced by a durable write
cat >"$T/crash.trace" <<'EOF'
driver buggy mode=lost-write every=2
size 1M
sched fifo
write 0 4096
drain
flush
drain
write 0 4096
drain
flush
drain
write 0 4096
crash
read 0 4096
EOF
for pat in "after crash at op 9 \(1 crash in" \
           "#2 \(op 4: write 0 4096\) t=[0-9.]+, ok \[durable\]" \
           "submitted t=[0-9]+, lost in the crash at op 9 \[maybe\] \[volatile\]" \
           "the found data was durable \(written with FUA, or flushed after it completed\); a durable write had replaced it"; do
    expect 1 "$pat" -- "$BLKV" run "$T/crash.trace"
done
# the same program on a correct driver is clean whatever the crash keeps
for n in 0 1 2 3 255; do
    sed -e 's/^driver .*/driver raw/' -e "s/^crash$/crash $n/" "$T/crash.trace" >"$T/crash-ok.trace"
    expect 0 "ok \(" -- "$BLKV" run "$T/crash-ok.trace"
done
printf 'driver raw\nsize 1M\nwrite 0 512\ncrash\n' >"$T/crash1.trace"
expect 0 "ok \(" -- "$BLKV" run --save-crash-images "$T/cimg" "$T/crash1.trace"
[ -f "$T/cimg/crash-1.lower0" ] || fail "--save-crash-images wrote no crash-1.lower0"
expect 2 "one input file" -- "$BLKV" run --save-crash-images "$T/cimg" "$T/crash1.trace" "$T/crash1.trace"
expect 2 "save-crash-images /dev/null/x" -- "$BLKV" run --save-crash-images /dev/null/x "$T/crash1.trace"

echo "$fails failed"
[ $fails = 0 ]
