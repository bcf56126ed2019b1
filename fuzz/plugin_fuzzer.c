/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * plugin_fuzzer: programs against a driver loaded from a plugin, named by
 * $BLKV_PLUGIN (a shared object's path), with the options in
 * $BLKV_PLUGIN_OPTS.  A plugin built with -fsanitize=fuzzer-no-link is
 * fuzzed with coverage of its own code: it is loaded in
 * LLVMFuzzerInitialize, before libFuzzer starts counting.  Not for OSS-Fuzz
 * (its build has no plugin to load).
 */
#include <blkv/fuzz.h>
#include <blkv/run.h>

#include <stdio.h>
#include <stdlib.h>

static const struct blkv_driver *plugin;
static const char *plugin_opts;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *path = getenv("BLKV_PLUGIN");
    char err[512];

    (void)argc, (void)argv;
    if (!path || !*path) {
        fprintf(stderr, "plugin_fuzzer: set BLKV_PLUGIN to the path of a driver plugin\n");
        exit(2);
    }
    if (!(plugin = blkv_plugin_load(path, err, sizeof(err)))) {
        fprintf(stderr, "plugin_fuzzer: %s\n", err);
        exit(2);
    }
    plugin_opts = getenv("BLKV_PLUGIN_OPTS");
    if (blkv_driver_opts_check(plugin, plugin_opts, err, sizeof(err))) {
        fprintf(stderr, "plugin_fuzzer: BLKV_PLUGIN_OPTS: %s\n", err);
        exit(2);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!plugin)
        LLVMFuzzerInitialize(NULL, NULL);
    return blkv_fuzz_one(plugin, plugin_opts, data, size);
}

BLKV_FUZZ_MUTATOR
