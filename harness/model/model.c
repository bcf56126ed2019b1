/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * model.c - the raw model (oracle): an interval map of candidate sources.
 *
 * The device [0, size) is always covered by extents: the first one starts
 * at 0 and each runs to the start of the next (or to the device end).  The
 * extents are kept twice: in a treap keyed by start, for O(log n) lookup,
 * insertion and removal (all iterative: no recursion whatever the input),
 * and in a singly linked list in address order, for walking a range.
 *
 * Every extent holds its candidates in submit order (each source is
 * submitted once, so two lists of the same sources are in the same order
 * and identical lists compare with memcmp):
 *  - live candidates (evicted_at == BLKV_TIME_NEVER);
 *  - "kept" candidates: evicted at e, but a read in flight was submitted
 *    before e and may still see them;
 *  - at most MODEL_GHOSTS "ghosts": the most recently evicted candidates no
 *    read can see any more, only for reports.
 * Up to INLINE_CANDS candidates are stored in the node itself (the common
 * case: one live candidate plus a ghost or two), longer lists on the heap.
 * Adjacent extents with identical lists are merged whenever a range is
 * touched, so rewriting the same range does not fragment the map.
 *
 * Evicted candidates become ghosts lazily: when their extent is touched, and
 * in a whole-map sweep after reads have ended, paid for by as much work
 * since the last one as the map is big.  So memory stays proportional to the
 * extents plus what reads in flight may still see.  (That relies on every
 * read checked or abandoned at s having been started at s.)
 *
 * A read is checked in three passes over the extents it covers: every byte
 * explained (word-wise against each visible candidate; one call over the
 * whole extent when there is only one), then each atomicity unit, then the
 * observation rule, which only has work where several candidates are
 * visible.  Only the last pass changes the map.
 *
 * Power loss (cfg.crash): an evicted candidate is kept, not pruned, while it
 * may still be what the medium holds, so that a crash can bring it back.
 * It is "dead" (CAND_DEAD) once a durable write over its bytes was
 * submitted after its source completed: that write certainly replaced it
 * for good.  Sources become durable when they complete with FUA or a flush
 * submitted after their completion completes (blkv_model_flush).  At a
 * crash every candidate that is not dead is live again, and the sources in
 * flight become "maybe" (failed) ones.
 *
 * Allocation failure after blkv_model_new() aborts with a message: a harness
 * that cannot allocate a few bytes cannot go on checking anyway.
 */
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/pattern.h"

#define INLINE_CANDS 3
#define MODEL_GHOSTS 2
#define SCRATCH_BYTES 65536 /* image bytes compared per image_read call */
#define CHUNK 256           /* expected bytes generated per step on slow paths */

struct cand {
    uint64_t evicted_at; /* BLKV_TIME_NEVER while live */
    uint64_t by;         /* evicting source or read request */
    uint32_t src;
    uint32_t why; /* enum blkv_evict, or'd with CAND_DEAD */
};

/* A durable write replaced this candidate: no crash brings it back. */
#define CAND_DEAD 0x100u
#define CAND_WHY(c) ((enum blkv_evict)((c)->why & 0xffu))

struct ext {
    uint64_t start;
    struct ext *l, *r; /* treap children */
    struct ext *next;  /* following extent in address order */
    uint32_t prio;     /* treap priority (max-heap) */
    uint32_t n;        /* candidates; inline when n <= INLINE_CANDS */
    union {
        struct cand in[INLINE_CANDS];
        struct cand *heap; /* capacity: power of 2 >= n */
    } c;
};

struct src_slot {
    uint64_t submitted, completed, off, len;
    uint8_t kind, status, known;
    uint8_t durable; /* completed with FUA, or covered by a flush since */
    uint64_t durable_at;
};

/* One piece of an atomicity unit: the part of one extent inside it. */
struct useg {
    uint64_t a, b;
    struct ext *e;
    bool done; /* explained by a source peeled off already */
};

struct blkv_model {
    struct blkv_model_config cfg;
    struct ext *root, *head;
    size_t nexts, ncands;
    size_t heap_bytes;  /* candidate arrays on the heap */
    size_t churn;       /* candidates added or evicted since the last sweep */
    size_t reads_ended; /* reads ended since the last sweep */
    uint64_t rng;
    struct src_slot *srcs;
    size_t srcs_cap;
    uint64_t *reads; /* submit times of reads in flight, sorted */
    size_t nreads, reads_cap;
    uint32_t *tmp; /* scratch list of sources */
    size_t tmp_cap;
    struct useg *segs; /* scratch pieces of an atomicity unit */
    size_t segs_cap;
    uint8_t *scratch; /* SCRATCH_BYTES for image comparisons, or NULL */
    uint32_t *undurable; /* cfg.crash: sources completed, not durable yet */
    size_t nundurable, undurable_cap;
    uint64_t crashes;
};

/* ---- allocation ---------------------------------------------------------- */

static void model_oom(void)
{
    fprintf(stderr, "blkv: model: out of memory\n");
    abort();
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        model_oom();
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p)
        model_oom();
    return p;
}

/* ---- sources --------------------------------------------------------------- */

/* The slot of source w, or NULL if w was never submitted. */
static inline const struct src_slot *src_get(const struct blkv_model *m, uint32_t w)
{
    return w < m->srcs_cap && m->srcs[w].known ? &m->srcs[w] : NULL;
}

static inline enum blkv_src_kind src_kind(const struct blkv_model *m, uint32_t w)
{
    const struct src_slot *sl = src_get(m, w);
    return sl ? (enum blkv_src_kind)sl->kind : BLKV_SRC_ANY;
}

