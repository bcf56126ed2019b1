#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Bad input, class by class: each input is either what the user meant or a
# one-line error (naming the file and line) with a non-zero exit.  Each case
# gives the input, the exit code and the first line of standard error; each
# refusal has a sibling that shows the correct input accepted.  No sanitizer
# report is allowed in any output (the suite runs in the ASan+UBSan build).
# Usage: test_bad_input.sh BLKV
set -u
BLKV=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
fails=0
n=0

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# sanitizers FILE...: fail on a sanitizer report in any of them
sanitizers() {
    if grep -lE "runtime error|AddressSanitizer|LeakSanitizer" "$@" >/dev/null 2>&1; then
        fail "sanitizer report: $(grep -hE -m1 "runtime error|AddressSanitizer|LeakSanitizer" "$@")"
        return 1
    fi
}

# expect CODE ERRPAT -- CMD...: exit code CODE; the first line of stderr
# matches ERRPAT ("" : stderr must be empty).  Stdout is kept in $T/out.
expect() {
    local code=$1 pat=$2 rc first
    shift 3
    n=$((n + 1))
    "$@" >"$T/out" 2>"$T/err"
    rc=$?
    first=$(head -1 "$T/err")
    sanitizers "$T/out" "$T/err" || return
    if [ "$rc" != "$code" ]; then
        fail "$* exited $rc, wanted $code; stderr: $first"
    elif [ -z "$pat" ] && [ -s "$T/err" ]; then
        fail "$*: unexpected stderr: $first"
    elif [ -n "$pat" ] && ! grep -qE -- "$pat" <<<"$first"; then
        fail "$*: first line of stderr lacks /$pat/: $first"
    elif [ -n "$pat" ] && [ "$(wc -l <"$T/err")" -ne 1 ]; then
        fail "$*: the error is not one line: $(head -3 "$T/err")"
    else
        echo "ok   [$rc] $* ${first:+-> $first}"
    fi
}

# has PATTERN: stdout of the last expect matches
has() {
    grep -qE -- "$1" "$T/out" || fail "stdout lacks /$1/: $(head -3 "$T/out")"
}

# ---- 1. text vs binary -------------------------------------------------------
bom=$'\xef\xbb\xbf'
printf '%sdriver buggy mode=lost-write every=1\nsize 1M\nwrite 0 4096\nread 0 4096\n' "$bom" >bom.trace
printf 'driver buggy mode=lost-write every=1\nsize 1M\nwrite 0 4096\nread 0 4096\n' >lost.trace
printf 'size 1M\nwrite 0 512\nread 0 512\n' >clean.trace
# a BOM is skipped: the driver line counts (the lost write is found)
expect 1 "" -- "$BLKV" run bom.trace
has "FAILED \(contents/read/stale\)"
expect 1 "" -- "$BLKV" run lost.trace
# a capitalised op is trace text that is refused, not a binary program
printf 'Write 0 512\nread 0 512\n' >cap.trace
expect 2 "cap.trace:1: unknown op 'Write' \(ops are lower case: 'write'\)" -- "$BLKV" run cap.trace
printf 'DRIVER raw\nwrite 0 512\n' >capkw.trace
expect 2 "capkw.trace:1: unknown op 'DRIVER' \(keywords are lower case" -- "$BLKV" run capkw.trace
expect 0 "" -- "$BLKV" run clean.trace
# a stray control byte is an error at its line
printf 'size 1M\nwrite 0 512\x01\n' >ctl.trace
expect 2 "ctl.trace:2: control byte 0x01 at column 12" -- "$BLKV" run ctl.trace
# blanks and a comment before the first line, CRLF line ends: text
printf '\n  \t\n# hi\r\nsize 1M\r\nwrite 0 512\r\n' >crlf.trace
expect 0 "" -- "$BLKV" run crlf.trace
# a typo in the first word of hand-written lines is still text
printf 'wrtie 0 512\nread 0 512\n' >typo.trace
expect 2 "typo.trace:1: unknown op 'wrtie'" -- "$BLKV" run typo.trace
# --binary forces the decoder, --text the parser
expect 0 "" -- "$BLKV" run --binary cap.trace
printf '\x07\x01\x02\x03' >bin.bin
expect 2 "bin.bin:1: control byte 0x07" -- "$BLKV" run --text bin.bin
expect 0 "" -- "$BLKV" run bin.bin
# a tiny printable fuzzer input is binary (no line feed)
printf '"+u' >tiny.bin
expect 0 "" -- "$BLKV" decode tiny.bin
# decode refuses trace text (decoding its bytes would print another program)
expect 2 "decode: clean.trace: trace text, not a binary input" -- "$BLKV" decode clean.trace
expect 0 "" -- "$BLKV" decode --text clean.trace
has "^write 0 512"
expect 0 "" -- "$BLKV" decode --binary clean.trace
# every command that reads inputs has --text and --binary
for c in run decode triage export-qemu-io show; do
    "$BLKV" $c --help 2>/dev/null | grep -q -- "--binary" || {
        [ $c = show ] && ! "$BLKV" show --help >/dev/null 2>&1 && continue
        fail "blkv $c has no --binary"
    }
