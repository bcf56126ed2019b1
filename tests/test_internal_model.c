/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_model.c - the raw model (oracle): each rule with its accepted and
 * rejected sides, the interval map's memory behaviour, and a randomized
 * cross-check against a reference model that applies the rules literally,
 * byte by byte, with full candidate lists.
 */
#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include "model/model.h"
#include "model/pattern.h"
#include "runtime/bufpool.h"
#include "runtime/store.h"
#include "test.h"
#include "util/util.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define BUF_MAX (1u << 20)

static uint8_t image[65536]; /* initial image for BLKV_SRC_IMAGE models */
static uint8_t buf[BUF_MAX], buf2[BUF_MAX];

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Uniform in [0, n), n > 0. */
static uint64_t below(uint64_t n)
{
    return rnd() % n;
}

static void image_read(void *opaque, void *dst, uint64_t len, uint64_t off)
{
    const uint8_t *img = opaque;
    for (uint64_t i = 0; i < len; i++)
        ((uint8_t *)dst)[i] = off + i < sizeof(image) ? img[off + i] : 0;
}

/* ---- a small driver for scenarios ------------------------------------------ */

struct tc {
    struct blkv_model *m;
    uint64_t now;
    uint64_t next_req;
    struct blkv_mismatch mm; /* of the last rejected read */
};

static void tc_init2(struct tc *c, uint64_t size, unsigned atomic, enum blkv_src_kind init,
                     bool crash)
{
    struct blkv_model_config cfg = {.size = size, .atomic = atomic, .initial = init,
                                    .crash = crash};
    if (init == BLKV_SRC_IMAGE) {
        cfg.image_read = image_read;
        cfg.image_opaque = image;
    }
    memset(c, 0, sizeof(*c));
    c->m = blkv_model_new(&cfg);
    REQUIRE(c->m);
    c->next_req = 1000;
}

static void tc_init(struct tc *c, uint64_t size, unsigned atomic, enum blkv_src_kind init)
{
    tc_init2(c, size, atomic, init, false);
}

static void tc_free(struct tc *c)
{
    blkv_model_free(c->m);
    c->m = NULL;
}

static uint64_t tick(struct tc *c)
{
    return ++c->now;
}

static void wsub(struct tc *c, uint32_t w, enum blkv_src_kind kind, uint64_t off, uint64_t len)
{
    blkv_model_submit(c->m, w, kind, off, len, tick(c));
}

static void wdone(struct tc *c, uint32_t w)
{
    blkv_model_complete(c->m, w, true, true, tick(c));
}

static void wfail(struct tc *c, uint32_t w)
{
    blkv_model_complete(c->m, w, false, true, tick(c));
}

/* Submit and complete successfully. */
static void wfull(struct tc *c, uint32_t w, enum blkv_src_kind kind, uint64_t off, uint64_t len)
{
    wsub(c, w, kind, off, len);
    wdone(c, w);
}

static uint64_t rstart(struct tc *c)
{
    uint64_t s = tick(c);
    blkv_model_read_start(c->m, s);
    return s;
}

/* Complete the read submitted at s with data d; a rejected read is then
 * abandoned so the scenario can go on (its mismatch is in c->mm). */
static bool rend(struct tc *c, uint64_t s, uint64_t off, uint64_t len, const void *d)
{
    uint64_t t = tick(c);
    if (blkv_model_read_check(c->m, c->next_req++, off, len, d, s, t, &c->mm))
        return true;
    blkv_model_read_abandon(c->m, s);
    return false;
}

/* A read submitted and completed now. */
static bool rread(struct tc *c, uint64_t off, uint64_t len, const void *d)
{
    return rend(c, rstart(c), off, len, d);
}

/* Fill dst with the data of source src (of its kind) at [off, off+len). */
static void sfill(struct tc *c, void *dst, uint32_t src, uint64_t off, uint64_t len)
{
    struct blkv_src_info si;
    REQUIRE(blkv_model_source(c->m, src, &si));
    blkv_model_source_bytes(c->m, src, si.kind, dst, off, len);
}

/* ---- initial content ---------------------------------------------------------- */

static void test_fresh_zeroes(void)
{
    struct tc c;
    tc_init(&c, 1 << 20, 1, BLKV_SRC_ZEROES);
    memset(buf, 0, 8192);
    CHECK(rread(&c, 4096, 8192, buf));
    buf[100] = 1, buf[101] = 2, buf[102] = 3;
    CHECK(!rread(&c, 4096, 8192, buf));
    CHECK(c.mm.offset == 4096 + 100 && c.mm.len == 3 && !c.mm.torn);
    /* the model is unchanged by the rejected read */
    buf[100] = buf[101] = buf[102] = 0;
    CHECK(rread(&c, 4096, 8192, buf));
    /* the last byte of the device, and a read past it */
    CHECK(rread(&c, (1 << 20) - 1, 1, buf));
    CHECK(!rread(&c, (1 << 20) - 4, 8, buf));
    CHECK(c.mm.offset == 1 << 20 && c.mm.len == 4);
    CHECK(rread(&c, 5, 0, buf)); /* empty reads explain themselves */
    tc_free(&c);
}

static void test_fresh_pattern(void)
{
    struct tc c;
    tc_init(&c, 1 << 20, 1, BLKV_SRC_PATTERN);
    blkv_pattern_fill(buf, BLKV_SRC_INITIAL, 12345, 5000);
    CHECK(rread(&c, 12345, 5000, buf));
    /* a never-written source's data: rejected at the first byte */
    blkv_pattern_fill(buf, 7, 12345, 5000);
    CHECK(!rread(&c, 12345, 5000, buf));
    CHECK(c.mm.offset == 12345 && !c.mm.torn);
    /* zeros are not the initial pattern */
    memset(buf, 0, 64);
    CHECK(!rread(&c, 64, 64, buf));
    /* the whole read: the zero bytes the pattern has by chance do not end it */
    CHECK(c.mm.offset == 64 && c.mm.len == 64);
    /* misdirected: the right source's data for another offset */
    blkv_pattern_fill(buf, BLKV_SRC_INITIAL, 8192, 512);
    CHECK(!rread(&c, 4096, 512, buf));
    CHECK(c.mm.offset == 4096);
    tc_free(&c);
}

static void test_fresh_image(void)
{
    struct tc c;
    tc_init(&c, sizeof(image), 1, BLKV_SRC_IMAGE);
    memcpy(buf, image, sizeof(image));
    CHECK(rread(&c, 0, sizeof(image), buf));
    buf[40000] ^= 0x5a;
    CHECK(!rread(&c, 0, sizeof(image), buf));
    CHECK(c.mm.offset == 40000 && c.mm.len == 1);
    buf[40000] ^= 0x5a;
    CHECK(rread(&c, 39999, 3, buf + 39999));
    tc_free(&c);
}

/* ---- writes ------------------------------------------------------------------- */

static void test_stale_after_write(void)
{
    struct tc c;
    tc_init(&c, 1 << 20, 1, BLKV_SRC_PATTERN);
    wfull(&c, 2, BLKV_SRC_PATTERN, 4096, 4096);
    sfill(&c, buf, 1, 0, 16384);
    sfill(&c, buf + 4096, 2, 4096, 4096);
    CHECK(rread(&c, 0, 16384, buf));
    /* the old data where w2 wrote: stale */
    sfill(&c, buf, 1, 0, 16384);
    CHECK(!rread(&c, 0, 16384, buf));
    CHECK(c.mm.offset == 4096 && c.mm.len == 4096);
    /* the old data next to it is fine */
    CHECK(rread(&c, 0, 4096, buf));
    CHECK(rread(&c, 8192, 8192, buf + 8192));
    tc_free(&c);
}

/* The unexplained run goes on through bytes that match by chance, and ends
 * at a word's worth of explained bytes. */
