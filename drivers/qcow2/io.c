/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * io.c - the data path: reads (backing file, zeros, data clusters,
 * compressed clusters), writes (in place, or into new clusters with
 * copy-on-write of partial clusters), write-zeroes and discard, and the
 * in-flight bookkeeping that keeps concurrent requests apart.
 */
#include "qcow2.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Clusters looked up at once (bounded stack use). */
#define QCOW2_RUN 64

/* ---- in-flight ranges ----------------------------------------------------------- */

/* Whether [start, end) overlaps a range of the list. */
static bool qcow2_overlaps(const struct qcow2_range *list, uint64_t start, uint64_t end)
{
    for (; list; list = list->next)
        if (start < list->end && list->start < end)
            return true;
    return false;
}

/* Remove r from a list. */
static void qcow2_unlink(struct qcow2_range **list, struct qcow2_range *r)
{
    for (; *list; list = &(*list)->next) {
        if (*list == r) {
            *list = r->next;
            return;
        }
    }
}

void qcow2_range_lock(struct qcow2_state *s, struct qcow2_range *r, uint64_t off, uint64_t len)
{
    r->start = off >> s->cluster_bits;
    r->end = ((off + len - 1) >> s->cluster_bits) + 1;
    while (qcow2_overlaps(s->ranges, r->start, r->end))
        blkv_co_queue_wait(&s->range_q);
    r->next = s->ranges;
    s->ranges = r;
}

void qcow2_range_unlock(struct qcow2_state *s, struct qcow2_range *r)
{
    qcow2_unlink(&s->ranges, r);
    blkv_co_queue_wake_all(&s->range_q);
}

/* Register a read of host bytes [off, off+len) (metadata lock held). */
static void qcow2_reader_add(struct qcow2_state *s, struct qcow2_range *r, uint64_t off,
                             uint64_t len)
{
    r->start = off;
    r->end = off + len;
    r->next = s->readers;
    s->readers = r;
}

/* The read registered as r is done. */
static void qcow2_reader_del(struct qcow2_state *s, struct qcow2_range *r)
{
    qcow2_unlink(&s->readers, r);
    blkv_co_queue_wake_all(&s->reader_q);
}

void qcow2_wait_readers(struct qcow2_state *s, uint64_t off, uint64_t len)
{
    while (qcow2_overlaps(s->readers, off, off + len))
        blkv_co_queue_wait(&s->reader_q);
}

/* ---- reading -------------------------------------------------------------------- */

static int qcow2_co_read_ev(struct qcow2_state *s, uint64_t off, uint64_t len, uint8_t *buf,
                            unsigned ev);

/* Read guest bytes of the backing file (zeros past its end, or without one);
 * the data reads are for event ev (a guest read, or a copy on write). */
static int qcow2_co_backing_read(struct qcow2_state *s, uint64_t off, uint64_t len, uint8_t *buf,
                                 unsigned ev)
{
    uint64_t avail = off < s->backing_size ? qcow2_min(len, s->backing_size - off) : 0;
    int ret = 0;

    if (avail && s->backing == QCOW2_BACKING_RAW) {
        blkv_lower_event(s->bfile, ev);
        ret = blkv_lower_pread(s->bfile, buf, avail, off);
    } else if (avail && s->backing == QCOW2_BACKING_QCOW2) {
        ret = qcow2_co_read_ev(s->bimg, off, avail, buf, ev);
    }
    else
        avail = 0;
    memset(buf + avail, 0, len - avail);
    return ret;
}

/* Inflate the compressed cluster of entry e into out (one cluster), read
 * for event ev. */
static int qcow2_co_read_compressed(struct qcow2_state *s, uint64_t e, uint8_t *out, unsigned ev)
{
    uint64_t off, len;
    uint8_t *in;
    z_stream z;
    int ret, zr;

    qcow2_compressed_range(s, e, &off, &len);
    in = malloc(len);
    if (!in)
        return -ENOMEM;
    blkv_lower_event(s->file, ev);
    if ((ret = blkv_lower_pread(s->file, in, len, off)) < 0) {
        free(in);
        return ret;
    }
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, -15) != Z_OK) {
        free(in);
        return -ENOMEM;
    }
    z.next_in = in;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)s->cluster_size;
    zr = inflate(&z, Z_FINISH);
    /* decompression stops once a cluster is produced; trailing bytes of
     * the last sector are not part of the stream */
    if (z.avail_out != 0 || (zr != Z_STREAM_END && zr != Z_OK && zr != Z_BUF_ERROR)) {
        blkv_error(s->ctx, "qcow2: compressed cluster at %" PRIu64 " does not inflate to a "
                   "cluster", off);
        ret = -EIO;
    }
    inflateEnd(&z);
    free(in);
    return ret;
}

