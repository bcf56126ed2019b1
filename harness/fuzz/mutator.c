/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mutator.c - a structure-aware libFuzzer mutator and crossover for blkv
 * programs (blkv_fuzz_mutate, blkv_fuzz_crossover; a target's
 * LLVMFuzzerCustomMutator and LLVMFuzzerCustomCrossOver call them, see
 * BLKV_FUZZ_MUTATOR).  Byte mutations are libFuzzer's LLVMFuzzerMutate
 * where it is linked in (a weak reference), else a few flips of our own.
 *
 * A mutation decodes the input (the decoder is total), edits the program at
 * op granularity -- insert, delete, duplicate, swap, change kind or flags,
 * nudge offsets and lengths to grain and sector boundaries or the device
 * end, retarget cancels and waits, change the config -- and encodes it
 * again.  One call in BYTE_MUTATE_ONE_IN, and every call whose encoding
 * would exceed MaxSize, falls back to libFuzzer's byte mutations, which the
 * total decoder keeps productive.  Crossover splices the op list of one
 * input into the other's.  Everything is a function of the inputs and the
 * Seed argument.
 *
 * Cancels and waits name requests by number (submit order), so while a
 * program is being edited every op carries an id and a cancel or wait holds
 * the id of the op it names; numbers are assigned again on the way out.  A
 * cancel or wait whose request is gone or now comes later names the latest
 * earlier request instead (or is dropped before the first request).
 */
#include <blkv/fuzz.h>

#include "util/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BYTE_MUTATE_ONE_IN 5 /* calls that go straight to byte mutation */
#define MAX_EDITS 4          /* structured edits per call: 1..MAX_EDITS */
#define NO_ID UINT32_MAX


/* An op being edited: the op, its id, and for cancel and wait the id of the
 * op it names (NO_ID: none). */
struct mop {
    struct blkv_pop op;
    uint32_t id, tid;
};

/* A program being edited. */
struct mprog {
    struct blkv_config cfg;
    struct mop *v;
    size_t n, cap;
    uint32_t next_id;
};

/* Make room for n ops; false on allocation failure. */
static bool mp_reserve(struct mprog *m, size_t n)
{
    struct mop *v;
    size_t cap = m->cap ? m->cap : 64;

    if (n <= m->cap)
        return true;
    while (cap < n)
        cap *= 2;
    v = realloc(m->v, cap * sizeof(*v));
    if (!v)
        return false;
    m->v = v, m->cap = cap;
    return true;
}

/* Load a decoded program: ids are op indices, request numbers become ids. */
static bool mp_load(struct mprog *m, const struct blkv_program *p)
{
    uint32_t *req_op = malloc((blkv_program_nreqs(p) + 1) * sizeof(*req_op));
    uint64_t nsub = 0;

    if (!req_op || !mp_reserve(m, p->nops + 1)) {
        free(req_op);
        return false;
    }
    m->cfg = p->cfg;
    m->cfg.driver = m->cfg.init_image = m->cfg.lower_image = NULL;
    m->n = p->nops;
    m->next_id = (uint32_t)p->nops;
    for (size_t i = 0; i < p->nops; i++) {
        struct mop *o = &m->v[i];
        o->op = p->ops[i];
        o->id = (uint32_t)i;
        o->tid = NO_ID;
        if (blkv_opcode_submits(o->op.code))
            req_op[nsub++] = (uint32_t)i;
        else if (blkv_opinfo(o->op.code)->operand == BLKV_OPND_REQ && o->op.arg < nsub)
            o->tid = req_op[o->op.arg];
    }
    free(req_op);
    return true;
}

