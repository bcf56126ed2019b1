/*
 * qcow2_fuzzer: programs against blkv's qcow2 driver, with the image options
 * taken from the input: the config's grain is the cluster size, and bits of
 * its seed choose the version, refcount width, lazy refcounts, backing file
 * and cache sizes.  The decoder stays total, and the custom mutator's config
 * changes explore image options too.
 */
#include <blkv/fuzz.h>

#include <blkv/program.h>

/* Image options for program p: a qcow2 driver spec in buf. */
static void qcow2_fuzz_spec(const struct blkv_program *p, char *buf, size_t len)
{
    static const char *const backing[] = {"none", "none", "raw", "qcow2"};
    blkv_fuzz_qcow2_spec(p, "qcow2", true, backing, buf, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return blkv_fuzz_one_with(qcow2_fuzz_spec, NULL, data, size);
}