/* Read bytes [in, in+len) of guest cluster gc, whose entry is e, into buf
 * (len may run over following clusters for data and zero runs); the reads
 * of data, in this file or the backing file, are for event ev.  For data
 * held in the file, r was registered as a reader under the lock. */
static int qcow2_co_read_entry(struct qcow2_state *s, uint64_t gc, uint64_t e, uint64_t in,
                               uint64_t len, uint8_t *buf, unsigned ev)
{
    uint8_t *tmp;
    int ret;

    switch (qcow2_entry_type(s, e)) {
    case QCOW2_UNALLOC:
        return qcow2_co_backing_read(s, (gc << s->cluster_bits) + in, len, buf, ev);
    case QCOW2_ZERO_PLAIN:
    case QCOW2_ZERO_ALLOC:
        memset(buf, 0, len);
        return 0;
    case QCOW2_NORMAL:
        blkv_lower_event(s->file, ev);
        return blkv_lower_pread(s->file, buf, len, (e & QCOW2_OFFSET_MASK) + in);
    case QCOW2_COMPRESSED:
        tmp = blkv_scratch_get(s->cluster_size);
        if (!tmp)
            return -ENOMEM;
        ret = qcow2_co_read_compressed(s, e, tmp, ev);
        if (!ret)
            memcpy(buf, tmp + in, len);
        blkv_scratch_put(tmp, s->cluster_size);
        return ret;
    }
    return -EIO;
}

/* Register r as a reader of what entry e (len bytes from in) reads from
 * the file, if anything (lock held); returns whether it did. */
static bool qcow2_reader_for(struct qcow2_state *s, struct qcow2_range *r, uint64_t e,
                             uint64_t in, uint64_t len)
{
    uint64_t off, clen;

    switch (qcow2_entry_type(s, e)) {
    case QCOW2_NORMAL:
        qcow2_reader_add(s, r, (e & QCOW2_OFFSET_MASK) + in, len);
        return true;
    case QCOW2_COMPRESSED:
        qcow2_compressed_range(s, e, &off, &clen);
        qcow2_reader_add(s, r, off, clen);
        return true;
    default:
        return false;
    }
}

/* The class a run of entries shares when read. */
static int qcow2_read_class(const struct qcow2_state *s, uint64_t e)
{
    enum qcow2_ctype t = qcow2_entry_type(s, e);
    return t == QCOW2_ZERO_ALLOC ? QCOW2_ZERO_PLAIN : (int)t;
}

/* Read guest bytes; the data reads are for event ev. */
static int qcow2_co_read_ev(struct qcow2_state *s, uint64_t off, uint64_t len, uint8_t *buf,
                            unsigned ev)
{
    uint64_t ents[QCOW2_RUN];

    while (len) {
        uint64_t gc = off >> s->cluster_bits, in = off & (s->cluster_size - 1), k, bytes;
        uint64_t n = qcow2_min(((in + len - 1) >> s->cluster_bits) + 1, QCOW2_RUN);
        struct qcow2_range r;
        bool reading;
        int m, ret, cls;

        blkv_co_mutex_lock(&s->lock);
        m = qcow2_get_entries(s, gc, n, ents);
        if (m < 0 || !qcow2_entry_valid(s, ents[0])) {
            blkv_co_mutex_unlock(&s->lock);
            return m < 0 ? m : -EIO;
        }
        cls = qcow2_read_class(s, ents[0]);
        for (k = 1; k < (uint64_t)m && cls != QCOW2_COMPRESSED; k++) {
            if (qcow2_read_class(s, ents[k]) != cls || !qcow2_entry_valid(s, ents[k]))
                break;
            if (cls == QCOW2_NORMAL && (ents[k] & QCOW2_OFFSET_MASK) !=
                                           (ents[0] & QCOW2_OFFSET_MASK) + (k << s->cluster_bits))
                break;
        }
        bytes = qcow2_min(len, (k << s->cluster_bits) - in);
        reading = qcow2_reader_for(s, &r, ents[0], in, bytes);
        blkv_co_mutex_unlock(&s->lock);

        ret = qcow2_co_read_entry(s, gc, ents[0], in, bytes, buf, ev);
        if (reading)
            qcow2_reader_del(s, &r);
        if (ret < 0)
            return ret;
        off += bytes, buf += bytes, len -= bytes;
    }
    return 0;
}

