/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * cluster.c - guest-to-host cluster mapping: L2 entry types, lookups
 * through the L2 cache, L2 table allocation (and copy-on-write of shared
 * tables), write-through updates of L2 entries, and freeing what an old
 * entry referenced.  Every function here runs with the metadata lock held.
 */
#include "qcow2.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

enum qcow2_ctype qcow2_entry_type(const struct qcow2_state *s, uint64_t e)
{
    if (e & QCOW2_OFLAG_COMPRESSED)
        return QCOW2_COMPRESSED;
    if (e & QCOW2_OFLAG_ZERO)
        return (e & QCOW2_OFFSET_MASK) ? QCOW2_ZERO_ALLOC : QCOW2_ZERO_PLAIN;
    return (e & QCOW2_OFFSET_MASK) ? QCOW2_NORMAL : QCOW2_UNALLOC;
}

void qcow2_compressed_range(const struct qcow2_state *s, uint64_t e, uint64_t *off,
                            uint64_t *len)
{
    uint64_t sectors = ((e >> s->csize_shift) & s->csize_mask) + 1;
    *off = e & s->coffset_mask;
    *len = sectors * 512 - (*off & 511);
}

const char *qcow2_entry_problem(const struct qcow2_state *s, uint64_t e)
{
    if (e & QCOW2_OFLAG_COMPRESSED) {
        uint64_t off, len;
        qcow2_compressed_range(s, e, &off, &len);
        if (e & QCOW2_OFLAG_COPIED)
            return "compressed with the copied flag";
        if (off + len > QCOW2_MAX_HOST_OFFSET)
            return "compressed data beyond the largest offset";
        return NULL;
    }
    if (e & QCOW2_L2_RESERVED)
        return "reserved bits set";
    if ((e & QCOW2_OFLAG_ZERO) && s->version < 3)
        return "zero flag in a version 2 image";
    if ((e & QCOW2_OFFSET_MASK) & (s->cluster_size - 1))
        return "host offset not aligned to a cluster";
    if (!(e & QCOW2_OFFSET_MASK) && !(e & QCOW2_OFLAG_ZERO) && (e & QCOW2_OFLAG_COPIED))
        return "host offset 0 (external data file layout)";
    return NULL;
}

bool qcow2_entry_valid(struct qcow2_state *s, uint64_t e)
{
    const char *why = qcow2_entry_problem(s, e);
    if (!why)
        return true;
    blkv_error(s->ctx, "qcow2: corrupt L2 entry 0x%016" PRIx64 ": %s", e, why);
    return false;
}

/* The L2 table offset of guest cluster gc from L1 (0: none); -EIO when
 * the L1 entry is corrupt. */
static int qcow2_l2_offset(struct qcow2_state *s, uint64_t gc, uint64_t *off)
{
    uint64_t l1i = gc >> s->l2_bits, e;

    if (l1i >= s->l1_size) {
        blkv_error(s->ctx, "qcow2: guest cluster %" PRIu64 " beyond the L1 table", gc);
        return -EIO;
    }
    e = s->l1[l1i];
    *off = e & QCOW2_OFFSET_MASK;
    if ((e & QCOW2_L1_RESERVED) || (*off & (s->cluster_size - 1)) ||
        (*off && *off < s->cluster_size)) {
        blkv_error(s->ctx, "qcow2: corrupt L1 entry %" PRIu64 ": 0x%016" PRIx64, l1i, e);
        return -EIO;
    }
    return 0;
}

int qcow2_get_entries(struct qcow2_state *s, uint64_t gc, uint64_t n, uint64_t *out)
{
    uint64_t idx = gc & (s->l2_entries - 1), m = qcow2_min(n, s->l2_entries - idx), off;
    struct qcow2_cache_entry *e;
    int ret;

    if ((ret = qcow2_l2_offset(s, gc, &off)) < 0)
        return ret;
    if (!off) {
        memset(out, 0, m * sizeof(*out));
        return (int)m;
    }
    if ((ret = qcow2_cache_get(s, &s->l2c, off, true, &e)) < 0)
        return ret;
    for (uint64_t i = 0; i < m; i++)
        out[i] = qcow2_be64(e->data + (idx + i) * 8);
    qcow2_cache_put(e);
    return (int)m;
}

