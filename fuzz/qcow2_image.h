/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2_image.h - small valid qcow2 images built byte by byte, independent
 * of the qcow2 driver's allocation choices: for the qcow2_open seeds
 * (corpus_writer.c) and the qcow2 driver's image tests (tests/test_qcow2.c).
 *
 * Layout: the header, the refcount table at cluster 1, its one refcount
 * block at cluster 2, then L2 tables and data in the order the calls ask
 * for them, and the L1 table last, so that the file can end right after
 * its entries (every other cluster lies whole inside the file, as qemu-img
 * check wants), or right after the refcount block (qimg_reserve_l1).
 * Refcounts and copied flags are computed by qimg_finish.  One image at a
 * time, in qimg; a failure is fatal (these are tools and tests).
 */
#ifndef BLKV_QCOW2_IMAGE_H
#define BLKV_QCOW2_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QI_MAX_CLUSTERS 64

struct qimg {
    uint8_t *b;            /* the file, QI_MAX_CLUSTERS clusters */
    unsigned version, cb, rorder;
    uint64_t cs, size, l1_size, nclusters;
    uint64_t *l1;          /* L2 table cluster per L1 entry (0: none) */
    uint32_t refs[QI_MAX_CLUSTERS];
    uint64_t hdr_end;      /* header and extensions written so far */
    uint64_t cpos;         /* where the next compressed cluster goes (0: new cluster) */
    uint64_t l1_at;        /* the L1 table's cluster if reserved (qimg_reserve_l1), or 0 */
    struct {
        uint64_t gc;
        unsigned tag;
        char kind;         /* 'd' data, 'c' compressed, 'z' zeros */
    } guest[QI_MAX_CLUSTERS]; /* what each cluster set so far reads as */
    unsigned nguest;
};

extern struct qimg qimg; /* the image being built */

/* Big-endian n-byte field at p. */
void qimg_be(uint8_t *p, uint64_t v, unsigned n);
uint64_t qimg_get(const uint8_t *p, unsigned n);
/* Print what went wrong and exit(2). */
void qimg_fail(const char *what) __attribute__((noreturn));
/* A new image: version, log2 cluster size, refcount order, virtual size. */
void qimg_begin(unsigned version, unsigned cb, unsigned rorder, uint64_t size);
/* Put the L1 table right after the refcount block (call first). */
void qimg_reserve_l1(void);
/* The L2 table of guest cluster gc, made now if it is not there yet; its
 * byte offset. */
uint64_t qimg_l2(uint64_t gc);
/* Compressible content that differs per tag. */
void qimg_fill(uint8_t *p, uint64_t n, unsigned tag);
/* Guest cluster gc holds data (qimg_fill of tag) in a new host cluster. */
void qimg_data(uint64_t gc, unsigned tag);
/* Guest cluster gc reads as zeros (version 3): plainly, or over a
 * preallocated host cluster starting with garbage that must not show. */
void qimg_zero(uint64_t gc, bool alloc);
/* Guest cluster gc is compressed (sparse content of tag); consecutive ones
 * pack into one host cluster at unaligned offsets while they fit. */
void qimg_compressed(uint64_t gc, unsigned tag);
/* A header extension (version 3: after the header, before the backing name). */
void qimg_ext(uint32_t type, const void *data, uint32_t len);
/* The backing file's name (after the extensions and their end marker). */
void qimg_backing(const char *name);
/* An L2 table shared by L1 entries 0 and 1 (as internal snapshots leave). */
void qimg_share_l2(void);
/* Lay out the L1 table, write refcounts and copied flags; the file's
 * length (in qimg.b). */
size_t qimg_finish(void);
/* What guest cluster gc reads as (qimg.cs bytes into buf). */
void qimg_guest(uint64_t gc, void *buf);
/* Free the image. */
void qimg_free(void);

#endif