int qcow2_co_read(struct qcow2_state *s, uint64_t off, uint64_t len, uint8_t *buf)
{
    return qcow2_co_read_ev(s, off, len, buf, BLKV_EV_DATA_READ);
}

/* The whole content of guest cluster gc (entry e) into buf (one cluster),
 * to copy it on write: from this file or the backing file, the data reads
 * are cow_read (metadata loads of a qcow2 backing file are not). */
static int qcow2_co_read_cluster(struct qcow2_state *s, uint64_t gc, uint64_t e, uint8_t *buf)
{
    struct qcow2_range r;
    bool reading;
    int ret;

    blkv_co_mutex_lock(&s->lock);
    reading = qcow2_reader_for(s, &r, e, 0, s->cluster_size);
    blkv_co_mutex_unlock(&s->lock);
    ret = qcow2_co_read_entry(s, gc, e, 0, s->cluster_size, buf, BLKV_EV_COW_READ);
    if (reading)
        qcow2_reader_del(s, &r);
    return ret;
}

/* ---- writing -------------------------------------------------------------------- */

/* Write buf (NULL: zeros) to host bytes [host, host+len). */
static int qcow2_co_pwrite_data(struct qcow2_state *s, uint64_t host, uint64_t len,
                                const uint8_t *buf)
{
    return buf ? blkv_lower_pwrite(s->file, buf, len, host)
               : blkv_lower_pwrite_zeroes(s->file, len, host);
}

/* Whether guest cluster gc, whose entry is e, reads as zeros throughout
 * without looking at any data. */
static bool qcow2_cluster_reads_zero(const struct qcow2_state *s, uint64_t gc, uint64_t e)
{
    switch (qcow2_entry_type(s, e)) {
    case QCOW2_UNALLOC:
        return s->backing == QCOW2_BACKING_NONE || (gc << s->cluster_bits) >= s->backing_size;
    case QCOW2_ZERO_PLAIN:
    case QCOW2_ZERO_ALLOC:
        return true;
    default:
        return false;
    }
}

/* Write cluster i of an allocation run at host: the old content of guest
 * cluster gc+i (entry e) with the data of [a, b) of it laid over.  Old
 * content that is all zeros is not read: the rest is zeroed around the data. */
static int qcow2_co_cow_cluster(struct qcow2_state *s, uint64_t gc, uint64_t e, uint64_t host,
                                uint64_t a, uint64_t b, const uint8_t *data)
{
    uint8_t *cbuf;
    int ret;

    if (qcow2_cluster_reads_zero(s, gc, e)) {
        /* a tag holds for the next I/O issued: none for an empty head or
         * tail (the guest data, or what follows, would take it) */
        ret = 0;
        if (!data || a) {
            blkv_lower_event(s->file, BLKV_EV_COW_WRITE);
            if (!data)
                return blkv_lower_pwrite_zeroes(s->file, s->cluster_size, host);
            ret = blkv_lower_pwrite_zeroes(s->file, a, host);
        }
        if (!ret)
            ret = blkv_lower_pwrite(s->file, data, b - a, host + a);
        if (!ret && b < s->cluster_size) {
            blkv_lower_event(s->file, BLKV_EV_COW_WRITE);
            ret = blkv_lower_pwrite_zeroes(s->file, s->cluster_size - b, host + b);
        }
        return ret;
    }
    if (!(cbuf = blkv_scratch_get(s->cluster_size)))
        return -ENOMEM;
    ret = qcow2_co_read_cluster(s, gc, e, cbuf);
    if (!ret) {
        if (data)
            memcpy(cbuf + a, data, b - a);
        else
            memset(cbuf + a, 0, b - a);
        blkv_lower_event(s->file, BLKV_EV_COW_WRITE);
        ret = blkv_lower_pwrite(s->file, cbuf, s->cluster_size, host);
    }
    blkv_scratch_put(cbuf, s->cluster_size);
    return ret;
}

/* Write guest bytes [in, in+*bytes) of the k clusters from gc into newly
 * allocated clusters, copying the rest of partial first and last clusters
 * from their old content (entries ents), then map them.  Free space may
 * give fewer contiguous clusters than k: *bytes is cut to what was done. */