/* Whether source w completed (successfully or not) before time s. */
static inline bool src_completed_before(const struct blkv_model *m, uint32_t w, uint64_t s)
{
    const struct src_slot *sl = src_get(m, w);
    return sl && sl->status != BLKV_SRC_INFLIGHT && sl->completed < s;
}

/* Length of the prefix of buf that equals what source src has at off. */
static size_t src_match(struct blkv_model *m, uint32_t src, const uint8_t *buf, uint64_t off,
                        size_t len)
{
    switch (src_kind(m, src)) {
    case BLKV_SRC_PATTERN:
        return blkv_pattern_match(buf, src, off, len);
    case BLKV_SRC_ZEROES:
        return blkv_zero_match(buf, len);
    case BLKV_SRC_IMAGE:
        if (!m->cfg.image_read)
            return blkv_zero_match(buf, len);
        if (!m->scratch)
            m->scratch = xmalloc(SCRATCH_BYTES);
        for (size_t done = 0; done < len;) {
            size_t n = len - done < SCRATCH_BYTES ? len - done : SCRATCH_BYTES;
            m->cfg.image_read(m->cfg.image_opaque, m->scratch, n, off + done);
            if (memcmp(m->scratch, buf + done, n) != 0) {
                size_t i = 0;
                while (m->scratch[i] == buf[done + i])
                    i++;
                return done + i;
            }
            done += n;
        }
        return len;
    case BLKV_SRC_ANY:
        break;
    }
    return len;
}

/* Length of the prefix of buf in which every byte differs from what source
 * src has there.  Only on slow paths (observations, mismatch reports). */
__attribute__((noinline)) static size_t src_differ(struct blkv_model *m, uint32_t src, const uint8_t *buf, uint64_t off,
                         size_t len)
{
    enum blkv_src_kind kind = src_kind(m, src);
    uint8_t exp[CHUNK];

    if (kind == BLKV_SRC_ANY)
        return 0;
    for (size_t done = 0; done < len;) {
        size_t n = len - done < CHUNK ? len - done : CHUNK, i = 0;
        blkv_model_source_bytes(m, src, kind, exp, off + done, n);
        /* eight bytes at a time: a zero byte in x ^ y is an equal byte */
        for (; i + 8 <= n; i += 8) {
            uint64_t x, y, d;
            memcpy(&x, exp + i, 8);
            memcpy(&y, buf + done + i, 8);
            d = x ^ y;
            if ((d - UINT64_C(0x0101010101010101)) & ~d & UINT64_C(0x8080808080808080))
                break;
        }
        for (; i < n; i++)
            if (exp[i] == buf[done + i])
                return done + i;
        done += n;
    }
    return len;
}

/* ---- the treap --------------------------------------------------------------- */

/* The extent containing off (off < size). */
static struct ext *tree_find(const struct blkv_model *m, uint64_t off)
{
    struct ext *n = m->root, *best = m->head;

    while (n) {
        if (n->start <= off) {
            best = n;
            n = n->r;
        } else {
            n = n->l;
        }
    }
    return best;
}

/* Insert x (whose start is not in the tree yet). */
static void tree_insert(struct blkv_model *m, struct ext *x)
{
    struct ext **p = &m->root, *t, **l, **r;

    while (*p && (*p)->prio >= x->prio)
        p = x->start < (*p)->start ? &(*p)->l : &(*p)->r;
    /* split the subtree at *p around x->start into x's children */
    t = *p, l = &x->l, r = &x->r;
    while (t) {
        if (t->start < x->start) {
            *l = t;
            l = &t->r;
            t = t->r;
        } else {
            *r = t;
            r = &t->l;
            t = t->l;
        }
    }
    *l = *r = NULL;
    *p = x;
}

/* Remove x from the tree. */
static void tree_remove(struct blkv_model *m, struct ext *x)
{
    struct ext **p = &m->root, *a = x->l, *b = x->r;

    while (*p != x)
        p = x->start < (*p)->start ? &(*p)->l : &(*p)->r;
    /* join x's children: every key of a is below every key of b */
    while (a && b) {
        if (a->prio >= b->prio) {
            *p = a;
            p = &a->r;
            a = a->r;
        } else {
            *p = b;
            p = &b->l;
            b = b->l;
        }
    }
    *p = a ? a : b;
}

/* ---- extents ------------------------------------------------------------------ */

static inline struct cand *ext_cands(struct ext *e)
{
    return e->n <= INLINE_CANDS ? e->c.in : e->c.heap;
}

static inline const struct cand *ext_ccands(const struct ext *e)
{
    return e->n <= INLINE_CANDS ? e->c.in : e->c.heap;
}

static inline uint64_t ext_end(const struct blkv_model *m, const struct ext *e)
{
    return e->next ? e->next->start : m->cfg.size;
}

static inline bool cand_live(const struct cand *c)
{
    return c->evicted_at == BLKV_TIME_NEVER;
}

static inline bool cand_visible(const struct cand *c, uint64_t s)
{
    return c->evicted_at > s;
}

/* Heap capacity for n candidates (0: inline). */
static size_t cand_cap(uint32_t n)
{
    size_t c = 2 * INLINE_CANDS;

    if (n <= INLINE_CANDS)
        return 0;
    while (c < n)
        c *= 2;
    return c;
}

/* Set e's candidate count to n, keeping the first min(old, n) entries; the
 * caller fills the rest and keeps the counters. */
