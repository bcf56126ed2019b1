#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# A sanitizer finding in a fuzz target leaves the trace text of the input
# beside the crash file, and `blkv run` replays it: plugin_fuzzer over the
# test plugin ovf.so (a heap overflow on writes past 1 MiB) is run on an
# input that writes there.  Under libFuzzer the text goes to
# ARTIFACT_PREFIX/crash-SHA1.trace beside libFuzzer's crash-SHA1; in a
# standalone replay build, to $BLKV_REPRO_DIR/crash-SHA1.trace.  An input
# that runs clean leaves nothing.  Exit 0 pass, 1 fail, 77 skip (a build
# without sanitizers: nothing stops the run).
#
# usage: test_sanitizer_trace.sh BLKV PLUGIN_FUZZER OVF_SO SANITIZE(ON|OFF) ENGINE
set -uo pipefail
blkv=$1 target=$2 plugin=$3 sanitize=$4 engine=$5
case $sanitize in ON | on | 1 | TRUE | true) ;; *) echo "skip: not a sanitizer build"; exit 77 ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

printf 'size 4M\nqd 1\nwrite 0 4096\nwrite 1M 4096\nread 1M 4096\n' >"$tmp/bad.trace"
printf 'size 4M\nqd 1\nwrite 0 4096\nread 0 4096\n' >"$tmp/good.trace"
"$blkv" encode -o "$tmp/bad.bin" "$tmp/bad.trace" || fail "blkv encode"
"$blkv" encode -o "$tmp/good.bin" "$tmp/good.trace" || fail "blkv encode"
sha=$(sha1sum "$tmp/bad.bin" | cut -d' ' -f1)
mkdir -p "$tmp/art" "$tmp/repro"
if [ "$engine" = libfuzzer ]; then
    want=$tmp/art/crash-$sha.trace
    # as a corpus, not a file argument: libFuzzer saves no artifacts for the latter
    run() {
        rm -rf "$tmp/corpus" && mkdir "$tmp/corpus" && cp "$1" "$tmp/corpus/" &&
            BLKV_PLUGIN=$plugin BLKV_REPRO_DIR=$tmp/repro "$target" -runs=0 \
                -artifact_prefix="$tmp/art/" "$tmp/corpus"
    }
else
    want=$tmp/repro/crash-$sha.trace
    run() { BLKV_PLUGIN=$plugin BLKV_REPRO_DIR=$tmp/repro "$target" "$1"; }
fi

# a clean input: no report, no file
run "$tmp/good.bin" >"$tmp/good.log" 2>&1 || { cat "$tmp/good.log"; fail "clean input failed"; }
left=$(find "$tmp/art" "$tmp/repro" -type f)
[ -z "$left" ] || fail "a clean input left files: $left"

run "$tmp/bad.bin" >"$tmp/bad.log" 2>&1 && fail "the overflow went unnoticed"
grep -q 'heap-buffer-overflow' "$tmp/bad.log" || { tail -20 "$tmp/bad.log"; fail "no ASan report"; }
grep -q '^SUMMARY: AddressSanitizer: heap-buffer-overflow' "$tmp/bad.log" ||
    fail "the sanitizer's summary line is gone"
[ -f "$want" ] || { tail -20 "$tmp/bad.log"; ls "$tmp/art" "$tmp/repro"; fail "no $want"; }
grep -qF "blkv: trace text of this input: $want" "$tmp/bad.log" || fail "the log does not name $want"
if [ "$engine" = libfuzzer ]; then
    [ -f "$tmp/art/crash-$sha" ] || fail "libFuzzer's crash-$sha is not beside it"
    cmp -s "$tmp/art/crash-$sha" "$tmp/bad.bin" || fail "crash-$sha is not the input"
fi
head -1 "$want" | grep -q '^# SUMMARY: AddressSanitizer: heap-buffer-overflow' ||
    fail "the trace does not start with the summary: $(head -1 "$want")"
grep -q '^driver ovf$' "$want" || fail "the trace names no driver: $(cat "$want")"
grep -q '^write 1048576 4096' "$want" || fail "the trace lacks the write: $(cat "$want")"

# blkv run replays it: the same overflow
"$blkv" run --load "$plugin" "$want" >"$tmp/replay.log" 2>&1 && fail "the replay ran clean"
grep -q 'heap-buffer-overflow' "$tmp/replay.log" || { tail -20 "$tmp/replay.log"; fail "the replay does not overflow"; }
echo "ok: $(basename "$want") beside the crash; blkv run replays the overflow"
