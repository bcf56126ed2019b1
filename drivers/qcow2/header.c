/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * header.c - creating an image, parsing and validating the header of any
 * bytes claiming to be one (every size and offset checked against the file
 * and against fixed limits before anything is allocated or read), loading
 * the L1 and refcount tables, and the few header updates made while open.
 */
#include "qcow2.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Size of the fixed header part we read before knowing the cluster size. */
#define QCOW2_HDR_PEEK 512

/* Names of the backing file we create, by format. */
static const char *qcow2_backing_name(enum qcow2_backing b)
{
    return b == QCOW2_BACKING_QCOW2 ? "backing.qcow2" : "backing.raw";
}

/* ceil(a / b) */
static uint64_t qcow2_div_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

int qcow2_create(struct qcow2_state *s, uint64_t size, const struct qcow2_create_opts *o)
{
    uint64_t cs = UINT64_C(1) << o->cluster_bits, l2e = cs / 8;
    uint64_t rbe = cs * 8 >> o->refcount_order;
    uint64_t l1_size = qcow2_div_up(qcow2_div_up(size, cs), l2e), l1c, k = 1, nb = 1, total;
    uint64_t pos;
    uint8_t *hdr = NULL, *rt = NULL, *rb = NULL;
    int ret;

    if (l1_size == 0)
        l1_size = 1;
    if (o->l1_size && o->l1_size < l1_size) {
        blkv_error(s->ctx, "qcow2: l1-size=%" PRIu32 ": size %" PRIu64 " needs at least %" PRIu64
                   " L1 entries with %" PRIu64 "-byte clusters", o->l1_size, size, l1_size, cs);
        return -EINVAL;
    }
    if (o->l1_size)
        l1_size = o->l1_size;
    if (l1_size * 8 > QCOW2_MAX_L1_BYTES) {
        blkv_error(s->ctx, "qcow2: size %" PRIu64 " needs an L1 table over %" PRIu64
                   " bytes with %" PRIu64 "-byte clusters; use larger clusters",
                   size, QCOW2_MAX_L1_BYTES, cs);
        return -EFBIG;
    }
    l1c = qcow2_div_up(l1_size * 8, cs);
    /* header, refcount table, refcount blocks, L1: enough blocks for all */
    for (;;) {
        uint64_t nb2, k2;
        total = 1 + k + nb + l1c;
        nb2 = qcow2_div_up(total, rbe);
        k2 = qcow2_div_up(nb2 * 8, cs);
        if (nb2 == nb && k2 == k)
            break;
        nb = nb2, k = k2;
    }
    /* Only the bytes that are not zero are written; the file is then
     * extended over the rest (a fresh lower file reads zeros). */
    hdr = calloc(1, qcow2_min(cs, 4096));
    rt = calloc(nb, 8);
    rb = calloc(1, qcow2_div_up(qcow2_min(total, rbe) << o->refcount_order, 8));
    if (!hdr || !rt || !rb) {
        ret = -ENOMEM;
        goto out;
    }
    /* the header */
    qcow2_put_be32(hdr, QCOW2_MAGIC);
    qcow2_put_be32(hdr + 4, o->version);
    qcow2_put_be32(hdr + 20, o->cluster_bits);
    qcow2_put_be64(hdr + 24, size);
    qcow2_put_be32(hdr + 36, (uint32_t)l1_size);
    qcow2_put_be64(hdr + 40, (1 + k + nb) * cs);
    qcow2_put_be64(hdr + 48, cs);
    qcow2_put_be32(hdr + 56, (uint32_t)k);
    pos = 72;
    if (o->version >= 3) {
        qcow2_put_be64(hdr + 80, o->lazy ? QCOW2_COMPAT_LAZY : 0);
        qcow2_put_be32(hdr + 96, o->refcount_order);
        qcow2_put_be32(hdr + 100, 112); /* up to the compression type, padded */
        pos = 112;
    }
    if (o->backing != QCOW2_BACKING_NONE) {
        const char *fmt = o->backing == QCOW2_BACKING_QCOW2 ? "qcow2" : "raw";
        const char *name = qcow2_backing_name(o->backing);
        qcow2_put_be32(hdr + pos, QCOW2_EXT_BACKING_FORMAT);
        qcow2_put_be32(hdr + pos + 4, (uint32_t)strlen(fmt));
        memcpy(hdr + pos + 8, fmt, strlen(fmt));
        pos += 8 + (strlen(fmt) + 7) / 8 * 8;
        pos += 8; /* end of extensions */
        qcow2_put_be64(hdr + 8, pos);
        qcow2_put_be32(hdr + 16, (uint32_t)strlen(name));
        memcpy(hdr + pos, name, strlen(name));
    }
    /* refcount table and blocks: every cluster so far is used once */
    for (uint64_t j = 0; j < nb; j++)
        qcow2_put_be64(rt + j * 8, (1 + k + j) * cs);
    s->refcount_bits = 1u << o->refcount_order;
    if ((ret = blkv_lower_truncate(s->file, 0)) < 0 ||
        (ret = blkv_lower_pwrite(s->file, hdr, qcow2_min(cs, 4096), 0)) < 0 ||
        (ret = blkv_lower_pwrite(s->file, rt, nb * 8, cs)) < 0)
        goto fail;
    for (uint64_t j = 0; j < nb; j++) { /* block j: the used prefix */
        uint64_t n = qcow2_min(rbe, total - j * rbe);
        memset(rb, 0, qcow2_div_up(qcow2_min(total, rbe) << o->refcount_order, 8));
        for (uint64_t c = 0; c < n; c++)
            qcow2_rc_write(s, rb, c, 1);
        if ((ret = blkv_lower_pwrite(s->file, rb, qcow2_div_up(n << o->refcount_order, 8),
                                     (1 + k + j) * cs)) < 0)
            goto fail;
    }
    if ((ret = blkv_lower_truncate(s->file, total * cs)) < 0) /* L1 and the rest: zeros */
        goto fail;
    goto out;
fail:
    blkv_error(s->ctx, "qcow2: cannot write the new image");
out:
    free(hdr);
    free(rt);
    free(rb);
    return ret;
}

