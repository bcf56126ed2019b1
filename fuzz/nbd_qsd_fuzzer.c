/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd_qsd_fuzzer: programs against QEMU's qcow2 driver through one
 * qemu-storage-daemon per process, a fresh image node and NBD export per
 * run.  Needs qemu-storage-daemon and qemu-img; not for OSS-Fuzz, which
 * cannot start servers. */
#include "targets.h"

BLKV_FUZZ_TARGET(blkv_driver_nbd, "server=qsd format=qcow2")
