/* SPDX-License-Identifier: BSD-3-Clause */
/* raw_fuzzer: programs against the raw driver. */
#include "targets.h"

BLKV_FUZZ_TARGET(blkv_driver_raw, "")
