#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# blkv triage groups findings correctly: failing programs found by
# 'blkv prop' for two buggy modes are replayed through buggy_fuzzer (which
# aborts and saves its reproducers), mixed in one directory (trace text
# carrying its driver, and binary inputs for one mode), and triage must
# produce exactly the groups, counts and signatures the fuzzer reported,
# with a minimal trace per group that still fails the same way.
# Exit 0 pass, 1 fail.
#
# usage: test_triage.sh BLKV BUGGY_FUZZER
set -uo pipefail
blkv=$1 fuzzer=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
modes=(lost-write wrong-return)
mkdir -p "$tmp/prop" "$tmp/findings" "$tmp/crash"
: >"$tmp/expected"

for m in "${modes[@]}"; do
    for s in 1 2 3; do
        out=$tmp/prop/$m-$s
        "$blkv" prop -q -d "buggy mode=$m" --seed "$s" --runs 500 -s "$out" >"$tmp/log" 2>&1
        bin=$(ls "$out"/blkv-repro-*.bin 2>/dev/null | head -1)
        [ -n "$bin" ] || { echo "FAIL: blkv prop found nothing for $m seed $s"; cat "$tmp/log"; exit 1; }
        # the fuzz target must crash on it and save its own reproducer
        rm -rf "$tmp/crash"/*
        # (a subshell, so that bash's "Aborted" note goes to the log too)
        if (BLKV_BUGGY_MODE=$m BLKV_REPRO_DIR="$tmp/crash" "$fuzzer" "$bin"; exit $?) >"$tmp/flog" 2>&1; then
            echo "FAIL: buggy_fuzzer (mode $m) did not crash on $bin"
            fail=1
            continue
        fi
        sig=$(sed -n 's/^  signature: //p' "$tmp/flog" | head -1)
        [ -n "$sig" ] || { echo "FAIL: no report from buggy_fuzzer for $m seed $s"; fail=1; continue; }
        cp "$tmp/crash"/blkv-repro-*.trace "$tmp/findings/$m-$s.trace"
        echo "$sig|buggy mode=$m" >>"$tmp/expected"
        if [ "$m" = "${modes[0]}" ]; then # binary inputs too: they run on --driver
            cp "$bin" "$tmp/findings/$m-$s.bin"
            echo "$sig|buggy mode=$m" >>"$tmp/expected"
        fi
    done
done

"$blkv" triage -d "buggy mode=${modes[0]}" -o "$tmp/out" "$tmp/findings" >"$tmp/triage" 2>&1
rc=$?
cat "$tmp/triage"
[ $rc = 1 ] || { echo "FAIL: triage exited $rc, expected 1 (findings grouped)"; fail=1; }

# every (signature, driver) the fuzzer reported is one row with its count
ngroups=$(sort -u "$tmp/expected" | wc -l)
rows=$(grep -cE '^  [0-9]+ ' "$tmp/triage")
[ "$rows" = "$ngroups" ] || { echo "FAIL: $rows groups, expected $ngroups"; fail=1; }
while IFS='|' read -r count_sig driver; do
    count=${count_sig%% *} sig=${count_sig#* }
    if ! grep -E '^  [0-9]+ ' "$tmp/triage" | grep -F "$driver" |
            awk -v s="$sig" -v c="$count" '$2 == s && $3 == c { ok = 1 } END { exit !ok }'; then
        echo "FAIL: no group '$sig' with $count finding(s) for '$driver'"
        fail=1
    fi
done < <(sort "$tmp/expected" | uniq -c | sed 's/^ *//')

# each group's minimal trace still fails with the group's signature
for t in "$tmp/out"/*.trace; do
    [ -f "$t" ] || { echo "FAIL: no minimal traces"; fail=1; break; }
    sig=$(sed -n 's/^# triage group [0-9]*: \([^,]*\),.*/\1/p' "$t")
    "$blkv" run "$t" >"$tmp/run" 2>&1
    if [ $? != 1 ] || ! grep -qF "FAILED ($sig)" "$tmp/run"; then
        echo "FAIL: minimal trace $t does not fail with $sig"
        cat "$tmp/run"
        fail=1
    fi
done
exit $fail
