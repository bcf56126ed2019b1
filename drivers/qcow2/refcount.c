/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * refcount.c - reference counts of host clusters: reading and updating
 * refcount blocks of any width (1 to 64 bits), creating refcount blocks and
 * growing the refcount table as the file grows, and the cluster allocator.
 * Every function here runs with the metadata lock held.
 */
#include "qcow2.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

uint64_t qcow2_rc_read(const struct qcow2_state *s, const uint8_t *blk, uint64_t i)
{
    unsigned bits = s->refcount_bits;
    uint64_t v = 0;

    if (bits < 8) {
        uint64_t bit = i * bits;
        return (blk[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
    }
    for (unsigned k = 0; k < bits / 8; k++)
        v = v << 8 | blk[i * (bits / 8) + k];
    return v;
}

void qcow2_rc_write(const struct qcow2_state *s, uint8_t *blk, uint64_t i, uint64_t v)
{
    unsigned bits = s->refcount_bits;

    if (bits < 8) {
        uint64_t bit = i * bits;
        unsigned mask = ((1u << bits) - 1) << (bit % 8);
        blk[bit / 8] = (uint8_t)((blk[bit / 8] & ~mask) | ((v << (bit % 8)) & mask));
        return;
    }
    for (int k = (int)(bits / 8) - 1; k >= 0; k--, v >>= 8)
        blk[i * (bits / 8) + (unsigned)k] = (uint8_t)v;
}

/* Byte range [*from, *to) of a refcount block holding entries [i, i+n). */
static void qcow2_rc_bytes(const struct qcow2_state *s, uint64_t i, uint64_t n, uint64_t *from,
                           uint64_t *to)
{
    *from = i * s->refcount_bits / 8;
    *to = ((i + n) * s->refcount_bits + 7) / 8;
}

int qcow2_refcount_get(struct qcow2_state *s, uint64_t c, uint64_t *rc)
{
    uint64_t ti = c >> s->rb_bits;
    struct qcow2_cache_entry *e;
    int ret;

    *rc = 0;
    if (ti >= s->rt_size || !s->rt[ti])
        return 0;
    if ((ret = qcow2_cache_get(s, &s->rbc, s->rt[ti], true, &e)) < 0)
        return ret;
    *rc = qcow2_rc_read(s, e->data, c & (s->rb_entries - 1));
    qcow2_cache_put(e);
    return 0;
}

int qcow2_refcount_update(struct qcow2_state *s, uint64_t first, uint64_t n, int delta)
{
    while (n) {
        uint64_t ti = first >> s->rb_bits, idx = first & (s->rb_entries - 1);
        uint64_t m = qcow2_min(n, s->rb_entries - idx), from, to;
        struct qcow2_cache_entry *e;
        uint8_t *save;
        int ret = 0;

        if (ti >= s->rt_size || !s->rt[ti]) {
            blkv_error(s->ctx, "qcow2: refcount of cluster %" PRIu64 " would change but it has "
                       "no refcount block", first);
            return -EUCLEAN;
        }
        if (s->lazy && !s->dirty_marked && (ret = qcow2_set_dirty(s, true)) < 0)
            return ret;
        if ((ret = qcow2_cache_get(s, &s->rbc, s->rt[ti], true, &e)) < 0)
            return ret;
        qcow2_rc_bytes(s, idx, m, &from, &to);
        save = malloc(to - from);
        if (!save) {
            qcow2_cache_put(e);
            return -ENOMEM;
        }
        memcpy(save, e->data + from, to - from);
        for (uint64_t k = 0; k < m && !ret; k++) {
            uint64_t v = qcow2_rc_read(s, e->data, idx + k);
            if (delta > 0 && v + (uint64_t)delta > s->refcount_max) {
                blkv_error(s->ctx, "qcow2: refcount of cluster %" PRIu64 " would exceed %" PRIu64,
                           first + k, s->refcount_max);
                ret = -ERANGE;
            } else if (delta < 0 && v < (uint64_t)-delta) {
                blkv_error(s->ctx, "qcow2: refcount of cluster %" PRIu64 " would drop below 0",
                           first + k);
                ret = -EUCLEAN;
            } else {
                qcow2_rc_write(s, e->data, idx + k, v + (uint64_t)(int64_t)delta);
            }
        }
        if (!ret) {
            if (s->lazy)
                e->dirty = true;
            else if (e->dirty) { /* left over from lazy refcounts: write it all */
                blkv_lower_event(s->file, BLKV_EV_REFBLOCK_UPDATE);
                ret = blkv_lower_pwrite(s->file, e->data, s->cluster_size, s->rt[ti]);
            } else {
                blkv_lower_event(s->file, BLKV_EV_REFBLOCK_UPDATE);
                ret = blkv_lower_pwrite(s->file, e->data + from, to - from, s->rt[ti] + from);
            }
        }
        if (ret < 0) {
            memcpy(e->data + from, save, to - from); /* memory agrees with the file */
            free(save);
            qcow2_cache_put(e);
            return ret;
        }
        if (delta < 0)
            for (uint64_t k = 0; k < m; k++)
                if (qcow2_rc_read(s, e->data, idx + k) == 0 && first + k < s->free_hint)
                    s->free_hint = first + k;
        free(save);
        qcow2_cache_put(e);
        first += m;
        n -= m;
    }
    return 0;
}

static int qcow2_rt_grow(struct qcow2_state *s, uint64_t need);

/* Make refcount block ti exist: it goes into the first cluster it covers
 * (all of its clusters are free, having no block), counting itself. */
static int qcow2_rb_ensure(struct qcow2_state *s, uint64_t ti)
{
    struct qcow2_cache_entry *e;
    uint64_t c, off;
    uint8_t be[8];
    int ret;

    if (ti >= s->rt_size && (ret = qcow2_rt_grow(s, ti)) < 0)
        return ret;
    if (s->rt[ti])
        return 0;
    c = ti << s->rb_bits;
    off = c << s->cluster_bits;
    if (qcow2_fixed_meta(s, off, s->rb_entries << s->cluster_bits)) {
        /* the header and tables must have refcounts: the image is corrupt */
        blkv_error(s->ctx, "qcow2: corrupt refcounts: no refcount block covers the header or "
                   "tables (refcount table entry %" PRIu64 ")", ti);
        return -EUCLEAN;
    }
    if (c >= (QCOW2_MAX_HOST_OFFSET >> s->cluster_bits)) {
        blkv_error(s->ctx, "qcow2: image file full");
        return -ENOSPC;
    }
    if ((ret = qcow2_cache_get(s, &s->rbc, off, false, &e)) < 0)
        return ret;
    qcow2_rc_write(s, e->data, 0, 1);
    blkv_lower_event(s->file, BLKV_EV_REFBLOCK_ALLOC);
    ret = blkv_lower_pwrite(s->file, e->data, s->cluster_size, off);
    if (ret == 0) /* the block is durable before the table names it */
        ret = qcow2_barrier(s);
    if (ret == 0) {
        s->rt[ti] = off; /* probe: refblock-new (allocation crossed into a new block) */
        s->rt_used = qcow2_max(s->rt_used, ti + 1);
        qcow2_put_be64(be, off);
        blkv_lower_event(s->file, BLKV_EV_REFTABLE_GROW);
        ret = blkv_lower_pwrite(s->file, be, 8, s->rt_offset + ti * 8);
        if (ret < 0)
            s->rt[ti] = 0;
    }
    qcow2_cache_put(e);
    if (ret < 0) {
        qcow2_cache_drop(&s->rbc, off);
        return ret;
    }
    s->alloc_end = qcow2_max(s->alloc_end, c + 1);
    return 0;
}

/* Grow the refcount table to hold entry `need`: the new table and the
 * refcount blocks covering it go to the end of the file, then the header
 * switches to it and the old table is freed. */
static int qcow2_rt_grow(struct qcow2_state *s, uint64_t need)
{
    uint64_t cs = s->cluster_size, cb = s->cluster_bits;
    uint64_t file_clusters = (blkv_lower_size(s->file) + cs - 1) >> cb;
    uint64_t p = qcow2_max(s->alloc_end, file_clusters);
    uint64_t newn = qcow2_max(need + 1, s->rt_size * 2), k = 0, nb = 0, lo = 0, hi = 0;
    uint64_t old_off = s->rt_offset, old_clusters = s->rt_clusters, *nrt;
    uint8_t *table = NULL, *blocks = NULL, hdr[12];
    bool done = false;
    int ret = 0;

    for (int iter = 0; iter < 64 && !done; iter++) {
        uint64_t cnt = 0, want;
        k = (newn * 8 + cs - 1) >> cb;
        /* too big already: give up before scanning the blocks it would
         * need (a file that reaches far, through a write to a corrupt
         * L2 entry, makes that a range of billions) */
        if ((k << cb) > QCOW2_MAX_RT_BYTES || nb > 64)
            break;
        lo = p >> s->rb_bits;
        hi = (p + k + nb - 1) >> s->rb_bits;
        for (uint64_t r = lo; r <= hi; r++)
            if (r >= s->rt_size || !s->rt[r])
                cnt++;
        want = qcow2_max(newn, hi + 1);
        done = cnt == nb && want == newn;
        nb = cnt, newn = want;
    }
    if (!done || (k << cb) > QCOW2_MAX_RT_BYTES || nb > 64) {
        blkv_error(s->ctx, "qcow2: the refcount table would exceed %" PRIu64 " bytes",
                   QCOW2_MAX_RT_BYTES);
        return -EFBIG;
    }
    if (p + k + nb >= (QCOW2_MAX_HOST_OFFSET >> cb)) {
        blkv_error(s->ctx, "qcow2: image file full");
        return -ENOSPC;
    }
    table = calloc(1, k << cb);
    blocks = calloc(nb ? nb : 1, cs);
    if (!table || !blocks) {
        ret = -ENOMEM;
        goto out;
    }
    for (uint64_t i = 0; i < s->rt_size; i++)
        qcow2_put_be64(table + i * 8, s->rt[i]);
    /* place the new blocks after the table; count every new cluster */
    for (uint64_t r = lo, j = 0; r <= hi; r++)
        if (r >= s->rt_size || !s->rt[r])
            qcow2_put_be64(table + r * 8, (p + k + j++) << cb);
    for (uint64_t x = p; x < p + k + nb && !ret; x++) {
        uint64_t r = x >> s->rb_bits;
        if (r < s->rt_size && s->rt[r]) {
            ret = qcow2_refcount_update(s, x, 1, +1);
        } else {
            uint64_t j = (qcow2_be64(table + r * 8) >> cb) - (p + k);
            qcow2_rc_write(s, blocks + j * cs, x & (s->rb_entries - 1), 1);
        }
    }
    for (uint64_t j = 0; j < nb && !ret; j++) {
        blkv_lower_event(s->file, BLKV_EV_REFBLOCK_ALLOC);
        ret = blkv_lower_pwrite(s->file, blocks + j * cs, cs, (p + k + j) << cb);
    }
    if (!ret) {
        blkv_lower_event(s->file, BLKV_EV_REFTABLE_GROW);
        ret = blkv_lower_pwrite(s->file, table, k << cb, p << cb);
    }
    if (!ret) /* the new table and blocks are durable before the header names them */
        ret = qcow2_barrier(s);
    if (ret)
        goto out;
    nrt = qcow2_table_new((k << cb) / 8);
    if (!nrt) {
        ret = -ENOMEM;
        goto out;
    }
    qcow2_put_be64(hdr, p << cb);
    qcow2_put_be32(hdr + 8, (uint32_t)k);
    blkv_lower_event(s->file, BLKV_EV_HEADER_UPDATE);
    if ((ret = blkv_lower_pwrite(s->file, hdr, sizeof(hdr), QCOW2_HDR_RT_OFFSET)) < 0) {
        qcow2_table_free(nrt, (k << cb) / 8);
        goto out;
    }
    s->rt_used = qcow2_load_be64s(nrt, table, (k << cb) / 8);
    qcow2_table_free(s->rt, s->rt_size);
    s->rt = nrt;
    s->rt_size = (k << cb) / 8;
    s->rt_offset = p << cb;
    s->rt_clusters = (uint32_t)k; /* probe: refcount-table-grow */
    s->alloc_end = qcow2_max(s->alloc_end, p + k + nb);
    /* the old table is garbage once the header durably names the new one;
     * failing to free it only leaks it */
    if (qcow2_barrier(s) == 0)
        qcow2_refcount_update(s, old_off >> cb, old_clusters, -1);
out:
    free(table);
    free(blocks);
    return ret;
}

int qcow2_alloc_clusters(struct qcow2_state *s, uint64_t n, uint64_t *first, uint64_t *got)
{
    uint64_t i = s->free_hint, start = 0, len = 0;
    uint64_t limit = QCOW2_MAX_HOST_OFFSET >> s->cluster_bits;
    int ret;

    /* first fit: the first free cluster, and as many free ones after it as
     * there are (up to n) */
    while (len < n) {
        uint64_t ti = i >> s->rb_bits;
        struct qcow2_cache_entry *e;

        if (i >= limit) {
            if (len)
                break;
            blkv_error(s->ctx, "qcow2: image file full");
            return -ENOSPC;
        }
        if (ti >= s->rt_size || !s->rt[ti]) {
            if (len)
                break; /* take the run we have */
            /* making the block may use clusters we looked at: look again */
            if ((ret = qcow2_rb_ensure(s, ti)) < 0)
                return ret;
            if (ti >= s->rt_size || !s->rt[ti])
                return -EIO; /* cannot happen; never loop on it */
            i = s->free_hint;
            continue;
        }
        if ((ret = qcow2_cache_get(s, &s->rbc, s->rt[ti], true, &e)) < 0)
            return ret;
        while (len < n && (i >> s->rb_bits) == ti) {
            uint64_t rc = qcow2_rc_read(s, e->data, i & (s->rb_entries - 1));
            bool used = rc != 0 || qcow2_fixed_meta(s, i << s->cluster_bits, 1);
            if (rc && i >= s->alloc_end) {
                /* nothing lies there: the refcounts are garbage, and
                 * scanning on through them could take forever.  Nothing
                 * from free_hint to here was free (but the run we have):
                 * the next allocation starts here, and fails at once,
                 * instead of scanning all of it again. */
                s->free_hint = len ? start : i;
                qcow2_cache_put(e);
                blkv_error(s->ctx, "qcow2: corrupt refcounts: cluster %" PRIu64 " past the end "
                           "of the image has refcount %" PRIu64, i, rc);
                return -EUCLEAN;
            }
            if (!used && !len++)
                start = i;
            else if (used && len)
                break;
            i++;
        }
        qcow2_cache_put(e);
        if (len && len < n && (i >> s->rb_bits) == ti)
            break; /* the run ended at a used cluster */
    }
    if ((ret = qcow2_refcount_update(s, start, len, +1)) < 0)
        return ret;
    s->free_hint = start + len; /* start was the first free cluster from free_hint */
    s->alloc_end = qcow2_max(s->alloc_end, start + len);
    *first = start;
    *got = len;
    return 0;
}

int qcow2_free_bytes(struct qcow2_state *s, uint64_t off, uint64_t len)
{
    uint64_t first = off >> s->cluster_bits, last = (off + len - 1) >> s->cluster_bits;

    qcow2_wait_readers(s, first << s->cluster_bits, (last - first + 1) << s->cluster_bits);
    return qcow2_refcount_update(s, first, last - first + 1, -1);
}
