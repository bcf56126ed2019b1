/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_random_budget.c - random bytes make programs a fuzz target runs.
 *
 *   test_random_budget share [MIN]   1,000 uniformly random inputs of
 *                                    uniformly random length 0..4096 bytes
 *                                    (fixed seed) are decoded and put to the
 *                                    fuzz budget: prints the share that run
 *                                    and why the others are set aside; fails
 *                                    if under MIN percent
 *   test_random_budget safety-net    programs over the budget, encoded, still
 *                                    decode over it and are set aside by
 *                                    blkv_fuzz_one (the budget check stays)
 *
 * The share is a property of the decoder's distributions, deterministic in
 * the seed: no timing.
 */
#include <blkv/driver.h>
#include <blkv/fuzz.h>
#include <blkv/program.h>
#include "registry.h"
#include "test.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NINPUTS 1000
#define MAXLEN 4096
#define SEED UINT64_C(0x726e6462) /* "rndb" */

/* Why an input is set aside: the kind of its first op over the budget. */
enum why { WHY_DATA, WHY_REOPEN, WHY_CHECK, WHY_RULES, WHY_SIZE, WHY__COUNT };
static const char *const why_name[WHY__COUNT] = {
    [WHY_SIZE] = "a device over blkv_fuzz_max_size for its grain",
    [WHY_DATA] = "a request over the data budget",
    [WHY_REOPEN] = "reopens and crashes over blkv_fuzz_max_reopens",
    [WHY_CHECK] = "checks over blkv_fuzz_max_checks",
    [WHY_RULES] = "fault rules over BLKV_FUZZ_MAX_RULES",
};

static enum why why_of(const struct blkv_pop *op)
{
    switch (op->code) {
    case BLKV_P_REOPEN:
    case BLKV_P_CRASH:
        return WHY_REOPEN;
    case BLKV_P_CHECK:
        return WHY_CHECK;
    case BLKV_P_FAULT:
        return WHY_RULES;
    default:
        return WHY_DATA;
    }
}

/* Count in alone[] each limit p goes over, whatever else it goes over. */
static void count_alone(const struct blkv_program *p, unsigned *alone)
{
    uint64_t budget = blkv_fuzz_budget(&p->cfg), moved = 0;
    const unsigned max[WHY__COUNT] = {
        [WHY_REOPEN] = blkv_fuzz_max_reopens(&p->cfg),
        [WHY_CHECK] = blkv_fuzz_max_checks(&p->cfg),
        [WHY_RULES] = BLKV_FUZZ_MAX_RULES,
    };
    unsigned n[WHY__COUNT] = {0};

    for (size_t i = 0; i < p->nops; i++) {
        const struct blkv_pop *op = &p->ops[i];
        if (blkv_opcode_ranged(op->code)) {
            uint64_t left = moved < budget ? budget - moved : 0, cost = op->len;
            bool write = op->code == BLKV_P_WRITE || op->code == BLKV_P_WZERO;
            if (left < BLKV_FUZZ_PAST_BUDGET)
                left = BLKV_FUZZ_PAST_BUDGET;
            if (write && n[WHY_RULES] && cost < p->cfg.grain) /* a rule's write: a grain */
                cost = p->cfg.grain;
            n[WHY_DATA] += cost > left;
            moved += cost;
        } else if (why_of(op) != WHY_DATA) {
            n[why_of(op)]++;
        }
    }
    n[WHY_SIZE] = p->cfg.size > blkv_fuzz_max_size(&p->cfg);
    for (unsigned k = 0; k < WHY__COUNT; k++)
        alone[k] += n[k] > max[k];
}

/* The share of random inputs within the budget; fails under min percent. */
static int part_share(double min)
{
    static uint8_t buf[MAXLEN];
    unsigned why[WHY__COUNT] = {0}, alone[WHY__COUNT] = {0}, run = 0, order[WHY__COUNT];
    uint64_t ops = 0;
    struct blkv_program p;
    struct t_rng r;

    t_rng_seed(&r, SEED);
    blkv_program_init(&p);
    for (unsigned i = 0; i < NINPUTS; i++) {
        size_t len = (size_t)t_rng_below(&r, MAXLEN + 1), at;
        for (size_t k = 0; k < len; k++)
            buf[k] = (uint8_t)t_rng_next(&r);
        REQUIRE(blkv_program_decode(buf, len, &p) == 0);
        ops += p.nops;
        at = blkv_fuzz_over_budget(&p);
        if (p.cfg.size > blkv_fuzz_max_size(&p.cfg))
            why[WHY_SIZE]++;
        else if (at == p.nops)
            run++;
        else
            why[why_of(&p.ops[at])]++;
        count_alone(&p, alone);
    }
    blkv_program_free(&p);

    printf("%u of %u random inputs (0-%u bytes, seed %#" PRIx64 ") run: %.1f%%; %.0f ops each\n",
           run, NINPUTS, MAXLEN, SEED, 100.0 * run / NINPUTS, (double)ops / NINPUTS);
    for (unsigned k = 0; k < WHY__COUNT; k++)
        order[k] = k;
    for (unsigned a = 0; a < WHY__COUNT; a++) /* most frequent first */
        for (unsigned b = a + 1; b < WHY__COUNT; b++)
            if (why[order[b]] > why[order[a]]) {
                unsigned t = order[a];
                order[a] = order[b], order[b] = t;
            }
    for (unsigned k = 0; k < WHY__COUNT && why[order[k]]; k++)
        printf("  set aside: %4u  %s\n", why[order[k]], why_name[order[k]]);
    printf("  each reason alone (an input may have several):");
    for (unsigned k = 0; k < WHY__COUNT; k++)
        printf("%s%u", k ? ", " : " ", alone[k]);
    printf(" (data, reopens, checks, rules, device size)\n");
    if (100.0 * run < min * NINPUTS) {
        fprintf(stderr, "FAIL: %.1f%% run, under %.1f%%\n", 100.0 * run / NINPUTS, min);
        return 1;
    }
    return 0;
}