static void test_run_through_chance_matches(void)
{
    struct tc c;
    tc_init(&c, 1 << 20, 1, BLKV_SRC_ZEROES);
    wfull(&c, 2, BLKV_SRC_PATTERN, 0, 4096);
    sfill(&c, buf, 2, 0, 4096);
    for (unsigned i = 1000; i < 1100; i++)
        buf[i] ^= 0x5a;
    buf[1050] ^= 0x5a;               /* one right byte amid garbage */
    for (unsigned i = 1060; i < 1067; i++)
        buf[i] ^= 0x5a;              /* seven in a row */
    CHECK(!rread(&c, 0, 4096, buf));
    CHECK(c.mm.offset == 1000 && c.mm.len == 100);
    /* eight right bytes in a row end it */
    sfill(&c, buf + 1040, 2, 1040, 8);
    CHECK(!rread(&c, 0, 4096, buf));
    CHECK(c.mm.offset == 1000 && c.mm.len == 40);
    /* a run reaching the end of the read */
    sfill(&c, buf, 2, 0, 4096);
    memset(buf + 4090, 0, 6);
    CHECK(!rread(&c, 0, 4096, buf));
    CHECK(c.mm.offset == 4090 && c.mm.len == 6);
    tc_free(&c);
}

/* w2 over [0, 8192) and w3 over [4096, 12288), both in flight together,
 * completing in the given order. */
static void overlap_setup(struct tc *c, bool w2_first)
{
    tc_init(c, 65536, 1, BLKV_SRC_ZEROES);
    wsub(c, 2, BLKV_SRC_PATTERN, 0, 8192);
    wsub(c, 3, BLKV_SRC_PATTERN, 4096, 8192);
    if (w2_first) {
        wdone(c, 2);
        wdone(c, 3);
    } else {
        wdone(c, 3);
        wdone(c, 2);
    }
}

static void test_overlapping_writes(void)
{
    for (int order = 0; order < 2; order++) {
        struct tc c;
        /* w2 everywhere in the overlap */
        overlap_setup(&c, order);
        sfill(&c, buf, 2, 0, 8192);
        sfill(&c, buf + 8192, 3, 8192, 4096);
        CHECK(rread(&c, 0, 12288, buf));
        tc_free(&c);
        /* w3 everywhere in the overlap */
        overlap_setup(&c, order);
        sfill(&c, buf, 2, 0, 4096);
        sfill(&c, buf + 4096, 3, 4096, 8192);
        CHECK(rread(&c, 0, 12288, buf));
        tc_free(&c);
        /* mixed per byte */
        overlap_setup(&c, order);
        sfill(&c, buf, 2, 0, 8192);
        sfill(&c, buf2, 3, 4096, 4096);
        for (int i = 0; i < 4096; i += 3)
            buf[4096 + i] = buf2[i];
        CHECK(rread(&c, 4096, 4096, buf + 4096));
        tc_free(&c);
        /* a third source, or the evicted zeros, in the overlap */
        overlap_setup(&c, order);
        blkv_pattern_fill(buf, 9, 4096, 4096);
        CHECK(!rread(&c, 4096, 4096, buf));
        CHECK(c.mm.offset == 4096);
        memset(buf, 0, 4096);
        CHECK(!rread(&c, 4096, 4096, buf));
        CHECK(c.mm.offset == 4096 && !c.mm.torn);
        tc_free(&c);
    }
}

static void test_read_during_write(void)
{
    struct tc c;
    uint64_t s;

    /* the write is in flight for the whole read */
    for (int v = 0; v < 3; v++) {
        tc_init(&c, 65536, 1, BLKV_SRC_ZEROES);
        wsub(&c, 2, BLKV_SRC_PATTERN, 0, 4096);
        s = rstart(&c);
        sfill(&c, buf, 2, 0, 4096);
        if (v == 0)
            memset(buf, 0, 4096); /* old */
        if (v == 2)
            memset(buf + 1000, 0, 1000); /* mixed */
        CHECK(rend(&c, s, 0, 4096, buf));
        tc_free(&c);
    }
    /* the write completes while the read is in flight: old data may still
     * come back to that read, not to a read submitted afterwards */
    tc_init(&c, 65536, 1, BLKV_SRC_ZEROES);
    s = rstart(&c);
    wfull(&c, 2, BLKV_SRC_PATTERN, 0, 4096);
    memset(buf, 0, 4096);
    CHECK(!rread(&c, 0, 4096, buf));
    CHECK(rend(&c, s, 0, 4096, buf));
    tc_free(&c);
}

static void test_flip_flop(void)
{
    struct tc c;
    uint64_t s1, s1b, s2;
    struct blkv_cand_info ci[8];
    size_t n;

    tc_init(&c, 65536, 1, BLKV_SRC_ZEROES);
    wfull(&c, 2, BLKV_SRC_PATTERN, 0, 4096);
    wsub(&c, 3, BLKV_SRC_PATTERN, 0, 4096);
    s1 = rstart(&c);
    s1b = rstart(&c);
    sfill(&c, buf, 3, 0, 4096);
    CHECK(rend(&c, s1, 0, 4096, buf)); /* r1 sees the newer write */
    /* w2 is now evicted by the read */
    n = blkv_model_candidates(c.m, 100, ci, 8);
    bool found = false;
    for (size_t i = 0; i < n && i < 8; i++)
        if (ci[i].src == 2) {
            found = true;
            CHECK(ci[i].evict_why == BLKV_EVICT_READ && ci[i].evicted_by == c.next_req - 1);
        }
    CHECK(found);
    /* r2, submitted after r1 completed, sees w2 again: flip-flop */
    s2 = rstart(&c);
    sfill(&c, buf2, 2, 0, 4096);
    CHECK(!rend(&c, s2, 0, 4096, buf2));
    CHECK(c.mm.offset == 0);
    /* r2 seeing w3 is fine */
    s2 = rstart(&c);
    CHECK(rend(&c, s2, 0, 4096, buf));
    /* r1', concurrent with r1, may still see w2 */
    CHECK(rend(&c, s1b, 0, 4096, buf2));
    tc_free(&c);
}

static void test_failed_write(void)
{
    struct tc c;

    /* a failed or cancelled write may or may not have landed, per byte */
    for (int v = 0; v < 3; v++) {
        tc_init(&c, 65536, 1, BLKV_SRC_PATTERN);
        wsub(&c, 2, BLKV_SRC_PATTERN, 0, 4096);
        wfail(&c, 2);
        sfill(&c, buf, v == 0 ? 1 : 2, 0, 4096);
        if (v == 2)
            for (int i = 0; i < 4096; i += 5)
                blkv_pattern_fill(buf + i, 1, i, 1);
        CHECK(rread(&c, 0, 4096, buf));
        tc_free(&c);
    }
    /* zombie: after a read saw the old data, the failed write's data may
     * not appear any more */
    tc_init(&c, 65536, 1, BLKV_SRC_PATTERN);
    wsub(&c, 2, BLKV_SRC_PATTERN, 0, 4096);
    wfail(&c, 2);
    sfill(&c, buf, 1, 0, 4096);
    CHECK(rread(&c, 0, 4096, buf));
    sfill(&c, buf2, 2, 0, 4096);
    CHECK(!rread(&c, 0, 4096, buf2));
    CHECK(c.mm.offset == 0);
    CHECK(rread(&c, 0, 4096, buf));
    tc_free(&c);
    /* nor after a write submitted after it failed has completed */
    tc_init(&c, 65536, 1, BLKV_SRC_PATTERN);
    wsub(&c, 2, BLKV_SRC_PATTERN, 0, 4096);
    wfail(&c, 2);
    wfull(&c, 3, BLKV_SRC_PATTERN, 0, 4096);
    sfill(&c, buf, 2, 0, 4096);
    CHECK(!rread(&c, 0, 4096, buf));
    sfill(&c, buf, 3, 0, 4096);
    CHECK(rread(&c, 0, 4096, buf));
    tc_free(&c);
    /* but a write that overlapped it in time does not settle it */
    tc_init(&c, 65536, 1, BLKV_SRC_PATTERN);
    wsub(&c, 2, BLKV_SRC_PATTERN, 0, 4096);
    wsub(&c, 3, BLKV_SRC_PATTERN, 0, 4096);
    wfail(&c, 2);
    wdone(&c, 3);
    sfill(&c, buf, 2, 0, 4096);
    CHECK(rread(&c, 0, 4096, buf));
    tc_free(&c);
}

