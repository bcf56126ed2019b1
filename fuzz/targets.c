/* SPDX-License-Identifier: BSD-3-Clause */
/* targets.c - what the in-tree fuzz targets share (see targets.h). */
#include "targets.h"

void blkv_fuzz_qcow2_opts(const struct blkv_program *p, bool allow_v3,
                          const char *const backing[4], char *buf, size_t len)
{
    blkv_qcow2_opts_draw(p, allow_v3, backing, buf, len); /* as `blkv prop` draws them */
}