/* Store into p (its ops replaced), numbering requests again. */
static int mp_store(const struct mprog *m, struct blkv_program *p)
{
    uint32_t *num = malloc(((size_t)m->next_id + 1) * sizeof(*num));
    uint32_t nsub = 0;
    int ret = 0;

    if (!num)
        return -ENOMEM;
    for (size_t i = 0; i < m->next_id; i++)
        num[i] = NO_ID;
    p->nops = 0;
    p->cfg.size = m->cfg.size, p->cfg.grain = m->cfg.grain, p->cfg.qd = m->cfg.qd;
    p->cfg.atomic = m->cfg.atomic, p->cfg.sched = m->cfg.sched, p->cfg.init = m->cfg.init;
    p->cfg.serialize = m->cfg.serialize, p->cfg.seed = m->cfg.seed;
    for (size_t i = 0; i < m->n && !ret; i++) {
        struct blkv_pop op = m->v[i].op;
        if (blkv_opcode_submits(op.code)) {
            num[m->v[i].id] = nsub++;
        } else if (blkv_opinfo(op.code)->operand == BLKV_OPND_REQ) {
            uint32_t t = m->v[i].tid;
            if (!nsub)
                continue; /* nothing to name yet: the encoder would drop it */
            op.arg = t < m->next_id && num[t] != NO_ID ? num[t] : nsub - 1;
        }
        ret = blkv_program_push(p, &op);
    }
    free(num);
    return ret;
}

/* ---- choosing values ----------------------------------------------------- */

static const uint64_t sizes[] = {
    4 * KiB, 64 * KiB, 1 * MiB, 1 * MiB + 512, 16 * MiB, 64 * MiB - 512,
    64 * MiB, 1 * GiB, 1 * TiB, 4 * TiB, BLKV_MAX_DEVICE_SIZE,
};
static const uint32_t qds[] = {1, 2, 3, 4, 8, 16, 32, 64, 256};
static const uint16_t errs[] = {EIO, EIO, ENOSPC, ECANCELED, EPERM, EAGAIN, ENOMEM, EROFS};

/* Uniform in [0, n); n > 0. */
static uint64_t below(struct blkv_rng *r, uint64_t n)
{
    return blkv_rng_below(r, n);
}

/* True one time in n. */
static bool one_in(struct blkv_rng *r, uint64_t n)
{
    return blkv_rng_below(r, n) == 0;
}

/* A request length biased to sectors, the grain and its neighbours. */
static uint64_t pick_len(struct blkv_rng *r, const struct blkv_config *c)
{
    uint64_t g = c->grain, len;

    switch (below(r, 9)) {
    case 0: len = (1 + below(r, 16)) * 512; break;
    case 1: len = g; break;
    case 2: len = g + 512; break;
    case 3: len = g > 512 ? g - 512 : g + 512; break;
    case 4: len = (2 + below(r, 3)) * g; break;
    case 5: len = 1 + below(r, 7); break;
    case 6: len = 4096; break;
    case 7: len = 1 + below(r, 64 * KiB); break;
    /* the largest request costs milliseconds to write and verify: rarely */
    default: len = one_in(r, 50) ? BLKV_MAX_REQUEST : (1 + below(r, 128)) * 512; break;
    }
    return len > BLKV_MAX_REQUEST ? BLKV_MAX_REQUEST : len;
}

/* A ranged op of the program, or NULL if it has none. */
static struct blkv_pop *pick_ranged(struct blkv_rng *r, struct mprog *m)
{
    size_t start;
    if (!m->n)
        return NULL;
    start = below(r, m->n);
    for (size_t i = 0; i < m->n; i++) {
        struct blkv_pop *o = &m->v[(start + i) % m->n].op;
        if (blkv_opcode_ranged(o->code) && o->len)
            return o;
    }
    return NULL;
}

/* Clamp an offset into the binary form's range. */
static uint64_t clamp_off(uint64_t off)
{
    return off < BLKV_MAX_DEVICE_SIZE ? off : BLKV_MAX_DEVICE_SIZE - 512;
}

/* An offset for len bytes: grain and sector boundaries, the device end,
 * overlapping another request of the program, or anywhere. */
