/* SPDX-License-Identifier: BSD-3-Clause */
/* util.h - small shared helpers: sizes, a seeded PRNG, number and errno parsing. */
#ifndef BLKV_UTIL_H
#define BLKV_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* BLKV_ASAN: built with AddressSanitizer (gcc or clang). */
#if defined(__SANITIZE_ADDRESS__)
#define BLKV_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BLKV_ASAN 1
#endif
#endif

#include "util/sizes.h"

/* splitmix64: a tiny, good-enough seeded generator.  Deterministic. */
struct blkv_rng {
    uint64_t s;
};

static inline void blkv_rng_seed(struct blkv_rng *r, uint64_t seed)
{
    r->s = seed;
}

static inline uint64_t blkv_rng_next(struct blkv_rng *r)
{
    uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Uniform in [0, n); n > 0. */
static inline uint64_t blkv_rng_below(struct blkv_rng *r, uint64_t n)
{
    return blkv_rng_next(r) % n;
}

static inline bool blkv_is_pow2(uint64_t x)
{
    return x && !(x & (x - 1));
}

/* Parse a decimal (or 0x hex) unsigned number with an optional K, M, G, T
 * suffix (powers of 1024).  The whole string must be consumed.  Returns 0,
 * or -EINVAL / -ERANGE. */
int blkv_parse_u64(const char *s, uint64_t *out);
/* Format a size compactly: "64M" when exact, else decimal. */
void blkv_format_size(uint64_t v, char *buf, size_t len);

/* mkdir -p DIR: create it and its missing parents.  0, or -errno
 * (-ENOTDIR: DIR or a parent exists and is not a directory). */
int blkv_mkdir_p(const char *dir);

/* FNV-1a of data[0..n): the name of a saved reproducer. */
uint64_t blkv_fnv1a(const uint8_t *p, size_t n);

/* Write a whole file; 0 or an errno (a partial file is removed). */
int blkv_write_file(const char *path, const void *data, size_t len);

/* SHA-1 of data[0..len) in out (what libFuzzer names its artifacts by). */
void blkv_sha1(const void *data, size_t len, uint8_t out[20]);

/* "EIO" for 5, etc.; NULL for an errno blkv does not name. */
const char *blkv_errno_name(int err);
/* 5 for "EIO" (or a decimal number 1..4095); 0 if unknown. */
int blkv_errno_parse(const char *name);

#endif