static int qcow2_co_alloc_write(struct qcow2_state *s, uint64_t gc, uint64_t k, uint64_t in,
                                uint64_t *bytes, const uint8_t *buf, const uint64_t *ents)
{
    uint64_t cs = s->cluster_size, end = in + *bytes, hc = 0, got = 0, host, i = 0, j;
    uint64_t nents[QCOW2_RUN], old[QCOW2_RUN];
    int ret;

    blkv_co_mutex_lock(&s->lock);
    ret = qcow2_l2_prepare(s, gc);
    if (!ret)
        ret = qcow2_alloc_clusters(s, k, &hc, &got);
    blkv_co_mutex_unlock(&s->lock);
    if (ret < 0)
        return ret;
    if (got < k) {
        k = got;
        end = qcow2_min(end, k << s->cluster_bits);
        *bytes = end - in;
    }
    host = hc << s->cluster_bits;

    /* the first cluster, when partial */
    if (in > 0 || end < cs) {
        uint64_t b = qcow2_min(end, cs);
        ret = qcow2_co_cow_cluster(s, gc, ents[0], host, in, b, buf);
        i = 1;
    }
    /* whole clusters */
    j = end < (k << s->cluster_bits) ? k - 1 : k;
    if (!ret && j > i)
        ret = qcow2_co_pwrite_data(s, host + (i << s->cluster_bits), (j - i) << s->cluster_bits,
                                   buf ? buf + ((i << s->cluster_bits) - in) : NULL);
    /* the last cluster, when partial and not the first */
    if (!ret && j < k && k - 1 >= i) {
        uint64_t base = (k - 1) << s->cluster_bits;
        ret = qcow2_co_cow_cluster(s, gc + k - 1, ents[k - 1], host + base, 0, end - base,
                                   buf ? buf + (base - in) : NULL);
    }
    if (ret < 0)
        return ret; /* the new clusters leak; nothing maps them */

    for (i = 0; i < k; i++)
        nents[i] = (host + (i << s->cluster_bits)) | QCOW2_OFLAG_COPIED;
    blkv_co_mutex_lock(&s->lock);
    /* the clusters' refcounts and data are durable before anything maps them */
    ret = qcow2_barrier(s);
    if (!ret)
        ret = qcow2_l2_set(s, gc, k, nents, old);
    if (!ret && qcow2_frees_any(s, old, k, NULL) && qcow2_barrier(s) == 0)
        for (i = 0; i < k; i++)
            qcow2_free_entry(s, old[i], 0); /* failure only leaks */
    blkv_co_mutex_unlock(&s->lock);
    return ret;
}

int qcow2_co_write(struct qcow2_state *s, uint64_t off, uint64_t len, const uint8_t *buf)
{
    uint64_t ents[QCOW2_RUN];

    while (len) {
        uint64_t gc = off >> s->cluster_bits, in = off & (s->cluster_size - 1), k, bytes;
        uint64_t n = qcow2_min(((in + len - 1) >> s->cluster_bits) + 1, QCOW2_RUN);
        bool inplace = false;
        int m, ret;

        blkv_co_mutex_lock(&s->lock);
        m = qcow2_get_entries(s, gc, n, ents);
        for (k = 0; m > 0 && k < (uint64_t)m; k++) {
            bool ip = qcow2_entry_type(s, ents[k]) == QCOW2_NORMAL &&
                      (ents[k] & QCOW2_OFLAG_COPIED);
            if (!qcow2_entry_valid(s, ents[k])) {
                m = -EIO;
                break;
            }
            if (k == 0)
                inplace = ip;
            else if (ip != inplace || (ip && (ents[k] & QCOW2_OFFSET_MASK) !=
                                                  (ents[0] & QCOW2_OFFSET_MASK) +
                                                      (k << s->cluster_bits)))
                break;
        }
        blkv_co_mutex_unlock(&s->lock);
        if (m < 0)
            return m;
        bytes = qcow2_min(len, (k << s->cluster_bits) - in);
        if (inplace && qcow2_fixed_meta(s, (ents[0] & QCOW2_OFFSET_MASK) + in, bytes)) {
            blkv_error(s->ctx, "qcow2: corrupt L2 entry 0x%016" PRIx64 ": data over the image's "
                       "header or tables", ents[0]);
            return -EIO;
        }
        if (inplace)
            ret = qcow2_co_pwrite_data(s, (ents[0] & QCOW2_OFFSET_MASK) + in, bytes, buf);
        else
            ret = qcow2_co_alloc_write(s, gc, k, in, &bytes, buf, ents);
        if (ret < 0)
            return ret;
        off += bytes, len -= bytes;
        if (buf)
            buf += bytes;
    }
    return 0;
}

/* ---- write-zeroes and discard ----------------------------------------------------- */

