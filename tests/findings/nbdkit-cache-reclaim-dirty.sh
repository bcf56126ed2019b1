#!/bin/sh
# nbdkit's and QEMU's tools only, for tests/findings/nbdkit-cache-reclaim-dirty.trace:
# nbdkit's cache filter (cache=writeback, cache-max-size=4M) over the memory
# plugin; qemu-io with a writeback cache (no FUA) writes 6 MiB of 0x01 and
# reads the first MiB back.  Exits 1 with "Pattern verification failed"
# when the unflushed data was thrown away by the cache's reclaim, else 0.
set -u
out=$(nbdkit -U - --filter=cache memory 64M cache=writeback cache-max-size=4M \
    cache-min-block-size=4096 --run \
    'qemu-io -f raw -t writeback -c "write -P 1 0 6M" -c "read -P 1 0 1M" "$nbd"' 2>&1)
echo "$out"
case $out in *"Pattern verification failed"*) exit 1 ;; esac
exit 0