done
expect 2 "cap.trace:1: unknown op 'Write'" -- "$BLKV" export-qemu-io cap.trace
expect 0 "" -- "$BLKV" export-qemu-io --binary -c cap.trace

# ---- 2. every file written is checked ----------------------------------------
# run --save: a missing directory (and its parents) is created
expect 1 "" -- "$BLKV" run --save new/sub lost.trace
ls new/sub/blkv-repro-*.trace >/dev/null 2>&1 || fail "run --save new/sub saved nothing"
# a file in the way: saved in . instead, and the report says so
: >afile
mkdir -p here && (cd here && "$BLKV" run --save ../afile ../lost.trace >out 2>err; echo $? >rc)
[ "$(cat here/rc)" = 1 ] || fail "run --save FILE exited $(cat here/rc)"
grep -q "reproducer: cannot save in ../afile (Not a directory); saved in . instead" here/out ||
    fail "run --save FILE: the report does not say where the reproducer went"
ls here/blkv-repro-*.trace >/dev/null 2>&1 || fail "run --save FILE: nothing saved in ."
sanitizers here/out here/err
# -q names the reproducer
expect 1 "" -- "$BLKV" run -q --save q lost.trace
has "\(reproducer: q/blkv-repro-[0-9a-f]+\.trace\)"
# prop -s: created, and -q still prints the report and saves
expect 1 "" -- "$BLKV" prop -q -d "buggy mode=lost-write" -s p/deep
has "^  reproducer: p/deep/blkv-repro-"
has "^blkverify: "
ls p/deep/blkv-repro-*.bin >/dev/null 2>&1 || fail "prop -s p/deep saved nothing"
mkdir -p there && (cd there && "$BLKV" prop -q -d "buggy mode=lost-write" -s ../afile >out 2>err)
grep -q "saved in . instead" there/out || fail "prop -s FILE: the report does not say where"
sanitizers there/out there/err
# standard output: a full disk and a closed pipe are errors
expect 2 "^blkv: standard output: No space left on device" -- sh -c "'$BLKV' gen --seed 1 >/dev/full"
expect 2 "^blkv: standard output: No space left on device" -- sh -c "'$BLKV' drivers >/dev/full"
expect 2 "^blkv: standard output: " -- sh -c "'$BLKV' run clean.trace >/dev/full"
expect 2 "^blkv: standard output: No space left on device" -- sh -c "'$BLKV' decode tiny.bin >/dev/full"
expect 0 "" -- sh -c "'$BLKV' gen --seed 1 >/dev/null"
expect 2 "^blkv: standard output: " -- sh -c \
    "{ '$BLKV' gen --seed 1 --ops 100000; echo \$? >pipe.rc; } | head -c 1 >/dev/null; exit \$(cat pipe.rc)"
