/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_program.c - programs: the total binary decoder, its encoder, the
 * trace text, and how the decoder biases offsets and lengths.
 */
#include <blkv/driver.h>
#include <blkv/program.h>
#include "test.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* ---- helpers ------------------------------------------------------------- */

static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Field-by-field equality; prints the first difference. */
static bool program_eq(const struct blkv_program *a, const struct blkv_program *b)
{
    const struct blkv_config *x = &a->cfg, *y = &b->cfg;
    if (x->size != y->size || x->grain != y->grain || x->qd != y->qd || x->atomic != y->atomic ||
        x->sched != y->sched || x->init != y->init || x->serialize != y->serialize ||
        x->seed != y->seed) {
        fprintf(stderr,
                "config differs: size %" PRIu64 "/%" PRIu64 " grain %u/%u qd %u/%u "
                "atomic %u/%u sched %u/%u init %u/%u ser %d/%d seed %" PRIu64 "/%" PRIu64 "\n",
                x->size, y->size, x->grain, y->grain, x->qd, y->qd, x->atomic, y->atomic, x->sched,
                y->sched, x->init, y->init, x->serialize, y->serialize, x->seed, y->seed);
        return false;
    }
    if (!str_eq(x->driver, y->driver) || !str_eq(x->init_image, y->init_image) ||
        !str_eq(x->lower_image, y->lower_image)) {
        fprintf(stderr, "config strings differ: [%s|%s] [%s|%s] [%s|%s]\n",
                x->driver ? x->driver : "-", y->driver ? y->driver : "-",
                x->init_image ? x->init_image : "-", y->init_image ? y->init_image : "-",
                x->lower_image ? x->lower_image : "-", y->lower_image ? y->lower_image : "-");
        return false;
    }
    if (a->nops != b->nops) {
        fprintf(stderr, "op count differs: %zu != %zu\n", a->nops, b->nops);
        return false;
    }
    for (size_t i = 0; i < a->nops; i++) {
        const struct blkv_pop *p = &a->ops[i], *q = &b->ops[i];
        if (p->code != q->code || p->flags != q->flags || p->err != q->err || p->arg != q->arg ||
            p->offset != q->offset || p->len != q->len) {
            char l1[160], l2[160];
            blkv_pop_format(p, l1, sizeof(l1));
            blkv_pop_format(q, l2, sizeof(l2));
            fprintf(stderr, "op %zu differs: '%s' != '%s'\n", i, l1, l2);
            return false;
        }
    }
    return true;
}

static bool pow2(uint64_t v)
{
    return v && !(v & (v - 1));
}

/* Whether every field of a decoded program is in its documented range. */
static bool program_valid(const struct blkv_program *p, bool decoded)
{
    const struct blkv_config *c = &p->cfg;
    uint64_t nsub = 0;

    if (c->size < 4096 || c->size > BLKV_MAX_DEVICE_SIZE || c->size % 512 || !pow2(c->grain) ||
        c->grain < 512 || c->grain > (2u << 20) || c->qd < 1 || c->qd > 256 || !pow2(c->atomic) ||
        c->atomic > 4096 || c->sched > BLKV_SCHED_LIFO || c->init > BLKV_INIT_IMAGE) {
        fprintf(stderr, "bad config\n");
        return false;
    }
    if (decoded && (c->init == BLKV_INIT_IMAGE || c->driver || c->init_image || c->lower_image))
        return false;
    if (p->nops > BLKV_PROGRAM_MAX_OPS)
        return false;
    for (size_t i = 0; i < p->nops; i++) {
        const struct blkv_pop *op = &p->ops[i];
        bool ranged = op->code <= BLKV_P_DISCARD;
        unsigned allowed = op->code == BLKV_P_WRITE   ? BLKV_P_FUA
                           : op->code == BLKV_P_WZERO ? BLKV_P_FUA | BLKV_P_UNMAP
                           : op->code == BLKV_P_FAULT ? BLKV_P_ONCE
                                                      : 0;
        bool ok = op->code < BLKV_P__COUNT && !(op->flags & ~allowed);
        if (ranged)
            ok = ok && op->len >= 1 && op->len <= BLKV_MAX_REQUEST &&
                 op->offset < BLKV_MAX_DEVICE_SIZE;
        else if (op->code == BLKV_P_FAULT) /* len: I/Os spared */
            ok = ok && op->len <= 65535 && op->offset == 0;
        else
            ok = ok && op->len == 0 && op->offset == 0;
        if (op->code == BLKV_P_CANCEL || op->code == BLKV_P_WAIT)
            ok = ok && op->arg < nsub;
        else if (op->code == BLKV_P_STEP || op->code == BLKV_P_CRASH)
            ok = ok && op->arg <= 255 && op->err <= 4095;
        else if (op->code == BLKV_P_FAULT)
            ok = ok && op->arg >= 1 && op->arg <= 255 && op->err >= 1 && op->err <= 4095;
        else
            ok = ok && op->arg == 0;
        if (op->code != BLKV_P_STEP && op->code != BLKV_P_FAULT)
            ok = ok && op->err == 0;
        if (!ok) {
            char l[160];
            blkv_pop_format(op, l, sizeof(l));
            fprintf(stderr, "op %zu out of range: %s (flags %#x)\n", i, l, op->flags);
            return false;
        }
        nsub += blkv_opcode_submits(op->code);
    }
    return true;
}

/* Random bytes in one of a few shapes: uniform, small values, escape-heavy. */
static size_t random_input(struct t_rng *r, uint8_t *buf, size_t max)
{
    size_t len = (size_t)t_rng_below(r, max + 1);
    unsigned shape = (unsigned)t_rng_below(r, 4);
    for (size_t i = 0; i < len; i++) {
        uint8_t b = (uint8_t)t_rng_next(r);
        switch (shape) {
        case 1:
            b &= 0x1f;
            break;
        case 2:
            b = t_rng_below(r, 2) ? 0xff : b;
            break;
        case 3:
            b = t_rng_below(r, 4) ? b : 0;
            break;
        default:
            break;
        }
        buf[i] = b;
    }
    return len;
}

