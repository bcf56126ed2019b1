/* SPDX-License-Identifier: BSD-3-Clause */
/* qcow2_image.c - qcow2 images built byte by byte (see qcow2_image.h). */
#include "qcow2_image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

struct qimg qimg;

void qimg_be(uint8_t *p, uint64_t v, unsigned n)
{
    for (unsigned i = n; i-- > 0; v >>= 8)
        p[i] = (uint8_t)v;
}

uint64_t qimg_get(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

void qimg_fail(const char *what)
{
    fprintf(stderr, "qcow2 image: %s\n", what);
    exit(2);
}

/* A new image: version, log2 cluster size, refcount order, virtual size. */
void qimg_begin(unsigned version, unsigned cb, unsigned rorder, uint64_t size)
{
    free(qimg.b);
    free(qimg.l1);
    memset(&qimg, 0, sizeof(qimg));
    qimg.version = version, qimg.cb = cb, qimg.rorder = rorder, qimg.size = size;
    qimg.cs = UINT64_C(1) << cb;
    qimg.l1_size = ((size + qimg.cs - 1) / qimg.cs + qimg.cs / 8 - 1) / (qimg.cs / 8);
    qimg.b = calloc(QI_MAX_CLUSTERS, qimg.cs);
    qimg.l1 = calloc(qimg.l1_size, sizeof(*qimg.l1));
    if (!qimg.b || !qimg.l1)
        qimg_fail("out of memory");
    qimg.nclusters = 3; /* header, refcount table, refcount block */
    qimg_be(qimg.b, 0x514649fb, 4);
    qimg_be(qimg.b + 4, version, 4);
    qimg_be(qimg.b + 20, cb, 4);
    qimg_be(qimg.b + 24, size, 8);
    qimg_be(qimg.b + 36, qimg.l1_size, 4);
    qimg_be(qimg.b + 48, qimg.cs, 8); /* refcount table: cluster 1 */
    qimg_be(qimg.b + 56, 1, 4);
    qimg_be(qimg.b + qimg.cs, 2 * qimg.cs, 8); /* its one block: cluster 2 */
    qimg.hdr_end = 72;
    if (version >= 3) {
        qimg_be(qimg.b + 96, rorder, 4);
        qimg_be(qimg.b + 100, 104, 4);
        qimg.hdr_end = 104;
    }
}

/* A new cluster; returns its index. */
static uint64_t qimg_alloc(void)
{
    if (qimg.nclusters >= QI_MAX_CLUSTERS - 1)
        qimg_fail("too many clusters");
    return qimg.nclusters++;
}

/* The L2 table of guest cluster gc (made on first use); its byte offset. */
uint64_t qimg_l2(uint64_t gc)
{
    uint64_t i = gc / (qimg.cs / 8);
    if (i >= qimg.l1_size)
        qimg_fail("guest cluster past the L1 table");
    if (!qimg.l1[i])
        qimg.l1[i] = qimg_alloc();
    return qimg.l1[i] * qimg.cs;
}

/* Set the L2 entry of guest cluster gc. */
static void qimg_entry(uint64_t gc, uint64_t e)
{
    qimg_be(qimg.b + qimg_l2(gc) + gc % (qimg.cs / 8) * 8, e, 8);
}

/* Compressible content that differs per tag. */
void qimg_fill(uint8_t *p, uint64_t n, unsigned tag)
{
    for (uint64_t i = 0; i < n; i++)
        p[i] = (uint8_t)((i / 64) * tag + (i % 7 == 0 ? tag : 0));
}

/* Guest cluster gc holds data in a new host cluster. */
/* Remember what guest cluster gc reads as, for qimg_guest. */
static void qimg_note(uint64_t gc, char kind, unsigned tag)
{
    for (unsigned i = 0; i < qimg.nguest; i++)
        if (qimg.guest[i].gc == gc) {
            qimg.guest[i].kind = kind, qimg.guest[i].tag = tag;
            return;
        }
    if (qimg.nguest == QI_MAX_CLUSTERS)
        qimg_fail("too many guest clusters");
    qimg.guest[qimg.nguest].gc = gc;
    qimg.guest[qimg.nguest].kind = kind;
    qimg.guest[qimg.nguest++].tag = tag;
}

/* The content of a compressed cluster of tag: sparse, so that even 2 MiB
 * compress to a few KiB. */
static void qimg_sparse(uint8_t *in, unsigned tag)
{
    memset(in, 0, qimg.cs);
    for (uint64_t i = 0; i < qimg.cs; i += 512)
        in[i] = (uint8_t)(tag + i / 512);
}

void qimg_data(uint64_t gc, unsigned tag)
{
    qimg_note(gc, 'd', tag);
    uint64_t c = qimg_alloc();
    qimg_fill(qimg.b + c * qimg.cs, qimg.cs, tag);
    qimg.refs[c]++;
    qimg_entry(gc, c * qimg.cs); /* the copied flag comes at the end */
}

/* Guest cluster gc reads as zeros (version 3): plainly, or over a
 * preallocated host cluster starting with garbage that must not show. */
void qimg_zero(uint64_t gc, bool alloc)
{
    uint64_t c = 0;
    qimg_note(gc, 'z', 0);
    if (alloc) {
        c = qimg_alloc();
        memset(qimg.b + c * qimg.cs, 0xa5, qimg.cs < 4096 ? qimg.cs : 4096);
        qimg.refs[c]++;
    }
    qimg_entry(gc, c * qimg.cs | 1);
}

/* Guest cluster gc is compressed; consecutive ones pack into one host
 * cluster at unaligned offsets while they fit. */
void qimg_compressed(uint64_t gc, unsigned tag)
{
    uint8_t *in = malloc(qimg.cs), *out = malloc(2 * qimg.cs);
    uint64_t n, sectors, shift = 62 - (qimg.cb - 8);
    z_stream z;

    if (!in || !out)
        qimg_fail("out of memory");
    qimg_note(gc, 'c', tag);
    qimg_sparse(in, tag);
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, 9, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        qimg_fail("deflateInit2");
    z.next_in = in;
    z.avail_in = (uInt)qimg.cs;
    z.next_out = out;
    z.avail_out = (uInt)(2 * qimg.cs);
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        qimg_fail("deflate");
    n = 2 * qimg.cs - z.avail_out;
    deflateEnd(&z);
    if (n > qimg.cs - 3)
        qimg_fail("incompressible");
    /* 1-bit refcounts cannot count two references */
    if (!qimg.cpos || qimg.cpos / qimg.cs != (qimg.cpos + n - 1) / qimg.cs || qimg.rorder == 0)
        qimg.cpos = qimg_alloc() * qimg.cs + 3; /* not sector aligned */
    memcpy(qimg.b + qimg.cpos, out, n);
    sectors = (qimg.cpos % 512 + n + 511) / 512 - 1;
    for (uint64_t c = qimg.cpos / qimg.cs; c <= (qimg.cpos + n - 1) / qimg.cs; c++)
        qimg.refs[c]++;
    qimg_entry(gc, UINT64_C(1) << 62 | sectors << shift | qimg.cpos);
    qimg.cpos += n + 5;
    free(in);
    free(out);
}

/* A header extension (version 3: after the header, before the backing name). */
void qimg_ext(uint32_t type, const void *data, uint32_t len)
{
    qimg_be(qimg.b + qimg.hdr_end, type, 4);
    qimg_be(qimg.b + qimg.hdr_end + 4, len, 4);
    memcpy(qimg.b + qimg.hdr_end + 8, data, len);
    qimg.hdr_end += 8 + (len + 7) / 8 * 8;
}

/* The backing file's name (after the extensions and their end marker). */
void qimg_backing(const char *name)
{
    uint64_t off = qimg.hdr_end + 8;
    qimg_be(qimg.b + 8, off, 8);
    qimg_be(qimg.b + 16, strlen(name), 4);
    memcpy(qimg.b + off, name, strlen(name));
}

static void qimg_rc_set(uint8_t *blk, uint64_t i, uint64_t v)
{
    unsigned bits = 1u << qimg.rorder;
    if (bits < 64 && v >> bits)
        qimg_fail("refcount too wide");
    if (bits < 8) {
        uint64_t bit = i * bits;
        blk[bit / 8] |= (uint8_t)(v << (bit % 8));
    } else {
        qimg_be(blk + i * (bits / 8), v, bits / 8);
    }
}

/* Lay out the L1 table last, write refcounts and copied flags; returns the
 * file length (the L1 table ends the file). */
size_t qimg_finish(void)
{
    uint64_t l1c = (qimg.l1_size * 8 + qimg.cs - 1) / qimg.cs, len;
    uint64_t l1 = qimg.l1_at ? qimg.l1_at : qimg.nclusters, used = l1 + l1c;
    uint8_t *rb = qimg.b + 2 * qimg.cs;

    if (qimg.l1_at)
        used = qimg.nclusters;
    if (used > QI_MAX_CLUSTERS || used > (qimg.cs * 8) >> qimg.rorder)
        qimg_fail("image too big for one refcount block");
    qimg.refs[0] = qimg.refs[1] = qimg.refs[2] = 1;
    for (uint64_t i = 0; i < qimg.l1_size; i++) {
        if (qimg.l1[i]) {
            qimg.refs[qimg.l1[i]]++;
            qimg_be(qimg.b + (l1 * qimg.cs) + i * 8, qimg.l1[i] * qimg.cs, 8);
        }
    }
    for (uint64_t c = l1; c < l1 + l1c; c++)
        qimg.refs[c] = 1;
    /* copied flags: set exactly where the refcount is 1 */
    for (uint64_t i = 0; i < qimg.l1_size; i++) {
        uint8_t *l2;
        if (!qimg.l1[i])
            continue;
        if (qimg.refs[qimg.l1[i]] == 1)
            qimg.b[l1 * qimg.cs + i * 8] |= 0x80;
        l2 = qimg.b + qimg.l1[i] * qimg.cs;
        for (uint64_t j = 0; j < qimg.cs / 8; j++) {
            uint64_t e = qimg_get(l2 + j * 8, 8), off = e & UINT64_C(0x00fffffffffffe00);
            if (!(e >> 62) && off && qimg.refs[off / qimg.cs] == 1)
                l2[j * 8] |= 0x80;
        }
    }
    for (uint64_t c = 0; c < used; c++)
        qimg_rc_set(rb, c, qimg.refs[c]);
    qimg_be(qimg.b + 40, l1 * qimg.cs, 8);
    /* the L1 table ends the file, or the last cluster does */
    len = qimg.l1_at ? used * qimg.cs : l1 * qimg.cs + qimg.l1_size * 8;
    return (size_t)len;
}

/* A shared L2 table (as internal snapshots leave behind): L1 entries 0 and
 * 1 both name the table of entry 0, which then has refcount 2, and so do
 * the clusters it maps (counted once per table reference, as QEMU does). */
void qimg_share_l2(void)
{
    const uint8_t *l2;
    if (qimg.l1_size < 2 || !qimg.l1[0] || qimg.l1[1])
        qimg_fail("cannot share an L2 table");
    qimg.l1[1] = qimg.l1[0];
    l2 = qimg.b + qimg.l1[0] * qimg.cs;
    for (uint64_t j = 0; j < qimg.cs / 8; j++) {
        uint64_t e = qimg_get(l2 + j * 8, 8), off = e & UINT64_C(0x00fffffffffffe00);
        if (!(e >> 62) && off)
            qimg.refs[off / qimg.cs]++;
    }
}


void qimg_reserve_l1(void)
{
    uint64_t l1c = (qimg.l1_size * 8 + qimg.cs - 1) / qimg.cs;
    if (qimg.nclusters != 3)
        qimg_fail("the L1 table is reserved right after the refcount block");
    qimg.l1_at = qimg.nclusters;
    for (uint64_t i = 0; i < l1c; i++)
        qimg_alloc();
}

void qimg_guest(uint64_t gc, void *buf)
{
    memset(buf, 0, qimg.cs);
    for (unsigned i = 0; i < qimg.nguest; i++) {
        if (qimg.guest[i].gc != gc)
            continue;
        if (qimg.guest[i].kind == 'd')
            qimg_fill(buf, qimg.cs, qimg.guest[i].tag);
        else if (qimg.guest[i].kind == 'c')
            qimg_sparse(buf, qimg.guest[i].tag);
    }
}

void qimg_free(void)
{
    free(qimg.b);
    free(qimg.l1);
    memset(&qimg, 0, sizeof(qimg));
}
