/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * sizes.h - KiB, MiB, GiB, TiB and ARRAY_SIZE: the one definition, for
 * libblkv (through util.h) and for the in-tree programs (tests/test.h,
 * fuzz/targets.h), which include this file alone of libblkv's private ones.
 */
#ifndef BLKV_UTIL_SIZES_H
#define BLKV_UTIL_SIZES_H

#include <stdint.h>

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define TiB (UINT64_C(1) << 40)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