/* A feature's name from the image's feature name table, or "". */
static void qcow2_feature_name(const uint8_t *table, uint64_t len, unsigned type, unsigned bit,
                               char *out, size_t outlen)
{
    out[0] = 0;
    for (uint64_t p = 0; table && p + 48 <= len; p += 48) {
        if (table[p] == type && table[p + 1] == bit) {
            size_t n = strnlen((const char *)table + p + 2, 46);
            snprintf(out, outlen, " (%.*s)", (int)n, (const char *)table + p + 2);
            return;
        }
    }
}

/* Refuse incompatible features we do not implement; 0 or -ENOTSUP. */
static int qcow2_check_features(struct qcow2_state *s, const uint8_t *hdr, const uint8_t *ft,
                                uint64_t ftlen)
{
    static const char *const known[] = {"dirty bit", "corrupt bit", "external data file",
                                        "compression type", "extended L2 entries"};
    uint64_t bad = s->incompat & ~QCOW2_INCOMPAT_DIRTY;
    char name[64];

    if (!bad)
        return 0;
    for (unsigned bit = 0; bit < 64; bit++) {
        if (!(bad & (UINT64_C(1) << bit)))
            continue;
        if (bit < sizeof(known) / sizeof(known[0])) {
            if (bit == 3 && s->header_length > 104)
                blkv_error(s->ctx, "qcow2: unsupported feature: compression type %u (only zlib)",
                           hdr[104]);
            else
                blkv_error(s->ctx, "qcow2: unsupported feature: %s", known[bit]);
        } else {
            qcow2_feature_name(ft, ftlen, 0, bit, name, sizeof(name));
            blkv_error(s->ctx, "qcow2: unsupported feature: unknown incompatible feature bit %u%s",
                       bit, name);
        }
        return -ENOTSUP;
    }
    return 0;
}

