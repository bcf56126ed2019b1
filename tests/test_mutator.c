/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_mutator.c - the structure-aware mutator and crossover (fuzz/mutator.c):
 * outputs always fit MaxSize and decode, are deterministic in the seed,
 * mostly come from op-level edits (canonical encodings), and the programs
 * they make run clean on a correct driver.  libFuzzer's LLVMFuzzerMutate is
 * replaced by a small deterministic byte mutator.
 */
#include <blkv/fuzz.h>
#include <blkv/driver.h>
#include <blkv/program.h>
#include <blkv/prop.h>
#include "test.h"
#include <blkv/run.h>
#include "registry.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POOL 64
#define MAXLEN 4096

static uint64_t byte_mutations; /* calls of the stand-in LLVMFuzzerMutate */

/* FNV-1a of a buffer: seeds the stand-in byte mutator. */
static uint64_t hash(const uint8_t *d, size_t n)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < n; i++)
        h = (h ^ d[i]) * UINT64_C(0x100000001b3);
    return h;
}

/* Stand-in for libFuzzer's byte mutator: flip, insert or erase a byte,
 * deterministically from the input. */
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size)
{
    struct t_rng r;
    size_t pos;

    byte_mutations++;
    t_rng_seed(&r, hash(data, size) + size);
    pos = size ? t_rng_below(&r, size) : 0;
    switch (t_rng_below(&r, 3)) {
    case 0:
        if (size) {
            data[pos] ^= (uint8_t)(1 + t_rng_below(&r, 255));
            return size;
        }
        /* fall through */
    case 1:
        if (size < max_size) {
            memmove(data + pos + 1, data + pos, size - pos);
            data[pos] = (uint8_t)t_rng_next(&r);
            return size + 1;
        }
        /* fall through */
    default:
        if (size > 1) {
            memmove(data + pos, data + pos + 1, size - pos - 1);
            return size - 1;
        }
        return size;
    }
}

struct input {
    uint8_t d[MAXLEN];
    size_t n;
};

static struct input pool[POOL];

/* Fill the pool with encoded random programs, random bytes and the empty input. */
static void pool_init(void)
{
    struct t_rng r;
    t_rng_seed(&r, 42);
    for (int i = 0; i < POOL; i++) {
        struct input *in = &pool[i];
        if (i == 0) {
            in->n = 0;
        } else if (i % 3 == 0) {
            in->n = 1 + t_rng_below(&r, 200);
            for (size_t j = 0; j < in->n; j++)
                in->d[j] = (uint8_t)t_rng_next(&r);
        } else {
            struct blkv_program p;
            uint8_t *enc;
            size_t n;
            blkv_program_init(&p);
            REQUIRE(blkv_program_random(7, (uint64_t)i, 1 + (size_t)i % 40, &p) == 0);
            enc = blkv_program_encode(&p, &n);
            REQUIRE(enc);
            in->n = n < MAXLEN ? n : MAXLEN;
            memcpy(in->d, enc, in->n);
            free(enc);
            blkv_program_free(&p);
        }
    }
}

/* Whether bytes are the canonical encoding of what they decode to. */
static bool canonical(const uint8_t *d, size_t n)
{
    struct blkv_program p;
    uint8_t *enc;
    size_t m = 0;
    bool yes;

    blkv_program_init(&p);
    REQUIRE(blkv_program_decode(d, n, &p) == 0);
    enc = blkv_program_encode(&p, &m);
    yes = enc && m == n && memcmp(enc, d, n) == 0;
    free(enc);
    blkv_program_free(&p);
    return yes;
}