static void test_eviction_needs_later_submit(void)
{
    struct tc c;

    /* w1 completes after w2 was submitted: both may be there */
    for (int v = 0; v < 2; v++) {
        tc_init(&c, 65536, 1, BLKV_SRC_ZEROES);
        wsub(&c, 2, BLKV_SRC_PATTERN, 0, 4096);
        wsub(&c, 3, BLKV_SRC_PATTERN, 0, 4096);
        wdone(&c, 2);
        wdone(&c, 3);
        sfill(&c, buf, v ? 3 : 2, 0, 4096);
        CHECK(rread(&c, 0, 4096, buf));
        tc_free(&c);
    }
    /* w1 completed before w2 was submitted: w2 overwrote it */
    tc_init(&c, 65536, 1, BLKV_SRC_ZEROES);
    wfull(&c, 2, BLKV_SRC_PATTERN, 0, 4096);
    wsub(&c, 3, BLKV_SRC_PATTERN, 0, 4096);
    sfill(&c, buf, 2, 0, 4096);
    CHECK(rread(&c, 0, 4096, buf)); /* w3 still in flight */
    wdone(&c, 3);
    CHECK(!rread(&c, 0, 4096, buf));
    sfill(&c, buf, 3, 0, 4096);
    CHECK(rread(&c, 0, 4096, buf));
    tc_free(&c);
}

/* ---- discard semantics ---------------------------------------------------------- */

static void test_discard_zeroes(void)
{
    struct tc c;
    tc_init(&c, 65536, 1, BLKV_SRC_ZEROES);
    wfull(&c, 2, BLKV_SRC_PATTERN, 0, 8192);
    wfull(&c, 3, BLKV_SRC_ZEROES, 0, 4096);
    sfill(&c, buf, 2, 0, 8192);
    CHECK(!rread(&c, 0, 8192, buf));
    CHECK(c.mm.offset == 0);
    memset(buf, 0, 4096);
    CHECK(rread(&c, 0, 8192, buf));
    tc_free(&c);
}

static void test_discard_zeroes_or_old(void)
{
    struct tc c;
    uint64_t first_nonzero = 0;

    for (int v = 0; v < 2; v++) {
        tc_init(&c, 65536, 1, BLKV_SRC_ZEROES);
        wfull(&c, 2, BLKV_SRC_PATTERN, 0, 4096);
        wsub(&c, 3, BLKV_SRC_ZEROES, 0, 4096);
        blkv_model_complete(c.m, 3, true, false, tick(&c));
        sfill(&c, buf, 2, 0, 4096);
        memset(buf2, 0, 4096);
        for (first_nonzero = 0; buf[first_nonzero] == 0; first_nonzero++)
            ;
        if (v == 0) {
            /* zeros seen: the old data may not come back */
            CHECK(rread(&c, 0, 4096, buf2));
            CHECK(rread(&c, 0, 4096, buf2));
            CHECK(!rread(&c, 0, 4096, buf));
            CHECK(c.mm.offset == first_nonzero);
        } else {
            /* old data seen: zeros may not come (except where the old data
             * has zero bytes) */
            CHECK(rread(&c, 0, 4096, buf));
            CHECK(rread(&c, 0, 4096, buf));
            CHECK(!rread(&c, 0, 4096, buf2));
            CHECK(c.mm.offset == first_nonzero);
        }
        tc_free(&c);
    }
}

static void test_discard_unspecified(void)
{
    struct tc c;
    tc_init(&c, 65536, 1, BLKV_SRC_ZEROES);
    wfull(&c, 2, BLKV_SRC_PATTERN, 0, 4096);
    wfull(&c, 3, BLKV_SRC_ANY, 0, 4096);
    for (int i = 0; i < 4096; i++)
        buf[i] = (uint8_t)rnd();
    CHECK(rread(&c, 0, 4096, buf));
    sfill(&c, buf2, 2, 0, 4096);
    CHECK(rread(&c, 0, 4096, buf2)); /* never settled by an observation */
    memset(buf2, 0, 4096);
    CHECK(rread(&c, 0, 4096, buf2));
    /* until a later write completes */
    wfull(&c, 4, BLKV_SRC_PATTERN, 0, 2048);
    sfill(&c, buf2, 4, 0, 1);
    buf[0] = buf2[0] ^ 0x80;
    CHECK(!rread(&c, 0, 4096, buf));
    CHECK(c.mm.offset == 0);
    sfill(&c, buf, 4, 0, 2048);
    CHECK(rread(&c, 0, 4096, buf));
    tc_free(&c);
}

static void test_discard_ignored(void)
{
    struct tc c;
    tc_init(&c, 65536, 1, BLKV_SRC_ZEROES);
    wfull(&c, 2, BLKV_SRC_PATTERN, 0, 4096);
    /* an ignored discard adds nothing: the old data must stay */
    sfill(&c, buf, 2, 0, 4096);
    CHECK(rread(&c, 0, 4096, buf));
    memset(buf2, 0, 4096);
    CHECK(!rread(&c, 0, 4096, buf2));
    tc_free(&c);
}

/* ---- atomicity ---------------------------------------------------------------- */

static void atomic_setup(struct tc *c, unsigned atomic)
{
    tc_init(c, 65536, atomic, BLKV_SRC_ZEROES);
    wsub(c, 2, BLKV_SRC_PATTERN, 0, 4096);
    wsub(c, 3, BLKV_SRC_PATTERN, 0, 4096);
}

static void test_atomicity(void)
{
    struct tc c;

    /* two writes in flight; a unit mixing them is torn */
    atomic_setup(&c, 512);
    sfill(&c, buf, 2, 0, 4096);
    sfill(&c, buf2, 3, 0, 4096);
    memcpy(buf + 256, buf2 + 256, 2048 - 256);
    CHECK(!rread(&c, 0, 4096, buf));
    CHECK(c.mm.torn && c.mm.offset == 0 && c.mm.len == 512);
    /* the same read with byte atomicity is fine */
    tc_free(&c);
    atomic_setup(&c, 1);
    CHECK(rread(&c, 0, 4096, buf));
    tc_free(&c);
    /* mixing at unit boundaries is fine */
    atomic_setup(&c, 512);
    sfill(&c, buf, 2, 0, 4096);
    memcpy(buf + 1024, buf2 + 1024, 1024);
    CHECK(rread(&c, 0, 4096, buf));
    tc_free(&c);
    /* two torn units in a row from offset 1536 (units 3 and 4) */
    atomic_setup(&c, 512);
    wdone(&c, 2);
    wdone(&c, 3);
    sfill(&c, buf, 2, 0, 4096);
    memcpy(buf + 1800, buf2 + 1800, 2200 - 1800);
    CHECK(!rread(&c, 0, 4096, buf));
    CHECK(c.mm.torn && c.mm.offset == 1536 && c.mm.len == 1024);
    /* a read clipped inside units: only its own bytes count */
    CHECK(rread(&c, 1000, 800, buf + 1000));
    CHECK(!rread(&c, 1000, 1201, buf + 1000));
    CHECK(c.mm.torn && c.mm.offset == 1536 && c.mm.len == 2201 - 1536);
    tc_free(&c);
    /* the initial content beside a write that covers part of a unit is
     * what the disk holds: not torn */
    tc_init(&c, 65536, 4096, BLKV_SRC_PATTERN);
    wfull(&c, 2, BLKV_SRC_PATTERN, 512, 1024);
    sfill(&c, buf, 1, 0, 4096);
    sfill(&c, buf + 512, 2, 512, 1024);
    CHECK(rread(&c, 0, 4096, buf));
    /* but half of a write that covered a whole unit is torn */
    wsub(&c, 3, BLKV_SRC_PATTERN, 0, 4096);
    sfill(&c, buf2, 3, 0, 2048);
    memcpy(buf2 + 2048, buf + 2048, 2048);
    CHECK(!rread(&c, 0, 4096, buf2));
    CHECK(c.mm.torn && c.mm.offset == 0 && c.mm.len == 4096);
    sfill(&c, buf2, 3, 0, 4096);
    CHECK(rread(&c, 0, 4096, buf2));
    tc_free(&c);
    /* a smaller write landed over a bigger one in flight: the unit shows
     * the bigger write with the smaller one on top */
    tc_init(&c, 65536, 4096, BLKV_SRC_ZEROES);
    wsub(&c, 2, BLKV_SRC_PATTERN, 0, 4096);
    wsub(&c, 3, BLKV_SRC_PATTERN, 1024, 512);
    sfill(&c, buf, 2, 0, 4096);
    sfill(&c, buf + 1024, 3, 1024, 512);
    CHECK(rread(&c, 0, 4096, buf));
    tc_free(&c);
    /* the smaller one over the old zeros, the bigger one lost in part: torn */
    tc_init(&c, 65536, 4096, BLKV_SRC_ZEROES);
    wsub(&c, 2, BLKV_SRC_PATTERN, 0, 4096);
    wsub(&c, 3, BLKV_SRC_PATTERN, 1024, 512);
    memset(buf, 0, 4096);
    sfill(&c, buf + 1024, 3, 1024, 512);
    sfill(&c, buf + 2048, 2, 2048, 2048);
    CHECK(!rread(&c, 0, 4096, buf));
    CHECK(c.mm.torn);
    tc_free(&c);
}

