#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Plugins: the blkv tool and plugin_fuzzer load drivers from shared objects;
# a plugin built against an older, smaller struct loads with the missing
# fields read as zero, and an unknown API version, a missing entry symbol,
# a null driver, a taken name or a missing file are each refused with a
# one-line error naming the file (exit 2).
# Usage: test_plugins.sh BLKV PLUGIN_DIR PLUGIN_FUZZER
set -u
BLKV=$1
P=$2
PF=$3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# expect CODE PATTERN -- CMD...: exit code CODE and output matching PATTERN
expect() {
    local code=$1 pat=$2 out rc
    shift 3
    out=$("$@" 2>&1)
    rc=$?
    if [ "$rc" != "$code" ]; then
        fail "$* exited $rc, wanted $code; output: $(echo "$out" | head -5)"
    elif [ -n "$pat" ] && ! grep -qE -- "$pat" <<<"$out"; then
        fail "$* output lacks /$pat/: $(echo "$out" | head -5)"
    else
        echo "ok   $*"
    fi
}

# an error is one line, and names the plugin's file
one_line() {
    local out
    out=$("$@" 2>&1 >/dev/null)
    if [ "$(printf '%s\n' "$out" | wc -l)" != 1 ]; then
        fail "$* printed more than one line: $out"
    fi
}

cat >"$T/t.trace" <<'TRACE'
blkv-trace 1
size 1M
init pattern
write 0 8192
write 4096 512
read 0 16384
reopen
read 0 16384
check
TRACE
{ echo "driver tplug"; tail -n +2 "$T/t.trace"; } >"$T/named.trace"
grep -v "^init" "$T/named.trace" >"$T/zero.trace"

expect 0 "^tplug \(in-process\) \(plugin .*tplug.so\)" -- "$BLKV" drivers --load "$P/tplug.so"
expect 0 "capabilities: align 1" -- "$BLKV" drivers --load "$P/tplug.so" tplug
expect 0 "^tplug" -- "$BLKV" drivers "$P/tplug.so"
# inputs that name no driver run on the one plugin loaded
expect 0 "t.trace: ok" -- "$BLKV" run --load "$P/tplug.so" "$T/t.trace"
expect 0 "named.trace: ok" -- "$BLKV" run --load "$P/tplug.so" "$T/named.trace"
expect 0 "t.trace: ok" -- "$BLKV" run -d "$P/tplug.so" "$T/t.trace"
expect 2 "unknown driver 'tplug'" -- "$BLKV" run "$T/named.trace"
expect 2 "driver tplug has no option 'x'" -- "$BLKV" run -d "$P/tplug.so x=1" "$T/t.trace"
expect 0 "no failure after 20 programs" -- "$BLKV" prop --load "$P/tplug.so" -r 20 -q
expect 0 "aio_write" -- "$BLKV" export-qemu-io --load "$P/tplug.so" "$T/zero.trace"
# loading twice is loading once
expect 0 "t.trace: ok" -- "$BLKV" run --load "$P/tplug.so" --load "$P/tplug.so" "$T/t.trace"

# older struct: its check lies past struct_size and is never called; the
# same driver at full size has it called, and it fails
expect 0 "t.trace: ok" -- "$BLKV" run --load "$P/old.so" "$T/t.trace"
expect 1 "image check failed: tplug: the check was called" -- \
    "$BLKV" run --load "$P/old_full.so" "$T/t.trace"

# refused, one line each, naming the file
expect 2 "future.so: driver tplug: API version 99 is not supported" -- \
    "$BLKV" run --load "$P/future.so" "$T/t.trace"
one_line "$BLKV" run --load "$P/future.so" "$T/t.trace"
expect 2 "nosym.so: not a blkv plugin \(no symbol blkv_plugin_init\)" -- \
    "$BLKV" run --load "$P/nosym.so" "$T/t.trace"
one_line "$BLKV" run --load "$P/nosym.so" "$T/t.trace"
expect 2 "null.so: blkv_plugin_init returned no driver" -- \
    "$BLKV" drivers --load "$P/null.so"
expect 2 "raw.so: driver name 'raw' is taken \(by a built-in driver\)" -- \
    "$BLKV" run --load "$P/raw.so" "$T/t.trace"
expect 2 "cannot load plugin $T/missing.so" -- "$BLKV" run --load "$T/missing.so" "$T/t.trace"
one_line "$BLKV" run --load "$T/missing.so" "$T/t.trace"
expect 2 "future.so: driver tplug: API version 99" -- \
    "$BLKV" run -d "$P/future.so" "$T/t.trace"

# the generic fuzz target
"$BLKV" encode -o "$T/t.bin" "$T/t.trace"
expect 0 "running .*t.bin" -- env BLKV_PLUGIN="$P/tplug.so" BLKV_REPRO_DIR=- "$PF" "$T/t.bin"
expect 2 "set BLKV_PLUGIN" -- env -u BLKV_PLUGIN "$PF" "$T/t.bin"
expect 2 "plugin_fuzzer: .*nosym.so: not a blkv plugin" -- \
    env BLKV_PLUGIN="$P/nosym.so" "$PF" "$T/t.bin"
expect 2 "BLKV_PLUGIN_OPTS: driver tplug has no option 'x'" -- \
    env BLKV_PLUGIN="$P/tplug.so" BLKV_PLUGIN_OPTS=x=1 "$PF" "$T/t.bin"
expect 134 "image check failed: tplug: the check was called" -- \
    env BLKV_PLUGIN="$P/old_full.so" BLKV_REPRO_DIR=- "$PF" "$T/t.bin"

if [ "$fails" != 0 ]; then
    echo "$fails failure(s)"
    exit 1
fi
echo "all plugin tests passed"
