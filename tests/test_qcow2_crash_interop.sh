#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# test_qcow2_crash_interop.sh BLKV - images the qcow2 driver leaves at a
# power loss, against QEMU's tools.
#
# Random programs (writes, FUA writes, write-zeroes, discards, flushes,
# reads, drains, lower I/O steps, reopens, queue depth > 1) with one to three
# `crash N` ops, the last one the end of the program; after it, the whole
# device is read (the model pins each byte to its durable value or a newer
# write's) and checked.  `blkv run --save-crash-images` keeps every image as
# the power loss left it, before the driver reopens (and, with lazy
# refcounts, repairs) it.  For each such image:
#
#  - without lazy refcounts: `qemu-img check` finds no corruption (exit 0, or
#    3: leaked clusters, which DESIGN.md allows after a crash), and the image
#    is not marked dirty;
#  - with lazy refcounts (version 3): an image marked dirty gets QEMU's rule:
#    `qemu-img check -r all` on a copy (what QEMU's open does with a dirty
#    image), after which `qemu-img check` is clean (exit 0).  One not marked
#    dirty must pass the plain check as above (leaks allowed).  Some images
#    must really be dirty, or the lazy path was not exercised;
#  - for the last crash of each program: `qemu-img convert -O raw` of the
#    image is the initial content of a second run that opens the image and
#    reads all of it through the driver, so QEMU's view equals the driver's,
#    which the first run proved the model accepts.  (With lazy refcounts the
#    repaired copy converts to the same bytes.)
#
# Versions 2 and 3, cluster sizes 512 B, 64 KiB and 2 MiB, lazy refcounts on
# and off, refcount widths 16 (and 1 and 64 for version 3), a few seeds and
# crash choices each.  Exit 0 pass, 1 fail, 77 skip (qemu-img missing).
set -u
blkv=${1:?usage: test_qcow2_crash_interop.sh BLKV}
# BLKV_CRASH_SEEDS=N (default 4) programs per configuration, from seed
# BLKV_CRASH_FIRST_SEED (default 1): more of them for a longer search
nseeds=${BLKV_CRASH_SEEDS:-4}
first_seed=${BLKV_CRASH_FIRST_SEED:-1}
nops=${BLKV_CRASH_OPS:-40} # random ops before each crash
if ! command -v qemu-img >/dev/null; then
    echo "skip: qemu-img is not installed (Debian: qemu-utils)"
    exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0
images=0 dirty=0 lazy_clean=0 leaky=0 repaired=0 compared=0 programs=0 kept=0 closed=0

fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# Keep the failing program: `blkv run --save-crash-images DIR` on it makes
# the same images again.
keep() { # WHAT
    local t
    kept=$((kept + 1))
    t=${TMPDIR:-/tmp}/blkv-crash-interop-$kept.trace
    { echo "# $1"; cat "$dir/a.trace"; } >"$t" && echo "  program kept: $t"
}

# Whether a version 3 image has the dirty bit (incompatible feature bit 0).
is_dirty() {
    local b
    b=$(od -An -tu1 -j79 -N1 "$1" | tr -d ' ')
    [ $(($(od -An -tu1 -j4 -N4 "$1" | awk '{print $4}') >= 3)) = 1 ] && [ $((b & 1)) = 1 ]
}

# The QEMU checks of one crash image (see the top): 0 if it passes.
check_image() { # IMAGE LAZY WHAT
    local img=$1 lazy=$2 what=$3 out rc
    images=$((images + 1))
    cp "$img" "$dir/repaired.qcow2"
    if [ "$lazy" = on ] && is_dirty "$img"; then
        dirty=$((dirty + 1))
        out=$(qemu-img check -r all "$dir/repaired.qcow2" 2>&1)
        rc=$?
        if [ $rc -ne 0 ]; then
            fail "qemu-img check -r all $what (exit $rc):"
            echo "$out" | head -20
            return 1
        fi
        grep -q "inconsistencies were found and repaired" <<<"$out" && repaired=$((repaired + 1))
        out=$(qemu-img check "$dir/repaired.qcow2" 2>&1)
        rc=$?
        if [ $rc -ne 0 ]; then
            fail "qemu-img check after repair $what (exit $rc):"
            echo "$out" | head -20
            return 1
        fi
        return 0
    fi
    if [ "$lazy" != on ] && is_dirty "$img"; then
        fail "$what: marked dirty without lazy refcounts"
        return 1
    fi
    # not dirty (with lazy refcounts too): consistent, but for leaks
    [ "$lazy" = on ] && lazy_clean=$((lazy_clean + 1))
    out=$(qemu-img check "$img" 2>&1)
    rc=$?
    if [ $rc -eq 3 ]; then
        leaky=$((leaky + 1))
    elif [ $rc -ne 0 ]; then
        fail "qemu-img check $what (exit $rc):"
        echo "$out" | head -20
        return 1
    fi
    return 0
}

