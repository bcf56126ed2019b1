#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Binary reproducers keep their meaning: every tests/reproducers/*.bin (the
# seed programs and random bytes) decodes to exactly the trace text checked
# in beside it, and that text encodes to an input that decodes to it again.
# A change to the decoder that changes what an old reproducer means fails
# here; if it is wanted, the binary form needs a new version, and the
# checked-in texts are regenerated consciously (blkv decode X.bin > X.trace).
# Usage: test_reproducers.sh BLKV DIR
set -u
BLKV=$1
DIR=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0 n=0

for bin in "$DIR"/*.bin; do
    want=${bin%.bin}.trace
    name=$(basename "$bin")
    n=$((n + 1))
    if ! "$BLKV" decode "$bin" >"$T/got" 2>"$T/err"; then
        echo "FAIL: $name: blkv decode failed: $(head -1 "$T/err")"
        fails=$((fails + 1))
        continue
    fi
    if ! cmp -s "$want" "$T/got"; then
        echo "FAIL: $name no longer decodes to $(basename "$want"):"
        diff "$want" "$T/got" | head -10
        fails=$((fails + 1))
        continue
    fi
    if ! "$BLKV" encode -o "$T/re.bin" "$want" || ! "$BLKV" decode "$T/re.bin" >"$T/re" ||
        ! cmp -s "$want" "$T/re"; then
        echo "FAIL: $(basename "$want") does not survive encode and decode"
        fails=$((fails + 1))
    fi
done
if [ "$n" = 0 ]; then
    echo "FAIL: no reproducers in $DIR"
    exit 1
fi
if [ "$fails" != 0 ]; then
    echo "$fails of $n reproducer(s) changed meaning"
    exit 1
fi
echo "all $n reproducers decode as they did"