static void ext_resize(struct blkv_model *m, struct ext *e, uint32_t n)
{
    size_t oc = cand_cap(e->n), nc = cand_cap(n);

    if (oc != nc) {
        if (nc == 0) {
            struct cand *h = e->c.heap;
            memcpy(e->c.in, h, n * sizeof(*h));
            free(h);
        } else if (oc == 0) {
            struct cand *h = xmalloc(nc * sizeof(*h));
            memcpy(h, e->c.in, e->n * sizeof(*h));
            e->c.heap = h;
        } else {
            e->c.heap = xrealloc(e->c.heap, nc * sizeof(struct cand));
        }
        m->heap_bytes = m->heap_bytes - oc * sizeof(struct cand) + nc * sizeof(struct cand);
    }
    e->n = n;
}

static uint32_t model_rand(struct blkv_model *m)
{
    m->rng ^= m->rng << 13;
    m->rng ^= m->rng >> 7;
    m->rng ^= m->rng << 17;
    return (uint32_t)(m->rng >> 32);
}

/* A new extent at start with a copy of n candidates (not yet linked). */
static struct ext *ext_alloc(struct blkv_model *m, uint64_t start, const struct cand *c,
                             uint32_t n)
{
    struct ext *e = xmalloc(sizeof(*e));

    e->start = start;
    e->l = e->r = e->next = NULL;
    e->prio = model_rand(m);
    e->n = 0;
    ext_resize(m, e, n);
    memcpy(ext_cands(e), c, n * sizeof(*c));
    m->nexts++;
    m->ncands += n;
    return e;
}

/* Free an extent already unlinked from the list and the tree. */
static void ext_free(struct blkv_model *m, struct ext *e)
{
    m->nexts--;
    m->ncands -= e->n;
    ext_resize(m, e, 0);
    free(e);
}

/* Split e (which contains p, e->start < p) at p; returns the new right part. */
static struct ext *ext_split(struct blkv_model *m, struct ext *e, uint64_t p)
{
    struct ext *x = ext_alloc(m, p, ext_cands(e), e->n);

    x->next = e->next;
    e->next = x;
    tree_insert(m, x);
    return x;
}

/* The extent starting at p, splitting one if needed; NULL if p >= size. */
static struct ext *split_at(struct blkv_model *m, uint64_t p)
{
    struct ext *e;

    if (p >= m->cfg.size)
        return NULL;
    e = tree_find(m, p);
    return e->start == p ? e : ext_split(m, e, p);
}

/* Append candidate c to e. */
static void ext_append(struct blkv_model *m, struct ext *e, const struct cand *c)
{
    ext_resize(m, e, e->n + 1);
    ext_cands(e)[e->n - 1] = *c;
    m->ncands++;
    m->churn++;
}

/* Mark candidate c evicted. */
static void cand_evict(struct blkv_model *m, struct cand *c, uint64_t t, enum blkv_evict why,
                       uint64_t by)
{
    c->evicted_at = t;
    c->why = why | (c->why & CAND_DEAD);
    c->by = by;
    m->churn++;
}

/* Whether an evicted candidate must be kept for a crash to bring back. */
static inline bool cand_keep(const struct blkv_model *m, const struct cand *c)
{
    return m->cfg.crash && !(c->why & CAND_DEAD);
}

/* Submit time of the oldest read in flight (UINT64_MAX if none). */
static inline uint64_t oldest_read(const struct blkv_model *m)
{
    return m->nreads ? m->reads[0] : UINT64_MAX;
}

/*
 * Drop the evicted candidates of e that no read in flight can see, except
 * the MODEL_GHOSTS most recently evicted of them.
 */
static void ext_prune(struct blkv_model *m, struct ext *e)
{
    struct cand *c;
    uint64_t oldest;
    uint32_t n = e->n, unseen = 0, g0 = UINT32_MAX, g1 = UINT32_MAX, j = 0;

    if (n <= MODEL_GHOSTS)
        return;
    c = ext_cands(e);
    oldest = oldest_read(m);
    /* an evicted candidate is unseen if no read in flight started before
     * its eviction; g0, g1: the two most recently evicted unseen ones */
    for (uint32_t i = 0; i < n; i++) {
        if (cand_live(&c[i]) || c[i].evicted_at > oldest || cand_keep(m, &c[i]))
            continue;
        unseen++;
        if (g0 == UINT32_MAX || c[i].evicted_at >= c[g0].evicted_at) {
            g1 = g0;
            g0 = i;
        } else if (g1 == UINT32_MAX || c[i].evicted_at >= c[g1].evicted_at) {
            g1 = i;
        }
    }
    if (unseen <= MODEL_GHOSTS)
        return;
    for (uint32_t i = 0; i < n; i++) {
        bool drop = !cand_live(&c[i]) && c[i].evicted_at <= oldest && !cand_keep(m, &c[i]) &&
                    i != g0 && i != g1;
        if (!drop)
            c[j++] = c[i];
    }
    m->ncands -= n - j;
    ext_resize(m, e, j);
}

/* Whether two extents have identical candidate lists. */
static bool ext_same(const struct ext *a, const struct ext *b)
{
    return a->n == b->n && memcmp(ext_ccands(a), ext_ccands(b), a->n * sizeof(struct cand)) == 0;
}

/*
 * Prune e and the extents after it that start below lim, merging each with
 * its predecessor when their lists are identical.
 */
