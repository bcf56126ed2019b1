/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test.h - the little the unit tests need.  Exit codes: 0 pass, 1 fail,
 * 77 skip (ctest's SKIP_RETURN_CODE).
 */
#ifndef BLKV_TEST_H
#define BLKV_TEST_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define T_SKIP 77

#include "../harness/util/sizes.h"

/* T_ASAN: built with AddressSanitizer (gcc or clang). */
#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_ASAN 1
#endif
#endif

/* A seeded generator for test inputs (splitmix64).  Deterministic. */
struct t_rng {
    uint64_t s;
};

static inline void t_rng_seed(struct t_rng *r, uint64_t seed)
{
    r->s = seed;
}

static inline uint64_t t_rng_next(struct t_rng *r)
{
    uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Uniform in [0, n); n > 0. */
static inline uint64_t t_rng_below(struct t_rng *r, uint64_t n)
{
    return t_rng_next(r) % n;
}

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