/* Parse the header extensions of cluster 0 (buf, cs bytes). */
static int qcow2_parse_exts(struct qcow2_state *s, const uint8_t *buf, uint64_t avail,
                            const uint8_t **ft, uint64_t *ftlen)
{
    uint64_t pos = s->header_length, cs = s->cluster_size;

    *ft = NULL, *ftlen = 0;
    while (pos + 8 <= cs) {
        uint32_t type, len;
        if (pos + 8 > avail)
            return -EAGAIN; /* read more of the cluster */
        type = qcow2_be32(buf + pos), len = qcow2_be32(buf + pos + 4);
        if (type == QCOW2_EXT_END)
            return 0;
        if (len > cs - pos - 8) {
            blkv_error(s->ctx, "qcow2: header extension 0x%08x at %" PRIu64 " overruns the "
                       "header cluster (%u bytes)", type, pos, len);
            return -EINVAL;
        }
        if (pos + 8 + len > avail)
            return -EAGAIN;
        switch (type) {
        case QCOW2_EXT_BACKING_FORMAT:
            if (len >= sizeof(s->backing_fmt)) {
                blkv_error(s->ctx, "qcow2: backing format name too long (%u bytes)", len);
                return -EINVAL;
            }
            memcpy(s->backing_fmt, buf + pos + 8, len);
            s->backing_fmt[len] = 0;
            break;
        case QCOW2_EXT_FEATURES:
            *ft = buf + pos + 8, *ftlen = len;
            break;
        default: /* bitmaps (autoclear), crypto header, unknown: ignored */
            break;
        }
        pos += 8 + ((uint64_t)len + 7) / 8 * 8;
    }
    return 0;
}

/* Validate the fixed header fields in hdr (QCOW2_HDR_PEEK bytes). */
static int qcow2_parse_fixed(struct qcow2_state *s, const uint8_t *hdr, uint64_t fsize)
{
    uint64_t cs, clusters, need_l1;
    uint32_t crypt, nb_snap;

    if (fsize < 72 || qcow2_be32(hdr) != QCOW2_MAGIC) {
        blkv_error(s->ctx, "qcow2: not a qcow2 image (%s)", fsize < 72 ? "file too small"
                                                                      : "bad magic");
        return -EINVAL;
    }
    s->version = qcow2_be32(hdr + 4);
    if (s->version != 2 && s->version != 3) {
        blkv_error(s->ctx, "qcow2: unsupported feature: version %u", s->version);
        return -ENOTSUP;
    }
    s->cluster_bits = qcow2_be32(hdr + 20);
    if (s->cluster_bits < QCOW2_MIN_CLUSTER_BITS || s->cluster_bits > QCOW2_MAX_CLUSTER_BITS) {
        blkv_error(s->ctx, "qcow2: cluster_bits %u out of range 9..21", s->cluster_bits);
        return -EINVAL;
    }
    cs = s->cluster_size = UINT64_C(1) << s->cluster_bits;
    s->size = qcow2_be64(hdr + 24);
    crypt = qcow2_be32(hdr + 32);
    s->l1_size = qcow2_be32(hdr + 36);
    s->l1_offset = qcow2_be64(hdr + 40);
    s->rt_offset = qcow2_be64(hdr + 48);
    s->rt_clusters = qcow2_be32(hdr + 56);
    nb_snap = qcow2_be32(hdr + 60);
    s->refcount_order = 4;
    s->header_length = 72;
    if (s->version >= 3) {
        s->incompat = qcow2_be64(hdr + 72);
        s->compat = qcow2_be64(hdr + 80);
        s->autoclear = qcow2_be64(hdr + 88);
        s->refcount_order = qcow2_be32(hdr + 96);
        s->header_length = qcow2_be32(hdr + 100);
        if (s->header_length < QCOW2_HDR_V3_LEN || s->header_length % 8 ||
            s->header_length > cs) {
            blkv_error(s->ctx, "qcow2: bad header length %u", s->header_length);
            return -EINVAL;
        }
        if (s->refcount_order > 6) {
            blkv_error(s->ctx, "qcow2: refcount order %u over 6", s->refcount_order);
            return -EINVAL;
        }
    }
    if (crypt) {
        blkv_error(s->ctx, "qcow2: unsupported feature: encryption (method %u)", crypt);
        return -ENOTSUP;
    }
    if (nb_snap) {
        blkv_error(s->ctx, "qcow2: unsupported feature: internal snapshots (%u)", nb_snap);
        return -ENOTSUP;
    }
    if (s->size == 0) {
        blkv_error(s->ctx, "qcow2: virtual size is 0");
        return -EINVAL;
    }
    if (s->size > BLKV_MAX_DEVICE_SIZE) {
        blkv_error(s->ctx, "qcow2: virtual size %" PRIu64 " over the largest device %" PRIu64,
                   s->size, BLKV_MAX_DEVICE_SIZE);
        return -EFBIG;
    }
    /* L1 */
    clusters = qcow2_div_up(s->size, cs);
    need_l1 = qcow2_div_up(clusters, cs / 8);
    if ((uint64_t)s->l1_size * 8 > QCOW2_MAX_L1_BYTES) {
        blkv_error(s->ctx, "qcow2: L1 table of %u entries over the limit", s->l1_size);
        return -EFBIG;
    }
    if (s->l1_size < need_l1) {
        blkv_error(s->ctx, "qcow2: L1 table of %u entries too small for size %" PRIu64,
                   s->l1_size, s->size);
        return -EINVAL;
    }
    if (s->l1_offset % cs || s->l1_offset < cs || s->l1_offset > fsize ||
        (uint64_t)s->l1_size * 8 > fsize - s->l1_offset) {
        blkv_error(s->ctx, "qcow2: L1 table at %" PRIu64 " (%u entries) misaligned or outside "
                   "the %" PRIu64 "-byte file", s->l1_offset, s->l1_size, fsize);
        return -EINVAL;
    }
    /* refcount table */
    if (s->rt_clusters == 0 || (uint64_t)s->rt_clusters * cs > QCOW2_MAX_RT_BYTES) {
        blkv_error(s->ctx, "qcow2: refcount table of %u clusters out of range", s->rt_clusters);
        return s->rt_clusters ? -EFBIG : -EINVAL;
    }
    if (s->rt_offset % cs || s->rt_offset < cs || s->rt_offset > fsize ||
        (uint64_t)s->rt_clusters * cs > fsize - s->rt_offset) {
        blkv_error(s->ctx, "qcow2: refcount table at %" PRIu64 " misaligned or outside the "
                   "%" PRIu64 "-byte file", s->rt_offset, fsize);
        return -EINVAL;
    }
    /* backing file name: inside the header cluster */
    {
        uint64_t boff = qcow2_be64(hdr + 8);
        uint32_t blen = qcow2_be32(hdr + 16);
        s->has_backing = boff != 0;
        if (boff && (blen > 1023 || boff > cs || blen > cs - boff)) {
            blkv_error(s->ctx, "qcow2: backing file name at %" PRIu64 " (%u bytes) outside the "
                       "header cluster", boff, blen);
            return -EINVAL;
        }
    }
    return 0;
}

