/* buggy_fuzzer: programs against the deliberately buggy driver; the bug mode
 * comes from $BLKV_BUGGY_MODE (default lost-write).  Proves that an engine
 * finds each bug class. */
#include <blkv/fuzz.h>

#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char spec[128];
    if (!spec[0]) {
        const char *mode = getenv("BLKV_BUGGY_MODE");
        snprintf(spec, sizeof(spec), "buggy mode=%s", mode && *mode ? mode : "lost-write");
    }
    return blkv_fuzz_one(spec, data, size);
}