static uint64_t pick_off(struct blkv_rng *r, struct mprog *m, uint64_t len)
{
    const struct blkv_config *c = &m->cfg;
    uint64_t s = c->size, g = c->grain, ncl = (s + g - 1) / g;
    uint64_t k = below(r, 4) ? below(r, ncl < 64 ? ncl : 64) : below(r, ncl);
    const struct blkv_pop *o;

    switch (below(r, 10)) {
    case 0: return k * g;
    case 1: return k * g + 512;
    case 2: return k * g >= 512 ? k * g - 512 : 0;
    case 3: return clamp_off(k * g + g - len % g);
    case 4: return len <= s ? s - len : 0;
    case 5: return len < s ? s - len + 1 + below(r, len) : s;
    case 6: return clamp_off(k * g + 1 + below(r, g - 1));
    case 7: return below(r, s / 512) * 512;
    default:
        o = pick_ranged(r, m);
        if (!o)
            return k * g;
        switch (below(r, 5)) {
        case 0: return o->offset;
        case 1: return clamp_off(o->offset + o->len / 2);
        case 2: return o->offset >= len / 2 ? o->offset - len / 2 : 0;
        case 3: return clamp_off(o->offset + o->len);
        default: return clamp_off(o->offset + o->len >= len / 2 ? o->offset + o->len - len / 2 : 0);
        }
    }
}

/* The id of a random submit op before position pos, or NO_ID. */
static uint32_t pick_target(struct blkv_rng *r, const struct mprog *m, size_t pos)
{
    size_t n = 0, want;
    for (size_t i = 0; i < pos && i < m->n; i++)
        n += blkv_opcode_submits(m->v[i].op.code);
    if (!n)
        return NO_ID;
    /* mostly one of the last few */
    want = one_in(r, 4) ? below(r, n) : n - 1 - below(r, n < 4 ? n : 4);
    for (size_t i = 0; i < pos && i < m->n; i++)
        if (blkv_opcode_submits(m->v[i].op.code) && want-- == 0)
            return m->v[i].id;
    return NO_ID;
}

/* Flags for a new op that may carry `allowed`: FUA alone one time in six,
 * else any combination. */
static uint8_t pick_flags(struct blkv_rng *r, unsigned allowed)
{
    if (allowed == BLKV_P_FUA)
        return one_in(r, 6) ? BLKV_P_FUA : 0;
    return allowed ? (uint8_t)(below(r, allowed + 1) & allowed) : 0;
}

/* A fault rule: mostly a standard event, sometimes a driver's own; an
 * errno; once or always; a few I/Os spared. */
static void pick_fault(struct blkv_rng *r, struct blkv_pop *op)
{
    op->arg = one_in(r, 8) ? BLKV_EV__STANDARD + (uint32_t)below(r, 4)
                           : 1 + (uint32_t)below(r, BLKV_EV__STANDARD - 1);
    op->err = errs[below(r, ARRAY_SIZE(errs))];
    op->flags = one_in(r, 2) ? BLKV_P_ONCE : 0;
    op->len = one_in(r, 2) ? 0 : below(r, one_in(r, 4) ? 64 : 4);
}

/* A new op to go at position pos. */
static struct mop new_op(struct blkv_rng *r, struct mprog *m, size_t pos)
{
    struct mop o = {.id = m->next_id++, .tid = NO_ID};
    const struct blkv_opinfo *oi;
    uint64_t total = 0, k;

    for (unsigned c = 0; c < BLKV_P__COUNT; c++) /* by the op table's mutate weights */
        total += blkv_opinfo(c)->mutate_weight;
    k = below(r, total);
    for (o.op.code = 0; k >= blkv_opinfo(o.op.code)->mutate_weight; o.op.code++)
        k -= blkv_opinfo(o.op.code)->mutate_weight;
    oi = blkv_opinfo(o.op.code);
    switch (oi->operand) {
    case BLKV_OPND_RANGE:
        o.op.flags = pick_flags(r, oi->flags);
        o.op.len = pick_len(r, &m->cfg);
        o.op.offset = pick_off(r, m, o.op.len);
        break;
    case BLKV_OPND_REQ:
        o.tid = pick_target(r, m, pos);
        break;
    case BLKV_OPND_STEP:
        o.op.arg = (uint32_t)(one_in(r, 4) ? below(r, 256) : below(r, 4));
        o.op.err = one_in(r, 4) ? errs[below(r, ARRAY_SIZE(errs))] : 0;
        break;
    case BLKV_OPND_CRASH:
        o.op.arg = (uint32_t)below(r, 256);
        break;
    case BLKV_OPND_FAULT:
        pick_fault(r, &o.op);
        break;
    case BLKV_OPND_NONE:
        break;
    }
    return o;
}

