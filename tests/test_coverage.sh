#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# fuzz/coverage on a small corpus (a few of qcow2's seeds): the summary line
# gives line and branch coverage of drivers/, summary.txt names drivers/
# files only, and html/index.html is llvm-cov's report.
# usage: test_coverage.sh SRCDIR BUILDROOT
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

mkdir -p "$out/corpus" "$broot"
mapfile -t seeds < <(find "$src/corpus/programs" -type f | sort | head -5)
cp "${seeds[@]}" "$out/corpus/"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-1}
"$src/fuzz/coverage" -o "$out/report" -b "$broot" qcow2 "$out/corpus" >"$out/stdout" 2>&1
rc=$?
cat "$out/stdout"
[ $rc = 0 ] || bad "fuzz/coverage exited $rc"

line=$(tail -1 "$out/stdout")
re='^coverage: target qcow2, 5 inputs, lines ([0-9.]+)% \(([0-9]+)/([0-9]+)\), branches ([0-9.]+)% \(([0-9]+)/([0-9]+)\) of drivers/; report (.*)$'
if [[ $line =~ $re ]]; then
    ((BASH_REMATCH[3] > 0 && BASH_REMATCH[2] > 0)) || bad "no driver lines covered: $line"
    ((BASH_REMATCH[6] > 0 && BASH_REMATCH[5] > 0)) || bad "no driver branches covered: $line"
    ((BASH_REMATCH[2] < BASH_REMATCH[3])) || bad "5 seeds cover every line of qcow2?: $line"
    [ "${BASH_REMATCH[7]}" = "$out/report/html/index.html" ] || bad "report path: ${BASH_REMATCH[7]}"
else
    bad "summary line: $line"
fi

html=$out/report/html/index.html
if [ -f "$html" ]; then
    grep -q 'blkv qcow2_fuzzer' "$html" || bad "index.html has no project title"
    grep -q 'drivers/qcow2' "$html" || bad "index.html does not list drivers/qcow2"
else
    bad "no $html"
fi
# the summary table is drivers/ only: no harness file in it
if [ -f "$out/report/summary.txt" ]; then
    grep -q '^TOTAL' "$out/report/summary.txt" || bad "summary.txt has no TOTAL"
    ! grep -Eq '^(run|dispatch|model|sched|fiber)\.c ' "$out/report/summary.txt" ||
        bad "summary.txt has harness files"
else
    bad "no summary.txt"
fi
[ $fail = 0 ] && echo "coverage: ok"
exit $fail
