#!/bin/sh
# Finding: a VHDX whose header names a log GUID with no valid log entry
# behind it (what a crash in QEMU's vhdx_log_write leaves) can no longer
# allocate a block in QEMU: every write that needs a new BAT entry fails
# with ENOTSUP, and qemu-img check -r all finds nothing to repair.
#
# Software: QEMU 7.2, Debian 12 package qemu-utils 1:7.2+dfsg-7+deb12u18+b3
#   (`qemu-img --version`: qemu-img version 7.2.22).
# Found by: blkv prop -S 1 -d "nbd server=qsd format=vhdx" (program 10),
#   and with reader=libvhdi (program 38): after a crash op (SIGKILL of
#   qemu-storage-daemon with requests in flight) a write failed with
#   -ENOTSUP.  A race with the SIGKILL, so no trace replays it; this script
#   makes the state the crash leaves instead.
# Reproduction, QEMU's tools and python3 (no trace):
#   IMG=/tmp/t.vhdx sh tests/findings/qemu-vhdx-log-guid-enotsup.sh
#   qemu-img creates a 64 MiB VHDX and qemu-io writes 4 KiB at 0 (a block
#   allocated and its log entry replayed: the log GUID is zero again).
#   vhdx_log_write() (block/vhdx-log.c) first writes both headers with a new
#   log GUID (vhdx_update_headers, synced), then the log entry; a crash
#   between the two leaves a header with a GUID and no entry carrying it.
#   The script sets the current header's log GUID and its CRC-32C so.  At
#   the next open vhdx_parse_log() finds no valid sequence and replays
#   nothing, but leaves the GUID; vhdx_log_write() then refuses every log
#   write ("currently, we require that the log be flushed after every
#   write": -ENOTSUP).  Seen: reads and overwrites of allocated blocks work,
#   qemu-img check (and -r all) reports no errors, and a write to an
#   unallocated block fails with the line below; the script exits 1.  It
#   exits 0 once that write succeeds.
# The VHDX specification (LogGuid): only entries carrying the header's GUID
#   are valid; with no valid entry there is nothing to replay, and a writer
#   may start a new log.
# See qemu-vhdx-log-guid-enotsup.report.md.
# qemu-io: write failed: Operation not supported
IMG=${IMG:-blkv-export.vhdx}
command -v python3 >/dev/null 2>&1 || { echo "python3 is not installed"; exit 77; }
rm -f "$IMG"
qemu-img create -q -f vhdx "$IMG" 64M || exit 2
qemu-io -f vhdx -c 'write -P 1 0 4k' "$IMG" >/dev/null || exit 2
# the current header (the higher sequence number) with a log GUID and no log
python3 - "$IMG" <<'PY' || exit 2
import struct, sys
def crc32c(data):
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    c = 0xffffffff
    for b in data:
        c = table[(c ^ b) & 0xff] ^ (c >> 8)
    return c ^ 0xffffffff
with open(sys.argv[1], 'r+b') as f:
    heads = []
    for off in (64 << 10, 128 << 10):  # the two headers, 4 KiB each
        f.seek(off)
        h = bytearray(f.read(4096))
        if h[:4] != b'head':
            sys.exit('no VHDX header at %d' % off)
        heads.append((struct.unpack_from('<Q', h, 8)[0], off, h))
    seq, off, h = max(heads)
    if h[48:64] != bytes(16):
        sys.exit('the log GUID is set already')
    h[48:64] = bytes(range(1, 17))  # LogGuid
    h[4:8] = bytes(4)               # Checksum: CRC-32C with the field zero
    struct.pack_into('<I', h, 4, crc32c(bytes(h)))
    f.seek(off)
    f.write(h)
PY
qemu-img check -f vhdx "$IMG"
out=$(qemu-io -f vhdx -c 'read -P 1 0 4k' -c 'write -P 2 0 4k' -c 'write -P 3 8M 4k' "$IMG" 2>&1)
echo "$out"
echo "$out" | grep -q '^read 4096/4096' && echo "$out" | grep -q '^wrote 4096/4096 bytes at offset 0$' ||
    { echo "reads or overwrites fail too: not the state this entry describes"; exit 2; }
echo "$out" | grep -q '^wrote 4096/4096 bytes at offset 8388608' && exit 0
exit 1
