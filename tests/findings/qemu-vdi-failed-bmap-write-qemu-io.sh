#!/bin/sh
# The qemu-io form of qemu-vdi-failed-bmap-write.trace (QEMU's tools only):
# a vdi over blkdebug whose rule fails the I/O after the second
# pwritev_done event (the first allocation's block map write); a second
# write of 2s to the same block succeeds, and a flush too; a new qemu-io
# then reads zeros where the 2s were.  Exits 1 with the line below while
# the bug is there, 0 once the 2s read back.
# See qemu-vdi-failed-bmap-write.trace and its report.
# qemu-io: Pattern verification failed at offset 0
IMG=${IMG:-blkv-export.vdi}
rm -f "$IMG"
qemu-img create -q -f vdi "$IMG" 64M || exit 2
qemu-io --image-opts "driver=vdi,file.driver=blkdebug,file.image.driver=file,file.image.filename=$IMG,file.set-state.0.event=pwritev_done,file.set-state.0.state=1,file.set-state.0.new_state=2,file.inject-error.0.event=pwritev_done,file.inject-error.0.state=2,file.inject-error.0.errno=5,file.inject-error.0.once=on" \
    -c 'write -P 1 0 4k' -c 'write -P 2 0 4k' -c flush 2>&1
out=$(qemu-io -r -f vdi -c 'read -P 2 0 4k' "$IMG" 2>&1)
echo "$out"
qemu-img check -f vdi "$IMG"
echo "$out" | grep -q 'Pattern verification failed' && exit 1
exit 0
