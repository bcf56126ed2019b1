/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * check.c - the consistency check, in the manner of `qemu-img check`:
 * count the references to every host cluster (header, L1, refcount table
 * and blocks, L2 tables, data and compressed clusters), then compare with
 * the stored refcounts.  A refcount lower than the references, an entry
 * pointing outside the file or misaligned, and a wrong copied flag are
 * corruption; a refcount higher than the references is a leak, which is
 * harmless.  With `fix`, the stored refcounts are rebuilt from the
 * references instead (repair of an image left dirty by lazy refcounts).
 */
#include "qcow2.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct qcow2_check {
    struct qcow2_state *s;
    uint32_t *ref;      /* references per cluster (saturating) */
    uint8_t *touched;   /* per QCOW2_CHECK_CHUNK clusters: any reference there */
    uint64_t n;         /* clusters counted */
    uint64_t fsize;
    uint64_t corruptions, leaks;
    bool fix;           /* stored refcounts are not trusted */
    char msg[300];      /* the first corruption */
};

/* Clusters per bit of `touched` (16 KiB of ref): a file that reaches far
 * (a write through a corrupt L2 entry) has a long ref array of which the
 * comparison reads only the chunks with references, so that the pages of
 * the rest are never touched. */
#define QCOW2_CHECK_CHUNK_BITS 12