static bool binary_roundtrip(const struct blkv_program *p)
{
    struct blkv_program q;
    size_t len = 0;
    uint8_t *enc = blkv_program_encode(p, &len);
    bool ok;

    if (!enc)
        return false;
    blkv_program_init(&q);
    ok = blkv_program_decode(enc, len, &q) == 0 && program_eq(p, &q);
    blkv_program_free(&q);
    free(enc);
    return ok;
}

static bool text_roundtrip(const struct blkv_program *p)
{
    struct blkv_program q;
    char err[256];
    char *t1 = blkv_program_format(p), *t2 = NULL;
    bool ok = false;

    if (!t1)
        return false;
    blkv_program_init(&q);
    if (blkv_program_parse(t1, strlen(t1), "rt.trace", &q, err, sizeof(err)) != 0) {
        fprintf(stderr, "formatted trace does not parse: %s\n", err);
        goto out;
    }
    if (!program_eq(p, &q))
        goto out;
    t2 = blkv_program_format(&q);
    ok = t2 && strcmp(t1, t2) == 0;
    if (!ok)
        fprintf(stderr, "format is not a fixed point\n");
out:
    blkv_program_free(&q);
    free(t1);
    free(t2);
    return ok;
}

/* ---- tests --------------------------------------------------------------- */

