/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2_fuzzer: programs against blkv's qcow2 driver, with the image options
 * taken from the input: the config's grain is the cluster size, and bits of
 * its seed choose the version, refcount width, lazy refcounts, backing file
 * and cache sizes, or (one seed in 8, small clusters) an image whose
 * refcount table or blocks must grow within the first few new clusters.
 * The decoder stays total, and the custom mutator's config changes explore
 * image options too.
 */
#include "targets.h"

/* Image options for program p, in buf. */
static void qcow2_fuzz_opts(const struct blkv_program *p, char *buf, size_t len)
{
    static const char *const backing[] = {"none", "none", "raw", "qcow2"};
    blkv_fuzz_qcow2_opts(p, true, backing, buf, len);
}

BLKV_FUZZ_TARGET_WITH(blkv_driver_qcow2, qcow2_fuzz_opts)
