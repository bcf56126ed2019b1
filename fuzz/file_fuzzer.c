/* SPDX-License-Identifier: BSD-3-Clause */
/* file_fuzzer: programs against a host file through io_uring (or the
 * thread pool where io_uring is unavailable). */
#include "targets.h"

BLKV_FUZZ_TARGET(blkv_driver_file, "")