/* ---- edits --------------------------------------------------------------- */

/* Insert 1..3 new ops at one place. */
static bool ed_insert(struct blkv_rng *r, struct mprog *m)
{
    size_t pos = below(r, m->n + 1), k = 1 + below(r, 3);
    if (!mp_reserve(m, m->n + k))
        return false;
    for (size_t i = 0; i < k; i++) {
        struct mop o = new_op(r, m, pos);
        memmove(&m->v[pos + 1], &m->v[pos], (m->n - pos) * sizeof(*m->v));
        m->v[pos++] = o;
        m->n++;
    }
    return true;
}

/* Delete a run of ops (short, or up to a quarter of a long program). */
static bool ed_delete(struct blkv_rng *r, struct mprog *m)
{
    size_t pos, k;
    if (!m->n)
        return false;
    pos = below(r, m->n);
    k = 1 + below(r, one_in(r, 4) && m->n >= 16 ? m->n / 4 : 3);
    if (k > m->n - pos)
        k = m->n - pos;
    memmove(&m->v[pos], &m->v[pos + k], (m->n - pos - k) * sizeof(*m->v));
    m->n -= k;
    return true;
}

/* Copy a run of 1..4 ops to another place; cancels and waits in the copy
 * that named ops of the run name their copies. */
static bool ed_duplicate(struct blkv_rng *r, struct mprog *m)
{
    struct mop run[4];
    size_t from, k, to;
    uint32_t first;

    if (!m->n)
        return false;
    from = below(r, m->n);
    k = 1 + below(r, 4);
    if (k > m->n - from)
        k = m->n - from;
    if (!mp_reserve(m, m->n + k))
        return false;
    memcpy(run, &m->v[from], k * sizeof(*run));
    first = m->next_id;
    for (size_t i = 0; i < k; i++) {
        for (size_t j = 0; j < i; j++)
            if (run[i].tid == m->v[from + j].id)
                run[i].tid = first + (uint32_t)j;
        run[i].id = first + (uint32_t)i;
    }
    m->next_id += (uint32_t)k;
    to = below(r, m->n + 1);
    memmove(&m->v[to + k], &m->v[to], (m->n - to) * sizeof(*m->v));
    memcpy(&m->v[to], run, k * sizeof(*run));
    m->n += k;
    return true;
}

/* Swap two ops (neighbours half the time). */
static bool ed_swap(struct blkv_rng *r, struct mprog *m)
{
    size_t i, j;
    struct mop t;
    if (m->n < 2)
        return false;
    i = below(r, m->n);
    j = one_in(r, 2) ? (i + 1) % m->n : below(r, m->n);
    t = m->v[i], m->v[i] = m->v[j], m->v[j] = t;
    return i != j;
}

/* Move an offset or length of a ranged op to a boundary or a neighbour. */
static bool ed_nudge(struct blkv_rng *r, struct mprog *m)
{
    struct blkv_pop *o = pick_ranged(r, m);
    uint64_t g = m->cfg.grain, s = m->cfg.size;

    if (!o)
        return false;
    switch (below(r, 12)) {
    case 0: o->offset -= o->offset % g; break;
    case 1: o->offset = clamp_off(o->offset - o->offset % g + g); break;
    case 2: o->offset = clamp_off(o->offset + 512); break;
    case 3: o->offset = o->offset >= 512 ? o->offset - 512 : 0; break;
    case 4: o->offset = clamp_off(o->offset + 1); break;
    case 5: o->offset -= o->offset % 512; break;
    case 6: o->offset = o->len <= s ? s - o->len : 0; break;
    case 7: o->offset = s > 512 ? s - 512 : 0; break;
    case 8: o->len = g - o->offset % g; break; /* end at the next boundary */
    case 9: o->len = o->len + 512 <= BLKV_MAX_REQUEST ? o->len + 512 : o->len; break;
    case 10: o->len = o->len > 512 ? o->len - 512 : 1 + below(r, o->len); break;
    default: o->len = pick_len(r, &m->cfg); break;
    }
    if (o->len > BLKV_MAX_REQUEST)
        o->len = BLKV_MAX_REQUEST;
    return true;
}