/* Derived geometry from the header fields. */
static void qcow2_derive(struct qcow2_state *s)
{
    s->l2_bits = s->cluster_bits - 3;
    s->l2_entries = UINT64_C(1) << s->l2_bits;
    s->refcount_bits = 1u << s->refcount_order;
    s->rb_bits = s->cluster_bits + 3 - s->refcount_order;
    s->rb_entries = UINT64_C(1) << s->rb_bits;
    s->refcount_max = s->refcount_bits == 64 ? UINT64_MAX
                                             : (UINT64_C(1) << s->refcount_bits) - 1;
    s->csize_shift = 62 - (s->cluster_bits - 8);
    s->csize_mask = (UINT64_C(1) << (s->cluster_bits - 8)) - 1;
    s->coffset_mask = (UINT64_C(1) << s->csize_shift) - 1;
}

/* Tables are mostly zeros: skipped a block at a time by memcmp, which is
 * vectorised (and under ASan checks its range once, not every entry). */
#define QCOW2_SCAN_BLOCK 512 /* entries */
static const uint8_t qcow2_zero_block[QCOW2_SCAN_BLOCK * 8];

__attribute__((noinline)) uint64_t qcow2_next_used(const void *t, uint64_t i, uint64_t n)
{
    const uint8_t *p = t;
    uint64_t v;

    while (i < n) {
        if (i % QCOW2_SCAN_BLOCK == 0 && n - i >= QCOW2_SCAN_BLOCK &&
            memcmp(p + i * 8, qcow2_zero_block, sizeof(qcow2_zero_block)) == 0) {
            i += QCOW2_SCAN_BLOCK;
            continue;
        }
        memcpy(&v, p + i * 8, 8);
        if (v)
            return i;
        i++;
    }
    return n;
}

/* The length of buf[0, n) without its trailing zero bytes. */
static uint64_t qcow2_last_nonzero(const uint8_t *buf, uint64_t n)
{
    while (n >= sizeof(qcow2_zero_block) &&
           memcmp(buf + n - sizeof(qcow2_zero_block), qcow2_zero_block,
                  sizeof(qcow2_zero_block)) == 0)
        n -= sizeof(qcow2_zero_block);
    while (n > 0 && buf[n - 1] == 0)
        n--;
    return n;
}

