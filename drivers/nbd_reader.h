/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * nbd_reader.h - differential readers for images QEMU wrote: libyal's
 * libqcow (qcow2), libvmdk (vmdk) and libvhdi (vpc, vhdx) opening the image
 * file of a server=qsd run.  The nbd driver decides when the file is
 * consistent (no write in flight, flushed over NBD); this opens it and reads.
 */
#ifndef BLKV_NBD_READER_H
#define BLKV_NBD_READER_H

#include <stddef.h>
#include <stdint.h>

struct blkv_ctx;
struct nbd_reader;

enum nbd_reader_kind {
    NBD_READER_NONE,
    NBD_READER_LIBQCOW,
    NBD_READER_LIBVMDK,
    NBD_READER_LIBVHDI,
};

/* The reader a reader= value names for QEMU format `format`: its kind, or
 * -EINVAL / -ENOTSUP (not built in) with a message in ctx. */
int nbd_reader_kind(struct blkv_ctx *ctx, const char *name, const char *format);

/* The library's name ("libqcow", ...). */
const char *nbd_reader_name(enum nbd_reader_kind kind);

/* Open the image at `path` (a descriptor's extents are found beside it)
 * and check that its media size is `size`.  0 and *out, or a negative
 * errno with the library's message in ctx. */
int nbd_reader_open(struct blkv_ctx *ctx, enum nbd_reader_kind kind, const char *path,
                    uint64_t size, struct nbd_reader **out);

/* Read len bytes at off.  0, or -EIO with the library's message in ctx (an
 * error or a short read). */
int nbd_reader_read(struct nbd_reader *r, void *buf, uint64_t len, uint64_t off, uint64_t id);

/* Close and free (NULL is fine). */
void nbd_reader_close(struct nbd_reader *r);

#endif
