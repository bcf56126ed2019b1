#!/bin/sh
# Finding: a dynamic VHD that QEMU's vpc driver leaves when it is killed in
# the middle of a block allocation has no footer in its last sector; QEMU
# opens it from the footer copy at offset 0, libvhdi refuses it.
#
# Software: libvhdi 20210425 (Debian 12, libvhdi1 and libvhdi-utils
#   20210425-1+b2) and QEMU 7.2 (qemu-utils 1:7.2+dfsg-7+deb12u18+b3).
# Found by: blkv prop -S 1 -d "nbd server=qsd format=vpc reader=libvhdi"
#   (program 38, after a crash op): every read failed with the libvhdi error
#   below.  A race between the SIGKILL and QEMU's writes: no trace replays
#   it, so this script builds the state the crash leaves instead.
# Reproduction, QEMU's and libyal's tools only (no trace):
#   IMG=/tmp/t.vpc sh tests/findings/libvhdi-vpc-footer-copy.sh
#   qemu-img creates a 64 MiB dynamic VHD and qemu-io writes 4 KiB at 0 (one
#   block allocated).  QEMU's next allocation (alloc_block in block/vpc.c)
#   first writes the new block's bitmap, 512 bytes of 0xff, where the footer
#   is (the old end of the file), then the footer after the new block, then
#   the BAT entry.  A crash after the first of these leaves the file as
#   the script makes it: the last sector overwritten with 0xff.  qemu-io
#   then still reads the image right (the BAT entry was never written, the
#   footer copy at offset 0 is intact); vhdiinfo (libvhdi) cannot open it
#   and the script exits 1.  It exits 0 once libvhdi opens it.
# The VHD specification keeps a copy of the footer at the start of a
#   dynamic disk for this (it names it a redundant copy in case the footer
#   at the end is corrupted).  QEMU could also order the writes so that a
#   footer is at the end at every point: the new footer first, then the
#   bitmap over the old one.
# See libvhdi-vpc-footer-copy.report.md.
# qemu-io: libvhdi_file_footer_read_data: unsupported signature
IMG=${IMG:-blkv-export.vpc}
command -v vhdiinfo >/dev/null 2>&1 || { echo "vhdiinfo is not installed (libvhdi-utils)"; exit 77; }
rm -f "$IMG"
qemu-img create -q -f vpc "$IMG" 64M || exit 2
qemu-io -f vpc -c 'write -P 0xab 0 4k' "$IMG" >/dev/null || exit 2
size=$(stat -c %s "$IMG") || exit 2
# the next allocation's bitmap over the footer, and the crash
head -c 512 /dev/zero | tr '\0' '\377' |
    dd of="$IMG" bs=512 seek=$((size / 512 - 1)) conv=notrunc status=none || exit 2
qemu-io -r -f vpc -c 'read -P 0xab 0 4k' -c 'read -P 0 4k 4k' "$IMG" || {
    echo "qemu-io cannot read it either: not the state this entry describes"; exit 2; }
vhdiinfo "$IMG" 2>&1