/* Mutations fit MaxSize, decode, are mostly op-level, and evolve a pool. */
static void test_mutate_fits_and_decodes(void)
{
    static const size_t maxes[] = {4, 8, 12, 16, 32, 64, 256, 1024, MAXLEN};
    static uint8_t buf[MAXLEN];
    struct blkv_program p;
    struct t_rng r;
    uint64_t structured = 0, calls = 0, before; /* calls with room to grow */
    int bad = 0;

    blkv_program_init(&p);
    t_rng_seed(&r, 1);
    for (unsigned i = 0; i < 40000; i++) {
        struct input *in = &pool[t_rng_below(&r, POOL)];
        size_t max = maxes[t_rng_below(&r, sizeof(maxes) / sizeof(maxes[0]))], n;
        if (max < in->n)
            max = in->n; /* libFuzzer never passes Size > MaxSize */
        memcpy(buf, in->d, in->n);
        before = byte_mutations;
        n = blkv_fuzz_mutate(buf, in->n, max, (unsigned)t_rng_next(&r));
        calls += max >= in->n + 64;
        if (n > max && bad++ < 5)
            fprintf(stderr, "mutator returned %zu bytes, MaxSize %zu\n", n, max);
        CHECK(n <= max);
        CHECK(blkv_program_decode(buf, n, &p) == 0);
        if (byte_mutations == before) {
            structured += max >= in->n + 64;
            if (!canonical(buf, n) && bad++ < 5)
                fprintf(stderr, "structured output is not a canonical encoding\n");
            if (!blkv_fuzz_in_budget(&p) && bad++ < 5)
                fprintf(stderr, "structured output goes over the budget\n");
        }
        /* the mutated input replaces a pool slot: programs evolve */
        in = &pool[t_rng_below(&r, POOL)];
        memcpy(in->d, buf, n);
        in->n = n;
    }
    CHECK(bad == 0);
    printf("  %" PRIu64 " of %" PRIu64 " mutations with room to grow were op-level\n",
           structured, calls);
    CHECK(structured * 10 > calls * 6);
    blkv_program_free(&p);
}

