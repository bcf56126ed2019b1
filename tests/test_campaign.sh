#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# A short fuzz/campaign with one engine: its progress is live (a tick before
# the end shows a non-zero rate), progress.tsv has several rows with rising
# execs, progress.png is a PNG, and the summary line names them.
# usage: test_campaign.sh ENGINE SRCDIR BUILDROOT   (ENGINE: libfuzzer or afl)
# Exit 0 pass, 1 fail, 77 skip (the engine or gnuplot is missing).
set -u
engine=$1 src=$2 broot=$3
secs=${BLKV_CAMPAIGN_SECS:-20}

case $engine in
libfuzzer)
    command -v clang >/dev/null || { echo "SKIP: no clang"; exit 77; }
    mkdir -p "$broot"
    echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' >"$broot/lf.c"
    clang -fsanitize=fuzzer "$broot/lf.c" -o "$broot/lf" 2>/dev/null ||
        { echo "SKIP: clang has no libFuzzer"; exit 77; }
    ;;
afl)
    for t in afl-fuzz afl-clang-fast; do
        command -v $t >/dev/null || { echo "SKIP: no $t"; exit 77; }
    done
    ;;
*) echo "usage: $0 libfuzzer|afl SRCDIR BUILDROOT" >&2; exit 2 ;;
esac
command -v gnuplot >/dev/null || { echo "SKIP: no gnuplot"; exit 77; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-1}
"$src/fuzz/campaign" -e "$engine" -s "$secs" -j 1 -o "$out/c" -b "$broot" >"$out/stdout" 2>&1
rc=$?
tr '\r' '\n' <"$out/stdout" >"$out/lines"
if [ $rc != 0 ]; then
    tail -20 "$out/lines"
    bad "campaign exited $rc"
fi

# live progress: a tick before the budget ran out with a non-zero rate
live=$(awk -v secs="$secs" '
    match($0, /^\[ *[0-9]+s\//) {
        t = substr($0, 2, RLENGTH - 3) + 0
        if (match($0, / [0-9]+\/s /)) { r = substr($0, RSTART + 1, RLENGTH - 4) + 0 }
        if (t < secs && r > 0) n++
    }
    END { print n + 0 }' "$out/lines")
((live > 0)) || { grep -a '^\[' "$out/lines"; bad "no progress tick before ${secs}s with a non-zero rate"; }

# progress.tsv: a header, several rows, execs never falling and rising overall
tsv=$out/c/progress.tsv
if [ -f "$tsv" ]; then
    head -1 "$tsv" | grep -q '^elapsed_s	execs	execs_per_s	coverage	features	corpus	findings$' ||
        bad "progress.tsv header: $(head -1 "$tsv")"
    rows=$(($(wc -l <"$tsv") - 1))
    ((rows >= 5)) || bad "progress.tsv has $rows rows"
    awk -F'\t' 'NR > 1 {
        if (NF != 7) { print "row " NR ": " NF " columns"; bad = 1 }
        if ($2 + 0 < prev) { print "row " NR ": execs fell to " $2; bad = 1 }
        prev = $2 + 0; if (NR == 2) first = prev
        if ($3 + 0 > 0) rate = 1
    } END {
        if (prev <= first) { print "execs did not rise: " first " to " prev; bad = 1 }
        if (!rate) { print "no row with a non-zero execs/s"; bad = 1 }
        exit bad }' "$tsv" || bad "progress.tsv: $(tr '\n' ' ' <"$tsv")"
else
    bad "no $tsv"
fi

# progress.png: a PNG (its 8-byte signature)
png=$out/c/progress.png
if [ -f "$png" ]; then
    [ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || bad "$png is not a PNG"
else
    bad "no $png"
fi

# the summary line says where everything is
sum=$(grep -a '^summary: ' "$out/lines" | tail -1)
for w in "dir $out/c" progress.tsv progress.png findings/; do
    [[ $sum == *"$w"* ]] || bad "summary does not name $w: $sum"
done
echo "$sum"
[ $fail = 0 ] && echo "campaign ($engine): ok"
exit $fail