static void test_defaults(void)
{
    struct blkv_program p;
    struct blkv_config c;

    blkv_config_default(&c);
    CHECK(c.size == 64 * MiB && c.grain == 64 * 1024 && c.qd == 8 && c.atomic == 1);
    CHECK(c.sched == BLKV_SCHED_RANDOM && c.init == BLKV_INIT_ZERO && !c.serialize);
    CHECK(c.seed == 0 && !c.driver && !c.init_image && !c.lower_image);

    blkv_program_init(&p);
    CHECK(p.nops == 0 && p.cfg.size == c.size);
    CHECK(blkv_program_decode(NULL, 0, &p) == 0);
    CHECK(p.nops == 0);
    CHECK(memcmp(&p.cfg, &c, sizeof(c)) == 0);
    /* decoding replaces: a second decode of nothing empties a full program */
    {
        static const uint8_t some[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
        CHECK(blkv_program_decode(some, sizeof(some), &p) == 0 && p.nops > 0);
        CHECK(blkv_program_decode((const uint8_t *)"", 0, &p) == 0 && p.nops == 0);
        CHECK(memcmp(&p.cfg, &c, sizeof(c)) == 0);
    }
    /* eight zero bytes: the default config, then nothing */
    {
        static const uint8_t zeros[8];
        CHECK(blkv_program_decode(zeros, sizeof(zeros), &p) == 0 && p.nops == 0);
        CHECK(memcmp(&p.cfg, &c, sizeof(c)) == 0);
    }
    CHECK(text_roundtrip(&p));
    CHECK(binary_roundtrip(&p));
    blkv_program_free(&p);
}

static void test_names(void)
{
    static const char *const names[] = {"read", "write", "wzero",  "discard", "flush",
                                        "cancel", "step", "wait",  "drain",   "reopen",
                                        "check", "crash", "fault"};
    struct blkv_program p;
    struct blkv_pop op = {.code = BLKV_P_FLUSH};
    char buf[64];

    CHECK(ARRAY_SIZE(names) == BLKV_P__COUNT);
    for (unsigned i = 0; i < BLKV_P__COUNT; i++) {
        CHECK(strcmp(blkv_opcode_name(i), names[i]) == 0);
        CHECK(blkv_opcode_submits(i) == (i <= BLKV_P_FLUSH));
    }
    CHECK(blkv_opcode_name(BLKV_P__COUNT) != NULL);
    CHECK(blkv_opcode_name(1000) != NULL);

    op = (struct blkv_pop){
        .code = BLKV_P_WZERO, .flags = BLKV_P_FUA | BLKV_P_UNMAP, .offset = 65536, .len = 4096};
    blkv_pop_format(&op, buf, sizeof(buf));
    CHECK(strcmp(buf, "wzero 65536 4096 unmap fua") == 0);
    op = (struct blkv_pop){.code = BLKV_P_STEP, .arg = 3, .err = EIO};
    blkv_pop_format(&op, buf, sizeof(buf));
    CHECK(strcmp(buf, "step 3 fail EIO") == 0);
    op = (struct blkv_pop){.code = BLKV_P_STEP, .arg = 3, .err = 4000};
    blkv_pop_format(&op, buf, sizeof(buf));
    CHECK(strcmp(buf, "step 3 fail 4000") == 0);
    op = (struct blkv_pop){.code = BLKV_P_CANCEL, .arg = 7};
    blkv_pop_format(&op, buf, sizeof(buf));
    CHECK(strcmp(buf, "cancel #7") == 0);
    blkv_pop_format(&op, buf, 4); /* truncates, never overflows */
    CHECK(strcmp(buf, "can") == 0);

    /* the op count is bounded */
    blkv_program_init(&p);
    op = (struct blkv_pop){.code = BLKV_P_FLUSH};
    for (unsigned i = 0; i < BLKV_PROGRAM_MAX_OPS; i++)
        REQUIRE(blkv_program_push(&p, &op) == 0);
    CHECK(blkv_program_push(&p, &op) == -E2BIG);
    CHECK(blkv_program_nreqs(&p) == BLKV_PROGRAM_MAX_OPS);
    blkv_program_free(&p);
    CHECK(p.nops == 0 && p.ops == NULL);
}

/* The op table is whole: every kind has a row, its decode bytes add up to
 * 256 with flags the kind allows (each value once), ranged kinds and only
 * they have flags, and request kinds name a request op. */
static void test_op_table(void)
{
    unsigned total = 0;

    CHECK(blkv_opinfo(BLKV_P__COUNT) == NULL);
    for (unsigned c = 0; c < BLKV_P__COUNT; c++) {
        const struct blkv_opinfo *oi = blkv_opinfo(c);
        unsigned seen = 0;
        REQUIRE(oi != NULL);
        CHECK(oi->name && oi->usage && !strncmp(oi->usage, oi->name, strlen(oi->name)));
        CHECK(oi->req >= -1 && oi->req <= BLKV_OP_FLUSH);
        CHECK(oi->flags == 0 || oi->operand == BLKV_OPND_RANGE ||
              oi->operand == BLKV_OPND_FAULT);
        CHECK((oi->operand == BLKV_OPND_RANGE) == (oi->req >= 0 && oi->req != BLKV_OP_FLUSH));
        CHECK(oi->decode[0].bytes > 0);
        for (unsigned k = 0; k < 4 && oi->decode[k].bytes; k++) {
            CHECK((oi->decode[k].flags & ~oi->flags) == 0);
            CHECK(!(seen & (1u << oi->decode[k].flags)));
            seen |= 1u << oi->decode[k].flags;
            total += oi->decode[k].bytes;
        }
    }
    CHECK(total == 256);
}

/* 10^5 random inputs: all decode to in-range programs; many round-trip. */
static void test_decode_total(void)
{
    enum { N = 100000, MAXLEN = 4096 };
    struct t_rng r;
    uint8_t *buf = malloc(MAXLEN);
    struct blkv_program p;
    unsigned bad = 0, bad_bin = 0, bad_text = 0, nbin = 0, ntext = 0;
    uint64_t ops = 0;

    REQUIRE(buf);
    t_rng_seed(&r, 0x626c6b76);
    blkv_program_init(&p);
    for (unsigned i = 0; i < N; i++) {
        size_t len = random_input(&r, buf, MAXLEN);
        if (blkv_program_decode(buf, len, &p) != 0 || !program_valid(&p, true) || p.nops > len) {
            if (bad++ < 5)
                fprintf(stderr, "input %u (%zu bytes) decodes badly\n", i, len);
            continue;
        }
        ops += p.nops;
        if (i % 4 == 0) {
            nbin++;
            if (!binary_roundtrip(&p) && bad_bin++ < 5)
                fprintf(stderr, "input %u: binary round trip fails\n", i);
        }
        if (i % 20 == 0) {
            ntext++;
            if (!text_roundtrip(&p) && bad_text++ < 5)
                fprintf(stderr, "input %u: text round trip fails\n", i);
        }
    }
    printf("  %u inputs, %" PRIu64 " ops; %u binary and %u text round trips\n", N, ops, nbin,
           ntext);
    CHECK(bad == 0);
    CHECK(bad_bin == 0);
    CHECK(bad_text == 0);
    blkv_program_free(&p);
    free(buf);
}

/* Every prefix of an input decodes too (truncation mid-literal). */
static void test_prefixes(void)
{
    struct t_rng r;
    uint8_t buf[600];
    struct blkv_program p;
    bool ok = true;

    t_rng_seed(&r, 7);
    blkv_program_init(&p);
    for (int k = 0; k < 20; k++) {
        for (size_t i = 0; i < sizeof(buf); i++)
            buf[i] = (uint8_t)(t_rng_below(&r, 3) ? t_rng_next(&r) : 0xff);
        for (size_t len = 0; len <= sizeof(buf); len++)
            ok = ok && blkv_program_decode(buf, len, &p) == 0 && program_valid(&p, true);
    }
    CHECK(ok);
    blkv_program_free(&p);
}

/* Values the decoder rarely produces, but that the forms must carry exactly. */
static void test_extremes(void)
{
    struct blkv_program p;
    struct blkv_pop op;
    uint64_t offs[] = {0,
                       1,
                       511,
                       512,
                       4096,
                       65536 * 255,
                       65536 * 256,
                       BLKV_MAX_DEVICE_SIZE - 1,
                       BLKV_MAX_DEVICE_SIZE - 512,
                       UINT64_C(1) << 42};
    uint64_t lens[] = {
        1, 7, 8, 511, 512, 8192, 8704, 65536, 2 << 20, BLKV_MAX_REQUEST - 1, BLKV_MAX_REQUEST};
    uint64_t seeds[] = {0, 1, 0xfd, 0xfe, 0xff, UINT32_MAX, (uint64_t)UINT32_MAX + 1, UINT64_MAX};
    uint64_t sizes[] = {4096,
                        4608,
                        64 * MiB,
                        64 * MiB + 512,
                        BLKV_MAX_DEVICE_SIZE,
                        BLKV_MAX_DEVICE_SIZE - 512,
                        3 * (UINT64_C(1) << 40)};
    uint32_t grains[] = {512, 1024, 65536, 2 << 20};
    uint32_t qds[] = {1, 3, 8, 100, 255, 256};
    uint32_t atomics[] = {1, 2, 512, 1024, 4096};

    for (size_t s = 0; s < ARRAY_SIZE(seeds); s++) {
        blkv_program_init(&p);
        p.cfg.seed = seeds[s];
        p.cfg.size = sizes[s % ARRAY_SIZE(sizes)];
        p.cfg.grain = grains[s % ARRAY_SIZE(grains)];
        p.cfg.qd = qds[s % ARRAY_SIZE(qds)];
        p.cfg.atomic = atomics[s % ARRAY_SIZE(atomics)];
        p.cfg.sched = (uint8_t)(s % 3);
        p.cfg.init = (uint8_t)(s % 2);
        p.cfg.serialize = s % 2;
        for (size_t i = 0; i < ARRAY_SIZE(offs); i++) {
            for (size_t j = 0; j < ARRAY_SIZE(lens); j++) {
                unsigned code = (unsigned)((i + j) % 4);
                op = (struct blkv_pop){.code = (uint8_t)code, .offset = offs[i], .len = lens[j]};
                if (code == BLKV_P_WRITE)
                    op.flags = (i & 1) ? BLKV_P_FUA : 0;
                if (code == BLKV_P_WZERO)
                    op.flags = (uint8_t)(j & 3);
                REQUIRE(blkv_program_push(&p, &op) == 0);
            }
        }
        for (uint32_t n = 0; n < 110; n += 13) {
            op = (struct blkv_pop){.code = (n & 1) ? BLKV_P_WAIT : BLKV_P_CANCEL, .arg = n};
            REQUIRE(blkv_program_push(&p, &op) == 0);
        }
        for (unsigned e = 0; e <= 4095; e += 97) {
            op = (struct blkv_pop){.code = BLKV_P_STEP, .arg = e % 256, .err = (uint16_t)e};
            REQUIRE(blkv_program_push(&p, &op) == 0);
        }
        op = (struct blkv_pop){.code = BLKV_P_STEP, .arg = 255, .err = 4095};
        REQUIRE(blkv_program_push(&p, &op) == 0);
        for (unsigned c = BLKV_P_FLUSH; c < BLKV_P__COUNT; c++) {
            if (c == BLKV_P_CANCEL || c == BLKV_P_WAIT || c == BLKV_P_STEP || c == BLKV_P_FAULT)
                continue;
            op = (struct blkv_pop){.code = (uint8_t)c};
            REQUIRE(blkv_program_push(&p, &op) == 0);
        }
        /* crash and fault at the ends of their ranges */
        op = (struct blkv_pop){.code = BLKV_P_CRASH, .arg = 255};
        REQUIRE(blkv_program_push(&p, &op) == 0);
        for (unsigned ev = 1; ev <= 255; ev += 17) {
            op = (struct blkv_pop){.code = BLKV_P_FAULT, .arg = ev, .err = (uint16_t)(ev * 16 + 1),
                                   .flags = (ev & 2) ? BLKV_P_ONCE : 0, .len = ev * 257};
            REQUIRE(blkv_program_push(&p, &op) == 0);
        }
        op = (struct blkv_pop){.code = BLKV_P_FAULT, .arg = 255, .err = 4095, .len = 65535};
        REQUIRE(blkv_program_push(&p, &op) == 0);
        CHECK(program_valid(&p, true));
        CHECK(binary_roundtrip(&p));
        CHECK(text_roundtrip(&p));
        blkv_program_free(&p);
    }

    /* text-only fields survive the text form */
    blkv_program_init(&p);
    p.cfg.driver = strdup("buggy mode=lost-write every=3");
    p.cfg.init = BLKV_INIT_IMAGE;
    p.cfg.init_image = strdup("/tmp/some dir/disk#1.img");
    p.cfg.lower_image = strdup("lower.qcow2");
    op = (struct blkv_pop){.code = BLKV_P_FLUSH};
    REQUIRE(blkv_program_push(&p, &op) == 0);
    CHECK(text_roundtrip(&p));
    blkv_program_free(&p);

    /* a cancel before any request has no binary form: it is left out */
    {
        struct blkv_program q;
        size_t len;
        uint8_t *enc;
        blkv_program_init(&p);
        blkv_program_init(&q);
        op = (struct blkv_pop){.code = BLKV_P_CANCEL, .arg = 0};
        REQUIRE(blkv_program_push(&p, &op) == 0);
        op = (struct blkv_pop){.code = BLKV_P_DRAIN};
        REQUIRE(blkv_program_push(&p, &op) == 0);
        enc = blkv_program_encode(&p, &len);
        REQUIRE(enc);
        CHECK(blkv_program_decode(enc, len, &q) == 0);
        CHECK(q.nops == 1 && q.ops[0].code == BLKV_P_DRAIN);
        free(enc);
        blkv_program_free(&p);
        blkv_program_free(&q);
    }
}

static const char hand_trace[] = "# a hand-written trace\n"
                                 "\n"
                                 "blkv-trace 1   # version\n"
                                 "driver buggy mode=lost-write every=3\n"
                                 "size 1G\n"
                                 "grain 0x10000\n"
                                 "qd 4\n"
                                 "atomic 512\n"
                                 "\tsched   lifo\n"
                                 "seed 42\n"
                                 "init pattern\n"
                                 "serialize on\n"
                                 "lower /tmp/lower.img   # trailing comment\n"
                                 "   # indented comment\n"
                                 "read 0 4K\n"
                                 "write 65536 4096 fua  # #1\n"
                                 "wzero 1M 8K unmap fua\n"
                                 "wzero 2M 512 fua unmap\n"
                                 "wzero 3M 1\n"
                                 "discard 0x2000 7\n"
                                 "flush\r\n"
                                 "cancel #3\n"
                                 "wait 0\n"
                                 "step 0\n"
                                 "step 255 fail EIO\n"
                                 "step 7 fail 1234\n"
                                 "drain\n"
                                 "reopen\n"
                                 "check\n"
                                 "write 8796093022207 8M\n"
                                 "#3 is not an op\n"
                                 "read 512 512"; /* no final newline */

static void test_text_hand(void)
{
    static const struct blkv_pop want[] = {
        {.code = BLKV_P_READ, .offset = 0, .len = 4096},
        {.code = BLKV_P_WRITE, .flags = BLKV_P_FUA, .offset = 65536, .len = 4096},
        {.code = BLKV_P_WZERO, .flags = BLKV_P_FUA | BLKV_P_UNMAP, .offset = MiB, .len = 8192},
        {.code = BLKV_P_WZERO, .flags = BLKV_P_FUA | BLKV_P_UNMAP, .offset = 2 * MiB, .len = 512},
        {.code = BLKV_P_WZERO, .offset = 3 * MiB, .len = 1},
        {.code = BLKV_P_DISCARD, .offset = 0x2000, .len = 7},
        {.code = BLKV_P_FLUSH},
        {.code = BLKV_P_CANCEL, .arg = 3},
        {.code = BLKV_P_WAIT, .arg = 0},
        {.code = BLKV_P_STEP, .arg = 0},
        {.code = BLKV_P_STEP, .arg = 255, .err = EIO},
        {.code = BLKV_P_STEP, .arg = 7, .err = 1234},
        {.code = BLKV_P_DRAIN},
        {.code = BLKV_P_REOPEN},
        {.code = BLKV_P_CHECK},
        {.code = BLKV_P_WRITE, .offset = BLKV_MAX_DEVICE_SIZE - 1, .len = BLKV_MAX_REQUEST},
        {.code = BLKV_P_READ, .offset = 512, .len = 512},
    };
    struct blkv_program p, q;
    char err[256];
    char *text;
    int ret;

    blkv_program_init(&p);
    ret = blkv_program_parse(hand_trace, strlen(hand_trace), "hand.trace", &p, err, sizeof(err));
    if (ret)
        fprintf(stderr, "%s\n", err);
    REQUIRE(ret == 0);
    CHECK(p.cfg.size == 1024 * MiB && p.cfg.grain == 65536 && p.cfg.qd == 4);
    CHECK(p.cfg.atomic == 512 && p.cfg.sched == BLKV_SCHED_LIFO && p.cfg.seed == 42);
    CHECK(p.cfg.init == BLKV_INIT_PATTERN && p.cfg.serialize);
    CHECK(str_eq(p.cfg.driver, "buggy mode=lost-write every=3"));
    CHECK(str_eq(p.cfg.lower_image, "/tmp/lower.img"));
    CHECK(p.cfg.init_image == NULL);
    CHECK(p.nops == ARRAY_SIZE(want));
    for (size_t i = 0; i < p.nops && i < ARRAY_SIZE(want); i++) {
        const struct blkv_pop *a = &p.ops[i], *b = &want[i];
        bool eq = a->code == b->code && a->flags == b->flags && a->err == b->err &&
                  a->arg == b->arg && a->offset == b->offset && a->len == b->len;
        if (!eq)
            fprintf(stderr, "hand op %zu differs\n", i);
        CHECK(eq);
    }
    CHECK(blkv_program_nreqs(&p) == 9);
    CHECK(text_roundtrip(&p));

    /* the canonical form */
    text = blkv_program_format(&p);
    REQUIRE(text);
    CHECK(strncmp(text, "# ", 2) == 0);
    CHECK(strstr(text, "\nblkv-trace 1\ndriver buggy mode=lost-write every=3\nsize 1G\n"
                       "grain 64K\nqd 4\natomic 512\nsched lifo\nseed 42\ninit pattern\n"
                       "serialize on\nlower /tmp/lower.img\nread 0 4096  # #0\n"
                       "write 65536 4096 fua  # #1\n") != NULL);
    CHECK(strstr(text, "\ncancel #3\nwait #0\nstep 0\nstep 255 fail EIO\nstep 7 fail 1234\n"
                       "drain\nreopen\ncheck\n") != NULL);
    CHECK(strstr(text, "\nread 512 512  # #8\n") != NULL);
    free(text);

    /* binary: all but the text-only fields */
    {
        size_t len;
        uint8_t *enc = blkv_program_encode(&p, &len);
        REQUIRE(enc);
        blkv_program_init(&q);
        CHECK(blkv_program_decode(enc, len, &q) == 0);
        free(p.cfg.driver);
        free(p.cfg.lower_image);
        p.cfg.driver = p.cfg.lower_image = NULL;
        CHECK(program_eq(&p, &q));
        blkv_program_free(&q);
        free(enc);
    }

    /* init image; an empty trace is the defaults */
    {
        static const char t[] = "init image /data/my disk.raw  # comment\n";
        CHECK(blkv_program_parse(t, strlen(t), "i.trace", &p, err, sizeof(err)) == 0);
        CHECK(p.cfg.init == BLKV_INIT_IMAGE && str_eq(p.cfg.init_image, "/data/my disk.raw"));
        CHECK(text_roundtrip(&p));
        CHECK(blkv_program_parse("", 0, "e.trace", &p, err, sizeof(err)) == 0);
        CHECK(p.nops == 0 && p.cfg.size == 64 * MiB && p.cfg.init == BLKV_INIT_ZERO);
        CHECK(p.cfg.init_image == NULL);
        CHECK(blkv_program_parse("# only\n\n  \n", 11, "e.trace", &p, err, sizeof(err)) == 0);
        CHECK(p.nops == 0);
    }
    blkv_program_free(&p);
}

/* Text or binary: what starts like a trace is text, whatever follows. */
static void test_text_or_binary(void)
{
    static const struct {
        const char *data;
        size_t len;
        bool text;
    } cases[] = {
#define C(s, t) {s, sizeof(s) - 1, t}
        C("write 0 512\n", true),
        C("\xef\xbb\xbf" "driver raw\n", true),     /* a BOM */
        C("  \n\t# comment\n\x01\x02", true),        /* a comment line, then anything */
        C("Write 0 512\x01\n", true),                 /* an op in any case */
        C("BLKV-TRACE 1", true),
        C("wrtie 0 512\nread 0 512\n", true),         /* lines of text */
        C("", false),
        C("\"+u", false),                              /* a tiny fuzzer input */
        C("#\x01\x02\x03\n", false),                  /* '#' then binary */
        C("writes\x01\x02", false),
        C("\x00\x01write 0 512\n", false),
        C("hello", false),                             /* no line feed */
        C("caf\xc3\xa9 au lait\n", true),               /* UTF-8 */
        C("caf\xe9 au lait\n", false),                  /* not UTF-8 */
#undef C
    };
    struct blkv_program p;
    char err[512];

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        bool got = blkv_program_is_text((const uint8_t *)cases[i].data, cases[i].len);
        if (got != cases[i].text)
            fprintf(stderr, "case %zu: is_text %d, want %d\n", i, got, cases[i].text);
        CHECK(got == cases[i].text);
    }
    /* a BOM is skipped and CRLF ends are fine: the program is the plain one */
    blkv_program_init(&p);
    CHECK(blkv_program_parse("\xef\xbb\xbfsize 1M\r\nwrite 0 512\r\n", 25, "t", &p, err,
                             sizeof(err)) == 0);
    CHECK(p.cfg.size == 1 << 20 && p.nops == 1 && p.ops[0].len == 512);
    blkv_program_free(&p);
}

