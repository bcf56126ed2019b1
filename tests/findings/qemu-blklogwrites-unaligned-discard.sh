#!/bin/sh
# Finding: QEMU's blklogwrites filter aborts on a discard that is not
# aligned to its log sector size.
#
# Software: QEMU 7.2, Debian 12 packages qemu-utils and qemu-system-common
#   1:7.2+dfsg-7+deb12u18+b3 (`qemu-img --version`: qemu-img version 7.2.22).
# Found by: blkv prop -S 1 -d "nbd server=qsd format=raw crash-image=log"
#   (shrunk to 'discard 60928 4096', then a write): qemu-storage-daemon died
#   with the assertion below.
# Reproduction, QEMU's tools only (no trace: blkv's raw model is not where
#   the bug is, and the trace needs crash-image=log's node layout):
#   IMG=/tmp/t.img sh tests/findings/qemu-blklogwrites-unaligned-discard.sh
#   qemu-io opens a raw image over blklogwrites (default 512-byte log
#   sectors) and discards 100 bytes at 0.  Expected: the discard succeeds
#   (or is refused, or is logged rounded; discards are advisory).  Seen:
#   qemu-io aborts on the assertion below and the script exits with its
#   status (134).  It exits 0 once the discard returns.
# block/io.c's bdrv_co_pdiscard passes the unaligned head and tail of a
#   discard down to the driver ("Discard is advisory, but some devices
#   track and coalesce unaligned requests, so we must pass everything down
#   rather than round here"); blklogwrites sets request_alignment to its
#   log sector size and nothing for discards, and blk_log_writes_co_log
#   asserts that offset and bytes are aligned.
# See qemu-blklogwrites-unaligned-discard.report.md.
# qemu-io: blk_log_writes_co_log: Assertion `QEMU_IS_ALIGNED
IMG=${IMG:-blkv-export.img}
LOG=$IMG.log
rm -f "$IMG" "$LOG"
qemu-img create -q -f raw "$IMG" 64M || exit 2
: > "$LOG" || exit 2
qemu-io --image-opts "driver=raw,file.driver=blklogwrites,file.file.driver=file,file.file.filename=$IMG,file.log.driver=file,file.log.filename=$LOG" \
    -c 'discard 0 100' 2>&1
