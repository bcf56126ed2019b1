#!/bin/sh
# qemu-io reproducer of tests/findings/qemu-qcow2-zero-alloc-race.trace, written by blkv export-qemu-io
# driver in the trace: nbd server=qemu-nbd format=qcow2
# Reads check their data with -P where the expected content is known:
# look for "Pattern verification failed" in the output.
set -e
IMG=${IMG:-blkv-export.qcow2}
qemu-img create -q -f 'qcow2' "$IMG" 67108864
qemu-io -f 'qcow2' -d 'unmap' "$IMG" <<'EOF'
aio_write -P 1 0 65536
aio_flush
aio_write -z 0 65536
aio_flush
aio_write -P 2 0 4096
aio_write -z -u 0 65536
aio_flush
EOF
qemu-img check -f 'qcow2' "$IMG" || [ $? -eq 63 ]
# 2 writes, 0 reads, 0 of them checked with -P; 0 out-of-range request(s) left out