static void merge_range(struct blkv_model *m, struct ext *e, uint64_t lim)
{
    struct ext *x;

    ext_prune(m, e);
    while ((x = e->next) && x->start < lim) {
        ext_prune(m, x);
        if (ext_same(e, x)) {
            e->next = x->next;
            tree_remove(m, x);
            ext_free(m, x);
        } else {
            e = x;
        }
    }
}

/*
 * Prune and merge the whole map when reads have ended (so candidates kept
 * for them in extents nobody touched since may be dropped) and the
 * candidates added or evicted since the last sweep outnumber the map: the
 * sweep's cost is then paid for by that work.
 */
static void maybe_sweep(struct blkv_model *m)
{
    if (!m->reads_ended || m->churn <= m->ncands + m->nexts + 4096)
        return;
    merge_range(m, m->head, UINT64_MAX);
    m->churn = 0;
    m->reads_ended = 0;
}

/* Clip [off, off+len) to the device: [*a, *b); false if empty. */
static bool clip(const struct blkv_model *m, uint64_t off, uint64_t len, uint64_t *a,
                 uint64_t *b)
{
    if (off >= m->cfg.size || len == 0)
        return false;
    *a = off;
    *b = len > m->cfg.size - off ? m->cfg.size : off + len;
    return true;
}

/* ---- life cycle ------------------------------------------------------------------ */

/* Make room for source w in the table. */
static void srcs_reserve(struct blkv_model *m, uint32_t w)
{
    size_t cap = m->srcs_cap ? m->srcs_cap : 64;

    if (w < m->srcs_cap)
        return;
    while (cap <= w)
        cap *= 2;
    m->srcs = xrealloc(m->srcs, cap * sizeof(*m->srcs));
    memset(m->srcs + m->srcs_cap, 0, (cap - m->srcs_cap) * sizeof(*m->srcs));
    m->srcs_cap = cap;
}

struct blkv_model *blkv_model_new(const struct blkv_model_config *cfg)
{
    struct blkv_model *m;
    struct ext *e;
    unsigned a = cfg->atomic ? cfg->atomic : 1;

    if ((a & (a - 1)) || (cfg->initial == BLKV_SRC_IMAGE && !cfg->image_read) ||
        cfg->initial == BLKV_SRC_ANY)
        return NULL;
    m = calloc(1, sizeof(*m));
    e = calloc(1, sizeof(*e));
    if (!m || !e)
        goto fail;
    m->cfg = *cfg;
    m->cfg.atomic = a;
    m->rng = UINT64_C(0x9e3779b97f4a7c15);
    m->srcs_cap = 64;
    m->srcs = calloc(m->srcs_cap, sizeof(*m->srcs));
    if (!m->srcs)
        goto fail;
    m->srcs[BLKV_SRC_INITIAL] = (struct src_slot){
        .submitted = 0, .completed = 0, .off = 0, .len = cfg->size,
        .kind = (uint8_t)cfg->initial, .status = BLKV_SRC_DONE, .known = 1};
    /* the whole device starts as one extent holding the initial content */
    e->prio = model_rand(m);
    e->n = 1;
    e->c.in[0] = (struct cand){.evicted_at = BLKV_TIME_NEVER, .src = BLKV_SRC_INITIAL};
    m->root = m->head = e;
    m->nexts = 1;
    m->ncands = 1;
    return m;
fail:
    free(m);
    free(e);
    return NULL;
}

void blkv_model_free(struct blkv_model *m)
{
    struct ext *e, *next;

    if (!m)
        return;
    for (e = m->head; e; e = next) {
        next = e->next;
        if (e->n > INLINE_CANDS)
            free(e->c.heap);
        free(e);
    }
    free(m->srcs);
    free(m->reads);
    free(m->tmp);
    free(m->segs);
    free(m->scratch);
    free(m->undurable);
    free(m);
}

/* ---- writes ------------------------------------------------------------------------ */

void blkv_model_submit(struct blkv_model *m, uint32_t w, enum blkv_src_kind kind, uint64_t off,
                       uint64_t len, uint64_t t)
{
    struct cand c = {.evicted_at = BLKV_TIME_NEVER, .src = w, .why = BLKV_EVICT_NONE};
    struct ext *first, *e;
    uint64_t a, b;

    if (w <= BLKV_SRC_INITIAL || (w < m->srcs_cap && m->srcs[w].known))
        return; /* not a request's source, or submitted twice */
    if (w > BLKV_SRC_MAX) {
        fprintf(stderr, "blkv: model: source %u out of range\n", w);
        abort();
    }
    srcs_reserve(m, w);
    m->srcs[w] = (struct src_slot){.submitted = t, .completed = BLKV_TIME_NEVER, .off = off,
                                   .len = len, .kind = (uint8_t)kind,
                                   .status = BLKV_SRC_INFLIGHT, .known = 1};
    if (!clip(m, off, len, &a, &b))
        return;
    first = split_at(m, a);
    for (e = first; e && e->start < b; e = e->next) {
        if (ext_end(m, e) > b)
            ext_split(m, e, b);
        ext_append(m, e, &c);
    }
    /* w is in every extent of [a, b) and nowhere else: only merges inside */
    merge_range(m, first, b);
}

/* Evict from e every live candidate but w that completed before sw (w's submit). */
static void evict_older(struct blkv_model *m, struct ext *e, uint32_t w, uint64_t sw, uint64_t t)
{
    struct cand *c = ext_cands(e);

    for (uint32_t i = 0; i < e->n; i++)
        if (c[i].src != w && cand_live(&c[i]) && src_completed_before(m, c[i].src, sw))
            cand_evict(m, &c[i], t, BLKV_EVICT_WRITE, w);
}

