/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * store.h - a sparse byte array: a hash table of 4 KiB pages.
 *
 * Holes read as zeros; writing zeros into a hole allocates nothing and a
 * whole page of zeros is freed.  Pages come from chunks (one malloc for
 * several pages), freed pages go to a free list, and the chunks of a
 * cleared store are kept for the next run's (fresh memory costs a page
 * fault per page; under ASan, which holds freed memory in quarantine, every
 * allocation is fresh).  Every page a store holds is counted in *held,
 * which several stores may share, so that their owner can cap them together.
 */
#ifndef BLKV_RUNTIME_STORE_H
#define BLKV_RUNTIME_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BLKV_STORE_PAGE 4096u

struct blkv_store_page;
struct blkv_store_chunk;

struct blkv_store {
    uint64_t size; /* logical size: reads past it are the caller's business */
    struct blkv_store_page **buckets;
    size_t nbuckets; /* power of two, or 0 */
    size_t npages;
    struct blkv_store_chunk *chunks;
    struct blkv_store_page *free_pages;
    uint64_t *held; /* bytes of pages held, shared with other stores */
};

/* An empty store of size 0 counting its pages in *held. */
void blkv_store_init(struct blkv_store *s, uint64_t *held);
/* Drop every page, keeping the size. */
void blkv_store_clear(struct blkv_store *s);
/* End of a run: the chunk cache follows recent use (see store.c). */
void blkv_store_run_end(void);
/* Bytes of chunks cached for reuse (for tests and memory figures). */
size_t blkv_store_cached(void);
/* Copy [off, off+len) out; holes read as zeros. */
void blkv_store_read(const struct blkv_store *s, void *buf, uint64_t len, uint64_t off);
/* Whether writing buf (NULL: zeros) at off keeps *held within cap. */
bool blkv_store_write_fits(const struct blkv_store *s, const void *buf, uint64_t len,
                           uint64_t off, uint64_t cap);
/* Write buf (NULL: zeros) at off, extending the size; 0 or -ENOMEM (partly
 * written). */
int blkv_store_write(struct blkv_store *s, const void *buf, uint64_t len, uint64_t off);
/* Set the size; shrinking drops the pages past the end and zeroes the tail
 * of the last one, so that growing again reads zeros. */
void blkv_store_truncate(struct blkv_store *s, uint64_t size);
/* The first offset in [off, end) on a page that exists (data) or not; end
 * if none.  Pages past the size do not exist.  Requires off < end. */
uint64_t blkv_store_seek(const struct blkv_store *s, uint64_t off, uint64_t end, bool data);
/* Page pgno's bytes (BLKV_STORE_PAGE of them), or NULL when it is a hole;
 * with create, a hole becomes a zeroed page first (NULL only on -ENOMEM).
 * For stores used as page maps (a page that is there may hold zeros):
 * blkv_store_write frees whole pages of zeros, so do not mix the two. */
unsigned char *blkv_store_page(struct blkv_store *s, uint64_t pgno, bool create);
/* Call fn for each page holding data below the size, in no particular
 * order: its offset and its bytes (n of them: the last page may be cut by
 * the size).  Stops at and returns fn's first non-zero return. */
int blkv_store_each(const struct blkv_store *s,
                    int (*fn)(void *opaque, uint64_t off, const void *data, size_t n),
                    void *opaque);

#endif