static void test_unaligned(void)
{
    struct tc c;
    tc_init(&c, 65536, 1, BLKV_SRC_ZEROES);
    wfull(&c, 2, BLKV_SRC_PATTERN, 3, 1);
    wfull(&c, 3, BLKV_SRC_PATTERN, 5, 13);
    wfull(&c, 4, BLKV_SRC_ZEROES, 7, 2);
    memset(buf, 0, 64);
    sfill(&c, buf + 3, 2, 3, 1);
    sfill(&c, buf + 5, 3, 5, 13);
    memset(buf + 7, 0, 2);
    CHECK(rread(&c, 0, 64, buf));
    for (uint64_t o = 0; o < 24; o++)
        CHECK(rread(&c, o, 1, buf + o));
    CHECK(rread(&c, 3, 3, buf + 3));
    buf2[0] = buf[9] ^ 1;
    CHECK(!rread(&c, 9, 1, buf2));
    CHECK(c.mm.offset == 9 && c.mm.len == 1);
    buf2[0] = 0;
    CHECK(!rread(&c, 3, 1, buf2) || buf[3] == 0);
    tc_free(&c);
}

/* A rejected read leaves the model as it was, for the report. */
static void test_reject_leaves_model(void)
{
    struct tc c;
    struct blkv_cand_info a[8], b[8];
    size_t na, nb;
    uint64_t s;

    tc_init(&c, 65536, 1, BLKV_SRC_ZEROES);
    wsub(&c, 2, BLKV_SRC_PATTERN, 0, 4096);
    wsub(&c, 3, BLKV_SRC_PATTERN, 0, 4096);
    wdone(&c, 2);
    wdone(&c, 3);
    na = blkv_model_candidates(c.m, 10, a, 8);
    s = rstart(&c);
    sfill(&c, buf, 2, 0, 4096);
    buf[4000] ^= 0xff; /* w2's data but one byte garbage: w3 is evicted by
                          the observation only if the read is accepted */
    CHECK(!blkv_model_read_check(c.m, 77, 0, 4096, buf, s, tick(&c), &c.mm));
    nb = blkv_model_candidates(c.m, 10, b, 8);
    CHECK(na == nb && na <= 8);
    for (size_t i = 0; i < na && i < nb && i < 8; i++)
        CHECK(a[i].src == b[i].src && a[i].evicted_at == b[i].evicted_at &&
              a[i].evict_why == b[i].evict_why && a[i].ext_start == b[i].ext_start &&
              a[i].ext_end == b[i].ext_end);
    CHECK(c.mm.offset == 4000 && c.mm.len == 1);
    sfill(&c, buf, 3, 0, 4096);
    CHECK(rend(&c, s, 0, 4096, buf));
    tc_free(&c);
}

/* ---- queries ------------------------------------------------------------------ */

static void test_queries(void)
{
    struct tc c;
    struct blkv_cand_info ci[8];
    struct blkv_src_info si;
    size_t n;
    struct blkv_model_config bad = {.size = 4096, .atomic = 3, .initial = BLKV_SRC_ZEROES};

    /* invalid configurations */
    CHECK(!blkv_model_new(&bad));
    bad.atomic = 0; /* means 1 */
    blkv_model_free(blkv_model_new(&bad));
    bad.initial = BLKV_SRC_IMAGE; /* without image_read */
    CHECK(!blkv_model_new(&bad));

    tc_init(&c, 1 << 20, 1, BLKV_SRC_PATTERN);
    n = blkv_model_candidates(c.m, 5000, ci, 8);
    CHECK(n == 1 && ci[0].src == 1 && ci[0].kind == BLKV_SRC_PATTERN &&
          ci[0].status == BLKV_SRC_DONE && ci[0].evicted_at == BLKV_TIME_NEVER &&
          ci[0].ext_start == 0 && ci[0].ext_end == 1 << 20);
    CHECK(blkv_model_source(c.m, 1, &si) && si.status == BLKV_SRC_DONE && si.completed == 0);
    CHECK(!blkv_model_source(c.m, 2, &si));
    wsub(&c, 2, BLKV_SRC_ZEROES, 4096, 4096);
    CHECK(blkv_model_source(c.m, 2, &si) && si.status == BLKV_SRC_INFLIGHT &&
          si.completed == BLKV_TIME_NEVER && si.off == 4096 && si.len == 4096 &&
          si.kind == BLKV_SRC_ZEROES);
    wdone(&c, 2);
    CHECK(blkv_model_source(c.m, 2, &si) && si.status == BLKV_SRC_DONE && si.completed == c.now);
    n = blkv_model_candidates(c.m, 5000, ci, 8);
    CHECK(n == 2 && ci[0].ext_start == 4096 && ci[0].ext_end == 8192);
    CHECK(ci[0].src == 1 && ci[0].evicted_at == c.now && ci[0].evict_why == BLKV_EVICT_WRITE &&
          ci[0].evicted_by == 2);
    CHECK(ci[1].src == 2 && ci[1].evicted_at == BLKV_TIME_NEVER);
    CHECK(blkv_model_candidates(c.m, 5000, ci, 1) == 2);
    n = blkv_model_candidates(c.m, 8192, ci, 8);
    CHECK(n == 1 && ci[0].ext_start == 8192 && ci[0].ext_end == 1 << 20);
    CHECK(blkv_model_candidates(c.m, 1 << 20, ci, 8) == 0);
    /* source bytes of each kind */
    blkv_model_source_bytes(c.m, 5, BLKV_SRC_ANY, buf, 0, 16);
    CHECK(buf[0] == 0 && buf[15] == 0);
    blkv_model_source_bytes(c.m, 5, BLKV_SRC_PATTERN, buf, 3, 16);
    blkv_pattern_fill(buf2, 5, 3, 16);
    CHECK(memcmp(buf, buf2, 16) == 0);
    tc_free(&c);
}

/* A huge device: nothing is allocated for untouched space, offsets near
 * the end work. */
static void test_huge_device(void)
{
    struct tc c;
    struct blkv_model_stats st;
    uint64_t size = UINT64_C(1) << 43, o = size - 8192 - 3;

    tc_init(&c, size, 512, BLKV_SRC_ZEROES);
    wfull(&c, 2, BLKV_SRC_PATTERN, o, 8192);
    memset(buf, 0, 3);
    sfill(&c, buf + 3, 2, o, 8192);
    memset(buf + 8195, 0, 16);
    CHECK(rread(&c, o - 3, 8198, buf));
    CHECK(!rread(&c, o - 3, 8200, buf));
    CHECK(c.mm.offset == size && c.mm.len == 2);
    blkv_model_stats(c.m, &st);
    CHECK(st.extents == 3);
    tc_free(&c);
}

/* ---- memory ------------------------------------------------------------------- */

