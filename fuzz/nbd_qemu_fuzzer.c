/* SPDX-License-Identifier: BSD-3-Clause */
/* nbd_qemu_fuzzer: programs against QEMU's qcow2 driver through qemu-nbd,
 * started per run on a fresh image.  Needs qemu-nbd and qemu-img; not for
 * OSS-Fuzz, which cannot start servers. */
#include "targets.h"

BLKV_FUZZ_TARGET(blkv_driver_nbd, "server=qemu-nbd format=qcow2")
