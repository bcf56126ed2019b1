#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# blkv show in a real browser: pages for three findings of the buggy driver
# (a lost write, a zombie write, a torn write) and a clean run, rendered by
# headless Chromium with no console errors; the script ran (a marker in the
# DOM), the failing read and the write the report names are drawn, a clean
# run draws no failing request, screenshots are not blank, and no page
# refers to anything on the network.  Also blkv run --show, BLKV_SHOW=1
# reproducer saving, and the errors of blkv show.
# Usage: test_show.sh BLKV TRACES_DIR      (77: no Chromium)
set -u
BLKV=$1
TRACES=$2
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ]; then
    echo "SKIP: no chromium (Debian package chromium)"
    exit 77
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok   $*"; }

# browse PAGE MODE OUT: run Chromium on PAGE (--dump-dom to OUT, or a
# --screenshot into OUT), its log in OUT.log
browse() {
    local page=$1 mode=$2 out=$3 args=()
    if [ "$mode" = dom ]; then
        args=(--dump-dom)
    else
        args=(--screenshot="$out" --hide-scrollbars)
    fi
    timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run \
        --user-data-dir="$T/profile" --window-size=1600,1000 --enable-logging=stderr --v=0 \
        "${args[@]}" "file://$page" >"$out.dom" 2>"$out.log"
    local rc=$?
    [ "$mode" = dom ] && mv "$out.dom" "$out"
    return $rc
}

# check_page NAME HTML: the page loads without console errors, its script
# ran, a screenshot is not blank, and nothing is fetched from the network
check_page() {
    local name=$1 html=$2 size
    if grep -qiE '(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/' "$html" || grep -qi 'https\?://' "$html"; then
        fail "$name: the page refers to the network: $(grep -oiE 'https?://[^ "]*' "$html" | head -3)"
    else
        ok "$name: self-contained"
    fi
    if ! browse "$html" dom "$T/$name.dom"; then
        fail "$name: chromium --dump-dom failed: $(tail -3 "$T/$name.dom.log")"
        return
    fi
    # the page logs nothing: any console line is an error or an exception
    if grep -E 'Uncaught|:CONSOLE' "$T/$name.dom.log"; then
        fail "$name: console errors"
    else
        ok "$name: no console errors"
    fi
    if grep -q 'data-blkv-shown="ok"' "$T/$name.dom"; then
        ok "$name: the page's script ran"
    else
        fail "$name: the page's script did not run to its end"
    fi
    if ! browse "$html" png "$T/$name.png"; then
        fail "$name: chromium --screenshot failed: $(tail -3 "$T/$name.png.log")"
        return
    fi
    size=$(stat -c %s "$T/$name.png" 2>/dev/null || echo 0)
    # a blank 1600x1000 page compresses to a few KB; a drawn one to much more
    if [ "$size" -gt 30000 ]; then
        ok "$name: screenshot ($size bytes)"
    else
        fail "$name: screenshot missing or blank ($size bytes)"
    fi
}

# dom_has NAME PATTERN WHAT / dom_lacks NAME PATTERN WHAT
dom_has() {
    if grep -qE -- "$2" "$T/$1.dom"; then ok "$1: $3"; else fail "$1: no $3 (/$2/)"; fi
}
dom_lacks() {
    if grep -qE -- "$2" "$T/$1.dom"; then fail "$1: $3 (/$2/)"; else ok "$1: no $3"; fi
}

FAILING='<g class="req k-read [a-z]+ fail-read[^"]*" id="failing-request"'

# the three findings: failing read drawn, the write the report names drawn
for bug in lost-write zombie-write torn-write; do
    "$BLKV" show -o "$T/$bug.html" "$TRACES/buggy-$bug.trace" >"$T/$bug.out" 2>&1
    rc=$?
    if [ $rc != 1 ]; then
        fail "show buggy-$bug exited $rc, wanted 1: $(head -3 "$T/$bug.out")"
        continue
    fi
    grep -q "^picture: $T/$bug.html" "$T/$bug.out" || fail "$bug: show does not say where the picture is"
    check_page "$bug" "$T/$bug.html"
    [ -f "$T/$bug.dom" ] || continue
    dom_has "$bug" "$FAILING" "failing read"
    dom_has "$bug" 'class="mismatch"' "unexplained bytes marked"
    dom_has "$bug" '<pre id="report">blkverify: read offset=' "report beside the picture"
    dom_has "$bug" 'data-tip="#0 \(op 0: write 0 [0-9]+\)' "op line to hover over"
done
# what each report names: a lost write is a write whose data is missing; a
# zombie write's data is found; a torn write's newer half is missing
dom_has lost-write '<g class="req k-write ok candidate missing" id="missing-write"' "missing write"
dom_has lost-write 'class="missing-link"' "link from the missing write"
dom_has zombie-write '<g class="req k-write cancelled evicted source" id="source-write"' "source write"
dom_has zombie-write 'class="source-link"' "link from the source write"
dom_has zombie-write '<g class="initial candidate"' "initial content as the candidate"
dom_has zombie-write 'class="ev cancel"' "cancel on the timeline"
dom_has zombie-write 'class="ev step"' "lower I/O step on the timeline"
dom_has torn-write '<g class="req k-write ok candidate missing" id="missing-write"' "missing write"
dom_has torn-write 'found: zeros of older data' "found data named"