__attribute__((noinline)) uint64_t qcow2_load_be64s(uint64_t *dst, const uint8_t *src, uint64_t n)
{
    uint64_t used = 0;
    for (uint64_t i = 0; i < n; i++) { /* dst may be src: each entry is read before written */
        dst[i] = qcow2_be64(src + i * 8);
        if (dst[i])
            used = i + 1;
    }
    return used;
}

/* Tables of this many bytes or more are mapped rather than allocated. */
#define QCOW2_TABLE_MAP (UINT64_C(128) << 10)

static uint64_t qcow2_page(void)
{
    return (uint64_t)sysconf(_SC_PAGESIZE);
}

/* The length of the mapping of a table of `bytes`: whole pages, then one
 * inaccessible page. */
static uint64_t qcow2_table_map_len(uint64_t bytes)
{
    return (bytes + qcow2_page() - 1) / qcow2_page() * qcow2_page() + qcow2_page();
}

/* A zeroed table of n entries (n > 0).  Large ones (an L1 table for a
 * device of terabytes is megabytes, nearly all zero) are anonymous
 * mappings, so the zeros cost nothing until written; the table ends where
 * an inaccessible page begins, so an overrun faults at once. */
uint64_t *qcow2_table_new(uint64_t n)
{
    uint64_t bytes = n * sizeof(uint64_t), len, pg = qcow2_page();
    uint8_t *m;

    if (bytes < QCOW2_TABLE_MAP)
        return calloc(n, sizeof(uint64_t));
    len = qcow2_table_map_len(bytes);
    m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    if (mprotect(m + len - pg, pg, PROT_NONE) < 0) {
        munmap(m, len);
        return NULL;
    }
    return (uint64_t *)(m + len - pg - bytes);
}

void qcow2_table_free(uint64_t *t, uint64_t n)
{
    uint64_t bytes = n * sizeof(uint64_t), len;

    if (!t || bytes < QCOW2_TABLE_MAP) {
        free(t);
        return;
    }
    len = qcow2_table_map_len(bytes);
    munmap((uint8_t *)t + bytes + qcow2_page() - len, len);
}

/* Read the n-entry table at off into t (zeroed by the caller) in host
 * order; *used is one past its last entry that is not zero.  Only the
 * parts of the file that hold data are read: an L1 table for terabytes
 * is megabytes of mostly holes. */
static int qcow2_read_table(struct qcow2_state *s, uint64_t *t, uint64_t n, uint64_t off,
                            uint64_t *used)
{
    uint64_t end = off + n * 8, pos = off;
    int ret;

    *used = 0;
    while ((pos = blkv_lower_next_data(s->file, pos, end)) < end) {
        uint64_t stop = blkv_lower_next_hole(s->file, pos, end), i, u;

        pos -= (pos - off) % 8; /* pages are 8-byte aligned, off may not be */
        stop += (end - stop) % 8;
        i = (pos - off) / 8;
        /* read in place, then to host order */
        if ((ret = blkv_lower_pread(s->file, t + i, stop - pos, pos)) < 0)
            return ret;
        if ((u = qcow2_load_be64s(t + i, (const uint8_t *)(t + i), (stop - pos) / 8)))
            *used = i + u;
        pos = stop;
    }
    return 0;
}

static int qcow2_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Refcount blocks must be distinct clusters outside the header, the L1
 * table and the refcount table: one cluster of garbage named by every
 * entry (say, the refcount table itself) would describe a huge range of
 * clusters as used, and the allocator would scan all of it.  Distinct
 * blocks bound the scan by the bytes of the file.  0 or -EINVAL. */
static int qcow2_check_rt_blocks(struct qcow2_state *s)
{
    uint64_t n = 0, *blk;
    int ret = 0;

    for (uint64_t i = qcow2_next_used(s->rt, 0, s->rt_used); i < s->rt_used;
         i = qcow2_next_used(s->rt, i + 1, s->rt_used)) {
        if (qcow2_fixed_meta(s, s->rt[i], s->cluster_size)) {
            blkv_error(s->ctx, "qcow2: refcount block %" PRIu64 " at %" PRIu64 " overlaps the "
                       "header, the L1 table or the refcount table", i, s->rt[i]);
            return -EINVAL;
        }
        n++;
    }
    if (n < 2)
        return 0;
    if (!(blk = malloc(n * sizeof(*blk))))
        return -ENOMEM;
    n = 0;
    for (uint64_t i = qcow2_next_used(s->rt, 0, s->rt_used); i < s->rt_used;
         i = qcow2_next_used(s->rt, i + 1, s->rt_used))
        blk[n++] = s->rt[i];
    qsort(blk, n, sizeof(*blk), qcow2_cmp_u64);
    for (uint64_t i = 1; i < n && !ret; i++) {
        if (blk[i] == blk[i - 1]) {
            blkv_error(s->ctx, "qcow2: refcount block at %" PRIu64 " named twice in the refcount "
                       "table", blk[i]);
            ret = -EINVAL;
        }
    }
    free(blk);
    return ret;
}

