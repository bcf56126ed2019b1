/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * targets.h - what the in-tree fuzz targets share beyond <blkv/fuzz.h>: the
 * built-in drivers they fuzz, qcow2's image options drawn from a program,
 * and sizes.
 */
#ifndef BLKV_FUZZ_TARGETS_H
#define BLKV_FUZZ_TARGETS_H

#include <blkv/fuzz.h>

#include "registry.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../harness/util/sizes.h"

/*
 * qcow2 image options drawn from program p, for targets whose driver takes
 * qcow2's options: the cluster size is the config's grain, and bits of its
 * seed choose the version (2 unless allow_v3), refcount width, lazy
 * refcounts, cache sizes and the backing file, backing[(seed >> 5) & 3],
 * and one seed in 8 an image that grows its refcount structures early
 * (blkv_qcow2_opts_draw in drivers/registry.h).  Writes "version=...
 * cluster-size=... ..." into buf.
 */
void blkv_fuzz_qcow2_opts(const struct blkv_program *p, bool allow_v3,
                          const char *const backing[4], char *buf, size_t len);

#endif