static void test_memory_scattered(void)
{
    struct tc c;
    struct blkv_model_stats st;
    const uint64_t slots = 1u << 18, nw = 100000;
    uint32_t *perm = malloc(slots * sizeof(*perm));

    REQUIRE(perm);
    for (uint32_t i = 0; i < slots; i++)
        perm[i] = i;
    for (uint32_t i = slots - 1; i > 0; i--) {
        uint32_t j = (uint32_t)below(i + 1), x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    tc_init(&c, slots * 16384, 1, BLKV_SRC_ZEROES);
    for (uint32_t i = 0; i < nw; i++)
        wfull(&c, 2 + i, BLKV_SRC_PATTERN, (uint64_t)perm[i] * 16384 + 512, 4096 + 512 * (i % 8));
    blkv_model_stats(c.m, &st);
    printf("     100k scattered writes: %zu extents, %zu candidates, %.1f bytes/extent\n",
           st.extents, st.candidates, (double)st.bytes / (double)st.extents);
    CHECK(st.extents <= 2 * nw + 1);
    CHECK(st.bytes / st.extents < 200);
    /* spot checks */
    for (uint32_t i = 0; i < nw; i += 9973) {
        uint64_t off = (uint64_t)perm[i] * 16384 + 512, len = 4096 + 512 * (i % 8);
        memset(buf, 0, 512);
        sfill(&c, buf + 512, 2 + i, off, len);
        memset(buf + 512 + len, 0, 512);
        CHECK(rread(&c, off - 512, len + 1024, buf));
    }
    tc_free(&c);
    free(perm);
}

static void test_memory_same_range(void)
{
    struct tc c;
    struct blkv_model_stats st;

    tc_init(&c, 1 << 20, 1, BLKV_SRC_ZEROES);
    for (uint32_t i = 0; i < 100000; i++) {
        /* alternate pairs that overlap in time with lone writes */
        if (i % 4 == 0) {
            wsub(&c, 2 + i, BLKV_SRC_PATTERN, 4096, 8192);
            wsub(&c, 3 + i, BLKV_SRC_PATTERN, 4096, 8192);
            wdone(&c, 2 + i);
            wdone(&c, 3 + i);
            i++;
        } else {
            wfull(&c, 2 + i, BLKV_SRC_PATTERN, 4096, 8192);
        }
    }
    blkv_model_stats(c.m, &st);
    CHECK(st.extents == 3);
    CHECK(st.candidates <= 3 + 2 + 2);
    sfill(&c, buf, 100001, 4096, 8192);
    CHECK(rread(&c, 4096, 8192, buf));
    tc_free(&c);

    /* a long read in flight keeps everything it may see, and only that */
    tc_init(&c, 1 << 20, 1, BLKV_SRC_ZEROES);
    uint64_t s = rstart(&c);
    for (uint32_t i = 0; i < 5000; i++)
        wfull(&c, 2 + i, BLKV_SRC_PATTERN, 0, 4096);
    blkv_model_stats(c.m, &st);
    CHECK(st.candidates >= 5001);
    sfill(&c, buf, 2 + 2500, 0, 4096);
    CHECK(rend(&c, s, 0, 4096, buf));
    wfull(&c, 6000, BLKV_SRC_PATTERN, 0, 4096);
    blkv_model_stats(c.m, &st);
    CHECK(st.candidates <= 2 + 3);
    /* and when no write touches the range again, a sweep cleans up */
    s = rstart(&c);
    for (uint32_t i = 0; i < 20000; i++)
        wfull(&c, 7000 + i, BLKV_SRC_PATTERN, 65536, 4096);
    blkv_model_read_abandon(c.m, s);
    for (uint32_t i = 0; i < 20000; i++)
        wfull(&c, 30000 + i, BLKV_SRC_PATTERN, 131072 + 8192 * (i % 8), 4096);
    blkv_model_stats(c.m, &st);
    CHECK(st.candidates < 100);
    tc_free(&c);
}

/* ---- the reference model ------------------------------------------------------ */

#define REF_MAX_SRC 4096
#define REF_MAX_READS 8

struct ref_cand {
    uint32_t src;
    uint64_t ev; /* evicted at, or BLKV_TIME_NEVER */
};

struct ref_byte {
    struct ref_cand *c;
    uint32_t n, cap;
};

struct ref_src {
    enum blkv_src_kind kind;
    enum blkv_src_status status;
    uint64_t sub, comp, off, len;
};

struct ref {
    uint64_t size;
    unsigned atomic;
    struct ref_byte *b;
    struct ref_src src[REF_MAX_SRC];
};

static void ref_init(struct ref *r, uint64_t size, unsigned atomic, enum blkv_src_kind init)
{
    r->size = size;
    r->atomic = atomic;
    r->b = calloc(size, sizeof(*r->b));
    REQUIRE(r->b);
    memset(r->src, 0, sizeof(r->src));
    r->src[1] = (struct ref_src){init, BLKV_SRC_DONE, 0, 0, 0, size};
    for (uint64_t x = 0; x < size; x++) {
        r->b[x].c = malloc(8 * sizeof(struct ref_cand));
        REQUIRE(r->b[x].c);
        r->b[x].cap = 8;
        r->b[x].n = 1;
        r->b[x].c[0] = (struct ref_cand){1, BLKV_TIME_NEVER};
    }
}

static void ref_free(struct ref *r)
{
    for (uint64_t x = 0; x < r->size; x++)
        free(r->b[x].c);
    free(r->b);
}

/* The byte source src has at x, or -1 for a wildcard. */
static int ref_val(const struct ref *r, uint32_t src, uint64_t x)
{
    uint8_t v;
    switch (r->src[src].kind) {
    case BLKV_SRC_PATTERN:
        blkv_pattern_fill(&v, src, x, 1);
        return v;
    case BLKV_SRC_IMAGE:
        return image[x];
    case BLKV_SRC_ZEROES:
        return 0;
    case BLKV_SRC_ANY:
        break;
    }
    return -1;
}

static bool ref_match(const struct ref *r, uint32_t src, uint64_t x, uint8_t v)
{
    int e = ref_val(r, src, x);
    return e < 0 || e == v;
}

static void ref_submit(struct ref *r, uint32_t w, enum blkv_src_kind kind, uint64_t off,
                       uint64_t len, uint64_t t)
{
    r->src[w] = (struct ref_src){kind, BLKV_SRC_INFLIGHT, t, BLKV_TIME_NEVER, off, len};
    for (uint64_t x = off; x < off + len; x++) {
        struct ref_byte *b = &r->b[x];
        if (b->n == b->cap) {
            b->cap *= 2;
            b->c = realloc(b->c, b->cap * sizeof(*b->c));
            REQUIRE(b->c);
        }
        b->c[b->n++] = (struct ref_cand){w, BLKV_TIME_NEVER};
    }
}

static void ref_complete(struct ref *r, uint32_t w, bool ok, bool evicts, uint64_t t)
{
    struct ref_src *ws = &r->src[w];
    ws->status = ok ? BLKV_SRC_DONE : BLKV_SRC_FAILED;
    ws->comp = t;
    if (!ok || !evicts)
        return;
    for (uint64_t x = ws->off; x < ws->off + ws->len; x++)
        for (uint32_t i = 0; i < r->b[x].n; i++) {
            struct ref_cand *c = &r->b[x].c[i];
            const struct ref_src *cs = &r->src[c->src];
            if (c->src != w && c->ev == BLKV_TIME_NEVER && cs->status != BLKV_SRC_INFLIGHT &&
                cs->comp < ws->sub)
                c->ev = t;
        }
}

static bool ref_explained(const struct ref *r, uint64_t x, uint8_t v, uint64_t s)
{
    for (uint32_t i = 0; i < r->b[x].n; i++)
        if (r->b[x].c[i].ev > s && ref_match(r, r->b[x].c[i].src, x, v))
            return true;
    return false;
}

/* Source src at x: visible to s and matching v. */
static bool ref_src_ok(const struct ref *r, uint32_t src, uint64_t x, uint8_t v, uint64_t s)
{
    for (uint32_t i = 0; i < r->b[x].n; i++)
        if (r->b[x].c[i].src == src)
            return r->b[x].c[i].ev > s && ref_match(r, src, x, v);
    return false;
}

/* The atomicity rule, literally: peel off sources one by one. */
static bool ref_unit_ok(const struct ref *r, uint64_t u0, uint64_t u1, const uint8_t *d,
                        uint64_t off, uint64_t s)
{
    static bool left[1 << 16];
    static uint32_t srcs[REF_MAX_SRC];
    uint32_t ns = 0;
    uint64_t nleft = u1 - u0;
    bool progress = true;

    for (uint64_t x = u0; x < u1; x++) {
        left[x - u0] = true;
        for (uint32_t i = 0; i < r->b[x].n; i++) {
            uint32_t src = r->b[x].c[i].src, j;
            if (r->b[x].c[i].ev <= s)
                continue;
            for (j = 0; j < ns && srcs[j] != src; j++)
                ;
            if (j == ns)
                srcs[ns++] = src;
        }
    }
    while (nleft && progress) {
        progress = false;
        for (uint32_t j = 0; j < ns; j++) {
            const struct ref_src *rs = &r->src[srcs[j]];
            bool ok = true, any = false;
            if (!srcs[j])
                continue;
            for (uint64_t x = u0; x < u1 && ok; x++) {
                if (!left[x - u0] || x < rs->off || x >= rs->off + rs->len)
                    continue;
                any = true;
                ok = ref_src_ok(r, srcs[j], x, d[x - off], s);
            }
            if (!ok || !any)
                continue;
            for (uint64_t x = u0; x < u1; x++)
                if (left[x - u0] && x >= rs->off && x < rs->off + rs->len) {
                    left[x - u0] = false;
                    nleft--;
                }
            srcs[j] = 0;
            progress = true;
        }
    }
    return nleft == 0;
}

static bool ref_check(const struct ref *r, uint64_t off, uint64_t len, const uint8_t *d,
                      uint64_t s, struct blkv_mismatch *mm)
{
    uint64_t end = off + len, A = r->atomic;

    for (uint64_t x = off; x < end; x++) {
        if (ref_explained(r, x, d[x - off], s))
            continue;
        /* the run: up to the last bad byte before 8 good ones in a row */
        uint64_t y = x + 1, good = 0;
        for (uint64_t z = x + 1; z < end && good < 8; z++) {
            if (ref_explained(r, z, d[z - off], s))
                good++;
            else
                good = 0, y = z + 1;
        }
        *mm = (struct blkv_mismatch){x, y - x, false};
        return false;
    }
    if (A == 1)
        return true;
    for (uint64_t u = off; u < end;) {
        uint64_t ue = (u / A + 1) * A < end ? (u / A + 1) * A : end;
        if (!ref_unit_ok(r, u, ue, d, off, s)) {
            uint64_t v = ue;
            while (v < end) {
                uint64_t ve = v + A < end ? v + A : end;
                if (ref_unit_ok(r, v, ve, d, off, s))
                    break;
                v = ve;
            }
            *mm = (struct blkv_mismatch){u, v - u, true};
            return false;
        }
        u = ue;
    }
    return true;
}

static void ref_observe(struct ref *r, uint64_t off, uint64_t len, const uint8_t *d, uint64_t s,
                        uint64_t t)
{
    for (uint64_t x = off; x < off + len; x++)
        for (uint32_t i = 0; i < r->b[x].n; i++) {
            struct ref_cand *c = &r->b[x].c[i];
            const struct ref_src *cs = &r->src[c->src];
            if (c->ev == BLKV_TIME_NEVER && cs->kind != BLKV_SRC_ANY &&
                cs->status != BLKV_SRC_INFLIGHT && cs->comp < s &&
                !ref_match(r, c->src, x, d[x - off]))
                c->ev = t;
        }
}

/* ---- the randomized cross-check ------------------------------------------------- */

struct xread {
    uint64_t s, off, len;
};

struct xrun {
    struct tc c;
    struct ref r;
    uint32_t next_src;
    uint32_t wq[16]; /* writes in flight */
    bool wq_evicts[16];
    unsigned nw;
    struct xread rq[REF_MAX_READS];
    unsigned nr;
    /* counters over all runs */
    unsigned long accepted, rejected, torn, compared;
};

static struct blkv_cand_info xinfo[REF_MAX_SRC];

struct xpair {
    uint32_t src;
    uint64_t ev;
};

/* Compare, at byte x, the live candidates and what each read in flight
 * may see (with eviction times) between the model and the reference. */
static bool xcompare(struct xrun *X, uint64_t x)
{
    static struct xpair a[REF_MAX_SRC], b[REF_MAX_SRC];
    const struct ref_byte *rb = &X->r.b[x];
    size_t n = blkv_model_candidates(X->c.m, x, xinfo, REF_MAX_SRC);

    X->compared++;
    if (n > REF_MAX_SRC || xinfo[0].ext_start > x || xinfo[0].ext_end <= x)
        return false;
    for (size_t i = 0; i < n; i++)
        a[i] = (struct xpair){xinfo[i].src, xinfo[i].evicted_at};
    for (uint32_t i = 0; i < rb->n; i++)
        b[i] = (struct xpair){rb->c[i].src, rb->c[i].ev};
    /* sources are numbered in submit order here, and both keep lists in
     * submit order */
    for (size_t i = 1; i < n; i++)
        if (a[i - 1].src >= a[i].src)
            return false;
    for (unsigned k = 0; k <= X->nr; k++) {
        uint64_t s = k < X->nr ? X->rq[k].s : UINT64_MAX - 1; /* live: visible to all */
        size_t i = 0, j = 0;
        for (;;) {
            while (i < n && a[i].ev <= s)
                i++;
            while (j < rb->n && b[j].ev <= s)
                j++;
            if (i == n || j == rb->n)
                break;
            if (a[i].src != b[j].src || a[i].ev != b[j].ev)
                return false;
            i++, j++;
        }
        if (i != n || j != rb->n)
            return false;
    }
    return true;
}

static uint64_t xclock(struct xrun *X)
{
    return tick(&X->c);
}

/* A random range inside the device, biased to aligned and small ones. */
static void xrange(struct xrun *X, uint64_t *off, uint64_t *len)
{
    uint64_t size = X->r.size, a = X->r.atomic > 1 ? X->r.atomic : 8;
    switch (below(6)) {
    case 0: /* aligned to the unit */
        *off = below(size / a) * a;
        *len = (1 + below(3)) * a;
        break;
    case 1: /* tiny */
        *off = below(size);
        *len = 1 + below(8);
        break;
    case 2: /* the whole device */
        *off = 0;
        *len = size;
        break;
    default:
        *off = below(size);
        *len = 1 + below(size / 4 + 1);
        break;
    }
    if (*off >= size)
        *off = size - 1;
    if (*len > size - *off)
        *len = size - *off;
}

/* Read data for read q: mostly what the reference allows, sometimes not. */
static void xdata(struct xrun *X, const struct xread *q, uint8_t *d)
{
    const struct ref *r = &X->r;
    uint64_t end = q->off + q->len, g = r->atomic > 1 ? r->atomic : (uint64_t)1 << below(7);
    static uint32_t vis[REF_MAX_SRC];
    unsigned mode = (unsigned)below(4);

    for (uint64_t u = q->off; u < end;) {
        uint64_t ue = (u / g + 1) * g < end ? (u / g + 1) * g : end;
        uint32_t nv = 0, pick = 0;
        /* sources visible on the first byte, in a random priority order */
        for (uint32_t i = 0; i < r->b[u].n; i++)
            if (r->b[u].c[i].ev > q->s)
                vis[nv++] = r->b[u].c[i].src;
        if (nv)
            pick = vis[below(nv)];
        for (uint64_t x = u; x < ue; x++) {
            const struct ref_byte *b = &r->b[x];
            uint32_t src = 0;
            if (mode == 0) { /* any visible candidate per byte */
                uint32_t k = 0, m = 0;
                for (uint32_t i = 0; i < b->n; i++)
                    m += b->c[i].ev > q->s;
                if (m) {
                    m = (uint32_t)below(m);
                    for (uint32_t i = 0; i < b->n; i++)
                        if (b->c[i].ev > q->s && k++ == m)
                            src = b->c[i].src;
                }
            } else {
                /* per unit: the picked source where it is visible, else the
                 * newest visible one */
                bool has_pick = false;
                for (uint32_t i = 0; i < b->n; i++)
                    if (b->c[i].ev > q->s) {
                        src = b->c[i].src;
                        has_pick |= src == pick;
                    }
                if (has_pick)
                    src = pick;
            }
            int v = src ? ref_val(r, src, x) : -1;
            d[x - q->off] = v < 0 ? (uint8_t)rnd() : (uint8_t)v;
        }
        u = ue;
    }
    /* damage */
    switch (below(10)) {
    case 0: /* one random byte */
        d[below(q->len)] = (uint8_t)rnd();
        break;
    case 1: { /* a run of some other candidate there, maybe evicted */
        uint64_t x = q->off + below(q->len), n = 1 + below(64);
        const struct ref_byte *b = &r->b[x];
        uint32_t src = b->c[below(b->n)].src;
        for (uint64_t y = x; y < end && y < x + n; y++) {
            int v = ref_val(r, src, y);
            d[y - q->off] = v < 0 ? 0 : (uint8_t)v;
        }
        break;
    }
    case 2: { /* a run of some source, wherever it wrote */
        uint64_t x = q->off + below(q->len), n = 1 + below(64);
        uint32_t src = 1 + (uint32_t)below(X->next_src - 1);
        for (uint64_t y = x; y < end && y < x + n; y++) {
            int v = ref_val(r, src, y);
            d[y - q->off] = v < 0 ? 0 : (uint8_t)v;
        }
        break;
    }
    default:
        break;
    }
}

static bool xrun_one(struct xrun *X, uint64_t seed, unsigned nops)
{
    static const uint64_t sizes[] = {64, 200, 512, 512, 1024, 4096};
    static const unsigned atomics[] = {1, 1, 1, 8, 64, 512};
    static const enum blkv_src_kind inits[] = {BLKV_SRC_ZEROES, BLKV_SRC_PATTERN, BLKV_SRC_IMAGE};
    static uint8_t d[4096];
    uint64_t size, t;
    unsigned atomic;
    enum blkv_src_kind init;
    bool ok = true;

    rng_state = seed * UINT64_C(0x2545f4914f6cdd1d) + 1;
    size = sizes[below(6)];
    atomic = atomics[below(6)];
    if (atomic > size)
        atomic = 1;
    init = inits[below(3)];
    tc_init(&X->c, size, atomic, init);
    ref_init(&X->r, size, atomic, init);
    X->next_src = 2;
    X->nw = X->nr = 0;

    for (unsigned op = 0; op < nops && ok && X->next_src < REF_MAX_SRC; op++) {
        unsigned what = (unsigned)below(100);
        if (what < 30 && X->nw < 16) {
            uint32_t w = X->next_src++;
            uint64_t off, len;
            enum blkv_src_kind kind = BLKV_SRC_PATTERN;
            bool evicts = true;
            unsigned k = (unsigned)below(20);
            if (k < 3)
                kind = BLKV_SRC_ZEROES;
            else if (k < 5)
                kind = BLKV_SRC_ZEROES, evicts = false;
            else if (k < 6)
                kind = BLKV_SRC_ANY;
            xrange(X, &off, &len);
            t = xclock(X);
            blkv_model_submit(X->c.m, w, kind, off, len, t);
            ref_submit(&X->r, w, kind, off, len, t);
            X->wq_evicts[X->nw] = evicts;
            X->wq[X->nw++] = w;
        } else if (what < 55 && X->nw) {
            unsigned i = (unsigned)below(X->nw);
            bool good = below(5) != 0;
            t = xclock(X);
            blkv_model_complete(X->c.m, X->wq[i], good, X->wq_evicts[i], t);
            ref_complete(&X->r, X->wq[i], good, X->wq_evicts[i], t);
            X->wq[i] = X->wq[--X->nw];
            X->wq_evicts[i] = X->wq_evicts[X->nw];
        } else if (what < 75 && X->nr < REF_MAX_READS) {
            struct xread *q = &X->rq[X->nr++];
            xrange(X, &q->off, &q->len);
            q->s = xclock(X);
            blkv_model_read_start(X->c.m, q->s);
        } else if (what < 97 && X->nr) {
            unsigned i = (unsigned)below(X->nr);
            struct xread q = X->rq[i];
            struct blkv_mismatch m1 = {0}, m2 = {0};
            bool r1, r2;
            xdata(X, &q, d);
            t = xclock(X);
            r2 = ref_check(&X->r, q.off, q.len, d, q.s, &m2);
            r1 = blkv_model_read_check(X->c.m, X->c.next_req++, q.off, q.len, d, q.s, t, &m1);
            if (r1 != r2 || (!r1 && (m1.offset != m2.offset || m1.len != m2.len ||
                                     m1.torn != m2.torn))) {
                fprintf(stderr,
                        "seed %" PRIu64 " op %u: read [%" PRIu64 ", +%" PRIu64 ") s=%" PRIu64
                        ": model %d (%" PRIu64 "+%" PRIu64 " torn %d), reference %d (%" PRIu64
                        "+%" PRIu64 " torn %d)\n",
                        seed, op, q.off, q.len, q.s, r1, m1.offset, m1.len, m1.torn, r2,
                        m2.offset, m2.len, m2.torn);
                ok = false;
            }
            if (r2) {
                ref_observe(&X->r, q.off, q.len, d, q.s, t);
                X->accepted++;
            } else {
                X->rejected++;
                X->torn += m2.torn;
                if (!r1)
                    blkv_model_read_abandon(X->c.m, q.s);
            }
            X->rq[i] = X->rq[--X->nr];
        } else if (X->nr) {
            unsigned i = (unsigned)below(X->nr);
            blkv_model_read_abandon(X->c.m, X->rq[i].s);
            X->rq[i] = X->rq[--X->nr];
        }
        /* compare the state: a sample of bytes, now and then all */
        if (op % 64 == 63) {
            for (uint64_t x = 0; x < size && ok; x++)
                ok = xcompare(X, x);
        } else {
            for (int k = 0; k < 8 && ok; k++)
                ok = xcompare(X, below(size));
        }
        if (!ok)
            fprintf(stderr, "seed %" PRIu64 " op %u: state differs\n", seed, op);
    }
    for (uint64_t x = 0; x < size && ok; x++)
        if (!(ok = xcompare(X, x)))
            fprintf(stderr, "seed %" PRIu64 ": final state differs at %" PRIu64 "\n", seed, x);
    tc_free(&X->c);
    ref_free(&X->r);
    return ok;
}


/* ---- power loss ----------------------------------------------------------------- */

/* A flush submitted now and completed. */
static void tflush(struct tc *c)
{
    uint64_t s = tick(c);
    blkv_model_flush(c->m, s, tick(c));
}

static void tcrash(struct tc *c)
{
    blkv_model_crash(c->m, tick(c));
}

/* Whether a read of [off, off+len) holding source src's data is accepted,
 * on a copy of the scenario: build(c) sets it up, each call afresh. */
typedef void (*scenario_fn)(struct tc *c);
static bool after(scenario_fn build, uint32_t src, uint64_t off, uint64_t len)
{
    struct tc c;
    bool ok;
    tc_init2(&c, 1 << 20, 1, BLKV_SRC_PATTERN, true);
    build(&c);
    blkv_pattern_fill(buf, src, off, len); /* every source here is a pattern */
    ok = rread(&c, off, len, buf);
    tc_free(&c);
    return ok;
}

static void sc_flushed(struct tc *c)
{
    wfull(c, 2, BLKV_SRC_PATTERN, 0, 8192);
    tflush(c);
    tcrash(c);
}

static void sc_unflushed(struct tc *c)
{
    wfull(c, 2, BLKV_SRC_PATTERN, 0, 8192);
    tcrash(c);
}

static void sc_fua(struct tc *c)
{
    wfull(c, 2, BLKV_SRC_PATTERN, 0, 8192);
    blkv_model_durable(c->m, 2);
    tcrash(c);
}

static void sc_in_flight(struct tc *c)
{
    wsub(c, 2, BLKV_SRC_PATTERN, 0, 8192);
    tcrash(c);
}

/* 2 durable, then 3 durable over it: 2 is gone for good */
static void sc_two_durable(struct tc *c)
{
    wfull(c, 2, BLKV_SRC_PATTERN, 0, 8192);
    tflush(c);
    wfull(c, 3, BLKV_SRC_PATTERN, 0, 8192);
    tflush(c);
    tcrash(c);
}

/* 2 durable, 3 and 4 over it not: 2, 3 and 4 may all be there */
static void sc_durable_then_volatile(struct tc *c)
{
    wfull(c, 2, BLKV_SRC_PATTERN, 0, 8192);
    tflush(c);
    wfull(c, 3, BLKV_SRC_PATTERN, 0, 8192);
    wfull(c, 4, BLKV_SRC_PATTERN, 0, 8192);
    tcrash(c);
}

/* the flush was submitted while 2 was in flight: it does not cover 2 */
static void sc_flush_too_early(struct tc *c)
{
    uint64_t s;
    wsub(c, 2, BLKV_SRC_PATTERN, 0, 8192);
    s = tick(c);
    wdone(c, 2);
    blkv_model_flush(c->m, s, tick(c));
    tcrash(c);
}

/* A completed and flushed write survives; one completed but not flushed,
 * one with FUA, and one in flight at the crash each as the rules say. */
static void test_crash_durability(void)
{
    CHECK(after(sc_flushed, 2, 0, 8192));
    CHECK(!after(sc_flushed, BLKV_SRC_INITIAL, 0, 8192));
    /* completed, unflushed: the write or the old data, per byte */
    CHECK(after(sc_unflushed, 2, 0, 8192));
    CHECK(after(sc_unflushed, BLKV_SRC_INITIAL, 0, 8192));
    {
        struct tc c;
        tc_init2(&c, 1 << 20, 1, BLKV_SRC_PATTERN, true);
        sc_unflushed(&c);
        sfill(&c, buf, 2, 0, 8192);
        blkv_pattern_fill(buf + 1000, BLKV_SRC_INITIAL, 1000, 3000); /* mixed bytes */
        CHECK(rread(&c, 0, 8192, buf));
        tc_free(&c);
    }
    CHECK(after(sc_fua, 2, 0, 8192));
    CHECK(!after(sc_fua, BLKV_SRC_INITIAL, 0, 8192));
    CHECK(after(sc_in_flight, 2, 0, 8192));
    CHECK(after(sc_in_flight, BLKV_SRC_INITIAL, 0, 8192));
    CHECK(after(sc_flush_too_early, BLKV_SRC_INITIAL, 0, 8192));
    CHECK(after(sc_flush_too_early, 2, 0, 8192));
    /* never data older than the durable value, or that nobody wrote */
    CHECK(after(sc_two_durable, 3, 0, 8192));
    CHECK(!after(sc_two_durable, 2, 0, 8192));
    CHECK(!after(sc_two_durable, BLKV_SRC_INITIAL, 0, 8192));
    CHECK(after(sc_durable_then_volatile, 2, 0, 8192));
    CHECK(after(sc_durable_then_volatile, 3, 0, 8192));
    CHECK(after(sc_durable_then_volatile, 4, 0, 8192));
    CHECK(!after(sc_durable_then_volatile, BLKV_SRC_INITIAL, 0, 8192));
    CHECK(!after(sc_durable_then_volatile, 7, 0, 8192));
}

/* A read after the crash fixes the value: what it saw stays until written
 * again; a second crash brings nothing new back. */
static void test_crash_observation(void)
{
    struct tc c;

    tc_init2(&c, 1 << 20, 1, BLKV_SRC_PATTERN, true);
    sc_durable_then_volatile(&c);
    sfill(&c, buf, 3, 0, 8192);
    CHECK(rread(&c, 0, 8192, buf));
    CHECK(rread(&c, 0, 8192, buf));
    sfill(&c, buf2, 2, 0, 8192);
    CHECK(!rread(&c, 0, 8192, buf2)); /* no flip-flop back to the durable value */
    sfill(&c, buf2, 4, 0, 8192);
    CHECK(!rread(&c, 0, 8192, buf2));
    /* a write after the crash replaces it as before */
    wfull(&c, 5, BLKV_SRC_PATTERN, 0, 4096);
    sfill(&c, buf, 5, 0, 4096);
    CHECK(rread(&c, 0, 4096, buf));
    sfill(&c, buf, 3, 0, 4096);
    CHECK(!rread(&c, 0, 4096, buf));
    tc_free(&c);

    /* the write in flight at the crash that nobody read may still be there
     * after a second crash, and the read value before it too */
    tc_init2(&c, 1 << 20, 1, BLKV_SRC_PATTERN, true);
    sc_in_flight(&c);
    tcrash(&c);
    sfill(&c, buf, 2, 0, 8192);
    CHECK(rread(&c, 0, 8192, buf));
    tc_free(&c);
}

/* Without crash tracking nothing of it changes the model; with it, what a
 * flush makes durable lets the model forget what it replaced. */
static void test_crash_memory(void)
{
    struct tc c;
    struct blkv_model_stats a, b;

    tc_init2(&c, 1 << 20, 1, BLKV_SRC_PATTERN, true);
    for (uint32_t w = 2; w < 202; w++)
        wfull(&c, w, BLKV_SRC_PATTERN, 0, 4096);
    blkv_model_stats(c.m, &a);
    CHECK(a.candidates >= 200); /* all may come back: none durable */
    tflush(&c);
    blkv_model_stats(c.m, &b);
    CHECK(b.candidates <= 4);
    tcrash(&c);
    sfill(&c, buf, 201, 0, 4096);
    CHECK(rread(&c, 0, 4096, buf));
    sfill(&c, buf, 200, 0, 4096);
    CHECK(!rread(&c, 0, 4096, buf));
    tc_free(&c);
}

static void test_random_vs_reference(void)
{
    static struct xrun X;
    unsigned bad = 0, runs = 3000;

    for (uint64_t seed = 1; seed <= runs && bad < 5; seed++)
        bad += !xrun_one(&X, seed, 300);
    printf("     %u runs: %lu reads accepted, %lu rejected (%lu torn), %lu byte states "
           "compared\n",
           runs, X.accepted, X.rejected, X.torn, X.compared);
    CHECK(bad == 0);
    /* the generator must exercise both sides */
    CHECK(X.accepted > 10000 && X.rejected > 5000 && X.torn > 500);
}

/* The data loops check their whole range under ASan: one byte past a
 * buffer is reported (the child dies), the exact buffer is not. */
#ifdef BLKV_ASAN
static int pattern_child(size_t len, unsigned what)
{
    pid_t pid = fork();
    int st = 0;

    REQUIRE(pid >= 0);
    if (pid == 0) {
        uint8_t *b = malloc(4000);
        if (!b || !freopen("/dev/null", "w", stderr)) /* the expected report */
            _exit(2);
        memset(b, 0, 4000);
        if (what == 0)
            blkv_pattern_fill(b, 7, 3, len);
        else if (what == 1)
            (void)blkv_pattern_match(b, 7, 3, len);
        else
            (void)blkv_zero_match(b, len);
        free(b);
        _exit(0);
    }
    REQUIRE(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
#endif

static void test_pattern_bounds(void)
{
#ifdef BLKV_ASAN
    for (unsigned what = 0; what < 3; what++) {
        CHECK(pattern_child(4000, what) == 0);
        CHECK(pattern_child(4001, what) != 0);
    }
#else
    printf("     (without ASan: nothing to check)\n");
#endif
}

/* The store's cache of chunks keeps what a window of runs had out at
 * once: one big run's chunks are freed once two windows needed fewer. */
static void test_store_cache_follows_use(void)
{
    uint64_t held = 0;
    struct blkv_store st;
    unsigned char page[4096];
    size_t big;

    memset(page, 0xa5, sizeof(page));
    blkv_store_init(&st, &held);
    for (uint64_t i = 0; i < 4096; i++) /* 16 MiB: many chunks */
        CHECK(blkv_store_write(&st, page, sizeof(page), i * sizeof(page)) == 0);
    blkv_store_clear(&st);
    blkv_store_run_end();
    big = blkv_store_cached();
    CHECK(big >= 16u << 20);
    for (unsigned r = 0; r < 2 * BLKV_BUF_WINDOW_RUNS; r++) {
        blkv_store_init(&st, &held);
        CHECK(blkv_store_write(&st, page, sizeof(page), 0) == 0);
        blkv_store_clear(&st);
        blkv_store_run_end();
    }
    /* the one chunk each later run used */
    CHECK(blkv_store_cached() > 0 && blkv_store_cached() < big / 100);
    CHECK(held == 0);
}

int main(void)
{
    rng_state = 42;
    for (size_t i = 0; i < sizeof(image); i++)
        image[i] = (uint8_t)rnd();

    RUN(test_pattern_bounds);
    RUN(test_fresh_zeroes);
    RUN(test_fresh_pattern);
    RUN(test_fresh_image);
    RUN(test_stale_after_write);
    RUN(test_run_through_chance_matches);
    RUN(test_overlapping_writes);
    RUN(test_read_during_write);
    RUN(test_flip_flop);
    RUN(test_failed_write);
    RUN(test_eviction_needs_later_submit);
    RUN(test_discard_zeroes);
    RUN(test_discard_zeroes_or_old);
    RUN(test_discard_unspecified);
    RUN(test_discard_ignored);
    RUN(test_atomicity);
    RUN(test_unaligned);
    RUN(test_reject_leaves_model);
    RUN(test_queries);
    RUN(test_huge_device);
    RUN(test_memory_scattered);
    RUN(test_memory_same_range);
    RUN(test_crash_durability);
    RUN(test_crash_observation);
    RUN(test_crash_memory);
    RUN(test_random_vs_reference);
    RUN(test_store_cache_follows_use);
    T_EXIT();
}
