/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pattern.h - self-describing data.
 *
 * Every 8-byte word of data written by blkv names its writer and its place:
 * the little-endian word at device offset 8*k written by source `src` is
 * blkv_pattern_word(src, k), an invertible mix of (src, k).  A byte at offset
 * o is byte (o & 7) of the word for (src, o >> 3), so unaligned writes carry
 * the same bytes an aligned write would.  Reading any word back tells which
 * source wrote it and for which offset (blkv_pattern_decode).
 *
 * Sources: 0 is reserved (never a pattern), 1 is the initial content, and
 * request number r writes source r + 2.
 */
#ifndef BLKV_PATTERN_H
#define BLKV_PATTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BLKV_SRC_INITIAL 1u
#define BLKV_SRC_MAX ((UINT32_C(1) << 24) - 1)
#define BLKV_SRC_OF_REQ(r) ((uint32_t)(r) + 2u)
#define BLKV_REQ_OF_SRC(s) ((uint64_t)(s) - 2u)

/* Bits of word index (offset / 8) in the key. */
#define BLKV_PATTERN_INDEX_BITS 40

static inline __attribute__((always_inline)) uint64_t blkv_pattern_mix(uint64_t x)
{
    x *= UINT64_C(0x9e3779b97f4a7c15);
    x ^= x >> 32;
    x *= UINT64_C(0xd6e8feb86659fd93);
    x ^= x >> 32;
    return x;
}

/* The word source `src` writes at word index `k` (device offset 8*k). */
static inline __attribute__((always_inline)) uint64_t blkv_pattern_word(uint32_t src, uint64_t k)
{
    return blkv_pattern_mix(((uint64_t)src << BLKV_PATTERN_INDEX_BITS) | k);
}

/* Invert blkv_pattern_word.  Returns false when `v` is no pattern word
 * (source 0), e.g. zeros or garbage that happens to decode to source 0. */
bool blkv_pattern_decode(uint64_t v, uint32_t *src, uint64_t *k);

/* Fill buf with the bytes source `src` writes at [off, off+len). */
void blkv_pattern_fill(void *buf, uint32_t src, uint64_t off, size_t len);

/* Length of the prefix of buf that equals what `src` writes at `off`. */
size_t blkv_pattern_match(const void *buf, uint32_t src, uint64_t off, size_t len);

/* Length of the all-zero prefix of buf. */
size_t blkv_zero_match(const void *buf, size_t len);

#endif
