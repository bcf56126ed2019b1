/* file_fuzzer: programs against a host file through io_uring (or the
 * thread pool where io_uring is unavailable). */
#include <blkv/fuzz.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return blkv_fuzz_one("file", data, size);
}
