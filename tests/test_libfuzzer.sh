#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The targets under libFuzzer: buggy_fuzzer finds each bug mode from an
# empty corpus (fixed seed, bounded runs) with a report of the right kind,
# and raw_fuzzer, and buggy_fuzzer in a correct mode (the write-back cache),
# run clean for a bounded number of runs from the shared seeds.
# Exit 0 pass, 1 fail, 77 skip (no clang with libFuzzer).
#
# usage: test_libfuzzer.sh build SRC BINDIR   build raw_fuzzer and buggy_fuzzer
#                                             with clang -fsanitize=fuzzer in BINDIR
#        test_libfuzzer.sh buggy SRC BINDIR MODE
#        test_libfuzzer.sh raw SRC BINDIR
#        test_libfuzzer.sh silent SRC BINDIR MODE   buggy_fuzzer, MODE a correct one
# BINDIR holds the targets (BINDIR/fuzz/*_fuzzer after "build", or the
# build's own fuzz/ directory when it is a libFuzzer build).
set -uo pipefail
cmd=$1 src=$2 bindir=$3
bin() {
    if [ -x "$bindir/fuzz/$1_fuzzer" ]; then echo "$bindir/fuzz/$1_fuzzer"; else echo "$bindir/$1_fuzzer"; fi
}

case $cmd in
build)
    # no libFuzzer here: leave a note, and the tests that need it skip
    rm -f "$bindir/unavailable"
    mkdir -p "$bindir"
    probe=$bindir/probe.c
    printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' >"$probe"
    if ! command -v clang >/dev/null || ! clang -fsanitize=fuzzer "$probe" -o "$bindir/probe" 2>/dev/null; then
        echo "clang with libFuzzer not found" >"$bindir/unavailable"
        echo "skip: $(cat "$bindir/unavailable")"
        exit 0
    fi
    CC=clang cmake -S "$src" -B "$bindir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DBLKV_FUZZ_ENGINE=libfuzzer >"$bindir/build.log" 2>&1 &&
        cmake --build "$bindir" -j"$(nproc)" --target raw_fuzzer buggy_fuzzer >>"$bindir/build.log" 2>&1 ||
        { tail -30 "$bindir/build.log"; exit 1; }
    echo "built $(bin raw) $(bin buggy)"
    exit 0
    ;;
buggy | raw | silent) ;;
*) echo "usage: see the comment at the top of $0" >&2; exit 2 ;;
esac

[ -f "$bindir/unavailable" ] && { echo "skip: $(cat "$bindir/unavailable")"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/corpus" "$tmp/artifacts"

if [ "$cmd" = raw ] || [ "$cmd" = silent ]; then
    if [ "$cmd" = raw ]; then
        t=$(bin raw) name=raw_fuzzer mode= runs=4000
        cat "$src/fuzz/program.dict" "$src/fuzz/raw.dict" >"$tmp/dict"
    else
        mode=${4:?silent needs a MODE}
        t=$(bin buggy) name="buggy_fuzzer mode=$mode" runs=20000
        cat "$src/fuzz/program.dict" "$src/fuzz/buggy.dict" >"$tmp/dict"
    fi
    cp "$src/corpus/programs"/* "$tmp/corpus/" # libFuzzer adds to its first corpus directory
    BLKV_BUGGY_MODE=$mode BLKV_REPRO_DIR="$tmp/artifacts" "$t" -seed=1 -runs=$runs \
        -max_len=1024 -dict="$tmp/dict" -artifact_prefix="$tmp/artifacts/" "$tmp/corpus" \
        >"$tmp/log" 2>&1
    rc=$?
    if [ $rc != 0 ]; then
        echo "FAIL: $name exited $rc (a report on a correct driver):"
        grep -aA30 '^blkverify' "$tmp/log" | head -40 || tail -30 "$tmp/log"
        exit 1
    fi
    echo "ok: $name: $(grep -aE '^#[0-9]+' "$tmp/log" | tail -1)"
    exit 0
fi

# the report kinds each mode may give (a lost initial-content write reads as zeros)
mode=$4
case $mode in
lost-write) want='^contents/read/(stale|zeros)$' ;;
stale-read) want='^contents/read/(stale|zeros|torn)$' ;;
misdirected-write) want='^contents/read/(misdirected|stale|zeros)$' ;;
torn-write) want='^contents/read/(torn|stale|zeros)$' ;;
zombie-write) want='^contents/read/zombie$' ;;
wrong-return) want='^retval/(read|write)' ;;
flip-flop) want='^contents/read/(flip-flop|stale|zeros|torn|garbage)$' ;;
zeroes-noop) want='^contents/read/(stale|zeros)$' ;;
# power loss: a durable write lost, all of it or some of its sectors
flush-early | fua-ignored | write-early) want='^contents/read/(stale|zeros|torn)$' ;;
*) echo "unknown mode $mode" >&2; exit 2 ;;
esac
t=$(bin buggy)
cat "$src/fuzz/program.dict" "$src/fuzz/buggy.dict" >"$tmp/dict"
BLKV_BUGGY_MODE=$mode BLKV_REPRO_DIR=- "$t" -seed=1 -runs=200000 -max_total_time=100 \
    -max_len=4096 -dict="$tmp/dict" -artifact_prefix="$tmp/artifacts/" "$tmp/corpus" \
    >"$tmp/log" 2>&1
rc=$?
sig=$(sed -n 's/^  signature: //p' "$tmp/log" | head -1)
execs=$(grep -aoE '^#[0-9]+' "$tmp/log" | tail -1)
if [ $rc = 0 ] || [ -z "$sig" ]; then
    echo "FAIL: buggy_fuzzer mode=$mode: no report (exit $rc) after ${execs:-?} execs"
    tail -20 "$tmp/log"
    exit 1
fi
if ! [[ $sig =~ $want ]]; then
    echo "FAIL: buggy_fuzzer mode=$mode: signature $sig, expected $want"
    grep -aA30 '^blkverify' "$tmp/log" | head -40
    exit 1
fi
ls "$tmp/artifacts"/crash-* >/dev/null 2>&1 || { echo "FAIL: no crash artifact saved"; exit 1; }
echo "ok: buggy_fuzzer mode=$mode: $sig after ${execs#\#} execs"