static void test_text_errors(void)
{
    static const struct {
        const char *text;
        const char *prefix; /* "name:line: " */
        const char *frag;
    } cases[] = {
        {"wrtie 0 512\n", "t.trace:1: ", "unknown op 'wrtie'"},
        {"# c\n\nsize 1000000\n", "t.trace:3: ", "size must be a multiple of 512"},
        {"size 2048\n", "t.trace:1: ", "size 2048 out of range 4096..8796093022208"},
        {"size 9T\n", "t.trace:1: ", "size 9T out of range"},
        {"size\n", "t.trace:1: ", "size: missing operand"},
        {"size 1M 2M\n", "t.trace:1: ", "size: unexpected '2M'"},
        {"size 1M\nsize 2M\n", "t.trace:2: ", "'size' given twice (first on line 1)"},
        {"read 0 512\nsize 1M\n", "t.trace:2: ", "'size' after the first op"},
        {"write 0 512\nwrite 0 512\nflush\nread 0 1\ncancel #12\n",
         "t.trace:5: ", "cancel #12: only 4 requests submitted so far"},
        {"wait #0\n", "t.trace:1: ", "wait #0: only 0 requests submitted so far"},
        {"flush\ncancel #1\n", "t.trace:2: ", "cancel #1: only 1 request submitted so far"},
        {"flush\ncancel 1x\n", "t.trace:2: ", "'1x' is not a request number"},
        {"flush\ncancel #\n", "t.trace:2: ", "cancel: missing operand"},
        {"flush\ncancel\n", "t.trace:2: ", "cancel: missing operand"},
        {"flush\nwait #0 #0\n", "t.trace:2: ", "wait: unexpected '#0'"},
        {"\n\n\n\nread 0 0\n", "t.trace:5: ", "length 0 out of range 1..8388608"},
        {"read 0 9M\n", "t.trace:1: ", "length 9M out of range 1..8388608"},
        {"read 8T 512\n", "t.trace:1: ", "offset 8T out of range 0..8796093022207"},
        {"read 99999999999999999999999 1\n",
         "t.trace:1: ", "offset 99999999999999999999999 out of range"},
        {"read x 1\n", "t.trace:1: ", "offset: 'x' is not a number"},
        {"read 0x 1\n", "t.trace:1: ", "offset: '0x' is not a number"},
        {"read -1 1\n", "t.trace:1: ", "offset: '-1' is not a number"},
        {"read 0\n", "t.trace:1: ", "read: missing operand (expected 'read OFF LEN')"},
        {"read\n", "t.trace:1: ", "read: missing operand"},
        {"read 0 512 junk\n", "t.trace:1: ", "read: unexpected 'junk'"},
        {"discard 0 512 fua\n", "t.trace:1: ", "discard: unexpected 'fua'"},
        {"write 0 512 unmap\n", "t.trace:1: ", "write: unexpected 'unmap'"},
        {"write 0 512 fua fua\n", "t.trace:1: ", "write: unexpected 'fua'"},
        {"write 0\n", "t.trace:1: ", "write: missing operand"},
        {"wzero 0 512 unmap fua x\n", "t.trace:1: ", "wzero: unexpected 'x'"},
        {"wzero 0 512 a b c d e f g h\n", "t.trace:1: ", "wzero: too many words"},
        {"flush now\n", "t.trace:1: ", "flush: unexpected 'now'"},
        {"drain 1\n", "t.trace:1: ", "drain: unexpected '1'"},
        {"step\n", "t.trace:1: ", "step: missing operand"},
        {"step 256\n", "t.trace:1: ", "step index 256 out of range 0..255"},
        {"step 1 fail\n", "t.trace:1: ", "step: missing errno after 'fail'"},
        {"step 1 fail EFOO\n", "t.trace:1: ", "step: unknown errno 'EFOO'"},
        {"step 1 fail 4096\n", "t.trace:1: ", "step: unknown errno '4096'"},
        {"step 1 fail 0\n", "t.trace:1: ", "step: unknown errno '0'"},
        {"step 1 fial EIO\n", "t.trace:1: ", "step: unexpected 'fial'"},
        {"step 1 fail EIO now\n", "t.trace:1: ", "step: unexpected 'now'"},
        {"grain 3000\n", "t.trace:1: ", "grain must be a power of 2"},
        {"grain 256\n", "t.trace:1: ", "grain 256 out of range 512..2097152"},
        {"qd 0\n", "t.trace:1: ", "qd 0 out of range 1..256"},
        {"qd 257\n", "t.trace:1: ", "qd 257 out of range 1..256"},
        {"atomic 3\n", "t.trace:1: ", "atomic must be a power of 2"},
        {"atomic 8K\n", "t.trace:1: ", "atomic 8K out of range 1..4096"},
        {"sched rr\n", "t.trace:1: ", "unknown sched 'rr'"},
        {"seed -1\n", "t.trace:1: ", "seed: '-1' is not a number"},
        {"seed 18446744073709551616\n", "t.trace:1: ", "seed 18446744073709551616 out of range"},
        {"init foo\n", "t.trace:1: ", "unknown init 'foo'"},
        {"init image\n", "t.trace:1: ", "init image: missing path"},
        {"init image # comment\n", "t.trace:1: ", "init image: missing path"},
        {"init\n", "t.trace:1: ", "init: missing operand"},
        {"serialize maybe\n", "t.trace:1: ", "serialize must be on or off"},
        {"driver\n", "t.trace:1: ", "driver: missing spec"},
        {"lower   # x\n", "t.trace:1: ", "lower: missing path"},
        {"blkv-trace 2\n", "t.trace:1: ", "unsupported trace version '2'"},
        {"blkv-trace\n", "t.trace:1: ", "blkv-trace: missing operand"},
        {"# c\nsize 1M\nblkv-trace 1\n", "t.trace:3: ", "'blkv-trace' must be the first line"},
        {"blkv-trace 1\nblkv-trace 1\n", "t.trace:2: ", "'blkv-trace' must be the first line"},
        {"read 0 512\ncancel #x\n", "t.trace:2: ", "cancel: missing operand"},
        {"WRITE 0 512\n", "t.trace:1: ", "unknown op 'WRITE'"},
        {"read 0 512\v\n", "t.trace:1: ", "control byte 0x0b at column 11"},
        {"write 0 512\n\x1b[2Jread 0 512\n", "t.trace:2: ", "control byte 0x1b at column 1"},
        {"\xef\xbb\xbf\xef\xbb\xbfsize 1M\n", "t.trace:1: ", "unknown op '\xef\xbb\xbfsize'"},
        {"Read 0 512\n", "t.trace:1: ", "unknown op 'Read' (ops are lower case: 'read')"},
        {"Size 1M\n", "t.trace:1: ", "(keywords are lower case: 'size')"},
    };
    struct blkv_program p;
    char err[512];

    blkv_program_init(&p);
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        const char *t = cases[i].text;
        int ret = blkv_program_parse(t, strlen(t), "t.trace", &p, err, sizeof(err));
        bool ok = ret == -EINVAL && strncmp(err, cases[i].prefix, strlen(cases[i].prefix)) == 0 &&
                  strstr(err, cases[i].frag) != NULL && p.nops == 0;
        if (!ok)
            fprintf(stderr, "case %zu: ret %d, err '%s'; want '%s...%s'\n", i, ret, err,
                    cases[i].prefix, cases[i].frag);
        CHECK(ok);
    }

    /* another name; NUL bytes; overlong lines; a small error buffer; no buffer */
    {
        static const char t1[] = "read 0 512\nsize 1M\n";
        CHECK(blkv_program_parse(t1, strlen(t1), "x.trace", &p, err, sizeof(err)) == -EINVAL);
        CHECK(strcmp(err, "x.trace:2: 'size' after the first op") == 0);

        static const char t2[] = "read 0 512\nread 0\0 512\n";
        CHECK(blkv_program_parse(t2, sizeof(t2) - 1, "n.trace", &p, err, sizeof(err)) == -EINVAL);
        CHECK(strncmp(err, "n.trace:2: ", 11) == 0 && strstr(err, "NUL"));

        char *big = malloc(10000);
        REQUIRE(big);
        memset(big, 'a', 10000);
        memcpy(big, "# ", 2);
        CHECK(blkv_program_parse(big, 10000, "l.trace", &p, err, sizeof(err)) == -EINVAL);
        CHECK(strncmp(err, "l.trace:1: line too long", 24) == 0);
        /* exactly 4096 bytes is fine, 4097 is not */
        big[4096] = '\n';
        CHECK(blkv_program_parse(big, 4097, "l.trace", &p, err, sizeof(err)) == 0);
        big[4096] = 'a';
        big[4097] = '\n';
        CHECK(blkv_program_parse(big, 4098, "l.trace", &p, err, sizeof(err)) == -EINVAL);
        free(big);

        char small[12];
        CHECK(blkv_program_parse("bogus\n", 6, "s.trace", &p, small, sizeof(small)) == -EINVAL);
        CHECK(strcmp(small, "s.trace:1: ") == 0);
        CHECK(blkv_program_parse("bogus\n", 6, "s.trace", &p, NULL, 0) == -EINVAL);
        CHECK(blkv_program_parse("bogus\n", 6, "s.trace", &p, small, 1) == -EINVAL);
        CHECK(small[0] == 0);
    }

    /* after an error the program is empty again */
    {
        static const char t[] = "size 1M\ndriver raw\nread 0 512\nbogus\n";
        CHECK(blkv_program_parse(t, strlen(t), "t.trace", &p, err, sizeof(err)) == -EINVAL);
        CHECK(p.nops == 0 && p.cfg.size == 64 * MiB && p.cfg.driver == NULL);
    }
    blkv_program_free(&p);
}

