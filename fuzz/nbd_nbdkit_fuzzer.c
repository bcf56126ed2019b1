/* nbd_nbdkit_fuzzer: programs against nbdkit's memory plugin, started per
 * run.  Needs nbdkit; not for OSS-Fuzz, which cannot start servers. */
#include <blkv/fuzz.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return blkv_fuzz_one("nbd server=nbdkit plugin=memory", data, size);
}