void blkv_model_complete(struct blkv_model *m, uint32_t w, bool ok, bool evicts, uint64_t t)
{
    struct src_slot *sl = w > BLKV_SRC_INITIAL && w < m->srcs_cap ? &m->srcs[w] : NULL;
    struct ext *first, *e;
    uint64_t a, b;

    if (!sl || !sl->known || sl->status != BLKV_SRC_INFLIGHT)
        return;
    sl->completed = t;
    sl->status = ok ? BLKV_SRC_DONE : BLKV_SRC_FAILED;
    if (ok && m->cfg.crash) { /* durable at the next flush (or now, with FUA) */
        if (m->nundurable == m->undurable_cap) {
            m->undurable_cap = m->undurable_cap ? 2 * m->undurable_cap : 64;
            m->undurable = xrealloc(m->undurable, m->undurable_cap * sizeof(*m->undurable));
        }
        m->undurable[m->nundurable++] = w;
    }
    if (!ok || !evicts || !clip(m, sl->off, sl->len, &a, &b))
        return;
    /* w is live over all of [a, b) (nothing evicts a request in flight), so
     * [a, b) is already bounded by extent edges and no merge crosses them */
    first = split_at(m, a);
    for (e = first; e && e->start < b; e = e->next) {
        if (ext_end(m, e) > b)
            ext_split(m, e, b);
        evict_older(m, e, w, sl->submitted, t);
    }
    merge_range(m, first, b);
    maybe_sweep(m);
}

/* ---- durability and crashes ------------------------------------------------------ */

/* Source w is durable: every candidate over its range whose source completed
 * before w was submitted is dead (w replaced it on the medium). */
static void make_durable(struct blkv_model *m, uint32_t w)
{
    struct src_slot *sl = &m->srcs[w];
    struct ext *e;
    uint64_t a, b;

    if (sl->durable)
        return;
    sl->durable = 1;
    if (!clip(m, sl->off, sl->len, &a, &b))
        return;
    for (e = tree_find(m, a); e && e->start < b; e = e->next) {
        struct cand *c = ext_cands(e);
        for (uint32_t i = 0; i < e->n; i++)
            if (c[i].src != w && src_completed_before(m, c[i].src, sl->submitted))
                c[i].why |= CAND_DEAD;
    }
    merge_range(m, tree_find(m, a), b);
}

void blkv_model_durable(struct blkv_model *m, uint32_t w)
{
    if (m->cfg.crash && w > BLKV_SRC_INITIAL && w < m->srcs_cap && m->srcs[w].known &&
        m->srcs[w].status == BLKV_SRC_DONE)
        make_durable(m, w);
}

void blkv_model_flush(struct blkv_model *m, uint64_t s, uint64_t t)
{
    size_t j = 0;

    (void)t;
    if (!m->cfg.crash)
        return;
    for (size_t i = 0; i < m->nundurable; i++) {
        uint32_t w = m->undurable[i];
        if (m->srcs[w].completed < s)
            make_durable(m, w);
        else if (!m->srcs[w].durable)
            m->undurable[j++] = w;
    }
    m->nundurable = j;
}

void blkv_model_crash(struct blkv_model *m, uint64_t t)
{
    if (!m->cfg.crash)
        return;
    /* requests in flight never complete: they may or may not have landed */
    for (size_t w = BLKV_SRC_INITIAL + 1; w < m->srcs_cap; w++)
        if (m->srcs[w].known && m->srcs[w].status == BLKV_SRC_INFLIGHT) {
            m->srcs[w].status = BLKV_SRC_FAILED;
            m->srcs[w].completed = t;
        }
    /* every value the medium may hold is a candidate again */
    for (struct ext *e = m->head; e; e = e->next) {
        struct cand *c = ext_cands(e);
        for (uint32_t i = 0; i < e->n; i++)
            if (!cand_live(&c[i]) && !(c[i].why & CAND_DEAD)) {
                c[i].evicted_at = BLKV_TIME_NEVER;
                c[i].why = BLKV_EVICT_NONE;
                c[i].by = 0;
                m->churn++;
            }
    }
    m->nreads = 0; /* reads in flight are gone with the rest */
    m->nundurable = 0;
    m->crashes++;
    merge_range(m, m->head, UINT64_MAX);
}

/* ---- reads --------------------------------------------------------------------- */

void blkv_model_read_start(struct blkv_model *m, uint64_t s)
{
    size_t i;

    if (m->nreads == m->reads_cap) {
        m->reads_cap = m->reads_cap ? 2 * m->reads_cap : 16;
        m->reads = xrealloc(m->reads, m->reads_cap * sizeof(*m->reads));
    }
    /* reads start in time order: this is almost always an append */
    for (i = m->nreads; i > 0 && m->reads[i - 1] > s; i--)
        m->reads[i] = m->reads[i - 1];
    m->reads[i] = s;
    m->nreads++;
}

void blkv_model_read_abandon(struct blkv_model *m, uint64_t s)
{
    size_t lo = 0, hi = m->nreads;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->reads[mid] < s)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < m->nreads && m->reads[lo] == s) {
        memmove(m->reads + lo, m->reads + lo + 1, (m->nreads - lo - 1) * sizeof(*m->reads));
        m->nreads--;
        m->reads_ended++;
    }
}

