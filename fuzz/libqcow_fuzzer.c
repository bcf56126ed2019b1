/*
 * libqcow_fuzzer: programs written by blkv's qcow2 driver and read back
 * through libqcow (the libqcow driver), with the image options taken from
 * the input as in qcow2_fuzzer: the config's grain is the cluster size, and
 * bits of its seed choose the version, refcount width, lazy refcounts,
 * backing file (none or qcow2: libqcow has no raw parent) and cache sizes.
 *
 * Known libqcow findings (tests/traces/libqcow-bug-*.trace), each hit by
 * nearly every program that may hit it, so that the fuzzer would find
 * nothing else:
 *  - libqcow 20201213 ignores the "reads as zeros" flag (bit 0) of an L2
 *    entry in a version 3 image: allocated zero clusters (what qcow2 writes
 *    for write-zeroes without unmap over allocated data) read the old host
 *    cluster from offset + 1, unallocated ones over a backing file read the
 *    header cluster;
 *  - with a parent (backing) file, a read that meets an unallocated cluster
 *    takes the whole rest of the request from the parent.
 * Version 3 images are therefore chosen only when BLKV_LIBQCOW_V3=1, and a
 * backing file only when BLKV_LIBQCOW_BACKING=1, is set in the environment
 * (to reproduce the findings or to fuzz a fixed libqcow); by default every
 * image is version 2 without a backing file.
 */
#include "fuzz.h"

#include "program.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether environment variable name is "1". */
static bool env_on(const char *name)
{
    const char *v = getenv(name);
    return v && !strcmp(v, "1");
}

/* Image options for program p: a libqcow driver spec in buf. */
static void libqcow_fuzz_spec(const struct blkv_program *p, char *buf, size_t len)
{
    uint64_t s = p->cfg.seed;
    unsigned version = s & 1 || !env_on("BLKV_LIBQCOW_V3") ? 2 : 3;
    unsigned refbits = 1u << ((s >> 1) % 7);
    bool backing = (s >> 5 & 1) && env_on("BLKV_LIBQCOW_BACKING");
    uint32_t cluster = p->cfg.grain;

    if (cluster < 512)
        cluster = 512;
    if (cluster > (2u << 20))
        cluster = 2u << 20;
    if (version == 2)
        refbits = 16; /* version 2 has 16-bit refcounts only */
    snprintf(buf, len,
             "libqcow version=%u cluster-size=%" PRIu32 " refcount-bits=%u lazy-refcounts=%s "
             "backing=%s l2-cache=%u refcount-cache=%u",
             version, cluster, refbits, version == 3 && (s >> 4 & 1) ? "on" : "off",
             backing ? "qcow2" : "none", 2 + (unsigned)((s >> 7) & 3),
             2 + (unsigned)((s >> 9) & 3));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return blkv_fuzz_one_with(libqcow_fuzz_spec, NULL, data, size);
}
