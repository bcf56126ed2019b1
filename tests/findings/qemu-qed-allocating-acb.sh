#!/bin/sh
# qemu-io reproducer of tests/findings/qemu-qed-allocating-acb.trace, written by blkv export-qemu-io
# driver in the trace: nbd server=qemu-nbd format=qed
# Reads check their data with -P where the expected content is known:
# look for "Pattern verification failed" in the output.
set -e
IMG=${IMG:-blkv-export.qed}
qemu-img create -q -f 'qed' "$IMG" 67108864
qemu-io -f 'qed' -d 'unmap' "$IMG" <<'EOF'
aio_write -z 0 588800
aio_write -P 1 0 4096
aio_flush
EOF
qemu-img check -f 'qed' "$IMG" || [ $? -eq 63 ]
# 1 writes, 0 reads, 0 of them checked with -P; 0 out-of-range request(s) left out