/* The extent containing pos, walking forward from e. */
static inline struct ext *ext_walk(const struct blkv_model *m, struct ext *e, uint64_t pos)
{
    while (ext_end(m, e) <= pos)
        e = e->next;
    return e;
}

/* Number of candidates of e visible to a read submitted at s, counting to 2;
 * *first is the index of the first one. */
static uint32_t ext_visible(const struct ext *e, uint64_t s, uint32_t *first)
{
    const struct cand *c = ext_ccands(e);
    uint32_t nv = 0;

    for (uint32_t i = 0; i < e->n && nv < 2; i++)
        if (cand_visible(&c[i], s)) {
            if (!nv)
                *first = i;
            nv++;
        }
    return nv;
}

/* Whether source src is a candidate of e visible to s. */
static bool ext_has_visible(const struct ext *e, uint32_t src, uint64_t s)
{
    const struct cand *c = ext_ccands(e);

    for (uint32_t i = 0; i < e->n; i++)
        if (c[i].src == src)
            return cand_visible(&c[i], s);
    return false;
}

/* Whether some candidate of e (the extent holding pos) visible to s has the
 * byte buf[pos - off]. */
static bool byte_explained(struct blkv_model *m, const struct ext *e, uint64_t pos,
                           const uint8_t *buf, uint64_t off, uint64_t s)
{
    const struct cand *c = ext_ccands(e);

    for (uint32_t i = 0; i < e->n; i++)
        if (cand_visible(&c[i], s) && !src_differ(m, c[i].src, buf + (pos - off), pos, 1))
            return true;
    return false;
}

/* Explained bytes in a row that end an unexplained run: fewer amid bad data
 * are taken to match by chance (a zero byte where zeros are expected, one
 * byte of 256 of any data), not to end the damage. */
#define RUN_END_EXPLAINED 8

/*
 * Length of the run of bad bytes from q (in extent e) to b: up to the last
 * byte no candidate visible to s explains before RUN_END_EXPLAINED explained
 * bytes in a row (or b).  buf holds the read data at device offset off.
 */
static uint64_t unexplained_run(struct blkv_model *m, struct ext *e, uint64_t q, uint64_t b,
                                const uint8_t *buf, uint64_t off, uint64_t s)
{
    uint64_t end = q + 1, pos = q; /* end: past the last bad byte seen */

    while (pos < b) {
        uint64_t se, d, k;
        const struct cand *c;

        e = ext_walk(m, e, pos);
        se = ext_end(m, e) < b ? ext_end(m, e) : b;
        d = se - pos;
        c = ext_cands(e);
        for (uint32_t i = 0; i < e->n && d; i++)
            if (cand_visible(&c[i], s))
                d = src_differ(m, c[i].src, buf + (pos - off), pos, d);
        if (d) { /* bad up to pos + d */
            pos += d;
            end = pos;
            continue;
        }
        for (k = 0; pos + k < b && k < RUN_END_EXPLAINED; k++) {
            e = ext_walk(m, e, pos + k);
            if (!byte_explained(m, e, pos + k, buf, off, s))
                break;
        }
        if (k == RUN_END_EXPLAINED || pos + k == b)
            break;
        pos += k;
    }
    return end - q;
}

/*
 * Phase 1 of a read check: every byte of [a, b) must be the byte of some
 * candidate visible to s.  buf holds the read data at device offset off.
 */
static bool check_bytes(struct blkv_model *m, uint64_t a, uint64_t b, const uint8_t *buf,
                        uint64_t off, uint64_t s, struct blkv_mismatch *mm)
{
    struct ext *e = tree_find(m, a);

    for (uint64_t pos = a; pos < b; e = e->next) {
        uint64_t se = ext_end(m, e) < b ? ext_end(m, e) : b;
        const struct cand *c = ext_cands(e);
        uint32_t first = 0, nv = ext_visible(e, s, &first);

        if (nv == 1) {
            /* the common case: one candidate, compared word-wise at once */
            size_t k = src_match(m, c[first].src, buf + (pos - off), pos, se - pos);
            if (k < se - pos) {
                pos += k;
                goto fail;
            }
            pos = se;
            continue;
        }
        /* several: at each position take the candidate with the longest
         * matching run, each tried word-wise */
        while (pos < se) {
            uint64_t best = 0;
            for (uint32_t i = 0; i < e->n && best < se - pos; i++) {
                if (!cand_visible(&c[i], s))
                    continue;
                uint64_t k = src_match(m, c[i].src, buf + (pos - off), pos, se - pos);
                if (k > best)
                    best = k;
            }
            if (!best)
                goto fail;
            pos += best;
        }
        continue;
    fail:
        mm->offset = pos;
        mm->len = unexplained_run(m, e, pos, b, buf, off, s);
        mm->torn = false;
        return false;
    }
    return true;
}

/* Whether source src can be peeled off the pieces not yet done: it is a
 * visible candidate matching the data on every one of them that it wrote,
 * and it wrote at least one.  buf holds the read data at device offset off. */
static bool unit_peelable(struct blkv_model *m, uint32_t src, const struct useg *g, size_t ng,
                          const uint8_t *buf, uint64_t off, uint64_t s)
{
    const struct src_slot *sl = src_get(m, src);
    uint64_t ro = 0, re = UINT64_MAX;
    bool any = false;

    if (src != BLKV_SRC_INITIAL) {
        ro = sl ? sl->off : 0;
        re = sl ? (sl->len > UINT64_MAX - ro ? UINT64_MAX : ro + sl->len) : 0;
    }
    for (size_t i = 0; i < ng; i++) {
        const struct cand *c = ext_cands(g[i].e);
        uint32_t j;

        if (g[i].done)
            continue;
        for (j = 0; j < g[i].e->n && c[j].src != src; j++)
            ;
        if (j == g[i].e->n) {
            /* not a candidate here: fine unless it wrote here and was
             * evicted and dropped since */
            if (g[i].a < re && ro < g[i].b)
                return false;
            continue;
        }
        if (!cand_visible(&c[j], s) ||
            src_match(m, src, buf + (g[i].a - off), g[i].a, g[i].b - g[i].a) != g[i].b - g[i].a)
            return false;
        any = true;
    }
    return any;
}