/* Encode p, decode it again: it must come back whole and go over the
 * budget at op `at`, and blkv_fuzz_one must set it aside. */
/* at: the op over the budget, or BY_SIZE: the device is over its size. */
#define BY_SIZE SIZE_MAX

static void check_set_aside(const struct blkv_program *p, size_t at, const char *what)
{
    struct blkv_program q;
    size_t len = 0;
    uint8_t *enc = blkv_program_encode(p, &len);

    REQUIRE(enc);
    blkv_program_init(&q);
    REQUIRE(blkv_program_decode(enc, len, &q) == 0);
    if (q.nops != p->nops || blkv_fuzz_in_budget(&q) ||
        blkv_fuzz_over_budget(&q) != (at == BY_SIZE ? q.nops : at) ||
        (at == BY_SIZE) != (q.cfg.size > blkv_fuzz_max_size(&q.cfg))) {
        fprintf(stderr, "%s: %zu ops back of %zu, over the budget at %zu (want %zu), size %"
                PRIu64 " (largest %" PRIu64 ")\n", what, q.nops, p->nops,
                blkv_fuzz_over_budget(&q), at, q.cfg.size, blkv_fuzz_max_size(&q.cfg));
        t_failures++;
    }
    if (blkv_fuzz_one(&blkv_driver_raw, NULL, enc, len) != -1) {
        fprintf(stderr, "%s: run, not set aside\n", what);
        t_failures++;
    }
    printf("%s %s\n", t_failures ? "FAIL" : "ok  ", what);
    blkv_program_free(&q);
    free(enc);
}

static void push(struct blkv_program *p, struct blkv_pop op)
{
    REQUIRE(blkv_program_push(p, &op) == 0);
}

