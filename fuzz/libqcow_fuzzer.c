/* SPDX-License-Identifier: BSD-3-Clause */
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
#include "targets.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Whether environment variable name is "1". */
static bool env_on(const char *name)
{
    const char *v = getenv(name);
    return v && !strcmp(v, "1");
}

/* Image options for program p, in buf.  The
 * environment is read once: this runs for every input. */
static void libqcow_fuzz_opts(const struct blkv_program *p, char *buf, size_t len)
{
    static const char *const with_backing[] = {"none", "qcow2", "none", "qcow2"};
    static const char *const none[] = {"none", "none", "none", "none"};
    static int v3 = -1, backing = -1;

    if (v3 < 0)
        v3 = env_on("BLKV_LIBQCOW_V3"), backing = env_on("BLKV_LIBQCOW_BACKING");
    blkv_fuzz_qcow2_opts(p, v3, backing ? with_backing : none, buf, len);
}

BLKV_FUZZ_TARGET_WITH(blkv_driver_libqcow, libqcow_fuzz_opts)