# The image as the driver closed it, after it reopened (and, with lazy
# refcounts, repaired) the last crash image and read it all: clean, but
# for the leaks of a crash without lazy refcounts.
check_closed() { # IMAGE LAZY WHAT
    local out rc
    closed=$((closed + 1))
    out=$(qemu-img check "$1" 2>&1)
    rc=$?
    if [ $rc -ne 0 ] && { [ "$2" = on ] || [ $rc -ne 3 ]; }; then
        fail "qemu-img check of the closed image, $3 (exit $rc):"
        echo "$out" | head -20
        return 1
    fi
    if is_dirty "$1"; then
        fail "$3: the closed image is marked dirty"
        return 1
    fi
    return 0
}

# Full-device reads, in the largest requests the driver takes.
read_all() { # SIZE
    local off n
    for ((off = 0; off < $1; off += 8388608)); do
        n=$(($1 - off < 8388608 ? $1 - off : 8388608))
        echo "read $off $n"
    done
}

# QEMU's raw view of the image is what the driver reads from it: a run that
# opens the image with that view as its initial content and reads it all.
compare_data() { # IMAGE SIZE LAZY WHAT
    local img=$1 size=$2 lazy=$3 what=$4
    compared=$((compared + 1))
    qemu-img convert -O raw "$img" "$dir/view.raw" || { fail "convert $what"; return; }
    if [ "$lazy" = on ]; then
        qemu-img convert -O raw "$dir/repaired.qcow2" "$dir/view2.raw" &&
            cmp -s "$dir/view.raw" "$dir/view2.raw" ||
            fail "$what: QEMU's repair changed the guest data"
    fi
    {
        echo "blkv-trace 1"
        echo "driver qcow2"
        echo "size $size"
        echo "lower $img"
        echo "init image $dir/view.raw"
        # the image is what a power loss left: a crash before anything was
        # written changes nothing, and tells the run that leaked clusters
        # are allowed (the driver's check at the end)
        echo "crash 0"
        read_all "$size"
    } >"$dir/b.trace"
    "$blkv" run "$dir/b.trace" >"$dir/out" 2>&1 ||
        { fail "QEMU reads other data than the driver: $what"; head -30 "$dir/out"; keep; }
}

# Random ops within SIZE with cluster size CS (deterministic: bash's RANDOM
# seeded): half of them in a hot region, so that requests overlap, a
# quarter cluster-aligned, so that discards and zeroes free clusters.
random_ops() { # SEED SIZE CS COUNT
    RANDOM=$1
    local size=$2 cs=$3 i off len r span maxlen hot
    hot=$((cs * 16 > 1048576 ? cs * 16 : 1048576))
    ((hot > size)) && hot=$size
    maxlen=$((size / 200))
    for ((i = 0; i < $4; i++)); do
        span=$size
        ((RANDOM % 2)) && span=$hot
        off=$(((RANDOM * 32768 + RANDOM) % span))
        len=$((1 + (RANDOM * 32768 + RANDOM) % maxlen))
        if ((RANDOM % 4 == 0)); then
            off=$((off / cs * cs))
            len=$(((len + cs - 1) / cs * cs))
        fi
        ((off + len > size)) && len=$((size - off))
        r=$((RANDOM % 20))
        if ((r < 6)); then echo "write $off $len"
        elif ((r < 8)); then echo "write $off $len fua"
        elif ((r < 10)); then echo "read $off $len"
        elif ((r < 11)); then echo "wzero $off $len"
        elif ((r < 12)); then echo "wzero $off $len unmap"
        elif ((r < 14)); then echo "discard $off $len"
        elif ((r < 15)); then echo "flush"
        elif ((r < 16)); then echo "drain"
        elif ((r < 19)); then echo "step $((RANDOM % 8))"
        else echo "reopen"; fi
    done
}

