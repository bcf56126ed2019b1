/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test.h - the little the unit tests need.  Exit codes: 0 pass, 1 fail,
 * 77 skip (ctest's SKIP_RETURN_CODE).
 */
#ifndef BLKV_TEST_H
#define BLKV_TEST_H

#include <stdio.h>
#include <stdlib.h>

#define T_SKIP 77

static int t_failures;

/* Check a condition; on failure print where and go on (the test fails at the end). */
#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);  \
            t_failures++;                                                              \
        }                                                                              \
    } while (0)

/* Check a condition; on failure stop the test now. */
#define REQUIRE(cond)                                                                  \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: required: %s\n", __FILE__, __LINE__, #cond);       \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

/* Run one test function, naming it. */
#define RUN(fn)                                                                        \
    do {                                                                               \
        int before_ = t_failures;                                                      \
        fn();                                                                          \
        printf("%s %s\n", t_failures == before_ ? "ok  " : "FAIL", #fn);               \
    } while (0)

#define T_EXIT() return t_failures ? 1 : 0

#endif
