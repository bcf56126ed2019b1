/* fuzz_common.c - the body shared by every LLVMFuzzerTestOneInput. */
#include "fuzz.h"

#include "program.h"
#include "verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int blkv_fuzz_one(const char *spec, const uint8_t *data, size_t size)
{
    return blkv_fuzz_one_with(NULL, spec, data, size);
}

int blkv_fuzz_one_with(blkv_fuzz_spec_fn spec_fn, const char *spec, const uint8_t *data,
                       size_t size)
{
    static struct blkv_program p; /* reused: its op array grows once */
    static char built[256];
    struct blkv_run_opts o = {0};
    struct blkv_run_result res;
    const char *env_driver = getenv("BLKV_DRIVER");
    const char *dir = getenv("BLKV_REPRO_DIR");

    if (!p.ops)
        blkv_program_init(&p);
    if (blkv_program_decode(data, size, &p))
        return 0;
    if (spec_fn) {
        spec_fn(&p, built, sizeof(built));
        spec = built;
    }
    o.driver = env_driver && *env_driver ? env_driver : spec;
    o.abort_on_violation = true;
    /* "-": save nothing (AFL++ campaigns replay their crashes afterwards) */
    o.repro_dir = !dir || !*dir ? "." : strcmp(dir, "-") ? dir : NULL;
    o.input = data;
    o.input_len = size;
    o.quiet = false;
    /* a setup error (say, a config the driver refuses) is not a finding */
    o.out = stderr;
    if (blkv_run(&p, &o, &res) == BLKV_RUN_ERROR && getenv("BLKV_FUZZ_VERBOSE"))
        fprintf(stderr, "blkv: input not runnable: %s\n", res.message);
    blkv_run_result_free(&res);
    return 0;
}
