#!/bin/sh
# nbdkit's and QEMU's tools only, for tests/findings/nbdkit-cow-rmw-race.trace:
# nbdkit's cow filter over the memory plugin; qemu-io sends a whole-block
# (64 KiB) write and an unaligned 2 KiB write into the same cow block in
# parallel, waits for both, and reads back.  A race: tries up to TRIES
# times (default 100) and exits 1 at the first "Pattern verification
# failed" (the 64 KiB write lost outside the 2 KiB one), 0 if none failed.
set -u
TRIES=${TRIES:-100}
i=0
while [ "$i" -lt "$TRIES" ]; do
    i=$((i + 1))
    out=$(nbdkit -U - --filter=cow memory 1M --run 'qemu-io -f raw \
        -c "aio_write -P 1 0 65536" -c "aio_write -P 2 13 2048" -c "aio_flush" \
        -c "read -P 1 0 13" -c "read -P 2 13 2048" -c "read -P 1 2061 63475" "$nbd"' 2>&1)
    case $out in
    *"Pattern verification failed"*)
        echo "$out"
        echo "try $i of $TRIES: the 64 KiB write was lost outside the 2 KiB one"
        exit 1 ;;
    esac
done
echo "no loss in $TRIES tries"
exit 0
