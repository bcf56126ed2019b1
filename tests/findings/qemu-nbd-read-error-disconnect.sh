#!/bin/sh
# Finding: QEMU's NBD server (qemu-nbd) drops the client connection when a
# read fails, instead of sending an error reply for that request.
#
# Software: QEMU 7.2, Debian 12 package qemu-utils 1:7.2+dfsg-7+deb12u18+b3
#   (`qemu-img --version`: qemu-img version 7.2.22).
# Reproduction, QEMU's own tools only (no trace: a qemu-io-only entry):
#   IMG=/tmp/t.qcow2 sh tests/findings/qemu-nbd-read-error-disconnect.sh
#   qemu-nbd serves a qcow2 over blkdebug with one read_aio rule (EIO,
#   once); qemu-io writes 4 KiB at 0 (so the read below reads data from
#   the file), reads 128 KiB at 0 (the injected EIO) and then, on the same
#   connection, reads 4 KiB at 0 again.  Expected: the first read fails with
#   EIO and the second one succeeds (the rule fired once).  Seen: qemu-nbd
#   prints the line below and closes the connection, so the second read
#   fails too; the script exits 1.  It exits 0 once the second read works.
# The NBD protocol (NetworkBlockDevice/nbd doc/proto.md) has the server
#   answer a failed read with an error reply (a simple reply with an error,
#   or an NBD_REPLY_TYPE_ERROR_OFFSET chunk) and keep serving.
# See qemu-nbd-read-error-disconnect.report.md.
# qemu-io: Disconnect client, due to: Failed to send reply: reading from file failed
IMG=${IMG:-blkv-export.qcow2}
# the socket path stays short (sun_path) wherever IMG is
SOCKDIR=$(mktemp -d /tmp/qnbd.XXXXXX) || exit 2
SOCK=$SOCKDIR/s
LOG=$IMG.nbd.log
rm -f "$LOG"
qemu-img create -q -f qcow2 "$IMG" 67108864 || exit 2
qemu-nbd --socket="$SOCK" --image-opts "driver=qcow2,file.driver=blkdebug,file.image.filename=$IMG,file.inject-error.0.event=read_aio,file.inject-error.0.errno=5,file.inject-error.0.once=on" 2> "$LOG" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$SOCKDIR"' EXIT
n=0
until [ -S "$SOCK" ]; do
    n=$((n + 1)); [ $n -lt 100 ] || { echo "qemu-nbd did not start"; cat "$LOG"; exit 2; }
    sleep 0.1
done
out=$(qemu-io -f raw "nbd+unix:///?socket=$SOCK" \
    -c 'write -P 1 0 4k' -c 'read 0 128k' -c 'read -P 1 0 4k' 2>&1)
echo "$out"
wait $pid
cat "$LOG"
# the last read, after the failed one, must succeed on the same connection
echo "$out" | tail -n 2 | grep -q '^read 4096/4096 bytes at offset 0' && exit 0
exit 1