/*
 * Whether [u0, u1) (part of one atomicity unit, starting in extent e0) reads
 * as whole-unit writes applied one after another: peel off, as long as one
 * can be found, a source whose data is all of what is left of its part of
 * the unit; the unit is explained when nothing is left.  Peeling a source
 * only shrinks what the others must match, so the order does not matter.
 */
static bool unit_explained(struct blkv_model *m, struct ext *e0, uint64_t u0, uint64_t u1,
                           const uint8_t *buf, uint64_t off, uint64_t s)
{
    size_t ng = 0, nsrc = 0, left;
    bool progress = true;

    for (struct ext *e = e0; u0 < u1; e = e->next) {
        uint64_t se = ext_end(m, e) < u1 ? ext_end(m, e) : u1;
        const struct cand *c = ext_cands(e);

        if (ng == m->segs_cap) {
            m->segs_cap = m->segs_cap ? 2 * m->segs_cap : 16;
            m->segs = xrealloc(m->segs, m->segs_cap * sizeof(*m->segs));
        }
        m->segs[ng++] = (struct useg){.a = u0, .b = se, .e = e, .done = false};
        for (uint32_t i = 0; i < e->n; i++) {
            size_t j;
            if (!cand_visible(&c[i], s))
                continue;
            for (j = 0; j < nsrc && m->tmp[j] != c[i].src; j++)
                ;
            if (j < nsrc)
                continue;
            if (nsrc == m->tmp_cap) {
                m->tmp_cap = m->tmp_cap ? 2 * m->tmp_cap : 16;
                m->tmp = xrealloc(m->tmp, m->tmp_cap * sizeof(*m->tmp));
            }
            m->tmp[nsrc++] = c[i].src;
        }
        u0 = se;
    }
    left = ng;
    while (left && progress) {
        progress = false;
        for (size_t j = 0; j < nsrc && left; j++) {
            uint32_t src = m->tmp[j];
            if (!src || !unit_peelable(m, src, m->segs, ng, buf, off, s))
                continue;
            for (size_t i = 0; i < ng; i++) {
                if (!m->segs[i].done && ext_has_visible(m->segs[i].e, src, s)) {
                    m->segs[i].done = true;
                    left--;
                }
            }
            m->tmp[j] = 0;
            progress = true;
        }
    }
    return left == 0;
}

/*
 * Phase 2 (atomicity unit A > 1; every byte already explained): each
 * A-aligned unit of [off, end), clipped to it, must come from one source.
 */
static bool check_units(struct blkv_model *m, uint64_t off, uint64_t end, const uint8_t *buf,
                        uint64_t s, struct blkv_mismatch *mm)
{
    uint64_t A = m->cfg.atomic, u = off;
    struct ext *e = tree_find(m, off);

    while (u < end) {
        uint64_t ue = (u & ~(A - 1)) + A, ee;
        uint32_t first;

        if (ue > end)
            ue = end;
        e = ext_walk(m, e, u);
        ee = ext_end(m, e);
        if (ue <= ee && ext_visible(e, s, &first) == 1) {
            /* units inside an extent with one visible candidate are whole:
             * phase 1 matched all of it against that candidate */
            uint64_t lim = ee < end ? ee : end, nu = lim & ~(A - 1);
            u = nu > ue ? nu : ue;
            continue;
        }
        if (!unit_explained(m, e, u, ue, buf, off, s)) {
            uint64_t v = ue;
            struct ext *f = e;
            while (v < end) {
                uint64_t ve = v + A < end ? v + A : end;
                f = ext_walk(m, f, v);
                if (unit_explained(m, f, v, ve, buf, off, s))
                    break;
                v = ve;
            }
            mm->offset = u;
            mm->len = v - u;
            mm->torn = true;
            return false;
        }
        u = ue;
    }
    return true;
}

/* Evict source src over [x, y) at t where it is live. */
static void evict_range(struct blkv_model *m, uint32_t src, uint64_t x, uint64_t y, uint64_t t,
                        enum blkv_evict why, uint64_t by)
{
    for (struct ext *e = split_at(m, x); e && e->start < y; e = e->next) {
        struct cand *c;
        if (ext_end(m, e) > y)
            ext_split(m, e, y);
        c = ext_cands(e);
        for (uint32_t i = 0; i < e->n; i++)
            if (c[i].src == src) {
                if (cand_live(&c[i]))
                    cand_evict(m, &c[i], t, why, by);
                break;
            }
    }
}

/*
 * Phase 3: the observation rule.  At each byte, every live candidate that
 * completed before s, is not a wildcard and differs from the byte read is
 * evicted at t.  Returns whether anything was evicted.
 */
