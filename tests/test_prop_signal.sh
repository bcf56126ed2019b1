#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# blkv prop on SIGTERM (SIGINT takes the same path): it prints the summary
# so far and dies of the signal (exit 143).  While it shrinks a failure,
# that summary names the failure and its first run's reproducer, saved
# before the shrink began, which replays and fails; a shrink that ends
# removes that early copy, leaving only the minimal reproducer.
# The plugin tslow takes 2 ms a request and loses every third write: the
# first program fails and its shrink takes minutes.
# Usage: test_prop_signal.sh BLKV TSLOW_PLUGIN
set -u
BLKV=$1
PLUG=$2
T=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# until FILE-TEST: wait up to 60 s for a condition (the process under test
# makes it true), or fail
until_true() {
    for _ in $(seq 1200); do
        eval "$1" && return 0
        sleep 0.05
    done
    fail "timed out waiting for: $1"
    return 1
}

# term_when WHAT CONDITION OUT ARGS...: blkv prop ARGS in the background,
# output to OUT; SIGTERM once CONDITION holds; it must die of it (143)
term_when() {
    local what=$1 cond=$2 out=$3 rc
    shift 3
    "$BLKV" prop "$@" >"$out" 2>&1 &
    pid=$!
    until_true "$cond" && kill -TERM $pid
    wait $pid
    rc=$? pid=
    [ $rc -eq 143 ] || fail "$what, SIGTERM: exit $rc, wanted 143"
}

# no failure: the programs done so far
term_when "no failure" 'grep -q "^prop: driver" "$T/a.out"' "$T/a.out" -q -d raw -t 120 -s "$T/a"
grep -Eq '^prop: interrupted: no failure in the [0-9]+ programs done \([0-9]+ ops, [0-9]+ MiB verified, [0-9.]+s\)$|^prop: interrupted before the first program ended$' \
    "$T/a.out" || fail "no failure, SIGTERM: no summary: $(tail -n 3 "$T/a.out")"
grep '^prop: interrupted' "$T/a.out"

# a shrink interrupted: the failure and its first run
term_when "while shrinking" 'ls "$T"/b/blkv-repro-*.trace >/dev/null 2>&1' "$T/b.out" \
    -q --load "$PLUG" -d tslow -S 1 -s "$T/b"
grep -q '^prop: interrupted while shrinking the failure of program 0 (seed 1): blkverify: ' \
    "$T/b.out" || fail "while shrinking: no summary: $(tail -n 3 "$T/b.out")"
first=$(sed -n 's/^prop: its first run: blkv run //p' "$T/b.out")
if [ -z "$first" ] || [ ! -f "$first" ]; then
    fail "while shrinking: the first run's reproducer is not named or not there: '$first'"
else
    grep -q "^# the first run's program, saved while prop shrank it" "$first" ||
        fail "the first run's reproducer lacks its note"
    "$BLKV" run --load "$PLUG" "$first" >"$T/r.out" 2>&1
    rc=$?
    [ $rc -eq 1 ] || fail "the first run's reproducer: exit $rc, wanted 1 (it fails)"
    echo "interrupted shrink: $(grep -c . "$T/b.out") lines; first run $first fails again"
fi

# a shrink that ends: only the minimal reproducer stays
"$BLKV" prop -q --load "$PLUG" -d tslow -S 1 --shrink-runs 3 -s "$T/c" >"$T/c.out" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "a short shrink: exit $rc, wanted 1: $(tail -n 3 "$T/c.out")"
n=$(ls "$T"/c/*.trace 2>/dev/null | wc -l)
[ "$n" -eq 1 ] || fail "a short shrink: $n reproducers saved, wanted the minimal one: $(ls "$T/c")"
grep -q "saved while prop shrank it" "$T"/c/*.trace && fail "a short shrink kept the early copy"
echo "a shrink that ended: $n reproducer"

if ((fails)); then
    echo "$fails failure(s)"
    exit 1
fi
echo "prop-signal: ok"