/* Zero [off, off+len) inside one cluster by writing, unless it reads as
 * zeros already. */
static int qcow2_co_zero_partial(struct qcow2_state *s, uint64_t off, uint64_t len)
{
    uint64_t e;
    enum qcow2_ctype t;
    int m;

    blkv_co_mutex_lock(&s->lock);
    m = qcow2_get_entries(s, off >> s->cluster_bits, 1, &e);
    blkv_co_mutex_unlock(&s->lock);
    if (m < 0)
        return m;
    t = qcow2_entry_type(s, e);
    if (t == QCOW2_ZERO_PLAIN || t == QCOW2_ZERO_ALLOC ||
        (t == QCOW2_UNALLOC && s->backing == QCOW2_BACKING_NONE))
        return 0;
    return qcow2_co_write(s, off, len, NULL);
}

/* The entry that makes a whole cluster read as zeros, given its old one. */
static uint64_t qcow2_zero_entry(const struct qcow2_state *s, uint64_t e, bool unmap)
{
    enum qcow2_ctype t = qcow2_entry_type(s, e);
    uint64_t none = s->backing != QCOW2_BACKING_NONE ? QCOW2_OFLAG_ZERO : 0;

    if (s->version < 3)
        return 0; /* only used without a backing file */
    if (unmap || t == QCOW2_COMPRESSED || (t == QCOW2_NORMAL && !(e & QCOW2_OFLAG_COPIED)))
        return none;
    switch (t) {
    case QCOW2_NORMAL: /* keep the cluster preallocated */
        return (e & QCOW2_OFFSET_MASK) | QCOW2_OFLAG_ZERO | QCOW2_OFLAG_COPIED;
    case QCOW2_ZERO_ALLOC:
    case QCOW2_ZERO_PLAIN:
        return e;
    default:
        return none;
    }
}

/* Make n whole clusters from gc read as zeros by changing their entries. */
static int qcow2_co_zero_clusters(struct qcow2_state *s, uint64_t gc, uint64_t n, bool unmap)
{
    uint64_t ents[QCOW2_RUN], nents[QCOW2_RUN], old[QCOW2_RUN];

    while (n) {
        bool changed = false;
        int m, ret = 0;

        blkv_co_mutex_lock(&s->lock);
        m = qcow2_get_entries(s, gc, qcow2_min(n, QCOW2_RUN), ents);
        for (int i = 0; i < m; i++) {
            if (!qcow2_entry_valid(s, ents[i])) {
                m = -EIO;
                break;
            }
            nents[i] = qcow2_zero_entry(s, ents[i], unmap);
            changed |= nents[i] != ents[i];
        }
        if (m > 0 && changed) {
            ret = qcow2_l2_set(s, gc, (uint64_t)m, nents, old);
            /* what the old entries referenced is freed once they are durably gone */
            if (!ret && qcow2_frees_any(s, old, (uint64_t)m, nents) && qcow2_barrier(s) == 0)
                for (int i = 0; i < m; i++)
                    qcow2_free_entry(s, old[i], nents[i] & QCOW2_OFFSET_MASK);
        }
        blkv_co_mutex_unlock(&s->lock);
        if (m < 0 || ret < 0)
            return m < 0 ? m : ret;
        gc += (uint64_t)m, n -= (uint64_t)m;
    }
    return 0;
}

int qcow2_co_zero(struct qcow2_state *s, uint64_t off, uint64_t len, bool unmap)
{
    uint64_t cs = s->cluster_size, end = off + len, a, b;
    int ret;

    if (s->version < 3 && s->backing != QCOW2_BACKING_NONE)
        return qcow2_co_write(s, off, len, NULL);
    a = (off + cs - 1) & ~(cs - 1);
    b = end == s->size ? (end + cs - 1) & ~(cs - 1) : end & ~(cs - 1);
    if (a >= b) {
        /* no whole cluster: at most two partial ones */
        uint64_t mid = qcow2_min(end, a);
        if (mid > off && (ret = qcow2_co_zero_partial(s, off, mid - off)) < 0)
            return ret;
        if (end > mid)
            return qcow2_co_zero_partial(s, mid, end - mid);
        return 0;
    }
    if (off < a && (ret = qcow2_co_zero_partial(s, off, a - off)) < 0)
        return ret;
    if ((ret = qcow2_co_zero_clusters(s, a >> s->cluster_bits, (b - a) >> s->cluster_bits,
                                      unmap)) < 0)
        return ret;
    if (b < end)
        return qcow2_co_zero_partial(s, b, end - b);
    return 0;
}
