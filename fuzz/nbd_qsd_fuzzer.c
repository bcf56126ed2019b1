/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * nbd_qsd_fuzzer: programs against QEMU's image drivers through one
 * qemu-storage-daemon per process, a fresh image node and NBD export per
 * run: qcow2 by default; $BLKV_QSD_OPTS adds nbd driver options after
 * server=qsd (format=vpc reader=libvhdi crash=off, say).  The options are
 * checked once, by opening the driver, before the first input: a bad one
 * stops the fuzzer with the driver's message instead of making every
 * input a setup error.  Needs qemu-storage-daemon and qemu-img; not for
 * OSS-Fuzz, which cannot start servers.
 */
#include <blkv/fuzz.h>
#include <blkv/run.h>

#include "targets.h"

#include <stdio.h>
#include <stdlib.h>

static char qsd_opts[1024] = "server=qsd format=qcow2";
static int qsd_ready;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *extra = getenv("BLKV_QSD_OPTS");
    struct blkv_caps caps;
    char err[512];
    int n;

    (void)argc, (void)argv;
    qsd_ready = 1;
    if (!extra || !*extra)
        return 0;
    n = snprintf(qsd_opts, sizeof(qsd_opts), "server=qsd %s", extra);
    if (n < 0 || (size_t)n >= sizeof(qsd_opts)) {
        fprintf(stderr, "nbd_qsd_fuzzer: BLKV_QSD_OPTS: longer than %zu bytes\n",
                sizeof(qsd_opts) - 12);
        exit(2);
    }
    if (blkv_driver_opts_check(&blkv_driver_nbd, qsd_opts, err, sizeof(err)) ||
        blkv_driver_probe(&blkv_driver_nbd, qsd_opts, &caps, err, sizeof(err)) < 0) {
        fprintf(stderr, "nbd_qsd_fuzzer: BLKV_QSD_OPTS=%s: %s\n", extra, err);
        exit(2);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!qsd_ready) /* a driver that does not call LLVMFuzzerInitialize */
        LLVMFuzzerInitialize(NULL, NULL);
    return blkv_fuzz_one(&blkv_driver_nbd, qsd_opts, data, size);
}

BLKV_FUZZ_MUTATOR
