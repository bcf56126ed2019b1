/* raw_fuzzer: programs against the raw driver (a correct driver: any report
 * is a harness false positive or a runtime bug). */
#include <blkv/fuzz.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return blkv_fuzz_one("raw", data, size);
}