static void qcow2_check_corrupt(struct qcow2_check *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* References counted to cluster x (< c->n). */
static uint32_t qcow2_check_refs(const struct qcow2_check *c, uint64_t x)
{
    return c->touched[x >> QCOW2_CHECK_CHUNK_BITS] ? c->ref[x] : 0;
}

/* The first cluster from x (up to end) in a chunk with references, or end. */
static uint64_t qcow2_check_next_touched(const struct qcow2_check *c, uint64_t x, uint64_t end)
{
    while (x < end && !c->touched[x >> QCOW2_CHECK_CHUNK_BITS])
        x = ((x >> QCOW2_CHECK_CHUNK_BITS) + 1) << QCOW2_CHECK_CHUNK_BITS;
    return x < end ? x : end;
}

/* Record a corruption (the first one's message is kept). */
static void qcow2_check_corrupt(struct qcow2_check *c, const char *fmt, ...)
{
    va_list ap;
    if (c->corruptions++)
        return;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
    va_end(ap);
}

/* Count one reference to each cluster of host bytes [off, off+len). */
static void qcow2_check_ref(struct qcow2_check *c, uint64_t off, uint64_t len, const char *what)
{
    uint32_t cb = c->s->cluster_bits;

    if (!len)
        return;
    if (off > c->fsize || len > c->fsize - off) {
        qcow2_check_corrupt(c, "%s at %" PRIu64 " (%" PRIu64 " bytes) beyond the end of the "
                            "%" PRIu64 "-byte file", what, off, len, c->fsize);
        return;
    }
    for (uint64_t x = off >> cb; x <= (off + len - 1) >> cb && x < c->n; x++) {
        c->touched[x >> QCOW2_CHECK_CHUNK_BITS] = 1;
        if (c->ref[x] != UINT32_MAX)
            c->ref[x]++;
    }
}

/* Check that an entry's copied flag says whether its refcount is 1. */
static int qcow2_check_copied(struct qcow2_check *c, uint64_t host, bool copied,
                              const char *what)
{
    uint64_t rc;
    int ret;

    if (c->fix)
        return 0;
    ret = qcow2_refcount_get(c->s, host >> c->s->cluster_bits, &rc);
    if (ret < 0)
        return ret;
    if ((rc == 1) != copied)
        qcow2_check_corrupt(c, "%s at %" PRIu64 ": copied flag %d but refcount %" PRIu64, what,
                            host, copied, rc);
    return 0;
}

/* Count the references of one L2 table (its bytes in tbl). */
static int qcow2_check_l2(struct qcow2_check *c, uint64_t l1i, const uint8_t *tbl)
{
    struct qcow2_state *s = c->s;
    int ret;

    for (uint64_t i = qcow2_next_used(tbl, 0, s->l2_entries); i < s->l2_entries;
         i = qcow2_next_used(tbl, i + 1, s->l2_entries)) {
        uint64_t e = qcow2_be64(tbl + i * 8), off, len;
        const char *why;

        if ((why = qcow2_entry_problem(s, e))) {
            if (!c->corruptions) /* the report lists who wrote that cluster */
                blkv_check_range(s->ctx, ((l1i << s->l2_bits) + i) << s->cluster_bits,
                                 s->cluster_size);
            qcow2_check_corrupt(c, "L2 entry for guest cluster %" PRIu64 " (0x%016" PRIx64
                                "): %s", (l1i << s->l2_bits) + i, e, why);
            continue;
        }
        switch (qcow2_entry_type(s, e)) {
        case QCOW2_NORMAL:
        case QCOW2_ZERO_ALLOC:
            off = e & QCOW2_OFFSET_MASK;
            qcow2_check_ref(c, off, s->cluster_size, "data cluster");
            if ((ret = qcow2_check_copied(c, off, e & QCOW2_OFLAG_COPIED, "data cluster")) < 0)
                return ret;
            break;
        case QCOW2_COMPRESSED:
            qcow2_compressed_range(s, e, &off, &len);
            qcow2_check_ref(c, off, len, "compressed cluster");
            break;
        default:
            break;
        }
    }
    return 0;
}

/* Count every reference the image makes. */
static int qcow2_check_walk(struct qcow2_check *c)
{
    struct qcow2_state *s = c->s;
    uint64_t cs = s->cluster_size;
    int ret = 0;

    qcow2_check_ref(c, 0, cs, "header");
    qcow2_check_ref(c, s->l1_offset, (uint64_t)s->l1_size * 8, "L1 table");
    qcow2_check_ref(c, s->rt_offset, (uint64_t)s->rt_clusters * cs, "refcount table");
    for (uint64_t i = qcow2_next_used(s->rt, 0, s->rt_used); i < s->rt_used;
         i = qcow2_next_used(s->rt, i + 1, s->rt_used)) {
        qcow2_check_ref(c, s->rt[i], cs, "refcount block");
        if ((s->rt[i] >> s->cluster_bits) < c->n && c->ref[s->rt[i] >> s->cluster_bits] > 1)
            qcow2_check_corrupt(c, "refcount block at %" PRIu64 " used twice", s->rt[i]);
    }
    for (uint64_t i = qcow2_next_used(s->l1, 0, s->l1_used); i < s->l1_used && !ret;
         i = qcow2_next_used(s->l1, i + 1, s->l1_used)) {
        uint64_t e = s->l1[i], off = e & QCOW2_OFFSET_MASK;
        struct qcow2_cache_entry *ce;

        if ((e & QCOW2_L1_RESERVED) || off % cs || !off) {
            qcow2_check_corrupt(c, "L1 entry %" PRIu64 " (0x%016" PRIx64 ") corrupt", i, e);
            continue;
        }
        qcow2_check_ref(c, off, cs, "L2 table");
        if (off + cs > c->fsize)
            continue;
        if (c->ref[off >> s->cluster_bits] > 1) {
            /* walking it again would only repeat (and could take long) */
            qcow2_check_corrupt(c, "L2 table at %" PRIu64 " used twice", off);
            continue;
        }
        if ((ret = qcow2_check_copied(c, off, e & QCOW2_OFLAG_COPIED, "L2 table")) < 0)
            break;
        /* pinned while walked: the walk looks up refcounts only, in the
         * other cache, so the table is read in place (no copy of it) */
        if ((ret = qcow2_cache_get(s, &s->l2c, off, true, &ce)) < 0)
            break;
        ret = qcow2_check_l2(c, i, ce->data);
        qcow2_cache_put(ce);
    }
    return ret;
}

/* Compare (or, with fix, rewrite) the stored refcounts. */
static int qcow2_check_compare(struct qcow2_check *c, bool fix)
{
    struct qcow2_state *s = c->s;
    int ret = 0;

    for (uint64_t ti = 0; ti < s->rt_size && !ret; ti++) {
        uint64_t base = ti << s->rb_bits;
        struct qcow2_cache_entry *e;
        bool changed = false;

        if (base >= c->n)
            break; /* nothing counted from here on */
        if (!s->rt[ti]) {
            uint64_t end = qcow2_min(c->n, base + s->rb_entries);
            for (uint64_t x = qcow2_check_next_touched(c, base, end); x < end;
                 x = qcow2_check_next_touched(c, x + 1, end))
                if (c->ref[x])
                    qcow2_check_corrupt(c, "cluster %" PRIu64 " is used but has no refcount "
                                        "block", x);
            continue;
        }
        if ((ret = qcow2_cache_get(s, &s->rbc, s->rt[ti], true, &e)) < 0)
            break;
        /* past the counted clusters only leaks can hide (left alone) */
        uint64_t stop = qcow2_min(s->rb_entries, c->n - base);
        for (uint64_t i = 0; i < stop; i++) {
            uint64_t x = base + i, want = x < c->n ? qcow2_check_refs(c, x) : 0;
            uint64_t have = qcow2_rc_read(s, e->data, i);
            if (have == want)
                continue;
            if (fix) {
                if (want > s->refcount_max) {
                    qcow2_check_corrupt(c, "cluster %" PRIu64 " has %" PRIu64 " references, over "
                                        "the largest refcount", x, want);
                    continue;
                }
                qcow2_rc_write(s, e->data, i, want);
                changed = true;
            } else if (have < want) {
                qcow2_check_corrupt(c, "cluster %" PRIu64 " refcount=%" PRIu64 " reference=%"
                                    PRIu64, x, have, want);
            } else {
                c->leaks++;
            }
        }
        if (changed) {
            if (s->lazy)
                e->dirty = true;
            else
                ret = blkv_lower_pwrite(s->file, e->data, s->cluster_size, s->rt[ti]);
        }
        qcow2_cache_put(e);
    }
    for (uint64_t x = qcow2_check_next_touched(c, s->rt_size << s->rb_bits, c->n); x < c->n;
         x = qcow2_check_next_touched(c, x + 1, c->n))
        if (c->ref[x])
            qcow2_check_corrupt(c, "cluster %" PRIu64 " is used but lies beyond the refcount "
                                "table", x);
    return ret;
}

int qcow2_check_image(struct qcow2_state *s, bool fix)
{
    struct qcow2_check c;
    int ret;

    memset(&c, 0, sizeof(c));
    c.s = s;
    c.fix = fix;
    c.fsize = blkv_lower_size(s->file);
    c.n = qcow2_max((c.fsize + s->cluster_size - 1) >> s->cluster_bits, s->alloc_end);
    if (c.n > QCOW2_MAX_CHECK_CLUSTERS) {
        if (!fix)
            return 0; /* too big to check in bounded memory: say nothing */
        blkv_error(s->ctx, "qcow2: image too large to repair (%" PRIu64 " clusters)", c.n);
        return -EFBIG;
    }
    c.ref = calloc(c.n ? c.n : 1, sizeof(*c.ref));
    c.touched = calloc((c.n >> QCOW2_CHECK_CHUNK_BITS) + 1, 1);
    if (!c.ref || !c.touched) {
        free(c.ref);
        free(c.touched);
        return -ENOMEM;
    }
    ret = qcow2_check_walk(&c);
    if (!ret)
        ret = qcow2_check_compare(&c, fix);
    free(c.ref);
    free(c.touched);
    if (ret < 0)
        return ret;
    s->check_leaks = fix ? 0 : c.leaks;
    if (fix)
        s->free_hint = 0;
    if (c.corruptions) {
        blkv_error(s->ctx, "qcow2: %" PRIu64 " corruption(s)%s: %s", c.corruptions,
                   fix ? " that a refcount rebuild cannot repair" : "", c.msg);
        return -EUCLEAN;
    }
    return 0;
}