/* Random text: never crashes, and what parses round-trips. */
static void test_text_fuzz(void)
{
    static const char *const words[] = {
        "read",      "write",
        "wzero",     "discard",
        "flush",     "cancel",
        "wait",      "step",
        "drain",     "reopen",
        "check",     "size",
        "grain",     "qd",
        "atomic",    "sched",
        "seed",      "init",
        "serialize", "lower",
        "driver",    "blkv-trace",
        "fua",       "unmap",
        "fail",      "EIO",
        "#0",        "#1",
        "0",         "1",
        "512",       "4K",
        "64K",       "8M",
        "8T",        "#",
        "# c",       "on",
        "off",       "image",
        "pattern",   "zero",
        "random",    "lifo",
        "0x200",     "18446744073709551615",
        "\t",        "\r",
    };
    struct t_rng r;
    struct blkv_program p;
    char text[2048], err[256];
    unsigned parsed = 0, bad = 0;

    t_rng_seed(&r, 99);
    blkv_program_init(&p);
    for (int k = 0; k < 20000; k++) {
        size_t n = 0;
        unsigned nwords = (unsigned)t_rng_below(&r, 40);
        for (unsigned i = 0; i < nwords && n < sizeof(text) - 64; i++) {
            const char *w = words[t_rng_below(&r, ARRAY_SIZE(words))];
            size_t l = strlen(w);
            memcpy(text + n, w, l);
            n += l;
            text[n++] = t_rng_below(&r, 3) ? ' ' : '\n';
            if (t_rng_below(&r, 50) == 0)
                text[n++] = (char)t_rng_next(&r);
        }
        if (blkv_program_parse(text, n, "f.trace", &p, err, sizeof(err)) == 0) {
            parsed++;
            if (!program_valid(&p, false) || !text_roundtrip(&p))
                bad++;
        } else if (strncmp(err, "f.trace:", 8) != 0) {
            bad++;
        }
    }
    printf("  %u of 20000 random texts parsed\n", parsed);
    CHECK(bad == 0);
    CHECK(parsed > 100);
    blkv_program_free(&p);
}