static bool observe(struct blkv_model *m, uint64_t req, uint64_t off, uint64_t end,
                    const uint8_t *buf, uint64_t s, uint64_t t)
{
    struct ext *e = tree_find(m, off);
    bool changed = false;

    for (uint64_t pos = off; pos < end;) {
        uint64_t se = ext_end(m, e) < end ? ext_end(m, e) : end;
        const struct cand *c = ext_cands(e);
        uint32_t first, ne = 0;
        bool here = false;

        /* one visible candidate explained every byte here: nothing differs */
        if (ext_visible(e, s, &first) > 1) {
            if (m->tmp_cap < e->n) {
                m->tmp_cap = e->n;
                m->tmp = xrealloc(m->tmp, m->tmp_cap * sizeof(*m->tmp));
            }
            for (uint32_t i = 0; i < e->n; i++)
                if (cand_live(&c[i]) && src_kind(m, c[i].src) != BLKV_SRC_ANY &&
                    src_completed_before(m, c[i].src, s))
                    m->tmp[ne++] = c[i].src;
        }
        /* e's list is copied into the parts it is split into: m->tmp keeps
         * the sources to look at */
        for (uint32_t j = 0; j < ne; j++) {
            uint32_t src = m->tmp[j];
            for (uint64_t q = pos; q < se;) {
                q += src_match(m, src, buf + (q - off), q, se - q);
                if (q >= se)
                    break;
                uint64_t d = src_differ(m, src, buf + (q - off), q, se - q);
                evict_range(m, src, q, q + d, t, BLKV_EVICT_READ, req);
                here = true;
                q += d;
            }
        }
        changed |= here;
        pos = se;
        if (pos < end)
            e = here ? tree_find(m, pos) : e->next;
    }
    return changed;
}

bool blkv_model_read_check(struct blkv_model *m, uint64_t req, uint64_t off, uint64_t len,
                           const void *buf, uint64_t s, uint64_t t, struct blkv_mismatch *mm)
{
    const uint8_t *p = buf;
    uint64_t end, lim;

    if (len == 0) {
        blkv_model_read_abandon(m, s);
        return true;
    }
    end = len > UINT64_MAX - off ? UINT64_MAX : off + len;
    lim = end < m->cfg.size ? end : m->cfg.size;
    if (off < lim && !check_bytes(m, off, lim, p, off, s, mm))
        return false;
    if (lim < end) {
        /* no candidate beyond the device end */
        mm->offset = off > m->cfg.size ? off : m->cfg.size;
        mm->len = end - mm->offset;
        mm->torn = false;
        return false;
    }
    if (m->cfg.atomic > 1 && !check_units(m, off, end, p, s, mm))
        return false;
    bool changed = observe(m, req, off, end, p, s, t);
    blkv_model_read_abandon(m, s);
    if (changed)
        merge_range(m, tree_find(m, off ? off - 1 : 0), end + 1);
    maybe_sweep(m);
    return true;
}

/* ---- queries ---------------------------------------------------------------------- */

size_t blkv_model_candidates(const struct blkv_model *m, uint64_t off, struct blkv_cand_info *out,
                             size_t max)
{
    const struct ext *e;
    const struct cand *c;

    if (off >= m->cfg.size)
        return 0;
    e = tree_find(m, off);
    c = ext_ccands(e);
    for (uint32_t i = 0; i < e->n && i < max; i++) {
        const struct src_slot *sl = src_get(m, c[i].src);
        out[i] = (struct blkv_cand_info){
            .src = c[i].src,
            .kind = sl ? (enum blkv_src_kind)sl->kind : BLKV_SRC_ANY,
            .status = sl ? (enum blkv_src_status)sl->status : BLKV_SRC_INFLIGHT,
            .evicted_at = c[i].evicted_at,
            .evict_why = CAND_WHY(&c[i]), .dead = (c[i].why & CAND_DEAD) != 0,
            .evicted_by = c[i].by,
            .ext_start = e->start,
            .ext_end = ext_end(m, e),
        };
    }
    return e->n;
}

void blkv_model_source_bytes(const struct blkv_model *m, uint32_t src, enum blkv_src_kind kind,
                             void *buf, uint64_t off, uint64_t len)
{
    switch (kind) {
    case BLKV_SRC_PATTERN:
        blkv_pattern_fill(buf, src, off, len);
        return;
    case BLKV_SRC_IMAGE:
        if (m->cfg.image_read) {
            m->cfg.image_read(m->cfg.image_opaque, buf, len, off);
            return;
        }
        break;
    case BLKV_SRC_ZEROES:
    case BLKV_SRC_ANY:
        break;
    }
    memset(buf, 0, len);
}

bool blkv_model_source(const struct blkv_model *m, uint32_t w, struct blkv_src_info *out)
{
    const struct src_slot *sl = src_get(m, w);

    if (!sl)
        return false;
    *out = (struct blkv_src_info){.kind = (enum blkv_src_kind)sl->kind,
                                  .status = (enum blkv_src_status)sl->status,
                                  .submitted = sl->submitted,
                                  .completed = sl->completed,
                                  .off = sl->off,
                                  .len = sl->len,
                                  .durable = sl->durable != 0};
    return true;
}

void blkv_model_stats(const struct blkv_model *m, struct blkv_model_stats *st)
{
    st->extents = m->nexts;
    st->candidates = m->ncands;
    st->bytes = sizeof(*m) + m->nexts * sizeof(struct ext) + m->heap_bytes +
                m->srcs_cap * sizeof(*m->srcs) + m->reads_cap * sizeof(*m->reads) +
                m->tmp_cap * sizeof(*m->tmp) + m->segs_cap * sizeof(*m->segs) + (m->scratch ? SCRATCH_BYTES : 0);
}