/* The op kinds with operand `opnd` into kinds; how many. */
static unsigned kinds_with(enum blkv_operand opnd, uint8_t kinds[BLKV_P__COUNT])
{
    unsigned n = 0;
    for (unsigned c = 0; c < BLKV_P__COUNT; c++)
        if (blkv_opinfo(c)->operand == opnd)
            kinds[n++] = (uint8_t)c;
    return n;
}

/* Change an op's kind among those with its operand (a ranged op's flags
 * with it), or a step's index or fault. */
static bool ed_kind(struct blkv_rng *r, struct mprog *m)
{
    uint8_t kinds[BLKV_P__COUNT];
    struct mop *o;
    unsigned n;

    if (!m->n)
        return false;
    o = &m->v[below(r, m->n)];
    switch (blkv_opinfo(o->op.code)->operand) {
    case BLKV_OPND_RANGE:
        n = kinds_with(BLKV_OPND_RANGE, kinds);
        o->op.code = kinds[below(r, n)];
        o->op.flags = (uint8_t)(below(r, blkv_opinfo(o->op.code)->flags + 1u) &
                                blkv_opinfo(o->op.code)->flags);
        return true;
    case BLKV_OPND_STEP:
        if (one_in(r, 2))
            o->op.err = o->op.err ? 0 : errs[below(r, ARRAY_SIZE(errs))];
        else
            o->op.arg = (uint32_t)below(r, one_in(r, 4) ? 256 : 4);
        return true;
    case BLKV_OPND_REQ: {
        /* another kind that names a request (cancel <-> wait) */
        unsigned self = 0;
        n = kinds_with(BLKV_OPND_REQ, kinds);
        while (kinds[self] != o->op.code)
            self++;
        o->op.code = n > 1 ? kinds[(self + 1 + below(r, n - 1)) % n] : o->op.code;
        if (one_in(r, 2))
            o->tid = pick_target(r, m, (size_t)(o - m->v));
        return true;
    }
    case BLKV_OPND_CRASH:
        o->op.arg = (uint32_t)below(r, 256);
        return true;
    case BLKV_OPND_FAULT:
        pick_fault(r, &o->op);
        return true;
    case BLKV_OPND_NONE:
        break;
    }
    *o = new_op(r, m, (size_t)(o - m->v));
    return true;
}

/* Change one config field. */
static bool ed_config(struct blkv_rng *r, struct mprog *m)
{
    struct blkv_config *c = &m->cfg;
    switch (below(r, 8)) {
    case 0: c->size = sizes[below(r, ARRAY_SIZE(sizes))]; break;
    case 1: c->grain = UINT32_C(512) << below(r, 13); break;
    case 2: c->qd = one_in(r, 4) ? 1 + (uint32_t)below(r, 256) : qds[below(r, ARRAY_SIZE(qds))]; break;
    case 3: c->sched = (uint8_t)((c->sched + 1 + below(r, 2)) % 3); break;
    case 4: c->seed = one_in(r, 2) ? c->seed + 1 : one_in(r, 2) ? below(r, 256) : blkv_rng_next(r); break;
    case 5: c->init = c->init == BLKV_INIT_ZERO ? BLKV_INIT_PATTERN : BLKV_INIT_ZERO; break;
    case 6: c->serialize = !c->serialize; break;
    default: c->atomic = (uint32_t[]){1, 512, 4096}[below(r, 3)]; break;
    }
    return true;
}

/* ---- entry points -------------------------------------------------------- */

/* libFuzzer's byte mutator; null where libFuzzer is not linked in. */
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size) __attribute__((weak));

/* Byte mutations: libFuzzer's, or else flip, set or append a few bytes. */
static size_t byte_mutate(uint8_t *data, size_t size, size_t max_size, struct blkv_rng *r)
{
    if (LLVMFuzzerMutate)
        return LLVMFuzzerMutate(data, size, max_size);
    if (size < max_size && (size == 0 || one_in(r, 4)))
        data[size++] = (uint8_t)blkv_rng_next(r);
    for (uint64_t k = 1 + below(r, 4); k && size; k--)
        data[below(r, size)] ^= (uint8_t)(1u << below(r, 8));
    return size;
}