int qcow2_l2_prepare(struct qcow2_state *s, uint64_t gc)
{
    uint64_t l1i = gc >> s->l2_bits, old, old_e, c, got, noff;
    struct qcow2_cache_entry *e;
    uint8_t be[8];
    int ret;

    if ((ret = qcow2_l2_offset(s, gc, &old)) < 0)
        return ret;
    old_e = s->l1[l1i];
    if (old && (old_e & QCOW2_OFLAG_COPIED))
        return 0;
    if ((ret = qcow2_mapping_change(s)) < 0)
        return ret;
    if ((ret = qcow2_alloc_clusters(s, 1, &c, &got)) < 0)
        return ret;
    noff = c << s->cluster_bits;
    if ((ret = qcow2_cache_get(s, &s->l2c, noff, false, &e)) < 0)
        return ret; /* the new cluster leaks */
    /* a shared table is copied (its entries keep their flags: shared
     * clusters stay copy-on-write) */
    if (old)
        ret = blkv_lower_pread(s->file, e->data, s->cluster_size, old);
    if (!ret) {
        blkv_lower_event(s->file, BLKV_EV_L2_ALLOC);
        ret = blkv_lower_pwrite(s->file, e->data, s->cluster_size, noff);
    }
    if (!ret) /* the table and its refcount are durable before L1 names it */
        ret = qcow2_barrier(s);
    if (!ret) {
        s->l1[l1i] = noff | QCOW2_OFLAG_COPIED;
        s->l1_used = qcow2_max(s->l1_used, l1i + 1);
        qcow2_put_be64(be, s->l1[l1i]);
        blkv_lower_event(s->file, BLKV_EV_L1_UPDATE);
        ret = blkv_lower_pwrite(s->file, be, 8, s->l1_offset + l1i * 8);
        if (ret < 0)
            s->l1[l1i] = old_e;
        else if (l1i + 1 == s->l1_size && s->l1_size % s->l2_entries == 0)
            QCOW2_PROBE(); /* probe: l2-alloc-full-l1 (its last entry; it fills its clusters) */
    }
    qcow2_cache_put(e);
    if (ret < 0) {
        qcow2_cache_drop(&s->l2c, noff);
        return ret;
    }
    if (old) {
        qcow2_cache_drop(&s->l2c, old);
        /* the shared table is freed once L1 durably names the copy */
        if (qcow2_barrier(s) == 0)
            qcow2_free_bytes(s, old, s->cluster_size); /* failure only leaks it */
    }
    return 0;
}

int qcow2_l2_set(struct qcow2_state *s, uint64_t gc, uint64_t n, const uint64_t *entries,
                 uint64_t *old)
{
    uint64_t idx = gc & (s->l2_entries - 1), off;
    struct qcow2_cache_entry *e;
    int ret;

    if ((ret = qcow2_l2_prepare(s, gc)) < 0 || (ret = qcow2_l2_offset(s, gc, &off)) < 0 ||
        (ret = qcow2_mapping_change(s)) < 0)
        return ret;
    if ((ret = qcow2_cache_get(s, &s->l2c, off, true, &e)) < 0)
        return ret;
    for (uint64_t i = 0; i < n; i++) {
        old[i] = qcow2_be64(e->data + (idx + i) * 8);
        qcow2_put_be64(e->data + (idx + i) * 8, entries[i]);
    }
    blkv_lower_event(s->file, BLKV_EV_L2_UPDATE);
    ret = blkv_lower_pwrite(s->file, e->data + idx * 8, n * 8, off + idx * 8);
    if (ret < 0)
        for (uint64_t i = 0; i < n; i++)
            qcow2_put_be64(e->data + (idx + i) * 8, old[i]);
    qcow2_cache_put(e);
    return ret;
}

bool qcow2_frees_any(const struct qcow2_state *s, const uint64_t *old, uint64_t n,
                     const uint64_t *keep)
{
    for (uint64_t i = 0; i < n; i++) {
        enum qcow2_ctype t = qcow2_entry_type(s, old[i]);
        if (t == QCOW2_COMPRESSED ||
            ((t == QCOW2_NORMAL || t == QCOW2_ZERO_ALLOC) &&
             (old[i] & QCOW2_OFFSET_MASK) != (keep ? keep[i] & QCOW2_OFFSET_MASK : 0)))
            return true;
    }
    return false;
}

int qcow2_free_entry(struct qcow2_state *s, uint64_t e, uint64_t keep)
{
    uint64_t off, len;

    switch (qcow2_entry_type(s, e)) {
    case QCOW2_NORMAL:
    case QCOW2_ZERO_ALLOC:
        off = e & QCOW2_OFFSET_MASK;
        if (off == keep)
            return 0;
        return qcow2_free_bytes(s, off, s->cluster_size);
    case QCOW2_COMPRESSED:
        qcow2_compressed_range(s, e, &off, &len);
        return qcow2_free_bytes(s, off, len);
    default:
        return 0;
    }
}