# One program: crashes, the last at its end, then reads of everything and
# the driver's check; then QEMU's checks of each crash image, and QEMU's
# data of the last.  START, when given, is an image to start from (QEMU's
# raw view of it in START.raw); else the driver makes a new one.
crash_program() { # SPEC SIZE CS LAZY SEED WHAT [START]
    local spec=$1 size=$2 cs=$3 lazy=$4 seed=$5 what=$6 start=${7:-} ncrash k img
    RANDOM=$((seed * 7919 + cs % 1009 + ${#spec}))
    ncrash=$((1 + RANDOM % 3))
    {
        echo "blkv-trace 1"
        echo "driver $spec save=$dir/closed.qcow2"
        echo "size $size"
        echo "grain $cs"
        echo "qd $((4 + seed % 5 * 3))"
        echo "seed $seed"
        if [ -n "$start" ]; then
            echo "lower $start"
            echo "init image $start.raw"
        elif ((seed % 2)); then
            echo "init pattern"
        fi
        for ((k = 1; k <= ncrash; k++)); do
            random_ops $((seed * 100003 + cs + k * 31 + ${#spec})) $size $cs $nops
            echo "crash $(((seed * 37 + k * 101 + cs) % 256))"
        done
        read_all $size
        echo "check"
    } >"$dir/a.trace"
    rm -rf "$dir/crash" "$dir/closed.qcow2"
    programs=$((programs + 1))
    if ! "$blkv" run --save-crash-images "$dir/crash" "$dir/a.trace" >"$dir/out" 2>&1; then
        fail "$what"
        head -40 "$dir/out"
        keep "$what"
        return
    fi
    for ((k = 1; k <= ncrash; k++)); do
        img=$dir/crash/crash-$k.lower0
        if [ ! -f "$img" ]; then
            fail "$what: no image of crash $k"
            continue
        fi
        check_image "$img" $lazy "$what, crash $k" || keep "$what"
        [ $k = $ncrash ] && compare_data "$img" $size $lazy "$what, crash $k"
    done
    check_closed "$dir/closed.qcow2" $lazy "$what" || keep "$what"
}

# ---- 1. images the driver makes ----------------------------------------------
for v in 2 3; do
    for lazy in off on; do
        [ $v = 2 ] && [ $lazy = on ] && continue
        for cs in 512 65536 2097152; do
            size=$((cs == 512 ? 8388608 : 67108864))
            for ((seed = first_seed; seed < first_seed + nseeds; seed++)); do
                rb=16
                [ $v = 3 ] && [ $((seed % 4)) = 3 ] && rb=1
                [ $v = 3 ] && [ $((seed % 4)) = 0 ] && rb=64
                spec="qcow2 version=$v cluster-size=$cs refcount-bits=$rb lazy-refcounts=$lazy"
                # small caches: tables evicted (and, lazily, written back) often
                [ $((seed % 3)) = 2 ] && spec="$spec l2-cache=2 refcount-cache=2"
                crash_program "$spec" $size $cs $lazy $seed "$spec seed $seed"
            done
        done
    done
done

# ---- 2. images QEMU makes, compressed clusters among them ---------------------
# The driver writes over them (freeing compressed clusters, several to a
# host cluster) and loses power.
size=16777216
for compat in 0.10 1.1; do
    for lazy in off on; do
        [ $compat = 0.10 ] && [ $lazy = on ] && continue
        for cs in 512 65536 2097152; do
            opts=compat=$compat,cluster_size=$cs,lazy_refcounts=$lazy
            what="qemu-img $opts"
            q=$dir/q.qcow2 c=$dir/c.qcow2
            rm -f "$q" "$c"
            if ! qemu-img create -q -f qcow2 -o "$opts" "$q" $size ||
                ! qemu-io -f qcow2 -c "write -P 0x11 0 3M" -c "write -P 0x22 3000000 100000" \
                    -c "write -z 5M 1M" -c "write -P 0x33 6M 4M" -c "discard 7M 512k" \
                    -c "write -P 0x55 12M 2M" "$q" >/dev/null ||
                ! qemu-img convert -O raw "$q" "$c.raw" ||
                ! qemu-img convert -c -O qcow2 -o "$opts" "$c.raw" "$c"; then
                fail "making $what"
                continue
            fi
            cp "$c.raw" "$q.raw"
            for ((seed = first_seed; seed < first_seed + (nseeds + 3) / 4; seed++)); do
                crash_program qcow2 $size $cs $lazy $seed "$what (compressed) seed $seed" "$c"
                crash_program qcow2 $size $cs $lazy $seed "$what seed $seed" "$q"
            done
        done
    done
done

echo "programs: $programs; crash images checked by qemu-img: $images" \
     "(lazy refcounts: $dirty dirty, $repaired of them repaired by QEMU," \
     "$lazy_clean not dirty; of all not dirty, $leaky with leaked clusters); data compared with QEMU's: $compared;" \
     "images closed by the driver after the last crash checked: $closed"
if ((dirty == 0)); then
    fail "no image was left dirty: the lazy refcounts path was not exercised"
fi
if ((fails)); then
    echo "$fails failure(s)"
    exit 1
fi
echo "ok"
