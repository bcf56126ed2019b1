#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# test_qcow2_interop.sh BLKV - the qcow2 driver against QEMU's tools.
#
#  1. Images the driver writes (random programs, every version, cluster
#     size, refcount width, with and without a backing file, and images
#     whose refcount table and blocks grow early) pass
#     `qemu-img check` (leaks allowed, as they are after injected faults),
#     and QEMU reads them as the driver does: the raw view `qemu-img convert`
#     makes is the initial content of a run that reads the image back.
#  2. Images qemu-img and qemu-io make (v2 and v3, cluster sizes 512 to 2M,
#     data, zero and discarded clusters, compressed clusters from
#     `qemu-img convert -c`) read back identically through the driver, take
#     random writes, pass the driver's check, and then `qemu-img check`.
#
# Exit 0 pass, 1 fail, 77 skip (qemu-img or qemu-io missing).
set -u
blkv=${1:?usage: test_qcow2_interop.sh BLKV}
if ! command -v qemu-img >/dev/null || ! command -v qemu-io >/dev/null; then
    echo "skip: qemu-img and qemu-io are not installed (Debian: qemu-utils)"
    exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0

fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# qemu-img check: 0 clean, 3 leaks only; anything else fails.
qcheck() {
    local out rc
    out=$(qemu-img check "$1" 2>&1)
    rc=$?
    if [ $rc -ne 0 ] && [ $rc -ne 3 ]; then
        fail "qemu-img check $2 (exit $rc):"
        echo "$out" | head -20
        return 1
    fi
    return 0
}

# Read an image back through the driver, the initial content being QEMU's
# raw view of it: full reads, a reopen, the driver's check.
readback() { # IMAGE SIZE WHAT
    local img=$1 size=$2 what=$3 t=$dir/readback.trace
    qemu-img convert -O raw "$img" "$dir/view.raw" || { fail "convert $what"; return; }
    {
        echo "blkv-trace 1"
        echo "driver qcow2"
        echo "size $size"
        echo "lower $img"
        echo "init image $dir/view.raw"
        for ((off = 0; off < size; off += 4194304)); do
            n=$((size - off < 4194304 ? size - off : 4194304))
            echo "read $off $n"
        done
        echo "reopen"
        echo "read 0 $((size < 8388608 ? size : 8388608))"
        echo "check"
    } >"$t"
    "$blkv" run "$t" >"$dir/out" 2>&1 || { fail "read back $what"; head -30 "$dir/out"; }
}

# Random ops within SIZE (deterministic: bash's RANDOM seeded).
random_ops() { # SEED SIZE COUNT
    RANDOM=$1
    local size=$2 i off len r
    for ((i = 0; i < $3; i++)); do
        off=$(((RANDOM * 32768 + RANDOM) % size))
        len=$((1 + (RANDOM * 8) % 300000))
        ((off + len > size)) && len=$((size - off))
        r=$((RANDOM % 16))
        if ((r < 6)); then echo "write $off $len"
        elif ((r < 10)); then echo "read $off $len"
        elif ((r < 11)); then echo "wzero $off $len"
        elif ((r < 12)); then echo "wzero $off $len unmap"
        elif ((r < 13)); then echo "discard $off $len"
        elif ((r < 14)); then echo "flush"
        elif ((r < 15)); then echo "drain"
        else echo "reopen"; fi
    done
}

# ---- 1. images the driver writes ---------------------------------------------
n1=0
for v in 2 3; do
    for cs in 512 65536 2097152; do
        for rb in 1 16 64; do
            [ $v = 2 ] && [ $rb != 16 ] && continue
            for b in none raw; do
                for seed in 1 2; do
                    spec="qcow2 version=$v cluster-size=$cs refcount-bits=$rb backing=$b"
                    img=$dir/a.qcow2
                    rm -f "$img" "$dir"/backing.*
                    {
                        echo "blkv-trace 1"
                        echo "driver $spec save=$img"
                        echo "size 64M"
                        echo "grain $cs"
                        echo "qd 16"
                        echo "seed $seed"
                        [ $seed = 1 ] && echo "init pattern"
                        random_ops $((seed * 1000 + cs % 997 + rb)) 67108864 120
                        echo "check"
                    } >"$dir/a.trace"
                    if ! "$blkv" run "$dir/a.trace" >"$dir/out" 2>&1; then
                        fail "$spec seed $seed"
                        head -30 "$dir/out"
                        continue
                    fi
                    qcheck "$img" "($spec seed $seed)" || continue
                    # the backing file is only in lower file 1 of a run, so
                    # the read-back (lower file 0 only) is for images without
                    [ $b = none ] && readback "$img" 67108864 "$spec seed $seed"
                    n1=$((n1 + 1))
                done
            done
        done
    done
