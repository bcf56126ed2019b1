/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * limits.h - value ranges shared by the binary decoder (codec.c) and the
 * trace reader (trace.c).  Both accept exactly the same values, so a program
 * survives any chain of decode, encode, format, parse.  And the fuzz budget,
 * which the decoder keeps to.
 */
#ifndef BLKV_PROGRAM_INTERNAL_H
#define BLKV_PROGRAM_INTERNAL_H

#include <blkv/driver.h>
#include <blkv/fuzz.h> /* the fuzz budget's limits, which the decoder keeps to */
#include <blkv/program.h>
#include "util/util.h"

#define BLKV_MIN_DEVICE_SIZE UINT64_C(4096)
#define BLKV_GRAIN_MIN UINT32_C(512)
#define BLKV_GRAIN_MAX (UINT32_C(2) << 20)
#define BLKV_QD_MAX UINT32_C(256)
#define BLKV_ATOMIC_MAX UINT32_C(4096)
#define BLKV_STEP_INDEX_MAX UINT32_C(255) /* step I: I in 0..255 */
#define BLKV_STEP_ERRNO_MAX 4095          /* step I fail E: E in 1..4095 */
#define BLKV_CRASH_ARG_MAX UINT32_C(255)  /* crash N: N in 0..255 */
#define BLKV_EVENT_MAX 255u               /* fault EVENT: events 1..255 */
#define BLKV_FAULT_AFTER_MAX UINT64_C(65535) /* fault ... after N: N in 0..65535 */

/* The fuzz data budget of a config (blkv_fuzz_budget, <blkv/fuzz.h>):
 * max(8 x grain, min(256 x grain, 2 MiB)).  Here because the binary decoder
 * draws request lengths within it, and the decoder is below the fuzz layer. */
static inline uint64_t blkv_budget_of(const struct blkv_config *cfg)
{
    uint64_t g = cfg->grain, cap = UINT64_C(2) << 20;
    uint64_t b = 256 * g < cap ? 256 * g : cap;
    return b > 8 * g ? b : 8 * g;
}

/* The largest device a fuzzed program of this grain may have: one whose
 * first-level table (8 bytes per table of grain/8 entries of 8 bytes, as
 * qcow2's L1 maps L2 tables) is at most BLKV_FUZZ_MAX_TABLE.  Every open
 * makes or reads that table whole and every check walks it, so without a
 * bound an 8 TiB device of 4 KiB grains (a 32 MiB L1, the most QEMU
 * allows) costs 85 ms a program with two requests, 1,400 times the
 * median.  With it: 8 GiB at 512-byte grains (offsets past 4 GiB stay),
 * 512 GiB at 4 KiB, 8 TiB from 16 KiB up. */
static inline uint64_t blkv_size_cap_of(uint64_t grain)
{
    uint64_t g = grain ? grain : 1, cap = BLKV_FUZZ_MAX_TABLE / 8 * (g / 8) * g;
    return cap < BLKV_MAX_DEVICE_SIZE ? cap : BLKV_MAX_DEVICE_SIZE;
}

/* The reopens and crashes (or checks, from `max`) a program of cfg may
 * hold: max x 256 KiB / grain, in 1..max (blkv_fuzz_max_reopens). */
static inline unsigned blkv_limit_of(const struct blkv_config *cfg, unsigned max)
{
    uint64_t g = cfg->grain ? cfg->grain : 1, n = max * (UINT64_C(256) << 10) / g;
    return n < 1 ? 1 : n > max ? max : (unsigned)n;
}

/* The most bytes the next request may span within the budget, `moved`
 * bytes of requests in: what is left, but never under BLKV_FUZZ_PAST_BUDGET. */
static inline uint64_t blkv_budget_left(uint64_t budget, uint64_t moved)
{
    uint64_t left = moved < budget ? budget - moved : 0;
    return left > BLKV_FUZZ_PAST_BUDGET ? left : BLKV_FUZZ_PAST_BUDGET;
}

/* What a request counts against the budget: its length, except that a
 * write or write-zeroes in a program that holds a fault rule before it
 * counts at least a grain.  A rule can make every such request allocate a
 * cluster of its own (an L2 update that always fails leaks each one, COW
 * from a backing file included), so its cost is a grain whatever its
 * length: at 2 MiB grains, 4,000 times the bytes of a 512-byte write. */
static inline uint64_t blkv_budget_cost(unsigned code, uint64_t len, uint64_t grain,
                                        unsigned rules)
{
    bool allocates = code == BLKV_P_WRITE || code == BLKV_P_WZERO;
    return rules && allocates && len < grain ? grain : len;
}

/* The kind whose opcode bytes come i-th (ops.c's decode order). */
unsigned blkv_opcode_in_order(unsigned i);

/* Device size: a multiple of 512 in 4096 .. BLKV_MAX_DEVICE_SIZE. */
static inline bool blkv_cfg_size_ok(uint64_t v)
{
    return v >= BLKV_MIN_DEVICE_SIZE && v <= BLKV_MAX_DEVICE_SIZE && v % 512 == 0;
}

/* Grain: a power of 2 in 512 .. 2M. */
static inline bool blkv_cfg_grain_ok(uint64_t v)
{
    return blkv_is_pow2(v) && v >= BLKV_GRAIN_MIN && v <= BLKV_GRAIN_MAX;
}

static inline bool blkv_cfg_qd_ok(uint64_t v)
{
    return v >= 1 && v <= BLKV_QD_MAX;
}

/* Atomicity unit: a power of 2 in 1 .. 4096. */
static inline bool blkv_cfg_atomic_ok(uint64_t v)
{
    return blkv_is_pow2(v) && v <= BLKV_ATOMIC_MAX;
}

/* Request offset: below BLKV_MAX_DEVICE_SIZE (it may lie past the device end). */
static inline bool blkv_pop_offset_ok(uint64_t v)
{
    return v < BLKV_MAX_DEVICE_SIZE;
}

static inline bool blkv_pop_len_ok(uint64_t v)
{
    return v >= 1 && v <= BLKV_MAX_REQUEST;
}

/* The flags an op may carry. */
static inline unsigned blkv_opcode_flags(unsigned code)
{
    const struct blkv_opinfo *oi = blkv_opinfo(code);
    return oi ? oi->flags : 0;
}

#endif
