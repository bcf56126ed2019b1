#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The out-of-tree example (examples/extmap): blkv installed into a temporary
# prefix, the example built against it with find_package(blkv) and with
# pkg-config, its libFuzzer target finding the planted bug from an empty
# corpus and running clean without it, `blkv run --load` replaying the
# saved reproducer and a hand-written trace, and (where AFL++ is installed)
# an AFL++ build.  Skips (77) without clang's libFuzzer.
# Usage: test_example.sh BUILD_DIR SOURCE_DIR
set -u
BUILD=$1
SRC=$2
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
        fail "$* exited $rc, wanted $code; output: $(echo "$out" | tail -5)"
    elif [ -n "$pat" ] && ! grep -qE -- "$pat" <<<"$out"; then
        fail "$* output lacks /$pat/: $(echo "$out" | tail -5)"
    else
        echo "ok   $*"
    fi
}

echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' >"$T/probe.c"
if ! clang -fsanitize=fuzzer,address -o "$T/probe" "$T/probe.c" 2>/dev/null; then
    echo "skip: clang with libFuzzer and ASan not available"
    exit 77
fi

P=$T/prefix
cmake --install "$BUILD" --prefix "$P" >/dev/null || { echo "FAIL: install"; exit 1; }
BLKV=$P/bin/blkv
for f in include/blkv/driver.h include/blkv/fuzz.h include/blkv/run.h lib/libblkv.a \
         lib/libblkv.so lib/libblkv-replay.a lib/cmake/blkv/blkvConfig.cmake \
         lib/pkgconfig/blkv.pc lib/pkgconfig/blkv-replay.pc share/blkv/program.dict bin/blkv; do
    [ -e "$P/$f" ] || fail "not installed: $f"
done
# only the public headers are installed
[ "$(ls "$P/include/blkv" | wc -l)" = 5 ] || fail "installed headers: $(ls "$P/include/blkv")"

# 1. CMake, find_package(blkv): the plugin and two libFuzzer targets
cp -r "$SRC/examples/extmap" "$T/src"
if ! cmake -S "$T/src" -B "$T/cm" -DCMAKE_PREFIX_PATH="$P" -DCMAKE_C_COMPILER=clang \
        >"$T/log" 2>&1 || ! cmake --build "$T/cm" >>"$T/log" 2>&1; then
    cat "$T/log"
    fail "CMake build of the example"
fi

cat >"$T/race.trace" <<'TRACE'
blkv-trace 1
driver extmap bug=alloc-race
size 1M
sched fifo
# two writes race into one new block; with the bug both allocate it
write 0 512
write 512 512
drain
read 0 1024
TRACE
sed 's/ bug=alloc-race//' "$T/race.trace" >"$T/norace.trace"
expect 1 "signature: contents/read/" -- "$BLKV" run --load "$T/cm/extmap.so" "$T/race.trace"
expect 0 "norace.trace: ok" -- "$BLKV" run --load "$T/cm/extmap.so" "$T/norace.trace"
expect 0 "no failure after 200 programs" -- \
    "$BLKV" prop --load "$T/cm/extmap.so" -r 200 -q -s "$T"

# the fuzzer finds the planted bug from an empty corpus and saves a
# reproducer that blkv run --load replays; without the bug it runs clean
mkdir "$T/run"
# libFuzzer exits 77 on a crash (-error_exitcode)
expect 77 "driver: extmap bug=alloc-race" -- env -C "$T/run" BLKV_REPRO_DIR=. \
    "$T/cm/extmap_buggy_fuzzer" -seed=1 -runs=200000 -dict="$P/share/blkv/program.dict"
repro=$(ls "$T"/run/blkv-repro-*.trace 2>/dev/null | head -1)
if [ -n "$repro" ]; then
    expect 1 "signature: contents/read/" -- "$BLKV" run --load "$T/cm/extmap.so" "$repro"
else
    fail "the buggy fuzzer saved no reproducer"
fi
expect 0 "Done 3000 runs" -- env -C "$T/run" BLKV_REPRO_DIR=- \
    "$T/cm/extmap_fuzzer" -seed=1 -runs=3000

# 2. make and pkg-config: the plugin, a replay binary, and a libFuzzer
# target linked with the shared libblkv
cp -r "$SRC/examples/extmap" "$T/mk"
if ! PKG_CONFIG_PATH="$P/lib/pkgconfig" make -C "$T/mk" extmap.so extmap_replay extmap_fuzzer \
        >"$T/log" 2>&1; then
    cat "$T/log"
    fail "make build of the example"
fi
"$BLKV" encode -o "$T/norace.bin" "$T/norace.trace"
expect 0 "running .*norace.bin" -- env BLKV_REPRO_DIR=- "$T/mk/extmap_replay" "$T/norace.bin"
expect 0 "norace.trace: ok" -- "$BLKV" run --load "$T/mk/extmap.so" "$T/norace.trace"
expect 1 "signature: contents/read/" -- "$BLKV" run --load "$T/mk/extmap.so" "$T/race.trace"
expect 0 "Done 2000 runs" -- env -C "$T/run" BLKV_REPRO_DIR=- "$T/mk/extmap_fuzzer" -seed=2 \
    -runs=2000
ldd "$T/mk/extmap_fuzzer" | grep -q "libblkv.so" || fail "make's libFuzzer target is not linked with libblkv.so"

# 3. AFL++: the same CMake project with afl-clang-fast (persistent mode)
if command -v afl-clang-fast >/dev/null; then
    if AFL_QUIET=1 cmake -S "$T/src" -B "$T/afl" -DCMAKE_PREFIX_PATH="$P" \
            -DCMAKE_C_COMPILER=afl-clang-fast >"$T/log" 2>&1 &&
        AFL_QUIET=1 cmake --build "$T/afl" >>"$T/log" 2>&1; then
        expect 0 "" -- env BLKV_REPRO_DIR=- "$T/afl/extmap_fuzzer" "$T/norace.bin"
    else
        cat "$T/log"
        fail "AFL++ build of the example"
    fi
else
    echo "skip AFL++ build: afl-clang-fast not installed"
fi

if [ "$fails" != 0 ]; then
    echo "$fails failure(s)"
    exit 1
fi
echo "example: all passed"