/* The data budget: what goes over it, and cutting a program to fit. */
static void test_budget(void)
{
    struct blkv_program p;
    struct blkv_pop w = {.code = BLKV_P_WRITE, .offset = 0, .len = 1 << 20};

    blkv_program_init(&p);
    p.cfg.grain = 65536; /* budget: 2 MiB */
    CHECK(blkv_fuzz_budget(&p.cfg) == 2 << 20);
    REQUIRE(blkv_program_push(&p, &w) == 0);
    w.code = BLKV_P_READ;
    REQUIRE(blkv_program_push(&p, &w) == 0); /* 2 MiB named: fits */
    CHECK(blkv_fuzz_over_budget(&p) == p.nops);
    w = (struct blkv_pop){.code = BLKV_P_WRITE, .offset = 0, .len = BLKV_FUZZ_PAST_BUDGET};
    REQUIRE(blkv_program_push(&p, &w) == 0); /* past it, small requests fit */
    w = (struct blkv_pop){.code = BLKV_P_FLUSH};
    REQUIRE(blkv_program_push(&p, &w) == 0);
    CHECK(blkv_fuzz_over_budget(&p) == p.nops);
    w = (struct blkv_pop){.code = BLKV_P_DISCARD, .offset = 0, .len = BLKV_FUZZ_PAST_BUDGET + 1};
    REQUIRE(blkv_program_push(&p, &w) == 0);
    CHECK(blkv_fuzz_over_budget(&p) == 4);
    blkv_fuzz_fit_budget(&p);
    CHECK(p.ops[4].len == BLKV_FUZZ_PAST_BUDGET && p.ops[0].len == 1 << 20);
    CHECK(blkv_fuzz_over_budget(&p) == p.nops);
    /* small grains, small budgets; 2 MiB grains, eight clusters */
    p.cfg.grain = 512;
    CHECK(blkv_fuzz_budget(&p.cfg) == 128 << 10);
    CHECK(blkv_fuzz_over_budget(&p) == 0);
    p.cfg.grain = 2 << 20;
    CHECK(blkv_fuzz_budget(&p.cfg) == 16 << 20);
    blkv_program_free(&p);

    /* after a fault rule a write counts a grain: at 2 MiB, the ninth 1 KiB
     * write goes over, and the fit makes it a read (the request stays, so
     * request numbers do); at 4 KiB grains past the budget it is only cut */
    blkv_program_init(&p);
    p.cfg.grain = 2 << 20;
    w = (struct blkv_pop){.code = BLKV_P_FAULT, .arg = BLKV_EV_DATA_WRITE, .err = EIO};
    REQUIRE(blkv_program_push(&p, &w) == 0);
    for (unsigned i = 0; i < 9; i++) {
        w = (struct blkv_pop){.code = BLKV_P_WRITE, .flags = BLKV_P_FUA, .offset = 0, .len = 1024};
        REQUIRE(blkv_program_push(&p, &w) == 0);
    }
    CHECK(blkv_fuzz_over_budget(&p) == 9);
    blkv_fuzz_fit_budget(&p);
    CHECK(p.nops == 10 && p.ops[9].code == BLKV_P_READ && !p.ops[9].flags && p.ops[9].len == 1024);
    CHECK(p.ops[8].code == BLKV_P_WRITE && p.ops[8].flags == BLKV_P_FUA);
    CHECK(blkv_fuzz_over_budget(&p) == p.nops);
    p.cfg.grain = 4096; /* budget 1 MiB, eight grains spent */
    p.ops[9] = (struct blkv_pop){.code = BLKV_P_WZERO, .offset = 0, .len = 2 << 20};
    CHECK(blkv_fuzz_over_budget(&p) == 9);
    blkv_fuzz_fit_budget(&p);
    CHECK(p.ops[9].code == BLKV_P_WZERO && p.ops[9].len == (1 << 20) - 8 * 4096);
    CHECK(blkv_fuzz_over_budget(&p) == p.nops);
    blkv_program_free(&p);

    /* reopens and checks: BLKV_FUZZ_MAX_* of each; past that the fit drops
     * them, and the request numbering of waits is kept */
    blkv_program_init(&p);
    w = (struct blkv_pop){.code = BLKV_P_WRITE, .offset = 0, .len = 512};
    REQUIRE(blkv_program_push(&p, &w) == 0);
    for (unsigned i = 0; i < BLKV_FUZZ_MAX_REOPENS + 2; i++) {
        w = (struct blkv_pop){.code = BLKV_P_REOPEN};
        REQUIRE(blkv_program_push(&p, &w) == 0);
        w = (struct blkv_pop){.code = BLKV_P_CHECK};
        REQUIRE(blkv_program_push(&p, &w) == 0);
    }
    w = (struct blkv_pop){.code = BLKV_P_WAIT, .arg = 0};
    REQUIRE(blkv_program_push(&p, &w) == 0);
    CHECK(blkv_fuzz_over_budget(&p) == 1 + 2 * BLKV_FUZZ_MAX_REOPENS);
    blkv_fuzz_fit_budget(&p);
    CHECK(blkv_fuzz_over_budget(&p) == p.nops);
    CHECK(p.nops == 2 + BLKV_FUZZ_MAX_REOPENS + BLKV_FUZZ_MAX_CHECKS);
    CHECK(p.ops[p.nops - 1].code == BLKV_P_WAIT && p.ops[p.nops - 1].arg == 0);
    blkv_program_free(&p);

    /* a crash counts as a reopen; fault rules past BLKV_FUZZ_MAX_RULES go */
    blkv_program_init(&p);
    for (unsigned i = 0; i < BLKV_FUZZ_MAX_REOPENS; i++) {
        w = (struct blkv_pop){.code = i % 2 ? BLKV_P_CRASH : BLKV_P_REOPEN};
        REQUIRE(blkv_program_push(&p, &w) == 0);
    }
    w = (struct blkv_pop){.code = BLKV_P_CRASH};
    REQUIRE(blkv_program_push(&p, &w) == 0);
    CHECK(blkv_fuzz_over_budget(&p) == BLKV_FUZZ_MAX_REOPENS);
    blkv_fuzz_fit_budget(&p);
    CHECK(p.nops == BLKV_FUZZ_MAX_REOPENS);
    for (unsigned i = 0; i < BLKV_FUZZ_MAX_RULES + 3; i++) {
        w = (struct blkv_pop){.code = BLKV_P_FAULT, .arg = BLKV_EV_L2_UPDATE, .err = -EIO};
        REQUIRE(blkv_program_push(&p, &w) == 0);
    }
    CHECK(blkv_fuzz_over_budget(&p) == BLKV_FUZZ_MAX_REOPENS + BLKV_FUZZ_MAX_RULES);
    blkv_fuzz_fit_budget(&p);
    CHECK(p.nops == BLKV_FUZZ_MAX_REOPENS + BLKV_FUZZ_MAX_RULES);
    blkv_program_free(&p);

    /* a device too large for its grain is cut to the largest it may be; a
     * request past the new end stays (it fails with -EINVAL, as it may) */
    blkv_program_init(&p);
    p.cfg.grain = 2048;
    p.cfg.size = UINT64_C(1) << 40;
    w = (struct blkv_pop){.code = BLKV_P_WRITE, .offset = (UINT64_C(1) << 40) - 4096, .len = 4096};
    REQUIRE(blkv_program_push(&p, &w) == 0);
    CHECK(!blkv_fuzz_in_budget(&p) && blkv_fuzz_over_budget(&p) == p.nops);
    blkv_fuzz_fit_budget(&p);
    CHECK(p.cfg.size == blkv_fuzz_max_size(&p.cfg) && p.cfg.size == UINT64_C(128) << 30);
    CHECK(p.nops == 1 && p.ops[0].offset == (UINT64_C(1) << 40) - 4096);
    CHECK(blkv_fuzz_in_budget(&p));
    blkv_program_free(&p);
}

