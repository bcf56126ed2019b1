/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd_nbdkit_fuzzer: programs against nbdkit's memory plugin, started per
 * run.  Needs nbdkit; not for OSS-Fuzz, which cannot start servers. */
#include "targets.h"

BLKV_FUZZ_TARGET(blkv_driver_nbd, "server=nbdkit plugin=memory")