/* Load the L1 and refcount tables, checking refcount table entries. */
static int qcow2_load_tables(struct qcow2_state *s)
{
    uint64_t l1n = s->l1_size ? s->l1_size : 1, rtb = (uint64_t)s->rt_clusters << s->cluster_bits;
    int ret;

    s->l1 = qcow2_table_new(l1n);
    s->rt_size = rtb / 8;
    s->rt = qcow2_table_new(s->rt_size);
    if (!s->l1 || !s->rt)
        return -ENOMEM;
    ret = qcow2_read_table(s, s->l1, s->l1_size, s->l1_offset, &s->l1_used);
    if (!ret)
        ret = qcow2_read_table(s, s->rt, s->rt_size, s->rt_offset, &s->rt_used);
    for (uint64_t i = qcow2_next_used(s->rt, 0, s->rt_used); !ret && i < s->rt_used;
         i = qcow2_next_used(s->rt, i + 1, s->rt_used)) {
        if ((s->rt[i] & QCOW2_RT_RESERVED) || s->rt[i] % s->cluster_size ||
            s->rt[i] >= QCOW2_MAX_HOST_OFFSET || (s->rt[i] && s->rt[i] < s->cluster_size)) {
            blkv_error(s->ctx, "qcow2: corrupt refcount table entry %" PRIu64 ": 0x%016" PRIx64,
                       i, s->rt[i]);
            ret = -EINVAL;
        }
    }
    return ret ? ret : qcow2_check_rt_blocks(s);
}

int qcow2_open_image(struct qcow2_state *s, unsigned l2n, unsigned rbn)
{
    uint64_t fsize = blkv_lower_size(s->file), ftlen;
    uint8_t hdr[QCOW2_HDR_PEEK], *c0 = NULL;
    const uint8_t *ft;
    int ret;

    if ((ret = blkv_lower_pread(s->file, hdr, sizeof(hdr), 0)) < 0)
        return ret;
    if ((ret = qcow2_parse_fixed(s, hdr, fsize)) < 0)
        return ret;
    /* The header cluster: its first 4 KiB are nearly always all there is
     * (extensions and backing file name); the rest only when needed. */
    for (uint64_t avail = qcow2_min(s->cluster_size, 4096);; avail = s->cluster_size) {
        free(c0);
        if (!(c0 = malloc(avail)))
            return -ENOMEM;
        if ((ret = blkv_lower_pread(s->file, c0, avail, 0)) < 0)
            break;
        ret = qcow2_parse_exts(s, c0, avail, &ft, &ftlen);
        if (ret == 0 && s->has_backing &&
            qcow2_be64(c0 + 8) + qcow2_be32(c0 + 16) > avail) /* checked: within the cluster */
            ret = -EAGAIN;
        if (ret != -EAGAIN || avail == s->cluster_size)
            break;
    }
    if (ret < 0 || (ret = qcow2_check_features(s, c0, ft, ftlen)) < 0) {
        free(c0);
        return ret;
    }
    if (s->has_backing) {
        uint64_t boff = qcow2_be64(c0 + 8);
        size_t blen = qcow2_min(qcow2_be32(c0 + 16), sizeof(s->backing_name) - 1);
        memcpy(s->backing_name, c0 + boff, blen);
        s->backing_name[blen] = 0;
    }
    free(c0);
    qcow2_derive(s);
    if ((ret = qcow2_load_tables(s)) < 0)
        return ret;
    while (l2n > 2 && (uint64_t)l2n * s->cluster_size > QCOW2_MAX_CACHE_BYTES)
        l2n--;
    while (rbn > 2 && (uint64_t)rbn * s->cluster_size > QCOW2_MAX_CACHE_BYTES)
        rbn--;
    if ((ret = qcow2_cache_init(&s->l2c, l2n, s->cluster_size)) < 0 ||
        (ret = qcow2_cache_init(&s->rbc, rbn, s->cluster_size)) < 0)
        return ret;
    s->alloc_end = qcow2_div_up(fsize, s->cluster_size);
    if ((ret = qcow2_alloc_end_refcounts(s)) < 0)
        return ret;
    s->free_hint = 0;
    s->dirty_marked = s->incompat & QCOW2_INCOMPAT_DIRTY;
    s->lazy = s->version >= 3 && (s->compat & QCOW2_COMPAT_LAZY) && !s->read_only;
    if (s->read_only)
        return 0;

    blkv_co_mutex_lock(&s->lock);
    if (s->autoclear) {
        /* unknown auto-clear features must be cleared before writing */
        uint8_t z[8] = {0};
        if ((ret = blkv_lower_pwrite(s->file, z, 8, QCOW2_HDR_AUTOCLEAR)) == 0)
            s->autoclear = 0;
    }
    if (!ret && s->dirty_marked) {
        /* refcounts may be stale: rebuild them from the mappings */
        ret = qcow2_check_image(s, true);
        if (!ret && !s->lazy)
            ret = qcow2_set_dirty(s, false);
    }
    blkv_co_mutex_unlock(&s->lock);
    return ret;
}

