#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Every part of a qcow2 image is reachable within the fuzz budget: each
# seed of corpus/qcow2 named below, replayed alone through qcow2_fuzzer's
# replay build (fuzz/coverage -p: clang source-based coverage), runs (is
# not set aside by the budget) and reaches its probe in drivers/qcow2/
# (refcount table growth, a new refcount block, an L2 table for the last
# entry of a full L1 table).  blkv's qcow2 never grows its L1 table.
# usage: test_coverage_probes.sh SRCDIR BUILDROOT
# Exit 0 pass, 1 fail, 77 skip (no clang or LLVM tools).
set -u
src=$1 broot=$2
command -v clang >/dev/null || { echo "SKIP: no clang"; exit 77; }
ver=$(clang -dumpversion | cut -d. -f1)
for t in llvm-profdata llvm-cov; do
    command -v $t-$ver >/dev/null || command -v $t >/dev/null || { echo "SKIP: no $t"; exit 77; }
done

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# seed (corpus/qcow2/) and the probe it must reach
cases=(
    grow-refcount-table refcount-table-grow
    grow-refcount-table-lazy-crash refcount-table-grow
    refblock-new-512 refblock-new
    refblock-new-4k refblock-new
    l2-alloc-full-l1-512 l2-alloc-full-l1
    l2-alloc-full-l1-4t l2-alloc-full-l1
)
mkdir -p "$broot"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-1}
for ((i = 0; i < ${#cases[@]}; i += 2)); do
    seed=${cases[i]} probe=${cases[i + 1]}
    f=$src/corpus/qcow2/$seed
    [ -f "$f" ] || { bad "no seed $f"; continue; }
    if ! "$src/fuzz/coverage" -p -o "$out/$seed" -b "$broot" qcow2 "$f" >"$out/stdout" 2>&1; then
        cat "$out/stdout"
        bad "fuzz/coverage on $seed failed"
        continue
    fi
    grep -q '^coverage: target qcow2, 1 inputs, ' "$out/stdout" ||
        bad "$seed: $(tail -1 "$out/stdout")"
    ! grep -q 'set aside' "$out/$seed/log" || bad "$seed is set aside by the fuzz budget"
    line=$(grep "^probe: $probe " "$out/stdout")
    case $line in
    "probe: $probe reached, "*) echo "ok: $seed: $line" ;;
    "") bad "no probe $probe in drivers/ (fuzz/coverage -p lists: $(grep -c '^probe:' "$out/stdout"))" ;;
    *) bad "$seed: $line" ;;
    esac
done
[ $fail = 0 ] && echo "coverage-probes: ok"
exit $fail