# a clean run: drawn, no failing request
"$BLKV" show -o "$T/clean.html" "$TRACES/ok-cancel.trace" >"$T/clean.out" 2>&1
rc=$?
if [ $rc != 0 ]; then
    fail "show ok-cancel exited $rc, wanted 0: $(head -3 "$T/clean.out")"
else
    check_page clean "$T/clean.html"
    dom_has clean '<g class="req k-write cancelled' "cancelled write"
    dom_has clean '<g class="req k-read ok"' "read"
    dom_lacks clean 'id="failing-request"|class="[^"]*fail-read' "failing request drawn"
    dom_lacks clean 'class="source-link"' "source link drawn"
fi

# a run with a power loss and faults: crash and fault marks on the timeline
"$BLKV" show -o "$T/crash.html" "$TRACES/buggy-flush-early.trace" >"$T/crash.out" 2>&1
rc=$?
if [ $rc != 1 ]; then
    fail "show buggy-flush-early exited $rc, wanted 1: $(head -3 "$T/crash.out")"
elif grep -q 'class="ev crash' "$T/crash.html"; then
    ok "crash: on the timeline"
else
    fail "crash: no crash on the timeline"
fi

# everything from the input is escaped: a file name with markup in it
name='a<b>&"c'
cp "$TRACES/buggy-lost-write.trace" "$T/$name.trace"
"$BLKV" show -o "$T/esc.html" "$T/$name.trace" >/dev/null 2>&1
if grep -qF '<b>' "$T/esc.html"; then
    fail "escape: markup from the file name reached the page"
elif grep -qF 'a&lt;b&gt;&amp;&quot;c' "$T/esc.html"; then
    ok "escape: the file name is escaped"
else
    fail "escape: the file name is not on the page"
fi

# blkv run --show DIR: a picture of each failure, none of a clean run
mkdir "$T/pics"
"$BLKV" run -q --show "$T/pics" "$TRACES/buggy-lost-write.trace" "$TRACES/ok-cancel.trace" \
    >"$T/run.out" 2>&1
rc=$?
[ $rc = 1 ] || fail "run --show exited $rc, wanted 1: $(head -3 "$T/run.out")"
if [ -f "$T/pics/buggy-lost-write.html" ] && [ ! -e "$T/pics/ok-cancel.html" ]; then
    ok "run --show DIR: a picture of the failure only"
else
    fail "run --show DIR: $(ls "$T/pics")"
fi
grep -q 'id="failing-request"' "$T/pics/buggy-lost-write.html" 2>/dev/null ||
    fail "run --show: the picture lacks the failing request"
out=$("$BLKV" run --show "$T/one.html" "$TRACES/buggy-lost-write.trace" "$TRACES/ok-cancel.trace" 2>&1)
rc=$?
[ $rc = 2 ] && grep -q "a file takes one input" <<<"$out" && ok "run --show FILE with two inputs refused" ||
    fail "run --show FILE with two inputs: $rc: $out"

# BLKV_SHOW=1: the picture beside the saved reproducer, named in the report
BLKV_SHOW=1 "$BLKV" run -s "$T/save" "$TRACES/buggy-zombie-write.trace" >"$T/save.out" 2>&1
pic=$(sed -n 's/^  picture: //p' "$T/save.out")
if [ -n "$pic" ] && [ -f "$pic" ] && [ -f "${pic%.html}.trace" ] && grep -q 'id="source-write"' "$pic"; then
    ok "BLKV_SHOW=1: picture beside the reproducer"
else
    fail "BLKV_SHOW=1: no picture beside the reproducer: $(ls "$T/save" 2>&1)"
fi

# errors: one line, exit 2
expect2() {
    local what=$1 pat=$2 out rc
    shift 2
    out=$("$@" 2>&1)
    rc=$?
    if [ $rc = 2 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -qE -- "$pat" <<<"$out"; then
        ok "$what"
    else
        fail "$what: exit $rc, output: $out"
    fi
}
expect2 "unwritable output" "/nonexistent/x.html: No such file" \
    "$BLKV" show -o /nonexistent/x.html "$TRACES/buggy-lost-write.trace"
printf 'size 1M\nwrite 0 512\nwrtie 0 512\n' >"$T/typo.trace"
expect2 "bad input" "typo.trace:3:" "$BLKV" show -o "$T/typo.html" "$T/typo.trace"
[ -e "$T/typo.html" ] && fail "bad input: a page was written anyway"
expect2 "missing input" "No such file" "$BLKV" show -o "$T/m.html" "$T/missing.trace"
expect2 "no input" "expected one input" "$BLKV" show
"$BLKV" show --help | grep -q "usage: blkv show" && ok "show --help" || fail "show --help"

if [ $fails -gt 0 ]; then
    echo "$fails failure(s)"
    exit 1
fi
echo "all ok"