/* Clusters past the end of the file may be in use: a power loss can keep
 * the refcount of a cluster whose data never reached the file (a leak).
 * alloc_end covers them too: up to the last nonzero refcount of the last
 * refcount block (one block: bounded, whatever a damaged image says). */
int qcow2_alloc_end_refcounts(struct qcow2_state *s)
{
    struct qcow2_cache_entry *e;
    uint64_t ti = s->rt_used, j, b;
    int ret;

    while (ti > 0 && !s->rt[ti - 1])
        ti--;
    if (ti == 0 || ((ti - 1) << s->rb_bits) + s->rb_entries <= s->alloc_end)
        return 0; /* the file covers every cluster that block could count */
    ti--;
    blkv_co_mutex_lock(&s->lock);
    ret = qcow2_cache_get(s, &s->rbc, s->rt[ti], true, &e);
    blkv_co_mutex_unlock(&s->lock);
    if (ret < 0)
        return ret;
    /* past the block's last nonzero byte (zeros skipped by memcmp), then
     * back to its last nonzero entry, which shares that byte */
    b = qcow2_last_nonzero(e->data, s->cluster_size);
    for (j = (b * 8 + s->refcount_bits - 1) / s->refcount_bits;
         j > 0 && !qcow2_rc_read(s, e->data, j - 1); j--)
        ;
    s->alloc_end = qcow2_max(s->alloc_end, (ti << s->rb_bits) + j);
    qcow2_cache_put(e);
    return 0;
}

void qcow2_free_image(struct qcow2_state *s)
{
    qcow2_table_free(s->l1, s->l1_size ? s->l1_size : 1);
    qcow2_table_free(s->rt, s->rt_size);
    qcow2_cache_destroy(&s->l2c);
    qcow2_cache_destroy(&s->rbc);
    s->l1 = s->rt = NULL;
}

int qcow2_flush_meta(struct qcow2_state *s)
{
    int ret = qcow2_cache_flush(s, &s->rbc); /* refcounts first */
    int r2 = qcow2_cache_flush(s, &s->l2c);
    return ret ? ret : r2;
}

int qcow2_set_dirty(struct qcow2_state *s, bool dirty)
{
    uint64_t v = dirty ? s->incompat | QCOW2_INCOMPAT_DIRTY : s->incompat & ~QCOW2_INCOMPAT_DIRTY;
    uint8_t be[8];
    int ret;

    if (s->version < 3)
        return 0;
    if (!dirty) {
        /* the refcounts must be on disk before the bit says so */
        if ((ret = qcow2_flush_meta(s)) < 0 || (ret = blkv_lower_flush(s->file)) < 0)
            return ret;
    }
    qcow2_put_be64(be, v);
    blkv_lower_event(s->file, BLKV_EV_HEADER_UPDATE);
    if ((ret = blkv_lower_pwrite(s->file, be, 8, QCOW2_HDR_INCOMPAT)) < 0)
        return ret;
    if (dirty && (ret = blkv_lower_flush(s->file)) < 0)
        return ret;
    s->incompat = v;
    s->dirty_marked = dirty;
    return 0;
}
