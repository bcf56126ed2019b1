/* SPDX-License-Identifier: BSD-3-Clause */
/* pattern.c - self-describing data: fill, compare and decode. */
#include "model/pattern.h"
#include "util/util.h"

#include <string.h>

/* The loops over data below run once per byte a program moves.  Under ASan
 * they check their whole range once, up front (a bad range is reported as
 * an access to its first bad byte), instead of every 8-byte access. */
#ifdef BLKV_ASAN
#include <sanitizer/asan_interface.h>
#define DATA_LOOP __attribute__((no_sanitize("address")))
static void check_range(const void *p, size_t n)
{
    const volatile char *bad = __asan_region_is_poisoned((void *)(uintptr_t)p, n);
    if (bad)
        (void)*bad;
}
#else
#define DATA_LOOP
static void check_range(const void *p, size_t n)
{
    (void)p, (void)n;
}
#endif

/* Inverse of x *= c for odd c: Newton iteration for c^-1 mod 2^64. */
static uint64_t inv_odd(uint64_t c)
{
    uint64_t x = c; /* correct to 3 bits */
    for (int i = 0; i < 5; i++)
        x *= 2 - c * x;
    return x;
}

static uint64_t pattern_unmix(uint64_t x)
{
    x ^= x >> 32;
    x *= inv_odd(UINT64_C(0xd6e8feb86659fd93));
    x ^= x >> 32;
    x *= inv_odd(UINT64_C(0x9e3779b97f4a7c15));
    return x;
}

bool blkv_pattern_decode(uint64_t v, uint32_t *src, uint64_t *k)
{
    uint64_t key = pattern_unmix(v);
    *src = (uint32_t)(key >> BLKV_PATTERN_INDEX_BITS);
    *k = key & ((UINT64_C(1) << BLKV_PATTERN_INDEX_BITS) - 1);
    return *src != 0;
}

static inline __attribute__((always_inline)) uint64_t load_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline __attribute__((always_inline)) void store_le64(uint8_t *p, uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, 8);
}

static DATA_LOOP void pattern_fill(void *buf, uint32_t src, uint64_t off, size_t len);

void blkv_pattern_fill(void *buf, uint32_t src, uint64_t off, size_t len)
{
    check_range(buf, len);
    pattern_fill(buf, src, off, len);
}

static DATA_LOOP void pattern_fill(void *buf, uint32_t src, uint64_t off, size_t len)
{
    uint8_t *p = buf;
    uint64_t k = off >> 3;
    unsigned head = off & 7;

    if (head) {
        uint8_t w[8];
        size_t n = 8 - head < len ? 8 - head : len;
        store_le64(w, blkv_pattern_word(src, k));
        memcpy(p, w + head, n);
        p += n, len -= n, k++;
    }
    for (; len >= 8; p += 8, len -= 8, k++)
        store_le64(p, blkv_pattern_word(src, k));
    if (len) {
        uint8_t w[8];
        store_le64(w, blkv_pattern_word(src, k));
        memcpy(p, w, len);
    }
}

static DATA_LOOP size_t pattern_match(const void *buf, uint32_t src, uint64_t off, size_t len);

size_t blkv_pattern_match(const void *buf, uint32_t src, uint64_t off, size_t len)
{
    check_range(buf, len);
    return pattern_match(buf, src, off, len);
}

static DATA_LOOP size_t pattern_match(const void *buf, uint32_t src, uint64_t off, size_t len)
{
    const uint8_t *p = buf;
    size_t done = 0;
    uint64_t k = off >> 3;
    unsigned head = off & 7;
    uint8_t w[8];

    if (head) {
        size_t n = 8 - head < len ? 8 - head : len;
        store_le64(w, blkv_pattern_word(src, k));
        for (size_t i = 0; i < n; i++)
            if (p[i] != w[head + i])
                return i;
        done = n, k++;
    }
    /* The hot loop: four independent words per iteration so the multiplies
     * pipeline; a mismatch anywhere drops to the byte loop below. */
    while (len - done >= 32) {
        const uint8_t *q = p + done;
        uint64_t d = (load_le64(q) ^ blkv_pattern_word(src, k)) |
                     (load_le64(q + 8) ^ blkv_pattern_word(src, k + 1)) |
                     (load_le64(q + 16) ^ blkv_pattern_word(src, k + 2)) |
                     (load_le64(q + 24) ^ blkv_pattern_word(src, k + 3));
        if (d)
            break;
        done += 32, k += 4;
    }
    for (; len - done >= 8; done += 8, k++)
        if (load_le64(p + done) != blkv_pattern_word(src, k))
            break;
    if (done < len) {
        /* either fewer than 8 bytes remain or word k differs: find the byte */
        store_le64(w, blkv_pattern_word(src, k));
        for (size_t i = 0; done + i < len && i < 8; i++)
            if (p[done + i] != w[i])
                return done + i;
        return len;
    }
    return done;
}

static DATA_LOOP size_t zero_match(const void *buf, size_t len);

size_t blkv_zero_match(const void *buf, size_t len)
{
    check_range(buf, len);
    return zero_match(buf, len);
}

static DATA_LOOP size_t zero_match(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    size_t done = 0;

    while (len - done >= 32) {
        const uint8_t *q = p + done;
        if (load_le64(q) | load_le64(q + 8) | load_le64(q + 16) | load_le64(q + 24))
            break;
        done += 32;
    }
    while (done < len && p[done] == 0)
        done++;
    return done;
}