# -o OUT that cannot be written
expect 2 "^blkv: nodir/x.trace: No such file or directory" -- "$BLKV" decode -o nodir/x.trace tiny.bin
expect 0 "" -- "$BLKV" decode -o x.trace tiny.bin
# triage --out: created with its parents; a file in the way is an error
printf 'driver buggy mode=lost-write every=1\nsize 1M\nwrite 0 8192\nread 0 8192\n' >lost2.trace
mkdir -p finds && cp lost.trace lost2.trace finds/
expect 1 "" -- "$BLKV" triage --shrink-runs 20 -o tri/a/b finds
ls tri/a/b/*.trace >/dev/null 2>&1 || fail "triage -o tri/a/b saved nothing"
expect 2 "triage: --out afile: Not a directory" -- "$BLKV" triage --shrink-runs 20 -o afile finds

# ---- 3. a driver that cannot open is not "no failure" ------------------------
expect 2 "^blkv prop: no program could run: nbd: open failed" -- "$BLKV" prop -r 3 -d "nbd server=nosuch"
expect 0 "" -- "$BLKV" prop -r 3 -d raw
expect 2 "^blkv prop: --driver: unknown driver 'nosuch'" -- "$BLKV" prop -r 3 -d nosuch
mkdir -p bins && cp bin.bin bins/
expect 2 "triage: bins/bin.bin: nbd: open failed" -- "$BLKV" triage -d "nbd server=nosuch" bins
expect 0 "" -- "$BLKV" triage -d raw bins
# ---- 4. triage without a group (no qsort of a null array) --------------------
has "0 failed in 0 group"
mkdir -p cleans && cp clean.trace crlf.trace cleans/
expect 0 "" -- "$BLKV" triage -d raw cleans

# ---- 5. numbers: strict, in range, what they say -----------------------------
"$BLKV" gen --seed 10 >ten.trace
expect 0 "" -- "$BLKV" gen --seed 010
cmp -s "$T/out" ten.trace || fail "--seed 010 is not ten"
expect 0 "" -- "$BLKV" gen --seed 0xa
cmp -s <(grep -v '^# blkv gen' "$T/out") <(grep -v '^# blkv gen' ten.trace) || fail "--seed 0xa is not ten"
for bad in "-1" " 5" "+5" "5x" "0x" "18446744073709551616" "1e3" ""; do
    expect 2 "^blkv: --seed: '.*' is not a number" -- "$BLKV" gen --seed "$bad"
done
expect 2 "^blkv: --ops: '0' is not a number in 1\.\." -- "$BLKV" gen --seed 1 --ops 0
expect 2 "^blkv: --shrink-runs: '0' is not a number in 1\.\." -- "$BLKV" prop --shrink-runs 0
expect 2 "^blkv: --time: '1.5' is not a number" -- "$BLKV" prop --time 1.5
expect 0 "" -- "$BLKV" prop -r 2 --shrink-runs 1
printf 'size 1M\nwrite 010 512\n' >oct.trace
expect 0 "" -- "$BLKV" decode --text oct.trace
has "^write 10 512"
printf 'size 1M\nwrite -1 512\n' >neg.trace
expect 2 "neg.trace:2: offset: '-1' is not a number" -- "$BLKV" run neg.trace

# ---- 5b. config a later input overrides is said ---------------------------------
# --driver over a trace's own driver line: said on stderr, and it is what runs
expect 0 "^lost.trace: runs on 'raw' \(--driver\), not its driver line 'buggy mode=lost-write every=1'" -- "$BLKV" run --driver raw lost.trace
has "^lost.trace: ok"
# the same driver as the line: nothing to say
expect 1 "" -- "$BLKV" run --driver "buggy mode=lost-write every=1" lost.trace

# ---- 5c. options that contradict or say nothing ---------------------------------
for cmd in run decode show export-qemu-io; do
    expect 2 "^blkv: --text and --binary exclude each other$" -- "$BLKV" $cmd --text --binary lost.trace
done
expect 2 "^blkv: --text and --binary exclude each other$" -- "$BLKV" triage --binary --text lost.trace
# the same one twice is what it says
expect 1 "" -- "$BLKV" run --text --text lost.trace
# an empty path would mean "here", or nothing: refused
expect 2 "^blkv: --save: an empty path$" -- "$BLKV" run --save '' lost.trace
expect 2 "^blkv: --show: an empty path$" -- "$BLKV" run --show '' lost.trace
expect 2 "^blkv: --save-crash-images: an empty path$" -- "$BLKV" run --save-crash-images '' lost.trace
expect 2 "^blkv: --save: an empty path$" -- "$BLKV" prop -d raw -r 1 -s ''
expect 2 "^blkv: --out: an empty path$" -- "$BLKV" triage -o '' lost.trace
for cmd in decode encode show export-qemu-io; do
    expect 2 "^blkv: --output: an empty path$" -- "$BLKV" $cmd -o '' lost.trace
done
# and a path that is not empty is taken
expect 0 "" -- "$BLKV" encode -o lost.bin lost.trace
[ -s lost.bin ] || fail "encode -o lost.bin wrote nothing"
# blkv show, like run, says when --driver overrides the driver line
expect 0 "^lost.trace: runs on 'raw' \(--driver\)" -- "$BLKV" show -d raw -o lost.html lost.trace

# ---- 6. generated shell is safe ----------------------------------------------
expect 2 "format 'raw; touch pwned' is not a format name" -- \
    "$BLKV" export-qemu-io -f "raw; touch pwned" clean.trace
expect 0 "" -- "$BLKV" export-qemu-io -f raw clean.trace
has "^qemu-img create -q -f 'raw' \"\\\$IMG\" 1048576$"
printf 'driver nbd format=qcow2 create-opts=x$(touch${IFS}pwned)\nwrite 0 512\n' >evil.trace
expect 2 "create-opts 'x\\\$\(touch\\\$\{IFS\}pwned\)': only letters" -- "$BLKV" export-qemu-io evil.trace
[ -e pwned ] && fail "a command from an exported script ran"

echo "$n cases, $fails failed"
[ $fails -eq 0 ]
