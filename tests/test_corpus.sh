#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Seed corpora: (1) corpus/ is exactly what the checked-in writer produces,
# (2) every seed set (corpus/programs, corpus/buggy, ...) runs clean through
# every fuzz target (buggy with BLKV_BUGGY_MODE=none), except that the seeds
# of a target whose input is an image rather than a program
# (--image-targets) run through that target only.  Exit 0 pass, 1 fail.
#
# usage: test_corpus.sh [--image-targets "T..."] WRITER CORPUS_DIR FUZZ_BIN_DIR TARGET...
set -uo pipefail
image_targets=""
if [ "${1-}" = --image-targets ]; then
    image_targets=" $2 "
    shift 2
fi
writer=$1 corpus=$2 bindir=$3
shift 3
targets=("$@")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

"$writer" "$tmp/gen" || { echo "FAIL: corpus_writer failed"; exit 1; }
if ! diff -r "$tmp/gen" "$corpus" >"$tmp/diff" 2>&1; then
    echo "FAIL: corpus/ differs from the writer's output" \
         "(regenerate: cmake --build BUILD --target corpus):"
    head -20 "$tmp/diff"
    fail=1
fi

# file arguments (not directories): a libFuzzer build would fuzz a directory
mkdir -p "$tmp/repro"
for t in "${targets[@]}"; do
    bin=$bindir/${t}_fuzzer
    for c in "$corpus"/*/; do
        cn=$(basename "$c")
        # an image corpus only means something to its own target
        [[ $image_targets == *" $cn "* && $cn != "$t" ]] && continue
        files=("$c"*)
        [ -e "${files[0]}" ] || continue
        if ! BLKV_BUGGY_MODE=none BLKV_REPRO_DIR="$tmp/repro" "$bin" "${files[@]}" \
                >"$tmp/log" 2>&1; then
            echo "FAIL: ${t}_fuzzer on $c"
            grep -aE '^(blkverify|  signature|running)' "$tmp/log" | tail -5
            fail=1
        else
            echo "ok: ${t}_fuzzer replays $(basename "$c") (${#files[@]} files)"
        fi
    done
done
exit $fail
