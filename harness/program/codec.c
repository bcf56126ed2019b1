/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * codec.c - the binary form of a program: a total decoder and the encoder
 * that inverts it.
 *
 * THE BINARY FORM
 *
 * Input bytes are read through a reader that never fails: once the input is
 * exhausted every further byte reads as 0.  Multi-byte literals are little
 * endian.  So every byte string is a program, and the empty input is the
 * default config with no ops.
 *
 * Config, one selector byte per field, in this order.  Index 0 of every
 * table is the default; an escape byte is followed by a literal that is
 * normalised into the valid range (normalising is the identity on valid
 * values, so the encoder's literals come back exactly):
 *
 *   size    0xff: u64 literal; else table[b % 10] of
 *           64M 64K 1M 16M 1G 1T 4T 4K 1M+512 64M-512.
 *           Literal: outside 4K..8T taken modulo into it, then rounded
 *           down to a multiple of 512.
 *   grain   0xff: u32 literal; else table[b % 13]: 64K 512 4K 1M 2M 32K 128K
 *           8K 16K 256K 512K 1K 2K.  Literal: an invalid value v becomes
 *           512 << (v % 13).
 *   qd      0xff: u16 literal; else table[b % 7]: 8 1 2 4 16 32 64.
 *           Literal: outside 1..256 becomes 1 + v % 256.
 *   atomic  0xff: u16 literal; else table[b % 3]: 1 512 4096.  Literal: an
 *           invalid value v becomes 1 << (v % 13).
 *   sched   b % 3: random fifo lifo.
 *   init    b & 1: zero pattern.  ("init image" is text-only; the encoder
 *           writes it as zero.)
 *   serial  serialize-overlaps is on iff (b & 7) == 7.
 *   seed    b < 0xfe: the seed is b; 0xfe: u32 literal; 0xff: u64 literal.
 *
 * Then ops, until the input is exhausted (every op consumes at least its
 * opcode byte) or BLKV_PROGRAM_MAX_OPS ops were decoded.  The opcode byte
 * is mapped through the op table's decode column (program/ops.c), byte
 * ranges in this order:
 *
 *   0..59 read        60..115 write     116..123 write fua
 *   124..131 wzero    132..135 wzero unmap   136..137 wzero fua
 *   138..139 wzero unmap fua   140..153 discard   154..167 flush
 *   168..183 cancel   184..215 step     216..219 crash
 *   220..221 fault    222..223 fault once       224..239 wait
 *   240..247 drain    248..251 reopen   252..255 check
 *
 * THE FUZZ BUDGET.  Random bytes should make programs a fuzz target runs,
 * so the decoder keeps to the budget that blkv_fuzz_over_budget() checks
 * (<blkv/fuzz.h>; a pure function of the config, so decoding stays
 * deterministic), and only escape bytes that random input rarely holds go
 * over it.  It counts, as the check does, the bytes spanned by the
 * requests decoded so far (`moved`; a write or write-zeroes after a fault
 * rule counts at least a grain, blkv_budget_cost in limits.h) and the
 * reopens and crashes, checks and fault rules so far.  LEFT below is what
 * the next request may span: max(budget - moved, BLKV_FUZZ_PAST_BUDGET),
 * and at most BLKV_MAX_REQUEST.  Once a program holds blkv_fuzz_max_reopens()
 * reopens and crashes (or blkv_fuzz_max_checks() checks, BLKV_FUZZ_MAX_RULES
 * fault rules), the opcode byte of one more is followed by a byte x: 0xff,
 * the op all the same (its operands follow); else the op is a step with
 * pending-I/O index x, and a step's error byte follows.  Likewise once a
 * write or write-zeroes after a fault rule would go over (the grain is over
 * LEFT), its opcode byte is followed by two bytes x y: 0xff 0xff, the op
 * all the same; else the op is a read (no flags) and x, y are the first
 * bytes of its operands.  (Two bytes, because most writes of a random
 * program with a rule come after its budget is spent: with one, a program
 * of a few hundred ops would hold one by chance too often.)
 * Every program stays expressible, so
 * the encoder remains exact for any program, over the budget or not; the
 * check stays as the safety net for inputs with the escapes (and for the
 * other ways to a program: trace text, the mutator's edits).
 *
 * read / write / wzero / discard: a length mode byte [+ bytes], then an
 * offset mode byte [+ bytes] (the length comes first because some offset
 * generators depend on it).  The mode byte 0xff is the literal form;
 * otherwise its high nibble picks a generator and the low nibble P is its
 * parameter.  G is the grain, S the device size, L2 = G * G/8 (the guest
 * bytes one qcow2 L2 table maps), "clusters" = ceil(S / G).
 *
 *   length: 0xff + u32 literal v: top byte 0xff: the low 24 bits, taken
 *           as they are (outside 1..8M: 1 + v % 8M), budget or not; else
 *           v if in 1..LEFT, otherwise 1 + v % LEFT
 *           0-5, 15  (P+1)*512                (1..16 sectors)
 *           6-7  G
 *           8-9  G+512 if P odd, else G-512 (G+512 when G is 512)
 *           10-11 (2 + P%8)*G, minus 512 if P >= 8
 *           12   P < 8: 1 + P%7 (1..7 bytes); else (P-7)*4K
 *           13   + u8 x: P*512 + 1 + x%511    (unaligned)
 *           14   + u16 v: (v%n + 1)*512, n = min(2048, LEFT/512)  (up to
 *                1M; longer ones need the literal form)
 *           and then, if over LEFT (which is at least 4096), ((P%8)+1)*512
 *           (1..8 sectors) instead.
 *   offset: 0xff + u64 literal, modulo BLKV_MAX_DEVICE_SIZE
 *           0-4  + u8 k: (k % clusters)*G + delta[P]
 *           5    + u8 j: (j % L2 tables)*L2 + delta[P]
 *           6-8, 15  + u32 v: 512-aligned, uniform over the device
 *                (sector v * (S/512) / 2^32)
 *           9-10 near the end: S - d, with d by P: len (P 0-7 and 15: the
 *                request ends at the end), len+512, len+G, G, 512, len+1,
 *                then crossing the end: len-1, len/2 (512-aligned if >= 512)
 *           11-13 + u8 c: overlapping recent request number P % n of the
 *                last n <= 16 read/write/wzero/discard ops, by c % 8: same
 *                start (0, 1), 512*(c/8) % its length inside (2),
 *                straddling its start (3) or its end (4) by half our
 *                length, adjacent after (5) or before (6), unaligned
 *                (c/8) % its length inside (7).  With none yet: as 0-4.
 *           14   + u8 k, u16 x: (k % clusters)*G + x%G, plus 1+P when that
 *                is 512-aligned (always byte-unaligned)
 *           delta[P] = 0 for P 0-8, then +512 -512 +4096 -G +G +1 -1 (a
 *           negative delta that would go below 0 is applied as positive).
 *           A generated offset >= BLKV_MAX_DEVICE_SIZE becomes
 *           BLKV_MAX_DEVICE_SIZE-512.  Only the near-the-end and literal
 *           forms make a request cross the device end on purpose: after the
 *           other generators, a generated (not literal) length that runs
 *           past the end of the device is cut to end there.
 *
 * cancel / wait: dropped (no operand read) when no request was submitted
 * yet; else a byte c: 0xff: + u32 literal, request (v % submitted); else
 * request (submitted - 1 - c % min(submitted, 32)), i.e. a recent one.
 * Requests are numbered from 0 in the order of read, write, wzero, discard
 * and flush ops.
 *
 * step: a byte, the pending-I/O index (0..255); an error byte e: e < 0xe0
 * no fault; 0xff: + u16 literal errno (outside 1..4095 becomes
 * 1 + v % 4095); else table[(e - 0xe0) % 16] of EIO EIO EIO EIO ENOSPC
 * ENOSPC EDQUOT EPERM EFBIG ENOMEM EAGAIN EROFS ETIMEDOUT ESHUTDOWN ENODEV
 * ECANCELED.
 *
 * crash: a byte, what the lower files keep (0..255).
 *
 * fault: an event byte b: 0xff + u8 literal (0 becomes 1); 0xf0..0xfe the
 * driver's own events 13 + (b - 0xf0); else standard event 1 + b % 12.  An
 * errno byte e: 0xff + u16 literal (as step's); else the step table's
 * entry e % 16.  An after byte a: 0xff + u16 literal; 0xf0..0xfe:
 * (a - 0xef) * 8; else a % 4.  "once" is in the opcode byte.
 *
 * flush, drain, reopen, check: no operands (but see the fuzz budget above).
 *
 * The encoder writes the shortest of a few forms that decodes back to the
 * op exactly (checked by decoding it), falling back to the literal forms:
 * a length over LEFT as the literal with top byte 0xff, an op past its
 * fuzz limit with the byte 0xff (a write, 0xff 0xff) after its opcode.  It writes no bytes for
 * a cancel or wait before the first request (the decoder could not produce
 * one; at run time it would do nothing).
 */
#include "program/limits.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- the reader: never fails, reads 0 past the end ----------------------- */

struct rd {
    const uint8_t *data;
    size_t size, pos;
    size_t used; /* bytes asked for, including those past the end */
};

static uint8_t rd_u8(struct rd *r)
{
    r->used++;
    return r->pos < r->size ? r->data[r->pos++] : 0;
}

/* The byte i places ahead, not consumed. */
static uint8_t rd_peek(const struct rd *r, size_t i)
{
    return r->size - r->pos > i ? r->data[r->pos + i] : 0;
}

static uint64_t rd_le(struct rd *r, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)rd_u8(r) << (8 * i);
    return v;
}

/* ---- the writer ---------------------------------------------------------- */

struct wb {
    uint8_t *d;
    size_t n, cap;
    bool oom;
};

static void wb_put(struct wb *w, const uint8_t *b, size_t n)
{
    if (w->oom)
        return;
    if (w->cap - w->n < n) {
        size_t ncap = w->cap ? w->cap * 2 : 256;
        uint8_t *d;
        while (ncap - w->n < n)
            ncap *= 2;
        d = realloc(w->d, ncap);
        if (!d) {
            w->oom = true;
            return;
        }
        w->d = d, w->cap = ncap;
    }
    memcpy(w->d + w->n, b, n);
    w->n += n;
}

/* A short byte string under construction (one field or one op). */
struct bytes {
    uint8_t b[32];
    size_t n;
};

static void by_u8(struct bytes *s, uint8_t v)
{
    if (s->n < sizeof(s->b))
        s->b[s->n++] = v;
}

static void by_le(struct bytes *s, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        by_u8(s, (uint8_t)(v >> (8 * i)));
}

static void by_cat(struct bytes *s, const struct bytes *t)
{
    for (size_t i = 0; i < t->n; i++)
        by_u8(s, t->b[i]);
}

/* ---- config -------------------------------------------------------------- */

#define ESC 0xff

static const uint64_t size_tab[] = {
    64 * MiB, 64 * KiB, 1 * MiB, 16 * MiB,      1 * GiB,
    1 * TiB,  4 * TiB,  4 * KiB, 1 * MiB + 512, 64 * MiB - 512,
};
static const uint32_t grain_tab[] = {
    64 * KiB, 512,      4 * KiB,   1 * MiB,   2 * MiB, 32 * KiB, 128 * KiB,
    8 * KiB,  16 * KiB, 256 * KiB, 512 * KiB, 1 * KiB, 2 * KiB,
};
static const uint32_t qd_tab[] = {8, 1, 2, 4, 16, 32, 64};
static const uint32_t atomic_tab[] = {1, 512, 4096};

static uint64_t norm_size(uint64_t v)
{
    if (blkv_cfg_size_ok(v))
        return v;
    if (v < BLKV_MIN_DEVICE_SIZE || v > BLKV_MAX_DEVICE_SIZE)
        v = BLKV_MIN_DEVICE_SIZE + v % (BLKV_MAX_DEVICE_SIZE - BLKV_MIN_DEVICE_SIZE + 1);
    return v - v % 512;
}

static uint32_t norm_grain(uint64_t v)
{
    return blkv_cfg_grain_ok(v) ? (uint32_t)v : BLKV_GRAIN_MIN << (v % 13);
}

static uint32_t norm_qd(uint64_t v)
{
    return blkv_cfg_qd_ok(v) ? (uint32_t)v : (uint32_t)(1 + v % BLKV_QD_MAX);
}

static uint32_t norm_atomic(uint64_t v)
{
    return blkv_cfg_atomic_ok(v) ? (uint32_t)v : UINT32_C(1) << (v % 13);
}

static uint16_t norm_errno(uint64_t v)
{
    return (uint16_t)(v >= 1 && v <= BLKV_STEP_ERRNO_MAX ? v : 1 + v % BLKV_STEP_ERRNO_MAX);
}

static uint64_t norm_len(uint64_t v)
{
    return blkv_pop_len_ok(v) ? v : 1 + v % BLKV_MAX_REQUEST;
}

static void decode_config(struct rd *r, struct blkv_config *cfg)
{
    uint8_t b;

    b = rd_u8(r);
    cfg->size = b == ESC ? norm_size(rd_le(r, 8)) : size_tab[b % ARRAY_SIZE(size_tab)];
    b = rd_u8(r);
    cfg->grain = b == ESC ? norm_grain(rd_le(r, 4)) : grain_tab[b % ARRAY_SIZE(grain_tab)];
    b = rd_u8(r);
    cfg->qd = b == ESC ? norm_qd(rd_le(r, 2)) : qd_tab[b % ARRAY_SIZE(qd_tab)];
    b = rd_u8(r);
    cfg->atomic = b == ESC ? norm_atomic(rd_le(r, 2)) : atomic_tab[b % ARRAY_SIZE(atomic_tab)];
    cfg->sched = rd_u8(r) % 3;
    cfg->init = (rd_u8(r) & 1) ? BLKV_INIT_PATTERN : BLKV_INIT_ZERO;
    cfg->serialize = (rd_u8(r) & 7) == 7;
    b = rd_u8(r);
    cfg->seed = b < 0xfe ? b : b == 0xfe ? rd_le(r, 4) : rd_le(r, 8);
}

/* The table index of v, or ESC with a literal of n bytes. */
static void enc_sel(struct wb *w, uint64_t v, const void *tab, size_t count, bool wide, unsigned n)
{
    struct bytes s = {.n = 0};
    for (size_t i = 0; i < count; i++) {
        uint64_t t = wide ? ((const uint64_t *)tab)[i] : ((const uint32_t *)tab)[i];
        if (t == v) {
            by_u8(&s, (uint8_t)i);
            wb_put(w, s.b, s.n);
            return;
        }
    }
    by_u8(&s, ESC);
    by_le(&s, v, n);
    wb_put(w, s.b, s.n);
}

static void encode_config(struct wb *w, const struct blkv_config *cfg)
{
    struct bytes s = {.n = 0};

    enc_sel(w, cfg->size, size_tab, ARRAY_SIZE(size_tab), true, 8);
    enc_sel(w, cfg->grain, grain_tab, ARRAY_SIZE(grain_tab), false, 4);
    enc_sel(w, cfg->qd, qd_tab, ARRAY_SIZE(qd_tab), false, 2);
    enc_sel(w, cfg->atomic, atomic_tab, ARRAY_SIZE(atomic_tab), false, 2);
    by_u8(&s, cfg->sched < 3 ? cfg->sched : 0);
    by_u8(&s, cfg->init == BLKV_INIT_PATTERN ? 1 : 0);
    by_u8(&s, cfg->serialize ? 7 : 0);
    if (cfg->seed < 0xfe) {
        by_u8(&s, (uint8_t)cfg->seed);
    } else if (cfg->seed <= UINT32_MAX) {
        by_u8(&s, 0xfe);
        by_le(&s, cfg->seed, 4);
    } else {
        by_u8(&s, 0xff);
        by_le(&s, cfg->seed, 8);
    }
    wb_put(w, s.b, s.n);
}

/* ---- ops ----------------------------------------------------------------- */

/* The op and flags of opcode byte b (the op table's decode column). */
static void op_lookup(uint8_t b, uint8_t *code, uint8_t *flags)
{
    unsigned lo = 0;
    for (unsigned i = 0; i < BLKV_P__COUNT; i++) {
        unsigned c = blkv_opcode_in_order(i);
        const struct blkv_opinfo *oi = blkv_opinfo(c);
        for (unsigned k = 0; k < 4 && oi->decode[k].bytes; k++) {
            if (b < lo + oi->decode[k].bytes) {
                *code = (uint8_t)c, *flags = oi->decode[k].flags;
                return;
            }
            lo += oi->decode[k].bytes;
        }
    }
    *code = BLKV_P_READ, *flags = 0; /* not reached: the table covers 0..255 */
}

/* The first opcode byte for (code, flags); flags the op cannot carry are dropped. */
static uint8_t op_byte(unsigned code, unsigned flags)
{
    unsigned lo = 0;
    flags &= blkv_opcode_flags(code);
    for (unsigned i = 0; i < BLKV_P__COUNT; i++) {
        unsigned c = blkv_opcode_in_order(i);
        const struct blkv_opinfo *oi = blkv_opinfo(c);
        for (unsigned k = 0; k < 4 && oi->decode[k].bytes; k++) {
            if (c == code && oi->decode[k].flags == flags)
                return (uint8_t)lo;
            lo += oi->decode[k].bytes;
        }
    }
    return 0;
}

static const uint16_t step_err_tab[16] = {
    EIO,   EIO,    EIO,    EIO,   ENOSPC,    ENOSPC,    EDQUOT, EPERM,
    EFBIG, ENOMEM, EAGAIN, EROFS, ETIMEDOUT, ESHUTDOWN, ENODEV, ECANCELED,
};
#define STEP_ERR_FIRST 0xe0
/* fault: event bytes from here name a driver's own events; after bytes
 * from here mean multiples of 8 */
#define FAULT_EV_OWN 0xf0
#define FAULT_AFTER_BIG 0xf0

/* Generators: the high nibble of a mode byte, by range.  The mode byte 0xff
 * is the literal form of both. */
#define MODE_LIT 0xff
enum len_gen { L_SECTORS, L_GRAIN, L_GRAIN_PM, L_GRAINS, L_TINY, L_ODD, L_BIG };
static const uint8_t len_gen[16] = {
    L_SECTORS,  L_SECTORS,  L_SECTORS, L_SECTORS, L_SECTORS, L_SECTORS, L_GRAIN, L_GRAIN,
    L_GRAIN_PM, L_GRAIN_PM, L_GRAINS,  L_GRAINS,  L_TINY,    L_ODD,     L_BIG,   L_SECTORS,
};
enum off_gen { O_GRAIN, O_L2, O_RAND, O_END, O_RECENT, O_UNALIGNED };
static const uint8_t off_gen[16] = {
    O_GRAIN, O_GRAIN, O_GRAIN, O_GRAIN,  O_GRAIN,  O_L2,     O_RAND,      O_RAND,
    O_RAND,  O_END,   O_END,   O_RECENT, O_RECENT, O_RECENT, O_UNALIGNED, O_RAND,
};

/* The mode byte of generator g with parameter prm. */
static uint8_t mode_byte(const uint8_t *tab, unsigned g, unsigned prm)
{
    for (unsigned i = 0; i < 16; i++)
        if (tab[i] == g)
            return (uint8_t)(i << 4 | prm);
    return 0;
}

#define RECENT 16        /* requests the offset generator may overlap */
#define CANCEL_WINDOW 32 /* requests a cancel or wait byte can name */

/* What the op decoder knows: the config and the ops so far. */
struct dstate {
    uint64_t size, grain;
    uint64_t nsub; /* submit ops so far */
    uint64_t r_off[RECENT], r_len[RECENT];
    unsigned nrecent, head;
    /* the fuzz budget (blkv_fuzz_over_budget's counts) */
    uint64_t budget, moved;          /* bytes: the budget, and spanned by requests so far */
    unsigned reopens, checks, rules; /* reopens and crashes, checks, fault rules */
    unsigned max_reopens, max_checks; /* blkv_fuzz_max_reopens and _checks */
};

static void dstate_init(struct dstate *st, const struct blkv_config *cfg)
{
    memset(st, 0, sizeof(*st));
    st->size = cfg->size;
    st->grain = cfg->grain;
    st->budget = blkv_budget_of(cfg);
    st->max_reopens = blkv_limit_of(cfg, BLKV_FUZZ_MAX_REOPENS);
    st->max_checks = blkv_limit_of(cfg, BLKV_FUZZ_MAX_CHECKS);
}

/* Record a decoded op. */
static void dstate_note(struct dstate *st, const struct blkv_pop *op)
{
    st->nsub += blkv_opcode_submits(op->code);
    if (blkv_opcode_ranged(op->code)) {
        st->r_off[st->head] = op->offset;
        st->r_len[st->head] = op->len;
        st->head = (st->head + 1) % RECENT;
        if (st->nrecent < RECENT)
            st->nrecent++;
        uint64_t cost = blkv_budget_cost(op->code, op->len, st->grain, st->rules);
        st->moved = st->moved + cost >= st->moved ? st->moved + cost : UINT64_MAX;
    }
    st->reopens += op->code == BLKV_P_REOPEN || op->code == BLKV_P_CRASH;
    st->checks += op->code == BLKV_P_CHECK;
    st->rules += op->code == BLKV_P_FAULT;
}

/* The most bytes a request may span now within the budget (and at most
 * BLKV_MAX_REQUEST: 2 MiB grains have a 16 MiB budget). */
static uint64_t dstate_left(const struct dstate *st)
{
    uint64_t left = blkv_budget_left(st->budget, st->moved);
    return left < BLKV_MAX_REQUEST ? left : BLKV_MAX_REQUEST;
}

/* Whether an op of kind code would go over a fuzz limit now: then its
 * opcode byte needs the escape byte to mean it. */
static bool dstate_at_limit(const struct dstate *st, unsigned code)
{
    switch (code) {
    case BLKV_P_REOPEN:
    case BLKV_P_CRASH:
        return st->reopens >= st->max_reopens;
    case BLKV_P_CHECK:
        return st->checks >= st->max_checks;
    case BLKV_P_FAULT:
        return st->rules >= BLKV_FUZZ_MAX_RULES;
    case BLKV_P_WRITE:
    case BLKV_P_WZERO: /* after a rule it costs a grain (blkv_budget_cost) */
        return blkv_budget_cost(code, 1, st->grain, st->rules) > dstate_left(st);
    default:
        return false;
    }
}

/* Recent range i, 0 being the latest. */
static void dstate_recent(const struct dstate *st, unsigned i, uint64_t *off, uint64_t *len)
{
    unsigned slot = (st->head + RECENT - 1 - i) % RECENT;
    *off = st->r_off[slot];
    *len = st->r_len[slot];
}

/* A literal length's u32 with this top byte is taken as it is, budget or not. */
#define LEN_LIT_EXACT 0xffu

/* A length; *lit is set for the literal form. */
static uint64_t gen_len(const struct dstate *st, struct rd *r, bool *lit)
{
    uint8_t m = rd_u8(r);
    unsigned prm = m & 15;
    uint64_t g = st->grain, len = 512, left = dstate_left(st);

    *lit = m == MODE_LIT;
    if (*lit) {
        uint64_t v = rd_le(r, 4);
        if (v >> 24 == LEN_LIT_EXACT)
            return norm_len(v & 0xffffff);
        return v >= 1 && v <= left ? v : 1 + v % left;
    }
    switch (len_gen[m >> 4]) {
    case L_SECTORS:
        len = (prm + 1) * UINT64_C(512);
        break;
    case L_GRAIN:
        len = g;
        break;
    case L_GRAIN_PM:
        len = (prm & 1) || g == 512 ? g + 512 : g - 512;
        break;
    case L_GRAINS:
        len = (2 + (prm & 7)) * g - ((prm & 8) ? 512 : 0);
        break;
    case L_TINY:
        len = prm < 8 ? 1 + prm % 7 : (prm - 7) * UINT64_C(4096);
        break;
    case L_ODD:
        len = prm * UINT64_C(512) + 1 + rd_u8(r) % 511;
        break;
    case L_BIG: {
        uint64_t n = left / 512 < 2048 ? left / 512 : 2048; /* left >= 4096 */
        len = (rd_le(r, 2) % n + 1) * 512;
        break;
    }
    }
    if (len > left) /* left >= 4096: eight sectors always fit */
        len = ((prm & 7) + 1) * UINT64_C(512);
    return len < BLKV_MAX_REQUEST ? len : BLKV_MAX_REQUEST;
}

/* base + delta[prm], a negative delta that would go below 0 applied as positive. */
static uint64_t add_delta(uint64_t base, unsigned prm, uint64_t g)
{
    static const int16_t tab[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 512, -512, 4096, 0, 0, 1, -1};
    int64_t d = prm == 12 ? -(int64_t)g : prm == 13 ? (int64_t)g : tab[prm];
    if (d >= 0)
        return base + (uint64_t)d;
    return base >= (uint64_t)-d ? base - (uint64_t)-d : base + (uint64_t)-d;
}

static uint64_t off_grain(const struct dstate *st, unsigned prm, uint8_t k)
{
    uint64_t ncl = (st->size + st->grain - 1) / st->grain;
    return add_delta(k % ncl * st->grain, prm, st->grain);
}

/* An offset for a request of *len bytes.  Only the end and literal forms
 * make a request cross the device end on purpose: for the others a length
 * running past it is cut to end there. */
static uint64_t gen_off(const struct dstate *st, struct rd *r, uint64_t *len, bool len_lit)
{
    uint8_t m = rd_u8(r);
    unsigned prm = m & 15;
    uint64_t s = st->size, g = st->grain, off = 0, l = *len;

    if (m == MODE_LIT)
        return rd_le(r, 8) % BLKV_MAX_DEVICE_SIZE;
    switch (off_gen[m >> 4]) {
    case O_GRAIN:
        off = off_grain(st, prm, rd_u8(r));
        break;
    case O_L2: {
        uint64_t l2 = g * (g / 8), n = (s + l2 - 1) / l2;
        off = add_delta(rd_u8(r) % n * l2, prm, g);
        break;
    }
    case O_RAND: {
        uint64_t v = rd_le(r, 4), nsect = s / 512;
        unsigned sh = 0;
        while ((nsect >> sh) > (UINT64_C(1) << 32))
            sh++;
        off = ((v * (nsect >> sh)) >> (32 - sh)) * 512;
        break;
    }
    case O_END: {
        uint64_t d;
        switch (prm) {
        case 8:
            d = l + 512;
            break;
        case 9:
            d = l + g;
            break;
        case 10:
            d = g;
            break;
        case 11:
            d = 512;
            break;
        case 12:
            d = l + 1;
            break;
        case 13:
            d = l - 1;
            break;
        case 14:
            d = l / 2 >= 512 ? (l / 2) & ~UINT64_C(511) : l / 2;
            break;
        default:
            d = l;
            break;
        }
        off = d <= s ? s - d : 0;
        return off < BLKV_MAX_DEVICE_SIZE ? off : BLKV_MAX_DEVICE_SIZE - 512;
    }
    case O_RECENT: {
        uint8_t c = rd_u8(r);
        uint64_t ro, rl, d = l / 2;
        if (!st->nrecent) {
            off = off_grain(st, prm, c);
            break;
        }
        dstate_recent(st, prm % st->nrecent, &ro, &rl);
        if (d >= 512)
            d &= ~UINT64_C(511);
        switch (c & 7) {
        case 2:
            off = ro + (uint64_t)(c >> 3) * 512 % rl;
            break;
        case 3:
            off = ro >= d ? ro - d : 0;
            break;
        case 4:
            off = ro + rl >= d ? ro + rl - d : 0;
            break;
        case 5:
            off = ro + rl;
            break;
        case 6:
            off = ro >= l ? ro - l : 0;
            break;
        case 7:
            off = ro + (uint64_t)(c >> 3) % rl;
            break;
        default:
            off = ro;
            break;
        }
        break;
    }
    case O_UNALIGNED: {
        uint64_t ncl = (s + g - 1) / g;
        uint8_t k = rd_u8(r);
        off = k % ncl * g + rd_le(r, 2) % g;
        if (off % 512 == 0)
            off += 1 + prm;
        break;
    }
    }
    if (off >= BLKV_MAX_DEVICE_SIZE)
        off = BLKV_MAX_DEVICE_SIZE - 512;
    if (!len_lit && off < s && l > s - off)
        *len = s - off;
    return off;
}

/* A step's error byte [+ literal] into op->err. */
static void dec_step_err(struct rd *r, struct blkv_pop *op)
{
    uint8_t b = rd_u8(r);
    if (b == ESC)
        op->err = norm_errno(rd_le(r, 2));
    else if (b >= STEP_ERR_FIRST)
        op->err = step_err_tab[(b - STEP_ERR_FIRST) % 16];
}

/* Decode one op; false if it is dropped (a cancel or wait before any request). */
static bool decode_op(const struct dstate *st, struct rd *r, struct blkv_pop *op)
{
    uint8_t code, flags, b;

    memset(op, 0, sizeof(*op));
    op_lookup(rd_u8(r), &code, &flags);
    if (dstate_at_limit(st, code)) {
        if (blkv_opcode_ranged(code)) { /* a write: a read unless 0xff 0xff follows */
            if (rd_peek(r, 0) == ESC && rd_peek(r, 1) == ESC)
                rd_le(r, 2);
            else
                code = BLKV_P_READ, flags = 0; /* the bytes are its operands */
        } else if ((b = rd_u8(r)) != ESC) {
            op->code = BLKV_P_STEP; /* b is its pending-I/O index */
            op->arg = b;
            dec_step_err(r, op);
            return true;
        }
    }
    op->code = code;
    op->flags = flags;
    switch (blkv_opinfo(code)->operand) {
    case BLKV_OPND_RANGE: {
        bool lit;
        op->len = gen_len(st, r, &lit);
        op->offset = gen_off(st, r, &op->len, lit);
        break;
    }
    case BLKV_OPND_REQ:
        if (!st->nsub)
            return false;
        b = rd_u8(r);
        if (b == ESC) {
            op->arg = (uint32_t)(rd_le(r, 4) % st->nsub);
        } else {
            uint64_t w = st->nsub < CANCEL_WINDOW ? st->nsub : CANCEL_WINDOW;
            op->arg = (uint32_t)(st->nsub - 1 - b % w);
        }
        break;
    case BLKV_OPND_STEP:
        op->arg = rd_u8(r);
        dec_step_err(r, op);
        break;
    case BLKV_OPND_CRASH:
        op->arg = rd_u8(r);
        break;
    case BLKV_OPND_FAULT:
        b = rd_u8(r);
        if (b == ESC) {
            b = rd_u8(r);
            op->arg = b ? b : 1; /* events are 1..255 */
        } else {
            op->arg = b >= FAULT_EV_OWN ? BLKV_EV__STANDARD + (uint32_t)(b - FAULT_EV_OWN)
                                        : 1 + (uint32_t)b % (BLKV_EV__STANDARD - 1);
        }
        b = rd_u8(r);
        op->err = b == ESC ? norm_errno(rd_le(r, 2)) : step_err_tab[b % 16];
        b = rd_u8(r);
        op->len = b == ESC ? rd_le(r, 2) : b >= FAULT_AFTER_BIG ? (uint64_t)(b - FAULT_AFTER_BIG + 1) * 8
                                                                : b % 4;
        break;
    case BLKV_OPND_NONE:
        break;
    }
    return true;
}

int blkv_program_decode(const uint8_t *data, size_t size, struct blkv_program *p)
{
    struct rd r = {.data = data, .size = size};
    struct dstate st;
    struct blkv_pop op;

    blkv_program_free(p);
    decode_config(&r, &p->cfg);
    dstate_init(&st, &p->cfg);
    while (r.pos < r.size && p->nops < BLKV_PROGRAM_MAX_OPS) {
        int ret;
        if (!decode_op(&st, &r, &op))
            continue;
        dstate_note(&st, &op);
        ret = blkv_program_push(p, &op);
        if (ret) {
            blkv_program_free(p);
            return ret;
        }
    }
    return 0;
}

/* ---- the encoder --------------------------------------------------------- */

static bool pop_equal(const struct blkv_pop *a, const struct blkv_pop *b)
{
    return a->code == b->code && a->flags == b->flags && a->err == b->err && a->arg == b->arg &&
           a->offset == b->offset && a->len == b->len;
}

/* Decode s as one op; true if that consumes exactly s and gives *want. */
static bool try_op(const struct dstate *st, const struct bytes *s, const struct blkv_pop *want)
{
    struct rd r = {.data = s->b, .size = s->n};
    struct blkv_pop got;
    return decode_op(st, &r, &got) && r.used == s->n && pop_equal(&got, want);
}

/* Candidate encodings of the length and offset of a ranged op, best first. */
static size_t len_forms(const struct dstate *st, const struct blkv_pop *op, struct bytes *f)
{
    size_t n = 0;
    if (op->len % 512 == 0 && op->len >= 512 && op->len <= 16 * 512) {
        f[n].n = 0;
        by_u8(&f[n++], mode_byte(len_gen, L_SECTORS, (unsigned)(op->len / 512 - 1)));
    }
    if (op->len == st->grain) {
        f[n].n = 0;
        by_u8(&f[n++], mode_byte(len_gen, L_GRAIN, 0));
    }
    if (op->len >= 1 && op->len <= 7) {
        f[n].n = 0;
        by_u8(&f[n++], mode_byte(len_gen, L_TINY, (unsigned)op->len - 1));
    }
    f[n].n = 0;
    by_u8(&f[n], MODE_LIT);
    by_le(&f[n++], op->len <= dstate_left(st) ? op->len : LEN_LIT_EXACT << 24 | op->len, 4);
    return n;
}

static size_t off_forms(const struct dstate *st, const struct blkv_pop *op, struct bytes *f)
{
    size_t n = 0;
    for (unsigned i = 0; i < st->nrecent; i++) {
        uint64_t ro, rl;
        dstate_recent(st, i, &ro, &rl);
        if (ro == op->offset) {
            f[n].n = 0;
            by_u8(&f[n], mode_byte(off_gen, O_RECENT, i));
            by_u8(&f[n++], 0);
            break;
        }
    }
    if (op->offset % st->grain == 0 && op->offset / st->grain < 256) {
        f[n].n = 0;
        by_u8(&f[n], mode_byte(off_gen, O_GRAIN, 0));
        by_u8(&f[n++], (uint8_t)(op->offset / st->grain));
    }
    f[n].n = 0;
    by_u8(&f[n], MODE_LIT);
    by_le(&f[n++], op->offset, 8);
    return n;
}

/* The bytes of one op: the shortest candidate that decodes back exactly,
 * else the literal form.  False if the op is left out. */
static bool encode_op(const struct dstate *st, const struct blkv_pop *op, struct bytes *out)
{
    struct bytes s = {.n = 0};

    by_u8(&s, op_byte(op->code, op->flags));
    if (dstate_at_limit(st, op->code)) { /* over the fuzz limit: the op all the same */
        by_u8(&s, ESC);
        if (blkv_opcode_ranged(op->code)) /* a write after a rule: two bytes */
            by_u8(&s, ESC);
    }
    switch (blkv_opinfo(op->code)->operand) {
    case BLKV_OPND_RANGE: {
        struct bytes lf[4], of[3];
        size_t nl = len_forms(st, op, lf), no = off_forms(st, op, of);
        for (size_t i = 0; i < nl; i++) {
            for (size_t j = 0; j < no; j++) {
                struct bytes t = s;
                by_cat(&t, &lf[i]);
                by_cat(&t, &of[j]);
                if (try_op(st, &t, op)) {
                    *out = t;
                    return true;
                }
            }
        }
        by_cat(&s, &lf[nl - 1]);
        by_cat(&s, &of[no - 1]);
        break;
    }
    case BLKV_OPND_REQ:
        if (!st->nsub)
            return false;
        if (op->arg < st->nsub && st->nsub - 1 - op->arg < CANCEL_WINDOW) {
            by_u8(&s, (uint8_t)(st->nsub - 1 - op->arg));
        } else {
            by_u8(&s, ESC);
            by_le(&s, op->arg, 4);
        }
        break;
    case BLKV_OPND_STEP:
        by_u8(&s, (uint8_t)op->arg);
        if (op->err == 0) {
            by_u8(&s, 0);
        } else {
            unsigned i;
            for (i = 0; i < 16 && step_err_tab[i] != op->err; i++)
                ;
            if (i < 16) {
                by_u8(&s, (uint8_t)(STEP_ERR_FIRST + i));
            } else {
                by_u8(&s, ESC);
                by_le(&s, op->err, 2);
            }
        }
        break;
    case BLKV_OPND_CRASH:
        by_u8(&s, (uint8_t)op->arg);
        break;
    case BLKV_OPND_FAULT: {
        unsigned i;
        if (op->arg >= 1 && op->arg < BLKV_EV__STANDARD) {
            by_u8(&s, (uint8_t)(op->arg - 1));
        } else if (op->arg >= BLKV_EV__STANDARD && op->arg < BLKV_EV__STANDARD + (ESC - FAULT_EV_OWN)) {
            by_u8(&s, (uint8_t)(FAULT_EV_OWN + op->arg - BLKV_EV__STANDARD));
        } else {
            by_u8(&s, ESC);
            by_u8(&s, (uint8_t)op->arg);
        }
        for (i = 0; i < 16 && step_err_tab[i] != op->err; i++)
            ;
        if (i < 16) {
            by_u8(&s, (uint8_t)i);
        } else {
            by_u8(&s, ESC);
            by_le(&s, op->err, 2);
        }
        if (op->len < 4) {
            by_u8(&s, (uint8_t)op->len);
        } else if (op->len % 8 == 0 && op->len / 8 <= (uint64_t)(ESC - FAULT_AFTER_BIG)) {
            by_u8(&s, (uint8_t)(FAULT_AFTER_BIG + op->len / 8 - 1));
        } else {
            by_u8(&s, ESC);
            by_le(&s, op->len, 2);
        }
        break;
    }
    case BLKV_OPND_NONE:
        break;
    }
    *out = s;
    return true;
}

uint8_t *blkv_program_encode(const struct blkv_program *p, size_t *size)
{
    struct wb w = {.d = NULL};
    struct dstate st;

    encode_config(&w, &p->cfg);
    /* the encoder tracks what the decoder will see, which is what it decodes */
    {
        struct rd r = {.data = w.d, .size = w.n};
        struct blkv_config cfg;
        if (!w.oom)
            decode_config(&r, &cfg);
        else
            cfg = p->cfg;
        dstate_init(&st, &cfg);
    }
    for (size_t i = 0; i < p->nops && !w.oom; i++) {
        struct bytes s;
        struct blkv_pop got;
        struct rd r;
        if (!encode_op(&st, &p->ops[i], &s))
            continue;
        r = (struct rd){.data = s.b, .size = s.n};
        if (decode_op(&st, &r, &got))
            dstate_note(&st, &got);
        wb_put(&w, s.b, s.n);
    }
    if (w.oom) { /* the config alone is never empty, so w.d is set otherwise */
        free(w.d);
        return NULL;
    }
    *size = w.n;
    return w.d;
}