/* Programs over the budget in each way are still expressible and set aside. */
static int part_safety_net(void)
{
    struct blkv_program p;
    uint64_t budget;

    blkv_program_init(&p); /* grain 64K: a 2 MiB budget */
    budget = blkv_fuzz_budget(&p.cfg);
    push(&p, (struct blkv_pop){.code = BLKV_P_WRITE, .offset = 0, .len = budget - 4096});
    push(&p, (struct blkv_pop){.code = BLKV_P_READ, .offset = 0, .len = 8192});
    check_set_aside(&p, 1, "a request past the budget");

    blkv_program_free(&p);
    push(&p, (struct blkv_pop){.code = BLKV_P_WRITE, .offset = 0, .len = BLKV_MAX_REQUEST});
    check_set_aside(&p, 0, "one request of BLKV_MAX_REQUEST bytes");

    blkv_program_free(&p);
    push(&p, (struct blkv_pop){.code = BLKV_P_WRITE, .offset = 0, .len = 512});
    for (unsigned i = 0; i <= BLKV_FUZZ_MAX_REOPENS; i++)
        push(&p, (struct blkv_pop){.code = i % 2 ? BLKV_P_CRASH : BLKV_P_REOPEN, .arg = i});
    check_set_aside(&p, 1 + BLKV_FUZZ_MAX_REOPENS, "reopens and crashes past the limit");

    blkv_program_free(&p);
    for (unsigned i = 0; i <= BLKV_FUZZ_MAX_CHECKS; i++)
        push(&p, (struct blkv_pop){.code = BLKV_P_CHECK});
    check_set_aside(&p, BLKV_FUZZ_MAX_CHECKS, "checks past the limit");

    /* large grains: fewer reopens and checks (an open and a check read their
     * tables whole), down to one at 2 MiB; 256 KiB keeps all of them */
    {
        static const struct {
            uint32_t grain;
            unsigned n;
        } g[] = {{4096, 8}, {256 << 10, 8}, {512 << 10, 4}, {1 << 20, 2}, {2 << 20, 1}};
        for (size_t k = 0; k < sizeof(g) / sizeof(g[0]); k++) {
            blkv_program_free(&p);
            p.cfg.grain = g[k].grain;
            CHECK(blkv_fuzz_max_reopens(&p.cfg) == g[k].n);
            CHECK(blkv_fuzz_max_checks(&p.cfg) == g[k].n);
            for (unsigned i = 0; i <= g[k].n; i++)
                push(&p, (struct blkv_pop){.code = BLKV_P_REOPEN});
            check_set_aside(&p, g[k].n, "reopens past a large grain's limit");
            blkv_program_free(&p);
            p.cfg.grain = g[k].grain;
            for (unsigned i = 0; i < g[k].n; i++)
                push(&p, (struct blkv_pop){.code = BLKV_P_CHECK});
            CHECK(blkv_fuzz_over_budget(&p) == p.nops);
        }
        blkv_program_free(&p);
    }

    /* after a fault rule a write costs a grain: at 2 MiB (a 16 MiB budget)
     * eight 512-byte writes fill it; reads and discards of 4 KiB may still
     * follow, a ninth write may not, nor one before the rule past it */
    blkv_program_free(&p);
    p.cfg.grain = 2 << 20;
    budget = blkv_fuzz_budget(&p.cfg);
    push(&p, (struct blkv_pop){.code = BLKV_P_FAULT, .arg = BLKV_EV_DATA_WRITE, .err = EIO});
    for (uint64_t moved = 0; moved < budget; moved += p.cfg.grain)
        push(&p, (struct blkv_pop){.code = BLKV_P_WRITE, .offset = moved, .len = 512});
    push(&p, (struct blkv_pop){.code = BLKV_P_READ, .offset = 0, .len = BLKV_FUZZ_PAST_BUDGET});
    push(&p, (struct blkv_pop){.code = BLKV_P_DISCARD, .offset = 0, .len = 512});
    CHECK(blkv_fuzz_over_budget(&p) == p.nops);
    push(&p, (struct blkv_pop){.code = BLKV_P_WZERO, .offset = 0, .len = 512});
    check_set_aside(&p, p.nops - 1, "a write after a fault rule past the budget");
    p.ops[0] = (struct blkv_pop){.code = BLKV_P_READ, .len = 512}; /* no rule: 512 bytes each */
    CHECK(blkv_fuzz_over_budget(&p) == p.nops);

    /* a device too large for its grain (its L1 table over
     * BLKV_FUZZ_MAX_TABLE), with requests or none; the largest allowed runs */
    {
        static const struct {
            uint32_t grain;
            uint64_t max;
        } g[] = {{512, UINT64_C(8) << 30},
                 {4096, UINT64_C(512) << 30},
                 {8192, UINT64_C(2) << 40},
                 {16384, BLKV_MAX_DEVICE_SIZE},
                 {2 << 20, BLKV_MAX_DEVICE_SIZE}};
        for (size_t k = 0; k < sizeof(g) / sizeof(g[0]); k++) {
            p.cfg.grain = g[k].grain;
            CHECK(blkv_fuzz_max_size(&p.cfg) == g[k].max);
        }
        blkv_program_free(&p);
        p.cfg.grain = 4096;
        p.cfg.size = UINT64_C(512) << 30;
        push(&p, (struct blkv_pop){.code = BLKV_P_WRITE, .offset = p.cfg.size - 4096, .len = 4096});
        CHECK(blkv_fuzz_in_budget(&p));
        p.cfg.size += 512;
        check_set_aside(&p, BY_SIZE, "a device over its grain's largest size");
        blkv_program_free(&p);
        p.cfg.grain = 4096;
        p.cfg.size = UINT64_C(8) << 40;
        check_set_aside(&p, BY_SIZE, "a device over its grain's largest size, no ops");
    }

    blkv_program_free(&p);
    for (unsigned i = 0; i <= BLKV_FUZZ_MAX_RULES; i++)
        push(&p, (struct blkv_pop){
                     .code = BLKV_P_FAULT, .arg = BLKV_EV_DATA_WRITE, .err = EIO, .len = i});
    check_set_aside(&p, BLKV_FUZZ_MAX_RULES, "fault rules past the limit");
    blkv_program_free(&p);
    T_EXIT();
}

int main(int argc, char **argv)
{
    char *end;
    double min = 0;

    if (argc >= 2 && !strcmp(argv[1], "share") && argc <= 3) {
        if (argc == 3 && (min = strtod(argv[2], &end), *end || end == argv[2])) {
            fprintf(stderr, "test_random_budget: not a percentage: %s\n", argv[2]);
            return 2;
        }
        return part_share(min);
    }
    if (argc == 2 && !strcmp(argv[1], "safety-net"))
        return part_safety_net();
    fprintf(stderr, "usage: test_random_budget share [MIN_PERCENT] | safety-net\n");
    return 2;
}