/* Same input and seed, same output; different seeds, mostly different. */
static void test_deterministic(void)
{
    static uint8_t a[MAXLEN], b[MAXLEN];
    unsigned differ = 0;

    for (unsigned i = 0; i < 2000; i++) {
        const struct input *in = &pool[i % POOL];
        size_t na, nb;
        memcpy(a, in->d, in->n);
        memcpy(b, in->d, in->n);
        na = blkv_fuzz_mutate(a, in->n, MAXLEN, i);
        nb = blkv_fuzz_mutate(b, in->n, MAXLEN, i);
        CHECK(na == nb && memcmp(a, b, na) == 0);
        na = blkv_fuzz_crossover(in->d, in->n, pool[(i * 7 + 3) % POOL].d,
                                       pool[(i * 7 + 3) % POOL].n, a, MAXLEN, i);
        nb = blkv_fuzz_crossover(in->d, in->n, pool[(i * 7 + 3) % POOL].d,
                                       pool[(i * 7 + 3) % POOL].n, b, MAXLEN, i);
        CHECK(na == nb && memcmp(a, b, na) == 0);
        memcpy(b, in->d, in->n);
        nb = blkv_fuzz_mutate(b, in->n, MAXLEN, i + 1);
        memcpy(a, in->d, in->n);
        na = blkv_fuzz_mutate(a, in->n, MAXLEN, i);
        differ += na != nb || memcmp(a, b, na) != 0;
    }
    CHECK(differ > 1500);
}

/* Crossover outputs fit, decode, and usually contain ops of both parents. */
static void test_crossover(void)
{
    static uint8_t out[MAXLEN];
    struct blkv_program p;
    unsigned made = 0;

    blkv_program_init(&p);
    for (unsigned i = 0; i < 10000; i++) {
        const struct input *x = &pool[i % POOL], *y = &pool[(i / POOL + i * 13) % POOL];
        size_t max = i % 5 ? MAXLEN : 8 + i % 64, n;
        n = blkv_fuzz_crossover(x->d, x->n, y->d, y->n, out, max, i);
        CHECK(n <= max);
        if (n) {
            made++;
            CHECK(blkv_program_decode(out, n, &p) == 0);
            CHECK(canonical(out, n));
            CHECK(blkv_fuzz_over_budget(&p) == p.nops);
        }
    }
    CHECK(made > 7000);
    blkv_program_free(&p);
}

/* Mutated programs run clean on the raw driver (no false positives). */
static void test_runs_clean(void)
{
    static uint8_t buf[MAXLEN];
    struct blkv_program p;
    struct t_rng r;
    struct input cur = pool[5];

    blkv_program_init(&p);
    t_rng_seed(&r, 3);
    for (unsigned i = 0; i < 300; i++) {
        struct blkv_run_opts o = {.driver = &blkv_driver_raw, .quiet = true};
        struct blkv_run_result res;
        size_t n;
        memcpy(buf, cur.d, cur.n);
        n = blkv_fuzz_mutate(buf, cur.n, 512, (unsigned)t_rng_next(&r));
        REQUIRE(blkv_program_decode(buf, n, &p) == 0);
        blkv_run(&p, &o, &res);
        if (res.status == BLKV_RUN_VIOLATION)
            fprintf(stderr, "raw failed: %s\n%s", res.message, res.report ? res.report : "");
        CHECK(res.status != BLKV_RUN_VIOLATION);
        blkv_run_result_free(&res);
        memcpy(cur.d, buf, n);
        cur.n = n;
    }
    blkv_program_free(&p);
}

int main(void)
{
    pool_init();
    RUN(test_budget);
    RUN(test_deterministic);
    RUN(test_crossover);
    RUN(test_mutate_fits_and_decodes);
    RUN(test_runs_clean);
    T_EXIT();
}