static struct mprog M, M2;     /* reused: their arrays grow once */
static struct blkv_program P, Q;

/* Encode M into out if it fits in max bytes; its size, or 0. */
static size_t emit(uint8_t *out, size_t max)
{
    uint8_t *enc;
    size_t n = 0;

    if (mp_store(&M, &P))
        return 0;
    blkv_fuzz_fit_budget(&P); /* else the target would set it aside */
    enc = blkv_program_encode(&P, &n);
    if (!enc)
        return 0;
    if (n > max)
        n = 0;
    else
        memcpy(out, enc, n);
    free(enc);
    return n;
}

size_t blkv_fuzz_mutate(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
    static bool (*const edits[])(struct blkv_rng *, struct mprog *) = {
        /* as many ops removed as added on average, so inputs do not creep
         * up to MaxSize and slow every run */
        ed_insert, ed_insert, ed_delete, ed_delete, ed_delete, ed_duplicate, ed_swap,
        ed_nudge,  ed_nudge,  ed_nudge,  ed_kind,   ed_kind,   ed_config,
    };
    struct blkv_rng r;
    size_t n, k;
    bool changed = false;

    blkv_rng_seed(&r, seed * UINT64_C(0x9e3779b97f4a7c15) + 1);
    if (one_in(&r, BYTE_MUTATE_ONE_IN))
        return byte_mutate(data, size, max_size, &r);
    if (!P.ops)
        blkv_program_init(&P);
    if (blkv_program_decode(data, size, &P) || !mp_load(&M, &P))
        return byte_mutate(data, size, max_size, &r);
    k = 1 + below(&r, MAX_EDITS);
    for (size_t i = 0; i < k; i++)
        changed |= edits[below(&r, ARRAY_SIZE(edits))](&r, &M);
    if (!changed)
        ed_insert(&r, &M);
    n = emit(data, max_size);
    return n ? n : byte_mutate(data, size, max_size, &r);
}

/* Rescale b's offsets that lie past the device of config c. */
static void fit_offset(struct blkv_pop *o, const struct blkv_config *c)
{
    if (blkv_opcode_ranged(o->code) && o->len && o->offset >= c->size) {
        bool aligned = o->offset % 512 == 0;
        o->offset %= c->size;
        if (aligned)
            o->offset -= o->offset % 512;
    }
}

size_t blkv_fuzz_crossover(const uint8_t *data1, size_t size1, const uint8_t *data2,
                           size_t size2, uint8_t *out, size_t max_out_size, unsigned int seed)
{
    struct blkv_rng r;
    size_t cut, from, len, tail, n;

    blkv_rng_seed(&r, seed * UINT64_C(0xd1b54a32d192ed03) + 7);
    if (!P.ops)
        blkv_program_init(&P);
    if (!Q.ops)
        blkv_program_init(&Q);
    if (blkv_program_decode(data1, size1, &P) || blkv_program_decode(data2, size2, &Q) ||
        !mp_load(&M, &P) || !mp_load(&M2, &Q) || !mp_reserve(&M, M.n + M2.n))
        return 0;
    if (one_in(&r, 4))
        M.cfg = M2.cfg;
    /* M = M[0, cut) + M2[from, from+len) + maybe M[cut, n) */
    cut = below(&r, M.n + 1);
    from = below(&r, M2.n + 1);
    len = below(&r, M2.n - from + 1);
    tail = one_in(&r, 2) ? M.n - cut : 0;
    memmove(&M.v[cut + len], &M.v[cut], tail * sizeof(*M.v));
    for (size_t i = 0; i < len; i++) {
        struct mop o = M2.v[from + i];
        o.id += M.next_id;
        o.tid = o.tid == NO_ID ? NO_ID : o.tid + M.next_id;
        fit_offset(&o.op, &M.cfg);
        M.v[cut + i] = o;
    }
    M.next_id += M2.next_id;
    M.n = cut + len + tail;
    /* too big: give up the tail, then halve the spliced part */
    while (!(n = emit(out, max_out_size)) && M.n > cut) {
        if (tail) {
            M.n -= tail, tail = 0;
        } else {
            len /= 2;
            M.n = cut + len;
        }
    }
    return n;
}
