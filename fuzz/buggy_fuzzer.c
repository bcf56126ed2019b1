/* SPDX-License-Identifier: BSD-3-Clause */
/* buggy_fuzzer: programs against the deliberately buggy driver; the bug mode
 * comes from $BLKV_BUGGY_MODE (default lost-write).  Proves that an engine
 * finds each bug class. */
#include "targets.h"

#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char opts[128];
    if (!opts[0]) {
        const char *mode = getenv("BLKV_BUGGY_MODE");
        snprintf(opts, sizeof(opts), "mode=%s", mode && *mode ? mode : "lost-write");
    }
    return blkv_fuzz_one(&blkv_driver_buggy, opts, data, size);
}

BLKV_FUZZ_MUTATOR
