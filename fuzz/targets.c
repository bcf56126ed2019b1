/* SPDX-License-Identifier: BSD-3-Clause */
/* targets.c - what the in-tree fuzz targets share (see targets.h). */
#include "targets.h"

#include <inttypes.h>
#include <stdio.h>

void blkv_fuzz_qcow2_opts(const struct blkv_program *p, bool allow_v3,
                          const char *const backing[4], char *buf, size_t len)
{
    uint64_t s = p->cfg.seed;
    unsigned version = s & 1 || !allow_v3 ? 2 : 3;
    unsigned refbits = 1u << ((s >> 1) % 7);
    uint32_t cluster = p->cfg.grain;

    if (cluster < 512)
        cluster = 512;
    if (cluster > (2u << 20))
        cluster = 2u << 20;
    if (version == 2)
        refbits = 16; /* version 2 has 16-bit refcounts only */
    snprintf(buf, len,
             "version=%u cluster-size=%" PRIu32 " refcount-bits=%u lazy-refcounts=%s "
             "backing=%s l2-cache=%u refcount-cache=%u",
             version, cluster, refbits, version == 3 && (s >> 4 & 1) ? "on" : "off",
             backing[(s >> 5) & 3], 2 + (unsigned)((s >> 7) & 3), 2 + (unsigned)((s >> 9) & 3));
}
