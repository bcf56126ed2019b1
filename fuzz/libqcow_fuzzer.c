/*
 * libqcow_fuzzer: programs written by blkv's qcow2 driver and read back
 * through libqcow (the libqcow driver), with the image options taken from
 * the input as in qcow2_fuzzer: the config's grain is the cluster size, and
 * bits of its seed choose the version, refcount width, lazy refcounts and
 * cache sizes.  No backing file: the libqcow driver does not support one.
 *
 * Known libqcow finding (tests/traces/libqcow-bug-zero-flag-*.trace): libqcow
 * 20201213 ignores the "reads as zeros" flag (bit 0) of an allocated L2 entry
 * in a version 3 image and reads the host cluster from offset + 1.  blkv's
 * qcow2 driver writes such entries for every write-zeroes without unmap over
 * allocated data, so nearly every version 3 program hits it and the fuzzer
 * would find nothing else.  Version 3 images are therefore chosen only when
 * BLKV_LIBQCOW_V3=1 is set in the environment (to reproduce the finding or
 * to fuzz a fixed libqcow); by default every image is version 2.
 */
#include "fuzz.h"

#include "program.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Image options for program p: a libqcow driver spec in buf. */
static void libqcow_fuzz_spec(const struct blkv_program *p, char *buf, size_t len)
{
    uint64_t s = p->cfg.seed;
    const char *v3 = getenv("BLKV_LIBQCOW_V3");
    unsigned version = s & 1 || !v3 || strcmp(v3, "1") ? 2 : 3;
    unsigned refbits = 1u << ((s >> 1) % 7);
    uint32_t cluster = p->cfg.grain;

    if (cluster < 512)
        cluster = 512;
    if (cluster > (2u << 20))
        cluster = 2u << 20;
    if (version == 2)
        refbits = 16; /* version 2 has 16-bit refcounts only */
    snprintf(buf, len,
             "libqcow version=%u cluster-size=%" PRIu32 " refcount-bits=%u lazy-refcounts=%s "
             "backing=none l2-cache=%u refcount-cache=%u",
             version, cluster, refbits, version == 3 && (s >> 4 & 1) ? "on" : "off",
             2 + (unsigned)((s >> 7) & 3), 2 + (unsigned)((s >> 9) & 3));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return blkv_fuzz_one_with(libqcow_fuzz_spec, NULL, data, size);
}
