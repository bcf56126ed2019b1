/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * matrix.h - what the image-format matrix suites (test_qcow2, test_libqcow)
 * share: their random programs, and running one with a report on failure.
 */
#ifndef BLKV_TEST_MATRIX_H
#define BLKV_TEST_MATRIX_H

#include <blkv/program.h>
#include <blkv/prop.h>
#include <blkv/run.h>
#include "registry.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
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

/* A random program of a matrix: nops ops from (seed, idx), on a device of
 * sizes[idx % 3] with grain 512 << (idx % 13), a reopen halfway and a check
 * at the end. */
static inline void t_matrix_program(uint64_t seed, uint64_t idx, size_t nops,
                                    const uint64_t sizes[3], struct blkv_program *p)
{
    REQUIRE(blkv_program_random(seed, idx, nops, p) == 0);
    p->cfg.size = sizes[idx % 3];
    p->cfg.grain = 1u << (9 + idx % 13);
}

/* Run p against spec; on anything but OK print why (what: the suite's
 * label), the report and the program, and count a failure. */
static inline int t_run_ok(const struct blkv_program *p, const char *spec, const char *what,
                           struct blkv_run_result *res)
{
    struct blkv_run_opts o = {.quiet = true};
    int st = blkv_run_spec(p, spec, &o, res);
    if (st != BLKV_RUN_OK) {
        char *text = blkv_program_format(p);
        fprintf(stderr, "%s%sdriver '%s': status %d: %s\n%s\n--- program:\n%s", what ? what : "",
                what ? ": " : "", spec, st, res->message, res->report ? res->report : "",
                text ? text : "");
        free(text);
        t_failures++;
    }
    return st;
}

#endif
