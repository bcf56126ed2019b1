/* nbd_qemu_fuzzer: programs against QEMU's qcow2 driver through qemu-nbd,
 * started per run on a fresh image.  Needs qemu-nbd and qemu-img; not for
 * OSS-Fuzz, which cannot start servers. */
#include <blkv/fuzz.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return blkv_fuzz_one("nbd server=qemu-nbd format=qcow2", data, size);
}
