#!/bin/sh
# Finding: QEMU's vdi driver writes the header (its count of allocated
# blocks) and the block map of a new block with no flush between them; a
# power loss that keeps the block map entry and loses the header makes the
# next allocation reuse the block: two guest blocks share one, and a write
# to one overwrites the other.
#
# Software: QEMU 7.2, Debian 12 packages qemu-utils and qemu-system-common
#   1:7.2+dfsg-7+deb12u18+b3 (`qemu-img --version`: qemu-img version 7.2.22).
# Found by: blkv prop -S 1 -d "nbd server=qsd format=vdi crash-image=log
#   write-zeroes=off" (program 1): after a power loss rebuilt from
#   blklogwrites' log, qemu-img check: "ERROR: allocated blocks mismatch,
#   is 1, should be 2".  Which lower writes a crash loses is chosen by the
#   crash's seed from writes whose order varies with timing, so this script
#   makes the state instead.
# Reproduction, QEMU's tools only (no trace):
#   IMG=/tmp/t.vdi sh tests/findings/qemu-vdi-header-bmap-order.sh
#   qemu-img creates a 64 MiB vdi (1 MiB blocks); qemu-io writes 4 KiB into
#   block 0 and then 4 KiB of 2s into block 1, which allocates it:
#   vdi_co_pwritev writes the data, then the header (blocks_allocated, a
#   u32 at offset 388, 1 -> 2), then the block map sector, with no flush.
#   The script puts back the old header count, as a power loss that kept
#   the block map write and lost the header write leaves it.  Then
#   qemu-img check reports the mismatch, and qemu-io writes 3s into block
#   2 (a new allocation, placed at blocks_allocated = 1: block 1's data)
#   and reads block 1 back expecting its 2s.  Seen: the line below and exit
#   1.  It exits 0 once block 1 still reads as 2s (a flush between the
#   writes, or an open that recounts, would do).
# See qemu-vdi-header-bmap-order.report.md.
# qemu-io: Pattern verification failed at offset 1048576
IMG=${IMG:-blkv-export.vdi}
rm -f "$IMG"
qemu-img create -q -f vdi "$IMG" 64M || exit 2
qemu-io -f vdi -c 'write -P 1 0 4k' "$IMG" >/dev/null || exit 2
count() { od -A n -t u4 -j 388 -N 4 "$IMG" | tr -d ' '; }
[ "$(count)" = 1 ] || { echo "blocks_allocated is $(count), not 1: another vdi layout"; exit 2; }
qemu-io -f vdi -c 'write -P 2 1M 4k' "$IMG" >/dev/null || exit 2
[ "$(count)" = 2 ] || { echo "blocks_allocated is $(count) after the second block, not 2"; exit 2; }
# the power loss: the block map entry kept, the header write lost
printf '\001' | dd of="$IMG" bs=1 seek=388 conv=notrunc status=none || exit 2
qemu-img check -f vdi "$IMG"
qemu-io -f vdi -c 'write -P 3 2M 4k' -c 'read -P 2 1M 4k' "$IMG" 2>&1 | tee "$IMG.out"
grep -q 'Pattern verification failed' "$IMG.out" && exit 1
exit 0
