#!/bin/bash -eu
# SPDX-License-Identifier: BSD-3-Clause
# OSS-Fuzz / ClusterFuzzLite build: every in-process fuzz target, built with
# $CC/$CFLAGS and linked with $LIB_FUZZING_ENGINE (BLKV_FUZZ_ENGINE=env), goes
# to $OUT with its seed corpus (<target>_fuzzer_seed_corpus.zip, from the
# directories fuzz/seed-dirs names), dictionary (fuzz/program.dict + fuzz/<target>.dict) and
# libFuzzer options (fuzz/<target>.options).
#
# Left out: buggy, the self-test target (its driver has a deliberate bug, so
# it crashes at once), drivers that need outside processes (nbd: built
# with BLKV_NBD=OFF), and libqcow, a system library the build image does not
# have (BLKV_LIBQCOW=OFF: nothing links it, even where it is installed).
# BLKV_OSSFUZZ_SKIP overrides the skip list.
# fuzz/oss-fuzz-check runs this script locally with OSS-Fuzz's variables.
src=${BLKV_SRC:-$SRC/blkv}
build=${WORK:-/tmp}/blkv-build
skip=" ${BLKV_OSSFUZZ_SKIP-buggy} "

# -Werror is for the project's own compilers; OSS-Fuzz's clang may warn more
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBLKV_FUZZ_ENGINE=env \
    -DBLKV_WERROR=OFF -DBLKV_NBD=OFF -DBLKV_LIBQCOW=OFF -DBLKV_URING=OFF \
    -DCMAKE_C_COMPILER="$CC" -DCMAKE_C_FLAGS="$CFLAGS" -DCMAKE_C_FLAGS_RELEASE="" >/dev/null

targets=()
for t in $(cat "$build/fuzz/oss-fuzz-targets.txt"); do
    [[ $skip == *" $t "* ]] || targets+=("$t")
done
cmake --build "$build" -j"$(nproc)" --target "${targets[@]/%/_fuzzer}"

for t in "${targets[@]}"; do
    cp "$build/fuzz/${t}_fuzzer" "$OUT/"
    cat "$src/fuzz/program.dict" > "$OUT/${t}_fuzzer.dict"
    if [ -f "$src/fuzz/$t.dict" ]; then
        cat "$src/fuzz/$t.dict" >> "$OUT/${t}_fuzzer.dict"
    fi
    if [ -f "$src/fuzz/$t.options" ]; then
        cp "$src/fuzz/$t.options" "$OUT/${t}_fuzzer.options"
    fi
    rm -f "$OUT/${t}_fuzzer_seed_corpus.zip"
    for d in $("$src/fuzz/seed-dirs" -r "$src" "$t"); do
        (cd "$d" && zip -q -r "$OUT/${t}_fuzzer_seed_corpus.zip" .)
    done
    echo "build.sh: $OUT/${t}_fuzzer"
done
