/*
 * qcow2_fuzzer: programs against blkv's qcow2 driver, with the image options
 * taken from the input: the config's grain is the cluster size, and bits of
 * its seed choose the version, refcount width, lazy refcounts, backing file
 * and cache sizes.  The decoder stays total, and the custom mutator's config
 * changes explore image options too.
 */
#include "fuzz.h"

#include "program.h"

#include <inttypes.h>
#include <stdio.h>

/* Image options for program p: a qcow2 driver spec in buf. */
static void qcow2_fuzz_spec(const struct blkv_program *p, char *buf, size_t len)
{
    static const char *const backing[] = {"none", "none", "raw", "qcow2"};
    uint64_t s = p->cfg.seed;
    unsigned version = s & 1 ? 2 : 3;
    unsigned refbits = 1u << ((s >> 1) % 7);
    uint32_t cluster = p->cfg.grain;

    if (cluster < 512)
        cluster = 512;
    if (cluster > (2u << 20))
        cluster = 2u << 20;
    if (version == 2)
        refbits = 16; /* version 2 has 16-bit refcounts only */
    snprintf(buf, len,
             "qcow2 version=%u cluster-size=%" PRIu32 " refcount-bits=%u lazy-refcounts=%s "
             "backing=%s l2-cache=%u refcount-cache=%u",
             version, cluster, refbits, version == 3 && (s >> 4 & 1) ? "on" : "off",
             backing[(s >> 5) & 3], 2 + (unsigned)((s >> 7) & 3), 2 + (unsigned)((s >> 9) & 3));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return blkv_fuzz_one_with(qcow2_fuzz_spec, NULL, data, size);
}