done
echo "driver-written images checked by qemu-img: $n1"

# ---- 1b. images that grow early ----------------------------------------------------
# An L1 table longer than the size needs (l1-size, as qcow2_fuzzer draws it)
# ends the new image's metadata just before its one refcount table cluster
# (512-byte clusters) or first refcount block (4K) runs out: the refcount
# table grows, new blocks are made.  The 512-byte images must have grown
# their refcount table (its cluster count in the header, at offset 56).
n1b=0
for g in "512 $(((4030 - 0) * 64)) off" "512 $(((4030 - 9) * 64)) on" \
         "4096 $(((512 - 3 - 2) * 512)) off" "1024 $(((128 - 3 - 0) * 128)) off"; do
    read -r cs l1 lazy <<<"$g"
    spec="qcow2 version=3 cluster-size=$cs refcount-bits=64 lazy-refcounts=$lazy l1-size=$l1"
    img=$dir/g.qcow2
    rm -f "$img"
    {
        echo "blkv-trace 1"
        echo "driver $spec save=$img"
        echo "size 64M"
        echo "grain $cs"
        echo "seed 7"
        random_ops $((cs + l1 % 1000)) 67108864 60
        echo "check"
    } >"$dir/g.trace"
    if ! "$blkv" run "$dir/g.trace" >"$dir/out" 2>&1; then
        fail "$spec"
        head -30 "$dir/out"
        continue
    fi
    qcheck "$img" "($spec)" || continue
    rtc=$(od -An -tu1 -j56 -N4 "$img" | awk '{ print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4 }')
    [ "$cs" != 512 ] || [ "$rtc" -gt 1 ] || fail "($spec): the refcount table did not grow ($rtc)"
    readback "$img" 67108864 "$spec"
    n1b=$((n1b + 1))
done
echo "driver-written images that grow, checked by qemu-img: $n1b"

# ---- 2. images QEMU writes ------------------------------------------------------
n2=0
size=16777216
for compat in 0.10 1.1; do
    for cs in 512 4096 65536 2097152; do
        for rb in 16 1; do
            [ $compat = 0.10 ] && [ $rb != 16 ] && continue
            [ $rb = 1 ] && [ $cs != 65536 ] && continue
            what="compat=$compat cluster_size=$cs refcount_bits=$rb"
            b=$dir/q.qcow2
            rm -f "$b"
            qemu-img create -q -f qcow2 -o compat=$compat,cluster_size=$cs,refcount_bits=$rb \
                "$b" $size || { fail "qemu-img create $what"; continue; }
            qemu-io -f qcow2 -c "write -P 0x11 0 1M" -c "write -P 0x22 3000000 100000" \
                -c "write -z 5M 1M" -c "write -P 0x33 6M 2M" -c "discard 6M 512k" \
                -c "write -P 0x44 9M 1M" -c "write -z -u 9M 256k" -c "write -P 0x55 15M 1M" \
                -c "write -P 0x66 16776000 1216" "$b" >/dev/null ||
                { fail "qemu-io $what"; continue; }
            qemu-img convert -O raw "$b" "$dir/q.raw"
            # the same content compressed
            qemu-img convert -c -O qcow2 -o compat=$compat,cluster_size=$cs,refcount_bits=$rb \
                "$dir/q.raw" "$dir/c.qcow2" || { fail "qemu-img convert -c $what"; continue; }
            for img in "$b" "$dir/c.qcow2"; do
                readback "$img" $size "$what ($(basename "$img"))"
                # then random writes through the driver, and qemu-img check
                {
                    echo "blkv-trace 1"
                    echo "driver qcow2 save=$dir/w.qcow2"
                    echo "size $size"
                    echo "grain $cs"
                    echo "qd 8"
                    echo "lower $img"
                    echo "init image $dir/q.raw"
                    random_ops $((cs % 1000 + n2)) $size 100
                    echo "read 0 8388608"
                    echo "read 8388608 8388608"
                    echo "check"
                } >"$dir/w.trace"
                if ! "$blkv" run "$dir/w.trace" >"$dir/out" 2>&1; then
                    fail "writes to $what ($(basename "$img"))"
                    head -30 "$dir/out"
                    continue
                fi
                qcheck "$dir/w.qcow2" "after writes to $what" &&
                    readback "$dir/w.qcow2" $size "after writes to $what"
                n2=$((n2 + 1))
            done
        done
    done
done
echo "QEMU-written images read and written by the driver: $n2"

if ((fails)); then
    echo "$fails failure(s)"
    exit 1
fi
echo "ok"
