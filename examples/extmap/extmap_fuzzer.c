/* SPDX-License-Identifier: BSD-3-Clause */
/* extmap_fuzzer: the whole fuzz target (EXTMAP_OPTS: the driver's options). */
#include <blkv/fuzz.h>
#ifndef EXTMAP_OPTS
#define EXTMAP_OPTS ""
#endif
extern const struct blkv_driver extmap_driver;
BLKV_FUZZ_TARGET(extmap_driver, EXTMAP_OPTS)
