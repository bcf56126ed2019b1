/* SPDX-License-Identifier: BSD-3-Clause */
/* program_edit.h - edits of random programs shared by the image-format suites. */
#ifndef BLKV_TEST_PROGRAM_EDIT_H
#define BLKV_TEST_PROGRAM_EDIT_H

#include <blkv/program.h>
#include "test.h"

#include <string.h>

/* Append a check, and a reopen in the middle of p (a reopen submits
 * nothing, so the request numbering of cancels and waits holds). */
static inline void t_add_reopen_and_check(struct blkv_program *p)
{
    struct blkv_pop reopen = {.code = BLKV_P_REOPEN}, check = {.code = BLKV_P_CHECK};
    size_t mid;

    REQUIRE(blkv_program_push(p, &check) == 0);
    REQUIRE(blkv_program_push(p, &reopen) == 0);
    mid = p->nops / 2;
    memmove(&p->ops[mid + 1], &p->ops[mid], (p->nops - 1 - mid) * sizeof(p->ops[0]));
    p->ops[mid] = reopen;
}

#endif