static void test_text_max_ops(void)
{
    size_t n = (size_t)BLKV_PROGRAM_MAX_OPS + 1, len = n * 6;
    char *t = malloc(len), err[256];
    struct blkv_program p;

    REQUIRE(t);
    for (size_t i = 0; i < n; i++)
        memcpy(t + i * 6, "flush\n", 6);
    blkv_program_init(&p);
    CHECK(blkv_program_parse(t, len - 6, "m.trace", &p, err, sizeof(err)) == 0);
    CHECK(p.nops == BLKV_PROGRAM_MAX_OPS);
    CHECK(blkv_program_parse(t, len, "m.trace", &p, err, sizeof(err)) == -EINVAL);
    CHECK(strncmp(err, "m.trace:1048577: too many ops", 29) == 0);
    blkv_program_free(&p);
    free(t);
}

/* Where the decoder puts requests: rough fractions, loose bounds. */
static void test_bias(void)
{
    enum { N = 4000, LEN = 1024 };
    struct t_rng r;
    uint8_t buf[LEN];
    struct blkv_program p;
    uint64_t ranged = 0, grain_aligned = 0, overlap = 0, cross = 0, unaligned = 0, tiny = 0;
    uint64_t sector_len = 0, fua = 0, unmap = 0, faults = 0, steps = 0, cancels = 0, ops = 0;
    uint64_t counts[BLKV_P__COUNT] = {0};

    t_rng_seed(&r, 12345);
    blkv_program_init(&p);
    for (int k = 0; k < N; k++) {
        uint64_t ro[16], rl[16];
        unsigned nr = 0, head = 0;
        for (size_t i = 0; i < LEN; i++)
            buf[i] = (uint8_t)t_rng_next(&r);
        REQUIRE(blkv_program_decode(buf, LEN, &p) == 0);
        ops += p.nops;
        for (size_t i = 0; i < p.nops; i++) {
            const struct blkv_pop *op = &p.ops[i];
            counts[op->code]++;
            if (op->code == BLKV_P_STEP) {
                steps++;
                faults += op->err != 0;
            }
            cancels += op->code == BLKV_P_CANCEL;
            if (op->code > BLKV_P_DISCARD)
                continue;
            ranged++;
            grain_aligned += op->offset % p.cfg.grain == 0;
            unaligned += op->offset % 512 != 0;
            cross += op->offset + op->len > p.cfg.size;
            tiny += op->len < 512;
            sector_len += op->len % 512 == 0 && op->len <= 8192;
            fua += (op->flags & BLKV_P_FUA) != 0;
            unmap += (op->flags & BLKV_P_UNMAP) != 0;
            for (unsigned j = 0; j < nr; j++) {
                if (op->offset < ro[j] + rl[j] && ro[j] < op->offset + op->len) {
                    overlap++;
                    break;
                }
            }
            ro[head] = op->offset, rl[head] = op->len;
            head = (head + 1) % 16;
            if (nr < 16)
                nr++;
        }
    }
    printf("  %" PRIu64 " ops (%.1f per input byte), %" PRIu64 " ranged\n", ops,
           (double)ops / ((double)N * LEN), ranged);
    printf("  ops: ");
    for (unsigned c = 0; c < BLKV_P__COUNT; c++)
        printf("%s %.1f%% ", blkv_opcode_name(c), 100.0 * (double)counts[c] / (double)ops);
    printf("\n");
#define PCT(x) (100.0 * (double)(x) / (double)ranged)
    printf("  ranged: grain-aligned %.1f%%, overlapping the last 16 %.1f%%, crossing the end "
           "%.1f%%, unaligned %.1f%%, shorter than 512 %.1f%%, 1..16 sectors %.1f%%\n",
           PCT(grain_aligned), PCT(overlap), PCT(cross), PCT(unaligned), PCT(tiny),
           PCT(sector_len));
    printf("  fua %" PRIu64 ", unmap %" PRIu64 ", steps with a fault %.1f%%, cancels %" PRIu64 "\n",
           fua, unmap, 100.0 * (double)faults / (double)steps, cancels);
    CHECK(PCT(grain_aligned) > 20 && PCT(grain_aligned) < 90);
    CHECK(PCT(overlap) > 10);
    CHECK(PCT(cross) > 0.5 && PCT(cross) < 15);
    CHECK(PCT(unaligned) > 2 && PCT(unaligned) < 40);
    CHECK(PCT(tiny) > 1 && PCT(tiny) < 30);
    CHECK(PCT(sector_len) > 20);
    CHECK(fua > 0 && unmap > 0 && cancels > 0);
    CHECK(faults > 0 && faults < steps / 4);
    CHECK(counts[BLKV_P_READ] > counts[BLKV_P_FLUSH] &&
          counts[BLKV_P_WRITE] > counts[BLKV_P_WZERO]);
    CHECK(counts[BLKV_P_REOPEN] > 0 && counts[BLKV_P_CHECK] > 0 && counts[BLKV_P_DRAIN] > 0);
    CHECK(counts[BLKV_P_REOPEN] < counts[BLKV_P_CANCEL]);
#undef PCT
    blkv_program_free(&p);
}

int main(void)
{
    RUN(test_defaults);
    RUN(test_names);
    RUN(test_op_table);
    RUN(test_decode_total);
    RUN(test_prefixes);
    RUN(test_extremes);
    RUN(test_text_hand);
    RUN(test_text_or_binary);
    RUN(test_text_errors);
    RUN(test_text_fuzz);
    RUN(test_text_max_ops);
    RUN(test_bias);
    T_EXIT();
}
